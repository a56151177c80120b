"""Convert the AnnoMI benchmark codebook (main scheme) into coder's codebook YAML.

    python evaluation/annomi_convert.py /work/shared/corpora/annomi-dev [out.yaml]

The corpus' codebook has its own layout (``schemes``, ``applies_to``); coder's has a code tree.
We keep the 7 main-scheme codes under two parents (Therapist, Client), keep the AnnoMI code
names as stable ids (``therapist:question`` ...), turn ``applies_to`` into ``speakers``, and
drop every example utterance that occurs in a ``dev`` document, so that codebook-only
suggestions are not scored on the very sentences they were given as examples.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import yaml

GROUPS = {"therapist": "Therapist", "client": "Client"}


def dev_texts(corpus: Path) -> set[str]:
    with open(corpus / "docs.csv", newline="", encoding="utf-8") as fh:
        dev = {r["doc_id"] for r in csv.DictReader(fh) if r["split"] == "dev"}
    with open(corpus / "codes.csv", newline="", encoding="utf-8") as fh:
        return {" ".join(r["text"].split()) for r in csv.DictReader(fh) if r["doc_id"] in dev}


def convert(corpus: str | Path) -> dict:
    corpus = Path(corpus)
    source = yaml.safe_load((corpus / "codebook.yaml").read_text(encoding="utf-8"))
    held_out = dev_texts(corpus)
    parents: dict[str, dict] = {}
    for code in source["codes"]:
        if code.get("scheme") != "main":
            continue
        group, _, leaf = code["name"].partition(":")
        parent = parents.setdefault(group, {"id": group, "name": GROUPS.get(group, group),
                                            "codes": []})
        examples = [e for e in code.get("examples") or []
                    if " ".join(str(e).split()) not in held_out]
        node = {"id": code["name"], "name": leaf.replace("_", " "),
                "description": " ".join(str(code.get("description", "")).split()),
                "speakers": [code["applies_to"]]}
        if examples:
            node["examples"] = examples
        parent["codes"].append(node)
    return {"name": "AnnoMI main scheme (converted)",
            "description": "Motivational-interviewing behaviour codes from AnnoMI (Wu et al. 2022, "
                           "2023); dev-set examples removed.",
            "codes": list(parents.values())}


def write(corpus: str | Path, out: str | Path) -> Path:
    out = Path(out)
    out.write_text(yaml.safe_dump(convert(corpus), sort_keys=False, allow_unicode=True, width=100),
                   encoding="utf-8")
    return out


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: annomi_convert.py CORPUS_DIR [OUT.yaml]")
    target = sys.argv[2] if len(sys.argv) > 2 else Path(__file__).with_name("annomi_codebook.yaml")
    print(write(sys.argv[1], target))
