"""A new study from a REFI-QDA project (``.qdpx``) made by NVivo, ATLAS.ti, MAXQDA, QualCoder
or coder. Everything is read and checked before the study is written, into a temporary file
moved into place only on success.

Selections keep their exact characters: a coding (confirmed, or a coder line's added/confirmed)
becomes a span coding (``codings.start_char/end_char``) anchored at the first segment it
overlaps, or a whole-segment coding (NULL offsets) when it is exactly one segment. Rejections
and "no code" (coder lines) are decisions on segments: they go on every segment the selection
overlaps (``start < segment.end and segment.start < end``); an empty selection (start == end)
codes the segment that contains that position. A selection that overlaps no segment (only a
speaker label or blank lines) is skipped and reported. Positions are read as code points or
UTF-16 code units, and a CR LF as one character or two, per source
(`coder.exchange.offsets.choose_readings`, ``--offsets``).

GUIDs (for the export): every GUID the project gave is kept verbatim (case and braces as
written) in the table ``exchange_guids(kind, ref, guid)`` (migration 0010): kind 'user'
(coders.id), 'code' (codes.id), 'source' (documents.id), 'case' (participants.id),
'variable' (attribute name), 'selection' and 'coding' (codings.id: the PlainTextSelection and
the Coding it came from), 'note' (memos.id), 'coding_note' (codings.id: the Note of its memo),
'annotation' (memos.id: a PlainTextSelection that carried only a memo, MAXQDA's way).
References are compared with `coder.sources.qdaxml.guid_key` (no braces, lower case).

The import report (`ProjectImport`, `project_report`) is stored in ``study_info`` under
``project_import``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

import coder.exchange.private as private
from coder.errors import InputError, StudyError
from coder.exchange.offsets import (
    READINGS,
    OffsetReading,
    _offset_map,
    choose_readings,
    converter,
    crlf_count,
    outside_bmp,
)
from coder.sources.archive import open_zip, read_member
from coder.sources.codebook.qdc_format import with_guids
from coder.sources.codebook.tree import from_dict
from coder.sources.qdaxml import (
    DECISIONS,
    MACHINE,
    PROJECT_NS,
    RefiError,
    _code_nodes,
    _parse_xml,
    _strip_guids,
    guid_key,
    split_description,
)
from coder.sources.transcripts import UNLABELLED
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
    raw_guid: str = ""        # as the project wrote it


@dataclass
class _Selection:
    guid: str
    start: int                # code points into the source's text, once its reading is chosen
    end: int
    user: str | None
    created: str | None
    info: dict[str, Any] | None
    codings: list[_Coding]
    note_refs: list[str]
    raw_guid: str = ""
    name: str | None = None   # QualCoder writes the selected text here
    memo: str = ""            # the Description's text: a coding memo (QualCoder, MAXQDA)
    raw: tuple[int, int] = (0, 0)   # the positions as written
    line: int | None = None


@dataclass
class _Source:
    guid: str
    name: str
    text: str | None
    created: str | None
    info: dict[str, Any] | None
    selections: list[_Selection]
    note_refs: list[str]
    raw_guid: str = ""
    line: int | None = None
    reading: OffsetReading | None = None      # code points or UTF-16 code units
    line_ends: OffsetReading | None = None    # a CR LF counted as two characters or one


@dataclass
class _Note:
    text: str
    info: dict[str, Any] | None
    creator: str | None
    created: str | None
    raw_guid: str = ""
    span: tuple[int, int] | None = None   # a Note holding a PlainTextSelection (QualCoder)


@dataclass
class _Project:
    name: str
    info: dict[str, Any]
    users: dict[str, str]                      # guid -> name
    codebook: Codebook | None
    code_ids: dict[str, str]                   # code guid -> code id
    cases: list[tuple[str, str, dict[str, str], list[str]]]  # guid, name, attrs, source guids
    sources: list[_Source]
    notes: dict[str, _Note]
    segments: dict[str, Any]                   # from coder.json
    private: dict[str, Any] | None = None      # coder/coder-data.json (coder.exchange.private)
    raw_guids: dict[str, str] = field(default_factory=dict)    # guid key -> as written
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (what, why)
    variables: dict[str, str] = field(default_factory=dict)    # variable guid -> name

    @property
    def categories(self) -> set[str]:
        """Ids of the codes that only group codes (isCodable="false")."""
        return {c.id for c in self.codebook if not c.codable} if self.codebook else set()


class _Missing(Exception):
    """A source's text file that is not in the zip."""


def _q(tag: str) -> str:
    return f"{{{PROJECT_NS}}}{tag}"


def _elem(el: etree._Element) -> str:
    """How an error names an element: <Tag guid='...'> at line N of project.qde."""
    name = etree.QName(el).localname
    g = el.get("guid")
    label = f"<{name} guid='{g}'>" if g else f"<{name}>"
    return f"project.qde line {el.sourceline}: {label}"


def _guid_attr(el: etree._Element, attr: str, qdpx: Path,
               raw: dict[str, str] | None = None) -> str:
    """A GUID as references compare it (`guid_key`); ``raw`` collects it as written."""
    value = (el.get(attr) or "").strip()
    if not value:
        raise RefiError(f"{_elem(el)} has no {attr}", path=qdpx)
    key = guid_key(value)
    if raw is not None:
        raw.setdefault(key, value)
    return key


def _user_attr(el: etree._Element) -> str | None:
    """Who made it: creatingUser, else modifyingUser (MAXQDA and NVivo write one or the
    other)."""
    value = (el.get("creatingUser") or el.get("modifyingUser") or "").strip()
    return guid_key(value) or None


def _read_member(z: zipfile.ZipFile, names: dict[str, str], member: str) -> bytes | None:
    real = names.get(member.lower())
    if real is None:
        return None
    return read_member(z, real, Path(z.filename or "project.qdpx"),
                       kind="REFI-QDA project (.qdpx)", error=RefiError)


def _text_path(ref: str) -> list[str] | None:
    """The zip members a plainTextPath may name (None: an external file, not in the zip)."""
    if ref.startswith("internal://"):
        return [f"sources/{ref[len('internal://'):]}"]
    if "://" in ref:
        return None  # an external file (absolute:// or relative://) is not in the zip
    return [ref.lstrip("/"), f"sources/{ref.lstrip('/')}"]


def _source_text(el: etree._Element, z: zipfile.ZipFile, names: dict[str, str],
                 qdpx: Path) -> str | None:
    content = el.find(_q("PlainTextContent"))
    if content is not None:
        return content.text or ""
    ref = el.get("plainTextPath")
    if not ref:
        raise RefiError(f"{_elem(el)} has neither PlainTextContent nor plainTextPath", path=qdpx)
    candidates = _text_path(ref)
    if candidates is None:
        return None
    for member in candidates:
        data = _read_member(z, names, member)
        if data is not None:
            try:
                return data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise RefiError(f"{_elem(el)}: {member} is not UTF-8 text", path=qdpx) from None
    raise _Missing(candidates[0])


def _source_name(el: etree._Element, g: str) -> str:
    """The source's name; without one (MAXQDA, ATLAS.ti write some so) its text file's name,
    as `coder import` names a document by its file."""
    name = (el.get("name") or "").strip()
    if name:
        return name
    ref = (el.get("plainTextPath") or "").strip()
    if ref:
        stem = Path(ref.split("://", 1)[-1].replace("\\", "/")).stem.strip()
        if stem:
            return stem
    return f"source-{g[:8]}"


def _int_attr(el: etree._Element, attr: str, qdpx: Path) -> int:
    try:
        return int(el.get(attr, ""))
    except ValueError:
        raise RefiError(f"{_elem(el)}: {attr} '{el.get(attr)}' is not a whole number",
                        path=qdpx) from None


def _read_project(qdpx: Path, warnings: list[str], *, offsets: str = "auto",
                  skip_missing: bool = False) -> _Project:
    """Parse and check the whole .qdpx before anything is written."""
    if not qdpx.exists():
        raise RefiError("file not found", path=qdpx)
    z = open_zip(qdpx, qdpx, kind="REFI-QDA project (.qdpx)", error=RefiError,
                 hint="export the project from your tool as REFI-QDA (.qdpx)",
                 not_zip="not a zip file; a .qdpx project is a zip archive holding project.qde")
    raw: dict[str, str] = {}
    skipped: list[tuple[str, str]] = []
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
        own = private.read(z, names, qdpx, data, warnings)  # coder's own export: exact
        if own is not None:
            info = own["project"]
        users = {}
        for u in root.iterfind(f"{_q('Users')}/{_q('User')}"):
            g = _guid_attr(u, "guid", qdpx, raw)
            users[g] = (u.get("name") or u.get("id") or f"user-{g[:8]}").strip()
        book, code_ids = None, {}
        codes_el = root.find(f"{_q('CodeBook')}/{_q('Codes')}")
        if codes_el is not None and len(codes_el):
            nodes = _code_nodes(codes_el, PROJECT_NS, qdpx, "project.qde", warnings)
            if own is not None and not private.apply_codes(nodes, own, qdpx, warnings):
                own, info = None, {}   # a damaged private file: as other tools see it
            written = _strip_guids(nodes)
            code_ids = {guid_key(g): i for g, i in written.items()}
            raw.update({guid_key(g): g for g in written})
            cb = info.get("codebook") or {}
            book = with_guids(from_dict({"name": cb.get("name") or root.get("name") or qdpx.stem,
                                         "description": cb.get("description") or "",
                                         "codes": nodes}, qdpx), written)
        variables = {}
        for v in root.iterfind(f"{_q('Variables')}/{_q('Variable')}"):
            variables[_guid_attr(v, "guid", qdpx, raw)] = v.get("name") or "variable"
        cases = []
        for c in root.iterfind(f"{_q('Cases')}/{_q('Case')}"):
            g = _guid_attr(c, "guid", qdpx, raw)
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
        missing: list[tuple[str, str, int | None]] = []   # name, file, line
        sources_el = root.find(_q("Sources"))
        for el in (sources_el if sources_el is not None else []):
            if not isinstance(el.tag, str):
                continue
            kind = etree.QName(el).localname
            if kind != "TextSource":
                what = "unsupported" if kind in UNSUPPORTED_SOURCES else "unknown"
                warnings.append(f"{_elem(el)} '{el.get('name', '')}': {what} source type "
                                f"{kind}; skipped")
                skipped.append((f"source '{el.get('name', '')}'", f"{kind} ({what} type)"))
                continue
            try:
                sources.append(_read_source(el, z, names, qdpx, code_ids, warnings, raw))
            except _Missing as e:
                missing.append((_source_name(el, guid_key(el.get("guid") or "")), str(e),
                                el.sourceline))
        if missing and not skip_missing:
            listed = "; ".join(f"'{n}' ({f}, project.qde line {line})" for n, f, line in missing)
            whose = ("sources' text files are" if len(missing) != 1
                     else "source's text file is")
            raise RefiError(
                f"{len(missing)} {whose} missing from the zip: {listed}; nothing was imported",
                path=qdpx,
                hint="export the project again with its sources, or use --skip-missing to "
                     "import the rest")
        for n, f, _line in missing:
            warnings.append(f"TextSource '{n}': its text file {f} is missing from the zip; "
                            "skipped (--skip-missing)")
            skipped.append((f"source '{n}'", f"its text file {f} is missing from the zip"))
        # coder's own export counts code points by construction (and its private file says where)
        _choose_readings(sources, offsets, qdpx, own=own is not None)
        if own is not None:   # coder's own export: each source's unit, format, speakers
            for src in sources:
                src.info = private.source_info(own, src.guid) or src.info
        notes = {}
        for n in root.iterfind(f"{_q('Notes')}/{_q('Note')}"):
            g = _guid_attr(n, "guid", qdpx, raw)
            try:
                text = _source_text(n, z, names, qdpx) if (
                    n.find(_q("PlainTextContent")) is not None or n.get("plainTextPath")) else None
            except _Missing as e:
                text = None
                skipped.append((f"note {n.get('guid')}", f"its text file {e} is missing"))
            if text is None:
                warnings.append(f"{_elem(n)}: a note without text; skipped")
                continue
            _, ninfo = split_description(n.findtext(_q("Description")))
            inner = n.find(_q("PlainTextSelection"))
            span = None
            if inner is not None and inner.get("startPosition") is not None:
                span = (_int_attr(inner, "startPosition", qdpx),
                        _int_attr(inner, "endPosition", qdpx))
            notes[g] = _Note(text, ninfo, _user_attr(n), n.get("creationDateTime"),
                             raw_guid=(n.get("guid") or "").strip(), span=span)
        segments: dict[str, Any] = {}
        side = _read_member(z, names, "coder.json")
        if side is not None:
            try:
                segments = json.loads(side.decode("utf-8")).get("sources", {})
            except (ValueError, AttributeError):
                warnings.append("coder.json is unreadable; documents are segmented afresh")
            segments = _checked_segments(segments, warnings)
        if own is not None:
            segments = private.saved_segments(own)
    return _Project(name=root.get("name") or qdpx.stem, info=info, users=users, codebook=book,
                    code_ids=code_ids, cases=cases, sources=sources, notes=notes,
                    segments=segments, raw_guids=raw, skipped=skipped, variables=variables,
                    private=own)


def _choose_readings(sources: list[_Source], asked: str, qdpx: Path, *,
                     own: bool = False) -> None:
    """Decide per source how its positions count (`coder.exchange.offsets.choose_readings`):
    code points or UTF-16 code units, and a CR LF as two characters or
    one; convert them to code points of the text as written and check them. A source whose
    selections cannot tell takes the reading the project's other sources showed (one tool wrote
    them all), else the standard's code points and two. ``own``: coder's own export, whose
    positions are code points of the text as written."""
    for src in sources:
        if src.text is not None and own:
            src.reading = OffsetReading("codepoints", "coder's own export: code points")
            src.line_ends = OffsetReading("two", "coder's own export")
        elif src.text is not None:
            src.reading, src.line_ends = choose_readings(
                src.text, [(s.raw[0], s.raw[1], s.name) for s in src.selections], asked)

    def majority(values: list[str]) -> str | None:
        return max(set(values), key=values.count) if values else None

    unit = majority([s.reading.reading for s in sources if s.reading and s.reading.decided
                     and outside_bmp(s.text or "")])
    ends = majority([s.line_ends.reading for s in sources if s.line_ends
                     and s.line_ends.decided and crlf_count(s.text or "")])
    for src in sources:
        if src.text is None or src.reading is None or src.line_ends is None:
            continue
        if not src.reading.decided:
            src.reading = OffsetReading(
                unit or "codepoints", src.reading.reason
                + (f"; read as the project's other sources ({unit})" if unit else
                   "; read as the standard counts (code points)"), decided=False)
        if not src.line_ends.decided and ends == "one":
            src.line_ends = OffsetReading("one", src.line_ends.reason + "; read as the "
                                          "project's other sources (one)", decided=False)
        convert = converter(src.text, src.reading.reading, src.line_ends.reading)
        if ends == "one" and src.line_ends.reading == "one" and not all(
                convert(s.raw[1]) is not None for s in src.selections):
            src.line_ends = OffsetReading("two", src.line_ends.reason + "; but its positions "
                                          "only fit as two", decided=False)
            convert = converter(src.text, src.reading.reading, "two")
        for s in src.selections:
            a, b = convert(s.raw[0]), convert(s.raw[1])
            if a is None or b is None or not (0 <= a <= b <= len(src.text)):
                utf16 = src.reading.reading == "utf16"
                unit_name = " (UTF-16 code units)" if utf16 else ""
                other = "codepoints" if utf16 else "utf16"
                fits_other = outside_bmp(src.text) and all(
                    v is not None for v in map(converter(src.text, other,
                                                         src.line_ends.reading), s.raw))
                raise RefiError(f"project.qde line {s.line}: <PlainTextSelection "
                                f"guid='{s.raw_guid}'>: offsets {s.raw[0]}-{s.raw[1]}{unit_name}"
                                f" lie outside its source '{src.name}' ({len(src.text)} "
                                "characters)", path=qdpx,
                                hint=f"they fit when read with --offsets {other}"
                                if fits_other and s.raw[0] <= s.raw[1] else None)
            s.start, s.end = a, b


def _to_text(src: _Source, position: int) -> int | None:
    """A position as the project wrote it, read as its source's selections were."""
    if src.text is None:
        return None
    return converter(src.text, src.reading.reading if src.reading else "codepoints",
                     src.line_ends.reading if src.line_ends else "two")(position)


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
                 warnings: list[str], raw: dict[str, str]) -> _Source:
    g = _guid_attr(el, "guid", qdpx, raw)
    name = _source_name(el, g)
    text = _source_text(el, z, names, qdpx)
    if text is None:
        warnings.append(f"{_elem(el)} '{name}': its text is an external file "
                        f"({el.get('plainTextPath')}), not in the zip; skipped")
    _, info = split_description(el.findtext(_q("Description")))
    selections = []
    for s in el.findall(_q("PlainTextSelection")):
        sg = _guid_attr(s, "guid", qdpx, raw)
        start, end = _int_attr(s, "startPosition", qdpx), _int_attr(s, "endPosition", qdpx)
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
                guid=_guid_attr(c, "guid", qdpx, raw), user=_user_attr(c),
                created=c.get("creationDateTime"), code_guid=target,
                note_refs=[_guid_attr(r, "targetGUID", qdpx) for r in c.findall(_q("NoteRef"))],
                raw_guid=(c.get("guid") or "").strip()))
        memo, sinfo = split_description(s.findtext(_q("Description")))
        selections.append(_Selection(
            guid=sg, start=start, end=end, user=_user_attr(s),
            created=s.get("creationDateTime") or s.get("modifiedDateTime"), info=sinfo,
            codings=codings,
            note_refs=[_guid_attr(r, "targetGUID", qdpx) for r in s.findall(_q("NoteRef"))],
            raw_guid=(s.get("guid") or "").strip(), name=s.get("name"), memo=memo,
            raw=(start, end), line=s.sourceline))
    if el.findall(_q("Coding")):
        warnings.append(f"{_elem(el)} '{name}': codings of the whole source are "
                        "not segment codings; skipped")
    return _Source(guid=g, name=name, text=text,
                   created=el.get("creationDateTime"), info=info, selections=selections,
                   note_refs=[_guid_attr(r, "targetGUID", qdpx) for r in el.findall(_q("NoteRef"))],
                   raw_guid=(el.get("guid") or "").strip(), line=el.sourceline)


@dataclass
class SourceReport:
    """One source as it came in."""

    name: str
    segments: int = 0
    unit: str = ""
    speakers: list[str] = field(default_factory=list)   # labels found ([] : unlabelled text)
    offsets: str = "codepoints"
    offsets_why: str = ""
    line_ends: str = ""           # "two" / "one" where the text has CR LF line ends
    line_ends_why: str = ""


@dataclass
class ProjectImport:
    """What a project import brought in, what it left out and why: printed by
    ``coder import-project`` and stored with the study (``study_info`` key
    ``project_import``, JSON), so the study can always say where it came from."""

    project: str = ""
    sources: list[SourceReport] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (what, why)
    codes: int = 0
    categories: int = 0          # isCodable="false": only group codes
    colours: int = 0
    selections: int = 0          # PlainTextSelections with codings
    exact: int = 0               # kept as their exact characters (span codings)
    whole: int = 0               # exactly one segment: a whole-segment coding
    on_segments: int = 0         # rejections / no-code decisions: on each segment they overlap
    empty: int = 0               # no characters: coded on the segment holding the position
    duplicates: int = 0          # the same span, code and user again: kept once
    coding_memos: int = 0        # from a selection's Description or a NoteRef
    annotations: int = 0         # selections or notes with a memo and no code: segment memos
    memos: int = 0               # notes on documents or the project
    offsets_asked: str = "auto"
    # coder's own export: what came back from its private file (decisions, suggestions, ...)
    restored: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"Sources: {len(self.sources)} imported"
               + (f", {sum(1 for w, _ in self.skipped if w.startswith('source'))} skipped"
                  if any(w.startswith("source") for w, _ in self.skipped) else "")]
        for s in self.sources:
            who = (f"{len(s.speakers)} speaker{'s' if len(s.speakers) != 1 else ''} "
                   f"({', '.join(s.speakers[:6])}{', ...' if len(s.speakers) > 6 else ''})"
                   if s.speakers else "no speaker labels")
            out.append(f"  {s.name}: {s.segments} segments by {s.unit}, {who}; offsets read as "
                       f"{'UTF-16 code units' if s.offsets == 'utf16' else 'code points'} "
                       f"({s.offsets_why})"
                       + (f"; a CR LF line end counted as {s.line_ends} character"
                          f"{'s' if s.line_ends == 'two' else ''} ({s.line_ends_why})"
                          if s.line_ends else ""))
        out.append(f"Codes: {self.codes}"
                   + (f" ({self.categories} not codable)" if self.categories else "")
                   + (f", {self.colours} with colours" if self.colours else ""))
        out.append(f"Selections: {self.selections}; {self.exact} kept exact, {self.whole} "
                   f"whole segments" + (f", {self.on_segments} decisions on the segments they "
                                        "overlap" if self.on_segments else "")
                   + (f", {self.empty} empty (on their segment)" if self.empty else "")
                   + (f", {self.duplicates} duplicates kept once" if self.duplicates else ""))
        out.append(f"Memos: {self.coding_memos} on codings, {self.annotations} on segments, "
                   f"{self.memos} on documents")
        if self.restored:
            r = self.restored
            out.append(f"From coder's private file: {r.get('decisions', 0)} decisions "
                       f"({r.get('not_seen_by_other_tools', 0)} that other tools do not see: "
                       f"rejected, no code), {r.get('suggestions', 0)} suggestions, "
                       f"{r.get('memos', 0)} memos, {r.get('history', 0)} history rows")
        for what, why in self.skipped:
            out.append(f"Skipped {what}: {why}")
        return out

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> ProjectImport:
        data = json.loads(text)
        data["sources"] = [SourceReport(**s) for s in data.get("sources", [])]
        data["skipped"] = [tuple(x) for x in data.get("skipped", [])]
        return cls(**data)


REPORT_KEY = "project_import"


def project_report(study) -> ProjectImport | None:
    """The report of the import that made this study (None: it was not made from a project)."""
    row = study.db.one("SELECT value FROM study_info WHERE key=?", (REPORT_KEY,))
    return ProjectImport.from_json(row["value"]) if row else None


def import_project(new_study_path: str | Path, qdpx: str | Path, *, unit: str = "turn",
                   warnings: list[str] | None = None, offsets: str = "auto",
                   skip_missing: bool = False):
    """Make a new study from a REFI-QDA project (.qdpx). Everything is checked first and the
    study is built in a temporary file moved into place only on success, so a bad project
    leaves nothing behind. Skipped elements are appended to ``warnings``; the import report is
    `project_report(study)`.

    ``offsets``: how selection positions count -- ``codepoints`` (the standard), ``utf16``
    (NVivo for Windows) or ``auto`` (decided per source, see `choose_readings`).
    ``skip_missing``: import the rest when a source's text file is missing from the zip
    (otherwise nothing is imported)."""
    from coder.store import Store

    new_study_path, qdpx = Path(new_study_path), Path(qdpx)
    warnings = warnings if warnings is not None else []
    if unit not in ("turn", "sentence", "paragraph"):
        raise InputError(f"unknown unit '{unit}'", hint="use turn, sentence or paragraph")
    if offsets not in READINGS:
        raise InputError(f"unknown offsets reading '{offsets}'",
                         hint="use auto, codepoints or utf16")
    if new_study_path.exists():
        raise StudyError(f"{new_study_path} already exists",
                         hint="import a project into a new study file")
    if not new_study_path.parent.exists():
        raise StudyError(f"folder {new_study_path.parent} does not exist")
    try:
        project = _read_project(qdpx, warnings, offsets=offsets, skip_missing=skip_missing)
    except _FOREIGN_DAMAGE as e:
        raise _damaged(qdpx, e) from None
    report = ProjectImport(project=project.name, skipped=list(project.skipped),
                           offsets_asked=offsets)
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
                    _populate(study, project, qdpx, unit, warnings, report)
                except _FOREIGN_DAMAGE as e:
                    raise _damaged(qdpx, e) from None
                batch.coders.extend(r[0] for r in study.db.query(
                    "SELECT name FROM coders WHERE id IN (SELECT coder_id FROM codings) "
                    "ORDER BY id"))
                study.db.execute("INSERT OR REPLACE INTO study_info (key, value) VALUES (?,?)",
                                 (REPORT_KEY, report.to_json()))
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


def _keep_guid(db, project: _Project, kind: str, ref: object, key: str | None) -> None:
    """Remember the GUID another tool gave a thing, as it wrote it (see the module's notes)."""
    written = project.raw_guids.get(key or "") if key is not None else None
    if written:
        db.execute("INSERT OR REPLACE INTO exchange_guids (kind, ref, guid) VALUES (?,?,?)",
                   (kind, str(ref), written))


def _populate(study, project: _Project, qdpx: Path, unit: str, warnings: list[str],
              report: ProjectImport | None = None) -> None:
    db = study.db
    report = report if report is not None else ProjectImport()
    version = None
    if project.codebook is not None:
        version = study.store_codebook(project.codebook, source=str(qdpx)).version
        book = study.codebook()
        report.codes = len(book)
        report.categories = sum(1 for c in book if not c.codable)
        report.colours = sum(1 for c in book if c.color)
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

    for g, name in user_names.items():
        if name != MACHINE:
            _keep_guid(db, project, "user", coder(name), g)

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
    for case_guid, name, values, refs in project.cases:
        name = " ".join(name.split()) or "unnamed"
        case_names.add(name)
        pid = participant(name)
        _keep_guid(db, project, "case", pid, case_guid)
        for attr, value in values.items():
            db.execute("INSERT OR REPLACE INTO participant_attributes VALUES (?,?,?)",
                       (pid, attr, value))
        for ref in refs:
            case_for_source.setdefault(ref, []).append(name)
    for variable_guid, variable in project.variables.items():
        _keep_guid(db, project, "variable", variable, variable_guid)

    # documents, segments, codings
    doc_names: set[str] = set()
    doc_by_name: dict[str, tuple[int, dict[int, int]]] = {}
    memo_docs: dict[str, int] = {}
    spans: dict[str, tuple[int, list, Any]] = {}   # source guid -> doc id, segments, offset map
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
        _keep_guid(db, project, "source", doc_id, src.guid)
        stored = db.one("SELECT text, unit FROM documents WHERE id=?", (doc_id,))
        where = _offset_map(src.text, stored["text"])
        segs = db.query("SELECT id, position, start_char, end_char FROM segments "
                        "WHERE document_id=? ORDER BY start_char", (doc_id,))
        entry = (doc_id, {s["position"]: s["id"] for s in segs})
        doc_by_name.setdefault(src.name, entry)
        doc_by_name.setdefault(name, entry)
        memo_docs[src.guid] = doc_id
        spans[src.guid] = (doc_id, segs, where)
        reading = src.reading or OffsetReading("codepoints", "")
        report.sources.append(SourceReport(
            name=name, segments=len(segs), unit=stored["unit"],
            speakers=[r[0] for r in db.query(
                "SELECT label FROM speakers WHERE document_id=? AND label != ? ORDER BY id",
                (doc_id, UNLABELLED))],
            offsets=reading.reading, offsets_why=reading.reason,
            line_ends=src.line_ends.reading if src.line_ends and crlf_count(src.text) else "",
            line_ends_why=src.line_ends.reason if src.line_ends else ""))
        for sel in ([] if project.private else src.selections):   # else: private.restore
            _insert_selection(db, sel, segs, where(sel.start), where(sel.end), project, code_ids,
                              version, coder, user, warnings, report, name)

    # memos (notes that are not coding memos)
    referenced: dict[str, _Source] = {}
    for src in project.sources:
        for ref in src.note_refs:
            if src.guid in memo_docs:
                referenced[ref] = src
    coding_notes = {r for src in project.sources for sel in src.selections
                    for r in sel.note_refs + [n for c in sel.codings for n in c.note_refs]}
    for g, note in ({} if project.private else project.notes).items():
        info = note.info or {}
        if info.get("kind") == "coding-memo" or g in coding_notes:
            continue
        doc_id = seg_id = None
        if info.get("document") in doc_by_name:
            doc_id, positions = doc_by_name[info["document"]]
            if info.get("segment") is not None:
                seg_id = positions.get(info["segment"])
        elif g in referenced:
            src = referenced[g]
            doc_id = memo_docs[src.guid]
            if note.span is not None:   # an annotation on characters (QualCoder): its segment
                seg_id = _annotated_segment(src, note.span, spans[src.guid])
        who = info.get("coder") or (user(note.creator) if note.creator else None)
        memo_id = db.execute(
            "INSERT INTO memos (segment_id, document_id, coder_id, text, created_at) "
            "VALUES (?,?,?,?,?)", (seg_id, None if seg_id else doc_id,
                                   coder(who) if who and who != MACHINE else None, note.text,
                                   note.created or now())).lastrowid
        _keep_guid(db, project, "note", memo_id, g)
        if seg_id:
            report.annotations += 1
        else:
            report.memos += 1
    if project.private is not None:   # coder's own export: every decision, exactly
        own_docs = {s.guid: (memo_docs[s.guid], s.text) for s in project.sources
                    if s.guid in memo_docs}
        report.restored = private.restore(db, project.private, own_docs, code_ids, version,
                                          coder, warnings)
    # participants the segmenter made that the speaker map or the cases replaced
    for row in db.query("SELECT id, name FROM participants WHERE id NOT IN "
                        "(SELECT participant_id FROM speakers WHERE participant_id IS NOT NULL)"):
        if row["name"] not in case_names:
            db.execute("DELETE FROM participants WHERE id=?", (row["id"],))


def _annotated_segment(src: _Source, span: tuple[int, int], where) -> int | None:
    """The segment an annotation Note's own selection starts in (positions read as its
    source's are)."""
    _doc, segs, mapped = where
    start = _to_text(src, span[0])
    if start is None:
        return None
    pos = mapped(start)
    hit = [s["id"] for s in segs if s["start_char"] <= pos < s["end_char"]] or \
        [s["id"] for s in segs if s["start_char"] >= pos][:1]
    return hit[0] if hit else None


def _overlapping(segs, start: int, end: int) -> list[int]:
    """The overlap rule: segments sharing at least one character; an empty selection codes
    the segment containing its position."""
    if start == end:
        return [s["id"] for s in segs if s["start_char"] <= start < s["end_char"]]
    return [s["id"] for s in segs if start < s["end_char"] and s["start_char"] < end]


def _insert_selection(db, sel: _Selection, segs, start: int, end: int, project: _Project,
                      code_ids: set[str], version, coder, user, warnings,
                      report: ProjectImport, doc_name: str) -> None:
    """One PlainTextSelection into codings: its exact characters for a coding (see the module's
    notes), its segments for a rejection or "no code", a segment memo for a selection that
    carries only a memo (an annotation)."""
    hit = _overlapping(segs, start, end)
    if not hit:
        warnings.append(f"selection {sel.guid} in '{doc_name}' ({sel.start}-{sel.end}) "
                        "overlaps no segment; skipped")
        report.skipped.append((f"selection {sel.raw_guid or sel.guid} in '{doc_name}'",
                               f"positions {sel.raw[0]}-{sel.raw[1]} hold only a speaker label "
                               "or blank lines"))
        return
    info = sel.info or {}
    if info.get("suggestion"):
        code = info.get("code")
        if sel.codings:
            code = project.code_ids[sel.codings[0].code_guid]
        if code not in code_ids or info.get("source") not in ("codebook", "classifier", "blend"):
            warnings.append(f"suggestion {sel.guid}: unusable coder line; skipped")
            return
        for seg in hit:
            db.execute(
                "INSERT OR IGNORE INTO suggestions (segment_id, code_id, score, rank, source, "
                "threshold, model_version, codebook_version, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (seg, code, float(info.get("score") or 0), int(info.get("rank") or 1),
                 info["source"], info.get("threshold"), info.get("model_version"),
                 version, sel.created or now()))
        return

    def memo_of(refs: list[str]) -> str | None:
        parts = [sel.memo] if sel.memo else []
        parts += [project.notes[r].text for r in refs if r in project.notes]
        return "\n\n".join(dict.fromkeys(p.strip() for p in parts if p.strip())) or None

    rows = []   # (coder name, code, decision, extra, created, coding)
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
        rows.append((_clean_name(info["coder"]), code, info["decision"], info, created,
                     sel.codings[0] if sel.codings else None))
    else:
        for c in sel.codings:
            if project.code_ids[c.code_guid] in project.categories:
                warnings.append(f"selection {sel.raw_guid or sel.guid} in '{doc_name}' codes a "
                                "category that is not codable; kept as the project has it")
            rows.append((user(c.user or sel.user), project.code_ids[c.code_guid], "confirmed",
                         {"source": "import", "memo": memo_of(c.note_refs + sel.note_refs)},
                         c.created or sel.created, c))
    if not rows:
        memo = memo_of(sel.note_refs)
        if memo:   # a memo on characters and no code (MAXQDA, NVivo annotations)
            who = user(sel.user) if sel.user else None
            memo_id = db.execute(
                "INSERT INTO memos (segment_id, document_id, coder_id, text, created_at) "
                "VALUES (?,?,?,?,?)", (hit[0], None, coder(who) if who and who != MACHINE
                                       else None, memo, sel.created or now())).lastrowid
            _keep_guid(db, project, "annotation", memo_id, sel.guid)
            report.annotations += 1
        else:
            report.skipped.append((f"selection {sel.raw_guid or sel.guid} in '{doc_name}'",
                                   "no code and no memo"))
        return
    whole = next((s["id"] for s in segs if s["start_char"] == start and s["end_char"] == end),
                 None)
    report.selections += 1
    kinds: set[str] = set()   # how its codings came in (a duplicate of another: none)
    for name, code, decision, extra, created, coding in rows:
        cid = coder(name)
        if start == end:
            targets, kind = [(hit[0], None, None)], "empty"
        elif whole is not None:
            targets, kind = [(whole, None, None)], "whole"
        elif decision in ("confirmed", "added"):
            targets, kind = [(hit[0], start, end)], "exact"
        else:   # a rejection or "no code" is a decision on segments
            targets, kind = [(seg, None, None) for seg in hit], "on_segments"
        memo = extra.get("memo")
        for seg, a, b in targets:
            cur = db.execute(
                "INSERT OR IGNORE INTO codings (segment_id, coder_id, code_id, decision, "
                "codebook_version, model_version, suggestion_score, memo, reason, seconds, source,"
                " created_at, start_char, end_char) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (seg, cid, code, decision, version, extra.get("model_version"),
                 extra.get("suggestion_score"), memo, extra.get("reason"),
                 extra.get("seconds"), extra.get("source") or "import", created or now(), a, b))
            if cur.rowcount == 0:   # the same span, code and coder again: one coding
                report.duplicates += 1
                if memo:
                    db.execute(
                        "UPDATE codings SET memo = CASE WHEN memo IS NULL OR memo = '' THEN ? "
                        "WHEN instr(memo, ?) > 0 THEN memo ELSE memo || char(10) || char(10) || ?"
                        " END WHERE segment_id=? AND coder_id=? AND COALESCE(code_id, '')=? AND "
                        "COALESCE(start_char, -1)=? AND COALESCE(end_char, -1)=?",
                        (memo, memo, memo, seg, cid, code or "", -1 if a is None else a,
                         -1 if b is None else b))
                continue
            row_id = cur.lastrowid
            kinds.add(kind)
            if memo:
                report.coding_memos += 1
            _keep_guid(db, project, "selection", row_id, sel.guid)
            if coding is not None:
                _keep_guid(db, project, "coding", row_id, coding.guid)
                refs = [r for r in coding.note_refs + sel.note_refs if r in project.notes]
                if refs:
                    _keep_guid(db, project, "coding_note", row_id, refs[0])
    for kind in kinds:
        setattr(report, kind, getattr(report, kind) + 1)


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
            # speaker labels only where plausible (a source may be an article or posts, not
            # a transcript): recurring, or a case's name, or in coder's speaker map
            known = set(case_names) | set(case_refs) | {k for k in speakers_info if k}
            return_id = import_text(study, name, src.text, unit=unit,
                                    fmt=info.get("format") or "qdpx", sha256=info.get("sha256"),
                                    known_speakers=known)
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
