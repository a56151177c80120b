"""The study file: migrations recorded, WAL, newer files refused, transactions roll back."""

import sqlite3

import pytest

from coder import Study
from coder.errors import StudyError
from coder.store.db import Database
from coder.store.migrations import MIGRATIONS


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


def test_device_or_folder_is_not_a_study(tmp_path):
    with pytest.raises(StudyError, match="is not a study file"):
        Study("/dev/null")
    with pytest.raises(StudyError, match="is not a study file"):
        Study(tmp_path)


def test_a_long_lived_reader_sees_new_decisions(study_path, small_codebook):
    """`one()` must not keep a read snapshot open (coder serve lives long)."""
    Study.create(study_path, codebook=small_codebook).close()
    reader, writer = Study(study_path), Study(study_path)
    assert reader.db.one("SELECT COUNT(*) FROM coders")[0] == 0
    writer.coder_id("alice")
    assert reader.db.one("SELECT COUNT(*) FROM coders")[0] == 1


def test_new_study_has_an_id(study_path):
    s = Study.create(study_path)
    assert len(s.db.one("SELECT value FROM study_info WHERE key='study_id'")[0]) == 36
