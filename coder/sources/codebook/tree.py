"""A parsed codebook tree (from YAML, CSV or .qdc) checked and flattened into codes in
pre-order: every reader ends here, so every format gets the same rules and messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coder.errors import CodebookError
from coder.store.codebook import CODE_KEYS, Code, Codebook

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
