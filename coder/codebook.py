"""Codebooks: a tree of codes (factor -> category -> ...), loaded from YAML or CSV, stored as
numbered versions. Code ids are stable across versions so renames never orphan codings.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import CodebookError, UnknownReference

CODE_KEYS = {"id", "name", "description", "include", "exclude", "examples", "items", "speakers",
             "codes", "color"}
TOP_KEYS = {"name", "description", "codes", "version", "source"}


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
            w.writerow([c.id, c.path, c.name, c.depth, c.description, c.include, c.exclude,
                        "; ".join(c.items), "; ".join(c.examples), "; ".join(c.speakers)])
        return buf.getvalue()

    def canonical_json(self) -> str:
        return json.dumps([asdict(c) for c in self.codes], sort_keys=True, ensure_ascii=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()


def slugify(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "code"


def _as_list(value: Any, where: str, path: Path) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    raise CodebookError(f"{where}: expected a list of texts", path=path)


def from_dict(data: Any, path: Path) -> Codebook:
    """Validate a parsed YAML/JSON codebook and flatten it into codes in pre-order."""
    if not isinstance(data, dict):
        raise CodebookError("a codebook must be a mapping with 'name' and 'codes'", path=path)
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise CodebookError(f"unknown key '{sorted(unknown)[0]}' at the top level", path=path,
                            hint="allowed: " + ", ".join(sorted(TOP_KEYS)))
    if not data.get("codes"):
        raise CodebookError("the codebook has no 'codes'", path=path)
    codes: list[Code] = []
    seen_ids: set[str] = set()

    def walk(nodes: Any, parent: Code | None, where: str) -> None:
        if not isinstance(nodes, list):
            raise CodebookError(f"{where}: 'codes' must be a list", path=path)
        siblings: set[str] = set()
        for i, node in enumerate(nodes, 1):
            here = f"{where}/codes[{i}]" if where else f"codes[{i}]"
            if not isinstance(node, dict):
                raise CodebookError(f"{here}: a code must be a mapping with a 'name'", path=path)
            bad = set(node) - CODE_KEYS
            if bad:
                raise CodebookError(f"{here}: unknown key '{sorted(bad)[0]}'", path=path,
                                    hint="allowed: " + ", ".join(sorted(CODE_KEYS)))
            name = node.get("name")
            if not isinstance(name, str) or not name.strip():
                raise CodebookError(f"{here}: code without a name", path=path)
            name = " ".join(name.split())
            if "/" in name:
                raise CodebookError(f"{here}: code name '{name}' contains '/'", path=path,
                                    hint="'/' separates levels in code paths")
            if name.lower() in siblings:
                raise CodebookError(
                    f"duplicate code name '{name}' under '{parent.path if parent else 'top level'}'",
                    path=path, hint="sibling codes need different names")
            siblings.add(name.lower())
            code_path = f"{parent.path}/{name}" if parent else name
            code_id = str(node["id"]).strip() if node.get("id") is not None else ""
            if code_id and code_id in seen_ids:
                raise CodebookError(f"{here}: duplicate code id '{code_id}'", path=path)
            code = Code(
                id=code_id, name=name, path=code_path,
                parent_id=parent.id if parent else None,
                depth=(parent.depth + 1) if parent else 1, position=len(codes),
                description=str(node.get("description") or "").strip(),
                include=str(node.get("include") or "").strip(),
                exclude=str(node.get("exclude") or "").strip(),
                items=_as_list(node.get("items"), here + "/items", path),
                examples=_as_list(node.get("examples"), here + "/examples", path),
                speakers=_as_list(node.get("speakers"), here + "/speakers", path),
            )
            if code_id:
                seen_ids.add(code_id)
            codes.append(code)
            if node.get("codes"):
                walk(node["codes"], code, code_path)

    walk(data["codes"], None, "")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CodebookError("the codebook has no 'name'", path=path)
    return Codebook(name=name.strip(), description=str(data.get("description") or "").strip(),
                    codes=codes)


def load(path: str | Path) -> Codebook:
    """Read a codebook file (.yaml/.yml/.json or .csv). Ids may still be empty (see assign_ids)."""
    path = Path(path)
    if not path.exists():
        raise CodebookError("file not found", path=path)
    suffix = path.suffix.lower()
    raw = path.read_bytes()
    if not raw.strip():
        raise CodebookError("the file is empty", path=path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CodebookError("not a UTF-8 text file", path=path,
                            hint="save the codebook as UTF-8") from None
    if suffix in (".yaml", ".yml", ".json"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(e, "problem", None) or "not valid YAML"
            raise CodebookError(f"bad YAML: {problem}", path=path, line=line) from None
        return from_dict(data, path)
    if suffix == ".csv":
        return _load_csv(text, path)
    if suffix == ".qdc":
        from . import refi  # REFI-QDA codebooks

        return refi.read_codebook(path)
    raise CodebookError(f"unknown codebook format '{suffix}'",
                        path=path, hint="use .yaml, .csv or .qdc")


def _load_csv(text: str, path: Path) -> Codebook:
    """One row per code: path (required), optional id, description, include, exclude,
    items/examples/speakers separated by ';'. Parents may be implied by the paths."""
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "path" not in fields and "name" not in fields:
        raise CodebookError("a CSV codebook needs a 'path' column ('Factor/Category')", path=path)
    allowed = {"id", "path", "name", "level", "description", "include", "exclude", "items",
               "examples", "speakers", "color"}
    bad = [f for f in fields if f not in allowed]
    if bad:
        raise CodebookError(f"unknown column '{bad[0]}'", path=path,
                            hint="allowed: " + ", ".join(sorted(allowed)))
    root: dict[str, Any] = {"name": path.stem, "codes": []}
    index: dict[str, dict[str, Any]] = {}

    def node_for(code_path: str) -> dict[str, Any]:
        if code_path in index:
            return index[code_path]
        parent_path, _, name = code_path.rpartition("/")
        siblings = node_for(parent_path).setdefault("codes", []) if parent_path else root["codes"]
        node: dict[str, Any] = {"name": name}
        siblings.append(node)
        index[code_path] = node
        return node

    for lineno, row in enumerate(reader, 2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        code_path = "/".join(p.strip() for p in (row.get("path") or row.get("name") or "").split("/"))
        if not code_path or any(not p for p in code_path.split("/")):
            raise CodebookError("row without a code path", path=path, line=lineno)
        if code_path in index and index[code_path].get("_row"):
            raise CodebookError(f"duplicate code '{code_path}'", path=path, line=lineno)
        node = node_for(code_path)
        node["_row"] = True
        if row.get("id"):
            node["id"] = row["id"]
        for key in ("description", "include", "exclude"):
            if row.get(key):
                node[key] = row[key]
        for key in ("items", "examples", "speakers"):
            if row.get(key):
                node[key] = [p.strip() for p in row[key].split(";") if p.strip()]

    def clean(nodes: list[dict[str, Any]]) -> None:
        for n in nodes:
            n.pop("_row", None)
            clean(n.get("codes", []))

    clean(root["codes"])
    if not root["codes"]:
        raise CodebookError("the codebook has no codes", path=path)
    return from_dict(root, path)


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
