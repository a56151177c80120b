"""Who counts in N, on the bundled demo study (ten expert interviews, txt/docx/vtt, and its
participants file): a renamed copy of a transcript is refused, a master participants file waits
for the transcripts still to come, rows that match nothing are listed, and segments longer than
the embedding model reads are reported at import."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_helpers import dump, run

from coder import Study
from coder.errors import InputError
from coder.sources.segment import segment
from coder.sources.transcripts import (
    LONG_CHARS,
    content_key,
    read_transcript,
    too_long_for_model,
)

ROOT = Path(__file__).parent.parent
DEMO = ROOT / "coder" / "demo_data"
SEED = ROOT / "codebook" / "sme_internationalization.yaml"
INTERVIEWS = sorted(p for p in DEMO.iterdir() if p.stem.startswith("p") and p.suffix != ".csv")


@pytest.fixture
def demo(tmp_path) -> Path:
    """The demo study as a researcher builds it: seed codebook, ten interviews, participants,
    the two demo coders' decisions."""
    db = tmp_path / "study.db"
    assert run("init", db, "--codebook", SEED).exit_code == 0
    result = run("import", db, *INTERVIEWS, "--participants", DEMO / "participants.csv")
    assert result.exit_code == 0, result.output
    assert run("codes", "import", db, DEMO / "decisions.csv").exit_code == 0
    return db


def freq_n(db: Path, **kwargs) -> int:
    with Study(db) as s:
        return s.frequencies(coders=["alice", "bob"], **kwargs).attrs["N"]


# -- 1. the same transcript under another name ----------------------------------------------------
def test_renamed_copy_is_refused_and_the_study_stays_as_it_was(demo, tmp_path):
    copy = tmp_path / "p07-copy.docx"
    shutil.copy(DEMO / "p07.docx", copy)
    before = dump(demo)
    result = run("import", demo, copy)
    assert result.exit_code == 1
    assert result.output == (f"Error: {copy}: same text as document 'p07' (imported from "
                             "p07.docx); use --allow-duplicate to import it anyway\n")
    assert dump(demo) == before
    assert freq_n(demo) == 10


def test_same_text_in_another_encoding_and_line_endings_is_the_same_transcript(demo, tmp_path):
    text = (DEMO / "p01.txt").read_text(encoding="utf-8")
    copy = tmp_path / "p01 (2).txt"
    copy.write_bytes(text.replace("\n", "\r\n").replace("\r\n\r\n", "\r\n\r\n\r\n")
                     .encode("utf-16"))
    before = dump(demo)
    result = run("import", demo, copy)
    assert result.exit_code == 1
    assert result.output == (f"Error: {copy}: same text as document 'p01' (imported from "
                             "p01.txt); use --allow-duplicate to import it anyway\n")
    assert dump(demo) == before
    # what 'the same text' means: NFC, line endings, spacing within lines, blank lines
    assert content_key("A: caf\u00e9  au lait\r\n\r\n\r\nB:  yes \n") == content_key(
        "A: cafe\u0301 au lait\nB: yes")
    assert content_key("A: yes") != content_key("A: Yes")


def test_two_copies_in_one_import_are_refused(tmp_path):
    db = tmp_path / "study.db"
    run("init", db, "--codebook", SEED)
    copy = tmp_path / "p02-final.md"
    shutil.copy(DEMO / "p02.txt", copy)
    result = run("import", db, DEMO / "p02.txt", copy)
    assert result.exit_code == 1
    assert result.output == (f"Error: {copy}: same text as p02.txt (document 'p02' of this "
                             "import); use --allow-duplicate to import it anyway\n")
    with Study(db) as s:
        assert s.status().documents == 0


def test_allow_duplicate_imports_it_and_says_so(demo, tmp_path):
    copy = tmp_path / "p07-copy.docx"
    shutil.copy(DEMO / "p07.docx", copy)
    result = run("import", demo, copy, "--allow-duplicate")
    assert result.exit_code == 0
    assert result.output == (
        "Imported 1 document(s), replaced 0, unchanged 0; 27 segments (unit: turn).\n"
        "Imported with --allow-duplicate: p07-copy (same text as 'p07').\n")
    # importing the whole folder again is not a new duplicate: each file is its own document
    again = run("import", demo, *INTERVIEWS, copy)
    assert again.exit_code == 0, again.output
    assert again.output.startswith("Imported 0 document(s), replaced 0, unchanged 11;")


def test_library_refuses_with_input_error_and_reports_duplicates(tmp_path):
    s = Study.create(tmp_path / "study.db", codebook=SEED)
    s.import_transcripts([DEMO / "p05.vtt"])
    copy = tmp_path / "p05b.vtt"
    shutil.copy(DEMO / "p05.vtt", copy)
    with pytest.raises(InputError, match="same text as document 'p05'"):
        s.import_transcripts([copy])
    report = s.import_transcripts([copy], allow_duplicate=True)
    assert report.imported == ["p05b"] and report.duplicates == [("p05b", "p05")]
    # a copy with one word changed is another transcript
    edited = tmp_path / "p01-edited.txt"
    edited.write_text((DEMO / "p01.txt").read_text().replace("Malaysia", "Malaysia today", 1))
    assert s.import_transcripts([edited]).duplicates == []


# -- 2. a master participants file ----------------------------------------------------------------
def master_file(tmp_path) -> Path:
    """The demo participants (10) plus the 22 experts whose transcripts are not in yet."""
    lines = (DEMO / "participants.csv").read_text().splitlines()
    groups = ["academic", "policymaker", "agency", "chamber", "research institute"]
    lines += [f"P{i},p{i},EXPERT {i},{groups[i % 5]},female,40-49" for i in range(11, 33)]
    path = tmp_path / "master.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def new_interview(tmp_path, number: int) -> Path:
    """A new transcript: p01's interview with another expert saying it."""
    text = (DEMO / "p01.txt").read_text().replace("DR AMINAH", f"EXPERT {number}")
    path = tmp_path / f"p{number}.txt"
    path.write_text(text.replace("Malaysia", "Sabah"))
    return path


def test_master_participants_file_waits_for_the_transcripts(tmp_path):
    db = tmp_path / "study.db"
    run("init", db, "--codebook", SEED)
    master = master_file(tmp_path)
    result = run("import", db, *INTERVIEWS, "--participants", master)
    assert result.exit_code == 0, result.output
    assert result.output == (
        "Imported 10 document(s), replaced 0, unchanged 0; 261 segments (unit: turn).\n"
        "Participants file: 32 row(s): 10 linked to a speaker, 22 waiting for a document not "
        "yet in the study (in no N until it is imported).\n")
    assert run("codes", "import", db, DEMO / "decisions.csv").exit_code == 0
    # nobody without speech counts in N, nor in a group's N
    assert freq_n(db) == 10
    with Study(db) as s:
        groups = s.frequencies(coders=["alice", "bob"], by="group").attrs["groups"]
        assert groups == {"All": 10, "academic": 2, "agency": 2, "chamber": 2,
                          "policymaker": 2, "research institute": 2}
        assert s.status().participants == 10 and s.status().participants_waiting == 22
        assert len(s.participants()) == 32  # their attributes are kept
    assert "  participants  10 (and 22 from a participants file who speak in no document yet: " \
           "in no N)\n" in run("status", db).output
    freq = run("freq", db, "--coders", "alice,bob")
    assert "N = 10" in freq.output and "N = 32" not in freq.output

    # the transcript of P11 arrives later: its waiting row links it, with its attributes
    result = run("import", db, new_interview(tmp_path, 11))
    assert result.exit_code == 0, result.output
    assert result.output == (
        "Imported 1 document(s), replaced 0, unchanged 0; 28 segments (unit: turn).\n"
        "Linked 1 participant(s) whose row waited for their document: P11.\n")
    with Study(db) as s:
        people = s.segments(documents=["p11"], include_interviewer=False)
        assert set(people.participant) == {"P11"}
        assert s.participants().set_index("participant").loc["P11", "group"] == "policymaker"
        assert s.status().participants == 11 and s.status().participants_waiting == 21
        assert sorted(r["name"] for r in s.db.query("SELECT name FROM participants")) == sorted(
            ["P%02d" % i for i in range(1, 33)])  # no automatic 'p11' left behind
    assert freq_n(db) == 11


def test_waiting_row_whose_speaker_is_not_in_the_document_warns(tmp_path):
    db = tmp_path / "study.db"
    run("init", db, "--codebook", SEED)
    people = tmp_path / "people.csv"
    people.write_text("participant,document,speaker,group\nP12,p12,DR SOMEONE,academic\n")
    assert run("participants", "import", db, people).output == (
        "Read participants file: 1 row(s): 0 linked to a speaker, 1 waiting for a document not "
        "yet in the study (in no N until it is imported).\n")
    result = run("import", db, new_interview(tmp_path, 12))
    assert result.exit_code == 0
    assert result.output == (
        "Imported 1 document(s), replaced 0, unchanged 0; 28 segments (unit: turn).\n"
        "Warning: p12: participant 'P12' (people.csv line 2) waits for this document, but it "
        "has no speaker 'DR SOMEONE'; it stays unlinked until the participants file is fixed "
        "and imported again\n")
    with Study(db) as s:
        assert set(s.segments(include_interviewer=False).participant) == {"p12"}
        assert s.status().participants == 1 and s.status().participants_waiting == 1


# -- 3. rows that match nothing -------------------------------------------------------------------
def test_rows_without_a_document_that_match_nothing_are_listed(demo, tmp_path):
    people = tmp_path / "extra.csv"
    # 'P 07' and 'p7' are typos of P07; 'p03' is the name of a document (by default the row of
    # its one respondent)
    people.write_text("participant,group\nP 07,chamber\np7,chamber\np03,policymaker\n")
    result = run("participants", "import", demo, people)
    assert result.exit_code == 0
    assert result.output == (
        "Read participants file: 3 row(s): 1 linked to a speaker, 2 matching no document.\n"
        "Participant rows without a document that match no document or speaker: P 07 (line 2), "
        "p7 (line 3) (each waits for a document of its name; add a 'document' column or fix "
        "the name).\n")
    with Study(demo) as s:
        report = s.import_participants(people)
        assert (report.rows, report.linked, report.waiting, report.unmatched) == (
            3, 1, [], [("P 07", 2), ("p7", 3)])
        assert s.status().participants == 10
    assert freq_n(demo) == 10
    # the same through coder import --participants
    result = run("import", demo, DEMO / "p01.txt", "--participants", people)
    assert result.output.splitlines()[1:] == [
        "Participants file: 3 row(s): 1 linked to a speaker, 2 matching no document.",
        "Participant rows without a document that match no document or speaker: P 07 (line 2), "
        "p7 (line 3) (each waits for a document of its name; add a 'document' column or fix "
        "the name)."]


# -- 5. segments longer than the model reads ------------------------------------------------------
def long_turns_interview(tmp_path) -> Path:
    """p03's interview as a long-winded expert gives it: two answers of all the expert's turns."""
    with Study.create(tmp_path / "scratch.db") as scratch:
        scratch.import_transcripts([DEMO / "p03.docx"])
        answers = scratch.segments(include_interviewer=False).text.tolist()
    half = len(answers) // 2
    text = ("INTERVIEWER: Tell me about the firms you advise.\n"
            f"ENCIK FAIZAL: {' '.join(answers[:half])}\n"
            "INTERVIEWER: And what holds them back?\n"
            f"ENCIK FAIZAL: {' '.join(answers[half:])}\n"
            "INTERVIEWER: Thank you.\nENCIK FAIZAL: You are welcome.\n")
    path = tmp_path / "p03.txt"
    path.write_text(text)
    return path


def test_long_segments_are_reported_at_import(tmp_path):
    db = tmp_path / "study.db"
    run("init", db, "--codebook", SEED)
    path = long_turns_interview(tmp_path)
    result = run("import", db, path)
    assert result.exit_code == 0
    assert result.output == (
        "Imported 1 document(s), replaced 0, unchanged 0; 6 segments (unit: turn).\n"
        "Warning: p03: 2 segments are longer than the model reads at once (~256 word pieces); "
        "they are embedded in overlapping windows, which blurs suggestions: consider --unit "
        "sentence\n")
    # as sentences every segment fits
    db2 = tmp_path / "sentences.db"
    run("init", db2, "--codebook", SEED)
    result = run("import", db2, path, "--unit", "sentence")
    assert result.exit_code == 0 and "Warning" not in result.output
    with Study(db2) as s:
        report = s.import_transcripts([path], unit="turn", replace=True)
        assert report.long_segments == {"p03": 2}


def test_the_bundled_tokenizer_counts_word_pieces():
    # 600 characters of figures are ~300 word pieces: too long, though far below LONG_CHARS
    figures = ", ".join(str(n) for n in range(1, 150))
    assert len(figures) < LONG_CHARS and too_long_for_model([figures]) == [True]
    words = "The agencies help firms to export. " * 30  # 1,050 characters, ~210 pieces
    assert too_long_for_model([words, "Short."]) == [False, False]
    assert too_long_for_model([words * 2]) == [True]
    # the demo interviews: no turn comes near the limit
    texts = []
    for path in INTERVIEWS:
        t = read_transcript(path)
        texts += [seg.text for seg in segment(t.text, t.turns, "turn")]
    assert len(texts) == 261 and not any(too_long_for_model(texts))
