"""Text positions between a source's text as another tool wrote it and the text coder stores."""

from __future__ import annotations

import bisect
from dataclasses import dataclass


def _offset_map(source: str, stored: str):
    """Map offsets into the project's text onto the stored document text (identical unless the
    segmenter normalised it, e.g. CRLF to LF)."""
    if source == stored:
        return lambda i: i
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


# -- which unit another tool counted positions in ----------------------------------------------
# REFI-QDA counts a selection's positions in Unicode code points (what Python indexes). NVivo for
# Windows counts UTF-16 code units: every character outside the Basic Multilingual Plane (most
# emoji) counts two, so its positions drift one further after each such character. The two
# readings agree on a text without such characters.
READINGS = ("auto", "codepoints", "utf16")


@dataclass(frozen=True)
class OffsetReading:
    """How one source's positions were read, and why (for the import report)."""

    reading: str          # "codepoints" or "utf16"
    reason: str
    decided: bool = True  # False: the selections could not tell (the project's choice applies)


def outside_bmp(text: str) -> int:
    """Characters that UTF-16 writes as two code units."""
    return sum(1 for ch in text if ord(ch) > 0xFFFF)


def utf16_positions(text: str) -> list[int]:
    """For each code point position k (0..len), the UTF-16 position of the same place."""
    out, u = [0], 0
    for ch in text:
        u += 2 if ord(ch) > 0xFFFF else 1
        out.append(u)
    return out


def from_utf16(positions: list[int], u: int) -> int | None:
    """The code point position of UTF-16 position ``u``; None inside a surrogate pair or past
    the end."""
    k = bisect.bisect_left(positions, u)
    return k if k < len(positions) and positions[k] == u else None


def _on_boundary(text: str, i: int) -> bool:
    """A selection's edge between words (or at an edge of the text), not inside a word."""
    if i <= 0 or i >= len(text):
        return True
    return not (text[i - 1].isalnum() and text[i].isalnum())


def _evidence(text: str, spans: list[tuple[int, int, str | None]], convert):
    """(positions that cannot be, edges on word boundaries, names matching) under one reading."""
    bad = edges = names = 0
    for start, end, name in spans:
        a, b = convert(start), convert(end)
        if a is None or b is None or not 0 <= a <= b <= len(text):
            bad += 1
            continue
        edges += _on_boundary(text, a) + _on_boundary(text, b)
        if name and text[a:b].strip() == name.strip():
            names += 1
    return bad, edges, names


def converter(text: str, unit: str = "codepoints", ends: str = "two"):
    """A function from a position as a project wrote it to a code point position in ``text``
    (the source's text as written), None where it cannot be: ``unit`` codepoints or utf16,
    ``ends`` "two" (a CR LF counts two, the text as written) or "one" (ATLAS.ti)."""
    base = text.replace("\r\n", "\n") if ends == "one" else text
    units = utf16_positions(base) if unit == "utf16" else None
    table = lf_to_raw(text) if ends == "one" else None

    def convert(p: int | None) -> int | None:
        if p is not None and units is not None:
            p = from_utf16(units, p)
        if p is not None and table is not None:
            p = table[p] if 0 <= p < len(table) else None
        return p

    return convert


def _compare(text: str, spans, a, b, names: tuple[str, str], what: str, label):
    """Decide between two readings (converters ``a``, ``b``) on the selections they tell
    apart: positions impossible under one; names matching under one; edges between words by a
    clear margin (at least two edges and a quarter of them: one selection cut mid-word on
    purpose must not flip a source). Returns (the better name or None, the detail)."""
    telling = [s for s in spans if (a(s[0]), a(s[1])) != (b(s[0]), b(s[1]))]
    if not telling:
        return None, f"no selection {what}"
    ea, eb = _evidence(text, telling, a), _evidence(text, telling, b)
    n = len(telling)

    def said(ev) -> str:
        return (f"{ev[1]} of {2 * n} edges between words"
                + (f", {ev[2]} names matching" if ev[2] else "")
                + (f", {ev[0]} impossible" if ev[0] else ""))

    detail = f"{n} selections {what}: {label(names[0])} {said(ea)}; {label(names[1])} {said(eb)}"
    if ea[0] != eb[0]:
        return (names[0] if ea[0] < eb[0] else names[1]), detail
    if ea[2] != eb[2]:
        return (names[0] if ea[2] > eb[2] else names[1]), detail
    if abs(ea[1] - eb[1]) >= max(2, n // 2):
        return (names[0] if ea[1] > eb[1] else names[1]), detail
    return None, detail + " (too close to tell)"


def choose_reading(text: str, spans: list[tuple[int, int, str | None]],
                   asked: str = "auto", *, ends: str = "two") -> OffsetReading:
    """Which unit a source's selection positions count: code points (the standard) or UTF-16
    code units (NVivo for Windows). ``spans`` are (start, end, the selection's name or None)
    as the project wrote them; ``ends`` how they count a CR LF (`choose_line_ends`). ``auto``
    compares the two readings on the selections they tell apart (`_compare`: impossible
    positions, then selection names -- QualCoder writes the selected text there --, then edges
    between words by a clear margin); otherwise it is undecided."""
    if asked not in READINGS:
        raise ValueError(f"unknown offsets reading {asked!r}")
    wide = outside_bmp(text)
    if asked != "auto":
        why = f"as asked (--offsets {asked})"
        return OffsetReading(asked, why if wide else why + "; the same here: no characters "
                             "outside the BMP")
    if not wide:
        return OffsetReading("codepoints", "no characters outside the BMP: both readings agree")
    better, detail = _compare(
        text, spans, converter(text, "codepoints", ends), converter(text, "utf16", ends),
        ("codepoints", "utf16"), "after a character outside the BMP",
        lambda r: "code points" if r == "codepoints" else "UTF-16")
    if better is None:
        if detail.startswith("no selection"):
            detail = f"{wide} characters outside the BMP but no selection after the first of them"
        return OffsetReading("codepoints", detail, decided=False)
    return OffsetReading(better, detail)


# -- how another tool counted a Windows line end -----------------------------------------------
# A source's text file may end its lines with CR LF. NVivo counts the two characters (its
# positions index the file's text as written); ATLAS.ti counts a line end as one character (its
# positions index the text with CR LF read as LF), so its positions fall one character short
# per line before them. QualCoder's importer knows the same two behaviours.


def crlf_count(text: str) -> int:
    return text.count("\r\n")


def lf_to_raw(text: str) -> list[int]:
    """For each position q (0..len) of the text with CR LF read as LF, the position of the same
    place in the text as written."""
    out, raw, i = [], 0, 0
    while i < len(text):
        out.append(raw)
        step = 2 if text.startswith("\r\n", i) else 1
        raw += step
        i += step
    out.append(raw)
    return out


def choose_line_ends(text: str, spans: list[tuple[int, int, str | None]], *,
                     unit: str = "codepoints") -> OffsetReading:
    """Whether a source's positions count a CR LF line end as two characters (the text as
    written: NVivo) or one (ATLAS.ti), ``unit`` being how they count characters. Decided as
    `choose_reading` decides, on the selections the two readings tell apart; undecided: two.
    ``reading`` is "two" or "one"."""
    if not crlf_count(text):
        return OffsetReading("two", "no CR LF line ends")
    better, detail = _compare(
        text, spans, converter(text, unit, "two"), converter(text, unit, "one"), ("two", "one"),
        "after a CR LF", lambda r: f"as {r} character{'s' if r == 'two' else ''}")
    if better is None:
        if detail.startswith("no selection"):
            detail = "no selection after a CR LF line end"
        return OffsetReading("two", detail, decided=False)
    return OffsetReading(better, detail)


def choose_readings(text: str, spans: list[tuple[int, int, str | None]], asked: str = "auto",
                    *, line_ends: bool = True) -> tuple[OffsetReading, OffsetReading]:
    """Both readings of a source's positions, decided together (an emoji and a CR LF shift
    positions alike, so each is judged under the other's best reading): the unit
    (`choose_reading`) and the line ends (`choose_line_ends`; "two" unless ``line_ends``)."""
    if not line_ends or not crlf_count(text):
        why = "no CR LF line ends" if not crlf_count(text) else "coder's own export"
        return choose_reading(text, spans, asked), OffsetReading("two", why)
    units = ["codepoints", "utf16"] if asked == "auto" and outside_bmp(text) else \
        ["utf16" if asked == "utf16" else "codepoints"]
    best = max(((u, e) for u in units for e in ("two", "one")),
               key=lambda ue: (lambda ev: (-ev[0], ev[2], ev[1], ue == ("codepoints", "two")))(
                   _evidence(text, spans, converter(text, *ue))))
    unit = choose_reading(text, spans, asked, ends=best[1])
    return unit, choose_line_ends(text, spans, unit=unit.reading)
