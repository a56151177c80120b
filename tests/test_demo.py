"""`coder demo` end to end in a tmp dir, with the real bundled model (the README's main job)."""

import pytest
from click.testing import CliRunner

from coder import Study
from coder.cli import cli


@pytest.mark.model
def test_demo_runs_every_stage(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Agreement per code" in result.output           # the agreement table
    assert "N = 10 participants" in result.output          # the frequency table
    assert "Domestic conditions" in result.output
    assert "coder review" in result.output and "coder serve" in result.output
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "<script>" not in report.split("<body", 1)[1] or "&lt;script&gt;" in report
    assert (out / "frequencies.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # every section of the report, memos included, on the demo study
    assert "decisions and 4 memos stored" in result.output
    for heading in ("Frequencies", "Co-occurrence", "Saturation", "Memos"):
        assert heading in report, heading
    assert "Collateral and slow grants together" in report
    study = Study(out / "study.db")
    status = study.status()
    assert status.documents == 10 and status.participants == 10
    assert set(study.coders()) == {"alice", "bob"}
    assert len(study.codings(decisions=["confirmed"])) > 100
    assert study.models()["version"].max() >= 2
