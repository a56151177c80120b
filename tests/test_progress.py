"""Progress bars: drawn on standard error for the long steps when asked (CODER_PROGRESS=1) or
on a terminal, never mixed into a command's output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def _coder(*args, progress: str, cwd: Path):
    env = {**os.environ, "CODER_PROGRESS": progress, "COLUMNS": "100"}
    return subprocess.run([sys.executable, "-m", "coder", *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.model
def test_import_and_suggest_draw_bars_on_stderr_only_when_asked(tmp_path):
    study = tmp_path / "s.db"
    assert _coder("init", study, progress="0", cwd=tmp_path).returncode == 0
    assert _coder("codebook", "import", study, DATA / "small_codebook.yaml", progress="0",
                  cwd=tmp_path).returncode == 0
    shown = _coder("import", study, DATA / "p01.txt", progress="1", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "Importing transcripts" in shown.stderr and "2/2" in shown.stderr
    assert "Importing" not in shown.stdout and shown.stdout.startswith("Imported 1 document")
    quiet = _coder("import", study, DATA / "p02.txt", progress="0", cwd=tmp_path)
    assert quiet.returncode == 0 and "Importing transcripts" not in quiet.stderr
    sug = _coder("suggest", study, progress="1", cwd=tmp_path)
    assert sug.returncode == 0, sug.stderr
    assert "Encoding segments" in sug.stderr and "10/10" in sug.stderr   # every segment of both documents
    assert "suggestions for" in sug.stdout and "Encoding" not in sug.stdout
