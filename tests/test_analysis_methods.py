"""The analyses a methods section needs, on small real studies whose answers are worked out by
hand here: co-occurrence counts, case-matrix cells, saturation (Guest, Namey & Chen 2020) on a
constructed example, the model figure's factor order, summaries that hold only the
participant's own passages, and memos."""

from __future__ import annotations

import html
import json

import pytest
from cli_helpers import dump
from docx import Document
from frequency_helpers import SMALL_CODEBOOK, code, make_study, write_codebook

from coder import review
from coder.analysis import cooccurrence, matrix, memos, model_figure, saturation, summaries
from coder.errors import CodebookError, CoderError, UnknownReference
from coder.sources.codebook import load
from coder.study import Study

PEOPLE = {"p1": {"group": "A"}, "p2": {"group": "A"}, "p3": {"group": "B"},
          "p4": {"group": "B"}}
TURNS = {p: [f"{p} first turn about markets.", f"{p} second turn, longer, about money."]
         for p in PEOPLE}


@pytest.fixture
def small(tmp_path):
    """Four participants, two turns each (positions 2 and 3; 1 is the interviewer).

    alice: p1#2 Domestic+Resource, p1#3 Larger markets, p2#2 Domestic+Resource,
           p3#2 Domestic, p3#3 Resource, p4#2 Societal changes.
    bob:   p1#2 Domestic, p2#2 Domestic+Resource."""
    s = make_study(tmp_path, participants=PEOPLE, turns=TURNS)
    code(s, [("alice", "p1", "Domestic conditions", "confirmed", 2),
             ("alice", "p1", "Resource seeking", "confirmed", 2),
             ("alice", "p1", "Larger markets outside", "confirmed", 3),
             ("alice", "p2", "Domestic conditions", "confirmed", 2),
             ("alice", "p2", "Resource seeking", "added", 2),
             ("alice", "p3", "Domestic conditions", "confirmed", 2),
             ("alice", "p3", "Resource seeking", "confirmed", 3),
             ("alice", "p4", "Societal changes", "confirmed", 2),
             ("alice", "p4", "Competitive markets", "rejected", 3),
             ("bob", "p1", "Domestic conditions", "confirmed", 2),
             ("bob", "p2", "Domestic conditions", "confirmed", 2),
             ("bob", "p2", "Resource seeking", "confirmed", 2)])
    yield s
    s.close()


def pair(result, a: str, b: str) -> dict:
    rows = result.pairs[((result.pairs["name_a"] == a) & (result.pairs["name_b"] == b))
                        | ((result.pairs["name_a"] == b) & (result.pairs["name_b"] == a))]
    assert len(rows) == 1, result.pairs
    return rows.iloc[0].to_dict()


# -- co-occurrence -----------------------------------------------------------------------------
def test_cooccurrence_by_segment_counts_shared_segments(small):
    r = cooccurrence.cooccurrence(small, coder="alice")
    # Domestic and Resource share p1#2 and p2#2; Domestic is on 3 segments, Resource on 3;
    # Jaccard = 2 / (3 + 3 - 2) = 0.5. No other pair shares a segment.
    assert len(r.pairs) == 1
    p = pair(r, "Domestic conditions", "Resource seeking")
    assert (p["count"], p["n_a"], p["n_b"], p["jaccard"]) == (2, 3, 3, 0.5)
    assert r.matrix.loc["Domestic conditions", "Resource seeking"] == 2
    assert r.matrix.loc["Domestic conditions", "Domestic conditions"] == 3
    # only codes on at least one segment: Competitive markets was rejected
    assert list(r.matrix.index) == ["Domestic conditions", "Resource seeking",
                                    "Larger markets outside", "Societal changes"]
    assert r.N == 4 and "Codings: coder alice;" in " ".join(r.notes)


def test_cooccurrence_by_participant(small):
    r = cooccurrence.cooccurrence(small, coder="alice", unit="participant", measure="jaccard")
    # Domestic {p1,p2,p3}, Resource {p1,p2,p3}, Larger markets {p1}, Societal {p4}
    assert pair(r, "Domestic conditions", "Resource seeking")["count"] == 3
    assert pair(r, "Domestic conditions", "Resource seeking")["jaccard"] == 1.0
    assert pair(r, "Domestic conditions", "Larger markets outside")["count"] == 1
    assert pair(r, "Resource seeking", "Larger markets outside")["jaccard"] == pytest.approx(1 / 3)
    assert len(r.pairs) == 3
    assert r.pairs.iloc[0]["jaccard"] == 1.0            # sorted by the measure
    assert r.matrix.loc["Domestic conditions", "Domestic conditions"] == 1.0


def test_cooccurrence_of_factors(small):
    by_person = cooccurrence.cooccurrence(small, coder="alice", level="factor",
                                          unit="participant")
    # Triggers {p1,p2,p3}, External {p1 (Larger markets), p4 (Societal)}: they share p1
    p = pair(by_person, "Triggers", "External")
    assert (p["count"], p["n_a"], p["n_b"], p["jaccard"]) == (1, 3, 2, 0.25)
    by_segment = cooccurrence.cooccurrence(small, coder="alice", level="factor")
    assert by_segment.pairs.empty                       # no segment carries both factors


def test_cooccurrence_follows_the_coder_rule(small):
    any_ = cooccurrence.cooccurrence(small, coders=["alice", "bob"], rule="any")
    assert pair(any_, "Domestic conditions", "Resource seeking")["count"] == 2
    # rule all: a segment carries a code only where both coded it: Domestic on p1#2 and
    # p2#2, Resource on p2#2 only, so they share one segment
    all_ = cooccurrence.cooccurrence(small, coders=["alice", "bob"], rule="all")
    p = pair(all_, "Domestic conditions", "Resource seeking")
    assert (p["count"], p["n_a"], p["n_b"]) == (1, 2, 1)
    assert any("Rule all at the segment level" in n for n in all_.notes)


def test_cooccurrence_default_coder_is_freq_s(small):
    with pytest.raises(CoderError) as e:
        cooccurrence.cooccurrence(small)
    assert str(e.value).startswith("several coders have codings (alice, bob); say whose count")


def test_cooccurrence_shared_quotes(small):
    seg = cooccurrence.cooccurrence(small, coder="alice", quotes=5)
    q = seg.quotes
    assert list(zip(q["participant"], q["position"], q["carries"])) == [
        ("p1", 2, "both"), ("p2", 2, "both")]
    assert q.iloc[0]["text"] == "p1 first turn about markets."
    person = cooccurrence.cooccurrence(small, coder="alice", unit="participant", quotes=5)
    q = person.quotes[(person.quotes["name_a"] == "Domestic conditions")
                      & (person.quotes["name_b"] == "Resource seeking")]
    # p1 and p2 have a passage with both; p3 raised them in two passages
    assert list(zip(q["participant"], q["position"], q["carries"])) == [
        ("p1", 2, "both"), ("p2", 2, "both"), ("p3", 2, "Domestic conditions"),
        ("p3", 3, "Resource seeking")]


def test_cooccurrence_bad_options(small):
    with pytest.raises(CoderError, match="unknown measure 'dice'"):
        cooccurrence.cooccurrence(small, coder="alice", measure="dice")
    with pytest.raises(CoderError, match="unknown level 'group'"):
        cooccurrence.cooccurrence(small, coder="alice", level="group")


def test_heatmap_renders(small, tmp_path):
    from coder.analysis import outputs
    from coder.analysis.chart import png_size

    r = cooccurrence.cooccurrence(small, coder="alice", unit="participant")
    path = outputs.save_figure(r.figure(), tmp_path / "heat.png")
    w, h = png_size(path.read_bytes())
    assert 1000 <= w <= 3000 and 400 <= h <= 3000
    svg = outputs.save_figure(r.figure(), tmp_path / "heat.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "Domestic conditions" in svg


# -- the case matrix ---------------------------------------------------------------------------
def cells(result, code_name: str) -> dict:
    row = result.frame[result.frame["name"] == code_name].iloc[0]
    return {c: row[c] for c in [*result.cases, "Total"]}


def test_matrix_presence_by_participant(small):
    r = matrix.case_matrix(small, coder="alice")
    assert r.cases == ["p1", "p2", "p3", "p4"]
    assert cells(r, "Domestic conditions") == {"p1": 1, "p2": 1, "p3": 1, "p4": 0, "Total": 3}
    assert cells(r, "Triggers") == {"p1": 1, "p2": 1, "p3": 1, "p4": 0, "Total": 3}
    assert cells(r, "External") == {"p1": 1, "p2": 0, "p3": 0, "p4": 1, "Total": 2}
    assert cells(r, "Foreign market attraction") == {"p1": 1, "p2": 0, "p3": 0, "p4": 0,
                                                     "Total": 1}
    assert cells(r, "Competitive markets") == {"p1": 0, "p2": 0, "p3": 0, "p4": 0, "Total": 0}
    assert list(r.frame["level"][:3]) == ["factor", "category", "category"]


def test_matrix_presence_totals_are_freq_s_n(small):
    from coder.analysis import frequency

    r = matrix.case_matrix(small, coders=["alice", "bob"], rule="all")
    freq = frequency.frequencies(small, coders=["alice", "bob"], rule="all", level="all",
                                 rollups=("any",))
    n = dict(zip(freq["id"], freq["n"]))
    assert dict(zip(r.frame["id"], r.frame["Total"])) == {k: int(v) for k, v in n.items()}


def test_matrix_counts_and_characters(small):
    count = matrix.case_matrix(small, coder="alice", values="count")
    # Triggers: p1#2 (carries two of its codes: one segment), p2#2, p3#2 and p3#3
    assert cells(count, "Triggers") == {"p1": 1, "p2": 1, "p3": 2, "p4": 0, "Total": 4}
    chars = matrix.case_matrix(small, coder="alice", values="characters")
    first, second = (len(t) for t in TURNS["p3"])
    assert cells(chars, "Triggers")["p3"] == first + second
    assert cells(chars, "Resource seeking")["p3"] == second


def test_matrix_by_attribute_and_document(small):
    r = matrix.case_matrix(small, coder="alice", by="group")
    assert r.cases == ["A", "B"] and r.groups == {"A": 2, "B": 2}
    assert cells(r, "Domestic conditions") == {"A": 2, "B": 1, "Total": 3}
    assert cells(r, "External") == {"A": 1, "B": 1, "Total": 2}
    docs = matrix.case_matrix(small, coder="alice", by="document", values="count")
    assert docs.cases == ["p1", "p2", "p3", "p4"]
    assert cells(docs, "Resource seeking") == {"p1": 1, "p2": 1, "p3": 1, "p4": 0, "Total": 3}
    with pytest.raises(UnknownReference, match="unknown participant attribute 'age'"):
        matrix.case_matrix(small, coder="alice", by="age")


def test_matrix_xlsx_has_one_sheet_per_factor(small, tmp_path):
    from openpyxl import load_workbook

    from coder.analysis import outputs

    r = matrix.case_matrix(small, coder="alice")
    path = outputs.write(r.tables(), tmp_path / "m.xlsx")
    wb = load_workbook(path)
    assert wb.sheetnames == ["Triggers", "External", "Notes"]
    rows = list(wb["Triggers"].values)
    assert rows[1][:4] == ("id", "path", "factor", "Code")
    assert [r[3] for r in rows[2:]] == ["Triggers", "Domestic conditions", "Resource seeking"]


# -- saturation --------------------------------------------------------------------------------
CODES25 = {"name": "Twenty-five codes", "codes": [
    {"name": "F", "codes": [{"name": f"C{i:02d}"} for i in range(1, 26)]}]}

# The constructed example, worked by hand (interviews in import order i1..i8):
#   i1 C01-C05, i2 C06-C10, i3 C11-C15, i4 C16-C20  -> base = 20 distinct codes
#   i5 C21 C22 (and C01 again), i6 C23 (and C02), i7 C03, i8 C04
# run 1 = interviews 5-6: new = C21 C22 C23 = 3 -> 3/20 = 15% > 5%
# run 2 = interviews 6-7: new (not in i1..i5) = C23 = 1 -> 1/20 = 5% <= 5%: saturation
#   reached after 5 interviews, confirmed by interviews 6-7 (5+2, as Guest et al. report it)
# run 3 = interviews 7-8: new = none -> 0%
EXAMPLE = {"i1": range(1, 6), "i2": range(6, 11), "i3": range(11, 16), "i4": range(16, 21),
           "i5": [21, 22, 1], "i6": [23, 2], "i7": [3], "i8": [4]}


def saturation_study(tmp_path, example=EXAMPLE, participants=None):
    s = make_study(tmp_path, CODES25, participants=participants,
                   turns={p: [f"{p} talks."] for p in example})
    code(s, [("alice", p, f"C{i:02d}") for p, ids in example.items() for i in ids])
    return s


def test_saturation_on_the_constructed_example(tmp_path):
    s = saturation_study(tmp_path)
    r = saturation.saturation(s, rounds=0)
    assert r.base_codes == 20
    assert list(zip(r.runs["first"], r.runs["last"], r.runs["new_codes"])) == [
        (5, 6, 3), (6, 7, 1), (7, 8, 0)]
    assert list(r.runs["new_information"]) == [0.15, 0.05, 0.0]
    assert list(r.runs["within_threshold"]) == [False, True, True]
    assert r.runs.iloc[0]["new"] == "C21; C22; C23"
    assert list(r.runs["before"]) == [4, 5, 6]
    assert r.reached and (r.after, r.confirmed_at) == (5, 7)
    assert r.statement == ("Saturation reached after 5 interviews, confirmed by the next 2 "
                           "(5+2; base 4, run 2, \u22645% new information).")
    assert "Interviews 6\u20137 added 1 new code(s), 5% of the 20 codes in the base." in (
        r.summary())
    assert list(r.curve["new_codes"]) == [5, 5, 5, 5, 2, 1, 0, 0]
    assert list(r.curve["cumulative"]) == [5, 10, 15, 20, 22, 23, 23, 23]
    # a stricter threshold: run 2 (5%) no longer passes, run 3 (7-8, 0%) does: 6+2
    assert saturation.saturation(s, threshold=0.04, rounds=0).after == 6
    # a longer run: interviews 5-7 add C21-C23 (15%), 6-8 add C23 (5%) -> 5+3
    longer = saturation.saturation(s, run=3, rounds=0)
    assert (longer.after, longer.confirmed_at) == (5, 8)
    assert longer.statement.startswith("Saturation reached after 5 interviews, confirmed by "
                                       "the next 3 (5+3;")


CODES50 = {"name": "Fifty codes", "codes": [
    {"name": "F", "codes": [{"name": f"T{i:02d}"} for i in range(1, 51)]}]}


def test_saturation_reproduces_guest_namey_chen_example(tmp_path):
    """The hypothetical example of Guest, Namey & Chen 2020 (PLOS ONE 15(5): e0232076, Fig 2),
    base 4, run 2, threshold <=5%: the 4 interviews of the base hold 37 unique themes, the
    first run (interviews 5 and 6) brings 7 new ones, 7/37 = 19% new information, so the
    threshold is not met there. Those three numbers (37, 7, 19%) are the paper's, as read on
    https://qeeebo.com/questions/int/28/00d/20-interesting-statistics-about-saturation (item
    10, citing the paper); the paper's own text was not to be had here, so how the 37 and the
    7 split over single interviews is ours (the split changes none of the three numbers).

    How the result is reported is the paper's too: saturation at k interviews plus the run
    that confirms it (its bootstrap median at 0%: 11 interviews, and 2 more to confirm; same
    page, item 2), written k+r, with runs sliding one interview at a time (a research note in
    the public code index that quotes the paper's full text). Interviews 7 and 8 below are
    ours: they repeat earlier themes only, so the run 7-8 adds 0% and saturation is reported as
    6+2."""
    example = {
        "g1": range(1, 16),                       # 15 themes
        "g2": [*range(16, 26), 1, 2],             # 10 new (and 2 again)
        "g3": [*range(26, 33), 3, 16],            # 7 new
        "g4": [*range(33, 38), 4, 26],            # 5 new: the base holds 37 distinct themes
        "g5": [*range(38, 42), 5, 33],            # 4 new
        "g6": [*range(42, 45), 6],                # 3 new: the run 5-6 brings 7
        "g7": [7, 38],                            # ours: nothing new
        "g8": [8, 42]}                            # ours: nothing new
    s = make_study(tmp_path, CODES50, turns={p: [f"{p} talks."] for p in example})
    code(s, [("alice", p, f"T{i:02d}") for p, ids in example.items() for i in ids])
    r = saturation.saturation(s, base=4, run=2, threshold=0.05, rounds=0)
    assert r.base_codes == 37                                           # the paper's 37
    first = r.runs.iloc[0]
    assert (first["first"], first["last"], first["new_codes"]) == (5, 6, 7)   # the paper's 7
    assert f"{first['new_information']:.0%}" == "19%"                   # the paper's 19%
    assert first["new_information"] == 7 / 37 and not first["within_threshold"]
    # the denominator stays the base's 37: the run 6-7 brings the 3 new themes of interview 6
    assert r.runs.iloc[1]["new_codes"] == 3 and r.runs.iloc[1]["new_information"] == 3 / 37
    # ours: the run 7-8 repeats earlier themes, 0/37, so saturation at 6 confirmed by 7-8
    assert list(r.runs["new_codes"]) == [7, 3, 0]
    assert (r.after, r.confirmed_at) == (6, 8)
    assert r.statement == ("Saturation reached after 6 interviews, confirmed by the next 2 "
                           "(6+2; base 4, run 2, \u22645% new information).")
    s.close()


def test_saturation_not_reached(tmp_path):
    example = dict(EXAMPLE, i8=[24])      # run 3 (7-8) now adds C24: 5%
    s = saturation_study(tmp_path, example)
    r = saturation.saturation(s, threshold=0.04, rounds=0)
    assert not r.reached and r.after is None
    assert r.statement == "Saturation not reached (base 4, run 2, \u22644% new information)."
    assert "the last (interviews 7\u20138) added 1 (5%)" in r.summary()


def test_saturation_band_over_random_orders(tmp_path):
    s = saturation_study(tmp_path)
    a = saturation.saturation(s, rounds=200, seed=3)
    b = saturation.saturation(s, rounds=200, seed=3)
    assert a.curve.equals(b.curve) and a.random_reached == b.random_reached
    c = a.curve
    assert (c["random_low"] <= c["random_mean"]).all() and (
        c["random_mean"] <= c["random_high"]).all()
    # every order ends with all 23 codes
    assert c.iloc[-1][["random_low", "random_mean", "random_high"]].tolist() == [23, 23, 23]
    assert 0 <= a.random_reached <= 1
    assert "random orders of the interviews (seed 3)" in a.summary()


def test_saturation_orders(tmp_path):
    # an attribute that reverses the interviews: i8 first ... i1 last
    people = {p: {"when": f"2024-01-{9 - k:02d}"} for k, p in enumerate(EXAMPLE, 1)}
    s = saturation_study(tmp_path, participants=people)
    r = saturation.saturation(s, order="when", rounds=0)
    assert list(r.curve["document"]) == [f"i{k}" for k in range(8, 0, -1)]
    assert list(r.curve["order_value"])[0] == "2024-01-01"
    shuffled = saturation.saturation(s, order="random", seed=1, rounds=0)
    assert sorted(shuffled.curve["document"]) == sorted(EXAMPLE)
    with pytest.raises(UnknownReference) as e:
        saturation.saturation(s, order="date", rounds=0)
    assert str(e.value) == (
        "no interview dates: neither the documents nor the participants have a 'date' (add a "
        "'date' column (YYYY-MM-DD) to the participants CSV and import it with coder "
        "participants import, or use --order import|random|ATTRIBUTE)")
    with pytest.raises(UnknownReference, match="unknown order 'size'"):
        saturation.saturation(s, order="size", rounds=0)


def test_saturation_needs_enough_interviews(tmp_path):
    s = saturation_study(tmp_path)
    with pytest.raises(CoderError) as e:
        saturation.saturation(s, base=6, run=3)
    assert str(e.value) == ("saturation needs at least base + run = 9 interviews; the analysed "
                            "documents are 8 (use a smaller --base or --run)")


def test_saturation_figure_renders(tmp_path):
    from coder.analysis import outputs
    from coder.analysis.chart import png_size

    r = saturation.saturation(saturation_study(tmp_path), rounds=50)
    w, h = png_size(outputs.save_figure(r.figure(), tmp_path / "sat.png").read_bytes())
    assert (w, h) == (1300, 800)                       # 6.5 x 4 in at 200 dpi


# -- leads_to and the model figure -------------------------------------------------------------
MODEL = {"name": "Model", "codes": [
    {"name": "Triggers", "leads_to": ["External"], "codes": [
        {"name": "Domestic conditions"}, {"name": "Resource seeking"}]},
    {"name": "External", "codes": [
        {"name": "Foreign market attraction", "codes": [
            {"name": "Larger markets outside"}, {"name": "Competitive markets"}]},
        {"name": "Continuous changes", "codes": [{"name": "Societal changes"}]}]}]}


def test_leads_to_is_read_checked_stored_and_written(tmp_path):
    book = load(write_codebook(tmp_path / "model.yaml", MODEL))
    assert book.codes[0].leads_to == ["External"]          # a path until ids are assigned
    s = make_study(tmp_path, MODEL, turns={"p1": ["hello"]})
    path = s.path
    s.close()
    with Study(path) as again:
        top = [c for c in again.codebook().codes if c.depth == 1]
        assert [c.leads_to for c in top] == [["external"], []]
        assert "leads_to:\n  - external" in again.codebook().to_yaml()
        assert model_figure.columns(again.codebook()) == [[top[0]], [top[1]]]
    for bad, message in [
        ({"name": "Triggers", "leads_to": "Nowhere"}, "leads_to 'Nowhere' is not a factor"),
        ({"name": "Triggers", "leads_to": "Triggers"}, "a factor cannot lead to itself")]:
        with pytest.raises(CodebookError, match=message):
            load(write_codebook(tmp_path / "bad.yaml",
                                {"name": "x", "codes": [bad, {"name": "Other"}]}))
    with pytest.raises(CodebookError, match="leads_to is for factors"):
        load(write_codebook(tmp_path / "bad.yaml", {"name": "x", "codes": [
            {"name": "A", "codes": [{"name": "a", "leads_to": "B"}]}, {"name": "B"}]}))


def test_codebooks_without_leads_to_keep_their_hash_and_old_files_load(tmp_path):
    book = load(write_codebook(tmp_path / "small.yaml", SMALL_CODEBOOK))
    assert "leads_to" not in book.canonical_json()
    s = make_study(tmp_path, SMALL_CODEBOOK, turns={"p1": ["hello"]})
    # a version stored before leads_to existed: its content has no such key
    content = json.loads(s.db.one("SELECT content FROM codebook_versions")["content"])
    assert all("leads_to" not in c for c in content)
    path = s.path
    s.close()
    with Study(path) as again:
        assert all(c.leads_to == [] for c in again.codebook().codes)
        version = again.codebook_version
        again.import_codebook(tmp_path / "small.yaml")
        assert again.codebook_version == version           # same codebook: no new version


def test_seed_codebook_declares_the_factor_order():
    from conftest import SEED_CODEBOOK

    book = load(SEED_CODEBOOK)
    order = {c.id: c.leads_to for c in book.codes if c.depth == 1}
    assert order == {"trig": ["ops"], "int": ["trig"], "ext": ["trig"], "net": ["ops"],
                     "barr": ["ops"], "ops": []}
    assert [[c.id for c in col] for col in model_figure.columns(book)] == [
        ["int", "ext"], ["trig", "net", "barr"], ["ops"]]


def test_model_figure_renders_png_and_svg(tmp_path):
    s = make_study(tmp_path, MODEL, turns={"p1": ["markets"], "p2": ["money"]})
    code(s, [("alice", "p1", "Domestic conditions"), ("alice", "p2", "Societal changes")])
    info = model_figure.model_figure(s, tmp_path / "model.png")
    assert (info.factors, info.arrows, info.width_px) == (2, 1, 1400)   # 7 in at 200 dpi
    assert 300 <= info.height_px <= 1400
    svg = model_figure.model_figure(s, tmp_path / "model.svg")
    text = svg.path.read_text()
    assert "<svg" in text and "Domestic conditions" in text and "50%" in text
    with pytest.raises(CoderError) as e:
        model_figure.model_figure(s, tmp_path / "model.pdf")
    assert str(e.value).endswith("figures are written as PNG or SVG; model.pdf ends in neither "
                                 "(name the file FIGURE.png or FIGURE.svg)")


# -- summaries ---------------------------------------------------------------------------------
SUMMARY_TURNS = {
    "Aminah": ["Kumar told me the home market is too small.", "We export to Siti's clients."],
    "Kumar": ["Exports grew after the crisis.", "Nothing else to add."],
    "Siti": ["I met aminah and KUMAR at a trade fair.", "The weather was fine."],
}


@pytest.fixture
def people(tmp_path):
    s = make_study(tmp_path, turns=SUMMARY_TURNS)
    code(s, [("alice", "Aminah", "Domestic conditions", "confirmed", 2),
             ("alice", "Aminah", "Larger markets outside", "confirmed", 3),
             ("alice", "Kumar", "Domestic conditions", "confirmed", 2),
             ("alice", "Siti", "Societal changes", "confirmed", 2),
             ("alice", "Siti", "Resource seeking", "rejected", 3)])
    yield s
    s.close()


@pytest.mark.parametrize("fmt", ["md", "html", "docx"])
def test_summaries_hold_only_the_participant_s_own_passages(people, tmp_path, fmt):
    result = summaries.summaries(people, tmp_path / "out", fmt=fmt, coder="alice")
    assert [s.participant for s in result.written] == ["Aminah", "Kumar", "Siti"]
    texts = {}
    for s in result.written:
        if fmt == "docx":
            texts[s.participant] = "\n".join(p.text for p in Document(str(s.path)).paragraphs)
        else:
            texts[s.participant] = html.unescape(s.path.read_text(encoding="utf-8"))
        assert s.path.name == f"{s.participant}.{fmt}"
    for person, text in texts.items():
        for other in SUMMARY_TURNS:
            if other != person:
                assert other.lower() not in text.lower(), (person, other)
                for turn in SUMMARY_TURNS[other]:       # nobody else's passage
                    assert turn not in text
    aminah = texts["Aminah"]
    assert "[another participant] told me the home market is too small." in aminah
    assert "We export to [another participant]'s clients." in aminah
    assert "Domestic conditions" in aminah and "Larger markets outside" in aminah
    assert "Societal changes" not in aminah and "Resource seeking" not in aminah
    assert "segment 2, characters" in aminah
    siti = texts["Siti"]
    assert "I met [another participant] and [another participant] at a trade fair." in siti
    assert "The weather was fine." not in siti                   # rejected: not a passage
    assert "Exports grew after the crisis." in texts["Kumar"]
    assert [s.redactions for s in result.written] == [2, 0, 2]


def test_summaries_quote_the_stored_text_exactly(people, tmp_path):
    result = summaries.summaries(people, tmp_path / "out", fmt="md", coder="alice")
    kumar = result.written[1].path.read_text(encoding="utf-8")
    seg = people.db.one("SELECT start_char, end_char, text FROM segment_view "
                        "WHERE participant = 'Kumar' AND position = 2")
    assert f"> {seg['text']}" in kumar
    assert f"characters {seg['start_char']}\u2013{seg['end_char']}" in kumar


def test_summaries_refuse_a_file_as_folder(people, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(CoderError, match="is a file, not a folder"):
        summaries.summaries(people, target, coder="alice")
    with pytest.raises(CoderError, match="folder .* does not exist"):
        summaries.summaries(people, tmp_path / "no" / "out", coder="alice")


# -- memos -------------------------------------------------------------------------------------
def add_memos(s):
    seg = {r["position"]: r["segment_id"] for r in s.db.query(
        "SELECT position, segment_id FROM segment_view WHERE document = 'p1'")}
    review.memo(s, "bob", seg[3], "Ask about the second market.")
    review.decide(s, "alice", seg[2], s.codebook().resolve("Domestic conditions").id,
                  "confirmed", memo="Clear push factor.")
    with s.db.transaction() as conn:
        conn.execute("INSERT INTO memos (segment_id, document_id, coder_id, text, created_at) "
                     "VALUES (NULL, (SELECT id FROM documents WHERE name = 'p2'), "
                     "(SELECT id FROM coders WHERE name = 'alice'), 'Noisy recording.', "
                     "'2024-01-01T00:00:00Z')")


def test_memos_lists_every_kind_next_to_codes(small):
    add_memos(small)
    frame = memos.memos(small)
    assert list(zip(frame["kind"], frame["coder"], frame["text"])) == [
        ("code", "alice", "Clear push factor."),
        ("segment", "bob", "Ask about the second market."),
        ("document", "alice", "Noisy recording.")]
    assert frame.iloc[0]["code"] == "Triggers/Domestic conditions"
    assert frame.iloc[1]["codes"] == "External/Foreign market attraction/Larger markets outside"
    groups = dict((h, list(b["text"])) for h, b in memos.by_code(frame, small.codebook()))
    assert groups == {"Triggers/Domestic conditions": ["Clear push factor."],
                      "External/Foreign market attraction/Larger markets outside": [
                          "Ask about the second market."],
                      "Documents": ["Noisy recording."]}


def test_memos_filters(small):
    add_memos(small)
    assert list(memos.memos(small, code="External")["text"]) == ["Ask about the second market."]
    assert list(memos.memos(small, coder="bob")["text"]) == ["Ask about the second market."]
    assert list(memos.memos(small, documents=["p2"])["text"]) == ["Noisy recording."]
    with pytest.raises(UnknownReference, match="unknown coder 'carol'"):
        memos.memos(small, coder="carol")
    with pytest.raises(UnknownReference, match="unknown code 'Nothing'"):
        memos.memos(small, code="Nothing")


def test_analyses_leave_the_study_unchanged(small, tmp_path):
    before = dump(small.path)
    cooccurrence.cooccurrence(small, coder="alice", quotes=2)
    matrix.case_matrix(small, coder="alice", by="group")
    summaries.summaries(small, tmp_path / "s", fmt="md", coder="alice")
    memos.memos(small)
    with pytest.raises(CoderError):
        saturation.saturation(small, coder="alice")        # 4 interviews: too few
    assert dump(small.path) == before


def test_markdown_cells_keep_angle_brackets_pipes_and_backslashes():
    """A memo like "<push>" must not vanish as an HTML tag when the .md table is rendered."""
    from coder.analysis.tables import _md_cell

    assert _md_cell("ask <push> | a\\b\nnext") == "ask \\<push> \\| a\\\\b next"
