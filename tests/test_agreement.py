"""Agreement coefficients against the worked examples published with them, the `krippendorff`
package on random data, and the edge cases (each gives a number or None with a reason)."""

from __future__ import annotations

import json

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from coder.analysis import agreement as A
from coder.analysis import coefficients

nan = np.nan

# Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability. Annenberg School for
# Communication, University of Pennsylvania, section C: 4 observers, 12 units, values 1-5,
# missing data. Published: nominal .743, ordinal .815, interval .849, ratio .797.
# Rows are units, columns coders A-D (the paper prints coders as rows).
KRIPP_2011 = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
]).T


@pytest.mark.parametrize("level,published", [
    ("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)])
def test_krippendorff_2011_four_levels_with_missing_data(level, published):
    assert round(coefficients.krippendorff_alpha(KRIPP_2011, level), 3) == published


def test_krippendorff_2011_binary_two_observers():
    # Krippendorff (2011), section A: two observers, binary data, 10 units; alpha = 0.095.
    a = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    b = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert round(coefficients.krippendorff_alpha(np.column_stack([a, b]), "nominal"), 3) == 0.095


def test_gwet_handbook_four_raters_missing_ratings():
    # Gwet, K.L. (2014) Handbook of Inter-Rater Reliability, 4th ed., p. 120: the same 12 units
    # x 4 raters (irrCAC dataset cac.raw4raters). irrCAC's gwet.ac1.raw gives AC1 = 0.7754
    # (pa = 0.8182) and fleiss.kappa.raw 0.7612 for these data.
    assert round(coefficients.gwet_ac1(KRIPP_2011), 4) == 0.7754
    assert round(coefficients.percent_agreement(KRIPP_2011), 4) == 0.8182
    assert round(coefficients.fleiss_kappa(KRIPP_2011), 4) == 0.7612


def _from_table(table) -> np.ndarray:
    """A two-coder contingency table as a units x 2 matrix."""
    rows = []
    for i, line in enumerate(table):
        for j, n in enumerate(line):
            rows += [[i, j]] * n
    return np.array(rows, dtype=float)


def test_gwet_handbook_two_raters_all_measures():
    # Gwet (2014), dataset cont3x3abstractors (2 abstractors, 100 pregnancies, 3 categories),
    # as published in the irrCAC vignette "Calculating Chance-corrected Agreement Coefficients":
    # Cohen 0.7964094, Scott 0.7962397, AC1 0.8493305, Brennan-Prediger 0.835,
    # Krippendorff 0.7972585, percent agreement 0.89.
    x = _from_table([[13, 0, 0], [0, 20, 7], [0, 4, 56]])
    r = coefficients.agreement(x, ci=False)
    assert round(r.cohen_kappa, 7) == 0.7964094
    assert round(r.scott_pi, 7) == 0.7962397
    assert round(r.gwet_ac1, 7) == 0.8493305
    assert round(r.brennan_prediger, 7) == 0.835
    assert round(r.krippendorff_alpha, 7) == 0.7972585
    assert round(r.percent_agreement, 7) == 0.89
    assert r.scott_pi == pytest.approx(r.fleiss_kappa)  # Fleiss' kappa for 2 coders is pi


def test_cohen_1960_table_1():
    # Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and
    # Psychological Measurement 20(1), 37-46, Table 1: proportions for 200 cases, three
    # categories; p_o = .70, p_c = .41, kappa = .29/.59 = .492.
    counts = [[88, 14, 18], [10, 40, 10], [2, 6, 12]]
    k = coefficients.cohen_kappa(_from_table(counts))
    assert k == pytest.approx(0.29 / 0.59, abs=1e-12)
    assert round(k, 3) == 0.492


def test_fleiss_wikipedia_worked_example():
    # Fleiss' kappa worked example (Wikipedia, "Fleiss' kappa"): 10 subjects, 14 raters,
    # 5 categories, P-bar = 0.378, P-bar_e = 0.213, kappa = 0.210.
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
             [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
             [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    x = np.array([[k for k, n in enumerate(row) for _ in range(n)] for row in table], float)
    assert round(coefficients.fleiss_kappa(x), 3) == 0.210
    assert round(coefficients.percent_agreement(x), 3) == 0.378


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_weighted_matches_scikit_learn(weights):
    rng = np.random.default_rng(7)
    x = rng.integers(1, 6, size=(300, 2)).astype(float)
    x[:, 1] = np.where(rng.random(300) < 0.6, x[:, 0], x[:, 1])
    ours = coefficients.cohen_kappa(x, weights)
    theirs = cohen_kappa_score(x[:, 0], x[:, 1], weights=weights)
    assert ours == pytest.approx(theirs, abs=1e-12)


@pytest.mark.parametrize("level", coefficients.LEVELS)
@pytest.mark.parametrize("seed", range(5))
def test_alpha_matches_krippendorff_package_on_random_data(level, seed):
    rng = np.random.default_rng(seed)
    units, coders = rng.integers(5, 200), rng.integers(2, 8)
    x = rng.integers(1, rng.integers(3, 9), size=(units, coders)).astype(float)
    x[rng.random(x.shape) < 0.25] = nan
    ours = coefficients.krippendorff_alpha(x, level)
    theirs = krippendorff.alpha(x.T, level_of_measurement=level)
    assert abs(ours - theirs) < 1e-9


def test_alpha_interval_continuous_values_matches_package():
    rng = np.random.default_rng(3)
    x = rng.normal(50, 10, size=(60, 4))
    x[rng.random(x.shape) < 0.2] = nan
    assert abs(coefficients.krippendorff_alpha(x, "interval")
               - krippendorff.alpha(x.T, level_of_measurement="interval")) < 1e-9
    assert abs(coefficients.krippendorff_alpha(x, "ratio")
               - krippendorff.alpha(x.T, level_of_measurement="ratio")) < 1e-9


def test_result_has_every_key_and_is_json():
    r = coefficients.agreement(KRIPP_2011, coders=list("ABCD"), resamples=200)
    d = json.loads(A.to_json(r))
    for key in ("units", "coders", "percent_agreement", "cohen_kappa", "scott_pi",
                "fleiss_kappa", "krippendorff_alpha", "gwet_ac1", "brennan_prediger",
                "alpha_ci95"):
        assert key in d
    assert d["units"] == 11 and d["units_total"] == 12  # unit 12 has one value
    assert d["cohen_kappa"] is None and d["scott_pi"] is None
    assert "two coders" in d["notes"]["cohen_kappa"]
    assert d["bootstrap"]["resamples"] == 200 and d["bootstrap"]["seed"] == 0


@pytest.mark.parametrize("level", coefficients.LEVELS)
def test_bootstrap_interval_contains_alpha_and_is_reproducible(level):
    rng = np.random.default_rng(1)
    truth = rng.integers(1, 6, size=200)
    x = np.column_stack([np.where(rng.random(200) < 0.8, truth, rng.integers(1, 6, 200))
                         for _ in range(3)]).astype(float)
    x[rng.random(x.shape) < 0.1] = nan
    alpha = coefficients.krippendorff_alpha(x, level)
    ci, info = coefficients.alpha_bootstrap(x, level, resamples=300, seed=5)
    assert ci[0] < alpha < ci[1]
    assert info["valid"] == 300
    assert coefficients.alpha_bootstrap(x, level, resamples=300, seed=5)[0] == ci


def test_bootstrap_agrees_with_naive_resampling():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 3, size=(80, 3)).astype(float)
    x[:, 1] = np.where(rng.random(80) < 0.7, x[:, 0], x[:, 1])
    ci, _ = coefficients.alpha_bootstrap(x, "nominal", resamples=50, seed=9, chunk=50, _patterns=False)
    # the same draws, alpha computed by the package on each resampled matrix
    draws = np.random.default_rng(9).integers(0, 80, size=(50, 80), dtype=np.int32)
    ref = [krippendorff.alpha(x[d].T, level_of_measurement="nominal") for d in draws]
    assert ci == pytest.approx(list(np.percentile(ref, [2.5, 97.5])), abs=1e-9)


# -- edge cases: a defined answer, never a crash or a silent NaN ------------------------------
def _no_nan(r: coefficients.Agreement) -> None:
    for m in coefficients.MEASURES:
        v = getattr(r, m)
        assert v is None or np.isfinite(v), m
        if v is None:
            assert r.notes.get(m), f"{m} is None without a reason"


def test_one_unit():
    r = coefficients.agreement([[1.0, 2.0]])
    _no_nan(r)
    assert r.units == 1 and r.percent_agreement == 0.0
    assert r.krippendorff_alpha is not None


def test_one_category_only():
    r = coefficients.agreement([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    _no_nan(r)
    assert r.percent_agreement == 1.0
    assert r.krippendorff_alpha is None and "no variation" in r.notes["krippendorff_alpha"]
    assert r.cohen_kappa is None and r.gwet_ac1 is None
    assert r.alpha_ci95 is None and r.notes["alpha_ci95"]
    # with the possible categories given (a binary code nobody applied), AC1 and BP are defined
    b = coefficients.agreement([[0.0, 0.0], [0.0, 0.0]], categories=[0, 1])
    assert b.gwet_ac1 == 1.0 and b.brennan_prediger == 1.0 and b.krippendorff_alpha is None


def test_all_values_missing():
    r = coefficients.agreement(np.full((4, 3), nan))
    _no_nan(r)
    assert r.units == 0 and r.percent_agreement is None
    assert "two or more coders" in r.notes["percent_agreement"]


def test_unit_with_all_values_missing_is_ignored():
    x = np.vstack([KRIPP_2011, [nan, nan, nan, nan]])
    assert coefficients.krippendorff_alpha(x, "nominal") == coefficients.krippendorff_alpha(KRIPP_2011, "nominal")


def test_coder_who_coded_nothing():
    x = np.column_stack([[1, 2, 3, 1], [1, 2, 3, 2], [nan] * 4])
    r = coefficients.agreement(x, coders=["a", "b", "c"])
    _no_nan(r)
    assert r.notes["coders"] == "coded no unit: c"
    assert r.krippendorff_alpha == pytest.approx(
        coefficients.krippendorff_alpha(x[:, :2], "nominal"))
    two = coefficients.agreement(np.column_stack([[1, 2, 3.0], [nan] * 3]), coders=["a", "b"])
    _no_nan(two)
    assert two.cohen_kappa is None and "both coders" in two.notes["cohen_kappa"]


def test_bad_level_and_weights():
    with pytest.raises(A.InputError, match="unknown level 'nominl'"):
        coefficients.agreement([[1, 2]], level="nominl")
    with pytest.raises(A.InputError, match="unknown weights 'cubic'"):
        coefficients.agreement([[1, 2]], weights="cubic")


def test_continuous_values_give_reasons_not_memory_errors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6000, 2))
    x[:, 1] = x[:, 0] + rng.normal(scale=0.1, size=6000)
    r = coefficients.agreement(x, level="interval", resamples=50)
    _no_nan(r)
    assert r.krippendorff_alpha > 0.95 and r.alpha_ci95 is not None
    assert r.cohen_kappa is None and "too many for a category-based" in r.notes["cohen_kappa"]


@pytest.mark.parametrize("level", coefficients.LEVELS)
def test_bootstrap_by_pattern_matches_unit_draws(level):
    # few distinct units (category data): counts per pattern are drawn as one multinomial,
    # which has the same distribution as drawing units one by one
    rng = np.random.default_rng(4)
    truth = rng.integers(1, 4, size=3000)
    x = np.column_stack([np.where(rng.random(3000) < 0.8, truth, rng.integers(1, 4, 3000))
                         for _ in range(2)]).astype(float)
    fast, _ = coefficients.alpha_bootstrap(x, level, resamples=2000, seed=1)
    slow, _ = coefficients.alpha_bootstrap(x, level, resamples=2000, seed=1, _patterns=False)
    assert fast != slow  # two different paths ...
    assert fast == pytest.approx(slow, abs=0.006)  # ... the same interval, up to Monte Carlo


def test_bootstrap_clusters_resample_whole_clusters():
    # duplicating every unit inside its own cluster changes neither alpha's interval width much
    # nor lets the duplicates shrink it the way independent units would
    rng = np.random.default_rng(5)
    x = rng.integers(0, 2, size=(300, 2)).astype(float)
    x[:, 1] = np.where(rng.random(300) < 0.8, x[:, 0], x[:, 1])
    doubled = np.vstack([x, x])
    single, _ = coefficients.alpha_bootstrap(x, resamples=1000, seed=2)
    clustered, _ = coefficients.alpha_bootstrap(doubled, resamples=1000, seed=2,
                                     clusters=np.tile(np.arange(300), 2))
    naive, _ = coefficients.alpha_bootstrap(doubled, resamples=1000, seed=2)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(clustered) == pytest.approx(width(single), rel=0.15)
    assert width(naive) < 0.85 * width(single)


def test_ordinal_with_many_ranks_has_alpha_and_a_reason_for_no_interval():
    rng = np.random.default_rng(6)
    x = rng.integers(0, 60, size=(200, 2)).astype(float)
    r = coefficients.agreement(x, level="ordinal", resamples=50)
    assert r.krippendorff_alpha is not None and r.alpha_ci95 is None
    assert "at most 40 ranks" in r.notes["alpha_ci95"]
