// coder's code picker, shared by the review page (app.js) and the transcript page
// (transcript.js): type words to narrow the codebook, arrows to move, a click or Enter to choose.
// Code names go into the page through textContent only, never as HTML.
(function () {
  "use strict";
  // input, list: the picker's text field and <ul>. options.codes(): the codes to offer, in
  // order; options.limit: how many; options.onChoose(code): a click on one (the page binds its
  // own keys and asks current()); options.recent(id), options.swatch, options.empty: marks.
  window.CoderPicker = function (input, list, options) {
    let picked = [];
    let index = 0;
    function filter() {
      const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      picked = options.codes().filter(function (c) {
        const hay = (c.path + " " + c.id).toLowerCase();
        return words.every(function (w) { return hay.includes(w); });
      }).slice(0, options.limit);
      index = 0;
      list.textContent = "";
      picked.forEach(function (c, i) {
        const li = document.createElement("li");
        if (options.swatch) {
          const sw = document.createElement("span");
          sw.className = "swatch k" + c.k;
          li.appendChild(sw);
        }
        li.appendChild(document.createTextNode(c.path));
        if (options.recent && options.recent(c.id)) li.classList.add("recent");
        li.dataset.codeId = c.id;
        if (i === index) li.classList.add("highlight");
        li.addEventListener("mousedown", function (ev) { ev.preventDefault(); index = i; options.onChoose(c); });
        list.appendChild(li);
      });
      if (!picked.length && options.empty) {
        const li = document.createElement("li");
        li.className = "muted";
        li.textContent = options.empty;
        list.appendChild(li);
      }
    }
    function move(step) {
      if (!picked.length) return;
      index = (index + step + picked.length) % picked.length;
      Array.from(list.children).forEach(function (li, i) { li.classList.toggle("highlight", i === index); });
    }
    input.addEventListener("input", filter);
    return { filter: filter, move: move, current: function () { return picked[index]; } };
  };
})();
