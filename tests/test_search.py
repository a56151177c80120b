"""Text search (coder/sources/search.py) and auto-coding its hits as proposals for a coder's
review (coder/review/search.py): the FTS5 index kept current by import, the query syntax,
exact offsets on non-ASCII and CRLF text, the filters, the CLI, the web page, and proposals that
count for nothing until a person confirms them."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from coder.analysis import frequency
from coder.errors import CoderError, UnknownReference
from coder.review import decisions
from coder.review import search as proposals
from coder.review.queue import queue as review_queue
from coder.sources.search import search
from coder.study import Study
from coder.web.app import create_app
from tests.cli_helpers import run
from tests.test_web_browser import browser  # noqa: F401  (the chromium fixture: fails in CI when missing)

DATA = Path(__file__).parent / "data"
BASE = "http://127.0.0.1:8765"

# CRLF line ends, accents, an emoji before a hit (code points, not UTF-16 units or bytes)
A01 = ("INTERVIEWER: Tell me about working from home.\r\n"
       "MS KOVÁCS: The home office is Kötelező now, every day.\r\n"
       "I work at the café near home, 😀 or at the Café Central.\r\n"
       "INTERVIEWER: And meetings?\r\n"
       "MS KOVÁCS: Meetings are just fatigue. Video meetings bring more fatigue! "
       "Home-office days help.\r\n")
B02 = ("INTERVIEWER: What about the office?\n"
       "MR NAGY: I miss the office. My home is not an office at all.\n"
       "INTERVIEWER: <b>Really</b>?\n"
       "MR NAGY: Yes: <script>alert(1)</script> home office forever.\n")


@pytest.fixture
def study_file(tmp_path) -> Path:
    (tmp_path / "a01.txt").write_bytes(A01.encode("utf-8"))
    (tmp_path / "b02.txt").write_text(B02, encoding="utf-8")
    path = tmp_path / "study.db"
    with Study.create(path, codebook=DATA / "small_codebook.yaml") as s:
        s.import_transcripts([tmp_path / "a01.txt", tmp_path / "b02.txt"])
    return path


@pytest.fixture
def study(study_file):
    s = Study(study_file)
    yield s
    s.close()


def texts(study, name: str) -> str:
    return study.db.one("SELECT text FROM documents WHERE name=?", (name,))[0]


def exact(study, hits) -> list[str]:
    """Each hit's characters read from the stored document text at its offsets."""
    return [texts(study, h.document)[h.start_char:h.end_char] for h in hits.itertuples()]


# -- the query syntax ----------------------------------------------------------------------------
def test_words_are_hits_each_with_exact_document_offsets(study):
    hits = search(study, "office")
    assert exact(study, hits) == hits["hit"].tolist()
    assert [h.lower() for h in hits["hit"]] == ["office"] * 5 + ["office"]
    assert hits[["document", "position"]].values.tolist()[:2] == [["a01", 2], ["a01", 4]]
    # both words in one segment: each is its own hit; a segment with only one is no hit
    both = search(study, "miss office")
    assert both["hit"].tolist() == ["miss", "office", "office"]
    assert set(both["position"]) == {2} and set(both["document"]) == {"b02"}


def test_a_phrase_matches_adjacent_words_only(study):
    hits = search(study, '"home office"')
    assert hits["hit"].tolist() == ["home office", "Home-office", "home office"]
    assert exact(study, hits) == hits["hit"].tolist()
    assert search(study, '"office home"').empty
    # "my home is not an office": both words, not the phrase
    assert "My home is not an office" not in " ".join(hits["left"] + hits["hit"])


def test_prefix_and_near(study):
    assert search(study, "fatig*")["hit"].tolist() == ["fatigue", "fatigue"]
    near = search(study, "NEAR(meetings fatigue, 2)")
    # the words of one NEAR group are one hit, from the first to the last
    assert near["hit"].tolist() == ["Meetings are just fatigue", "meetings bring more fatigue"]
    assert exact(study, near) == near["hit"].tolist()
    # six words between video and days: NEAR counts them
    assert search(study, "NEAR(days video, 5)").empty
    assert search(study, "NEAR(days video, 6)")["hit"].tolist() == [
        "Video meetings bring more fatigue! Home-office days"]


def test_non_ascii_accents_folded_and_offsets_in_code_points(study):
    hits = search(study, "cafe")
    assert hits["hit"].tolist() == ["café", "Café"]
    assert exact(study, hits) == ["café", "Café"]    # after an emoji: code point offsets
    assert search(study, "kotelezo")["hit"].tolist() == ["Kötelező"]
    assert search(study, "Kötelező")["hit"].tolist() == ["Kötelező"]
    assert search(study, "KOVÁCS").empty     # speaker labels are not segment text


def test_text_holding_the_highlight_markers_still_gives_exact_hits(study, tmp_path):
    (tmp_path / "c03.txt").write_text("ME: Symbols \ue000\ue001 from a font, then the office.\n",
                                      encoding="utf-8")
    study.import_transcripts([tmp_path / "c03.txt"])
    hits = search(study, "office", documents=["c03"])
    assert exact(study, hits) == hits["hit"].tolist() == ["office"]


def test_crlf_text_is_normalised_and_a_phrase_runs_over_a_line_break(study):
    text = texts(study, "a01")
    assert "\r" not in text
    hits = search(study, '"every day i work"')
    assert hits["hit"].tolist() == ["every day.\nI work"]
    assert exact(study, hits) == hits["hit"].tolist()
    assert "\n" not in hits["left"][0] + hits["right"][0]    # context squeezed to one line


def test_context_window(study):
    hits = search(study, "Central", window=10)
    assert (hits["left"][0], hits["right"][0]) == (" the Café ", ". INTERVIE")
    whole = search(study, "Central", window=0)
    assert (whole["left"][0], whole["right"][0]) == ("", "")


@pytest.mark.parametrize("query, what", [
    ("home-office", "'office' is read as a column name"),
    ('"home office', "a double quote is not closed"),
    ("AND", 'syntax error near "AND"'),
    ("NEAR(", "ends too early"),
])
def test_a_bad_query_says_what_is_wrong_and_how_to_write_it(study, query, what):
    with pytest.raises(CoderError) as e:
        search(study, query)
    assert what in str(e.value) and f"search '{query}'" in str(e.value)
    assert '"an exact phrase", prefix*, NEAR(word1 word2, 5)' in str(e.value)


def test_empty_query_refused(study):
    with pytest.raises(CoderError, match="nothing to search for"):
        search(study, "   ")


def test_regex(study):
    hits = search(study, r"home[- ]office", regex=True)   # case-insensitive, any segment
    assert hits["hit"].tolist() == ["home office", "Home-office", "home office"]
    assert exact(study, hits) == hits["hit"].tolist()
    assert search(study, r"<script>", regex=True)["hit"].tolist() == ["<script>"]
    with pytest.raises(CoderError, match="not a regular expression"):
        search(study, "(unclosed", regex=True)


# -- filters -------------------------------------------------------------------------------------
def test_speaker_filter_by_role_and_label(study):
    everyone = search(study, "office")
    assert set(everyone["role"]) == {"participant", "interviewer"}
    people = search(study, "office", speaker="participant")
    assert set(people["role"]) == {"participant"} and len(people) == len(everyone) - 1
    asked = search(study, "office", speaker="interviewer")
    assert asked["speaker"].tolist() == ["INTERVIEWER"]
    nagy = search(study, "office", speaker="mr nagy")      # a label, any case
    assert set(nagy["speaker"]) == {"MR NAGY"} and len(nagy) == 3
    with pytest.raises(UnknownReference, match="no speaker labelled 'MS SMITH'"):
        search(study, "office", speaker="MS SMITH")


def test_documents_filter(study):
    assert set(search(study, "office", documents=["b02"])["document"]) == {"b02"}
    with pytest.raises(UnknownReference, match="unknown document"):
        search(study, "office", documents=["nope"])


# -- the index stays current ---------------------------------------------------------------------
def fts_ok(study) -> None:
    study.db.execute("INSERT INTO segments_fts (segments_fts) VALUES ('integrity-check')")


def test_index_current_after_import_reimport_and_replace(study, tmp_path):
    fts_ok(study)
    assert len(search(study, "miss")) == 1
    (tmp_path / "c03.txt").write_text("ME: A zeppelin over the office.\n", encoding="utf-8")
    study.import_transcripts([tmp_path / "c03.txt"])
    assert search(study, "zeppelin")["document"].tolist() == ["c03"]
    study.import_transcripts([tmp_path / "b02.txt"])                  # unchanged: nothing moves
    assert len(search(study, "miss")) == 1
    (tmp_path / "b02.txt").write_text(B02.replace("I miss the office.", "I love the balloon."),
                                      encoding="utf-8")
    study.import_transcripts([tmp_path / "b02.txt"], replace=True)
    assert search(study, "miss").empty
    assert exact(study, search(study, "balloon")) == ["balloon"]
    # unchanged segments moved position under --replace: still found, at their new place
    forever = search(study, "forever")
    assert exact(study, forever) == ["forever"]
    fts_ok(study)
    # a document removed (its segments go by cascade): its words leave the index with it
    with study.db.transaction() as conn:
        conn.execute("DELETE FROM documents WHERE name='c03'")
    fts_ok(study)
    assert search(study, "zeppelin").empty
    assert study.db.one("SELECT COUNT(*) FROM segments_fts_docsize")[0] == \
        study.db.one("SELECT COUNT(*) FROM segments")[0]


def test_the_migration_indexes_a_study_made_before_it(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(DATA / "study-before-spans.db", path)
    with Study(path) as s:
        assert "0009_search" in s.db.applied_migrations()
        first = s.db.one("SELECT text FROM segments ORDER BY id LIMIT 1")[0]
        word = max(re.findall(r"\w+", first), key=len)
        hits = search(s, word)
        assert len(hits) >= 1 and word.lower() in [h.lower() for h in hits["hit"]]
        fts_ok(s)


# -- the CLI -------------------------------------------------------------------------------------
def test_cli_table_csv_json(study_file):
    r = run("search", study_file, '"home office"')
    assert r.exit_code == 0, r.output
    assert "3 hits in 2 documents for '\"home office\"'" in r.output
    assert "«home office»" in r.output and "MR NAGY" in r.output
    r = run("search", study_file, "cafe", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert [x["hit"] for x in rows] == ["café", "Café"]
    assert set(rows[0]) >= {"document", "position", "speaker", "participant", "segment_id",
                            "start_char", "end_char", "left", "right"}
    r = run("search", study_file, "office", "--format", "json", "--speaker", "interviewer",
            "--documents", "b02")
    got = json.loads(r.output)
    assert [(g["document"], g["speaker"], g["hit"]) for g in got] == [
        ("b02", "INTERVIEWER", "office")]
    assert isinstance(got[0]["start_char"], int)


def test_cli_bad_query_is_one_line_exit_1(study_file):
    r = run("search", study_file, "home-office")
    assert r.exit_code == 1
    assert r.output.startswith("Error: search 'home-office' is not valid search syntax")
    assert "Traceback" not in r.output and "\n" not in r.output.strip()
    assert isinstance(r.exception, SystemExit)


def test_cli_code_options_go_together(study_file):
    assert run("search", study_file, "office", "--coder", "alice").exit_code == 2
    assert run("search", study_file, "office", "--code", "bar-finance").exit_code == 2


# -- proposals -----------------------------------------------------------------------------------
def test_proposals_made_once_and_never_counted(study_file):
    r = run("search", study_file, '"home office"', "--code", "net-personal", "--coder", "alice")
    assert r.exit_code == 0, r.output
    assert "3 new proposals of 'Networking/Personal relations' (hit) for alice" in r.output
    assert "coder review" in r.output and "--coder alice" in r.output
    r = run("search", study_file, '"home office"', "--code", "net-personal", "--coder", "alice")
    assert "0 new proposals" in r.output and "3 already proposed" in r.output
    with Study(study_file) as s:
        rows = s.db.query("SELECT * FROM search_proposals")
        assert len(rows) == 3 and {r["status"] for r in rows} == {"pending"}
        assert {r["query"] for r in rows} == {'"home office"'}
        assert json.loads(rows[0]["options"])["speaker"] == "participant"
        assert s.db.one("SELECT COUNT(*) FROM codings")[0] == 0   # not a coding
        decisions.decide(s, "bob", rows[0]["segment_id"], "bar-finance", "added")
        table = frequency.frequencies(s)
        assert table.set_index("id").loc["net-personal", "n"] == 0


def test_queue_offers_proposals_first_and_confirm_codes_the_exact_span(study):
    made = proposals.propose(study, "fatigue", code="bar-finance", coder="alice")
    assert (made.hits, made.made) == (2, 2)
    items = review_queue(study, "alice")
    first = items[0]
    assert [p.text for p in first.proposals] == ["fatigue", "fatigue"]
    assert first.proposals[0].label == "from search: fatigue"
    assert not any(it.proposals for it in items[1:])
    p = first.proposals[1]
    coding = proposals.decide_proposal(study, "alice", p.id, "confirmed")
    row = study.db.one("SELECT * FROM coding_spans x JOIN codings k ON k.id = x.coding_id "
                       "WHERE x.coding_id=?", (coding,))
    assert (row["decision"], row["source"]) == ("confirmed", "search")
    assert texts(study, "a01")[row["start_char"]:row["end_char"]] == "fatigue"
    assert (row["start_char"], row["end_char"]) == (p.start_char, p.end_char)
    assert not row["whole"]
    table = frequency.frequencies(study, coder="alice")
    assert table.set_index("id").loc["bar-finance", "n"] == 1      # now it counts
    # the other hit is still open, on the same segment, which stays in the queue
    left = review_queue(study, "alice")[0]
    assert [q.id for q in left.proposals] == [first.proposals[0].id]
    with pytest.raises(CoderError, match="already decided"):
        proposals.decide_proposal(study, "alice", p.id, "rejected")
    # rejecting the other hit leaves her span coding alone: no rejection on that segment
    assert proposals.decide_proposal(study, "alice", first.proposals[0].id, "rejected") is None
    assert [r["decision"] for r in study.db.query("SELECT decision FROM codings")] == [
        "confirmed"]
    decisions.undo(study, "alice")   # still one undo step: the proposal is open again
    assert [q.id for q in proposals.proposals(study, "alice")] == [first.proposals[0].id]
    assert study.db.one("SELECT COUNT(*) FROM codings")[0] == 1
    with pytest.raises(CoderError, match="in alice's review queue, not bob's"):
        proposals.decide_proposal(study, "bob", p.id, "confirmed")


def test_reject_records_a_rejection_and_undo_opens_the_proposal_again(study):
    proposals.propose(study, "zzz OR fatigue", code="bar-finance", coder="alice",
                      span="segment")
    (p,) = proposals.proposals(study, "alice")   # two hits, one segment: one proposal
    assert p.span == "segment" and p.text.startswith("Meetings are just fatigue")
    proposals.decide_proposal(study, "alice", p.id, "rejected")
    row = study.db.one("SELECT * FROM codings")
    assert (row["segment_id"], row["code_id"], row["decision"], row["source"],
            row["start_char"]) == (p.segment_id, "bar-finance", "rejected", "search", None)
    assert proposals.proposals(study, "alice") == []
    assert proposals.proposals(study, "alice", open_only=False)[0].status == "rejected"
    decisions.undo(study, "alice")
    assert study.db.one("SELECT COUNT(*) FROM codings")[0] == 0
    assert [q.id for q in proposals.proposals(study, "alice")] == [p.id]
    # confirmed as a whole segment it is a decision on the segment (no offsets)
    proposals.decide_proposal(study, "alice", p.id, "confirmed")
    row = study.db.one("SELECT * FROM codings")
    assert (row["decision"], row["source"], row["start_char"]) == ("confirmed", "search", None)


def test_sentence_span_and_already_coded_spans(study):
    made = proposals.propose(study, "video", code="bar-finance", coder="alice", span="sentence")
    (p,) = proposals.proposals(study, "alice")
    assert made.made == 1 and p.text == "Video meetings bring more fatigue!"
    proposals.decide_proposal(study, "alice", p.id, "confirmed")
    again = proposals.propose(study, "bring", code="bar-finance", coder="alice", span="hit")
    assert (again.made, again.already_coded) == (0, 1)   # inside a span she coded with it


def test_interviewer_turns_only_when_asked(study):
    made = proposals.propose(study, "office", code="bar-finance", coder="alice")
    assert made.hits == 5     # the interviewer's question is left out
    asked = proposals.propose(study, "office", code="bar-finance", coder="alice",
                              speaker="interviewer")
    assert (asked.hits, asked.made) == (1, 1)


# -- the web page --------------------------------------------------------------------------------
def client(path: Path, coder: str = "alice") -> TestClient:
    c = TestClient(create_app(path), base_url=BASE)
    c.cookies.set("coder_name", coder)
    return c


def test_search_page_marks_hits_escaped_and_links_to_the_segment(study_file):
    c = client(study_file)
    page = c.get("/search", params={"q": "script"}).text
    assert "<script>alert" not in page
    assert "&lt;<mark>script</mark>&gt;alert(1)&lt;/" in page
    seg = re.search(r'href="/transcripts/b02#seg-(\d+)"', page)
    assert seg is not None
    assert "2 hits in 1 document" in page
    bad = c.get("/search", params={"q": "home-office"}).text
    assert "not valid search syntax" in bad and 'id="search-error"' in bad
    regex = c.get("/search", params={"q": "caf.", "regex": "1", "speaker": "participant"}).text
    assert regex.count("<mark>") == 2


def test_web_review_shows_and_decides_a_proposal(study_file):
    with Study(study_file) as s:
        proposals.propose(s, "Kötelező", code="net-personal", coder="alice")
        (p,) = proposals.proposals(s, "alice")
    c = client(study_file)
    page = c.get("/review").text
    assert "from search: Kötelező" in page and f'data-proposal-id="{p.id}"' in page
    assert "<mark>Kötelező</mark>" in page
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    r = c.post("/api/decide", json={"segment_id": p.segment_id, "code_id": p.code_id,
                                    "decision": "confirmed", "proposal_id": p.id},
               headers={"X-CSRF-Token": token})
    assert r.status_code == 200, r.text
    with Study(study_file) as s:
        row = s.db.one("SELECT * FROM codings")
        assert (row["start_char"], row["end_char"], row["source"]) == (
            p.start_char, p.end_char, "search")
        assert proposals.proposals(s, "alice") == []


# -- the terminal review ---------------------------------------------------------------------------
def test_terminal_review_offers_a_proposal_first_and_a_confirms_its_span(study_file):
    import asyncio

    from coder.tui import ReviewApp

    with Study(study_file) as s:
        proposals.propose(s, "balloon OR forever", code="net-personal", coder="alice")
        (p,) = proposals.proposals(s, "alice")

    async def session():
        app = ReviewApp(study_file, "alice", order="document")
        async with app.run_test(size=(120, 34)) as pilot:
            await pilot.pause()
            assert (app.item.document, app.item.segment_id) == ("b02", p.segment_id)
            codes = str(app.screen.query_one("#codes").render())
            assert "from search: balloon OR forever" in codes and "“forever”" in codes
            await pilot.press("a")
            await pilot.pause()
            await pilot.press("q")

    asyncio.run(session())
    with Study(study_file) as s:
        row = s.db.one("SELECT * FROM codings")
        assert (row["start_char"], row["end_char"], row["decision"], row["source"]) == (
            p.start_char, p.end_char, "confirmed", "search")


# -- in a real browser ---------------------------------------------------------------------------
@pytest.mark.browser
def test_browser_keys_decide_search_proposals(study_file, browser):  # noqa: F811
    """The review page in chromium: the first search proposal is highlighted, a accepts it (its
    exact span is coded), r rejects the next; the Search page marks hits."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from web_helpers import running

    with Study(study_file) as s:
        proposals.propose(s, "fatigue", code="bar-finance", coder="alice")
        first, second = proposals.proposals(s, "alice")
    with running(create_app(study_file, coder="alice")) as url:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(url + "/review")
        row = page.locator("li.suggestion.highlight")
        assert row.get_attribute("data-proposal-id") == str(first.id)
        assert "from search: fatigue" in row.inner_text()
        page.keyboard.press("a")
        page.wait_for_selector(f'li[data-proposal-id="{first.id}"][data-state="confirmed"]')
        assert page.locator("li.suggestion.highlight").get_attribute(
            "data-proposal-id") == str(second.id)
        page.keyboard.press("r")
        page.locator("#flash", has_text="rejected").wait_for()   # (the page's CSP: no eval)
        page.goto(url + "/search?q=" + "caf%C3%A9")
        assert page.locator("#hits mark").all_inner_texts() == ["café", "Café"]
        context.close()
    with Study(study_file) as s:
        rows = {(r["decision"], r["start_char"], r["end_char"], r["source"])
                for r in s.db.query("SELECT * FROM codings")}
        # the second hit rejected on a segment where the code is on a span: no rejection
        assert rows == {("confirmed", first.start_char, first.end_char, "search")}
        assert proposals.proposals(s, "alice") == []
        assert proposals.proposals(s, "alice", open_only=False)[1].status == "rejected"
