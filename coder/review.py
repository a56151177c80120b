"""Review: people confirm, reject or add codes, one decision at a time, each on disk at once.

This module is the review logic shared by the terminal app (`coder.tui`), the spreadsheet round
trip and the web page; it never prints or draws. The rules it keeps:

* One current decision per (segment, coder, code); a later one replaces the earlier one, and the
  triggers on ``codings`` keep the trail in ``coding_history``.
* Every :func:`decide` is its own transaction (``BEGIN IMMEDIATE``), so a killed process loses
  nothing already decided and two coders on one file never overwrite each other.
* ``no_code`` ("no code applies") and positive codes exclude each other for one coder on one
  segment: deciding ``no_code`` removes that coder's confirmed/added/auto codes on the segment,
  and a positive decision removes their ``no_code``. Rejections stay: they are what the model
  learns "not this code" from.
* :func:`undo` reverts the coder's last decision exactly (the rows it touched, as they were),
  using ``review_actions``; repeated undos walk further back.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .db import now
from .errors import CoderError, InputError, NothingToDo, UnknownReference
from .study import check_coder_name

if TYPE_CHECKING:
    from .codebook import Codebook
    from .study import Study

DECISIONS = ("confirmed", "rejected", "added", "no_code", "auto")
POSITIVE = ("confirmed", "added", "auto")  # decisions that put a code on a segment (auto: bulk)
ORDERS = ("uncertain", "document", "score", "random")
SHEET_COLUMNS = ["document", "position", "speaker", "text", "suggestion_1", "suggestion_2",
                 "suggestion_3", "decision", "memo", "segment_id", "text_hash"]
REQUIRED_COLUMNS = ["document", "position", "text", "decision", "memo", "segment_id", "text_hash"]
NONE_WORDS = ("none", "no_code", "no code")
_ROW_COLUMNS = ("segment_id", "coder_id", "code_id", "decision", "codebook_version",
                "model_version", "suggestion_score", "memo", "reason", "seconds", "source",
                "created_at")


# -- data shapes -------------------------------------------------------------------------------
@dataclass
class Suggestion:
    code_id: str
    path: str
    name: str
    score: float
    source: str                 # codebook | classifier | blend
    rank: int
    threshold: float | None
    model_version: int | None

    @property
    def above_threshold(self) -> bool:
        """Pre-ticked in the review: the model would assign it on its own."""
        return self.score >= (self.threshold if self.threshold is not None else 0.5)


@dataclass
class QueueItem:
    segment_id: int
    document: str
    position: int
    speaker: str | None
    participant: str | None
    text: str
    previous_speaker: str | None = None
    previous_text: str | None = None
    next_speaker: str | None = None
    next_text: str | None = None
    suggestions: list[Suggestion] = field(default_factory=list)   # empty when blind
    decided: dict[str | None, str] = field(default_factory=dict)  # this coder: code -> decision
    others: list[tuple[str, str | None, str]] = field(default_factory=list)  # (coder, code, dec.)


@dataclass
class Undone:
    segment_id: int
    restored: int               # codings rows put back as they were (or removed)
    description: str


@dataclass
class SheetImport:
    path: str
    rows: int                   # data rows in the sheet
    decided_rows: int           # rows with a decision
    skipped: int                # rows left empty (undecided)
    confirmed: int = 0
    added: int = 0
    rejected: int = 0
    no_code: int = 0
    memos: int = 0


@dataclass
class BulkReport:
    coder: str
    min_precision: float
    min_reviewed: int
    codes: pd.DataFrame         # one row per suggested code: counts, precision, qualified, reason
    accepted: int               # codings rows written as 'auto'

    @property
    def qualified(self) -> list[str]:
        return self.codes.loc[self.codes["qualified"], "path"].tolist()


# -- deciding ----------------------------------------------------------------------------------
def _row_dict(row) -> dict[str, Any]:
    return {k: row[k] for k in _ROW_COLUMNS}


def _rows_of(study: Study, segment_id: int, coder_id: int) -> dict[str, dict[str, Any]]:
    """The coder's current codings rows on a segment, keyed by code id ('' for no_code)."""
    return {r["code_id"] or "": _row_dict(r) for r in study.db.query(
        "SELECT * FROM codings WHERE segment_id=? AND coder_id=?", (segment_id, coder_id))}


def _resolve_code(book: Codebook, ref: str) -> str:
    return book.resolve(ref).id


def _existing_coder(study: Study, coder: str) -> int | None:
    """The coder's id, or None for a name not seen yet (reading never creates a coder)."""
    row = study.db.one("SELECT id FROM coders WHERE name=?", (check_coder_name(coder),))
    return row["id"] if row else None


def _check_segment(study: Study, segment_id: int) -> None:
    if study.db.one("SELECT 1 FROM segments WHERE id=?", (int(segment_id),)) is None:
        raise UnknownReference(f"unknown segment {segment_id}")


def decide(study: Study, coder: str, segment_id: int, code_id: str | None, decision: str, *,
           memo: str | None = None, seconds: float | None = None, source: str = "review",
           model_version: int | None = None, suggestion_score: float | None = None,
           _record: bool = True) -> int | None:
    """Store one decision in its own transaction; returns the codings row id (None if unchanged).

    ``code_id`` may be an id, a path or a unique name; it must be ``None`` for ``no_code``.
    The suggestion's score and model version are filled in from ``suggestions`` when not given.
    """
    if decision not in DECISIONS:
        raise CoderError(f"unknown decision '{decision}'", hint="one of: " + ", ".join(DECISIONS))
    book = study.codebook()
    if decision == "no_code":
        if code_id is not None:
            raise CoderError("decision 'no_code' takes no code")
    else:
        if code_id is None or not str(code_id).strip():
            raise CoderError(f"decision '{decision}' needs a code")
        code_id = _resolve_code(book, code_id)
    cid = study.coder_id(coder)
    segment_id = int(segment_id)
    with study.db.transaction() as conn:
        _check_segment(study, segment_id)
        if code_id is not None and (model_version is None or suggestion_score is None):
            sug = study.db.one("SELECT score, model_version FROM suggestions "
                               "WHERE segment_id=? AND code_id=?", (segment_id, code_id))
            if sug is not None:
                model_version = sug["model_version"] if model_version is None else model_version
                suggestion_score = sug["score"] if suggestion_score is None else suggestion_score
        before = _rows_of(study, segment_id, cid)
        key = code_id or ""
        old = before.get(key)
        if (old is not None and old["decision"] == decision
                and (memo is None or old["memo"] == memo)):
            clears = [k for k, r in before.items()
                      if (decision == "no_code" and r["decision"] in POSITIVE)
                      or (decision in POSITIVE and k == "")]
            if not clears:
                return None
        if decision == "no_code":
            conn.execute("DELETE FROM codings WHERE segment_id=? AND coder_id=? AND code_id IS NOT "
                         "NULL AND decision IN ('confirmed','added','auto')", (segment_id, cid))
        elif decision in POSITIVE:
            conn.execute("DELETE FROM codings WHERE segment_id=? AND coder_id=? AND code_id IS NULL",
                         (segment_id, cid))
        stamp = now()
        conn.execute(
            "INSERT INTO codings (segment_id, coder_id, code_id, decision, codebook_version,"
            " model_version, suggestion_score, memo, seconds, source, created_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (segment_id, coder_id, COALESCE(code_id, '')) DO UPDATE SET"
            " decision=excluded.decision, codebook_version=excluded.codebook_version,"
            " model_version=excluded.model_version, suggestion_score=excluded.suggestion_score,"
            " memo=COALESCE(excluded.memo, codings.memo), seconds=excluded.seconds,"
            " source=excluded.source, created_at=excluded.created_at",
            (segment_id, cid, code_id, decision, book.version, model_version, suggestion_score,
             memo, seconds, source, stamp))
        row = study.db.one("SELECT id FROM codings WHERE segment_id=? AND coder_id=? AND "
                           "COALESCE(code_id, '')=?", (segment_id, cid, key))
        if _record:
            after = _rows_of(study, segment_id, cid)
            changes = [{"code_id": k or None, "before": before.get(k)}
                       for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
            conn.execute("INSERT INTO review_actions (coder_id, segment_id, changes, created_at)"
                         " VALUES (?,?,?,?)", (cid, segment_id, json.dumps(changes), stamp))
        return row["id"]


def undo(study: Study, coder: str) -> Undone:
    """Revert the coder's last decision not yet undone: the rows it touched go back as they were."""
    cid = study.coder_id(coder, create=False)
    with study.db.transaction() as conn:
        action = study.db.one("SELECT * FROM review_actions WHERE coder_id=? AND undone_at IS NULL"
                              " ORDER BY id DESC LIMIT 1", (cid,))
        if action is None:
            raise NothingToDo(f"coder '{coder}' has no decision to undo")
        seg = action["segment_id"]
        changes = json.loads(action["changes"])
        for change in changes:
            key, prev = change["code_id"] or "", change["before"]
            conn.execute("DELETE FROM codings WHERE segment_id=? AND coder_id=? AND "
                         "COALESCE(code_id, '')=?", (seg, cid, key))
            if prev is not None:
                cols = ",".join(_ROW_COLUMNS)
                conn.execute(f"INSERT INTO codings ({cols}) VALUES ({','.join('?' * len(prev))})",
                             tuple(prev[k] for k in _ROW_COLUMNS))
        conn.execute("UPDATE review_actions SET undone_at=? WHERE id=?", (now(), action["id"]))
    where = study.db.one("SELECT document, position FROM segment_view WHERE segment_id=?", (seg,))
    label = f"{where['document']} #{where['position']}" if where else f"segment {seg}"
    return Undone(segment_id=seg, restored=len(changes), description=f"undid decision on {label}")


def memo(study: Study, coder: str, segment_id: int, text: str) -> int:
    """Attach a memo to a segment (the coder's note; decisions carry their own ``memo``)."""
    if not text or not text.strip():
        raise CoderError("a memo cannot be empty")
    cid = study.coder_id(coder)
    with study.db.transaction() as conn:
        _check_segment(study, segment_id)
        cur = conn.execute("INSERT INTO memos (segment_id, document_id, coder_id, text, created_at)"
                           " SELECT id, document_id, ?, ?, ? FROM segments WHERE id=?",
                           (cid, text.strip(), now(), int(segment_id)))
        return cur.lastrowid


def memos(study: Study, coder: str | None = None) -> pd.DataFrame:
    sql = ("SELECT m.id, m.segment_id, v.document, v.position, c.name AS coder, m.text, "
           "m.created_at FROM memos m LEFT JOIN coders c ON c.id = m.coder_id "
           "LEFT JOIN segment_view v ON v.segment_id = m.segment_id")
    params: tuple = ()
    if coder:
        sql += " WHERE c.name = ?"
        params = (coder,)
    return pd.read_sql_query(sql + " ORDER BY m.id", study.db.conn, params=params)


# -- the queue ---------------------------------------------------------------------------------
def code_filter(book: Codebook, patterns: list[str] | None) -> set[str] | None:
    """Code ids selected by patterns such as 'Networking/*' (a code and its subtree) or a glob."""
    if not patterns:
        return None
    chosen: set[str] = set()
    for pat in patterns:
        if any(ch in pat for ch in "*?[") and not pat.endswith("/*"):
            hits = [c.id for c in book if fnmatch.fnmatch(c.path.lower(), pat.lower())]
            if not hits:
                raise UnknownReference(f"no code matches '{pat}'",
                                       hint="see: coder codebook show STUDY")
            chosen.update(hits)
        else:
            chosen.update(c.id for c in book.match(pat))
    return chosen


def queue(study: Study, coder: str, *, order: str = "uncertain", codes: list[str] | None = None,
          documents: list[str] | None = None, blind: bool = False, seed: int = 0
          ) -> list[QueueItem]:
    """The segments this coder has still to decide, in review order.

    Interviewer turns are never queued. A segment counts as decided once the coder has any
    decision on it (on one of ``codes`` or ``no_code``, when codes are given), so the queue
    resumes where the coder left off. With ``codes``, only segments with a suggestion among them
    are queued (all segments when ``blind``, since the coder must not be steered). ``uncertain``
    puts the smallest margin between the two best scores first and segments without suggestions
    last; ``score`` the most confident first; ``random`` is a seeded shuffle.
    """
    if order not in ORDERS:
        raise CoderError(f"unknown order '{order}'", hint="one of: " + ", ".join(ORDERS))
    book = study.codebook()
    wanted = code_filter(book, codes)
    cid = _existing_coder(study, coder)
    segs = study.segments(documents=documents, include_interviewer=True)
    by_doc: dict[int, list[int]] = {}
    info: dict[int, Any] = {}
    for r in segs.itertuples(index=False):
        info[r.segment_id] = r
        by_doc.setdefault(r.document_id, []).append(r.segment_id)
    neighbours: dict[int, tuple[int | None, int | None]] = {}
    for ids in by_doc.values():
        for i, s in enumerate(ids):
            neighbours[s] = (ids[i - 1] if i else None, ids[i + 1] if i + 1 < len(ids) else None)

    sugg: dict[int, list[Suggestion]] = {}
    for r in study.db.query("SELECT segment_id, code_id, score, rank, source, threshold, "
                            "model_version FROM suggestions ORDER BY segment_id, rank"):
        if r["code_id"] not in book._by_id or (wanted is not None and r["code_id"] not in wanted):
            continue
        code = book.get(r["code_id"])
        sugg.setdefault(r["segment_id"], []).append(Suggestion(
            code_id=code.id, path=code.path, name=code.name, score=float(r["score"]),
            source=r["source"], rank=int(r["rank"]), threshold=r["threshold"],
            model_version=r["model_version"]))
    mine: dict[int, dict[str | None, str]] = {}
    others: dict[int, list[tuple[str, str | None, str]]] = {}
    for r in study.db.query("SELECT k.segment_id, k.code_id, k.decision, c.id AS cid, "
                            "c.name FROM codings k JOIN coders c ON c.id = k.coder_id"):
        if r["cid"] == cid:
            mine.setdefault(r["segment_id"], {})[r["code_id"]] = r["decision"]
        else:
            path = book.get(r["code_id"]).path if r["code_id"] in book._by_id else r["code_id"]
            others.setdefault(r["segment_id"], []).append((r["name"], path, r["decision"]))

    def decided(seg_id: int) -> bool:
        got = mine.get(seg_id, {})
        if wanted is None:
            return bool(got)
        return any(k is None or k in wanted for k in got)

    items = []
    for seg_id, r in info.items():
        if r.role != "participant" or decided(seg_id):
            continue
        if wanted is not None and not blind and seg_id not in sugg:
            continue
        prev_id, next_id = neighbours[seg_id]
        prev, nxt = info.get(prev_id), info.get(next_id)
        items.append(QueueItem(
            segment_id=int(seg_id), document=r.document, position=int(r.position),
            speaker=r.speaker, participant=r.participant, text=r.text,
            previous_speaker=prev.speaker if prev is not None else None,
            previous_text=prev.text if prev is not None else None,
            next_speaker=nxt.speaker if nxt is not None else None,
            next_text=nxt.text if nxt is not None else None,
            suggestions=sorted(sugg.get(seg_id, []), key=lambda s: (-s.score, s.rank)),
            decided=dict(mine.get(seg_id, {})),
            others=[] if blind else others.get(seg_id, [])))

    def margin(item: QueueItem) -> tuple:
        s = [x.score for x in item.suggestions]
        if not s:
            return (1, 0.0, item.document, item.position)
        return (0, s[0] - (s[1] if len(s) > 1 else 0.0), item.document, item.position)

    if order == "uncertain":
        items.sort(key=margin)
    elif order == "score":
        items.sort(key=lambda it: (-(it.suggestions[0].score if it.suggestions else -1.0),
                                   it.document, it.position))
    elif order == "random":
        items.sort(key=lambda it: (it.document, it.position))
        random.Random(seed).shuffle(items)
    else:
        items.sort(key=lambda it: (it.document, it.position))
    if blind:
        for it in items:
            it.suggestions = []
    return items


def progress(study: Study, coder: str, *, codes: list[str] | None = None,
             documents: list[str] | None = None) -> tuple[int, int]:
    """(segments this coder has decided, codable segments) over the given documents."""
    wanted = code_filter(study.codebook(), codes)
    cid = _existing_coder(study, coder)
    segs = study.segments(documents=documents, include_interviewer=False)
    ids = set(segs["segment_id"].tolist())
    done = {r["segment_id"] for r in study.db.query(
        "SELECT segment_id, code_id FROM codings WHERE coder_id=?", (cid,))
        if r["segment_id"] in ids and (wanted is None or r["code_id"] is None
                                       or r["code_id"] in wanted)}
    return len(done), len(ids)


def codings_list(study: Study, coder: str | None = None, history: bool = False) -> pd.DataFrame:
    """Current decisions (or the audit trail), for ``coder codings``."""
    from .codings import codings_frame

    if coder is not None:
        study.coder_id(coder, create=False)
    return codings_frame(study, coder=coder, history=history)


# -- spreadsheet round trip ---------------------------------------------------------------------
def fingerprint(study: Study) -> str:
    """A stable id of the study (stored on first use) so a sheet from another study is caught."""
    row = study.db.one("SELECT value FROM study_info WHERE key='study_id'")
    if row is None:
        with study.db.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO study_info VALUES ('study_id', ?)",
                         (uuid.uuid4().hex,))
        row = study.db.one("SELECT value FROM study_info WHERE key='study_id'")
    return row["value"]


def _sheet_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".csv"):
        return suffix[1:]
    raise InputError("unsupported spreadsheet type; use .xlsx or .csv", path=path)


def export_sheet(study: Study, path: str | Path, coder: str, *, limit: int = 200,
                 order: str = "uncertain", codes: list[str] | None = None,
                 documents: list[str] | None = None, blind: bool = False) -> int:
    """Write up to ``limit`` undecided segments as a review sheet (.xlsx or .csv); returns rows.

    The sheet carries hidden ``segment_id`` and ``text_hash`` columns and the study's
    fingerprint so that :func:`import_sheet` can tell edited text and foreign sheets apart.
    """
    path = Path(path)
    kind = _sheet_format(path)
    if not path.parent.exists():
        raise CoderError(f"folder {path.parent} does not exist", path=path)
    if limit < 1:
        raise CoderError("--limit must be at least 1")
    items = queue(study, coder, order=order, codes=codes, documents=documents, blind=blind)
    items = items[:limit]
    hashes = {r["id"]: r["text_hash"] for r in study.db.query("SELECT id, text_hash FROM segments")}
    study_id = fingerprint(study)
    rows = []
    for it in items:
        sug = [f"{s.path} ({s.score:.2f})" for s in it.suggestions[:3]]
        sug += [""] * (3 - len(sug))
        rows.append([it.document, it.position, it.speaker or "", it.text, *sug, "", "",
                     it.segment_id, hashes[it.segment_id]])
    book = study.codebook()
    if kind == "csv":
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow([*SHEET_COLUMNS, "study"])
            for r in rows:
                w.writerow([*r, study_id])
        return len(rows)

    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.worksheet.datavalidation import DataValidation

    wb = Workbook()
    ws = wb.active
    ws.title = "review"
    ws.append(SHEET_COLUMNS)
    for r in rows:
        ws.append(r)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.freeze_panes = "A2"
    widths = {"A": 12, "B": 9, "C": 14, "D": 70, "E": 32, "F": 32, "G": 32, "H": 36, "I": 30}
    for col, w in widths.items():
        ws.column_dimensions[col].width = w
    for row in ws.iter_rows(min_row=2, min_col=4, max_col=4):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    ws.column_dimensions["J"].hidden = True
    ws.column_dimensions["K"].hidden = True
    codes_ws = wb.create_sheet("codes")
    names = [c.path for c in book] + ["none"]
    for n in names:
        codes_ws.append([n])
    about = wb.create_sheet("about")
    for k, v in (("study", study_id), ("coder", coder), ("codebook_version", book.version),
                 ("exported_at", now())):
        about.append([k, v])
    about.sheet_state = "hidden"
    if rows:
        # a drop-down of code paths; free text stays allowed for several codes ('a; b')
        dv = DataValidation(type="list", formula1=f"=codes!$A$1:$A${len(names)}",
                            allow_blank=True, showErrorMessage=False)
        ws.add_data_validation(dv)
        dv.add(f"H2:H{len(rows) + 1}")
    wb.save(path)
    return len(rows)


def _read_sheet(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]], str | None]:
    """(header, [(sheet row number, row dict)], study fingerprint or None)."""
    kind = _sheet_format(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    if kind == "csv":
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                data = list(csv.reader(fh))
        except UnicodeDecodeError as e:
            raise InputError("not UTF-8 text", path=path, hint="save the sheet as UTF-8 CSV") from e
        if not data:
            raise InputError("the sheet is empty", path=path)
        header = [h.strip() for h in data[0]]
        rows = [(i, dict(zip(header, r))) for i, r in enumerate(data[1:], start=2)
                if any(str(v).strip() for v in r)]
        prints = {r.get("study", "") for _, r in rows} - {""}
        study_id = prints.pop() if len(prints) == 1 else ("<mixed>" if prints else None)
        return header, rows, study_id
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=False, data_only=True)
    except Exception as e:  # openpyxl raises several types for a file that is not xlsx
        raise InputError(f"not a readable .xlsx file ({type(e).__name__})", path=path) from e
    ws = wb["review"] if "review" in wb.sheetnames else wb.worksheets[0]
    data = [list(r) for r in ws.iter_rows(values_only=True)]
    if not data:
        raise InputError("the sheet is empty", path=path)
    header = [str(h).strip() if h is not None else "" for h in data[0]]
    rows = []
    for i, r in enumerate(data[1:], start=2):
        if any(v is not None and str(v).strip() for v in r):
            rows.append((i, {h: ("" if v is None else v) for h, v in zip(header, r)}))
    study_id = None
    if "about" in wb.sheetnames:
        for k, v, *_ in wb["about"].iter_rows(values_only=True):
            if k == "study":
                study_id = str(v)
    return header, rows, study_id


def _as_int(value: Any) -> int | None:
    try:
        f = float(str(value).strip())
    except ValueError:
        return None
    return int(f) if f.is_integer() else None


def import_sheet(study: Study, path: str | Path, coder: str) -> SheetImport:
    """Read a review sheet back. Every row is checked first; all problems are reported in one
    error with their row numbers, and nothing is written unless every row is good.

    ``decision`` cells hold codes separated by ';' (id, path or unique name), ``none`` for no
    code, or nothing (undecided: skipped). Chosen codes that were suggested become 'confirmed',
    others 'added'; suggestions shown in the row but not chosen become 'rejected'.
    """
    path = Path(path)
    check_coder_name(coder)
    header, rows, sheet_study = _read_sheet(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InputError("column(s) missing: " + ", ".join(missing), path=path,
                         hint="export a fresh sheet with: coder review export")
    if sheet_study is None:
        raise InputError("the sheet has no study fingerprint (the hidden 'about' sheet or the "
                         "'study' column was removed)", path=path,
                         hint="export a fresh sheet with: coder review export")
    if sheet_study != fingerprint(study):
        raise InputError(f"this sheet was exported from another study, not {study.path}",
                         path=path)
    book = study.codebook()
    segs = {r["segment_id"]: r for r in study.db.query(
        "SELECT segment_id, document, position, text, text_hash, role FROM segment_view")}
    suggested: dict[int, list[str]] = {}
    for r in study.db.query("SELECT segment_id, code_id FROM suggestions ORDER BY segment_id, "
                            "score DESC, rank"):
        if r["code_id"] in book._by_id:
            suggested.setdefault(r["segment_id"], []).append(r["code_id"])

    problems: list[str] = []
    seen: dict[int, int] = {}
    plan: list[tuple[int, list[tuple[str | None, str]], str | None]] = []
    skipped = 0
    for rowno, row in rows:
        seg_id = _as_int(row.get("segment_id", ""))
        bad = len(problems)
        if seg_id is None or seg_id not in segs:
            problems.append(f"row {rowno}: unknown segment {row.get('segment_id')!r}")
            continue
        seg = segs[seg_id]
        if seg_id in seen:
            problems.append(f"row {rowno}: duplicate of row {seen[seg_id]} (segment "
                            f"{seg['document']} #{seg['position']})")
            continue
        seen[seg_id] = rowno
        if str(row.get("document", "")).strip() != seg["document"] or \
                _as_int(row.get("position", "")) != seg["position"]:
            problems.append(f"row {rowno}: document/position changed (expected "
                            f"{seg['document']} #{seg['position']})")
        text = str(row.get("text", ""))
        if str(row.get("text_hash", "")).strip() != seg["text_hash"]:
            problems.append(f"row {rowno}: the segment changed in the study since export "
                            "(text_hash differs)")
        elif text.replace("\r\n", "\n") != seg["text"]:
            problems.append(f"row {rowno}: text was edited; the text column must stay as exported")
        if seg["role"] != "participant":
            problems.append(f"row {rowno}: an interviewer turn is not coded")
        cell = str(row.get("decision", "")).strip()
        memo_text = str(row.get("memo", "")).strip() or None
        if not cell:
            skipped += 1
            if len(problems) == bad:
                plan.append((seg_id, [], memo_text))
            continue
        refs = [p.strip() for p in cell.split(";") if p.strip()]
        nones = [p for p in refs if p.lower() in NONE_WORDS]
        if nones and len(refs) > 1:
            problems.append(f"row {rowno}: 'none' cannot be combined with codes")
            continue
        chosen: list[str] = []
        for ref in refs if not nones else []:
            try:
                code = book.resolve(ref).id
            except UnknownReference as e:
                problems.append(f"row {rowno}: {e.detail}")
                continue
            if code not in chosen:
                chosen.append(code)
        if len(problems) > bad:
            continue
        shown = suggested.get(seg_id, [])[:3]
        actions: list[tuple[str | None, str]] = [
            (c, "confirmed" if c in suggested.get(seg_id, []) else "added") for c in chosen]
        actions += [(c, "rejected") for c in shown if c not in chosen]
        if nones:
            actions.append((None, "no_code"))
        plan.append((seg_id, actions, memo_text))
    if problems:
        raise InputError(f"{len(problems)} problem(s), nothing imported:\n  "
                         + "\n  ".join(problems), path=path)

    out = SheetImport(path=str(path), rows=len(rows), decided_rows=0, skipped=skipped)
    with study.db.transaction():
        for seg_id, actions, memo_text in plan:
            if actions:
                out.decided_rows += 1
            for code, decision in actions:
                decide(study, coder, seg_id, code, decision, source="spreadsheet",
                       memo=memo_text if decision != "rejected" else None)
                setattr(out, decision, getattr(out, decision) + 1)
            if memo_text and not actions:
                memo(study, coder, seg_id, memo_text)
                out.memos += 1
    return out


# -- bulk acceptance ---------------------------------------------------------------------------
def bulk_accept(study: Study, coder: str, *, min_precision: float = 0.95, min_reviewed: int = 30,
                dry_run: bool = False) -> BulkReport:
    """Accept the remaining suggestions of codes this coder has found precise enough.

    A code's precision is measured on this coder's own decisions on segments where the code was
    suggested: confirmed (or added) counts as right; rejected, or 'no_code' on the segment, as
    wrong. Only codes with at least ``min_reviewed`` such decisions qualify (review them with
    ``--order random`` for an unbiased sample). Accepted rows are 'auto' with source 'bulk', are
    left out of agreement and training unless a person confirms them, and :func:`undo_bulk`
    removes them in one go. Only suggestions at or above the code's threshold are accepted, on
    segments where the coder has no decision on that code and no 'no_code'.
    """
    if not 0.0 < min_precision <= 1.0:
        raise CoderError("--min-precision must be in (0, 1]")
    if min_reviewed < 1:
        raise CoderError("--min-reviewed must be at least 1")
    cid = study.coder_id(coder, create=False)
    book = study.codebook()
    sugg = study.db.query(
        "SELECT g.segment_id, g.code_id, g.score, g.threshold, g.model_version FROM suggestions g "
        "JOIN segment_view v ON v.segment_id = g.segment_id WHERE v.role = 'participant'")
    mine: dict[int, dict[str | None, str]] = {}
    for r in study.db.query("SELECT segment_id, code_id, decision FROM codings WHERE coder_id=?",
                            (cid,)):
        mine.setdefault(r["segment_id"], {})[r["code_id"]] = r["decision"]
    stats: dict[str, dict[str, Any]] = {}
    for r in sugg:
        code = r["code_id"]
        if code not in book._by_id:
            continue
        st = stats.setdefault(code, {"suggested": 0, "confirmed": 0, "rejected": 0,
                                     "pending": []})
        st["suggested"] += 1
        got = mine.get(r["segment_id"], {})
        dec = got.get(code)
        if dec in ("confirmed", "added"):
            st["confirmed"] += 1
        elif dec == "rejected" or (dec is None and None in got):
            st["rejected"] += 1
        elif dec is None and None not in got:
            thr = r["threshold"] if r["threshold"] is not None else 0.0
            if r["score"] >= thr:
                st["pending"].append(r)
    records = []
    for code_id, st in stats.items():
        reviewed = st["confirmed"] + st["rejected"]
        precision = st["confirmed"] / reviewed if reviewed else None
        if reviewed < min_reviewed:
            ok, why = False, f"only {reviewed} reviewed suggestion(s); needs {min_reviewed}"
        elif precision < min_precision:
            ok, why = False, f"precision {precision:.2f} below {min_precision:.2f}"
        else:
            ok, why = True, f"precision {precision:.2f} on {reviewed} reviewed"
        records.append({"code_id": code_id, "path": book.get(code_id).path,
                        "position": book.get(code_id).position, "suggested": st["suggested"],
                        "reviewed": reviewed, "confirmed": st["confirmed"],
                        "rejected": st["rejected"], "precision": precision, "qualified": ok,
                        "reason": why, "accepted": len(st["pending"]) if ok else 0})
    frame = pd.DataFrame(records, columns=["code_id", "path", "position", "suggested", "reviewed",
                                           "confirmed", "rejected", "precision", "qualified",
                                           "reason", "accepted"])
    frame = frame.sort_values("position").drop(columns="position").reset_index(drop=True)
    accepted = 0
    if not dry_run:
        stamp = now()
        todo = [(r["segment_id"], cid, r["code_id"], "auto", book.version, r["model_version"],
                 r["score"], "bulk", stamp)
                for code_id, st in stats.items() if code_id in set(frame.loc[frame["qualified"],
                                                                             "code_id"])
                for r in st["pending"]]
        with study.db.transaction() as conn:
            cur = conn.executemany(
                "INSERT INTO codings (segment_id, coder_id, code_id, decision, codebook_version,"
                " model_version, suggestion_score, source, created_at) VALUES (?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (segment_id, coder_id, COALESCE(code_id, '')) DO NOTHING", todo)
            accepted = max(cur.rowcount, 0)
    else:
        accepted = int(frame["accepted"].sum()) if len(frame) else 0
    return BulkReport(coder=coder, min_precision=min_precision, min_reviewed=min_reviewed,
                      codes=frame, accepted=accepted)


def undo_bulk(study: Study, coder: str) -> int:
    """Remove every bulk-accepted ('auto', source 'bulk') coding of this coder; returns how many."""
    cid = study.coder_id(coder, create=False)
    with study.db.transaction() as conn:
        cur = conn.execute("DELETE FROM codings WHERE coder_id=? AND decision='auto' AND "
                           "source='bulk'", (cid,))
        n = cur.rowcount
    if not n:
        raise NothingToDo(f"coder '{coder}' has no bulk-accepted codings to undo")
    return n

