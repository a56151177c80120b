"""Docs that cannot go stale: the CLI reference is the commands' own help, every command in it."""

from pathlib import Path

from coder.cli.reference import command_paths, render

ROOT = Path(__file__).parent.parent


def test_cli_reference_is_current():
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == render(), "regenerate: python -m coder.cli.reference > docs/cli.md"


def test_every_command_is_documented():
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = [p for p in command_paths() if f"## `{p}`" not in text]
    assert not missing, f"commands missing from docs/cli.md: {missing}"


def test_readme_names_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "\n    ./dev demo\n" in readme and "\n    ./dev test\n" in readme
    assert "./dev test" in (ROOT / ".ci" / "run").read_text()
