"""Inter-coder agreement coefficients on a units x coders matrix: pure numpy, no study, so
each can be checked against published values. `coder.analysis.agreement` builds the matrix.

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

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from coder.errors import CoderError, InputError

if TYPE_CHECKING:
    pass



MEASURES = ("percent_agreement", "cohen_kappa", "scott_pi", "fleiss_kappa", "krippendorff_alpha",
            "gwet_ac1", "brennan_prediger")
LEVELS = ("nominal", "ordinal", "interval", "ratio")
WEIGHTS = ("linear", "quadratic")
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
