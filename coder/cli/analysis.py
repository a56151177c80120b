"""CLI: the analyses a methods section needs: ``coder cooccur``, ``coder matrix``,
``coder saturation``, ``coder model-figure``, ``coder summaries``, ``coder memos`` and
``coder quotes``.
Parsing only; the work is in coder.analysis (cooccurrence, matrix, saturation, model_figure,
summaries, memos, quotes). Whose codings count: the options of ``coder freq``, read the same way."""

from __future__ import annotations

import click

import coder.cli.freq as freq
from coder.cli.options import split_list, study_argument

FORMATS = freq.FORMATS


def output_options(fn):
    fn = click.option("--out", type=click.Path(dir_okay=False), help="Write to this file.")(fn)
    fn = click.option("--format", "fmt", type=click.Choice(FORMATS),
                      help="Output format (default: from --out's extension, else table).")(fn)
    return fn


def documents_option(fn):
    return click.option("--documents",
                        help="Comma-separated documents to analyse (default: all).")(fn)


def _who(selection: dict) -> dict:
    """The coder options exactly as ``coder freq`` hands them to the library."""
    return freq._selection(**selection)


def _prepare(out, fmt) -> str:
    """Check the output path and format before any work, as ``coder freq`` does."""
    from coder.analysis import tables

    if out:
        tables.check_output(out)
    fmt = tables.format_for(out, fmt)
    if fmt == "xlsx" and not out:
        raise click.UsageError("--format xlsx needs --out FILE.xlsx")
    return fmt


def _emit(result, fmt: str, out) -> None:
    from coder.analysis import outputs

    if out:
        path = outputs.write(result, out, fmt)
        click.echo(f"Wrote {path} ({fmt}, {len(result.main.frame)} rows)", err=True)
    elif fmt == "table":
        from rich.console import Console

        console = Console()
        if not console.is_terminal:  # piped or captured: wide enough for the tables
            console = Console(width=120)
        outputs.print_tables(result, console)
    else:
        click.echo(outputs.render(result, fmt), nl=False)


def _figure_option(fn):
    return click.option("--figure", type=click.Path(dir_okay=False),
                        help="Also draw the figure to this .png or .svg file.")(fn)


def _save(fig_maker, path) -> None:
    from coder.analysis import outputs

    saved = outputs.save_figure(fig_maker(), path)
    click.echo(f"Wrote {saved}", err=True)


def register(cli):
    @cli.command("cooccur")
    @study_argument
    @freq.coder_selection
    @click.option("--level", type=click.Choice(["category", "factor"]), default="category",
                  show_default=True, help="Pairs of categories, or of factors (a factor "
                  "carries anything below it).")
    @click.option("--unit", type=click.Choice(["segment", "participant"]), default="segment",
                  show_default=True, help="Codes on the same segment, or raised by the same "
                  "participant.")
    @click.option("--measure", type=click.Choice(["count", "jaccard"]), default="count",
                  show_default=True, help="Shared units, or shared / either (Jaccard).")
    @click.option("--quotes", type=click.IntRange(0, 20), default=0, show_default=True,
                  help="List up to N shared quotes per pair.")
    @_figure_option
    @output_options
    @documents_option
    def cooccur_cmd(study, level, unit, measure, quotes, figure, fmt, out, documents,
                    **selection):
        """How often two codes are on the same segment, or raised by the same participant."""
        from coder.analysis import cooccurrence, outputs

        fmt = _prepare(out, fmt)
        if figure:
            outputs.check_figure_path(figure)
        result = cooccurrence.cooccurrence(
            freq._open(study), level=level, unit=unit, measure=measure, quotes=quotes,
            documents=split_list(documents), **_who(selection))
        if figure:
            _save(result.figure, figure)
        _emit(result.tables(), fmt, out)

    @cli.command("matrix")
    @study_argument
    @freq.coder_selection
    @click.option("--by", "by", default="participant", show_default=True, metavar="CASE",
                  help="Cases: participant, document, or a participant attribute (e.g. group).")
    @click.option("--values", type=click.Choice(["presence", "count", "characters"]),
                  default="presence", show_default=True,
                  help="Raised or not (by attribute: participants raising it), coded "
                  "segments, or their characters.")
    @output_options
    @documents_option
    def matrix_cmd(study, by, values, fmt, out, documents, **selection):
        """The code x case matrix (xlsx: one sheet per factor)."""
        from coder.analysis import matrix

        fmt = _prepare(out, fmt)
        result = matrix.case_matrix(freq._open(study), by=by, values=values,
                                    documents=split_list(documents), **_who(selection))
        _emit(result.tables(), fmt, out)

    @cli.command("saturation")
    @study_argument
    @freq.coder_selection
    @click.option("--order", default="import", show_default=True, metavar="ORDER",
                  help="Interview order: import, date, random or a participant attribute.")
    @click.option("--base", type=click.IntRange(1, None), default=4, show_default=True,
                  help="Interviews in the base.")
    @click.option("--run", "run_length", type=click.IntRange(1, None), default=2,
                  show_default=True, help="Interviews in a run.")
    @click.option("--threshold", type=click.FloatRange(0, 1, max_open=True), default=0.05,
                  show_default=True, help="New information at or below which saturation is "
                  "reached (0.05 = 5% of the base's codes).")
    @click.option("--rounds", type=click.IntRange(0, 100000), default=1000, show_default=True,
                  help="Random interview orders for the band.")
    @click.option("--seed", type=int, default=0, show_default=True,
                  help="Seed of the random orders.")
    @_figure_option
    @output_options
    @documents_option
    def saturation_cmd(study, order, base, run_length, threshold, rounds, seed, figure, fmt,
                       out, documents, **selection):
        """Thematic saturation (Guest, Namey & Chen 2020): base, run, new-information
        threshold, and the curve of new codes per added interview."""
        from coder.analysis import outputs, saturation

        fmt = _prepare(out, fmt)
        if figure:
            outputs.check_figure_path(figure)
        result = saturation.saturation(
            freq._open(study), order=order, base=base, run=run_length, threshold=threshold,
            rounds=rounds, seed=seed, documents=split_list(documents), **_who(selection))
        if figure:
            _save(result.figure, figure)
        _emit(result.tables(), fmt, out)

    @cli.command("model-figure")
    @study_argument
    @click.argument("out", type=click.Path(dir_okay=False))
    @freq.coder_selection
    @click.option("--width", type=click.FloatRange(3, 20), default=7.0, show_default=True,
                  help="Width in inches (7 = a journal's full text width).")
    @click.option("--title", help="Figure title (default: the codebook's name).")
    def model_figure_cmd(study, out, width, title, **selection):
        """Draw the model: factors as boxes, their categories with percent of participants,
        arrows where the codebook declares leads_to (.png or .svg)."""
        from coder.analysis import model_figure, outputs

        outputs.check_figure_path(out)
        info = model_figure.model_figure(freq._open(study), out, width_in=width, title=title,
                                         **_who(selection))
        size = f"{info.width_px}x{info.height_px} px, " if info.width_px else ""
        click.echo(f"Wrote {info.path} ({size}{info.factors} factors, {info.arrows} arrows)")

    @cli.command("summaries")
    @study_argument
    @click.argument("out_dir", type=click.Path(file_okay=False))
    @freq.coder_selection
    @click.option("--format", "fmt", type=click.Choice(["docx", "html", "md"]), default="docx",
                  show_default=True, help="File format of the summaries.")
    @documents_option
    def summaries_cmd(study, out_dir, fmt, documents, **selection):
        """One file per participant with their coded passages, grouped by code, for member
        checking (other participants' names are replaced)."""
        from coder.analysis import summaries

        result = summaries.summaries(freq._open(study), out_dir, fmt=fmt,
                                     documents=split_list(documents), **_who(selection))
        for s in result.written:
            extra = f", {s.redactions} name(s) replaced" if s.redactions else ""
            click.echo(f"Wrote {s.path} ({s.codes} codes, {s.passages} passages{extra})")
        if result.without_passages:
            click.echo("No coded passages, no file: " + ", ".join(result.without_passages))
        click.echo(f"{len(result.written)} summaries in {out_dir}. " + result.notes[0])

    @cli.command("memos")
    @study_argument
    @click.option("--code", help="Only memos on this code (id, path or name) and codes below "
                  "it, and on segments carrying them.")
    @click.option("--coder", help="Only this coder's memos.")
    @output_options
    @documents_option
    def memos_cmd(study, code, coder, fmt, out, documents):
        """List memos: on codings (code memos), on segments and on documents."""
        from coder.analysis import memos

        fmt = _prepare(out, fmt)
        frame = memos.memos(freq._open(study), code=code, coder=coder,
                            documents=split_list(documents))
        _emit(memos.tables(frame), fmt, out)

    @cli.command("quotes")
    @study_argument
    @click.option("--code", required=True, help="The code (id, path or name); codes below it "
                  "are included.")
    @freq.coder_selection
    @click.option("--by", "by", metavar="ATTRIBUTE",
                  help="Group the passages by a participant attribute (e.g. group).")
    @click.option("--format", "fmt", type=click.Choice(["table", "csv", "md", "xlsx", "docx",
                                                        "json"]),
                  help="Output format (default: from --out's extension, else table).")
    @click.option("--out", type=click.Path(dir_okay=False), help="Write to this file.")
    @documents_option
    def quotes_cmd(study, code, by, fmt, out, documents, **selection):
        """Every coded passage of a code and the codes below it: exact text, participant,
        document, position, coder(s), memo."""
        from coder.analysis import quotes, tables

        if out:
            tables.check_output(out)
        fmt = quotes.format_for(out, fmt)
        if fmt in ("xlsx", "docx") and not out:
            raise click.UsageError(f"--format {fmt} needs --out FILE.{fmt}")
        frame = quotes.quotes(freq._open(study), code, by=by, documents=split_list(documents),
                              **_who(selection))
        if out:
            path = quotes.write(frame, out, fmt)
            click.echo(f"Wrote {path} ({fmt}, {len(frame)} passages)", err=True)
        elif fmt == "table":
            _emit(quotes.tables(frame), fmt, None)
        else:
            click.echo(quotes.render(frame, fmt), nl=False)
