"""Participant summaries for member checking: one file per participant with the passages of
their own interview that count for a code, grouped by code in codebook order, each quoted as
transcribed with its place (document, segment, characters, time). Codes the participant did
not raise are left out.

A summary holds only that participant's own segments. Their own words may still name someone
else in the study: every other participant's name, and the speaker labels that stand for them,
are replaced by "[another participant]" (the file says how many), so no participant's name
appears in another participant's file. Interviewer turns, coders and memos are never included.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from coder.analysis import counting
from coder.errors import CoderError, InputError
from coder.store.codebook import split_path

FORMATS = ("docx", "html", "md")
REDACTED = "[another participant]"
TITLES = {"dr", "mr", "mrs", "ms", "miss", "prof", "professor", "sir", "madam", "dato", "datuk",
          "datin", "encik", "puan", "cik", "tan", "sri", "haji", "hajah", "the", "and"}


@dataclass
class Summary:
    participant: str
    path: Path
    codes: int
    passages: int
    redactions: int


@dataclass
class SummariesResult:
    written: list[Summary] = field(default_factory=list)
    without_passages: list[str] = field(default_factory=list)   # participants with none
    notes: list[str] = field(default_factory=list)


def passages(study, *, documents: list[str] | None = None, **who) -> pd.DataFrame:
    """Every counted (participant, code, segment), with the segment's place and exact text, in
    codebook then reading order; ``who`` as for ``coder freq``."""
    data = counting.counted(study, documents=documents, **who)
    rows = data.codings.assign(target=data.codings["code_id"])
    held = data.units(rows, "segment")
    info = data.segments(held["segment_id"])
    out = held.merge(info, on="segment_id")
    book = data.book
    out["path"] = out["target"].map({c.id: c.path for c in book.codes})
    out["_order"] = out["target"].map({c.id: c.position for c in book.codes})
    out = out.sort_values(["participant", "_order", "document", "position"], kind="stable")
    out = out.rename(columns={"target": "code_id"}).drop(columns="_order")
    out.attrs["participants"] = list(data.participants.sort_values("participant")["participant"])
    out.attrs["selection"] = data.selection.describe()
    out.attrs["N"] = data.N
    return out.reset_index(drop=True)


def _others(study, participant: str) -> list[str]:
    """Names that stand for other participants: their names, the speaker labels linked to
    them, and the words of those (not titles such as Dr or Encik, not shorter than 3)."""
    rows = study.db.query(
        "SELECT p.name AS name, s.label AS label FROM participants p "
        "LEFT JOIN speakers s ON s.participant_id = p.id WHERE p.name != ?", (participant,))
    mine = {w.lower() for r in study.db.query(
        "SELECT p.name AS name, s.label AS label FROM participants p LEFT JOIN speakers s ON "
        "s.participant_id = p.id WHERE p.name = ?", (participant,))
        for v in (r["name"], r["label"]) if v for w in [v, *re.findall(r"[\w'’-]+", v)]}
    names: set[str] = set()
    for r in rows:
        for value in (r["name"], r["label"]):
            if not value:
                continue
            names.add(value.strip())
            for word in re.findall(r"[\w'’-]+", value):
                if len(word) >= 3 and word.lower() not in TITLES and word.lower() not in mine:
                    names.add(word)
    return sorted((n for n in names if n and n.lower() not in mine), key=len, reverse=True)


def redact(text: str, names: list[str]) -> tuple[str, int]:
    """``text`` with every whole-word occurrence of a name replaced (case-insensitive; a name
    of three letters or fewer only where it starts with a capital)."""
    count = 0

    def swap(m: re.Match) -> str:
        nonlocal count
        if len(m.group(0)) <= 3 and not m.group(0)[0].isupper():
            return m.group(0)          # 'lim', 'tan' as plain words stay
        count += 1
        return REDACTED

    for name in names:
        pattern = re.compile(r"(?<![\w])" + re.escape(name) + r"(?![\w])", re.IGNORECASE)
        text = pattern.sub(swap, text)
    return text, count


def _where(r) -> str:
    bits = [f"{r['document']}, segment {int(r['position'])}",
            f"characters {int(r['start_char'])}\u2013{int(r['end_char'])}"]
    if pd.notna(r.get("start_time")):
        bits.append(f"{_clock(r['start_time'])}\u2013{_clock(r['end_time'])}")
    return ", ".join(bits)


def _clock(seconds) -> str:
    if seconds is None or pd.isna(seconds):
        return ""
    s = int(round(float(seconds)))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _safe_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^\w.-]+", "_", name).strip("._") or "participant"
    candidate, n = base, 2
    while candidate.lower() in taken:
        candidate, n = f"{base}_{n}", n + 1
    taken.add(candidate.lower())
    return candidate


def summaries(study, out_dir: str | Path, *, fmt: str = "docx",
              documents: list[str] | None = None, title: str | None = None,
              **who) -> SummariesResult:
    """Write one summary per participant with coded passages into ``out_dir`` (created if its
    parent exists); participants without any are listed, not written."""
    if fmt not in FORMATS:
        raise CoderError(f"unknown format '{fmt}'", hint="use " + ", ".join(FORMATS))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError("is a file, not a folder", path=out,
                         hint="give a folder for the summaries")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.exists():
        raise InputError(f"folder {parent} does not exist", path=out,
                         hint="create it first or choose another output folder")
    found = passages(study, documents=documents, **who)
    book = study.codebook()
    result = SummariesResult(notes=[
        "Codings: " + found.attrs["selection"] + ".",
        "Each file holds only that participant's own segments; other participants' names are "
        f"replaced by {REDACTED}."])
    out.mkdir(exist_ok=True)
    taken: set[str] = set()
    by_person = {p: block for p, block in found.groupby("participant", sort=False)}
    for person in found.attrs["participants"]:
        block = by_person.get(person)
        if block is None or block.empty:
            result.without_passages.append(person)
            continue
        names = _others(study, person)
        sections, redactions = [], 0
        for code_id, part in block.groupby("code_id", sort=False):
            code = book.get(code_id)
            quotes = []
            for r in part.to_dict("records"):
                text, n = redact(str(r["text"]), names)
                redactions += n
                quotes.append((_where(r), text))
            sections.append((" / ".join(split_path(code.path)), code.description, quotes))
        path = out / f"{_safe_name(person, taken)}.{fmt}"
        heading = title or f"Coded passages of your interview: {person}"
        intro = (f"These are the passages of {person}'s interview that were coded in the study "
                 f"({book.name}), grouped by code. Codes that did not come up are left out. "
                 "Each passage is quoted as it was transcribed, with its place in the "
                 "transcript (document, segment, characters, time).")
        closing = (f"{redactions} mention(s) of other participants are replaced by "
                   f"{REDACTED}." if redactions else "")
        _WRITERS[fmt](path, heading, intro, sections, closing)
        result.written.append(Summary(person, path, len(sections),
                                      sum(len(q) for _, _, q in sections), redactions))
    return result


def _md(path: Path, heading: str, intro: str, sections, closing: str) -> None:
    lines = [f"# {heading}", "", intro, ""]
    for code, description, quotes in sections:
        lines += [f"## {code}", ""]
        if description:
            lines += [f"*{description}*", ""]
        for where, text in quotes:
            lines += [f"> {line}" if line else ">" for line in text.splitlines() or [""]]
            lines += [f"> \u2014 {where}", ""]
    if closing:
        lines += [f"_{closing}_", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def _html(path: Path, heading: str, intro: str, sections, closing: str) -> None:
    from coder.analysis.tables import CSS

    e = html.escape
    body = [f"<h1>{e(heading)}</h1>", f"<p>{e(intro)}</p>"]
    for code, description, quotes in sections:
        body.append(f"<h2>{e(code)}</h2>")
        if description:
            body.append(f'<p class="muted">{e(description)}</p>')
        for where, text in quotes:
            body.append(f"<blockquote>{e(text)}<cite>{e(where)}</cite></blockquote>")
    if closing:
        body.append(f'<p class="note">{e(closing)}</p>')
    path.write_text("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                    f"<title>{e(heading)}</title><style>{CSS}</style></head>\n<body>\n"
                    + "\n".join(body) + "\n</body></html>\n", encoding="utf-8")


def _docx(path: Path, heading: str, intro: str, sections, closing: str) -> None:
    from docx import Document
    from docx.shared import Pt

    doc = Document()
    doc.core_properties.title = heading
    doc.core_properties.author = "coder"
    doc.add_heading(heading, level=1)
    doc.add_paragraph(intro)
    for code, description, quotes in sections:
        doc.add_heading(code, level=2)
        if description:
            doc.add_paragraph().add_run(description).italic = True
        for where, text in quotes:
            doc.add_paragraph(text, style="Quote")
            run = doc.add_paragraph().add_run(where)
            run.font.size = Pt(8)
    if closing:
        doc.add_paragraph().add_run(closing).italic = True
    doc.save(str(path))


_WRITERS = {"md": _md, "html": _html, "docx": _docx}
