"""Numbers a paper can trust, part 2: one person one coder name; what each coder could see is
recorded with each decision, other coders' codes are hidden unless asked for, and a pair of
coders can be told independent or not; the terminal review's counts stay true after an undo
and its keys do what the web page's do."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import openpyxl
import pytest
from cli_helpers import dump, run
from review_helpers import make_study, seg
from starlette.testclient import TestClient

from coder import Study
from coder import review as R
from coder.errors import CoderError
from coder.store.db import now
from coder.tui import HOW, KEYS, ReviewApp
from coder.web.app import create_app

ROOT = Path(__file__).parent.parent


def text_of(app: ReviewApp, widget: str) -> str:
    return str(app.screen.query_one(widget).render())


@pytest.fixture
def study_file(tmp_path, data_dir) -> Path:
    make_study(tmp_path / "study.db", data_dir).close()
    return tmp_path / "study.db"


# -- names -------------------------------------------------------------------------------------
def test_alice_typed_as_Alice_is_alice_and_a_near_duplicate_is_refused(study_file, tmp_path):
    with Study(study_file) as s:
        R.decide(s, "alice", seg(s, "p01", 2), "trig-domestic", "confirmed")
    sheet = tmp_path / "a.xlsx"
    r = run("review", "export", study_file, sheet, "--coder", "Alice", "--order", "document")
    assert r.exit_code == 0 and r.output.startswith("Wrote 4 segment(s) to ")  # not a fresh one
    about = dict(openpyxl.load_workbook(sheet)["about"].iter_rows(values_only=True))
    assert about["coder"] == "alice"
    before = dump(study_file)
    for name in ("a.lice", "Alice_", "A L I C E"):
        r = run("review", "export", study_file, tmp_path / "x.xlsx", "--coder", name)
        assert (r.exit_code, r.output) == (
            1, f"Error: coder name '{name}' differs from the existing coder 'alice' only in "
               "spaces or punctuation (use 'alice', or a clearly different name)\n"), name
        assert not (tmp_path / "x.xlsx").exists()
    r = run("review", "import", study_file, sheet, "--coder", "alice.")
    assert r.exit_code == 1 and "differs from the existing coder 'alice'" in r.output
    r = run("review", "accept", study_file, "--coder", "ALICE.")
    assert r.exit_code == 1 and "differs from the existing coder 'alice'" in r.output
    assert dump(study_file) == before
    r = run("review", "export", study_file, tmp_path / "y.xlsx", "--coder", "alice2")
    assert r.output.startswith("new coder 'alice2' (did you mean 'alice'?)\nWrote 5 segment(s)")
    r = run("review", "export", study_file, tmp_path / "z.xlsx", "--coder", "carol")
    assert r.output.startswith("new coder 'carol'\nWrote 5 segment(s)")
    assert dump(study_file) == before  # exporting never adds a coder
    r = run("review", study_file, "--coder", "ALICE", "--documents", "p01", "--codes",
            "Triggering factors/*")
    assert (r.exit_code, r.output) == (0, "Nothing left to review for alice: 1 of 3 segments "
                                          "decided.\n")


def test_the_library_says_whether_it_created_a_coder(study_file):
    with Study(study_file) as s:
        first = s.resolve_coder("carol", create=True)
        again = s.resolve_coder("Carol", create=True)
        assert (first.name, first.created, first.new, first.note()) == (
            "carol", True, True, "new coder 'carol'")
        assert (again.name, again.id, again.created, again.new, again.note()) == (
            "carol", first.id, False, False, None)
        assert s.resolve_coder("karol").similar == ["carol"]
        assert s.coder_id("CAROL", create=False) == first.id
        with pytest.raises(CoderError, match="has no letter or digit"):
            s.resolve_coder("---")
        assert s.coders() == ["carol"]


def test_codings_csv_names_match_existing_coders_and_two_spellings_of_a_new_one_are_refused(
        study_file, tmp_path):
    with Study(study_file) as s:
        R.decide(s, "alice", seg(s, "p01", 2), "trig-domestic", "confirmed")
    (tmp_path / "a.csv").write_text("document,segment,code,coder\np01,4,net-personal,ALICE\n",
                                    encoding="utf-8")
    r = run("codes", "import", study_file, tmp_path / "a.csv")
    assert r.output == ("Imported 1 coding(s); batch 1: 1 new decision(s); replaced no existing "
                        "decision.\n")
    (tmp_path / "b.csv").write_text("document,segment,code,coder\np01,4,net-personal,Dave\n"
                                    "p01,6,bar-finance,dave\np02,2,trig-globalization,d-ave\n",
                                    encoding="utf-8")
    before = dump(study_file)
    r = run("codes", "import", study_file, tmp_path / "b.csv")
    assert (r.exit_code, r.output) == (1, (
        f"Error: {tmp_path / 'b.csv'}: 2 bad row(s), nothing imported:\n"
        "  line 3: coder 'dave' and 'Dave' (line 2) differ only in case, spaces or punctuation; "
        "use one spelling\n"
        "  line 4: coder 'd-ave' and 'Dave' (line 2) differ only in case, spaces or "
        "punctuation; use one spelling\n"))
    assert dump(study_file) == before
    with Study(study_file) as s:
        assert s.coders() == ["alice"]


def test_the_web_start_page_keeps_the_existing_spelling(study_file):
    with Study(study_file) as s:
        s.coder_id("alice")
    c = TestClient(create_app(study_file), base_url="http://127.0.0.1:8765")
    token = re.search(r'name="csrf-token" content="([^"]+)"', c.get("/start").text).group(1)
    r = c.post("/start", data={"name": "ALICE", "csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and "coder_name=alice;" in r.headers["set-cookie"]
    r = c.post("/start", data={"name": "al-ice", "csrf": token}, follow_redirects=False)
    assert r.status_code == 400 and "differs from the existing coder 'alice'" in r.text


# -- what each coder could see -----------------------------------------------------------------
def contexts(path: Path, coder: str) -> list[tuple]:
    with Study(path) as s:
        return [(r["face"], r["blind"], r["others_shown"], json.loads(r["others"]),
                 r["model_version"], json.loads(r["model_coders"])) for r in s.db.query(
            "SELECT DISTINCT x.* FROM codings k JOIN coders c ON c.id = k.coder_id "
            "JOIN decision_contexts x ON x.id = k.context_id WHERE c.name=? ORDER BY x.id",
            (coder,))]


def trained_model_on(path: Path, coders: list[str], segments: list[tuple[str, int]]) -> None:
    """A trained model version 2 (as `coder train` records it) whose suggestions are shown on
    the given segments."""
    with Study(path) as s, s.db.transaction() as conn:
        conn.execute("INSERT INTO models (version, kind, embedder, codebook_version, trained_on,"
                     " created_at) VALUES (2, 'trained', 'test', 1, ?, ?)",
                     (json.dumps({"coders": coders}), now()))
        for doc, pos in segments:
            conn.execute("UPDATE suggestions SET model_version=2 WHERE segment_id=?",
                         (seg(s, doc, pos),))


def review_session(path: Path, coder: str, keys: list[str], **options) -> ReviewApp:
    async def session():
        app = ReviewApp(path, coder, order="document", **options)
        async with app.run_test(size=(110, 34)) as pilot:
            await pilot.pause()
            for key in keys:
                if key.startswith("?"):       # an assertion on the screen, not a key
                    assert key[1:] in " ".join(text_of(app, w) for w in
                                               ("#segment", "#codes", "#message")), key
                elif key.startswith("!"):
                    assert key[1:] not in " ".join(text_of(app, w) for w in
                                                   ("#segment", "#codes", "#message")), key
                else:
                    await pilot.press(key)
            await pilot.press("q")
        return app

    return asyncio.run(session())


def test_others_hidden_unless_asked_recorded_and_independence_per_pair(study_file):
    # alice first, with the default screen: p01 #2 (a, r) and p01 #4 (a, r)
    review_session(study_file, "alice", ["a", "r", "a", "r"])
    trained_model_on(study_file, ["alice"], [("p01", 4)])
    # carol, default: alice's codes stay hidden; the model's source is on screen
    review_session(study_file, "carol", ["!other coders", "!alice:", "a", "r",
                                         "?suggestions of model v2, learned from alice", "n"])
    # bob asks to see other coders
    review_session(study_file, "bob", [
        "?other coders: alice: Triggering factors/Domestic conditions (confirmed)",
        "?suggestions of model v1, from the codebook alone", "a", "r", "n"], show_others=True)
    assert contexts(study_file, "alice") == [("terminal", 0, 0, [], 1, [])] * 2  # 2 segments
    assert contexts(study_file, "bob") == [("terminal", 0, 1, ["alice", "carol"], 1, []),
                                           ("terminal", 0, 1, ["alice", "carol"], 2, ["alice"])]
    with Study(study_file) as s:
        ab = R.independence(s, "alice", "bob")
        assert ab == {"coders": ["alice", "bob"], "shared_segments": 2,
                      "saw": {"alice": 0, "bob": 2}, "learned_from": {"alice": 0, "bob": 1},
                      "suggestions_shown": {"alice": 2, "bob": 2},
                      "unrecorded": {"alice": 0, "bob": 0}, "unrecorded_either": 0,
                      "independent": False}
        assert R.independence_line(ab) == ("alice & bob: bob saw alice's codes on 2 segments "
                                           "and suggestions learned from alice on 1")
        assert R.independence_line(R.independence(s, "carol", "bob")) == (
            "carol & bob: bob saw carol's codes on 2 segments")
        ac = R.independence(s, "alice", "carol")
        assert R.independence_line(ac) == ("alice & carol: carol saw suggestions learned from "
                                           "alice on 1 segment")
        R.decide(s, "dave", seg(s, "p01", 2), None, "no_code",
                 seen=R.seen(s, "terminal", blind=True))
        assert R.independence_line(R.independence(s, "alice", "dave")) == (
            "alice & dave: independent (1 segment both decided)")
        R.decide(s, "erin", seg(s, "p01", 2), None, "no_code")  # imported: not recorded
        assert R.independence_line(R.independence(s, "alice", "erin")) == (
            "alice & erin: not known on 1 of 1 segment both decided (what was shown was not "
            "recorded: imported decisions, or made before coder recorded it)")
        assert R.independence_line(R.independence(s, "dave", "carol")).startswith(
            "dave & carol: independent")
    r = run("agree", study_file, "--coders", "alice,bob,carol", "--resamples", "0")
    assert r.exit_code == 0, r.output
    assert [x for x in r.output.splitlines() if x.startswith("Independence: ")] == [
        "Independence: alice & bob: bob saw alice's codes on 2 segments and suggestions learned "
        "from alice on 1",
        "Independence: alice & carol: carol saw suggestions learned from alice on 1 segment",
        "Independence: bob & carol: bob saw carol's codes on 2 segments"]


def test_the_web_page_hides_others_by_default_and_records_what_its_card_showed(study_file):
    def client(coder: str) -> tuple[TestClient, dict]:
        c = TestClient(create_app(study_file), base_url="http://127.0.0.1:8765")
        c.cookies.set("coder_name", coder)
        token = re.search(r'name="csrf-token" content="([^"]+)"', c.get("/start").text).group(1)
        return c, {"X-CSRF-Token": token}

    (alice, ha), (bob, hb) = client("alice"), client("bob")
    with Study(study_file) as s:
        sid = seg(s, "p01", 2)
    alice.post("/api/decide", headers=ha, json={"segment_id": sid, "code_id": "trig-domestic",
                                                "decision": "confirmed"})
    assert "alice" not in bob.get(f"/api/segment/{sid}").json()["html"]
    bob.post("/api/decide", headers=hb, json={"segment_id": sid, "code_id": "bar-finance",
                                              "decision": "confirmed", "others": "1"})
    assert contexts(study_file, "alice") == [("web", 0, 0, [], 1, [])]
    assert contexts(study_file, "bob") == [("web", 0, 1, ["alice"], 1, [])]
    with Study(study_file) as s:
        assert R.independence_line(R.independence(s, "alice", "bob")) == (
            "alice & bob: bob saw alice's codes on 1 segment")


def test_a_sheet_records_that_it_showed_suggestions_and_no_other_coder(study_file, tmp_path):
    sheet = tmp_path / "bob.xlsx"
    run("review", "export", study_file, sheet, "--coder", "bob", "--order", "document")
    wb = openpyxl.load_workbook(sheet)
    wb["review"]["H2"] = "trig-domestic"
    wb.save(sheet)
    assert run("review", "import", study_file, sheet).exit_code == 0
    assert contexts(study_file, "bob") == [("sheet", 0, 0, [], 1, [])]
    blind = tmp_path / "carol.xlsx"
    run("review", "export", study_file, blind, "--coder", "carol", "--blind")
    wb = openpyxl.load_workbook(blind)
    wb["review"]["H2"] = "none"
    wb.save(blind)
    r = run("review", "import", study_file, blind)
    assert "0 rejected" in r.output  # nothing was shown, so nothing is rejected
    assert contexts(study_file, "carol") == [("sheet", 1, 0, [], None, [])]


# -- the terminal review: counts and keys ------------------------------------------------------
def test_decided_count_stays_true_after_an_undo_inside_a_segment(study_file):
    async def session():
        app = ReviewApp(study_file, "alice", order="document")
        async with app.run_test(size=(110, 34)) as pilot:
            await pilot.pause()
            await pilot.press("a", "r")                   # p01 #2 decided; now on p01 #4
            assert "decided 1/5" in text_of(app, "#status")
            await pilot.press("r")                        # reject one; the other is undecided
            assert "decided 2/5" in text_of(app, "#status")
            await pilot.press("u")                        # undo inside the segment
            assert "decided 1/5" in text_of(app, "#status")
            await pilot.press("r")                        # decide it again
            assert "decided 2/5" in text_of(app, "#status")  # (was stuck at 1/5)
            await pilot.press("q")
        return app

    app = asyncio.run(session())
    assert app.summary == "alice: 3 decision(s) saved this session; 2 of 5 segments decided."
    status = run("status", study_file).output
    assert "coder alice        2 segments decided" in status


def test_the_screen_says_what_a_r_and_enter_do_to_the_other_suggestions(study_file):
    async def session():
        app = ReviewApp(study_file, "alice", order="document")
        async with app.run_test(size=(110, 34)) as pilot:
            await pilot.pause()
            assert text_of(app, "#how") == HOW == (
                "a accepts the highlighted code, r rejects it; the others stay undecided until "
                "you decide them. The next segment comes when none is undecided; enter or s "
                "goes on now.")
            assert text_of(app, "#keys") == KEYS == (
                "a accept  r reject  up/down move  o other code  n no code  enter/s next  "
                "u undo  m memo  q quit")
            await pilot.press("a", "enter")               # one accepted, one left undecided
            assert text_of(app, "#message") == ("next segment; the last one is decided, 1 of "
                                                "its suggestions left undecided")
            await pilot.press("space")                    # no ticking: nothing happens
            assert "[x]" not in text_of(app, "#codes") and "[ ]" not in text_of(app, "#codes")
            await pilot.press("q")

    asyncio.run(session())
    with Study(study_file) as s:  # enter rejected nothing: bar-finance stays undecided
        assert {(r["code_id"], r["decision"]) for r in s.db.query(
            "SELECT code_id, decision FROM codings")} == {("trig-domestic", "confirmed")}
    # the web page: a and r decide the highlighted suggestion and advance when none is left;
    # Enter goes to the next segment without deciding
    js = (ROOT / "coder" / "web" / "static" / "app.js").read_text(encoding="utf-8")
    assert '"a": function () { const li = current(); if (li) return decide(li.dataset.codeId, ' \
           '"confirmed", "auto")' in js
    assert '"Enter": skip,' in js
