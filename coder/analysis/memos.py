"""Memos, listed for analysis: the notes coders wrote while coding.

Three kinds live in a study: a *code memo* is the note on one coding (a decision's ``memo``:
why this code on this segment); a *segment memo* is a note on a segment (``memos`` rows with a
segment; `m` in the review); a *document memo* is a note on a whole document (``memos`` rows
without a segment, e.g. from a REFI-QDA project). A segment memo sits next to the codes its
segment carries (any coder's confirmed or added codings), so the report can show every memo
next to its codes.
"""

from __future__ import annotations

import pandas as pd

from coder.analysis import outputs
from coder.errors import UnknownReference
from coder.store import POSITIVE

KINDS = ("code", "segment", "document")
COLUMNS = ["kind", "code_id", "code", "codes", "document", "position", "participant", "coder",
           "text", "segment_text", "created_at"]


def memos(study, *, code: str | None = None, coder: str | None = None,
          documents: list[str] | None = None, max_chars: int = 200) -> pd.DataFrame:
    """Every memo, in codebook then reading order: code memos, segment memos, document memos.

    ``code`` keeps the memos on codings of that code or any code below it, and the segment
    memos on segments carrying one of them; ``coder`` keeps one coder's memos."""
    book = study.codebook()
    documents = study.check_documents(documents)
    if coder is not None and coder not in study.coders():
        raise UnknownReference(f"unknown coder '{coder}'",
                               hint="coders: " + (", ".join(study.coders()) or "none yet"))
    wanted = None
    if code is not None:
        root = book.resolve(code)
        wanted = {root.id} | {c.id for c in book.descendants(root.id)}
    paths = {c.id: c.path for c in book.codes}
    order = {c.id: c.position for c in book.codes}
    marks = ",".join("?" * len(POSITIVE))
    carried: dict[int, list[str]] = {}
    for r in study.db.query(
            f"SELECT DISTINCT segment_id, code_id FROM codings WHERE decision IN ({marks}) "
            "AND code_id IS NOT NULL", POSITIVE):
        carried.setdefault(r["segment_id"], []).append(r["code_id"])
    rows = []
    for r in study.db.query(
            "SELECT k.code_id, k.memo AS text, k.created_at, c.name AS coder, v.document, "
            "v.position, v.participant, v.text AS segment_text FROM codings k "
            "JOIN coders c ON c.id = k.coder_id JOIN segment_view v ON v.segment_id = k.segment_id "
            "WHERE k.memo IS NOT NULL AND TRIM(k.memo) != '' AND k.code_id IS NOT NULL"):
        rows.append({**dict(r), "kind": "code", "codes": [r["code_id"]]})
    for r in study.db.query(
            "SELECT m.segment_id, m.text, m.created_at, c.name AS coder, "
            "COALESCE(v.document, d.name) AS document, v.position, v.participant, "
            "v.text AS segment_text FROM memos m LEFT JOIN coders c ON c.id = m.coder_id "
            "LEFT JOIN segment_view v ON v.segment_id = m.segment_id "
            "LEFT JOIN documents d ON d.id = m.document_id ORDER BY m.id"):
        kind = "segment" if r["segment_id"] is not None else "document"
        codes = sorted(carried.get(r["segment_id"], []), key=lambda i: order.get(i, 1e9))
        rows.append({**dict(r), "kind": kind, "code_id": None, "codes": codes})
    out = []
    for r in rows:
        if coder is not None and r["coder"] != coder:
            continue
        if documents and r["document"] not in documents:
            continue
        if wanted is not None and not (set(r["codes"]) & wanted):
            continue
        excerpt = " ".join(str(r.get("segment_text") or "").split())
        if len(excerpt) > max_chars:
            excerpt = excerpt[: max_chars - 1].rstrip() + "…"
        out.append({
            "kind": r["kind"], "code_id": r["code_id"],
            "code": paths.get(r["code_id"], r["code_id"]) if r["code_id"] else "",
            "codes": "; ".join(paths.get(c, c) for c in r["codes"]),
            "document": r["document"] or "", "position": r.get("position"),
            "participant": r.get("participant") or "", "coder": r["coder"] or "",
            "text": r["text"], "segment_text": excerpt, "created_at": r["created_at"],
            "_key": (KINDS.index(r["kind"]),
                     order.get(r["code_id"] or (r["codes"][0] if r["codes"] else ""), 1e9),
                     r["document"] or "", r.get("position") or 0, r["created_at"] or "")})
    out.sort(key=lambda r: r["_key"])
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "_key"} for r in out],
                         columns=COLUMNS)
    frame["position"] = frame["position"].astype("Int64")
    frame.attrs.update(code=code, coder=coder, documents=documents)
    return frame


def by_code(frame: pd.DataFrame, book) -> list[tuple[str, pd.DataFrame]]:
    """The memos under each code they belong to (a segment memo under every code its segment
    carries), in codebook order; then the memos on segments without a code and on documents."""
    out = []
    for c in book.codes:
        mine = frame[(frame["code_id"] == c.id) | (
            (frame["kind"] == "segment")
            & frame["codes"].map(lambda s, p=c.path: p in s.split("; ")))]
        if len(mine):
            out.append((c.path, mine))
    loose = frame[(frame["kind"] == "segment") & (frame["codes"] == "")]
    if len(loose):
        out.append(("Segments without a code", loose))
    docs = frame[frame["kind"] == "document"]
    if len(docs):
        out.append(("Documents", docs))
    return out


def tables(frame: pd.DataFrame) -> outputs.Tables:
    a = frame.attrs
    what = [f"code {a['code']} and below" if a.get("code") else "",
            f"by {a['coder']}" if a.get("coder") else ""]
    label = ", ".join(w for w in what if w)
    table = outputs.Table(
        "Memos", frame, caption="",
        labels={"kind": "Kind", "code": "Code", "codes": "Codes on the segment",
                "document": "Document", "position": "Segment", "participant": "Participant",
                "coder": "Coder", "text": "Memo", "segment_text": "Segment",
                "created_at": "Written"},
        hidden=["code_id", "segment_text", "created_at"])
    counts = frame["kind"].value_counts()
    notes = [f"{len(frame)} memo(s): " + ", ".join(
        f"{int(counts.get(k, 0))} {k}" for k in KINDS) + ".",
        "Kinds: code = the note on one coding; segment = a note on a segment (Codes: what "
        "its segment carries, any coder's confirmed or added codings); document = a note on a "
        "whole document."]
    return outputs.Tables(title="Memos" + (f" ({label})" if label else ""), tables=[table],
                          notes=notes, meta={"code": a.get("code"), "coder": a.get("coder")})
