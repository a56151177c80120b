"""Domain exceptions. The CLI turns each into a one-line message and an exit status."""

from __future__ import annotations

import re

# a quoted value from a file (a cell, a name, a time) longer than this is cut in messages, so a
# hostile or broken file never turns an error into a screenful
QUOTED_MAX = 80
_QUOTED = re.compile(r"'([^'\n]{%d,})'" % (QUOTED_MAX + 1))


LINE_MAX = 600  # characters of one line of an error: a person reads it


def _shorten(text: str) -> str:
    """Long quoted values cut, and every line of the message at most LINE_MAX characters."""
    text = _QUOTED.sub(lambda m: f"'{m.group(1)[:60]}…' ({len(m.group(1)):,} characters)", text)
    return "\n".join(line if len(line) <= LINE_MAX else line[:LINE_MAX - 1] + "…"
                     for line in text.split("\n"))


class CoderError(Exception):
    """Base class: bad data or a state the user can fix. The CLI exits 1 with the message."""

    exit_code = 1

    def __init__(self, message: str, *, path: object | None = None, line: int | None = None,
                 hint: str | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.hint = hint
        self.detail = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.path:
            where = f"{self.path}: "
            if self.line is not None:
                where += f"line {self.line}: "
        text = where + _shorten(self.detail)
        if self.hint:
            text += f" ({self.hint})"
        return text


class StudyError(CoderError):
    """The study file is missing, unreadable, or from a newer coder."""


class InputError(CoderError):
    """A transcript, participants file or codings file cannot be imported."""


class CodebookError(CoderError):
    """A codebook file is malformed or refers to unknown codes."""


class UnknownReference(CoderError):
    """A document, segment, code or coder named by the user does not exist."""


class NotCodable(CoderError):
    """A decision on a category that only groups codes (REFI-QDA isCodable="false")."""


class NothingToDo(CoderError):
    """The request cannot produce anything (no codebook, no confirmed codings, ...)."""


class ConsensusIncomplete(CoderError):
    """A consensus coder that does not yet stand for every segment its coders decided (open
    disagreements, or decisions they made after it was built): counting it would mislead."""


class SignInRefused(CoderError):
    """A sign-in to a served study with an unknown name or a wrong password (which of the two
    is never said), or a password that does not meet the rules."""
