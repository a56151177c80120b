"""A new study from a REFI-QDA project (``.qdpx``) made by NVivo, ATLAS.ti, MAXQDA, QualCoder
or coder. Everything is read and checked before the study is written, into a temporary file
moved into place only on success.

Overlap rule on import: a selection codes every segment of its document that shares at least
one character with it (``start < segment.end and segment.start < end``); an empty selection
(start == end) codes the segment that contains that position. Characters outside every segment
(speaker labels, blank lines) code nothing.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from coder.errors import InputError, StudyError
from coder.exchange.offsets import _offset_map
from coder.sources.archive import open_zip, read_member
from coder.sources.codebook.tree import from_dict
from coder.sources.qdaxml import (
    DECISIONS,
    MACHINE,
    PROJECT_NS,
    RefiError,
    _code_nodes,
    _parse_xml,
    _strip_guids,
    split_description,
)
from coder.store import batches
from coder.store.codebook import Codebook
from coder.store.db import now, text_hash

UNSUPPORTED_SOURCES = ("PDFSource", "PictureSource", "AudioSource", "VideoSource")


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
    if real is None:
        return None
    return read_member(z, real, Path(z.filename or "project.qdpx"),
                       kind="REFI-QDA project (.qdpx)", error=RefiError)


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
    z = open_zip(qdpx, qdpx, kind="REFI-QDA project (.qdpx)", error=RefiError,
                 hint="export the project from your tool as REFI-QDA (.qdpx)",
                 not_zip="not a zip file; a .qdpx project is a zip archive holding project.qde")
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
            segments = _checked_segments(segments, warnings)
    return _Project(name=root.get("name") or qdpx.stem, info=info, users=users, codebook=book,
                    code_ids=code_ids, cases=cases, sources=sources, notes=notes,
                    segments=segments)


# one saved segment as coder.json holds it: position, turn, start, end, label, start_time,
# end_time, text, text_hash
_SEGMENT_TYPES = (int, (int, type(None)), int, int, (str, type(None)), (int, float, type(None)),
                  (int, float, type(None)), str, str)


def _checked_segments(sources: Any, warnings: list[str]) -> dict[str, Any]:
    """coder.json's saved segment boundaries, keeping only sources in exactly the shape coder
    writes (another tool or a hand may have changed the file; those are segmented afresh)."""
    if not isinstance(sources, dict):
        warnings.append("coder.json has no map of sources; documents are segmented afresh")
        return {}
    good: dict[str, Any] = {}
    for guid, entry in sources.items():
        rows = entry.get("segments") if isinstance(entry, dict) else None
        ok = (isinstance(rows, list) and isinstance(entry.get("text_sha256"), str)
              and all(isinstance(r, list) and len(r) == len(_SEGMENT_TYPES)
                      and all(isinstance(v, t) and not isinstance(v, bool)
                              for v, t in zip(r, _SEGMENT_TYPES))
                      and 0 <= r[2] <= r[3] for r in rows))
        if ok:
            good[guid] = entry
        else:
            warnings.append(f"coder.json: the saved segments of source {guid} are not what "
                            "coder writes; that document is segmented afresh")
    return good


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
    from coder.store import Store

    new_study_path, qdpx = Path(new_study_path), Path(qdpx)
    warnings = warnings if warnings is not None else []
    if unit not in ("turn", "sentence", "paragraph"):
        raise InputError(f"unknown unit '{unit}'", hint="use turn, sentence or paragraph")
    if new_study_path.exists():
        raise StudyError(f"{new_study_path} already exists",
                         hint="import a project into a new study file")
    if not new_study_path.parent.exists():
        raise StudyError(f"folder {new_study_path.parent} does not exist")
    try:
        project = _read_project(qdpx, warnings)
    except _FOREIGN_DAMAGE as e:
        raise _damaged(qdpx, e) from None
    fd, tmp = tempfile.mkstemp(dir=new_study_path.parent, prefix=f".{new_study_path.name}.",
                               suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        study = Store.create(tmp_path)
        try:
            # the project's codings are the new study's batch 1 (`coder undo --batch 1`)
            with study.db.transaction(), batches.record(study, "project",
                                                        source=str(qdpx)) as batch:
                try:
                    _populate(study, project, qdpx, unit, warnings)
                except _FOREIGN_DAMAGE as e:
                    raise _damaged(qdpx, e) from None
                batch.coders.extend(r[0] for r in study.db.query(
                    "SELECT name FROM coders WHERE id IN (SELECT coder_id FROM codings) "
                    "ORDER BY id"))
            study.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            study.close()
        os.replace(tmp_path, new_study_path)
    finally:
        for p in (tmp_path, Path(tmp + "-wal"), Path(tmp + "-shm")):
            p.unlink(missing_ok=True)
    return Store(new_study_path)


# what a value of an unexpected type in a project's coder lines raises deep inside the import
_FOREIGN_DAMAGE = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def _damaged(qdpx: Path, e: Exception) -> RefiError:
    return RefiError(f"a 'coder: {{...}}' line in the project holds a value coder never writes "
                     f"({type(e).__name__}: {e})", path=qdpx,
                     hint="export the project again, or delete the 'coder:' lines of its "
                          "descriptions to import what other tools see")


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
        version = study.store_codebook(project.codebook, source=str(qdpx)).version
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
        from coder.errors import CoderError
        from coder.sources.transcripts import import_text

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
