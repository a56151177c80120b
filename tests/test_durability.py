"""Acknowledged decisions survive a long-lived process that opens the study again and again.

The hazard (SQLite's "How To Corrupt An SQLite Database File", section 2.2): on POSIX, closing
any descriptor of a file drops every fcntl lock the process holds on it, SQLite's included. A
server that opened the study file with Python's ``open()`` for each new connection let another
process delete the WAL it was still writing to, and acknowledged decisions vanished.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from coder import Study
from coder.errors import StudyError

# A stand-in for `coder serve`: one connection held for the life of the process, a new
# Study() opened and closed before each decision (as a request, a status page or a reload
# would), each decision acknowledged on stdout once `decide` has returned.
HOLDER = textwrap.dedent("""
    import sys
    from coder import Study
    from coder import review

    path = sys.argv[1]
    held = Study(path)
    segments = [int(s) for s in held.segments(include_interviewer=False)["segment_id"]]
    print("ready", flush=True)
    for line in sys.stdin:
        n = int(line)
        Study(path).close()
        code = ("trig-domestic", "net-personal")[n % 2]
        review.decide(held, "server", segments[n % len(segments)], code, "confirmed")
        print("ack", n, flush=True)
""")


def test_decisions_survive_reopening_inside_a_long_lived_process(study, tmp_path):
    path = Path(study.path)
    study.close()
    script = tmp_path / "holder.py"
    script.write_text(HOLDER, encoding="utf-8")
    server = subprocess.Popen([sys.executable, str(script), str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    wal = Path(str(path) + "-wal")
    acked, wal_missing = [], 0
    try:
        assert server.stdout.readline().strip() == "ready"
        for n in range(12):
            server.stdin.write(f"{n}\n")
            server.stdin.flush()
            assert server.stdout.readline().split() == ["ack", str(n)]
            acked.append(n)
            # another process (here: this one) opens and closes the study meanwhile, as
            # `coder status` would; it must never be able to checkpoint the WAL away
            Study(path).close()
            wal_missing += not wal.exists()
    finally:
        server.kill()  # no clean close: only what was committed may count
        server.wait()
    assert wal_missing == 0, "the WAL of a running server was removed by another process"
    # a third process reads every acknowledged decision back
    out = subprocess.run(
        [sys.executable, "-c",
         "import sys; from coder import Study; s = Study(sys.argv[1]); "
         "print(len(s.codings('server')))", str(path)],
        capture_output=True, text=True, check=True)
    segments = len(Study(path).segments(include_interviewer=False))
    expected = len({(n % segments, n % 2) for n in acked})
    assert int(out.stdout) == expected


def test_the_study_file_is_never_opened_outside_sqlite(study, tmp_path, monkeypatch):
    """Opening more connections in one process must not touch the file through Python."""
    import builtins
    import io

    opened = []
    real_open = builtins.open
    target = Path(study.path).resolve()

    def spy(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file).resolve() == target:
            opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", spy)
    for _ in range(3):
        Study(study.path).close()
    assert opened == []


def test_a_file_that_is_not_sqlite_is_refused_unchanged(tmp_path):
    fake = tmp_path / "notes.db"
    fake.write_bytes(b"these are my notes, not a study\n" * 10)
    before = fake.read_bytes()
    with pytest.raises(StudyError, match="not a coder study"):
        Study(fake)
    assert fake.read_bytes() == before
    assert not Path(str(fake) + "-wal").exists()


def test_one_new_coder_deciding_from_many_threads_at_once(study):
    """The same new coder's first decisions from 16 places at once: one coder row, no error."""
    from concurrent.futures import ThreadPoolExecutor

    from coder import review

    path = study.path
    segments = [int(s) for s in study.segments(include_interviewer=False)["segment_id"]]

    start = threading.Barrier(16)

    def first_decision(i: int) -> int | None:
        with Study(path) as s:
            if i < 16:
                start.wait()  # all first decisions at the same moment
            return review.decide(s, "newcomer", segments[i % len(segments)], "trig-domestic",
                                 "confirmed")

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(first_decision, range(32)))
    assert len(results) == 32
    assert study.db.query("SELECT COUNT(*) FROM coders WHERE name='newcomer'")[0][0] == 1
    assert len(study.codings("newcomer")) == len({segments[i % len(segments)] for i in range(32)})


def test_a_new_coder_created_elsewhere_between_lookup_and_insert(study):
    """The race made deterministic: another process adds the coder right after our lookup."""
    lookup = study.db.one

    def lookup_then_lose_the_race(sql, params=()):
        row = lookup(sql, params)
        if "FROM coders WHERE name" in sql and row is None:
            with Study(study.path) as other:
                other.coder_id(params[0])
        return row

    study.db.one = lookup_then_lose_the_race
    first = study.coder_id("racer")
    study.db.one = lookup
    assert first == study.coder_id("racer")
    assert study.db.query("SELECT COUNT(*) FROM coders WHERE name='racer'")[0][0] == 1


def test_decisions_are_written_with_full_synchronous(study):
    assert study.db.one("PRAGMA synchronous")[0] == 2  # FULL
