"""The bundled demo study data is consistent with the seed codebook (no importer needed)."""

import csv
from pathlib import Path

from coder.sources.codebook import load

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "coder" / "demo_data"


def rows(name):
    with open(DEMO / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_ten_transcripts_in_three_formats():
    files = sorted(p.name for p in DEMO.iterdir() if p.suffix in (".txt", ".docx", ".vtt"))
    assert files == ["p01.txt", "p02.txt", "p03.docx", "p04.txt", "p05.vtt", "p06.txt",
                     "p07.docx", "p08.txt", "p09.vtt", "p10.txt"]
    assert (DEMO / "p05.vtt").read_text(encoding="utf-8").startswith("WEBVTT")
    assert (DEMO / "p03.docx").read_bytes()[:2] == b"PK"


def test_participants_csv_covers_the_five_groups():
    parts = rows("participants.csv")
    assert list(parts[0]) == ["participant", "document", "speaker", "group", "gender", "age_band"]
    assert [p["participant"] for p in parts] == [f"P{i:02d}" for i in range(1, 11)]
    groups = sorted(p["group"] for p in parts)
    assert groups == sorted(["academic", "policymaker", "agency", "chamber",
                             "research institute"] * 2)


def test_decisions_use_codes_of_the_seed_codebook():
    book = load(ROOT / "codebook" / "sme_internationalization.yaml")
    leaves = {c.id for c in book.leaves()}
    decisions = rows("decisions.csv")
    assert list(decisions[0]) == ["document", "segment", "code", "coder", "decision"]
    assert {d["coder"] for d in decisions} == {"alice", "bob"}
    assert {d["document"] for d in decisions} == {f"p{i:02d}" for i in range(1, 11)}
    for d in decisions:
        assert d["decision"] in ("confirmed", "rejected", "no_code")
        assert int(d["segment"]) >= 1
        assert (d["code"] == "") == (d["decision"] == "no_code")
        assert d["code"] == "" or d["code"] in leaves
    keys = [(d["document"], d["segment"], d["code"], d["coder"]) for d in decisions]
    assert len(keys) == len(set(keys))


def test_memos_are_on_segments_the_demo_coders_decided():
    decided = {(d["document"], d["segment"], d["coder"]) for d in rows("decisions.csv")}
    memos = rows("memos.csv")
    assert list(memos[0]) == ["document", "segment", "coder", "memo"]
    assert len(memos) == 4
    for m in memos:
        assert (m["document"], m["segment"], m["coder"]) in decided, m
        assert m["memo"].strip()
