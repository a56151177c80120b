"""Transcript import and segmentation with real files in tmp dirs."""

import hashlib

import docx
import pytest
from click.testing import CliRunner

from coder import Study
from coder.cli import cli
from coder.errors import InputError


def offsets_hold(study):
    """Every segment's offsets point at its own text in the stored document."""
    for r in study.db.query("SELECT s.start_char, s.end_char, s.text, d.text AS doc "
                            "FROM segments s JOIN documents d ON d.id = s.document_id"):
        assert r["doc"][r["start_char"]:r["end_char"]] == r["text"]


def dump(study_path):
    """Everything in the study, to check a failed command left it exactly as it was."""
    return hashlib.sha256(b"".join(
        str([tuple(r) for r in Study(study_path).db.query(f"SELECT * FROM {t}")]).encode()
        for t in ("documents", "segments", "speakers", "participants", "participant_attributes",
                  "codings", "codes"))).hexdigest()


def test_txt_turns_span_lines(study):
    segs = study.segments()
    p01 = segs[segs.document == "p01"]
    assert p01.speaker.tolist() == ["INTERVIEWER", "DR AMINAH"] * 3
    assert p01.role.tolist() == ["interviewer", "participant"] * 3
    assert p01.iloc[1].text == ("Mostly because the domestic market is small and already saturated.\n"
                                "Firms feel they have nowhere left to grow at home.")
    assert p01.position.tolist() == [1, 2, 3, 4, 5, 6]
    assert set(p01[p01.role == "participant"].participant) == {"p01"}
    offsets_hold(study)


@pytest.mark.parametrize("unit, expected", [("sentence", 6), ("paragraph", 3), ("turn", 3)])
def test_units(study_path, data_dir, unit, expected):
    s = Study.create(study_path, codebook=data_dir / "small_codebook.yaml")
    s.import_transcripts([data_dir / "p01.txt"], unit=unit)
    respondent = s.segments(include_interviewer=False)
    assert len(respondent) == expected
    offsets_hold(s)
    if unit == "sentence":
        assert respondent.text.tolist()[:2] == [
            "Mostly because the domestic market is small and already saturated.",
            "Firms feel they have nowhere left to grow at home."]
        assert respondent.turn.tolist() == [2, 2, 4, 4, 6, 6]


def test_docx_with_bold_labels(study_path, tmp_path):
    d = docx.Document()
    p = d.add_paragraph()
    p.add_run("Interviewer").bold = True
    p.add_run(" What drives exporting?")
    p = d.add_paragraph()
    p.add_run("Prof Rahman:").bold = True
    p.add_run(" Bigger markets outside, honestly.")
    d.add_paragraph("And the government programmes.")
    d.save(tmp_path / "p03.docx")
    s = Study.create(study_path)
    s.import_transcripts([tmp_path / "p03.docx"])
    segs = s.segments()
    assert segs.speaker.tolist() == ["Interviewer", "Prof Rahman"]
    assert segs.text.tolist()[1] == "Bigger markets outside, honestly.\nAnd the government programmes."
    offsets_hold(s)


def test_vtt_voices_and_times(study_path, tmp_path):
    (tmp_path / "p04.vtt").write_text(
        "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\n<v Interviewer>Where do they sell?\n\n"
        "00:00:04.500 --> 00:00:09.000\n<v Siti>Mostly to neighbouring countries.\n\n"
        "00:00:09.000 --> 00:00:12.250\n<v Siti>Singapore and Thailand first.\n", encoding="utf-8")
    s = Study.create(study_path)
    s.import_transcripts([tmp_path / "p04.vtt"])
    segs = s.segments()
    assert segs.speaker.tolist() == ["Interviewer", "Siti"]
    assert segs.iloc[1].text == "Mostly to neighbouring countries. Singapore and Thailand first."
    assert (segs.iloc[1].start_time, segs.iloc[1].end_time) == (4.5, 12.25)
    offsets_hold(s)


def test_srt_prefixes(study_path, tmp_path):
    (tmp_path / "p05.srt").write_text(
        "1\n00:00:01,000 --> 00:00:03,000\nQ: Any barriers?\n\n"
        "2\n00:00:03,500 --> 00:00:06,000\nAhmad: Finance, mainly.\n", encoding="utf-8")
    s = Study.create(study_path)
    s.import_transcripts([tmp_path / "p05.srt"])
    segs = s.segments()
    assert segs.speaker.tolist() == ["Q", "Ahmad"]
    assert segs.role.tolist() == ["interviewer", "participant"]
    assert segs.iloc[1].start_time == 3.5


def test_csv_turns(study_path, tmp_path):
    (tmp_path / "p06.csv").write_text(
        "speaker,text,start,end\nInterviewer,Hello?,0,1.5\nLina,\"We export, mostly.\",1.5,4\n",
        encoding="utf-8")
    s = Study.create(study_path)
    s.import_transcripts([tmp_path / "p06.csv"])
    segs = s.segments()
    assert segs.text.tolist() == ["Hello?", "We export, mostly."]
    assert segs.end_time.tolist() == [1.5, 4.0]
    offsets_hold(s)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "cp1252"])
def test_encodings(study_path, tmp_path, encoding):
    text = "Interviewer: Café?\nRenée: Oui — the naïve exporters’ “problem”.\n"
    (tmp_path / "p07.txt").write_bytes(text.encode(encoding))
    s = Study.create(study_path)
    s.import_transcripts([tmp_path / "p07.txt"])
    assert s.segments().text.tolist() == ["Café?", "Oui — the naïve exporters’ “problem”."]


def test_unlabelled_text_by_paragraph(study_path, tmp_path):
    (tmp_path / "notes.txt").write_text("First paragraph here.\n\nSecond one, longer.\n")
    s = Study.create(study_path)
    s.import_transcripts([tmp_path / "notes.txt"], unit="paragraph")
    segs = s.segments()
    assert segs.text.tolist() == ["First paragraph here.", "Second one, longer."]
    assert set(segs.participant) == {"notes"}


def test_a_url_at_the_start_of_a_line_is_not_a_speaker(study_path, tmp_path):
    (tmp_path / "p.txt").write_text("Anna: see the page\nhttps://example.org/x for more\n"
                                    "Bob: ok\n")
    s = Study.create(study_path)
    s.import_transcripts([tmp_path / "p.txt"])
    segs = s.segments()
    assert segs.speaker.tolist() == ["Anna", "Bob"]
    assert segs.text.tolist()[0] == "see the page\nhttps://example.org/x for more"


def test_focus_group_speakers_are_participants(study_path, tmp_path):
    (tmp_path / "fg.txt").write_text("Moderator: Why export?\nAli: Markets.\nBea: Networks.\n")
    s = Study.create(study_path)
    s.import_transcripts([tmp_path / "fg.txt"])
    assert sorted(s.participants().participant) == ["fg/Ali", "fg/Bea"]


def test_participants_csv(study, data_dir, tmp_path):
    (tmp_path / "people.csv").write_text(
        "participant,document,group,gender\nP01,p01,academic,female\nP02,p02,chamber,male\n")
    study.import_participants(tmp_path / "people.csv")
    people = study.participants()
    assert people[["participant", "group", "gender"]].values.tolist() == [
        ["P01", "academic", "female"], ["P02", "chamber", "male"]]
    segs = study.segments(include_interviewer=False)
    assert set(segs.participant) == {"P01", "P02"}


def test_reimport_is_noop_and_changed_file_needs_replace(study, data_dir, study_path):
    before = dump(study_path)
    r = study.import_transcripts([data_dir / "p01.txt"])
    assert r.unchanged == ["p01"] and dump(study_path) == before
    cid = study.coder_id("alice")
    seg = study.segments(documents=["p01"]).iloc[1]
    study.db.execute("INSERT INTO codings (segment_id, coder_id, code_id, decision, created_at) "
                     "VALUES (?,?,?,?,?)", (int(seg.segment_id), cid, "trig-domestic", "confirmed", "t"))
    changed = (data_dir / "p01.txt").read_text().replace("What stops them?", "What holds them back?")
    (data_dir / "p01.txt").write_text(changed)
    with pytest.raises(InputError, match="already in the study with different content"):
        study.import_transcripts([data_dir / "p01.txt"])
    r = study.import_transcripts([data_dir / "p01.txt"], replace=True)
    assert r.replaced == ["p01"] and r.kept_codings == 1 and r.orphaned_codings == 0
    kept = study.codings("alice")
    assert kept.position.tolist() == [2] and kept.code_id.tolist() == ["trig-domestic"]
    offsets_hold(study)


# -- bad input: exact message, exit 1, study unchanged --------------------------------------------
def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def bad_files(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "fake.docx").write_text("not a zip")
    (tmp_path / "nolabels.txt").write_text("Just some notes without any speaker labels.\n")
    return {
        "empty.txt": "empty.txt: the file is empty",
        "binary.txt": "binary.txt: this is a binary file, not a text transcript (save the "
                      "transcript as plain text (.txt), .docx, .vtt, .srt or .csv)",
        "fake.docx": "fake.docx: not a valid Word .docx file (it is not a readable zip package) "
                     "(open it in Word and save it again as .docx)",
        "nolabels.txt": "nolabels.txt: line 1: no recognisable speaker turns; expected lines like "
                        "'NAME: text' (use --unit paragraph for unlabelled text)",
    }


def test_bad_transcripts_exit_1_and_leave_study_unchanged(study, study_path, data_dir, tmp_path):
    before = dump(study_path)
    for name, message in bad_files(tmp_path).items():
        # a good file first in the same batch: nothing of it may be written either
        result = run("import", study_path, data_dir / "p02.txt", tmp_path / name)
        assert result.exit_code == 1, result.output
        assert result.output.strip() == f"Error: {tmp_path / name}".replace(
            str(tmp_path / name), str(tmp_path)) + "/" + message
        assert "Traceback" not in result.output
        assert dump(study_path) == before


def test_codings_csv_reports_all_bad_rows(study, study_path, tmp_path):
    (tmp_path / "c.csv").write_text(
        "document,segment,code,coder\np01,2,Domestic conditions,alice\n"
        "p09,2,Domestic conditions,alice\np01,99,Domestic conditions,alice\np01,2,Nope,alice\n")
    before = dump(study_path)
    result = run("codes", "import", study_path, tmp_path / "c.csv")
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {tmp_path / 'c.csv'}: 3 bad row(s), nothing imported:\n"
        "  line 3: unknown document 'p09'\n"
        "  line 4: document 'p01' has no segment 99\n"
        "  line 5: unknown code 'Nope' (see: coder codebook show STUDY)\n")
    assert dump(study_path) == before


def test_codings_round_trip(study, study_path, tmp_path):
    (tmp_path / "c.csv").write_text(
        "document,segment,code,coder,memo\np01,2,Domestic conditions,alice,clear case\n"
        "p01,4,trig-domestic,bob,\np02,2,Globalization force,alice,\n")
    assert run("codes", "import", study_path, tmp_path / "c.csv").exit_code == 0
    assert run("codes", "export", study_path, tmp_path / "out.csv").exit_code == 0
    other = tmp_path / "other.db"
    assert run("init", other, "--codebook", tmp_path / "data" / "small_codebook.yaml").exit_code == 0
    assert run("import", other, tmp_path / "data" / "p01.txt", tmp_path / "data" / "p02.txt").exit_code == 0
    result = run("codes", "import", other, tmp_path / "out.csv")
    assert result.exit_code == 0, result.output
    a = Study(study_path).export_codings()
    b = Study(other).export_codings()
    cols = ["document", "segment", "code", "coder", "decision", "memo", "text"]
    assert a[cols].values.tolist() == b[cols].values.tolist()


def test_usage_errors_exit_2(study_path):
    assert run("import").exit_code == 2
    assert run("import", study_path, "x.txt", "--unit", "word").exit_code == 2


def test_status(study, study_path):
    result = run("status", study_path)
    assert result.exit_code == 0
    assert "documents     2" in result.output
    assert "segments      10 (5 from participants)" in result.output
    assert "'Small test codebook' version 1, 8 codes" in result.output
