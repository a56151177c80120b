"""Projects from other QDA tools come in exactly (issue 16, the import side).

Each fixture is a hand-made .qdpx (a zip with project.qde and Sources/*.txt) imitating one
documented behaviour of a tool: NVivo for Windows counting positions in UTF-16 code units,
QualCoder writing a coding's memo as the PlainTextSelection's Description and the selected
text as its name, MAXQDA/ATLAS.ti sources without a name, NVivo GUIDs in upper case with braces,
isCodable="false" categories, code colours, a '/' in a code name (the NHS patient-feedback
framework), a missing source file (the ATLAS.ti 8.4 test project ships an empty Sources/).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from coder import Study
from coder.cli import cli
from coder.errors import CoderError, NotCodable
from coder.exchange.offsets import choose_reading, choose_readings, from_utf16, utf16_positions
from coder.exchange.reading import project_report
from coder.machine.suggest import suggestable_codes
from coder.review import decisions, spans
from coder.sources.qdaxml import PROJECT_NS, RefiError

USER = "{A0000000-0000-4000-8000-0000000000AA}"   # NVivo writes braces and upper case
CAT = "C0000000-0000-4000-8000-00000000000A"
CODE = "C0000000-0000-4000-8000-00000000000B"
SLASH = "c0000000-0000-4000-8000-00000000000c"


def _u16(text: str, i: int) -> int:
    """Code point position i as NVivo for Windows writes it (UTF-16 code units)."""
    return len(text[:i].encode("utf-16-le")) // 2


def _sel(guid: str, start: int, end: int, code: str | None = CODE, *, memo: str = "",
         name: str | None = None, user: str = USER, note: str | None = None) -> str:
    desc = f"<Description>{memo}</Description>" if memo else ""
    named = f' name="{name}"' if name is not None else ""
    coding = (f'<Coding guid="{guid[:-4]}beef" creatingUser="{user}"><CodeRef targetGUID="{code}"/>'
              + (f'<NoteRef targetGUID="{note}"/>' if note else "") + "</Coding>") if code else ""
    return (f'<PlainTextSelection guid="{guid}" startPosition="{start}" endPosition="{end}" '
            f'creatingUser="{user}"{named}>{desc}{coding}</PlainTextSelection>')


def _qdpx(path: Path, sources: list[dict], *, notes: str = "", files: dict | None = None,
          cases: str = "") -> Path:
    """sources: dicts with guid, text (None: file missing), name (None: no attribute),
    file, selections (XML)."""
    xml = []
    for s in sources:
        named = f' name="{s["name"]}"' if s.get("name") is not None else ""
        xml.append(f'<TextSource guid="{s["guid"]}"{named} plainTextPath="internal://{s["file"]}">'
                   f'{"".join(s.get("selections", []))}{s.get("extra", "")}</TextSource>')
    qde = f"""<?xml version="1.0" encoding="utf-8"?>
<Project xmlns="{PROJECT_NS}" name="Fixture" origin="hand-made">
 <Users><User guid="{USER}" name="Ana"/></Users>
 <CodeBook><Codes>
  <Code guid="{CAT}" name="Care" isCodable="false" color="#00FF00">
   <Code guid="{CODE}" name="Trust" isCodable="true" color="#FF0000"/>
   <Code guid="{SLASH}" name="Interaction with family/ carers" isCodable="true"/>
  </Code></Codes></CodeBook>
 {cases}
 <Sources>{"".join(xml)}</Sources>
 {notes}
</Project>"""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("project.qde", qde.encode("utf-8"))
        for s in sources:
            if s.get("text") is not None:
                z.writestr(f"Sources/{s['file']}", s["text"].encode("utf-8"))
        for name, data in (files or {}).items():
            z.writestr(name, data)
    return path


def _import(tmp_path: Path, qdpx: Path, *args: str):
    target = tmp_path / "study.db"
    result = CliRunner().invoke(cli, ["import-project", str(target), str(qdpx), *args])
    return result, target


def _spans(study: Study) -> list[tuple]:
    return [tuple(r) for r in study.db.query(
        "SELECT d.name, s.start_char, s.end_char, s.whole, substr(d.text, s.start_char + 1, "
        "s.end_char - s.start_char), k.memo, k.code_id FROM coding_spans s "
        "JOIN documents d ON d.id = s.document_id JOIN codings k ON k.id = s.coding_id "
        "ORDER BY d.name, s.start_char")]


TRANSCRIPT = ("Interviewer: How was the ward?\n"
              "Nurse: Lovely 😀😀 staff, and I trusted the doctors 👍 completely.\n"
              "Interviewer: And your family?\n"
              "Nurse: My family and carers 🙏 were told everything.\n"
              "Interviewer: Thank you very much for your time today.\n")


def _emoji_project(tmp_path: Path, *, utf16: bool, name: str = "nv.qdpx") -> Path:
    text = TRANSCRIPT
    pos = (lambda i: _u16(text, i)) if utf16 else (lambda i: i)
    a = text.index("trusted the doctors")
    b = text.index("were told")
    return _qdpx(tmp_path / name, [{
        "guid": "B0000000-0000-4000-8000-000000000001", "name": "ward", "file": "w.txt",
        "text": text, "selections": [
            _sel("D0000000-0000-4000-8000-000000000001", pos(a), pos(a + len("trusted the doctors"))),
            _sel("D0000000-0000-4000-8000-000000000002", pos(b), pos(b + len("were told everything")),
                 SLASH)]}])


# -- offsets ------------------------------------------------------------------------------------
def test_utf16_offsets_after_emoji_are_detected_and_converted(tmp_path):
    result, target = _import(tmp_path, _emoji_project(tmp_path, utf16=True))
    assert result.exit_code == 0, result.output
    assert "offsets read as UTF-16 code units (2 selections after a character outside the " \
           "BMP: code points 2 of 4 edges between words; UTF-16 4 of 4 edges between words)" \
           in result.output
    with Study(target) as study:
        assert [s[4] for s in _spans(study)] == ["trusted the doctors", "were told everything"]
        assert project_report(study).sources[0].offsets == "utf16"


def test_code_point_offsets_with_emoji_stay_code_points(tmp_path):
    result, target = _import(tmp_path, _emoji_project(tmp_path, utf16=False))
    assert result.exit_code == 0, result.output
    assert "offsets read as code points (2 selections after a character outside the BMP: " \
           "code points 4 of 4 edges" in result.output
    with Study(target) as study:
        assert [s[4] for s in _spans(study)] == ["trusted the doctors", "were told everything"]


def test_forced_readings(tmp_path):
    qdpx = _emoji_project(tmp_path, utf16=True)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    result, target = _import(tmp_path / "a", qdpx, "--offsets", "codepoints")
    assert result.exit_code == 0, result.output
    assert "offsets read as code points (as asked (--offsets codepoints))" in result.output
    with Study(target) as study:   # read the wrong way the characters drift by the emoji
        assert [s[4] for s in _spans(study)] == ["usted the doctors 👍",
                                                 " told everything.\nIn"]
    result, target = _import(tmp_path / "b", qdpx, "--offsets", "utf16")
    assert result.exit_code == 0, result.output
    with Study(target) as study:
        assert [s[4] for s in _spans(study)] == ["trusted the doctors", "were told everything"]


def test_reading_choice_units():
    text = "a😀b"
    pos = utf16_positions(text)
    assert pos == [0, 1, 3, 4] and from_utf16(pos, 2) is None and from_utf16(pos, 3) == 2
    # no selection after the emoji: nothing tells the readings apart
    assert not choose_reading("x 😀 y", [(0, 1, None)]).decided
    # the selection's name (QualCoder writes the selected text) decides
    t = "😀 hello world"
    assert choose_reading(t, [(_u16(t, 2), _u16(t, 7), "hello")]).reading == "utf16"
    assert choose_reading(t, [(2, 7, "hello")]).reading == "codepoints"


# -- exact spans, memos, duplicates -------------------------------------------------------------
def test_exact_spans_memos_and_a_duplicate(tmp_path):
    text = TRANSCRIPT.replace("😀", "").replace("👍", "").replace("🙏", "")
    a = text.index("trusted the doctors")
    turn = text.index("My family")
    turn_end = text.index("everything.") + len("everything.")
    notes = """<Notes><Note guid="90000000-0000-4000-8000-000000000001">
      <PlainTextContent>From a Note</PlainTextContent></Note></Notes>"""
    qdpx = _qdpx(tmp_path / "qc.qdpx", [{
        "guid": "b0000000-0000-4000-8000-000000000001", "name": "ward", "file": "w.txt",
        "text": text, "selections": [
            _sel("d0000000-0000-4000-8000-000000000001", a, a + 7, memo="QualCoder's memo",
                 name="trusted"),
            _sel("d0000000-0000-4000-8000-000000000002", a, a + 7, memo="again"),   # duplicate
            _sel("d0000000-0000-4000-8000-000000000003", turn, turn_end, SLASH,
                 note="90000000-0000-4000-8000-000000000001"),
            _sel("d0000000-0000-4000-8000-000000000004", a, a + 7, None, memo="just a memo"),
        ]}], notes=notes)
    result, target = _import(tmp_path, qdpx)
    assert result.exit_code == 0, result.output
    assert "Selections: 3; 1 kept exact, 1 whole segments, 1 duplicates kept once" in result.output
    assert "Memos: 2 on codings, 1 on segments, 0 on documents" in result.output
    with Study(target) as study:
        rows = _spans(study)
        assert rows[0][1:] == (a, a + 7, 0, "trusted", "QualCoder's memo\n\nagain",
                               "c0000000-0000-4000-8000-00000000000b")
        assert rows[1][1:6] == (turn, turn_end, 1, "My family and carers  were told everything.",
                                "From a Note")
        null = study.db.one("SELECT start_char, end_char FROM codings WHERE code_id=?",
                            ("c0000000-0000-4000-8000-00000000000c",))
        assert tuple(null) == (None, None)   # exactly a segment: a whole-segment coding
        memo = study.db.one("SELECT m.text, s.text AS seg FROM memos m JOIN segments s "
                            "ON s.id = m.segment_id")
        assert memo["text"] == "just a memo" and memo["seg"].startswith("Lovely")


# -- codebook: categories, colours, '/' in names, GUIDs -----------------------------------------
def test_categories_colours_slash_names_and_guids(tmp_path):
    text = "Nurse: My family and carers were told.\nNurse: I trust them.\n"
    start = text.index("family")
    qdpx = _qdpx(tmp_path / "nhs.qdpx", [{
        "guid": "{B0000000-0000-4000-8000-0000000000BB}", "name": "ward", "file": "w.txt",
        "text": text, "selections": [_sel("D0000000-0000-4000-8000-000000000009", start,
                                          start + len("family and carers"), SLASH)]}],
        cases='<Cases><Case guid="F0000000-0000-4000-8000-00000000000F" name="Nurse">'
              '<SourceRef targetGUID="b0000000-0000-4000-8000-0000000000bb"/></Case></Cases>')
    result, target = _import(tmp_path, qdpx)
    assert result.exit_code == 0, result.output
    assert "Codes: 3 (1 not codable), 2 with colours" in result.output
    with Study(target) as study:
        book = study.codebook()
        care, trust, slash = book.codes
        assert (care.codable, care.color, trust.codable, trust.color) == (False, "#00FF00", True,
                                                                          "#FF0000")
        assert slash.name == "Interaction with family/ carers"
        assert slash.path == "Care/Interaction with family\\/ carers"
        assert book.resolve("Care/Interaction with family\\/ carers") is slash
        assert book.resolve("care/interaction with family\\/  carers") is slash
        assert book.resolve(slash.id) is slash
        assert book.resolve("Interaction with family/ carers") is slash
        assert [c.id for c in suggestable_codes(book)] == [trust.id, slash.id]
        seg = int(study.segments().segment_id.iloc[1])
        with pytest.raises(NotCodable, match="code 'Care' is a category that only groups codes"):
            decisions.decide(study, "Ana", seg, "Care", "added")
        with pytest.raises(NotCodable):
            spans.code_span(study, "Ana", "ward", start, start + 6, care.id)
        decisions.decide(study, "Ana", seg, "Trust", "added")   # a codable code is fine
        guids = dict(((k, r), g) for k, r, g in study.db.query(
            "SELECT kind, ref, guid FROM exchange_guids"))
        assert guids[("code", trust.id)] == CODE          # upper case, as NVivo wrote it
        assert guids[("source", "1")] == "{B0000000-0000-4000-8000-0000000000BB}"
        assert guids[("user", "1")] == USER
        assert guids[("case", "1")] == "F0000000-0000-4000-8000-00000000000F"
        coding = study.db.one("SELECT id FROM codings WHERE code_id=?", (slash.id,))["id"]
        assert guids[("selection", str(coding))] == "D0000000-0000-4000-8000-000000000009"
        # undoing the import's batch takes its codings and their GUIDs away
        assert CliRunner().invoke(cli, ["undo", str(target), "--batch", "1"]).exit_code == 0
        assert study.db.one("SELECT COUNT(*) FROM exchange_guids WHERE kind IN "
                            "('selection', 'coding')")[0] == 0
        # a round trip of the codebook keeps colour and codable
        again = book.to_yaml()
        assert "color: '#00FF00'" in again and "codable: false" in again
    freq = CliRunner().invoke(cli, ["freq", str(target), "--coder", "Ana"])
    assert freq.exit_code == 0, freq.output
    assert "Interaction with family/ carers" in freq.output
    assert "family-" not in freq.output and "\\/" not in freq.output


def test_yaml_codebook_with_slash_colour_and_category(tmp_path):
    from coder.sources import codebook as codebook_mod

    path = tmp_path / "nhs.yaml"
    path.write_text("name: NHS\ncodes:\n  - name: Care\n    codable: false\n    color: '#123456'\n"
                    "    codes:\n      - name: Interaction with family/ carers\n", "utf-8")
    book = codebook_mod.load(path)
    assert [(c.path, c.codable, c.color) for c in book.codes] == [
        ("Care", False, "#123456"), ("Care/Interaction with family\\/ carers", True, None)]
    path.write_text("name: X\ncodes:\n  - name: A\n    color: red\n", "utf-8")
    with pytest.raises(CoderError, match="color 'red' is not '#RRGGBB'"):
        codebook_mod.load(path)


# -- sources: names, missing files, speakers ----------------------------------------------------
def test_source_without_name_takes_its_file_name(tmp_path):
    qdpx = _qdpx(tmp_path / "mx.qdpx", [{
        "guid": "b0000000-0000-4000-8000-000000000033", "name": None,
        "file": "Interview Hanna.txt", "text": "Some prose about trust.\n"}])
    result, target = _import(tmp_path, qdpx)
    assert result.exit_code == 0, result.output
    with Study(target) as study:
        assert list(study.documents().name) == ["Interview Hanna"]


def test_missing_source_refuses_all_or_skips_with_the_option(tmp_path):
    qdpx = _qdpx(tmp_path / "atlas.qdpx", [
        {"guid": "b0000000-0000-4000-8000-000000000001", "name": "kept", "file": "k.txt",
         "text": "Nurse: fine.\nNurse: ok.\n"},
        {"guid": "b0000000-0000-4000-8000-000000000002", "name": "gone", "file": "g.txt",
         "text": None}])
    (tmp_path / "a").mkdir()
    result, target = _import(tmp_path / "a", qdpx)
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: {qdpx}: 1 source's text file is missing from the zip: 'gone' (sources/g.txt, "
        "project.qde line 10); nothing was imported (export the project again with its "
        "sources, or use --skip-missing to import the rest)")
    assert list((tmp_path / "a").iterdir()) == []      # nothing written
    result, target = _import(tmp_path, qdpx, "--skip-missing")
    assert result.exit_code == 0, result.output
    assert "Sources: 1 imported, 1 skipped" in result.output
    assert "Skipped source 'gone': its text file sources/g.txt is missing from the zip" \
        in result.output
    with Study(target) as study:
        assert list(study.documents().name) == ["kept"]
        stored = json.loads(study.db.one("SELECT value FROM study_info WHERE key="
                                         "'project_import'")["value"])
        assert stored["skipped"] == [["source 'gone'", "its text file sources/g.txt is "
                                                       "missing from the zip"]]


HUNGARIAN = ("Kötelező oltás: a kormány döntött.\n\n"
             "https://example.hu/cikk szerint ez így van.\n\n"
             "Sokan nem értenek egyet ezzel a döntéssel.\n\n"
             "https://example.hu/masik cikk is erről ír.\n")


def test_speakers_only_when_plausible(tmp_path):
    qdpx = _qdpx(tmp_path / "hu.qdpx", [
        {"guid": "b0000000-0000-4000-8000-000000000001", "name": "cikk", "file": "c.txt",
         "text": HUNGARIAN},
        {"guid": "b0000000-0000-4000-8000-000000000002", "name": "interjú", "file": "i.txt",
         "text": "Riporter: Mit gondol?\nAnna: Jó ötlet.\nRiporter: Miért?\nAnna: Mert igen.\n"}])
    result, target = _import(tmp_path, qdpx)
    assert result.exit_code == 0, result.output
    assert "cikk: 4 segments by paragraph, no speaker labels" in result.output
    assert "interjú: 4 segments by turn, 2 speakers (Riporter, Anna)" in result.output
    with Study(target) as study:
        labels = {r[0] for r in study.db.query("SELECT label FROM speakers")}
        assert "https" not in labels and "Kötelező oltás" not in labels


def test_bad_offsets_option(tmp_path):
    result, _ = _import(tmp_path, _emoji_project(tmp_path, utf16=True), "--offsets", "bytes")
    assert result.exit_code == 2
    with pytest.raises(RefiError):
        Study.import_project(tmp_path / "x.db", tmp_path / "none.qdpx")


def test_csv_codebook_with_an_escaped_slash_colour_and_category(tmp_path):
    from coder.sources import codebook as codebook_mod

    path = tmp_path / "nhs.csv"
    path.write_text("path,color,codable\nCare,#112233,false\nCare/family\\/ carers,,\n", "utf-8")
    book = codebook_mod.load(path)
    assert [(c.path, c.name, c.color, c.codable) for c in book.codes] == [
        ("Care", "Care", "#112233", False), ("Care/family\\/ carers", "family/ carers", None, True)]


def test_atlas_line_ends_counted_as_one_character(tmp_path):
    """ATLAS.ti counts a CR LF as one character while its Sources/*.txt keep CR LF (QualCoder's
    importer knows it); NVivo counts both. Either way the same words come in."""
    text = ("Interviewer: How was it?\r\nNurse: The nurses were kind.\r\n"
            "Interviewer: And then?\r\nNurse: Then the doctors explained everything.\r\n")
    words = ["nurses were kind", "doctors explained"]
    lf = text.replace("\r\n", "\n")
    for tool, base in (("atlas", lf), ("nvivo", text)):
        sels = [_sel(f"d0000000-0000-4000-8000-00000000000{i}", base.index(w),
                     base.index(w) + len(w)) for i, w in enumerate(words)]
        qdpx = _qdpx(tmp_path / f"{tool}.qdpx", [{
            "guid": "b0000000-0000-4000-8000-000000000001", "name": "ward", "file": "w.txt",
            "text": text, "selections": sels}])
        (tmp_path / tool).mkdir()
        result, target = _import(tmp_path / tool, qdpx)
        assert result.exit_code == 0, result.output
        counted = "one character" if tool == "atlas" else "two characters"
        assert f"a CR LF line end counted as {counted}" in result.output
        with Study(target) as study:
            assert [s[4] for s in _spans(study)] == words, tool


def test_taguette_codebook_flat_upper_case_guids_and_a_slash(tmp_path, study_path):
    """Taguette writes a flat .qdc: every tag a top-level Code named by its whole path (which
    may hold '/'), GUIDs upper case, an empty <Sets/>."""
    g1, g2 = "5A7E0C1D-1111-5222-8333-444455556666", "5A7E0C1D-1111-5222-8333-444455557777"
    qdc = tmp_path / "taguette.qdc"
    qdc.write_text(f"""<?xml version="1.0" encoding="utf-8"?>
<CodeBook xmlns="urn:QDA-XML:codebook:1.0" origin="Taguette 1.4.1"><Codes>
<Code guid="{g1}" name="staff/attitude" isCodable="true"/>
<Code guid="{g2}" name="waiting" isCodable="true"/></Codes><Sets/></CodeBook>""", "utf-8")
    Study.create(study_path).close()
    result = CliRunner().invoke(cli, ["codebook", "import", str(study_path), str(qdc)])
    assert result.exit_code == 0, result.output
    with Study(study_path) as study:
        book = study.codebook()
        assert [(c.name, c.path, c.id) for c in book.codes] == [
            ("staff/attitude", "staff\\/attitude", g1.lower()), ("waiting", "waiting", g2.lower())]
        assert dict(tuple(r) for r in study.db.query(
            "SELECT ref, guid FROM exchange_guids WHERE kind='code'")) == {g1.lower(): g1,
                                                                         g2.lower(): g2}


def test_qualcoder_annotation_note_lands_on_its_segment(tmp_path):
    """QualCoder writes an annotation as a Note holding a PlainTextSelection, referenced by a
    NoteRef from its TextSource."""
    text = "Nurse: The food was cold.\nNurse: The staff were lovely.\n"
    at = text.index("staff")
    notes = f"""<Notes><Note guid="90000000-0000-4000-8000-0000000000a1" creatingUser="{USER}">
      <PlainTextContent>Check this with the ward manager</PlainTextContent>
      <PlainTextSelection guid="90000000-0000-4000-8000-0000000000a2" startPosition="{at}"
        endPosition="{at + 5}"/></Note></Notes>"""
    qdpx = _qdpx(tmp_path / "qc.qdpx", [{
        "guid": "b0000000-0000-4000-8000-000000000001", "name": "ward", "file": "w.txt",
        "text": text, "extra": '<NoteRef targetGUID="90000000-0000-4000-8000-0000000000a1"/>'}],
        notes=notes)
    result, target = _import(tmp_path, qdpx)
    assert result.exit_code == 0, result.output
    with Study(target) as study:
        memo = study.db.one("SELECT m.text, s.text AS seg, c.name FROM memos m JOIN segments s "
                            "ON s.id = m.segment_id JOIN coders c ON c.id = m.coder_id")
        assert tuple(memo) == ("Check this with the ward manager", "The staff were lovely.",
                               "Ana")


@pytest.mark.parametrize("unit, ends", [("codepoints", "two"), ("utf16", "two"),
                                        ("codepoints", "one"), ("utf16", "one")])
def test_emoji_and_windows_line_ends_are_judged_together(unit, ends):
    text = "".join(f"Nurse: line {i} 😀 has the word target{i} in it.\r\n" for i in range(8))
    base = text.replace("\r\n", "\n") if ends == "one" else text
    count = (lambda i: _u16(base, i)) if unit == "utf16" else (lambda i: i)
    spans = [(count(base.index(f"target{i}")), count(base.index(f"target{i}") + 7), None)
             for i in range(1, 8)]
    got_unit, got_ends = choose_readings(text, spans)
    assert (got_unit.reading, got_ends.reading) == (unit, ends)
