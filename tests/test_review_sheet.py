"""The review spreadsheet round trip (.xlsx and .csv): export, fill in, import; bad sheets."""

from __future__ import annotations

import csv

import openpyxl
import pytest
from click.testing import CliRunner
from review_helpers import make_study, seg

from coder import Study
from coder import review as R
from coder.cli import cli
from coder.errors import InputError
from coder.review import sheets


@pytest.fixture
def rstudy(tmp_path, data_dir):
    s = make_study(tmp_path / "review.db", data_dir)
    yield s
    s.close()


def fill(path, decisions: dict[tuple[str, int], tuple[str, str]]):
    """Type decisions (and memos) into an exported .xlsx as a coder would."""
    wb = openpyxl.load_workbook(path)
    ws = wb["review"]
    header = [c.value for c in ws[1]]
    for row in ws.iter_rows(min_row=2):
        key = (row[0].value, row[1].value)
        if key in decisions:
            row[header.index("decision")].value, row[header.index("memo")].value = decisions[key]
    wb.save(path)


def state(s: Study, coder="alice"):
    def text(v):
        return v if isinstance(v, str) else ""

    return sorted((r["document"], r["position"], text(r["code_id"]), r["decision"],
                   text(r["memo"]), r["source"])
                  for r in R.codings_list(s, coder).to_dict("records"))


def test_export_xlsx_layout(rstudy, tmp_path):
    path = tmp_path / "batch.xlsx"
    assert R.export_sheet(rstudy, path, "alice", limit=3) == 3
    wb = openpyxl.load_workbook(path)
    ws = wb["review"]
    rows = list(ws.iter_rows(values_only=True))
    assert list(rows[0]) == sheets.SHEET_COLUMNS
    first = dict(zip(rows[0], rows[1]))
    assert (first["document"], first["position"], first["speaker"]) == ("p01", 4, "DR AMINAH")
    assert first["suggestion_1"] == "Networking/Government and non-government institutions (0.60)"
    assert first["suggestion_2"] == "Networking/Personal relations (0.55)"
    assert first["suggestion_3"] is None and first["decision"] is None
    assert first["segment_id"] == seg(rstudy, "p01", 4)
    assert ws.column_dimensions["J"].hidden and ws.column_dimensions["K"].hidden
    validation = ws.data_validations.dataValidation[0]
    assert validation.type == "list" and str(validation.sqref) == "H2:H4"
    assert [r[0] for r in wb["codes"].iter_rows(values_only=True)][-2:] == [
        "Barriers and challenges/Financial constraints", "none"]
    about = dict(wb["about"].iter_rows(values_only=True))
    assert about["study"] == R.fingerprint(rstudy) and about["coder"] == "alice"
    assert wb["about"].sheet_state == "hidden"


def test_xlsx_round_trip(rstudy, tmp_path):
    path = tmp_path / "batch.xlsx"
    R.export_sheet(rstudy, path, "alice")
    fill(path, {
        ("p01", 4): ("Networking/Personal relations; bar-finance", "two codes"),
        ("p01", 2): ("none", ""),
        ("p02", 2): ("Globalization force", ""),
        ("p02", 4): ("", "come back to this"),
    })
    summary = R.import_sheet(rstudy, path, "alice")
    assert (summary.rows, summary.decided_rows, summary.skipped) == (5, 3, 2)
    assert (summary.confirmed, summary.added, summary.rejected, summary.no_code,
            summary.memos) == (2, 1, 3, 1, 1)
    assert state(rstudy) == [
        ("p01", 2, "", "no_code", "", "spreadsheet"),
        ("p01", 2, "bar-finance", "rejected", "", "spreadsheet"),
        ("p01", 2, "trig-domestic", "rejected", "", "spreadsheet"),
        ("p01", 4, "bar-finance", "added", "two codes", "spreadsheet"),
        ("p01", 4, "net-institutions", "rejected", "", "spreadsheet"),
        ("p01", 4, "net-personal", "confirmed", "two codes", "spreadsheet"),
        ("p02", 2, "trig-globalization", "confirmed", "", "spreadsheet"),
    ]
    assert R.memos(rstudy, "alice")["text"].tolist() == ["come back to this"]
    # the decided rows leave the queue; importing the same sheet again changes nothing
    assert [(i.document, i.position) for i in R.queue(rstudy, "alice")] == [("p01", 6),
                                                                           ("p02", 4)]
    n = rstudy.db.one("SELECT COUNT(*) FROM coding_history")[0]
    R.import_sheet(rstudy, path, "alice")
    assert rstudy.db.one("SELECT COUNT(*) FROM coding_history")[0] == n


def test_csv_round_trip(rstudy, tmp_path):
    path = tmp_path / "batch.csv"
    assert R.export_sheet(rstudy, path, "bob", order="document") == 5
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["position"] for r in rows] == ["2", "4", "6", "2", "4"]
    rows[0]["decision"] = "trig-domestic"
    rows[2]["decision"] = "None"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    r = R.import_sheet(rstudy, path, "bob")
    assert (r.confirmed, r.rejected, r.no_code) == (1, 2, 1)
    assert [x[:4] for x in state(rstudy, "bob")] == [
        ("p01", 2, "bar-finance", "rejected"), ("p01", 2, "trig-domestic", "confirmed"),
        ("p01", 6, "", "no_code"), ("p01", 6, "bar-finance", "rejected")]


def test_bad_rows_are_all_reported_and_nothing_is_imported(rstudy, tmp_path):
    path = tmp_path / "batch.xlsx"
    R.export_sheet(rstudy, path, "alice", order="document")
    wb = openpyxl.load_workbook(path)
    ws = wb["review"]
    ws["H2"] = "trig-domestic"              # good row
    ws["H3"] = "Networking/Nowhere"         # unknown code
    ws["D4"] = "Money. Edited by me."       # edited text
    ws["H4"] = "bar-finance"
    ws["H5"] = "none; net-personal"         # none with a code
    ws.append(["p01", 2, "DR AMINAH", ws["D2"].value, None, None, None, "trig-domestic", None,
               ws["J2"].value, ws["K2"].value])  # duplicate of row 2
    ws.append(["p09", 1, "X", "text", None, None, None, "none", None, 999, "abc"])  # unknown
    wb.save(path)
    with pytest.raises(InputError) as e:
        R.import_sheet(rstudy, path, "alice")
    assert str(e.value) == (
        f"{path}: 5 problem(s), nothing imported:\n"
        "  row 3: unknown code 'Networking/Nowhere'\n"
        "  row 4: text was edited; the text column must stay as exported\n"
        "  row 5: 'none' cannot be combined with codes\n"
        f"  row 7: duplicate of row 2 (segment p01 #2)\n"
        "  row 8: unknown segment 999")
    assert rstudy.db.one("SELECT COUNT(*) FROM codings")[0] == 0
    assert rstudy.coders() == []


def test_sheet_from_another_study_or_with_columns_removed(rstudy, tmp_path, data_dir):
    other = make_study(tmp_path / "other.db", data_dir)
    path = tmp_path / "other.xlsx"
    R.export_sheet(other, path, "alice")
    other.close()
    with pytest.raises(InputError, match="this sheet was exported from another study"):
        R.import_sheet(rstudy, path, "alice")

    mine = tmp_path / "mine.xlsx"
    R.export_sheet(rstudy, mine, "alice")
    wb = openpyxl.load_workbook(mine)
    wb["review"].delete_cols(10, 2)  # segment_id, text_hash
    wb.save(mine)
    r = CliRunner().invoke(cli, ["review", "import", str(rstudy.path), str(mine), "--coder",
                                 "alice"])
    assert r.exit_code == 1
    assert r.output == (f"Error: {mine}: column(s) missing: segment_id, text_hash (export a "
                        "fresh sheet with: coder review export)\n")

    wb = openpyxl.load_workbook(tmp_path / "other.xlsx")
    del wb["about"]
    wb.save(tmp_path / "noprint.xlsx")
    with pytest.raises(InputError, match="no study fingerprint"):
        R.import_sheet(rstudy, tmp_path / "noprint.xlsx", "alice")
    assert rstudy.db.one("SELECT COUNT(*) FROM codings")[0] == 0


def test_cli_export_import(rstudy, tmp_path):
    path = tmp_path / "alice_batch.xlsx"
    r = CliRunner().invoke(cli, ["review", "export", str(rstudy.path), str(path), "--coder",
                                 "alice", "--limit", "2"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("new coder 'alice'\nWrote 2 segment(s) to ")
    fill(path, {("p01", 4): ("net-personal", "")})
    r = CliRunner().invoke(cli, ["review", "import", str(rstudy.path), str(path), "--coder",
                                 "alice"])
    assert (r.exit_code, r.output) == (0, "new coder 'alice'\n"
                                          "Imported 1 decided row(s) of 2 (1 left empty) for "
                                          "alice: 1 confirmed, 0 added, 1 rejected, 0 no code, "
                                          "0 memo(s).\n"
                                          "Batch 1: 2 new decision(s); replaced no existing "
                                          f"decision (undo: coder undo {rstudy.path} --batch 1)\n")
    r = CliRunner().invoke(cli, ["review", "export", str(rstudy.path), str(tmp_path / "x.ods"),
                                 "--coder", "alice"])
    assert r.exit_code == 1 and "unsupported spreadsheet type; use .xlsx or .csv" in r.output
    r = CliRunner().invoke(cli, ["review", "import", str(rstudy.path), str(tmp_path / "no.xlsx"),
                                 "--coder", "alice"])
    assert (r.exit_code, r.output) == (1, f"Error: {tmp_path / 'no.xlsx'}: file not found\n")
    bad = tmp_path / "bad.xlsx"
    bad.write_text("not a zip")
    r = CliRunner().invoke(cli, ["review", "import", str(rstudy.path), str(bad), "--coder",
                                 "alice"])
    assert r.exit_code == 1 and "not a readable .xlsx file" in r.output
