// coder review page: keyboard-driven decisions against the study's own review code.
// Plain JavaScript, no dependencies. Every server-rendered fragment arrives escaped.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  // (The transcript page, its highlights and span coding: transcript.js.)

  const root = document.getElementById("review");
  if (!root) return;
  const cardBox = document.getElementById("card");
  const flash = document.getElementById("flash");
  const picker = document.getElementById("picker");
  const pickerInput = document.getElementById("picker-input");
  const pickerList = document.getElementById("picker-list");
  const memoBox = document.getElementById("memo");
  const memoInput = document.getElementById("memo-input");
  const codes = JSON.parse(document.getElementById("codebook-data").textContent);
  const single = root.dataset.single === "1";
  const skipped = [];
  let highlight = 0;
  let shownAt = performance.now();

  function options() {
    const o = { blind: root.dataset.blind, order: root.dataset.order };
    if (root.dataset.codes) o.codes = root.dataset.codes;
    if (root.dataset.documents) o.documents = root.dataset.documents;
    o.others = root.dataset.others || "";
    return o;
  }
  function query(extra) {
    const params = new URLSearchParams(options());
    Object.keys(extra || {}).forEach(function (k) { params.set(k, extra[k]); });
    return params.toString();
  }
  function card() { return document.getElementById("segment-card"); }
  function segmentId() { const c = card(); return c && c.dataset.segmentId ? Number(c.dataset.segmentId) : null; }
  function rows() { return Array.from(cardBox.querySelectorAll("li.suggestion")); }
  function say(text) { flash.textContent = text || ""; }

  function paint() {
    const list = rows();
    if (highlight >= list.length) highlight = Math.max(0, list.length - 1);
    list.forEach(function (li, i) { li.classList.toggle("highlight", i === highlight); });
  }
  function firstPending() {
    const list = rows();
    const i = list.findIndex(function (li) { return !li.dataset.state; });
    return i;
  }
  function show(data) {
    lastPart = heldPart = null;
    cardBox.innerHTML = data.html;
    shownAt = performance.now();
    const p = firstPending();
    highlight = p >= 0 ? p : 0;
    paint();
    cardBox.dataset.version = String(Number(cardBox.dataset.version || 0) + 1);
  }

  async function call(method, url, body) {
    const init = { method: method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRF-Token"] = csrf;
      init.body = JSON.stringify(Object.assign(options(), body));
    }
    const res = await fetch(url, init);
    const data = await res.json().catch(function () { return { error: res.statusText }; });
    if (!res.ok) throw new Error(data.error || ("HTTP " + res.status));
    return data;
  }

  async function next() {
    if (single) return;
    show(await call("GET", "/api/next?" + query({ skip: skipped.join(",") })));
  }

  async function decide(codeId, decision, advance, proposalId) {
    const id = segmentId();
    if (id === null) return;
    const seconds = ((performance.now() - shownAt) / 1000).toFixed(1);
    // proposalId: a hit of `coder search --code` (a row of "From your searches"); a key
    // decides the highlighted row, so without one given it is that row's, if it has one
    if (proposalId === undefined) {
      const li = current();
      proposalId = li && li.dataset.codeId === codeId ? li.dataset.proposalId : undefined;
    }
    const selected = takePart();
    const part = (decision === "confirmed" || decision === "added") && !proposalId ? selected : null;
    // moving on for sure (no code, next): the answer is the next card, one round trip
    const onward = !single && advance === true;
    const data = await call("POST", "/api/decide", { segment_id: id, code_id: codeId, decision: decision, seconds: seconds, proposal_id: proposalId || undefined, span: part || undefined, advance: onward ? 1 : undefined, skip: onward ? skipped.join(",") : undefined });
    say("Saved: " + decision + (codeId ? " " + codeId : ""));
    if (!onward && !single && advance === "auto" && !hasPending(data)) {
      await next();
    } else {
      show(data);
    }
  }
  function hasPending(data) {
    const box = document.createElement("template");
    box.innerHTML = data.html;
    return Array.from(box.content.querySelectorAll("li.suggestion")).some(function (li) { return !li.dataset.state; });
  }

  // -- accepting with part of the segment selected codes only that part (a span) -------------
  let lastPart = null;
  function codePoints(t) { let n = 0; for (const _ of t) n += 1; return n; }
  // the selected part of the segment as [start, end) in the document, null for none or all of
  // it, undefined when the selection is elsewhere (the picker or memo has focus)
  function selectedPart() {
    const box = document.querySelector("#segment-text .seg-text");
    const sel = window.getSelection();
    if (!box || !sel || !sel.rangeCount) return undefined;
    const r = sel.getRangeAt(0);
    if (!cardBox.contains(r.commonAncestorContainer)) return undefined;
    if (sel.isCollapsed || !r.intersectsNode(box)) return null;
    const whole = document.createRange();
    whole.selectNodeContents(box);
    const part = r.cloneRange();
    if (part.compareBoundaryPoints(Range.START_TO_START, whole) < 0) part.setStart(whole.startContainer, whole.startOffset);
    if (part.compareBoundaryPoints(Range.END_TO_END, whole) > 0) part.setEnd(whole.endContainer, whole.endOffset);
    const before = whole.cloneRange();
    before.setEnd(part.startContainer, part.startOffset);
    const start = Number(box.dataset.start) + codePoints(before.toString());
    const length = codePoints(part.toString());
    return length > 0 && length < codePoints(box.textContent) ? [start, start + length] : null;
  }
  document.addEventListener("selectionchange", function () {
    const p = selectedPart();
    if (p !== undefined) lastPart = p;
  });
  let heldPart = null;   // a button press may clear the selection before its click
  cardBox.addEventListener("mousedown", function (ev) { if (ev.target.closest("button")) heldPart = selectedPart() || lastPart; }, true);
  // read the selection as it is now (a key may come before the selectionchange event)
  function takePart() { const p = heldPart || selectedPart() || lastPart; lastPart = heldPart = null; return p; }

  async function undo() {
    const data = await call("POST", "/api/undo", {});
    if (data.nothing) { say(data.message); return; }
    const i = skipped.indexOf(data.segment_id);
    if (i >= 0) skipped.splice(i, 1);
    show(data);
    say("Undone.");
  }

  // -- pick another code: type-ahead over the codebook ----------------------------------------
  function openPicker() {
    if (segmentId() === null) return;
    picker.hidden = false;
    pickerInput.value = "";
    filterCodes();
    pickerInput.focus();
  }
  function closePicker() { picker.hidden = true; pickerInput.blur(); }
  const pick = window.CoderPicker(pickerInput, pickerList, {
    codes: function () { return codes; }, limit: 12, onChoose: function () { run(choose); } });
  const filterCodes = pick.filter;
  async function choose() {
    const code = pick.current();
    closePicker();
    if (!code) return;
    const suggested = rows().some(function (li) { return li.dataset.codeId === code.id; });
    await decide(code.id, suggested ? "confirmed" : "added", false, "");  // "": not a search row
  }
  pickerInput.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { ev.preventDefault(); closePicker(); }
    else if (ev.key === "ArrowDown") { ev.preventDefault(); pick.move(1); }
    else if (ev.key === "ArrowUp") { ev.preventDefault(); pick.move(-1); }
    else if (ev.key === "Enter") { ev.preventDefault(); run(choose); }
    ev.stopPropagation();
  });

  // -- memo -------------------------------------------------------------------------------------
  function openMemo() {
    if (segmentId() === null) return;
    memoBox.hidden = false;
    memoInput.value = "";
    memoInput.focus();
  }
  memoInput.addEventListener("keydown", function (ev) {
    ev.stopPropagation();
    if (ev.key === "Escape") { ev.preventDefault(); memoBox.hidden = true; memoInput.blur(); }
    else if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      const text = memoInput.value.trim();
      memoBox.hidden = true;
      memoInput.blur();
      if (text) run(async function () { show(await call("POST", "/api/memo", { segment_id: segmentId(), text: text })); say("Memo saved."); });
    }
  });

  // -- keys ---------------------------------------------------------------------------------------
  // Keys are queued, not dropped: each action runs after the previous one has been stored and
  // reads the card as it is then, so typing ahead (a a a) decides one segment after another.
  let chain = Promise.resolve();
  function run(fn) {
    chain = chain.then(fn).catch(function (err) { say("Not saved: " + err.message); });
    return chain;
  }
  function current() { return rows()[highlight]; }
  function skip() { const id = segmentId(); if (id !== null) skipped.push(id); return next(); }
  const actions = {
    "a": function () { const li = current(); if (li) return decide(li.dataset.codeId, "confirmed", "auto"); say("No suggestion to accept: press o to pick a code."); },
    "r": function () { const li = current(); if (li) return decide(li.dataset.codeId, "rejected", "auto"); say("No suggestion to reject."); },
    "n": function () { return decide(null, "no_code", true); },
    "s": skip,
    "Enter": skip,
    "u": undo,
    "j": function () { highlight += 1; paint(); },
    "ArrowDown": function () { highlight += 1; paint(); },
    "k": function () { highlight = Math.max(0, highlight - 1); paint(); },
    "ArrowUp": function () { highlight = Math.max(0, highlight - 1); paint(); },
  };

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.target.closest && ev.target.closest("input, textarea, select, button, a")) return;
    const key = ev.key;
    if (key === "o") { ev.preventDefault(); openPicker(); return; }
    if (key === "m") { ev.preventDefault(); openMemo(); return; }
    if (!actions[key]) return;
    ev.preventDefault();
    run(actions[key]);
  });

  cardBox.addEventListener("click", function (ev) {
    const btn = ev.target.closest("button[data-action]");
    if (!btn) return;
    const decision = btn.dataset.action === "accept" ? "confirmed" : "rejected";
    run(function () { return decide(btn.dataset.codeId, decision, "auto", btn.dataset.proposalId || ""); });
  });

  paint();
})();
