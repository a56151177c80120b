"""Coding any span in the web page: the transcript view's highlights and stripes, the span API
(code, remove, re-code, memo, undo) over a real study file, and the same in Debian's chromium
driven by Playwright (select with the mouse or the keyboard, pick a code, reload, it is there)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from starlette.testclient import TestClient
from test_web_browser import browser, server, sign_in  # noqa: F401  (fixtures)

from coder import review
from coder.study import Study
from coder.web import transcript
from coder.web.app import create_app

sys.path.insert(0, str(Path(__file__).parent))
from web_helpers import DATA, XSS_TEXT, make_study, running  # noqa: E402

BASE = "http://127.0.0.1:8765"
SCRIPT = "<script>window.__pwned = 1</script>"


@pytest.fixture
def study_file(tmp_path) -> Path:
    return make_study(tmp_path / "s", turns=4)


def client(path: Path, coder: str | None = "alice", blind: bool = False) -> TestClient:
    c = TestClient(create_app(path), base_url=BASE)
    if coder:
        c.cookies.set("coder_name", coder)
    if blind:
        c.cookies.set("coder_blind", "1")
    return c


def csrf_of(c: TestClient) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', c.get("/start").text).group(1)


def post(c: TestClient, url: str, body: dict, token: str | None = ""):
    headers = {} if token is None else {"X-CSRF-Token": token or csrf_of(c)}
    return c.post(url, json=body, headers=headers)


def turn(path: Path, document: str, position: int) -> dict:
    """A segment with its document offsets and the document's text."""
    with Study(path) as s:
        row = s.db.one("SELECT s.id, s.start_char, s.end_char, s.text, d.text AS doc FROM "
                       "segments s JOIN documents d ON d.id=s.document_id WHERE d.name=? AND "
                       "s.position=?", (document, position))
        return dict(row)


def phrase(path: Path, document: str, position: int, words: str) -> tuple[int, int]:
    """Document offsets [start, end) of ``words`` inside one segment."""
    seg = turn(path, document, position)
    at = seg["text"].index(words)
    return seg["start_char"] + at, seg["start_char"] + at + len(words)


def spans_of(path: Path, coder: str) -> list[dict]:
    with Study(path) as s:
        return [dict(r) for r in s.db.query(
            "SELECT x.coding_id, x.segment_id, x.code_id, x.decision, x.start_char, x.end_char,"
            " x.whole, k.source, k.memo, k.context_id, k.model_version, k.suggestion_score, "
            "substr(d.text, x.start_char + 1, x.end_char - x.start_char) AS text FROM "
            "coding_spans x JOIN codings k ON k.id=x.coding_id JOIN coders c ON "
            "c.id=x.coder_id JOIN documents d ON d.id=x.document_id WHERE c.name=? ORDER BY "
            "x.start_char", (coder,))]


def page_data(html: str) -> dict:
    """The page's data for transcript.js: the codes, recent codes and the layout (marks)."""
    data = json.loads(re.search(r'<script type="application/json" id="transcript-data">(.*?)'
                                r'</script>', html, re.S).group(1))
    return {**data, "marks": data["layout"]["marks"]}


# -- the API -------------------------------------------------------------------------------------
def test_code_a_span_inside_a_turn(study_file):
    c = client(study_file)
    start, end = phrase(study_file, "p10", 2, "already saturated")
    r = post(c, "/api/spans", {"document": "p10", "start": start, "end": end,
                               "code_id": "trig-domestic"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["start"], out["end"], out["text"]) == (start, end, "already saturated")
    [row] = spans_of(study_file, "alice")
    assert (row["start_char"], row["end_char"], row["text"]) == (start, end, "already saturated")
    assert (row["decision"], row["source"], row["whole"]) == ("added", "web", 0)
    with Study(study_file) as s:  # what the coder saw is recorded, from the web page
        ctx = s.db.one("SELECT * FROM decision_contexts WHERE id=?", (row["context_id"],))
    assert ctx["face"] == "web" and ctx["blind"] == 0 and ctx["model_version"] is None
    # the transcript shows it: a highlight of exactly those characters and a stripe
    html = c.get("/transcripts/p10").text
    assert re.search(r'data-start="%d" data-end="%d" data-kind="text" data-codings="%d">'
                     r'<span class="hl lane0 k\d+" data-coding="%d">already saturated</span>'
                     % (start, end, row["coding_id"], row["coding_id"]), html)
    assert 'class="stripe lane0 k' in html and "Domestic conditions</span>" in html
    mark = page_data(html)["marks"][str(row["coding_id"])]
    assert mark["mine"] and mark["text"] == "already saturated" and not mark["whole"]


def test_a_selection_across_two_turns_and_its_labels(study_file):
    c = client(study_file)
    a = turn(study_file, "p10", 2)
    b = turn(study_file, "p10", 4)
    start = a["start_char"] + a["text"].index("saturated")
    end = b["start_char"] + b["text"].index(" took us")
    r = post(c, "/api/spans", {"document": "p10", "start": start, "end": end,
                               "code_id": "net-institutions"})
    assert r.status_code == 200, r.text
    [row] = spans_of(study_file, "alice")
    assert row["text"] == a["doc"][start:end] and row["text"].endswith("The trade agency")
    assert "INTERVIEWER" in row["text"] and row["segment_id"] == a["id"]
    assert r.json()["segments"] == [a["id"], a["id"] + 1, b["id"]]
    html = c.get("/transcripts/p10").text  # highlighted in each of the three turns
    assert len(re.findall(r'data-codings="%d"' % row["coding_id"], html)) == 3
    assert html.count('class="stripe lane0') == 3


def test_a_page_selection_is_trimmed_to_segment_text(study_file):
    c = client(study_file)
    a, b = turn(study_file, "p10", 2), turn(study_file, "p10", 3)
    # from the speaker label before turn 2 to the label before turn 3, with a trailing space
    r = post(c, "/api/spans", {"document": "p10", "start": a["start_char"] - 5,
                               "end": b["start_char"] - 3, "code_id": "trig-domestic",
                               "snap": True})
    assert r.status_code == 200, r.text
    [row] = spans_of(study_file, "alice")
    assert (row["start_char"], row["end_char"], row["whole"]) == (a["start_char"], a["end_char"],
                                                                   1)
    r = post(c, "/api/spans", {"document": "p10", "start": a["start_char"] + 3,
                               "end": a["start_char"] + 15, "code_id": "bar-finance",
                               "snap": True})
    assert r.json()["text"] == a["text"][3:15].strip() == "home market"


@pytest.mark.parametrize("body, status, message", [
    ({"start": 0, "end": 5}, 400, "lies outside every segment"),
    ({"start": 40, "end": 99999}, 400, "is not inside document 'p10'"),
    ({"start": 60, "end": 50}, 400, "is not inside document 'p10'"),
    ({"start": "x", "end": 5}, 400, "whole-number offsets"),
    ({"start": 60, "end": 70, "code_id": "no-such-code"}, 400, "no-such-code"),
    ({"start": 60, "end": 70, "document": "nobody"}, 400, "unknown document 'nobody'"),
])
def test_a_bad_span_is_refused_with_the_librarys_message(study_file, body, status, message):
    c = client(study_file)
    body = {"document": "p10", "code_id": "trig-domestic", **body}
    r = post(c, "/api/spans", body)
    assert r.status_code == status and message in r.json()["error"], r.text
    assert spans_of(study_file, "alice") == []


def test_a_selection_of_a_speaker_label_only_is_refused_even_when_snapped(study_file):
    c = client(study_file)
    a = turn(study_file, "p10", 2)
    label = a["doc"].rindex("DR AMINAH", 0, a["start_char"])
    r = post(c, "/api/spans", {"document": "p10", "start": label, "end": label + 9,
                               "code_id": "trig-domestic", "snap": True})
    assert r.status_code == 400 and "outside every segment" in r.json()["error"]


def test_remove_recode_memo_and_undo(study_file):
    c = client(study_file)
    token = csrf_of(c)
    start, end = phrase(study_file, "p10", 4, "exhibition in Dubai")
    cid = post(c, "/api/spans", {"document": "p10", "start": start, "end": end,
                                 "code_id": "net-institutions"}, token).json()["coding_id"]
    r = post(c, f"/api/spans/{cid}/memo", {"text": "a <b>trade fair</b>"}, token)
    assert r.status_code == 200 and spans_of(study_file, "alice")[0]["memo"] == "a <b>trade fair</b>"
    assert "a <b>trade fair</b>" not in c.get("/transcripts/p10").text  # escaped in the data
    r = post(c, f"/api/spans/{cid}/recode", {"code_id": "net-personal"}, token)
    assert r.status_code == 200, r.text
    [row] = spans_of(study_file, "alice")
    assert (row["code_id"], row["start_char"], row["end_char"]) == ("net-personal", start, end)
    assert row["memo"] == "a <b>trade fair</b>"
    r = post(c, f"/api/spans/{row['coding_id']}/remove", {}, token)
    assert r.status_code == 200 and spans_of(study_file, "alice") == []
    # undo, as for a segment decision: the removal, then the re-code, then the memo
    assert post(c, "/api/undo", {}, token).status_code == 200
    assert [x["code_id"] for x in spans_of(study_file, "alice")] == ["net-personal"]
    post(c, "/api/undo", {}, token)
    assert [x["code_id"] for x in spans_of(study_file, "alice")] == ["net-institutions"]
    post(c, "/api/undo", {}, token)
    assert spans_of(study_file, "alice")[0]["memo"] is None
    post(c, "/api/undo", {}, token)
    assert spans_of(study_file, "alice") == []
    assert post(c, "/api/undo", {}, token).json()["nothing"] is True
    assert post(c, f"/api/spans/{cid}/tickle", {}, token).status_code == 404


def test_someone_elses_coding_cannot_be_changed(study_file):
    alice, bob = client(study_file), client(study_file, "bob")
    start, end = phrase(study_file, "p10", 2, "home market")
    cid = post(alice, "/api/spans", {"document": "p10", "start": start, "end": end,
                                     "code_id": "trig-domestic"}).json()["coding_id"]
    token = csrf_of(bob)
    for action, body in (("remove", {}), ("recode", {"code_id": "bar-finance"}),
                         ("memo", {"text": "mine now"})):
        r = post(bob, f"/api/spans/{cid}/{action}", body, token)
        assert r.status_code == 403 and "another coder's" in r.json()["error"], action
    [row] = spans_of(study_file, "alice")
    assert (row["coding_id"], row["code_id"], row["memo"]) == (cid, "trig-domestic", None)
    assert post(bob, "/api/undo", {}, token).json()["nothing"] is True  # not bob's to undo
    # on bob's page alice's coding shows, not as his; in blind mode not at all
    mark = page_data(bob.get("/transcripts/p10").text)["marks"][str(cid)]
    assert mark["coder"] == "alice" and not mark["mine"]
    blind = client(study_file, "bob", blind=True)
    html = blind.get("/transcripts/p10").text
    assert page_data(html)["marks"] == {} and "data-codings" not in html
    assert blind.get("/api/spans?document=p10").json()["codings"] == []
    assert len(bob.get("/api/spans?document=p10").json()["codings"]) == 1


def test_span_writes_need_the_csrf_token(study_file):
    c = client(study_file)
    start, end = phrase(study_file, "p10", 2, "home market")
    body = {"document": "p10", "start": start, "end": end, "code_id": "trig-domestic"}
    for token in (None, "0" * 64):
        r = post(c, "/api/spans", body, token)
        assert r.status_code == 403 and "CSRF" in r.json()["error"]
    assert spans_of(study_file, "alice") == []
    cid = post(c, "/api/spans", body).json()["coding_id"]
    for action in ("remove", "recode", "memo"):
        assert post(c, f"/api/spans/{cid}/{action}", {"code_id": "bar-finance"},
                    None).status_code == 403
    assert c.get(f"/api/spans/{cid}/remove").status_code == 405
    assert len(spans_of(study_file, "alice")) == 1


def test_what_the_coder_saw_names_the_other_coders_on_screen(study_file):
    alice, bob = client(study_file), client(study_file, "bob")
    start, end = phrase(study_file, "p10", 2, "home market")
    post(bob, "/api/spans", {"document": "p10", "start": start, "end": end,
                             "code_id": "trig-domestic"})
    s2, e2 = phrase(study_file, "p10", 2, "already saturated")
    post(alice, "/api/spans", {"document": "p10", "start": s2, "end": e2,
                               "code_id": "trig-domestic"})
    blind = client(study_file, "carol", blind=True)
    post(blind, "/api/spans", {"document": "p10", "start": s2, "end": e2,
                               "code_id": "trig-domestic"})
    with Study(study_file) as s:
        seen = {r["name"]: r for r in s.db.query(
            "SELECT c.name, x.* FROM codings k JOIN coders c ON c.id=k.coder_id JOIN "
            "decision_contexts x ON x.id=k.context_id")}
    assert json.loads(seen["alice"]["others"]) == ["bob"] and seen["alice"]["others_shown"]
    assert json.loads(seen["carol"]["others"]) == [] and seen["carol"]["blind"] == 1
    assert {r["face"] for r in seen.values()} == {"web"}


def test_overlapping_and_whole_segment_codings_are_stacked(study_file):
    c = client(study_file)
    seg = turn(study_file, "p10", 2)
    outer = phrase(study_file, "p10", 2, "home market is small")
    inner = phrase(study_file, "p10", 2, "market is small and already")
    ids = [post(c, "/api/spans", {"document": "p10", "start": a, "end": b, "code_id": code})
           .json()["coding_id"] for (a, b), code in ((outer, "trig-domestic"),
                                                     (inner, "bar-finance"))]
    with Study(study_file) as s:  # a decision on the whole segment is a highlight too
        review.decide(s, "alice", seg["id"], "net-personal", "added")
    html = c.get("/transcripts/p10").text
    data = page_data(html)["marks"]
    whole = next(m for m in data.values() if m["whole"])
    assert (whole["start"], whole["end"]) == (seg["start_char"], seg["end_char"])
    lanes = {m["id"]: m["lane"] for m in data.values()}
    assert len(set(lanes.values())) == 3   # three overlapping codings, three underline depths
    # "market is small" lies under all three; "home " under two; " and already" under two
    overlap = re.search(r'data-codings="([\d ]+)">((?:<span [^>]+>)+)market is small<', html)
    assert overlap and sorted(map(int, overlap.group(1).split())) == sorted(ids + [whole["id"]])
    assert overlap.group(2).count('class="hl') == 3
    pieces = re.findall(r'<span class="piece" data-start="(\d+)" data-end="(\d+)"', html)
    cut = [(int(a), int(b)) for a, b in pieces if seg["start_char"] <= int(a) < seg["end_char"]]
    assert cut[0][0] == seg["start_char"] and cut[-1][1] == seg["end_char"]
    assert all(x[1] == y[0] for x, y in zip(cut, cut[1:]))  # pieces tile the segment
    assert {outer[0], outer[1], inner[0], inner[1]} <= {b for _, b in cut} | {a for a, _ in cut}


def test_script_in_a_highlight_stays_escaped(study_file):
    c = client(study_file)
    start, end = phrase(study_file, "p99", 2, SCRIPT)
    r = post(c, "/api/spans", {"document": "p99", "start": start, "end": end,
                               "code_id": "bar-finance", "memo": "</script><b>x</b>"})
    assert r.status_code == 200 and r.json()["text"] == SCRIPT
    page = c.get("/transcripts/p99")
    html = page.text
    assert SCRIPT not in html and "<img src=x" not in html and "<b>x</b>" not in html
    assert ('<span class="hl lane0 k7" data-coding="%d">&lt;script&gt;window.__pwned = 1'
            '&lt;/script&gt;</span>' % r.json()["coding_id"]) in html
    assert page_data(html)["marks"][str(r.json()["coding_id"])]["text"] == SCRIPT
    assert "script-src 'self'" in page.headers["content-security-policy"]
    scripts = re.findall(r"<script([^>]*)>", html)
    assert all('src="/static/' in a or 'type="application/json"' in a for a in scripts)
    assert c.get("/codes.css").headers["content-type"].startswith("text/css")


def test_segment_memos_show_in_the_transcript_escaped_and_blind_aware(study_file):
    seg = turn(study_file, "p99", 2)
    with Study(study_file) as s:
        review.memo(s, "alice", seg["id"], "alice thinks <b>this</b> matters")
        review.memo(s, "bob", seg["id"], "bob's note")
    html = client(study_file).get("/transcripts/p99").text
    assert ('<ul class="memos"><li><span class="coder">alice</span> <em class="memo">alice '
            'thinks &lt;b&gt;this&lt;/b&gt; matters</em></li><li><span class="coder">bob</span> '
            '<em class="memo">bob&#39;s note</em></li></ul>') in html
    # and in the layout transcript.js redraws from, so a change does not drop them
    memos = [x["memos"] for x in page_data(html)["layout"]["segments"] if x["id"] == seg["id"]]
    assert memos == [[{"coder": "alice", "text": "alice thinks <b>this</b> matters"},
                      {"coder": "bob", "text": "bob's note"}]]
    blind = client(study_file, blind=True).get("/transcripts/p99").text
    assert "alice thinks" in blind and "bob&#39;s note" not in blind


def test_colours_come_from_the_codebook_or_the_palette():
    book = SimpleNamespace(codes=[SimpleNamespace(id="a", color="#12ab34"),
                                  SimpleNamespace(id="b", color="red; } body { x: y"),
                                  SimpleNamespace(id="c"), SimpleNamespace(id="d", color="teal")])
    got = transcript.colours(book)
    assert got == {"a": (0, "#12ab34"), "b": (1, transcript.PALETTE[1]),
                   "c": (2, transcript.PALETTE[2]), "d": (3, "teal")}
    css = transcript.stylesheet(book)
    assert ".k0 { --k: #12ab34; }" in css and "body" not in css


def test_accepting_a_suggestion_can_narrow_it_to_the_selection(study_file):
    c = client(study_file)
    seg = turn(study_file, "p10", 2)
    with Study(study_file) as s:
        sug = s.db.one("SELECT code_id, score, model_version FROM suggestions WHERE "
                       "segment_id=?", (seg["id"],))
    start, end = phrase(study_file, "p10", 2, "home market")
    r = post(c, "/api/decide", {"segment_id": seg["id"], "code_id": sug["code_id"],
                                "decision": "confirmed", "span": [start, end + 1]})  # + a space
    assert r.status_code == 200, r.text
    [row] = spans_of(study_file, "alice")
    assert (row["start_char"], row["end_char"], row["text"]) == (start, end, "home market")
    assert (row["code_id"], row["decision"], row["source"]) == (sug["code_id"], "confirmed", "web")
    assert row["suggestion_score"] == sug["score"] and row["context_id"] is not None
    assert 'data-state="confirmed"' in r.json()["html"] and "part of the segment" in r.json()["html"]
    # the rest of the segment's queue card is decided: it left alice's queue
    with Study(study_file) as s:
        assert seg["id"] not in [x.segment_id for x in review.queue(s, "alice")]
    r = post(c, "/api/decide", {"segment_id": seg["id"], "code_id": sug["code_id"],
                                "decision": "rejected", "span": [start, end]})
    assert r.status_code == 400 and "narrowed" in r.json()["error"]
    r = post(c, "/api/decide", {"segment_id": seg["id"], "code_id": sug["code_id"],
                                "decision": "confirmed", "span": [0, 3]})
    assert r.status_code == 400 and "not inside this segment" in r.json()["error"]


# -- in chromium -------------------------------------------------------------------------------
SELECT_JS = """([start, end, how]) => {
  // a Range over document offsets [start, end) through the pieces' data-start, then the
  // mouse-up the page listens for (a real drag is in test_select_a_phrase_with_the_mouse)
  function point(pos, isEnd) {
    for (const p of document.querySelectorAll('#transcript .piece')) {
      const a = +p.dataset.start, b = +p.dataset.end;
      if (pos >= a && (pos < b || (isEnd && pos === b))) {
        let left = pos - a;
        const w = document.createTreeWalker(p, NodeFilter.SHOW_TEXT);
        let n;
        while ((n = w.nextNode())) { if (left <= n.length) return [n, left]; left -= n.length; }
      }
    }
    throw new Error('no piece holds ' + pos);
  }
  const [sn, so] = point(start, false), [en, eo] = point(end, true);
  const r = document.createRange(); r.setStart(sn, so); r.setEnd(en, eo);
  const sel = getSelection(); sel.removeAllRanges(); sel.addRange(r);
  sn.parentElement.dispatchEvent(new MouseEvent('mouseup', {bubbles: true, button: 0}));
}"""


def open_transcript(page, url: str, name: str):
    page.goto(f"{url}/transcripts/{name}")
    page.wait_for_selector("#transcript")


def changed(page, action) -> None:
    """Do ``action`` and wait until the page has redrawn its highlights after the change."""
    before = page.get_attribute("#transcript", "data-version") or "0"
    action()
    page.wait_for_function("v => (document.getElementById('transcript').dataset.version"
                           " || '0') !== v", arg=before)


def pick(page, words: str, label: str):
    """Type into the code picker and choose; wait for the page to redraw (no reload)."""
    page.wait_for_selector("#span-picker-input:focus")
    page.keyboard.type(words)
    page.wait_for_selector(f"#span-picker-list li.highlight >> text={label}")
    changed(page, lambda: page.keyboard.press("Enter"))
    assert page.inner_text("#flash").startswith("Coded " )


def drawing(page) -> list:
    """The highlights and stripes as drawn now: the markup of every segment's text, and each
    stripe's classes and title (to compare transcript.js's redraw with the server's page)."""
    return page.evaluate("""() => [...document.querySelectorAll('#transcript li.seg')].map(li =>
        [li.querySelector('.text').innerHTML, [...li.querySelectorAll('.stripe')].map(b =>
         [b.className, b.title, b.dataset.coding, b.textContent.trim()]),
         li.querySelector('.tail').textContent.replace(/\\s+/g, ' ').trim()])""")


def highlighted(page, coding_id: int) -> str:
    """The text of every highlight piece of one coding, in reading order."""
    return page.evaluate("id => [...document.querySelectorAll(`.hl[data-coding='${id}']`)]"
                         ".map(e => e.textContent).join('|')", coding_id)


@pytest.mark.browser
def test_select_a_phrase_with_the_mouse_code_it_and_reload(browser, server):  # noqa: F811
    url, path = server
    context, page = sign_in(browser, url, "alice")
    open_transcript(page, url, "p10")
    seg = turn(path, "p10", 4)
    words = "exhibition in Dubai"
    at = seg["text"].index(words)
    box = page.evaluate("""([sid, a, b]) => {
        const p = document.querySelector(`#seg-${sid} .piece`);
        const n = p.firstChild, r = document.createRange();
        r.setStart(n, a); r.setEnd(n, a + 1); const s = r.getBoundingClientRect();
        r.setStart(n, b - 1); r.setEnd(n, b); const e = r.getBoundingClientRect();
        return [s.left + 1, (s.top + s.bottom) / 2, e.right - 1, (e.top + e.bottom) / 2];
    }""", [seg["id"], at, at + len(words)])
    page.mouse.move(box[0], box[1])
    page.mouse.down()
    page.mouse.move((box[0] + box[2]) / 2, box[1], steps=4)
    page.mouse.move(box[2], box[3], steps=4)
    page.mouse.up()
    assert page.inner_text("#span-picked") == f"Code “{words}”"
    pick(page, "instit", "non-government")
    [row] = spans_of(path, "alice")
    assert row["text"] == words and row["code_id"] == "net-institutions"
    assert (row["start_char"], row["end_char"]) == (seg["start_char"] + at,
                                                    seg["start_char"] + at + len(words))
    page.reload()
    assert highlighted(page, row["coding_id"]) == words
    assert "non-government" in page.inner_text(f"#seg-{seg['id']} .stripes")
    # the picker offers that code first next time (recent codes first)
    s2 = phrase(path, "p10", 6, "grant forms")
    page.evaluate(SELECT_JS, [*s2, "range"])
    page.wait_for_selector("#span-picker-input:focus")
    assert page.get_attribute("#span-picker-list li.highlight", "data-code-id") == \
        "net-institutions"
    context.close()


@pytest.mark.browser
def test_a_span_across_two_turns_and_overlapping_spans(browser, server):  # noqa: F811
    url, path = server
    context, page = sign_in(browser, url, "alice")
    open_transcript(page, url, "p10")
    a, b = turn(path, "p10", 2), turn(path, "p10", 4)
    start = a["start_char"] + a["text"].index("already saturated")
    end = b["start_char"] + b["text"].index(" took us")
    page.evaluate(SELECT_JS, [start, end, "range"])
    pick(page, "domestic", "Domestic conditions")
    s2 = phrase(path, "p10", 2, "small and already")
    page.evaluate(SELECT_JS, [*s2, "range"])
    pick(page, "financ", "Financial constraints")
    first, second = spans_of(path, "alice")
    assert (second["start_char"], second["end_char"]) == (start, end)
    assert second["text"] == a["doc"][start:end] and first["text"] == "small and already"
    assert highlighted(page, second["coding_id"]) == "|".join(
        ["already", " saturated, so we had to look abroad. (turn 1)",
         "Question 2: tell me more?", "The trade agency"])
    assert highlighted(page, first["coding_id"]) == "small and |already"
    both = page.locator(".hl[data-coding='%d'] .hl[data-coding='%d'], "
                        ".hl[data-coding='%d'] .hl[data-coding='%d']"
                        % (first["coding_id"], second["coding_id"], second["coding_id"],
                           first["coding_id"]))
    assert both.all_inner_texts() == ["already"]
    # two lanes: the two underlines are drawn at different depths
    pads = page.evaluate("ids => ids.map(id => getComputedStyle(document.querySelector("
                         "`.hl[data-coding='${id}']`)).paddingBottom)",
                         [first["coding_id"], second["coding_id"]])
    assert pads[0] != pads[1]
    assert page.locator(f"#seg-{a['id']} .stripe").count() == 2
    assert page.locator(f"#seg-{b['id']} .stripe").count() == 1
    drawn = drawing(page)   # redrawn in place; the server's page after a reload is the same
    page.reload()
    assert drawing(page) == drawn
    context.close()


@pytest.mark.browser
def test_script_text_in_a_highlight_renders_as_text(browser, server):  # noqa: F811
    url, path = server
    context, page = sign_in(browser, url, "alice")
    open_transcript(page, url, "p99")
    page.evaluate(SELECT_JS, [*phrase(path, "p99", 2, SCRIPT), "range"])
    pick(page, "financ", "Financial constraints")
    [row] = spans_of(path, "alice")
    assert row["text"] == SCRIPT and highlighted(page, row["coding_id"]) == SCRIPT
    assert XSS_TEXT in page.inner_text("#transcript")
    assert page.evaluate("() => window.__pwned === undefined")
    assert page.locator("#transcript img, #transcript script").count() == 0
    page.click(f".hl[data-coding='{row['coding_id']}']")  # its panel shows it as text too
    page.wait_for_selector("#span-panel:not([hidden])")
    assert SCRIPT in page.inner_text("#span-panel .quote")
    assert page.evaluate("() => window.__pwned === undefined")
    context.close()


@pytest.mark.browser
def test_click_a_highlight_memo_remove_and_undo(browser, server):  # noqa: F811
    url, path = server
    context, page = sign_in(browser, url, "alice")
    open_transcript(page, url, "p10")
    page.evaluate(SELECT_JS, [*phrase(path, "p10", 2, "home market"), "range"])
    pick(page, "domestic", "Domestic conditions")
    [row] = spans_of(path, "alice")
    page.click(f".hl[data-coding='{row['coding_id']}']")
    page.wait_for_selector("#span-panel:not([hidden])")
    text = page.inner_text("#span-panel")
    assert "Domestic conditions" in text and "alice" in text and "home market" in text
    page.fill("#span-panel textarea", "small home market")
    changed(page, lambda: page.keyboard.press("Enter"))
    assert page.inner_text("#flash").startswith("Memo saved.")
    assert spans_of(path, "alice")[0]["memo"] == "small home market"
    page.click(f".stripe[data-coding='{row['coding_id']}']")  # the stripe opens it too
    assert "small home market" in page.inner_text("#span-panel")
    changed(page, lambda: page.click("#span-panel button[data-action='remove']"))
    assert page.inner_text("#flash").startswith("Removed.")
    assert spans_of(path, "alice") == [] and page.locator(".hl, .stripe").count() == 0
    changed(page, lambda: page.keyboard.press("u"))
    assert page.inner_text("#flash").startswith("Undone.")
    assert highlighted(page, row["coding_id"]) == "home market"
    assert spans_of(path, "alice")[0]["memo"] == "small home market"
    page.reload()  # and the page the server draws says the same
    assert highlighted(page, row["coding_id"]) == "home market"
    context.close()


@pytest.mark.browser
def test_select_with_the_keyboard(browser, server):  # noqa: F811
    url, path = server
    context, page = sign_in(browser, url, "alice")
    open_transcript(page, url, "p10")
    page.focus("#transcript")
    seg = turn(path, "p10", 1)   # the caret starts at the first turn on screen
    for _ in range(len("Question 1: ")):
        page.keyboard.press("ArrowRight")
    for _ in range(len("tell me")):
        page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Enter")
    pick(page, "personal", "Personal relations")
    [row] = spans_of(path, "alice")
    assert row["segment_id"] == seg["id"] and row["text"] == "tell me"
    assert row["start_char"] == seg["start_char"] + len("Question 1: ")
    context.close()


@pytest.mark.browser
def test_accept_a_suggestion_for_the_selected_part(browser, server):  # noqa: F811
    url, path = server
    context, page = sign_in(browser, url, "alice")
    seg = turn(path, "p10", 4)
    page.goto(f"{url}/review?segment={seg['id']}")
    page.wait_for_selector("#segment-card")
    select_words = """words => {
        const n = document.querySelector('#segment-text .seg-text').firstChild;
        const at = n.data.indexOf(words), r = document.createRange();
        r.setStart(n, at); r.setEnd(n, at + words.length);
        getSelection().removeAllRanges(); getSelection().addRange(r);
    }"""
    page.evaluate(select_words, "trade agency")
    page.keyboard.press("a")
    page.wait_for_selector("#mine >> text=part of the segment")
    [row] = spans_of(path, "alice")
    assert (row["text"], row["decision"], row["whole"]) == ("trade agency", "confirmed", 0)
    # the same with the mouse: select, then the accept button
    seg = turn(path, "p10", 6)
    page.goto(f"{url}/review?segment={seg['id']}")
    page.wait_for_selector("#segment-card")
    page.evaluate(select_words, "grant forms")
    page.click("#suggestions button[data-action='accept']")
    page.wait_for_selector("#mine >> text=part of the segment")
    assert [r["text"] for r in spans_of(path, "alice")] == ["trade agency", "grant forms"]
    # and with nothing selected, accepting takes the whole segment, as before
    seg = turn(path, "p10", 8)
    page.goto(f"{url}/review?segment={seg['id']}")
    page.wait_for_selector("#segment-card")
    page.click("#suggestions button[data-action='accept']")
    page.wait_for_selector("#mine li.decision-confirmed")
    assert spans_of(path, "alice")[-1]["whole"] == 1
    context.close()


@pytest.mark.browser
def test_offsets_count_code_points_past_an_emoji(browser, tmp_path):  # noqa: F811
    """The page counts UTF-16 units, the study code points: a phrase after an emoji (two units,
    one code point) is stored exactly, and redrawn in the right place."""
    folder = tmp_path / "emoji"
    folder.mkdir()
    (folder / "e1.txt").write_text("INTERVIEWER: Café? 😀 Tell me.\nMS ZOË: Ça va 😀😀 — the "
                                   "export fair in Lyon was the turning point.\n",
                                   encoding="utf-8")
    path = folder / "study.db"
    with Study.create(path, codebook=DATA / "small_codebook.yaml") as s:
        s.import_transcripts([folder / "e1.txt"])
    with running(create_app(path)) as url:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(10_000)
        context.add_cookies([{"name": "coder_name", "value": "alice", "url": url}])
        open_transcript(page, url, "e1")
        seg = turn(path, "e1", 2)
        words = "export fair in Lyon"
        before = seg["text"][:seg["text"].index(words)]
        units = len(before.encode("utf-16-le")) // 2      # where the browser's offsets say
        assert units == len(before) + 2
        page.evaluate("""([sid, a, n]) => {
            const t = document.querySelector(`#seg-${sid} .piece`).firstChild;
            const r = document.createRange(); r.setStart(t, a); r.setEnd(t, a + n);
            getSelection().removeAllRanges(); getSelection().addRange(r);
            t.parentElement.dispatchEvent(new MouseEvent('mouseup', {bubbles: true, button: 0}));
        }""", [seg["id"], units, len(words)])
        pick(page, "instit", "non-government")
        [row] = spans_of(path, "alice")
        assert row["text"] == words
        assert row["start_char"] == seg["start_char"] + len(before)
        assert highlighted(page, row["coding_id"]) == words     # redrawn in place
        page.reload()
        assert highlighted(page, row["coding_id"]) == words
        context.close()
