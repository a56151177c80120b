"""REFI-QDA projects (``.qdpx``: a zip with ``project.qde`` in ``urn:QDA-XML:project:1.0`` plus
the source texts under ``sources/``) and codebooks (``.qdc``) written for NVivo, ATLAS.ti,
MAXQDA and QualCoder.

Other tools see only standard elements: codes with their colours, sources, one
``PlainTextSelection`` per (source, span, coder) carrying a ``Coding`` for each code that coder
put there (confirmed, added and, unless told otherwise, auto-accepted decisions), memos as
``Note``s linked by ``NoteRef``. Descriptions hold only text a person wrote. Rejections, "no
code" decisions, model versions, scores, history and everything else coder needs to come back
exactly travel in ``coder/coder-data.json`` (`coder.exchange.private`), keyed by GUID.

Offsets: ``startPosition``/``endPosition`` count Unicode code points (Python ``str`` indices)
into the exact text of ``sources/<guid>.txt`` (UTF-8, no BOM); ``endPosition`` is exclusive; a
span coding exports its own offsets, a whole-segment coding its segment's. GUIDs: those another
tool gave (``exchange_guids``) verbatim, else uuid5 of fixed keys (code id, document name + hash,
coder name, span + code), so exporting the same study twice gives the same file.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

import coder.exchange.private as private
from coder import __version__
from coder.errors import CodebookError, StudyError, UnknownReference
from coder.sources.qdaxml import CODEBOOK_NS, MACHINE, PROJECT_NS, _x, code_guid, guid
from coder.store.codebook import Code, Codebook, readable_description
from coder.store.db import text_hash

PALETTE = ["#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#E377C2",
           "#7F7F7F", "#BCBD22", "#17BECF"]
POSITIVE = ("confirmed", "added")
EPOCH = "1970-01-01T00:00:00Z"  # a Note's time when the stored one is no xsd:dateTime


# -- codebooks -----------------------------------------------------------------------------

def _code_description(code: Code) -> str:
    """What a person reads about the code in another tool (coder's own fields go into the
    private file of a project; a .qdc imported back into its study recognises them)."""
    return _x(readable_description(code))


def _code_elements(book: Codebook, parent: etree._Element, ns: str,
                   guids: dict[str, str] | None = None) -> None:
    """Append the code tree (nested Code elements) under ``parent``: the codebook's colour
    where it has one, else the palette by factor (children take their parent's)."""
    guids = guids or {}

    def add(el: etree._Element, code: Code, inherited: str) -> None:
        color = getattr(code, "color", None) or inherited
        node = etree.SubElement(el, f"{{{ns}}}Code", guid=guids.get(code.id) or code_guid(code.id),
                                name=_x(code.name),
                                isCodable="true" if getattr(code, "codable", True) else "false",
                                color=_rgb(color))
        text = _code_description(code)
        if text:
            etree.SubElement(node, f"{{{ns}}}Description").text = text
        for child in book.children(code.id):
            add(node, child, color)

    for i, top in enumerate(book.children(None)):
        add(parent, top, PALETTE[i % len(PALETTE)])


def _rgb(color: str) -> str:
    """'#RRGGBB' (QualCoder reads only seven characters; '#abc' becomes '#AABBCC')."""
    if len(color) == 4:
        color = "#" + "".join(ch * 2 for ch in color[1:])
    return color.upper()


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
    selections: int      # Coding elements (one code on one span by one coder)
    suggestions: int
    notes: int
    private_decisions: int = 0   # decisions only coder reads back (rejected, no code, ...)
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


def _known_guids(db) -> dict[tuple[str, str], str]:
    """GUIDs another tool gave things, verbatim (``exchange_guids``, migration 0010)."""
    try:
        rows = db.query("SELECT kind, ref, guid FROM exchange_guids")
    except sqlite3.OperationalError:  # a study file before the table: every GUID is coder's own
        return {}
    return {(r["kind"], str(r["ref"])): r["guid"] for r in rows}


def export_project(study, path: str | Path, *, coders: Iterable[str] | None = None,
                   include_suggestions: bool = False, include_auto: bool = True) -> ProjectExport:
    """Write the study as a REFI-QDA project (``.qdpx``) that NVivo, ATLAS.ti, MAXQDA and
    QualCoder open, with every coder's decisions; ``coders`` limits whose (default: all).
    ``include_auto``: auto-accepted suggestions become codings other tools see (else they
    travel only in coder's private file)."""
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
    exported = ("confirmed", "added", "auto") if include_auto else POSITIVE
    book = study.codebook() if study.codebook_version else Codebook(name="", codes=[])
    code_ids = {c.id for c in book.codes}
    warnings: list[str] = []
    P = f"{{{PROJECT_NS}}}"
    given = _known_guids(db)
    coder_rows = {r["name"]: r for r in db.query("SELECT id, name, kind FROM coders")}
    user_guid = {name: given.get(("user", str(coder_rows[name]["id"]))) or guid("user", name)
                 for name in coders}
    if include_suggestions:
        user_guid.setdefault(MACHINE, guid("user", MACHINE))
    code_guids = {c.id: given.get(("code", c.id)) or code_guid(c.id) for c in book.codes}
    by_name: dict[str, list[str]] = {}
    for c in book.codes:
        by_name.setdefault(c.name.casefold(), []).append(c.path)
    for paths in by_name.values():
        if len(paths) > 1:  # QualCoder keeps one code per name (code_name.name is unique)
            warnings.append("codes with the same name (" + "; ".join(paths) + "): QualCoder "
                            "keeps only one of them and leaves the other's codings without a "
                            "code; rename one before opening the project there")

    root = etree.Element(f"{P}Project", nsmap={None: PROJECT_NS}, name=_x(study.path.stem),
                         origin=f"coder {__version__}")
    if user_guid:
        users_el = etree.SubElement(root, f"{P}Users")
        for name, g in user_guid.items():
            etree.SubElement(users_el, f"{P}User", guid=g, name=_x(name))
    if book.codes:
        codes_el = etree.SubElement(etree.SubElement(root, f"{P}CodeBook"), f"{P}Codes")
        _code_elements(book, codes_el, PROJECT_NS, code_guids)

    # participants -> Variables + Cases
    people = db.query("SELECT id, name FROM participants ORDER BY name")
    attrs = db.query("SELECT participant_id, attribute, value FROM participant_attributes "
                     "ORDER BY attribute")
    attr_names = sorted({a["attribute"] for a in attrs})
    var_guid = {a: given.get(("variable", a)) or guid("variable", a) for a in attr_names}
    if attr_names:
        vars_el = etree.SubElement(root, f"{P}Variables")
        for a in attr_names:
            etree.SubElement(vars_el, f"{P}Variable", guid=var_guid[a], name=_x(a),
                             typeOfVariable="Text")
    docs = db.query("SELECT * FROM documents ORDER BY name")
    doc_guid = {d["id"]: given.get(("source", str(d["id"])))
                or guid("document", d["name"], d["sha256"]) for d in docs}
    speaks_in: dict[int, list[int]] = {}
    for r in db.query("SELECT DISTINCT participant_id, document_id FROM speakers "
                      "WHERE participant_id IS NOT NULL ORDER BY document_id"):
        speaks_in.setdefault(r["participant_id"], []).append(r["document_id"])
    if people:
        cases_el = etree.SubElement(root, f"{P}Cases")
        for p in people:
            case = etree.SubElement(cases_el, f"{P}Case",
                                    guid=given.get(("case", str(p["id"])))
                                    or guid("participant", p["name"]), name=_x(p["name"]))
            for a in attrs:
                if a["participant_id"] != p["id"] or a["value"] is None:
                    continue
                vv = etree.SubElement(case, f"{P}VariableValue")
                etree.SubElement(vv, f"{P}VariableRef", targetGUID=var_guid[a["attribute"]])
                etree.SubElement(vv, f"{P}TextValue").text = _x(a["value"])
            for doc_id in speaks_in.get(p["id"], []):
                etree.SubElement(case, f"{P}SourceRef", targetGUID=doc_guid[doc_id])

    # every decision of the exported coders, with its span spelled out
    marks = ",".join("?" * len(coders))
    codings = db.query(
        "SELECT COALESCE(k.start_char, s.start_char) AS span_start, "
        "COALESCE(k.end_char, s.end_char) AS span_end, k.*, c.name AS coder, s.document_id, "
        "s.position FROM codings k JOIN coders c ON c.id = k.coder_id "
        "JOIN segments s ON s.id = k.segment_id JOIN documents d ON d.id = s.document_id "
        f"WHERE c.name IN ({marks}) ORDER BY d.name, span_start, span_end, c.name, "
        "COALESCE(k.code_id, ''), k.id", tuple(coders)) if coders else []
    suggestions = db.query(
        "SELECT g.*, s.document_id, s.position, s.start_char, s.end_char FROM suggestions g "
        "JOIN segments s ON s.id = g.segment_id JOIN documents d ON d.id = s.document_id "
        "ORDER BY d.name, s.position, g.rank"
    ) if include_suggestions else []
    memos = db.query(
        "SELECT m.*, c.name AS coder, s.position, s.start_char AS seg_start, "
        "s.end_char AS seg_end, COALESCE(m.document_id, s.document_id) AS doc "
        "FROM memos m LEFT JOIN coders c ON c.id = m.coder_id "
        "LEFT JOIN segments s ON s.id = m.segment_id "
        "LEFT JOIN documents d ON d.id = COALESCE(m.document_id, s.document_id) "
        "ORDER BY d.name, s.position, m.created_at, m.id")
    doc_by_id = {d["id"]: d for d in docs}

    decisions: list[dict[str, Any]] = []
    # (document, start, end, coder) -> the codings other tools see there
    spans: dict[int, dict[tuple[int, int, str], list]] = {}
    for k in codings:
        if k["code_id"] is not None and k["code_id"] not in code_ids:
            warnings.append(f"coding of segment {k['position']} by {k['coder']} refers to code "
                            f"'{k['code_id']}' that is not in the current codebook; skipped")
            continue
        d = doc_by_id[k["document_id"]]
        entry = {"source": doc_guid[d["id"]], "segment": k["position"],
                 "start": k["start_char"], "end": k["end_char"], "coder": k["coder"],
                 "code": k["code_id"], "decision": k["decision"], "memo": k["memo"],
                 "reason": k["reason"], "seconds": k["seconds"], "origin": k["source"],
                 "model_version": k["model_version"],
                 "suggestion_score": k["suggestion_score"], "created_at": k["created_at"],
                 "selection": None, "coding": None, "note": None}
        decisions.append(entry)
        if k["decision"] in exported and k["code_id"]:
            spans.setdefault(d["id"], {}).setdefault(
                (k["span_start"], k["span_end"], k["coder"]), []).append((k, entry))
    machine_spans: dict[int, dict[tuple[int, int], list]] = {}
    private_suggestions: list[dict[str, Any]] = []
    for g in suggestions:
        if g["code_id"] not in code_ids:
            continue
        entry = {"source": doc_guid[g["document_id"]], "segment": g["position"],
                 "code": g["code_id"], "score": g["score"], "rank": g["rank"],
                 "origin": g["source"], "threshold": g["threshold"],
                 "model_version": g["model_version"], "created_at": g["created_at"],
                 "selection": None}
        private_suggestions.append(entry)
        machine_spans.setdefault(g["document_id"], {}).setdefault(
            (g["start_char"], g["end_char"]), []).append((g, entry))

    notes: list[etree._Element] = []
    note_refs: dict[int | None, list[str]] = {}
    private_memos: list[dict[str, Any]] = []
    placed: set[tuple] = set()
    for m in memos:
        if m["coder"] is not None and m["coder"] not in user_guid:
            continue  # a memo by a coder who is not exported
        doc = doc_by_id.get(m["doc"])
        doc_name = doc["name"] if doc else None
        g = given.get(("note", str(m["id"]))) or guid(
            "memo", doc_name, m["position"], m["coder"], m["created_at"], text_hash(m["text"]))
        note = _note(P, g, "memo", m["text"], user_guid.get(m["coder"] or ""), m["created_at"])
        # a segment memo says where it is, as QualCoder's own annotations do (a Note holding a
        # PlainTextSelection of the source that refers to it); QualCoder keeps one annotation
        # per (source, span, coder), so a second memo of one coder on one segment goes without
        place = (m["doc"], m["seg_start"], m["seg_end"], m["coder"])
        if m["position"] is not None and place not in placed:
            placed.add(place)
            where = etree.SubElement(note, f"{P}PlainTextSelection", guid=guid("memo-place", g),
                                     startPosition=str(m["seg_start"]),
                                     endPosition=str(m["seg_end"]))
            if user_guid.get(m["coder"] or ""):
                where.set("creatingUser", user_guid[m["coder"]])
        notes.append(note)
        note_refs.setdefault(m["doc"], []).append(g)
        private_memos.append({"note": g, "source": doc_guid.get(m["doc"]),
                              "segment": m["position"],
                              "document": doc_guid.get(m["document_id"]), "coder": m["coder"],
                              "text": m["text"], "created_at": m["created_at"]})

    sources_el = etree.SubElement(root, f"{P}Sources") if docs else None
    files: dict[str, str] = {}
    private_sources: dict[str, Any] = {}
    n_codings = n_suggestions = 0
    for d in docs:
        g = doc_guid[d["id"]]
        src = etree.SubElement(sources_el, f"{P}TextSource", guid=g, name=_x(d["name"]),
                               plainTextPath=f"internal://{g}.txt")
        _set_time(src, d["imported_at"])
        files[f"sources/{g}.txt"] = d["text"]
        private_sources[g] = _private_source(db, d)
        for (start, end, coder), rows in sorted(spans.get(d["id"], {}).items()):
            sel = _selection(P, d, start, end, coder, rows, user_guid[coder], code_guids, given,
                             notes)
            src.append(sel)
            n_codings += len(sel.findall(f"{P}Coding"))
        for (start, end), rows in sorted(machine_spans.get(d["id"], {}).items()):
            src.append(_suggestion_selection(P, d, start, end, rows, user_guid[MACHINE],
                                             code_guids))
            n_suggestions += len(rows)
        for ng in note_refs.get(d["id"], []):
            etree.SubElement(src, f"{P}NoteRef", targetGUID=ng)
    if notes:
        notes_el = etree.SubElement(root, f"{P}Notes")
        for n in notes:
            notes_el.append(n)
    for ng in note_refs.get(None, []):   # memos of the study as a whole
        etree.SubElement(root, f"{P}NoteRef", targetGUID=ng)

    xml = etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)
    data = {
        "format": private.FORMAT, "version": private.VERSION, "written_by": f"coder {__version__}",
        "project_qde_sha256": private.qde_hash(xml),
        "project": {"codebook": {"name": book.name, "description": book.description},
                    "coders": {c: coder_rows[c]["kind"] for c in coders}},
        "codes": {code_guids[c.id]: _private_code(c) for c in book.codes},
        "sources": private_sources, "decisions": decisions,
        "suggestions": private_suggestions, "memos": private_memos,
        "history": _history(db, coders, doc_guid),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            _member(z, "project.qde", xml)
            for name, text in files.items():
                _member(z, name, text.encode("utf-8"))
            _member(z, private.MEMBER, private.encode(data))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ProjectExport(path=str(path), users=list(user_guid), codes=len(book.codes),
                         sources=len(docs), cases=len(people), selections=n_codings,
                         suggestions=n_suggestions, notes=len(notes),
                         private_decisions=sum(1 for e in decisions if e["selection"] is None),
                         warnings=warnings)


def _member(z: zipfile.ZipFile, name: str, data: bytes) -> None:
    """A zip member with a fixed time, so the same study gives the same file, byte for byte."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    z.writestr(info, data)


def _private_code(code: Code) -> dict[str, Any]:
    return {"id": code.id, "description": code.description, "include": code.include,
            "exclude": code.exclude, "items": list(code.items), "examples": list(code.examples),
            "speakers": list(code.speakers), "leads_to": list(code.leads_to)}


def _private_source(db, d) -> dict[str, Any]:
    """A document as coder keeps it: unit, format, hash, metadata, speaker map, segments."""
    speakers = db.query(
        "SELECT sp.label, sp.role, p.name AS participant FROM speakers sp "
        "LEFT JOIN participants p ON p.id = sp.participant_id WHERE sp.document_id=? "
        "ORDER BY sp.id", (d["id"],))
    try:
        metadata = json.loads(d["metadata"] or "{}")
    except ValueError:
        metadata = {}
    return {
        "name": d["name"], "format": d["format"], "unit": d["unit"], "sha256": d["sha256"],
        "text_sha256": text_hash(d["text"]),
        # the GUID an import noted there is the source's GUID itself (exchange_guids)
        "metadata": {k: v for k, v in metadata.items() if k != "refi_guid"}
        if isinstance(metadata, dict) else {},
        "speakers": [{"label": s["label"], "role": s["role"], "participant": s["participant"]}
                     for s in speakers],
        "segments": [[s["position"], s["turn"], s["start_char"], s["end_char"], s["label"],
                      s["start_time"], s["end_time"], s["text"], s["text_hash"]]
                     for s in db.query(
                         "SELECT s.*, sp.label FROM segments s LEFT JOIN speakers sp "
                         "ON sp.id = s.speaker_id WHERE s.document_id=? ORDER BY s.position",
                         (d["id"],))]}


def _history(db, coders: list[str], doc_guid: dict[int, str]) -> list[dict[str, Any]]:
    """The exported coders' decision history (``coding_history``), oldest first."""
    if not coders:
        return []
    marks = ",".join("?" * len(coders))
    return [{"source": doc_guid[h["document_id"]], "segment": h["position"],
             "start": h["start_char"], "end": h["end_char"], "coder": h["coder"],
             "code": h["code_id"], "decision": h["decision"], "memo": h["memo"],
             "reason": h["reason"], "origin": h["source"], "action": h["action"],
             "recorded_at": h["recorded_at"]}
            for h in db.query(
                "SELECT h.*, c.name AS coder, s.document_id, s.position FROM coding_history h "
                "JOIN coders c ON c.id = h.coder_id JOIN segments s ON s.id = h.segment_id "
                f"WHERE c.name IN ({marks}) ORDER BY h.id", tuple(coders))]


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


def _note(P: str, g: str, name: str, text: str, user: str | None,
          created: str | None) -> etree._Element:
    """A memo as a REFI Note. It always has a creationDateTime: QualCoder's importer
    (refi.py, parse_notes) fails on a Note without one."""
    note = etree.Element(f"{P}Note", guid=g, name=name)
    if user:
        note.set("creatingUser", user)
    note.set("creationDateTime", _datetime(created) or EPOCH)
    etree.SubElement(note, f"{P}PlainTextContent").text = _x(text)
    return note


def _selection(P, doc, start: int, end: int, coder: str, rows, user: str,
               code_guids: dict[str, str], given: dict, notes: list) -> etree._Element:
    """One PlainTextSelection for one span by one coder, with a Coding per code. Its
    Description is the coding memo when every code on the span has that one memo (QualCoder
    reads a selection's Description as the memo of each of its codings); every memo is also a Note the Coding refers to
    (the standard's way)."""
    span_key = (doc["name"], doc["sha256"], start, end, coder)
    ids = sorted(k["id"] for k, _ in rows)
    sel_guid = next((given[("selection", str(i))] for i in ids if ("selection", str(i)) in given),
                    None) or guid("selection", *span_key)
    whole = all(k["start_char"] is None for k, _ in rows)
    sel = etree.Element(f"{P}PlainTextSelection", guid=sel_guid,
                        name=_x(f"{doc['name']} #{rows[0][0]['position']}" if whole
                                else f"{doc['name']} {start}-{end}"),
                        startPosition=str(start), endPosition=str(end), creatingUser=user)
    _set_time(sel, min((k["created_at"] for k, _ in rows if _datetime(k["created_at"])),
                       key=_datetime, default=None))
    memos = {k["memo"] for k, _ in rows}
    if len(memos) == 1 and rows[0][0]["memo"]:   # every code here has this memo
        etree.SubElement(sel, f"{P}Description").text = _x(rows[0][0]["memo"])
    seen: set[str] = set()
    for k, entry in rows:
        if k["code_id"] in seen:   # a span coding exactly over its segment, coded twice
            entry["selection"] = sel_guid
            continue
        seen.add(k["code_id"])
        cg = given.get(("coding", str(k["id"]))) or guid("coding", *span_key, k["code_id"])
        entry["selection"], entry["coding"] = sel_guid, cg
        coding = etree.SubElement(sel, f"{P}Coding", guid=cg, creatingUser=user)
        _set_time(coding, k["created_at"])
        etree.SubElement(coding, f"{P}CodeRef", targetGUID=code_guids[k["code_id"]])
        if k["memo"]:
            ng = given.get(("coding_note", str(k["id"]))) or guid("coding-memo", *span_key,
                                                                  k["code_id"])
            entry["note"] = ng
            notes.append(_note(P, ng, "coding memo", k["memo"], user, k["created_at"]))
            etree.SubElement(coding, f"{P}NoteRef", targetGUID=ng)
    return sel


def _suggestion_selection(P, doc, start: int, end: int, rows, machine_guid: str,
                          code_guids: dict[str, str]) -> etree._Element:
    """The machine's suggestions on one segment: one selection by the user 'machine', one
    Coding per suggested code (scores, ranks and model versions: the private file)."""
    key = (doc["name"], doc["sha256"], start, end, MACHINE)
    sel_guid = guid("selection", *key)
    sel = etree.Element(f"{P}PlainTextSelection", guid=sel_guid,
                        name=_x(f"{doc['name']} #{rows[0][0]['position']}"),
                        startPosition=str(start), endPosition=str(end), creatingUser=machine_guid)
    _set_time(sel, rows[0][0]["created_at"])
    for g, entry in rows:
        entry["selection"] = sel_guid
        coding = etree.SubElement(sel, f"{P}Coding", guid=guid("coding", *key, g["code_id"]),
                                  creatingUser=machine_guid)
        _set_time(coding, g["created_at"])
        etree.SubElement(coding, f"{P}CodeRef", targetGUID=code_guids[g["code_id"]])
    return sel
