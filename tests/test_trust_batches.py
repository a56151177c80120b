"""Numbers a paper can trust, part 1: a sheet is recorded only as its own coder's (or on
purpose as someone else's), and every import is a numbered batch that `coder undo --batch N`
takes back exactly, or refuses to when its decisions changed since."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import openpyxl
import pytest
from cli_helpers import dump, run
from review_helpers import add_suggestions, long_transcript, make_study, seg

from coder import Study
from coder import review as R
from coder.store import batches
from coder.store.migrations import MIGRATIONS


def table(path: Path, name: str) -> list[str]:
    """The INSERT lines of one table in an iterdump: its rows, ids and every column."""
    return [line for line in dump(path).splitlines() if line.startswith(f'INSERT INTO "{name}"')]


def fill(path: Path, decisions: dict[tuple[str, int], str], memos=None) -> None:
    wb = openpyxl.load_workbook(path)
    ws = wb["review"]
    header = [c.value for c in ws[1]]
    for row in ws.iter_rows(min_row=2):
        key = (row[0].value, row[1].value)
        if key in decisions:
            row[header.index("decision")].value = decisions[key]
        if memos and key in memos:
            row[header.index("memo")].value = memos[key]
    wb.save(path)


@pytest.fixture
def study_file(tmp_path, data_dir) -> Path:
    make_study(tmp_path / "study.db", data_dir).close()
    return tmp_path / "study.db"


ALICE = {("p01", 2): "trig-domestic", ("p01", 4): "net-personal", ("p01", 6): "none"}
BOB = {("p01", 2): "bar-finance", ("p01", 4): "none", ("p01", 6): "bar-finance",
       ("p02", 2): "trig-globalization", ("p02", 4): "none"}


@pytest.fixture
def two_sheets(study_file, tmp_path):
    """alice's sheet imported (batch 1); bob's sheet exported for bob and filled in."""
    alice, bob = tmp_path / "alice.xlsx", tmp_path / "bob.xlsx"
    assert run("review", "export", study_file, alice, "--coder", "alice", "--order",
               "document").exit_code == 0
    fill(alice, ALICE)
    assert run("review", "import", study_file, alice).exit_code == 0  # the sheet says alice
    assert run("review", "export", study_file, bob, "--coder", "bob", "--order",
               "document").exit_code == 0
    fill(bob, BOB)
    return study_file, bob


def test_a_sheet_exported_for_bob_is_refused_under_alice(two_sheets):
    study, bob = two_sheets
    before = dump(study)
    r = run("review", "import", study, bob, "--coder", "alice")
    assert (r.exit_code, r.output) == (
        1, f"Error: {bob}: this sheet was exported for bob (use --coder bob, or --as alice to "
           "record bob's sheet as alice's)\n")
    assert dump(study) == before
    # "Bob" is bob: the sheet's own spelling is kept
    r = run("review", "import", study, bob, "--coder", "Bob")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[:2] == [
        "new coder 'bob'",
        "Imported 5 decided row(s) of 5 (0 left empty) for bob: 3 confirmed, 0 added, "
        "3 rejected, 2 no code, 0 memo(s)."]
    with Study(study) as s:
        assert s.coders() == ["alice", "bob"]


def test_as_records_bobs_sheet_as_alices_names_the_batch_and_undo_puts_it_all_back(two_sheets):
    study, bob = two_sheets
    codings_before, memos_before = table(study, "codings"), table(study, "memos")
    status_before = run("status", study).output
    r = run("review", "import", study, bob, "--as", "alice")
    assert (r.exit_code, r.output) == (0, (
        "Imported 5 decided row(s) of 5 (0 left empty) for alice: 3 confirmed, 0 added, "
        "3 rejected, 2 no code, 0 memo(s).\n"
        "Batch 2: 3 new decision(s); replaced 5 existing decision(s): alice 5 "
        f"(undo: coder undo {study} --batch 2)\n"))
    assert table(study, "codings") != codings_before
    r = run("batches", study)
    with Study(study) as s:
        stamps = [b.created_at for b in batches.batches(s)]
    assert (r.exit_code, r.output.splitlines()) == (0, [
        f"batch 1 (review sheet {study.parent / 'alice.xlsx'}, alice, {stamps[0]}): 6 new "
        "decision(s); replaced no existing decision",
        f"batch 2 (review sheet {bob}, alice, {stamps[1]}): 3 new decision(s); replaced 5 "
        "existing decision(s): alice 5"])
    r = run("undo", study, "--batch", "2")
    assert (r.exit_code, r.output) == (
        0, f"Undid batch 2 (review sheet {bob}): removed 3 decision(s) it added, put back 5 it "
           "had replaced.\n")
    assert table(study, "codings") == codings_before      # the same rows, ids, every column
    assert table(study, "memos") == memos_before
    assert run("status", study).output == status_before
    with Study(study) as s:
        undone = batches.batches(s)[1].undone_at
    assert run("batches", study).output.splitlines()[1].endswith(f"alice 5 [undone {undone}]")
    # undone already: refused, nothing written
    before = dump(study)
    r = run("undo", study, "--batch", "2")
    assert r.exit_code == 1 and r.output.startswith("Error: batch 2 was undone already, at ")
    assert dump(study) == before


def test_undo_of_a_batch_whose_decisions_changed_since_is_refused(two_sheets, tmp_path):
    study, bob = two_sheets
    assert run("review", "import", study, bob, "--as", "alice").exit_code == 0
    with Study(study) as s:  # alice changes her mind on p02 #2 in the review
        R.decide(s, "alice", seg(s, "p02", 2), "trig-globalization", "rejected")
    before = dump(study)
    r = run("undo", study, "--batch", "2")
    assert (r.exit_code, r.output) == (
        1, "Error: batch 2 cannot be undone: 1 of the decisions it wrote changed since (p02 #2 "
           "alice) (they were decided again since, in a review or on the web page; nothing was "
           "undone)\n")
    assert dump(study) == before
    # a later batch on the same segments: undo that one first
    (tmp_path / "c.csv").write_text("document,segment,code,coder\np01,2,trig-domestic,alice\n",
                                    encoding="utf-8")
    r = run("codes", "import", study, tmp_path / "c.csv")
    assert (r.exit_code, r.output) == (0, "Imported 1 coding(s); batch 3: 0 new decision(s); "
                                          "replaced 1 existing decision(s): alice 1.\n")
    before = dump(study)
    r = run("undo", study, "--batch", "2")
    assert r.exit_code == 1
    assert r.output == ("Error: batch 2 cannot be undone: 2 of the decisions it wrote changed "
                        "since (p01 #2 alice, p02 #2 alice) (undo batch 3 first: coder undo "
                        f"{study} --batch 3)\n")
    assert dump(study) == before
    r = run("undo", study, "--batch", "9")
    assert (r.exit_code, r.output) == (1, f"Error: no batch 9 (batches 1 to 3; see them with: "
                                          f"coder batches {study})\n")
    assert dump(study) == before


def test_a_sheet_without_its_about_tab_needs_coder_and_both_options_is_a_usage_error(
        study_file, tmp_path):
    sheet = tmp_path / "carol.csv"
    r = run("review", "export", study_file, sheet, "--coder", "carol", "--order", "document")
    assert r.output.startswith("new coder 'carol'\nWrote 5 segment(s)")
    rows = list(csv.reader(sheet.open(encoding="utf-8")))
    rows[1][rows[0].index("decision")] = "trig-domestic"
    with sheet.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    before = dump(study_file)
    r = run("review", "import", study_file, sheet)
    assert (r.exit_code, r.output) == (
        1, f"Error: {sheet}: this sheet does not say whose decisions it holds (a CSV sheet, or "
           "one without its 'about' tab) (give the coder: --coder NAME)\n")
    assert dump(study_file) == before
    r = run("review", "import", study_file, sheet, "--coder", "carol", "--as", "dave")
    assert r.exit_code == 2 and "give --coder (the sheet's own coder) or --as" in r.output
    assert dump(study_file) == before
    r = run("review", "import", study_file, sheet, "--coder", "carol")
    assert (r.exit_code, r.output) == (0, (
        "new coder 'carol'\n"
        "Imported 1 decided row(s) of 5 (4 left empty) for carol: 1 confirmed, 0 added, "
        "1 rejected, 0 no code, 0 memo(s).\n"
        f"Batch 1: 2 new decision(s); replaced no existing decision (undo: coder undo "
        f"{study_file} --batch 1)\n"))


def test_memos_and_single_decisions_of_an_undone_batch_are_taken_back(study_file, tmp_path):
    with Study(study_file) as s:
        R.decide(s, "alice", seg(s, "p02", 4), None, "no_code")  # a review decision first
    sheet = tmp_path / "alice.xlsx"
    run("review", "export", study_file, sheet, "--coder", "alice", "--order", "document")
    fill(sheet, {("p01", 2): "trig-domestic"}, memos={("p01", 4): "ask about the grant"})
    codings, memos = table(study_file, "codings"), table(study_file, "memos")
    r = run("review", "import", study_file, sheet, "--coder", "alice")
    assert r.output.splitlines()[-1] == (
        "Batch 1: 2 new decision(s); replaced no existing decision; 1 memo(s) (undo: coder undo "
        f"{study_file} --batch 1)")
    assert run("undo", study_file, "--batch", "1").output == (
        f"Undid batch 1 (review sheet {sheet}): removed 2 decision(s) it added, put back 0 it "
        "had replaced, removed 1 memo(s).\n")
    assert (table(study_file, "codings"), table(study_file, "memos")) == (codings, memos)
    with Study(study_file) as s:  # `u` in the review skips the undone sheet's decisions
        assert R.undo(s, "alice").description == "undid decision on p02 #4"


def test_codings_csv_import_is_a_batch_with_its_replacements_by_coder(study, tmp_path):
    path = study.path
    study.close()
    (tmp_path / "a.csv").write_text(
        "document,segment,code,coder\np01,2,Domestic conditions,alice\np01,4,trig-domestic,bob\n"
        "p02,2,Globalization force,alice\n", encoding="utf-8")
    r = run("codes", "import", path, tmp_path / "a.csv")
    assert (r.exit_code, r.output) == (0, "new coder 'alice'\nnew coder 'bob'\nImported 3 "
                                          "coding(s); batch 1: 3 new decision(s); replaced no "
                                          "existing decision.\n")
    after_first = table(path, "codings")
    (tmp_path / "b.csv").write_text(
        "document,segment,code,coder,decision\np01,4,trig-domestic,Bob,rejected\n"
        "p01,6,bar-finance,bob,confirmed\np02,2,Globalization force,alice,confirmed\n",
        encoding="utf-8")
    r = run("codes", "import", path, tmp_path / "b.csv")
    assert (r.exit_code, r.output) == (0, "Imported 3 coding(s); batch 2: 1 new decision(s); "
                                          "replaced 1 existing decision(s): bob 1.\n")
    assert run("undo", path, "--batch", "2").output == (
        f"Undid batch 2 (codings CSV {tmp_path / 'b.csv'}): removed 1 decision(s) it added, put "
        "back 1 it had replaced.\n")
    assert table(path, "codings") == after_first
    # the same file again changes nothing: no batch
    r = run("codes", "import", path, tmp_path / "a.csv")
    assert r.output == "Imported 3 coding(s); nothing changed, so no batch was recorded.\n"


def test_bulk_accept_is_a_batch_and_undo_batch_removes_it(tmp_path, data_dir):
    s = Study.create(tmp_path / "bulk.db", codebook=data_dir / "small_codebook.yaml")
    s.import_transcripts([long_transcript(tmp_path / "long.txt", 40)])
    add_suggestions(s, [("long", pos, "net-personal", 0.8, 1) for pos in range(2, 81, 2)])
    for pos in range(2, 42, 2):
        R.decide(s, "alice", seg(s, "long", pos), "net-personal", "confirmed")
    s.close()
    before = table(tmp_path / "bulk.db", "codings")
    r = run("review", "accept", tmp_path / "bulk.db", "--coder", "alice", "--min-reviewed", "20")
    assert r.output.splitlines()[-1] == (
        "Batch 1: 20 new decision(s); replaced no existing decision (undo: coder undo "
        f"{tmp_path / 'bulk.db'} --batch 1)")
    r = run("undo", tmp_path / "bulk.db", "--batch", "1")
    assert r.output == ("Undid batch 1 (bulk accept): removed 20 decision(s) it added, put back "
                        "0 it had replaced.\n")
    assert table(tmp_path / "bulk.db", "codings") == before


def test_a_project_import_is_batch_1_of_the_new_study(study_file, tmp_path):
    with Study(study_file) as s:
        R.decide(s, "alice", seg(s, "p01", 2), "trig-domestic", "confirmed")
        R.decide(s, "bob", seg(s, "p01", 4), "net-personal", "confirmed")
    assert run("export", study_file, tmp_path / "p.qdpx").exit_code == 0
    new = tmp_path / "new.db"
    r = run("import-project", new, tmp_path / "p.qdpx")
    assert r.output.endswith(f"2 codings by 2 coder(s) (batch 1; undo with: coder undo {new} "
                             "--batch 1).\n")
    with Study(new) as s:
        (b,) = batches.batches(s)
    assert (b.number, b.kind, b.coders, b.new) == (1, "project", ["alice", "bob"], 2)
    assert run("undo", new, "--batch", "1").exit_code == 0
    assert table(new, "codings") == []
    assert run("batches", study_file).output == (
        "No batches yet: review sheet imports, codings imports, project imports and bulk "
        "accepts are numbered here.\n")


def test_a_study_made_before_this_version_opens_migrates_and_says_not_recorded(tmp_path):
    """A file with every schema step but this one, holding two coders' decisions made then."""
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)
    conn.execute("CREATE TABLE _migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
                 "applied_at TEXT NOT NULL)")
    for name, sql in MIGRATIONS:
        if name != "0004_batches_and_context":
            conn.executescript(sql)
            conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, 'then')", (name,))
    conn.executescript("""
        INSERT INTO documents (id, name, format, sha256, text, unit, imported_at)
            VALUES (1, 'p01', 'txt', 'x', 'A: hi', 'turn', 'then');
        INSERT INTO speakers (id, document_id, label, role) VALUES (1, 1, 'A', 'participant');
        INSERT INTO segments (id, document_id, position, speaker_id, start_char, end_char, text,
                              text_hash) VALUES (1, 1, 1, 1, 3, 5, 'hi', 'h');
        INSERT INTO coders (id, name, created_at) VALUES (1, 'alice', 'then'), (2, 'bob', 'then');
        INSERT INTO codings (segment_id, coder_id, code_id, decision, created_at)
            VALUES (1, 1, NULL, 'no_code', 'then'), (1, 2, NULL, 'no_code', 'then');
    """)
    conn.commit()
    conn.close()
    with Study(old) as s:  # opening migrates
        assert s.db.applied_migrations()[-1] == "0004_batches_and_context"
        assert batches.batches(s) == []
        assert [r["context_id"] for r in s.db.query("SELECT context_id FROM codings")] == [
            None, None]
        result = R.independence(s, "Alice", "bob")
        assert (result["independent"], result["unrecorded"]) == (None, {"alice": 1, "bob": 1})
        assert R.independence_line(result) == (
            "alice & bob: not known on 1 of 1 segment both decided (what was shown was not "
            "recorded: imported decisions, or made before coder recorded it)")


def test_accept_undo_marks_its_bulk_batches_undone(tmp_path, data_dir):
    s = Study.create(tmp_path / "bulk.db", codebook=data_dir / "small_codebook.yaml")
    s.import_transcripts([long_transcript(tmp_path / "long.txt", 40)])
    add_suggestions(s, [("long", pos, "net-personal", 0.8, 1) for pos in range(2, 81, 2)])
    for pos in range(2, 42, 2):
        R.decide(s, "alice", seg(s, "long", pos), "net-personal", "confirmed")
    assert R.bulk_accept(s, "alice", min_reviewed=20).batch.number == 1
    assert R.undo_bulk(s, "alice") == 20
    (b,) = batches.batches(s)
    assert b.undone_at is not None
    s.close()
    before = dump(tmp_path / "bulk.db")
    r = run("undo", tmp_path / "bulk.db", "--batch", "1")
    assert r.exit_code == 1 and r.output.startswith("Error: batch 1 was undone already, at ")
    assert dump(tmp_path / "bulk.db") == before
