"""Domain exceptions. The CLI turns each into a one-line message and an exit status."""

from __future__ import annotations


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
        text = where + self.detail
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


class NothingToDo(CoderError):
    """The request cannot produce anything (no codebook, no confirmed codings, ...)."""
