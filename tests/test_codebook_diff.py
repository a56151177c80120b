"""Codebook versions on the demo study (seed codebook, ten interviews, the demo coders'
decisions): what a new version changes, code by code; codings follow a renamed or moved code
by id; a version that drops coded codes is refused unless --drop-coded; diff and history."""

from __future__ import annotations

import getpass
import re
from pathlib import Path

import pytest
import yaml
from cli_helpers import dump, run

from coder import Study
from coder.errors import CodebookError
from coder.sources.codebook import load
from coder.store.codebook import CodebookDiff, diff

ROOT = Path(__file__).parent.parent
DEMO = ROOT / "coder" / "demo_data"
SEED = ROOT / "codebook" / "sme_internationalization.yaml"
INTERVIEWS = sorted(p for p in DEMO.iterdir() if p.stem.startswith("p") and p.suffix != ".csv")


@pytest.fixture
def demo(tmp_path) -> Path:
    db = tmp_path / "study.db"
    assert run("init", db, "--codebook", SEED).exit_code == 0
    assert run("import", db, *INTERVIEWS, "--participants", DEMO / "participants.csv"
               ).exit_code == 0
    assert run("codes", "import", db, DEMO / "decisions.csv").exit_code == 0
    return db


# -- editing the seed codebook as a researcher would ----------------------------------------------
def tree() -> dict:
    return yaml.safe_load(SEED.read_text(encoding="utf-8"))


def find(nodes: list, code_id: str):
    """(siblings list, node) of the code with this id."""
    for node in nodes:
        if node.get("id") == code_id:
            return nodes, node
        found = find(node.get("codes") or [], code_id)
        if found:
            return found
    return None


def remove(data: dict, code_id: str) -> dict:
    siblings, node = find(data["codes"], code_id)
    siblings.remove(node)
    return node


def write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def version_two(tmp_path) -> Path:
    """Renamed, moved, added, edited and one uncoded code removed."""
    data = tree()
    find(data["codes"], "trig-domestic")[1]["name"] = "Home market conditions"
    political = remove(data, "barr-political")
    find(data["codes"], "barr-challenges")[1]["codes"].append(political)
    find(data["codes"], "barr-challenges")[1]["codes"].append(
        {"id": "chal-currency", "name": "Currency risk",
         "description": "Exchange-rate swings make foreign sales uncertain."})
    find(data["codes"], "ext-ind-supplier")[1]["items"].append("Supplier to MNCs abroad")
    remove(data, "ops-afta")
    return write(tmp_path, "seed-v2.yaml", data)


CHANGES_V2 = [
    "added    Barriers and challenges/Challenges/Currency risk  <chal-currency>",
    "removed  Operations of internationalization/Markets Selection/Among countries within AFTA  "
    "<ops-afta>",
    "renamed  Triggering factors/Domestic conditions -> Triggering factors/Home market "
    "conditions  <trig-domestic>",
    "moved    Barriers and challenges/Barriers/Political interference -> Barriers and "
    "challenges/Challenges/Political interference  <barr-political>",
    "edited   External factors/Industrialization/Supplier to local or international companies  "
    "<ext-ind-supplier>: items",
]


def test_diff_is_a_pure_function_of_two_codebooks(tmp_path):
    old, new = load(SEED), load(version_two(tmp_path))
    d = diff(old, new)
    assert isinstance(d, CodebookDiff)
    assert d.summary() == "1 added, 1 removed, 1 renamed, 1 moved, 1 edited"
    assert d.lines() == CHANGES_V2
    assert [c.id for c in d.removed] == ["ops-afta"]
    frame = d.frame()
    assert frame.columns.tolist() == ["id", "change", "old_path", "new_path", "fields"]
    assert frame.set_index("id").loc["barr-political", "change"] == "moved"
    assert diff(old, load(SEED)).summary() == ("no code added, removed, renamed, moved or "
                                               "edited")
    assert diff(None, old).summary() == f"{len(old)} added"


def test_import_prints_the_diff_and_codings_follow_by_id(demo, tmp_path):
    with Study(demo) as s:
        before = s.frequencies(coders=["alice", "bob"]).set_index("id")
    result = run("codebook", "import", demo, version_two(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.output == (
        "Codebook 'SME internationalization (six-factor model)': version 2, 65 codes.\n"
        "Changes from version 1: 1 added, 1 removed, 1 renamed, 1 moved, 1 edited\n"
        + "".join(f"  {line}\n" for line in CHANGES_V2))
    with Study(demo) as s:
        after = s.frequencies(coders=["alice", "bob"]).set_index("id")
    for code_id in ("trig-domestic", "barr-political"):
        assert after.loc[code_id, "n"] == before.loc[code_id, "n"] > 0
    assert after.loc["trig-domestic", "name"] == "Home market conditions"
    assert after.loc["barr-political", "path"] == ("Barriers and challenges/Challenges/"
                                                   "Political interference")


def test_dropping_coded_codes_is_refused_and_the_study_stays_as_it_was(demo, tmp_path):
    data = tree()
    remove(data, "net-personal")
    remove(data, "trig-resource")
    remove(data, "ops-afta")  # uncoded: may go
    path = write(tmp_path, "seed-v2.yaml", data)
    before = dump(demo)
    result = run("codebook", "import", demo, path)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {path}: this codebook drops 2 codes that have codings: 'Triggering factors/"
        "Resource seeking' <trig-resource> (5 codings), 'Networking/Personal relations' "
        "<net-personal> (12 codings) (their codings would count in no table; to rename or move "
        "a code keep its id; use --drop-coded to drop them anyway)\n")
    assert dump(demo) == before
    with Study(demo) as s, pytest.raises(CodebookError, match="drops 2 codes that have codings"):
        s.import_codebook(path)


def test_renaming_without_ids_is_a_drop_and_is_refused(demo, tmp_path):
    """A CSV codebook has no ids: a renamed code is a new code, and its codings would vanish."""
    with Study(demo) as s:
        csv_text = s.codebook().to_csv()
    rows = [line.split(",", 1)[1] for line in csv_text.splitlines()]  # without the id column
    edited = "\n".join(rows).replace("Personal relations", "Friends and family") + "\n"
    path = tmp_path / "seed-no-ids.csv"
    path.write_text(edited, encoding="utf-8")
    before = dump(demo)
    result = run("codebook", "import", demo, path)
    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: {path}: this codebook drops 1 code that has codings: 'Networking/Personal "
        "relations' <net-personal> (12 codings)")
    assert dump(demo) == before


def test_drop_coded_accepts_records_and_history_shows_it(demo, tmp_path):
    run("codebook", "import", demo, version_two(tmp_path))
    data = yaml.safe_load(version_two(tmp_path).read_text())
    remove(data, "net-personal")
    path = write(tmp_path, "seed-v3.yaml", data)
    result = run("codebook", "import", demo, path, "--drop-coded", "--by", "lead-anna")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "Codebook 'SME internationalization (six-factor model)': version 3, 64 codes.\n"
        "Changes from version 2: 1 removed\n"
        "  removed  Networking/Personal relations  <net-personal>\n"
        "Dropped with --drop-coded: net-personal (12 codings); their codings stay in the study "
        "and count again if a later version brings those code ids back.\n")
    with Study(demo) as s:
        assert s.code_codings(["net-personal"]) == {"net-personal": 12}  # kept
        assert "net-personal" not in set(s.frequencies(coders=["alice", "bob"])["id"])
        history = s.codebook_history()
    account = getpass.getuser()   # who ran `coder demo` and the import without --by
    assert history[["version", "imported_by", "codes", "changes", "dropped_coded"]
                   ].values.tolist() == [
        [1, account, 65, "first version", ""],
        [2, account, 65, "1 added, 1 removed, 1 renamed, 1 moved, 1 edited", ""],
        [3, "lead-anna", 64, "1 removed", "net-personal (12 codings)"]]

    shown = run("codebook", "history", demo)
    assert shown.exit_code == 0
    lines = [re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "DATE", line)
             for line in shown.output.splitlines()]
    width, by = len(str(path)), max(len(account), len("lead-anna"))
    assert lines == [
        "version  date                  " + "by".ljust(by) + "  codes  " + "source".ljust(width)
        + "  changes from the version before",
        "1        DATE  " + account.ljust(by) + "  65     " + str(SEED).ljust(width)
        + "  first version",
        "2        DATE  " + account.ljust(by) + "  65     "
        + str(tmp_path / "seed-v2.yaml").ljust(width)
        + "  1 added, 1 removed, 1 renamed, 1 moved, 1 edited",
        "3        DATE  " + "lead-anna".ljust(by) + "  64     " + str(path).ljust(width)
        + "  1 removed; dropped with --drop-coded: net-personal (12 codings)"]


def test_codebook_diff_between_any_two_versions(demo, tmp_path):
    run("codebook", "import", demo, version_two(tmp_path))
    result = run("codebook", "diff", demo, 1, 2)
    assert result.exit_code == 0
    assert result.output == (
        "Codebook version 1 -> 2: 1 added, 1 removed, 1 renamed, 1 moved, 1 edited\n"
        + "".join(f"  {line}\n" for line in CHANGES_V2))
    back = run("codebook", "diff", demo, 2, 1)
    assert back.output.splitlines()[0] == ("Codebook version 2 -> 1: 1 added, 1 removed, "
                                           "1 renamed, 1 moved, 1 edited")
    assert run("codebook", "diff", demo, 1).output == result.output  # NEW: the current one
    missing = run("codebook", "diff", demo, 1, 5)
    assert missing.exit_code == 1
    assert missing.output == ("Error: no codebook version 5 (versions 1 to 2; see them with: "
                              f"coder codebook history {demo})\n")
    assert run("codebook", "diff", demo, 0, 1).exit_code == 2
