"""CLI: ``coder freq``, ``coder chart`` and ``coder report`` (frequency tables, charts, the
study report). Parsing only; the work is in coder.analysis.frequency, coder.analysis.report and coder.analysis.chart."""

from __future__ import annotations

import click

from coder.cli.options import ListedChoice, split_list, study_argument

FORMATS = ("table", "csv", "md", "latex", "html", "xlsx", "json")


def coder_selection(fn):
    """--coder / --consensus / --coders with --rule, --include-auto and --allow-partial: who
    counts."""
    fn = click.option("--allow-partial", is_flag=True,
                      help="Count a consensus coder that does not yet cover every segment its "
                      "coders decided (open disagreements) or is older than their latest "
                      "decisions; the table's header says what it covers.")(fn)
    fn = click.option("--include-auto", is_flag=True,
                      help="Also count auto-accepted suggestions (the table says so).")(fn)
    fn = click.option("--rule", type=click.Choice(["any", "all"]), default="any",
                      show_default=True,
                      help="With --coders: a participant counts if any / all of them coded it.")(fn)
    fn = click.option("--coders", help="Comma-separated coders to combine by --rule.")(fn)
    fn = click.option("--consensus", is_flag=True, help="Count the consensus coder's codings.")(fn)
    fn = click.option("--coder", help="Count this coder's codings.")(fn)
    return fn


def _selection(coder, consensus, coders, rule, include_auto, allow_partial) -> dict:
    return dict(coder=coder, consensus=consensus, coders=split_list(coders), rule=rule,
                include_auto=include_auto, allow_partial=allow_partial)


def _open(path):
    from coder.study import Study

    return Study(path)


def register(cli):
    @cli.command("freq")
    @study_argument
    @coder_selection
    @click.option("--level", type=ListedChoice(["category", "group", "factor", "all"], ["item"]),
                  default="category", show_default=True,
                  help="Categories (leaves), groups, factors (top level) or the whole tree.")
    @click.option("--by", "by", metavar="ATTRIBUTE",
                  help="Cross-tabulate by a participant attribute (e.g. group).")
    @click.option("--format", "fmt", type=click.Choice(FORMATS),
                  help="Output format (default: from --out's extension, else table).")
    @click.option("--out", type=click.Path(dir_okay=False), help="Write to this file.")
    @click.option("--decimals", type=click.IntRange(0, 6), default=0, show_default=True,
                  help="Decimals in percents (rounded half up).")
    @click.option("--quotes", type=click.IntRange(0, 20), default=0, show_default=True,
                  help="Add up to N exemplar quotes per category (table, md, html).")
    @click.option("--sort", type=click.Choice(["codebook", "frequency"]), default="codebook",
                  show_default=True, help="Codebook order, or most frequent first per factor.")
    @click.option("--rollup", type=click.Choice(["both", "any", "mean"]), default="both",
                  show_default=True, help="Roll-ups shown for parents.")
    @click.option("--counts", is_flag=True,
                  help="Add the numbers of coded segments and documents (display formats).")
    @click.option("--documents", help="Comma-separated documents to analyse (default: all).")
    def freq_cmd(study, coder, consensus, coders, rule, include_auto, allow_partial, level, by,
                 fmt, out, decimals, quotes, sort, rollup, counts, documents):
        """How many of the N participants raised each code, as a table or export."""
        from coder.analysis import frequency, tables

        if out:
            tables.check_output(out)
        fmt = tables.format_for(out, fmt)
        if fmt == "xlsx" and not out:
            raise click.UsageError("--format xlsx needs --out FILE.xlsx")
        s = _open(study)
        options = _selection(coder, consensus, coders, rule, include_auto, allow_partial)
        df = frequency.frequencies(
            s, level=level, by=by, decimals=decimals, sort=sort,
            documents=split_list(documents),
            rollups=("any", "mean") if rollup == "both" else (rollup,), **options)
        picked = None
        if quotes and fmt in ("table", "md", "html"):
            picked = frequency.exemplars(s, per_code=quotes, documents=split_list(documents),
                                         **options)
        if out:
            path = tables.write(df, out, fmt, quotes=picked, counts=counts)
            click.echo(f"Wrote {path} ({fmt}, N = {df.attrs['N']}, {len(df)} rows)", err=True)
        elif fmt == "table":
            from rich.console import Console

            console = Console()
            if not console.is_terminal:  # piped or captured: wide enough for the seed layout
                console = Console(width=120)
            tables.print_table(df, console, quotes=picked, counts=counts)
        else:
            click.echo(tables.render(df, fmt, quotes=picked, counts=counts), nl=False)

    @cli.command("chart")
    @study_argument
    @click.argument("out", type=click.Path(dir_okay=False))
    @coder_selection
    @click.option("--level", type=click.Choice(["category", "group", "factor", "all"]),
                  default="category", show_default=True)
    @click.option("--by", "by", metavar="ATTRIBUTE", help="Grouped bars per attribute value.")
    @click.option("--rollup", type=click.Choice(["any", "mean"]), default="any",
                  show_default=True, help="Which roll-up parents show.")
    @click.option("--width", type=click.IntRange(300, 6000), default=1000, show_default=True,
                  help="Width in pixels.")
    @click.option("--height", type=click.IntRange(200, 20000),
                  help="Height in pixels (default: from the number of bars).")
    def chart_cmd(study, out, coder, consensus, coders, rule, include_auto, allow_partial, level,
                  by, rollup, width, height):
        """Draw a bar chart (PNG) of percent of participants per code."""
        from coder.analysis import chart
        from coder.analysis.tables import check_output

        check_output(out)
        info = chart.chart(_open(study), out, by=by, level=level, rollup=rollup,
                           width_px=width, height_px=height,
                           **_selection(coder, consensus, coders, rule, include_auto,
                                        allow_partial))
        click.echo(f"Wrote {info.path} ({info.width_px}x{info.height_px} px, {info.bars} bars)")

    @cli.command("report")
    @study_argument
    @click.argument("out", type=click.Path(dir_okay=False))
    @coder_selection
    @click.option("--quotes", type=click.IntRange(0, 20), default=2, show_default=True,
                  help="Exemplar quotes per category.")
    @click.option("--decimals", type=click.IntRange(0, 6), default=0, show_default=True)
    @click.option("--by", "by", help="Comma-separated attributes to cross-tabulate "
                  "(default: every participant attribute).")
    @click.option("--title", help="Page title.")
    def report_cmd(study, out, coder, consensus, coders, rule, include_auto, allow_partial,
                   quotes, decimals, by, title):
        """Write one self-contained HTML page: summary, codebook, tables, charts, quotes."""
        from coder.analysis import report, tables

        tables.check_output(out)
        from coder.cli.progress import working

        with working("Writing the report"):
            path = report.report(_open(study), out, quotes=quotes, decimals=decimals,
                                 by=split_list(by), title=title,
                                 **_selection(coder, consensus, coders, rule, include_auto,
                                              allow_partial))
        click.echo(f"Wrote {path}")
