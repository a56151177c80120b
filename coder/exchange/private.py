"""coder's private file inside a ``.qdpx``: what REFI-QDA has no element for, so that a round
trip coder -> .qdpx -> coder loses nothing while other tools see only standard elements.

``coder/coder-data.json`` holds rejections and "no code" decisions, every decision's coder line
(model version, suggestion score, seconds, reason, source, time as stored), span offsets,
machine suggestions, memos with the segment they belong to, the decision history, coder kinds,
code fields the standard lacks (id, include/exclude, items, examples, speakers, leads_to) and
each document's segments and speaker map. Entries are keyed by the GUIDs of the project's
elements (codes, sources, selections, codings, notes). Other tools ignore unknown zip members.

The file records the sha256 of the ``project.qde`` it was written with: when another tool has
rewritten the project (or the file is damaged) it is ignored with one warning and the project
is imported as other tools see it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import zipfile
from pathlib import Path
from typing import Any

from coder.errors import CodebookError
from coder.exchange.offsets import _offset_map
from coder.sources.archive import read_member
from coder.sources.codebook.tree import from_dict
from coder.sources.qdaxml import DECISIONS, RefiError, guid_key
from coder.store.db import now

MEMBER = "coder/coder-data.json"
FORMAT = "coder-private"
VERSION = 1
KIND = "REFI-QDA project (.qdpx)"

STR, INT, NUM = (str,), (int,), (int, float)
OPT_STR, OPT_INT, OPT_NUM = (str, type(None)), (int, type(None)), (int, float, type(None))

# the shape of each entry: key -> allowed types (every key required; None allowed where listed)
DECISION = {"source": STR, "segment": INT, "start": OPT_INT, "end": OPT_INT, "coder": STR,
            "code": OPT_STR, "decision": STR, "memo": OPT_STR, "reason": OPT_STR,
            "seconds": OPT_NUM, "origin": STR, "model_version": OPT_INT,
            "suggestion_score": OPT_NUM, "created_at": STR, "selection": OPT_STR,
            "coding": OPT_STR, "note": OPT_STR}
SUGGESTION = {"source": STR, "segment": INT, "code": STR, "score": NUM, "rank": INT,
              "origin": STR, "threshold": OPT_NUM, "model_version": OPT_INT, "created_at": STR,
              "selection": OPT_STR}
# source: the document a memo is about (its own or its segment's); document: that GUID again when
# the memo row names its document itself (a memo on a segment may or may not)
MEMO = {"note": STR, "source": OPT_STR, "segment": OPT_INT, "document": OPT_STR,
        "coder": OPT_STR, "text": STR, "created_at": STR}
HISTORY = {"source": STR, "segment": INT, "start": OPT_INT, "end": OPT_INT, "coder": STR,
           "code": OPT_STR, "decision": STR, "memo": OPT_STR, "reason": OPT_STR,
           "origin": OPT_STR, "action": STR, "recorded_at": STR}
SPEAKER = {"label": STR, "role": STR, "participant": OPT_STR}
SOURCE = {"name": STR, "format": STR, "unit": STR, "sha256": STR, "text_sha256": STR,
          "metadata": (dict,), "speakers": (list,), "segments": (list,)}
CODE = {"id": STR, "description": STR, "include": STR, "exclude": STR, "items": (list,),
        "examples": (list,), "speakers": (list,), "leads_to": (list,)}
SUGGESTION_ORIGINS = ("codebook", "classifier", "blend")
# one saved segment: position, turn, start, end, label, start_time, end_time, text, text_hash
SEGMENT = (INT, OPT_INT, INT, INT, OPT_STR, OPT_NUM, OPT_NUM, STR, STR)


def qde_hash(qde: bytes) -> str:
    return hashlib.sha256(qde).hexdigest()


def encode(data: dict[str, Any]) -> bytes:
    """The file's bytes: sorted keys, so the same study gives the same bytes."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


class Damaged(ValueError):
    """Where the private file differs from what coder writes."""


def _is(value: Any, types: tuple) -> bool:
    """Of one of ``types``; numbers finite and within what SQLite stores."""
    if not isinstance(value, types) or isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -2**62 < value < 2**62
    if isinstance(value, float):
        return math.isfinite(value)
    return True


def _entry(value: Any, shape: dict[str, tuple], where: str) -> None:
    if not isinstance(value, dict):
        raise Damaged(f"{where} is not an object")
    for key, types in shape.items():
        if key not in value:
            raise Damaged(f"{where} has no '{key}'")
        if not _is(value[key], types):
            raise Damaged(f"{where}.{key} has a value of the wrong kind")


def _entries(data: dict, name: str, shape: dict[str, tuple]) -> None:
    rows = data.get(name, [])
    if not isinstance(rows, list):
        raise Damaged(f"'{name}' is not a list")
    for i, row in enumerate(rows):
        _entry(row, shape, f"{name}[{i}]")


def _strings(value: list, where: str) -> None:
    if not all(_is(v, STR) for v in value):
        raise Damaged(f"{where} holds a value that is not text")


def check(data: Any) -> None:
    """Raise Damaged unless ``data`` has exactly the shape coder writes, so the import never
    meets a value of an unexpected type deep inside."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise Damaged("it is not coder's private data")
    if data.get("version") != VERSION:
        raise Damaged(f"version {data.get('version')!r}; this coder reads version {VERSION}")
    if not _is(data.get("project_qde_sha256"), STR):
        raise Damaged("it names no project.qde")
    project = data.get("project")
    if not isinstance(project, dict) or not isinstance(project.get("coders"), dict) \
            or not isinstance(project.get("codebook"), dict):
        raise Damaged("'project' is not what coder writes")
    if not all(_is(k, STR) and v in ("human", "consensus", "machine")
               for k, v in project["coders"].items()):
        raise Damaged("'project.coders' is not a map of coder names to kinds")
    if not all(_is(v, STR) for v in project["codebook"].values()):
        raise Damaged("'project.codebook' is not what coder writes")
    for name, shape in (("codes", CODE), ("sources", SOURCE)):
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise Damaged(f"'{name}' is not a map keyed by GUID")
        for g, entry in table.items():
            _entry(entry, shape, f"{name}[{g}]")
            if name == "codes":
                for key in ("items", "examples", "speakers", "leads_to"):
                    _strings(entry[key], f"codes[{g}].{key}")
            else:
                for i, sp in enumerate(entry["speakers"]):
                    _entry(sp, SPEAKER, f"sources[{g}].speakers[{i}]")
                for i, seg in enumerate(entry["segments"]):
                    if not (isinstance(seg, list) and len(seg) == len(SEGMENT)
                            and all(_is(v, t) for v, t in zip(seg, SEGMENT))
                            and 0 <= seg[2] <= seg[3]):
                        raise Damaged(f"sources[{g}].segments[{i}] is not a saved segment")
    ids = [e["id"] for e in data.get("codes", {}).values()]
    if len(set(ids)) != len(ids) or not all(i.strip() for i in ids):
        raise Damaged("'codes' gives two codes one id, or a code no id")
    if any(ref not in ids for e in data.get("codes", {}).values() for ref in e["leads_to"]):
        raise Damaged("'codes' has a leads_to to a code it does not hold")
    _entries(data, "decisions", DECISION)
    _entries(data, "suggestions", SUGGESTION)
    _entries(data, "memos", MEMO)
    _entries(data, "history", HISTORY)
    sources = data.get("sources", {})
    for i, d in enumerate(data.get("decisions", [])):
        if d["decision"] not in DECISIONS:
            raise Damaged(f"decisions[{i}].decision '{d['decision']}' is not a decision")
        if (d["start"] is None) != (d["end"] is None) or (
                d["start"] is not None and not 0 <= d["start"] < d["end"]):
            raise Damaged(f"decisions[{i}] has a broken span")
        if d["code"] is None and d["decision"] != "no_code":
            raise Damaged(f"decisions[{i}] is a '{d['decision']}' without a code")
        if d["source"] not in sources:
            raise Damaged(f"decisions[{i}] refers to a source it does not describe")
        if not d["coder"].strip():
            raise Damaged(f"decisions[{i}] has no coder")
    for i, s in enumerate(data.get("suggestions", [])):
        if s["source"] not in sources:
            raise Damaged(f"suggestions[{i}] refers to a source it does not describe")
        if s["origin"] not in SUGGESTION_ORIGINS:
            raise Damaged(f"suggestions[{i}].origin '{s['origin']}' is not a suggester")
    for i, h in enumerate(data.get("history", [])):
        if h["source"] not in sources or h["action"] not in ("insert", "update", "delete") \
                or h["decision"] not in DECISIONS:
            raise Damaged(f"history[{i}] is not what coder writes")


def read(z: zipfile.ZipFile, names: dict[str, str], qdpx: Path, qde: bytes,
         warnings: list[str]) -> dict[str, Any] | None:
    """The private data of a project coder wrote, or None: absent (another tool's project),
    damaged or written for another project.qde (each of the last two with a warning)."""
    real = names.get(MEMBER.lower())
    if real is None:
        return None
    fallback = ("; imported as other tools see the project (positive codings only: no "
                "rejections, no-code decisions, suggestions or decision history)")
    try:
        data = json.loads(read_member(z, real, qdpx, kind=KIND, error=RefiError)
                          .decode("utf-8"))
        check(data)
    except RefiError as e:
        warnings.append(f"{MEMBER} is damaged ({e.detail}){fallback}")
        return None
    except (ValueError, RecursionError) as e:  # JSON, UTF-8 and Damaged are ValueErrors
        why = str(e) if isinstance(e, Damaged) else "not valid JSON"
        warnings.append(f"{MEMBER} is damaged ({why}){fallback}")
        return None
    if data["project_qde_sha256"] != qde_hash(qde):
        warnings.append(f"{MEMBER} was written for another version of project.qde (the "
                        f"project was changed after coder exported it){fallback}")
        return None
    return _keyed(data)


def _keyed(data: dict[str, Any]) -> dict[str, Any]:
    """References to sources and codes compared as the import compares GUIDs (case and braces
    do not matter); the GUIDs to write back stay as written."""
    for name in ("sources", "codes"):
        data[name] = {guid_key(g): e for g, e in data.get(name, {}).items()}
    for name in ("decisions", "suggestions", "memos", "history"):
        for row in data.get(name, []):
            for key in ("source", "document"):
                if row.get(key) is not None:
                    row[key] = guid_key(row[key])
    return data


# -- what the import takes from it ---------------------------------------------------------

def apply_codes(nodes: list[dict[str, Any]], data: dict[str, Any], qdpx: Path,
                warnings: list[str]) -> bool:
    """Give the code nodes read from project.qde (each with its 'guid') coder's own fields
    back: the id, the exact description, include/exclude, items, examples, speakers,
    leads_to (the Description other tools see is a readable summary of them). False, with a
    warning and the nodes as they were, when those fields do not make a codebook."""
    before = copy.deepcopy(nodes)
    _apply_codes(nodes, data)
    try:
        from_dict({"name": "check", "codes": _without_guids(copy.deepcopy(nodes))}, qdpx)
    except CodebookError as e:
        nodes[:] = before
        warnings.append(f"{MEMBER} is damaged (its codes do not make a codebook: {e.detail}); "
                        "imported as other tools see the project (positive codings only: no "
                        "rejections, no-code decisions, suggestions or decision history)")
        return False
    return True


def _without_guids(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for n in nodes:
        n.pop("guid", None)
        _without_guids(n.get("codes", []))
    return nodes


def _apply_codes(nodes: list[dict[str, Any]], data: dict[str, Any]) -> None:
    codes = data.get("codes", {})
    for node in nodes:
        extra = codes.get(guid_key(node["guid"]))
        if extra is not None:
            node["id"] = extra["id"]
            for key in ("description", "include", "exclude", "items", "examples", "speakers",
                        "leads_to"):
                node.pop(key, None)
                if extra[key]:
                    node[key] = extra[key]
        _apply_codes(node.get("codes", []), data)


def source_info(data: dict[str, Any], source_guid: str) -> dict[str, Any] | None:
    """A source's format, unit, hash and speaker map, as the import reads a source's info."""
    entry = data.get("sources", {}).get(guid_key(source_guid))
    if entry is None:
        return None
    return {k: entry[k] for k in ("format", "unit", "sha256", "speakers")}


def saved_segments(data: dict[str, Any]) -> dict[str, Any]:
    """source GUID -> {text_sha256, segments}: the exact segments of each document."""
    return {g: {"text_sha256": e["text_sha256"], "segments": e["segments"]}
            for g, e in data.get("sources", {}).items()}


def _has_guid_table(db) -> bool:
    return db.one("SELECT 1 FROM sqlite_master WHERE type='table' AND name='exchange_guids'") \
        is not None


class _Document:
    """One imported document as the restore places things on it: by segment position when
    its segments are the exported ones, else by the characters they cover."""

    def __init__(self, db, doc_id: int, project_text: str, saved: list[list]):
        self.id = doc_id
        stored = db.one("SELECT text FROM documents WHERE id=?", (doc_id,))["text"]
        self.segs = db.query("SELECT id, position, start_char, end_char FROM segments "
                             "WHERE document_id=? ORDER BY start_char", (doc_id,))
        self.by_position = {s["position"]: s["id"] for s in self.segs}
        self.saved = {r[0]: (r[2], r[3]) for r in saved}
        self.exact = sorted((s["position"], s["start_char"], s["end_char"]) for s in self.segs) \
            == sorted((r[0], r[2], r[3]) for r in saved)
        self.where = _offset_map(project_text, stored)

    def place(self, position: int, start: int | None, end: int | None
              ) -> list[tuple[int, int | None, int | None]]:
        """(segment id, start_char, end_char) rows for a decision exported on segment
        ``position`` with span [start, end) (None: the whole segment)."""
        if self.exact and position in self.by_position:
            return [(self.by_position[position], start, end)]
        if start is None:
            if position not in self.saved:
                return []
            start, end = self.saved[position]
            whole = True
        else:
            whole = False
        a, b = self.where(start), self.where(end)
        hit = [s for s in self.segs if a < s["end_char"] and s["start_char"] < b]
        if not hit:
            return []
        if whole:   # segmented afresh: the decision goes to every segment it overlaps
            return [(s["id"], None, None) for s in hit]
        return [(hit[0]["id"], a, b)]


def restore(db, data: dict[str, Any], documents: dict[str, tuple[int, str]], code_ids: set[str],
            version: int | None, coder, warnings: list[str]) -> dict[str, int]:
    """Write the private file's decisions (rejections and "no code" included), suggestions,
    memos and history into the new study. ``documents``: source GUID -> (document id, the
    source's text in the project); ``coder(name)`` -> coder id. Returns what it wrote, by
    kind, for the import report."""
    sources = data.get("sources", {})
    documents = {guid_key(g): v for g, v in documents.items()}
    docs = {g: _Document(db, doc_id, text, sources[g]["segments"])
            for g, (doc_id, text) in documents.items() if g in sources}
    guids = _has_guid_table(db)
    placed: dict[tuple, int] = {}
    done = {"decisions": 0, "not_seen_by_other_tools": 0, "suggestions": 0, "memos": 0,
            "history": 0}
    mark = db.one("SELECT COALESCE(MAX(id), 0) FROM coding_history")[0]
    for d in data.get("decisions", []):
        doc = docs.get(d["source"])
        if doc is None:
            continue   # its source was skipped (the warning said why)
        if d["code"] is not None and d["code"] not in code_ids:
            warnings.append(f"{MEMBER}: a decision by {d['coder']} refers to code "
                            f"'{d['code']}' that is not in the codebook; skipped")
            continue
        rows = doc.place(d["segment"], d["start"], d["end"])
        if not rows:
            warnings.append(f"{MEMBER}: a decision by {d['coder']} on segment {d['segment']} "
                            "lies outside every segment; skipped")
            continue
        cid = coder(d["coder"])
        for seg, start, end in rows:
            cur = db.execute(
                "INSERT OR IGNORE INTO codings (segment_id, coder_id, code_id, decision, "
                "codebook_version, model_version, suggestion_score, memo, reason, seconds, "
                "source, created_at, start_char, end_char) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (seg, cid, d["code"], d["decision"], version, d["model_version"],
                 d["suggestion_score"], d["memo"], d["reason"], d["seconds"], d["origin"],
                 d["created_at"], start, end))
            if not cur.rowcount:
                continue
            done["decisions"] += 1
            done["not_seen_by_other_tools"] += d["selection"] is None
            placed[(seg, cid, d["code"], start, end)] = cur.lastrowid
            if guids:
                for kind in ("selection", "coding", "note"):
                    if d[kind]:
                        db.execute("INSERT OR REPLACE INTO exchange_guids (kind, ref, guid) "
                                   "VALUES (?,?,?)", ("coding_note" if kind == "note" else kind,
                                                      str(cur.lastrowid), d[kind]))
    for s in data.get("suggestions", []):
        doc = docs.get(s["source"])
        if doc is None or s["code"] not in code_ids or version is None:
            continue
        for seg, _, _ in doc.place(s["segment"], None, None):
            done["suggestions"] += 1
            db.execute(
                "INSERT OR IGNORE INTO suggestions (segment_id, code_id, score, rank, source, "
                "threshold, model_version, codebook_version, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (seg, s["code"], float(s["score"]), s["rank"], s["origin"], s["threshold"],
                 s["model_version"], version, s["created_at"]))
    for m in data.get("memos", []):
        doc = docs.get(m["source"]) if m["source"] else None
        if m["source"] and doc is None:
            continue
        seg_id = None
        if doc is not None and m["segment"] is not None:
            rows = doc.place(m["segment"], None, None)
            seg_id = rows[0][0] if rows else None
        done["memos"] += 1
        cur = db.execute(
            "INSERT INTO memos (segment_id, document_id, coder_id, text, created_at) "
            "VALUES (?,?,?,?,?)",
            (seg_id, doc.id if doc is not None and (m["document"] or seg_id is None) else None,
             coder(m["coder"]) if m["coder"] else None, m["text"], m["created_at"] or now()))
        if guids:
            db.execute("INSERT OR REPLACE INTO exchange_guids (kind, ref, guid) VALUES "
                       "('note', ?, ?)", (str(cur.lastrowid), m["note"]))
    if data.get("history"):   # the exported trail replaces the one these inserts wrote
        db.execute("DELETE FROM coding_history WHERE id > ?", (mark,))
        done["history"] = _restore_history(db, data["history"], docs, placed, coder)
    for g, doc in docs.items():
        metadata = sources[g]["metadata"]
        if metadata:
            row = db.one("SELECT metadata FROM documents WHERE id=?", (doc.id,))
            try:
                now_meta = json.loads(row["metadata"] or "{}")
            except ValueError:
                now_meta = {}
            db.execute("UPDATE documents SET metadata=? WHERE id=?",
                       (json.dumps({**now_meta, **metadata}, ensure_ascii=False), doc.id))
    return done


def _restore_history(db, history: list[dict[str, Any]], docs: dict[str, _Document],
                     placed: dict[tuple, int], coder) -> int:
    """The exported decision history, each row with its time as recorded. coding_id: the new
    id of the coding the row is about, or 0 when that coding no longer existed at export."""
    rows = []
    for h in history:
        doc = docs.get(h["source"])
        if doc is None:
            continue
        spots = doc.place(h["segment"], h["start"], h["end"])
        if not spots:
            continue
        seg, start, end = spots[0]
        cid = coder(h["coder"])
        rows.append((placed.get((seg, cid, h["code"], start, end), 0), h["action"], seg, cid,
                     h["code"], h["decision"], h["memo"], h["reason"], h["origin"],
                     h["recorded_at"], start, end))
    db.conn.executemany(
        "INSERT INTO coding_history (coding_id, action, segment_id, coder_id, code_id, decision, "
        "memo, reason, source, recorded_at, start_char, end_char) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        rows)
    return len(rows)
