"""YAML (and JSON) codebooks, read with a safe loader that also refuses what a codebook never
needs and a hostile file uses: anchors and aliases (the "billion laughs" expansion and
self-referencing trees) and nesting deeper than any codebook (a parser stack bomb)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from coder.errors import CodebookError

MAX_DEPTH = 64  # YAML nesting; a factor -> group -> category -> item tree needs about 12

_PLAIN = {
    "mapping values are not allowed here":
        "a ':' where YAML does not expect one (put text that contains ': ' in quotes)",
    "could not find expected ':'":
        "a line that is neither 'key: value' nor '- item' (check the indentation)",
    "found character '\\t' that cannot start any token":
        "a tab character; YAML indents with spaces only",
    "found a tab character that violates indentation":
        "a tab character; YAML indents with spaces only",
    "expected <block end>, but found '<block mapping start>'":
        "this line is indented differently from the lines above it",
    "expected <block end>, but found '-'":
        "a '- item' indented differently from the items above it",
    "found unexpected end of stream":
        "the file ends inside a quoted text or a bracket (a quote or bracket is not closed)",
}


class _CodebookLoader(yaml.SafeLoader):
    """SafeLoader without aliases and with a nesting limit."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused("an alias (*%s): codebooks cannot use YAML anchors and aliases; "
                           "write the text out" % event.anchor, event.start_mark)
        if self.check_event(yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent):
            event = self.peek_event()
            if getattr(event, "anchor", None):
                raise _Refused("an anchor (&%s): codebooks cannot use YAML anchors and aliases; "
                               "write the text out" % event.anchor, event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep; a codebook never is",
                               self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# dates and times stay the text they were written as (a name "2024-02-30" is a name, not a
# date that does not exist)
_CodebookLoader.add_constructor("tag:yaml.org,2002:timestamp",
                                lambda loader, node: loader.construct_scalar(node))


class _Refused(Exception):
    def __init__(self, message: str, mark) -> None:
        super().__init__(message)
        self.mark = mark


def load_yaml(text: str, path: Path) -> Any:
    """The parsed YAML document; every problem is one CodebookError with its line."""
    try:
        return yaml.load(text, Loader=_CodebookLoader)  # noqa: S506 (a SafeLoader subclass)
    except _Refused as e:
        raise CodebookError(f"{e} (column {e.mark.column + 1})", path=path,
                            line=e.mark.line + 1) from None
    except RecursionError:
        raise CodebookError(f"nested too deeply to read (the limit is {MAX_DEPTH} levels)",
                            path=path) from None
    except (TypeError, ValueError, AttributeError, OverflowError) as e:
        # a value PyYAML's constructors cannot build (e.g. an unhashable mapping key)
        raise CodebookError(f"not valid YAML for a codebook ({e})", path=path) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = (getattr(e, "problem", None) or "").strip()
        plain = next((v for k, v in _PLAIN.items() if problem.startswith(k)), None)
        what = plain or (f"not valid YAML ({problem})" if problem else "not valid YAML")
        if mark is None:
            raise CodebookError(f"bad YAML: {what}", path=path) from None
        raise CodebookError(f"bad YAML (column {mark.column + 1}): {what}", path=path,
                            line=mark.line + 1) from None
