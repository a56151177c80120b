"""Unitizing agreement (coder.analysis.unitizing): Krippendorff's published worked examples,
tiny continua computed by hand, properties, a study's spans and `coder agree --unitizing`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coder.analysis import unitizing as U
from coder.errors import CoderError, NothingToDo
from coder.review import decisions, spans
from coder.study import Study
from tests.cli_helpers import run

DATA = Path(__file__).parent / "data"


def one(spans_, length, **kw):
    """The single code's row of a table over one document of ``length`` characters."""
    t = U.unitizing_table(spans_, {"d": length}, gamma=False, **kw)
    assert len(t.rows) == 1
    return t.rows[0]


# -- Krippendorff (2004), the published example --------------------------------------------------
# Content Analysis, 2nd ed. (2004), pp. 251-256, the same example as the appendix of "Measuring
# the reliability of qualitative text analysis data" (Quality & Quantity 38, 2004): a continuum
# from 150 to 450 (L = 300), two observers i and j, two categories that overlap each other.
# Published: c: D_o = .0144, D_e = .0532, α = .7286; k: D_o = 0, D_e = .0490, α = 1; all
# categories α = .8591. (The primary text is not in our reference library; the numbers are as
# transcribed in DKPro Statistics' Krippendorff2004Test and text-alpha's README, which agree.)
KRIPPENDORFF_2004 = (
    [("i", "d", b - 150, e - 150, "c") for b, e in ((225, 295), (370, 400))]
    + [("j", "d", b - 150, e - 150, "c") for b, e in ((220, 300), (355, 375), (400, 420))]
    + [(o, "d", b - 150, e - 150, "k") for o in "ij" for b, e in ((180, 240), (300, 350))])


def test_krippendorff_2004_example_per_category_as_published():
    t = U.unitizing_table(KRIPPENDORFF_2004, {"d": 300}, coders=["i", "j"], gamma=False)
    c, k = (r["alpha_U_1995_detail"] for r in t.rows)
    assert round(c["observed"], 4) == 0.0144
    assert round(c["expected"], 4) == 0.0532
    assert round(c["value"], 4) == 0.7286
    assert k["observed"] == 0 and round(k["expected"], 4) == 0.0490 and k["value"] == 1.0
    # exactly: D_o(c) = 2 (50 + 850 + 400) / (2 · 1 · 300²) = 1/69.23...
    assert c["observed"] == pytest.approx(2600 / 180000)


def test_krippendorff_2004_example_pooled_over_categories():
    t = U.unitizing_table(KRIPPENDORFF_2004, {"d": 300}, coders=["i", "j"], gamma=False)
    # 1 - ΣD_o/ΣD_e = 1 - .014444/(.053222 + .048979) = .8587 unrounded; the published .8591 is
    # 1 - .0144/(.0532 + .0490), from the rounded parts
    assert t.pooled["alpha_U_1995"] == pytest.approx(0.8587, abs=5e-5)
    assert 1 - 0.0144 / (0.0532 + 0.0490) == pytest.approx(0.8591, abs=5e-5)


# -- Krippendorff (1995), Sociological Methodology 25: four pairs on 24 characters ---------------
# Published α (as transcribed in DKPro Statistics' Krippendorff1995Test): A .553, B -.926,
# C .679, D .066. DKPro reproduces them only on the continuum stretched 50,000 times (its note:
# the original's D_e seems to carry a small error), within .02; so do we. On the original 24
# characters the same formulas give A .515, B -1.081, C .603, D -.207.
PAIRS_1995 = {
    "A": ([(2, 8), (14, 6)], [(4, 4), (15, 2)]),
    "B": ([(0, 18)], [(0, 2), (2, 1), (3, 1), (4, 1), (5, 1), (6, 3), (9, 1)]),
    "C": ([(2, 6), (10, 2), (14, 4), (20, 2)], [(0, 2), (4, 4), (10, 4), (16, 2), (20, 2)]),
    "D": ([(0, 2), (2, 8), (10, 4), (14, 6), (20, 4)],
          [(0, 4), (4, 4), (8, 7), (15, 2), (17, 7)]),
}


def _pairs_1995(stretch: int):
    out = []
    for name, (first, second) in PAIRS_1995.items():
        for coder, units in (("first", first), ("second", second)):
            out += [(coder, "d", b * stretch, (b + n) * stretch, name) for b, n in units]
    t = U.unitizing_table(out, {"d": 24 * stretch}, coders=["first", "second"], gamma=False)
    return {r["code"]: r["alpha_U_1995_detail"] for r in t.rows}


def test_krippendorff_1995_examples_on_the_stretched_continuum():
    got = _pairs_1995(50_000)
    published = {"A": 0.553, "B": -0.926, "C": 0.679, "D": 0.066}
    for name, value in published.items():
        assert got[name]["value"] == pytest.approx(value, abs=0.02), name
    # D_o does not depend on the stretch; DKPro's values at 24 characters
    small = _pairs_1995(1)
    for name, d_o in {"A": 0.03125, "B": 2.26736, "C": 0.02777, "D": 0.38715}.items():
        assert small[name]["observed"] == pytest.approx(d_o, abs=1e-5)
        assert got[name]["observed"] == pytest.approx(d_o, abs=1e-5)


# -- tiny continua by hand -----------------------------------------------------------------------
def test_uα_and_α_U_of_one_shifted_boundary_by_hand():
    # L = 10; alice codes [2,6), bob [3,6).
    # uα (2016): characters coded by both: 3,4,5; by alice only: 2. Σ_char n1·n0 = 1 (char 2),
    #   o(code, gap) = 1/(m-1) = 1. l.. = 20, l_1 = 4 + 3 = 7, l_0 = 13, Σ unit l² = 16 + 9 = 25.
    #   e(code, gap) = 20·7·13 / (20² - 25 - 13) = 1820/362 = 5.027624; uα = 1 - 1/5.027624
    #   = 0.801099.
    # α_U (1995): δ² of the two units = (2-3)² + (6-6)² = 1 in each direction, no unit inside a
    #   gap: D_o = 2 / (2·1·10²) = .01. D_e: N = 2 units (4, 3); (N-1)/3 Σ l(l-1)(2l-1) =
    #   (84 + 30)/3 = 38; gaps 2, 4 (alice), 3, 4 (bob): l=4 fits in 4, 4 → 16·(1+1) = 32;
    #   l=3 fits in 4, 3, 4 → 9·(2+1+2) = 45; D_e = (2/10)(38 + 32 + 45)/(20·19 - 12 - 6)
    #   = .2 · 115/362 = .0635359; α_U = 1 - .01/.0635359 = 0.842609.
    r = one([("alice", "d", 2, 6, "X"), ("bob", "d", 3, 6, "X")], 10)
    assert r["alpha_u"] == pytest.approx(0.801099, abs=1e-6)
    assert r["alpha_u_detail"]["observed"] == pytest.approx(2 * 1 / 20)
    assert r["alpha_u_detail"]["expected"] == pytest.approx(2 * 1820 / 362 / 20)
    assert r["alpha_U_1995"] == pytest.approx(0.842609, abs=1e-6)
    assert r["alpha_U_1995_detail"]["expected"] == pytest.approx(0.2 * 115 / 362)
    assert r["spans"] == {"alice": 1, "bob": 1}
    assert r["coded_characters"] == {"alice": 4, "bob": 3} and r["characters"] == 10


def test_uα_of_three_coders_by_hand():
    # L = 8; alice [0,4), bob [0,4), carol [0,2). n1 = 3 on chars 0-1, 2 on chars 2-3.
    # Σ n1(3 - n1) = 2·(2·1) = 4, o(code, gap) = 4/2 = 2; l.. = 24, l_1 = 10, l_0 = 14,
    # Σ l² = 16 + 16 + 4 = 36; e = 24·10·14/(576 - 36 - 14) = 3360/526 = 6.387833;
    # uα = 1 - 2/6.387833 = 0.686905.
    r = one([("alice", "d", 0, 4, "X"), ("bob", "d", 0, 4, "X"), ("carol", "d", 0, 2, "X")], 8)
    assert r["alpha_u"] == pytest.approx(0.686905, abs=1e-6)


def test_pooled_over_codes_sums_disagreements_by_hand():
    # code X as in the shifted-boundary case, code Y identical for both: D_o(Y) = 0, and
    # pooled = 1 - (D_o(X) + 0)/(D_e(X) + D_e(Y)), computed from the rows' parts.
    t = U.unitizing_table([("alice", "d", 2, 6, "X"), ("bob", "d", 3, 6, "X"),
                           ("alice", "d", 7, 9, "Y"), ("bob", "d", 7, 9, "Y")], {"d": 10},
                          gamma=False)
    x, y = (r["alpha_u_detail"] for r in t.rows)
    assert y["observed"] == 0 and t.rows[1]["alpha_u"] == 1.0
    assert t.pooled["alpha_u"] == pytest.approx(1 - x["observed"] / (x["expected"]
                                                                     + y["expected"]))
    assert x["value"] < t.pooled["alpha_u"] < 1


# -- properties ----------------------------------------------------------------------------------
def test_identical_coders_agree_perfectly_and_a_shifted_boundary_lowers_both():
    base = [(5, 20), (40, 60), (90, 95)]
    same = [(c, "d", b, e, "X") for c in ("alice", "bob") for b, e in base]
    r = one(same, 120)
    assert r["alpha_u"] == 1.0 and r["alpha_U_1995"] == 1.0
    previous = (1.0, 1.0)
    for shift in (1, 3, 6):
        moved = [("alice", "d", b, e, "X") for b, e in base] + [
            ("bob", "d", b + shift, e + shift, "X") for b, e in base]
        r = one(moved, 120)
        assert r["alpha_u"] < previous[0] and r["alpha_U_1995"] < previous[1], shift
        previous = (r["alpha_u"], r["alpha_U_1995"])


def test_a_unit_one_coder_alone_marks_lowers_agreement():
    both = [(c, "d", 10, 30, "X") for c in ("alice", "bob")]
    extra = both + [("alice", "d", 60, 70, "X")]
    assert one(extra, 100)["alpha_u"] < one(both + [("alice", "d", 10, 30, "X")], 100)["alpha_u"]
    assert one(extra, 100)["alpha_U_1995"] < 1.0


def test_documents_are_one_continuum_and_units_never_cross_them():
    # the same codings split over two documents of 50 give what one document of 100 gives for
    # uα (gaps count character by character, so where a document ends does not matter)
    one_doc = U.unitizing_table([("alice", "d", 10, 20, "X"), ("bob", "d", 12, 20, "X"),
                                 ("alice", "d", 60, 70, "X"), ("bob", "d", 60, 70, "X")],
                                {"d": 100}, gamma=False)
    two = U.unitizing_table([("alice", "a", 10, 20, "X"), ("bob", "a", 12, 20, "X"),
                             ("alice", "b", 10, 20, "X"), ("bob", "b", 10, 20, "X")],
                            {"a": 50, "b": 50}, gamma=False)
    assert two.rows[0]["alpha_u"] == pytest.approx(one_doc.rows[0]["alpha_u"])
    assert two.characters == 100


def test_overlapping_spans_of_one_coder_merge_and_touching_ones_stay_two():
    assert U.units_of([(0, 5), (3, 8), (8, 10)], 9).tolist() == [[0, 8], [8, 9]]
    assert U.gaps_of(U.units_of([(2, 4)], 6), 6).tolist() == [[0, 2], [4, 6]]


def test_nothing_coded_is_undefined_not_perfect():
    t = U.unitizing_table([], {"d": 10}, coders=["alice", "bob"], codes=["X"], gamma=False)
    assert t.rows[0]["alpha_u"] is None and t.rows[0]["alpha_U_1995"] is None
    with pytest.raises(CoderError, match="at least two coders"):
        U.unitizing_table([("alice", "d", 0, 2, "X")], {"d": 10}, gamma=False)


def test_gamma_missing_is_said_plainly(monkeypatch):
    monkeypatch.setattr(U, "gamma_available", lambda: False)
    t = U.unitizing_table([("alice", "d", 2, 6, "X"), ("bob", "d", 3, 6, "X")], {"d": 10})
    assert t.rows[0]["gamma"] is None and t.pooled["gamma"] is None
    assert t.gamma_note == ("γ: not computed: pygamma-agreement is not installed "
                            "(pip install pygamma-agreement)")


def test_gamma_is_seeded_and_leaves_numpy_alone():
    # pygamma-agreement is installed with the tests (./dev installs the 'gamma' extra), so this
    # runs everywhere the suite runs
    assert U.gamma_available()
    import numpy as np

    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    spans_ = [("alice", "d", 0, 10, "X"), ("alice", "d", 20, 30, "X"),
              ("bob", "d", 1, 10, "X"), ("bob", "d", 21, 32, "X")]
    a = U.unitizing_table(spans_, {"d": 40}, seed=7).rows[0]["gamma"]
    b = U.unitizing_table(spans_, {"d": 40}, seed=7).rows[0]["gamma"]
    assert a == b and 0.5 < a < 1
    assert (np.random.get_state()[1] == before).all()


# -- from a study --------------------------------------------------------------------------------
@pytest.fixture
def span_study(tmp_path):
    """Two transcripts; alice and bob code phrases in p1 (bob's boundaries a little off), and
    a whole segment; only alice touches p2."""
    path = tmp_path / "spans.db"
    assert run("init", path).exit_code == 0
    assert run("codebook", "import", path, DATA / "small_codebook.yaml").exit_code == 0
    (tmp_path / "p1.txt").write_text(
        "ANA: Our home market is tiny and saturated, so we looked abroad.\n\n"
        "BEN: The banks never lend to small firms like ours.\n\n"
        "ANA: A friend at the chamber of commerce opened doors for us.\n", encoding="utf-8")
    (tmp_path / "p2.txt").write_text("ANA: Nothing else to add about the market.\n",
                                     encoding="utf-8")
    r = run("import", path, tmp_path / "p1.txt", tmp_path / "p2.txt")
    assert r.exit_code == 0, r.output
    study = Study(path)
    text = study.db.one("SELECT text FROM documents WHERE name='p1'")["text"]
    at = text.index
    spans.code_span(study, "alice", "p1", at("home"), at("saturated") + 9, "trig-domestic")
    spans.code_span(study, "bob", "p1", at("market"), at("saturated") + 9, "trig-domestic")
    spans.code_span(study, "alice", "p1", at("banks"), at("firms") + 5, "bar-finance")
    spans.code_span(study, "bob", "p1", at("banks"), at("firms") + 5, "bar-finance")
    seg = study.db.one("SELECT s.id FROM segments s JOIN documents d ON "
                       "d.id = s.document_id WHERE d.name='p1' AND s.text LIKE 'A friend%'")
    decisions.decide(study, "alice", seg["id"], "net-personal", "added")
    spans.code_span(study, "bob", "p1", at("friend"), at("commerce") + 8, "net-personal")
    p2 = study.db.one("SELECT s.id FROM segments s JOIN documents d ON d.id = s.document_id "
                      "WHERE d.name='p2'")["id"]
    decisions.decide(study, "alice", p2, "trig-domestic", "added")
    return path


def test_a_study_s_spans_and_whole_segments_are_compared_per_code(span_study):
    study = Study(span_study)
    res = U.unitizing_agreement(study, ["alice", "bob"], gamma=False)
    assert res.documents == ["p1"]                      # bob never decided anything in p2
    assert any("1 other(s) left out" in n for n in res.notes)
    rows = {r["code_id"]: r for r in res.rows}
    assert set(rows) == {"trig-domestic", "bar-finance", "net-personal"}
    assert rows["bar-finance"]["alpha_u"] == 1.0        # the same characters
    assert rows["trig-domestic"]["alpha_u"] < 1.0       # bob starts at 'market', not 'home'
    whole = study.db.one("SELECT end_char - start_char AS n FROM segments WHERE text LIKE "
                         "'A friend%'")["n"]
    assert rows["net-personal"]["coded_characters"]["alice"] == whole
    assert rows["net-personal"]["coded_characters"]["bob"] < whole
    assert rows["trig-domestic"]["spans"] == {"alice": 1, "bob": 1}
    text = study.db.one("SELECT text FROM documents WHERE name='p1'")["text"]
    assert res.characters == len(text)
    # the pure function on the same spans gives the same numbers
    direct = U.unitizing_table(
        [(r["coder"], r["document"], r["start_char"], r["end_char"], r["code_id"])
         for r in study.db.query(
            "SELECT c.name AS coder, d.name AS document, x.start_char, x.end_char, x.code_id "
            "FROM coding_spans x JOIN coders c ON c.id = x.coder_id JOIN documents d ON "
            "d.id = x.document_id WHERE d.name = 'p1'")],
        {"p1": len(text)}, coders=["alice", "bob"], gamma=False)
    assert {r["code_id"]: r["alpha_u"] for r in direct.rows} == {
        k: r["alpha_u"] for k, r in rows.items()}


def test_a_study_with_codes_and_documents_chosen(span_study):
    study = Study(span_study)
    res = U.unitizing_agreement(study, ["alice", "bob"], codes=["bar-finance"], gamma=False)
    assert [r["code_id"] for r in res.rows] == ["bar-finance"]
    with pytest.raises(NothingToDo, match="every one of"):
        U.unitizing_agreement(study, ["alice", "bob"], documents=["p2"], gamma=False)


# -- the command ---------------------------------------------------------------------------------
def test_agree_unitizing_prints_the_table_with_spans_characters_and_explanations(span_study,
                                                                                  monkeypatch):
    monkeypatch.setattr(U, "gamma_available", lambda: False)
    r = run("agree", span_study, "--coders", "alice,bob", "--unitizing")
    assert r.exit_code == 0, r.output
    assert "Unitizing agreement per code: 1 document(s) every coder coded (alice, bob)" in r.output
    assert "Financial constraints" in r.output or "bar-finance" in r.output
    assert "1/1" in r.output                             # spans per coder
    assert "pooled over codes" in r.output
    assert "α_u: Krippendorff et al. (2016) uα" in r.output.replace("\n", " ") and "γ: Mathet" in r.output
    assert ("γ: not computed: pygamma-agreement is not installed (pip install "
            "pygamma-agreement)") in r.output
    assert "1 other(s) left out" in r.output


def test_agree_unitizing_json_and_csv(span_study, tmp_path, monkeypatch):
    monkeypatch.setattr(U, "gamma_available", lambda: False)
    out = tmp_path / "units.csv"
    r = run("agree", span_study, "--coders", "alice,bob", "--unitizing", "--json", "--csv", out)
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["coders"] == ["alice", "bob"] and d["documents"] == ["p1"]
    assert {row["code_id"] for row in d["per_code"]} == {"trig-domestic", "bar-finance",
                                                         "net-personal"}
    assert d["pooled"]["alpha_u"] is not None and d["gamma_note"].startswith("γ: not computed")
    import pandas as pd

    table = pd.read_csv(out)
    assert {"code", "alpha_u", "alpha_U_1995", "gamma", "spans_alice", "spans_bob",
            "coded_characters_alice", "characters"} <= set(table.columns)
    assert len(table) == 3


def test_agree_unitizing_refuses_segment_options(span_study):
    r = run("agree", span_study, "--coders", "alice,bob", "--unitizing", "--overlap", "0.5")
    assert r.exit_code == 2 and "--overlap compare segments" in r.output
