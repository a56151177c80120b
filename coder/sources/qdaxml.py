"""REFI-QDA 1.0 XML as both directions need it: namespaces, GUIDs, safe parsing (no entities,
no network), code trees, and -- read only -- the private line older coder exports wrote.

Earlier coder exports put what REFI-QDA has no element for into one machine-readable line at the end
of an element's ``Description``::

    coder: {"decision": "rejected", "coder": "alice", "code": "networking", ...}

Other tools showed that line as text, so coder no longer writes it: its exports keep such data in
``coder/coder-data.json`` inside the .qdpx (`coder.exchange.private`). `split_description` still
reads the line, so projects exported by older versions import as before.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lxml import etree

from coder.errors import CodebookError, InputError
from coder.store.codebook import EXCHANGE_NAMESPACE, exchange_guid

CODEBOOK_NS = "urn:QDA-XML:codebook:1.0"
PROJECT_NS = "urn:QDA-XML:project:1.0"
LINE_PREFIX = "coder: "
MACHINE = "machine"
DECISIONS = ("confirmed", "added", "rejected", "no_code", "auto")  # what a coding in a project may say
NAMESPACE = EXCHANGE_NAMESPACE   # coder/store/codebook.py: the store recognises its GUIDs
COLOR_RE = re.compile(r"^#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")
GUID_RE = re.compile(r"^\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{12}\}?$")


class RefiError(InputError):
    """A REFI-QDA file that cannot be read: not a zip, bad XML, dangling references, ..."""


guid = exchange_guid   # a stable GUID from study-stable keys (never from row ids or clocks)


def code_guid(code_id: str) -> str:
    """A code imported from another tool keeps its GUID (it is its id); others get uuid5."""
    if GUID_RE.match(code_id):
        return code_id.strip("{}").lower()
    return guid("code", code_id)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: object) -> str:
    """Text as XML 1.0 allows it (control characters dropped; the coder line keeps them)."""
    return _NOT_XML.sub("", str(text))


def coder_line(data: dict[str, Any]) -> str:
    return LINE_PREFIX + json.dumps(data, ensure_ascii=False, sort_keys=True)


def split_description(text: str | None) -> tuple[str, dict[str, Any] | None]:
    """Split a Description into its human text and its coder line (None when there is none)."""
    text = (text or "").strip()
    if not text:
        return "", None
    head, _, last = text.rpartition("\n")
    if last.startswith(LINE_PREFIX):
        try:
            data = json.loads(last[len(LINE_PREFIX):])
        except ValueError:
            return text, None
        if isinstance(data, dict):
            return head.strip(), data
    return text, None


def _parse_xml(data: bytes, where: str, path: Path, error=RefiError) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=False)
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        line = e.lineno if getattr(e, "lineno", None) else None
        msg = re.sub(r", line \d+, column \d+$", "", e.msg or "")
        raise error(f"{where}: XML is not well-formed: {msg}", path=path, line=line) from None


def _code_nodes(parent: etree._Element, ns: str, path: Path, where: str,
                warnings: list[str]) -> list[dict[str, Any]]:
    nodes = []
    for el in parent.findall(f"{{{ns}}}Code"):
        code_guid_ = el.get("guid")
        name = (el.get("name") or "").strip()
        if not code_guid_ or not name:
            raise CodebookError(f"{where}: <Code> at line {el.sourceline} has no "
                                f"{'guid' if not code_guid_ else 'name'}", path=path)
        # a '/' stays in the name (a path writes it '\/'); the GUID is kept as written
        text, extra = split_description(el.findtext(f"{{{ns}}}Description"))
        node: dict[str, Any] = {"name": name, "guid": code_guid_.strip()}
        if (el.get("isCodable") or "").strip().lower() in ("false", "0"):
            node["codable"] = False
        color = (el.get("color") or "").strip()
        if color:
            if COLOR_RE.match(color):
                node["color"] = color
            else:
                warnings.append(f"code '{name}': colour '{color}' is not '#RRGGBB'; not kept")
        if extra:
            for key in ("id", "description", "include", "exclude", "items", "examples",
                        "speakers"):
                if extra.get(key):
                    node[key] = extra[key]
        else:
            if text:
                node["description"] = text
        if not node.get("id"):
            node["id"] = guid_key(node["guid"])  # no better id: the GUID keeps it stable
        kids = _code_nodes(el, ns, path, where, warnings)
        if kids:
            node["codes"] = kids
        nodes.append(node)
    return nodes


def guid_key(value: str) -> str:
    """A GUID as references compare it: braces and case do not matter (NVivo writes
    '{0A1B...}', others '0a1b...'); the stored GUID stays as written."""
    return value.strip().strip("{}").lower()


def _strip_guids(nodes: list[dict[str, Any]]) -> dict[str, str]:
    """Remove the 'guid' keys (not a codebook key) and return guid (as written) -> code id."""
    out: dict[str, str] = {}
    for n in nodes:
        out[n.pop("guid")] = n["id"]
        out.update(_strip_guids(n.get("codes", [])))
    return out
