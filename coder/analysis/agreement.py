"""Agreement in a study: the units x coders matrix built from its codings (unit = segment, one
present/absent variable per code; the machine's suggestions as one more coder), or from a
ratings CSV; the disagreements sheet and its import back as a consensus coder. The
coefficients themselves are `coder.analysis.coefficients`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from coder.errors import CoderError, InputError, NothingToDo, UnknownReference
from coder.sources.archive import check_package
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
    kind: str = "coders"            # 'coders', 'pair', or a machine kind (MachineKind.key)
    machine: str | None = None      # what the machine column is, e.g. "machine, model v7, ..."

    @property
    def label(self) -> str:
        names = " + ".join(self.coders)
        return f"{names} ({self.machine})" if self.machine else names

    def as_dict(self) -> dict[str, Any]:
        out = self.pooled.as_dict()
        out["units"] = self.units
        out["coders"] = list(self.coders)
        out["kind"] = self.kind
        out["label"] = self.label
        if self.machine:
            out["machine"] = self.machine
        out["summary"] = ("pooled: every (segment, code) pair as one binary unit; the interval "
                          "resamples segments")
        out["mean_over_codes"] = dict(self.mean_over_codes)
        out["per_code"] = self.per_code
        return out


@dataclass
class StudyAgreement:
    """Agreement in a study. ``comparisons[0]`` is the compared human coders together; with
    more than two, every pair follows; with the machine, each human against each kind of
    machine judgement (cross-validated, unseen), never pooled with one another."""

    coders: list[str]
    units: int
    codes: list[str]
    comparisons: list[Comparison]
    documents: list[str] | None = None
    machine: list[MachineKind] = field(default_factory=list)
    overlap: float = 0.0        # the share of a segment a coded span must cover to mark it
    spans: int = 0              # the compared coders' codings on spans rather than segments

    @property
    def span_rule(self) -> str | None:
        """How coded spans were turned into segment marks, when there were any."""
        if not self.spans:
            return None
        return (f"{self.spans} coding(s) are on spans, not whole segments: "
                f"{overlap_rule(self.overlap)}")

    def as_dict(self) -> dict[str, Any]:
        out = self.comparisons[0].as_dict()
        out["codes"] = list(self.codes)
        out["documents"] = self.documents
        out["overlap"] = self.overlap
        out["span_codings"] = self.spans
        if self.span_rule:
            out["span_rule"] = self.span_rule
        if self.machine:
            out["machine"] = [{"kind": m.key, "label": m.label, "units": len(m.units)}
                              for m in self.machine]
        if len(self.comparisons) > 1:
            out["comparisons"] = [c.as_dict() for c in self.comparisons[1:]]
        return out

    def table(self) -> pd.DataFrame:
        """One row per (comparison, code), then 'mean over codes' and 'pooled' rows."""
        rows = []
        for comp in self.comparisons:
            label = comp.label
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


def overlap_rule(overlap: float) -> str:
    """The sentence an agreement table carries about coded spans."""
    if overlap <= 0:
        return "a coded span marks every segment it overlaps at all"
    return f"a coded span marks every segment it covers at least {overlap:.0%} of"


def _reading_order(study: Store, documents: list[str] | None, among: set[int]) -> list[int]:
    """The segments ``among`` (of ``documents``) in the order of ``study.segments()``
    (document, position), without reading every segment and its text (at 30,000 segments
    that was most of `coder agree`'s time)."""
    sql = ("SELECT segment_id FROM segment_view WHERE segment_id IN "
           "(SELECT value FROM json_each(?))")
    params: list[Any] = [json.dumps(sorted(int(s) for s in among))]
    if documents:
        sql += " AND document IN (%s)" % ",".join("?" * len(documents))
        params += documents
    return [r[0] for r in study.db.query(sql + " ORDER BY document, position", params)]


def _decisions(study: Store, coders: list[str], machine: bool, documents: list[str] | None,
               overlap: float = 0.0, texts: bool = True):
    """Segments every coder decided (in reading order) and each coder's positive codes. A coded
    span marks (and decides) each segment it overlaps by more than nothing, or by at least
    ``overlap`` of the segment's characters. Without ``texts`` the segments DataFrame is not
    read (None is returned in its place)."""
    if not 0.0 <= overlap <= 1.0:
        raise CoderError(f"--overlap must be between 0 and 1, not {overlap}")
    segs = study.segments(documents=documents) if texts else None
    ph = ",".join("?" * len(coders))
    rows = study.db.query(
        "SELECT DISTINCT m.segment_id, c.name AS coder, m.code_id, m.decision "
        "FROM coding_segments m JOIN coders c ON c.id = m.coder_id "
        f"WHERE c.name IN ({ph}) AND m.decision IN ({','.join('?' * len(DECIDED))}) "
        "AND m.overlap > 0 AND m.overlap >= ? * m.length", [*coders, *DECIDED, overlap])
    order = segs.segment_id.tolist() if segs is not None else _reading_order(
        study, documents, {r["segment_id"] for r in rows})
    in_scope = set(order)
    rows = [r for r in rows if r["segment_id"] in in_scope]
    decided = None
    for c in coders:
        s = {r["segment_id"] for r in rows if r["coder"] == c}
        decided = s if decided is None else decided & s
    units = [int(s) for s in order if s in (decided or set())]
    marks: dict[str, dict[int, set[str]]] = {c: {} for c in coders}
    for r in rows:
        if r["decision"] in POSITIVE and r["code_id"] is not None:
            marks[r["coder"]].setdefault(r["segment_id"], set()).add(r["code_id"])
    if machine:
        marks[MACHINE], _ = machine_marks(study, units)
    return segs, units, marks


# -- the machine as a coder ----------------------------------------------------------------------
@dataclass
class MachineKind:
    """One kind of machine judgement, never pooled with another: 'cross-validated' (out-of-fold
    predictions for segments a model learned from), 'unseen' (suggestions on segments it did
    not learn from) or 'unknown' (a model trained before coder kept out-of-fold predictions:
    its suggestions may be on its own training data)."""

    key: str
    label: str
    units: list[int]


def _model_kinds(study: Store) -> dict[int, str]:
    return {r["version"]: r["kind"] for r in study.db.query("SELECT version, kind FROM models")}


def machine_marks(study: Store, units: list[int]
                  ) -> tuple[dict[int, set[str]], list[MachineKind]]:
    """The machine's codes on each unit and which kind of judgement each is. A segment a
    trained model learned from is judged by that model's cross-validated prediction (its
    out-of-fold score at or above a threshold chosen without its fold, at most as many codes
    as a suggestion holds); any other segment by its current suggestions at or above their
    threshold (0.5 where none is stored)."""
    from coder.machine.stored import out_of_fold

    if study.db.one("SELECT 1 FROM suggestions LIMIT 1") is None:
        raise NothingToDo("the study has no suggestions for --machine to compare",
                          hint=f"make some first: coder suggest {study.path}")
    # only the units' suggestions are read (a study of 30,000 segments holds ~100,000)
    sug = study.db.query(
        "SELECT segment_id, code_id, score, COALESCE(threshold, 0.5) AS threshold, rank, "
        "model_version FROM suggestions WHERE segment_id IN (SELECT value FROM json_each(?))",
        (json.dumps([int(u) for u in units]),))
    kinds = _model_kinds(study)
    version_of: dict[int, int] = {}  # the newest model that suggested on each unit
    suggested: dict[int, set[str]] = {}
    for r in sug:
        seg, v = r["segment_id"], r["model_version"]
        if v is not None and (seg not in version_of or v > version_of[seg]):
            version_of[seg] = v
        if r["score"] >= r["threshold"]:
            suggested.setdefault(seg, set()).add(r["code_id"])
    latest = max((v for v, k in kinds.items() if k == "trained"), default=None)
    top_k = max(r["rank"] for r in sug) if sug else 3
    marks: dict[int, set[str]] = {}
    groups: dict[str, dict[str, Any]] = {}
    folds: dict[int, Any] = {}

    def add(key: str, version, unit: int, what: str | None = None) -> None:
        g = groups.setdefault(key, {"versions": set(), "units": [], "what": set()})
        if version is not None:
            g["versions"].add(int(version))
        if what:
            g["what"].add(what)
        g["units"].append(unit)

    for u in units:
        v = version_of.get(u)
        v = int(v) if v is not None and not pd.isna(v) else latest
        if v is not None and kinds.get(v) == "trained":
            if v not in folds:
                oof = out_of_fold(study, v)
                if oof is not None:
                    oof = (oof, {int(s): i for i, s in enumerate(oof.segment_ids)},
                           oof.decisions())
                folds[v] = oof
            oof = folds[v]
            if oof is None:
                marks[u] = set(suggested.get(u, set()))
                add("unknown", v, u)
                continue
            model, row_of, decided = oof
            if u in row_of:
                i = row_of[u]
                hits = np.flatnonzero(decided[i])
                hits = hits[np.argsort(-model.scores[i, hits], kind="stable")][:top_k]
                marks[u] = {model.code_ids[j] for j in hits}
                add("cross-validated", v, u, model.describe())
                continue
        marks[u] = set(suggested.get(u, set()))
        add("unseen", v if v in kinds else None, u, kinds.get(v, "none"))
    out = []
    for key in ("cross-validated", "unseen", "unknown"):
        if key not in groups:
            continue
        g = groups[key]
        vs = sorted(g["versions"])
        model = (("model v" if len(vs) == 1 else "models v") + ", v".join(map(str, vs))
                 if vs else "suggestions with no model recorded")
        if key == "cross-validated":
            label = f"machine, {model}, " + "; ".join(sorted(g["what"]))
        elif key == "unseen":
            label = f"machine, {model}, " + (
                "segments it was not trained on" if "trained" in g["what"]
                else "codebook similarity only (learned from no segment)"
                if g["what"] == {"codebook"}
                else "no trained model in the study" if latest is None
                else "not linked to a trained model")
        else:
            label = (f"machine, {model}, in-sample where it was trained (no cross-validated "
                     f"predictions kept; retrain: coder train {study.path})")
        out.append(MachineKind(key=key, label=label, units=g["units"]))
    return marks, out


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def study_agreement(study: Store, coders: list[str], *, machine: bool = False,
                    codes: list[str] | None = None, documents: list[str] | None = None,
                    ci: bool = True, resamples: int = DEFAULT_RESAMPLES,
                    seed: int = DEFAULT_SEED, overlap: float = 0.0) -> StudyAgreement:
    """Per-code (present/absent per segment) agreement between coders, with the mean over codes
    and a pooled figure. Only segments every compared human coder decided count. The machine
    (``machine=True``, see `machine_marks`) is compared with each human on those segments,
    separately for each kind of judgement: cross-validated predictions where a model learned
    from the segment, suggestions where it did not."""
    coders = _check_coders(study, coders, machine)
    study.check_documents(documents)
    book, selected = _code_selection(study, codes)
    _, units, marks = _decisions(study, coders, False, documents, overlap, texts=False)
    everyone = coders + ([MACHINE] if machine else [])
    if not units:
        raise NothingToDo("no segment was decided by every one of: " + ", ".join(coders),
                          hint="agreement counts only segments all compared coders have coded")
    machine_kinds: list[MachineKind] = []
    if machine:
        marks[MACHINE], machine_kinds = machine_marks(study, units)
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

    every = np.arange(len(units))
    groups: list[tuple[list[str], np.ndarray, str, str | None]] = []
    if len(coders) >= 2:
        groups.append((coders, every, "coders", None))
    if len(coders) > 2:
        groups += [([a, b], every, "pair", None)
                   for i, a in enumerate(coders) for b in coders[i + 1:]]
    for mk in machine_kinds:
        rows_of = np.array([unit_pos[u] for u in mk.units], dtype=int)
        groups += [([h, MACHINE], rows_of, mk.key, mk.label) for h in coders]
    comparisons = []
    for group, on, kind, what in groups:
        cols = [everyone.index(c) for c in group]
        per_code = []
        for k, cid in enumerate(selected):
            a = agreement(cube[k][np.ix_(on, cols)], coders=group, categories=[0, 1], ci=ci,
                          resamples=resamples, seed=seed)
            d = a.as_dict()
            row = {"code_id": cid, "code": path(cid), "units": a.units, "coders": list(group),
                   **{m: d[m] for m in MEASURES}, "alpha_ci95": d["alpha_ci95"]}
            row["positives"] = {c: int(cube[k][on, everyone.index(c)].sum()) for c in group}
            row["notes"] = d["notes"]
            per_code.append(row)
        pooled_x = cube[:, on][:, :, cols].reshape(-1, len(cols))
        clusters = np.tile(np.arange(len(on)), len(selected))
        pooled = agreement(pooled_x, coders=group, categories=[0, 1], ci=ci,
                           resamples=resamples, seed=seed, clusters=clusters)
        mean = {m: _mean(r[m] for r in per_code) for m in MEASURES}
        comparisons.append(Comparison(coders=group, units=len(on), per_code=per_code,
                                      mean_over_codes=mean, pooled=pooled, kind=kind,
                                      machine=what))
    spans = study.db.one(
        "SELECT COUNT(*) FROM codings k JOIN coders c ON c.id = k.coder_id WHERE c.name IN "
        f"({','.join('?' * len(coders))}) AND k.start_char IS NOT NULL", coders)[0]
    return StudyAgreement(coders=everyone, units=len(units), codes=[path(c) for c in selected],
                          comparisons=comparisons, documents=documents, machine=machine_kinds,
                          overlap=overlap, spans=spans)


# -- disagreements and reconciling --------------------------------------------------------------
SHEET_FIXED = ["document", "segment", "speaker", "previous", "text", "next"]


def disagreements(study: Store, coders: list[str], *, machine: bool = False,
                  codes: list[str] | None = None, documents: list[str] | None = None,
                  overlap: float = 0.0) -> pd.DataFrame:
    """Every segment (decided by all coders) whose coders' codes differ: each coder's codes,
    the text with the previous and next segment as context, and empty ``agreed``/``reason``
    columns to fill in for ``reconcile``."""
    coders = _check_coders(study, coders, machine)
    study.check_documents(documents)
    book, selected = _code_selection(study, codes)
    segs, units, marks = _decisions(study, coders, machine, documents, overlap)
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
            check_package(path.read_bytes(), path, kind="spreadsheet (.xlsx)",
                          hint="save it again as .xlsx, or as CSV")
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
    status: ConsensusStatus | None = None   # what the consensus covers afterwards


# -- the consensus coder: what it covers -----------------------------------------------------------
# A consensus coder stands for every segment its coders decided: where they agree, their
# decision is carried over (source 'consensus-agreed'); where they disagree, the reconciled
# decision (source 'reconcile'); segments only some of them decided follow the --single rule
# (keep: carried over as that coder decided, source 'consensus-single'; drop: left out; ask:
# open until reconciled). Each carried or reconciled decision keeps the ids of the coders'
# decisions it came from (consensus_sources).
SINGLE_RULES = ("keep", "drop", "ask")
DEFAULT_SINGLE = "keep"
CARRIED = ("consensus-agreed", "consensus-single")


def _names(names: list[str], word: str = "and") -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {word} {names[-1]}"


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


@dataclass
class ConsensusStatus:
    """How far a consensus coder stands for its coders' decisions, counted from the study as
    it is now. ``coders`` is None when how it was made is not recorded (a consensus coder
    imported from a project, or written by hand): then nothing can be checked."""

    coder: str
    coders: list[str] | None
    single: str | None = None           # the rule for segments only some of them decided
    decided: int = 0                    # segments it should cover
    covered: int = 0                    # ... that it does
    agreed: int = 0                     # carried over where they agree
    reconciled: int = 0                 # reconciled (or decided as the consensus coder)
    single_kept: int = 0                # decided by only some of them, carried over (keep)
    single_dropped: int = 0             # decided by only some of them, left out (drop)
    open_disagreements: int = 0
    open_single: int = 0                # decided by only some of them, to reconcile (ask)
    not_carried: int = 0                # agreed (or kept) segments it does not hold
    stale: int = 0                      # their decisions after it was built
    built_at: str | None = None
    legacy: bool = False                # made by an older coder: the disagreements alone
    open_segments: list[int] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not (self.open_disagreements or self.open_single or self.not_carried
                    or self.stale)

    def _some(self) -> str:
        return "only one of them" if self.coders and len(self.coders) == 2 else "only some of them"

    def problems(self) -> list[str]:
        out = []
        if self.open_disagreements:
            out.append(f"{_count(self.open_disagreements, 'disagreement')} open")
        if self.open_single:
            out.append(f"{_count(self.open_single, 'segment')} decided by {self._some()} open "
                       "(--single ask)")
        if self.not_carried:
            if self.legacy:
                out.append(f"{_count(self.not_carried, 'segment')} they agree on (or only one "
                           "of them decided) not in it: it was made by an older coder, from the "
                           "disagreements alone")
            else:
                out.append(f"{_count(self.not_carried, 'segment')} they decided since "
                           f"{'is' if self.not_carried == 1 else 'are'} not in it")
        if self.stale:
            out.append(f"{_names(self.coders or [], 'or')} made "
                       f"{_count(self.stale, 'decision')} after it was built ({self.built_at})")
        return out

    def message(self) -> str:
        """One line: what it covers and what is missing (for a refusal or a table's header)."""
        return (f"consensus '{self.coder}' covers {self.covered} of {self.decided} segments "
                f"decided by {_names(self.coders or [])}: " + "; ".join(self.problems()))

    def command(self, study_path) -> str:
        return (f"coder reconcile {study_path} --coders {','.join(self.coders or [])} "
                f"--as {self.coder}")

    def summary(self) -> str:
        """What it holds, for `coder reconcile` and the tables' notes."""
        if self.coders is None:
            return (f"consensus coder {self.coder} (how it was built is not recorded, so what "
                    "it covers cannot be checked)")
        parts = [f"{self.agreed} they agree on (carried over)", f"{self.reconciled} reconciled"]
        if self.single_kept:
            parts.append(f"{self.single_kept} decided by {self._some()} (kept, --single keep)")
        text = (f"consensus coder '{self.coder}' of {_names(self.coders)} covers {self.covered} "
                f"of {self.decided} segments they decided: {', '.join(parts)}")
        if self.single_dropped:
            text += (f"; {_count(self.single_dropped, 'segment')} decided by {self._some()} "
                     "left out (--single drop)")
        return text

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "open_segments"}
        out["complete"] = self.complete
        out["problems"] = self.problems()
        return out


def _decisions_by_segment(study: Store, members: dict[str, int]
                          ) -> dict[int, dict[str, tuple[frozenset, tuple[int, ...]]]]:
    """segment -> coder -> (the codes they put on it, the ids of their decisions on it)."""
    ph = ",".join("?" * len(members))
    out: dict[int, dict[str, list]] = {}
    names = {i: n for n, i in members.items()}
    for r in study.db.query(
            # a member's coded span counts on every segment it overlaps (consensus is built
            # on segments)
            f"SELECT coding_id AS id, segment_id, coder_id, code_id, decision FROM "
            f"coding_segments WHERE coder_id IN ({ph}) AND overlap > 0 AND decision IN "
            f"({','.join('?' * len(DECIDED))}) ORDER BY coding_id, segment_id",
            (*members.values(), *DECIDED)):
        mine = out.setdefault(r["segment_id"], {}).setdefault(names[r["coder_id"]], [set(), []])
        if r["decision"] in POSITIVE and r["code_id"] is not None:
            mine[0].add(r["code_id"])
        mine[1].append(r["id"])
    return {s: {c: (frozenset(v[0]), tuple(v[1])) for c, v in per.items()}
            for s, per in out.items()}


def _state(per: dict[str, tuple[frozenset, tuple]], members: list[str]
           ) -> tuple[str, frozenset | None]:
    """'agreed' / 'disagree' (all decided), 'single' / 'split' (only some did), and the codes
    the deciders share when they agree."""
    sets = {per[m][0] for m in members if m in per}
    agree = next(iter(sets)) if len(sets) == 1 else None
    if all(m in per for m in members):
        return ("agreed" if agree is not None else "disagree"), agree
    return ("single" if agree is not None else "split"), agree


def _consensus_rows(study: Store, coder_id: int) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for r in study.db.query(
            "SELECT k.id, k.segment_id, k.code_id, k.decision, k.source, s.source_coding_id "
            "FROM codings k LEFT JOIN consensus_sources s ON s.coding_id = k.id "
            f"WHERE k.coder_id = ? AND k.decision IN ({','.join('?' * len(DECIDED))})",
            (coder_id, *DECIDED)):
        seg = out.setdefault(r["segment_id"], {"ids": set(), "codes": set(), "sources": set(),
                                               "from": set()})
        seg["ids"].add(r["id"])
        seg["sources"].add(r["source"])
        if r["decision"] in POSITIVE and r["code_id"] is not None:
            seg["codes"].add(r["code_id"])
        if r["source_coding_id"] is not None:
            seg["from"].add(r["source_coding_id"])
    return out


def _members(study: Store, coder_id: int) -> tuple[list[str] | None, Any, bool]:
    """The coders a consensus coder reconciles, its build record, and whether it was made by
    an older coder (no record; the coders read from its 'reconciled from ...' memos)."""
    build = study.db.one("SELECT * FROM consensus_builds WHERE coder_id=?", (coder_id,))
    if build is not None:
        names = [r["name"] for r in study.db.query(
            "SELECT c.name FROM consensus_members m JOIN coders c ON c.id = m.coder_id "
            "WHERE m.consensus_id = ? ORDER BY m.position", (coder_id,))]
        return names, build, False
    memos = {r["memo"] for r in study.db.query(
        "SELECT DISTINCT memo FROM codings WHERE coder_id=? AND source='reconcile'", (coder_id,))}
    if len(memos) == 1:
        memo = next(iter(memos)) or ""
        if memo.startswith("reconciled from "):
            names = memo.removeprefix("reconciled from ").split(", ")
            if len(names) >= 2 and set(names) <= set(study.coders()):
                return names, None, True
    return None, None, False


def consensus_status(study: Store, name: str) -> ConsensusStatus:
    """What a consensus coder covers of its coders' decisions now, what is open, and whether
    they decided anything after it was built."""
    row = study.db.one("SELECT id, kind FROM coders WHERE name=?", (name,))
    if row is None:
        raise UnknownReference(f"unknown coder '{name}'",
                               hint="coders: " + (", ".join(study.coders()) or "none yet"))
    members, build, legacy = _members(study, row["id"])
    if members is None:
        return ConsensusStatus(coder=name, coders=None)
    rule = build["single"] if build is not None else DEFAULT_SINGLE
    st = ConsensusStatus(coder=name, coders=members, single=rule, legacy=legacy,
                         built_at=build["built_at"] if build is not None else None)
    ids = {r["name"]: r["id"] for r in study.db.query(
        "SELECT id, name FROM coders WHERE name IN (%s)" % ",".join("?" * len(members)),
        members)}
    per_segment = _decisions_by_segment(study, ids)
    mine = _consensus_rows(study, row["id"])
    order = {r[0]: i for i, r in enumerate(study.db.query(
        "SELECT segment_id FROM segment_view ORDER BY document, position"))}
    for seg in sorted(per_segment, key=lambda s: order.get(s, 1 << 60)):
        state, _ = _state(per_segment[seg], members)
        held = mine.get(seg)
        if state in ("single", "split") and rule == "drop" and held is None:
            st.single_dropped += 1
            continue
        st.decided += 1
        if held is not None:
            st.covered += 1
            if held["sources"] == {"consensus-agreed"}:
                st.agreed += 1
            elif held["sources"] == {"consensus-single"}:
                st.single_kept += 1
            else:
                st.reconciled += 1
        elif state == "agreed" or (state == "single" and rule == "keep"):
            st.not_carried += 1
        elif state == "disagree" or (state == "split" and rule == "keep"):
            st.open_disagreements += 1
            st.open_segments.append(seg)
        else:
            st.open_single += 1
            st.open_segments.append(seg)
    if build is not None:
        st.stale = study.db.one(
            "SELECT COUNT(*) FROM coding_history WHERE id > ? AND decision != 'auto' AND "
            "coder_id IN (%s)" % ",".join("?" * len(ids)),
            (build["history_mark"], *ids.values()))[0]
    return st


def _consensus_coder(study: Store, coders: list[str], as_coder: str,
                     single: str | None = None) -> list[str]:
    from coder.store import check_coder_name

    as_coder = check_coder_name(as_coder)
    coders = _check_coders(study, coders, False)
    if single is not None and single not in SINGLE_RULES:
        raise CoderError(f"unknown --single rule '{single}'", hint="use keep, drop or ask")
    if as_coder in coders:
        raise CoderError(f"the consensus coder '{as_coder}' is one of the compared coders",
                         hint="choose another name with --as")
    row = study.db.one("SELECT id, kind FROM coders WHERE name=?", (as_coder,))
    if row is not None and row["kind"] != "consensus":
        raise CoderError(f"coder '{as_coder}' exists and is a {row['kind']} coder, not a "
                         "consensus coder", hint="choose another name with --as")
    if row is not None:
        members, _, _ = _members(study, row["id"])
        if members is not None and set(members) != set(coders):
            raise CoderError(f"consensus coder '{as_coder}' reconciles {', '.join(members)}, "
                             f"not {', '.join(coders)}", hint="choose another name with --as")
    return coders


def _build(study: Store, coders: list[str], as_coder: str, single: str | None) -> None:
    """Bring a consensus coder up to date inside the caller's transaction: carry over what the
    coders agree on (and, with --single keep, what only some of them decided), drop carried
    decisions they no longer agree on, keep every reconciled decision; then record the rule,
    the coders and how far their decisions were read. Only what changed is rewritten."""
    conn = study.db.conn
    if study.db.one("SELECT 1 FROM coders WHERE name=?", (as_coder,)) is None:
        conn.execute("INSERT INTO coders (name, kind, created_at) VALUES (?, 'consensus', ?)",
                     (as_coder, now()))
    cid = study.db.one("SELECT id FROM coders WHERE name=?", (as_coder,))["id"]
    build = study.db.one("SELECT single FROM consensus_builds WHERE coder_id=?", (cid,))
    rule = single or (build["single"] if build is not None else DEFAULT_SINGLE)
    ids = {r["name"]: r["id"] for r in study.db.query(
        "SELECT id, name FROM coders WHERE name IN (%s)" % ",".join("?" * len(coders)), coders)}
    per_segment = _decisions_by_segment(study, ids)
    mine = _consensus_rows(study, cid)
    book = study.codebook()
    stamp = now()
    carried = {seg: held for seg, held in mine.items() if held["sources"] <= set(CARRIED)}
    for seg, per in per_segment.items():
        if seg in mine and seg not in carried:
            continue  # reconciled: settled by people, never overwritten
        state, codes = _state(per, coders)
        want = ("consensus-agreed" if state == "agreed" else
                "consensus-single" if state == "single" and rule == "keep" else None)
        sources = {i for _, decision_ids in per.values() for i in decision_ids}
        held = carried.pop(seg, None)
        if held is not None and want is not None and held["sources"] == {want} and \
                held["codes"] == set(codes or ()) and held["from"] == sources:
            continue
        if held is not None:
            conn.executemany("DELETE FROM codings WHERE id=?", [(i,) for i in held["ids"]])
        if want is None:
            continue
        deciders = [c for c in coders if c in per]
        memo = (f"agreed by {_names(deciders)}" if want == "consensus-agreed" else
                f"decided by {_names(deciders)} only; kept (--single keep)")
        for code_id, decision in [(c, "confirmed") for c in sorted(codes or ())] or [
                (None, "no_code")]:
            coding = conn.execute(
                "INSERT INTO codings (segment_id, coder_id, code_id, decision, codebook_version,"
                " memo, source, created_at) VALUES (?,?,?,?,?,?,?,?)",
                (seg, cid, code_id, decision, book.version, memo, want, stamp)).lastrowid
            conn.executemany("INSERT INTO consensus_sources (coding_id, source_coding_id) "
                             "VALUES (?,?)", [(coding, i) for i in sorted(sources)])
    for held in carried.values():  # carried decisions on segments nobody decides any more
        conn.executemany("DELETE FROM codings WHERE id=?", [(i,) for i in held["ids"]])
    mark = conn.execute("SELECT COALESCE(MAX(id), 0) FROM coding_history").fetchone()[0]
    conn.execute("INSERT INTO consensus_builds (coder_id, single, history_mark, built_at) "
                 "VALUES (?,?,?,?) ON CONFLICT(coder_id) DO UPDATE SET single=excluded.single, "
                 "history_mark=excluded.history_mark, built_at=excluded.built_at",
                 (cid, rule, mark, stamp))
    conn.execute("DELETE FROM consensus_members WHERE consensus_id=?", (cid,))
    conn.executemany("INSERT INTO consensus_members (consensus_id, coder_id, position) "
                     "VALUES (?,?,?)", [(cid, ids[c], i) for i, c in enumerate(coders)])


def build_consensus(study: Store, coders: list[str], as_coder: str = "consensus", *,
                    single: str | None = None) -> ConsensusStatus:
    """Make or bring up to date a consensus coder of ``coders`` (see `_build`); ``single``:
    keep, drop or ask for segments only some of them decided (default: the rule it was built
    with, else keep). Returns what it covers afterwards."""
    coders = _consensus_coder(study, coders, as_coder, single)
    with study.db.transaction():
        _build(study, coders, as_coder, single)
    return consensus_status(study, as_coder)


def open_items(study: Store, as_coder: str, *, codes: list[str] | None = None,
               documents: list[str] | None = None) -> pd.DataFrame:
    """The segments a consensus coder still needs reconciled (disagreements, and with --single
    ask segments only some of its coders decided), as the disagreements sheet lays them out;
    'not decided' where a coder did not decide the segment."""
    status = consensus_status(study, as_coder)
    members = status.coders or []
    study.check_documents(documents)
    book, selected = _code_selection(study, codes)
    keep = set(selected) if selected is not None else None
    columns = [*SHEET_FIXED, *members, "agreed", "reason"]
    if not status.open_segments:
        return pd.DataFrame(columns=columns)
    ids = {r["name"]: r["id"] for r in study.db.query(
        "SELECT id, name FROM coders WHERE name IN (%s)" % ",".join("?" * len(members)), members)}
    per_segment = _decisions_by_segment(study, ids)
    segs = study.segments().sort_values(["document", "position"]).reset_index(drop=True)
    segs["previous"] = segs.groupby("document").text.shift(1).fillna("")
    segs["next"] = segs.groupby("document").text.shift(-1).fillna("")
    info = segs.set_index("segment_id")
    order = {c.id: c.position for c in book.codes}

    def label(cid: str) -> str:
        try:
            return book.get(cid).path
        except KeyError:
            return cid

    rows = []
    for u in status.open_segments:
        s = info.loc[u]
        if documents and s.document not in documents:
            continue
        per = per_segment.get(u, {})
        sets = {c: {x for x in per[c][0] if keep is None or x in keep}
                for c in members if c in per}
        if keep is not None and (len({frozenset(v) for v in sets.values()}) <= 1
                                 if len(sets) == len(members) else not any(sets.values())):
            continue  # nothing open on the chosen codes
        row = {"document": s.document, "segment": int(s.position), "speaker": s.speaker,
               "previous": s.previous, "text": s.text, "next": s.next}
        for c in members:
            row[c] = ("; ".join(label(x) for x in sorted(sets[c], key=lambda x: (
                order.get(x, 10**9), x))) or "none") if c in sets else "not decided"
        row["agreed"] = ""
        row["reason"] = ""
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


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
                     coders: list[str], as_coder: str = "consensus",
                     single: str | None = None) -> int:
    """Write consensus decisions in one transaction: per segment, the agreed codes (confirmed)
    or no_code, with the reason and the ids of the coders' decisions it settles; the consensus
    coder's earlier decisions on those segments are replaced (the audit trail keeps them), the
    compared coders' codings are untouched. The consensus is then brought up to date
    (`build_consensus`) in the same transaction."""
    coders = _consensus_coder(study, coders, as_coder, single)
    book = study.codebook()
    memo = "reconciled from " + ", ".join(coders)
    written = 0
    with study.db.transaction() as conn:
        if study.db.one("SELECT 1 FROM coders WHERE name=?", (as_coder,)) is None:
            conn.execute("INSERT INTO coders (name, kind, created_at) VALUES (?, 'consensus', ?)",
                         (as_coder, now()))
        cid = study.db.one("SELECT id FROM coders WHERE name=?", (as_coder,))["id"]
        members = {r["name"]: r["id"] for r in study.db.query(
            "SELECT id, name FROM coders WHERE name IN (%s)" % ",".join("?" * len(coders)),
            coders)}
        per_segment = _decisions_by_segment(study, members)
        stamp = now()
        for seg, ids, reason in plan:
            conn.execute("DELETE FROM codings WHERE segment_id=? AND coder_id=?", (seg, cid))
            sources = sorted(i for _, decision_ids in per_segment.get(seg, {}).values()
                             for i in decision_ids)
            decisions = [(c, "confirmed") for c in ids] or [(None, "no_code")]
            for code_id, decision in decisions:
                coding = conn.execute(
                    "INSERT INTO codings (segment_id, coder_id, code_id, decision,"
                    " codebook_version, memo, reason, source, created_at)"
                    " VALUES (?,?,?,?,?,?,?, 'reconcile', ?)",
                    (seg, cid, code_id, decision, book.version, memo, reason or None,
                     stamp)).lastrowid
                conn.executemany("INSERT INTO consensus_sources (coding_id, source_coding_id) "
                                 "VALUES (?,?)", [(coding, i) for i in sources])
                written += 1
        _build(study, coders, as_coder, single)
    return written


def reconcile_sheet(study: Store, sheet: str | Path, *, coders: list[str],
                    as_coder: str = "consensus", single: str | None = None) -> ReconcileReport:
    """Import an edited disagreements sheet as the decisions of a consensus coder: column
    ``agreed`` holds codes separated by ';' (ids, paths or unique names) or 'none', ``reason``
    the reconcilers' reason. Every row is checked first; nothing is written unless all are
    good; the coders' own codings are kept. Rows with an empty ``agreed`` are skipped. The
    consensus then also carries over what the coders agree on (see `build_consensus`)."""
    path = Path(sheet)
    coders = _consensus_coder(study, coders, as_coder, single)
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
    written = record_consensus(study, plan, coders=coders, as_coder=as_coder, single=single)
    return ReconcileReport(coder=as_coder, segments=len(plan), codings=written, skipped=skipped,
                           status=consensus_status(study, as_coder))


def to_json(obj: Agreement | StudyAgreement) -> str:
    return json.dumps(obj.as_dict(), indent=2, ensure_ascii=False)
