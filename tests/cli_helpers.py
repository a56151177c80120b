"""What many CLI tests share: running a command as a user would, and the whole content of a
study file (to check that a refused command left it exactly as it was)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from coder.cli import cli


def run(*args, input: str | None = None):
    """`coder ARGS...` through click's runner (paths may be Path objects)."""
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def dump(path: str | Path) -> str:
    """Every table's rows, as SQL; equal before and after means the study is unchanged."""
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()
