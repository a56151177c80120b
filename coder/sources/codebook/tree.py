"""A parsed codebook tree (from YAML, CSV or .qdc) checked and flattened into codes in
pre-order: every reader ends here, so every format gets the same rules and messages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from coder.errors import CodebookError
from coder.store.codebook import CODE_KEYS, Code, Codebook, escape_name

COLOR_RE = re.compile(r"^#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")

TOP_KEYS = {"name", "description", "codes", "version", "source"}


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
        raise CodebookError(f"unknown key '{sorted(map(str, unknown))[0]}' at the top level", path=path,
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
                raise CodebookError(f"{here}: unknown key '{sorted(map(str, bad))[0]}'", path=path,
                                    hint="allowed: " + ", ".join(sorted(CODE_KEYS)))
            name = node.get("name")
            if not isinstance(name, str) or not name.strip():
                raise CodebookError(f"{here}: code without a name", path=path)
            name = " ".join(name.split())
            if name.lower() in siblings:
                raise CodebookError(
                    f"duplicate code name '{name}' under '{parent.path if parent else 'top level'}'",
                    path=path, hint="sibling codes need different names")
            siblings.add(name.lower())
            # a '/' in a name is kept; in the path it is written '\/' ('/' separates levels)
            code_path = f"{parent.path}/{escape_name(name)}" if parent else escape_name(name)
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
                leads_to=_as_list(node.get("leads_to"), here + "/leads_to", path),
                color=_color(node.get("color"), here, path),
                codable=_codable(node.get("codable", True), here, path),
            )
            if code.leads_to and parent is not None:
                raise CodebookError(f"{here}: leads_to is for factors (top-level codes) only",
                                    path=path, hint="move it to the factor this code is under")
            if code_id:
                seen_ids.add(code_id)
            codes.append(code)
            if node.get("codes"):
                walk(node["codes"], code, code_path)

    walk(data["codes"], None, "")
    _resolve_leads_to(codes, path)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CodebookError("the codebook has no 'name'", path=path)
    return Codebook(name=name.strip(), description=str(data.get("description") or "").strip(),
                    codes=codes)


def _color(value: Any, where: str, path: Path) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not COLOR_RE.match(value.strip()):
        raise CodebookError(f"{where}: color {value!r} is not '#RRGGBB'", path=path,
                            hint="write a colour as a hex triple, e.g. '#1f77b4'")
    return value.strip()


def _codable(value: Any, where: str, path: Path) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no"):
        return value.strip().lower() in ("true", "yes")
    raise CodebookError(f"{where}: codable must be true or false, not {value!r}", path=path,
                        hint="codable: false marks a category that only groups codes")


def _resolve_leads_to(codes: list[Code], path: Path) -> None:
    """Each leads_to target must be another factor, named by id, name or path; it is kept as
    the target's id (or its path until ids are assigned)."""
    factors = [c for c in codes if c.depth == 1]
    for i, code in enumerate(factors, 1):
        targets = []
        for ref in code.leads_to:
            wanted = " ".join(ref.split()).lower()
            hit = next((f for f in factors if f.id and f.id.lower() == wanted), None) or next(
                (f for f in factors if f.name.lower() == wanted), None)
            if hit is None:
                raise CodebookError(
                    f"codes[{i}] '{code.name}': leads_to '{ref}' is not a factor of this "
                    "codebook", path=path,
                    hint="name a top-level code by its id or name: "
                         + ", ".join(f.id or f.name for f in factors))
            if hit is code:
                raise CodebookError(f"codes[{i}] '{code.name}': a factor cannot lead to itself",
                                    path=path)
            targets.append(hit.id or hit.path)
        code.leads_to = list(dict.fromkeys(targets))
