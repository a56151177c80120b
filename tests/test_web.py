"""The web page (`coder serve`) over a real study file: escaping, CSRF and host checks,
and decisions stored through coder.review (the same code as `coder review`)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from coder import review
from coder.cli import cli
from coder.study import Study
from coder.web.app import create_app

sys.path.insert(0, str(Path(__file__).parent))
from web_helpers import XSS_TEXT, make_study  # noqa: E402

BASE = "http://127.0.0.1:8765"


@pytest.fixture
def study_file(tmp_path) -> Path:
    return make_study(tmp_path / "s")


def client(path: Path, coder: str | None = "alice", **kwargs) -> TestClient:
    c = TestClient(create_app(path, **kwargs), base_url=BASE)
    if coder:
        c.cookies.set("coder_name", coder)
    return c


def csrf_of(c: TestClient) -> str:
    page = c.get("/start").text
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def card_segment(html: str) -> int:
    return int(re.search(r'id="segment-card" data-segment-id="(\d+)"', html).group(1))


def codings(path: Path, coder: str):
    with Study(path) as s:
        return s.codings(coder=coder)


def xss_segment(path: Path) -> int:
    with Study(path) as s:
        segs = s.segments(documents=["p99"], include_interviewer=False)
        return int(segs["segment_id"].iloc[0])


# -- start, coder, pages -------------------------------------------------------------------------
def test_start_asks_for_a_coder_and_remembers_it(study_file):
    c = client(study_file, coder=None)
    r = c.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/start"
    assert c.get("/review", follow_redirects=False).headers["location"] == "/start"
    token = csrf_of(c)
    r = c.post("/start", data={"name": "alice", "csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/review"
    assert "coder_name=alice" in r.headers["set-cookie"]
    assert "SameSite=strict" in r.headers["set-cookie"]
    page = c.get("/review")
    assert page.status_code == 200 and 'id="coder-name">alice<' in page.text


def test_bad_coder_name_is_refused(study_file):
    c = client(study_file, coder=None)
    r = c.post("/start", data={"name": "  ", "csrf": csrf_of(c)})
    assert r.status_code == 400
    assert "a coder name is required" in r.json()["error"]


def test_default_coder_from_the_command_line(study_file):
    c = TestClient(create_app(study_file, coder="carol"), base_url=BASE)
    assert 'id="coder-name">carol<' in c.get("/review").text


def test_every_page_renders(study_file):
    c = client(study_file)
    for url in ("/review", "/review?blind=1", "/review?order=document", "/transcripts",
                "/transcripts/p10", "/transcripts/p10?coder=alice&code=trig", "/codebook",
                "/analysis"):
        r = c.get(url)
        assert r.status_code == 200, url
        assert "script-src 'self'" in r.headers["content-security-policy"]
    assert c.get("/static/app.js").status_code == 200
    assert c.get("/static/style.css").status_code == 200


def test_review_shows_the_same_queue_as_coder_review(study_file):
    c = client(study_file)
    for order in ("uncertain", "document", "score", "random"):
        with Study(study_file) as s:
            expected = review.queue(s, "alice", order=order)[0]
        page = c.get(f"/review?order={order}").text
        assert card_segment(page) == expected.segment_id, order
        assert expected.text.replace('"', "&#34;") in page
        for sug in expected.suggestions:
            assert f'data-code-id="{sug.code_id}"' in page
    assert c.get("/review?order=sideways").status_code == 400


# -- escaping --------------------------------------------------------------------------------------
def test_transcript_text_is_escaped_everywhere(study_file):
    c = client(study_file)
    sid = xss_segment(study_file)
    pages = [c.get("/transcripts/p99").text, c.get(f"/review?segment={sid}").text,
             c.get(f"/api/segment/{sid}").json()["html"]]
    for page in pages:
        assert "<script>window" not in page
        assert "<img src=x" not in page
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
        assert "&#34;&gt;&lt;img src=x onerror=" in page


def test_memos_code_names_and_coder_names_are_escaped(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    book = folder / "book.yaml"
    book.write_text('name: "<b>Book</b>"\ncodes:\n  - id: evil\n    name: "<img src=x onerror=alert(1)>"\n'
                    '    description: "<script>alert(2)</script>"\n', encoding="utf-8")
    (folder / "p01.txt").write_text("INTERVIEWER: Hi?\nANA: Hello there.\n", encoding="utf-8")
    path = folder / "study.db"
    with Study.create(path, codebook=book) as s:
        s.import_transcripts([folder / "p01.txt"])
        sid = int(s.segments(include_interviewer=False)["segment_id"].iloc[0])
    c = client(path, coder="<i>eve</i>")
    token = csrf_of(c)
    r = c.post("/api/decide", json={"segment_id": sid, "code_id": "evil", "decision": "added"},
               headers={"X-CSRF-Token": token})
    assert r.status_code == 200
    r = c.post("/api/memo", json={"segment_id": sid, "text": "<script>alert(3)</script>"},
               headers={"X-CSRF-Token": token})
    assert r.status_code == 200
    pages = [r.json()["html"], c.get(f"/review?segment={sid}").text, c.get("/codebook").text,
             c.get("/transcripts/p01").text]
    for page in pages:
        assert "<img src=x" not in page and "<script>alert" not in page and "<i>eve" not in page
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in pages[0]
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[2]
    assert "&lt;i&gt;eve&lt;/i&gt;" in pages[1]
    # the type-ahead's codebook data cannot close its script element
    assert "</script><img" not in pages[1] and "\\u003cimg src=x" in pages[1]


# -- CSRF, methods, host --------------------------------------------------------------------
def test_post_without_or_with_a_wrong_csrf_token_is_refused(study_file):
    c = client(study_file)
    sid = card_segment(c.get("/review").text)
    body = {"segment_id": sid, "code_id": "trig-domestic", "decision": "confirmed"}
    r = c.post("/api/decide", json=body)
    assert r.status_code == 403
    assert r.json() == {"error": "refused: missing or wrong CSRF token"}
    r = c.post("/api/decide", json=body, headers={"X-CSRF-Token": "0" * 64})
    assert r.status_code == 403
    for url in ("/api/undo", "/api/memo", "/start"):
        assert c.post(url, data={"name": "mallory"}).status_code == 403, url
    assert codings(study_file, "alice").empty
    assert c.get("/api/decide").status_code == 405


def test_cross_origin_post_is_refused_even_with_the_token(study_file):
    c = client(study_file)
    token = csrf_of(c)
    sid = card_segment(c.get("/review").text)
    r = c.post("/api/decide", json={"segment_id": sid, "code_id": "trig-domestic",
                                    "decision": "confirmed"},
               headers={"X-CSRF-Token": token, "Origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["error"] == "refused: cross-origin request"
    assert codings(study_file, "alice").empty


def test_foreign_host_header_is_refused_on_loopback(study_file):
    c = client(study_file)
    r = c.get("/review", headers={"Host": "attacker.example:8765"})
    assert r.status_code == 400 and "Host" in r.text
    for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765"):
        assert c.get("/review", headers={"Host": host}).status_code == 200, host


# -- decisions ---------------------------------------------------------------------------------------
def test_a_decision_that_moves_on_is_answered_with_the_next_card(study_file):
    c = client(study_file)
    h = {"X-CSRF-Token": csrf_of(c)}
    ids = [c.get("/api/next?order=document").json()["segment_id"]]
    r = c.post("/api/decide", headers=h, json={"segment_id": ids[0], "decision": "no_code",
                                               "order": "document", "advance": 1})
    assert r.status_code == 200 and r.json()["stored"] == 1
    second = r.json()["segment_id"]
    # the card that GET /api/next would give now, skipping what the page skipped
    assert second != ids[0] and second == c.get("/api/next?order=document").json()["segment_id"]
    third = c.get(f"/api/next?order=document&skip={second}").json()["segment_id"]
    r = c.post("/api/decide", headers=h, json={"segment_id": second, "decision": "no_code",
                                               "order": "document", "advance": 1,
                                               "skip": str(second)})
    assert r.json()["segment_id"] not in (ids[0], second)
    assert r.json()["segment_id"] == c.get("/api/next?order=document").json()["segment_id"]
    assert third not in (ids[0], second)


def test_decisions_are_stored_through_coder_review(study_file):
    c = client(study_file)
    token = csrf_of(c)
    h = {"X-CSRF-Token": token}
    first = card_segment(c.get("/review?order=document").text)
    r = c.post("/api/decide", headers=h, json={"segment_id": first, "code_id": "trig-domestic",
                                               "decision": "confirmed", "seconds": "2.5",
                                               "order": "document"})
    assert r.status_code == 200 and r.json()["stored"] == 1
    assert r.json()["progress"]["decided"] == 1
    df = codings(study_file, "alice")
    assert len(df) == 1
    row = df.iloc[0]
    assert (row.segment_id, row.code_id, row.decision, row.source, row.seconds) == (
        first, "trig-domestic", "confirmed", "web", 2.5)
    # several codes for one segment in one POST
    r = c.post("/api/decide", headers=h, json={"segment_id": first, "decisions": [
        {"code_id": "net-personal", "decision": "added"},
        {"code_id": "bar-finance", "decision": "rejected"}]})
    assert r.status_code == 200 and r.json()["stored"] == 2
    df = codings(study_file, "alice")
    assert sorted(zip(df.code_id, df.decision)) == [
        ("bar-finance", "rejected"), ("net-personal", "added"), ("trig-domestic", "confirmed")]
    # the next segment is a different one, and no_code clears the positives (review's rule)
    nxt = c.get("/api/next?order=document").json()
    assert nxt["segment_id"] != first
    c.post("/api/decide", headers=h, json={"segment_id": first, "code_id": None,
                                           "decision": "no_code"})
    df = codings(study_file, "alice")
    assert sorted(zip(df.code_id.fillna("-"), df.decision)) == [
        ("-", "no_code"), ("bar-finance", "rejected")]
    # undo walks back one decision at a time
    r = c.post("/api/undo", headers=h, json={})
    assert r.json()["segment_id"] == first and r.json()["undone"]
    assert len(codings(study_file, "alice")) == 3
    for _ in range(3):
        c.post("/api/undo", headers=h, json={})
    assert codings(study_file, "alice").empty
    assert c.post("/api/undo", headers=h, json={}).json() == {
        "segment_id": None, "nothing": True, "message": "Nothing to undo."}


def test_bad_decisions_get_a_clear_message_and_store_nothing(study_file):
    c = client(study_file)
    h = {"X-CSRF-Token": csrf_of(c)}
    sid = card_segment(c.get("/review").text)
    r = c.post("/api/decide", headers=h, json={"segment_id": sid, "code_id": "nope",
                                               "decision": "confirmed"})
    assert r.status_code == 400 and "nope" in r.json()["error"]
    r = c.post("/api/decide", headers=h, json={"segment_id": sid, "code_id": "trig",
                                               "decision": "maybe"})
    assert r.status_code == 400 and r.json()["error"].startswith("unknown decision 'maybe'")
    r = c.post("/api/decide", headers=h, json={"segment_id": 99999, "code_id": "trig",
                                               "decision": "confirmed"})
    assert r.status_code == 400 and "unknown segment 99999" in r.json()["error"]
    # one POST is one transaction: a bad second code stores neither
    r = c.post("/api/decide", headers=h, json={"segment_id": sid, "decisions": [
        {"code_id": "trig-domestic", "decision": "confirmed"},
        {"code_id": "nope", "decision": "confirmed"}]})
    assert r.status_code == 400
    assert codings(study_file, "alice").empty


def test_two_coders_at_once_and_blind_mode(study_file):
    alice, bob = client(study_file, "alice"), client(study_file, "bob")
    ha, hb = {"X-CSRF-Token": csrf_of(alice)}, {"X-CSRF-Token": csrf_of(bob)}
    sid = card_segment(alice.get("/review?order=document").text)
    assert card_segment(bob.get("/review?order=document").text) == sid
    alice.post("/api/decide", headers=ha, json={"segment_id": sid, "code_id": "trig-domestic",
                                                "decision": "confirmed"})
    bob.post("/api/decide", headers=hb, json={"segment_id": sid, "code_id": "net-personal",
                                              "decision": "added"})
    assert list(codings(study_file, "alice").code_id) == ["trig-domestic"]
    assert list(codings(study_file, "bob").code_id) == ["net-personal"]
    assert "Other coders" not in alice.get(f"/api/segment/{sid}").json()["html"]  # a setting
    seen = alice.get(f"/api/segment/{sid}?others=1").json()["html"]
    assert "Other coders" in seen and "bob:" in seen
    blind = bob.get(f"/api/segment/{sid}?blind=1").json()["html"]
    assert "Other coders" not in blind and "alice" not in blind
    assert 'class="suggestions"' not in blind
    page = bob.get("/review?blind=1").text
    assert 'class="suggestion ' not in page and "blind" in page
    # each coder's undo touches only their own decisions
    alice.post("/api/undo", headers=ha, json={})
    assert codings(study_file, "alice").empty
    assert list(codings(study_file, "bob").code_id) == ["net-personal"]


def test_blind_mode_chosen_at_the_start_hides_suggestions_and_other_coders(study_file):
    alice = client(study_file, "alice")
    sid = card_segment(alice.get("/review?order=document").text)
    alice.post("/api/decide", headers={"X-CSRF-Token": csrf_of(alice)},
               json={"segment_id": sid, "code_id": "trig-domestic", "decision": "confirmed"})
    bob = client(study_file, coder=None)
    r = bob.post("/start", data={"name": "bob", "blind": "1", "csrf": csrf_of(bob)},
                 follow_redirects=False)
    assert "coder_blind=1" in r.headers["set-cookie"]
    page = bob.get("/review?order=document").text
    assert 'data-blind="1"' in page and 'class="suggestion ' not in page
    assert "alice" not in bob.get(f"/api/segment/{sid}").json()["html"]
    transcript = bob.get("/transcripts/p10").text
    assert "Blind mode:" in transcript and '<span class="coder">alice</span>' not in transcript
    assert 'class="suggestion ' in bob.get("/review?blind=0").text  # a page may override
    assert 'checked' in bob.get("/start").text


def test_memo_is_stored(study_file):
    c = client(study_file)
    sid = card_segment(c.get("/review").text)
    r = c.post("/api/memo", headers={"X-CSRF-Token": csrf_of(c)},
               json={"segment_id": sid, "text": "ask about the grant"})
    assert r.status_code == 200 and "ask about the grant" in r.json()["html"]
    with Study(study_file) as s:
        assert list(review.memos(s, "alice").text) == ["ask about the grant"]


# -- browsing ---------------------------------------------------------------------------------------
def test_transcripts_codebook_and_analysis_show_the_codings(study_file):
    alice, bob = client(study_file, "alice"), client(study_file, "bob")
    ha, hb = {"X-CSRF-Token": csrf_of(alice)}, {"X-CSRF-Token": csrf_of(bob)}
    with Study(study_file) as s:
        segs = s.segments(documents=["p10"], include_interviewer=False)["segment_id"].tolist()
    for i, sid in enumerate(segs[:6]):
        code = "trig-domestic" if i % 2 else "net-personal"
        alice.post("/api/decide", headers=ha, json={"segment_id": sid, "code_id": code,
                                                    "decision": "confirmed"})
        bob.post("/api/decide", headers=hb, json={"segment_id": sid, "code_id": code if i < 4
                                                  else "bar-finance", "decision": "confirmed"})
    page = alice.get("/transcripts/p10").text
    assert page.count('<span class="coder">alice</span>') == 6
    assert page.count('<span class="coder">bob</span>') == 6
    page = alice.get("/transcripts/p10?coder=bob&code=bar-finance").text
    assert page.count('class="seg ') == 2 and "alice" not in page.split("<ol")[1]
    assert f'href="/review?segment={segs[0]}"' in alice.get("/transcripts/p10").text
    recode = alice.get(f"/review?segment={segs[0]}").text
    assert f'href="/transcripts/p10#seg-{segs[0]}">back to the transcript' in recode
    book = alice.get("/codebook").text
    assert re.search(r'id="code-trig-domestic">\s*<span class="name">Domestic conditions</span> '
                     r'<span class="count"[^>]*>3 confirmed', book)
    assert re.search(r'id="code-bar-finance">\s*<span class="name">Financial constraints</span> '
                     r'<span class="count"[^>]*>2 confirmed', book)
    assert "Smaller or saturated domestic market" in book
    analysis = alice.get("/analysis?coder=alice").text
    assert 'id="freq"' in analysis and "N = 3" in analysis and "data:image/png;base64," in analysis
    assert 'id="agreement"' in analysis and "alice + bob" in analysis
    assert "several coders have codings" in alice.get("/analysis").text


def test_analysis_without_codings_says_what_to_do(study_file):
    page = client(study_file).get("/analysis").text
    assert 'id="freq-error"' in page and "no confirmed codings" in page
    assert "Agreement needs at least two coders" in page


# -- the command -------------------------------------------------------------------------------------
def test_serve_refuses_a_missing_study(tmp_path):
    r = CliRunner().invoke(cli, ["serve", str(tmp_path / "nope.db")])
    assert r.exit_code == 1
    assert r.output.startswith(f"Error: no study at {tmp_path / 'nope.db'}")


def test_serve_prints_the_address_serves_and_stops_on_ctrl_c(study_file):
    proc = subprocess.Popen(
        [sys.executable, "-c", "from coder.cli import main; main()", "serve", str(study_file),
         "--port", "0", "--coder", "alice"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        m = re.match(r"Serving .* at (http://127\.0\.0\.1:(\d+)/)  \(Ctrl-C to stop\)", line)
        assert m, line
        with urllib.request.urlopen(m.group(1) + "api/next", timeout=10) as res:
            data = json.load(res)
        assert data["segment_id"] is not None and data["progress"]["decided"] == 0
        req = urllib.request.Request(m.group(1) + "api/undo", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 403
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert "Stopped; every decision made is saved." in out
    assert proc.returncode == 0


def test_xss_text_constant_is_what_the_study_holds(study_file):
    with Study(study_file) as s:
        assert XSS_TEXT in s.segments(documents=["p99"])["text"].tolist()


def test_serve_refuses_a_bad_coder_name_and_a_file_that_is_not_a_study(study_file, tmp_path):
    r = CliRunner().invoke(cli, ["serve", str(study_file), "--coder", " alice"])
    assert r.exit_code == 1
    assert r.output.startswith("Error: coder name ' alice' has surrounding whitespace")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello", encoding="utf-8")
    r = CliRunner().invoke(cli, ["serve", str(notes)])
    assert r.exit_code == 1
    assert r.output == f"Error: {notes} is not a coder study (not an SQLite file)\n"


def test_the_review_picker_offers_only_codable_codes(tmp_path):
    book = tmp_path / "book.yaml"
    book.write_text("name: B\ncodes:\n  - id: care\n    name: Care\n    codable: false\n"
                    "    codes:\n      - id: trust\n        name: Trust\n", encoding="utf-8")
    (tmp_path / "p.txt").write_text("ANA: I trust them.\n", encoding="utf-8")
    with Study.create(tmp_path / "s.db", codebook=book) as s:
        s.import_transcripts([tmp_path / "p.txt"])
    page = client(tmp_path / "s.db").get("/review").text
    offered = json.loads(re.search(r'<script type="application/json" id="codebook-data">(.*?)'
                                   r'</script>', page, re.S).group(1))
    assert [c["id"] for c in offered] == ["trust"]
