"""The transcript page's coded spans: highlights, their stacking and the coding stripes.

Every visible coding (a span, or a whole segment) is cut into pieces at every span boundary, so
each piece of text knows the codings covering it; each coding gets a lane (the depth of its
underline), kept across all its pieces, so overlapping and nested spans stay apart. The page
draws this with Jinja (autoescaped) and our own stylesheet; transcript.js maps a selection back
to document offsets through each piece's ``data-start``.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Any

from coder.review import spans
from coder.store import POSITIVE

# a colour-blind-friendly palette (Tableau 10 and a few more) for codes without a colour
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#7f7f7f", "#1f77b4", "#bcbd22")
LANES = 6                  # underline depths drawn; deeper overlaps share the last one
RECENT = 6                 # recent codes offered first in the picker
_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})|[a-zA-Z]{3,20}")


def colours(book) -> dict[str, tuple[int, str]]:
    """Code id -> (class number, colour): the codebook's ``color`` when it is a plain CSS
    colour, the palette otherwise (by the code's place in the codebook)."""
    out = {}
    for i, code in enumerate(book.codes):
        given = getattr(code, "color", None)
        colour = given.strip() if isinstance(given, str) and _COLOUR.fullmatch(
            given.strip()) else PALETTE[i % len(PALETTE)]
        out[code.id] = (i, colour)
    return out


def stylesheet(book) -> str:
    """``.k<n> { --k: colour }`` for every code: colours reach the page as a stylesheet of our
    own, since the Content-Security-Policy refuses inline styles."""
    lines = [".kx { --k: #888; }"]   # a code no longer in the codebook
    lines += [f".k{i} {{ --k: {colour}; }}" for i, colour in colours(book).values()]
    return "\n".join(lines) + "\n"


@dataclass
class Mark:
    """One visible coding as the page draws it."""
    id: int
    code_id: str | None
    path: str
    coder: str
    decision: str
    memo: str
    start: int
    end: int
    whole: bool
    mine: bool
    k: int | None       # colour class; None: a code no longer in the codebook
    lane: int = 0
    text: str = ""


def assign_lanes(marks: list[Mark]) -> None:
    """Give each mark the lowest lane free over its whole extent (interval colouring), wider
    spans first, so a nested span sits inside the one around it."""
    ends: list[int] = []
    for m in sorted(marks, key=lambda m: (m.start, -m.end, m.id)):
        lane = next((i for i, e in enumerate(ends) if e <= m.start), len(ends))
        if lane == len(ends):
            ends.append(m.end)
        else:
            ends[lane] = m.end
        m.lane = min(lane, LANES - 1)


def pieces(text: str, start: int, end: int, marks: list[Mark]) -> list[dict[str, Any]]:
    """``text[start:end]`` cut at every boundary of the marks overlapping it; each piece with
    the marks covering it, outermost (deepest lane) first."""
    inside = [m for m in marks if m.start < end and m.end > start]
    cuts = sorted({start, end} | {m.start for m in inside if start < m.start < end}
                  | {m.end for m in inside if start < m.end < end})
    out = []
    for a, b in zip(cuts, cuts[1:]):
        over = sorted((m for m in inside if m.start <= a and m.end >= b),
                      key=lambda m: (-m.lane, m.id))
        out.append({"start": a, "end": b, "text": text[a:b], "marks": over,
                    "ids": " ".join(str(m.id) for m in over)})
    return out


def view(study, document: str | int, coder: str | None, *, blind: bool = False,
         want_coder: str = "", wanted: set[str] | None = None) -> dict[str, Any]:
    """What the transcript page shows: its segments cut into pieces, the stripes in the margin,
    the marks (for transcript.js) and this coder's recent codes. ``blind``: only the coder's own
    codings; ``want_coder``: only that coder's; ``wanted``: only segments a wanted code marks."""
    doc_id, name, text = spans.document_id(study, document)
    book = study.codebook()
    classes = colours(book)
    table = spans.document_codings(study, doc_id)
    marks = []
    for r in table.itertuples(index=False):
        if (blind and r.coder != coder) or (want_coder and r.coder != want_coder):
            continue
        path = r.code_path if isinstance(r.code_path, str) else str(r.code_id)
        marks.append(Mark(int(r.coding_id), r.code_id, path, r.coder, r.decision,
                          r.memo if isinstance(r.memo, str) else "", int(r.start_char),
                          int(r.end_char), bool(r.whole), r.coder == coder,
                          classes.get(r.code_id, (None,))[0], text=r.text))
    assign_lanes(marks)
    # decisions that are not highlights: rejections and "no code", on whole segments
    others = study.db.query(
        "SELECT k.segment_id, o.name AS coder, k.code_id, c.path, k.decision, k.memo "
        "FROM codings k JOIN coders o ON o.id=k.coder_id JOIN segments s ON s.id=k.segment_id "
        "LEFT JOIN codes c ON c.id=k.code_id AND c.codebook_version=? WHERE s.document_id=? "
        "AND k.decision NOT IN (%s) ORDER BY o.name, c.position" % ",".join("?" * len(POSITIVE)),
        (study.codebook_version, doc_id, *POSITIVE))
    by_seg: dict[int, list[dict]] = {}
    for r in others:
        if (blind and r["coder"] != coder) or (want_coder and r["coder"] != want_coder):
            continue
        by_seg.setdefault(r["segment_id"], []).append(dict(r))
    # memos on segments (a coder's notes; blind: only the coder's own)
    notes: dict[int, list[dict]] = {}
    for r in study.db.query(
            "SELECT m.segment_id, c.name AS coder, m.text FROM memos m LEFT JOIN coders c ON "
            "c.id = m.coder_id JOIN segments s ON s.id = m.segment_id WHERE s.document_id=? "
            "ORDER BY m.created_at, m.id", (doc_id,)):
        if (blind and r["coder"] != coder) or (want_coder and r["coder"] != want_coder):
            continue
        notes.setdefault(r["segment_id"], []).append({"coder": r["coder"] or "",
                                                      "text": r["text"]})
    segs = study.db.query(
        "SELECT segment_id, position, speaker, role, start_char, end_char FROM segment_view "
        "WHERE document_id=? ORDER BY start_char, position", (doc_id,))
    marks.sort(key=lambda m: (m.start, -m.end, m.id))
    starts = [m.start for m in marks]
    longest = max((m.end - m.start for m in marks), default=0)
    out, previous = [], 0
    for s in segs:
        a, b = s["start_char"], s["end_char"]
        # marks starting in [a - longest, b) are the only ones that can overlap the segment
        window = marks[bisect.bisect_left(starts, a - longest):bisect.bisect_left(starts, b)]
        over = [m for m in window if m.end > a]
        match = wanted is None or any(m.code_id in wanted for m in over)
        if match:
            out.append({"segment_id": s["segment_id"], "position": s["position"],
                        "speaker": s["speaker"] or "", "role": s["role"], "start": a, "end": b,
                        "gap_start": min(previous, a), "pieces": pieces(text, a, b, over),
                        "stripes": sorted(over, key=lambda m: (m.lane, m.start, m.id)),
                        "decisions": by_seg.get(s["segment_id"], []),
                        "memos": notes.get(s["segment_id"], [])})
        previous = b
    recent: list[str] = []
    if coder:
        for r in study.db.query(
                "SELECT k.code_id FROM codings k JOIN coders o ON o.id=k.coder_id WHERE "
                "o.name=? AND k.code_id IS NOT NULL AND k.decision IN (%s) ORDER BY "
                "k.created_at DESC, k.id DESC LIMIT 200" % ",".join("?" * len(POSITIVE)),
                (coder, *POSITIVE)):
            if r["code_id"] not in recent and r["code_id"] in classes:
                recent.append(r["code_id"])
            if len(recent) == RECENT:
                break
    codes = [{"id": c.id, "path": c.path, "name": c.name, "k": classes[c.id][0]}
             for c in book.codes if getattr(c, "codable", True)]
    return {"document": name, "document_id": doc_id, "segments": out, "codes": codes,
            "recent": recent,
            "marks": {m.id: {**vars(m), "text": m.text[:400]} for m in marks}}


def layout(shown: dict[str, Any]) -> dict[str, Any]:
    """The same view, compact, for transcript.js to redraw the page after a change without a
    reload: per segment its pieces as [start, end, [coding ids, outermost first]], its stripes
    and its other decisions; the marks by id. No transcript text: the page has it already."""
    segments = []
    for s in shown["segments"]:
        segments.append({
            "id": s["segment_id"],
            "pieces": [[p["start"], p["end"], [m.id for m in p["marks"]]] for p in s["pieces"]],
            "stripes": [m.id for m in s["stripes"]],
            "decisions": [{"coder": k["coder"], "decision": k["decision"], "memo": k["memo"] or "",
                           "label": (k["path"] or k["code_id"]) if k["code_id"] else "no code"}
                          for k in s["decisions"]],
            "memos": s["memos"]})
    return {"segments": segments, "marks": shown["marks"]}


def snap(study, document: str | int, start, end) -> tuple[int, int]:
    """A selection made on the page, trimmed to the segment text it covers: ends that fall on a
    speaker label or between turns move onto the nearest text inside the selection, and white
    space at either end is dropped. A selection with no segment text is returned unchanged, so
    `coder.review.spans.locate` refuses it with its own message."""
    doc_id, _, text = spans.document_id(study, document)
    try:
        start, end = int(start), int(end)
    except (TypeError, ValueError):
        return start, end
    rows = study.db.query("SELECT start_char, end_char FROM segments WHERE document_id=? AND "
                          "start_char < ? AND end_char > ? ORDER BY start_char",
                          (doc_id, end, start))
    if not rows:
        return start, end
    a, b = max(start, rows[0]["start_char"]), min(end, rows[-1]["end_char"])
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return (a, b) if a < b else (start, end)
