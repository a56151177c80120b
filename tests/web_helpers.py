"""Real study files and a real server for the web page tests (coder serve's app in uvicorn)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import uvicorn

from coder.store.db import now
from coder.study import Study

DATA = Path(__file__).parent / "data"
XSS_TEXT = 'I said <script>window.__pwned = 1</script> and "><img src=x onerror="window.__pwned=2">'
TOPICS = [
    "Our home market is small and already saturated, so we had to look abroad.",
    "The trade agency took us to an exhibition in Dubai and that opened doors.",
    "Bank loans took months; the grant forms were impossible for a small firm.",
    "My cousin in Singapore introduced us to our first distributor.",
    "Global supply chains pulled us along when our customer moved overseas.",
    "We went to the chamber of commerce seminars about export documents.",
]


def write_interview(path: Path, speaker: str, turns: int, offset: int = 0) -> Path:
    lines = []
    for i in range(turns):
        lines.append(f"INTERVIEWER: Question {i + 1}: tell me more?")
        lines.append(f"{speaker}: {TOPICS[(i + offset) % len(TOPICS)]} (turn {i + 1})")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_study(folder: Path, *, turns: int = 14, xss: bool = True,
               suggestions: int = 1) -> Path:
    """A study with the small test codebook, two long interviews and (optionally) a transcript
    that tries to inject HTML; each participant segment gets ``suggestions`` suggestions."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "study.db"
    files = [write_interview(folder / "p10.txt", "DR AMINAH", turns),
             write_interview(folder / "p11.txt", "MR TAN", turns, offset=3)]
    if xss:
        x = folder / "p99.txt"
        x.write_text(f"INTERVIEWER: Anything else?\nMS EVIL: {XSS_TEXT}\n", encoding="utf-8")
        files.append(x)
    with Study.create(path, codebook=DATA / "small_codebook.yaml") as study:
        study.import_transcripts(files)
        add_suggestions(study, per_segment=suggestions)
    return path


def add_suggestions(study: Study, per_segment: int = 1) -> int:
    """Fake machine suggestions (what `coder suggest` writes), in the suggestions table."""
    leaves = [c.id for c in study.codebook().leaves()]
    version = study.codebook_version
    segs = study.segments(include_interviewer=False)
    rows = []
    for i, sid in enumerate(segs["segment_id"].tolist()):
        for rank in range(1, per_segment + 1):
            code = leaves[(i + rank - 1) % len(leaves)]
            rows.append((int(sid), code, round(0.9 - 0.2 * rank + 0.01 * (i % 7), 3), rank,
                         "codebook", 0.5, None, version, now()))
    with study.db.transaction() as conn:
        conn.executemany("INSERT INTO suggestions (segment_id, code_id, score, rank, source, "
                         "threshold, model_version, codebook_version, created_at) "
                         "VALUES (?,?,?,?,?,?,?,?,?)", rows)
    return len(rows)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(app, host: str = "127.0.0.1", **ssl):
    """Serve ``app`` with uvicorn in a background thread on a free port; yields the base URL
    (``ssl_certfile``/``ssl_keyfile``: over HTTPS)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           access_log=False, **ssl))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"{'https' if ssl else 'http'}://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
