"""Codebooks: YAML and CSV, validation errors, versions and stable ids."""

import pytest

from coder import Study
from coder.errors import CodebookError, UnknownReference
from coder.sources.codebook import load


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_yaml_tree_and_references(small_codebook):
    book = load(small_codebook)
    assert [c.path for c in book.children(None)] == [
        "Triggering factors", "Networking", "Barriers and challenges"]
    assert book.resolve("trig-domestic").name == "Domestic conditions"
    assert book.resolve("Triggering factors/Domestic conditions").id == "trig-domestic"
    assert book.resolve("personal relations").id == "net-personal"
    assert [c.id for c in book.match("Networking/*")] == ["net", "net-institutions", "net-personal"]
    with pytest.raises(UnknownReference, match="unknown code 'Nope'"):
        book.resolve("Nope")


@pytest.mark.parametrize("text, message", [
    ("name: X\ncodes:\n  - name: A\n  - name: a\n", "duplicate code name 'a' under 'top level'"),
    ("name: X\ncodes:\n  - name: A\n    colour: red\n", "codes[1]: unknown key 'colour'"),
    ("name: X\ncodes:\n  - description: no name\n", "codes[1]: code without a name"),
    ("name: X\ncodes: [\n", "bad YAML"),
    ("name: X\nfoo: 1\ncodes:\n  - name: A\n", "unknown key 'foo' at the top level"),
    ("codes:\n  - name: A\n", "the codebook has no 'name'"),
])
def test_bad_codebooks(tmp_path, text, message):
    with pytest.raises(CodebookError) as e:
        load(write(tmp_path, "cb.yaml", text))
    assert message in str(e.value)
    assert str(e.value).startswith(str(tmp_path / "cb.yaml"))


def test_bad_yaml_names_the_line(tmp_path):
    with pytest.raises(CodebookError, match=r"cb.yaml: line 4: bad YAML"):
        load(write(tmp_path, "cb.yaml", "name: X\ncodes:\n  - name: A\n  -name: : b\n"))


def test_csv_codebook(tmp_path):
    p = write(tmp_path, "cb.csv", "path,description,items\nBarriers/Finance,Money,Loans; Grants\n"
              "Barriers/People,,\nNetworking,,\n")
    book = load(p)
    assert [c.path for c in book] == ["Barriers", "Barriers/Finance", "Barriers/People", "Networking"]
    assert book.resolve("Finance").items == ["Loans", "Grants"]


def test_new_version_keeps_ids_through_renames(study_path, small_codebook, tmp_path):
    s = Study.create(study_path, codebook=small_codebook)
    assert s.codebook_version == 1
    assert s.import_codebook(small_codebook).version == 1  # identical: no new version
    renamed = small_codebook.read_text().replace("name: Domestic conditions",
                                                 "name: Home market conditions")
    v2 = s.import_codebook(write(tmp_path, "v2.yaml", renamed))
    assert v2.version == 2
    assert v2.resolve("Home market conditions").id == "trig-domestic"
    # a codebook without ids: ids carried over by path from the previous version
    v3 = s.import_codebook(write(tmp_path, "v3.yaml", renamed.replace("id: trig-domestic", "")))
    assert v3.resolve("Home market conditions").id == "trig-domestic"


def test_yaml_and_csv_round_trip(tmp_path, small_codebook):
    book = load(small_codebook)
    again = load(write(tmp_path, "again.yaml", book.to_yaml()))
    assert [(c.id, c.path, c.items) for c in again] == [(c.id, c.path, c.items) for c in book]
    csv_again = load(write(tmp_path, "again.csv", book.to_csv()))
    assert [(c.id, c.path) for c in csv_again] == [(c.id, c.path) for c in book]
