"""coder.analysis.frequency: who counts, how roll-ups and rounding work, and the errors users see."""

from __future__ import annotations

from fractions import Fraction

import pytest
from frequency_helpers import code, make_study

from coder.analysis import frequency
from coder.errors import CoderError, NothingToDo, UnknownReference

PEOPLE = {f"p{i}": {"group": "academics" if i <= 3 else "agencies"} for i in range(1, 9)}


@pytest.fixture
def study(tmp_path):
    s = make_study(tmp_path, participants=PEOPLE,
                   turns={p: [f"{p} first turn.", f"{p} second turn."] for p in PEOPLE})
    yield s
    s.close()


def row(df, name, rollup=""):
    hit = df[(df["name"] == name) & (df["rollup"] == rollup)]
    assert len(hit) == 1, (name, rollup, df[["name", "rollup"]])
    return hit.iloc[0]


def test_counts_distinct_participants_not_segments(study):
    code(study, [("alice", "p1", "Domestic conditions", "confirmed", 2),
                 ("alice", "p1", "Domestic conditions", "confirmed", 3),   # same person twice
                 ("alice", "p2", "Domestic conditions", "added", 2),       # added counts
                 ("alice", "p3", "Domestic conditions", "rejected", 2),    # rejected does not
                 ("alice", "p4", "Domestic conditions", "confirmed", 1),   # interviewer turn
                 ("alice", "p5", "Domestic conditions", "auto", 2)])       # only with auto
    df = frequency.frequencies(study)
    r = row(df, "Domestic conditions")
    assert (r["n"], r["N"], r["percent"], r["label"]) == (2, 8, 25, "25%")
    assert (r["segments"], r["documents"]) == (3, 2)
    assert r["items"] == "Saturated market; Economic crisis"
    assert df.attrs["N"] == 8 and df.attrs["coders"] == ["alice"]
    assert df.attrs["include_auto"] is False
    assert "auto-accepted suggestions not counted" in " ".join(df.attrs["notes"])

    auto = frequency.frequencies(study, include_auto=True)
    assert row(auto, "Domestic conditions")["n"] == 3
    assert auto.attrs["include_auto"] is True
    assert "auto-accepted suggestions included" in auto.attrs["selection"]


def test_levels_and_rollups(study):
    code(study, [("alice", "p1", "Larger markets outside"), ("alice", "p2", "Larger markets outside"),
                 ("alice", "p1", "Competitive markets"), ("alice", "p3", "Societal changes"),
                 ("alice", "p4", "Domestic conditions")])
    cats = frequency.frequencies(study, level="category")
    assert list(cats["name"]) == ["Domestic conditions", "Resource seeking",
                                  "Larger markets outside", "Competitive markets",
                                  "Societal changes"]
    assert set(cats["level"]) == {"category"} and set(cats["rollup"]) == {""}

    everything = frequency.frequencies(study, level="all")
    # A group: any = p1, p2 -> 2/8 = 25%; mean of 25% and 12.5% = 18.75 -> 19%.
    assert row(everything, "Foreign market attraction", "any")[["n", "label"]].tolist() == [2, "25%"]
    mean = row(everything, "Foreign market attraction", "mean")
    assert mean["label"] == "19%" and mean["n"] is pd_na()
    assert row(everything, "Foreign market attraction", "any")["level"] == "group"
    # A factor: any = p1, p2, p3 -> 3/8 = 37.5 -> 38% (half up); mean over its 3 categories.
    assert row(everything, "External", "any")["label"] == "38%"
    assert row(everything, "External", "mean")["label"] == "17%"  # (25+12.5+12.5)/3 = 16.67
    assert row(everything, "External", "any")["level"] == "factor"

    factors = frequency.frequencies(study, level="factor", rollups=("mean",))
    assert factors[["name", "rollup", "label"]].values.tolist() == [
        ["Triggers", "mean", "6%"], ["External", "mean", "17%"]]
    groups = frequency.frequencies(study, level="group")
    assert list(dict.fromkeys(groups["name"])) == ["Foreign market attraction",
                                                   "Continuous changes"]
    parents = cats.attrs["parents"]
    assert parents["triggers"]["any"] == "13%" and parents["triggers"]["mean"] == "6%"


def pd_na():
    import pandas as pd

    return pd.NA


def test_rounding_is_half_up_with_decimals(tmp_path):
    people = {f"q{i:02d}": {} for i in range(1, 33)}
    s = make_study(tmp_path, participants=people)
    names = sorted(people)
    code(s, [("alice", p, "Domestic conditions") for p in names[:20]]      # 62.5% -> 63%
         + [("alice", p, "Resource seeking") for p in names[:9]]           # 28.125%
         + [("alice", p, "Societal changes") for p in names[:1]])          # 3.125%
    df = frequency.frequencies(s)
    assert row(df, "Domestic conditions")["label"] == "63%"
    assert row(df, "Societal changes")["label"] == "3%"
    two = frequency.frequencies(s, decimals=2)
    assert row(two, "Societal changes")["label"] == "3.13%"   # 3.125 -> 3.13, not 3.12
    assert row(two, "Resource seeking")["percent"] == pytest.approx(28.13)
    one = frequency.frequencies(s, decimals=1)
    assert row(one, "Domestic conditions")["label"] == "62.5%"
    assert row(one, "Competitive markets")["label"] == "0.0%"
    s.close()


def test_round_half_up_exact():
    assert frequency.round_half_up(Fraction(125, 2)) == 63
    assert frequency.round_half_up(Fraction(245, 2)) == 123   # Python's round() gives 122
    assert frequency.format_percent(Fraction(1, 8), 2) == "0.13%"
    assert frequency.format_percent(Fraction(200, 3), 1) == "66.7%"
    assert frequency.format_percent(Fraction(0), 0) == "0%"


def test_combining_coders_by_rule(study):
    code(study, [("alice", "p1", "Domestic conditions"), ("bob", "p1", "Domestic conditions", "confirmed", 3),
                 ("alice", "p2", "Domestic conditions"), ("bob", "p3", "Domestic conditions")])
    anyone = frequency.frequencies(study, coders=["alice", "bob"], rule="any")
    assert row(anyone, "Domestic conditions")["n"] == 3
    both = frequency.frequencies(study, coders=["alice", "bob"], rule="all")
    assert row(both, "Domestic conditions")["n"] == 1            # only p1, by both coders
    assert both.attrs["rule"] == "all" and both.attrs["coders"] == ["alice", "bob"]
    assert "only if every one of them coded it" in both.attrs["selection"]
    assert row(frequency.frequencies(study, coder="bob"), "Domestic conditions")["n"] == 2

    with pytest.raises(CoderError) as e:
        frequency.frequencies(study)
    assert str(e.value) == ("several coders have codings (alice, bob); say whose count "
                            "(use --coder NAME, --consensus, or --coders alice,bob --rule any|all)")
    with pytest.raises(UnknownReference, match=r"unknown coder\(s\): carol \(coders: alice, bob\)"):
        frequency.frequencies(study, coder="carol")


def test_consensus_coder_is_the_default_when_present(study):
    code(study, [("alice", "p1", "Domestic conditions"), ("bob", "p2", "Domestic conditions")])
    with pytest.raises(NothingToDo, match="no consensus coder yet"):
        frequency.frequencies(study, consensus=True)
    code(study, [("agreed", "p3", "Domestic conditions"), ("agreed", "p4", "Domestic conditions")],
         coder_kind="consensus")
    df = frequency.frequencies(study, consensus=True)
    assert row(df, "Domestic conditions")["n"] == 2 and df.attrs["consensus"] is True
    assert "consensus coder agreed" in df.attrs["selection"]
    assert frequency.frequencies(study).attrs["coders"] == ["agreed"]


def test_by_attribute_gives_each_groups_n(study):
    code(study, [("alice", p, "Domestic conditions") for p in ("p1", "p2", "p5")])
    df = frequency.frequencies(study, by="group")
    assert df.attrs["groups"] == {"All": 8, "academics": 3, "agencies": 5}
    dc = df[df["name"] == "Domestic conditions"].set_index("value")
    assert dc.loc["All", ["n", "N", "label"]].tolist() == [3, 8, "38%"]
    assert dc.loc["academics", ["n", "N", "label"]].tolist() == [2, 3, "67%"]
    assert dc.loc["agencies", ["n", "N", "label"]].tolist() == [1, 5, "20%"]
    assert set(df["by"]) == {"group"}

    with pytest.raises(UnknownReference) as e:
        frequency.frequencies(study, by="gender")
    assert str(e.value) == "unknown participant attribute 'gender' (attributes: group)"


def test_participants_without_the_attribute_form_a_none_group(tmp_path):
    s = make_study(tmp_path, participants={"a": {"group": "x"}, "b": {}})
    code(s, [("alice", "a", "Domestic conditions"), ("alice", "b", "Domestic conditions")])
    df = frequency.frequencies(s, by="group")
    assert df.attrs["groups"] == {"All": 2, "x": 1, "(none)": 1}
    s.close()


def test_nothing_to_count_says_how_to_get_codings(study):
    with pytest.raises(NothingToDo) as e:
        frequency.frequencies(study)
    assert str(e.value) == (
        "no confirmed codings to count (auto-accepted suggestions count only with "
        f"--include-auto) (review suggestions with: coder review {study.path} --coder NAME; or import "
        f"codings with: coder codes import {study.path} CODINGS.csv --coder NAME)")
    code(study, [("alice", "p1", "Domestic conditions", "rejected")])
    with pytest.raises(NothingToDo, match="no confirmed codings"):
        frequency.frequencies(study)
    with pytest.raises(NothingToDo, match="no confirmed codings by alice"):
        frequency.frequencies(study, coder="alice")


def test_item_level_is_explained_not_counted(study):
    code(study, [("alice", "p1", "Domestic conditions")])
    with pytest.raises(CoderError, match="items are not counted"):
        frequency.frequencies(study, level="item")


def test_segments_without_a_participant_do_not_count_and_are_reported(study):
    code(study, [("alice", "p1", "Domestic conditions"), ("alice", "p2", "Domestic conditions")])
    with study.db.transaction() as conn:  # p2's speaker is no longer linked to a participant
        conn.execute("UPDATE speakers SET participant_id = NULL WHERE label = 'p2'")
    df = frequency.frequencies(study)
    assert row(df, "Domestic conditions")["n"] == 1
    assert df.attrs["N"] == 7
    assert df.attrs["unattributed_codings"] == 1
    assert any("not linked to a participant are not counted" in n for n in df.attrs["notes"])


def test_documents_restrict_the_analysed_set(study):
    code(study, [("alice", "p1", "Domestic conditions"), ("alice", "p2", "Domestic conditions")])
    df = frequency.frequencies(study, documents=["p1", "p3"])
    assert df.attrs["N"] == 2 and row(df, "Domestic conditions")["label"] == "50%"
    with pytest.raises(UnknownReference, match="unknown document"):
        frequency.frequencies(study, documents=["nope"])


def test_sort_by_frequency_keeps_factor_blocks(study):
    code(study, [("alice", "p1", "Domestic conditions"), ("alice", "p1", "Resource seeking"),
                 ("alice", "p2", "Resource seeking"), ("alice", "p3", "Competitive markets")])
    df = frequency.frequencies(study, sort="frequency")
    assert list(df["name"]) == ["Resource seeking", "Domestic conditions",
                                "Competitive markets", "Larger markets outside",
                                "Societal changes"]


def test_exemplars_prefer_different_participants(study):
    long = "word " * 100
    with study.db.transaction() as conn:
        conn.execute("UPDATE segments SET text = ? WHERE position = 3", (long,))
    code(study, [("alice", "p1", "Domestic conditions", "confirmed", 2),
                 ("alice", "p1", "Domestic conditions", "confirmed", 3),
                 ("alice", "p2", "Domestic conditions", "confirmed", 2),
                 ("alice", "p3", "Societal changes", "confirmed", 3)])
    q = frequency.exemplars(study, per_code=2, max_chars=50)
    dc = q[q["path"] == "Triggers/Domestic conditions"]
    assert list(dc["participant"]) == ["p1", "p2"]
    soc = q[q["path"] == "External/Continuous changes/Societal changes"].iloc[0]
    assert len(soc["text"]) == 50 and soc["text"].endswith("…")
    assert frequency.exemplars(study, per_code=0).empty


def test_through_import_a_focus_group_counts_each_speaker(tmp_path):
    """Real files through the import path: a focus group contributes each speaker; the
    interviewer never counts, even when an interviewer turn carries a code."""
    from frequency_helpers import write_codebook

    from coder.study import Study

    (tmp_path / "fg.txt").write_text(
        "INTERVIEWER: Why go abroad?\nANA: The home market is saturated.\n"
        "BEN: Costs are lower there.\nCARL: I agree with Ana, saturated.\n", encoding="utf-8")
    (tmp_path / "solo.txt").write_text(
        "INTERVIEWER: And you?\nDINA: We follow our customers.\n", encoding="utf-8")
    (tmp_path / "codings.csv").write_text(
        "document,segment,code\nfg,2,Domestic conditions\nfg,4,Domestic conditions\n"
        "fg,3,Resource seeking\nfg,1,Domestic conditions\n", encoding="utf-8")
    s = Study.create(tmp_path / "s.db", codebook=write_codebook(tmp_path / "cb.yaml"))
    s.import_transcripts([tmp_path / "fg.txt", tmp_path / "solo.txt"])
    s.import_codings(tmp_path / "codings.csv", coder="alice")
    df = frequency.frequencies(s, level="all")
    assert df.attrs["N"] == 4                                  # ANA, BEN, CARL, DINA
    assert row(df, "Domestic conditions")[["n", "label"]].tolist() == [2, "50%"]
    assert row(df, "Domestic conditions")["documents"] == 1
    assert row(df, "Triggers", "any")[["n", "label"]].tolist() == [3, "75%"]
    s.close()
