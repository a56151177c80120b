"""Import: read transcript files (txt, md, docx, vtt, srt, csv) into documents, speakers,
participants and segments.

Every file is read and checked before anything is written; then all of them go into the study
in one transaction, so a bad file in a batch leaves the study exactly as it was.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from coder.errors import InputError
from coder.sources.segment import UNITS, Segment, Turn, segment
from coder.spreadsheet import cell_text
from coder.store.db import now, text_hash

if TYPE_CHECKING:
    from coder.store import Store



FORMATS = {".txt": "txt", ".md": "md", ".docx": "docx", ".vtt": "vtt", ".srt": "srt",
           ".csv": "csv"}
DEFAULT_INTERVIEWERS = ("interviewer", "i", "q", "int", "moderator", "facilitator",
                        "researcher", "interviewer 1", "interviewer 2")
UNLABELLED = "Respondent"  # speaker given to text without speaker labels

# 'NAME: text' where NAME is a short label (up to 5 words, no sentence punctuation);
# markdown/Word bold around the label is allowed: '**Dr Lee:** text', '**Dr Lee**: text'.
LABEL_RE = re.compile(
    r"^[ \t]*(?:\*\*|__)?(?P<label>[^\W\d_][\w.'’()\- ]{0,40}?)(?:\*\*|__)?[ \t]*:(?:\*\*|__)?[ \t]*(?=\S|$)"
)


@dataclass
class Transcript:
    """A parsed file: its normalised text and the speaker turns found in it."""

    name: str
    path: Path
    format: str
    encoding: str
    sha256: str
    text: str
    turns: list[Turn]
    labelled: bool
    metadata: dict = field(default_factory=dict)


# -- decoding --------------------------------------------------------------------------------
def decode(data: bytes, path: Path) -> tuple[str, str]:
    """Bytes to text, detecting BOMs, UTF-16, UTF-8 and Windows-1252; refuse binary files."""
    if not data.strip():
        raise InputError("the file is empty", path=path)
    for bom, enc in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                     (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(enc), enc
    if b"\x00" in data[:4096]:
        # UTF-16 without BOM has a NUL in every other byte of ASCII text
        sample = data[:4096]
        if sample[1::2].count(0) > len(sample) // 4:
            return data.decode("utf-16-le"), "utf-16-le"
        if sample[0::2].count(0) > len(sample) // 4:
            return data.decode("utf-16-be"), "utf-16-be"
        raise InputError("this is a binary file, not a text transcript", path=path,
                         hint="save the transcript as plain text (.txt), .docx, .vtt, .srt or .csv")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is None:
            raise InputError("cannot tell this file's text encoding", path=path,
                             hint="save it as UTF-8") from None
        return str(best), best.encoding
    control = sum(1 for ch in text if ord(ch) < 32 and ch not in "\r\n\t\f")
    if control > max(3, len(text) // 100):
        raise InputError("this is a binary file, not a text transcript", path=path,
                         hint="save the transcript as plain text (.txt), .docx, .vtt, .srt or .csv")
    return text, "cp1252"


def normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").lstrip("\ufeff")


# -- readers ---------------------------------------------------------------------------------
def parse_labelled(text: str) -> tuple[list[Turn], bool]:
    """Find 'SPEAKER: text' turns; unlabelled lines continue the previous turn.

    Returns the turns and whether any label was found. Text before the first label becomes a
    turn of no speaker only when there are no labels at all.
    """
    turns: list[Turn] = []
    offset = 0
    current: Turn | None = None
    for line in text.split("\n"):
        m = LABEL_RE.match(line)
        if m and len(m.group("label").split()) <= 5:
            if current is not None:
                turns.append(current)
            start = offset + m.end()
            current = Turn(speaker=" ".join(m.group("label").split()), start=start,
                           end=offset + len(line))
        elif current is not None:
            current.end = offset + len(line)
        offset += len(line) + 1
    if current is not None:
        turns.append(current)
    turns = [t for t in turns if text[t.start:t.end].strip()]
    if turns:
        return turns, True
    return [Turn(speaker=None, start=0, end=len(text))], False


def read_text_file(path: Path, data: bytes) -> tuple[str, str, list[Turn], bool, dict]:
    text, enc = decode(data, path)
    text = normalise(text)
    turns, labelled = parse_labelled(text)
    return text, enc, turns, labelled, {}


def _compose(rows: list[tuple[str | None, str, float | None, float | None]]):
    """Build a document text 'SPEAKER: text' per turn from already-split turns."""
    parts, turns, offset = [], [], 0
    for speaker, body, t0, t1 in rows:
        body = normalise(body).strip()
        if not body:
            continue
        prefix = f"{speaker}: " if speaker else ""
        line = prefix + body
        turns.append(Turn(speaker=speaker, start=offset + len(prefix), end=offset + len(line),
                          start_time=t0, end_time=t1))
        parts.append(line)
        offset += len(line) + 2
    return "\n\n".join(parts) + ("\n" if parts else ""), turns


def read_docx(path: Path, data: bytes):
    try:
        import docx

        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise InputError("not a valid Word .docx file (it is not a readable zip package)",
                         path=path, hint="open it in Word and save it again as .docx") from e
    lines = []
    for para in document.paragraphs:
        text = para.text
        bold = "".join(r.text for r in para.runs if r.bold).strip()
        if bold and text.startswith(bold) and not LABEL_RE.match(text):
            label = bold.rstrip(":").strip()
            rest = text[len(bold):].lstrip(" :\t")
            if label and len(label.split()) <= 5:
                text = f"{label}: {rest}"
        lines.append(text)
    text = normalise("\n".join(lines))
    turns, labelled = parse_labelled(text)
    return text, "docx", turns, labelled, {}


def _seconds(ts: str) -> float:
    h, m, s = ts.replace(",", ".").split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


VOICE_RE = re.compile(r"<v(?:\.[\w.]+)?\s+([^>]+)>")
TAG_RE = re.compile(r"</?[^>]+>")


def read_captions(path: Path, data: bytes, fmt: str):
    import webvtt

    text, enc = decode(data, path)
    buf = io.StringIO(normalise(text))
    try:
        captions = webvtt.from_buffer(buf, format="srt" if fmt == "srt" else "vtt")
    except Exception as e:  # webvtt raises its own MalformedFileError / MalformedCaptionError
        raise InputError(f"not a valid {fmt.upper()} subtitle file: {e}", path=path) from None
    rows: list[list] = []
    for cap in captions:
        raw = cap.raw_text if hasattr(cap, "raw_text") else cap.text
        voice = VOICE_RE.search(raw)
        body = " ".join(TAG_RE.sub("", raw).split())
        speaker = voice.group(1).strip() if voice else None
        if speaker is None:
            m = LABEL_RE.match(body)
            if m and len(m.group("label").split()) <= 5:
                speaker, body = " ".join(m.group("label").split()), body[m.end():].strip()
        t0, t1 = _seconds(cap.start), _seconds(cap.end)
        if rows and speaker == rows[-1][0] and speaker is not None:
            rows[-1][1] += " " + body
            rows[-1][3] = t1
        else:
            rows.append([speaker, body, t0, t1])
    if not rows:
        raise InputError(f"no captions found in this {fmt.upper()} file", path=path)
    labelled = any(r[0] for r in rows)
    doc_text, turns = _compose([tuple(r) for r in rows])
    return doc_text, enc, turns, labelled, {"timed": True}


def read_csv_turns(path: Path, data: bytes):
    text, enc = decode(data, path)
    reader = csv.DictReader(io.StringIO(normalise(text)))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "text" not in fields:
        raise InputError("a transcript CSV needs columns 'speaker,text' (optional 'start,end')",
                         path=path, line=1)
    rows = []
    for lineno, row in enumerate(reader, 2):
        row = {(k or "").strip().lower(): (v or "") for k, v in row.items()}
        times = []
        for key in ("start", "end"):
            value = row.get(key, "").strip()
            if not value:
                times.append(None)
                continue
            try:
                times.append(_seconds(value) if ":" in value else float(value))
            except ValueError:
                raise InputError(f"'{key}' is not a time: {value!r}", path=path, line=lineno,
                                 hint="use seconds (12.5) or HH:MM:SS.mmm") from None
        rows.append((row.get("speaker", "").strip() or None, row["text"], times[0], times[1]))
    doc_text, turns = _compose(rows)
    if not turns:
        raise InputError("the CSV has no rows with text", path=path)
    return doc_text, enc, turns, any(r[0] for r in rows), {"timed": any(r[2] is not None for r in rows)}


def read_transcript(path: str | Path, *, name: str | None = None) -> Transcript:
    """Parse one transcript file; raises InputError naming the file for anything unreadable."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"unknown transcript format '{path.suffix}'", path=path,
                         hint="use .txt, .md, .docx, .vtt, .srt or .csv")
    if not path.exists():
        raise InputError("file not found", path=path)
    data = path.read_bytes()
    if not data.strip():
        raise InputError("the file is empty", path=path)
    if fmt in ("txt", "md"):
        if data[:2] == b"PK":
            raise InputError("this is a zip/Word file, not a text transcript", path=path,
                             hint="rename it to .docx")
        text, enc, turns, labelled, meta = read_text_file(path, data)
    elif fmt == "docx":
        text, enc, turns, labelled, meta = read_docx(path, data)
    elif fmt in ("vtt", "srt"):
        text, enc, turns, labelled, meta = read_captions(path, data, fmt)
    else:
        text, enc, turns, labelled, meta = read_csv_turns(path, data)
    if not text.strip():
        raise InputError("the file has no text", path=path)
    return Transcript(name=name or path.stem, path=path, format=fmt, encoding=enc,
                      sha256=hashlib.sha256(data).hexdigest(), text=text, turns=turns,
                      labelled=labelled, metadata=meta)


# -- writing into a study --------------------------------------------------------------------
@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    segments: int = 0
    kept_codings: int = 0
    orphaned_codings: int = 0
    participants: int = 0


def interviewer_labels(interviewer) -> set[str]:
    if interviewer is None:
        return set(DEFAULT_INTERVIEWERS)
    if isinstance(interviewer, str):
        interviewer = interviewer.split(",")
    return {s.strip().lower() for s in interviewer if s.strip()}


def import_files(study: Store, paths, *, unit: str = "turn", interviewer=None,
                 participants=None, replace: bool = False, names=None) -> ImportReport:
    if unit not in UNITS:
        raise InputError(f"unknown unit '{unit}'", hint="use turn, sentence or paragraph")
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no transcript files given")
    names = names or [p.stem for p in paths]
    seen: dict[str, Path] = {}
    for p, n in zip(paths, names):
        if n in seen:
            raise InputError(f"two files would both be document '{n}': {seen[n]} and {p}",
                             hint="rename one of them")
        seen[n] = p
    parsed = []
    for p, n in zip(paths, names):
        t = read_transcript(p, name=n)
        if unit == "turn" and not t.labelled:
            raise InputError("no recognisable speaker turns; expected lines like 'NAME: text'",
                             path=p, line=1, hint="use --unit paragraph for unlabelled text")
        parsed.append(t)
    labels = interviewer_labels(interviewer)
    participant_rows = read_participants(participants) if participants else None
    report = ImportReport()
    with study.db.transaction():
        for t in parsed:
            _store(study, t, unit, labels, replace, report)
        if participant_rows is not None:
            report.participants = _apply_participants(study, participant_rows, Path(participants))
    return report


def import_text(study: Store, name: str, text: str, *, unit: str = "turn", fmt: str = "txt",
                interviewer=None, sha256: str | None = None) -> int:
    """Import already-decoded text as a document (used by project import). Returns its id."""
    text = normalise(text)
    turns, labelled = parse_labelled(text)
    if unit == "turn" and not labelled:
        unit = "paragraph"
    t = Transcript(name=name, path=Path(name), format=fmt, encoding="utf-8",
                   sha256=sha256 or text_hash(text), text=text,
                   turns=turns, labelled=labelled)
    with study.db.transaction():
        _store(study, t, unit, interviewer_labels(interviewer), False, ImportReport())
    return study.document_id(name)


def _store(study: Store, t: Transcript, unit: str, interviewers: set[str], replace: bool,
           report: ImportReport) -> None:
    db = study.db
    old = db.one("SELECT id, sha256, unit FROM documents WHERE name=?", (t.name,))
    if old is not None and old["sha256"] == t.sha256 and old["unit"] == unit:
        report.unchanged.append(t.name)
        return
    if old is not None and not replace:
        raise InputError(f"document '{t.name}' is already in the study with different content",
                         path=t.path, hint="use --replace to replace it (codings on unchanged "
                         "segments are kept)")
    turns = t.turns
    if not t.labelled:
        turns = [Turn(UNLABELLED, tr.start, tr.end, tr.start_time, tr.end_time) for tr in turns]
    segs = segment(t.text, turns, unit)
    if not segs:
        raise InputError("no text to code in this file", path=t.path)
    meta = json.dumps(t.metadata)
    if old is None:
        doc_id = db.execute(
            "INSERT INTO documents (name, source_path, format, encoding, sha256, text, unit,"
            " metadata, imported_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (t.name, str(t.path), t.format, t.encoding, t.sha256, t.text, unit, meta, now()),
        ).lastrowid
        report.imported.append(t.name)
    else:
        doc_id = old["id"]
        db.execute("UPDATE documents SET source_path=?, format=?, encoding=?, sha256=?, text=?,"
                   " unit=?, metadata=?, imported_at=? WHERE id=?",
                   (str(t.path), t.format, t.encoding, t.sha256, t.text, unit, meta, now(), doc_id))
        report.replaced.append(t.name)
    speaker_ids = _store_speakers(study, doc_id, t.name, segs, interviewers)
    old_segments = db.query("SELECT id, text_hash FROM segments WHERE document_id=? ORDER BY position",
                            (doc_id,))
    offset = 10_000_000 if old_segments else 0
    new_ids = []
    for s in segs:
        new_ids.append(db.execute(
            "INSERT INTO segments (document_id, position, speaker_id, turn, start_char, end_char,"
            " text, text_hash, start_time, end_time) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (doc_id, s.position + offset, speaker_ids.get(s.speaker), s.turn, s.start, s.end,
             s.text, text_hash(s.text), s.start_time, s.end_time)).lastrowid)
    if old_segments:
        _carry_codings(study, old_segments, segs, new_ids, report)
        db.execute("DELETE FROM segments WHERE document_id=? AND position < ?", (doc_id, offset))
        db.execute("UPDATE segments SET position = position - ? WHERE document_id=?",
                   (offset, doc_id))
        db.execute("DELETE FROM speakers WHERE document_id=? AND id NOT IN "
                   "(SELECT speaker_id FROM segments WHERE speaker_id IS NOT NULL)", (doc_id,))
    report.segments += len(segs)


def _carry_codings(study, old_segments, segs, new_ids, report) -> None:
    """Move codings from old segments to new ones with the same text (n-th occurrence to n-th)."""
    by_hash: dict[str, list[int]] = {}
    for s, new_id in zip(segs, new_ids):
        by_hash.setdefault(text_hash(s.text), []).append(new_id)
    for old in old_segments:
        targets = by_hash.get(old["text_hash"])
        n = study.db.one("SELECT COUNT(*) FROM codings WHERE segment_id=?", (old["id"],))[0]
        if targets:
            new_id = targets.pop(0)
            study.db.execute("UPDATE codings SET segment_id=? WHERE segment_id=?", (new_id, old["id"]))
            report.kept_codings += n
        else:
            report.orphaned_codings += n


def _store_speakers(study, doc_id: int, doc_name: str, segs: list[Segment],
                    interviewers: set[str]) -> dict[str | None, int]:
    db = study.db
    labels = list(dict.fromkeys(s.speaker for s in segs if s.speaker))
    respondents = [lb for lb in labels if lb.lower() not in interviewers]
    ids: dict[str | None, int] = {}
    for label in labels:
        row = db.one("SELECT id, participant_id FROM speakers WHERE document_id=? AND label=?",
                     (doc_id, label))
        role = "interviewer" if label.lower() in interviewers else "participant"
        if row is not None:
            db.execute("UPDATE speakers SET role=? WHERE id=?", (role, row["id"]))
            ids[label] = row["id"]
            continue
        participant_id = None
        if role == "participant":
            # one respondent: the document is the participant; a focus group: each speaker is
            pname = doc_name if len(respondents) == 1 else f"{doc_name}/{label}"
            participant_id = _participant_id(db, pname)
        ids[label] = db.execute(
            "INSERT INTO speakers (document_id, label, role, participant_id) VALUES (?,?,?,?)",
            (doc_id, label, role, participant_id)).lastrowid
    return ids


def _participant_id(db, name: str) -> int:
    row = db.one("SELECT id FROM participants WHERE name=?", (name,))
    if row:
        return row["id"]
    return db.execute("INSERT INTO participants (name, created_at) VALUES (?,?)",
                      (name, now())).lastrowid


# -- participants ----------------------------------------------------------------------------
def read_participants(path) -> list[dict[str, str]]:
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    text, _ = decode(path.read_bytes(), path)
    reader = csv.DictReader(io.StringIO(normalise(text)))
    fields = [(f or "").strip() for f in reader.fieldnames or []]
    if "participant" not in [f.lower() for f in fields]:
        raise InputError("a participants CSV needs a 'participant' column (plus attribute columns"
                         " such as group, gender; optional document and speaker)", path=path, line=1)
    rows = []
    for lineno, row in enumerate(reader, 2):
        row = {(k or "").strip(): cell_text(v) for k, v in row.items()}
        row = {("participant" if k.lower() == "participant" else
                "document" if k.lower() == "document" else
                "speaker" if k.lower() == "speaker" else k): v for k, v in row.items()}
        if not row.get("participant"):
            raise InputError("row without a participant", path=path, line=lineno)
        row["_line"] = str(lineno)
        rows.append(row)
    return rows


def import_participants(study: Store, path) -> int:
    rows = read_participants(path)
    with study.db.transaction():
        return _apply_participants(study, rows, Path(path))


def _apply_participants(study: Store, rows: list[dict[str, str]], path: Path) -> int:
    db = study.db
    docs = {r["name"]: r["id"] for r in db.query("SELECT id, name FROM documents")}
    for row in rows:
        line = int(row.pop("_line"))
        name = row.pop("participant")
        document = row.pop("document", "") or ""
        speaker = row.pop("speaker", "") or ""
        pid = _participant_id(db, name)
        for attribute, value in row.items():
            if attribute:
                db.execute("INSERT OR REPLACE INTO participant_attributes VALUES (?,?,?)",
                           (pid, attribute, value))
        if not document and name in docs:
            document = name
        if document:
            if document not in docs:
                raise InputError(f"unknown document '{document}'", path=path, line=line,
                                 hint="import the transcript first, or fix the document name")
            if speaker:
                found = db.execute("UPDATE speakers SET participant_id=?, role='participant' "
                                   "WHERE document_id=? AND label=?", (pid, docs[document], speaker))
                if found.rowcount == 0:
                    raise InputError(f"document '{document}' has no speaker '{speaker}'",
                                     path=path, line=line)
            else:
                respondents = db.query("SELECT id FROM speakers WHERE document_id=? AND "
                                       "role='participant'", (docs[document],))
                if len(respondents) != 1:
                    raise InputError(f"document '{document}' has {len(respondents)} respondents;"
                                     " say which with a 'speaker' column", path=path, line=line)
                db.execute("UPDATE speakers SET participant_id=? WHERE id=?",
                           (pid, respondents[0]["id"]))
    # participants made automatically at import and now replaced by the file's names
    db.execute("DELETE FROM participants WHERE id NOT IN (SELECT participant_id FROM speakers "
               "WHERE participant_id IS NOT NULL) AND id NOT IN (SELECT participant_id FROM "
               "participant_attributes)")
    return len(rows)
