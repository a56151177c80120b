"""The code x case matrix: one row per code (factors, groups and categories in codebook order;
a parent carries everything below it, as ``coder freq`` counts), one column per case.

Cases are participants, documents, or the values of a participant attribute. A cell is, by
``values``:

* ``presence``: 1 if the case raised the code, else 0; for an attribute value, the number of
  its participants who raised it (its n, with the group's N in the header);
* ``count``: the coded segments;
* ``characters``: the characters of those segments (the stored text, each segment once).

Codings count as in ``coder freq`` (the same coder options); with ``rule="all"`` presence needs
every selected coder on that case, a segment every selected coder on that segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from coder.analysis import counting, frequency, outputs
from coder.errors import CoderError

VALUES = ("presence", "count", "characters")
FIXED = ["id", "path", "factor", "name", "level", "depth"]


@dataclass
class CaseMatrix:
    frame: pd.DataFrame          # FIXED columns, one column per case, then Total
    cases: list[str]             # the case columns, in order
    by: str
    values: str
    notes: list[str]
    N: int
    coders: list[str]
    groups: dict[str, int] | None = None   # attribute value -> its N

    def tables(self) -> outputs.Tables:
        labels = {"name": "Code", "level": "Level"}
        if self.groups:
            labels.update({v: f"{v} (N = {n})" for v, n in self.groups.items()})
        hidden = ["id", "path", "factor", "depth"]
        main = outputs.Table("Matrix", self.frame, caption="", labels=labels, hidden=hidden,
                             indent="name")
        sheets = []
        for factor, block in self.frame.groupby("factor", sort=False):
            sheets.append(outputs.Table(factor, block.reset_index(drop=True),
                                        caption=f"{factor}: {self._what()}", labels=labels))
        return outputs.Tables(
            title=f"Codes by {self.by}: {self._what()} (N = {self.N})", tables=[main],
            notes=self.notes, sheets=sheets,
            meta={"N": self.N, "by": self.by, "values": self.values, "cases": self.cases,
                  "groups": self.groups, "coders": self.coders})

    def _what(self) -> str:
        return {"presence": "participants raising each code" if self.groups else
                f"presence (1 = the {self.by} raised the code)",
                "count": "coded segments", "characters": "characters of coded segments"}[
                    self.values]


def case_matrix(study, *, by: str = "participant", values: str = "presence",
                documents: list[str] | None = None, **who) -> CaseMatrix:
    """The code x case matrix; ``who`` as for :func:`coder.analysis.frequency.frequencies`."""
    if values not in VALUES:
        raise CoderError(f"unknown values '{values}'", hint="use " + ", ".join(VALUES))
    if not by:
        raise CoderError("--by needs participant, document or a participant attribute")
    groups = frequency._groups(study, by) if by not in ("participant", "document") else None
    data = counting.counted(study, documents=documents, **who)
    rows = data.below()
    people = data.participants.sort_values("participant")
    names = dict(zip(people["participant_id"], people["participant"]))
    segs = data.units(rows, "segment")
    info = data.segments(segs["segment_id"]).set_index("segment_id")
    segs = segs.assign(participant_id=segs["segment_id"].map(info["participant_id"]),
                       document=segs["segment_id"].map(info["document"]),
                       chars=segs["segment_id"].map(info["text"].str.len()))

    group_n = None
    if by == "participant":
        cases = list(people["participant"])
        held = data.units(rows, "participant")
        held["case"] = held["participant_id"].map(names)
        segs["case"] = segs["participant_id"].map(names)
    elif by == "document":
        cases = _documents(study, documents)
        held = data.units(rows, "document")
        doc_names = dict(study.db.query("SELECT id, name FROM documents"))
        held["case"] = held["document_id"].map(doc_names)
        segs["case"] = segs["document"]
    else:
        present = groups[groups["participant_id"].isin(set(names))]
        value_of = dict(zip(present["participant_id"], present["value"]))
        cases = sorted(present["value"].unique(), key=lambda v: (v == "(none)", str(v)))
        group_n = {v: int((present["value"] == v).sum()) for v in cases}
        held = data.units(rows, "participant")
        held["case"] = held["participant_id"].map(value_of)
        segs["case"] = segs["participant_id"].map(value_of)

    if values == "presence":
        cells = held.groupby(["target", "case"]).size()
        total = held.groupby("target").size()
    elif values == "count":
        cells = segs.groupby(["target", "case"]).size()
        total = segs.groupby("target").size()
    else:
        cells = segs.groupby(["target", "case"])["chars"].sum()
        total = segs.groupby("target")["chars"].sum()
    cells, total = cells.to_dict(), total.to_dict()
    parents = {c.parent_id for c in data.book.codes if c.parent_id is not None}
    out = []
    for c in data.book.codes:
        row = {"id": c.id, "path": c.path, "factor": counting._top(data.book, c).name,
               "name": c.name, "level": frequency.level_name(data.book, c, parents),
               "depth": c.depth}
        for case in cases:
            row[_column(case)] = int(cells.get((c.id, case), 0))
        row["Total"] = int(total.get(c.id, 0))
        out.append(row)
    frame = pd.DataFrame(out, columns=[*FIXED, *[_column(c) for c in cases], "Total"])
    unit = {"participant": "participant", "document": "document"}.get(by, "participant")
    what = {"presence": (f"presence: 1 if the {by} raised the code (a parent: anything below "
                         "it); Total = " + (f"{by}s" if groups is None else "participants")
                         + " raising it." if groups is None else
                         "participants of each group raising the code (a parent: anything "
                         "below it); the header gives the group's N; Total = n of N."),
            "count": "coded segments (a parent: segments coded with anything below it, each "
                     "once).",
            "characters": "characters of the coded segments' text, each segment once."}[values]
    notes = data.notes(unit=unit if values == "presence" else "segment") + [
        f"Cells: {what}"]
    return CaseMatrix(frame, [_column(c) for c in cases], by, values, notes, data.N,
                      list(data.selection.coders), group_n)


def _column(case) -> str:
    name = str(case)
    return f"{name} (case)" if name in FIXED or name == "Total" else name


def _documents(study, documents: list[str] | None) -> list[str]:
    """The analysed documents: those where a participant speaks."""
    rows = study.db.query(
        "SELECT DISTINCT document FROM segment_view WHERE role = 'participant' "
        "AND participant_id IS NOT NULL ORDER BY document")
    names = [r["document"] for r in rows]
    return [n for n in names if n in documents] if documents else names
