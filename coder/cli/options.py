"""Click arguments and options shared by several commands (defined once, as sqlite-utils does)."""

from __future__ import annotations

import click


def study_argument(fn):
    """The study file, which must already exist (``coder init`` creates it)."""
    return click.argument("study", type=click.Path(dir_okay=False))(fn)


def split_list(value: str | None) -> list[str] | None:
    """'a,b, c' -> ['a', 'b', 'c']; None stays None."""
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def coders_option(fn):
    return click.option("--coders", help="Comma-separated coder names.")(fn)


def documents_option(fn):
    return click.option("--documents", help="Comma-separated document names (default: all).")(fn)


class ListedChoice(click.Choice):
    """A choice that also accepts values it does not list in --help (so that, e.g., ``--level
    item`` can explain why items are not counted without being offered as a level)."""

    def __init__(self, listed: list[str], unlisted: list[str]) -> None:
        super().__init__([*listed, *unlisted])
        self.listed = list(listed)

    def get_metavar(self, param, ctx=None) -> str:
        return "[" + "|".join(self.listed) + "]"
