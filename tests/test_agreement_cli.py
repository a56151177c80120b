"""`coder agree` on ratings CSVs and study files, disagreements sheets and `coder reconcile`:
real files in tmp dirs, exact messages and exit codes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from coder.analysis import agreement as A
from coder.analysis import coefficients
from coder.cli import cli
from coder.store.db import now


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


# -- ratings CSV -------------------------------------------------------------------------------
@pytest.fixture
def ratings(tmp_path):
    # Krippendorff (2011) section C, long format (coders A-D, units 1-12, empty = missing)
    rows = {"A": "1 2 3 3 2 1 4 1 2 . . .", "B": "1 2 3 3 2 2 4 1 2 5 . 3",
            "C": ". 3 3 3 2 3 4 2 2 5 1 .", "D": "1 2 3 3 2 4 4 1 2 5 1 ."}
    lines = ["unit,coder,value"]
    for coder, values in rows.items():
        for unit, v in enumerate(values.split(), start=1):
            lines.append(f"{unit},{coder},{'' if v == '.' else v}")
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("level,alpha", [("nominal", 0.743), ("ordinal", 0.815),
                                         ("interval", 0.849), ("ratio", 0.797)])
def test_ratings_csv_json(ratings, level, alpha):
    r = run("agree", ratings, "--level", level, "--json", "--resamples", 200)
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert round(d["krippendorff_alpha"], 3) == alpha
    assert d["units"] == 11 and d["coders"] == ["A", "B", "C", "D"]
    assert d["cohen_kappa"] is None and d["fleiss_kappa"] is not None
    assert d["alpha_ci95"][0] < d["krippendorff_alpha"] < d["alpha_ci95"][1]
    assert d["bootstrap"]["resamples"] == 200 and d["bootstrap"]["seed"] == 0


def test_ratings_csv_table(ratings):
    r = run("agree", ratings)
    assert r.exit_code == 0, r.output
    assert "Krippendorff's alpha" in r.output and "0.743" in r.output
    assert "Cohen's kappa is for two coders; 4 were compared" in r.output
    assert "1000 resamples, seed 0" in r.output


def test_ratings_text_categories_and_weights(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("unit,coder,value\nu1,x,yes\nu1,y,yes\nu2,x,no\nu2,y,yes\nu3,x,no\nu3,y,no\n")
    d = json.loads(run("agree", p, "--json").output)
    assert d["percent_agreement"] == pytest.approx(2 / 3)
    assert d["cohen_kappa"] == pytest.approx(0.4)
    r = run("agree", p, "--weights", "linear")
    assert r.exit_code == 1
    assert r.output == (f"Error: {p}: line 2: value 'yes' is not a number (linear weights needs "
                        "numbers; use --level nominal without --weights for categories)\n")


def test_ratings_missing_columns(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("unit,rater,value\n1,a,1\n")
    r = run("agree", p)
    assert r.exit_code == 1
    assert r.output == (f"Error: {p}: missing column(s): coder (a ratings file has columns "
                        "unit,coder,value)\n")


def test_ratings_non_numeric_at_interval_level(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("unit,coder,value\n1,a,1\n1,b,2\n2,a,high\n2,b,3\n")
    r = run("agree", p, "--level", "interval")
    assert r.exit_code == 1
    assert r.output == (f"Error: {p}: line 4: value 'high' is not a number (the interval level "
                        "needs numbers; use --level nominal without --weights for categories)\n")


def test_ratings_one_coder_only(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("unit,coder,value\n1,a,1\n2,a,2\n")
    r = run("agree", p)
    assert r.exit_code == 1
    assert r.output == f"Error: {p}: only one coder (a); agreement needs at least two\n"


def test_ratings_duplicate_and_missing_file(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("unit,coder,value\n1,a,1\n1,b,2\n1,a,2\n")
    r = run("agree", p)
    assert r.exit_code == 1
    assert r.output == f"Error: {p}: line 4: coder 'a' rated unit '1' more than once\n"
    r = run("agree", tmp_path / "nope.csv")
    assert r.exit_code == 1 and "nope.csv: file not found" in r.output


def test_study_options_refused_for_csv(ratings):
    r = run("agree", ratings, "--coders", "a,b")
    assert r.exit_code == 2
    assert "--coders apply to a study file" in r.output


def test_edge_case_all_same_category_is_defined(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("unit,coder,value\n1,a,x\n1,b,x\n2,a,x\n2,b,x\n")
    d = json.loads(run("agree", p, "--json").output)
    assert d["percent_agreement"] == 1.0
    assert d["krippendorff_alpha"] is None and "no variation" in d["notes"]["krippendorff_alpha"]
    assert d["alpha_ci95"] is None


# -- studies -----------------------------------------------------------------------------------
def code(study, seg, coder, code_id, decision="confirmed"):
    cid = study.coder_id(coder)
    with study.db.transaction() as conn:
        conn.execute("INSERT INTO codings (segment_id, coder_id, code_id, decision, source,"
                     " created_at) VALUES (?,?,?,?, 'import', ?)",
                     (seg, cid, code_id, decision, now()))


def suggest(study, seg, code_id, score, threshold=None):
    with study.db.transaction() as conn:
        conn.execute("INSERT INTO suggestions (segment_id, code_id, score, rank, source, threshold,"
                     " codebook_version, created_at) VALUES (?,?,?,1,'classifier',?,1,?)",
                     (seg, code_id, score, threshold, now()))


@pytest.fixture
def coded(study):
    """Participant segments 2, 4, 6 (p01) and 8, 10 (p02); bob's only decision on 10 is 'auto',
    so the compared units are 2, 4, 6, 8."""
    for seg, c in [(2, "trig-domestic"), (4, "net-institutions"), (6, "bar-finance"),
                   (10, "net-personal")]:
        code(study, seg, "alice", c)
    code(study, 8, "alice", "trig-globalization", "added")
    code(study, 10, "alice", "trig-domestic", "rejected")
    for seg, c in [(2, "trig-domestic"), (4, "net-institutions"), (4, "bar-finance"),
                   (6, "bar-finance")]:
        code(study, seg, "bob", c)
    code(study, 8, "bob", None, "no_code")
    code(study, 10, "bob", "net-personal", "auto")
    return study


def test_study_agreement_per_code(coded):
    res = A.study_agreement(coded, ["alice", "bob"], resamples=100)
    assert res.units == 4
    rows = {r["code_id"]: r for r in res.comparisons[0].per_code}
    assert list(rows) == ["trig-domestic", "trig-globalization", "net-institutions",
                          "bar-finance"]
    assert rows["trig-domestic"]["krippendorff_alpha"] == 1.0
    assert rows["trig-domestic"]["cohen_kappa"] == 1.0
    # bar-finance: alice 0,0,1,0; bob 0,1,1,0 -> o00=4, o11=2, o01=o10=1; alpha = 1 - 7*2/30
    assert rows["bar-finance"]["krippendorff_alpha"] == pytest.approx(1 - 14 / 30)
    assert rows["bar-finance"]["percent_agreement"] == 0.75
    assert rows["bar-finance"]["positives"] == {"alice": 1, "bob": 2}
    assert rows["trig-globalization"]["krippendorff_alpha"] == pytest.approx(0.0)
    comp = res.comparisons[0]
    assert comp.mean_over_codes["krippendorff_alpha"] == pytest.approx(
        (1 + 0 + 1 + (1 - 14 / 30)) / 4)
    # pooled: 16 (segment, code) units, the same as stacking the four binary columns
    assert comp.pooled.units == 16
    d = res.as_dict()
    assert d["units"] == 4 and d["coders"] == ["alice", "bob"] and len(d["per_code"]) == 4
    assert d["summary"].startswith("pooled")


def test_study_code_selection_and_undefined_code(coded):
    res = A.study_agreement(coded, ["alice", "bob"], codes=["Networking/*"], resamples=0,
                            ci=False)
    rows = {r["code_id"]: r for r in res.comparisons[0].per_code}
    assert list(rows) == ["net", "net-institutions", "net-personal"]
    assert rows["net-personal"]["krippendorff_alpha"] is None  # nobody applied it on the units
    assert "no variation" in rows["net-personal"]["notes"]["krippendorff_alpha"]
    assert rows["net-personal"]["gwet_ac1"] == 1.0  # binary categories are given


def test_study_machine_as_coder(coded):
    suggest(coded, 2, "trig-domestic", 0.9, 0.6)       # above its threshold
    suggest(coded, 4, "net-institutions", 0.4)         # below the default 0.5
    suggest(coded, 6, "bar-finance", 0.55)             # above 0.5
    suggest(coded, 10, "net-personal", 0.9)            # not a unit: bob did not decide it
    res = A.study_agreement(coded, ["alice", "bob"], machine=True, resamples=0, ci=False)
    assert [c.coders for c in res.comparisons] == [
        ["alice", "bob"], ["alice", "machine"], ["bob", "machine"]]
    am = {r["code_id"]: r for r in res.comparisons[1].per_code}
    assert am["trig-domestic"]["krippendorff_alpha"] == 1.0
    assert am["net-institutions"]["positives"] == {"alice": 1, "machine": 0}
    assert "net-personal" not in am


def test_study_cli_table_json_csv(coded, study_path, tmp_path):
    r = run("agree", study_path, "--coders", "alice,bob")
    assert r.exit_code == 0, r.output
    assert "4 segments decided by every coder (alice, bob)" in r.output
    assert "Barriers and challenges/Financial constraints" in r.output
    assert "mean over codes" in r.output and "pooled" in r.output
    r = run("agree", study_path, "--coders", "alice,bob", "--json", "--resamples", 50)
    d = json.loads(r.output)
    assert d["units"] == 4 and [p["code_id"] for p in d["per_code"]][0] == "trig-domestic"
    for p in d["per_code"]:
        for key in ("units", "coders", *coefficients.MEASURES, "alpha_ci95"):
            assert key in p
    out = tmp_path / "agree.csv"
    r = run("agree", study_path, "--coders", "alice,bob", "--csv", out, "--resamples", 0)
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out)
    assert list(table.code)[-2:] == ["(mean over codes)", "(pooled)"]


def test_study_bad_coders(coded, study_path):
    r = run("agree", study_path, "--coders", "alice,carol")
    assert r.exit_code == 1
    assert r.output == "Error: unknown coder(s): carol (coders in this study: alice, bob)\n"
    r = run("agree", study_path, "--coders", "alice")
    assert r.exit_code == 1
    assert r.output == ("Error: agreement needs at least two coders (e.g. --coders alice,bob, "
                        "or --coders alice --machine)\n")
    r = run("agree", study_path)
    assert r.exit_code == 2 and "--coders alice,bob" in r.output
    r = run("agree", study_path, "--coders", "alice,bob", "--level", "interval")
    assert r.exit_code == 2


def test_nothing_decided_by_both(study, study_path):
    code(study, 2, "alice", "trig-domestic")
    code(study, 4, "bob", "trig-domestic")
    r = run("agree", study_path, "--coders", "alice,bob")
    assert r.exit_code == 1
    assert r.output == ("Error: no segment was decided by every one of: alice, bob (agreement "
                        "counts only segments all compared coders have coded)\n")


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_disagreements_and_reconcile(coded, study_path, tmp_path, suffix):
    sheet = tmp_path / f"dis{suffix}"
    r = run("agree", study_path, "--coders", "alice,bob", "--disagreements", sheet,
            "--resamples", 0)
    assert r.exit_code == 0, r.output
    assert f"Wrote 2 disagreement(s) to {sheet}" in r.output
    df = (pd.read_csv(sheet, keep_default_na=False) if suffix == ".csv"
          else pd.read_excel(sheet).fillna(""))
    assert list(df.columns) == ["document", "segment", "speaker", "previous", "text", "next",
                                "alice", "bob", "agreed", "reason"]
    first = df.iloc[0]
    assert (first.document, first.segment) == ("p01", 4)
    assert first.previous == "And who helps them?" and first.next == "What stops them?"
    assert first.alice == "Networking/Government and non-government institutions"
    assert first.bob == ("Networking/Government and non-government institutions; "
                         "Barriers and challenges/Financial constraints")
    assert df.iloc[1].bob == "none"

    df["agreed"] = df["agreed"].astype(object)
    df.loc[0, "agreed"] = "net-institutions"
    df.loc[0, "reason"] = "no financial content"
    df.loc[1, "agreed"] = "none"
    df.loc[1, "reason"] = "a description, not a factor"
    edited = tmp_path / f"edited{suffix}"
    df.to_csv(edited, index=False) if suffix == ".csv" else df.to_excel(edited, index=False)
    r = run("reconcile", study_path, "--coders", "alice,bob", "--as", "consensus",
            "--sheet", edited)
    assert r.exit_code == 0, r.output
    assert r.output.startswith(
        "Recorded 2 decision(s) on 2 segment(s) as consensus coder 'consensus'.\n")
    rows = coded.db.query(
        "SELECT k.segment_id, k.code_id, k.decision, k.reason, c.kind FROM codings k JOIN coders c"
        " ON c.id = k.coder_id WHERE c.name='consensus' AND k.source='reconcile'"
        " ORDER BY k.segment_id")
    assert [tuple(x) for x in rows] == [
        (4, "net-institutions", "confirmed", "no financial content", "consensus"),
        (8, None, "no_code", "a description, not a factor", "consensus")]
    # the coders' own codings are kept
    assert coded.db.one("SELECT COUNT(*) FROM codings k JOIN coders c ON c.id=k.coder_id "
                        "WHERE c.name IN ('alice','bob')")[0] == 12


def test_reconcile_validates_every_row_first(coded, study_path, tmp_path):
    sheet = tmp_path / "edited.csv"
    sheet.write_text("document,segment,agreed,reason\np01,4,net-institutions,ok\n"
                     "p01,99,none,x\np02,2,No such code,y\np02,4,,\n")
    before = coded.db.one("SELECT COUNT(*) FROM codings")[0]
    r = run("reconcile", study_path, "--coders", "alice,bob", "--sheet", sheet)
    assert r.exit_code == 1
    assert r.output == (f"Error: {sheet}: 2 bad row(s), nothing imported: line 3: no segment 99 "
                        "in document 'p01'; line 4: unknown code 'No such code'\n")
    assert coded.db.one("SELECT COUNT(*) FROM codings")[0] == before
    assert "consensus" not in coded.coders()
    sheet.write_text("document,segment,agreed\np01,4,net-institutions\np02,4,\n")
    r = run("reconcile", study_path, "--coders", "alice,bob", "--sheet", sheet)
    assert r.output.startswith("Recorded 1 decision(s) on 1 segment(s) as consensus coder "
                               "'consensus'. Skipped 1 row(s) with no 'agreed' value.\n")
    r = run("reconcile", study_path, "--coders", "alice,bob", "--as", "bob", "--sheet", sheet)
    assert r.exit_code == 1 and "is one of the compared coders" in r.output


def test_reconcile_terminal_walk(coded, study_path):
    # two disagreements: p01 #4 and p02 #2; an unknown code is asked again, then q stops
    steps = "bogus\n\nnet-institutions\nno money talk\nq\n"
    r = CliRunner().invoke(cli, ["reconcile", str(study_path), "--coders", "alice,bob"],
                           input=steps, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "2 disagreement(s) to reconcile (0 already done)" in r.output
    assert "[1/2] p01 #4 (DR AMINAH)" in r.output
    assert "before: And who helps them?" in r.output
    assert "unknown code 'bogus'; try again" in r.output
    assert "Stopped. Recorded 1, skipped 0." in r.output
    rows = coded.db.query("SELECT k.segment_id, k.code_id, k.reason FROM codings k JOIN coders c "
                          "ON c.id = k.coder_id WHERE c.name = 'consensus' AND "
                          "k.source = 'reconcile'")
    assert [tuple(x) for x in rows] == [(4, "net-institutions", "no money talk")]
    # resuming shows only what is left; Enter skips
    r = CliRunner().invoke(cli, ["reconcile", str(study_path), "--coders", "alice,bob"],
                           input="none\nnot a factor\n", catch_exceptions=False)
    assert "1 disagreement(s) to reconcile (1 already done)" in r.output
    assert "Done. Recorded 1 segment(s) as consensus coder 'consensus', skipped 0." in r.output
    r = run("reconcile", study_path, "--coders", "alice,bob")
    assert r.output.endswith("Nothing to reconcile: 2 disagreement(s) between alice, bob, 2 "
                             "already decided by 'consensus'.\n")


def test_study_detected_by_sqlite_header(coded, study_path, tmp_path):
    coded.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the copy must hold every row
    renamed = tmp_path / "study-copy.csv"
    renamed.write_bytes(study_path.read_bytes())
    r = run("agree", renamed, "--coders", "alice,bob", "--json", "--resamples", 0)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["units"] == 4


def test_study_unknown_document(coded, study_path):
    r = run("agree", study_path, "--coders", "alice,bob", "--documents", "p01,p09")
    assert r.exit_code == 1
    assert r.output.startswith("Error: unknown document(s): p09")


def test_study_documents_filter(coded):
    res = A.study_agreement(coded, ["alice", "bob"], documents=["p01"], ci=False)
    assert res.units == 3


def test_machine_without_suggestions(coded, study_path):
    r = run("agree", study_path, "--coders", "alice", "--machine")
    assert r.exit_code == 1
    assert r.output == (f"Error: the study has no suggestions for --machine to compare (make "
                        f"some first: coder suggest {study_path})\n")
