"""CLI: review (terminal app), review export/import/accept, codings."""

from __future__ import annotations

import json
import sys

import click

from coder.cli.options import split_list, study_argument
from coder.store import check_coder_name
from coder.study import Study

ORDER = click.Choice(["uncertain", "document", "score", "random"])


def register(cli: click.Group) -> None:
    cli.add_command(review)
    cli.add_command(codings)
    cli.add_command(batches_cmd)
    cli.add_command(undo_cmd)


class ReviewGroup(click.Group):
    """``coder review STUDY --coder NAME`` starts the terminal review; ``coder review export|
    import|accept ...`` are subcommands. A first argument that is not a subcommand is the study,
    handed to the hidden ``start`` command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["start", *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx, formatter):
        formatter.write("Usage: coder review STUDY --coder NAME [OPTIONS]\n"
                        "       coder review export|import|accept STUDY ... --coder NAME\n")


_coder = check_coder_name


def _who(study: Study, coder: str) -> str:
    """The coder a typed name means (the stored spelling); says so when the name is new."""
    ref = study.resolve_coder(_coder(coder))
    if ref.note():
        click.echo(ref.note())
    return ref.name


def _undo_hint(study: str, batch) -> str:
    """ "Batch 3: ... (undo: coder undo STUDY --batch 3)", or that nothing changed."""
    text = batch.summary()
    if batch.number is not None:
        text += f" (undo: coder undo {study} --batch {batch.number})"
    return text[:1].upper() + text[1:]


coder_option = click.option("--coder", required=True, help="Who is deciding (e.g. alice).")


@click.group(cls=ReviewGroup)
def review():
    """Review suggestions: confirm, reject or add codes, from the keyboard or a spreadsheet.

    \b
    coder review STUDY --coder alice [--order uncertain|document|score|random]
                 [--codes "Networking/*"] [--documents p01,p02] [--blind] [--show-others]
    Keys (as on the web page): a accept the highlighted suggestion, r reject it (the
          others stay undecided; the next segment comes when none is), o other code,
          n no code, enter/s next segment, u undo, m memo, q quit. Every decision is
          saved when the key is pressed.
    """


@review.command("start", hidden=True)
@study_argument
@coder_option
@click.option("--order", type=ORDER, default="uncertain", show_default=True,
              help="uncertain: smallest margin between the top two scores first.")
@click.option("--codes", help="Only these codes, e.g. 'Networking/*' (comma-separated).")
@click.option("--documents", help="Only these documents (comma-separated names).")
@click.option("--blind", is_flag=True, help="Hide suggestions and other coders' codes.")
@click.option("--show-others", is_flag=True,
              help="Show other coders' codes on each segment (hidden by default: a coder who "
              "sees them is no longer independent; each decision records it).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --order random.")
def start(study, coder, order, codes, documents, blind, show_others, seed):
    """Start the full-screen terminal review."""
    from coder import review as lib
    from coder.tui import ReviewApp

    s = Study(study)
    coder = _who(s, coder)
    codes_l, docs_l = split_list(codes), split_list(documents)
    s.check_documents(docs_l)
    items = lib.queue(s, coder, order=order, codes=codes_l, documents=docs_l, blind=blind,
                      seed=seed)
    if not items:
        done, total = lib.progress(s, coder, codes=codes_l, documents=docs_l)
        click.echo(f"Nothing left to review for {coder}: {done} of {total} segments decided.")
        return
    s.close()
    app = ReviewApp(study, coder, order=order, codes=codes_l, documents=docs_l, blind=blind,
                    seed=seed, show_others=show_others)
    try:
        app.run()
    finally:
        app.study.close()
    click.echo(app.summary)


@review.command("export")
@study_argument
@click.argument("path", type=click.Path(dir_okay=False))
@coder_option
@click.option("--limit", type=int, default=200, show_default=True, help="Rows (segments).")
@click.option("--order", type=ORDER, default="uncertain", show_default=True)
@click.option("--codes", help="Only these codes, e.g. 'Networking/*' (comma-separated).")
@click.option("--documents", help="Only these documents (comma-separated names).")
@click.option("--blind", is_flag=True, help="Leave the suggestion columns empty.")
def export_(study, path, coder, limit, order, codes, documents, blind):
    """Write a review sheet (.xlsx or .csv) of segments this coder has not decided."""
    from coder import review as lib

    s = Study(study)
    coder = _who(s, coder)
    n = lib.export_sheet(s, path, coder, limit=limit, order=order,
                         codes=split_list(codes), documents=split_list(documents), blind=blind)
    click.echo(f"Wrote {n} segment(s) to {path}. Fill the 'decision' column (codes separated "
               f"by ';', or 'none'), then: coder review import {study} {path} --coder {coder}")


@review.command("import")
@study_argument
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--coder", help="Whose sheet it is; an exported .xlsx sheet says so itself, a "
              "CSV sheet needs it.")
@click.option("--as", "as_coder", metavar="NAME",
              help="Record the sheet as NAME's decisions although it was exported for another "
              "coder.")
def import_(study, path, coder, as_coder):
    """Read a filled review sheet back as one numbered batch; nothing is stored unless every
    row is good, and a sheet exported for another coder is refused."""
    from coder import review as lib

    if coder is not None and as_coder is not None:
        raise click.UsageError("give --coder (the sheet's own coder) or --as (record it as "
                               "another coder's), not both")
    r = lib.import_sheet(Study(study), path, coder, as_coder=as_coder)
    if r.new_coder:
        click.echo(r.new_coder)
    click.echo(f"Imported {r.decided_rows} decided row(s) of {r.rows} ({r.skipped} left empty) "
               f"for {r.coder}: {r.confirmed} confirmed, {r.added} added, {r.rejected} "
               f"rejected, {r.no_code} no code, {r.memos} memo(s)"
               + (f", {r.coding_memos} row memo(s) stored with their codes" if r.coding_memos
                  else "") + ".")
    click.echo(_undo_hint(study, r.batch))


@review.command("accept")
@study_argument
@coder_option
@click.option("--min-precision", type=float, default=0.95, show_default=True,
              help="Accept a code's suggestions only if this coder's precision is at least this.")
@click.option("--min-reviewed", type=int, default=30, show_default=True,
              help="Reviewed suggestions of a code needed before its precision counts.")
@click.option("--dry-run", is_flag=True, help="Report which codes qualify; write nothing.")
@click.option("--undo", is_flag=True, help="Remove every bulk-accepted coding of this coder.")
def accept(study, coder, min_precision, min_reviewed, dry_run, undo):
    """Bulk-accept suggestions of codes this coder has found precise (marked 'auto')."""
    from coder import review as lib

    coder = _coder(coder)
    s = Study(study)
    if undo:
        n = lib.undo_bulk(s, coder)
        click.echo(f"Removed {n} bulk-accepted coding(s) of {coder}.")
        return
    r = lib.bulk_accept(s, coder, min_precision=min_precision, min_reviewed=min_reviewed,
                        dry_run=dry_run)
    if not len(r.codes):
        click.echo("No suggestions to accept.")
        return
    for row in r.codes.itertuples(index=False):
        mark = "yes" if row.qualified else "no "
        click.echo(f"  {mark} {row.path}: {row.reason}"
                   + (f"; {row.accepted} accepted" if row.qualified else ""))
    verb = "Would accept" if dry_run else "Accepted"
    click.echo(f"{verb} {r.accepted} suggestion(s) as 'auto' for {coder} "
               f"({len(r.qualified)} of {len(r.codes)} code(s) qualified; undo with --undo).")
    if r.batch is not None:
        click.echo(_undo_hint(study, r.batch))


@click.command()
@study_argument
@click.option("--coder", help="Only this coder's decisions.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
@click.option("--history", is_flag=True, help="The audit trail: every change, in order.")
def codings(study, coder, fmt, history):
    """List decisions: what has been decided, by whom, when, with their memos (memo: the
    coding's own; segment_memos: the coder's memos on the segment)."""
    from coder import review as lib

    if coder is not None:
        coder = _coder(coder)
    df = lib.codings_list(Study(study), coder=coder, history=history)
    if fmt == "json":
        click.echo(json.dumps(json.loads(df.to_json(orient="records")), ensure_ascii=False,
                              indent=1))
    else:
        from coder.spreadsheet import neutralise_frame

        neutralise_frame(df).to_csv(sys.stdout, index=False)


@click.command("batches")
@study_argument
def batches_cmd(study):
    """List the numbered batches: every import of decisions (review sheet, codings CSV,
    REFI-QDA project) and bulk accept, what each replaced, and which were undone."""
    from coder.store import batches

    found = batches.batches(Study(study))
    if not found:
        click.echo("No batches yet: review sheet imports, codings imports, project imports and "
                   "bulk accepts are numbered here.")
    for b in found:
        click.echo(b.line())


@click.command("undo")
@study_argument
@click.option("--batch", "number", type=int, required=True,
              help="The batch to undo (see: coder batches STUDY).")
def undo_cmd(study, number):
    """Put back exactly what was there before a batch, in one transaction (refused when its
    decisions were changed since)."""
    from coder.store import batches

    click.echo(batches.undo_batch(Study(study), number).summary())
