"""Agreement in a study: the units x coders matrix built from its codings (unit = segment, one
present/absent variable per code; the machine's suggestions as one more coder), or from a
ratings CSV; the disagreements sheet and its import back as a consensus coder. The
coefficients themselves are `coder.analysis.coefficients`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from coder.errors import CoderError, InputError, NothingToDo, UnknownReference
from coder.spreadsheet import neutralise_frame, restore_frame
from coder.store import POSITIVE
from coder.store.db import now

if TYPE_CHECKING:
    from coder.store import Store
from coder.analysis.coefficients import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    MEASURES,
    Agreement,
    _check_level,
    agreement,
)

DECIDED = ("confirmed", "added", "rejected", "no_code")  # 'auto' is not a human decision
MACHINE = "machine"


# -- ratings CSV (unit,coder,value) ------------------------------------------------------------
@dataclass
class Ratings:
    """A long ratings file as a units x coders matrix; ``labels`` maps codes back to values."""

    matrix: np.ndarray
    units: list[str]
    coders: list[str]
    labels: list[str] | None = None   # nominal text categories, in code order


def read_ratings(path: str | Path, *, level: str = "nominal", weights: str | None = None
                 ) -> Ratings:
    """Read a CSV with columns unit,coder,value (an empty value is missing)."""
    _check_level(level)
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise InputError(f"not a readable CSV ({str(e).splitlines()[0]})", path=path) from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in ("unit", "coder", "value") if c not in df.columns]
    if missing:
        raise InputError(f"missing column(s): {', '.join(missing)}", path=path,
                         hint="a ratings file has columns unit,coder,value")
    df = df[["unit", "coder", "value"]].apply(lambda s: s.str.strip())
    df["line"] = np.arange(len(df)) + 2
    blank = df[(df.unit == "") | (df.coder == "")]
    if len(blank):
        raise InputError("empty unit or coder", path=path, line=int(blank.line.iloc[0]))
    dup = df[df.duplicated(["unit", "coder"], keep=False)]
    if len(dup):
        first = dup.iloc[0]
        raise InputError(f"coder '{first.coder}' rated unit '{first.unit}' more than once",
                         path=path, line=int(dup.line.iloc[1]))
    units = list(dict.fromkeys(df.unit))
    coders = list(dict.fromkeys(df.coder))
    if len(coders) < 2:
        raise InputError(f"only one coder ({coders[0] if coders else 'none'}); agreement needs "
                         "at least two", path=path)
    given = df[df.value != ""]
    numbers = pd.to_numeric(given.value, errors="coerce")
    labels = None
    if numbers.isna().any():
        if level != "nominal" or weights:
            bad = given[numbers.isna()].iloc[0]
            why = f"the {level} level" if level != "nominal" else f"{weights} weights"
            raise InputError(f"value '{bad.value}' is not a number ({why} needs numbers; use "
                             "--level nominal without --weights for categories)", path=path,
                             line=int(bad.line))
        labels = sorted(set(given.value))
        codes = given.value.map({v: i for i, v in enumerate(labels)}).astype(float)
    else:
        codes = numbers.astype(float)
    x = np.full((len(units), len(coders)), np.nan)
    ui = {u: i for i, u in enumerate(units)}
    ci = {c: i for i, c in enumerate(coders)}
    x[given.unit.map(ui).to_numpy(), given.coder.map(ci).to_numpy()] = codes.to_numpy()
    return Ratings(matrix=x, units=units, coders=coders, labels=labels)


def ratings_agreement(path: str | Path, *, level: str = "nominal", weights: str | None = None,
                      ci: bool = True, resamples: int = DEFAULT_RESAMPLES,
                      seed: int = DEFAULT_SEED) -> Agreement:
    """All coefficients for a long ratings CSV (unit,coder,value)."""
    r = read_ratings(path, level=level, weights=weights)
    return agreement(r.matrix, coders=r.coders, level=level, weights=weights, ci=ci,
                     resamples=resamples, seed=seed)


# -- studies ---------------------------------------------------------------------------------
@dataclass
class Comparison:
    """Agreement among one set of coders in a study: per code, their mean, and pooled."""

    coders: list[str]
    units: int
    per_code: list[dict[str, Any]]
    mean_over_codes: dict[str, float | None]
    pooled: Agreement

    def as_dict(self) -> dict[str, Any]:
        out = self.pooled.as_dict()
        out["units"] = self.units
        out["coders"] = list(self.coders)
        out["summary"] = ("pooled: every (segment, code) pair as one binary unit; the interval "
                          "resamples segments")
        out["mean_over_codes"] = dict(self.mean_over_codes)
        out["per_code"] = self.per_code
        return out


@dataclass
class StudyAgreement:
    """Agreement in a study. ``comparisons[0]`` is all compared coders together; with the
    machine, each human against the machine follows."""

    coders: list[str]
    units: int
    codes: list[str]
    comparisons: list[Comparison]
    documents: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        out = self.comparisons[0].as_dict()
        out["codes"] = list(self.codes)
        out["documents"] = self.documents
        if len(self.comparisons) > 1:
            out["comparisons"] = [c.as_dict() for c in self.comparisons[1:]]
        return out

    def table(self) -> pd.DataFrame:
        """One row per (comparison, code), then 'mean over codes' and 'pooled' rows."""
        rows = []
        for comp in self.comparisons:
            label = " + ".join(comp.coders)
            for r in comp.per_code:
                row = {k: v for k, v in r.items() if k not in ("notes", "positives", "coders")}
                row.update({f"positives_{c}": n for c, n in r["positives"].items()})
                rows.append({"comparison": label, **row})
            rows.append({"comparison": label, "code_id": None, "code": "(mean over codes)",
                         "units": comp.units, **comp.mean_over_codes})
            pooled = comp.pooled.as_dict()
            rows.append({"comparison": label, "code_id": None, "code": "(pooled)",
                         "units": comp.units, **{m: pooled[m] for m in MEASURES},
                         "alpha_ci95": pooled["alpha_ci95"]})
        df = pd.DataFrame(rows)
        if "alpha_ci95" in df:
            ci = df.pop("alpha_ci95")
            df["alpha_ci95_low"] = [c[0] if isinstance(c, list) else None for c in ci]
            df["alpha_ci95_high"] = [c[1] if isinstance(c, list) else None for c in ci]
        return df


def _check_coders(study: Store, coders: list[str] | None, machine: bool) -> list[str]:
    coders = list(dict.fromkeys(coders or []))
    known = study.coders()
    unknown = [c for c in coders if c not in known]
    if unknown:
        raise UnknownReference("unknown coder(s): " + ", ".join(unknown),
                               hint="coders in this study: " + (", ".join(known) or "none yet"))
    if machine and MACHINE in coders:
        raise CoderError(f"a human coder is named '{MACHINE}', which --machine also uses",
                         hint="compare without --machine")
    if len(coders) + int(machine) < 2:
        raise CoderError("agreement needs at least two coders",
                         hint="e.g. --coders alice,bob, or --coders alice --machine")
    return coders


def _code_selection(study: Store, patterns: list[str] | None):
    book = study.codebook()
    if not patterns:
        return book, None
    ids: list[str] = []
    for p in patterns:
        ids += [c.id for c in book.match(p)]
    return book, list(dict.fromkeys(ids))


def _decisions(study: Store, coders: list[str], machine: bool, documents: list[str] | None):
    """Segments every coder decided (in reading order) and each coder's positive codes."""
    segs = study.segments(documents=documents)
    ph = ",".join("?" * len(coders))
    rows = pd.read_sql_query(
        "SELECT k.segment_id, c.name AS coder, k.code_id, k.decision FROM codings k "
        f"JOIN coders c ON c.id = k.coder_id WHERE c.name IN ({ph}) AND k.decision IN "
        f"({','.join('?' * len(DECIDED))})", study.db.conn, params=[*coders, *DECIDED])
    rows = rows[rows.segment_id.isin(segs.segment_id)]
    decided = None
    for c in coders:
        s = set(rows.segment_id[rows.coder == c])
        decided = s if decided is None else decided & s
    units = [int(s) for s in segs.segment_id if s in (decided or set())]
    pos = rows[rows.decision.isin(POSITIVE) & rows.code_id.notna()]
    marks = {c: pos[pos.coder == c].groupby("segment_id").code_id.apply(set).to_dict()
             for c in coders}
    if machine:
        if study.db.one("SELECT 1 FROM suggestions LIMIT 1") is None:
            raise NothingToDo("the study has no suggestions for --machine to compare",
                              hint=f"make some first: coder suggest {study.path}")
        sug = pd.read_sql_query(
            "SELECT segment_id, code_id FROM suggestions WHERE score >= COALESCE(threshold, 0.5)",
            study.db.conn)
        sug = sug[sug.segment_id.isin(units)]
        marks[MACHINE] = sug.groupby("segment_id").code_id.apply(set).to_dict()
    return segs, units, marks


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def study_agreement(study: Store, coders: list[str], *, machine: bool = False,
                    codes: list[str] | None = None, documents: list[str] | None = None,
                    ci: bool = True, resamples: int = DEFAULT_RESAMPLES,
                    seed: int = DEFAULT_SEED) -> StudyAgreement:
    """Per-code (present/absent per segment) agreement between coders, with the mean over codes
    and a pooled figure. Only segments every compared human coder decided count; the machine
    (``machine=True``: current suggestions at or above their threshold, 0.5 where none is
    stored) is compared on those segments."""
    coders = _check_coders(study, coders, machine)
    study.check_documents(documents)
    book, selected = _code_selection(study, codes)
    _, units, marks = _decisions(study, coders, machine, documents)
    everyone = coders + ([MACHINE] if machine else [])
    if not units:
        raise NothingToDo("no segment was decided by every one of: " + ", ".join(coders),
                          hint="agreement counts only segments all compared coders have coded")
    if selected is None:
        on_units = set(units)
        used = set().union(*[s for c in everyone for seg, s in marks[c].items()
                             if seg in on_units] or [set()])
        selected = [c.id for c in book.codes if c.id in used] + sorted(
            u for u in used if u not in {c.id for c in book.codes})
    if not selected:
        raise NothingToDo(f"no code was applied on the {len(units)} segment(s) all coders decided",
                          hint="choose codes with --codes")
    unit_pos = {u: i for i, u in enumerate(units)}
    cube = np.zeros((len(selected), len(units), len(everyone)))
    code_pos = {c: i for i, c in enumerate(selected)}
    for j, c in enumerate(everyone):
        for seg, cs in marks[c].items():
            if seg in unit_pos:
                for code in cs:
                    if code in code_pos:
                        cube[code_pos[code], unit_pos[seg], j] = 1

    def path(cid: str) -> str:
        try:
            return book.get(cid).path
        except KeyError:
            return cid

    groups = [everyone]
    if machine and len(coders) >= 1 and len(everyone) > 2:
        groups += [[h, MACHINE] for h in coders]
    comparisons = []
    for group in groups:
        cols = [everyone.index(c) for c in group]
        per_code = []
        for k, cid in enumerate(selected):
            a = agreement(cube[k][:, cols], coders=group, categories=[0, 1], ci=ci,
                          resamples=resamples, seed=seed)
            d = a.as_dict()
            row = {"code_id": cid, "code": path(cid), "units": a.units, "coders": list(group),
                   **{m: d[m] for m in MEASURES}, "alpha_ci95": d["alpha_ci95"]}
            row["positives"] = {c: int(cube[k][:, everyone.index(c)].sum()) for c in group}
            row["notes"] = d["notes"]
            per_code.append(row)
        pooled_x = cube[:, :, cols].reshape(-1, len(cols))
        clusters = np.tile(np.arange(len(units)), len(selected))
        pooled = agreement(pooled_x, coders=group, categories=[0, 1], ci=ci,
                           resamples=resamples, seed=seed, clusters=clusters)
        mean = {m: _mean(r[m] for r in per_code) for m in MEASURES}
        comparisons.append(Comparison(coders=group, units=len(units), per_code=per_code,
                                      mean_over_codes=mean, pooled=pooled))
    return StudyAgreement(coders=everyone, units=len(units), codes=[path(c) for c in selected],
                          comparisons=comparisons, documents=documents)


# -- disagreements and reconciling --------------------------------------------------------------
SHEET_FIXED = ["document", "segment", "speaker", "previous", "text", "next"]


def disagreements(study: Store, coders: list[str], *, machine: bool = False,
                  codes: list[str] | None = None, documents: list[str] | None = None
                  ) -> pd.DataFrame:
    """Every segment (decided by all coders) whose coders' codes differ: each coder's codes,
    the text with the previous and next segment as context, and empty ``agreed``/``reason``
    columns to fill in for ``reconcile``."""
    coders = _check_coders(study, coders, machine)
    study.check_documents(documents)
    book, selected = _code_selection(study, codes)
    segs, units, marks = _decisions(study, coders, machine, documents)
    everyone = coders + ([MACHINE] if machine else [])
    segs = segs.sort_values(["document", "position"]).reset_index(drop=True)
    segs["previous"] = segs.groupby("document").text.shift(1).fillna("")
    segs["next"] = segs.groupby("document").text.shift(-1).fillna("")
    info = segs.set_index("segment_id")
    keep = set(selected) if selected is not None else None
    order = {c.id: c.position for c in book.codes}

    def label(cid: str) -> str:
        try:
            return book.get(cid).path
        except KeyError:
            return cid

    rows = []
    for u in units:
        sets = {c: {x for x in marks[c].get(u, set()) if keep is None or x in keep}
                for c in everyone}
        if len({frozenset(s) for s in sets.values()}) <= 1:
            continue
        s = info.loc[u]
        row = {"document": s.document, "segment": int(s.position), "speaker": s.speaker,
               "previous": s.previous, "text": s.text, "next": s.next}
        for c in everyone:
            row[c] = "; ".join(label(x) for x in sorted(sets[c], key=lambda x: (
                order.get(x, 10**9), x))) or "none"
        row["agreed"] = ""
        row["reason"] = ""
        rows.append(row)
    return pd.DataFrame(rows, columns=[*SHEET_FIXED, *everyone, "agreed", "reason"])


def write_sheet(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a disagreements (or agreement) table as .csv or .xlsx."""
    path = Path(path)
    if not path.parent.exists():
        raise InputError(f"folder {path.parent} does not exist", path=path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        neutralise_frame(df).to_csv(path, index=False, quoting=csv.QUOTE_MINIMAL)
    elif suffix == ".xlsx":
        neutralise_frame(df).to_excel(path, index=False, sheet_name="disagreements")
    else:
        raise InputError(f"unknown sheet format '{path.suffix}'", path=path,
                         hint="use .csv or .xlsx")
    return path


def _read_sheet(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise InputError("file not found", path=path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        elif suffix == ".xlsx":
            df = pd.read_excel(path, dtype=str).fillna("")
        else:
            raise InputError(f"unknown sheet format '{path.suffix}'", path=path,
                             hint="use .csv or .xlsx")
    except InputError:
        raise
    except Exception as e:  # a corrupt xlsx or csv: say which file, not a traceback
        raise InputError(f"cannot read the sheet ({type(e).__name__}: {e})", path=path) from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    return restore_frame(df)


@dataclass
class ReconcileReport:
    coder: str
    segments: int          # segments given a consensus decision
    codings: int           # rows written
    skipped: int           # rows left without an 'agreed' value


def _consensus_coder(study: Store, coders: list[str], as_coder: str) -> list[str]:
    from coder.store import check_coder_name

    as_coder = check_coder_name(as_coder)
    coders = _check_coders(study, coders, False)
    if as_coder in coders:
        raise CoderError(f"the consensus coder '{as_coder}' is one of the compared coders",
                         hint="choose another name with --as")
    row = study.db.one("SELECT kind FROM coders WHERE name=?", (as_coder,))
    if row is not None and row["kind"] != "consensus":
        raise CoderError(f"coder '{as_coder}' exists and is a {row['kind']} coder, not a "
                         "consensus coder", hint="choose another name with --as")
    return coders


def plan_consensus(study: Store, rows: pd.DataFrame
                   ) -> tuple[list[tuple[int, list[str], str]], list[str], int]:
    """Check sheet rows (document, segment, agreed, reason): returns the decisions to record
    as (segment_id, code ids, reason), the errors ('line N: ...'), and the rows skipped
    because 'agreed' is empty."""
    book = study.codebook()
    seg_ids = {(r["document"], r["position"]): r["segment_id"] for r in study.db.query(
        "SELECT document, position, segment_id FROM segment_view")}
    errors, plan, skipped = [], [], 0
    for i, r in enumerate(rows.to_dict("records"), start=2):
        agreed = str(r.get("agreed", "")).strip()
        if not agreed or agreed.lower() == "nan":
            skipped += 1
            continue
        try:
            pos = int(float(str(r["segment"]).strip()))
        except ValueError:
            errors.append(f"line {i}: segment '{r['segment']}' is not a number")
            continue
        seg = seg_ids.get((str(r["document"]).strip(), pos))
        if seg is None:
            errors.append(f"line {i}: no segment {pos} in document '{r['document']}'")
            continue
        reason = str(r.get("reason", "") or "").strip()
        reason = "" if reason.lower() == "nan" else reason
        if agreed.lower() == "none":
            plan.append((seg, [], reason))
            continue
        ids = []
        for ref in [p.strip() for p in agreed.split(";") if p.strip()]:
            try:
                ids.append(book.resolve(ref).id)
            except UnknownReference as e:
                errors.append(f"line {i}: {e.detail}")
        plan.append((seg, list(dict.fromkeys(ids)), reason))
    return plan, errors, skipped


def record_consensus(study: Store, plan: list[tuple[int, list[str], str]], *,
                     coders: list[str], as_coder: str = "consensus") -> int:
    """Write consensus decisions in one transaction: per segment, the agreed codes (confirmed)
    or no_code, with the reason; the consensus coder's earlier decisions on those segments are
    replaced (the audit trail keeps them), the compared coders' codings are untouched."""
    coders = _consensus_coder(study, coders, as_coder)
    book = study.codebook()
    memo = "reconciled from " + ", ".join(coders)
    written = 0
    with study.db.transaction() as conn:
        if study.db.one("SELECT 1 FROM coders WHERE name=?", (as_coder,)) is None:
            conn.execute("INSERT INTO coders (name, kind, created_at) VALUES (?, 'consensus', ?)",
                         (as_coder, now()))
        cid = study.db.one("SELECT id FROM coders WHERE name=?", (as_coder,))["id"]
        stamp = now()
        for seg, ids, reason in plan:
            conn.execute("DELETE FROM codings WHERE segment_id=? AND coder_id=?", (seg, cid))
            decisions = [(c, "confirmed") for c in ids] or [(None, "no_code")]
            for code_id, decision in decisions:
                conn.execute(
                    "INSERT INTO codings (segment_id, coder_id, code_id, decision,"
                    " codebook_version, memo, reason, source, created_at)"
                    " VALUES (?,?,?,?,?,?,?, 'reconcile', ?)",
                    (seg, cid, code_id, decision, book.version, memo, reason or None, stamp))
                written += 1
    return written


def reconcile_sheet(study: Store, sheet: str | Path, *, coders: list[str],
                    as_coder: str = "consensus") -> ReconcileReport:
    """Import an edited disagreements sheet as the decisions of a consensus coder: column
    ``agreed`` holds codes separated by ';' (ids, paths or unique names) or 'none', ``reason``
    the reconcilers' reason. Every row is checked first; nothing is written unless all are
    good; the coders' own codings are kept. Rows with an empty ``agreed`` are skipped."""
    path = Path(sheet)
    coders = _consensus_coder(study, coders, as_coder)
    df = _read_sheet(path)
    missing = [c for c in ("document", "segment", "agreed") if c not in df.columns]
    if missing:
        raise InputError(f"missing column(s): {', '.join(missing)}", path=path,
                         hint="write the sheet with: coder agree STUDY --coders ... "
                         "--disagreements SHEET")
    plan, errors, skipped = plan_consensus(study, df)
    if errors:
        shown = "; ".join(errors[:10]) + (f"; ... {len(errors) - 10} more" if len(errors) > 10
                                          else "")
        raise InputError(f"{len(errors)} bad row(s), nothing imported: {shown}", path=path)
    if not plan:
        raise NothingToDo("no row has an 'agreed' value", path=path,
                          hint="fill in 'agreed' with codes separated by ';' or 'none'")
    written = record_consensus(study, plan, coders=coders, as_coder=as_coder)
    return ReconcileReport(coder=as_coder, segments=len(plan), codings=written, skipped=skipped)


def to_json(obj: Agreement | StudyAgreement) -> str:
    return json.dumps(obj.as_dict(), indent=2, ensure_ascii=False)
