"""The study file: migrations recorded, WAL, newer files refused, transactions roll back."""

import sqlite3

import pytest

from coder import Study
from coder.db import Database
from coder.errors import StudyError
from coder.migrations import MIGRATIONS


def test_create_records_migrations_and_uses_wal(study_path):
    Study.create(study_path).close()
    conn = sqlite3.connect(study_path)
    names = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY id")]
    assert names == [name for name, _ in MIGRATIONS]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_study_is_refused(study_path):
    Study.create(study_path).close()
    conn = sqlite3.connect(study_path)
    conn.execute("INSERT INTO _migrations (name, applied_at) VALUES ('9999_future', 'x')")
    conn.commit()
    conn.close()
    with pytest.raises(StudyError, match="written by a newer coder"):
        Study(study_path)


def test_missing_and_non_sqlite_files(tmp_path):
    with pytest.raises(StudyError, match="no study at"):
        Study(tmp_path / "nope.db")
    bogus = tmp_path / "bogus.db"
    bogus.write_text("hello")
    with pytest.raises(StudyError, match="not a coder study"):
        Study(bogus)


def test_create_refuses_existing_file(study_path):
    Study.create(study_path).close()
    with pytest.raises(StudyError, match="already exists"):
        Study.create(study_path)


def test_transaction_rolls_back_whole(study_path):
    Study.create(study_path).close()
    db = Database(study_path)
    with pytest.raises(RuntimeError):
        with db.transaction() as conn:
            conn.execute("INSERT INTO coders (name, created_at) VALUES ('a', 'now')")
            raise RuntimeError("boom")
    assert db.one("SELECT COUNT(*) FROM coders")[0] == 0


def test_coding_history_is_written_by_triggers(study):
    seg = study.segments(include_interviewer=False).iloc[0]
    cid = study.coder_id("alice")
    with study.db.transaction() as conn:
        conn.execute("INSERT INTO codings (segment_id, coder_id, code_id, decision, created_at) "
                     "VALUES (?, ?, 'trig-domestic', 'confirmed', 'now')", (int(seg.segment_id), cid))
        conn.execute("UPDATE codings SET decision='rejected'")
        conn.execute("DELETE FROM codings")
    actions = [r[0] for r in study.db.query("SELECT action FROM coding_history ORDER BY id")]
    assert actions == ["insert", "update", "delete"]
