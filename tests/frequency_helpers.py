"""Build small real study files for the frequency tests by inserting rows directly: one
document per participant (plus an interviewer turn), codings by named coders."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from coder.store.db import now
from coder.study import Study

SMALL_CODEBOOK = {
    "name": "Small test codebook",
    "codes": [
        {"name": "Triggers", "codes": [
            {"name": "Domestic conditions", "items": ["Saturated market", "Economic crisis"]},
            {"name": "Resource seeking", "items": ["Cost advantage"]},
        ]},
        {"name": "External", "codes": [
            {"name": "Foreign market attraction", "codes": [
                {"name": "Larger markets outside", "items": ["More demand overseas"]},
                {"name": "Competitive markets"},
            ]},
            {"name": "Continuous changes", "codes": [
                {"name": "Societal changes"},
            ]},
        ]},
    ],
}


def write_codebook(path: Path, data: dict = SMALL_CODEBOOK) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def make_study(tmp_path: Path, codebook: Path | dict | None = None, *,
               participants: dict[str, dict[str, str]] | None = None,
               turns: dict[str, list[str]] | None = None,
               name: str = "study.db") -> Study:
    """A study with one document per participant: an interviewer question, then each of the
    participant's turns (default: one turn). ``participants`` maps name -> attributes."""
    if codebook is None or isinstance(codebook, dict):
        codebook = write_codebook(tmp_path / "codebook.yaml", codebook or SMALL_CODEBOOK)
    study = Study.create(tmp_path / name, codebook=codebook)
    participants = participants or {}
    turns = turns or {}
    stamp = now()
    with study.db.transaction() as conn:
        for person in sorted(set(participants) | set(turns)):
            said = turns.get(person) or [f"{person} talks about internationalisation."]
            lines = [("I", "interviewer", "What made you go abroad?")] + [
                (person, "participant", t) for t in said]
            text = "\n".join(f"{label}: {t}" for label, _, t in lines)
            doc = conn.execute(
                "INSERT INTO documents (name, source_path, format, sha256, text, unit,"
                " imported_at) VALUES (?,?,?,?,?,?,?)",
                (person, f"{person}.txt", "txt", hashlib.sha256(text.encode()).hexdigest(), text,
                 "turn", stamp)).lastrowid
            pid = conn.execute("INSERT INTO participants (name, created_at) VALUES (?,?)",
                               (person, stamp)).lastrowid
            for attribute, value in (participants.get(person) or {}).items():
                conn.execute("INSERT INTO participant_attributes VALUES (?,?,?)",
                             (pid, attribute, value))
            speaker_ids = {
                "I": conn.execute(
                    "INSERT INTO speakers (document_id, label, role, participant_id)"
                    " VALUES (?,?,?,NULL)", (doc, "I", "interviewer")).lastrowid,
                person: conn.execute(
                    "INSERT INTO speakers (document_id, label, role, participant_id)"
                    " VALUES (?,?,?,?)", (doc, person, "participant", pid)).lastrowid,
            }
            offset = 0
            for position, (label, _, t) in enumerate(lines, 1):
                start = text.index(t, offset)
                offset = start + len(t)
                conn.execute(
                    "INSERT INTO segments (document_id, position, speaker_id, turn, start_char,"
                    " end_char, text, text_hash) VALUES (?,?,?,?,?,?,?,?)",
                    (doc, position, speaker_ids[label], position, start, offset, t,
                     hashlib.sha256(t.encode()).hexdigest()))
    return study


def code(study: Study, study_codings: list[tuple], *, coder_kind: str = "human") -> None:
    """Add codings: tuples (coder, participant/document, code ref[, decision[, position]]).
    Position 2 (the participant's first turn) by default; position 1 is the interviewer."""
    book = study.codebook()
    stamp = now()
    with study.db.transaction() as conn:
        for row in study_codings:
            coder, doc, ref = row[:3]
            decision = row[3] if len(row) > 3 else "confirmed"
            position = row[4] if len(row) > 4 else 2
            coder_id = study.coder_id(coder, kind=coder_kind)
            segment = conn.execute(
                "SELECT s.id FROM segments s JOIN documents d ON d.id = s.document_id"
                " WHERE d.name = ? AND s.position = ?", (doc, position)).fetchone()[0]
            conn.execute(
                "INSERT INTO codings (segment_id, coder_id, code_id, decision, codebook_version,"
                " source, created_at) VALUES (?,?,?,?,?,?,?)",
                (segment, coder_id, book.resolve(ref).id, decision, book.version, "import",
                 stamp))


def code_counts(study: Study, counts: dict[str, int], people: list[str], coder: str = "alice"):
    """Give the first n participants (in a rotating order per code) a confirmed coding, so
    code ``ref`` is raised by exactly ``counts[ref]`` participants."""
    rows = []
    for k, (ref, n) in enumerate(counts.items()):
        order = people[k % len(people):] + people[: k % len(people)]
        rows += [(coder, person, ref) for person in order[:n]]
    code(study, rows)
