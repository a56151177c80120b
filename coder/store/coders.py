"""Coder names as people type them: one person, one name.

``--coder Alice`` where ``alice`` exists means alice (the stored spelling is kept); a name that
differs from an existing one only by case, spaces or punctuation (``a.lice``, ``Alice_``) is
refused, because it is almost certainly the same person; a genuinely new name is accepted and
reported as new, with a "did you mean" when it resembles an existing one (``alice2``).
"""

from __future__ import annotations

import difflib
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from coder.errors import CoderError

if TYPE_CHECKING:
    from coder.store.db import Database

SIMILAR = 0.75  # difflib ratio of two name keys above which a new name gets a "did you mean"


def coder_key(name: str) -> str:
    """What two spellings of one name share: case, spaces and punctuation taken out."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


def _fold(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


@dataclass
class CoderRef:
    """A coder name resolved against a study: the stored spelling, and whether it is new."""

    name: str                   # the spelling to use (an existing coder's, or the one given)
    id: int | None              # None: not in the study (yet)
    given: str                  # what was typed
    similar: list[str] = field(default_factory=list)  # existing names a new one resembles
    created: bool = False       # added to the study just now (``Store.resolve_coder(create=)``)

    @property
    def new(self) -> bool:
        """A first use of this name: not in the study before this call."""
        return self.id is None or self.created

    def note(self) -> str | None:
        """What to tell a person about the name: "new coder 'carol'", or nothing."""
        if not self.new:
            return None
        text = f"new coder '{self.name}'"
        if self.similar:
            text += " (did you mean " + " or ".join(f"'{s}'" for s in self.similar) + "?)"
        return text


def resolve(db: Database, name: str) -> CoderRef:
    """The coder ``name`` means in this study (``name`` already passed ``check_coder_name``).

    Exact spelling first, then case-insensitive; a near-duplicate (same letters and digits,
    different spaces or punctuation) raises :class:`CoderError`; never writes."""
    rows = [(r["id"], r["name"]) for r in db.query("SELECT id, name FROM coders ORDER BY id")]
    for cid, existing in rows:
        if existing == name:
            return CoderRef(name=existing, id=cid, given=name)
    same_case = [(cid, n) for cid, n in rows if _fold(n) == _fold(name)]
    if len(same_case) == 1:
        return CoderRef(name=same_case[0][1], id=same_case[0][0], given=name)
    if len(same_case) > 1:
        raise CoderError(f"coder name '{name}' matches several coders: "
                         + ", ".join(n for _, n in same_case),
                         hint="give one of them exactly as spelled")
    key = coder_key(name)
    near = [n for _, n in rows if coder_key(n) == key]
    if near:
        raise CoderError(f"coder name '{name}' differs from the existing coder '{near[0]}' only "
                         "in spaces or punctuation",
                         hint=f"use '{near[0]}', or a clearly different name")
    keys = {coder_key(n): n for _, n in rows}
    similar = [keys[k] for k in difflib.get_close_matches(key, list(keys), n=3, cutoff=SIMILAR)]
    return CoderRef(name=name, id=None, given=name, similar=similar)
