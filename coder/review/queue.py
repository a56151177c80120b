"""What a coder reviews next: the queue of undecided segments in a chosen order (most
uncertain first by default), with context and suggestions, and the coder's progress."""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coder.errors import CoderError, UnknownReference

if TYPE_CHECKING:
    from coder.store import Store
    from coder.store.codebook import Codebook
from coder.review.decisions import existing_coder
from coder.review.search import Proposal, open_by_segment

ORDERS = ("uncertain", "document", "score", "random")


# -- data shapes -------------------------------------------------------------------------------
@dataclass
class Suggestion:
    code_id: str
    path: str
    name: str
    score: float
    source: str                 # codebook | classifier | blend
    rank: int
    threshold: float | None
    model_version: int | None

    @property
    def above_threshold(self) -> bool:
        """The model would assign it on its own (at or above the code's threshold)."""
        return self.score >= (self.threshold if self.threshold is not None else 0.5)


@dataclass
class QueueItem:
    segment_id: int
    document: str
    position: int
    speaker: str | None
    participant: str | None
    text: str
    previous_speaker: str | None = None
    previous_text: str | None = None
    next_speaker: str | None = None
    next_text: str | None = None
    suggestions: list[Suggestion] = field(default_factory=list)   # empty when blind
    decided: dict[str | None, str] = field(default_factory=dict)  # this coder: code -> decision
    # other coders' decisions, only with show_others: (coder, code path, decision)
    others: list[tuple[str, str | None, str]] = field(default_factory=list)
    # this coder's open proposals from `coder search --code` (coder.review.search), shown in
    # blind mode too: the coder's own search, not the machine's or another coder's view
    proposals: list[Proposal] = field(default_factory=list)


# -- the queue ---------------------------------------------------------------------------------
def code_filter(book: Codebook, patterns: list[str] | None) -> set[str] | None:
    """Code ids selected by patterns such as 'Networking/*' (a code and its subtree) or a glob."""
    if not patterns:
        return None
    chosen: set[str] = set()
    for pat in patterns:
        if any(ch in pat for ch in "*?[") and not pat.endswith("/*"):
            hits = [c.id for c in book if fnmatch.fnmatch(c.path.lower(), pat.lower())]
            if not hits:
                raise UnknownReference(f"no code matches '{pat}'",
                                       hint="see: coder codebook show STUDY")
            chosen.update(hits)
        else:
            chosen.update(c.id for c in book.match(pat))
    return chosen


def queue(study: Store, coder: str, *, order: str = "uncertain", codes: list[str] | None = None,
          documents: list[str] | None = None, blind: bool = False, seed: int = 0,
          show_others: bool = False) -> list[QueueItem]:
    """The segments this coder has still to decide, in review order.

    Interviewer turns are never queued. A segment counts as decided once the coder has any
    decision on it (on one of ``codes`` or ``no_code``, when codes are given), so the queue
    resumes where the coder left off. With ``codes``, only segments with a suggestion among them
    are queued (all segments when ``blind``, since the coder must not be steered). ``uncertain``
    puts the smallest margin between the two best scores first and segments without suggestions
    last; ``score`` the most confident first; ``random`` is a seeded shuffle. Other coders'
    decisions on a segment (``others``) are left out unless ``show_others`` (never when
    ``blind``): a coder who sees them is no longer independent of them. Segments with open
    search proposals for this coder (`coder.review.search`) come first, decided or not.
    """
    if order not in ORDERS:
        raise CoderError(f"unknown order '{order}'", hint="one of: " + ", ".join(ORDERS))
    book = study.codebook()
    wanted = code_filter(book, codes)
    cid = existing_coder(study, coder)
    segs = study.segments(documents=documents, include_interviewer=True)
    by_doc: dict[int, list[int]] = {}
    info: dict[int, Any] = {}
    for r in segs.itertuples(index=False):
        info[r.segment_id] = r
        by_doc.setdefault(r.document_id, []).append(r.segment_id)
    neighbours: dict[int, tuple[int | None, int | None]] = {}
    for ids in by_doc.values():
        for i, s in enumerate(ids):
            neighbours[s] = (ids[i - 1] if i else None, ids[i + 1] if i + 1 < len(ids) else None)

    sugg: dict[int, list[Suggestion]] = {}
    for r in study.db.query("SELECT segment_id, code_id, score, rank, source, threshold, "
                            "model_version FROM suggestions ORDER BY segment_id, rank"):
        if r["code_id"] not in book._by_id or (wanted is not None and r["code_id"] not in wanted):
            continue
        code = book.get(r["code_id"])
        sugg.setdefault(r["segment_id"], []).append(Suggestion(
            code_id=code.id, path=code.path, name=code.name, score=float(r["score"]),
            source=r["source"], rank=int(r["rank"]), threshold=r["threshold"],
            model_version=r["model_version"]))
    mine: dict[int, dict[str | None, str]] = {}
    others: dict[int, list[tuple[str, str | None, str]]] = {}
    for r in study.db.query("SELECT k.segment_id, k.code_id, k.decision, c.id AS cid, "
                            "c.name FROM codings k JOIN coders c ON c.id = k.coder_id"):
        if r["cid"] == cid:
            mine.setdefault(r["segment_id"], {})[r["code_id"]] = r["decision"]
        else:
            path = book.get(r["code_id"]).path if r["code_id"] in book._by_id else r["code_id"]
            others.setdefault(r["segment_id"], []).append((r["name"], path, r["decision"]))

    offered: dict[int, list[Proposal]] = {
        seg: [p for p in found if wanted is None or p.code_id in wanted]
        for seg, found in open_by_segment(study, cid).items()}

    def decided(seg_id: int) -> bool:
        got = mine.get(seg_id, {})
        if wanted is None:
            return bool(got)
        return any(k is None or k in wanted for k in got)

    items = []
    for seg_id, r in info.items():
        proposed = offered.get(seg_id, [])
        if not proposed and (r.role != "participant" or decided(seg_id)):
            continue
        if not proposed and wanted is not None and not blind and seg_id not in sugg:
            continue
        prev_id, next_id = neighbours[seg_id]
        prev, nxt = info.get(prev_id), info.get(next_id)
        items.append(QueueItem(
            segment_id=int(seg_id), document=r.document, position=int(r.position),
            speaker=r.speaker, participant=r.participant, text=r.text,
            previous_speaker=prev.speaker if prev is not None else None,
            previous_text=prev.text if prev is not None else None,
            next_speaker=nxt.speaker if nxt is not None else None,
            next_text=nxt.text if nxt is not None else None,
            suggestions=sorted(sugg.get(seg_id, []), key=lambda s: (-s.score, s.rank)),
            decided=dict(mine.get(seg_id, {})),
            others=others.get(seg_id, []) if show_others and not blind else [],
            proposals=proposed))

    def margin(item: QueueItem) -> tuple:
        s = [x.score for x in item.suggestions]
        if not s:
            return (1, 0.0, item.document, item.position)
        return (0, s[0] - (s[1] if len(s) > 1 else 0.0), item.document, item.position)

    if order == "uncertain":
        items.sort(key=margin)
    elif order == "score":
        items.sort(key=lambda it: (-(it.suggestions[0].score if it.suggestions else -1.0),
                                   it.document, it.position))
    elif order == "random":
        items.sort(key=lambda it: (it.document, it.position))
        random.Random(seed).shuffle(items)
    else:
        items.sort(key=lambda it: (it.document, it.position))
    items.sort(key=lambda it: not it.proposals)  # stable: search proposals first
    if blind:
        for it in items:
            it.suggestions = []
    return items


def progress(study: Store, coder: str, *, codes: list[str] | None = None,
             documents: list[str] | None = None) -> tuple[int, int]:
    """(segments this coder has decided, codable segments) over the given documents.

    Counted in SQL, not from the segments table in memory: the terminal review asks after
    every key (a few ms on 8,000 segments)."""
    wanted = code_filter(study.codebook(), codes)
    cid = existing_coder(study, coder)
    where, params = ["v.role = 'participant'"], []
    if documents:
        study.check_documents(documents)
        where.append("v.document IN (%s)" % ",".join("?" * len(documents)))
        params += documents
    total = study.db.one("SELECT COUNT(*) FROM segment_view v WHERE " + " AND ".join(where),
                         params)[0]
    if cid is None:
        return 0, total
    mine = ["k.coder_id = ?"]
    if wanted is not None:
        mine.append("(k.code_id IS NULL OR k.code_id IN (%s))" % ",".join("?" * len(wanted)))
    done = study.db.one(
        "SELECT COUNT(DISTINCT k.segment_id) FROM codings k JOIN segment_view v ON "
        "v.segment_id = k.segment_id WHERE " + " AND ".join(where + mine),
        [*params, cid, *sorted(wanted or [])])[0]
    return done, total


def queue_ids(study: Store, coder: str, *, order: str = "uncertain",
              codes: list[str] | None = None, documents: list[str] | None = None,
              blind: bool = False, seed: int = 0) -> list[int]:
    """The segment ids of :func:`queue`, in the same order, without building the items: what
    a face needs after every decision (the web page asks for the next card each time). Worked
    out in SQL (in one query when every suggestion counts), so it stays fast at tens of
    thousands of segments; tests check it against :func:`queue` for every order."""
    if order not in ORDERS:
        raise CoderError(f"unknown order '{order}'", hint="one of: " + ", ".join(ORDERS))
    book = study.codebook()
    wanted = code_filter(book, codes)
    cid = existing_coder(study, coder)
    study.check_documents(documents)
    allowed = sorted(wanted) if wanted is not None else [c.id for c in book.codes]
    conn = study.db.conn
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _queue_codes (id TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM temp._queue_codes")
    conn.executemany("INSERT OR IGNORE INTO temp._queue_codes VALUES (?)", [(c,) for c in allowed])
    offered = {seg for seg, found in open_by_segment(study, cid).items()
               if any(wanted is None or p.code_id in wanted for p in found)}
    foreign = study.db.one("SELECT 1 FROM suggestions WHERE code_id NOT IN "
                           "(SELECT id FROM temp._queue_codes) LIMIT 1")
    if wanted is None and foreign is None:
        out = _queue_ids_sql(study, cid, order, documents, offered)
    else:
        out = _queue_ids_frame(study, cid, order, documents, wanted, blind, offered)
    if order == "random":
        random.Random(seed).shuffle(out)
    out.sort(key=lambda s: s not in offered)  # stable: search proposals first
    return out


def _queue_ids_sql(study: Store, cid: int | None, order: str, documents: list[str] | None,
                   offered: set[int]) -> list[int]:
    """Every suggestion counts, so a segment's two best are its ranks 1 and 2 (ranks follow the
    scores, ties by rank, as queue() sorts them)."""
    conn = study.db.conn
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _queue_offered (id INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM temp._queue_offered")
    conn.executemany("INSERT INTO temp._queue_offered VALUES (?)", [(s,) for s in offered])
    where, params = [], [cid if cid is not None else -1]
    if documents:
        where.append("d.name IN (%s)" % ",".join("?" * len(documents)))
        params += list(documents)
    keys = {"uncertain": "g1.score IS NULL, COALESCE(g1.score - COALESCE(g2.score, 0.0), 0.0), ",
            "score": "-COALESCE(g1.score, -1.0), "}.get(order, "")
    sql = ("SELECT s.id FROM segments s JOIN documents d ON d.id = s.document_id "
           "LEFT JOIN speakers sp ON sp.id = s.speaker_id "
           "LEFT JOIN suggestions g1 ON g1.segment_id = s.id AND g1.rank = 1 "
           "LEFT JOIN suggestions g2 ON g2.segment_id = s.id AND g2.rank = 2 "
           "WHERE ((COALESCE(sp.role, 'participant') = 'participant' AND NOT EXISTS "
           "(SELECT 1 FROM codings k WHERE k.segment_id = s.id AND k.coder_id = ?)) "
           "OR s.id IN (SELECT id FROM temp._queue_offered))"
           + "".join(" AND " + w for w in where)
           + f" ORDER BY {keys}d.name, s.position")
    return [r[0] for r in conn.execute(sql, params)]


def _queue_ids_frame(study: Store, cid: int | None, order: str, documents: list[str] | None,
                     wanted: set[str] | None, blind: bool, offered: set[int]) -> list[int]:
    """With a code filter, or suggestions on codes the codebook no longer has: the two best
    suggestions among the counted codes, in SQL, and the rest in pandas."""
    import pandas as pd

    where, params = "", []
    if documents:
        where = " WHERE v.name IN (%s)" % ",".join("?" * len(documents))
        params = list(documents)
    segs = pd.read_sql_query(
        "SELECT s.id AS segment_id, v.name AS document, s.position, "
        "COALESCE(sp.role, 'participant') AS role FROM segments s "
        "JOIN documents v ON v.id = s.document_id LEFT JOIN speakers sp ON sp.id = s.speaker_id"
        + where, study.db.conn, params=params)
    top = pd.read_sql_query(
        "SELECT segment_id, score, r FROM (SELECT segment_id, score, ROW_NUMBER() OVER "
        "(PARTITION BY segment_id ORDER BY score DESC, rank) AS r FROM suggestions "
        "WHERE code_id IN (SELECT id FROM temp._queue_codes)) WHERE r <= 2", study.db.conn)
    first = top[top.r == 1].set_index("segment_id")["score"]
    second = top[top.r == 2].set_index("segment_id")["score"]
    if cid is None:
        decided: set[int] = set()
    elif wanted is None:
        decided = {r[0] for r in study.db.query(
            "SELECT DISTINCT segment_id FROM codings WHERE coder_id=?", (cid,))}
    else:
        decided = {r[0] for r in study.db.query(
            "SELECT DISTINCT segment_id FROM codings WHERE coder_id=? AND (code_id IS NULL OR "
            "code_id IN (SELECT id FROM temp._queue_codes))", (cid,))}
    ids = segs["segment_id"]
    has = ids.isin(first.index)
    keep = ids.isin(offered) | ((segs["role"] == "participant") & ~ids.isin(decided)
                                & (has | (wanted is None) | blind))
    segs = segs[keep.to_numpy()].copy()
    segs["top"] = segs["segment_id"].map(first)
    if order == "uncertain":
        segs["none"] = segs["top"].isna()
        segs["margin"] = (segs["top"] - segs["segment_id"].map(second).fillna(0.0)).fillna(0.0)
        segs = segs.sort_values(["none", "margin", "document", "position"], kind="stable")
    elif order == "score":
        segs["key"] = -segs["top"].fillna(-1.0)
        segs = segs.sort_values(["key", "document", "position"], kind="stable")
    else:
        segs = segs.sort_values(["document", "position"], kind="stable")
    return segs["segment_id"].astype(int).tolist()
