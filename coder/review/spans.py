"""Code any span: a coder highlights characters of a document -- three words inside a turn, or a
passage across two turns -- and codes them, as QDA tools let them.

A span coding is a ``codings`` row with offsets (migration 0008): ``[start_char, end_char)``
into its document's stored text, anchored at the first segment it overlaps. A span that is
exactly one segment is a decision on that segment (`coder.review.decisions.decide`), so the two
never disagree about the same characters. Spans carry only positive decisions (``added``, or
``confirmed`` when a person accepts a suggestion or a search hit for part of a segment);
rejections and "no code" stay decisions on segments.

Each call is one transaction and one ``review_actions`` row, so `decisions.undo` takes back a
span exactly as it takes back a segment decision. Coding a span removes the coder's "no code"
on the segments it overlaps (a code and "no code applies" exclude each other, as on segments).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from coder.errors import CoderError, UnknownReference
from coder.review.context import Seen, context_id
from coder.review.decisions import _row_dict, decide
from coder.store.db import ONE_DECISION, WHOLE, now

if TYPE_CHECKING:
    from coder.store import Store

SPAN_DECISIONS = ("added", "confirmed")


@dataclass(frozen=True)
class Located:
    """Where a span lies: its document, its anchor segment and every segment it overlaps."""
    document_id: int
    document: str
    start: int
    end: int
    anchor: int                 # the first segment it overlaps
    segments: tuple[int, ...]   # every segment it overlaps, in reading order
    whole: int | None           # the segment it is exactly, if any


def document_id(study: Store, document: str | int) -> tuple[int, str, str]:
    """(id, name, text) of a document given by name or id."""
    # an int is an id; a string is a name (a transcript may be called "12"), else an id
    row = None
    if not isinstance(document, int):
        row = study.db.one("SELECT id, name, text FROM documents WHERE name=?", (str(document),))
    if row is None and (isinstance(document, int) or str(document).isdigit()):
        row = study.db.one("SELECT id, name, text FROM documents WHERE id=?", (int(document),))
    if row is None:
        names = [r[0] for r in study.db.query("SELECT name FROM documents ORDER BY name LIMIT 8")]
        raise UnknownReference(f"unknown document '{document}'",
                               hint="documents: " + (", ".join(names) or "none imported yet"))
    return row["id"], row["name"], row["text"]


def locate(study: Store, document: str | int, start: int, end: int) -> Located:
    """Check a span against its document and find the segments it overlaps."""
    doc_id, name, text = document_id(study, document)
    try:
        start, end = int(start), int(end)
    except (TypeError, ValueError):
        raise CoderError(f"a span needs whole-number offsets, not {start!r}..{end!r}") from None
    if not 0 <= start < end <= len(text):
        raise CoderError(f"span {start}..{end} is not inside document '{name}' "
                         f"(0..{len(text)} characters)",
                         hint="offsets count characters (code points) of the stored text, "
                              "end exclusive")
    if not text[start:end].strip():
        raise CoderError(f"span {start}..{end} of '{name}' holds only white space")
    rows = study.db.query(
        "SELECT id, start_char, end_char FROM segments WHERE document_id=? AND start_char < ? "
        "AND end_char > ? ORDER BY start_char", (doc_id, end, start))
    if not rows:
        raise CoderError(f"span {start}..{end} of '{name}' lies outside every segment "
                         "(between them: a speaker label or blank lines)",
                         hint="select text of the transcript itself")
    whole = next((r["id"] for r in rows if r["start_char"] == start and r["end_char"] == end),
                 None)
    return Located(doc_id, name, start, end, rows[0]["id"], tuple(r["id"] for r in rows), whole)


def _action(conn, cid: int, segment_id: int, changes: list[dict[str, Any]], stamp: str) -> None:
    conn.execute("INSERT INTO review_actions (coder_id, segment_id, changes, created_at)"
                 " VALUES (?,?,?,?)", (cid, segment_id, json.dumps(changes), stamp))


def code_span(study: Store, coder: str, document: str | int, start: int, end: int, code: str, *,
              decision: str = "added", memo: str | None = None, source: str = "web",
              seconds: float | None = None, seen: Seen | None = None,
              model_version: int | None = None, suggestion_score: float | None = None) -> int:
    """Code the characters ``[start, end)`` of a document; returns the codings row id.

    In one transaction: the coding, the removal of this coder's "no code" on the segments the
    span overlaps, and the undo record. Coding the same span with the same code again updates it.
    """
    if decision not in SPAN_DECISIONS:
        raise CoderError(f"a span takes decision 'added' or 'confirmed', not '{decision}'",
                         hint="reject or mark 'no code' on the segment instead")
    where = locate(study, document, start, end)
    if where.whole is not None:
        row_id = decide(study, coder, where.whole, code, decision, memo=memo, seconds=seconds,
                        source=source, seen=seen, model_version=model_version,
                        suggestion_score=suggestion_score)
        if row_id is not None:
            return row_id
        found = study.db.one(f"SELECT id FROM codings WHERE segment_id=? AND coder_id=? AND "
                             f"code_id=? AND {WHOLE}", (where.whole, study.coder_id(coder),
                                                        study.codebook().resolve(code).id))
        return found["id"]
    book = study.codebook()
    code_id = book.codable(code).id
    cid = study.coder_id(coder)
    with study.db.transaction() as conn:
        changes: list[dict[str, Any]] = []
        for seg in where.segments:
            gone = study.db.one(f"SELECT * FROM codings WHERE segment_id=? AND coder_id=? AND "
                                f"code_id IS NULL AND {WHOLE}", (seg, cid))
            if gone is not None:
                changes.append({"code_id": None, "segment_id": seg, "before": _row_dict(gone)})
                conn.execute("DELETE FROM codings WHERE id=?", (gone["id"],))
        before = study.db.one("SELECT * FROM codings WHERE segment_id=? AND coder_id=? AND "
                              "code_id=? AND start_char=? AND end_char=?",
                              (where.anchor, cid, code_id, where.start, where.end))
        ctx = context_id(study, cid, where.anchor, seen) if seen is not None else None
        stamp = now()
        conn.execute(
            "INSERT INTO codings (segment_id, coder_id, code_id, decision, codebook_version,"
            " model_version, suggestion_score, memo, seconds, source, created_at, context_id,"
            " start_char, end_char) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            f" ON CONFLICT {ONE_DECISION} DO UPDATE SET decision=excluded.decision,"
            " memo=COALESCE(excluded.memo, codings.memo), seconds=excluded.seconds,"
            " source=excluded.source, created_at=excluded.created_at,"
            " context_id=excluded.context_id",
            (where.anchor, cid, code_id, decision, book.version, model_version,
             suggestion_score, memo, seconds, source, stamp, ctx, where.start, where.end))
        row = study.db.one("SELECT id FROM codings WHERE segment_id=? AND coder_id=? AND "
                           "code_id=? AND start_char=? AND end_char=?",
                           (where.anchor, cid, code_id, where.start, where.end))
        changes.append({"code_id": code_id, "segment_id": where.anchor,
                        "span": [where.start, where.end],
                        "before": _row_dict(before) if before is not None else None})
        _action(conn, cid, where.anchor, changes, stamp)
        return row["id"]


def _own_coding(study: Store, coder: str, coding_id: int):
    cid = study.coder_id(coder, create=False)
    row = study.db.one("SELECT * FROM codings WHERE id=?", (int(coding_id),))
    if row is None:
        raise UnknownReference(f"unknown coding {coding_id}", hint="it may have been removed")
    if row["coder_id"] != cid:
        raise CoderError(f"coding {coding_id} is another coder's; only they can change it")
    return cid, row


def remove_coding(study: Store, coder: str, coding_id: int) -> None:
    """Remove one of the coder's codings (a span, or a code on a whole segment); undo puts it
    back."""
    with study.db.transaction() as conn:
        cid, row = _own_coding(study, coder, coding_id)
        conn.execute("DELETE FROM codings WHERE id=?", (row["id"],))
        change = {"code_id": row["code_id"], "segment_id": row["segment_id"],
                  "before": _row_dict(row)}
        if row["start_char"] is not None:
            change["span"] = [row["start_char"], row["end_char"]]
        _action(conn, cid, row["segment_id"], [change], now())


def recode(study: Store, coder: str, coding_id: int, code: str, *, memo: str | None = None) -> int:
    """Give one of the coder's codings another code (same characters); returns the new row id.
    Recoding onto a code the span already has merges the two."""
    book = study.codebook()
    code_id = book.codable(code).id
    with study.db.transaction() as conn:
        cid, row = _own_coding(study, coder, coding_id)
        if row["code_id"] is None:
            raise CoderError(f"coding {coding_id} is a 'no code' decision; code the segment "
                             "instead")
        span = ([row["start_char"], row["end_char"]] if row["start_char"] is not None else None)
        target = study.db.one(
            "SELECT * FROM codings WHERE segment_id=? AND coder_id=? AND code_id=? AND "
            "start_char IS ? AND end_char IS ?",
            (row["segment_id"], cid, code_id, row["start_char"], row["end_char"]))
        stamp = now()
        changes = [{"code_id": row["code_id"], "segment_id": row["segment_id"], "span": span,
                    "before": _row_dict(row)}]
        if code_id == row["code_id"]:
            conn.execute("UPDATE codings SET memo=COALESCE(?, memo) WHERE id=?",
                         (memo, row["id"]))
            _action(conn, cid, row["segment_id"], changes, stamp)
            return row["id"]
        changes.append({"code_id": code_id, "segment_id": row["segment_id"], "span": span,
                        "before": _row_dict(target) if target is not None else None})
        conn.execute("DELETE FROM codings WHERE id=?", (row["id"],))
        if target is not None:
            conn.execute("DELETE FROM codings WHERE id=?", (target["id"],))
        values = _row_dict(row)
        values.update(code_id=code_id, codebook_version=book.version, created_at=stamp,
                      memo=memo if memo is not None else values["memo"], source="recode")
        cols = list(values)
        new_id = conn.execute(f"INSERT INTO codings ({','.join(cols)}) VALUES "
                              f"({','.join('?' * len(cols))})",
                              tuple(values[c] for c in cols)).lastrowid
        _action(conn, cid, row["segment_id"], changes, stamp)
        return new_id


def set_memo(study: Store, coder: str, coding_id: int, text: str | None) -> None:
    """Write (or clear, with None or '') the memo of one of the coder's codings."""
    with study.db.transaction() as conn:
        cid, row = _own_coding(study, coder, coding_id)
        text = (text or "").strip() or None
        conn.execute("UPDATE codings SET memo=? WHERE id=?", (text, row["id"]))
        change = {"code_id": row["code_id"], "segment_id": row["segment_id"],
                  "before": _row_dict(row)}
        if row["start_char"] is not None:
            change["span"] = [row["start_char"], row["end_char"]]
        _action(conn, cid, row["segment_id"], [change], now())


def document_codings(study: Store, document: str | int, *, coders: list[str] | None = None,
                     decisions: tuple[str, ...] = ("confirmed", "added")) -> pd.DataFrame:
    """Every coding on a document with its span and exact text, whole segments included: what
    the transcript view draws as highlights and stripes. Columns: coding_id, segment_id, coder,
    code_id, code_path, decision, memo, start_char, end_char, whole, text."""
    doc_id, _, text = document_id(study, document)
    marks = ",".join("?" * len(decisions))
    sql = (f"SELECT x.coding_id, x.segment_id, c.name AS coder, x.code_id, cd.path AS code_path,"
           f" x.decision, k.memo, x.start_char, x.end_char, x.whole FROM coding_spans x "
           f"JOIN codings k ON k.id = x.coding_id JOIN coders c ON c.id = x.coder_id "
           f"LEFT JOIN codes cd ON cd.id = x.code_id AND cd.codebook_version = "
           f"(SELECT MAX(version) FROM codebook_versions) "
           f"WHERE x.document_id=? AND x.decision IN ({marks})")
    params: list[Any] = [doc_id, *decisions]
    if coders:
        names = [study.resolve_coder(n).name for n in coders]
        sql += " AND c.name IN (%s)" % ",".join("?" * len(names))
        params += names
    df = pd.read_sql_query(sql + " ORDER BY x.start_char, x.end_char DESC, c.name", study.db.conn,
                           params=params)
    df["whole"] = df["whole"].astype(bool)
    df["text"] = [text[s:e] for s, e in zip(df["start_char"], df["end_char"])]
    return df
