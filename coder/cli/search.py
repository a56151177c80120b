"""CLI: coder search -- every hit of a word, phrase or pattern in context, and auto-coding the
hits as proposals for a coder's review queue."""

from __future__ import annotations

import json
import sys

import click

from coder.cli.options import documents_option, split_list, study_argument
from coder.review.search import SPANS
from coder.study import Study


def register(cli: click.Group) -> None:
    cli.add_command(search)


def _console():
    from rich.console import Console

    console = Console(highlight=False)
    # piped output (a file, a test) gets a fixed, readable width instead of rich's 80 columns
    return console if console.is_terminal else Console(width=120, highlight=False)


def _table(hits, window: int) -> None:
    from rich.table import Table
    from rich.text import Text

    console = _console()
    table = Table(show_lines=False, header_style="bold")
    for name, kw in (("document", {}), ("#", {"justify": "right"}), ("speaker", {}),
                     ("hit in context", {"ratio": 1})):
        table.add_column(name, **kw)
    for h in hits.itertuples(index=False):
        line = Text()  # Text, not markup: transcript text is never read as rich markup
        line.append(("…" if len(h.left) >= window and window else "") + h.left, style="dim")
        # without colours (piped, NO_COLOR) the hit is marked with « »
        line.append(h.hit if console.color_system else f"«{h.hit}»", style="bold reverse")
        line.append(h.right + ("…" if len(h.right) >= window and window else ""), style="dim")
        who = h.speaker or ""
        if h.participant and h.participant != h.speaker:
            who += f" ({h.participant})"
        table.add_row(Text(h.document), str(h.position), Text(who), line)
    console.print(table)


def _summary(hits) -> str:
    docs = hits["document"].nunique() if len(hits) else 0
    return (f"{len(hits)} hit{'s' if len(hits) != 1 else ''} in {docs} "
            f"document{'s' if docs != 1 else ''}")


@click.command()
@study_argument
@click.argument("query")
@click.option("--regex", is_flag=True,
              help="QUERY is a Python regular expression (case-insensitive), matched against "
                   "each segment's text.")
@click.option("--speaker", help="Only turns of this speaker label, or of a role: participant, "
                                "interviewer.")
@documents_option
@click.option("--window", type=click.IntRange(0, 2000), default=60, show_default=True,
              help="Characters of context either side of a hit.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="How to print the hits.")
@click.option("--code", help="Propose this code (e.g. 'Factor/Category') for every hit, in "
                             "--coder's review queue; nothing is coded until they confirm.")
@click.option("--coder", help="Whose review queue the proposals go to (with --code).")
@click.option("--span", type=click.Choice(SPANS), default=None,
              help="What a proposal covers: the hit's characters, the sentence around it, or "
                   "the whole segment (with --code)  [default: hit]")
def search(study, query, regex, speaker, documents, window, fmt, code, coder, span):
    """Find every hit of QUERY in the transcripts, with its context.

    \b
    QUERY (full-text, case and accents folded: cafe finds Café):
      home office            both words in a segment (each a hit)
      "home office"          the exact phrase
      export*                words starting with export
      NEAR(bank loan, 5)     both within 5 words of each other (one hit)
      grant OR loan, bank NOT loan
    Words with punctuation go in double quotes ("home-office"); --regex takes a
    Python regular expression instead.

    \b
    With --code and --coder every hit becomes a proposal in that coder's review
    queue (coder review / coder serve), marked "from search: QUERY"; only their
    confirmation codes it. Running the same search again proposes nothing twice.
    """
    if code is None and (coder is not None or span is not None):
        raise click.UsageError("--coder and --span go with --code (the code to propose)")
    if code is not None and coder is None:
        raise click.UsageError("--code needs --coder: whose review queue the proposals go to")
    store = Study(study)
    documents = split_list(documents)
    if code is not None:
        from coder.review.search import propose

        report = propose(store, query, code=code, coder=coder, span=span or "hit",
                         regex=regex, speaker=speaker, documents=documents)
        if report.note:
            click.echo(report.note)
        where = "" if speaker else " (participant turns; --speaker chooses others)"
        click.echo(f"{report.hits} hit{'s' if report.hits != 1 else ''}{where}: "
                   f"{report.made} new proposal{'s' if report.made != 1 else ''} of "
                   f"'{report.code}' ({report.span}) for {report.coder}")
        if report.already_proposed:
            click.echo(f"  {report.already_proposed} already proposed by an earlier search")
        if report.already_coded:
            click.echo(f"  {report.already_coded} already coded with it by {report.coder}")
        if report.made:
            click.echo(f"Nothing is coded until {report.coder} confirms. Review them (they come "
                       f"first): coder review {study} --coder {report.coder}   or: "
                       f"coder serve {study}")
        return
    from coder.sources.search import search as find

    hits = find(store, query, regex=regex, speaker=speaker, documents=documents, window=window)
    if fmt == "json":
        click.echo(json.dumps(json.loads(hits.to_json(orient="records")), ensure_ascii=False,
                              indent=1))
    elif fmt == "csv":
        from coder.spreadsheet import neutralise_frame

        neutralise_frame(hits).to_csv(sys.stdout, index=False)
    else:
        if len(hits):
            _table(hits, window)
        click.echo(_summary(hits) + (f" for '{query}'" if len(hits) else
                                     f" for '{query}' (search syntax: coder search --help)"))
