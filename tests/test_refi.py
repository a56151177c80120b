"""REFI-QDA exchange: .qdc codebooks and .qdpx projects (export, import, round trip, bad input).

Exported XML is checked against the official REFI-QDA 1.0 XSDs (Codebook.xsd, Project.xsd) in
../shared/refi-xsd beside the checkout (or CODER_REFI_XSD_DIR), always (a missing schema fails), and
structurally (element order of the schema's sequences, required attributes).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from coder import Study
from coder.cli import cli
from coder.errors import CodebookError
from coder.exchange import export_project, read_codebook, write_codebook
from coder.sources import codebook as codebook_mod
from coder.sources.qdaxml import CODEBOOK_NS, PROJECT_NS, RefiError, code_guid, split_description

NS = {"q": PROJECT_NS}
P = f"{{{PROJECT_NS}}}"

CODEBOOK_YAML = """\
name: Exportbuch
description: Motive und Hürden
codes:
  - id: motives
    name: Motive
    description: Warum Firmen exportieren
    codes:
      - id: market
        name: Markt-Attraktivität
        description: Größe und Wachstum ausländischer Märkte
        include: Nennt Nachfrage im Ausland
        exclude: Nur Inlandsmarkt
        items: [Marktgröße, "Wachstum; schnell"]
        examples: ["Die Märkte dort sind riesig 🚀"]
        speakers: [participant]
      - id: networks
        name: Netzwerke 🌐
  - id: barriers
    name: Hürden
    codes:
      - id: finance
        name: Finanzierung
        codes:
          - id: credit
            name: Kredite
"""

P01 = ("Interviewer: Warum exportieren Sie?\n"
       "Anna: Wegen der Märkte – große Chancen! 🚀 Und Netzwerke.\n"
       "Interviewer: Noch etwas?\n"
       "Anna: Die Kredite sind teuer. Das ist alles.\n")
P02 = ("Interviewer: Erzählen Sie.\n"
       "Bob: Ich heiße Bob 😀😀 und wir haben Partner in Köln.\n"
       "Interviewer: Danke.\n")
CRLF_TEXT = "Cara: Grüße 👋 aus Wien\r\nCara: Zweite Zeile ✓\r\n"
PARTICIPANTS = "participant,document,group,age_band\nAnna,p01,academic,40-49\nBob,p02,agency,30-39\n"


def _insert_crlf_document(study: Study) -> None:
    """A document whose stored text keeps CRLF line ends (import normalises them; a project
    from another tool may not): offsets must still be exact."""
    db = study.db
    with db.transaction():
        doc = db.execute(
            "INSERT INTO documents (name, format, sha256, text, unit, imported_at) "
            "VALUES ('crlf', 'txt', ?, ?, 'turn', '2026-01-02T03:04:05Z')",
            ("ab" * 32, CRLF_TEXT)).lastrowid
        pid = db.execute("INSERT INTO participants (name, created_at) VALUES ('Cara', 'x')").lastrowid
        sp = db.execute("INSERT INTO speakers (document_id, label, role, participant_id) "
                        "VALUES (?, 'Cara', 'participant', ?)", (doc, pid)).lastrowid
        for pos, seg in enumerate(["Grüße 👋 aus Wien", "Zweite Zeile ✓"], 1):
            start = CRLF_TEXT.index(seg)
            db.execute("INSERT INTO segments (document_id, position, speaker_id, turn, start_char,"
                       " end_char, text, text_hash) VALUES (?,?,?,?,?,?,?,?)",
                       (doc, pos, sp, pos, start, start + len(seg), seg, "h%d" % pos))


def _segment_id(study: Study, document: str, position: int) -> int:
    return study.db.one("SELECT segment_id FROM segment_view WHERE document=? AND position=?",
                        (document, position))["segment_id"]


def _code(study, document, position, coder, code, decision="confirmed", **extra):
    cid = study.coder_id(coder, kind=extra.pop("kind", "human"))
    cols = {"segment_id": _segment_id(study, document, position), "coder_id": cid,
            "code_id": code, "decision": decision, "codebook_version": 1,
            "created_at": extra.pop("created_at", "2026-03-04T05:06:07Z"), **extra}
    with study.db.transaction():
        study.db.execute(f"INSERT INTO codings ({','.join(cols)}) VALUES "
                         f"({','.join('?' * len(cols))})", tuple(cols.values()))


@pytest.fixture
def coded(tmp_path) -> Study:
    """A coded study with non-ASCII text, emoji, CRLF, two coders, a consensus coder, memos,
    attributes and suggestions."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "book.yaml").write_text(CODEBOOK_YAML, encoding="utf-8")
    (src / "p01.txt").write_text(P01, encoding="utf-8")
    (src / "p02.txt").write_text(P02, encoding="utf-8")
    (src / "people.csv").write_text(PARTICIPANTS, encoding="utf-8")
    (tmp_path / "a").mkdir()
    study = Study.create(tmp_path / "a" / "study.db", codebook=src / "book.yaml")
    study.import_transcripts([src / "p01.txt", src / "p02.txt"], participants=src / "people.csv")
    _insert_crlf_document(study)
    _code(study, "p01", 2, "alice", "market", seconds=4.5, memo="klar: Märkte")
    _code(study, "p01", 2, "alice", "networks", "added")
    _code(study, "p01", 2, "bob", "market", "rejected", model_version=3, suggestion_score=0.42)
    _code(study, "p01", 4, "bob", None, "no_code")
    _code(study, "p01", 4, "alice", "credit")
    _code(study, "p02", 2, "bob", "networks", "auto", source="review")
    _code(study, "p01", 2, "consensus", "market", reason="beide einig", kind="consensus",
          source="reconcile")
    _code(study, "crlf", 2, "alice", "barriers", created_at="2026-03-04 05:06:07")
    with study.db.transaction():
        study.db.execute("INSERT INTO memos (segment_id, coder_id, text, created_at) VALUES "
                         "(?, 1, 'Spannend 🚀', '2026-03-04T05:06:07Z')",
                         (_segment_id(study, "p02", 2),))
        study.db.execute("INSERT INTO memos (document_id, coder_id, text, created_at) VALUES "
                         "(?, 2, 'Ganzes Interview', '2026-03-04T05:06:07Z')",
                         (study.document_id("p01"),))
        for rank, code in enumerate(["market", "networks"], 1):
            study.db.execute(
                "INSERT INTO suggestions (segment_id, code_id, score, rank, source, threshold, "
                "model_version, codebook_version, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (_segment_id(study, "p02", 2), code, 0.9 / rank, rank, "blend", 0.3, 2, 1,
                 "2026-03-04T05:06:07Z"))
    yield study
    study.close()


def snapshot(study: Study) -> dict:
    """Everything a round trip must keep, independent of row ids."""
    q = study.db.query
    book = study.codebook()
    return {
        "codebook": (book.name, book.description,
                     [(c.id, c.path, c.parent_id, c.description, c.include, c.exclude, c.items,
                       c.examples, c.speakers) for c in book.codes]),
        "documents": [tuple(r) for r in q(
            "SELECT name, format, sha256, text, unit FROM documents ORDER BY name")],
        "segments": [tuple(r) for r in q(
            "SELECT document, position, turn, speaker, role, participant, start_char, end_char, "
            "text FROM segment_view ORDER BY document, position")],
        "participants": study.participants().drop(columns="id").to_dict("records"),
        "coders": [tuple(r) for r in q("SELECT name, kind FROM coders ORDER BY name")],
        "codings": [tuple(r) for r in q(
            "SELECT v.document, v.position, c.name, k.code_id, k.decision, k.memo, k.reason, "
            "k.seconds, k.source, k.model_version, k.suggestion_score, k.created_at "
            "FROM codings k JOIN coders c ON c.id = k.coder_id JOIN segment_view v "
            "ON v.segment_id = k.segment_id ORDER BY 1, 2, 3, 4")],
        "memos": [tuple(r) for r in q(
            "SELECT COALESCE(d.name, v.document), v.position, c.name, m.text FROM memos m "
            "LEFT JOIN documents d ON d.id = m.document_id LEFT JOIN segment_view v "
            "ON v.segment_id = m.segment_id LEFT JOIN coders c ON c.id = m.coder_id ORDER BY 4")],
        "suggestions": [tuple(r) for r in q(
            "SELECT v.document, v.position, g.code_id, g.score, g.rank, g.source, g.threshold, "
            "g.model_version FROM suggestions g JOIN segment_view v "
            "ON v.segment_id = g.segment_id ORDER BY 1, 2, 3")],
    }


def read_qdpx(path: Path) -> tuple[etree._Element, zipfile.ZipFile]:
    z = zipfile.ZipFile(path)
    return etree.fromstring(z.read("project.qde")), z


# -- structural schema check (the sequences of Project-mrt2019.xsd that coder writes) --------
ORDER = {
    "Project": ["Users", "CodeBook", "Variables", "Cases", "Sources", "Notes", "Links", "Sets",
                "Graphs", "Description", "NoteRef"],
    "Users": ["User"], "CodeBook": ["Codes"], "Codes": ["Code"],
    "Code": ["Description", "NoteRef", "Code"], "Variables": ["Variable"],
    "Variable": ["Description"], "Cases": ["Case"],
    "Case": ["Description", "CodeRef", "VariableValue", "SourceRef", "SelectionRef"],
    "VariableValue": ["VariableRef", "TextValue"], "Sources": ["TextSource"],
    "TextSource": ["Description", "PlainTextContent", "PlainTextSelection", "Coding", "NoteRef",
                   "VariableValue"],
    "PlainTextSelection": ["Description", "Coding", "NoteRef"],
    "Coding": ["CodeRef", "NoteRef"], "Notes": ["Note"],
    "Note": ["Description", "PlainTextContent", "PlainTextSelection", "Coding", "NoteRef"],
}
REQUIRED = {"Project": ["name"], "User": ["guid"], "Code": ["guid", "name", "isCodable"],
            "Variable": ["guid", "name", "typeOfVariable"], "Case": ["guid"],
            "TextSource": ["guid"], "PlainTextSelection": ["guid", "startPosition", "endPosition"],
            "Coding": ["guid"], "CodeRef": ["targetGUID"], "VariableRef": ["targetGUID"],
            "SourceRef": ["targetGUID"], "NoteRef": ["targetGUID"], "Note": ["guid"]}
GUID_ATTRS = {"guid", "targetGUID", "creatingUser"}


def check_structure(root: etree._Element, ns: str) -> None:
    import re

    guid_re = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    for el in root.iter():
        q = etree.QName(el)
        assert q.namespace == ns, el.tag
        for attr in REQUIRED.get(q.localname, []):
            assert el.get(attr), f"{q.localname} lacks {attr}"
        for attr in GUID_ATTRS & set(el.keys()):
            assert guid_re.match(el.get(attr)), (q.localname, attr, el.get(attr))
        if q.localname in ORDER:
            allowed = ORDER[q.localname]
            kids = [etree.QName(k).localname for k in el]
            assert all(k in allowed for k in kids), (q.localname, kids)
            idx = [allowed.index(k) for k in kids]
            assert idx == sorted(idx), (q.localname, kids)


# the official schemas, from the shared folder beside the checkout (CI always has it)
XSD_DIR = Path(os.environ.get("CODER_REFI_XSD_DIR")
               or Path(__file__).resolve().parent.parent.parent / "shared" / "refi-xsd")


def validate_xsd(root: etree._Element, name: str) -> None:
    path = XSD_DIR / name
    # always, never skipped: an export that no tool can validate is a failure here
    assert path.exists(), f"REFI-QDA schema {path} not found (../shared/refi-xsd beside the checkout)"
    schema = etree.XMLSchema(etree.parse(str(path)))
    schema.assertValid(root)


# -- codebooks ------------------------------------------------------------------------------
def test_codebook_qdc_round_trip(coded, tmp_path):
    book = coded.codebook()
    out = write_codebook(book, tmp_path / "book.qdc")
    root = etree.parse(str(out)).getroot()
    assert root.tag == f"{{{CODEBOOK_NS}}}CodeBook"
    check_structure(root, CODEBOOK_NS)
    top = root.findall(f"{{{CODEBOOK_NS}}}Codes/{{{CODEBOOK_NS}}}Code")
    assert [c.get("name") for c in top] == ["Motive", "Hürden"]
    assert top[0].get("isCodable") == "true" and top[0].get("color").startswith("#")
    market = top[0].findall(f"{{{CODEBOOK_NS}}}Code")[0]
    desc = market.findtext(f"{{{CODEBOOK_NS}}}Description")
    assert desc.startswith("Größe und Wachstum ausländischer Märkte\nInclude: Nennt Nachfrage")
    assert "Items: Marktgröße; Wachstum; schnell" in desc
    assert "coder: {" not in etree.tostring(root, encoding="unicode")   # no JSON for people
    # codebook.load dispatches .qdc here; alone, a .qdc says what other tools read: names,
    # levels, colours, a readable description (the name is the file's stem)
    again = codebook_mod.load(out)
    assert again.name == "book"
    assert [c.path for c in again.codes] == [c.path for c in book.codes]
    got = next(c for c in again.codes if c.name == "Markt-Attraktivität")
    assert (got.id, got.description, got.include) == (code_guid("market"), desc, "")
    # back in the study it came from, its GUIDs name the codes again and the fields the
    # description summed up come back exactly (nothing is dropped, no codings orphaned)
    with coded.db.transaction():
        stored = coded.store_codebook(again, source=str(out))
    assert [(c.id, c.path, c.description, c.include, c.exclude, c.items, c.examples, c.speakers)
            for c in stored.codes] == [
        (c.id, c.path, c.description, c.include, c.exclude, c.items, c.examples, c.speakers)
        for c in book.codes]
    # the same codebook gives the same file (stable GUIDs)
    assert write_codebook(book, tmp_path / "again.qdc").read_bytes() == out.read_bytes()


def test_codebook_qdc_xsd(coded, tmp_path):
    out = write_codebook(coded.codebook(), tmp_path / "book.qdc")
    validate_xsd(etree.parse(str(out)).getroot(), "Codebook.xsd")


def test_foreign_qdc_uses_guid_as_id_and_description(tmp_path):
    qdc = tmp_path / "nvivo.qdc"
    qdc.write_text(f"""<?xml version="1.0" encoding="utf-8"?>
<CodeBook xmlns="{CODEBOOK_NS}" origin="NVivo"><Codes>
  <Code guid="{{0A1B2C3D-0000-4000-8000-000000000001}}" name="Trust" isCodable="true">
    <Description>Talk about trust.
Two lines.</Description>
    <Code guid="0a1b2c3d-0000-4000-8000-000000000002" name="In/out groups" isCodable="true"/>
  </Code></Codes></CodeBook>""", encoding="utf-8")
    warnings: list[str] = []
    book = read_codebook(qdc, warnings=warnings)
    assert [(c.id, c.path, c.description) for c in book.codes] == [
        ("0a1b2c3d-0000-4000-8000-000000000001", "Trust", "Talk about trust.\nTwo lines."),
        ("0a1b2c3d-0000-4000-8000-000000000002", "Trust/In\\/out groups", "")]
    assert book.codes[1].name == "In/out groups"   # a '/' stays; the path escapes it
    assert book.resolve("Trust/In\\/out groups") is book.codes[1]
    # the GUIDs as NVivo wrote them (braces, upper case), for the next export
    assert [c.guid for c in book.codes] == ["{0A1B2C3D-0000-4000-8000-000000000001}",
                                            "0a1b2c3d-0000-4000-8000-000000000002"]
    assert warnings == []


@pytest.mark.parametrize("content, message", [
    ("<CodeBook", "codebook: XML is not well-formed"),
    ('<CodeBook xmlns="urn:other"><Codes/></CodeBook>',
     "root element is <CodeBook> in namespace 'urn:other'; expected <CodeBook> in "
     "'urn:QDA-XML:codebook:1.0'"),
])
def test_bad_qdc(tmp_path, content, message):
    qdc = tmp_path / "bad.qdc"
    qdc.write_text(content, encoding="utf-8")
    with pytest.raises(CodebookError) as e:
        codebook_mod.load(qdc)
    assert message in str(e.value) and str(qdc) in str(e.value)


# -- export ---------------------------------------------------------------------------------
def test_export_writes_users_codebook_cases_sources_selections(coded, tmp_path):
    out = tmp_path / "study.qdpx"
    result = export_project(coded, out, include_suggestions=True)
    assert result.users == ["alice", "bob", "consensus", "machine"]
    # 6 codings other tools see; bob's rejection and "no code" only in coder's private file
    assert (result.sources, result.cases, result.selections, result.suggestions,
            result.private_decisions) == (3, 3, 6, 2, 2)
    root, z = read_qdpx(out)
    check_structure(root, PROJECT_NS)
    assert root.get("name") == "study"
    users = {u.get("name"): u.get("guid") for u in root.iterfind("q:Users/q:User", NS)}
    assert list(users) == ["alice", "bob", "consensus", "machine"]
    codes = {c.get("name"): c for c in root.iterfind(".//q:CodeBook//q:Code", NS)}
    assert list(codes) == ["Motive", "Markt-Attraktivität", "Netzwerke 🌐", "Hürden",
                           "Finanzierung", "Kredite"]
    assert codes["Kredite"].getparent() is codes["Finanzierung"]
    # participants as cases with their attributes
    variables = {v.get("guid"): v.get("name") for v in root.iterfind("q:Variables/q:Variable", NS)}
    assert sorted(variables.values()) == ["age_band", "group"]
    cases = {}
    for case in root.iterfind("q:Cases/q:Case", NS):
        cases[case.get("name")] = {
            variables[vv.find("q:VariableRef", NS).get("targetGUID")]: vv.findtext("q:TextValue", namespaces=NS)
            for vv in case.iterfind("q:VariableValue", NS)}
    assert cases == {"Anna": {"age_band": "40-49", "group": "academic"},
                     "Bob": {"age_band": "30-39", "group": "agency"}, "Cara": {}}
    # sources: exact text in sources/<guid>.txt; selections index it in code points
    sources = {s.get("name"): s for s in root.iterfind("q:Sources/q:TextSource", NS)}
    for name, src in sources.items():
        assert src.get("plainTextPath") == f"internal://{src.get('guid')}.txt"
        text = z.read(f"sources/{src.get('guid')}.txt").decode("utf-8")
        assert text == coded.db.one("SELECT text FROM documents WHERE name=?", (name,))["text"]
        for sel in src.iterfind("q:PlainTextSelection", NS):
            start, end = int(sel.get("startPosition")), int(sel.get("endPosition"))
            pos = int(sel.get("name").rsplit("#", 1)[1])
            seg = coded.db.one("SELECT text FROM segment_view WHERE document=? AND position=?",
                               (name, pos))["text"]
            assert text[start:end] == seg
    crlf = sources["crlf"]
    sel = crlf.find("q:PlainTextSelection", NS)
    assert (sel.get("startPosition"), sel.get("endPosition")) == ("30", "44")  # \r\n = 2, 👋 = 1 (UTF-16 would say 31)
    p02 = sources["p02"]
    by_user = {v: k for k, v in users.items()}
    bob = [s for s in p02.iterfind("q:PlainTextSelection", NS)
           if by_user[s.get("creatingUser")] == "bob"]
    assert bob[0].get("startPosition") == str(P02.index("Ich heiße Bob"))
    # one selection per (span, user) with a Coding per code; Descriptions hold no coder line
    code_name = {c.get("guid"): n for n, c in codes.items()}
    sels = {}
    # the coded selections of the sources, not the places of memos inside Notes
    for s in root.iterfind("q:Sources/q:TextSource/q:PlainTextSelection", NS):
        assert split_description(s.findtext("q:Description", namespaces=NS))[1] is None
        sels[(s.get("name"), by_user[s.get("creatingUser")])] = (s, [
            code_name[c.find("q:CodeRef", NS).get("targetGUID")] for c in s.findall("q:Coding", NS)])
    assert {k: v[1] for k, v in sels.items()} == {
        ("p01 #2", "alice"): ["Markt-Attraktivität", "Netzwerke 🌐"],
        ("p01 #2", "consensus"): ["Markt-Attraktivität"], ("p01 #4", "alice"): ["Kredite"],
        ("p02 #2", "bob"): ["Netzwerke 🌐"], ("p02 #2", "machine"): ["Markt-Attraktivität",
                                                                    "Netzwerke 🌐"],
        ("crlf #2", "alice"): ["Hürden"]}
    s = sels[("p01 #2", "alice")][0]
    coding = s.find("q:Coding", NS)
    assert coding.get("creatingUser") == users["alice"]
    assert coding.get("creationDateTime") == "2026-03-04T05:06:07Z"
    assert coding.find("q:CodeRef", NS).get("targetGUID") == codes["Markt-Attraktivität"].get("guid")
    assert s.find("q:Description", NS) is None   # only one of its two codes has the memo
    # decisions REFI has no place for: coder's private file, keyed by the project's GUIDs
    private = json.loads(z.read("coder/coder-data.json"))
    decided = {(d["segment"], d["coder"], d["code"]): d for d in private["decisions"]
               if d["source"] == sources["p01"].get("guid")}
    rejected = decided[(2, "bob", "market")]
    assert (rejected["decision"], rejected["model_version"], rejected["suggestion_score"],
            rejected["selection"]) == ("rejected", 3, 0.42, None)
    assert decided[(4, "bob", None)]["decision"] == "no_code"
    mine = decided[(2, "alice", "market")]
    assert (mine["memo"], mine["seconds"], mine["coding"]) == ("klar: Märkte", 4.5,
                                                              coding.get("guid"))
    assert decided[(2, "consensus", "market")]["reason"] == "beide einig"
    ranks = {(g["code"], g["rank"], g["origin"]) for g in private["suggestions"]}
    assert ranks == {("market", 1, "blend"), ("networks", 2, "blend")}
    # memos as notes, the coding memo linked from its Coding
    notes = {n.get("guid"): n.findtext("q:PlainTextContent", namespaces=NS)
             for n in root.iterfind("q:Notes/q:Note", NS)}
    assert sorted(notes.values()) == ["Ganzes Interview", "Spannend 🚀", "klar: Märkte"]
    assert notes[coding.find("q:NoteRef", NS).get("targetGUID")] == "klar: Märkte"


def test_export_is_stable_and_filters_coders(coded, tmp_path):
    export_project(coded, tmp_path / "one.qdpx")
    export_project(coded, tmp_path / "two.qdpx")
    one, z1 = read_qdpx(tmp_path / "one.qdpx")
    two, _ = read_qdpx(tmp_path / "two.qdpx")
    assert etree.tostring(one) == etree.tostring(two)
    assert sorted(z1.namelist()) == sorted(read_qdpx(tmp_path / "two.qdpx")[1].namelist())
    export_project(coded, tmp_path / "alice.qdpx", coders=["alice"])
    root, _ = read_qdpx(tmp_path / "alice.qdpx")
    assert [u.get("name") for u in root.iterfind("q:Users/q:User", NS)] == ["alice"]
    alice = root.find("q:Users/q:User", NS).get("guid")
    coders = {s.get("creatingUser") for s in root.iterfind(".//q:PlainTextSelection", NS)}
    assert coders == {alice}
    private = json.loads(z1.read("coder/coder-data.json"))
    assert {d["coder"] for d in private["decisions"]} == {"alice", "bob", "consensus"}
    assert {d["coder"] for d in json.loads(zipfile.ZipFile(tmp_path / "alice.qdpx").read(
        "coder/coder-data.json"))["decisions"]} == {"alice"}
    # same keys, same GUIDs whichever coders are exported
    guids = lambda r: {s.get("guid") for s in r.iterfind(".//q:PlainTextSelection", NS)}  # noqa: E731
    assert guids(root) <= guids(one)


def test_export_project_xsd(coded, tmp_path):
    export_project(coded, tmp_path / "s.qdpx", include_suggestions=True)
    validate_xsd(read_qdpx(tmp_path / "s.qdpx")[0], "Project.xsd")


def test_export_unknown_coder(coded, tmp_path):
    result = CliRunner().invoke(cli, ["export", str(coded.path), str(tmp_path / "x.qdpx"),
                                      "--coders", "alice,zoe"])
    assert result.exit_code == 1
    assert result.output.strip() == \
        "Error: unknown coder(s): zoe (coders: alice, bob, consensus)"
    assert not (tmp_path / "x.qdpx").exists()


# -- round trip -----------------------------------------------------------------------------
def test_round_trip(coded, tmp_path):
    first = tmp_path / "first.qdpx"
    export_project(coded, first, include_suggestions=True)
    (tmp_path / "b").mkdir()
    warnings: list[str] = []
    imported = Study.import_project(tmp_path / "b" / "study.db", first, warnings=warnings)
    assert warnings == []
    assert snapshot(imported) == snapshot(coded)
    second = tmp_path / "second.qdpx"
    export_project(imported, second, include_suggestions=True)
    z1, z2 = zipfile.ZipFile(first), zipfile.ZipFile(second)
    assert z1.namelist() == z2.namelist()
    for name in z1.namelist():
        assert z1.read(name) == z2.read(name), name
    imported.close()


def test_import_with_another_unit_maps_offsets_to_overlapping_segments(coded, tmp_path):
    export_project(coded, tmp_path / "s.qdpx")
    study = Study.import_project(tmp_path / "sent.db", tmp_path / "s.qdpx", unit="sentence")
    segs = study.segments()
    p01 = segs[segs.document == "p01"]
    # turn 'Anna: Wegen der Märkte – große Chancen! 🚀 Und Netzwerke.' is two sentences now
    turn2 = p01[p01.turn == 2]
    assert len(turn2) == 2
    alice = study.codings("alice")
    coded_market = alice[(alice.code_id == "market") & (alice.document == "p01")]
    assert sorted(coded_market.position) == sorted(turn2.position)
    assert set(coded_market.decision) == {"confirmed"}
    # participants and attributes came back too
    people = study.participants().set_index("participant")
    assert people.loc["Anna", "group"] == "academic"
    study.close()


# -- import from another tool ---------------------------------------------------------------
FOREIGN_TEXT = "Interviewer: Hello?\r\nMaría: Señor, the café 🙂 was great.\r\nMaría: Second.\r\n"


def _foreign_qde(start: int, end: int, code_ref: str = "c0000000-0000-4000-8000-000000000002",
                 ns: str = PROJECT_NS) -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<Project xmlns="{ns}" name="Field study" origin="ATLAS.ti">
 <Users><User guid="a0000000-0000-4000-8000-000000000001" name="Ana Ruiz"/></Users>
 <CodeBook><Codes>
  <Code guid="c0000000-0000-4000-8000-000000000001" name="Place" isCodable="true" color="#ff0000">
   <Description>Where things happen</Description>
   <Code guid="c0000000-0000-4000-8000-000000000002" name="Café" isCodable="true"/>
  </Code></Codes></CodeBook>
 <Variables><Variable guid="e0000000-0000-4000-8000-000000000001" name="country" typeOfVariable="Text"/>
  <Variable guid="e0000000-0000-4000-8000-000000000002" name="age" typeOfVariable="Integer"/></Variables>
 <Cases><Case guid="f0000000-0000-4000-8000-000000000001" name="Maria R">
   <VariableValue><VariableRef targetGUID="e0000000-0000-4000-8000-000000000001"/><TextValue>Spain</TextValue></VariableValue>
   <VariableValue><VariableRef targetGUID="e0000000-0000-4000-8000-000000000002"/><IntegerValue>41</IntegerValue></VariableValue>
   <SourceRef targetGUID="b0000000-0000-4000-8000-000000000001"/></Case></Cases>
 <Sources>
  <TextSource guid="b0000000-0000-4000-8000-000000000001" name="interview 1" plainTextPath="internal://b1.txt">
   <PlainTextSelection guid="d0000000-0000-4000-8000-000000000001" startPosition="{start}" endPosition="{end}"
       creatingUser="a0000000-0000-4000-8000-000000000001">
    <Coding guid="d1000000-0000-4000-8000-000000000001" creatingUser="a0000000-0000-4000-8000-000000000001"
        creationDateTime="2024-05-06T07:08:09Z"><CodeRef targetGUID="{code_ref}"/>
     <NoteRef targetGUID="90000000-0000-4000-8000-000000000001"/></Coding>
   </PlainTextSelection>
   <NoteRef targetGUID="90000000-0000-4000-8000-000000000002"/>
  </TextSource>
  <PDFSource guid="b0000000-0000-4000-8000-000000000002" name="report.pdf" path="internal://r.pdf"/>
  <PictureSource guid="b0000000-0000-4000-8000-000000000003" name="photo" path="internal://p.jpg"/>
 </Sources>
 <Notes>
  <Note guid="90000000-0000-4000-8000-000000000001" name="m1"><PlainTextContent>Nice quote</PlainTextContent></Note>
  <Note guid="90000000-0000-4000-8000-000000000002" name="m2"><PlainTextContent>About interview 1</PlainTextContent></Note>
 </Notes>
</Project>""".encode()


def _foreign_qdpx(path: Path, qde: bytes | None, text: str = FOREIGN_TEXT) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        if qde is not None:
            z.writestr("project.qde", qde)
        z.writestr("sources/b1.txt", text.encode("utf-8"))
    return path


def test_import_foreign_project_crlf_emoji(tmp_path):
    start = FOREIGN_TEXT.index("the café")            # code points, counting \r and 🙂 as one
    end = start + len("the café 🙂 was great")
    qdpx = _foreign_qdpx(tmp_path / "f.qdpx", _foreign_qde(start, end))
    result = CliRunner().invoke(cli, ["import-project", str(tmp_path / "f.db"), str(qdpx)])
    assert result.exit_code == 0, result.output
    assert "Warning: project.qde line 25: <PDFSource guid='b0000000-0000-4000-8000-000000000002'> " \
           "'report.pdf': unsupported source type PDFSource; skipped" in result.output
    assert "unsupported source type PictureSource; skipped" in result.output
    study = Study(tmp_path / "f.db")
    segs = study.segments()
    assert list(segs.speaker) == ["Interviewer", "María", "María"]
    assert list(segs.text) == ["Hello?", "Señor, the café 🙂 was great.", "Second."]
    codings = study.codings()
    assert codings[["document", "position", "coder", "code_path", "decision", "memo"]
                   ].values.tolist() == [["interview 1", 2, "Ana Ruiz", "Place/Café", "confirmed",
                                          "Nice quote"]]
    assert codings.code_id[0] == "c0000000-0000-4000-8000-000000000002"
    people = study.participants()
    assert people[["participant", "country", "age"]].values.tolist() == [["Maria R", "Spain", "41"]]
    assert set(segs.participant.dropna()) == {"Maria R"}
    assert study.codebook().get("c0000000-0000-4000-8000-000000000001").description == \
        "Where things happen"
    memos = study.db.query("SELECT text, document_id FROM memos")
    assert [(m["text"], m["document_id"]) for m in memos] == [("About interview 1", 1)]
    # the codes keep their GUIDs on the way back out
    export_project(study, tmp_path / "back.qdpx")
    root, _ = read_qdpx(tmp_path / "back.qdpx")
    assert [c.get("guid") for c in root.iterfind(".//q:Code", NS)] == [
        "c0000000-0000-4000-8000-000000000001", "c0000000-0000-4000-8000-000000000002"]
    study.close()


def test_selection_spanning_two_segments_is_one_exact_span_and_empty_selection(tmp_path):
    start = FOREIGN_TEXT.index("great")
    end = FOREIGN_TEXT.index("Second") + 1   # one character of the next turn
    qdpx = _foreign_qdpx(tmp_path / "f.qdpx", _foreign_qde(start, end))
    study = Study.import_project(tmp_path / "f.db", qdpx)
    # one coding anchored at the first segment, its exact characters, overlapping both turns
    assert sorted(study.codings().position) == [2]
    text = study.db.one("SELECT text FROM documents")["text"]
    span = study.db.one("SELECT start_char, end_char, whole FROM coding_spans")
    assert text[span["start_char"]:span["end_char"]] == "great.\nMaría: S" and not span["whole"]
    assert [r[0] for r in study.db.query("SELECT s.position FROM coding_segments c JOIN "
                                         "segments s ON s.id = c.segment_id ORDER BY 1")] == [2, 3]
    study.close()
    label = FOREIGN_TEXT.index("María: Second")   # only the speaker label: no segment
    qdpx = _foreign_qdpx(tmp_path / "g.qdpx", _foreign_qde(label, label + 5))
    warnings: list[str] = []
    study = Study.import_project(tmp_path / "g.db", qdpx, warnings=warnings)
    assert study.codings().empty
    assert "overlaps no segment; skipped" in warnings[-1]
    study.close()


# -- bad input ------------------------------------------------------------------------------
def _raw(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda p: _raw(p, b"just text"),
     "{q}: not a zip file; a .qdpx project is a zip archive holding project.qde (export the "
     "project from your tool as REFI-QDA (.qdpx))"),
    (lambda p: _zip(p, {"sources/x.txt": b"hi"}),
     "{q}: the zip has no project.qde, so it is not a REFI-QDA project"),
    (lambda p: _zip(p, {"project.qde": b"<Project xmlns='urn:QDA-XML:project:1.0'><Users>"}),
     "{q}: line 1: project.qde: XML is not well-formed: Premature end of data in tag Users "
     "line 1"),
    (lambda p: _foreign_qdpx(p, _foreign_qde(0, 5, ns="urn:QDA-XML:project:2.0")),
     "{q}: project.qde: root element is <Project> in namespace 'urn:QDA-XML:project:2.0'; "
     "expected <Project> in 'urn:QDA-XML:project:1.0'"),
    (lambda p: _foreign_qdpx(p, _foreign_qde(10, 500)),
     "{q}: project.qde line 18: <PlainTextSelection guid='d0000000-0000-4000-8000-000000000001'>:"
     " offsets 10-500 lie outside its source 'interview 1' (74 characters)"),
    (lambda p: _foreign_qdpx(p, _foreign_qde(5, 2)),
     "{q}: project.qde line 18: <PlainTextSelection guid='d0000000-0000-4000-8000-000000000001'>:"
     " offsets 5-2 lie outside its source 'interview 1' (74 characters)"),
    (lambda p: _foreign_qdpx(p, _foreign_qde(0, 5, code_ref="c0000000-0000-4000-8000-00000000dead")),
     "{q}: project.qde line 20: <CodeRef> in project.qde line 20: <Coding "
     "guid='d1000000-0000-4000-8000-000000000001'>: CodeRef to a missing code "
     "'c0000000-0000-4000-8000-00000000dead' (the project's CodeBook has no Code with that guid)"),
    (lambda p: _zip(p, {"project.qde": _foreign_qde(0, 5)}),
     "{q}: 1 source's text file is missing from the zip: 'interview 1' (sources/b1.txt, "
     "project.qde line 16); nothing was imported (export the project again with its sources, "
     "or use --skip-missing to import the rest)"),
])
def test_bad_projects(tmp_path, make, message):
    qdpx = make(tmp_path / "bad.qdpx")
    target = tmp_path / "new" / "study.db"
    target.parent.mkdir()
    result = CliRunner().invoke(cli, ["import-project", str(target), str(qdpx)])
    assert result.exit_code == 1, result.output
    assert result.output.strip() == "Error: " + message.format(q=qdpx)
    assert list(target.parent.iterdir()) == []   # nothing half-written
    with pytest.raises(RefiError):
        Study.import_project(target, qdpx)


def test_failure_while_writing_leaves_nothing(coded, tmp_path, monkeypatch):
    export_project(coded, tmp_path / "s.qdpx")
    from coder.exchange import reading

    def boom(*args, **kwargs):
        raise RefiError("disk trouble")

    monkeypatch.setattr(reading.private, "restore", boom)   # coder's own export: exact
    (tmp_path / "new").mkdir()
    with pytest.raises(RefiError):
        Study.import_project(tmp_path / "new" / "s.db", tmp_path / "s.qdpx")
    assert list((tmp_path / "new").iterdir()) == []


def test_import_refuses_existing_study(coded, tmp_path):
    export_project(coded, tmp_path / "s.qdpx")
    result = CliRunner().invoke(cli, ["import-project", str(coded.path), str(tmp_path / "s.qdpx")])
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: {coded.path} already exists (import a project into "
                                     "a new study file)")


def test_cli_export_and_import(coded, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli.qdpx"
    result = runner.invoke(cli, ["export", str(coded.path), str(out), "--include-suggestions"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        f"Wrote {out}: 6 codes, 3 documents, 3 participants, 6 codings, 2 suggestions by "
        "alice, bob, consensus, machine; 2 more decisions (rejected, no code) only coder reads "
        "back.")
    result = runner.invoke(cli, ["import-project", str(tmp_path / "n.db"), str(out)])
    assert result.exit_code == 0, result.output
    # every decision came back from coder's private file, rejections and "no code" included
    assert result.output.strip().splitlines()[-1] == (
        f"Created {tmp_path / 'n.db'}: 3 documents, 9 segments, 3 participants, 6 codes, "
        f"8 codings by 3 coder(s) (batch 1; undo with: coder undo {tmp_path / 'n.db'} --batch 1).")
    side = json.loads(zipfile.ZipFile(out).read("coder/coder-data.json"))
    assert side["version"] == 1 and len(side["sources"]) == 3
    assert "coder.json" not in zipfile.ZipFile(out).namelist()


def test_round_trip_without_coder_json(coded, tmp_path):
    """A tool that drops coder's private file (coder/coder-data.json; coder.json before): the
    project reads as other tools see it. Documents are segmented afresh (CRLF becomes LF,
    offsets are mapped); codes, participants, the positive codings with their coding memos and
    the memos survive; rejections, "no code" and suggestions were never visible, so they are
    not there."""
    export_project(coded, tmp_path / "s.qdpx", include_suggestions=True)
    with zipfile.ZipFile(tmp_path / "s.qdpx") as z, \
            zipfile.ZipFile(tmp_path / "tool.qdpx", "w") as out:
        for name in z.namelist():
            if name != "coder/coder-data.json":
                out.writestr(name, z.read(name))
    study = Study.import_project(tmp_path / "t.db", tmp_path / "tool.qdpx")
    before, after = snapshot(coded), snapshot(study)
    assert after["participants"] == before["participants"]
    assert [c[1] for c in after["codebook"][2]] == [c[1] for c in before["codebook"][2]]
    assert [(d[0], d[3]) for d in after["documents"]] == [
        (d[0], d[3].replace("\r\n", "\n")) for d in before["documents"]]

    def positive(study, snap):
        paths = {c.id: c.path for c in study.codebook().codes}
        return sorted((r[0], r[1], r[2], paths[r[3]], r[5]) for r in snap["codings"]
                      if r[4] in ("confirmed", "added", "auto") and r[2] != "machine")

    assert positive(study, after) == positive(coded, before)
    assert {r[4] for r in after["codings"]} == {"confirmed"}
    assert [m[3] for m in after["memos"]] == [m[3] for m in before["memos"]]
    assert after["suggestions"] == []
    study.close()


def test_control_characters_do_not_break_the_xml(coded, tmp_path):
    with coded.db.transaction():
        coded.db.execute("UPDATE memos SET text = 'page\x0cbreak' WHERE document_id IS NOT NULL")
        coded.db.execute("UPDATE participant_attributes SET value = 'a\x01b' WHERE attribute='group'")
    export_project(coded, tmp_path / "s.qdpx")
    root, _ = read_qdpx(tmp_path / "s.qdpx")
    notes = [n.findtext("q:PlainTextContent", namespaces=NS) for n in root.iterfind(".//q:Note", NS)]
    assert "pagebreak" in notes


def test_unlabelled_source_is_segmented_by_paragraph(tmp_path):
    text = "Just prose here, no speakers.\n\nA second paragraph about the café.\n"
    start = text.index("café")
    qdpx = _foreign_qdpx(tmp_path / "f.qdpx", _foreign_qde(start, start + 4), text=text)
    warnings: list[str] = []
    study = Study.import_project(tmp_path / "f.db", qdpx, warnings=warnings)
    assert "TextSource 'interview 1' has no speaker labels; segmented by paragraph instead of " \
           "turn" in warnings
    assert list(study.segments().text) == ["Just prose here, no speakers.",
                                           "A second paragraph about the café."]
    assert list(study.codings().position) == [2]
    assert list(study.segments().participant) == ["Maria R", "Maria R"]
    study.close()
