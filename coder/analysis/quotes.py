"""Retrieval: every coded passage of a code and the codes below it, with its exact text and
its place, the "retrieve all quotes" of every QDA tool (``coder quotes``, the web page /quotes).

A passage is a coded span: the characters ``[start_char, end_char)`` of its document (a
whole-segment coding is its segment, quoted as the segment's text). Whose codings count is
decided exactly as for ``coder freq`` (:func:`coder.analysis.counting.counted`, which calls
:func:`coder.analysis.frequency.select_coders`): the same default coder, the same refusals, the
same analysed documents, and the same span rule (a passage counts for the participant speaking
in every segment it overlaps; one only on interviewer turns is never listed). With ``rule
all`` a passage is listed only where every selected coder put its code on a segment the
passage overlaps. The same characters coded with the same code by several coders are one
passage, listed with each coder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from coder.analysis import counting, frequency, outputs
from coder.analysis import tables as freq_tables
from coder.errors import CoderError

FORMATS = ("table", "csv", "md", "xlsx", "docx", "json")
EXTENSIONS = {".txt": "table", ".csv": "csv", ".md": "md", ".xlsx": "xlsx", ".docx": "docx",
              ".json": "json"}
COLUMNS = ["code_id", "code", "value", "participant", "document", "position", "last_position",
           "start_char", "end_char", "speaker", "coders", "text", "memo", "segment_memos",
           "whole", "segment_id", "coding_ids", "start_time", "end_time"]
LABELS = {"code": "Code", "value": "Group", "participant": "Participant", "document": "Document",
          "position": "Segment", "last_position": "To segment", "start_char": "From char",
          "end_char": "To char", "speaker": "Speaker", "coders": "Coder(s)", "text": "Passage",
          "memo": "Memo", "segment_memos": "Segment memos"}
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")   # not allowed in XML (docx)


def marks(n: int) -> str:
    return ",".join("?" * n)


def _chunks(ids: list[int], size: int = 500):
    for k in range(0, len(ids), size):
        yield ids[k:k + size]


def quotes(store, code: str, *, coder: str | None = None, coders: list[str] | None = None,
           rule: str = "any", consensus: bool = False, include_auto: bool = False,
           allow_partial: bool = False, by: str | None = None,
           documents: list[str] | None = None) -> pd.DataFrame:
    """Every counted passage of ``code`` and the codes below it, in codebook then reading order
    (with ``by``, a participant attribute: grouped by its value within each code).

    ``df.attrs["notes"]`` says whose codings on which documents are listed, in the words of
    ``coder freq``'s notes; a code without passages gives an empty frame, not an error."""
    data = counting.counted(store, documents=documents, coder=coder, coders=coders, rule=rule,
                            consensus=consensus, include_auto=include_auto,
                            allow_partial=allow_partial)
    book = data.book
    root = book.resolve(code)
    below = [root, *book.descendants(root.id)]
    wanted = [c.id for c in below]
    groups = frequency._groups(store, by) if by else None
    value_of = dict(zip(groups["participant_id"], groups["value"])) if by else {}
    sel = data.selection
    conn = store.db.conn

    # every segment each selected coding overlaps (the span rule of coder freq)
    overlaps = pd.read_sql_query(
        "SELECT coding_id, code_id, coder_id, segment_id FROM coding_segments "
        f"WHERE coder_id IN ({marks(len(sel.coder_ids))}) "
        f"AND decision IN ({marks(len(sel.decisions))}) AND code_id IN ({marks(len(wanted))})",
        conn, params=[*sel.coder_ids, *sel.decisions, *wanted])
    # the overlapped segments that count: participants' segments of the analysed documents
    held = data.codings[data.codings["code_id"].isin(wanted)]
    counted_rows = overlaps.merge(
        held[["code_id", "coder_id", "segment_id", "participant_id"]].drop_duplicates(),
        on=["code_id", "coder_id", "segment_id"])
    if data.need > 1:   # rule all: every selected coder put the code on that segment
        agreed = data.units(held.assign(target=held["code_id"]), "segment")
        counted_rows = counted_rows.merge(
            agreed.rename(columns={"target": "code_id"}), on=["code_id", "segment_id"])
    keep = sorted(set(counted_rows["coding_id"].astype(int)))
    overlaps = overlaps[overlaps["coding_id"].isin(keep)]

    spans = []
    for part in _chunks(keep):
        spans.append(pd.read_sql_query(
            "SELECT p.coding_id, p.code_id, p.coder_id, p.document_id, p.start_char, "
            "p.end_char, p.whole, p.segment_id AS anchor, k.memo, o.name AS coder, "
            "s.text AS segment_text FROM coding_spans p JOIN codings k ON k.id = p.coding_id "
            "JOIN coders o ON o.id = p.coder_id JOIN segments s ON s.id = p.segment_id "
            f"WHERE p.coding_id IN ({marks(len(part))})", conn, params=part))
    spans = pd.concat(spans, ignore_index=True) if spans else pd.DataFrame(
        columns=["coding_id", "code_id", "coder_id", "document_id", "start_char", "end_char",
                 "whole", "anchor", "memo", "coder", "segment_text"])
    seg_info = data.segments(overlaps["segment_id"]).set_index("segment_id")
    doc_ids = sorted({int(d) for d in spans["document_id"]})
    texts = {r["id"]: r for r in store.db.query(
        f"SELECT id, name, text FROM documents WHERE id IN ({marks(len(doc_ids))})", doc_ids)}
    memo_counts = _segment_memos(store, sorted(set(overlaps["segment_id"].astype(int))))
    people = dict(zip(data.participants["participant_id"], data.participants["participant"]))
    coder_order = {cid: k for k, cid in enumerate(sel.coder_ids)}
    segs_of = overlaps.groupby("coding_id")["segment_id"].apply(list).to_dict()
    counted_people = counted_rows.groupby("coding_id")["participant_id"].apply(set).to_dict()
    paths = {c.id: c.path for c in book.codes}
    order = {c.id: c.position for c in book.codes}

    rows = []
    keys = ["code_id", "document_id", "start_char", "end_char"]
    for (code_id, doc_id, start, end), block in spans.groupby(keys, sort=False):
        block = block.sort_values("coder_id", key=lambda s: s.map(coder_order))
        ids = [int(i) for i in block["coding_id"]]
        seg_ids = sorted({int(s) for i in ids for s in segs_of.get(i, [])},
                         key=lambda s: seg_info.at[s, "position"])
        whole = bool(block["whole"].astype(bool).all())
        doc = texts[int(doc_id)]
        text = str(block["segment_text"].iloc[0]) if whole else doc["text"][int(start):int(end)]
        who = sorted({p for i in ids for p in counted_people.get(i, set())},
                     key=lambda p: people.get(p, ""))
        speakers = list(dict.fromkeys(str(seg_info.at[s, "speaker"] or "") for s in seg_ids))
        memos = [(c, str(m).strip()) for c, m in zip(block["coder"], block["memo"])
                 if m is not None and not pd.isna(m) and str(m).strip()]
        memo = (memos[0][1] if len(block) == 1 and memos
                else "; ".join(f"{c}: {m}" for c, m in memos))
        first, last = seg_ids[0], seg_ids[-1]
        base = {
            "code_id": code_id, "code": paths[code_id],
            "participant": ", ".join(people.get(p, "") for p in who),
            "document": doc["name"], "position": int(seg_info.at[first, "position"]),
            "last_position": int(seg_info.at[last, "position"]),
            "start_char": int(start), "end_char": int(end),
            "speaker": ", ".join(s for s in speakers if s), "coders": ", ".join(block["coder"]),
            "text": text, "memo": memo,
            "segment_memos": sum(memo_counts.get(s, 0) for s in seg_ids),
            "whole": whole, "segment_id": first, "coding_ids": ", ".join(map(str, ids)),
            "start_time": seg_info.at[first, "start_time"],
            "end_time": seg_info.at[last, "end_time"],
            "_order": order[code_id], "_who": who}
        if groups is None:
            rows.append({**base, "value": None})
            continue
        for value in dict.fromkeys(value_of.get(p, "(none)") for p in who):
            rows.append({**base, "value": value})
    frame = pd.DataFrame(rows, columns=[*COLUMNS, "_order", "_who"])
    sort = ["_order", *(["_value"] if by else []), "document", "start_char", "end_char"]
    frame = frame.assign(_value=frame["value"].map(lambda v: (v == "(none)", str(v))))
    frame = frame.sort_values(sort, kind="stable").reset_index(drop=True)
    for col in ("position", "last_position", "start_char", "end_char", "segment_memos"):
        frame[col] = frame[col].astype("Int64")
    participants = {p for who in frame["_who"] for p in who}
    frame = frame.drop(columns=["_order", "_who", "_value"])
    if not by:
        frame = frame.drop(columns="value")
    frame.attrs.update(
        code=root.id, code_path=root.path, codes=[c.path for c in below], by=by,
        N=data.N, coders=list(sel.coders), rule=sel.rule, consensus=sel.consensus,
        include_auto=sel.include_auto, documents=documents, selection=sel.describe(),
        caveat=sel.caveat,
        passages=len(frame.drop_duplicates(["code_id", "document", "start_char", "end_char"])),
        participants=len(participants),
        groups=sorted(frame["value"].unique(), key=lambda v: (v == "(none)", str(v)))
        if by else None,
        notes=_notes(data, root, below, by, frame, len(participants)))
    return frame


def _segment_memos(store, segment_ids: list[int]) -> dict[int, int]:
    """How many segment memos (any coder's) each of these segments has."""
    out: dict[int, int] = {}
    for part in _chunks(segment_ids):
        for r in store.db.query(
                "SELECT segment_id, COUNT(*) AS n FROM memos WHERE segment_id IN (%s) "
                "AND TRIM(text) != '' GROUP BY segment_id" % ",".join("?" * len(part)), part):
            out[int(r["segment_id"])] = int(r["n"])
    return out


def _notes(data: counting.Counted, root, below, by, frame: pd.DataFrame, people: int) -> list[str]:
    what = root.path + (" and the codes below it" if len(below) > 1 else "")
    distinct = frame.drop_duplicates(["code_id", "document", "start_char", "end_char"])
    out = [f"{len(distinct)} passage(s) of {what}, from {people} of the N = {data.N} "
           "participants in the analysed documents"
           + (f" ({', '.join(data.documents)})" if data.documents else "")
           + "; a passage of a code below is listed under its own code.",
           *data.notes()[1:]]       # whose codings: the frequency table's words
    out.insert(2 if not data.selection.caveat else 3,
               "Each passage is the coded span's exact text (a whole-segment coding: the "
               "segment's text); it counts for the participant speaking in every segment it "
               "overlaps, as in coder freq, and a passage only on interviewer turns is not "
               "listed. The same characters coded by several coders are listed once, with each "
               "coder.")
    if data.need > 1:
        out.append("Rule all: a passage is listed only where every coder selected put its code "
                   "on a segment the passage overlaps.")
    if by:
        out.append(f"Grouped by the participant attribute {by} ('(none)': no value); a passage "
                   "across the turns of participants in two groups is listed under each.")
    if len(frame) and frame["segment_memos"].fillna(0).sum():
        out.append("Segment memos: the number of notes written on the segments a passage "
                   "overlaps (see coder memos).")
    return out


# -- outputs -----------------------------------------------------------------------------------
def title(frame: pd.DataFrame) -> str:
    a = frame.attrs
    return f"Quotes: {a['code_path']}" + (f" by {a['by']}" if a.get("by") else "")


def tables(frame: pd.DataFrame) -> outputs.Tables:
    """The passages as one table in ``coder freq``'s formats (csv, xlsx, json, table)."""
    a = frame.attrs
    labels = dict(LABELS, value=a.get("by") or "Group")
    table = outputs.Table(
        "Quotes", frame, labels=labels,
        hidden=["code_id", "last_position", "start_char", "end_char", "segment_memos", "whole",
                "segment_id", "coding_ids", "start_time", "end_time"])
    meta = {k: a.get(k) for k in ("code", "code_path", "codes", "by", "groups", "N", "coders",
                                  "rule", "consensus", "include_auto", "documents", "caveat",
                                  "participants")}
    return outputs.Tables(title=title(frame), tables=[table], notes=list(a.get("notes", [])),
                          meta=meta)


def where(r: dict) -> str:
    """The passage's place: document, segment(s), characters."""
    seg = (f"segment {r['position']}" if r["position"] == r["last_position"]
           else f"segments {r['position']}\u2013{r['last_position']}")
    return f"{r['document']}, {seg}, characters {r['start_char']}\u2013{r['end_char']}"


def attribution(r: dict) -> str:
    who = r["participant"] or r["speaker"]
    if r["speaker"] and r["speaker"] != r["participant"]:
        who += f" ({r['speaker']})"
    out = f"{who}; {where(r)}; coded by {r['coders']}"
    if r["memo"]:
        out += f"; memo: {r['memo']}"
    return out


def sections(frame: pd.DataFrame) -> list[tuple[str, list[tuple[str | None, list[dict]]]]]:
    """(code path, [(group value or None, passages)]) in the frame's order."""
    out: list = []
    for code_path, block in frame.groupby("code", sort=False):
        if "value" in block.columns:
            parts = [(str(v), b.to_dict("records")) for v, b in block.groupby("value", sort=False)]
        else:
            parts = [(None, block.to_dict("records"))]
        out.append((code_path, parts))
    return out


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def _md(text: str) -> str:
    """Transcript text shown as itself in Markdown (no headings, links or HTML from it)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def to_markdown(frame: pd.DataFrame) -> str:
    """A heading per code (and group), each passage a block quote with its attribution."""
    lines = [f"# {_md(title(frame))}", ""]
    for code_path, parts in sections(frame):
        lines += [f"## {_md(code_path)}", ""]
        for value, rows in parts:
            if value is not None:
                lines += [f"### {_md(frame.attrs['by'])}: {_md(value)}", ""]
            for r in rows:
                lines += [f"> {_md(line)}" if line.strip() else ">"
                          for line in str(r["text"]).splitlines() or [""]]
                lines += [">", f"> \u2014 {_md(attribution(r))}", ""]
    if frame.empty:
        lines += ["(no passages)", ""]
    lines += [f"_{_md(n)}_" for n in frame.attrs.get("notes", [])]
    return "\n".join(lines).rstrip() + "\n"


def _xml_safe(text: str) -> str:
    return _CONTROL.sub("", str(text))


def to_docx(frame: pd.DataFrame, path: str | Path) -> Path:
    """A heading per code (and group); each passage a Quote paragraph with its attribution."""
    from docx import Document
    from docx.shared import Pt

    doc = Document()
    doc.core_properties.title = _xml_safe(title(frame))[:255]
    doc.core_properties.author = "coder"
    doc.add_heading(_xml_safe(title(frame)), level=1)
    for code_path, parts in sections(frame):
        doc.add_heading(_xml_safe(code_path), level=2)
        for value, rows in parts:
            if value is not None:
                doc.add_heading(_xml_safe(f"{frame.attrs['by']}: {value}"), level=3)
            for r in rows:
                para = doc.add_paragraph(style="Quote")
                para.add_run(_xml_safe(r["text"]))
                para.add_run().add_break()
                run = para.add_run("\u2014 " + _xml_safe(attribution(r)))
                run.font.size = Pt(8)
    if frame.empty:
        doc.add_paragraph("(no passages)")
    for n in frame.attrs.get("notes", []):
        doc.add_paragraph().add_run(_xml_safe(n)).italic = True
    path = Path(path)
    doc.save(str(path))
    return path


def format_for(path: str | Path | None, fmt: str | None) -> str:
    return freq_tables.format_for(path, fmt, formats=FORMATS, extensions=EXTENSIONS)


def render(frame: pd.DataFrame, fmt: str) -> str:
    """A text format as a string (xlsx and docx are binary: use :func:`write`)."""
    if fmt in ("xlsx", "docx"):
        raise CoderError(f"{fmt} is a binary format",
                         hint=f"write it to a file with --out FILE.{fmt}")
    if fmt == "md":
        return to_markdown(frame)
    if fmt not in FORMATS:
        raise CoderError(f"unknown format '{fmt}'", hint="use " + ", ".join(FORMATS))
    return outputs.render(tables(frame), fmt)   # csv neutralised (coder.spreadsheet)


def write(frame: pd.DataFrame, path: str | Path, fmt: str | None = None) -> Path:
    """Write the passages; CSV and XLSX cells are neutralised against formula injection."""
    path = freq_tables.check_output(path)
    fmt = format_for(path, fmt)
    if fmt == "docx":
        return to_docx(frame, path)
    if fmt == "xlsx":
        return outputs.to_xlsx(tables(frame), path)
    path.write_text(render(frame, fmt), encoding="utf-8")
    return path

