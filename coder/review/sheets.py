"""Review in a spreadsheet: a sheet of segments with their suggestions exported for one coder,
and the edited sheet imported back, every row checked before any decision is stored."""

from __future__ import annotations

import csv
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coder.errors import CoderError, InputError, UnknownReference
from coder.sources.archive import check_package
from coder.spreadsheet import neutralise_row, neutralise_workbook, restore
from coder.store import check_coder_name
from coder.store.db import now

if TYPE_CHECKING:
    from coder.store import Store
from coder.review.context import seen as seen_view
from coder.review.decisions import decide, memo
from coder.review.queue import queue
from coder.store import batches
from coder.store.batches import Batch
from coder.store.coders import coder_key

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
    memos: int = 0              # memos on segments (a row with a memo and no decision)
    coding_memos: int = 0       # rows whose memo was stored with their decisions
    coder: str = ""             # whose decisions they were recorded as (the stored spelling)
    new_coder: str | None = None  # "new coder 'carol'" when this import added the coder
    batch: Batch | None = None  # the numbered batch (batch.number None: nothing changed)


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
    coder = study.resolve_coder(coder).name
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
    shown = sorted({s.model_version for it in items for s in it.suggestions[:3]
                    if s.model_version is not None})
    for k, v in (("study", study_id), ("coder", coder), ("codebook_version", book.version),
                 ("exported_at", now()), ("blind", int(blind)),
                 ("model_version", shown[-1] if shown else "")):
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


MAX_SHEET_ROWS = 200_000
MAX_SHEET_COLUMNS = 200


def _read_sheet(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]], str | None]:
    """(header, [(sheet row number, row dict)], study fingerprint or None)."""
    kind = _sheet_format(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    if kind == "csv":
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                data = [[restore(v) for v in r] for r in csv.reader(fh)]
        except csv.Error as e:
            raise InputError(f"not readable as CSV ({e})", path=path) from None
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

    check_package(path.read_bytes(), path, kind="spreadsheet (.xlsx)",
                  hint="save it again as .xlsx, or as CSV",
                  not_zip="not a readable .xlsx file (not a zip package)")
    try:
        wb = load_workbook(path, read_only=False, data_only=True)
    except Exception as e:  # openpyxl raises several types for a file that is not xlsx
        raise InputError(f"not a readable .xlsx file ({type(e).__name__})", path=path) from e
    ws = wb["review"] if "review" in wb.sheetnames else wb.worksheets[0]
    if ws.max_row > MAX_SHEET_ROWS or ws.max_column > MAX_SHEET_COLUMNS:
        # one far-away cell makes openpyxl build every row and column up to it
        raise InputError(f"the sheet reaches row {ws.max_row:,} and column {ws.max_column:,}; a "
                         f"review sheet has at most {MAX_SHEET_ROWS:,} rows and "
                         f"{MAX_SHEET_COLUMNS} columns", path=path,
                         hint="delete the stray cells far below or right of the table")
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
        for row in wb["about"].iter_rows(values_only=True):
            if len(row) > 1 and row[0] == "study":
                study_id = str(row[1])
    return header, rows, study_id


def _as_int(value: Any) -> int | None:
    try:
        f = float(str(value).strip())
    except ValueError:
        return None
    return int(f) if f.is_integer() else None


def _about(path: Path) -> dict[str, str]:
    """The hidden 'about' tab of an exported .xlsx sheet (study, coder, blind, model_version);
    empty for a CSV sheet or one made by hand. Read after `_read_sheet` checked the file."""
    if _sheet_format(path) != "xlsx":
        return {}
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=True)
    try:
        if "about" not in wb.sheetnames:
            return {}
        return {str(r[0]): "" if r[1] is None else str(r[1])
                for r in wb["about"].iter_rows(values_only=True) if len(r) > 1 and r[0]}
    finally:
        wb.close()


def _sheet_coder(path: Path, about: dict[str, str], coder: str | None,
                 as_coder: str | None) -> str:
    """Whose decisions the sheet's rows are: the coder it was exported for, checked against
    ``coder``; ``as_coder`` records them as someone else's on purpose."""
    if coder is not None and as_coder is not None:
        raise CoderError("give the coder or as_coder, not both",
                         hint="--coder NAME for the sheet's own coder, --as NAME for another")
    owner = about.get("coder") or None
    if as_coder is not None:
        return check_coder_name(as_coder)
    if coder is None:
        if owner is None:
            raise InputError("this sheet does not say whose decisions it holds (a CSV sheet, or "
                             "one without its 'about' tab)", path=path,
                             hint="give the coder: --coder NAME")
        return owner
    check_coder_name(coder)
    if owner is not None and coder_key(owner) != coder_key(coder):
        raise InputError(f"this sheet was exported for {owner}", path=path,
                         hint=f"use --coder {owner}, or --as {coder} to record {owner}'s sheet "
                              f"as {coder}'s")
    return owner or coder


def _shown(row: dict[str, Any], book) -> list[str] | None:
    """The codes a row's suggestion columns showed ('Path (0.60)'), or None without them."""
    cells = [str(row[c]).strip() for c in ("suggestion_1", "suggestion_2", "suggestion_3")
             if c in row]
    if not cells:
        return None
    out = []
    for cell in cells:
        ref = cell.rsplit(" (", 1)[0] if cell.endswith(")") else cell
        if ref:
            try:
                out.append(book.resolve(ref).id)
            except UnknownReference:
                continue
    return out


def import_sheet(study: Store, path: str | Path, coder: str | None = None, *,
                 as_coder: str | None = None) -> SheetImport:
    """Read a review sheet back, as one numbered batch (`coder.store.batches`). Every row is
    checked first; all problems are reported in one error with their row numbers, and nothing
    is written unless every row is good.

    An exported .xlsx sheet says whom it was exported for: ``coder`` must be that coder (or
    left out); ``as_coder`` records the sheet as another coder's on purpose. A CSV sheet, or
    one without its 'about' tab, needs ``coder``.

    ``decision`` cells hold codes separated by ';' (id, path or unique name), ``none`` for no
    code, or nothing (undecided: skipped). Chosen codes that were suggested become 'confirmed',
    others 'added'; suggestions shown in the row but not chosen become 'rejected'. Each decision
    records what the sheet showed (`coder.review.context`).
    """
    path = Path(path)
    for name in (coder, as_coder):
        if name is not None:
            study.resolve_coder(name)  # a near-duplicate of an existing name is refused
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
    about = _about(path)
    who = study.resolve_coder(_sheet_coder(path, about, coder, as_coder))
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
    plan: list[tuple[int, list[tuple[str | None, str]], str | None, bool]] = []
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
        in_row = _shown(row, book)
        if not cell:
            skipped += 1
            if len(problems) == bad:
                plan.append((seg_id, [], memo_text, bool(in_row)))
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
        # the row's own suggestion cells say what was shown (the study's suggestions may have
        # been recomputed since the export); a sheet without them: the current top three
        shown = in_row if in_row is not None else suggested.get(seg_id, [])[:3]
        actions: list[tuple[str | None, str]] = [
            (c, "confirmed" if c in suggested.get(seg_id, []) or c in shown else "added")
            for c in chosen]
        actions += [(c, "rejected") for c in shown if c not in chosen]
        if nones:
            actions.append((None, "no_code"))
        plan.append((seg_id, actions, memo_text, bool(shown)))
    if problems:
        raise InputError(f"{len(problems)} problem(s), nothing imported:\n  "
                         + "\n  ".join(problems), path=path)

    out = SheetImport(path=str(path), rows=len(rows), decided_rows=0, skipped=skipped,
                      coder=who.name)
    blind = about.get("blind") == "1"
    model = _as_int(about.get("model_version", "")) if about.get("model_version") else None
    views: dict[tuple[bool, int | None], Any] = {}

    def view(seg_id: int, showed: bool):
        """What this row showed: no other coder's codes; the suggestions of the export's model
        (a CSV sheet: the model of the segment's stored suggestions)."""
        version = None
        if showed and not blind:
            version = model if model is not None else study.db.one(
                "SELECT MAX(model_version) FROM suggestions WHERE segment_id=?", (seg_id,))[0]
        if (showed, version) not in views:
            views[(showed, version)] = seen_view(study, "sheet", blind=blind,
                                                 model_versions=[version])
        return views[(showed, version)]

    with batches.record(study, "sheet", source=str(path), coders=[who.name]) as batch:
        for seg_id, actions, memo_text, showed in plan:
            if actions:
                out.decided_rows += 1
            for code, decision in actions:
                decide(study, who.name, seg_id, code, decision, source="spreadsheet",
                       memo=memo_text if decision != "rejected" else None,
                       seen=view(seg_id, showed))
                setattr(out, decision, getattr(out, decision) + 1)
            if memo_text and any(d != "rejected" for _, d in actions):
                out.coding_memos += 1
            if memo_text and not actions:
                memo(study, who.name, seg_id, memo_text)
                out.memos += 1
    out.batch = batch
    if who.new and study.resolve_coder(who.name).id is not None:
        out.new_coder = who.note()
    return out
