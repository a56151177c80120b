"""Batches: every import of decisions (a review sheet, a codings CSV, a REFI-QDA project) and
every bulk accept is numbered, and can be undone as a whole.

:func:`record` wraps the writes of one import in one transaction and watches the ``codings``
table while they run (temporary triggers on this connection only): every row inserted, changed
or removed is kept as it was before and as the batch left it, in ``batch_changes``, with the
memos it added and the ``coding_history`` and ``review_actions`` ids it wrote. The summary says
how many decisions were new and how many existing ones it replaced, by coder.
:func:`undo_batch` puts back exactly what was there before (the same rows, the same ids), in
one transaction, after checking that nothing the batch wrote was changed since; otherwise it
refuses and says what changed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coder.errors import CoderError, NothingToDo, UnknownReference
from coder.store.db import now

if TYPE_CHECKING:
    import sqlite3

    from coder.store import Store

KINDS = {"sheet": "review sheet", "codings": "codings CSV", "project": "REFI-QDA project",
         "bulk": "bulk accept", "merge": "merged copies"}
# what makes a decision a different decision (the rest is when, where from, how long)
MEANING = ("segment_id", "coder_id", "code_id", "decision", "memo", "reason", "start_char",
           "end_char")


@dataclass
class Batch:
    """One numbered batch, or (``number`` None) an import that changed nothing."""

    number: int | None
    kind: str
    source: str | None = None
    coders: list[str] = field(default_factory=list)
    created_at: str | None = None
    undone_at: str | None = None
    new: int = 0                                   # decisions where the coder had none
    replaced: dict[str, int] = field(default_factory=dict)  # coder -> existing ones replaced
    rewritten: int = 0                             # existing ones written again, same meaning
    memos: int = 0

    @property
    def label(self) -> str:
        return f"batch {self.number}" if self.number is not None else "no batch"

    def line(self) -> str:
        """One line of `coder batches`."""
        what = ", ".join(x for x in (KINDS.get(self.kind, self.kind) + (
            f" {self.source}" if self.source else ""), ", ".join(self.coders), self.created_at)
            if x)
        rest = self.summary().split(": ", 1)[1]
        return (f"{self.label} ({what}): {rest}"
                + (f" [undone {self.undone_at}]" if self.undone_at else ""))

    def summary(self) -> str:
        """E.g. "batch 3: 12 new decision(s); replaced 4 existing decision(s): alice 4"."""
        if self.number is None:
            return "nothing changed, so no batch was recorded"
        text = f"{self.label}: {self.new} new decision(s); "
        total = sum(self.replaced.values())
        if total:
            text += f"replaced {total} existing decision(s): " + ", ".join(
                f"{c} {n}" for c, n in sorted(self.replaced.items()))
        else:
            text += "replaced no existing decision"
        if self.rewritten:
            text += f"; {self.rewritten} written again unchanged"
        if self.memos:
            text += f"; {self.memos} memo(s)"
        return text


@dataclass
class BatchUndo:
    number: int
    kind: str
    source: str | None
    removed: int                # decisions the batch had added, now gone
    restored: int               # decisions it had replaced or removed, back as they were
    memos: int                  # memos it had added, removed

    def summary(self) -> str:
        what = KINDS.get(self.kind, self.kind) + (f" {self.source}" if self.source else "")
        return (f"Undid batch {self.number} ({what}): removed {self.removed} decision(s) it "
                f"added, put back {self.restored} it had replaced"
                + (f", removed {self.memos} memo(s)" if self.memos else "") + ".")


# -- recording ---------------------------------------------------------------------------------
def _columns(conn: sqlite3.Connection) -> list[str]:
    return [r[1] for r in conn.execute("PRAGMA main.table_info(codings)")]


def _start_watch(conn: sqlite3.Connection, cols: list[str]) -> None:
    """Temporary tables and triggers on this connection: the first state of every codings row
    touched, and the memos inserted, while the batch runs."""
    listed = ", ".join(cols)
    old = ", ".join(f"OLD.{c}" for c in cols)
    conn.execute("CREATE TEMP TABLE _batch_touched (coding_id INTEGER PRIMARY KEY)")
    conn.execute(f"CREATE TEMP TABLE _batch_before AS SELECT {listed} FROM main.codings WHERE 0")
    conn.execute("CREATE TEMP TABLE _batch_memos (memo_id INTEGER PRIMARY KEY)")
    for event in ("UPDATE", "DELETE"):
        conn.execute(
            f"CREATE TEMP TRIGGER _batch_{event.lower()} BEFORE {event} ON main.codings "
            "WHEN OLD.id NOT IN (SELECT coding_id FROM _batch_touched) BEGIN "
            "INSERT INTO _batch_touched VALUES (OLD.id); "
            f"INSERT INTO _batch_before ({listed}) VALUES ({old}); END")
    conn.execute(
        "CREATE TEMP TRIGGER _batch_insert AFTER INSERT ON main.codings "
        "WHEN NEW.id NOT IN (SELECT coding_id FROM _batch_touched) BEGIN "
        "INSERT INTO _batch_touched VALUES (NEW.id); END")
    conn.execute("CREATE TEMP TRIGGER _batch_memo AFTER INSERT ON main.memos BEGIN "
                 "INSERT OR IGNORE INTO _batch_memos VALUES (NEW.id); END")


def _stop_watch(conn: sqlite3.Connection) -> None:
    for name in ("_batch_update", "_batch_delete", "_batch_insert", "_batch_memo"):
        conn.execute(f"DROP TRIGGER IF EXISTS temp.{name}")
    for name in ("_batch_touched", "_batch_before", "_batch_memos"):
        conn.execute(f"DROP TABLE IF EXISTS temp.{name}")


def _max_id(conn: sqlite3.Connection, table: str) -> int:
    return conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]


@contextmanager
def record(store: Store, kind: str, *, source: str | None = None,
           coders: list[str] | tuple[str, ...] = ()) -> Iterator[Batch]:
    """Run the block's writes as one numbered batch, in one transaction (joining the caller's).

    The yielded :class:`Batch` is filled in when the block ends: its number (None when nothing
    changed: then no batch is recorded) and what it replaced. ``coders`` may be completed by
    the block (``batch.coders.append``) when it learns them from the file."""
    if kind not in KINDS:
        raise CoderError(f"unknown batch kind '{kind}'", hint="one of: " + ", ".join(KINDS))
    batch = Batch(number=None, kind=kind, source=source, coders=list(coders))
    with store.db.transaction() as conn:
        cols = _columns(conn)
        history0, actions0 = _max_id(conn, "coding_history"), _max_id(conn, "review_actions")
        _start_watch(conn, cols)
        try:
            yield batch
            before = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM _batch_before")}
            after = {r["id"]: dict(r) for r in conn.execute(
                "SELECT k.* FROM main.codings k JOIN _batch_touched t ON t.coding_id = k.id")}
            touched = [r[0] for r in conn.execute(
                "SELECT coding_id FROM _batch_touched ORDER BY coding_id")]
            memo_ids = [r[0] for r in conn.execute(
                "SELECT memo_id FROM _batch_memos ORDER BY memo_id")]
        finally:
            _stop_watch(conn)
        changes = [(i, before.get(i), after.get(i)) for i in touched
                   if before.get(i) != after.get(i)]
        if not changes and not memo_ids:
            return
        history1, actions1 = _max_id(conn, "coding_history"), _max_id(conn, "review_actions")
        stamp = now()
        cur = conn.execute(
            "INSERT INTO batches (kind, source, coders, memos, history_from, history_to,"
            " actions_from, actions_to, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (kind, source, json.dumps(batch.coders), json.dumps(memo_ids),
             history0 + 1 if history1 > history0 else None,
             history1 if history1 > history0 else None,
             actions0 + 1 if actions1 > actions0 else None,
             actions1 if actions1 > actions0 else None, stamp))
        number = cur.lastrowid
        conn.executemany(
            "INSERT INTO batch_changes (batch_id, coding_id, segment_id, coder_id, code_id,"
            " before, after) VALUES (?,?,?,?,?,?,?)",
            [(number, i, (a or b)["segment_id"], (a or b)["coder_id"], (a or b)["code_id"],
              json.dumps(b) if b is not None else None,
              json.dumps(a) if a is not None else None) for i, b, a in changes])
        done = _describe(store, conn.execute("SELECT * FROM batches WHERE id=?",
                                             (number,)).fetchone())
        batch.number, batch.created_at = number, stamp
        batch.new, batch.replaced, batch.rewritten = done.new, done.replaced, done.rewritten
        batch.memos = done.memos


def _meaning(row: dict[str, Any] | None) -> tuple | None:
    return None if row is None else tuple(row.get(k) for k in MEANING)


def _describe(store: Store, row) -> Batch:
    names = {r["id"]: r["name"] for r in store.db.query("SELECT id, name FROM coders")}
    new, rewritten, replaced = 0, 0, Counter()
    for ch in store.db.query("SELECT before, after FROM batch_changes WHERE batch_id=?",
                             (row["id"],)):
        b = json.loads(ch["before"]) if ch["before"] else None
        a = json.loads(ch["after"]) if ch["after"] else None
        if b is None:
            new += a is not None
        elif _meaning(b) == _meaning(a):
            rewritten += 1
        else:
            replaced[names.get(b["coder_id"], str(b["coder_id"]))] += 1
    return Batch(number=row["id"], kind=row["kind"], source=row["source"],
                 coders=json.loads(row["coders"]), created_at=row["created_at"],
                 undone_at=row["undone_at"], new=new, replaced=dict(replaced),
                 rewritten=rewritten, memos=len(json.loads(row["memos"])))


def batches(store: Store) -> list[Batch]:
    """Every batch of the study, oldest first."""
    return [_describe(store, r) for r in store.db.query("SELECT * FROM batches ORDER BY id")]


def settle_removed(store: Store, kind: str) -> list[int]:
    """Mark as undone the batches of ``kind`` whose every row was removed since by other means
    (``coder review accept --undo`` for bulk accepts); inside the caller's transaction."""
    done = []
    for row in store.db.query("SELECT id FROM batches WHERE kind=? AND undone_at IS NULL",
                              (kind,)):
        left = store.db.one(
            "SELECT COUNT(*) FROM batch_changes c JOIN codings k ON k.id = c.coding_id "
            "WHERE c.batch_id=? AND c.after IS NOT NULL", (row["id"],))[0]
        if not left:
            store.db.execute("UPDATE batches SET undone_at=? WHERE id=?", (now(), row["id"]))
            done.append(row["id"])
    return done


# -- undoing -----------------------------------------------------------------------------------
def _key(row: dict[str, Any]) -> tuple:
    # (segment, coder, code) and the span; a row from before spans has no offsets: whole
    start, end = row.get("start_char"), row.get("end_char")
    return (row["segment_id"], row["coder_id"], row["code_id"] or "",
            -1 if start is None else start, -1 if end is None else end)


def _same(current: dict[str, Any] | None, expected: dict[str, Any] | None) -> bool:
    if current is None or expected is None:
        return current is None and expected is None
    return all(current.get(k) == v for k, v in expected.items())


def _where(store: Store, keys: list[tuple]) -> str:
    names = {r["id"]: r["name"] for r in store.db.query("SELECT id, name FROM coders")}
    out = []
    for seg, coder, *_ in keys[:5]:
        at = store.db.one("SELECT document, position FROM segment_view WHERE segment_id=?",
                          (seg,))
        place = f"{at['document']} #{at['position']}" if at else f"segment {seg} (gone)"
        out.append(f"{place} {names.get(coder, coder)}")
    return ", ".join(out) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def undo_batch(store: Store, number: int) -> BatchUndo:
    """Put back what was there before batch ``number``, in one transaction.

    Refused (nothing written) when a decision the batch wrote has changed since: the hint
    names the later batches to undo first."""
    row = store.db.one("SELECT * FROM batches WHERE id=?", (int(number),))
    if row is None:
        last = store.db.one("SELECT MAX(id) FROM batches")[0]
        raise UnknownReference(f"no batch {number}",
                               hint=(f"batches 1 to {last}" if last else "no batch yet")
                               + f"; see them with: coder batches {store.path}")
    if row["undone_at"]:
        raise NothingToDo(f"batch {number} was undone already, at {row['undone_at']}")
    with store.db.transaction() as conn:
        changes = [(json.loads(c["before"]) if c["before"] else None,
                    json.loads(c["after"]) if c["after"] else None)
                   for c in conn.execute("SELECT before, after FROM batch_changes WHERE "
                                         "batch_id=? ORDER BY coding_id", (row["id"],))]
        expected: dict[tuple, dict | None] = {}
        for b, _ in changes:
            if b is not None:
                expected.setdefault(_key(b), None)
        for _, a in changes:
            if a is not None:
                expected[_key(a)] = a
        pairs = sorted({(k[0], k[1]) for k in expected})
        current: dict[tuple, dict] = {}
        for seg, coder in pairs:
            for r in conn.execute("SELECT * FROM codings WHERE segment_id=? AND coder_id=?",
                                  (seg, coder)):
                current[_key(dict(r))] = dict(r)
        changed = sorted(k for k, v in expected.items() if not _same(current.get(k), v))
        if changed:
            later = [r[0] for r in conn.execute(
                "SELECT DISTINCT b.id FROM batches b JOIN batch_changes c ON c.batch_id = b.id "
                "WHERE b.id > ? AND b.undone_at IS NULL AND EXISTS (SELECT 1 FROM batch_changes "
                "x WHERE x.batch_id = ? AND x.segment_id = c.segment_id AND x.coder_id = "
                "c.coder_id) ORDER BY b.id DESC", (row["id"], row["id"]))]
            hint = (f"undo batch {later[0]} first: coder undo {store.path} --batch {later[0]}"
                    if later else "they were decided again since, in a review or on the web "
                                  "page; nothing was undone")
            raise CoderError(f"batch {number} cannot be undone: {len(changed)} of the decisions "
                             f"it wrote changed since ({_where(store, changed)})", hint=hint)
        gone = sorted({b["segment_id"] for b, _ in changes if b is not None} - {
            r[0] for r in conn.execute("SELECT id FROM segments")})
        if gone:
            raise CoderError(f"batch {number} cannot be undone: {len(gone)} segment(s) it "
                             "changed decisions on are no longer in the study (re-imported "
                             "with --replace)", hint="nothing was undone")
        removed = restored = 0
        # rows it added (or moved to another code) go first, then rows it changed go back in
        # place (same id), then rows it removed come back with their ids
        for b, a in changes:
            if a is not None and (b is None or _key(b) != _key(a)):
                conn.execute("DELETE FROM codings WHERE id=?", (a["id"],))
                removed += b is None
        for b, a in changes:
            if b is not None and a is not None and _key(b) == _key(a):
                cols = [c for c in b if c != "id"]
                conn.execute(f"UPDATE codings SET {', '.join(c + '=?' for c in cols)} WHERE id=?",
                             (*[b[c] for c in cols], b["id"]))
                restored += _meaning(b) != _meaning(a)
        for b, a in changes:
            if b is not None and (a is None or _key(b) != _key(a)):
                conn.execute(f"INSERT INTO codings ({', '.join(b)}) VALUES "
                             f"({', '.join('?' * len(b))})", tuple(b.values()))
                restored += 1
        memo_ids = json.loads(row["memos"])
        memos = 0
        for m in memo_ids:
            memos += conn.execute("DELETE FROM memos WHERE id=?", (m,)).rowcount
        stamp = now()
        if row["actions_from"] is not None:
            conn.execute("UPDATE review_actions SET undone_at=? WHERE id BETWEEN ? AND ? AND "
                         "undone_at IS NULL", (stamp, row["actions_from"], row["actions_to"]))
        conn.execute("UPDATE batches SET undone_at=? WHERE id=?", (stamp, row["id"]))
    return BatchUndo(number=row["id"], kind=row["kind"], source=row["source"], removed=removed,
                     restored=restored, memos=memos)
