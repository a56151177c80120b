"""The methods analyses through their faces: `coder cooccur/matrix/saturation/model-figure/
summaries/memos` (every output parsed back, exact messages and exit codes, refusals leave the
study byte-identical), their sections in `coder report`, and the view on the web Analysis page
(escaped, no inline styles)."""

from __future__ import annotations

import io
import json
import re

import pandas as pd
import pytest
from cli_helpers import dump
from click.testing import CliRunner
from frequency_helpers import SMALL_CODEBOOK, code, make_study, write_codebook
from openpyxl import load_workbook
from starlette.testclient import TestClient

from coder import review
from coder.cli import cli
from coder.study import Study
from coder.web.app import create_app

SCRIPT = '<script>alert("x")</script> & "quoted"'
PEOPLE = {f"p{i}": {"group": "A" if i <= 3 else "B"} for i in range(1, 8)}


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def path(tmp_path):
    """Seven participants (one turn each, position 2), alice's codings:
    p1 Domestic+Resource (and a script in its text), p2 Domestic+Resource, p3 Domestic,
    p4 Resource, p5 Larger markets, p6 Societal, p7 Domestic+Societal."""
    turns = {p: [f"{p} speaks about markets."] for p in PEOPLE}
    turns["p1"] = [SCRIPT]
    s = make_study(tmp_path, participants=PEOPLE, turns=turns)
    code(s, [("alice", "p1", "Domestic conditions"), ("alice", "p1", "Resource seeking"),
             ("alice", "p2", "Domestic conditions"), ("alice", "p2", "Resource seeking"),
             ("alice", "p3", "Domestic conditions"), ("alice", "p4", "Resource seeking"),
             ("alice", "p5", "Larger markets outside"), ("alice", "p6", "Societal changes"),
             ("alice", "p7", "Domestic conditions"), ("alice", "p7", "Societal changes")])
    seg = s.db.one("SELECT segment_id FROM segment_view WHERE document = 'p3' AND position = 2")
    review.memo(s, "alice", seg["segment_id"], "A clear <push> factor.")
    s.close()
    return tmp_path / "study.db"


# -- cooccur -----------------------------------------------------------------------------------
def test_cooccur_csv_parses_back(path):
    result = run("cooccur", path, "--format", "csv")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.output))
    rows = {(r.name_a, r.name_b): r for r in df.itertuples()}
    # Domestic {p1,p2,p3,p7}, Resource {p1,p2,p4}: share p1 and p2; Jaccard 2/5
    r = rows[("Domestic conditions", "Resource seeking")]
    assert (r.count, r.n_a, r.n_b, r.jaccard) == (2, 4, 3, 0.4)
    assert rows[("Domestic conditions", "Societal changes")].count == 1
    assert len(df) == 2


def test_cooccur_table_states_whose_codings_and_quotes(path, tmp_path):
    result = run("cooccur", path, "--quotes", "1", "--figure", tmp_path / "heat.png")
    assert result.exit_code == 0, result.output
    assert "Co-occurrence of category codes by segment (N = 7)" in result.output
    assert "Codings: coder alice; confirmed and added codings" in result.output
    assert "Shared quotes" in result.output and "<script>alert(\"x\")</script>" in result.output
    assert f"Wrote {tmp_path / 'heat.png'}" in result.output
    assert (tmp_path / "heat.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cooccur_json_and_xlsx(path, tmp_path):
    out = tmp_path / "co.json"
    result = run("cooccur", path, "--unit", "participant", "--measure", "jaccard", "--out", out)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert (data["N"], data["unit"], data["measure"], data["coders"]) == (
        7, "participant", "jaccard", ["alice"])
    assert data["matrix"]["Domestic conditions"]["Resource seeking"] == 0.4
    result = run("cooccur", path, "--out", tmp_path / "co.xlsx", "--quotes", "2")
    assert result.exit_code == 0, result.output
    assert load_workbook(tmp_path / "co.xlsx").sheetnames == ["Pairs", "Matrix", "Quotes",
                                                               "Notes"]


def test_cooccur_refusals(path, tmp_path):
    before = dump(path)
    result = run("cooccur", path, "--format", "xlsx")
    assert result.exit_code == 2 and "--format xlsx needs --out FILE.xlsx" in result.output
    result = run("cooccur", path, "--out", tmp_path / "no" / "x.csv")
    assert result.exit_code == 1
    assert result.output == (f"Error: {tmp_path / 'no' / 'x.csv'}: folder {tmp_path / 'no'} "
                             "does not exist (create it first or choose another output path)\n")
    result = run("cooccur", path, "--figure", tmp_path / "heat.pdf")
    assert result.exit_code == 1
    assert "figures are written as PNG or SVG; heat.pdf ends in neither" in result.output
    result = run("cooccur", path, "--coder", "zoe")
    assert result.exit_code == 1
    assert result.output == "Error: unknown coder(s): zoe (coders: alice)\n"
    result = run("cooccur", path, "--unit", "word")
    assert result.exit_code == 2
    assert dump(path) == before


# -- matrix ------------------------------------------------------------------------------------
def test_matrix_csv_and_xlsx(path, tmp_path):
    result = run("matrix", path, "--format", "csv")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.output)).set_index("name")
    assert df.loc["Domestic conditions", ["p1", "p2", "p3", "p4", "p7", "Total"]].tolist() == [
        1, 1, 1, 0, 1, 4]
    assert df.loc["Triggers", "Total"] == 5                   # p1, p2, p3, p4, p7
    result = run("matrix", path, "--by", "group", "--values", "count", "--out",
                 tmp_path / "m.xlsx")
    assert result.exit_code == 0, result.output
    wb = load_workbook(tmp_path / "m.xlsx")
    assert wb.sheetnames == ["Triggers", "External", "Notes"]
    rows = list(wb["Triggers"].values)
    assert rows[1][6:] == ("A (N = 3)", "B (N = 4)", "Total")
    assert rows[3][3:] == ("Domestic conditions", "category", 2, 3, 1, 4)  # depth 2


def test_matrix_unknown_attribute(path):
    result = run("matrix", path, "--by", "age")
    assert result.exit_code == 1
    assert result.output.startswith("Error: unknown participant attribute 'age' (attributes: "
                                    "group)")


# -- saturation --------------------------------------------------------------------------------
def test_saturation_command(path, tmp_path):
    # interviews p1..p7 in import order: base p1-p4 = Domestic, Resource (2 codes);
    # run p5-p6 adds Larger markets and Societal: 2/2 = 100%; run p6-p7 adds Societal (new
    # relative to p1-p5): 50%. Not reached at 5%; with --threshold 0.5 after 5 interviews,
    # confirmed by p6-p7 (5+2).
    result = run("saturation", path, "--rounds", "20", "--figure", tmp_path / "sat.svg")
    assert result.exit_code == 0, result.output
    assert ("\nSaturation not reached (base 4, run 2, \u22645% new information). No run of 2 "
            "interviews") in result.output
    assert (tmp_path / "sat.svg").read_text().count("<svg") == 1
    result = run("saturation", path, "--threshold", "0.5", "--rounds", "0", "--format", "json")
    data = json.loads(result.output)
    assert (data["reached"], data["after"], data["confirmed_at"], data["base_codes"]) == (
        True, 5, 7, 2)
    assert data["statement"] == ("Saturation reached after 5 interviews, confirmed by the next "
                                 "2 (5+2; base 4, run 2, \u226450% new information).")
    assert [r["before"] for r in data["tables"]["Runs"]] == [4, 5]
    assert [r["new_information"] for r in data["tables"]["Runs"]] == [1.0, 0.5]


def test_saturation_refusals_leave_the_study_unchanged(path):
    before = dump(path)
    result = run("saturation", path, "--base", "6", "--run", "2")
    assert result.exit_code == 1
    assert result.output == ("Error: saturation needs at least base + run = 8 interviews; the "
                             "analysed documents are 7 (use a smaller --base or --run)\n")
    result = run("saturation", path, "--threshold", "1.5")
    assert result.exit_code == 2
    result = run("saturation", path, "--order", "date")
    assert result.exit_code == 1 and "no interview dates" in result.output
    assert dump(path) == before


# -- model-figure ------------------------------------------------------------------------------
def test_model_figure_command(path, tmp_path):
    result = run("model-figure", path, tmp_path / "model.png")
    assert result.exit_code == 0, result.output
    m = re.match(r"Wrote .*model\.png \((\d+)x(\d+) px, 2 factors, 0 arrows\)", result.output)
    assert m and int(m.group(1)) == 1400 and 300 < int(m.group(2)) < 1400
    result = run("model-figure", path, tmp_path / "model.jpg")
    assert result.exit_code == 1
    assert "figures are written as PNG or SVG; model.jpg ends in neither" in result.output


# -- summaries ---------------------------------------------------------------------------------
def test_summaries_command(path, tmp_path):
    result = run("summaries", path, tmp_path / "out", "--format", "md")
    assert result.exit_code == 0, result.output
    assert f"Wrote {tmp_path / 'out' / 'p1.md'} (2 codes, 2 passages)" in result.output
    assert "7 summaries in" in result.output
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == [f"p{i}.md" for i in range(1, 8)]
    p3 = (tmp_path / "out" / "p3.md").read_text()
    assert "p3 speaks about markets." in p3 and "p2 speaks" not in p3
    assert "A clear <push> factor." not in p3                 # memos are never shown
    docx = run("summaries", path, tmp_path / "docx")
    assert docx.exit_code == 0 and (tmp_path / "docx" / "p1.docx").stat().st_size > 5000


# -- memos -------------------------------------------------------------------------------------
def test_memos_command(path, tmp_path):
    result = run("memos", path, "--format", "csv")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.output))
    assert df[["kind", "codes", "document", "position", "coder", "text"]].values.tolist() == [
        ["segment", "Triggers/Domestic conditions", "p3", 2, "alice", "A clear <push> factor."]]
    result = run("memos", path, "--code", "External", "--format", "json")
    assert json.loads(result.output)["tables"]["Memos"] == []
    result = run("memos", path, "--coder", "bob")
    assert result.exit_code == 1 and result.output == (
        "Error: unknown coder 'bob' (coders: alice)\n")


COMMANDS = {"cooccur": [], "matrix": [], "saturation": ["--rounds", "0", "--threshold", "0.5"],
            "memos": []}
# what every format of each command must show (short words: the terminal table wraps cells)
KNOWN = {"cooccur": ("Domestic conditions", "Resource seeking", "0.4"),   # Jaccard 2/5
         "matrix": ("Domestic conditions", "category"),
         "saturation": ("Societal", "p6"),
         "memos": ("p3", "alice", "A clear")}


@pytest.mark.parametrize("fmt", ["table", "csv", "md", "latex", "html", "xlsx", "json"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_methods_command_writes_every_format_of_freq(path, tmp_path, command, fmt):
    args = [command, path, *COMMANDS[command]]
    if fmt == "xlsx":
        out = tmp_path / f"{command}.xlsx"
        result = run(*args, "--out", out)
        assert result.exit_code == 0, result.output
        cells = {str(c) for ws in load_workbook(out) for row in ws.values for c in row}
        text = " ".join(cells)
    else:
        result = run(*args, "--format", fmt)
        assert result.exit_code == 0, result.output
        text = result.output
    for known in KNOWN[command]:
        assert known in text, (command, fmt, known)
    if command == "saturation" and fmt not in ("csv", "xlsx"):   # the summary: 5+2
        assert "5+2" in text
    if fmt == "csv":
        frame = pd.read_csv(io.StringIO(text))
        if command == "saturation":
            assert frame["before"].tolist() == [4, 5] and frame["new_information"].tolist() == [
                1.0, 0.5]
        if command == "matrix":
            assert frame.set_index("name").loc["Domestic conditions", "Total"] == 4
    elif fmt == "json":
        assert json.loads(text)["tables"]
    elif fmt == "html":
        assert text.startswith("<!DOCTYPE html>") and "<script" not in text
    elif fmt == "latex":
        assert text.count("\\begin{tabular}") >= 1 and "\u2264" not in text
        if command == "saturation":
            assert "$\\leq$50\\% new information" in text
        if command == "memos":           # the memo's <push>, escaped for LaTeX
            assert "A clear \\textless{}push\\textgreater{} factor." in text
    elif fmt == "md":
        assert text.startswith("**") and "\n| " in text


def test_codings_list_memos_next_to_their_codes(path):
    # p3#2: alice coded Domestic conditions and wrote a segment memo on it (fixture); give her
    # p1 coding of Resource seeking a memo of its own
    with Study(path) as s:
        seg = s.db.one("SELECT segment_id FROM segment_view WHERE document = 'p1' AND "
                       "position = 2")["segment_id"]
        review.decide(s, "alice", seg, s.codebook().resolve("Resource seeking").id,
                      "confirmed", memo="Money first.")
    result = run("codings", path, "--format", "csv")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.output), keep_default_na=False)
    rows = {(r.document, r.code_path): r for r in df.itertuples()}
    assert len(df) == 10 and list(df.columns)[-1] == "segment_memos"
    assert rows[("p3", "Triggers/Domestic conditions")].segment_memos == "A clear <push> factor."
    assert rows[("p1", "Triggers/Resource seeking")].memo == "Money first."
    assert rows[("p1", "Triggers/Resource seeking")].segment_memos == ""
    assert sum(bool(m) for m in df["segment_memos"]) == 1 and sum(bool(m) for m in df["memo"]) == 1
    data = json.loads(run("codings", path, "--format", "json", "--coder", "alice").output)
    assert [r["segment_memos"] for r in data if r["document"] == "p3"] == [
        "A clear <push> factor."]


# -- the report and the web page ---------------------------------------------------------------
def test_report_has_every_methods_section(path, tmp_path):
    out = tmp_path / "report.html"
    result = run("report", path, out)
    assert result.exit_code == 0, result.output
    page = out.read_text()
    for heading in ("Co-occurrence", "Codes by participant", "Saturation", "Model figure",
                    "Memos"):
        assert f"<h2>{heading}</h2>" in page
    assert "Saturation not reached (base 4, run 2, \u22645% new information)." in page
    assert "<h3>Triggers/Domestic conditions</h3><ul>" in page       # the memo, by its code
    assert "A clear &lt;push&gt; factor." in page and "<push>" not in page
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert page.count('src="data:image/png;base64,') >= 4


def test_report_names_the_codebook_version_its_tables_use(path, tmp_path):
    out = tmp_path / "v1.html"
    assert run("report", path, out).exit_code == 0
    assert re.search(r'<p class="muted">Version 1 of 1, imported [0-9T:Z-]+ from '
                     r'[^<]*codebook\.yaml( by [^<:]+)?: the version every table in this report '
                     r'uses\.</p>', out.read_text())
    bigger = dict(SMALL_CODEBOOK, codes=[*SMALL_CODEBOOK["codes"], {"name": "Networks"}])
    v2 = write_codebook(tmp_path / "v2.yaml", bigger)
    with Study(path) as s:
        s.import_codebook(v2, by="lead-anna")
        created = s.codebook_history().iloc[-1]["created_at"]
    assert run("report", path, out).exit_code == 0
    page = out.read_text()
    assert (f"Version 2 of 2, imported {created} from {v2} by lead-anna: the version every "
            "table in this "
            "report uses (codings made under earlier versions count through their stable code "
            f"ids). Earlier versions and what changed: coder codebook history {path}.") in page
    assert page.index("Version 2 of 2") < page.index("<h2>Frequencies</h2>")


def test_report_section_that_cannot_be_computed_is_a_note(tmp_path):
    s = make_study(tmp_path, turns={"p1": ["hello"], "p2": ["world"]})
    code(s, [("alice", "p1", "Domestic conditions")])
    s.close()
    out = tmp_path / "r.html"
    assert run("report", tmp_path / "study.db", out).exit_code == 0
    page = out.read_text()
    assert "Saturation: saturation needs at least base + run = 6 interviews" in page
    assert "nothing to draw: no two codes share a segment (try --unit participant" in page
    assert "<h2>Model figure</h2>\n<p><img" in page


def test_web_analysis_views(path):
    c = TestClient(create_app(path), base_url="http://127.0.0.1:8765")
    page = c.get("/analysis").text
    assert 'id="methods-links"' in page and 'id="methods"' not in page
    assert '<a href="?view=saturation" >Saturation</a>' in page
    for view in ("cooccur", "matrix", "saturation", "model", "memos"):
        r = c.get(f"/analysis?view={view}&coder=alice")
        assert r.status_code == 200 and 'id="methods"' in r.text, view
        body = r.text.split('id="methods"', 1)[1]
        assert "<script>alert" not in body and " style=" not in body, view
        assert "default-src 'none'" in r.headers["content-security-policy"]
    quotes = c.get("/analysis?view=cooccur&coder=alice").text
    assert "&lt;script&gt;alert" in quotes and "data:image/png;base64," in quotes
    none = c.get("/analysis?view=matrix&coder=consensus").text
    assert "Codes by participant: the study has no consensus coder yet" in none
