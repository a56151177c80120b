"""Helpers for the review tests: suggestions inserted with SQL, segments looked up by position."""

from __future__ import annotations

from pathlib import Path

from coder import Study
from coder.store.db import now

# (document, position, code, score, rank): margins p01#4 0.05, p01#2 0.5, p02#2 0.7, p01#6 0.8
SUGGESTIONS = [
    ("p01", 2, "trig-domestic", 0.9, 1),
    ("p01", 2, "bar-finance", 0.4, 2),
    ("p01", 4, "net-institutions", 0.6, 1),
    ("p01", 4, "net-personal", 0.55, 2),
    ("p01", 6, "bar-finance", 0.8, 1),
    ("p02", 2, "trig-globalization", 0.7, 1),
]


def seg(study: Study, document: str, position: int) -> int:
    return study.db.one("SELECT segment_id FROM segment_view WHERE document=? AND position=?",
                        (document, position))["segment_id"]


def add_suggestions(study: Study, rows=SUGGESTIONS, *, threshold: float = 0.5,
                    source: str = "codebook") -> None:
    with study.db.transaction() as conn:
        for document, position, code, score, rank in rows:
            conn.execute(
                "INSERT INTO suggestions (segment_id, code_id, score, rank, source, threshold,"
                " model_version, codebook_version, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (seg(study, document, position), code, score, rank, source, threshold, 1,
                 study.codebook_version, now()))


def make_study(path: Path, data_dir: Path) -> Study:
    """The conftest study (small codebook, p01 and p02) plus the suggestions above."""
    s = Study.create(path, codebook=data_dir / "small_codebook.yaml")
    s.import_transcripts([data_dir / "p01.txt", data_dir / "p02.txt"])
    add_suggestions(s)
    return s


def long_transcript(path: Path, turns: int) -> Path:
    """An interview with ``turns`` respondent turns (for bulk acceptance and queue tests)."""
    lines = []
    for i in range(turns):
        lines.append(f"Interviewer: Question {i + 1}?")
        lines.append(f"Respondent: Answer number {i + 1} about exports and networks.")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
