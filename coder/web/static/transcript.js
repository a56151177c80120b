// coder transcript page: code any passage. Select text with the mouse (or Tab into the
// transcript and use Shift+arrows, then Enter), pick a code: stored at once. Click a highlight
// or a coding stripe to see its codes, coder and memo, and to remove or re-code it.
// Plain JavaScript, no dependencies. The highlights arrive from the server, escaped; anything
// this script writes into the page goes through textContent, never HTML.
(function () {
  "use strict";
  const region = document.getElementById("transcript");
  if (!region) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const data = JSON.parse(document.getElementById("transcript-data").textContent);
  const who = document.getElementById("coder-name");   // the signed-in coder, in the header
  const me = who ? who.textContent : "";
  const flash = document.getElementById("flash");
  const picker = document.getElementById("span-picker");
  const pickerInput = document.getElementById("span-picker-input");
  const pickerList = document.getElementById("span-picker-list");
  const pickedLabel = document.getElementById("span-picked");
  const panel = document.getElementById("span-panel");
  const panelList = document.getElementById("span-panel-list");
  const TIMINGS = "coder-span-timings";      // for evaluation/bench_span_coding.py
  const byId = {};
  data.codes.forEach(function (c) { byId[c.id] = c; });
  let recent = data.recent.slice();
  let pending = null;   // the passage being coded: {start, end, text, range, selectedAt}
  let recoding = null;  // the coding being re-coded, when the picker is open for that
  let navTimer = null;

  function clock() { return performance.timeOrigin + performance.now(); }
  function say(text, undoable) {
    flash.textContent = text || "";
    if (undoable && me) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "undo";
      b.textContent = "undo";
      b.addEventListener("click", function () { undo(); });
      flash.appendChild(document.createTextNode(" "));
      flash.appendChild(b);
    }
  }
  function codePoints(s) { let n = 0; for (const _ of s) n += 1; return n; }  // offsets count code points

  // -- after a change: redraw the segments whose highlights changed, from the server's layout --
  // (pieces as [start, end, [coding ids, outermost first]]; the text is the page's own)
  let marks = data.layout.marks;
  const drawn = {};
  function signature(s) {
    return JSON.stringify([s, s.stripes.map(function (id) {
      const m = marks[id];
      return m ? [m.lane, m.k, m.path, m.coder, m.mine, m.whole] : null;
    })]);
  }
  data.layout.segments.forEach(function (s) { drawn[s.id] = signature(s); });
  function kClass(m) { return "k" + (m.k === null ? "x" : m.k); }
  function drawSegment(s) {
    const li = document.getElementById("seg-" + s.id);
    if (!li) return;
    const box = li.querySelector(".text");
    const chars = Array.from(box.textContent);    // code points, as the offsets count
    const base = Number(box.dataset.start);
    const pieces = s.pieces.map(function (p) {
      const piece = el("span", "piece");
      piece.dataset.start = String(p[0]);
      piece.dataset.end = String(p[1]);
      piece.dataset.kind = "text";
      if (p[2].length) piece.dataset.codings = p[2].join(" ");
      let inner = piece;
      p[2].forEach(function (id) {
        const m = marks[id];
        const h = el("span", "hl lane" + m.lane + " " + kClass(m));
        h.dataset.coding = String(id);
        inner.appendChild(h);
        inner = h;
      });
      inner.textContent = chars.slice(p[0] - base, p[1] - base).join("");
      return piece;
    });
    box.replaceChildren.apply(box, pieces);
    const tail = li.querySelector(".tail");
    const parts = [];
    if (s.stripes.length) {
      const ul = el("ul", "stripes");
      s.stripes.forEach(function (id) {
        const m = marks[id];
        const b = el("button", "stripe lane" + m.lane + " " + kClass(m) + (m.mine ? " mine" : ""));
        b.type = "button";
        b.dataset.coding = String(id);
        b.title = m.path + " · " + m.coder + (m.whole ? "" : " · part");
        b.appendChild(el("span", "code", m.path));
        b.appendChild(document.createTextNode(" "));
        b.appendChild(el("span", "coder", m.coder));
        const item = el("li");
        item.appendChild(b);
        ul.appendChild(item);
      });
      parts.push(ul);
    }
    if (s.decisions.length) {
      const ul = el("ul", "codes");
      s.decisions.forEach(function (k) {
        const item = el("li", "decision-" + k.decision);
        item.appendChild(el("span", "coder", k.coder));
        item.appendChild(document.createTextNode(" " + k.label + " "));
        item.appendChild(el("span", "state", k.decision));
        if (k.memo) { item.appendChild(document.createTextNode(" ")); item.appendChild(el("em", "memo", k.memo)); }
        ul.appendChild(item);
      });
      parts.push(ul);
    }
    if (s.memos && s.memos.length) {   // segment memos: notes, not codings
      const ul = el("ul", "memos");
      s.memos.forEach(function (n) {
        const item = el("li");
        item.appendChild(el("span", "coder", n.coder));
        item.appendChild(document.createTextNode(" "));
        item.appendChild(el("em", "memo", n.text));
        ul.appendChild(item);
      });
      parts.push(ul);
    }
    tail.replaceChildren.apply(tail, parts);
  }
  function redraw(layout, done) {
    if (!layout) return;
    marks = layout.marks;
    layout.segments.forEach(function (s) {
      const sig = signature(s);
      if (drawn[s.id] !== sig) { drawn[s.id] = sig; drawSegment(s); }
    });
    window.getSelection().removeAllRanges();
    region.dataset.version = String(Number(region.dataset.version || 0) + 1);
    // two frames: the browser has painted the new highlights
    requestAnimationFrame(function () { requestAnimationFrame(function () { if (done) done(); }); });
  }
  async function refresh() {
    const q = new URLSearchParams({ document: data.document, coder: region.dataset.coderFilter || "", code: region.dataset.codeFilter || "" });
    const res = await fetch("/api/spans?" + q.toString(), { credentials: "same-origin", headers: { "Accept": "application/json" } });
    if (res.ok) redraw((await res.json()).layout);
  }
  function filters() {
    return { document: data.document, coder_filter: region.dataset.coderFilter || "", code_filter: region.dataset.codeFilter || "" };
  }

  async function call(url, body) {
    const res = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Accept": "application/json", "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    const out = await res.json().catch(function () { return { error: res.statusText }; });
    if (!res.ok) throw new Error(out.error || ("HTTP " + res.status));
    return out;
  }

  // -- a selection as offsets into the document's stored text ---------------------------------
  // Every piece of segment text carries data-start (its first character in the document, in
  // code points); speaker labels and the margin carry the document range around them (kind
  // "gap"), so an end that falls there maps to the text between segments, which the server
  // trims away (or, if nothing else is selected, refuses with the library's message).
  function markedOf(node) {
    const el = node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement;
    const m = el && el.closest("[data-kind]");
    return m && region.contains(m) ? m : null;
  }
  function pointOffset(node, offset, isEnd) {
    const el = markedOf(node);
    if (el) {
      if (el.dataset.kind === "gap") return Number(isEnd ? el.dataset.end : el.dataset.start);
      const r = document.createRange();
      r.setStart(el, 0);
      r.setEnd(node, offset);
      return Number(el.dataset.start) + codePoints(r.toString());
    }
    // between marked elements (on a list item itself, say): the next one's start, or for an
    // end the previous one's end
    const all = Array.from(region.querySelectorAll("[data-kind]"));
    const probe = document.createRange();
    probe.setStart(node, offset);
    if (isEnd) {
      for (let i = all.length - 1; i >= 0; i -= 1) {
        if (probe.comparePoint(all[i], all[i].childNodes.length) <= 0) return Number(all[i].dataset.end);
      }
      return Number(all[0].dataset.start);
    }
    for (const m of all) { if (probe.comparePoint(m, 0) >= 0) return Number(m.dataset.start); }
    return Number(all[all.length - 1].dataset.end);
  }
  function selectedSpan() {
    const sel = window.getSelection();
    if (!sel || sel.rangeCount === 0 || sel.isCollapsed) return null;
    const r = sel.getRangeAt(0);
    if (!r.intersectsNode(region)) return null;
    const inside = function (n) { return n === region || region.contains(n); };
    const all = region.querySelectorAll("[data-kind]");
    if (!all.length) return null;
    const start = inside(r.startContainer) ? pointOffset(r.startContainer, r.startOffset, false) : Number(all[0].dataset.start);
    const end = inside(r.endContainer) ? pointOffset(r.endContainer, r.endOffset, true) : Number(all[all.length - 1].dataset.end);
    if (!(end > start)) return null;
    return { start: start, end: end, text: r.toString(), range: r.cloneRange() };
  }

  function showPending(range) {
    if (!(window.CSS && CSS.highlights && window.Highlight)) return;
    if (range) CSS.highlights.set("coder-pending", new Highlight(range));
    else CSS.highlights.delete("coder-pending");
  }

  // -- the code picker: type to search, this coder's recent codes first -----------------------
  function place(box, rect) {
    const top = Math.min(window.innerHeight - 260, (rect ? rect.bottom : window.innerHeight * 0.2) + 8);
    box.style.top = Math.max(8, top) + "px";
  }
  function openPicker(span) {
    if (!me) { say("Choose a coder first (top right) to code passages."); return; }
    pending = span;
    pending.selectedAt = span.selectedAt || clock();
    showPending(span.range);
    openList(span.range.getBoundingClientRect(), "Code “" + clip(span.text.trim(), 80) + "”");
  }
  function openList(rect, label) {
    closePanel();
    pickedLabel.textContent = label;
    picker.hidden = false;
    place(picker, rect);
    pickerInput.value = "";
    filterCodes();
    pickerInput.focus();
  }
  function closePicker() {
    picker.hidden = true;
    pending = null;
    recoding = null;
    showPending(null);
  }
  // this coder's recent codes first, then the codebook's order
  const pick = window.CoderPicker(pickerInput, pickerList, {
    codes: function () {
      const first = recent.map(function (id) { return byId[id]; }).filter(Boolean);
      return first.concat(data.codes.filter(function (c) { return recent.indexOf(c.id) < 0; }));
    },
    limit: 14, swatch: true, empty: "no code matches",
    recent: function (id) { return recent.indexOf(id) >= 0; },
    onChoose: function () { choose(); } });
  const filterCodes = pick.filter;
  async function choose() {
    const code = pick.current();
    if (!code) return;
    const chosenAt = clock();
    const span = pending;
    const target = recoding;
    closePicker();
    region.focus({ preventScroll: true });
    try {
      if (target !== null) {
        const out = await call("/api/spans/" + target + "/recode", Object.assign(filters(), { code_id: code.id }));
        redraw(out.layout);
        say(out.message, true);
        return;
      }
      if (!span) return;
      const out = await call("/api/spans", Object.assign(filters(), {
        start: span.start, end: span.end, code_id: code.id, snap: true,
        seconds: ((chosenAt - span.selectedAt) / 1000).toFixed(1),
      }));
      const timing = { selected: span.selectedAt, chosen: chosenAt, stored: clock(), coding: out.coding_id };
      recent = [code.id].concat(recent.filter(function (id) { return id !== code.id; }));
      redraw(out.layout, function () {
        timing.shown = clock();
        const list = JSON.parse(sessionStorage.getItem(TIMINGS) || "[]");
        list.push(timing);
        sessionStorage.setItem(TIMINGS, JSON.stringify(list.slice(-500)));
        region.dataset.shown = String(list.length);
      });
      say(out.message, true);
    } catch (err) {
      say("Not saved: " + err.message);
    }
  }
  pickerInput.addEventListener("keydown", function (ev) {
    ev.stopPropagation();
    if (ev.key === "Escape") { ev.preventDefault(); closePicker(); region.focus(); }
    else if (ev.key === "ArrowDown") { ev.preventDefault(); pick.move(1); }
    else if (ev.key === "ArrowUp") { ev.preventDefault(); pick.move(-1); }
    else if (ev.key === "Enter") { ev.preventDefault(); choose(); }
  });
  pickerInput.addEventListener("blur", function () {
    setTimeout(function () { if (!picker.contains(document.activeElement)) closePicker(); }, 150);
  });

  // -- the panel: the codings under a click ----------------------------------------------------
  function clip(text, most) {
    const t = text.replace(/\s+/g, " ");
    return t.length <= most ? t : t.slice(0, most - 1) + "…";
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function closePanel() { panel.hidden = true; lit(null); }
  function openPanel(ids, rect) {
    panelList.textContent = "";
    ids.forEach(function (id) {
      const m = marks[id];
      if (!m) return;
      const li = el("li", "coding" + (m.mine ? " mine" : ""));
      li.dataset.coding = String(m.id);
      const head = el("p", "head");
      head.appendChild(el("span", "swatch k" + (m.k === null ? "x" : m.k)));
      head.appendChild(el("strong", "code", m.path));
      head.appendChild(el("span", "coder", " · " + m.coder + " · " + m.decision));
      li.appendChild(head);
      li.appendChild(el("q", "quote", m.whole ? "the whole segment" : clip(m.text, 160)));
      const memo = el("p", "memo", m.memo ? "Memo: " + m.memo : "");
      li.appendChild(memo);
      if (m.mine) {
        const buttons = el("p", "actions");
        const rm = el("button", "remove", "remove");
        rm.type = "button";
        rm.dataset.action = "remove";
        const rc = el("button", "recode", "re-code");
        rc.type = "button";
        rc.dataset.action = "recode";
        buttons.appendChild(rm);
        buttons.appendChild(rc);
        li.appendChild(buttons);
        const box = el("textarea", "memo-input");
        box.rows = 2;
        box.placeholder = "memo (Enter saves, Shift+Enter for a new line)";
        box.value = m.memo || "";
        const save = el("button", "save-memo", "save memo");
        save.type = "button";
        save.dataset.action = "memo";
        li.appendChild(box);
        li.appendChild(save);
        box.addEventListener("keydown", function (ev) {
          ev.stopPropagation();
          if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); save.click(); }
          if (ev.key === "Escape") closePanel();
        });
      }
      panelList.appendChild(li);
    });
    if (!panelList.children.length) return;
    panel.hidden = false;
    place(panel, rect);
    lit(ids);
    const first = panel.querySelector("button[data-action='remove'], button.close");
    if (first) first.focus({ preventScroll: true });
  }
  panel.addEventListener("click", async function (ev) {
    const btn = ev.target.closest("button[data-action]");
    if (!btn) return;
    const action = btn.dataset.action;
    if (action === "close") { closePanel(); return; }
    const li = btn.closest("li.coding");
    const id = li.dataset.coding;
    try {
      if (action === "remove" || action === "memo") {
        const body = action === "memo" ? { text: li.querySelector("textarea").value } : {};
        const out = await call("/api/spans/" + id + "/" + action, Object.assign(filters(), body));
        closePanel();
        redraw(out.layout);
        say(out.message, true);
        region.focus({ preventScroll: true });
      } else if (action === "recode") {
        closePanel();
        recoding = id;
        openList(btn.getBoundingClientRect(), "Re-code as …");
      }
    } catch (err) { say("Not saved: " + err.message); }
  });
  panel.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { ev.stopPropagation(); closePanel(); region.focus(); }
  });
  function lit(ids) {
    region.querySelectorAll(".lit").forEach(function (e) { e.classList.remove("lit"); });
    (ids || []).forEach(function (id) {
      region.querySelectorAll('[data-coding="' + Number(id) + '"]').forEach(function (e) { e.classList.add("lit"); });
    });
  }

  // -- the mouse -------------------------------------------------------------------------------
  document.addEventListener("mouseup", function (ev) {
    if (ev.button !== 0 || picker.contains(ev.target) || panel.contains(ev.target)) return;
    const at = clock();
    const span = selectedSpan();
    if (span) { span.selectedAt = at; openPicker(span); }
  });
  region.addEventListener("mousedown", function (ev) {
    if (ev.detail > 1 && navTimer) { clearTimeout(navTimer); navTimer = null; }
  });
  region.addEventListener("click", function (ev) {
    if (!picker.hidden || selectedSpan()) return;
    const stripe = ev.target.closest(".stripe");
    if (stripe) { openPanel([stripe.dataset.coding], stripe.getBoundingClientRect()); return; }
    const piece = ev.target.closest(".piece[data-codings]");
    if (piece) { openPanel(piece.dataset.codings.split(" "), piece.getBoundingClientRect()); return; }
    if (ev.target.closest("a, button, textarea, input")) return;
    const seg = ev.target.closest("li.seg");
    if (!seg || ev.detail !== 1) return;
    closePanel();
    // a plain click on a segment opens it in the review card (a double click selects a word)
    navTimer = setTimeout(function () {
      window.location.href = "/review?segment=" + encodeURIComponent(seg.dataset.segmentId);
    }, 300);
  });
  region.addEventListener("mouseover", function (ev) {
    const stripe = ev.target.closest(".stripe");
    if (stripe && panel.hidden) lit([stripe.dataset.coding]);
  });
  region.addEventListener("mouseout", function (ev) {
    if (ev.target.closest(".stripe") && panel.hidden) lit(null);
  });
  document.addEventListener("mousedown", function (ev) {
    if (!panel.hidden && !panel.contains(ev.target)) closePanel();
  });

  // -- the keyboard: a caret in the transcript, Shift+arrows select, Enter codes ---------------
  const MOVES = {
    ArrowLeft: ["backward", "character"], ArrowRight: ["forward", "character"],
    ArrowUp: ["backward", "line"], ArrowDown: ["forward", "line"],
    Home: ["backward", "lineboundary"], End: ["forward", "lineboundary"],
  };
  function placeCaret() {
    const pieces = Array.from(region.querySelectorAll(".piece"));
    const seen = pieces.find(function (p) { return p.getBoundingClientRect().bottom > 0; }) || pieces[0];
    if (!seen) return false;
    const walker = document.createTreeWalker(seen, NodeFilter.SHOW_TEXT);
    const node = walker.nextNode();
    window.getSelection().collapse(node || seen, 0);
    return true;
  }
  region.addEventListener("keydown", function (ev) {
    if (ev.altKey || ev.metaKey) return;
    const sel = window.getSelection();
    const move = MOVES[ev.key];
    if (move) {
      ev.preventDefault();
      if (!sel.rangeCount || !region.contains(sel.anchorNode)) { if (!placeCaret()) return; }
      const unit = ev.ctrlKey && move[1] === "character" ? "word" : move[1];
      sel.modify(ev.shiftKey ? "extend" : "move", move[0], unit);
      const node = sel.focusNode && (sel.focusNode.nodeType === Node.ELEMENT_NODE ? sel.focusNode : sel.focusNode.parentElement);
      if (node) node.scrollIntoView({ block: "nearest" });
      return;
    }
    if (ev.key === "Enter") {
      const span = selectedSpan();
      if (span) { ev.preventDefault(); ev.stopPropagation(); openPicker(span); }
    } else if (ev.key === "Escape") {
      sel.removeAllRanges();
    }
  });

  // -- undo: the last of this coder's decisions, a span or a segment --------------------------
  async function undo() {
    try {
      const out = await call("/api/undo", {});
      if (out.nothing) { say(out.message); return; }
      await refresh();
      say("Undone.");
    } catch (err) { say("Not undone: " + err.message); }
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || !me) return;
    if (ev.target.closest && ev.target.closest("input, textarea, select, button")) return;
    if (ev.key === "u" && picker.hidden) { ev.preventDefault(); undo(); }
  });
})();
