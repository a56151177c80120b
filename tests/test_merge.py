"""Teams that code apart: `coder split` a copy per coder, `coder merge` the copies back.

Every study here is built with the CLI in a tmp dir from tests/data; the inputs of a merge are
hashed before and after (never changed) and a refused merge leaves the target exactly as it was.
"""

from __future__ import annotations

import gc
import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from coder.analysis.agreement import study_agreement
from coder.errors import CoderError
from coder.exchange.merge import MergeConflicts, merge, split
from coder.review import context, decisions, spans
from coder.study import Study
from tests.cli_helpers import dump, run

DATA = Path(__file__).parent / "data"


def ok(*args):
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


def sha(path: Path) -> str:
    # the CLI runner's studies are closed when collected: their WAL goes into the file then
    gc.collect()
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def copy_study(source: Path, dest: Path) -> None:
    """A copy as SQLite sees the study (its WAL included), not just the main file's bytes."""
    src, dst = sqlite3.connect(source), sqlite3.connect(dest)
    src.backup(dst)
    src.close()
    dst.close()


@pytest.fixture
def files(tmp_path):
    """tests/data copied, so a test may edit a transcript or a codebook."""
    target = tmp_path / "data"
    shutil.copytree(DATA, target)
    return target


@pytest.fixture
def study(tmp_path, files) -> Path:
    """A study of two interviews (10 turns, 6 the participants'), the small codebook."""
    path = tmp_path / "study.db"
    ok("init", path, "--codebook", files / "small_codebook.yaml")
    ok("import", path, files / "p01.txt", files / "p02.txt")
    return path


def participant_segments(path: Path) -> list[tuple[str, int]]:
    with Study(path) as s:
        return [(r["document"], r["position"]) for r in s.db.query(
            "SELECT document, position FROM segment_view WHERE role='participant' "
            "ORDER BY document, position")]


def segment(s: Study, document: str, position: int) -> int:
    return s.db.one("SELECT segment_id FROM segment_view WHERE document=? AND position=?",
                    (document, position))[0]


ALICE = ["confirmed", "rejected", "confirmed", "confirmed", "rejected"]
BOB = ["confirmed", "confirmed", "rejected", "confirmed", "rejected"]


def code_as(path: Path, coder: str, pattern: list[str], code: str = "trig-domestic",
            seen=None) -> None:
    with Study(path) as s:
        for (doc, pos), decision in zip(participant_segments(path), pattern):
            decisions.decide(s, coder, segment(s, doc, pos), code, decision, seen=seen)


def codings(path: Path) -> list[tuple]:
    """Every current decision, by what it means (ids differ between files)."""
    with Study(path) as s:
        return sorted((tuple(r) for r in s.db.query(
            "SELECT v.document, v.position, c.name, k.code_id, k.decision, k.memo, k.start_char,"
            " k.end_char FROM codings k JOIN segment_view v ON v.segment_id = k.segment_id "
            "JOIN coders c ON c.id = k.coder_id")), key=lambda t: tuple(map(str, t)))


def refused(args, *expected: str, unchanged: list[Path]):
    """A merge refused with exit 1 and these words, every file exactly as it was."""
    before = {p: (sha(p) if p.exists() else None) for p in unchanged}
    result = run("merge", *args)
    assert result.exit_code == 1, result.output
    for words in expected:
        assert words in result.output, result.output
    assert "nothing was written" in result.output
    assert {p: (sha(p) if p.exists() else None) for p in unchanged} == before
    return result.output


# -- two coders apart, agreement afterwards ----------------------------------------------------
def test_two_blind_copies_merge_to_the_agreement_of_one_study_where_both_coded(study, tmp_path):
    single = tmp_path / "single.db"
    copy_study(study, single)
    code_as(single, "alice", ALICE)
    code_as(single, "bob", BOB)

    ok("split", study, "--coder", "alice", tmp_path / "alice.db", "--blind")
    ok("split", study, "--coder", "bob", tmp_path / "bob.db", "--blind")
    code_as(tmp_path / "alice.db", "alice", ALICE)
    code_as(tmp_path / "bob.db", "bob", BOB)
    inputs = {p: sha(p) for p in (tmp_path / "alice.db", tmp_path / "bob.db")}

    out = ok("merge", study, tmp_path / "alice.db", tmp_path / "bob.db").output
    assert "10 new decision(s)" in out and "batch 1" in out
    assert {p: sha(p) for p in inputs} == inputs          # the copies were never written
    assert codings(study) == codings(single)
    with Study(study) as merged, Study(single) as one:
        got = study_agreement(merged, ["alice", "bob"], ci=False)
        want = study_agreement(one, ["alice", "bob"], ci=False)
        assert got.units == want.units == 5
        assert got.as_dict() == want.as_dict()
        # the audit trail came along: one insert per decision in the copy, one by the merge
        assert merged.db.one("SELECT COUNT(*) FROM coding_history")[0] == 20


def test_a_target_that_does_not_exist_starts_as_the_first_copy(study, tmp_path):
    ok("split", study, "--coder", "alice", tmp_path / "alice.db", "--blind")
    ok("split", study, "--coder", "bob", tmp_path / "bob.db", "--blind")
    code_as(tmp_path / "alice.db", "alice", ALICE)
    code_as(tmp_path / "bob.db", "bob", BOB)
    new = tmp_path / "team.db"
    out = ok("merge", new, tmp_path / "alice.db", tmp_path / "bob.db").output
    assert "5 new decision(s)" in out                     # bob's; alice's are the study's own
    assert len(codings(new)) == 10
    assert run("merge", tmp_path / "other.db", tmp_path / "alice.db").exit_code == 1


# -- dry run -----------------------------------------------------------------------------------
def test_dry_run_prints_the_whole_plan_and_writes_nothing(study, tmp_path):
    ok("split", study, "--coder", "alice", tmp_path / "alice.db", "--blind")
    code_as(tmp_path / "alice.db", "alice", ALICE)
    with Study(tmp_path / "alice.db") as s:
        decisions.decide(s, "alice", segment(s, "p01", 2), "net-personal", "added",
                         memo="friends abroad")
    before = dump(study)
    out = ok("merge", study, tmp_path / "alice.db", "--dry-run").output
    assert dump(study) == before
    assert f"Merge into {study} from {tmp_path / 'alice.db'}:" in out
    assert "documents matched: 2 (p01, p02)" in out
    assert "coders added: alice" in out
    assert f"decisions from {tmp_path / 'alice.db'}: 6 new" in out
    assert "conflicts: none" in out
    assert "nothing written (dry run)" in out


# -- the conflicts, each refused until an option settles it --------------------------------------
def test_the_same_coder_deciding_differently_in_two_copies_is_refused_then_settled(study,
                                                                                  tmp_path):
    laptop, desktop = tmp_path / "laptop.db", tmp_path / "desktop.db"
    ok("split", study, "--coder", "alice", laptop)
    ok("split", study, "--coder", "alice", desktop)
    code_as(laptop, "alice", ALICE)
    code_as(desktop, "alice", ["rejected"] + ALICE[1:])   # the first segment differs
    out = refused([study, laptop, desktop], "1 conflict(s) unresolved",
                  "decision: p01 #2, alice, Triggering factors/Domestic conditions",
                  f"{laptop} has confirmed", f"{desktop} has rejected", "(unresolved)",
                  "--prefer newest|study|FILE", unchanged=[study, laptop, desktop])
    assert "--add-codes" not in out
    new = tmp_path / "new.db"                      # a new target is not left behind either
    refused([new, laptop, desktop], "decision: p01 #2", unchanged=[new, laptop, desktop])
    assert not new.exists() and not list(tmp_path.glob(".*.tmp"))
    plan = ok("merge", study, laptop, desktop, "--dry-run").output
    assert "conflicts: 1, 1 unresolved" in plan and "the merge would be refused" in plan
    # --prefer study cannot settle it: the study is not one side of it
    refused([study, laptop, desktop, "--prefer", "study"], "decision: p01 #2",
            unchanged=[study, laptop, desktop])
    ok("merge", study, laptop, desktop, "--prefer", desktop)
    first = [c for c in codings(study) if c[:2] == ("p01", 2)]
    assert [c[4] for c in first] == ["rejected"]


def test_a_decision_changed_in_the_study_and_in_the_copy_is_a_conflict(study, tmp_path):
    code_as(study, "alice", ALICE)
    copy = tmp_path / "alice.db"
    ok("split", study, "--coder", "alice", copy)
    with Study(study) as s:
        decisions.decide(s, "alice", segment(s, "p01", 2), "trig-domestic", "rejected")
    with Study(copy) as s:
        decisions.decide(s, "alice", segment(s, "p01", 2), "trig-domestic", "confirmed",
                         memo="on reflection")
        # changed in the copy only: taken without a conflict
        decisions.decide(s, "alice", segment(s, "p01", 4), "trig-domestic", "rejected")
    refused([study, copy], f"{study} has rejected",
            f"{copy} has confirmed with memo 'on reflection'", unchanged=[study, copy])
    ok("merge", study, copy, "--prefer", "study")
    got = {c[:2]: c[4] for c in codings(study)}
    assert got[("p01", 2)] == "rejected" and got[("p01", 4)] == "rejected"


def test_a_code_only_a_copy_has_is_refused_unless_added(study, tmp_path, files):
    copy = tmp_path / "alice.db"
    ok("split", study, "--coder", "alice", copy, "--blind")
    bigger = files / "bigger.yaml"
    bigger.write_text((files / "small_codebook.yaml").read_text() + (
        "      - id: bar-language\n        name: Language barriers\n"
        "        items: [Contracts in a foreign language]\n"))
    ok("codebook", "import", copy, bigger)
    with Study(copy) as s:
        decisions.decide(s, "alice", segment(s, "p01", 6), "bar-language", "added")
    refused([study, copy], "code: 'Barriers and challenges/Language barriers' <bar-language>",
            f"{study} has no such code", "--add-codes", unchanged=[study, copy])
    with pytest.raises(MergeConflicts) as refusal:         # the library says the same, typed
        merge(study, [copy])
    assert [(c.kind, c.winner) for c in refusal.value.conflicts] == [("code", None)]
    plan = merge(study, [copy], dry_run=True, add_codes=True)
    assert plan.codes_added == ["Barriers and challenges/Language barriers"] and not plan.written
    ok("merge", study, copy, "--add-codes")
    with Study(study) as s:
        assert s.codebook_version == 2
        assert s.codebook().get("bar-language").parent_id == "bar"
    assert ("p01", 6, "alice", "bar-language", "added", None, None, None) in codings(study)


def test_codebooks_that_diverged_are_refused_then_the_newest_taken(study, tmp_path, files):
    copy = tmp_path / "alice.db"
    ok("split", study, "--coder", "alice", copy, "--blind")
    edited = files / "edited.yaml"
    edited.write_text((files / "small_codebook.yaml").read_text().replace(
        "Conditions at home that push firms abroad.", "A home market too small to grow in."))
    ok("codebook", "import", copy, edited)
    refused([study, copy], "codebook: code <trig-domestic> (description)",
            "'A home market too small to grow in.'", unchanged=[study, copy])
    ok("merge", study, copy, "--prefer", "newest")
    with Study(study) as s:
        assert s.codebook().get("trig-domestic").description == (
            "A home market too small to grow in.")
        assert s.codebook_version == 2


def _edit_p01(files: Path) -> Path:
    """p01 with its last answer reworded (the other turns unchanged)."""
    edited = files / "edited" / "p01.txt"
    edited.parent.mkdir()
    text = (files / "p01.txt").read_text()
    assert "Money. Bank loans take months" in text
    edited.write_text(text.replace("Money. Bank loans take months",
                                   "Money, mostly. Bank loans take many months"))
    return edited


def test_a_transcript_edited_in_a_copy_is_refused_then_either_version_kept(study, tmp_path,
                                                                          files):
    code_as(study, "bob", BOB)
    copy = tmp_path / "alice.db"
    ok("split", study, "--coder", "alice", copy, "--blind")
    ok("import", copy, _edit_p01(files), "--replace")
    code_as(copy, "alice", ALICE)               # p01 #2, #4, #6 (edited), p02 #2, #4
    refused([study, copy], "transcript: document 'p01'", "text sha256",
            unchanged=[study, copy])
    kept = tmp_path / "kept.db"
    copy_study(study, kept)
    out = ok("merge", kept, copy, "--prefer", "study", "--dry-run").output
    assert "documents kept: 1 (p01)" in out and "dropped (1)" in out
    ok("merge", kept, copy, "--prefer", "study")
    with Study(kept) as s:
        assert "Money. Bank loans" in s.db.one("SELECT text FROM documents WHERE name='p01'")[0]
    got = [c for c in codings(kept) if c[2] == "alice"]
    assert len(got) == 4 and ("p01", 6) not in {c[:2] for c in got}   # the edited turn's
    assert len([c for c in codings(kept) if c[2] == "bob"]) == 5

    out = ok("merge", study, copy, "--prefer", copy, "--dry-run").output
    assert "documents replaced: 1 (p01)" in out
    assert "1 of the study's decision(s) on 'p01'" in out          # bob's on the edited turn
    ok("merge", study, copy, "--prefer", copy)
    with Study(study) as s:
        text = s.db.one("SELECT text FROM documents WHERE name='p01'")[0]
        assert "Money, mostly." in text
    assert [c for c in codings(study) if c[2] == "alice"] == codings(copy)
    bob = {c[:2]: c[4] for c in codings(study) if c[2] == "bob"}
    assert bob == {("p01", 2): "confirmed", ("p01", 4): "confirmed", ("p02", 2): "confirmed",
                   ("p02", 4): "rejected"}


# -- split, code, merge --------------------------------------------------------------------------
def test_split_code_merge_round_trip_with_spans_history_and_context(study, tmp_path):
    code_as(study, "bob", BOB)
    copy = tmp_path / "alice.db"
    ok("split", study, "--coder", "alice", copy, "--blind")
    assert run("split", study, "--coder", "alice", copy).exit_code == 1   # never overwritten
    with Study(copy) as s:
        assert s.coders() == ["alice"]                                  # bob's work is gone
        assert s.db.one("SELECT COUNT(*) FROM coding_history")[0] == 0
        seen = context.seen(s, "web", blind=True)
    code_as(copy, "alice", ALICE, seen=seen)
    with Study(copy) as s:
        text = s.db.one("SELECT text FROM documents WHERE name='p01'")[0]
        start = text.index("MATRADE")
        span = spans.code_span(s, "alice", "p01", start, start + len("MATRADE"),
                               "net-institutions", memo="the agency")
        anchor = s.db.one("SELECT position FROM segment_view WHERE segment_id=(SELECT "
                          "segment_id FROM codings WHERE id=?)", (span,))[0]
        recorded = s.db.one("SELECT recorded_at FROM coding_history WHERE coding_id=?",
                            (span,))[0]
    before = sha(copy)
    ok("merge", study, copy)
    assert sha(copy) == before
    with Study(study) as s:
        row = s.db.one("SELECT k.*, v.position FROM codings k JOIN segment_view v ON "
                       "v.segment_id = k.segment_id WHERE k.start_char IS NOT NULL")
        assert (row["start_char"], row["end_char"], row["memo"]) == (
            start, start + len("MATRADE"), "the agency")
        assert row["position"] == anchor
        assert s.db.one("SELECT COUNT(*) FROM coding_history WHERE coding_id=? AND "
                        "recorded_at=?", (row["id"], recorded))[0] == 1
        blind = s.db.query("SELECT x.blind FROM codings k JOIN decision_contexts x ON "
                           "x.id = k.context_id JOIN coders c ON c.id = k.coder_id "
                           "WHERE c.name='alice'")
        assert len(blind) == 5 and all(r[0] == 1 for r in blind)
        assert study_agreement(s, ["alice", "bob"], ci=False).units == 5


def test_a_decision_removed_or_changed_only_in_the_copy_follows_it_without_conflict(study,
                                                                                 tmp_path):
    code_as(study, "alice", ALICE)
    code_as(study, "bob", BOB)
    copy = tmp_path / "alice.db"
    ok("split", study, "--coder", "alice", copy)
    with Study(copy) as s:
        row = s.db.one("SELECT id FROM codings WHERE segment_id=? AND coder_id=(SELECT id "
                       "FROM coders WHERE name='alice')", (segment(s, "p02", 2),))
        spans.remove_coding(s, "alice", row[0])
        decisions.decide(s, "alice", segment(s, "p01", 2), None, "no_code")
    out = ok("merge", study, copy).output
    assert "1 replaced" not in out and "conflict" not in out
    got = {(c[0], c[1], c[2]): c[4] for c in codings(study)}
    assert got[("p01", 2, "alice")] == "no_code"
    assert ("p02", 2, "alice") not in got
    assert got[("p02", 2, "bob")] == "confirmed"     # bob's decisions in the study stay
    assert codings(study) == codings(copy)


def test_the_merge_is_a_batch_that_undo_takes_back(study, tmp_path):
    code_as(study, "bob", BOB)
    copy = tmp_path / "alice.db"
    ok("split", study, "--coder", "alice", copy)
    code_as(copy, "alice", ALICE)
    with Study(copy) as s:
        decisions.decide(s, "bob", segment(s, "p01", 2), "trig-domestic", "rejected")
        text = s.db.one("SELECT text FROM documents WHERE name='p02'")[0]
        start = text.index("Family ties")
        spans.code_span(s, "alice", "p02", start, start + len("Family ties"), "net-personal")
    before = codings(study)
    out = ok("merge", study, copy).output
    assert "(batch 1; undo with: coder undo" in out
    assert len(codings(study)) == 11
    out = ok("undo", study, "--batch", "1").output
    assert "removed 6 decision(s) it added, put back 1 it had replaced" in out
    assert codings(study) == before
    assert "merged copies" in ok("batches", study).output


def test_split_blind_removes_the_models_trained_on_other_coders(study, tmp_path):
    code_as(study, "bob", BOB)
    with Study(study) as s:
        with s.db.transaction() as conn:
            for version, kind, coders in ((1, "codebook", []), (2, "trained", ["bob"])):
                conn.execute("INSERT INTO models (version, kind, embedder, codebook_version, "
                             "trained_on, created_at) VALUES (?,?,?,?,?,?)",
                             (version, kind, "test", 1, f'{{"coders": {coders!r}}}'.replace(
                                 "'", '"'), "2026-01-01T00:00:00Z"))
            seg = segment(s, "p01", 2)
            conn.execute("INSERT INTO suggestions (segment_id, code_id, score, rank, source, "
                         "model_version, codebook_version, created_at) VALUES "
                         "(?, 'net-personal', 0.9, 1, 'classifier', 2, 1, 'x'), "
                         "(?, 'trig-domestic', 0.5, 1, 'codebook', 1, 1, 'x')", (seg, seg + 2))
        s.db.execute("INSERT INTO memos (segment_id, coder_id, text, created_at) VALUES "
                     "(?, (SELECT id FROM coders WHERE name='bob'), 'bob thinks', 'x')", (seg,))
    report = split(study, "alice", tmp_path / "alice.db", blind=True)
    assert report.removed["models"] == 1 and report.removed["decisions"] == 5
    with Study(tmp_path / "alice.db") as s:
        assert [r[0] for r in s.db.query("SELECT version FROM models")] == [1]
        assert [r[0] for r in s.db.query("SELECT source FROM suggestions")] == ["codebook"]
        for table in ("codings", "coding_history", "memos", "review_actions"):
            assert s.db.one(f"SELECT COUNT(*) FROM {table}")[0] == 0, table
        assert s.db.one("SELECT value FROM study_info WHERE key='split_for'")[0] == "alice"
    # the vacuumed file holds none of bob's words
    assert b"bob thinks" not in (tmp_path / "alice.db").read_bytes()
    # not blind: everything stays
    split(study, "alice", tmp_path / "open.db")
    assert len(codings(tmp_path / "open.db")) == 5


def test_merge_checks_its_arguments_before_anything(study, tmp_path):
    with pytest.raises(CoderError, match="named twice"):
        merge(study, [study])
    result = run("merge", study, tmp_path / "missing.db")
    assert result.exit_code == 1 and "no study at" in result.output
    copy = tmp_path / "alice.db"
    split(study, "alice", copy)
    result = run("merge", study, copy, "--prefer", tmp_path / "elsewhere.db")
    assert result.exit_code == 1 and "not one of the files merged" in result.output


def test_a_copy_made_without_split_has_no_common_past_so_any_difference_is_a_conflict(
        study, tmp_path):
    code_as(study, "alice", ALICE)
    copy = tmp_path / "copied.db"
    copy_study(study, copy)                       # a plain copy: no record of where it began
    with Study(study) as s:
        decisions.decide(s, "alice", segment(s, "p02", 4), None, "no_code")
    with Study(copy) as s:
        decisions.decide(s, "alice", segment(s, "p02", 4), "net-personal", "added")
    # the study says "no code", the copy adds a code (and dropped the study's rejection)
    out = refused([study, copy], "decision: p02 #4, alice, no code and codes together",
                  f"{study} has no_code", f"{copy} has added", unchanged=[study, copy])
    assert "conflict(s) unresolved" in out and "Domestic conditions" not in out  # same there
    ok("merge", study, copy, "--prefer", copy)
    got = [c for c in codings(study) if c[:3] == ("p02", 4, "alice")]
    assert [(c[3], c[4]) for c in got] == [("net-personal", "added"),
                                          ("trig-domestic", "rejected")]


def test_a_copy_merged_again_after_more_coding_brings_only_what_changed(study, tmp_path):
    copy = tmp_path / "alice.db"
    ok("split", study, "--coder", "alice", copy, "--blind")
    code_as(copy, "alice", ALICE)
    ok("merge", study, copy)
    with Study(copy) as s:                        # a week later, in the same copy
        decisions.decide(s, "alice", segment(s, "p01", 2), "trig-domestic", "rejected")
    out = ok("merge", study, copy).output
    assert "0 new decision(s), 1 replaced" in out and "conflict" not in out
    assert codings(study) == codings(copy)
    assert "batch 2" in out


def test_a_consensus_built_in_a_copy_comes_with_its_build_and_sources(study, tmp_path):
    from coder.analysis.agreement import build_consensus, consensus_status

    code_as(study, "alice", ALICE)
    code_as(study, "bob", ["confirmed"] * 5)
    copy = tmp_path / "lead.db"
    ok("split", study, "--coder", "lead", copy)
    with Study(copy) as s:
        made = build_consensus(s, ["alice", "bob"], "consensus", single="keep")
        sources = s.db.one("SELECT COUNT(*) FROM consensus_sources")[0]
    assert sources > 0
    ok("merge", study, copy)
    with Study(study) as s:
        now = consensus_status(s, "consensus")
        assert (now.coders, now.covered, now.agreed, now.stale) == (
            ["alice", "bob"], made.covered, made.agreed, 0)
        assert s.db.one("SELECT COUNT(*) FROM consensus_sources")[0] == sources
        # each source is a decision of alice or bob on the consensus decision's segment
        assert s.db.one(
            "SELECT COUNT(*) FROM consensus_sources x JOIN codings a ON a.id = x.coding_id "
            "JOIN codings b ON b.id = x.source_coding_id WHERE a.segment_id = b.segment_id "
            "AND b.coder_id IN (SELECT id FROM coders WHERE name IN ('alice', 'bob'))"
        )[0] == sources


def test_a_participant_attribute_set_differently_is_a_conflict(study, tmp_path, files):
    people = files / "people.csv"
    people.write_text("participant,document,group\np01,p01,academic\n")
    ok("participants", "import", study, people)
    copy = tmp_path / "alice.db"
    ok("split", study, "--coder", "alice", copy)
    people.write_text("participant,document,group,region\np01,p01,industry,north\n")
    ok("participants", "import", copy, people)
    refused([study, copy], "attribute: participant p01, group", f"{study} has 'academic'",
            f"{copy} has 'industry'", unchanged=[study, copy])
    ok("merge", study, copy, "--prefer", "study")
    with Study(study) as s:
        got = s.participants().set_index("participant")
        assert (got.loc["p01", "group"], got.loc["p01", "region"]) == ("academic", "north")
