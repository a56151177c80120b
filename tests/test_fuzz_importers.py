"""Fuzz every importer through the CLI, as a user would run it, with broken and odd files.

For transcripts of each format, participants CSV, codebooks (YAML, CSV, .qdc), codings CSV,
review sheets (.csv, .xlsx) and .qdpx projects, hypothesis starts from a valid file and mutates
it (bytes inserted, deleted or replaced, truncation, lines shuffled or repeated, other encodings,
very long lines, control characters, spreadsheet formulas, deep nesting, zip members renamed or
corrupted, broken XML, odd YAML/JSON values) or makes pure random bytes. Every example must end
in success (exit 0) or one clear error line naming the file (exit 1, or 2 for usage), never a
traceback; and when the command fails, the study must be exactly as it was.

Resource bombs (YAML alias bombs, zip bombs, huge spreadsheet dimensions, long runs of
punctuation under --unit sentence) are not fuzzed here: they need their own tests with memory
and time limits.

Set CODER_FUZZ_EXAMPLES for a longer run (default 30 examples per importer).
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import shutil
import sqlite3
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import docx
import openpyxl
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from lxml import etree
from review_helpers import add_suggestions

from coder import Study
from coder.cli import cli

DATA = Path(__file__).parent / "data"

# A settings object rather than settings.load_profile(): loading a profile here would change
# hypothesis' defaults for every test module collected after this one.
FUZZ = settings(
    max_examples=int(os.environ.get("CODER_FUZZ_EXAMPLES", "30")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# zip members named twice are made on purpose; failing examples with big files print big
pytestmark = [pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning"),
              pytest.mark.filterwarnings("ignore:Generating overly large repr")]

MAX_LINE = 1000  # an error line longer than this echoes the input instead of explaining it


# -- the valid starting points --------------------------------------------------------------------
TRANSCRIPTS = {
    "txt": (DATA / "p01.txt").read_bytes(),
    "md": b"**Interviewer:** Why do firms export?\n\n**Dr Lee:** The home market is small.\n"
          b"And crowded.\n\n**Interviewer:** Who helps?\n\n**Dr Lee:** Agencies, mostly.\n",
    "vtt": b"WEBVTT\n\n00:00:01.000 --> 00:00:04.000\n<v Interviewer>Where do they sell?\n\n"
           b"00:00:04.500 --> 00:00:09.000\n<v Siti>Mostly to neighbouring countries.\n\n"
           b"00:00:09.000 --> 00:00:12.250\n<v Siti>Singapore and Thailand first.\n",
    "srt": b"1\n00:00:01,000 --> 00:00:03,000\nQ: Any barriers?\n\n"
           b"2\n00:00:03,500 --> 00:00:06,000\nAhmad: Finance, mainly.\n",
    "csv": b"speaker,text,start,end\nInterviewer,Hello?,0,1.5\n"
           b"Lina,\"We export, mostly.\",1.5,4\nInterviewer,Why?,4,00:00:05.500\n"
           b"Lina,Bigger markets.,00:00:05.500,9\n",
}

PARTICIPANTS = (b"participant,document,speaker,group,gender\nP01,p01,,academic,female\n"
                b"P02,p02,Mr Tan,chamber,male\nP09,,,chamber,\n")

CODINGS = ("document,segment,code,coder,decision,memo\n"
           "p01,2,Domestic conditions,alice,,clear case\n"
           "p01,4,trig-domestic,bob,rejected,\n"
           "p02,2,Globalization force,alice,confirmed,\n"
           "p01,6,none,alice,no_code,\n")


def docx_bytes() -> bytes:
    d = docx.Document()
    p = d.add_paragraph()
    p.add_run("Interviewer").bold = True
    p.add_run(" What drives exporting?")
    p = d.add_paragraph()
    p.add_run("Prof Rahman:").bold = True
    p.add_run(" Bigger markets outside, honestly.")
    d.add_paragraph("And the government programmes.")
    d.add_paragraph("Interviewer: And the barriers?")
    d.add_paragraph("Prof Rahman: Loans. Always loans.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], obj={})


def dump(path: Path) -> str:
    """Everything visible in a study file (main file and WAL), through a fresh connection."""
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def fill_sheets(csv_path: Path, xlsx_path: Path) -> None:
    """Decide two rows of each exported review sheet (a code, no code) and leave the rest."""
    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    column = rows[0].index("decision")
    rows[1][column], rows[2][column] = "Networking/Personal relations", "none"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    wb = openpyxl.load_workbook(xlsx_path)
    wb["review"]["H2"], wb["review"]["H3"] = "bar-finance; net-personal", "none"
    wb["review"]["I3"] = "a memo"
    wb.save(xlsx_path)


class Base:
    """The prepared study, its dump and the valid input files (not a dataclass: hypothesis
    prints the fixture with every failing example, and a dataclass in full)."""

    def __init__(self, study: Path, before: str, files: dict[str, bytes]):
        self.study = study    # a codebook, p01 and p02, suggestions and codings
        self.before = before  # its dump
        self.files = files

    def __repr__(self) -> str:
        return f"Base({self.study})"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    folder = tmp_path_factory.mktemp("fuzz-base")
    study = folder / "study.db"

    def ok(*args):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        return result

    ok("init", study, "--codebook", DATA / "small_codebook.yaml")
    ok("import", study, DATA / "p01.txt", DATA / "p02.txt")
    with Study(study) as s:
        add_suggestions(s)
    (folder / "codings-in.csv").write_text(CODINGS, encoding="utf-8")
    ok("codes", "import", study, folder / "codings-in.csv")
    ok("codes", "export", study, folder / "codings.csv")
    ok("review", "export", study, folder / "sheet.csv", "--coder", "carol")
    ok("review", "export", study, folder / "sheet.xlsx", "--coder", "carol")
    fill_sheets(folder / "sheet.csv", folder / "sheet.xlsx")
    ok("export", study, folder / "project.qdpx", "--include-suggestions")
    for suffix in ("yaml", "csv", "qdc"):
        ok("codebook", "export", study, folder / f"codebook.{suffix}")
    conn = sqlite3.connect(study)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    files = {f"transcript.{k}": v for k, v in TRANSCRIPTS.items()}
    files["transcript.docx"] = docx_bytes()
    files["participants.csv"] = PARTICIPANTS
    for name in ("codings.csv", "sheet.csv", "sheet.xlsx", "project.qdpx", "codebook.yaml",
                 "codebook.csv", "codebook.qdc"):
        files[name] = (folder / name).read_bytes()
    return Base(study=study, before=dump(study), files=files)


# -- the contract ---------------------------------------------------------------------------------
def check(result, path: Path) -> None:
    """Exit 0, 1 or 2; never a traceback; on failure one 'Error:' line that names the file."""
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        note(f"output: {result.output!r}")
        raise exc  # re-raised as itself: hypothesis tells distinct bugs apart by type and origin
    out = result.output
    note(f"exit {result.exit_code}: {out[:2000]!r}")
    assert "Traceback" not in out
    assert result.exit_code in (0, 1, 2)
    if result.exit_code == 0:
        return
    lines = [line for line in out.split("\n") if line.strip()]  # a terminal's lines
    errors = [line for line in lines if line.startswith("Error")]
    assert len(errors) == 1, f"expected one 'Error:' line, got: {out!r}"
    if result.exit_code == 1:
        assert path.name in errors[0], f"the error does not name {path.name}: {errors[0]!r}"
        others = [line for line in lines if not line.startswith("Error")]
        # details of a multi-row report are indented; import-project may warn first
        assert all(line.startswith(("  ", "Warning: ")) for line in others), out
    too_long = [line[:200] + "..." for line in lines if len(line) > MAX_LINE]
    assert not too_long, f"error output lines of more than {MAX_LINE} characters: {too_long}"


def run_import(base: Base, name: str, content: bytes,
               args: Callable[[Path, Path], list[object]]) -> None:
    """Run one import of ``content`` saved as ``name`` into a fresh copy of the base study."""
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "study.db"
        shutil.copy(base.study, study)
        path = Path(tmp) / name
        path.write_bytes(content)
        note(f"{name}: {len(content)} bytes: {content[:120]!r}")
        result = invoke(*args(study, path))
        check(result, path)
        if result.exit_code != 0:
            assert dump(study) == base.before, "a failed import changed the study"


# -- mutations of bytes ---------------------------------------------------------------------------
# An operation takes hypothesis' draw and the file's bytes and returns new bytes; it note()s
# what it did, so a failing example reads as a recipe.
Op = Callable[[Callable, bytes], bytes]

NASTY = [b"=1+1", b"+1", b"-1", b"@SUM(A1)", b"=HYPERLINK(\"http://x\")", b"\x00", b"\x1b[31m",
         b"\x07", b"\x7f", b"\r", b"\r\n", b"\t", b"\x0b\x0c", "\u2028".encode(),
         "\ufeff".encode(), b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf", b"\x81\x8d\x8f\x90\x9d",
         b"\xed\xa0\x80", b"\xc3", "🙂".encode(), "\u202e".encode(), "\u0301".encode(), b'"',
         b",", b";", b":", b"\n\n", b"<", b"&", b"]]>", b"&lt;", b"&#0;", b"&#xD800;", b"---",
         b"...", b"*a", b"&a ", b"? ", b"- ", b"!!python/object/apply:os.system [ls]",
         b"!!timestamp x", b"!!int x", b"!!binary ?", b"2024-02-30", b"%YAML 9.9\n",
         b"{{{", b"[[[", b"NaN", b"inf", b"1e400", b"-0", b"99999999999999999999", b"1_0",
         "٣".encode(), b"none", b"None", b"Interviewer:", b"X:", b"<v A>", b"-->",
         b"00:00:01.000 --> 00:00:00.000", b"99:99:99,999", b"WEBVTT", b"PK\x03\x04"]
LONG = [100, 5_000, 140_000]  # 140,000 passes csv's field size limit of 131,072
# Long runs of punctuation stay short: spaCy's tokenizer takes quadratic time on them (20,000
# '"' take a minute under --unit sentence), a resource problem for a dedicated test, not here.
LONG_PUNCTUATION = [10, 300]


def _pos(draw, data: bytes) -> int:
    return draw(st.integers(0, len(data)))


def truncate(draw, data):
    n = _pos(draw, data)
    note(f"truncate to {n} bytes")
    return data[:n]


def insert_bytes(draw, data):
    i, new = _pos(draw, data), draw(st.binary(min_size=1, max_size=16))
    note(f"insert {new!r} at {i}")
    return data[:i] + new + data[i:]


def delete_bytes(draw, data):
    i = _pos(draw, data)
    j = draw(st.integers(i, min(len(data), i + 64)))
    note(f"delete bytes {i}:{j}")
    return data[:i] + data[j:]


def replace_bytes(draw, data):
    i, new = _pos(draw, data), draw(st.binary(min_size=1, max_size=16))
    note(f"replace bytes at {i} by {new!r}")
    return data[:i] + new + data[i + len(new):]


def insert_token(draw, data):
    i, tok = _pos(draw, data), draw(st.sampled_from(NASTY))
    note(f"insert {tok!r} at {i}")
    return data[:i] + tok + data[i:]


def long_line(draw, data):
    i = _pos(draw, data)
    unit = draw(st.sampled_from([b"x", b"ab ", "é".encode(), b"\t", b'"', b",;", b"a:"]))
    n = draw(st.sampled_from(LONG if unit in (b"x", b"ab ", "é".encode(), b"\t")
                             else LONG_PUNCTUATION))
    note(f"insert {unit!r} * {n} at {i}")
    return data[:i] + unit * n + data[i:]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def shuffle_lines(draw, data):
    lines = draw(st.permutations(_lines(data)))
    note("shuffle lines")
    return b"\n".join(lines)


def repeat_line(draw, data):
    lines = _lines(data)
    i, n = draw(st.integers(0, len(lines) - 1)), draw(st.sampled_from([2, 3, 500]))
    note(f"repeat line {i + 1} {n} times")
    return b"\n".join(lines[:i] + [lines[i]] * n + lines[i + 1:])


def drop_line(draw, data):
    lines = _lines(data)
    i = draw(st.integers(0, len(lines) - 1))
    note(f"drop line {i + 1}")
    return b"\n".join(lines[:i] + lines[i + 1:])


ENCODINGS = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "cp1252", "latin-1", "utf-8-sig",
             "mac-roman", "cp437", "utf-16, odd length", "utf-8-sig, invalid after the BOM"]


def reencode(draw, data):
    enc = draw(st.sampled_from(ENCODINGS))
    note(f"re-encode as {enc}")
    text = data.decode("utf-8", "replace")
    if enc == "utf-16, odd length":
        return text.encode("utf-16")[:-1]
    if enc == "utf-8-sig, invalid after the BOM":
        return b"\xef\xbb\xbf" + data + b"\xff"
    return text.encode(enc, "replace")


def empty(draw, data):
    new = draw(st.sampled_from([b"", b" ", b"\n\n", b"\xef\xbb\xbf", b"\xff\xfe", b"\x00",
                                b"\xef\xbb\xbf\n"]))
    note(f"replace the file by {new!r}")
    return new


TEXT_OPS: list[Op] = [truncate, insert_bytes, delete_bytes, replace_bytes, insert_token,
                      long_line, shuffle_lines, repeat_line, drop_line, reencode, empty]


@st.composite
def mutated(draw, valid: bytes, ops: list[Op]) -> bytes:
    """Sometimes the valid file, often 1-3 mutations of it, sometimes random bytes."""
    if draw(st.integers(0, 11)) == 0:
        note("pure random bytes")
        return draw(st.binary(max_size=2000))
    data = valid
    for _ in range(draw(st.integers(0, 3))):
        data = draw(st.sampled_from(ops))(draw, data)
    return data


# -- mutations of structure: CSV, YAML, JSON, XML, zip, xlsx --------------------------------------
WEIRD_TEXT = ["", " ", "=1+1", "@SUM(A1)", "+1", "-1", "0", "1.5", "NaN", "inf", "1e400",
              "99999999999999999999", "٣", "none", "None", "a;b;;c", "Networking/*", "a/b",
              "/", "../..", "\x00", "\x1b[2J", "\u202e", "x" * 5000, "trig-domestic",
              "Domestic conditions", "Networking/Personal relations", "p01", "p02", "alice",
              " alice", "a,b", "2024-02-30", "two\nlines"]


def _csv_rows(data: bytes) -> list[list[str]] | None:
    try:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error):
        return None
    return rows if rows and all(rows) else None


def _csv_bytes(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode("utf-8")


def csv_cell(draw, data):
    rows = _csv_rows(data)
    if rows is None:
        return data
    r = draw(st.integers(0, len(rows) - 1))
    c = draw(st.integers(0, len(rows[r]) - 1))
    rows[r][c] = draw(st.sampled_from(WEIRD_TEXT))
    note(f"CSV: cell row {r + 1} column {c + 1} := {rows[r][c][:40]!r}")
    return _csv_bytes(rows)


def csv_extra_field(draw, data):
    rows = _csv_rows(data)
    if rows is None:
        return data
    r = draw(st.integers(0, len(rows) - 1))
    rows[r].append(draw(st.sampled_from(WEIRD_TEXT)))
    note(f"CSV: one more field in row {r + 1}")
    return _csv_bytes(rows)


def csv_drop_field(draw, data):
    rows = _csv_rows(data)
    if rows is None:
        return data
    r = draw(st.integers(0, len(rows) - 1))
    rows[r] = rows[r][:-1]
    note(f"CSV: last field of row {r + 1} dropped")
    return _csv_bytes(rows)


def csv_header(draw, data):
    rows = _csv_rows(data)
    if rows is None:
        return data
    c = draw(st.integers(0, len(rows[0]) - 1))
    new = draw(st.sampled_from(["", " " + rows[0][c].upper() + " ", rows[0][0], "participant",
                                "code", "text", "segment_id", "study", "\ufeffdocument"]))
    note(f"CSV: header column {c + 1} {rows[0][c]!r} := {new!r}")
    rows[0][c] = new
    return _csv_bytes(rows)


def csv_swap_columns(draw, data):
    rows = _csv_rows(data)
    if rows is None or len(rows[0]) < 2:
        return data
    a = draw(st.integers(0, len(rows[0]) - 1))
    b = draw(st.integers(0, len(rows[0]) - 1))
    for row in rows:
        if max(a, b) < len(row):
            row[a], row[b] = row[b], row[a]
    note(f"CSV: columns {a + 1} and {b + 1} swapped")
    return _csv_bytes(rows)


CSV_OPS: list[Op] = [csv_cell, csv_extra_field, csv_drop_field, csv_header, csv_swap_columns]

WEIRD_VALUES = [None, 0, -1, 1.5, float("nan"), True, [], {}, "", " ", "a/b", "x" * 3000,
                [1, [2]], {"name": "x"}, {1: "a"}, datetime.date(2024, 1, 1), "trig"]


def _tree_slots(tree) -> list:
    """(container, key) for every value in a parsed YAML/JSON tree, in document order."""
    out, stack = [], [tree]
    while stack:
        node = stack.pop()
        keys = list(node) if isinstance(node, dict) else (
            range(len(node)) if isinstance(node, list) else [])
        slots = [(node, k) for k in keys]
        out.extend(slots)
        stack.extend(node[k] for _, k in reversed(slots))
    return out


def _too_deep(data: bytes, limit: int = 40) -> bool:
    """Brackets nested deeper than ``limit``: parsing and dumping such a tree recurses, and
    how deep Python can recurse differs between runs (hypothesis would call the test flaky)."""
    depth = deepest = 0
    for byte in data:
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest > limit


def _mutate_tree(draw, tree, values) -> str:
    """Change one value, add a key or drop a key somewhere in the tree; returns what it did."""
    slots = _tree_slots(tree)
    if not slots:
        return "nothing to change"
    container, key = draw(st.sampled_from(slots))
    what = draw(st.sampled_from(["value", "drop", "add key"]))
    if what == "value":
        container[key] = draw(st.sampled_from(values))
        return f"{key!r} := {container[key]!r:.60}"
    if what == "drop":
        del container[key]
        return f"{key!r} dropped"
    target = container if isinstance(container, dict) else container[key]
    if not isinstance(target, dict):
        return "nothing to change"
    new_key = draw(st.sampled_from(["colour", 1, None, True, 1.5, "codes", "id"]))
    target[new_key] = draw(st.sampled_from(values))
    return f"key {new_key!r} added"


def yaml_tree(draw, data):
    if _too_deep(data):
        return data
    try:
        tree = yaml.safe_load(data.decode("utf-8"))
    except Exception:  # not YAML any more (PyYAML raises more than YAMLError)
        return data
    note("YAML: " + _mutate_tree(draw, tree, WEIRD_VALUES))
    return yaml.safe_dump(tree, allow_unicode=True, sort_keys=False).encode("utf-8")


YAML_SNIPPETS = {
    "deep flow lists": lambda n: b"name: deep\ncodes: " + b"[" * n + b"]" * n + b"\n",
    "deep flow mappings": lambda n: b"name: deep\ncodes: [" + b"{a: " * n + b"1" + b"}" * n
                                    + b"]\n",
    "deep codes": lambda n: b"name: deep\ncodes: " + b"[{name: c, codes: " * n + b"[{name: z}]"
                            + b"}]" * n + b"\n",
    "self-referencing codes": lambda n: b"name: loop\ncodes: &a [{name: c, codes: *a}]\n",
    "mixed-type keys": lambda n: b"name: k\n1: one\nfoo: two\ncodes: [{name: c}]\n",
    "null and text keys in a code": lambda n: b"name: k\ncodes: [{name: c, ~: 1, foo: 2}]\n",
    "bad date": lambda n: b"name: 2024-02-30\ncodes: [{name: c}]\n",
    "explicit bad tags": lambda n: b"name: !!timestamp x\ncodes: [{name: !!int x}]\n",
    "several documents": lambda n: b"name: a\ncodes: [{name: c}]\n---\nname: b\n",
}


def yaml_snippet(draw, data):
    what = draw(st.sampled_from(sorted(YAML_SNIPPETS)))
    n = draw(st.sampled_from([3, 100, 2000]))
    note(f"YAML: {what} (n={n})")
    return YAML_SNIPPETS[what](n)


JSON_VALUES = [None, 0, -1, 10**30, 1.5e308, "", "x", [], {}, [[1]], {"a": None}, True,
               "trig-domestic", "no_code", "rejected", "codebook", "turn", "sentence"]


def json_tree(draw, data):
    if _too_deep(data):
        return data
    try:
        tree = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return data
    if not isinstance(tree, (dict, list)) or draw(st.integers(0, 4)) == 0:
        tree = draw(st.sampled_from(JSON_VALUES))
        note(f"JSON: whole document := {tree!r}")
    else:
        note("JSON: " + _mutate_tree(draw, tree, JSON_VALUES))
    return json.dumps(tree).encode("utf-8")


def _xml(data: bytes):
    try:
        return etree.fromstring(data, etree.XMLParser(resolve_entities=False))
    except (etree.XMLSyntaxError, ValueError):
        return None


def _xml_bytes(root) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def _element(draw, root, *, below_root=False):
    elements = [el for el in root.iter() if isinstance(el.tag, str)]
    if below_root:
        elements = elements[1:]
    return draw(st.sampled_from(elements)) if elements else None


def xml_drop(draw, data):
    root = _xml(data)
    el = _element(draw, root, below_root=True) if root is not None else None
    if el is None:
        return data
    note(f"XML: drop <{etree.QName(el).localname}> at line {el.sourceline}")
    el.getparent().remove(el)
    return _xml_bytes(root)


def xml_duplicate(draw, data):
    root = _xml(data)
    el = _element(draw, root, below_root=True) if root is not None else None
    if el is None:
        return data
    note(f"XML: duplicate <{etree.QName(el).localname}> at line {el.sourceline}")
    el.addnext(etree.fromstring(etree.tostring(el)))
    return _xml_bytes(root)


def xml_attribute(draw, data):
    root = _xml(data)
    if root is None:
        return data
    el = _element(draw, root)
    names = sorted(el.attrib) + ["guid", "name", "startPosition", "endPosition", "targetGUID"]
    name = draw(st.sampled_from(names))
    if draw(st.booleans()) and name in el.attrib:
        note(f"XML: drop {name} of <{etree.QName(el).localname}> at line {el.sourceline}")
        del el.attrib[name]
    else:
        value = draw(st.sampled_from(["", "-1", "0", "abc", "99999999999", "1e3", "{GUID}",
                                      "1 ", "x" * 3000, "internal://../../etc/passwd",
                                      "absolute:///etc/passwd", "internal://missing.txt",
                                      "\u202e", "🙂"]))
        note(f"XML: {name}={value[:40]!r} on <{etree.QName(el).localname}> "
             f"at line {el.sourceline}")
        el.set(name, value)
    return _xml_bytes(root)


def xml_text(draw, data):
    root = _xml(data)
    if root is None:
        return data
    el = _element(draw, root)
    value = draw(st.sampled_from([w for w in WEIRD_TEXT if "\x00" not in w and "\x1b" not in w]
                                 + ["coder: {", "coder: []", "coder: null"]))
    note(f"XML: text of <{etree.QName(el).localname}> at line {el.sourceline} := {value[:40]!r}")
    el.text = value
    return _xml_bytes(root)


def xml_nest(draw, data):
    root = _xml(data)
    if root is None:
        return data
    el = _element(draw, root)
    n = draw(st.sampled_from([5, 200, 3000]))
    note(f"XML: nest {n} levels of <{etree.QName(el).localname}> below line {el.sourceline}")
    inner = el
    for _ in range(n):
        inner = etree.SubElement(inner, el.tag, dict(el.attrib))
    return _xml_bytes(root)


def xml_coder_line(draw, data):
    """Mutate the JSON of a 'coder: {...}' line at the end of an element's text."""
    root = _xml(data)
    if root is None:
        return data
    found = [el for el in root.iter() if isinstance(el.tag, str) and el.text
             and "\ncoder: {" in "\n" + el.text]
    if not found:
        return data
    el = draw(st.sampled_from(found))
    head, _, line = ("\n" + el.text).rpartition("\ncoder: ")
    try:
        tree = json.loads(line)
    except ValueError:
        return data
    if draw(st.integers(0, 3)) == 0:
        tree = draw(st.sampled_from(JSON_VALUES))
        what = f"line := {tree!r}"
    else:
        what = _mutate_tree(draw, tree, JSON_VALUES)
    note(f"XML: coder line of <{etree.QName(el).localname}> at line {el.sourceline}: {what}")
    el.text = (head + "\ncoder: " + json.dumps(tree))[1:]
    return _xml_bytes(root)


def xml_doctype(draw, data):
    decl = draw(st.sampled_from([
        b'<!DOCTYPE x [<!ENTITY e "boo">]>',
        b'<!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd">',
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/hostname">]>',
    ]))
    i = data.find(b"?>")
    note(f"XML: add {decl!r}")
    return data[:i + 2] + b"\n" + decl + data[i + 2:] if i >= 0 else decl + data


XML_OPS: list[Op] = [xml_drop, xml_duplicate, xml_attribute, xml_text, xml_nest,
                     xml_coder_line, xml_doctype]


def _members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return [(i, z.read(i)) for i in z.infolist()]
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
            NotImplementedError):  # a zip an earlier mutation broke
        return None


def _zip(members, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for info, content in members:
            name = info.filename if isinstance(info, zipfile.ZipInfo) else info
            z.writestr(name, content)
    return buf.getvalue()


def zip_member_ops(member_ops: dict[str, list[Op]]) -> list[Op]:
    """Operations on a zip: on one member's content (by its name's ending), on names, on bytes."""

    def content(draw, data):
        members = _members(data)
        if not members:
            return data
        k = draw(st.integers(0, len(members) - 1))
        info, body = members[k]
        ops = next((v for end, v in member_ops.items() if info.filename.endswith(end)), TEXT_OPS)
        note(f"zip: member {info.filename}:")
        for _ in range(draw(st.integers(1, 2))):
            body = draw(st.sampled_from(ops))(draw, body)
        members[k] = (info, body)
        return _zip(members)

    def rename(draw, data):
        members = _members(data)
        if not members:
            return data
        k = draw(st.integers(0, len(members) - 1))
        old = members[k][0].filename
        new = draw(st.sampled_from([old.upper(), "x/" + old, old + ".bak", "../" + old,
                                    members[0][0].filename, "/" + old, old.replace("/", "\\")]))
        note(f"zip: rename {old} to {new}")
        members[k] = (new, members[k][1])
        return _zip(members)

    def drop(draw, data):
        members = _members(data)
        if not members:
            return data
        k = draw(st.integers(0, len(members) - 1))
        note(f"zip: drop member {members[k][0].filename}")
        return _zip(members[:k] + members[k + 1:])

    def corrupt(draw, data):
        """Flip one byte inside a member's stored data: a bad CRC or a broken deflate stream."""
        members = _members(data)
        if not members:
            return data
        stored = draw(st.booleans())
        data = _zip(members, zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = [i for i in z.infolist() if i.compress_size]
            if not infos:
                return data
            info = draw(st.sampled_from(infos))
        header = data[info.header_offset:info.header_offset + 30]
        start = (info.header_offset + 30 + int.from_bytes(header[26:28], "little")
                 + int.from_bytes(header[28:30], "little"))
        i = start + draw(st.integers(0, info.compress_size - 1))
        note(f"zip: flip byte {i - start} of {info.filename} "
             f"({'stored' if stored else 'deflated'})")
        return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]

    def recompress(draw, data):
        members = _members(data)
        if not members:
            return data
        method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]))
        note(f"zip: recompress with method {method}")
        return _zip(members, method)

    def junk_member(draw, data):
        members = _members(data)
        if not members:
            return data
        name = draw(st.sampled_from(["junk.bin", members[0][0].filename, "sources/", "a" * 300]))
        note(f"zip: add member {name[:40]!r}")
        return _zip([*members, (name, draw(st.binary(max_size=64)))])

    # the members' content most often: a broken zip is found at once, and hides the rest
    return [content, content, content, content, rename, drop, corrupt, recompress, junk_member,
            truncate, replace_bytes, insert_bytes]


DOCX_OPS = zip_member_ops({".xml": XML_OPS + [truncate, insert_token, replace_bytes],
                           ".rels": XML_OPS + [truncate, insert_token]})
QDPX_OPS = zip_member_ops({".qde": XML_OPS + XML_OPS + [truncate, insert_token, replace_bytes],
                           ".json": [json_tree, json_tree, truncate, insert_token],
                           ".txt": TEXT_OPS})
# what only coder reads: coder.json and the 'coder: {...}' lines (a sound zip and XML)
QDPX_METADATA_OPS = zip_member_ops({".qde": [xml_coder_line] * 3 + [xml_attribute, xml_text],
                                    ".json": [json_tree]})[:1]
XLSX_ZIP_OPS = zip_member_ops({".xml": XML_OPS + [truncate, insert_token, replace_bytes]})

SHEET_VALUES = ["trig-domestic", "Networking/Personal relations", "none", "none; bar-finance",
                "Nowhere", "=1+1", "=A1", "=codes!A1", '=HYPERLINK("http://x","y")', 3, 2.5,
                -1, 10**20, True, datetime.datetime(2024, 1, 1), "", None, "x" * 40_000,
                "trig-domestic;;trig-domestic", "\u202e", "🙂"]


def xlsx_cells(draw, data):
    """Edit the workbook as a coder might: cells, rows, columns and sheets."""
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data))
    except Exception:  # a workbook an earlier mutation broke
        return data
    ws = wb.worksheets[0]
    what = draw(st.sampled_from(["cell", "cell", "decision", "delete rows", "delete column",
                                 "duplicate row", "drop about", "rename sheet",
                                 "about: one column", "about: fingerprint"]))
    if what in ("cell", "decision"):
        row = draw(st.integers(1, ws.max_row + 1))
        col = 8 if what == "decision" else draw(st.integers(1, ws.max_column + 1))
        value = draw(st.sampled_from(SHEET_VALUES))
        note(f"xlsx: cell ({row}, {col}) := {value!r:.60}")
        ws.cell(row=row, column=col).value = value
    elif what == "delete rows":
        row = draw(st.integers(1, ws.max_row))
        note(f"xlsx: delete row {row}")
        ws.delete_rows(row)
    elif what == "delete column":
        col = draw(st.integers(1, ws.max_column))
        note(f"xlsx: delete column {col}")
        ws.delete_cols(col)
    elif what == "duplicate row":
        row = draw(st.integers(1, ws.max_row))
        note(f"xlsx: duplicate row {row}")
        ws.append([c.value for c in ws[row]])
    elif what == "drop about" and "about" in wb.sheetnames:
        note("xlsx: delete the about sheet")
        del wb["about"]
    elif what == "rename sheet":
        note("xlsx: rename the review sheet")
        ws.title = "Sheet1"
    elif what == "about: one column" and "about" in wb.sheetnames:
        note("xlsx: delete column B of the about sheet")
        wb["about"].delete_cols(2)
    elif what == "about: fingerprint" and "about" in wb.sheetnames:
        value = draw(st.sampled_from([None, 1, "", "=1+1", "other"]))
        note(f"xlsx: about!B1 := {value!r}")
        wb["about"]["B1"] = value
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# -- the tests ------------------------------------------------------------------------------------
def transcript_args(unit):
    return lambda study, path: ["import", study, path, "--unit", unit]


@pytest.mark.parametrize("fmt", ["txt", "md", "vtt", "srt", "csv", "docx"])
@FUZZ
@given(data=st.data())
def test_transcript(base, fmt, data):
    ops = {"docx": DOCX_OPS, "csv": TEXT_OPS + CSV_OPS}.get(fmt, TEXT_OPS)
    content = data.draw(mutated(base.files[f"transcript.{fmt}"], ops), label="file")
    name = data.draw(st.sampled_from(["p03", "p01"]), label="document")
    unit = data.draw(st.sampled_from(["turn", "paragraph", "sentence"]), label="unit")
    run_import(base, f"{name}.{fmt}", content, transcript_args(unit))


@FUZZ
@given(data=st.data())
def test_participants(base, data):
    content = data.draw(mutated(base.files["participants.csv"], TEXT_OPS + CSV_OPS * 2),
                        label="file")
    with_import = data.draw(st.booleans(), label="coder import --participants")
    transcript = DATA / "p01.txt"  # already in the study: unchanged, so only the CSV can fail

    def args(study, path):
        if with_import:
            return ["import", study, transcript, "--participants", path]
        return ["participants", "import", study, path]

    run_import(base, "participants.csv", content, args)


@pytest.mark.parametrize("fmt", ["yaml", "csv", "qdc"])
@FUZZ
@given(data=st.data())
def test_codebook(base, fmt, data):
    ops = {"yaml": TEXT_OPS + [yaml_tree, yaml_tree, yaml_tree, yaml_snippet],
           "csv": TEXT_OPS + CSV_OPS * 2,
           "qdc": TEXT_OPS + XML_OPS * 2}[fmt]
    content = data.draw(mutated(base.files[f"codebook.{fmt}"], ops), label="file")
    run_import(base, f"codebook.{fmt}", content,
               lambda study, path: ["codebook", "import", study, path])


@FUZZ
@given(data=st.data())
def test_codings(base, data):
    content = data.draw(mutated(base.files["codings.csv"], TEXT_OPS + CSV_OPS * 2), label="file")
    run_import(base, "codings.csv", content,
               lambda study, path: ["codes", "import", study, path, "--coder", "dave"])


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@FUZZ
@given(data=st.data())
def test_review_sheet(base, fmt, data):
    ops = TEXT_OPS + CSV_OPS * 3 if fmt == "csv" else XLSX_ZIP_OPS + [xlsx_cells] * 6
    content = data.draw(mutated(base.files[f"sheet.{fmt}"], ops), label="file")
    run_import(base, f"sheet.{fmt}", content,
               lambda study, path: ["review", "import", study, path, "--coder", "carol"])


@pytest.mark.parametrize("ops", ["everything", "metadata"])
@FUZZ
@given(data=st.data())
def test_import_project(base, ops, data):
    ops = QDPX_OPS if ops == "everything" else QDPX_METADATA_OPS
    content = data.draw(mutated(base.files["project.qdpx"], ops), label="file")
    unit = data.draw(st.sampled_from(["turn", "paragraph", "sentence"]), label="unit")
    with tempfile.TemporaryDirectory() as tmp:
        qdpx, new = Path(tmp) / "project.qdpx", Path(tmp) / "new.db"
        qdpx.write_bytes(content)
        note(f"project.qdpx: {len(content)} bytes")
        result = invoke("import-project", new, qdpx, "--unit", unit)
        check(result, qdpx)
        if result.exit_code != 0:
            # a failed import leaves nothing behind: no study, no temporary or -wal file
            assert sorted(p.name for p in Path(tmp).iterdir()) == ["project.qdpx"]
        else:
            assert dump(new)
