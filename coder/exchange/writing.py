"""REFI-QDA projects (``.qdpx``: a zip with ``project.qde`` in ``urn:QDA-XML:project:1.0`` plus
the source texts under ``sources/``) and codebooks (``.qdc``) written for NVivo, ATLAS.ti,
MAXQDA and QualCoder.

Offsets: ``startPosition``/``endPosition`` count Unicode code points (Python ``str`` indices)
into the exact text of ``sources/<guid>.txt`` (UTF-8, no BOM); ``endPosition`` is exclusive.
``coder.json`` in the zip adds the exact segment boundaries, used on import only when the text
still has the same hash (tools drop unknown files). GUIDs are uuid5 of fixed keys (code id,
document name + hash, coder name, segment position + code + coder), so exporting the same study
twice gives the same GUIDs.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from coder import __version__
from coder.errors import CodebookError, StudyError, UnknownReference
from coder.sources.qdaxml import CODEBOOK_NS, MACHINE, PROJECT_NS, _x, code_guid, coder_line, guid
from coder.store.codebook import Code, Codebook
from coder.store.db import text_hash

PALETTE = ["#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#E377C2",
           "#7F7F7F", "#BCBD22", "#17BECF"]
POSITIVE_OR_AUTO = ("confirmed", "added", "auto")


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
        # the coding's own span (a row keeps the first of two same-named columns)
        "SELECT COALESCE(k.start_char, s.start_char) AS start_char, "
        "COALESCE(k.end_char, s.end_char) AS end_char, k.*, c.name AS coder, s.document_id, "
        "s.position "
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
