"""Auto-coding from a text search: every hit becomes a proposal in one coder's review queue, and
only that coder's confirmation makes it a coding.

`propose` runs `coder.sources.search.search` and stores one ``search_proposals`` row per hit
(migration 0009): the span to code (the hit's characters, the sentence around it, or the whole
segment), the code, whose queue it is for, and the search that made it (query, regex flag,
options). A proposal is never a coding, so nothing counts in frequency, agreement or training
until a person decides it: `decide_proposal` confirms it (a coding of exactly that span through
`coder.review.spans.code_span`, decision 'confirmed', source 'search') or rejects it (a
'rejected' decision on the segment through `coder.review.decisions.decide`). Each decision is
one transaction and one undo record; undoing it opens the proposal again.

Running the same search again proposes nothing twice (one proposal per coder, code and span);
a span the coder already coded with that code is not proposed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coder.errors import CoderError, UnknownReference
from coder.review.context import Seen
from coder.review.decisions import POSITIVE, decide
from coder.review.spans import code_span
from coder.sources.search import search, sentence_around
from coder.store.db import now

if TYPE_CHECKING:
    from coder.store import Store

SPANS = ("hit", "sentence", "segment")
SOURCE = "search"


@dataclass
class Proposal:
    """One search hit waiting for (or given) a coder's decision, as the review shows it."""

    id: int
    segment_id: int
    document: str
    code_id: str
    path: str
    start_char: int             # document offsets of the proposed span, end exclusive
    end_char: int
    text: str                   # the proposed characters
    offset: int                 # where the span starts in its segment's text
    query: str
    regex: bool
    span: str                   # hit | sentence | segment
    status: str                 # 'open', or the decision: confirmed | rejected

    @property
    def label(self) -> str:
        """What the review writes next to the code: where it came from."""
        return f"from search: {self.query}" + (" (regex)" if self.regex else "")

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@dataclass
class ProposalReport:
    """What `propose` did, for the CLI to print."""

    coder: str
    code: str                   # the code's path
    query: str
    span: str
    hits: int                   # hits the search found
    made: int                   # new proposals stored
    already_proposed: int       # proposals for these spans existed (from an earlier run)
    already_coded: int          # spans the coder had already coded with this code
    proposals: list[int] = field(default_factory=list)   # ids of the new proposals
    note: str = ""              # the coder name note (a new coder), if any


def _covered(store: Store, coder_id: int, code_id: str) -> dict[int, list[tuple[int, int]]]:
    """Spans (per document) this coder already gave this code."""
    out: dict[int, list[tuple[int, int]]] = {}
    marks = ",".join("?" * len(POSITIVE))
    for r in store.db.query(f"SELECT document_id, start_char, end_char FROM coding_spans WHERE "
                            f"coder_id=? AND code_id=? AND decision IN ({marks})",
                            (coder_id, code_id, *POSITIVE)):
        out.setdefault(r["document_id"], []).append((r["start_char"], r["end_char"]))
    return out


def propose(store: Store, query: str, *, code: str, coder: str, span: str = "hit",
            regex: bool = False, speaker: str | None = None,
            documents: list[str] | None = None) -> ProposalReport:
    """Turn every hit of a search into a proposal of ``code`` for ``coder``'s review queue.

    ``span``: 'hit' proposes the hit's characters, 'sentence' the sentence around it in its
    segment, 'segment' the whole segment. Without ``speaker`` only participant turns get
    proposals (interviewer turns are never counted); give ``speaker='interviewer'`` or a label
    to choose. All proposals of one call are stored in one transaction.
    """
    if span not in SPANS:
        raise CoderError(f"unknown span '{span}'", hint="one of: " + ", ".join(SPANS))
    book = store.codebook()
    target = book.resolve(code)
    ref = store.resolve_coder(coder)
    chosen = speaker if speaker is not None and str(speaker).strip() else "participant"
    hits = search(store, query, regex=regex, speaker=chosen, documents=documents, window=0)
    options = json.dumps({"speaker": chosen, "documents": documents or None, "span": span})
    report = ProposalReport(coder=ref.name, code=target.path, query=hits.attrs["query"],
                            span=span, hits=len(hits), made=0, already_proposed=0,
                            already_coded=0, note=ref.note() or "")
    if not len(hits):
        return report
    docs: dict[int, str] = {}
    seg_rows: dict[int, Any] = {}
    with store.db.transaction() as conn:
        cid = store.coder_id(ref.name)
        covered = _covered(store, cid, target.id)
        stamp = now()
        seen: set[tuple[int, int, int]] = set()
        for h in hits.itertuples(index=False):
            seg = seg_rows.get(h.segment_id)
            if seg is None:
                seg = seg_rows[h.segment_id] = store.db.one(
                    "SELECT document_id, start_char, end_char FROM segments WHERE id=?",
                    (h.segment_id,))
            start, end = int(h.start_char), int(h.end_char)
            if span == "segment":
                start, end = seg["start_char"], seg["end_char"]
            elif span == "sentence":
                if seg["document_id"] not in docs:
                    docs[seg["document_id"]] = store.db.one(
                        "SELECT text FROM documents WHERE id=?", (seg["document_id"],))[0]
                start, end = sentence_around(docs[seg["document_id"]], seg["start_char"],
                                             seg["end_char"], start, end)
            key = (int(h.segment_id), start, end)
            if key in seen:     # two hits in one sentence (or segment): one proposal
                continue
            seen.add(key)
            if any(a <= start and end <= b for a, b in covered.get(seg["document_id"], [])):
                report.already_coded += 1
                continue
            cur = conn.execute(
                "INSERT INTO search_proposals (segment_id, start_char, end_char, code_id, "
                "coder_id, span, query, regex, options, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT DO NOTHING",
                (int(h.segment_id), start, end, target.id, cid, span, report.query, int(regex),
                 options, stamp))
            if cur.rowcount:
                report.made += 1
                report.proposals.append(cur.lastrowid)
            else:
                report.already_proposed += 1
    return report


_SELECT = ("SELECT p.*, s.document_id, s.start_char AS seg_start, d.name AS document, "
           "substr(d.text, p.start_char + 1, p.end_char - p.start_char) AS span_text, "
           "p.id IN (SELECT id FROM open_search_proposals) AS open "
           "FROM search_proposals p JOIN segments s ON s.id = p.segment_id "
           "JOIN documents d ON d.id = s.document_id")


def _proposal(book, r) -> Proposal:
    path = book.get(r["code_id"]).path if r["code_id"] in book._by_id else r["code_id"]
    return Proposal(id=r["id"], segment_id=r["segment_id"], document=r["document"],
                    code_id=r["code_id"], path=path, start_char=r["start_char"],
                    end_char=r["end_char"], text=r["span_text"],
                    offset=r["start_char"] - r["seg_start"], query=r["query"],
                    regex=bool(r["regex"]), span=r["span"],
                    status="open" if r["open"] else r["status"])


def proposals(store: Store, coder: str, *, segment_id: int | None = None,
              open_only: bool = True) -> list[Proposal]:
    """This coder's proposals (the open ones by default), in reading order; proposals of codes
    the current codebook no longer has are left out."""
    ref = store.resolve_coder(coder)
    if ref.id is None:
        return []
    where, params = ["p.coder_id = ?"], [ref.id]
    if segment_id is not None:
        where.append("p.segment_id = ?")
        params.append(int(segment_id))
    if open_only:
        where.append("p.id IN (SELECT id FROM open_search_proposals)")
    rows = store.db.query(_SELECT + " WHERE " + " AND ".join(where)
                          + " ORDER BY d.name, p.start_char, p.end_char, p.id", params)
    book = store.codebook()
    return [_proposal(book, r) for r in rows if r["code_id"] in book._by_id]


def open_by_segment(store: Store, coder_id: int | None) -> dict[int, list[Proposal]]:
    """The coder's open proposals grouped by segment: what the review queue offers first."""
    if coder_id is None:
        return {}
    book = store.codebook()
    out: dict[int, list[Proposal]] = {}
    for r in store.db.query(_SELECT + " WHERE p.coder_id = ? AND p.id IN (SELECT id FROM "
                            "open_search_proposals) ORDER BY p.start_char, p.end_char, p.id",
                            (coder_id,)):
        if r["code_id"] in book._by_id:
            out.setdefault(r["segment_id"], []).append(_proposal(book, r))
    return out


def decide_proposal(store: Store, coder: str, proposal_id: int, decision: str, *,
                    seconds: float | None = None, seen: Seen | None = None,
                    memo: str | None = None) -> int | None:
    """Confirm or reject one open proposal; returns the codings row the decision wrote.

    'confirmed' codes exactly the proposed span ('confirmed', source 'search'); 'rejected'
    records a rejection of the code on the segment, unless the coder already has that code on
    the segment or on a span overlapping it (a rejected hit does not contradict their own
    coding), in which case only the proposal is marked. One transaction; `coder.review.decisions.undo` takes it back and
    the proposal is open again.
    """
    if decision not in ("confirmed", "rejected"):
        raise CoderError(f"a search proposal is confirmed or rejected, not '{decision}'")
    ref = store.resolve_coder(coder)
    with store.db.transaction() as conn:
        row = store.db.one(_SELECT + " WHERE p.id = ?", (int(proposal_id),))
        if row is None:
            raise UnknownReference(f"unknown search proposal {proposal_id}",
                                   hint="it may have gone with its transcript (--replace)")
        if ref.id is None or row["coder_id"] != ref.id:
            owner = store.db.one("SELECT name FROM coders WHERE id=?", (row["coder_id"],))[0]
            raise CoderError(f"search proposal {proposal_id} is in {owner}'s review queue, "
                             f"not {ref.name}'s")
        if not row["open"]:
            raise CoderError(f"search proposal {proposal_id} is already decided "
                             f"({row['status']})", hint="undo that decision to decide again")
        last = store.db.one("SELECT COALESCE(MAX(id), 0) FROM review_actions")[0]
        if decision == "confirmed":
            coding_id = code_span(store, ref.name, int(row["document_id"]),
                                  row["start_char"], row["end_char"], row["code_id"],
                                  decision="confirmed", source=SOURCE, seconds=seconds,
                                  seen=seen, memo=memo)
        else:
            marks = ",".join("?" * len(POSITIVE))
            coded = store.db.one(
                f"SELECT 1 FROM coding_segments WHERE segment_id=? AND coder_id=? AND "
                f"code_id=? AND decision IN ({marks})",
                (row["segment_id"], ref.id, row["code_id"], *POSITIVE))
            if coded is not None:  # still one undo step, which opens the proposal again
                coding_id = None
                conn.execute("INSERT INTO review_actions (coder_id, segment_id, changes, "
                             "created_at) VALUES (?,?,?,?)", (ref.id, row["segment_id"], "[]",
                                                              now()))
            else:
                coding_id = decide(store, ref.name, row["segment_id"], row["code_id"],
                                   "rejected", seconds=seconds, source=SOURCE, seen=seen,
                                   memo=memo)
        action = store.db.one("SELECT MAX(id) FROM review_actions WHERE id > ? AND coder_id=?",
                              (last, ref.id))[0]
        conn.execute("UPDATE search_proposals SET status=?, decided_at=?, coding_id=?, "
                     "action_id=? WHERE id=?",
                     (decision, now(), coding_id, action, row["id"]))
        return coding_id
