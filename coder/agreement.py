"""Inter-coder agreement: the standard coefficients on a units x coders matrix, a ratings CSV,
or a study (unit = segment, one present/absent variable per code), plus the disagreements sheet
and its import back as a consensus coder.

Formulas (``n_uk`` = coders who gave unit u value k, ``m_u`` = values on unit u; only units with
``m_u >= 2`` are *pairable*):

* percent agreement: mean over pairable units of the share of agreeing coder pairs,
  ``sum_k n_uk (n_uk - 1) / (m_u (m_u - 1))`` (for two coders: the share of units both coded
  alike). Exact matches at every level.
* Cohen's kappa (1960; weighted: Cohen 1968): two coders, units both coded; weights over the
  category ranks, linear ``1 - |i-j|/(q-1)`` or quadratic ``1 - ((i-j)/(q-1))^2``.
* Scott's pi (1955): two coders, units both coded, chance from the pooled marginals.
* Fleiss' kappa (1971), in Gwet's (2014, ch. 2) form for missing ratings: observed agreement as
  above, chance ``sum_k pi_k^2`` with ``pi_k`` the mean over rated units of ``n_uk / m_u``
  (identical to Fleiss 1971 when every unit has the same number of ratings).
* Krippendorff's alpha (Krippendorff 2011, "Computing Krippendorff's alpha-reliability"):
  ``1 - D_o / D_e`` from the coincidence matrix, nominal/ordinal/interval/ratio metrics, missing
  values allowed. Same numbers as the ``krippendorff`` package, computed vectorised here.
* Gwet's AC1 (Gwet 2008; 2014): chance ``sum_k pi_k (1 - pi_k) / (q - 1)``.
* Brennan-Prediger (1981): chance ``1 / q``.
  ``q`` is the number of categories: the ones given (a study's codes are binary: 0/1), else
  the ones observed.
* 95% interval for alpha: a unit-resampling (cluster) bootstrap: ``resamples`` draws of the
  pairable units with replacement from ``numpy.random.default_rng(seed)``, alpha on each, the
  2.5th and 97.5th percentiles. Draws where alpha is undefined are dropped and counted.

A measure that does not apply or is undefined (a 0/0: no variation, no unit coded by two coders,
Cohen's kappa with three coders, ...) is ``None`` and ``notes[measure]`` says why; never NaN.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .db import now
from .errors import CoderError, InputError, NothingToDo, UnknownReference
from .study import POSITIVE

if TYPE_CHECKING:
    from .study import Study

MEASURES = ("percent_agreement", "cohen_kappa", "scott_pi", "fleiss_kappa", "krippendorff_alpha",
            "gwet_ac1", "brennan_prediger")
LEVELS = ("nominal", "ordinal", "interval", "ratio")
WEIGHTS = ("linear", "quadratic")
DECIDED = ("confirmed", "added", "rejected", "no_code")  # 'auto' is not a human decision
MACHINE = "machine"
DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0


class UndefinedMeasure(CoderError):
    """A coefficient is undefined for these data (a 0/0); the message says why."""


# -- the result ------------------------------------------------------------------------------
@dataclass
class Agreement:
    """All coefficients for one units x coders matrix; ``None`` where one does not apply."""

    units: int                      # pairable units: coded by at least two coders
    coders: list[str]
    level: str = "nominal"
    weights: str | None = None
    percent_agreement: float | None = None
    cohen_kappa: float | None = None
    scott_pi: float | None = None
    fleiss_kappa: float | None = None
    krippendorff_alpha: float | None = None
    gwet_ac1: float | None = None
    brennan_prediger: float | None = None
    alpha_ci95: list[float] | None = None
    bootstrap: dict[str, Any] | None = None   # method, resamples, seed, valid
    units_total: int = 0            # units with at least one value
    categories: int = 0
    notes: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"units": self.units, "coders": list(self.coders)}
        for m in MEASURES:
            out[m] = getattr(self, m)
        out["alpha_ci95"] = self.alpha_ci95
        out.update(level=self.level, weights=self.weights, units_total=self.units_total,
                   categories=self.categories, bootstrap=self.bootstrap, notes=dict(self.notes))
        return out


# -- encoding --------------------------------------------------------------------------------
def _as_matrix(matrix) -> np.ndarray:
    x = np.asarray(matrix, dtype=float)
    if x.ndim != 2:
        raise InputError(f"agreement needs a units x coders matrix; got {x.ndim} dimension(s)")
    return x


def _encode(x: np.ndarray, categories=None) -> tuple[np.ndarray, np.ndarray]:
    """Value domain (sorted) and an int index matrix (-1 = missing), without a full sort when
    the values are small integers (the common case: category codes, rating scales)."""
    mask = ~np.isnan(x)
    extra = np.asarray(sorted(set(categories)) if categories is not None else [], dtype=float)
    if not mask.any():
        return extra, np.full(x.shape, -1, dtype=np.int64)
    lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
    if len(extra):
        lo, hi = min(lo, extra.min()), max(hi, extra.max())
    integral = (np.array_equal(np.floor(extra), extra)
                and not np.any((np.floor(x) != x) & mask))
    if hi - lo < 100_000 and integral:
        shifted = np.where(mask, x - lo, hi - lo + 1).astype(np.int64)  # missing -> last slot
        span = int(hi - lo) + 2
        present = np.bincount(shifted.ravel(), minlength=span)[:-1] > 0
        if len(extra):
            present[(extra - lo).astype(np.int64)] = True
        domain = np.flatnonzero(present).astype(float) + lo
        lookup = np.append(np.cumsum(present) - 1, -1)
        return domain, lookup[shifted]
    vals = x[mask]
    domain = np.union1d(np.unique(vals), extra)
    idx = np.full(x.shape, -1, dtype=np.int64)
    idx[mask] = np.searchsorted(domain, vals)
    return domain, idx


MAX_CATEGORIES = 5000  # beyond this, values are measurements, not categories


def _check_categories(v: int) -> None:
    if v > MAX_CATEGORIES:
        raise UndefinedMeasure(f"{v:,} distinct values are too many for a category-based "
                               f"measure (at most {MAX_CATEGORIES:,}); for measurements use "
                               "Krippendorff's alpha at the interval level")


def _counts(idx: np.ndarray, v: int) -> np.ndarray:
    """n_uk: units x categories counts (missing, -1, goes to a dropped extra column)."""
    _check_categories(v)
    n = idx.shape[0]
    flat = (np.arange(n)[:, None] * (v + 1) + np.where(idx < 0, v, idx)).ravel()
    return np.bincount(flat, minlength=n * (v + 1)).reshape(n, v + 1)[:, :v].astype(float)


# -- the measures ------------------------------------------------------------------------------
def _pairable(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = c.sum(1)
    keep = m >= 2
    return c[keep], m[keep]


def _observed(c: np.ndarray) -> float:
    cp, m = _pairable(c)
    if len(cp) == 0:
        raise UndefinedMeasure("no unit was coded by two or more coders")
    return float(np.mean((cp * (cp - 1)).sum(1) / (m * (m - 1))))


def _pi(c: np.ndarray) -> np.ndarray:
    m = c.sum(1)
    rated = m >= 1
    return (c[rated] / m[rated][:, None]).mean(0)


def _chance_corrected(pa: float, pe: float, name: str) -> float:
    if math.isclose(pe, 1.0, rel_tol=0, abs_tol=1e-12):
        raise UndefinedMeasure(f"{name} is undefined: no variation (every value is the same "
                               "category, so chance agreement is 1)")
    return (pa - pe) / (1 - pe)


def percent_agreement(matrix) -> float:
    """Share of agreeing coder pairs, averaged over units coded by at least two coders."""
    x = _as_matrix(matrix)
    domain, idx = _encode(x)
    return _observed(_counts(idx, len(domain)))


def fleiss_kappa(matrix) -> float:
    """Fleiss' kappa for any number of coders; missing ratings as in Gwet (2014)."""
    x = _as_matrix(matrix)
    domain, idx = _encode(x)
    c = _counts(idx, len(domain))
    pa = _observed(c)
    return _chance_corrected(pa, float((_pi(c) ** 2).sum()), "Fleiss' kappa")


def _q(domain, categories) -> int:
    """Number of categories: the union of those given and those observed."""
    return len(domain)


def gwet_ac1(matrix, categories=None) -> float:
    """Gwet's AC1; ``categories``: every category the coders could use (default: observed)."""
    x = _as_matrix(matrix)
    domain, idx = _encode(x, categories)
    c = _counts(idx, len(domain))
    pa = _observed(c)
    q = _q(domain, categories)
    if q < 2:
        raise UndefinedMeasure("Gwet's AC1 needs at least two categories (only one was used; "
                               "give the possible categories)")
    pi = _pi(c)
    return _chance_corrected(pa, float((pi * (1 - pi)).sum() / (q - 1)), "Gwet's AC1")


def brennan_prediger(matrix, categories=None) -> float:
    """Brennan-Prediger: chance agreement 1/q for q categories."""
    x = _as_matrix(matrix)
    domain, idx = _encode(x, categories)
    pa = _observed(_counts(idx, len(domain)))
    q = _q(domain, categories)
    if q < 2:
        raise UndefinedMeasure("Brennan-Prediger needs at least two categories (only one was "
                               "used; give the possible categories)")
    return (pa - 1 / q) / (1 - 1 / q)


def _two(x: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    if x.shape[1] != 2:
        raise UndefinedMeasure(f"{name} is for two coders; {x.shape[1]} were compared "
                               "(see Fleiss' kappa or Krippendorff's alpha)")
    both = ~np.isnan(x).any(1)
    if not both.any():
        raise UndefinedMeasure(f"{name}: no unit was coded by both coders")
    return x[both, 0], x[both, 1]


def _confusion(a, b, categories=None) -> np.ndarray:
    domain, idx = _encode(np.column_stack([a, b]), categories)
    v = len(domain)
    _check_categories(v)
    return np.bincount(idx[:, 0] * v + idx[:, 1], minlength=v * v).reshape(v, v) / len(a)


def cohen_kappa(matrix, weights: str | None = None, categories=None) -> float:
    """Cohen's kappa for two coders (unweighted, or ``linear``/``quadratic`` weights over the
    category ranks); units both coded."""
    if weights not in (None, *WEIGHTS):
        raise InputError(f"unknown weights '{weights}'; use one of: {', '.join(WEIGHTS)}")
    a, b = _two(_as_matrix(matrix), "Cohen's kappa")
    p = _confusion(a, b, categories)
    q = len(p)
    i, j = np.indices((q, q))
    if weights is None or q < 2:
        w = (i == j).astype(float)
    elif weights == "linear":
        w = 1 - np.abs(i - j) / (q - 1)
    else:
        w = 1 - ((i - j) / (q - 1)) ** 2
    pa = float((w * p).sum())
    pe = float((w * np.outer(p.sum(1), p.sum(0))).sum())
    return _chance_corrected(pa, pe, "Cohen's kappa")


def scott_pi(matrix, categories=None) -> float:
    """Scott's pi for two coders: chance from the two coders' pooled marginals."""
    a, b = _two(_as_matrix(matrix), "Scott's pi")
    p = _confusion(a, b, categories)
    pooled = (p.sum(0) + p.sum(1)) / 2
    return _chance_corrected(float(np.trace(p)), float((pooled ** 2).sum()), "Scott's pi")


def _distance(domain: np.ndarray, level: str, n_v: np.ndarray) -> np.ndarray:
    c, k = domain[:, None], domain[None, :]
    if level == "nominal":
        return (c != k).astype(float)
    if level == "interval":
        return (c - k) ** 2
    if level == "ratio":
        s = c + k
        with np.errstate(invalid="ignore", divide="ignore"):
            d = np.where(s != 0, (c - k) / np.where(s != 0, s, 1), 0.0)
        return d ** 2
    # ordinal: (sum of n_g from c to k, minus half of n_c and n_k)^2
    cum = np.concatenate([[0.0], np.cumsum(n_v)])
    i, j = np.indices((len(n_v), len(n_v)))
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    return (cum[hi + 1] - cum[lo] - (n_v[lo] + n_v[hi]) / 2) ** 2


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise InputError(f"unknown level '{level}'; use one of: {', '.join(LEVELS)}")


def _alpha_from(num: float, den: float, n: float) -> float:
    if n < 2:
        raise UndefinedMeasure("Krippendorff's alpha: no unit was coded by two or more coders")
    if den <= 0:
        raise UndefinedMeasure("Krippendorff's alpha is undefined: no variation (every "
                               "pairable value is the same, so expected disagreement is 0)")
    return 1 - (n - 1) * num / den


def _interval_moments(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per pairable unit: m, sum of values, and within-unit disagreement sum_{i!=j}(v_i-v_j)^2
    over (m-1) -- interval alpha without a value domain (O(units x coders))."""
    mask = ~np.isnan(x)
    m = mask.sum(1).astype(float)
    keep = m >= 2
    x, mask, m = x[keep], mask[keep], m[keep]
    if not len(x):
        return m, m, m, m
    centre = np.nanmean(x[mask]) if mask.any() else 0.0
    v = np.where(mask, x - centre, 0.0)
    s1 = v.sum(1)
    s2 = (v * v).sum(1)
    a = 2 * (m * s2 - s1 * s1) / (m - 1)
    return m, s1, s2, a


def krippendorff_alpha(matrix, level: str = "nominal") -> float:
    """Krippendorff's alpha (2011) at a level of measurement; NaN marks a missing value."""
    _check_level(level)
    x = _as_matrix(matrix)
    if level == "interval":
        m, s1, s2, a = _interval_moments(x)
        n = m.sum()
        return _alpha_from(float(a.sum()), float(2 * (n * s2.sum() - s1.sum() ** 2)), float(n))
    domain, idx = _encode(x)
    cp, m = _pairable(_counts(idx, len(domain)))
    if not len(cp):
        raise UndefinedMeasure("Krippendorff's alpha: no unit was coded by two or more coders")
    cw = cp / (m - 1)[:, None]
    o = cw.T @ cp - np.diag(cw.sum(0))
    n_v = o.sum(0)
    d = _distance(domain, level, n_v)
    return _alpha_from(float((o * d).sum()), float(n_v @ d @ n_v), float(n_v.sum()))


def _ordinal_distance_batch(n_v: np.ndarray) -> np.ndarray:
    """Ordinal metric for a batch of value totals (b x V) -> (b x V x V)."""
    v = n_v.shape[1]
    cum = np.concatenate([np.zeros((len(n_v), 1)), np.cumsum(n_v, 1)], 1)
    i, j = np.indices((v, v))
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    return (cum[:, hi + 1] - cum[:, lo] - (n_v[:, lo] + n_v[:, hi]) / 2) ** 2


def alpha_bootstrap(matrix, level: str = "nominal", *, resamples: int = DEFAULT_RESAMPLES,
                    seed: int = DEFAULT_SEED, clusters=None, chunk: int = 100,
                    _patterns: bool = True) -> tuple[list[float] | None, dict[str, Any]]:
    """95% percentile interval for alpha by resampling pairable units (or ``clusters`` of rows,
    e.g. the segment each code row belongs to) with replacement. Returns (interval, info).

    Alpha depends on a resample only through sums of per-unit (per-cluster) features, so each
    resample is a weighted sum. When units fall into few distinct feature patterns (category
    data), the draw counts per pattern are drawn as one multinomial -- the same distribution
    as drawing units one by one, at a fraction of the cost."""
    _check_level(level)
    x = _as_matrix(matrix)
    info: dict[str, Any] = {"method": "unit-resampling bootstrap, percentile interval",
                            "resamples": int(resamples), "seed": int(seed), "valid": 0}
    pairable = (~np.isnan(x)).sum(1) >= 2
    groups = (np.asarray(clusters)[pairable] if clusters is not None
              else np.arange(int(pairable.sum())))
    if not len(groups) or resamples < 1:
        return None, info
    _, groups = np.unique(groups, return_inverse=True)
    g = int(groups.max()) + 1
    info["clusters"] = g
    xp = x[pairable]
    d = None
    if level == "interval":
        m, s1, s2, a = _interval_moments(xp)
        feats = np.column_stack([a, m, s1, s2])
    else:
        domain, idx = _encode(xp)
        cp, m = _pairable(_counts(idx, len(domain)))
        v = len(domain)
        if level == "ordinal":
            if v > 40:
                raise UndefinedMeasure(f"the ordinal bootstrap handles at most 40 ranks ({v} "
                                       "given)")
            cw = cp / (m - 1)[:, None]
            feats = (cw[:, :, None] * cp[:, None, :]).reshape(len(cp), v * v)
            feats[:, np.arange(v) * (v + 1)] -= cw
        else:
            d = _distance(domain, level, np.zeros(v))
            feats = np.column_stack([np.einsum("ui,ij,uj->u", cp, d, cp) / (m - 1), cp])
    if clusters is not None:  # per-cluster sums: weights are per cluster
        feats = np.column_stack([np.bincount(groups, weights=f, minlength=g) for f in feats.T])
    patterns, counts = np.unique(feats, axis=0, return_counts=True)
    by_pattern = _patterns and len(patterns) <= g // 4

    def alpha_of(s: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            if level == "interval":
                a_b, n, t1, t2 = s.T
                return 1 - (n - 1) * a_b / (2 * (n * t2 - t1 * t1))
            if level == "ordinal":
                o = s.reshape(len(s), v, v)
                n_v = o.sum(2)
                dd = _ordinal_distance_batch(n_v)
                den = np.einsum("bi,bij,bj->b", n_v, dd, n_v)
                return 1 - (n_v.sum(1) - 1) * (o * dd).sum((1, 2)) / den
            n_v = s[:, 1:]
            den = np.einsum("bi,ij,bj->b", n_v, d, n_v)
            return 1 - (n_v.sum(1) - 1) * s[:, 0] / den

    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        if by_pattern:
            s = rng.multinomial(g, counts / counts.sum(), size=b).astype(float) @ patterns
        else:
            draws = rng.integers(0, g, size=(b, g), dtype=np.int32)
            w = np.empty((b, g))
            for r in range(b):  # how often each unit (cluster) is drawn in resample r
                w[r] = np.bincount(draws[r], minlength=g)
            s = w @ feats
        alpha = alpha_of(s)
        alpha[~np.isfinite(alpha)] = np.nan
        out.append(alpha)
    values = np.concatenate(out)
    values = values[~np.isnan(values)]
    info["valid"] = int(len(values))
    if len(values) < max(1, resamples // 2):
        return None, info
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(lo), float(hi)], info


def agreement(matrix, *, coders: list[str] | None = None, level: str = "nominal",
              weights: str | None = None, categories=None, ci: bool = True,
              resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
              clusters=None) -> Agreement:
    """Every coefficient for a units x coders matrix (NaN = missing). Category-based measures
    (percent, kappas, pi, AC1, Brennan-Prediger) use exact matches; alpha uses ``level``;
    Cohen's kappa uses ``weights``."""
    _check_level(level)
    if weights not in (None, *WEIGHTS):
        raise InputError(f"unknown weights '{weights}'; use one of: {', '.join(WEIGHTS)}")
    x = _as_matrix(matrix)
    coders = list(coders) if coders is not None else [str(i + 1) for i in range(x.shape[1])]
    if len(coders) != x.shape[1]:
        raise InputError(f"{len(coders)} coder names for {x.shape[1]} columns")
    observed = ~np.isnan(x)
    res = Agreement(units=int((observed.sum(1) >= 2).sum()), coders=coders, level=level,
                    weights=weights, units_total=int(observed.any(1).sum()))
    domain, _ = _encode(x, categories)
    res.categories = _q(domain, categories)
    empty = [c for c, col in zip(coders, observed.T) if not col.any()]
    if empty:
        res.notes["coders"] = "coded no unit: " + ", ".join(empty)
    calls = {
        "percent_agreement": lambda: percent_agreement(x),
        "cohen_kappa": lambda: cohen_kappa(x, weights, categories),
        "scott_pi": lambda: scott_pi(x, categories),
        "fleiss_kappa": lambda: fleiss_kappa(x),
        "krippendorff_alpha": lambda: krippendorff_alpha(x, level),
        "gwet_ac1": lambda: gwet_ac1(x, categories),
        "brennan_prediger": lambda: brennan_prediger(x, categories),
    }
    for name, call in calls.items():
        try:
            setattr(res, name, float(call()))
        except UndefinedMeasure as e:
            res.notes[name] = e.detail
    if ci and res.krippendorff_alpha is not None:
        try:
            res.alpha_ci95, res.bootstrap = alpha_bootstrap(x, level, resamples=resamples,
                                                            seed=seed, clusters=clusters)
        except UndefinedMeasure as e:
            res.notes["alpha_ci95"] = e.detail
        else:
            if res.alpha_ci95 is None:
                res.notes["alpha_ci95"] = (f"only {res.bootstrap['valid']} of {resamples} "
                                           "bootstrap resamples had a defined alpha")
    elif ci:
        res.notes["alpha_ci95"] = "alpha is undefined, so is its interval"
    return res


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


def _check_coders(study: Study, coders: list[str] | None, machine: bool) -> list[str]:
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


def _code_selection(study: Study, patterns: list[str] | None):
    book = study.codebook()
    if not patterns:
        return book, None
    ids: list[str] = []
    for p in patterns:
        ids += [c.id for c in book.match(p)]
    return book, list(dict.fromkeys(ids))


def _decisions(study: Study, coders: list[str], machine: bool, documents: list[str] | None):
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


def study_agreement(study: Study, coders: list[str], *, machine: bool = False,
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


def disagreements(study: Study, coders: list[str], *, machine: bool = False,
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
        df.to_csv(path, index=False, quoting=csv.QUOTE_MINIMAL)
    elif suffix == ".xlsx":
        df.to_excel(path, index=False, sheet_name="disagreements")
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
    return df


@dataclass
class ReconcileReport:
    coder: str
    segments: int          # segments given a consensus decision
    codings: int           # rows written
    skipped: int           # rows left without an 'agreed' value


def _consensus_coder(study: Study, coders: list[str], as_coder: str) -> list[str]:
    from .study import check_coder_name

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


def plan_consensus(study: Study, rows: pd.DataFrame
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


def record_consensus(study: Study, plan: list[tuple[int, list[str], str]], *,
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


def reconcile_sheet(study: Study, sheet: str | Path, *, coders: list[str],
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
