"""CLI of the foundation: init, codebook import/show/export, exit codes, --debug."""

import csv
import io

from click.testing import CliRunner

from coder.cli import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_init_with_codebook_and_show(tmp_path, small_codebook):
    db = tmp_path / "s.db"
    result = run("init", db, "--codebook", small_codebook)
    assert result.exit_code == 0
    assert result.output == f"Created {db} with codebook 'Small test codebook' (8 codes, version 1)\n"
    shown = run("codebook", "show", db, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(shown.output)))
    assert list(rows[0])[:5] == ["id", "path", "name", "level", "description"]
    assert rows[1]["path"] == "Triggering factors/Domestic conditions"
    assert rows[1]["items"].startswith("Smaller or saturated domestic market; ")
    tree = run("codebook", "show", db)
    assert "    Domestic conditions  <trig-domestic>  [3 items]" in tree.output


def test_codebook_export_import_yaml_round_trip(tmp_path, small_codebook):
    db = tmp_path / "s.db"
    run("init", db, "--codebook", small_codebook)
    assert run("codebook", "export", db, tmp_path / "out.yaml").exit_code == 0
    result = run("codebook", "import", db, tmp_path / "out.yaml")
    assert result.output == "Codebook unchanged (still version 1).\n"


def test_bad_codebook_import_exit_1_no_new_version(tmp_path, small_codebook):
    db = tmp_path / "s.db"
    run("init", db, "--codebook", small_codebook)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: X\ncodes:\n  - name: A\n  - name: A\n")
    result = run("codebook", "import", db, bad)
    assert result.exit_code == 1
    assert result.output == f"Error: {bad}: duplicate code name 'A' under 'top level' (sibling codes need different names)\n"
    assert "version 1," in run("status", db).output


def test_init_refuses_bad_codebook_and_writes_no_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: X\ncodes: [\n")
    result = run("init", tmp_path / "s.db", "--codebook", bad)
    assert result.exit_code == 1 and "bad YAML" in result.output
    assert not (tmp_path / "s.db").exists()


def test_missing_study_and_debug(tmp_path):
    result = run("status", tmp_path / "nope.db")
    assert result.exit_code == 1
    assert result.output == f"Error: no study at {tmp_path / 'nope.db'} (create one with: coder init {tmp_path / 'nope.db'})\n"
    debug = run("--debug", "status", tmp_path / "nope.db")
    assert debug.exit_code == 1 and debug.exception is not None


def test_unknown_command_is_usage_error():
    assert run("frobnicate").exit_code == 2
