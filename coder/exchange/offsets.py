"""Text positions between a source's text as another tool wrote it and the text coder stores."""

from __future__ import annotations


def _offset_map(source: str, stored: str):
    """Map offsets into the project's text onto the stored document text (identical unless the
    segmenter normalised it, e.g. CRLF to LF)."""
    if source == stored:
        return lambda i: i
    import bisect
    import difflib

    if source.replace("\r\n", "\n") == stored:
        crs = [i for i, ch in enumerate(source) if ch == "\r" and source[i + 1:i + 2] == "\n"]
        return lambda i: i - bisect.bisect_left(crs, i)
    blocks = difflib.SequenceMatcher(None, source, stored, autojunk=False).get_opcodes()
    starts = [b[1] for b in blocks]

    def where(i: int) -> int:
        k = max(bisect.bisect_right(starts, i) - 1, 0)
        tag, i1, i2, j1, j2 = blocks[k]
        return j1 + (i - i1) if tag == "equal" else (j1 if i == i1 else j2)

    return where
