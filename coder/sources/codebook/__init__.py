"""Codebook files: one reader per format (YAML/JSON here, `csv_format`, `qdc_format` for
REFI-QDA), all checked by `tree.from_dict`, and `load` choosing by the file's suffix. What they
produce is the stored model, `coder.store.codebook`.
"""

from __future__ import annotations

from pathlib import Path

from coder.errors import CodebookError
from coder.sources.codebook.csv_format import load_csv
from coder.sources.codebook.qdc_format import read_codebook
from coder.sources.codebook.tree import from_dict
from coder.sources.codebook.yaml_format import load_yaml
from coder.store.codebook import Codebook


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
        data = load_yaml(text, path)
        try:
            return from_dict(data, path)
        except RecursionError:
            raise CodebookError("the codes are nested too deeply to read", path=path) from None
    if suffix == ".csv":
        return load_csv(text, path)
    if suffix == ".qdc":
        return read_codebook(path)
    raise CodebookError(f"unknown codebook format '{suffix}'",
                        path=path, hint="use .yaml, .csv or .qdc")
