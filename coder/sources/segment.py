"""Segmentation: turn a parsed transcript (speaker turns with character spans) into coding units.

Units: ``turn`` (one segment per speaker turn), ``paragraph`` (blank-line separated blocks within
a turn), ``sentence`` (spaCy's rule-based sentencizer on a blank English pipeline: no model
download). Every segment keeps character offsets into the stored document text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

UNITS = ("turn", "sentence", "paragraph")


@dataclass
class Turn:
    speaker: str | None
    start: int          # offsets of the spoken text (label excluded) in the document text
    end: int
    start_time: float | None = None
    end_time: float | None = None


@dataclass
class Segment:
    position: int       # 1-based
    turn: int           # 1-based
    speaker: str | None
    start: int
    end: int
    text: str
    start_time: float | None = None
    end_time: float | None = None


@lru_cache(maxsize=1)
def _sentencizer():
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _paragraph_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, pos = [], start
    for m in re.finditer(r"\n[ \t]*\n", text[start:end]):
        spans.append((pos, start + m.start()))
        pos = start + m.end()
    spans.append((pos, end))
    return [s for s in (_trimmed(text, a, b) for a, b in spans) if s[0] < s[1]]


LONG_RUN = 100  # characters without a space; past this spaCy's tokenizer turns quadratic


def _tokenizable(text: str) -> str:
    """The same text of the same length, with a space every LONG_RUN characters of any run
    without one (a 40,000-character run of quotes took spaCy four minutes); sentences are cut
    on the original text at the same offsets."""
    return re.sub(r"\S{%d,}" % (LONG_RUN + 1),
                  lambda m: "".join(" " if i and i % LONG_RUN == 0 else ch
                                    for i, ch in enumerate(m.group())), text)


def _sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans = []
    for pstart, pend in _paragraph_spans(text, start, end):
        doc = _sentencizer()(_tokenizable(text[pstart:pend]))
        for sent in doc.sents:
            a, b = _trimmed(text, pstart + sent.start_char, pstart + sent.end_char)
            if a < b:
                spans.append((a, b))
    return spans


def segment(text: str, turns: list[Turn], unit: str = "turn") -> list[Segment]:
    """Split each turn into units of the requested kind, in reading order."""
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; expected one of {', '.join(UNITS)}")
    out: list[Segment] = []
    for t_index, turn in enumerate(turns, 1):
        if unit == "turn":
            spans = [_trimmed(text, turn.start, turn.end)]
        elif unit == "paragraph":
            spans = _paragraph_spans(text, turn.start, turn.end)
        else:
            spans = _sentence_spans(text, turn.start, turn.end)
        for a, b in spans:
            if a >= b:
                continue
            out.append(Segment(position=len(out) + 1, turn=t_index, speaker=turn.speaker,
                               start=a, end=b, text=text[a:b], start_time=turn.start_time,
                               end_time=turn.end_time))
    return out
