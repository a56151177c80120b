"""Participants' words never run as spreadsheet formulas, and sheets still come back exactly."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from coder import Study, review
from coder.cli import cli
from coder.machine import suggest as lib
from coder.machine.embed import HashingEmbedder
from coder.spreadsheet import TRIGGERS, neutralise, restore

PAYLOAD = "=cmd|' /C calc'!A0 said the participant"


@given(st.text())
def test_restore_takes_back_exactly_what_neutralise_added(text):
    safe = neutralise(text)
    assert restore(safe) == text
    assert not safe or safe[0] not in TRIGGERS


def test_a_quote_a_person_typed_before_plain_text_stays():
    assert restore("'tis the season") == "'tis the season"
    assert neutralise("-3 degrees") == "'-3 degrees"
    assert neutralise(-3) == -3


@pytest.fixture
def risky(tmp_path, data_dir):
    """A study whose participant said a formula, coded by two coders, with suggestions."""
    transcript = tmp_path / "p09.txt"
    transcript.write_text(f"INTERVIEWER: What happened?\nDR RISK: {PAYLOAD}\n"
                          "INTERVIEWER: And then?\nDR RISK: +1 for family ties in Singapore.\n"
                          "INTERVIEWER: More?\nDR RISK: @home market too small, -so we went abroad.\n",
                          encoding="utf-8")
    path = tmp_path / "risky.db"
    s = Study.create(path, codebook=data_dir / "small_codebook.yaml")
    s.import_transcripts([transcript])
    (tmp_path / "people.csv").write_text("participant,group\nDR RISK,=HYPERLINK(\"x\")\n",
                                         encoding="utf-8")
    s.import_participants(tmp_path / "people.csv")
    lib.suggest(s, embedder=HashingEmbedder(dim=64), min_score=0.0)
    segs = s.segments(include_interviewer=False)["segment_id"].tolist()
    for seg in segs:
        review.decide(s, "alice", seg, "trig-domestic", "confirmed", memo="=1+1")
        review.decide(s, "bob", seg, "net-personal", "confirmed")
    s.close()
    return path


def _csv_cells(text: str) -> list[str]:
    return [c for row in csv.reader(io.StringIO(text)) for c in row]


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _assert_inert_csv(text: str) -> None:
    """No text cell begins with a formula character (numbers such as -1.0 are numbers)."""
    bad = [c for c in _csv_cells(text) if c and c[0] in TRIGGERS and not _number(c)]
    assert bad == []


def _assert_inert_xlsx(path) -> None:
    wb = openpyxl.load_workbook(path)
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    assert cell.value[0] not in TRIGGERS, (ws.title, cell.coordinate)


def test_every_csv_export_is_inert(risky, tmp_path):
    run = CliRunner().invoke
    outputs = []
    for args in (["codes", "export", str(risky), "-"], ["codings", str(risky)],
                 ["participants", "show", str(risky)], ["codebook", "show", str(risky)]):
        r = run(cli, args)
        assert r.exit_code == 0, (args, r.output)
        outputs.append(r.output)
    files = {"review.csv": ["review", "export", str(risky), "REVIEW", "--coder", "carol"],
             "sugg.csv": ["suggestions", "export", str(risky), "REVIEW"],
             "dis.csv": ["agree", str(risky), "--coders", "alice,bob", "--disagreements",
                         "REVIEW"],
             "agree.csv": ["agree", str(risky), "--coders", "alice,bob", "--csv", "REVIEW"],
             "freq.csv": ["freq", str(risky), "--coders", "alice,bob", "--out", "REVIEW"],
             "codes.csv": ["codes", "export", str(risky), "REVIEW"],
             "book.csv": ["codebook", "export", str(risky), "REVIEW"]}
    for name, args in files.items():
        target = tmp_path / name
        r = run(cli, [str(target) if a == "REVIEW" else a for a in args])
        assert r.exit_code == 0, (name, r.output)
        outputs.append(target.read_text(encoding="utf-8-sig"))
    assert any(f"'{PAYLOAD}" in o for o in outputs)
    for o in outputs:
        _assert_inert_csv(o)


def test_every_xlsx_export_is_inert(risky, tmp_path):
    run = CliRunner().invoke
    for name, args in {
            "review.xlsx": ["review", "export", str(risky), "OUT", "--coder", "carol"],
            "dis.xlsx": ["agree", str(risky), "--coders", "alice,bob", "--disagreements", "OUT"],
            "freq.xlsx": ["freq", str(risky), "--coders", "alice,bob", "--out", "OUT"]}.items():
        target = tmp_path / name
        r = run(cli, [str(target) if a == "OUT" else a for a in args])
        assert r.exit_code == 0, (name, r.output)
        _assert_inert_xlsx(target)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_review_sheet_whose_text_starts_with_a_formula_comes_back(risky, tmp_path, suffix):
    sheet = tmp_path / f"carol{suffix}"
    run = CliRunner().invoke
    assert run(cli, ["review", "export", str(risky), str(sheet), "--coder", "carol",
                     "--order", "document"]).exit_code == 0
    if suffix == ".xlsx":
        wb = openpyxl.load_workbook(sheet)
        ws = wb["review"]
        header = [c.value for c in ws[1]]
        ws.cell(row=2, column=header.index("decision") + 1, value="Triggering factors/Domestic conditions")
        wb.save(sheet)
    else:
        rows = list(csv.reader(sheet.open(encoding="utf-8")))
        rows[1][rows[0].index("decision")] = "Triggering factors/Domestic conditions"
        with sheet.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(rows)
    r = run(cli, ["review", "import", str(risky), str(sheet), "--coder", "carol"])
    assert r.exit_code == 0, r.output
    with Study(risky) as s:
        got = s.codings("carol")
    assert set(got["text"]) == {PAYLOAD}


def test_codes_export_then_import_keeps_memos_that_look_like_formulas(risky, tmp_path):
    out = tmp_path / "codes.csv"
    run = CliRunner().invoke
    assert run(cli, ["codes", "export", str(risky), str(out), "--coder", "alice"]).exit_code == 0
    assert "'=1+1" in out.read_text(encoding="utf-8")
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    for row in rows:
        row["coder"] = "dora"
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    r = run(cli, ["codes", "import", str(risky), str(out)])
    assert r.exit_code == 0, r.output
    with Study(risky) as s:
        assert set(s.codings("dora")["memo"]) == {"=1+1"}
