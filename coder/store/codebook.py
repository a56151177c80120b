"""The codebook as a study stores it: a tree of codes (factor -> category -> ...) flattened in
pre-order, kept as numbered versions. Code ids are stable across versions, so a rename never
orphans codings (`assign_ids`). Reading codebook files is `coder.sources.codebook`."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from coder.errors import NotCodable, UnknownReference
from coder.spreadsheet import neutralise_row

CODE_KEYS = {"id", "name", "description", "include", "exclude", "examples", "items", "speakers",
             "codes", "color", "codable", "leads_to"}
PATH_SEP = "/"  # between levels of a code path; a '/' inside a name is written '\\/'


def escape_name(name: str) -> str:
    """A code name as one level of a path: 'family/ carers' -> 'family\\/ carers' (names
    may hold '/'; the path keeps '/' for its levels)."""
    return name.replace("\\", "\\\\").replace("/", "\\/")


def split_path(path: str) -> list[str]:
    """The names of a code path's levels, escapes undone: 'A/b\\/c' -> ['A', 'b/c']."""
    parts, cur, i = [], [], 0
    while i < len(path):
        ch = path[i]
        if ch == "\\" and path[i + 1:i + 2] in ("\\", PATH_SEP):
            cur.append(path[i + 1])
            i += 2
            continue
        if ch == PATH_SEP:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def path_levels(path: str) -> list[str]:
    """A code path cut at its separators, each level as written (escapes kept), so that
    '/'.join(levels[:k]) is the path of an ancestor."""
    levels, start, i = [], 0, 0
    while i < len(path):
        if path[i] == "\\" and path[i + 1:i + 2] in ("\\", PATH_SEP):
            i += 2
            continue
        if path[i] == PATH_SEP:
            levels.append(path[start:i])
            start = i + 1
        i += 1
    levels.append(path[start:])
    return levels


def parent_path(path: str) -> str:
    """The path above a code's ('' for a factor), as written (escapes kept)."""
    cut, i = -1, 0
    while i < len(path):
        if path[i] == "\\" and path[i + 1:i + 2] in ("\\", PATH_SEP):
            i += 2
            continue
        if path[i] == PATH_SEP:
            cut = i
        i += 1
    return path[:cut] if cut >= 0 else ""


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
    # factors only: the ids of the factors this one leads to (arrows in `coder model-figure`)
    leads_to: list[str] = field(default_factory=list)
    # '#RRGGBB' as the codebook or another tool gave it; None: coder picks one when it draws
    color: str | None = None
    # False: a category that only groups codes (REFI-QDA isCodable="false"); never decided,
    # never suggested
    codable: bool = True
    # the GUID another tool gave the code, verbatim; carried to the study's exchange_guids so
    # a re-export reuses it (not part of the codebook's content)
    guid: str | None = None

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
        """A code by id, by path ('Factor/Category', a '/' inside a name written '\\/') or by
        a name unique in the codebook."""
        ref = str(ref).strip()
        if ref in self._by_id:
            return self._by_id[ref]
        for c in self.codes:
            if c.path == ref or c.path.lower() == ref.lower():
                return c
        if "\\" in ref:   # an escaped path whose spacing differs: compare level by level
            wanted = [" ".join(n.split()).lower() for n in split_path(ref)]
            for c in self.codes:
                if [n.lower() for n in split_path(c.path)] == wanted:
                    return c
        # a path typed without escapes ('Care/family/ carers'), when only one code reads so
        plain = [c for c in self.codes if c.path != "/".join(split_path(c.path))
                 and "/".join(split_path(c.path)).lower() == ref.lower()]
        if len(plain) == 1:
            return plain[0]
        named = [c for c in self.codes if c.name.lower() == ref.lower()]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            raise UnknownReference(
                f"code name '{ref}' is ambiguous",
                hint="use its path: " + " or ".join(c.path for c in named),
            )
        raise UnknownReference(f"unknown code '{ref}'", hint="see: coder codebook show STUDY")

    def codable(self, ref: str) -> Code:
        """A code that may be decided: `resolve`, refusing a category that only groups codes."""
        code = self.resolve(ref)
        if not code.codable:
            below = [c.path for c in self.descendants(code.id) if c.codable][:3]
            raise NotCodable(
                f"code '{code.path}' is a category that only groups codes (not codable)",
                hint=("code one of the codes below it: " + ", ".join(below)) if below else
                     "mark it codable in the codebook (remove 'codable: false') to use it")
        return code

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
            for key in ("items", "examples", "speakers", "leads_to"):
                if getattr(c, key):
                    d[key] = list(getattr(c, key))
            if c.color:
                d["color"] = c.color
            if not c.codable:
                d["codable"] = False
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
        # leads_to, color and codable only where they differ from the default, so codebooks
        # without them keep their old hash; the GUID is where the code came from, not content
        defaults = {"leads_to": [], "color": None, "codable": True}
        codes = [{k: v for k, v in asdict(c).items()
                  if k != "guid" and (k not in defaults or v != defaults[k])}
                 for c in self.codes]
        return json.dumps(codes, sort_keys=True, ensure_ascii=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()


def slugify(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "code"


# REFI-QDA GUIDs coder gives its own things: uuid5 of study-stable keys (coder.sources.qdaxml)
EXCHANGE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://coder.invalid/refi-qda/1")


def exchange_guid(*parts: object) -> str:
    """A stable GUID from study-stable keys (never from row ids or clocks)."""
    return str(uuid.uuid5(EXCHANGE_NAMESPACE, "\x1f".join(str(p) for p in parts)))


def readable_description(code: Code) -> str:
    """What another tool shows as a code's description: coder's fields as plain lines."""
    parts = [code.description] if code.description else []
    if code.include:
        parts.append(f"Include: {code.include}")
    if code.exclude:
        parts.append(f"Exclude: {code.exclude}")
    if code.items:
        parts.append("Items: " + "; ".join(code.items))
    if code.examples:
        parts.append("Examples: " + " | ".join(code.examples))
    return "\n".join(parts)


def _recognise_exported(book: Codebook, previous: Codebook) -> None:
    """A codebook coder exported (.qdc) and a tool gave back: its codes carry the GUIDs coder
    gave the previous version's codes, so they get those ids again; where the description is
    still the one coder wrote, the fields it summed up come back exactly."""
    exported = {exchange_guid("code", p.id): p for p in previous.codes}
    for c in book.codes:
        prev = exported.get(c.id)
        if prev is None:
            continue
        c.id = prev.id
        if c.description == readable_description(prev) and not (c.include or c.exclude
                                                                or c.items or c.examples):
            c.description, c.include, c.exclude = prev.description, prev.include, prev.exclude
            c.items, c.examples = list(prev.items), list(prev.examples)
            c.speakers = c.speakers or list(prev.speakers)
            c.leads_to = c.leads_to or list(prev.leads_to)


def assign_ids(book: Codebook, previous: Codebook | None) -> Codebook:
    """Give every code a stable id: its own (or, for a GUID coder exported, the code it was
    exported from), else the previous version's code with the same path (or the same unique
    name: a moved code), else a new slug of its path."""
    if previous:
        _recognise_exported(book, previous)
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
                base = slugify("--".join(split_path(c.path)))
                candidate, n = base, 2
                while candidate in taken:
                    candidate, n = f"{base}-{n}", n + 1
            c.id = candidate
            taken.add(c.id)
        mapping[c.path] = c.id
    for c in book.codes:
        above = parent_path(c.path)
        c.parent_id = mapping[above] if above else None
        # a reader gives a leads_to target by id, or by path where the target had no id yet
        c.leads_to = [ref if ref in taken or ref not in mapping else mapping[ref]
                      for ref in c.leads_to]
    book.__post_init__()
    return book


# -- what changed between two versions ---------------------------------------------------------
CHANGE_KINDS = ("added", "removed", "renamed", "moved", "edited")
EDITABLE = ("description", "include", "exclude", "items", "examples", "speakers", "leads_to",
            "color", "codable")


@dataclass(frozen=True)
class CodeChange:
    """One code that differs between two versions, matched by id (what codings store)."""

    id: str
    kinds: tuple[str, ...]          # some of CHANGE_KINDS; renamed and moved can come together
    old_path: str | None            # None when added
    new_path: str | None            # None when removed
    fields: tuple[str, ...] = ()    # what an edited code changed: description, items, ...

    def line(self) -> str:
        what = ", ".join(self.kinds)
        if self.old_path is None:
            where = str(self.new_path)
        elif self.new_path is None or self.old_path == self.new_path:
            where = self.old_path
        else:
            where = f"{self.old_path} -> {self.new_path}"
        text = f"{what:<8} {where}  <{self.id}>"
        if self.fields:
            text += ": " + ", ".join(self.fields)
        return text


@dataclass
class CodebookDiff:
    """Codes added, removed, renamed, moved (new parent) or edited (description, items, ...)
    from one codebook version to another, by code id. Codings store the code id, so they follow
    a renamed or moved code; a removed code's codings count in no table while it is absent."""

    old_version: int | None
    new_version: int | None
    changes: list[CodeChange] = field(default_factory=list)

    def of(self, kind: str) -> list[CodeChange]:
        return [c for c in self.changes if kind in c.kinds]

    @property
    def removed(self) -> list[CodeChange]:
        return self.of("removed")

    def __bool__(self) -> bool:
        return bool(self.changes)

    def summary(self) -> str:
        """'1 added, 2 removed, 1 renamed' (every kind a code has counts once)."""
        counts = [f"{len(self.of(k))} {k}" for k in CHANGE_KINDS if self.of(k)]
        return ", ".join(counts) if counts else "no code added, removed, renamed, moved or edited"

    def lines(self) -> list[str]:
        return [c.line() for c in self.changes]

    def frame(self):
        """One row per changed code: id, change, old_path, new_path, fields."""
        import pandas as pd

        return pd.DataFrame(
            [{"id": c.id, "change": ", ".join(c.kinds), "old_path": c.old_path,
              "new_path": c.new_path, "fields": ", ".join(c.fields)} for c in self.changes],
            columns=["id", "change", "old_path", "new_path", "fields"])


def diff(old: Codebook | None, new: Codebook) -> CodebookDiff:
    """What changed from ``old`` to ``new``, code by code (by id). A pure function: the study's
    versions, a file not yet imported (after `assign_ids`) or two files can be compared."""
    before = {c.id: c for c in old.codes} if old is not None else {}
    after = {c.id: c for c in new.codes}
    changes: list[CodeChange] = []
    for c in new.codes:
        was = before.get(c.id)
        if was is None:
            changes.append(CodeChange(c.id, ("added",), None, c.path))
            continue
        kinds = []
        if was.name != c.name:
            kinds.append("renamed")
        if was.parent_id != c.parent_id:
            kinds.append("moved")
        fields = tuple(f for f in EDITABLE if getattr(was, f, None) != getattr(c, f, None))
        if fields:
            kinds.append("edited")
        if kinds:
            changes.append(CodeChange(c.id, tuple(kinds), was.path, c.path, fields))
    changes += [CodeChange(c.id, ("removed",), c.path, None)
                for c in (old.codes if old is not None else []) if c.id not in after]
    order = {k: i for i, k in enumerate(CHANGE_KINDS)}
    changes.sort(key=lambda ch: order[ch.kinds[0]])  # stable: codebook order within a kind
    return CodebookDiff(old.version if old is not None else None, new.version, changes)
