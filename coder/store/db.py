"""The study file: one SQLite database in WAL mode with recorded, transactional migrations.

Every write goes through :meth:`Database.transaction` (``BEGIN IMMEDIATE``), so a human decision
is on disk when the call returns and a failed import leaves the file exactly as it was.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from coder.errors import StudyError
from coder.store.migrations import MIGRATIONS


def now() -> str:
    """UTC timestamp with seconds, ISO 8601: what every row's time column holds."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def text_hash(text: str) -> str:
    """sha256 of a text's UTF-8 bytes: segments.text_hash and the embedding cache key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_sqlite_file(path: str | Path) -> bool:
    """Whether a file is an SQLite database, asked of SQLite itself (read-only, no Python open)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        conn.execute("PRAGMA schema_version").fetchall()
        return True
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.close()


class Database:
    """A connection to one study file. Cheap to create; not shared between threads."""

    def __init__(self, path: str | Path, *, create: bool = False, timeout: float = 30.0):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise StudyError(
                f"no study at {self.path}", hint=f"create one with: coder init {self.path}"
            )
        if self.path.exists() and not self.path.is_file():
            raise StudyError(f"{self.path} is not a study file")
        # The header is checked through SQLite, never with Python's open(): on POSIX, closing
        # any descriptor of the file drops every lock this process holds on it, SQLite's
        # included, and another process could then delete the WAL a server is still using.
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None,
                                        check_same_thread=False)
        except sqlite3.Error as e:
            raise StudyError(f"cannot open {self.path}: {e}") from None
        try:
            self.conn.execute("PRAGMA schema_version").fetchall()
        except sqlite3.DatabaseError as e:
            self.conn.close()
            if "not a database" in str(e):
                raise StudyError(f"{self.path} is not a coder study (not an SQLite file)") from None
            raise StudyError(f"cannot open {self.path}: {e}") from None
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA busy_timeout = %d" % int(timeout * 1000))
        self.conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a confirmed decision is on disk when the call returns, even after a power cut
        # (WAL with NORMAL may lose the last commits then, though never corrupts); measured
        # cost in evaluation/bench_durability.py.
        self.conn.execute("PRAGMA synchronous = FULL")
        self._depth = 0
        self.migrate()

    # -- transactions -----------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; nested calls join the outer one. Rolls back on any error."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        for attempt in range(50):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as e:  # another writer holds the lock
                if "locked" not in str(e) or attempt == 49:
                    raise
                time.sleep(0.05)
        self._depth = 1
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
        finally:
            self._depth = 0

    def execute(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        # fetchall, not fetchone: an unfinished statement keeps an old WAL read snapshot open,
        # and a long-lived process (coder serve) would not see other coders' decisions.
        rows = self.conn.execute(sql, params).fetchall()
        return rows[0] if rows else None

    def close(self) -> None:
        self.conn.close()

    # -- migrations -------------------------------------------------------------------------
    def applied_migrations(self) -> list[str]:
        exists = self.one(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='_migrations'"
        )
        if not exists:
            return []
        return [r["name"] for r in self.query("SELECT name FROM _migrations ORDER BY id")]

    def migrate(self) -> list[str]:
        """Apply the migrations this file lacks, each in one transaction with its record."""
        applied = self.applied_migrations()
        known = [name for name, _ in MIGRATIONS]
        unknown = [name for name in applied if name not in known]
        if unknown:
            raise StudyError(
                f"{self.path} was written by a newer coder (schema step '{unknown[0]}' is unknown "
                "to this version)",
                hint="upgrade coder to open it",
            )
        done = []
        for name, sql in MIGRATIONS:
            if name in applied:
                continue
            with self.transaction() as conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS _migrations ("
                    "id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, applied_at TEXT NOT NULL)"
                )
                for statement in _split_sql(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, now()))
            done.append(name)
        return done


def _split_sql(sql: str) -> list[str]:
    """Split a migration script into statements; triggers keep their inner semicolons."""
    statements, buf = [], []
    for line in sql.splitlines():
        buf.append(line)
        joined = "\n".join(buf).strip()
        if joined.endswith(";") and sqlite3.complete_statement(joined):
            statements.append(joined)
            buf = []
    rest = "\n".join(buf).strip()
    if rest:
        statements.append(rest)
    return statements


# A decision on a segment is the coding whose span is the whole segment (NULL offsets,
# migration 0008); a narrower or wider span is coded through coder.review.spans. WHOLE picks the
# former out of codings; ONE_DECISION is the conflict target of an upsert on codings.
WHOLE = "start_char IS NULL"
ONE_DECISION = ("(segment_id, coder_id, COALESCE(code_id, ''), COALESCE(start_char, -1), "
                "COALESCE(end_char, -1))")
