"""Hostile and damaged files: each is one clear line and exit 1, and the study is unchanged.

Bombs (zip and YAML), malformed XML inside .docx, damaged zips, cyclic and too-deep codebooks,
participants files that contradict themselves, and UTF-8 files with a stray byte.
"""

from __future__ import annotations

import zipfile

import docx
import pytest
from cli_helpers import dump, run
from click.testing import CliRunner

from coder import Study
from coder.cli import cli
from coder.sources import archive

LAUGHS = ("<?xml version='1.0'?><!DOCTYPE w [<!ENTITY a 'lol'><!ENTITY b '&a;&a;&a;&a;&a;&a;"
          "&a;&a;&a;&a;'><!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'><!ENTITY d '&c;&c;&c;&c;&c;"
          "&c;&c;&c;&c;&c;'><!ENTITY e '&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;'><!ENTITY f '&e;&e;&e;&e;&e;"
          "&e;&e;&e;&e;&e;'><!ENTITY g '&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;'>]>"
          "<w:document xmlns:w='http://schemas.openxmlformats.org/wordprocessingml/2006/main'>"
          "<w:body><w:p><w:r><w:t>&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;</w:t></w:r></w:p></w:body>"
          "</w:document>")


def refused(result, *phrases):
    """Exit 1 with one 'Error: ...' line holding each phrase, and no traceback."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for p in phrases:
        assert p in lines[0], (p, lines[0])
    return lines[0]


def docx_with(tmp_path, name: str, document_xml: str | bytes):
    """A real .docx (made by python-docx) whose main part is replaced."""
    good = tmp_path / "good.docx"
    d = docx.Document()
    d.add_paragraph("DR AMINAH: Mostly because the domestic market is small.")
    d.save(good)
    out = tmp_path / name
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "word/document.xml":
                data = document_xml.encode() if isinstance(document_xml, str) else document_xml
            zout.writestr(item, data)
    return out


# -- .docx -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, xml", [
    ("laughs.docx", LAUGHS),
    ("deep.docx", "<?xml version='1.0'?><w:document xmlns:w='http://schemas.openxmlformats.org/"
     "wordprocessingml/2006/main'><w:body>" + "<w:p>" * 3000 + "</w:p>" * 3000
     + "</w:body></w:document>"),
    ("broken.docx", "<w:document><w:body><w:p>unclosed"),
])
def test_a_docx_with_hostile_or_broken_xml_is_refused(study, tmp_path, name, xml):
    bad = docx_with(tmp_path, name, xml)
    before = dump(study.path)
    line = refused(run("import", study.path, bad), name, "not a valid Word .docx file")
    assert "its XML is not well-formed" in line or "not a readable Word package" in line
    assert dump(study.path) == before


def test_a_docx_zip_bomb_is_refused_before_unpacking(study, tmp_path):
    bomb = docx_with(tmp_path, "bomb.docx", b"<x/>" + b" " * (40 * 2**20))
    before = dump(study.path)
    refused(run("import", study.path, bomb), "bomb.docx", "member 'word/document.xml' is compressed",
            "a zip bomb")
    assert dump(study.path) == before


# -- .qdpx -----------------------------------------------------------------------------------
@pytest.fixture
def qdpx(study, tmp_path):
    from coder import review

    seg = int(study.segments(include_interviewer=False)["segment_id"].iloc[0])
    review.decide(study, "alice", seg, "trig-domestic", "confirmed")
    out = tmp_path / "study.qdpx"
    study.export_project(out)
    return out


def test_a_qdpx_with_a_bad_crc_is_refused(qdpx, tmp_path):
    data = bytearray(qdpx.read_bytes())
    with zipfile.ZipFile(qdpx) as z:
        info = z.getinfo("project.qde")
    # flip one byte inside project.qde's compressed data (after its local header)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    bad = tmp_path / "badcrc.qdpx"
    bad.write_bytes(bytes(data))
    refused(run("import-project", tmp_path / "new.db", bad), "badcrc.qdpx",
            "member 'project.qde' of the REFI-QDA project (.qdpx) is damaged")
    assert not (tmp_path / "new.db").exists()


def test_a_qdpx_zip_bomb_is_refused_before_unpacking(tmp_path):
    bomb = tmp_path / "bomb.qdpx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("project.qde", b"<Project/>" + b"\0" * (60 * 2**20))
    assert bomb.stat().st_size < 200_000
    refused(run("import-project", tmp_path / "new.db", bomb), "bomb.qdpx",
            "member 'project.qde' is compressed", "a zip bomb, not a REFI-QDA project")
    assert not (tmp_path / "new.db").exists()


def test_the_size_limits_name_themselves(qdpx, tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 1000)
    refused(run("import-project", tmp_path / "a.db", qdpx), "would unpack to",
            "over the 0 MB limit for one member")
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 2**30)
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 1000)
    refused(run("import-project", tmp_path / "b.db", qdpx), "the REFI-QDA project (.qdpx) "
            "package would unpack to more than 0 MB")
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 2**30)
    monkeypatch.setattr(archive, "MAX_MEMBERS", 1)
    refused(run("import-project", tmp_path / "c.db", qdpx), "members, over the limit of 1")


def test_an_xlsx_sheet_that_is_a_zip_bomb_is_refused(study, tmp_path):
    bomb = tmp_path / "sheet.xlsx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/worksheets/sheet1.xml", b" " * (40 * 2**20))
    before = dump(study.path)
    refused(run("review", "import", study.path, bomb, "--coder", "alice"), "sheet.xlsx",
            "a zip bomb")
    assert dump(study.path) == before


# -- codebooks -------------------------------------------------------------------------------
@pytest.mark.parametrize("name, text, phrase", [
    ("laughs.yaml", "name: X\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
     "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
     "codes: [*c]\n", "line 2: an anchor (&a): codebooks cannot use YAML anchors and aliases"),
    ("cycle.yaml", "name: X\ncodes: &c\n  - name: A\n    codes: *c\n",
     "line 2: an anchor (&c): codebooks cannot use YAML anchors and aliases"),
    ("deep.yaml", "name: X\ncodes: " + "[" * 400 + "]" * 400 + "\n",
     "line 2: nested more than 64 levels deep; a codebook never is"),
    ("deeptree.yaml", "name: X\ncodes:\n" + "".join(
        "  " * i + f"- name: L{i}\n" + "  " * i + "  codes:\n" for i in range(300))
     + "  " * 300 + "- name: leaf\n", "nested more than 64 levels deep"),
    ("colon.yaml", "name: X\ncodes:\n  - name: Costs: high\n",
     "line 3: bad YAML (column 16): a ':' where YAML does not expect one (put text that "
     "contains ': ' in quotes)"),
])
def test_a_hostile_or_broken_codebook_is_one_clear_line(study, tmp_path, name, text, phrase):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    before = dump(study.path)
    refused(run("codebook", "import", study.path, path), name, phrase)
    assert dump(study.path) == before


# -- participants ----------------------------------------------------------------------------
def test_one_participant_with_two_sets_of_attributes_is_refused_with_both_lines(study, tmp_path):
    people = tmp_path / "people.csv"
    people.write_text("participant,group\nDR AMINAH,SME\nMR TAN,Agency\nDR AMINAH,Agency\n",
                      encoding="utf-8")
    before = dump(study.path)
    refused(run("participants", "import", study.path, people),
            "people.csv: participant 'DR AMINAH' is on lines 2 and 4 with different 'group' "
            "('SME' and 'Agency') (give each participant one set of attributes)")
    assert dump(study.path) == before


# -- encodings -------------------------------------------------------------------------------
def test_a_utf8_transcript_with_one_stray_byte_stays_utf8_and_says_where(study, tmp_path):
    path = tmp_path / "p05.txt"
    path.write_bytes("INTERVIEWER: Où?\nMME DUPRÉ: Les marchés étrangers, ".encode()
                     + b"caf\xe9" + " et l'élan.\n".encode())
    result = CliRunner().invoke(cli, ["import", str(study.path), str(path)])
    assert result.exit_code == 0, result.output
    assert ("Warning: p05.txt: line 2, column 38: byte 0xE9 is not valid UTF-8; read as \ufffd "
            "(the rest of the file is UTF-8; fix that byte, or give --encoding cp1252 if the "
            "file is Windows-1252)") in result.output
    text = Study(study.path).segments(documents=["p05"])["text"].tolist()
    assert text[-1] == "Les marchés étrangers, caf\ufffd et l'élan."


def test_encoding_overrides_detection(study, tmp_path):
    path = tmp_path / "p06.txt"
    path.write_bytes("INTERVIEWER: Why?\nMR LEE: Café.\n".encode("cp1252"))
    assert run("import", study.path, path, "--encoding", "cp1252").exit_code == 0
    assert Study(study.path).segments(documents=["p06"])["text"].tolist()[-1] == "Café."
    other = tmp_path / "p07.txt"
    other.write_bytes("INTERVIEWER: Why?\nMR LEE: Café.\n".encode("cp1252"))
    refused(run("import", study.path, other, "--encoding", "utf-8"),
            "p07.txt: line 2, column 12: byte 0xE9 is not valid utf-8 (leave out --encoding "
            "to let coder detect it)")
    refused(run("import", study.path, other, "--encoding", "klingon"), "unknown encoding 'klingon'")


def test_a_codings_csv_with_a_stray_byte_is_refused_at_its_place(study, tmp_path):
    path = tmp_path / "codes.csv"
    path.write_bytes("document,segment,code,coder,memo\np01,2,trig-domestic,alice,é\n".encode()
                     + b"p01,4,trig-domestic,alice,\xff\n")
    before = dump(study.path)
    refused(run("codes", "import", study.path, path),
            "codes.csv: line 3, column 27: byte 0xFF is not valid UTF-8 (the rest of the file is "
            "UTF-8; fix that byte, or save the file again as UTF-8)")
    assert dump(study.path) == before


# -- interrupted -----------------------------------------------------------------------------
def test_ctrl_c_during_suggest_does_not_claim_decisions(study, monkeypatch):
    from coder.machine import suggest

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(suggest, "suggest", interrupted)
    result = run("suggest", study.path)
    assert result.exit_code == 130
    assert "decision" not in result.output
    assert "Interrupted; the study holds every step that had finished" in result.output


def test_a_zip_member_never_decides_where_anything_is_written(tmp_path):
    """Member names are read, never used as paths (a '../' name changes nothing)."""
    z = tmp_path / "evil.qdpx"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("../../escaped.txt", "x")
        zf.writestr("project.qde", "<Project/>")
    refused(run("import-project", tmp_path / "x.db", z), "evil.qdpx")
    assert not (tmp_path.parent / "escaped.txt").exists()
    assert not (tmp_path / "escaped.txt").exists()


def test_freq_help_offers_only_levels_that_count():
    out = run("freq", "--help").output
    assert "--level [category|group|factor|all]" in out
    assert "item" not in out.split("--level", 1)[1].split("--by", 1)[0]


def test_an_xlsx_sheet_with_one_far_away_cell_is_refused_at_once(study, tmp_path):
    import openpyxl

    sheet = tmp_path / "alice.xlsx"
    assert run("review", "export", study.path, sheet, "--coder", "alice").exit_code == 0
    wb = openpyxl.load_workbook(sheet)
    wb["review"]["XFD1048576"] = "x"
    wb.save(sheet)
    before = dump(study.path)
    refused(run("review", "import", study.path, sheet, "--coder", "alice"),
            "the sheet reaches row 1,048,576 and column 16,384")
    assert dump(study.path) == before


def test_sentences_of_a_turn_with_a_huge_run_of_punctuation_come_fast(tmp_path):
    import time

    from coder.sources.segment import Turn, segment

    text = "Ana: " + '"' * 40_000 + " And then. We left."
    start = time.perf_counter()
    segs = segment(text, [Turn(speaker="Ana", start=5, end=len(text))], "sentence")
    assert time.perf_counter() - start < 10  # was four minutes
    assert "".join(s.text for s in segs).replace(" ", "") == text[5:].replace(" ", "")
    assert segs[-1].text == "We left."


@pytest.mark.parametrize("side", [{"sources": None}, {"sources": []}, {"sources": {"g": 0}},
                                  "segments: null", "short row", "start x"])
def test_a_damaged_coder_json_is_set_aside_not_a_traceback(qdpx, tmp_path, side):
    """coder's private file in the .qdpx (coder/coder-data.json, coder.json before it)."""
    import json

    member = "coder/coder-data.json"
    with zipfile.ZipFile(qdpx) as z:
        members = {n: z.read(n) for n in z.namelist()}
    saved = json.loads(members[member])
    if isinstance(side, dict):
        saved.update(side)
    else:
        entry = next(iter(saved["sources"].values()))
        if side == "segments: null":
            entry["segments"] = None
        elif side == "short row":
            entry["segments"][0] = entry["segments"][0][:-1]
        else:
            entry["segments"][0][2] = "x"
    members[member] = json.dumps(saved).encode()
    bad = tmp_path / "damaged.qdpx"
    with zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    result = run("import-project", tmp_path / "new.db", bad)
    assert result.exit_code == 0, result.output
    assert f"{member} is damaged" in result.output
    assert "imported as other tools see the project" in result.output
    assert len(Study(tmp_path / "new.db").segments()) > 0


def test_a_damaged_lzma_member_is_refused(qdpx, tmp_path):
    with zipfile.ZipFile(qdpx) as z:
        members = {n: z.read(n) for n in z.namelist()}
    lz = tmp_path / "lzma.qdpx"
    with zipfile.ZipFile(lz, "w", zipfile.ZIP_LZMA) as z:
        for name, data in members.items():
            z.writestr(name, data)
    data = bytearray(lz.read_bytes())
    with zipfile.ZipFile(lz) as z:
        info = z.getinfo("project.qde")
    data[info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 2] ^= 0xFF
    lz.write_bytes(bytes(data))
    refused(run("import-project", tmp_path / "n.db", lz), "lzma.qdpx", "is damaged")
