"""Whose codings count, on which segments: the one reading of the study that the methods
analyses (co-occurrence, case matrix, saturation, model figure, summaries) share with
``coder freq``.

The coders are resolved by :func:`coder.analysis.frequency.select_coders` and the codings read
by the same query ``coder freq`` counts with (participant segments of the analysed documents;
interviewer turns and segments without a participant never count), so every table here has
the N and the coder statement of the frequency table. What this module adds is the *unit* a
rule applies to: with ``--rule all`` a segment carries a code only if every selected coder put
it there, a participant raised it only if every selected coder coded it for them (anywhere, as
``coder freq`` counts), a document likewise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from coder.analysis import frequency
from coder.errors import CoderError
from coder.store.codebook import Code, Codebook

LEVELS = ("category", "factor")
UNITS = {"segment": "segment_id", "participant": "participant_id", "document": "document_id"}


@dataclass
class Counted:
    """The codings that count, with the codebook and participants they were read with."""

    book: Codebook
    selection: frequency.Selection
    participants: pd.DataFrame            # participant_id, participant: the analysed set (N)
    codings: pd.DataFrame                 # code_id, participant_id, coder_id, segment_id, document_id
    documents: list[str] | None = None
    unattributed: int = 0
    unknown_codes: list[str] = field(default_factory=list)
    conn: object = field(default=None, repr=False)   # the study's connection, for segment text

    @property
    def N(self) -> int:
        return len(self.participants)

    @property
    def need(self) -> int:
        """How many of the selected coders must agree for a unit to count."""
        return len(self.selection.coder_ids) if self.selection.rule == "all" else 1

    def codes_at(self, level: str) -> list[Code]:
        """The codes a table at this level has rows for, in codebook order."""
        check_level(level)
        if level == "factor":
            return [c for c in self.book.codes if c.depth == 1]
        return self.book.leaves()

    def targets(self, level: str) -> pd.DataFrame:
        """The codings with ``target``: the code at ``level`` each counts for. At the category
        level a coding on a factor or group itself has no category and is left out; at the
        factor level every coding counts for its top-level code."""
        check_level(level)
        rows = self.codings.copy()
        if level == "factor":
            top = {c.id: _top(self.book, c).id for c in self.book.codes}
            rows["target"] = rows["code_id"].map(top)
        else:
            leaves = {c.id for c in self.book.leaves()}
            rows = rows[rows["code_id"].isin(leaves)].copy()
            rows["target"] = rows["code_id"]
        return rows

    def below(self) -> pd.DataFrame:
        """The codings with ``target`` for the code itself and every code above it (a factor
        counts anything below it, as ``coder freq`` does)."""
        up = {}
        for c in self.book.codes:
            chain, cur = [c.id], c
            while cur.parent_id is not None:
                cur = self.book.get(cur.parent_id)
                chain.append(cur.id)
            up[c.id] = chain
        rows = self.codings.assign(target=self.codings["code_id"].map(up)).explode("target")
        return rows.reset_index(drop=True)

    def units(self, rows: pd.DataFrame, unit: str) -> pd.DataFrame:
        """(target, unit id) pairs that count after combining the coders by the rule."""
        if unit not in UNITS:
            raise CoderError(f"unknown unit '{unit}'", hint="use " + ", ".join(UNITS))
        col = UNITS[unit]
        votes = rows[["target", col, "coder_id"]].drop_duplicates().groupby(
            ["target", col]).size()
        return votes[votes >= self.need].reset_index()[["target", col]]

    def off_level(self, level: str) -> int:
        """Codings left out at this level (on a factor or group itself, at category level)."""
        if level != "category":
            return 0
        leaves = {c.id for c in self.book.leaves()}
        return int((~self.codings["code_id"].isin(leaves)).sum())

    def notes(self, *, unit: str | None = None, level: str | None = None) -> list[str]:
        """What the table counts, in the words of the frequency table's notes."""
        out = [f"N = {self.N} participants in the analysed documents"
               + (f" ({', '.join(self.documents)})" if self.documents else "")
               + "; only participants' segments count (interviewer turns never do).",
               "Codings: " + self.selection.describe() + "."]
        caveat = getattr(self.selection, "caveat", None)   # a partial consensus, when allowed
        if caveat:
            out.append(caveat + ".")
        if self.selection.rule == "all" and len(self.selection.coder_ids) > 1 and unit:
            out.append(f"Rule all at the {unit} level: a {unit} carries a code only if every "
                       "selected coder coded it there.")
        if level and self.off_level(level):
            out.append(f"{self.off_level(level)} coding(s) on a factor or group itself (not on "
                       "one of its categories) are not counted at the category level.")
        if self.unattributed:
            out.append(f"{self.unattributed} coding(s) on segments whose speaker is not linked "
                       "to a participant are not counted.")
        if self.unknown_codes:
            out.append("Codings on codes missing from the current codebook are not counted: "
                       + ", ".join(self.unknown_codes) + ".")
        return out

    def segments(self, ids) -> pd.DataFrame:
        """segment_view rows (text, position, offsets, times) for these segment ids."""
        ids = sorted({int(i) for i in ids})
        if not ids:
            return pd.DataFrame(columns=["segment_id", "document", "position", "participant",
                                         "speaker", "start_char", "end_char", "start_time",
                                         "end_time", "text"])
        out = []
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            out.append(pd.read_sql_query(
                "SELECT segment_id, document_id, document, position, participant_id, participant,"
                " speaker, start_char, end_char, start_time, end_time, text FROM segment_view "
                "WHERE segment_id IN (%s)" % ",".join("?" * len(part)), self.conn, params=part))
        return pd.concat(out, ignore_index=True)


def check_level(level: str) -> None:
    if level not in LEVELS:
        raise CoderError(f"unknown level '{level}'", hint="use " + " or ".join(LEVELS))


def labels(codes) -> dict[str, str]:
    """code id -> its name, or its path where two of these codes share a name."""
    seen: dict[str, int] = {}
    for c in codes:
        seen[c.name.lower()] = seen.get(c.name.lower(), 0) + 1
    return {c.id: c.name if seen[c.name.lower()] == 1 else c.path for c in codes}


def _top(book: Codebook, code: Code) -> Code:
    while code.parent_id is not None:
        code = book.get(code.parent_id)
    return code


def counted(study, *, documents: list[str] | None = None, **who) -> Counted:
    """The codings that count, chosen exactly as ``coder freq`` chooses them: ``who`` are the
    keywords of :func:`coder.analysis.frequency.select_coders` (coder, coders, rule,
    consensus, include_auto, ...), with its default and its messages."""
    selection = frequency.select_coders(study, **who)
    facts = frequency._facts(study, selection, documents)
    out = Counted(book=facts.book, selection=selection,
                  participants=facts.participants.assign(
                      participant_id=facts.participants["participant_id"].astype(int)),
                  codings=facts.codings.reset_index(drop=True), documents=documents,
                  unattributed=facts.unattributed, unknown_codes=list(facts.unknown_codes),
                  conn=study.db.conn)
    return out


