"""A consensus coder stands for every segment its coders decided (issue 14, part 1): agreed
decisions carried over with their provenance, disagreements reconciled, segments only one coder
decided by an explicit --single rule; a partial or out-of-date consensus is never counted by
default and refused (freq, chart, report, the web page) unless --allow-partial. Real study
files, the CLI through CliRunner, exact messages."""

from __future__ import annotations

import html
import json

import pandas as pd
import pytest
from cli_helpers import dump
from click.testing import CliRunner
from starlette.testclient import TestClient

from coder import review
from coder.analysis import agreement as A
from coder.analysis import frequency
from coder.cli import cli
from coder.errors import ConsensusIncomplete
from coder.store.db import now
from coder.web.app import create_app


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


def code(study, seg, coder, code_id, decision="confirmed"):
    cid = study.coder_id(coder)
    with study.db.transaction() as conn:
        conn.execute("INSERT INTO codings (segment_id, coder_id, code_id, decision, source,"
                     " created_at) VALUES (?,?,?,?, 'import', ?)",
                     (seg, cid, code_id, decision, now()))


@pytest.fixture
def coded(study):
    """As tests/test_agreement_cli.py: participant segments 2, 4, 6 (p01, DR AMINAH) and 8, 10
    (p02, Mr Tan). alice and bob agree on 2 (Domestic conditions) and 6 (Financial
    constraints), disagree on 4 and 8; only alice decided 10 (bob's 'auto' is no decision)."""
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


def sheet(tmp_path, rows):
    path = tmp_path / "agreed.csv"
    pd.DataFrame(rows, columns=["document", "segment", "agreed", "reason"]).to_csv(path,
                                                                                 index=False)
    return path


BOTH = [("p01", 4, "net-institutions", "no money talk"), ("p02", 2, "none", "a description")]
SUMMARY = ("Consensus coder 'consensus' of alice and bob covers 5 of 5 segments they decided: "
           "2 they agree on (carried over), 2 reconciled, 1 decided by only one of them (kept, "
           "--single keep).\n")


def consensus_rows(study, name="consensus"):
    return [tuple(r) for r in study.db.query(
        "SELECT k.segment_id, k.code_id, k.decision, k.source FROM codings k JOIN coders c "
        "ON c.id = k.coder_id WHERE c.name = ? ORDER BY k.segment_id, k.code_id", (name,))]


def n_of(df, name):
    return int(df.loc[df["name"] == name, "n"].iloc[0])


# -- the consensus covers every segment they decided -------------------------------------------
def test_reconcile_carries_over_what_they_agree_on_with_provenance(coded, study_path, tmp_path):
    r = run("reconcile", study_path, "--coders", "alice,bob", "--sheet", sheet(tmp_path, BOTH))
    assert r.exit_code == 0, r.output
    assert r.output == ("Recorded 2 decision(s) on 2 segment(s) as consensus coder "
                        "'consensus'.\n" + SUMMARY)
    assert consensus_rows(coded) == [
        (2, "trig-domestic", "confirmed", "consensus-agreed"),
        (4, "net-institutions", "confirmed", "reconcile"),
        (6, "bar-finance", "confirmed", "consensus-agreed"),
        (8, None, "no_code", "reconcile"),
        (10, "net-personal", "confirmed", "consensus-single")]
    # each carried or reconciled decision names the coders' decisions it came from
    prov = {}
    for row in coded.db.query(
            "SELECT k.segment_id, s.source_coding_id FROM consensus_sources s JOIN codings k "
            "ON k.id = s.coding_id"):
        prov.setdefault(row[0], set()).add(row[1])
    theirs = {}
    for row in coded.db.query(
            "SELECT k.segment_id, k.id FROM codings k JOIN coders c ON c.id = k.coder_id WHERE "
            "c.name IN ('alice', 'bob') AND k.decision != 'auto'"):
        theirs.setdefault(row[0], set()).add(row[1])
    assert prov == theirs and len(prov[2]) == 2 and len(prov[10]) == 2  # alice's two on 10
    # the coders' own codings are untouched
    assert coded.db.one("SELECT COUNT(*) FROM codings k JOIN coders c ON c.id = k.coder_id "
                        "WHERE c.name IN ('alice', 'bob')")[0] == 12
    # frequencies count the whole consensus: the agreed Domestic conditions (p01) and the
    # single-coded Personal relations (p02) are no longer lost
    df = frequency.frequencies(coded, consensus=True)
    assert [n_of(df, c) for c in ("Domestic conditions", "Personal relations",
                                  "Financial constraints", "Globalization force")] == [1, 1, 1, 0]
    assert df.attrs["notes"][1] == (
        "Codings: " + SUMMARY[0].lower() + SUMMARY[1:-2] + "; confirmed and added codings; "
        "auto-accepted suggestions not counted.")
    assert df.attrs["caveat"] is None and df.attrs["consensus_status"]["complete"] is True
    # a complete consensus is what plain `coder freq` counts
    plain = json.loads(run("freq", study_path, "--format", "json").output)
    assert plain["coders"] == ["consensus"] and plain["consensus"] is True


def test_rebuilding_is_a_no_op_when_nothing_changed(coded, study_path, tmp_path):
    run("reconcile", study_path, "--coders", "alice,bob", "--sheet", sheet(tmp_path, BOTH))
    history = coded.db.one("SELECT COUNT(*) FROM coding_history")[0]
    r = run("reconcile", study_path, "--coders", "alice,bob")
    assert r.output == SUMMARY + ("Nothing to reconcile: 2 disagreement(s) between alice, bob, "
                                  "2 already decided by 'consensus'.\n")
    assert coded.db.one("SELECT COUNT(*) FROM coding_history")[0] == history


# -- partial: refused unless --allow-partial ----------------------------------------------------
PARTIAL = ("consensus 'consensus' covers 4 of 5 segments decided by alice and bob: "
           "1 disagreement open")


def test_partial_consensus_is_never_counted_by_default(coded, study_path, tmp_path):
    r = run("reconcile", study_path, "--coders", "alice,bob",
            "--sheet", sheet(tmp_path, BOTH[:1]))
    assert r.output == (
        "Recorded 1 decision(s) on 1 segment(s) as consensus coder 'consensus'.\n"
        "Consensus coder 'consensus' of alice and bob covers 4 of 5 segments they decided: 2 "
        "they agree on (carried over), 1 reconciled, 1 decided by only one of them (kept, "
        "--single keep).\n"
        "Not complete yet: 1 disagreement open. Until it is, coder freq, coder report and the "
        "web page refuse it unless --allow-partial is given.\n")
    fix = (f"bring it up to date: coder reconcile {study_path} --coders alice,bob --as "
           "consensus; or count it as it is with --allow-partial")
    before = dump(study_path)
    r = run("freq", study_path, "--consensus")
    assert r.exit_code == 1
    assert r.output == f"Error: {PARTIAL} ({fix})\n"
    r = run("freq", study_path, "--coder", "consensus")
    assert r.output == f"Error: {PARTIAL} ({fix})\n"
    r = run("freq", study_path)
    assert r.exit_code == 1
    assert r.output == (f"Error: {PARTIAL} ({fix}; or say whose codings count: --coder NAME, "
                        "or --coders alice,bob --rule any|all)\n")
    out = tmp_path / "report.html"
    r = run("report", study_path, out, "--consensus")
    assert r.exit_code == 1 and r.output == f"Error: {PARTIAL} ({fix})\n"
    assert not out.exists()
    r = run("chart", study_path, tmp_path / "c.png", "--consensus")
    assert r.exit_code == 1 and r.output == f"Error: {PARTIAL} ({fix})\n"
    with pytest.raises(ConsensusIncomplete):
        frequency.exemplars(coded, consensus=True)
    assert dump(study_path) == before  # a refusal writes nothing

    # --allow-partial counts it, and the table's header says what it covers
    header = f"[PARTIAL: {PARTIAL}]"
    r = run("freq", study_path, "--consensus", "--allow-partial", "--format", "md")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0] == (
        f"**Categories, items, and frequency counts {header}** (N = 2)")
    assert f"_PARTIAL: {PARTIAL}._" in r.output
    data = json.loads(run("freq", study_path, "--consensus", "--allow-partial", "--format",
                          "json").output)
    assert f"PARTIAL: {PARTIAL}." in data["notes"]
    r = run("freq", study_path, "--allow-partial", "--format", "md")  # the default, allowed
    assert header in r.output.splitlines()[0]
    r = run("report", study_path, out, "--consensus", "--allow-partial")
    assert r.exit_code == 0, r.output
    assert (f"<caption>Categories, items, and frequency counts {header}"
            in html.unescape(out.read_text()))

    # reconciling the last disagreement completes it
    r = run("reconcile", study_path, "--coders", "alice,bob",
            "--sheet", sheet(tmp_path, BOTH[1:]))
    assert r.output.endswith(SUMMARY)
    assert run("freq", study_path, "--consensus").exit_code == 0


def test_consensus_from_an_older_coder_is_partial_until_rebuilt(coded, study_path):
    """What `coder reconcile` wrote before: the disagreements alone, no build record; and a
    study file from before this migration."""
    cid = coded.coder_id("consensus", kind="consensus")
    with coded.db.transaction() as conn:
        for seg, c, d in [(4, "net-institutions", "confirmed"), (8, None, "no_code")]:
            conn.execute("INSERT INTO codings (segment_id, coder_id, code_id, decision, memo, "
                         "source, created_at) VALUES (?,?,?,?, 'reconciled from alice, bob', "
                         "'reconcile', ?)", (seg, cid, c, d, now()))
        conn.execute("DROP TABLE consensus_sources")
        conn.execute("DROP TABLE consensus_members")
        conn.execute("DROP TABLE consensus_builds")
        conn.execute("DELETE FROM _migrations WHERE name = '0003_consensus_provenance'")
    coded.close()
    r = run("freq", study_path, "--consensus")  # opening the file migrates it
    assert r.exit_code == 1
    assert r.output == (
        "Error: consensus 'consensus' covers 2 of 5 segments decided by alice and bob: 3 "
        "segments they agree on (or only one of them decided) not in it: it was made by an "
        "older coder, from the disagreements alone (bring it up to date: coder reconcile "
        f"{study_path} --coders alice,bob --as consensus; or count it as it is with "
        "--allow-partial)\n")
    r = run("reconcile", study_path, "--coders", "alice,bob")
    assert r.output == SUMMARY + ("Nothing to reconcile: 2 disagreement(s) between alice, bob, "
                                  "2 already decided by 'consensus'.\n")
    assert run("freq", study_path, "--consensus").exit_code == 0


def test_a_consensus_not_made_by_reconcile_is_counted_and_says_so(study, study_path):
    """One imported from a project (or written by hand): nothing to check it against."""
    code(study, 2, "alice", "trig-domestic")
    cid = study.coder_id("agreed", kind="consensus")
    with study.db.transaction() as conn:
        conn.execute("INSERT INTO codings (segment_id, coder_id, code_id, decision, source, "
                     "created_at) VALUES (2, ?, 'trig-domestic', 'confirmed', 'import', ?)",
                     (cid, now()))
    df = frequency.frequencies(study)
    assert df.attrs["coders"] == ["agreed"]
    assert df.attrs["notes"][1].startswith(
        "Codings: consensus coder agreed (how it was built is not recorded, so what it covers "
        "cannot be checked); ")


# -- out of date: decisions after it was built --------------------------------------------------
def test_decisions_after_the_build_make_it_stale(coded, study_path, tmp_path):
    run("reconcile", study_path, "--coders", "alice,bob", "--sheet", sheet(tmp_path, BOTH))
    built = coded.db.one("SELECT built_at FROM consensus_builds")[0]
    # bob changes his mind on an agreed segment (6: adds Domestic conditions)
    review.decide(coded, "bob", 6, "trig-domestic", "added")
    r = run("freq", study_path, "--consensus")
    assert r.exit_code == 1
    assert r.output == (
        "Error: consensus 'consensus' covers 5 of 5 segments decided by alice and bob: alice or "
        f"bob made 1 decision after it was built ({built}) (bring it up to date: coder "
        f"reconcile {study_path} --coders alice,bob --as consensus; or count it as it is with "
        "--allow-partial)\n")
    # rebuilding drops the carried decision they no longer agree on: now a disagreement
    r = run("reconcile", study_path, "--coders", "alice,bob", "--sheet",
            sheet(tmp_path, [("p01", 6, "bar-finance", "the money, not the market")]))
    assert r.output.endswith("covers 5 of 5 segments they decided: 1 they agree on (carried "
                             "over), 3 reconciled, 1 decided by only one of them (kept, --single "
                             "keep).\n")
    assert (6, "bar-finance", "confirmed", "reconcile") in consensus_rows(coded)
    # alice codes a segment nobody had decided: not in the consensus until it is rebuilt
    review.decide(coded, "alice", 7, "bar-finance", "confirmed")
    status = A.consensus_status(coded, "consensus")
    assert (status.decided, status.covered, status.not_carried, status.stale) == (6, 5, 1, 1)
    assert status.problems()[0] == "1 segment they decided since is not in it"
    A.build_consensus(coded, ["alice", "bob"])
    assert (7, "bar-finance", "confirmed", "consensus-single") in consensus_rows(coded)
    assert A.consensus_status(coded, "consensus").complete


# -- the --single rule ---------------------------------------------------------------------------
def test_single_drop_leaves_them_out_and_says_so(coded, study_path, tmp_path):
    r = run("reconcile", study_path, "--coders", "alice,bob", "--single", "drop",
            "--sheet", sheet(tmp_path, BOTH))
    assert r.output.endswith(
        "Consensus coder 'consensus' of alice and bob covers 4 of 4 segments they decided: 2 "
        "they agree on (carried over), 2 reconciled; 1 segment decided by only one of them left "
        "out (--single drop).\n")
    assert 10 not in {row[0] for row in consensus_rows(coded)}
    df = frequency.frequencies(coded, consensus=True)
    assert n_of(df, "Personal relations") == 0
    # the rule is kept: rebuilding without --single does not bring segment 10 back
    run("reconcile", study_path, "--coders", "alice,bob")
    assert 10 not in {row[0] for row in consensus_rows(coded)}
    # changing it carries it over
    run("reconcile", study_path, "--coders", "alice,bob", "--single", "keep")
    assert (10, "net-personal", "confirmed", "consensus-single") in consensus_rows(coded)


def test_single_ask_walks_them_like_disagreements(coded, study_path, tmp_path):
    run("reconcile", study_path, "--coders", "alice,bob", "--single", "ask",
        "--sheet", sheet(tmp_path, BOTH))
    status = A.consensus_status(coded, "consensus")
    assert status.message() == ("consensus 'consensus' covers 4 of 5 segments decided by alice "
                                "and bob: 1 segment decided by only one of them open "
                                "(--single ask)")
    assert run("freq", study_path, "--consensus").exit_code == 1
    r = run("reconcile", study_path, "--coders", "alice,bob",
            input="Personal relations\nfamily ties\n")
    assert "1 disagreement(s) to reconcile (2 already done)" in r.output
    assert "[1/1] p02 #4 (Mr Tan)" in r.output
    assert "  alice: Networking/Personal relations\n  bob: not decided\n" in r.output
    assert r.output.endswith(
        "Consensus coder 'consensus' of alice and bob covers 5 of 5 segments they decided: 2 "
        "they agree on (carried over), 3 reconciled.\n")
    assert (10, "net-personal", "confirmed", "reconcile") in consensus_rows(coded)


def test_a_consensus_keeps_its_coders(coded, study_path, tmp_path):
    run("reconcile", study_path, "--coders", "alice,bob", "--sheet", sheet(tmp_path, BOTH))
    code(coded, 2, "carol", "trig-domestic")
    before = dump(study_path)
    r = run("reconcile", study_path, "--coders", "alice,carol")
    assert r.exit_code == 1
    assert r.output == ("Error: consensus coder 'consensus' reconciles alice, bob, not alice, "
                        "carol (choose another name with --as)\n")
    r = run("reconcile", study_path, "--coders", "alice,bob", "--single", "sometimes")
    assert r.exit_code == 2
    assert dump(study_path) == before


# -- the web Analysis page ------------------------------------------------------------------------
def test_web_analysis_lists_each_coder_once_and_refuses_a_partial_consensus(
        coded, study_path, tmp_path):
    run("reconcile", study_path, "--coders", "alice,bob", "--sheet", sheet(tmp_path, BOTH[:1]))
    c = TestClient(create_app(study_path), base_url="http://127.0.0.1:8765")
    c.cookies.set("coder_name", "alice")
    page = html.unescape(c.get("/analysis").text)
    menu = page[page.index('<select name="coder">'):page.index("</select>")]
    assert menu.count(">consensus") == 1 and menu.count('value="consensus"') == 1
    assert '<option value="consensus" >consensus (consensus coder)</option>' in menu
    assert f'<p class="error" id="freq-error">{PARTIAL} (bring it up to date' in page
    page = html.unescape(c.get("/analysis?coder=consensus").text)
    assert f'id="freq-error">{PARTIAL}' in page
    page = html.unescape(c.get("/analysis?coder=consensus&allow_partial=1").text)
    assert 'id="freq"' in page and f"[PARTIAL: {PARTIAL}]" in page


def test_the_walk_can_be_limited_to_documents_and_codes(coded, study_path):
    r = run("reconcile", study_path, "--coders", "alice,bob", "--documents", "p02",
            input="none\nnot a factor\n")
    assert "1 disagreement(s) to reconcile (0 already done)" in r.output
    assert "[1/1] p02 #2 (Mr Tan)" in r.output and "p01 #4" not in r.output
    r = run("reconcile", study_path, "--coders", "alice,bob", "--codes", "Networking/*")
    assert r.output.endswith("Nothing to reconcile on the chosen codes and documents; 1 "
                             "segment(s) open elsewhere.\n")
    r = run("reconcile", study_path, "--coders", "alice,bob", "--codes", "bar-finance",
            input="Government and non-government institutions\nno money talk\n")
    assert "[1/1] p01 #4 (DR AMINAH)" in r.output
    assert r.output.endswith(SUMMARY)
