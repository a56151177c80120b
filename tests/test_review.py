"""Review library: decisions, undo, memos, the queue, bulk acceptance, CLI, concurrent coders."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from review_helpers import add_suggestions, long_transcript, make_study, seg

from coder import Study
from coder import review as R
from coder.cli import cli
from coder.errors import CoderError, NothingToDo, UnknownReference

ROOT = Path(__file__).parent.parent


@pytest.fixture
def rstudy(tmp_path, data_dir):
    s = make_study(tmp_path / "review.db", data_dir)
    yield s
    s.close()


def current(s: Study, coder: str = "alice") -> set[tuple[int, str | None, str]]:
    return {(r["segment_id"], r["code_id"], r["decision"]) for r in s.db.query(
        "SELECT k.segment_id, k.code_id, k.decision FROM codings k JOIN coders c "
        "ON c.id = k.coder_id WHERE c.name=?", (coder,))}


# -- decide ------------------------------------------------------------------------------------
def test_decide_stores_one_decision_and_a_later_one_replaces_it(rstudy):
    s4 = seg(rstudy, "p01", 4)
    first = R.decide(rstudy, "alice", s4, "net-institutions", "confirmed", seconds=2.5)
    again = R.decide(rstudy, "alice", s4, "Networking/Government and non-government institutions",
                     "rejected")
    assert first == again
    assert current(rstudy) == {(s4, "net-institutions", "rejected")}
    row = rstudy.db.one("SELECT * FROM codings WHERE id=?", (first,))
    assert row["suggestion_score"] == pytest.approx(0.6) and row["model_version"] == 1
    assert row["codebook_version"] == 1 and row["source"] == "review"
    trail = R.codings_list(rstudy, "alice", history=True)
    assert trail["action"].tolist() == ["insert", "update"]
    assert trail["decision"].tolist() == ["confirmed", "rejected"]


def test_decide_same_decision_twice_is_a_no_op(rstudy):
    s4 = seg(rstudy, "p01", 4)
    assert R.decide(rstudy, "alice", s4, "net-personal", "confirmed") is not None
    assert R.decide(rstudy, "alice", s4, "net-personal", "confirmed") is None
    assert len(R.codings_list(rstudy, "alice", history=True)) == 1


def test_no_code_clears_positive_codes_but_keeps_rejections(rstudy):
    s2 = seg(rstudy, "p01", 2)
    R.decide(rstudy, "alice", s2, "trig-domestic", "confirmed")
    R.decide(rstudy, "alice", s2, "bar-finance", "rejected")
    R.decide(rstudy, "bob", s2, "trig-domestic", "confirmed")
    R.decide(rstudy, "alice", s2, None, "no_code")
    assert current(rstudy) == {(s2, "bar-finance", "rejected"), (s2, None, "no_code")}
    assert current(rstudy, "bob") == {(s2, "trig-domestic", "confirmed")}
    R.decide(rstudy, "alice", s2, "net-personal", "added")
    assert current(rstudy) == {(s2, "bar-finance", "rejected"), (s2, "net-personal", "added")}


def test_undo_walks_back_exactly(rstudy):
    s2, s4 = seg(rstudy, "p01", 2), seg(rstudy, "p01", 4)
    R.decide(rstudy, "alice", s4, "net-institutions", "confirmed", memo="clear case", seconds=3)
    R.decide(rstudy, "alice", s2, "trig-domestic", "confirmed")
    R.decide(rstudy, "alice", s2, None, "no_code")
    R.decide(rstudy, "bob", s2, "trig-domestic", "rejected")
    undone = R.undo(rstudy, "alice")
    assert undone.segment_id == s2 and undone.description == "undid decision on p01 #2"
    assert current(rstudy) == {(s4, "net-institutions", "confirmed"),
                               (s2, "trig-domestic", "confirmed")}
    R.undo(rstudy, "alice")
    assert current(rstudy) == {(s4, "net-institutions", "confirmed")}
    R.decide(rstudy, "alice", s4, "net-institutions", "rejected")
    R.undo(rstudy, "alice")
    row = rstudy.db.one("SELECT * FROM codings WHERE segment_id=? AND code_id='net-institutions'"
                        " AND coder_id=(SELECT id FROM coders WHERE name='alice')", (s4,))
    assert (row["decision"], row["memo"], row["seconds"]) == ("confirmed", "clear case", 3)
    R.undo(rstudy, "alice")
    assert current(rstudy) == set()
    assert current(rstudy, "bob") == {(s2, "trig-domestic", "rejected")}
    with pytest.raises(NothingToDo, match="coder 'alice' has no decision to undo"):
        R.undo(rstudy, "alice")


def test_memo_is_stored(rstudy):
    R.memo(rstudy, "alice", seg(rstudy, "p01", 2), "  mentions MATRADE  ")
    memos = R.memos(rstudy, "alice")
    assert memos[["document", "position", "text"]].values.tolist() == [["p01", 2,
                                                                         "mentions MATRADE"]]
    with pytest.raises(CoderError, match="a memo cannot be empty"):
        R.memo(rstudy, "alice", seg(rstudy, "p01", 2), "  ")


@pytest.mark.parametrize("args, message", [
    (("p01", 4, "nope", "confirmed"), "unknown code 'nope'"),
    (("p01", 4, "net-personal", "maybe"), "unknown decision 'maybe'"),
    (("p01", 4, "net-personal", "no_code"), "decision 'no_code' takes no code"),
    (("p01", 4, None, "confirmed"), "decision 'confirmed' needs a code"),
])
def test_bad_decisions_write_nothing(rstudy, args, message):
    doc, pos, code, decision = args
    with pytest.raises(CoderError, match=message):
        R.decide(rstudy, "alice", seg(rstudy, doc, pos), code, decision)
    assert current(rstudy) == set()


def test_unknown_segment_and_bad_coder_names(rstudy):
    with pytest.raises(UnknownReference, match="unknown segment 999"):
        R.decide(rstudy, "alice", 999, "net-personal", "confirmed")
    for name in ("", "   ", " alice", "a,b"):
        with pytest.raises(CoderError):
            R.decide(rstudy, name, seg(rstudy, "p01", 4), "net-personal", "confirmed")
    assert rstudy.db.one("SELECT COUNT(*) FROM codings")[0] == 0


# -- queue -------------------------------------------------------------------------------------
def positions(items):
    return [(i.document, i.position) for i in items]


def test_queue_orders(rstudy):
    assert positions(R.queue(rstudy, "alice")) == [
        ("p01", 4), ("p01", 2), ("p02", 2), ("p01", 6), ("p02", 4)]
    assert positions(R.queue(rstudy, "alice", order="document")) == [
        ("p01", 2), ("p01", 4), ("p01", 6), ("p02", 2), ("p02", 4)]
    assert positions(R.queue(rstudy, "alice", order="score")) == [
        ("p01", 2), ("p01", 6), ("p02", 2), ("p01", 4), ("p02", 4)]
    random1 = positions(R.queue(rstudy, "alice", order="random", seed=1))
    assert random1 == positions(R.queue(rstudy, "alice", order="random", seed=1))
    assert sorted(random1) == positions(R.queue(rstudy, "alice", order="document"))
    with pytest.raises(CoderError, match="unknown order 'best'"):
        R.queue(rstudy, "alice", order="best")


def test_queue_item_has_context_suggestions_and_no_interviewer_turns(rstudy):
    item = R.queue(rstudy, "alice")[0]
    assert (item.document, item.position, item.speaker) == ("p01", 4, "DR AMINAH")
    assert item.previous_speaker == "INTERVIEWER" and item.previous_text == "And who helps them?"
    assert item.next_text == "What stops them?"
    assert [(s.path, s.score, s.source, s.rank) for s in item.suggestions] == [
        ("Networking/Government and non-government institutions", 0.6, "codebook", 1),
        ("Networking/Personal relations", 0.55, "codebook", 2)]
    assert item.suggestions[0].above_threshold
    roles = {r["role"] for r in rstudy.db.query(
        "SELECT role FROM segment_view WHERE segment_id IN (%s)"
        % ",".join(str(i.segment_id) for i in R.queue(rstudy, "alice")))}
    assert roles == {"participant"}


def test_queue_resumes_filters_and_blind(rstudy):
    R.decide(rstudy, "alice", seg(rstudy, "p01", 4), "net-personal", "confirmed")
    R.decide(rstudy, "bob", seg(rstudy, "p01", 2), "trig-domestic", "confirmed")
    assert ("p01", 4) not in positions(R.queue(rstudy, "alice"))
    assert ("p01", 4) in positions(R.queue(rstudy, "bob"))
    assert R.progress(rstudy, "alice") == (1, 5)
    net = R.queue(rstudy, "bob", codes=["Networking/*"], show_others=True)
    assert positions(net) == [("p01", 4)]
    assert [s.code_id for s in net[0].suggestions] == ["net-institutions", "net-personal"]
    assert net[0].others == [("alice", "Networking/Personal relations", "confirmed")]
    assert R.queue(rstudy, "bob", codes=["Networking/*"])[0].others == []  # hidden by default
    blind = R.queue(rstudy, "carol", codes=["Networking/*"], blind=True)
    assert len(blind) == 5 and all(not i.suggestions and not i.others for i in blind)
    assert positions(R.queue(rstudy, "alice", documents=["p02"])) == [("p02", 2), ("p02", 4)]
    with pytest.raises(UnknownReference, match="unknown document"):
        R.queue(rstudy, "alice", documents=["p99"])
    with pytest.raises(UnknownReference, match="unknown code 'Nowhere'"):
        R.queue(rstudy, "alice", codes=["Nowhere/*"])


# -- bulk acceptance ---------------------------------------------------------------------------
@pytest.fixture
def bulk_study(tmp_path, data_dir):
    s = Study.create(tmp_path / "bulk.db", codebook=data_dir / "small_codebook.yaml")
    s.import_transcripts([long_transcript(tmp_path / "long.txt", 60)])
    rows = []
    for pos in range(2, 121, 2):  # respondent turns
        rows.append(("long", pos, "net-personal", 0.8, 1))
        rows.append(("long", pos, "bar-finance", 0.6, 2))
        rows.append(("long", pos, "trig-domestic", 0.55, 3))
    add_suggestions(s, rows)
    # alice reviews 40 segments: net-personal right 39 times, bar-finance 30/40, domestic 10 seen
    for k, pos in enumerate(range(2, 82, 2)):
        sid = seg(s, "long", pos)
        R.decide(s, "alice", sid, "net-personal", "rejected" if k == 0 else "confirmed")
        R.decide(s, "alice", sid, "bar-finance", "confirmed" if k < 30 else "rejected")
        if k < 10:
            R.decide(s, "alice", sid, "trig-domestic", "confirmed")
    yield s
    s.close()


def test_bulk_accept_guards_by_measured_precision_and_undo(bulk_study):
    before = current(bulk_study)
    report = R.bulk_accept(bulk_study, "alice", min_precision=0.95, min_reviewed=30)
    table = report.codes.set_index("code_id")
    assert report.qualified == ["Networking/Personal relations"]
    assert table.loc["net-personal", "reason"] == "precision 0.97 on 40 reviewed"
    assert table.loc["bar-finance", "reason"] == "precision 0.75 below 0.95"
    assert table.loc["trig-domestic", "reason"] == "only 10 reviewed suggestion(s); needs 30"
    assert report.accepted == 20
    auto = bulk_study.codings("alice", decisions=["auto"])
    assert len(auto) == 20 and set(auto["code_id"]) == {"net-personal"}
    assert set(auto["source"]) == {"bulk"}
    # a second run adds nothing; a person confirming an auto row keeps it through undo_bulk
    assert R.bulk_accept(bulk_study, "alice").accepted == 0
    R.decide(bulk_study, "alice", int(auto["segment_id"].iloc[0]), "net-personal", "confirmed")
    assert R.undo_bulk(bulk_study, "alice") == 19
    after = current(bulk_study)
    assert after - before == {(int(auto["segment_id"].iloc[0]), "net-personal", "confirmed")}
    with pytest.raises(NothingToDo, match="no bulk-accepted codings"):
        R.undo_bulk(bulk_study, "alice")


def test_bulk_accept_dry_run_writes_nothing(bulk_study):
    n = bulk_study.db.one("SELECT COUNT(*) FROM codings")[0]
    report = R.bulk_accept(bulk_study, "alice", dry_run=True)
    assert report.accepted == 20
    assert bulk_study.db.one("SELECT COUNT(*) FROM codings")[0] == n


# -- CLI ---------------------------------------------------------------------------------------
def test_cli_accept_and_undo(bulk_study):
    path = str(bulk_study.path)
    r = CliRunner().invoke(cli, ["review", "accept", path, "--coder", "alice",
                                 "--min-precision", "0.95"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [
        "  no  Triggering factors/Domestic conditions: only 10 reviewed suggestion(s); needs 30",
        "  yes Networking/Personal relations: precision 0.97 on 40 reviewed; 20 accepted",
        "  no  Barriers and challenges/Financial constraints: precision 0.75 below 0.95",
        "Accepted 20 suggestion(s) as 'auto' for alice (1 of 3 code(s) qualified; undo with "
        "--undo).",
        f"Batch 1: 20 new decision(s); replaced no existing decision (undo: coder undo {path} "
        "--batch 1)",
    ]
    r = CliRunner().invoke(cli, ["review", "accept", path, "--coder", "alice", "--undo"])
    assert (r.exit_code, r.output) == (0, "Removed 20 bulk-accepted coding(s) of alice.\n")


def test_cli_codings_csv_json_history(rstudy):
    R.decide(rstudy, "alice", seg(rstudy, "p01", 4), "net-personal", "confirmed")
    R.decide(rstudy, "alice", seg(rstudy, "p01", 4), "net-personal", "rejected")
    path = str(rstudy.path)
    r = CliRunner().invoke(cli, ["codings", path, "--coder", "alice"])
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[0].startswith("coding_id,") and len(lines) == 2 and ",rejected," in lines[1]
    r = CliRunner().invoke(cli, ["codings", path, "--format", "json", "--history"])
    rows = json.loads(r.output)
    assert [(x["action"], x["decision"]) for x in rows] == [("insert", "confirmed"),
                                                           ("update", "rejected")]
    r = CliRunner().invoke(cli, ["codings", path, "--coder", "zoe"])
    assert r.exit_code == 1 and r.output.startswith("Error: unknown coder 'zoe'")


@pytest.mark.parametrize("name", ["", "   "])
def test_cli_rejects_empty_coder_names(rstudy, name):
    for args in (["review", str(rstudy.path), "--coder", name],
                 ["review", "export", str(rstudy.path), "x.xlsx", "--coder", name],
                 ["review", "accept", str(rstudy.path), "--coder", name]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 1, args
        assert r.output == ("Error: a coder name is required and cannot be empty "
                            "(e.g. --coder alice)\n")
    assert rstudy.coders() == []


def test_cli_review_group_form_and_subcommands_both_parse(rstudy):
    for sid in [i.segment_id for i in R.queue(rstudy, "alice")]:
        R.decide(rstudy, "alice", sid, None, "no_code")
    r = CliRunner().invoke(cli, ["review", str(rstudy.path), "--coder", "alice"])
    assert (r.exit_code, r.output) == (0, "Nothing left to review for alice: 5 of 5 segments "
                                          "decided.\n")
    r = CliRunner().invoke(cli, ["review", "--coder", "alice", str(rstudy.path)])
    assert r.exit_code == 0 and r.output.startswith("Nothing left to review for alice")
    r = CliRunner().invoke(cli, ["review", "--help"])
    assert r.exit_code == 0 and "export" in r.output and "accept" in r.output
    r = CliRunner().invoke(cli, ["review", str(rstudy.path), "--coder", "alice", "--order", "x"])
    assert r.exit_code == 2


# -- two coders at once ------------------------------------------------------------------------
def test_two_reviewers_in_threads_lose_nothing(tmp_path, data_dir):
    s = Study.create(tmp_path / "two.db", codebook=data_dir / "small_codebook.yaml")
    s.import_transcripts([long_transcript(tmp_path / "long.txt", 80)])
    ids = [i.segment_id for i in R.queue(s, "alice", order="document")]
    s.close()
    errors = []

    def work(coder, code):
        st = Study(tmp_path / "two.db")
        try:
            for sid in ids:
                R.decide(st, coder, sid, code, "added")
                R.decide(st, coder, sid, code, "confirmed")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            st.close()

    threads = [threading.Thread(target=work, args=(c, k)) for c, k in
               (("alice", "net-personal"), ("bob", "bar-finance"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    s = Study(tmp_path / "two.db")
    for coder in ("alice", "bob"):
        assert len(s.codings(coder, decisions=["confirmed"])) == 80
    assert s.db.one("SELECT COUNT(*) FROM coding_history")[0] == 320
    s.close()


WORKER = """
import sys
from coder import Study, review
s = Study(sys.argv[1])
ids = [int(x) for x in sys.argv[3].split(',')]
for sid in ids:
    review.decide(s, sys.argv[2], sid, sys.argv[4], 'confirmed')
"""


def test_two_reviewer_processes_lose_nothing(tmp_path, data_dir):
    s = Study.create(tmp_path / "two.db", codebook=data_dir / "small_codebook.yaml")
    s.import_transcripts([long_transcript(tmp_path / "long.txt", 60)])
    ids = ",".join(str(i.segment_id) for i in R.queue(s, "alice"))
    s.close()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / "two.db"), coder,
                               ids, code], cwd=ROOT)
             for coder, code in (("alice", "net-personal"), ("bob", "bar-finance"))]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    s = Study(tmp_path / "two.db")
    assert {c: len(s.codings(c)) for c in ("alice", "bob")} == {"alice": 60, "bob": 60}
    s.close()
