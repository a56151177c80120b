"""What other tools see in coder's .qdpx, and what only coder reads back (issue 16).

Hand-made expectations: one PlainTextSelection per (source, span, coder) carrying all its
codings; no selection for rejections or "no code"; no JSON in any Description; memos as Notes
linked by NoteRef; code colours; span offsets exact in code points after emoji; every export
valid against the official REFI-QDA schemas (../shared/refi-xsd, never skipped); the round trip
coder -> .qdpx -> coder byte-identical, rejections included, and a damaged or stale private
file a warning, not a traceback.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from coder import Study
from coder.cli import cli
from coder.exchange import export_project, write_codebook
from coder.exchange.private import MEMBER
from coder.review import decisions, spans
from coder.sources.qdaxml import PROJECT_NS

NS = {"q": PROJECT_NS}
XSD_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "refi-xsd"

BOOK = """\
name: Book
codes:
  - id: motives
    name: Motives
    color: "#aa3300"
    codes:
      - id: market
        name: Market
        description: Foreign demand
        include: Names demand abroad
      - id: networks
        name: Networks
        color: "#0000ff"
  - id: barriers
    name: Barriers
"""

# 😀 and 🚀 lie outside the BMP: one code point each, two UTF-16 code units
P01 = ("Interviewer: Why export?\n"
       "Anna: I love 😀 the café 🚀 near home and markets.\n"
       "Interviewer: Anything else?\n"
       "Anna: Credit is dear.\n")
SPAN = "café 🚀 near"


def _validate(root: etree._Element, name: str) -> None:
    """The official schema, always: a checkout without ../shared/refi-xsd fails here."""
    path = XSD_DIR / name
    assert path.exists(), f"REFI-QDA schema {path} is missing"
    etree.XMLSchema(etree.parse(str(path))).assertValid(root)


def _seg(study: Study, position: int) -> int:
    return study.db.one("SELECT segment_id FROM segment_view WHERE document='p01' AND "
                        "position=?", (position,))["segment_id"]


@pytest.fixture
def study(tmp_path) -> Study:
    src = tmp_path / "src"
    src.mkdir()
    (src / "book.yaml").write_text(BOOK, encoding="utf-8")
    (src / "p01.txt").write_text(P01, encoding="utf-8")
    (tmp_path / "a").mkdir()
    s = Study.create(tmp_path / "a" / "study.db", codebook=src / "book.yaml")
    s.import_transcripts([src / "p01.txt"])
    anna = _seg(s, 2)
    decisions.decide(s, "alice", anna, "market", "confirmed", memo="clear case", seconds=3.5)
    decisions.decide(s, "alice", anna, "networks", "added", memo="clear case")
    decisions.decide(s, "bob", anna, "market", "rejected", model_version=4,
                     suggestion_score=0.61)
    decisions.decide(s, "bob", anna, "barriers", "added")
    decisions.decide(s, "bob", anna, "barriers", "rejected")  # history: added, then rejected
    decisions.decide(s, "bob", _seg(s, 4), None, "no_code")
    start = P01.index(SPAN)
    spans.code_span(s, "alice", "p01", start, start + len(SPAN), "networks",
                    memo="the place 🚀")
    decisions.memo(s, "alice", anna, "Segment thought")
    with s.db.transaction():
        s.db.execute("INSERT INTO memos (document_id, coder_id, text, created_at) VALUES "
                     "(?, ?, 'About the interview', '2026-03-04T05:06:07Z')",
                     (s.document_id("p01"), s.coder_id("bob")))
    yield s
    s.close()


def _export(study: Study, path: Path, **kw) -> tuple[etree._Element, zipfile.ZipFile]:
    export_project(study, path, **kw)
    z = zipfile.ZipFile(path)
    return etree.fromstring(z.read("project.qde")), z


def _users(root) -> dict[str, str]:
    return {u.get("guid"): u.get("name") for u in root.iterfind("q:Users/q:User", NS)}


def _codes(root) -> dict[str, etree._Element]:
    return {c.get("guid"): c for c in root.iterfind(".//q:CodeBook//q:Code", NS)}


def test_one_selection_per_span_and_coder_with_all_its_codings(study, tmp_path):
    root, _ = _export(study, tmp_path / "s.qdpx")
    users, codes = _users(root), _codes(root)
    sels = root.findall(".//q:TextSource/q:PlainTextSelection", NS)
    seen = [(s.get("startPosition"), s.get("endPosition"), users[s.get("creatingUser")],
             sorted(codes[c.find("q:CodeRef", NS).get("targetGUID")].get("name")
                    for c in s.findall("q:Coding", NS))) for s in sels]
    anna = P01.index("I love")
    assert seen == [
        (str(anna), str(P01.index("\nInterviewer: Anything")), "alice", ["Market", "Networks"]),
        (str(P01.index(SPAN)), str(P01.index(SPAN) + len(SPAN)), "alice", ["Networks"]),
    ]
    # no selection at all for bob: a rejection, a "no code" and an added-then-rejected code
    assert "bob" not in {u for _, _, u, _ in seen}
    assert all(s.find("q:Coding", NS) is not None for s in sels)
    # (source, start, end, user) is unique: QualCoder's annotation key
    keys = [(s.getparent().get("guid"), s.get("startPosition"), s.get("endPosition"),
             s.get("creatingUser")) for s in sels]
    assert len(keys) == len(set(keys))


def test_span_offsets_count_code_points_after_emoji(study, tmp_path):
    root, z = _export(study, tmp_path / "s.qdpx")
    src = root.find(".//q:TextSource", NS)
    text = z.read(f"sources/{src.get('guid')}.txt").decode("utf-8")
    assert text == P01
    span = [s for s in src.iterfind("q:PlainTextSelection", NS)
            if s.get("name").endswith(f"{P01.index(SPAN)}-{P01.index(SPAN) + len(SPAN)}")]
    assert len(span) == 1
    start, end = int(span[0].get("startPosition")), int(span[0].get("endPosition"))
    assert text[start:end] == SPAN
    # 😀 comes before: UTF-16 would put the start one further
    assert start == P01.index(SPAN) == len(P01[:P01.index(SPAN)].encode("utf-16-le")) // 2 - 1


def test_no_json_in_any_description_and_memos_are_linked_notes(study, tmp_path):
    root, _ = _export(study, tmp_path / "s.qdpx")
    for d in root.iter(f"{{{PROJECT_NS}}}Description"):
        assert not re.search(r"coder: \{|\{\"", d.text or ""), d.text
    notes = {n.get("guid"): n for n in root.iterfind("q:Notes/q:Note", NS)}
    text = {g: n.findtext("q:PlainTextContent", namespaces=NS) for g, n in notes.items()}
    assert sorted(text.values()) == ["About the interview", "Segment thought", "clear case",
                                     "clear case", "the place 🚀"]
    # every Note has a time (QualCoder's parse_notes needs one) and is referred to
    assert all(n.get("creationDateTime") for n in notes.values())
    refs = [r.get("targetGUID") for r in root.iter(f"{{{PROJECT_NS}}}NoteRef")]
    assert sorted(refs) == sorted(notes)
    # coding memos: a NoteRef in the Coding, and the selection's Description when every code
    # on the span has that memo (what QualCoder shows as the coding memo)
    whole = root.find(".//q:TextSource/q:PlainTextSelection", NS)
    assert whole.findtext("q:Description", namespaces=NS) == "clear case"
    assert [text[c.find("q:NoteRef", NS).get("targetGUID")]
            for c in whole.findall("q:Coding", NS)] == ["clear case", "clear case"]
    # segment and document memos hang on their source
    source_refs = [text[r.get("targetGUID")]
                   for r in root.find(".//q:TextSource", NS).findall("q:NoteRef", NS)]
    assert sorted(source_refs) == ["About the interview", "Segment thought"]
    users = _users(root)
    assert users[notes[next(g for g, t in text.items() if t == "About the interview")]
                 .get("creatingUser")] == "bob"


def test_colours_and_code_descriptions(study, tmp_path):
    root, _ = _export(study, tmp_path / "s.qdpx")
    by_name = {c.get("name"): c for c in _codes(root).values()}
    # the codebook's colour where it has one, a child inherits its parent's, else the palette
    assert {n: c.get("color") for n, c in by_name.items()} == {
        "Motives": "#AA3300", "Market": "#AA3300", "Networks": "#0000FF", "Barriers": "#FF7F0E"}
    assert by_name["Market"].findtext("q:Description", namespaces=NS) == \
        "Foreign demand\nInclude: Names demand abroad"
    assert by_name["Barriers"].find("q:Description", NS) is None
    assert all(c.get("isCodable") == "true" for c in by_name.values())


def test_private_file_holds_what_other_tools_do_not_see(study, tmp_path):
    root, z = _export(study, tmp_path / "s.qdpx")
    assert "coder.json" not in z.namelist()
    data = json.loads(z.read(MEMBER))
    assert data["format"] == "coder-private" and data["version"] == 1
    kinds = sorted((d["coder"], d["decision"], d["code"]) for d in data["decisions"])
    assert kinds == [("alice", "added", "networks"), ("alice", "added", "networks"),
                     ("alice", "confirmed", "market"), ("bob", "no_code", None),
                     ("bob", "rejected", "barriers"), ("bob", "rejected", "market")]
    rejected = next(d for d in data["decisions"] if d["code"] == "market" and d["coder"] == "bob")
    assert (rejected["model_version"], rejected["suggestion_score"]) == (4, 0.61)
    assert rejected["selection"] is None and rejected["coding"] is None
    # the positive ones name the selection and coding that carry them in project.qde
    codings = {c.get("guid") for c in root.iter(f"{{{PROJECT_NS}}}Coding")}
    assert {d["coding"] for d in data["decisions"] if d["selection"]} == codings
    # keyed by the project's GUIDs
    assert set(data["codes"]) == set(_codes(root))
    assert set(data["sources"]) == {s.get("guid") for s in root.iterfind(".//q:TextSource", NS)}
    assert [h["action"] for h in data["history"] if h["code"] == "barriers"] == \
        ["insert", "update"]


def test_exports_are_valid_against_the_official_schemas(study, tmp_path):
    for kw in ({}, {"include_suggestions": True}, {"coders": ["bob"]}, {"include_auto": False}):
        root, _ = _export(study, tmp_path / "s.qdpx", **kw)
        _validate(root, "Project.xsd")
    out = write_codebook(study.codebook(), tmp_path / "book.qdc")
    _validate(etree.parse(str(out)).getroot(), "Codebook.xsd")


def test_an_empty_study_exports_a_valid_project(tmp_path):
    s = Study.create(tmp_path / "empty.db")
    root, _ = _export(s, tmp_path / "e.qdpx")
    _validate(root, "Project.xsd")
    s.close()


def test_auto_codings_only_when_asked(study, tmp_path):
    with study.db.transaction():
        study.db.execute("UPDATE codings SET decision='auto' WHERE decision='added' AND "
                         "start_char IS NULL AND code_id='networks'")
    root, _ = _export(study, tmp_path / "with.qdpx")
    assert len(list(root.iter(f"{{{PROJECT_NS}}}Coding"))) == 3
    root, z = _export(study, tmp_path / "without.qdpx", include_auto=False)
    assert len(list(root.iter(f"{{{PROJECT_NS}}}Coding"))) == 2
    assert "auto" in {d["decision"] for d in json.loads(z.read(MEMBER))["decisions"]}


# -- round trip -----------------------------------------------------------------------------
def rows(study: Study) -> list[tuple]:
    """The codings rows that matter, independent of row ids."""
    return [tuple(r) for r in study.db.query(
        "SELECT d.text, s.position, k.start_char, k.end_char, k.code_id, c.name, k.decision, "
        "k.memo, k.reason, k.seconds, k.source, k.model_version, k.suggestion_score, "
        "k.created_at FROM codings k JOIN coders c ON c.id = k.coder_id "
        "JOIN segments s ON s.id = k.segment_id JOIN documents d ON d.id = s.document_id "
        "ORDER BY 2, 3, 4, 5, 6, 7")]


def memos(study: Study) -> list[tuple]:
    return [tuple(r) for r in study.db.query(
        "SELECT m.document_id IS NOT NULL, s.position, c.name, m.text, m.created_at FROM memos m "
        "LEFT JOIN segments s ON s.id = m.segment_id LEFT JOIN coders c ON c.id = m.coder_id "
        "ORDER BY m.text")]


def test_round_trip_is_byte_identical_with_rejections_and_no_code(study, tmp_path):
    first = tmp_path / "first.qdpx"
    export_project(study, first, include_suggestions=True)
    warnings: list[str] = []
    (tmp_path / "b").mkdir()   # the same file name: the project is named after it
    back = Study.import_project(tmp_path / "b" / "study.db", first, warnings=warnings)
    assert warnings == []
    assert rows(back) == rows(study)
    assert {"rejected", "no_code"} <= {r[6] for r in rows(back)}
    assert memos(back) == memos(study)
    assert [c.path for c in back.codebook().codes] == [c.path for c in study.codebook().codes]
    assert back.codebook().get("market").include == "Names demand abroad"
    assert back.db.one("SELECT text FROM documents")["text"] == P01
    # the decision history came along, as it was recorded
    history = ("SELECT h.action, h.decision, h.code_id, c.name, h.memo, h.recorded_at, "
               "h.start_char FROM coding_history h JOIN coders c ON c.id = h.coder_id "
               "ORDER BY h.id")
    assert [tuple(r) for r in back.db.query(history)] == \
        [tuple(r) for r in study.db.query(history)]
    # and out again: the same file
    second = tmp_path / "second.qdpx"
    export_project(back, second, include_suggestions=True)
    z1, z2 = zipfile.ZipFile(first), zipfile.ZipFile(second)
    assert z1.namelist() == z2.namelist()
    for name in z1.namelist():   # the private file too: decisions, history, suggestions
        assert z1.read(name) == z2.read(name), name
    assert second.read_bytes() == first.read_bytes()   # the zip itself, byte for byte
    back.close()


def _rewrite(src: Path, dst: Path, change) -> Path:
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
        for name in z.namelist():
            data = change(name, z.read(name))
            if data is not None:
                out.writestr(name, data)
    return dst


def _private_codes(change):
    """A change to the codes of the private file only."""
    def edit(name, data):
        if name != MEMBER:
            return data
        doc = json.loads(data)
        for entry in doc["codes"].values():
            change(entry)
        return json.dumps(doc).encode()
    return edit


@pytest.mark.parametrize("change, why", [
    (_private_codes(lambda e: e.update(id="same")), "'codes' gives two codes one id"),
    (_private_codes(lambda e: e.update(leads_to=["barriers"]) if e["id"] == "market" else None),
     "its codes do not make a codebook: "),
    (lambda name, data: b"{not json" if name == MEMBER else data, "not valid JSON"),
    (lambda name, data: json.dumps({**json.loads(data), "decisions": [{"segment": "x"}]})
     .encode() if name == MEMBER else data, "decisions[0] has no 'source'"),
    (lambda name, data: json.dumps({**json.loads(data), "version": 99}).encode()
     if name == MEMBER else data, "version 99; this coder reads version 1"),
    (lambda name, data: data.replace(b'origin="coder', b'origin="Coder') if name == "project.qde"
     else data,
     "was written for another version of project.qde"),
])
def test_damaged_or_stale_private_file_is_a_warning(study, tmp_path, change, why):
    export_project(study, tmp_path / "s.qdpx")
    bad = _rewrite(tmp_path / "s.qdpx", tmp_path / "bad.qdpx", change)
    result = CliRunner().invoke(cli, ["import-project", str(tmp_path / "b.db"), str(bad)])
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert f"Warning: {MEMBER}" in result.output and why in result.output
    assert "imported as other tools see the project" in result.output
    back = Study(tmp_path / "b.db")
    book = back.codebook()
    got = {(r[5], r[6], book.get(r[4]).name) for r in rows(back)}
    # what other tools see came through; the private decisions did not
    assert {("alice", "confirmed", "Market"), ("alice", "confirmed", "Networks")} <= got
    assert not {r for r in got if r[1] in ("rejected", "no_code")}
    back.close()


def test_without_private_file_the_project_reads_as_another_tools(study, tmp_path):
    export_project(study, tmp_path / "s.qdpx")
    plain = _rewrite(tmp_path / "s.qdpx", tmp_path / "plain.qdpx",
                     lambda name, data: None if name == MEMBER else data)
    warnings: list[str] = []
    back = Study.import_project(tmp_path / "p.db", plain, warnings=warnings)
    assert not any(MEMBER in w for w in warnings)
    decided = {r[6] for r in rows(back)}
    assert "rejected" not in decided and "no_code" not in decided
    book = back.codebook()
    span = [r for r in rows(back) if book.get(r[4]).name == "Networks" and r[2] is not None]
    assert [(r[2], r[3]) for r in span] == [(P01.index(SPAN), P01.index(SPAN) + len(SPAN))]
    back.close()


def test_cli_export_reports_private_decisions(study, tmp_path):
    out = tmp_path / "cli.qdpx"
    result = CliRunner().invoke(cli, ["export", str(study.path), str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        f"Wrote {out}: 4 codes, 1 documents, 1 participants, 3 codings by alice, bob; "
        "3 more decisions (rejected, no code) only coder reads back.")


def test_cli_import_reports_what_came_from_the_private_file(study, tmp_path):
    export_project(study, tmp_path / "s.qdpx")
    result = CliRunner().invoke(cli, ["import-project", str(tmp_path / "b.db"),
                                      str(tmp_path / "s.qdpx")])
    assert result.exit_code == 0, result.output
    assert ("From coder's private file: 6 decisions (3 that other tools do not see: rejected, "
            "no code), 0 suggestions, 2 memos, ") in result.output


def test_guids_another_tool_gave_are_written_back_verbatim(study, tmp_path):
    """GUIDs an import kept (exchange_guids, as written: case and braces) go out unchanged."""
    anna = study.db.one("SELECT id FROM codings WHERE code_id='market' AND decision='confirmed'")
    given = {("code", "market"): "{C0DE0000-0000-4000-8000-00000000000A}",
             ("user", str(study.coder_id("alice"))): "A11CE000-0000-4000-8000-00000000000A",
             ("source", str(study.document_id("p01"))): "{B0000000-0000-4000-8000-0000000000B1}",
             ("selection", str(anna["id"])): "5E100000-0000-4000-8000-0000000000AA",
             ("coding", str(anna["id"])): "C0D10000-0000-4000-8000-0000000000AA",
             ("coding_note", str(anna["id"])): "{90000000-0000-4000-8000-0000000000AA}"}
    with study.db.transaction():
        study.db.conn.executemany("INSERT INTO exchange_guids (kind, ref, guid) VALUES (?,?,?)",
                                  [(k, r, g) for (k, r), g in given.items()])
    root, z = _export(study, tmp_path / "s.qdpx")
    _validate(root, "Project.xsd")
    market = next(c for c in root.iter(f"{{{PROJECT_NS}}}Code") if c.get("name") == "Market")
    assert market.get("guid") == given[("code", "market")]
    alice = next(u for u in root.iterfind("q:Users/q:User", NS) if u.get("name") == "alice")
    assert alice.get("guid") == given[("user", str(study.coder_id("alice")))]
    src = root.find(".//q:TextSource", NS)
    assert src.get("guid") == given[("source", str(study.document_id("p01")))]
    sel = src.find("q:PlainTextSelection", NS)
    assert (sel.get("guid"), sel.get("creatingUser")) == (given[("selection", str(anna["id"]))],
                                                          alice.get("guid"))
    coding = sel.find("q:Coding", NS)
    assert coding.get("guid") == given[("coding", str(anna["id"]))]
    assert coding.find("q:CodeRef", NS).get("targetGUID") == market.get("guid")
    assert coding.find("q:NoteRef", NS).get("targetGUID") == given[("coding_note",
                                                                    str(anna["id"]))]
    # the private file is keyed by the same GUIDs, so a re-import finds everything
    data = json.loads(z.read(MEMBER))
    assert given[("code", "market")] in data["codes"] and src.get("guid") in data["sources"]
    (tmp_path / "b").mkdir()
    back = Study.import_project(tmp_path / "b" / "study.db", tmp_path / "s.qdpx")
    assert rows(back) == rows(study)
    export_project(back, tmp_path / "again.qdpx")   # and out again, the same GUIDs
    assert zipfile.ZipFile(tmp_path / "again.qdpx").read("project.qde") == z.read("project.qde")
    back.close()


def test_what_qualcoders_importer_reads(study, tmp_path):
    """The shapes QualCoder's REFI-QDA import (src/qualcoder/refi.py, class RefiImport) relies
    on, read from its source: it names a selection's codes by the first child of each Coding
    (load_codings_for_text), takes the owner from the selection's creatingUser and the memo from
    its Description, keys annotations (a selection without Coding) on (file, pos0, pos1,
    owner), needs a time on every Note (parse_notes) and an origin on the Project
    (parse_project_tag), finds texts under sources/ from plainTextPath internal:// and reads a
    code colour only as seven characters (color_selector.color_matcher) and takes a Case whose
    GUID is a Code's for that code."""
    root, z = _export(study, tmp_path / "s.qdpx", include_suggestions=True)
    assert root.get("origin", "").startswith("coder")
    users = {u.get("guid") for u in root.iterfind("q:Users/q:User", NS)}
    codes = {c.get("guid") for c in root.iter(f"{{{PROJECT_NS}}}Code")}
    for c in root.iter(f"{{{PROJECT_NS}}}Code"):
        assert re.fullmatch(r"#[0-9A-F]{6}", c.get("color"))
    for src in root.iterfind(".//q:TextSource", NS):
        assert src.get("name")
        path = src.get("plainTextPath")
        assert path.startswith("internal://") and \
            "sources" + path.split("internal:/")[1] in z.namelist()
        keys = set()
        for sel in src.iterfind("q:PlainTextSelection", NS):
            key = (sel.get("startPosition"), sel.get("endPosition"), sel.get("creatingUser"))
            assert key not in keys and sel.get("creatingUser") in users
            keys.add(key)
            assert sel.findall("q:Coding", NS), "a selection without Coding is an annotation"
            for coding in sel.iterfind("q:Coding", NS):
                first = coding[0]
                assert etree.QName(first).localname == "CodeRef"
                assert first.get("targetGUID") in codes
    for note in root.iterfind("q:Notes/q:Note", NS):
        assert note.get("creationDateTime")
    # a Case sharing a Code's GUID is taken for that code and the code deleted
    # (clean_up_case_codes_and_case_text)
    cases = {c.get("guid") for c in root.iterfind("q:Cases/q:Case", NS)}
    assert cases and not cases & codes


def test_a_category_and_a_short_colour_in_a_qdc(tmp_path):
    from coder.sources.codebook.tree import from_dict

    book = from_dict({"name": "b", "codes": [
        {"id": "care", "name": "Care / family", "codable": False, "color": "#a0c",
         "codes": [{"id": "carers", "name": "Interaction with family/ carers"}]}]}, tmp_path)
    root = etree.parse(str(write_codebook(book, tmp_path / "b.qdc"))).getroot()
    _validate(root, "Codebook.xsd")
    ns = "{urn:QDA-XML:codebook:1.0}"
    care = root.find(f"{ns}Codes/{ns}Code")
    assert (care.get("name"), care.get("isCodable"), care.get("color")) == \
        ("Care / family", "false", "#AA00CC")
    child = care.find(f"{ns}Code")
    assert (child.get("name"), child.get("isCodable"), child.get("color")) == \
        ("Interaction with family/ carers", "true", "#AA00CC")


def test_a_segment_memo_says_where_it_is_as_qualcoder_annotations_do(study, tmp_path):
    """QualCoder turns a Note into an annotation only when the Note holds a PlainTextSelection
    of the source that refers to it (refi.py, insert_annotation; checked by running its
    importer on coder's export); it keeps one annotation per (source, span, owner)."""
    anna = _seg(study, 2)
    decisions.memo(study, "alice", anna, "A second thought on the same segment")
    root, _ = _export(study, tmp_path / "s.qdpx")
    _validate(root, "Project.xsd")
    seg = study.db.one("SELECT start_char, end_char FROM segments WHERE id=?", (anna,))
    placed = {}
    for note in root.iterfind("q:Notes/q:Note", NS):
        sel = note.find("q:PlainTextSelection", NS)
        if sel is not None:
            placed[note.findtext("q:PlainTextContent", namespaces=NS)] = (
                int(sel.get("startPosition")), int(sel.get("endPosition")))
    # the first of alice's memos on the segment carries it; the second would be a duplicate
    # annotation there, the document memo has no place
    assert placed == {"Segment thought": (seg["start_char"], seg["end_char"])}
    # coder reads its own project back from its private file: both memos, once each
    back = Study.import_project(tmp_path / "b.db", tmp_path / "s.qdpx")
    texts = sorted(r["text"] for r in back.db.query("SELECT text FROM memos"))
    assert texts == ["A second thought on the same segment", "About the interview",
                     "Segment thought"]


def test_two_codes_of_one_name_are_warned_about(tmp_path):
    book = tmp_path / "book.yaml"
    book.write_text("name: B\ncodes:\n  - id: a\n    name: Internal\n    codes:\n"
                    "      - id: a1\n        name: Finance\n  - id: b\n    name: External\n"
                    "    codes:\n      - id: b1\n        name: Finance\n", encoding="utf-8")
    s = Study.create(tmp_path / "s.db", codebook=book)
    report = export_project(s, tmp_path / "s.qdpx")
    assert any("codes with the same name (Internal/Finance; External/Finance)" in w
               for w in report.warnings)
