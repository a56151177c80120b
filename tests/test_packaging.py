"""The wheel a user installs carries everything coder reads at run time (not just the checkout)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-q", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True)
    (built,) = out.glob("coder-*.whl")
    return built


def test_wheel_holds_every_subpackage_and_the_data_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for init in (ROOT / "coder").rglob("__init__.py"):
        assert init.relative_to(ROOT).as_posix() in names
    for shipped in ("coder/codebooks/sme_internationalization.yaml", "coder/codebooks/schema.json",
                    "coder/web/templates/review.html", "coder/web/static/app.js",
                    "coder/demo_data/p01.txt", "coder/demo_data/decisions.csv"):
        assert shipped in names


def test_installed_wheel_finds_the_seed_codebook_outside_the_checkout(wheel, tmp_path):
    """Installed into a bare folder and run from elsewhere: the demo's codebook resolves inside
    the installed package, and `coder codebook show` reads it."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                    "--disable-pip-version-check", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = ("import coder, coder.demo as d; print(coder.__file__); print(d.SEED_CODEBOOK); "
             "print(d.SEED_CODEBOOK.exists())")
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True)
    module, codebook, exists = run.stdout.splitlines()
    assert Path(module).is_relative_to(target)
    assert Path(codebook) == target / "coder" / "codebooks" / "sme_internationalization.yaml"
    assert exists == "True"
    cli = subprocess.run([sys.executable, "-m", "coder", "init", "s.db", "--codebook",
                          codebook], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert (tmp_path / "s.db").exists()
