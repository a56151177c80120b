"""Shared fixtures: real study files in tmp dirs, the small test codebook, sample transcripts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from coder import Study

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
SEED_CODEBOOK = ROOT / "codebook" / "sme_internationalization.yaml"


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A writable copy of tests/data."""
    target = tmp_path / "data"
    shutil.copytree(DATA, target)
    return target


@pytest.fixture
def small_codebook(data_dir) -> Path:
    return data_dir / "small_codebook.yaml"


@pytest.fixture
def study_path(tmp_path) -> Path:
    return tmp_path / "study.db"


@pytest.fixture
def study(study_path, data_dir) -> Study:
    """A migrated study with the small codebook and two imported interviews (unit: turn)."""
    s = Study.create(study_path, codebook=data_dir / "small_codebook.yaml")
    s.import_transcripts([data_dir / "p01.txt", data_dir / "p02.txt"])
    yield s
    s.close()
