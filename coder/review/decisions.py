"""Review: people confirm, reject or add codes, one decision at a time, each on disk at once.

This module is the review logic shared by the terminal app (`coder.tui`), the spreadsheet round
trip and the web page; it never prints or draws. The rules it keeps:

* One current decision per (segment, coder, code); a later one replaces the earlier one, and the
  triggers on ``codings`` keep the trail in ``coding_history``.
* Every :func:`decide` is its own transaction (``BEGIN IMMEDIATE``), so a killed process loses
  nothing already decided and two coders on one file never overwrite each other.
* ``no_code`` ("no code applies") and positive codes exclude each other for one coder on one
  segment: deciding ``no_code`` removes that coder's confirmed/added/auto codes on the segment,
  and a positive decision removes their ``no_code``. Rejections stay: they are what the model
  learns "not this code" from.
* :func:`undo` reverts the coder's last decision exactly (the rows it touched, as they were),
  using ``review_actions``; repeated undos walk further back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from coder.errors import CoderError, NothingToDo, UnknownReference
from coder.review.context import Seen, context_id
from coder.store import batches, check_coder_name
from coder.store.batches import Batch
from coder.store.db import ONE_DECISION, WHOLE, now

if TYPE_CHECKING:
    from coder.store import Store
    from coder.store.codebook import Codebook



DECISIONS = ("confirmed", "rejected", "added", "no_code", "auto")
POSITIVE = ("confirmed", "added", "auto")  # decisions that put a code on a segment (auto: bulk)
_ROW_COLUMNS = ("segment_id", "coder_id", "code_id", "decision", "codebook_version",
                "model_version", "suggestion_score", "memo", "reason", "seconds", "source",
                "created_at", "context_id", "start_char", "end_char")



@dataclass
class Undone:
    segment_id: int
    restored: int               # codings rows put back as they were (or removed)
    description: str


@dataclass
class BulkReport:
    coder: str
    min_precision: float
    min_reviewed: int
    codes: pd.DataFrame         # one row per suggested code: counts, precision, qualified, reason
    accepted: int               # codings rows written as 'auto'
    batch: Batch | None = None  # the numbered batch they were written in

    @property
    def qualified(self) -> list[str]:
        return self.codes.loc[self.codes["qualified"], "path"].tolist()


# -- deciding ----------------------------------------------------------------------------------
def _row_dict(row) -> dict[str, Any]:
    return {k: row[k] for k in _ROW_COLUMNS}


def _restore_row(conn, prev: dict[str, Any]) -> None:
    """Insert a codings row as it was (undo); a row recorded before a column existed gets that
    column's default."""
    cols = [k for k in _ROW_COLUMNS if k in prev]
    conn.execute(f"INSERT INTO codings ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                 tuple(prev[k] for k in cols))


def _rows_of(study: Store, segment_id: int, coder_id: int) -> dict[str, dict[str, Any]]:
    """The coder's current codings rows on a segment, keyed by code id ('' for no_code)."""
    return {r["code_id"] or "": _row_dict(r) for r in study.db.query(
        f"SELECT * FROM codings WHERE segment_id=? AND coder_id=? AND {WHOLE}",
        (segment_id, coder_id))}


def _resolve_code(book: Codebook, ref: str) -> str:
    return book.codable(ref).id


def existing_coder(study: Store, coder: str) -> int | None:
    """The coder's id (names match case-insensitively), or None for a name not seen yet
    (reading never creates a coder)."""
    return study.resolve_coder(check_coder_name(coder)).id


def _check_segment(study: Store, segment_id: int) -> None:
    if study.db.one("SELECT 1 FROM segments WHERE id=?", (int(segment_id),)) is None:
        raise UnknownReference(f"unknown segment {segment_id}")


def decide(study: Store, coder: str, segment_id: int, code_id: str | None, decision: str, *,
           memo: str | None = None, seconds: float | None = None, source: str = "review",
           model_version: int | None = None, suggestion_score: float | None = None,
           seen: Seen | None = None, _record: bool = True) -> int | None:
    """Store one decision in its own transaction; returns the codings row id (None if unchanged).

    ``code_id`` may be an id, a path or a unique name; it must be ``None`` for ``no_code``.
    The suggestion's score and model version are filled in from ``suggestions`` when not given.
    ``seen``: what the coder could see (`coder.review.context`); None records "not known".
    """
    if decision not in DECISIONS:
        raise CoderError(f"unknown decision '{decision}'", hint="one of: " + ", ".join(DECISIONS))
    book = study.codebook()
    if decision == "no_code":
        if code_id is not None:
            raise CoderError("decision 'no_code' takes no code")
    else:
        if code_id is None or not str(code_id).strip():
            raise CoderError(f"decision '{decision}' needs a code")
        code_id = _resolve_code(book, code_id)
    cid = study.coder_id(coder)
    segment_id = int(segment_id)
    with study.db.transaction() as conn:
        _check_segment(study, segment_id)
        if code_id is not None and (model_version is None or suggestion_score is None):
            sug = study.db.one("SELECT score, model_version FROM suggestions "
                               "WHERE segment_id=? AND code_id=?", (segment_id, code_id))
            if sug is not None:
                model_version = sug["model_version"] if model_version is None else model_version
                suggestion_score = sug["score"] if suggestion_score is None else suggestion_score
        before = _rows_of(study, segment_id, cid)
        key = code_id or ""
        old = before.get(key)
        ctx = context_id(study, cid, segment_id, seen, create=False) if seen else None
        if (old is not None and old["decision"] == decision
                and (memo is None or old["memo"] == memo)
                and (seen is None or (ctx is not None and old["context_id"] == ctx))):
            clears = [k for k, r in before.items()
                      if (decision == "no_code" and r["decision"] in POSITIVE)
                      or (decision in POSITIVE and k == "")]
            if not clears:
                return None
        if decision == "no_code":
            conn.execute("DELETE FROM codings WHERE segment_id=? AND coder_id=? AND code_id IS NOT "
                         f"NULL AND decision IN ('confirmed','added','auto') AND {WHOLE}",
                         (segment_id, cid))
        elif decision in POSITIVE:
            conn.execute("DELETE FROM codings WHERE segment_id=? AND coder_id=? AND code_id IS NULL"
                         f" AND {WHOLE}", (segment_id, cid))
        stamp = now()
        if seen is not None and ctx is None:
            ctx = context_id(study, cid, segment_id, seen)
        conn.execute(
            "INSERT INTO codings (segment_id, coder_id, code_id, decision, codebook_version,"
            " model_version, suggestion_score, memo, seconds, source, created_at, context_id)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
            f" ON CONFLICT {ONE_DECISION} DO UPDATE SET"
            " decision=excluded.decision, codebook_version=excluded.codebook_version,"
            " model_version=excluded.model_version, suggestion_score=excluded.suggestion_score,"
            " memo=COALESCE(excluded.memo, codings.memo), seconds=excluded.seconds,"
            " source=excluded.source, created_at=excluded.created_at,"
            " context_id=excluded.context_id",
            (segment_id, cid, code_id, decision, book.version, model_version, suggestion_score,
             memo, seconds, source, stamp, ctx))
        row = study.db.one("SELECT id FROM codings WHERE segment_id=? AND coder_id=? AND "
                           f"COALESCE(code_id, '')=? AND {WHOLE}", (segment_id, cid, key))
        if _record:
            after = _rows_of(study, segment_id, cid)
            changes = [{"code_id": k or None, "before": before.get(k)}
                       for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
            conn.execute("INSERT INTO review_actions (coder_id, segment_id, changes, created_at)"
                         " VALUES (?,?,?,?)", (cid, segment_id, json.dumps(changes), stamp))
        return row["id"]


def undo(study: Store, coder: str) -> Undone:
    """Revert the coder's last decision not yet undone: the rows it touched go back as they were."""
    cid = study.coder_id(coder, create=False)
    with study.db.transaction() as conn:
        action = study.db.one("SELECT * FROM review_actions WHERE coder_id=? AND undone_at IS NULL"
                              " ORDER BY id DESC LIMIT 1", (cid,))
        if action is None:
            raise NothingToDo(f"coder '{coder}' has no decision to undo")
        seg = action["segment_id"]
        changes = json.loads(action["changes"])
        for change in changes:
            key, prev = change["code_id"] or "", change["before"]
            start, end = change.get("span") or (None, None)   # a span coding's, or the segment
            conn.execute("DELETE FROM codings WHERE segment_id=? AND coder_id=? AND "
                         "COALESCE(code_id, '')=? AND start_char IS ? AND end_char IS ?",
                         (change.get("segment_id", seg), cid, key, start, end))
            if prev is not None:
                _restore_row(conn, prev)
        conn.execute("UPDATE review_actions SET undone_at=? WHERE id=?", (now(), action["id"]))
    where = study.db.one("SELECT document, position FROM segment_view WHERE segment_id=?", (seg,))
    label = f"{where['document']} #{where['position']}" if where else f"segment {seg}"
    return Undone(segment_id=seg, restored=len(changes), description=f"undid decision on {label}")


def memo(study: Store, coder: str, segment_id: int, text: str) -> int:
    """Attach a memo to a segment (the coder's note; decisions carry their own ``memo``)."""
    if not text or not text.strip():
        raise CoderError("a memo cannot be empty")
    cid = study.coder_id(coder)
    with study.db.transaction() as conn:
        _check_segment(study, segment_id)
        cur = conn.execute("INSERT INTO memos (segment_id, document_id, coder_id, text, created_at)"
                           " SELECT id, document_id, ?, ?, ? FROM segments WHERE id=?",
                           (cid, text.strip(), now(), int(segment_id)))
        return cur.lastrowid


def memos(study: Store, coder: str | None = None) -> pd.DataFrame:
    sql = ("SELECT m.id, m.segment_id, v.document, v.position, c.name AS coder, m.text, "
           "m.created_at FROM memos m LEFT JOIN coders c ON c.id = m.coder_id "
           "LEFT JOIN segment_view v ON v.segment_id = m.segment_id")
    params: tuple = ()
    if coder:
        sql += " WHERE c.name = ?"
        params = (study.resolve_coder(coder).name,)
    return pd.read_sql_query(sql + " ORDER BY m.id", study.db.conn, params=params)


def codings_list(study: Store, coder: str | None = None, history: bool = False) -> pd.DataFrame:
    """Current decisions (or the audit trail), for ``coder codings``."""
    from coder.sources.codings import codings_frame

    if coder is not None:
        study.coder_id(coder, create=False)
        coder = study.resolve_coder(coder).name
    frame = codings_frame(study, coder=coder, history=history)
    if history:
        return frame
    # 'memo' is the coding's own memo; a memo the coder wrote on the segment itself (key m in
    # the review) is shown beside it, so `coder codings` hands back every memo next to its codes
    notes: dict[tuple, list[str]] = {}
    for r in study.db.query("SELECT m.segment_id, c.name, m.text FROM memos m JOIN coders c "
                            "ON c.id = m.coder_id WHERE m.segment_id IS NOT NULL ORDER BY m.id"):
        notes.setdefault((r["segment_id"], r["name"]), []).append(r["text"])
    frame["segment_memos"] = [" | ".join(notes.get((s, c), [])) for s, c in
                              zip(frame["segment_id"], frame["coder"])]
    return frame


# -- bulk acceptance ---------------------------------------------------------------------------
def bulk_accept(study: Store, coder: str, *, min_precision: float = 0.95, min_reviewed: int = 30,
                dry_run: bool = False) -> BulkReport:
    """Accept the remaining suggestions of codes this coder has found precise enough.

    A code's precision is measured on this coder's own decisions on segments where the code was
    suggested: confirmed (or added) counts as right; rejected, or 'no_code' on the segment, as
    wrong. Only codes with at least ``min_reviewed`` such decisions qualify (review them with
    ``--order random`` for an unbiased sample). Accepted rows are 'auto' with source 'bulk', are
    left out of agreement and training unless a person confirms them, and :func:`undo_bulk`
    removes them in one go. Only suggestions at or above the code's threshold are accepted, on
    segments where the coder has no decision on that code and no 'no_code'.
    """
    if not 0.0 < min_precision <= 1.0:
        raise CoderError("--min-precision must be in (0, 1]")
    if min_reviewed < 1:
        raise CoderError("--min-reviewed must be at least 1")
    cid = study.coder_id(coder, create=False)
    book = study.codebook()
    sugg = study.db.query(
        "SELECT g.segment_id, g.code_id, g.score, g.threshold, g.model_version FROM suggestions g "
        "JOIN segment_view v ON v.segment_id = g.segment_id WHERE v.role = 'participant'")
    mine: dict[int, dict[str | None, str]] = {}
    for r in study.db.query("SELECT segment_id, code_id, decision FROM codings WHERE coder_id=?"
                            f" AND {WHOLE}", (cid,)):
        mine.setdefault(r["segment_id"], {})[r["code_id"]] = r["decision"]
    stats: dict[str, dict[str, Any]] = {}
    for r in sugg:
        code = r["code_id"]
        if code not in book._by_id:
            continue
        st = stats.setdefault(code, {"suggested": 0, "confirmed": 0, "rejected": 0,
                                     "pending": []})
        st["suggested"] += 1
        got = mine.get(r["segment_id"], {})
        dec = got.get(code)
        if dec in ("confirmed", "added"):
            st["confirmed"] += 1
        elif dec == "rejected" or (dec is None and None in got):
            st["rejected"] += 1
        elif dec is None and None not in got:
            thr = r["threshold"] if r["threshold"] is not None else 0.0
            if r["score"] >= thr:
                st["pending"].append(r)
    records = []
    for code_id, st in stats.items():
        reviewed = st["confirmed"] + st["rejected"]
        precision = st["confirmed"] / reviewed if reviewed else None
        if reviewed < min_reviewed:
            ok, why = False, f"only {reviewed} reviewed suggestion(s); needs {min_reviewed}"
        elif precision < min_precision:
            ok, why = False, f"precision {precision:.2f} below {min_precision:.2f}"
        else:
            ok, why = True, f"precision {precision:.2f} on {reviewed} reviewed"
        records.append({"code_id": code_id, "path": book.get(code_id).path,
                        "position": book.get(code_id).position, "suggested": st["suggested"],
                        "reviewed": reviewed, "confirmed": st["confirmed"],
                        "rejected": st["rejected"], "precision": precision, "qualified": ok,
                        "reason": why, "accepted": len(st["pending"]) if ok else 0})
    frame = pd.DataFrame(records, columns=["code_id", "path", "position", "suggested", "reviewed",
                                           "confirmed", "rejected", "precision", "qualified",
                                           "reason", "accepted"])
    frame = frame.sort_values("position").drop(columns="position").reset_index(drop=True)
    accepted = 0
    if not dry_run:
        stamp = now()
        todo = [(r["segment_id"], cid, r["code_id"], "auto", book.version, r["model_version"],
                 r["score"], "bulk", stamp)
                for code_id, st in stats.items() if code_id in set(frame.loc[frame["qualified"],
                                                                             "code_id"])
                for r in st["pending"]]
        name = study.resolve_coder(coder).name
        with batches.record(study, "bulk", coders=[name]) as batch:
            cur = study.db.conn.executemany(
                "INSERT INTO codings (segment_id, coder_id, code_id, decision, codebook_version,"
                " model_version, suggestion_score, source, created_at) VALUES (?,?,?,?,?,?,?,?,?)"
                f" ON CONFLICT {ONE_DECISION} DO NOTHING", todo)
            accepted = max(cur.rowcount, 0)
    else:
        batch = None
        accepted = int(frame["accepted"].sum()) if len(frame) else 0
    return BulkReport(coder=coder, min_precision=min_precision, min_reviewed=min_reviewed,
                      codes=frame, accepted=accepted, batch=batch)


def undo_bulk(study: Store, coder: str) -> int:
    """Remove every bulk-accepted ('auto', source 'bulk') coding of this coder; returns how many."""
    cid = study.coder_id(coder, create=False)
    with study.db.transaction() as conn:
        cur = conn.execute("DELETE FROM codings WHERE coder_id=? AND decision='auto' AND "
                           "source='bulk'", (cid,))
        n = cur.rowcount
        if n:
            batches.settle_removed(study, "bulk")
    if not n:
        raise NothingToDo(f"coder '{coder}' has no bulk-accepted codings to undo")
    return n
