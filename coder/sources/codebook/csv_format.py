"""CSV codebooks: one row per code, its path ("Factor/Category") required, parents implied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coder.errors import CodebookError
from coder.sources.codebook.tree import from_dict
from coder.spreadsheet import CsvReader, cell_text
from coder.store.codebook import Codebook, escape_name, parent_path, split_path


def load_csv(text: str, path: Path) -> Codebook:
    """One row per code: path (required), optional id, description, include, exclude,
    items/examples/speakers separated by ';'. Parents may be implied by the paths."""
    reader = CsvReader(text, path, error=CodebookError)
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "path" not in fields and "name" not in fields:
        raise CodebookError("a CSV codebook needs a 'path' column ('Factor/Category')", path=path)
    allowed = {"id", "path", "name", "level", "description", "include", "exclude", "items",
               "examples", "speakers", "color", "codable"}
    bad = [f for f in fields if f not in allowed]
    if bad:
        raise CodebookError(f"unknown column '{bad[0]}'", path=path,
                            hint="allowed: " + ", ".join(sorted(allowed)))
    root: dict[str, Any] = {"name": path.stem, "codes": []}
    index: dict[str, dict[str, Any]] = {}

    def node_for(code_path: str) -> dict[str, Any]:
        if code_path in index:
            return index[code_path]
        above, name = parent_path(code_path), split_path(code_path)[-1]
        siblings = node_for(above).setdefault("codes", []) if above else root["codes"]
        node: dict[str, Any] = {"name": name}
        siblings.append(node)
        index[code_path] = node
        return node

    for lineno, row in enumerate(reader, 2):
        row = {(k or "").strip().lower(): cell_text(v) for k, v in row.items()}
        # a '/' inside a name is written '\/' in the path column
        names = [p.strip() for p in split_path(row.get("path") or row.get("name") or "")]
        code_path = "/".join(escape_name(n) for n in names)
        if not code_path or any(not n for n in names):
            raise CodebookError("row without a code path", path=path, line=lineno)
        if code_path in index and index[code_path].get("_row"):
            raise CodebookError(f"duplicate code '{code_path}'", path=path, line=lineno)
        node = node_for(code_path)
        node["_row"] = True
        if row.get("id"):
            node["id"] = row["id"]
        for key in ("description", "include", "exclude", "color", "codable"):
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
