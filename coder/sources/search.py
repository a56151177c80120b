"""Text search over the transcripts: every place a word, a phrase or a pattern occurs, in context.

The words search runs on the SQLite FTS5 index ``segments_fts`` (migration 0009), which triggers
keep current on every import, ``--replace`` and removal, so it never needs rebuilding. Its
tokenizer (unicode61, ``remove_diacritics 2``) folds case and accents: ``cafe`` finds ``Café``,
``kotelezo`` finds ``Kötelező``. The syntax is FTS5's: words (all must occur in the segment),
``"exact phrases"``, ``prefix*``, ``NEAR(word1 word2, 5)``, ``OR``/``NOT`` in capitals. A hit is
one run of matched words, found with FTS5's ``highlight()`` so its characters are exactly the
stored text's; the words of one ``NEAR`` group make one hit. With ``regex=True`` the query is a
Python regular expression (case-insensitive) matched against each segment's text instead.

Offsets are document offsets (code points into ``documents.text``, as segment and coding offsets
are), so a hit can be coded as a span (`coder.review.spans`). This module reads segments only;
turning hits into proposals for a coder's review is `coder.review.search`.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from typing import TYPE_CHECKING, Any

import pandas as pd

from coder.errors import CoderError, UnknownReference

if TYPE_CHECKING:
    from coder.store import Store

ROLES = ("participant", "interviewer")
COLUMNS = ["document", "position", "speaker", "role", "participant", "segment_id", "start_char",
           "end_char", "hit", "left", "right"]
SYNTAX = ('words (all must occur), "an exact phrase", prefix*, NEAR(word1 word2, 5), '
          'OR and NOT in capitals; put words with punctuation in double quotes ("home-office"), '
          "or use --regex for a regular expression")
# highlight() markers: private-use characters; a text that holds them gets others (_marked)
MARKERS = (("\ue000", "\ue001"), ("\ue002", "\ue003"), ("\x02", "\x03"), ("\x1c", "\x1d"))
NEAR_DEFAULT = 10  # FTS5's distance when NEAR(...) gives none


def _filters(store: Store, speaker: str | None,
             documents: list[str] | None) -> tuple[list[str], list[Any]]:
    """SQL conditions on segment_view ``v`` for the speaker and document filters."""
    where: list[str] = []
    params: list[Any] = []
    if documents:
        store.check_documents(documents)
        where.append("v.document IN (%s)" % ",".join("?" * len(documents)))
        params += list(documents)
    if speaker is not None and str(speaker).strip():
        speaker = str(speaker).strip()
        if speaker.lower() in ROLES:
            where.append("v.role = ?")
            params.append(speaker.lower())
        else:
            if store.db.one("SELECT 1 FROM speakers WHERE label = ? COLLATE NOCASE",
                            (speaker,)) is None:
                labels = [r[0] for r in store.db.query(
                    "SELECT DISTINCT label FROM speakers ORDER BY label LIMIT 10")]
                raise UnknownReference(
                    f"no speaker labelled '{speaker}'",
                    hint="give a label (" + (", ".join(labels) or "none imported yet")
                         + ") or a role: participant, interviewer")
            where.append("v.speaker = ? COLLATE NOCASE")
            params.append(speaker)
    return where, params


def query_error(query: str, error: sqlite3.Error) -> CoderError:
    """What is wrong with a search FTS5 refused, in words, with the syntax as the hint."""
    text = str(error)
    column = re.match(r"no such column: (.+)", text)
    if column:
        what = (f"'{column.group(1)}' is read as a column name (a '-' or ':' in the search is "
                "syntax)")
    elif "unterminated string" in text:
        what = "a double quote is not closed"
    elif 'syntax error near ""' in text:
        what = "it ends too early (an operator or a bracket without its words)"
    else:
        what = text.replace("fts5: ", "")
    return CoderError(f"search '{query}' is not valid search syntax: {what}", hint=SYNTAX)


def _runs(marked: str, text: str, open_: str, close: str) -> list[tuple[int, int]] | None:
    """The marked runs of a highlight() result as [start, end) into ``text``; None when the text
    itself holds a marker (the caller asks again with other markers)."""
    if open_ in text or close in text:
        return None
    runs, plain, start = [], 0, None
    for part in re.split(f"([{open_}{close}])", marked):
        if part == open_:
            start = plain
        elif part == close:
            if start is not None:
                runs.append((start, plain))
            start = None
        else:
            plain += len(part)
    return runs if plain == len(text) else None


def _marked(store: Store, segment_id: int, match: str, text: str) -> list[tuple[int, int]]:
    """One segment's marked runs, with markers its text does not hold."""
    for open_, close in MARKERS:
        if open_ in text or close in text:
            continue
        row = store.db.one("SELECT highlight(segments_fts, 0, ?, ?) FROM segments_fts WHERE "
                           "segments_fts MATCH ? AND rowid = ?", (open_, close, match, segment_id))
        runs = _runs(row[0], text, open_, close) if row is not None else []
        if runs is not None:
            return runs
    return []


def _near_distance(query: str) -> int | None:
    """The largest NEAR distance in a query (FTS5's 10 for a group that gives none), None
    without NEAR."""
    groups = len(re.findall(r"\bNEAR\s*\(", query))
    if not groups:
        return None
    found = [int(n) for n in re.findall(r",\s*(\d+)\s*\)", query)]
    if len(found) < groups:
        found.append(NEAR_DEFAULT)
    return max(found)


def _fold(text: str) -> str:
    """Case and accents folded, as the index's tokenizer folds them."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", text.casefold())
                   if not unicodedata.combining(ch))


def _join_near(runs: list[tuple[int, int]], text: str, distance: int) -> list[tuple[int, int]]:
    """Words of one NEAR group as one hit: a run joins the hit before it when it is at most
    ``distance`` words after it and is not a word that hit already holds (then it starts the
    next group: "meetings ... fatigue. Video meetings ... fatigue" is two hits)."""
    out: list[tuple[int, int]] = []
    terms: set[str] = set()
    for start, end in runs:
        term = _fold(text[start:end])
        if (out and term not in terms
                and len(re.findall(r"\w+", text[out[-1][1]:start])) <= distance):
            out[-1] = (out[-1][0], end)
            terms.add(term)
        else:
            out.append((start, end))
            terms = {term}
    return out


def _fts_hits(store: Store, query: str, where: list[str],
              params: list[Any]) -> list[tuple[Any, int, int]]:
    open_, close = MARKERS[0]
    sql = ("SELECT v.segment_id, v.document_id, v.document, v.position, v.speaker, v.role, "
           "v.participant, v.start_char, v.text, highlight(segments_fts, 0, ?, ?) AS marked "
           "FROM segments_fts JOIN segment_view v ON v.segment_id = segments_fts.rowid "
           "WHERE segments_fts MATCH ?" + "".join(" AND " + w for w in where)
           + " ORDER BY v.document, v.position")
    try:
        rows = store.db.query(sql, [open_, close, query, *params])
    except sqlite3.OperationalError as e:
        raise query_error(query, e) from None
    near = _near_distance(query)
    hits = []
    for r in rows:
        runs = _runs(r["marked"], r["text"], open_, close)
        if runs is None:
            runs = _marked(store, r["segment_id"], query, r["text"])
        if near is not None:
            runs = _join_near(runs, r["text"], near)
        hits += [(r, a, b) for a, b in runs]
    return hits


_DETAILS = ("SELECT v.segment_id, v.document_id, v.document, v.position, v.speaker, v.role, "
            "v.participant, v.start_char, v.text FROM segment_view v")


def _regex_hits(store: Store, pattern: str, where: list[str],
                params: list[Any]) -> list[tuple[Any, int, int]]:
    try:
        rx = re.compile(pattern, re.IGNORECASE)
    except re.error as e:
        raise CoderError(f"'{pattern}' is not a regular expression: {e}",
                         hint="Python's re syntax, e.g. 'home[- ]?office'; without --regex the "
                              "search takes words and \"phrases\"") from None
    # every text is read, so read only ids and texts; the rest only for segments with a match
    sql = ("SELECT v.segment_id, v.text FROM segment_view v WHERE " + " AND ".join(where)
           if where else "SELECT id, text FROM segments")
    found: dict[int, list[tuple[int, int]]] = {}
    for seg_id, text in store.db.query(sql, params):
        spans = [(m.start(), m.end()) for m in rx.finditer(text) if m.end() > m.start()]
        if spans:
            found[seg_id] = spans
    ids = sorted(found)
    rows = []
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        rows += store.db.query(_DETAILS + " WHERE v.segment_id IN (%s)"
                               % ",".join("?" * len(chunk)), chunk)
    rows.sort(key=lambda r: (r["document"], r["position"]))
    return [(r, a, b) for r in rows for a, b in found[r["segment_id"]]]


_SPACES = re.compile(r"\s+")


def _squeeze(text: str) -> str:
    return _SPACES.sub(" ", text)


def search(store: Store, query: str, *, regex: bool = False, speaker: str | None = None,
           documents: list[str] | None = None, window: int = 60) -> pd.DataFrame:
    """Every hit of ``query`` in the study's segments, in reading order.

    One row per hit: document, position, speaker, role, participant, segment_id, start_char and
    end_char (document offsets of the hit, end exclusive), hit (its text), left and right
    (``window`` characters of the document either side, white space squeezed). ``speaker``: a
    speaker label, or a role ('participant', 'interviewer'); ``documents``: document names.
    A search FTS5 cannot read, or a bad regular expression, is a `CoderError` saying what is
    wrong, with the syntax as its hint.
    """
    query = (query or "").strip()
    if not query:
        raise CoderError("nothing to search for", hint=SYNTAX)
    if window < 0:
        raise CoderError("the context window must be 0 or more characters")
    where, params = _filters(store, speaker, documents)
    hits = (_regex_hits if regex else _fts_hits)(store, query, where, params)
    texts: dict[int, str] = {}
    doc_ids = sorted({r["document_id"] for r, _, _ in hits})
    for i in range(0, len(doc_ids), 500):
        chunk = doc_ids[i:i + 500]
        texts.update((row["id"], row["text"]) for row in store.db.query(
            "SELECT id, text FROM documents WHERE id IN (%s)" % ",".join("?" * len(chunk)),
            chunk))
    records = []
    for r, a, b in hits:
        text = texts[r["document_id"]]
        start, end = r["start_char"] + a, r["start_char"] + b
        records.append({
            "document": r["document"], "position": r["position"], "speaker": r["speaker"],
            "role": r["role"], "participant": r["participant"], "segment_id": r["segment_id"],
            "start_char": start, "end_char": end, "hit": text[start:end],
            "left": _squeeze(text[max(0, start - window):start]),
            "right": _squeeze(text[end:end + window])})
    df = pd.DataFrame.from_records(records, columns=COLUMNS)
    for col in ("position", "segment_id", "start_char", "end_char"):
        df[col] = df[col].astype("int64")
    for col in ("speaker", "participant"):
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    df.attrs.update(query=query, regex=regex, speaker=speaker, documents=documents)
    return df


# a sentence ends after . ! ? or … (and any closing quotes or brackets) followed by white space
_SENTENCE_END = re.compile(r"(?<=[.!?\u2026])[\"'\u201d\u2019)\]]*\s+")


def sentence_around(text: str, seg_start: int, seg_end: int, start: int,
                    end: int) -> tuple[int, int]:
    """The sentence(s) of a segment holding [start, end), as document offsets: from the start
    of the sentence where the span starts to the end of the one where it ends. Sentences end at
    . ! ? or … before white space (a simple rule, fast enough for thousands of hits; an
    abbreviation such as "Dr." ends one too), and never reach outside the segment."""
    first, last = seg_start, seg_end
    for m in _SENTENCE_END.finditer(text, seg_start, seg_end):
        if m.end() <= start:
            first = m.end()
        elif m.start() >= end:
            last = m.start()
            break
    while last > first and text[last - 1].isspace():
        last -= 1
    return min(first, start), max(last, end)
