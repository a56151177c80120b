"""Agreement on where coded spans begin and end (unitizing), not only on which segments they mark.

Each code is one binary continuum per document: the characters a coder gave the code (their
spans of it, overlapping spans merged) are that coder's units, the rest of the document is
their gaps. Documents are laid end to end, so a study is one continuum of all compared
documents' characters; no unit crosses a document boundary.

Two coefficients of Krippendorff's, both ``1 - D_o / D_e``:

``alpha_u``  -- uα of Krippendorff, Mathet, Bouvry & Widlöcher (2016), "On the reliability of
    unitizing textual continua: Further developments", Quality & Quantity 50:2347-2364. The
    observed coincidences are the lengths of the intersections of two coders' sections (unit
    with unit, unit with gap, gap with gap), over every ordered pair of coders, divided by
    m - 1; the expected coincidences treat a unit as one indivisible piece (it cannot be paired
    with itself: l² self-pairs) and a gap as l separate characters (l self-pairs)::

        o_ck = Σ_i Σ_j≠i Σ_g Σ_h |s_ig ∩ s_jh| / (m - 1)      (s of value c, s' of value k)
        e_ck = l.. (l_c. l_.k - [c = k] Σ_{sections s of value c} λ(s)) / (l..² - Σ_s λ(s))
        λ(unit) = l², λ(gap) = l, l.. = mL

    On a binary continuum (one code against nothing) uα is the paper's |uα ("the reliability of
    a binary distinction between relevant and irrelevant matter"):
    ``1 - o(code, gap) / e(code, gap)``.

``alpha_U_1995`` -- α_U of Krippendorff (1995, Sociological Methodology 25:47-76; 2004, Content
    Analysis 2nd ed. pp. 251-256, and "Measuring the reliability of qualitative text analysis
    data", Quality & Quantity 38:787-800): a positional distance between sections,
    δ² = (b_g - b_h)² + (e_g - e_h)² for two overlapping units, l² for a unit lying inside the
    other coder's gap, 0 otherwise, with

        D_o = Σ_i Σ_j≠i Σ_g Σ_h δ²_gh / (m (m - 1) L²)
        D_e = (2 / L) Σ_units [(N - 1)/3 (2l³ - 3l² + l) + l² Σ_gaps max(l_gap - l + 1, 0)]
              / (mL (mL - 1) - Σ_units l (l - 1))              (N: units of all coders)

    The 2016 paper replaced it ("behave[s] not as expected when applied to more than two
    observers"); it is kept because Krippendorff published worked examples for it (1995, 2004),
    which check how spans become continua and how codes are pooled. No worked example with
    published uα values was at hand: uα is checked against continua computed by hand
    (tests/test_unitizing.py). The paper itself was not at hand either: its equations (1), (4),
    (5a) and (6) are as quoted by open implementations, and agree with the 2004 D_e's count of
    pairable characters (mL(mL - 1) - Σ_units l(l - 1) = l..² - Σ_s λ(s)).

Pooled over codes (codes may overlap, so there is no single multi-valued continuum): the codes'
disagreements are summed, ``1 - Σ_code D_o / Σ_code D_e``, as Krippendorff (2004) pools the
categories of his example. The paper's cuα and (k)uα (agreement on the values of overlapping
units, given the unitizing) are not computed: they need each coder's units of different codes
to be mutually exclusive, which qualitative codings rarely are.

Mathet's γ (Mathet, Widlöcher & Métivier 2015) comes from the optional ``pygamma-agreement``
package, with a fixed seed for its sampled chance disorder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from coder.errors import CoderError, NothingToDo

if TYPE_CHECKING:
    from coder.store import Store

#: one coded span: (coder, document, start, end, code), [start, end) in characters
Span = tuple[str, Any, int, int, Any]

DEFAULT_GAMMA_SEED = 0  # as coefficients.DEFAULT_SEED, so `coder agree --seed` means one thing
GAMMA_MISSING = ("γ: not computed: pygamma-agreement is not installed "
                 "(pip install pygamma-agreement)")
#: pygamma's default; asking it for a precision instead (2%) drew 15,109 samples and took 274 s
#: on a two-unit continuum, against 1-2 s for these
GAMMA_SAMPLES = 30
GAMMA_DONE = ("γ: pygamma-agreement, combined categorical dissimilarity (α = β = 1), chance "
              f"disorder from {GAMMA_SAMPLES} sampled continua, numpy seed {{seed}}")
EXPLAIN = ("α_u: Krippendorff et al. (2016) uα, per code the characters each coder coded against "
           "the rest of each document (1 = the same characters, 0 = no better than chance); "
           "α_U 1995: Krippendorff's earlier α_U, from squared distances between the units' "
           "boundaries. γ: Mathet et al. (2015), units aligned one to one, their positional "
           "disorder against that of shuffled continua (1 = identical units).")


@dataclass(frozen=True)
class Coefficient:
    """1 - observed / expected disagreement; None when nothing could disagree (no unit, or the
    whole continuum one unit)."""
    value: float | None
    observed: float
    expected: float

    def as_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "observed": self.observed, "expected": self.expected}


def _ratio(observed: float, expected: float) -> Coefficient:
    observed, expected = float(observed), float(expected)
    value = None if expected <= 0 else 1.0 - observed / expected
    return Coefficient(value=value, observed=observed, expected=expected)


def pooled(coefficients: Iterable[Coefficient]) -> Coefficient:
    """1 - Σ D_o / Σ D_e (Krippendorff 2004's overall α over categories)."""
    cs = list(coefficients)
    return _ratio(sum(c.observed for c in cs), sum(c.expected for c in cs))


# -- one binary continuum ----------------------------------------------------------------------
def units_of(spans: Iterable[tuple[int, int]], length: int) -> np.ndarray:
    """A coder's units on one document: spans clipped to [0, length), overlapping ones merged
    (one coder cannot disagree with themself); spans that only touch stay two units."""
    pairs = sorted((max(0, int(s)), min(int(length), int(e))) for s, e in spans)
    out: list[list[int]] = []
    for s, e in pairs:
        if e <= s:
            continue
        if out and s < out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def gaps_of(units: np.ndarray, length: int) -> np.ndarray:
    """The complement of a coder's units in [0, length)."""
    starts = np.concatenate([[0], units[:, 1]])
    ends = np.concatenate([units[:, 0], [length]])
    keep = ends > starts
    return np.stack([starts[keep], ends[keep]], axis=1).astype(np.int64).reshape(-1, 2)


Continuum = Mapping[Any, tuple[int, list[np.ndarray]]]  # document -> (length, units per coder)


def _check(continuum: Continuum) -> int:
    ms = {len(units) for _, units in continuum.values()}
    if not continuum:
        raise NothingToDo("no document to compare")
    if len(ms) != 1 or next(iter(ms)) < 2:
        raise CoderError("unitizing agreement needs the same two or more coders on every "
                         "document")
    return next(iter(ms))


def alpha_u(continuum: Continuum) -> Coefficient:
    """Krippendorff et al. (2016) uα of one binary continuum (= |uα): see the module text."""
    m = _check(continuum)
    total = sum(length for length, _ in continuum.values())
    cross = 0.0     # Σ over characters of n1·n0: ordered coder pairs (code, gap) at a character
    coded = 0.0     # l_1.: characters coded, summed over coders
    squares = 0.0   # Σ over units of l²
    for length, units in continuum.values():
        if length <= 0:
            continue
        edges = np.zeros(length + 1, dtype=np.int64)
        for u in units:
            np.add.at(edges, u[:, 0], 1)
            np.add.at(edges, u[:, 1], -1)
            lengths = (u[:, 1] - u[:, 0]).astype(float)
            coded += lengths.sum()
            squares += (lengths ** 2).sum()
        n1 = np.cumsum(edges[:-1]).astype(float)
        cross += float((n1 * (m - n1)).sum())
    n = float(m * total)                      # l..
    gaps = n - coded                          # l_0. (λ(gap) = l, so Σ λ over gaps = l_0.)
    observed = cross / (m - 1)                # o(code, gap) = o(gap, code)
    denominator = n * n - squares - gaps
    expected = n * coded * gaps / denominator if denominator > 0 else 0.0
    # D_o = 2 o(code, gap) / l.., D_e = 2 e(code, gap) / l..
    return _ratio(2 * observed / n, 2 * expected / n)


def alpha_U_1995(continuum: Continuum) -> Coefficient:  # noqa: N802 (Krippendorff's capital U)
    """Krippendorff's (1995, 2004) α_U of one binary continuum: see the module text."""
    m = _check(continuum)
    total = sum(length for length, _ in continuum.values())
    if total <= 0:
        return _ratio(0.0, 0.0)
    distance = 0.0
    all_units, all_gaps = [], []
    for length, units in continuum.values():
        gaps = [gaps_of(u, length) for u in units]
        all_units += [u[:, 1] - u[:, 0] for u in units]
        all_gaps += [g[:, 1] - g[:, 0] for g in gaps]
        for i in range(m):
            for j in range(m):
                if i == j:
                    continue
                a, b = units[i].astype(float), units[j].astype(float)
                if len(a) and len(b):
                    s0, s1 = a[:, :1], b[:, 0][None, :]
                    e0, e1 = a[:, 1:], b[:, 1][None, :]
                    overlap = (np.minimum(e0, e1) - np.maximum(s0, s1)) > 0
                    distance += float((((s0 - s1) ** 2 + (e0 - e1) ** 2) * overlap).sum())
                # a unit of i inside a gap of j, and a gap of i holding a unit of j
                for inner, outer in ((a, gaps[j]), (b, gaps[i])):
                    if len(inner) and len(outer):
                        o = outer.astype(float)
                        inside = ((o[None, :, 0] <= inner[:, :1]) &
                                  (inner[:, 1:] <= o[None, :, 1])).any(axis=1)
                        distance += float((((inner[:, 1] - inner[:, 0]) ** 2) * inside).sum())
    observed = distance / (m * (m - 1) * float(total) ** 2)
    u = np.concatenate(all_units).astype(float) if all_units else np.zeros(0)
    g = np.sort(np.concatenate(all_gaps).astype(float)) if all_gaps else np.zeros(0)
    if not len(u):
        return _ratio(observed, 0.0)
    # Σ_gaps max(l_gap - l + 1, 0) for each unit length l, from suffix sums of sorted gaps
    first = np.searchsorted(g, u - 1, side="right")       # gaps longer than l - 1
    suffix = np.concatenate([np.cumsum(g[::-1])[::-1], [0.0]])
    fits = suffix[first] - (u - 1) * (len(g) - first)
    within = (len(u) - 1) / 3.0 * (2 * u ** 3 - 3 * u ** 2 + u) + u ** 2 * fits
    n = float(m * total)
    denominator = n * (n - 1) - float((u * (u - 1)).sum())
    expected = 2.0 / total * float(within.sum()) / denominator if denominator > 0 else 0.0
    return _ratio(observed, expected)


# -- spans to continua -------------------------------------------------------------------------
def continua(spans: Iterable[Span], lengths: Mapping[Any, int], coders: list[str] | None = None
             ) -> tuple[list[str], dict[Any, dict[Any, tuple[int, list[np.ndarray]]]]]:
    """Per code, per document: (length, each coder's units). Every document in ``lengths`` is
    on every code's continuum (a coder who never used the code there has one gap)."""
    spans = list(spans)
    names = list(dict.fromkeys(coders or sorted({s[0] for s in spans})))
    if len(names) < 2:
        raise CoderError("unitizing agreement needs at least two coders",
                         hint="e.g. --coders alice,bob")
    unknown_docs = {s[1] for s in spans} - set(lengths)
    if unknown_docs:
        raise CoderError("spans on documents without a length: "
                         + ", ".join(map(str, sorted(unknown_docs, key=str))))
    by: dict[Any, dict[Any, dict[str, list[tuple[int, int]]]]] = {}
    for coder, doc, start, end, code in spans:
        if coder in names:
            by.setdefault(code, {}).setdefault(doc, {}).setdefault(coder, []).append((start, end))
    codes = list(by)
    out = {}
    for code in codes:
        out[code] = {doc: (int(length), [units_of(by[code].get(doc, {}).get(c, []), length)
                                         for c in names])
                     for doc, length in lengths.items()}
    return names, out


@dataclass
class UnitizingTable:
    """Per code and pooled: uα (2016), α_U (1995), γ if computed. ``rows`` is one dict a code."""
    coders: list[str]
    documents: list[Any]
    characters: int
    rows: list[dict[str, Any]]
    pooled: dict[str, Any]
    gamma_note: str | None = None
    notes: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        recs = []
        for r in self.rows:
            rec = {"code": r["code"], "alpha_u": r["alpha_u"], "alpha_U_1995": r["alpha_U_1995"],
                   "gamma": r["gamma"], "characters": r["characters"]}
            for c in self.coders:
                rec[f"spans_{c}"] = r["spans"][c]
                rec[f"coded_characters_{c}"] = r["coded_characters"][c]
            recs.append(rec)
        return pd.DataFrame(recs)

    def as_dict(self) -> dict[str, Any]:
        return {"coders": self.coders, "documents": self.documents,
                "characters": self.characters, "per_code": self.rows, "pooled": self.pooled,
                "gamma_note": self.gamma_note, "notes": self.notes, "explanation": EXPLAIN}


def unitizing_table(spans: Iterable[Span], lengths: Mapping[Any, int], *,
                    coders: list[str] | None = None, codes: list[Any] | None = None,
                    labels: Mapping[Any, str] | None = None, gamma: bool = True,
                    seed: int = DEFAULT_GAMMA_SEED) -> UnitizingTable:
    """uα, α_U and (when pygamma-agreement is installed and ``gamma``) γ per code and pooled,
    from (coder, document, start, end, code) spans and each document's length."""
    spans = list(spans)
    names, per = continua(spans, lengths, coders)
    order = list(dict.fromkeys(codes)) if codes else list(per)
    for c in order:  # a chosen code nobody used: every coder all gap
        per.setdefault(c, {doc: (int(n), [units_of([], n) for _ in names])
                           for doc, n in lengths.items()})
    gamma_fn, gamma_note = None, "γ: not requested"
    if gamma:
        gamma_fn, gamma_note = ((mathet_gamma, GAMMA_DONE.format(seed=seed))
                                if gamma_available() else (None, GAMMA_MISSING))
    rows, alphas, olds = [], [], []
    for code in order:
        cont = per[code]
        a, old = alpha_u(cont), alpha_U_1995(cont)
        alphas.append(a)
        olds.append(old)
        counts = {c: 0 for c in names}
        for s in spans:
            if s[4] == code and s[0] in counts and s[1] in lengths:
                counts[s[0]] += 1
        chars = {c: int(sum(int((u[:, 1] - u[:, 0]).sum()) for _, us in cont.values()
                                for u in [us[i]]))
                 for i, c in enumerate(names)}
        g = gamma_fn({code: cont}, names, seed) if gamma_fn else None
        rows.append({"code": (labels or {}).get(code, str(code)), "code_id": code,
                     "alpha_u": a.value, "alpha_U_1995": old.value, "gamma": g,
                     "alpha_u_detail": a.as_dict(), "alpha_U_1995_detail": old.as_dict(),
                     "spans": counts, "coded_characters": chars,
                     "characters": int(sum(lengths.values()))})
    pool_a, pool_old = pooled(alphas), pooled(olds)
    g_all = gamma_fn({c: per[c] for c in order}, names, seed) if gamma_fn and order else None
    return UnitizingTable(
        coders=names, documents=list(lengths), characters=int(sum(lengths.values())),
        rows=rows, gamma_note=gamma_note,
        pooled={"alpha_u": pool_a.value, "alpha_U_1995": pool_old.value, "gamma": g_all,
                "alpha_u_detail": pool_a.as_dict(), "alpha_U_1995_detail": pool_old.as_dict(),
                "rule": "1 - Σ D_o / Σ D_e over codes; γ over all codes' units at once, "
                        "the code as the unit's category"})


# -- Mathet's γ through pygamma-agreement (optional) ----------------------------------------------
def gamma_available() -> bool:
    try:
        import pygamma_agreement  # noqa: F401
    except Exception:  # noqa: BLE001 -- missing, or broken (numba, cvxpy) is the same to us
        return False
    return True


@contextlib.contextmanager
def _quiet_seeded(seed: int):
    """pygamma samples with numpy's global generator and solves with GLPK, which prints: seed
    it for the call and put its state back, and keep the solver and its warnings quiet."""
    import logging

    state = np.random.get_state()
    root = logging.getLogger()
    level = root.level
    try:
        import cvxopt.glpk
        glpk = dict(cvxopt.glpk.options)
        cvxopt.glpk.options["msg_lev"] = "GLP_MSG_OFF"
    except Exception:  # noqa: BLE001
        cvxopt = None
    root.setLevel(logging.ERROR)
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)
        root.setLevel(level)
        if cvxopt is not None:
            cvxopt.glpk.options.clear()
            cvxopt.glpk.options.update(glpk)


def mathet_gamma(per_code: Mapping[Any, Continuum], coders: list[str], seed: int = DEFAULT_GAMMA_SEED
          ) -> float | None:
    """Mathet's γ over the given codes' units (documents laid end to end, a document's length
    apart so units of two documents never align), or None with fewer than two units."""
    from pyannote.core import Segment
    from pygamma_agreement import CombinedCategoricalDissimilarity, Continuum

    docs: list[Any] = []
    for cont in per_code.values():
        docs += [d for d in cont if d not in docs]
    lengths = {d: next(cont[d][0] for cont in per_code.values() if d in cont) for d in docs}
    apart = max(lengths.values(), default=0)
    offset, at = 0, {}
    for d in docs:
        at[d] = offset
        offset += lengths[d] + apart
    c = Continuum()
    n = 0
    for code, cont in per_code.items():
        for d, (_, units) in cont.items():
            for name, u in zip(coders, units):
                for s, e in u:
                    c.add(name, Segment(at[d] + int(s), at[d] + int(e)), str(code))
                    n += 1
    if n < 2 or len(c.annotators) < 2:
        return None
    with _quiet_seeded(seed):
        result = c.compute_gamma(CombinedCategoricalDissimilarity(alpha=1, beta=1),
                                 n_samples=GAMMA_SAMPLES)
    return float(result.gamma)


# -- from a study ------------------------------------------------------------------------------
def unitizing_agreement(store: Store, coders: list[str], *, codes: list[str] | None = None,
                        documents: list[str] | None = None, gamma: bool = True,
                        seed: int = DEFAULT_GAMMA_SEED) -> UnitizingTable:
    """Unitizing agreement between coders on a study's coded spans (a whole-segment coding is
    its segment's characters), per code and pooled. Only documents in which every compared
    coder made at least one decision count: a coder who never opened a document did not say
    it holds nothing."""
    from coder.analysis.agreement import DECIDED, _check_coders, _code_selection
    from coder.store import POSITIVE

    coders = _check_coders(store, coders, False)
    store.check_documents(documents)
    book, selected = _code_selection(store, codes)
    ph = ",".join("?" * len(coders))
    decided = pd.read_sql_query(
        "SELECT DISTINCT x.document_id, c.name AS coder FROM coding_spans x "
        f"JOIN coders c ON c.id = x.coder_id WHERE c.name IN ({ph}) AND x.decision IN "
        f"({','.join('?' * len(DECIDED))})", store.db.conn, params=[*coders, *DECIDED])
    docs = pd.read_sql_query("SELECT id, name, LENGTH(text) AS length FROM documents "
                             "ORDER BY name", store.db.conn)
    if documents:
        docs = docs[docs["name"].isin(documents)]
    every = [int(d) for d, g in decided.groupby("document_id") if set(g.coder) >= set(coders)]
    docs = docs[docs["id"].isin(every)]
    if docs.empty:
        raise NothingToDo("no document in which every one of " + ", ".join(coders)
                          + " made a decision",
                          hint="unitizing agreement compares whole documents all coders coded")
    rows = pd.read_sql_query(
        "SELECT c.name AS coder, x.document_id, x.start_char, x.end_char, x.code_id "
        f"FROM coding_spans x JOIN coders c ON c.id = x.coder_id WHERE c.name IN ({ph}) "
        f"AND x.decision IN ({','.join('?' * len(POSITIVE))}) AND x.code_id IS NOT NULL",
        store.db.conn, params=[*coders, *POSITIVE])
    rows = rows[rows["document_id"].isin(docs["id"])]
    if selected is None:
        used = set(rows["code_id"])
        selected = [c.id for c in book.codes if c.id in used] + sorted(
            u for u in used if u not in {c.id for c in book.codes})
    else:
        rows = rows[rows["code_id"].isin(selected)]
    if not selected:
        raise NothingToDo(f"no code was applied in the {len(docs)} document(s) every coder coded",
                          hint="choose codes with --codes")
    names = dict(zip(docs["id"].astype(int), docs["name"]))

    def path(cid: str) -> str:
        try:
            return book.get(cid).path
        except KeyError:
            return cid

    spans = [(r.coder, names[int(r.document_id)], int(r.start_char), int(r.end_char), r.code_id)
             for r in rows.itertuples()]
    lengths = {names[int(i)]: int(n) for i, n in zip(docs["id"], docs["length"])}
    res = unitizing_table(spans, lengths, coders=coders, codes=selected,
                          labels={c: path(c) for c in selected}, gamma=gamma, seed=seed)
    skipped = len(decided["document_id"].unique()) - len(docs) if not documents else None
    res.notes.append(f"{len(docs)} document(s) in which every coder made a decision count"
                     + (f"; {skipped} other(s) left out" if skipped else "")
                     + "; a whole-segment coding is its segment's characters")
    return res
