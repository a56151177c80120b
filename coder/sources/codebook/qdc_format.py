"""REFI-QDA codebooks (``.qdc``, XML in ``urn:QDA-XML:codebook:1.0``) as a codebook source.

coder's own code fields (id, include/exclude, items, examples, speakers) come back from the
``coder:`` line of each Code's Description (see `coder.sources.qdaxml`); ``isCodable`` and
``color`` from the Code's attributes; its GUID verbatim (``Code.guid``)."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from coder.errors import CodebookError
from coder.sources.codebook.tree import from_dict
from coder.sources.qdaxml import CODEBOOK_NS, _code_nodes, _parse_xml, _strip_guids
from coder.store.codebook import Codebook


def read_codebook(path: str | Path, *, warnings: list[str] | None = None) -> Codebook:
    """Read a REFI-QDA ``.qdc`` codebook. Its name is the file's stem (.qdc has no name)."""
    path = Path(path)
    warnings = warnings if warnings is not None else []
    if not path.exists():
        raise CodebookError("file not found", path=path)
    root = _parse_xml(path.read_bytes(), "codebook", path, error=CodebookError)
    if root.tag != f"{{{CODEBOOK_NS}}}CodeBook":
        raise CodebookError(f"root element is <{etree.QName(root).localname}> in namespace "
                            f"'{etree.QName(root).namespace or ''}'; expected <CodeBook> in "
                            f"'{CODEBOOK_NS}'", path=path,
                            hint="export the codebook from your tool as REFI-QDA (.qdc)")
    codes_el = root.find(f"{{{CODEBOOK_NS}}}Codes")
    if codes_el is None:
        raise CodebookError("<CodeBook> has no <Codes>", path=path)
    nodes = _code_nodes(codes_el, CODEBOOK_NS, path, "codebook", warnings)
    guids = _strip_guids(nodes)
    return with_guids(from_dict({"name": path.stem, "codes": nodes}, path), guids)


def with_guids(book: Codebook, guids: dict[str, str]) -> Codebook:
    """Give each code the GUID its tool wrote (verbatim, for the next export)."""
    by_id = {code_id: g for g, code_id in guids.items()}
    for code in book.codes:
        code.guid = by_id.get(code.id)
    return book
