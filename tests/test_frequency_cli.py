"""`coder freq`, `coder chart`, `coder report`: every output format parsed back, the chart's
pixel size, escaping of transcript text, and the bad-input messages and exit codes."""

from __future__ import annotations

import io
import json
import re

import pandas as pd
import pytest
from click.testing import CliRunner
from frequency_helpers import code, make_study
from openpyxl import load_workbook

from coder.analysis import chart
from coder.cli import cli

PEOPLE = {f"p{i}": {"group": "academics" if i <= 3 else "agencies"} for i in range(1, 9)}
SCRIPT = '<script>alert("x")</script> & "quoted" <b>bold</b>'


@pytest.fixture
def path(tmp_path):
    turns = {p: [f"{p} speaks about markets."] for p in PEOPLE}
    turns["p1"] = [SCRIPT]
    s = make_study(tmp_path, participants=PEOPLE, turns=turns)
    code(s, [("alice", p, "Domestic conditions") for p in ("p1", "p2", "p3", "p4", "p5")]
         + [("alice", p, "Larger markets outside") for p in ("p1", "p6")]
         + [("alice", "p7", "Societal changes")])
    s.close()
    return tmp_path / "study.db"


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def test_csv_parses_back(path):
    result = run("freq", path, "--format", "csv")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.output))
    dc = df[df["name"] == "Domestic conditions"].iloc[0]
    assert (dc["n"], dc["N"], dc["percent"], dc["label"]) == (5, 8, 63, "63%")  # 62.5 -> 63
    assert dc["path"] == "Triggers/Domestic conditions" and dc["factor"] == "Triggers"
    assert set(df["N"]) == {8}
    assert list(df.columns[:4]) == ["id", "path", "factor", "group"]


def test_json_parses_back(path, tmp_path):
    out = tmp_path / "freq.json"
    result = run("freq", path, "--out", out, "--level", "all")
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["N"] == 8 and data["coders"] == ["alice"] and data["include_auto"] is False
    rows = {(r["path"], r["rollup"]): r for r in data["rows"]}
    r = rows[("Triggers/Domestic conditions", "")]
    assert {k: r[k] for k in ("id", "level", "n", "percent", "label")} == {
        "id": "triggers-domestic-conditions", "level": "category", "n": 5, "percent": 63,
        "label": "63%"}
    assert r["items"] == ["Saturated market", "Economic crisis"]
    assert rows[("External", "any")]["n"] == 3
    assert rows[("External", "mean")]["n"] is None
    assert rows[("External", "mean")]["label"] == "13%"   # (25 + 0 + 12.5) / 3 = 12.5 -> 13


def test_xlsx_parses_back(path, tmp_path):
    out = tmp_path / "freq.xlsx"
    result = run("freq", path, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"Wrote {out} (xlsx, N = 8, 5 rows)"
    wb = load_workbook(out)
    assert wb.sheetnames == ["Frequencies", "Data", "Notes"]
    sheet = wb["Frequencies"]
    assert sheet["A1"].value == "Categories, items, and frequency counts (N = 8)"
    assert [c.value for c in sheet[2]] == ["Factor", "Group", "Category", "Frequency", "n", "Items"]
    assert [c.value for c in sheet[3]][2:5] == ["Domestic conditions", "63%", "5"]
    data = pd.read_excel(out, sheet_name="Data")
    assert data.set_index("name").loc["Larger markets outside", "percent"] == 25
    assert wb["Notes"]["A1"].value == "N = 8"


def test_markdown_layout(path):
    result = run("freq", path, "--format", "md", "--quotes", "1")
    assert result.exit_code == 0, result.output
    md = result.output
    assert md.startswith("**Categories, items, and frequency counts** (N = 8)")
    assert "| Factor | Group | Category | Frequency | n | Items |" in md
    assert ("| Triggers (any 63%; mean 31%) |  | Domestic conditions | 63% | 5 | "
            "Saturated market; Economic crisis |") in md
    assert "| External (any 38%; mean 13%) | Foreign market attraction (any 25%; mean 13%) |" in md
    assert "_Note: N = 8 participants" in md
    assert "**Exemplar quotes**" in md


def test_latex_booktabs(path):
    result = run("freq", path, "--format", "latex")
    assert result.exit_code == 0, result.output
    tex = result.output
    for part in ("\\toprule", "\\midrule", "\\bottomrule", "\\begin{tabular}{lllrrp{6cm}}",
                 "\\caption{Categories, items, and frequency counts (N = 8)}",
                 "Domestic conditions & 63\\% & 5 &"):
        assert part in tex, part


def test_terminal_table_states_n(path):
    result = run("freq", path)
    assert result.exit_code == 0, result.output
    assert "Categories, items, and frequency counts (N = 8)" in result.output
    assert "Domestic conditions" in result.output and "63%" in result.output
    factor = run("freq", path, "--level", "factor", "--format", "table")
    assert "Frequency counts by factor (N = 8)" in factor.output
    assert re.search(r"Triggers\s+│ factor\s+│ mean\s+│\s+31%", factor.output)


def test_crosstab_by_group(path):
    result = run("freq", path, "--by", "group", "--format", "md")
    assert result.exit_code == 0, result.output
    assert "| Factor | Code | All (N = 8) | academics (N = 3) | agencies (N = 5) |" in result.output
    assert "| Triggers | Domestic conditions | 5 (63%) | 3 (100%) | 2 (40%) |" in result.output


def test_html_escapes_transcript_text(path):
    result = run("freq", path, "--format", "html", "--quotes", "2")
    assert result.exit_code == 0, result.output
    page = result.output
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;quoted&quot;" in page
    assert "(N = 8)</caption>" in page


def test_chart_png_has_the_asked_size(path, tmp_path):
    out = tmp_path / "freq.png"
    result = run("chart", path, out, "--width", "800", "--height", "600")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"Wrote {out} (800x600 px, 5 bars)"
    assert chart.png_size(out.read_bytes()) == (800, 600)

    grouped = tmp_path / "by.png"
    result = run("chart", path, grouped, "--by", "group", "--level", "factor")
    assert result.exit_code == 0, result.output
    from coder.analysis import frequency
    from coder.study import Study

    with Study(path) as s:
        df = frequency.frequencies(s, level="factor", by="group")
    assert chart.png_size(grouped.read_bytes()) == chart.size_for(df)


def test_report_is_self_contained_and_escaped(path, tmp_path):
    out = tmp_path / "report.html"
    result = run("report", path, out)
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(" in page
    frequencies = page[page.index("<h2>Frequencies</h2>"):page.index("<h2>Co-occurrence</h2>")]
    assert frequencies.count("data:image/png;base64,") == 2   # categories + by group
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)   # nothing fetched
    for part in ("<h2>Study</h2>", "<h2>Codebook: Small test codebook</h2>", "(N = 8)</caption>",
                 "<h3>By group</h3>", "<h2>Agreement</h2>", "<h2>Exemplar quotes</h2>",
                 "Saturated market; Economic crisis"):
        assert part in page, part


def test_report_without_codings_still_summarises(tmp_path):
    s = make_study(tmp_path, participants={"a": {}})
    s.close()
    out = tmp_path / "r.html"
    result = run("report", tmp_path / "study.db", out)
    assert result.exit_code == 0, result.output
    assert "no confirmed codings to count" in out.read_text()


# -- bad input ---------------------------------------------------------------------------------
def test_unknown_attribute(path):
    result = CliRunner().invoke(cli, ["freq", str(path), "--by", "gender"])
    assert result.exit_code == 1
    assert result.output == "Error: unknown participant attribute 'gender' (attributes: group)\n"


def test_output_in_missing_folder(path, tmp_path):
    out = tmp_path / "nowhere" / "f.csv"
    for args in (["freq", str(path), "--out", str(out)], ["chart", str(path), str(out)],
                 ["report", str(path), str(out)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, args
        assert result.output == (f"Error: {out}: folder {out.parent} does not exist "
                                 "(create it first or choose another output path)\n")


def test_unknown_format(path, tmp_path):
    result = CliRunner().invoke(cli, ["freq", str(path), "--format", "docx"])
    assert result.exit_code == 2                      # a usage mistake: click's contract
    assert "Invalid value for '--format': 'docx' is not one of" in result.output
    out = tmp_path / "f.docx"                         # a format named by the file: exit 1
    result = CliRunner().invoke(cli, ["freq", str(path), "--out", str(out)])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: unknown format '.docx' for {out} (give --format")
    assert not out.exists()


def test_xlsx_needs_a_file(path):
    result = CliRunner().invoke(cli, ["freq", str(path), "--format", "xlsx"])
    assert result.exit_code == 2
    assert "--format xlsx needs --out FILE.xlsx" in result.output


def test_no_confirmed_codings(tmp_path):
    s = make_study(tmp_path, participants={"a": {}})
    s.close()
    study = tmp_path / "study.db"
    result = CliRunner().invoke(cli, ["freq", str(study)])
    assert result.exit_code == 1
    assert result.output == (
        "Error: no confirmed codings to count (auto-accepted suggestions count only with "
        f"--include-auto) (review suggestions with: coder review {study} --coder NAME; or import "
        f"codings with: coder codes import {study} CODINGS.csv --coder NAME)\n")


def test_chart_must_be_png(path, tmp_path):
    result = CliRunner().invoke(cli, ["chart", str(path), str(tmp_path / "c.jpg")])
    assert result.exit_code == 1
    assert "charts are written as PNG" in result.output


def test_report_shows_agreement_between_two_coders(tmp_path):
    s = make_study(tmp_path, participants={p: {} for p in ("a", "b", "c", "d")})
    code(s, [("alice", "a", "Domestic conditions"), ("bob", "a", "Domestic conditions"),
             ("alice", "b", "Resource seeking"), ("bob", "b", "Domestic conditions"),
             ("alice", "c", "Resource seeking"), ("bob", "c", "Resource seeking"),
             ("alice", "d", "Societal changes"), ("bob", "d", "Societal changes")])
    s.close()
    out = tmp_path / "r.html"
    plain = CliRunner().invoke(cli, ["report", str(tmp_path / "study.db"), str(out)])
    assert plain.exit_code == 1 and "several coders have codings (alice, bob)" in plain.output
    result = run("report", tmp_path / "study.db", out, "--coders", "alice,bob", "--rule", "all")
    assert result.exit_code == 0, result.output
    page = out.read_text()
    section = page[page.index("<h2>Agreement</h2>"):page.index("<h2>Exemplar quotes</h2>")]
    assert "Krippendorff" in section and "Triggers/Domestic conditions" in section
    assert "Coders: alice, bob; units are segments every one of them decided (4)" in section
    assert "rule all: a participant counts only if every one of them coded it" in page


def test_options_item_level_auto_decimals_consensus(path):
    from coder.study import Study

    item = CliRunner().invoke(cli, ["freq", str(path), "--level", "item"])
    assert item.exit_code == 1
    assert item.output.startswith("Error: items are not counted: they are the indicators")

    with Study(path) as s:
        code(s, [("alice", "p8", "Resource seeking", "auto")])
        code(s, [("agreed", "p2", "Resource seeking")], coder_kind="consensus")
    plain = json.loads(run("freq", path, "--coder", "alice", "--format", "json").output)
    auto = json.loads(run("freq", path, "--coder", "alice", "--include-auto", "--format",
                          "json").output)
    rs = lambda data: next(r for r in data["rows"] if r["name"] == "Resource seeking")  # noqa: E731
    assert (rs(plain)["n"], rs(auto)["n"]) == (0, 1)
    assert auto["include_auto"] is True
    assert any("auto-accepted suggestions included" in n for n in auto["notes"])
    md = run("freq", path, "--coder", "alice", "--include-auto", "--format", "md").output
    assert "auto-accepted suggestions included" in md

    dec = pd.read_csv(io.StringIO(run("freq", path, "--coder", "alice", "--decimals", "1",
                                      "--format", "csv").output))
    assert dec.set_index("name").loc["Domestic conditions", "label"] == "62.5%"

    agreed = json.loads(run("freq", path, "--consensus", "--format", "json").output)
    assert agreed["coders"] == ["agreed"] and rs(agreed)["n"] == 1

    long = pd.read_csv(io.StringIO(run("freq", path, "--coder", "alice", "--by", "group",
                                       "--format", "csv").output))
    dc = long[long["name"] == "Domestic conditions"].set_index("value")
    assert dc.loc["academics", ["n", "N", "label"]].tolist() == [3, 3, "100%"]
