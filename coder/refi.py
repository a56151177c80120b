"""Exchange with NVivo, ATLAS.ti, MAXQDA and QualCoder through REFI-QDA 1.0: codebooks (``.qdc``,
XML in ``urn:QDA-XML:codebook:1.0``) and projects (``.qdpx``: a zip with ``project.qde`` in
``urn:QDA-XML:project:1.0`` plus the source texts under ``sources/``).

What coder needs and REFI-QDA has no element for travels in one machine-readable line at the end
of the element's ``Description``::

    coder: {"decision": "rejected", "coder": "alice", "code": "networking", ...}

(the prefix ``coder: `` then one JSON object). Other tools show it as text and keep it, so a
project that goes through them and comes back loses none of it. Lines are written on codes (the
code's id, include/exclude, items, examples, speakers), on text sources (unit, format, file hash,
speakers and their participants), on selections (decision, coder, code, memo, reason, seconds,
source, model version, suggestion score or, for machine suggestions, score/rank/source) and on
notes (which segment or document a memo belongs to). ``coder.json`` in the zip adds the exact
segment boundaries, used only when the text still has the same hash (tools drop unknown files).

Offsets: ``startPosition``/``endPosition`` count Unicode code points (Python ``str`` indices)
into the exact text of ``sources/<guid>.txt`` (UTF-8, no BOM); ``endPosition`` is exclusive.

Overlap rule on import: a selection codes every segment of its document that shares at least
one character with it (``start < segment.end and segment.start < end``); an empty selection
(start == end) codes the segment that contains that position. Characters outside every segment
(speaker labels, blank lines) code nothing.

GUIDs are uuid5 of fixed keys (code id, document name + hash, coder name, segment position +
code + coder), so exporting the same study twice gives the same GUIDs.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from . import __version__
from .codebook import Code, Codebook, from_dict
from .db import now, text_hash
from .errors import CodebookError, InputError, StudyError, UnknownReference

CODEBOOK_NS = "urn:QDA-XML:codebook:1.0"
PROJECT_NS = "urn:QDA-XML:project:1.0"
LINE_PREFIX = "coder: "
MACHINE = "machine"
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://coder.invalid/refi-qda/1")
PALETTE = ["#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#E377C2",
           "#7F7F7F", "#BCBD22", "#17BECF"]
GUID_RE = re.compile(r"^\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{12}\}?$")
UNSUPPORTED_SOURCES = ("PDFSource", "PictureSource", "AudioSource", "VideoSource")
POSITIVE_OR_AUTO = ("confirmed", "added", "auto")
DECISIONS = ("confirmed", "added", "rejected", "no_code", "auto")


class RefiError(InputError):
    """A REFI-QDA file that cannot be read: not a zip, bad XML, dangling references, ..."""


def guid(*parts: object) -> str:
    """A stable GUID from study-stable keys (never from row ids or clocks)."""
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(str(p) for p in parts)))


def code_guid(code_id: str) -> str:
    """A code imported from another tool keeps its GUID (it is its id); others get uuid5."""
    if GUID_RE.match(code_id):
        return code_id.strip("{}").lower()
    return guid("code", code_id)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: object) -> str:
    """Text as XML 1.0 allows it (control characters dropped; the coder line keeps them)."""
    return _NOT_XML.sub("", str(text))


def coder_line(data: dict[str, Any]) -> str:
    return LINE_PREFIX + json.dumps(data, ensure_ascii=False, sort_keys=True)


def split_description(text: str | None) -> tuple[str, dict[str, Any] | None]:
    """Split a Description into its human text and its coder line (None when there is none)."""
    text = (text or "").strip()
    if not text:
        return "", None
    head, _, last = text.rpartition("\n")
    if last.startswith(LINE_PREFIX):
        try:
            data = json.loads(last[len(LINE_PREFIX):])
        except ValueError:
            return text, None
        if isinstance(data, dict):
            return head.strip(), data
    return text, None


# -- codebooks -----------------------------------------------------------------------------

def _code_description(code: Code) -> str:
    parts = [code.description] if code.description else []
    if code.include:
        parts.append(f"Include: {code.include}")
    if code.exclude:
        parts.append(f"Exclude: {code.exclude}")
    if code.items:
        parts.append("Items: " + "; ".join(code.items))
    if code.examples:
        parts.append("Examples: " + " | ".join(code.examples))
    extra = {"id": code.id}
    for key in ("description", "include", "exclude"):
        if getattr(code, key):
            extra[key] = getattr(code, key)
    for key in ("items", "examples", "speakers"):
        if getattr(code, key):
            extra[key] = list(getattr(code, key))
    return "\n".join([*(_x(p) for p in parts), coder_line(extra)])


def _code_elements(book: Codebook, parent: etree._Element, ns: str) -> None:
    """Append the code tree (nested Code elements) under ``parent``."""
    colors: dict[str, str] = {}
    for i, top in enumerate(book.children(None)):
        colors[top.id] = PALETTE[i % len(PALETTE)]

    def add(el: etree._Element, code: Code, color: str) -> None:
        node = etree.SubElement(el, f"{{{ns}}}Code", guid=code_guid(code.id), name=_x(code.name),
                                isCodable="true", color=color)
        etree.SubElement(node, f"{{{ns}}}Description").text = _code_description(code)
        for child in book.children(code.id):
            add(node, child, color)

    for top in book.children(None):
        add(parent, top, colors[top.id])


def codebook_xml(book: Codebook) -> bytes:
    root = etree.Element(f"{{{CODEBOOK_NS}}}CodeBook", nsmap={None: CODEBOOK_NS},
                         origin=f"coder {__version__}")
    codes = etree.SubElement(root, f"{{{CODEBOOK_NS}}}Codes")
    _code_elements(book, codes, CODEBOOK_NS)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)


def write_codebook(codebook: Codebook, path: str | Path) -> Path:
    """Write a codebook as a REFI-QDA ``.qdc`` file (other tools: File > Import codebook)."""
    path = Path(path)
    if not path.parent.exists():
        raise CodebookError(f"folder {path.parent} does not exist", path=path)
    if not codebook.codes:
        raise CodebookError("the codebook has no codes", path=path)
    _atomic_write(path, codebook_xml(codebook))
    return path


def _parse_xml(data: bytes, where: str, path: Path, error=RefiError) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=False)
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        line = e.lineno if getattr(e, "lineno", None) else None
        msg = re.sub(r", line \d+, column \d+$", "", e.msg or "")
        raise error(f"{where}: XML is not well-formed: {msg}", path=path, line=line) from None


def _code_nodes(parent: etree._Element, ns: str, path: Path, where: str,
                warnings: list[str]) -> list[dict[str, Any]]:
    nodes = []
    for el in parent.findall(f"{{{ns}}}Code"):
        code_guid_ = el.get("guid")
        name = (el.get("name") or "").strip()
        if not code_guid_ or not name:
            raise CodebookError(f"{where}: <Code> at line {el.sourceline} has no "
                                f"{'guid' if not code_guid_ else 'name'}", path=path)
        if "/" in name:
            warnings.append(f"code '{name}': '/' replaced by '-' ('/' separates levels in coder)")
            name = name.replace("/", "-")
        text, extra = split_description(el.findtext(f"{{{ns}}}Description"))
        node: dict[str, Any] = {"name": name, "guid": code_guid_.strip("{}").lower()}
        if extra:
            for key in ("id", "description", "include", "exclude", "items", "examples",
                        "speakers"):
                if extra.get(key):
                    node[key] = extra[key]
        else:
            if text:
                node["description"] = text
        if not node.get("id"):
            node["id"] = node["guid"]  # no better id: the GUID keeps it stable
        kids = _code_nodes(el, ns, path, where, warnings)
        if kids:
            node["codes"] = kids
        nodes.append(node)
    return nodes


def _strip_guids(nodes: list[dict[str, Any]]) -> dict[str, str]:
    """Remove the 'guid' keys (not a codebook key) and return guid -> code id."""
    out: dict[str, str] = {}
    for n in nodes:
        out[n.pop("guid")] = n["id"]
        out.update(_strip_guids(n.get("codes", [])))
    return out


def read_codebook(path: str | Path, *, warnings: list[str] | None = None) -> Codebook:
    """Read a REFI-QDA ``.qdc`` codebook. Its name is the file's stem (.qdc has no name)."""
    path = Path(path)
    warnings = warnings if warnings is not None else []
    if not path.exists():
        raise CodebookError("file not found", path=path)
    root = _parse_xml(path.read_bytes(), "codebook", path, error=CodebookError)
    if root.tag != f"{{{CODEBOOK_NS}}}CodeBook":
        raise CodebookError(f"root element is <{etree.QName(root).localname}> in namespace "
                            f"'{etree.QName(root).namespace or ''}'; expected <CodeBook> in "
                            f"'{CODEBOOK_NS}'", path=path,
                            hint="export the codebook from your tool as REFI-QDA (.qdc)")
    codes_el = root.find(f"{{{CODEBOOK_NS}}}Codes")
    if codes_el is None:
        raise CodebookError("<CodeBook> has no <Codes>", path=path)
    nodes = _code_nodes(codes_el, CODEBOOK_NS, path, "codebook", warnings)
    _strip_guids(nodes)
    return from_dict({"name": path.stem, "codes": nodes}, path)


# -- export --------------------------------------------------------------------------------

@dataclass
class ProjectExport:
    path: str
    users: list[str]
    codes: int
    sources: int
    cases: int
    selections: int
    suggestions: int
    notes: int
    warnings: list[str] = field(default_factory=list)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_project(study, path: str | Path, *, coders: Iterable[str] | None = None,
                   include_suggestions: bool = False) -> ProjectExport:
    """Write the study as a REFI-QDA project (``.qdpx``) that NVivo, ATLAS.ti, MAXQDA and
    QualCoder open, with every coder's decisions; ``coders`` limits whose (default: all)."""
    path = Path(path)
    if not path.parent.exists():
        raise StudyError(f"folder {path.parent} does not exist", path=path)
    db = study.db
    known = study.coders()
    if coders is not None:
        coders = list(coders)
        missing = [c for c in coders if c not in known]
        if missing:
            raise UnknownReference("unknown coder(s): " + ", ".join(missing),
                                   hint="coders: " + (", ".join(known) or "none yet"))
    else:
        coders = known
    book = study.codebook() if study.codebook_version else Codebook(name="", codes=[])
    code_ids = {c.id for c in book.codes}
    warnings: list[str] = []
    P = f"{{{PROJECT_NS}}}"
    kinds = {r["name"]: r["kind"] for r in db.query("SELECT name, kind FROM coders")}
    user_guid = {name: guid("user", name) for name in coders}
    if include_suggestions:
        user_guid.setdefault(MACHINE, guid("user", MACHINE))

    project_line = {"codebook": {"name": book.name, "description": book.description},
                    "coders": {c: kinds.get(c, "human") for c in coders}}
    root = etree.Element(f"{P}Project", nsmap={None: PROJECT_NS}, name=_x(study.path.stem),
                         origin=f"coder {__version__}")
    if user_guid:
        users_el = etree.SubElement(root, f"{P}Users")
        for name, g in user_guid.items():
            etree.SubElement(users_el, f"{P}User", guid=g, name=_x(name))
    if book.codes:
        codes_el = etree.SubElement(etree.SubElement(root, f"{P}CodeBook"), f"{P}Codes")
        _code_elements(book, codes_el, PROJECT_NS)

    # participants -> Variables + Cases
    people = db.query("SELECT id, name FROM participants ORDER BY name")
    attrs = db.query("SELECT participant_id, attribute, value FROM participant_attributes "
                     "ORDER BY attribute")
    attr_names = sorted({a["attribute"] for a in attrs})
    if attr_names:
        vars_el = etree.SubElement(root, f"{P}Variables")
        for a in attr_names:
            etree.SubElement(vars_el, f"{P}Variable", guid=guid("variable", a), name=_x(a),
                             typeOfVariable="Text")
    docs = db.query("SELECT * FROM documents ORDER BY name")
    doc_guid = {d["id"]: guid("document", d["name"], d["sha256"]) for d in docs}
    speaks_in: dict[int, list[int]] = {}
    for r in db.query("SELECT DISTINCT participant_id, document_id FROM speakers "
                      "WHERE participant_id IS NOT NULL ORDER BY document_id"):
        speaks_in.setdefault(r["participant_id"], []).append(r["document_id"])
    if people:
        cases_el = etree.SubElement(root, f"{P}Cases")
        for p in people:
            case = etree.SubElement(cases_el, f"{P}Case", guid=guid("participant", p["name"]),
                                    name=_x(p["name"]))
            for a in attrs:
                if a["participant_id"] != p["id"] or a["value"] is None:
                    continue
                vv = etree.SubElement(case, f"{P}VariableValue")
                etree.SubElement(vv, f"{P}VariableRef", targetGUID=guid("variable", a["attribute"]))
                etree.SubElement(vv, f"{P}TextValue").text = _x(a["value"])
            for doc_id in speaks_in.get(p["id"], []):
                etree.SubElement(case, f"{P}SourceRef", targetGUID=doc_guid[doc_id])

    # codings, suggestions and memos, grouped by document
    placeholders = ",".join("?" * len(coders))
    codings = db.query(
        "SELECT k.*, c.name AS coder, s.document_id, s.position, s.start_char, s.end_char "
        "FROM codings k JOIN coders c ON c.id = k.coder_id JOIN segments s ON s.id = k.segment_id "
        f"WHERE c.name IN ({placeholders}) ORDER BY s.document_id, s.position, c.name, "
        "COALESCE(k.code_id, '')", tuple(coders)) if coders else []
    suggestions = db.query(
        "SELECT g.*, s.document_id, s.position, s.start_char, s.end_char FROM suggestions g "
        "JOIN segments s ON s.id = g.segment_id ORDER BY s.document_id, s.position, g.rank"
    ) if include_suggestions else []
    memos = db.query(
        "SELECT m.*, c.name AS coder, s.position, COALESCE(m.document_id, s.document_id) AS doc "
        "FROM memos m LEFT JOIN coders c ON c.id = m.coder_id "
        "LEFT JOIN segments s ON s.id = m.segment_id ORDER BY doc, s.position, m.created_at, m.id")
    by_doc: dict[int, list] = {}
    for k in codings:
        if k["code_id"] is not None and k["code_id"] not in code_ids:
            warnings.append(f"coding of segment {k['position']} by {k['coder']} refers to code "
                            f"'{k['code_id']}' that is not in the current codebook; skipped")
            continue
        by_doc.setdefault(k["document_id"], []).append(("coding", k))
    for g in suggestions:
        if g["code_id"] not in code_ids:
            continue
        by_doc.setdefault(g["document_id"], []).append(("suggestion", g))

    notes: list[etree._Element] = []
    note_refs: dict[int, list[str]] = {}
    for m in memos:
        if m["coder"] is not None and m["coder"] not in user_guid:
            continue  # a memo by a coder who is not exported
        doc_name = next((d["name"] for d in docs if d["id"] == m["doc"]), None)
        key = ("memo", doc_name, m["position"], m["coder"], m["created_at"], text_hash(m["text"]))
        g = guid(*key)
        info = {"kind": "memo", "document": doc_name, "segment": m["position"],
                "coder": m["coder"]}
        note = _note(P, g, m["text"], info, user_guid.get(m["coder"] or ""), m["created_at"])
        notes.append(note)
        if m["doc"] is not None:
            note_refs.setdefault(m["doc"], []).append(g)

    sources_el = etree.SubElement(root, f"{P}Sources") if docs else None
    files: dict[str, str] = {}
    segments_json: dict[str, Any] = {}
    n_selections = n_suggestions = 0
    for d in docs:
        g = doc_guid[d["id"]]
        speakers = db.query(
            "SELECT sp.label, sp.role, p.name AS participant FROM speakers sp "
            "LEFT JOIN participants p ON p.id = sp.participant_id WHERE sp.document_id=? "
            "ORDER BY sp.id", (d["id"],))
        info = {"format": d["format"], "unit": d["unit"], "sha256": d["sha256"],
                "speakers": [{"label": s["label"], "role": s["role"],
                              "participant": s["participant"]} for s in speakers]}
        src = etree.SubElement(sources_el, f"{P}TextSource", guid=g, name=_x(d["name"]),
                               plainTextPath=f"internal://{g}.txt")
        _set_time(src, d["imported_at"])
        etree.SubElement(src, f"{P}Description").text = coder_line(info)
        files[f"sources/{g}.txt"] = d["text"]
        segments_json[g] = {
            "text_sha256": text_hash(d["text"]),
            "segments": [[s["position"], s["turn"], s["start_char"], s["end_char"], s["label"],
                          s["start_time"], s["end_time"], s["text"], s["text_hash"]]
                         for s in db.query(
                             "SELECT s.*, sp.label FROM segments s LEFT JOIN speakers sp "
                             "ON sp.id = s.speaker_id WHERE s.document_id=? ORDER BY s.position",
                             (d["id"],))]}
        for kind, row in by_doc.get(d["id"], []):
            if kind == "coding":
                sel, note = _coding_selection(P, d, row, user_guid)
                if note is not None:
                    notes.append(note)
                n_selections += 1
            else:
                sel = _suggestion_selection(P, d, row, user_guid[MACHINE])
                n_suggestions += 1
            src.append(sel)
        for ng in note_refs.get(d["id"], []):
            etree.SubElement(src, f"{P}NoteRef", targetGUID=ng)
    if notes:
        notes_el = etree.SubElement(root, f"{P}Notes")
        for n in notes:
            notes_el.append(n)
    etree.SubElement(root, f"{P}Description").text = coder_line(project_line)

    xml = etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("project.qde", xml)
            for name, text in files.items():
                z.writestr(name, text.encode("utf-8"))
            z.writestr("coder.json", json.dumps({"version": 1, "sources": segments_json},
                                                ensure_ascii=False, sort_keys=True))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ProjectExport(path=str(path), users=list(user_guid), codes=len(book.codes),
                         sources=len(docs), cases=len(people), selections=n_selections,
                         suggestions=n_suggestions, notes=len(notes), warnings=warnings)


XSD_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$")


def _datetime(value: str | None) -> str | None:
    """An xsd:dateTime for a stored time (coder writes ISO 8601 with 'T' and 'Z' already)."""
    if not value or XSD_DATETIME.match(value):
        return value or None
    candidate = value.strip().replace(" ", "T", 1)
    return candidate if XSD_DATETIME.match(candidate) else None


def _set_time(el: etree._Element, value: str | None) -> None:
    value = _datetime(value)
    if value:
        el.set("creationDateTime", value)


def _note(P: str, g: str, text: str, info: dict[str, Any], user: str | None,
          created: str | None) -> etree._Element:
    note = etree.Element(f"{P}Note", guid=g, name=info.get("kind", "memo"))
    if user:
        note.set("creatingUser", user)
    _set_time(note, created)
    etree.SubElement(note, f"{P}Description").text = coder_line(info)
    etree.SubElement(note, f"{P}PlainTextContent").text = _x(text)
    return note


def _coding_selection(P, doc, k, user_guid) -> tuple[etree._Element, etree._Element | None]:
    code_id = k["code_id"] or ""
    key = (doc["name"], doc["sha256"], k["position"], code_id, k["coder"])
    sel = etree.Element(f"{P}PlainTextSelection", guid=guid("selection", *key),
                        name=_x(f"{doc['name']} #{k['position']}"),
                        startPosition=str(k["start_char"]), endPosition=str(k["end_char"]),
                        creatingUser=user_guid[k["coder"]])
    _set_time(sel, k["created_at"])
    info: dict[str, Any] = {"decision": k["decision"], "coder": k["coder"], "code": k["code_id"],
                            "source": k["source"]}
    for col in ("memo", "reason", "seconds", "model_version", "suggestion_score",
                "codebook_version"):
        if k[col] is not None:
            info[col] = k[col]
    if _datetime(k["created_at"]) != k["created_at"]:
        info["created_at"] = k["created_at"]  # not an xsd:dateTime: kept verbatim here
    etree.SubElement(sel, f"{P}Description").text = coder_line(info)
    note = None
    if k["memo"]:
        ng = guid("coding-memo", *key)
        note = _note(P, ng, k["memo"], {"kind": "coding-memo"}, user_guid[k["coder"]],
                     k["created_at"])
    if k["decision"] in POSITIVE_OR_AUTO and k["code_id"]:
        coding = etree.SubElement(sel, f"{P}Coding", guid=guid("coding", *key),
                                  creatingUser=user_guid[k["coder"]])
        _set_time(coding, k["created_at"])
        etree.SubElement(coding, f"{P}CodeRef", targetGUID=code_guid(k["code_id"]))
        if note is not None:
            etree.SubElement(coding, f"{P}NoteRef", targetGUID=note.get("guid"))
    elif note is not None:
        etree.SubElement(sel, f"{P}NoteRef", targetGUID=note.get("guid"))
    return sel, note


def _suggestion_selection(P, doc, g, machine_guid) -> etree._Element:
    key = (doc["name"], doc["sha256"], g["position"], g["code_id"], MACHINE)
    sel = etree.Element(f"{P}PlainTextSelection", guid=guid("selection", *key),
                        name=_x(f"{doc['name']} #{g['position']}"),
                        startPosition=str(g["start_char"]), endPosition=str(g["end_char"]),
                        creatingUser=machine_guid)
    _set_time(sel, g["created_at"])
    info = {"suggestion": True, "code": g["code_id"], "score": g["score"], "rank": g["rank"],
            "source": g["source"], "model_version": g["model_version"],
            "codebook_version": g["codebook_version"], "threshold": g["threshold"]}
    etree.SubElement(sel, f"{P}Description").text = coder_line(info)
    coding = etree.SubElement(sel, f"{P}Coding", guid=guid("coding", *key),
                              creatingUser=machine_guid)
    _set_time(sel, g["created_at"])
    etree.SubElement(coding, f"{P}CodeRef", targetGUID=code_guid(g["code_id"]))
    return sel


# -- import --------------------------------------------------------------------------------

@dataclass
class _Coding:
    guid: str
    user: str | None          # user GUID
    created: str | None
    code_guid: str
    note_refs: list[str]


@dataclass
class _Selection:
    guid: str
    start: int
    end: int
    user: str | None
    created: str | None
    info: dict[str, Any] | None
    codings: list[_Coding]
    note_refs: list[str]


@dataclass
class _Source:
    guid: str
    name: str
    text: str
    created: str | None
    info: dict[str, Any] | None
    selections: list[_Selection]
    note_refs: list[str]


@dataclass
class _Project:
    name: str
    info: dict[str, Any]
    users: dict[str, str]                      # guid -> name
    codebook: Codebook | None
    code_ids: dict[str, str]                   # code guid -> code id
    cases: list[tuple[str, str, dict[str, str], list[str]]]  # guid, name, attrs, source guids
    sources: list[_Source]
    notes: dict[str, tuple[str, dict[str, Any] | None, str | None, str | None]]
    segments: dict[str, Any]                   # from coder.json


def _q(tag: str) -> str:
    return f"{{{PROJECT_NS}}}{tag}"


def _elem(el: etree._Element) -> str:
    """How an error names an element: <Tag guid='...'> at line N of project.qde."""
    name = etree.QName(el).localname
    g = el.get("guid")
    label = f"<{name} guid='{g}'>" if g else f"<{name}>"
    return f"project.qde line {el.sourceline}: {label}"


def _guid_attr(el: etree._Element, attr: str, qdpx: Path) -> str:
    value = (el.get(attr) or "").strip()
    if not value:
        raise RefiError(f"{_elem(el)} has no {attr}", path=qdpx)
    return value.strip("{}").lower()


def _read_member(z: zipfile.ZipFile, names: dict[str, str], member: str) -> bytes | None:
    real = names.get(member.lower())
    return z.read(real) if real is not None else None


def _source_text(el: etree._Element, z: zipfile.ZipFile, names: dict[str, str],
                 qdpx: Path) -> str | None:
    content = el.find(_q("PlainTextContent"))
    if content is not None:
        return content.text or ""
    ref = el.get("plainTextPath")
    if not ref:
        raise RefiError(f"{_elem(el)} has neither PlainTextContent nor plainTextPath", path=qdpx)
    if ref.startswith("internal://"):
        candidates = [f"sources/{ref[len('internal://'):]}"]
    elif "://" in ref:
        return None  # an external file (absolute:// or relative://) is not in the zip
    else:
        candidates = [ref.lstrip("/"), f"sources/{ref.lstrip('/')}"]
    for member in candidates:
        data = _read_member(z, names, member)
        if data is not None:
            try:
                return data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise RefiError(f"{_elem(el)}: {member} is not UTF-8 text", path=qdpx) from None
    raise RefiError(f"{_elem(el)}: its text file {candidates[0]} is missing from the zip",
                    path=qdpx)


def _int_attr(el: etree._Element, attr: str, qdpx: Path) -> int:
    try:
        return int(el.get(attr, ""))
    except ValueError:
        raise RefiError(f"{_elem(el)}: {attr} '{el.get(attr)}' is not a whole number",
                        path=qdpx) from None


def _read_project(qdpx: Path, warnings: list[str]) -> _Project:
    """Parse and check the whole .qdpx before anything is written."""
    if not qdpx.exists():
        raise RefiError("file not found", path=qdpx)
    try:
        z = zipfile.ZipFile(qdpx)
    except (zipfile.BadZipFile, OSError):
        raise RefiError("not a zip file; a .qdpx project is a zip archive holding project.qde",
                        path=qdpx, hint="export the project from your tool as REFI-QDA (.qdpx)"
                        ) from None
    with z:
        names = {n.lower(): n for n in z.namelist()}
        data = _read_member(z, names, "project.qde")
        if data is None:
            raise RefiError("the zip has no project.qde, so it is not a REFI-QDA project",
                            path=qdpx)
        root = _parse_xml(data, "project.qde", qdpx)
        if root.tag != _q("Project"):
            q = etree.QName(root)
            raise RefiError(f"project.qde: root element is <{q.localname}> in namespace "
                            f"'{q.namespace or ''}'; expected <Project> in '{PROJECT_NS}'",
                            path=qdpx)
        _, info = split_description(root.findtext(_q("Description")))
        info = info or {}
        users = {}
        for u in root.iterfind(f"{_q('Users')}/{_q('User')}"):
            g = _guid_attr(u, "guid", qdpx)
            users[g] = (u.get("name") or u.get("id") or f"user-{g[:8]}").strip()
        book, code_ids = None, {}
        codes_el = root.find(f"{_q('CodeBook')}/{_q('Codes')}")
        if codes_el is not None and len(codes_el):
            nodes = _code_nodes(codes_el, PROJECT_NS, qdpx, "project.qde", warnings)
            code_ids = _strip_guids(nodes)
            cb = info.get("codebook") or {}
            book = from_dict({"name": cb.get("name") or root.get("name") or qdpx.stem,
                              "description": cb.get("description") or "", "codes": nodes}, qdpx)
        variables = {}
        for v in root.iterfind(f"{_q('Variables')}/{_q('Variable')}"):
            variables[_guid_attr(v, "guid", qdpx)] = v.get("name") or "variable"
        cases = []
        for c in root.iterfind(f"{_q('Cases')}/{_q('Case')}"):
            g = _guid_attr(c, "guid", qdpx)
            values = {}
            for vv in c.findall(_q("VariableValue")):
                ref = vv.find(_q("VariableRef"))
                target = _guid_attr(ref, "targetGUID", qdpx) if ref is not None else None
                if target not in variables:
                    raise RefiError(f"{_elem(vv)} in {_elem(c)} refers to a missing Variable "
                                    f"'{target}'", path=qdpx)
                value = next((ch.text for ch in vv if etree.QName(ch).localname.endswith("Value")
                              and etree.QName(ch).localname != "VariableRef"), None)
                if value is not None:
                    values[variables[target]] = value.strip()
            refs = [_guid_attr(r, "targetGUID", qdpx) for r in c.findall(_q("SourceRef"))]
            cases.append((g, (c.get("name") or f"case-{g[:8]}").strip(), values, refs))
        sources = []
        sources_el = root.find(_q("Sources"))
        for el in (sources_el if sources_el is not None else []):
            if not isinstance(el.tag, str):
                continue
            kind = etree.QName(el).localname
            if kind != "TextSource":
                what = "unsupported" if kind in UNSUPPORTED_SOURCES else "unknown"
                warnings.append(f"{_elem(el)} '{el.get('name', '')}': {what} source type "
                                f"{kind}; skipped")
                continue
            sources.append(_read_source(el, z, names, qdpx, code_ids, warnings))
        notes = {}
        for n in root.iterfind(f"{_q('Notes')}/{_q('Note')}"):
            g = _guid_attr(n, "guid", qdpx)
            text = _source_text(n, z, names, qdpx) if (
                n.find(_q("PlainTextContent")) is not None or n.get("plainTextPath")) else None
            if text is None:
                warnings.append(f"{_elem(n)}: a note without text; skipped")
                continue
            _, ninfo = split_description(n.findtext(_q("Description")))
            notes[g] = (text, ninfo, (n.get("creatingUser") or "").strip("{}").lower() or None,
                        n.get("creationDateTime"))
        segments: dict[str, Any] = {}
        side = _read_member(z, names, "coder.json")
        if side is not None:
            try:
                segments = json.loads(side.decode("utf-8")).get("sources", {})
            except (ValueError, AttributeError):
                warnings.append("coder.json is unreadable; documents are segmented afresh")
    return _Project(name=root.get("name") or qdpx.stem, info=info, users=users, codebook=book,
                    code_ids=code_ids, cases=cases, sources=sources, notes=notes,
                    segments=segments)


def _read_source(el, z, names, qdpx: Path, code_ids: dict[str, str],
                 warnings: list[str]) -> _Source:
    g = _guid_attr(el, "guid", qdpx)
    text = _source_text(el, z, names, qdpx)
    if text is None:
        warnings.append(f"{_elem(el)} '{el.get('name', '')}': its text is an external file "
                        f"({el.get('plainTextPath')}), not in the zip; skipped")
        text = None
    _, info = split_description(el.findtext(_q("Description")))
    selections = []
    for s in el.findall(_q("PlainTextSelection")):
        sg = _guid_attr(s, "guid", qdpx)
        start, end = _int_attr(s, "startPosition", qdpx), _int_attr(s, "endPosition", qdpx)
        if text is not None and not (0 <= start <= end <= len(text)):
            raise RefiError(f"{_elem(s)}: offsets {start}-{end} lie outside its source "
                            f"'{el.get('name', g)}' ({len(text)} characters)", path=qdpx)
        codings = []
        for c in s.findall(_q("Coding")):
            ref = c.find(_q("CodeRef"))
            if ref is None:
                raise RefiError(f"{_elem(c)} has no CodeRef", path=qdpx)
            target = _guid_attr(ref, "targetGUID", qdpx)
            if target not in code_ids:
                raise RefiError(f"{_elem(ref)} in {_elem(c)}: CodeRef to a missing code "
                                f"'{target}'", path=qdpx,
                                hint="the project's CodeBook has no Code with that guid")
            codings.append(_Coding(
                guid=_guid_attr(c, "guid", qdpx),
                user=(c.get("creatingUser") or "").strip("{}").lower() or None,
                created=c.get("creationDateTime"), code_guid=target,
                note_refs=[_guid_attr(r, "targetGUID", qdpx) for r in c.findall(_q("NoteRef"))]))
        _, sinfo = split_description(s.findtext(_q("Description")))
        selections.append(_Selection(
            guid=sg, start=start, end=end,
            user=(s.get("creatingUser") or "").strip("{}").lower() or None,
            created=s.get("creationDateTime"), info=sinfo, codings=codings,
            note_refs=[_guid_attr(r, "targetGUID", qdpx) for r in s.findall(_q("NoteRef"))]))
    if el.findall(_q("Coding")):
        warnings.append(f"{_elem(el)} '{el.get('name', '')}': codings of the whole source are "
                        "not segment codings; skipped")
    return _Source(guid=g, name=(el.get("name") or f"source-{g[:8]}").strip(), text=text,
                   created=el.get("creationDateTime"), info=info, selections=selections,
                   note_refs=[_guid_attr(r, "targetGUID", qdpx) for r in el.findall(_q("NoteRef"))])


def import_project(new_study_path: str | Path, qdpx: str | Path, *, unit: str = "turn",
                   warnings: list[str] | None = None):
    """Make a new study from a REFI-QDA project (.qdpx). Everything is checked first and the
    study is built in a temporary file moved into place only on success, so a bad project
    leaves nothing behind. Skipped elements are appended to ``warnings``."""
    from .study import Study

    new_study_path, qdpx = Path(new_study_path), Path(qdpx)
    warnings = warnings if warnings is not None else []
    if unit not in ("turn", "sentence", "paragraph"):
        raise InputError(f"unknown unit '{unit}'", hint="use turn, sentence or paragraph")
    if new_study_path.exists():
        raise StudyError(f"{new_study_path} already exists",
                         hint="import a project into a new study file")
    if not new_study_path.parent.exists():
        raise StudyError(f"folder {new_study_path.parent} does not exist")
    project = _read_project(qdpx, warnings)
    fd, tmp = tempfile.mkstemp(dir=new_study_path.parent, prefix=f".{new_study_path.name}.",
                               suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        study = Study.create(tmp_path)
        try:
            with study.db.transaction():
                _populate(study, project, qdpx, unit, warnings)
            study.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            study.close()
        os.replace(tmp_path, new_study_path)
    finally:
        for p in (tmp_path, Path(tmp + "-wal"), Path(tmp + "-shm")):
            p.unlink(missing_ok=True)
    return Study(new_study_path)


def _clean_name(name: str) -> str:
    return " ".join(re.sub(r"[,;]", " ", name).split()) or "unnamed"


def _unique(name: str, taken: set[str]) -> str:
    out, n = name, 2
    while out in taken:
        out, n = f"{name} ({n})", n + 1
    taken.add(out)
    return out


def _populate(study, project: _Project, qdpx: Path, unit: str, warnings: list[str]) -> None:
    db = study.db
    version = None
    if project.codebook is not None:
        version = study._store_codebook(project.codebook, source=str(qdpx)).version
    code_ids = set(project.code_ids.values())
    kinds = project.info.get("coders") or {}

    # coders: every user (the machine only when it is a listed coder)
    coder_ids: dict[str, int] = {}
    user_names: dict[str, str] = {}
    taken: set[str] = set()
    for g, name in project.users.items():
        name = _clean_name(name)
        if name == MACHINE and MACHINE not in kinds:
            user_names[g] = MACHINE
            continue
        user_names[g] = _unique(name, taken)

    def coder(name: str) -> int:
        if name not in coder_ids:
            kind = kinds.get(name, "human")
            row = db.one("SELECT id FROM coders WHERE name=?", (name,))
            coder_ids[name] = row["id"] if row else db.execute(
                "INSERT INTO coders (name, kind, created_at) VALUES (?,?,?)",
                (name, kind if kind in ("human", "consensus") else "human", now())).lastrowid
        return coder_ids[name]

    for name in user_names.values():
        if name != MACHINE:
            coder(name)

    def user(g: str | None) -> str:
        if g is None:
            return "imported"
        if g not in user_names:
            user_names[g] = _unique(f"user-{g[:8]}", taken)
        return user_names[g]

    # participants
    people: dict[str, int] = {}

    def participant(name: str) -> int:
        if name not in people:
            row = db.one("SELECT id FROM participants WHERE name=?", (name,))
            people[name] = row["id"] if row else db.execute(
                "INSERT INTO participants (name, created_at) VALUES (?,?)", (name, now())
            ).lastrowid
        return people[name]

    case_for_source: dict[str, list[str]] = {}
    case_names: set[str] = set()
    for _g, name, values, refs in project.cases:
        name = " ".join(name.split()) or "unnamed"
        case_names.add(name)
        pid = participant(name)
        for attr, value in values.items():
            db.execute("INSERT OR REPLACE INTO participant_attributes VALUES (?,?,?)",
                       (pid, attr, value))
        for ref in refs:
            case_for_source.setdefault(ref, []).append(name)

    # documents, segments, codings
    doc_names: set[str] = set()
    doc_by_name: dict[str, tuple[int, dict[int, int]]] = {}
    memo_docs: dict[str, int] = {}
    for src in project.sources:
        if src.text is None:
            continue
        name = _unique(src.name, doc_names)
        if not src.text.strip():
            warnings.append(f"TextSource '{src.name}' has no text; skipped")
            continue
        doc_id = _insert_document(study, src, name, unit, project.segments.get(src.guid),
                                  [" ".join(c.split()) for c in case_for_source.get(src.guid, [])],
                                  case_names, participant, warnings)
        stored = db.one("SELECT text FROM documents WHERE id=?", (doc_id,))["text"]
        where = _offset_map(src.text, stored)
        segs = db.query("SELECT id, position, start_char, end_char FROM segments "
                        "WHERE document_id=? ORDER BY start_char", (doc_id,))
        entry = (doc_id, {s["position"]: s["id"] for s in segs})
        doc_by_name.setdefault(src.name, entry)
        doc_by_name.setdefault(name, entry)
        memo_docs[src.guid] = doc_id
        for sel in src.selections:
            hit = _overlapping(segs, where(sel.start), where(sel.end))
            if not hit:
                warnings.append(f"selection {sel.guid} in '{name}' ({sel.start}-{sel.end}) "
                                "overlaps no segment; skipped")
                continue
            _insert_selection(db, sel, hit, project, code_ids, version, coder, user, warnings)

    # memos (notes that are not coding memos)
    referenced = {}
    for src in project.sources:
        for ref in src.note_refs:
            if src.guid in memo_docs:
                referenced[ref] = memo_docs[src.guid]
    coding_notes = {r for src in project.sources for sel in src.selections
                    for r in sel.note_refs + [n for c in sel.codings for n in c.note_refs]}
    for g, (text, info, creator, created) in project.notes.items():
        info = info or {}
        if info.get("kind") == "coding-memo" or g in coding_notes:
            continue
        doc_id = seg_id = None
        if info.get("document") in doc_by_name:
            doc_id, positions = doc_by_name[info["document"]]
            if info.get("segment") is not None:
                seg_id = positions.get(info["segment"])
        elif g in referenced:
            doc_id = referenced[g]
        who = info.get("coder") or (user(creator) if creator else None)
        db.execute("INSERT INTO memos (segment_id, document_id, coder_id, text, created_at) "
                   "VALUES (?,?,?,?,?)", (seg_id, None if seg_id else doc_id,
                                          coder(who) if who and who != MACHINE else None, text,
                                          created or now()))
    # participants the segmenter made that the speaker map or the cases replaced
    for row in db.query("SELECT id, name FROM participants WHERE id NOT IN "
                        "(SELECT participant_id FROM speakers WHERE participant_id IS NOT NULL)"):
        if row["name"] not in case_names:
            db.execute("DELETE FROM participants WHERE id=?", (row["id"],))


def _overlapping(segs, start: int, end: int) -> list[int]:
    """The overlap rule: segments sharing at least one character; an empty selection codes
    the segment containing its position."""
    if start == end:
        return [s["id"] for s in segs if s["start_char"] <= start < s["end_char"]]
    return [s["id"] for s in segs if start < s["end_char"] and s["start_char"] < end]


def _insert_selection(db, sel: _Selection, segment_ids: list[int], project: _Project,
                      code_ids: set[str], version, coder, user, warnings) -> None:
    info = sel.info or {}
    if info.get("suggestion"):
        code = info.get("code")
        if sel.codings:
            code = project.code_ids[sel.codings[0].code_guid]
        if code not in code_ids or info.get("source") not in ("codebook", "classifier", "blend"):
            warnings.append(f"suggestion {sel.guid}: unusable coder line; skipped")
            return
        for seg in segment_ids:
            db.execute(
                "INSERT OR IGNORE INTO suggestions (segment_id, code_id, score, rank, source, "
                "threshold, model_version, codebook_version, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (seg, code, float(info.get("score") or 0), int(info.get("rank") or 1),
                 info["source"], info.get("threshold"), info.get("model_version"),
                 version, sel.created or now()))
        return
    rows = []
    note_text = lambda refs: "\n\n".join(  # noqa: E731
        project.notes[r][0] for r in refs if r in project.notes) or None
    if info.get("decision") in DECISIONS and info.get("coder"):
        code = info.get("code")
        if sel.codings:
            code = project.code_ids[sel.codings[0].code_guid]
        if code is not None and code not in code_ids:
            warnings.append(f"selection {sel.guid}: code '{code}' is not in the codebook; "
                            "skipped")
            return
        if code is None and info["decision"] != "no_code":
            warnings.append(f"selection {sel.guid}: a '{info['decision']}' decision without a "
                            "code; skipped")
            return
        created = info.get("created_at") or (
            sel.codings[0].created if sel.codings else None) or sel.created
        rows.append((_clean_name(info["coder"]), code, info["decision"], info, created))
    else:
        for c in sel.codings:
            memo = note_text(c.note_refs + sel.note_refs)
            rows.append((user(c.user or sel.user), project.code_ids[c.code_guid], "confirmed",
                         {"source": "import", "memo": memo}, c.created or sel.created))
    for name, code, decision, extra, created in rows:
        cid = coder(name)
        for seg in segment_ids:
            db.execute(
                "INSERT OR IGNORE INTO codings (segment_id, coder_id, code_id, decision, "
                "codebook_version, model_version, suggestion_score, memo, reason, seconds, source,"
                " created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (seg, cid, code, decision, version, extra.get("model_version"),
                 extra.get("suggestion_score"), extra.get("memo"), extra.get("reason"),
                 extra.get("seconds"), extra.get("source") or "import", created or now()))


def _insert_document(study, src: _Source, name: str, unit: str, saved: dict | None,
                     case_refs: list[str], case_names: set[str], participant,
                     warnings: list[str]) -> int:
    """Create the document and its segments: coder's own segment boundaries when the export
    carried them for this exact text and unit, else the transcript segmenter."""
    db = study.db
    info = src.info or {}
    speakers_info = {s.get("label"): s for s in info.get("speakers", []) if isinstance(s, dict)}
    exact = (saved is not None and saved.get("text_sha256") == text_hash(src.text)
             and info.get("unit") == unit)
    if not exact:
        from .errors import CoderError
        from .transcripts import import_text

        try:
            return_id = import_text(study, name, src.text, unit=unit,
                                    fmt=info.get("format") or "qdpx", sha256=info.get("sha256"))
        except CoderError as e:
            raise RefiError(f"TextSource '{src.name}': {e.detail}", hint=e.hint) from None
        doc_id = int(return_id)
        stored_unit = db.one("SELECT unit FROM documents WHERE id=?", (doc_id,))["unit"]
        if stored_unit != unit:
            warnings.append(f"TextSource '{src.name}' has no speaker labels; segmented by "
                            f"{stored_unit} instead of {unit}")
    else:
        doc_id = db.execute(
            "INSERT INTO documents (name, source_path, format, encoding, sha256, text, unit, "
            "metadata, imported_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (name, None, info.get("format") or "qdpx", "utf-8",
             info.get("sha256") or text_hash(src.text), src.text, unit,
             json.dumps({"refi_guid": src.guid}), src.created or now())).lastrowid
        rows = [dict(zip(("position", "turn", "start", "end", "label", "start_time",
                          "end_time", "text", "text_hash"), r)) for r in saved["segments"]]
        speaker_ids: dict[str | None, int | None] = {}
        for label in dict.fromkeys(r["label"] for r in rows):
            if label is not None:  # roles and participants: from the speaker map below
                speaker_ids[label] = db.execute(
                    "INSERT INTO speakers (document_id, label, role) VALUES (?,?,?)",
                    (doc_id, label, "participant")).lastrowid
        db.conn.executemany(
            "INSERT INTO segments (document_id, position, speaker_id, turn, start_char, end_char,"
            " text, text_hash, start_time, end_time) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [(doc_id, r["position"], speaker_ids.get(r["label"]), r["turn"], r["start"],
              r["end"], r["text"], r["text_hash"], r["start_time"], r["end_time"])
             for r in rows])
    # who speaks: the exported speaker map, else cases that refer to this source
    speakers = db.query("SELECT id, label, role, participant_id FROM speakers "
                        "WHERE document_id=?", (doc_id,))
    talkers = [s for s in speakers if s["role"] == "participant"]
    for sp in speakers:
        if sp["label"] in speakers_info:
            given = speakers_info[sp["label"]]
            role = given.get("role") if given.get("role") in ("participant", "interviewer") \
                else sp["role"]
            pid = participant(given["participant"]) if given.get("participant") else None
            db.execute("UPDATE speakers SET role=?, participant_id=? WHERE id=?",
                       (role, pid, sp["id"]))
        elif speakers_info or sp["role"] != "participant":
            continue
        elif sp["label"] in case_names:
            db.execute("UPDATE speakers SET participant_id=? WHERE id=?",
                       (participant(sp["label"]), sp["id"]))
        elif len(talkers) == 1 and len(case_refs) == 1:
            db.execute("UPDATE speakers SET participant_id=? WHERE id=?",
                       (participant(case_refs[0]), sp["id"]))
    return doc_id


def _offset_map(source: str, stored: str):
    """Map offsets into the project's text onto the stored document text (identical unless the
    segmenter normalised it, e.g. CRLF to LF)."""
    if source == stored:
        return lambda i: i
    import bisect
    import difflib

    if source.replace("\r\n", "\n") == stored:
        crs = [i for i, ch in enumerate(source) if ch == "\r" and source[i + 1:i + 2] == "\n"]
        return lambda i: i - bisect.bisect_left(crs, i)
    blocks = difflib.SequenceMatcher(None, source, stored, autojunk=False).get_opcodes()
    starts = [b[1] for b in blocks]

    def where(i: int) -> int:
        k = max(bisect.bisect_right(starts, i) - 1, 0)
        tag, i1, i2, j1, j2 = blocks[k]
        return j1 + (i - i1) if tag == "equal" else (j1 if i == i1 else j2)

    return where
