"""What a coder could see when deciding, and whether two coders' decisions were independent.

Each decision made in the terminal review, on the web page or in a review sheet carries a
:class:`Seen` (table ``decision_contexts``, ``codings.context_id``): blind or not, whether other
coders' codes were shown and whose were on screen for that segment, the model version of the
suggestions shown and the coders that model learned from. :func:`independence` reads them
back for a pair of coders, so `coder agree` can say "alice & bob: independent" or "bob saw
alice's codes on 12 segments and suggestions learned from alice on 30". Decisions without a
record (imported, or made before coder recorded this) are counted as not known, never as
independent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coder.errors import CoderError
from coder.store.db import now

if TYPE_CHECKING:
    from coder.store import Store

FACES = ("terminal", "web", "sheet")


@dataclass(frozen=True)
class Seen:
    """What was on screen (or in the sheet) when a decision was made."""

    face: str                               # terminal, web, sheet
    blind: bool = False
    others_shown: bool = False              # the face showed other coders' codes
    others: tuple[str, ...] = ()            # coders whose codes on this segment were shown
    model_version: int | None = None        # of the suggestions shown; None: none shown
    model_coders: tuple[str, ...] = ()      # the coders that model learned from


def model_coders(study: Store, version: int | None) -> tuple[str, ...]:
    """The coders a model version learned from: its recorded training coders who had made a
    decision by the time it was trained. A codebook (zero-shot) model learned from nobody."""
    if version is None:
        return ()
    row = study.db.one("SELECT kind, trained_on, created_at FROM models WHERE version=?",
                       (int(version),))
    if row is None or row["kind"] != "trained":
        return ()
    names = json.loads(row["trained_on"] or "{}").get("coders", [])
    out = []
    for name in names:
        hit = study.db.one(
            "SELECT 1 FROM coding_history h JOIN coders c ON c.id = h.coder_id WHERE c.name=? "
            "AND h.decision IN ('confirmed','added','rejected','no_code') AND "
            "substr(h.recorded_at, 1, 19) <= substr(?, 1, 19) LIMIT 1", (name, row["created_at"]))
        if hit is not None:
            out.append(name)
    return tuple(sorted(out))


def seen(study: Store, face: str, *, blind: bool = False, others_shown: bool = False,
         others=(), model_versions=()) -> Seen:
    """A :class:`Seen` from what a face displayed: the other coders on screen and the model
    versions of the suggestions shown (the coders those models learned from are looked up)."""
    versions = sorted({int(v) for v in model_versions if v is not None})
    learned: set[str] = set()
    for v in versions:
        learned.update(model_coders(study, v))
    return Seen(face=face, blind=bool(blind), others_shown=bool(others_shown) and not blind,
                others=tuple(sorted(set(others))) if others_shown and not blind else (),
                model_version=versions[-1] if versions and not blind else None,
                model_coders=tuple(sorted(learned)) if not blind else ())


def seen_on(study: Store, coder: str, segment_id: int, face: str, *, blind: bool = False,
            show_others: bool = False, codes: set[str] | None = None) -> Seen:
    """What a review card of ``segment_id`` shows this coder now (the web page's card)."""
    versions = [] if blind else [r["model_version"] for r in study.db.query(
        "SELECT code_id, model_version FROM suggestions WHERE segment_id=?", (int(segment_id),))
        if codes is None or r["code_id"] in codes]
    others = [] if blind or not show_others else [r["name"] for r in study.db.query(
        "SELECT DISTINCT c.name FROM codings k JOIN coders c ON c.id = k.coder_id "
        "WHERE k.segment_id=? AND c.name != ?", (int(segment_id), coder))]
    return seen(study, face, blind=blind, others_shown=show_others, others=others,
                model_versions=versions)


def context_id(study: Store, coder_id: int, segment_id: int, what: Seen, *,
               create: bool = True) -> int | None:
    """The ``decision_contexts`` row for this view (the coder's last one if identical; a new
    one unless ``create`` is False, then None); inside the caller's transaction."""
    values = (what.face, int(what.blind), int(what.others_shown), json.dumps(list(what.others)),
              what.model_version, json.dumps(list(what.model_coders)))
    row = study.db.one(
        "SELECT id, face, blind, others_shown, others, model_version, model_coders FROM "
        "decision_contexts WHERE coder_id=? AND segment_id=? ORDER BY id DESC LIMIT 1",
        (coder_id, segment_id))
    if row is not None and tuple(row)[1:] == values:
        return row["id"]
    if not create:
        return None
    return study.db.execute(
        "INSERT INTO decision_contexts (coder_id, segment_id, face, blind, others_shown, others,"
        " model_version, model_coders, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
        (coder_id, segment_id, *values, now())).lastrowid


# -- independence of two coders ----------------------------------------------------------------
def independence(study: Store, coder_a: str, coder_b: str) -> dict[str, Any]:
    """Whether two coders decided the segments they both decided without seeing each other.

    Over the segments both decided (bulk 'auto' rows left out, as agreement does), per coder:
    ``saw`` the segments where the other's codes were on their screen, ``learned_from`` those
    where they were shown suggestions of a model trained on the other's decisions,
    ``suggestions_shown`` those where they saw any suggestion, ``unrecorded`` those with a
    decision whose context was not recorded (``unrecorded_either``: for one or both).
    ``independent`` is True when none saw or learned
    from the other and every decision has a record, False when one did, None when not known.
    """
    ids = {study.coder_id(c, create=False): study.resolve_coder(c).name
           for c in (coder_a, coder_b)}
    if len(ids) < 2:
        raise CoderError("independence compares two different coders",
                         hint=f"'{coder_a}' and '{coder_b}' are one coder")
    names = list(ids.values())
    segs: dict[str, set[int]] = {n: set() for n in names}
    flags: dict[str, dict[str, set[int]]] = {
        n: {"saw": set(), "learned_from": set(), "suggestions_shown": set(), "unrecorded": set()}
        for n in names}
    rows = study.db.query(
        "SELECT k.segment_id, k.coder_id, k.context_id, x.others, x.model_version, "
        "x.model_coders FROM codings k LEFT JOIN decision_contexts x ON x.id = k.context_id "
        "WHERE k.coder_id IN (?, ?) AND k.decision != 'auto'", tuple(ids))
    for r in rows:
        me = ids[r["coder_id"]]
        other = names[1] if me == names[0] else names[0]
        seg = r["segment_id"]
        segs[me].add(seg)
        if r["context_id"] is None:
            flags[me]["unrecorded"].add(seg)
            continue
        if other in json.loads(r["others"]):
            flags[me]["saw"].add(seg)
        if r["model_version"] is not None:
            flags[me]["suggestions_shown"].add(seg)
            if other in json.loads(r["model_coders"]):
                flags[me]["learned_from"].add(seg)
    shared = segs[names[0]] & segs[names[1]]
    out: dict[str, Any] = {"coders": names, "shared_segments": len(shared)}
    for kind in ("saw", "learned_from", "suggestions_shown", "unrecorded"):
        out[kind] = {n: len(flags[n][kind] & shared) for n in names}
    out["unrecorded_either"] = len((flags[names[0]]["unrecorded"]
                                    | flags[names[1]]["unrecorded"]) & shared)
    exposed = any(out["saw"].values()) or any(out["learned_from"].values())
    if exposed:
        out["independent"] = False
    elif not shared or out["unrecorded_either"]:
        out["independent"] = None
    else:
        out["independent"] = True
    return out


def _segments(n: int) -> str:
    return f"{n} segment{'s' if n != 1 else ''}"


def independence_line(result: dict[str, Any]) -> str:
    """One line for `coder agree`: "alice & bob: independent (34 segments both decided)"."""
    a, b = result["coders"]
    head = f"{a} & {b}: "
    shared = result["shared_segments"]
    if not shared:
        return head + "no segment decided by both"
    parts = []
    for me, other in ((a, b), (b, a)):
        saw, learned = result["saw"][me], result["learned_from"][me]
        if saw and learned:
            parts.append(f"{me} saw {other}'s codes on {_segments(saw)} and suggestions "
                         f"learned from {other} on {learned}")
        elif saw:
            parts.append(f"{me} saw {other}'s codes on {_segments(saw)}")
        elif learned:
            parts.append(f"{me} saw suggestions learned from {other} on {_segments(learned)}")
    unknown = result["unrecorded_either"]
    if parts:
        text = head + "; ".join(parts)
        if unknown:
            text += f"; not recorded on {_segments(unknown)}"
        return text
    if unknown:
        return (head + f"not known on {unknown} of {_segments(shared)} both decided (what was "
                "shown was not recorded: imported decisions, or made before coder recorded it)")
    return head + f"independent ({_segments(shared)} both decided)"
