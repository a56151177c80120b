"""Review in a spreadsheet: a sheet of segments with their suggestions exported for one coder,
and the edited sheet imported back, every row checked before any decision is stored."""

from __future__ import annotations

import csv
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coder.errors import CoderError, InputError, UnknownReference
from coder.spreadsheet import neutralise_row, neutralise_workbook, restore
from coder.store import check_coder_name
from coder.store.db import now

if TYPE_CHECKING:
    from coder.store import Store
from coder.review.decisions import decide, memo
from coder.review.queue import queue

SHEET_COLUMNS = ["document", "position", "speaker", "text", "suggestion_1", "suggestion_2",
                 "suggestion_3", "decision", "memo", "segment_id", "text_hash"]
REQUIRED_COLUMNS = ["document", "position", "text", "decision", "memo", "segment_id", "text_hash"]
NONE_WORDS = ("none", "no_code", "no code")


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


# -- spreadsheet round trip ---------------------------------------------------------------------
def fingerprint(study: Store) -> str:
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


def export_sheet(study: Store, path: str | Path, coder: str, *, limit: int = 200,
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
                w.writerow(neutralise_row([*r, study_id]))
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
    neutralise_workbook(wb)
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
                data = [[restore(v) for v in r] for r in csv.reader(fh)]
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
    data = [[restore(v) for v in r] for r in ws.iter_rows(values_only=True)]
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


def import_sheet(study: Store, path: str | Path, coder: str) -> SheetImport:
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
