"""The codebook as a study stores it: a tree of codes (factor -> category -> ...) flattened in
pre-order, kept as numbered versions. Code ids are stable across versions, so a rename never
orphans codings (`assign_ids`). Reading codebook files is `coder.sources.codebook`."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from coder.errors import UnknownReference
from coder.spreadsheet import neutralise_row

CODE_KEYS = {"id", "name", "description", "include", "exclude", "examples", "items", "speakers",
             "codes", "color"}


@dataclass
class Code:
    id: str
    name: str
    path: str
    parent_id: str | None = None
    depth: int = 1
    position: int = 0
    description: str = ""
    include: str = ""
    exclude: str = ""
    items: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    speakers: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """Everything a code says about itself: what zero-shot suggestion embeds."""
        parts = [self.name, self.description, self.include, *self.items, *self.examples]
        return ". ".join(p for p in parts if p)


@dataclass
class Codebook:
    name: str
    codes: list[Code]
    description: str = ""
    version: int | None = None

    def __post_init__(self) -> None:
        self._by_id = {c.id: c for c in self.codes}

    def __iter__(self):
        return iter(self.codes)

    def __len__(self) -> int:
        return len(self.codes)

    def get(self, code_id: str) -> Code:
        return self._by_id[code_id]

    def children(self, code_id: str | None) -> list[Code]:
        return [c for c in self.codes if c.parent_id == code_id]

    def descendants(self, code_id: str) -> list[Code]:
        """The code's subtree below it, in codebook order."""
        prefix = self.get(code_id).path + "/"
        return [c for c in self.codes if c.path.startswith(prefix)]

    def leaves(self) -> list[Code]:
        parents = {c.parent_id for c in self.codes}
        return [c for c in self.codes if c.id not in parents]

    def resolve(self, ref: str) -> Code:
        """A code by id, by path ('Factor/Category') or by a name unique in the codebook."""
        ref = str(ref).strip()
        if ref in self._by_id:
            return self._by_id[ref]
        for c in self.codes:
            if c.path == ref or c.path.lower() == ref.lower():
                return c
        named = [c for c in self.codes if c.name.lower() == ref.lower()]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            raise UnknownReference(
                f"code name '{ref}' is ambiguous",
                hint="use its path: " + " or ".join(c.path for c in named),
            )
        raise UnknownReference(f"unknown code '{ref}'", hint="see: coder codebook show STUDY")

    def match(self, pattern: str) -> list[Code]:
        """Codes selected by a path pattern such as 'Networking/*' (a code and its subtree)."""
        pattern = pattern.strip()
        if pattern.endswith("/*"):
            root = self.resolve(pattern[:-2])
            return [root, *self.descendants(root.id)]
        return [self.resolve(pattern)]

    def to_dict(self) -> dict[str, Any]:
        def node(c: Code) -> dict[str, Any]:
            d: dict[str, Any] = {"id": c.id, "name": c.name}
            for key in ("description", "include", "exclude"):
                if getattr(c, key):
                    d[key] = getattr(c, key)
            for key in ("items", "examples", "speakers"):
                if getattr(c, key):
                    d[key] = list(getattr(c, key))
            kids = self.children(c.id)
            if kids:
                d["codes"] = [node(k) for k in kids]
            return d

        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["codes"] = [node(c) for c in self.children(None)]
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["id", "path", "name", "level", "description", "include", "exclude", "items",
                    "examples", "speakers"])
        for c in self.codes:
            w.writerow(neutralise_row([
                c.id, c.path, c.name, c.depth, c.description, c.include, c.exclude,
                "; ".join(c.items), "; ".join(c.examples), "; ".join(c.speakers)]))
        return buf.getvalue()

    def canonical_json(self) -> str:
        return json.dumps([asdict(c) for c in self.codes], sort_keys=True, ensure_ascii=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()


def slugify(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "code"


def assign_ids(book: Codebook, previous: Codebook | None) -> Codebook:
    """Give every code a stable id: its own, else the previous version's code with the same
    path (or the same unique name: a moved code), else a new slug of its path."""
    prev_by_path = {c.path.lower(): c.id for c in previous.codes} if previous else {}
    prev_names: dict[str, list[str]] = {}
    if previous:
        for c in previous.codes:
            prev_names.setdefault(c.name.lower(), []).append(c.id)
    taken = {c.id for c in book.codes if c.id}
    mapping: dict[str, str] = {}
    for c in book.codes:
        if not c.id:
            candidate = prev_by_path.get(c.path.lower())
            if not candidate and len(prev_names.get(c.name.lower(), [])) == 1:
                candidate = prev_names[c.name.lower()][0]
            if not candidate or candidate in taken:
                base = slugify(c.path.replace("/", "--"))
                candidate, n = base, 2
                while candidate in taken:
                    candidate, n = f"{base}-{n}", n + 1
            c.id = candidate
            taken.add(c.id)
        mapping[c.path] = c.id
    for c in book.codes:
        parent_path = c.path.rpartition("/")[0]
        c.parent_id = mapping[parent_path] if parent_path else None
    book.__post_init__()
    return book
