"""CLI: init, import, codebook, codes, participants, status."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from coder.cli.options import study_argument
from coder.cli.progress import bar
from coder.spreadsheet import neutralise_frame
from coder.study import Study


def register(cli: click.Group) -> None:
    cli.add_command(init)
    cli.add_command(import_)
    cli.add_command(codebook)
    cli.add_command(codes)
    cli.add_command(participants)
    cli.add_command(status)
    cli.add_command(demo)


@click.command()
@click.argument("study", type=click.Path(dir_okay=False))
@click.option("--codebook", "codebook_path", type=click.Path(dir_okay=False),
              help="Codebook file (.yaml, .csv or .qdc) to start with.")
def init(study, codebook_path):
    """Create a new, empty study file."""
    s = Study.create(study, codebook=codebook_path)
    msg = f"Created {study}"
    if codebook_path:
        book = s.codebook()
        msg += f" with codebook '{book.name}' ({len(book)} codes, version {book.version})"
    click.echo(msg)


@click.command("import")
@study_argument
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--unit", type=click.Choice(["turn", "sentence", "paragraph"]), default="turn",
              show_default=True, help="What one coding unit (segment) is.")
@click.option("--participants", type=click.Path(dir_okay=False),
              help="CSV with a 'participant' column and attributes (group, gender, ...).")
@click.option("--interviewer", help="Speaker labels of interviewers, comma-separated "
              "(default: Interviewer,I,Q,Int,Moderator,Facilitator,Researcher).")
@click.option("--replace", is_flag=True, help="Replace changed documents; codings on "
              "unchanged segments are kept.")
@click.option("--encoding", help="Text encoding of the files (default: detected; UTF-8 with a "
              "few bad bytes stays UTF-8, with a warning).")
@click.option("--allow-duplicate", is_flag=True, help="Import a file even if its text is already "
              "a document of the study under another name (it would be one more participant).")
def import_(study, files, unit, participants, interviewer, replace, encoding, allow_duplicate):
    """Import transcripts (txt, md, docx, vtt, srt, csv) and segment them.

    A file with the same text as a document already in the study (or as another file of the
    import) under another name is refused: the same bytes, or the same text once decoded,
    whatever the encoding, line endings, blank lines or spacing. A participants file may list
    participants whose transcripts come later: their rows wait and are linked when the
    document is imported; only participants who speak count in N."""
    s = Study(study)
    with bar("Importing transcripts") as progress:
        r = s.import_transcripts(files, unit=unit, interviewer=interviewer,
                                 participants=participants, replace=replace, encoding=encoding,
                                 allow_duplicate=allow_duplicate, progress=progress)
    click.echo(f"Imported {len(r.imported)} document(s), replaced {len(r.replaced)}, "
               f"unchanged {len(r.unchanged)}; {r.segments} segments (unit: {unit}).")
    if r.duplicates:
        click.echo("Imported with --allow-duplicate: " + ", ".join(
            f"{name} (same text as '{other}')" for name, other in r.duplicates) + ".")
    if r.linked_waiting:
        click.echo(f"Linked {len(r.linked_waiting)} participant(s) whose row waited for their "
                   "document: " + _names(r.linked_waiting) + ".")
    if r.participants_file is not None:
        for line in _participants_lines("Participants file:", r.participants_file):
            click.echo(line)
    if r.replaced:
        click.echo(f"Codings kept on unchanged segments: {r.kept_codings}; "
                   f"orphaned (segment text changed): {r.orphaned_codings}.")
    for w in r.warnings:
        click.echo(f"Warning: {w}", err=True)


def _names(names: list[str], most: int = 10) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _participants_lines(lead: str, rep) -> list[str]:
    """What a participants file did, for the import summaries."""
    parts = [f"{rep.linked} linked to a speaker"]
    if rep.waiting:
        parts.append(f"{len(rep.waiting)} waiting for a document not yet in the study "
                     "(in no N until it is imported)")
    if rep.unmatched:
        parts.append(f"{len(rep.unmatched)} matching no document")
    lines = [f"{lead} {rep.rows} row(s): " + ", ".join(parts) + "."]
    if rep.unmatched:
        lines.append("Participant rows without a document that match no document or speaker: "
                     + _names([f"{name} (line {line})" for name, line in rep.unmatched])
                     + " (each waits for a document of its name; add a 'document' column or "
                     "fix the name).")
    return lines


@click.group()
def codebook():
    """Import, show and export the study's codebook."""


@codebook.command("import")
@study_argument
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--drop-coded", is_flag=True, help="Accept a version without codes that have "
              "codings (the codings stay in the study but count in no table while no version "
              "has their code ids).")
@click.option("--by", "by", metavar="NAME",
              help="Who adds this version, for the codebook's history (default: this "
                   "computer's account name).")
def codebook_import(study, path, drop_coded, by):
    """Add a codebook file (.yaml, .csv, .qdc) as a new codebook version.

    Prints what changed from the current version, code by code (by id: codings follow a
    renamed or moved code). A version that drops a code with codings is refused unless
    --drop-coded."""
    s = Study(study)
    before = s.codebook_version
    book = s.import_codebook(path, drop_coded=drop_coded, by=by)
    if book.version == before:
        click.echo(f"Codebook unchanged (still version {book.version}).")
        return
    click.echo(f"Codebook '{book.name}': version {book.version}, {len(book)} codes.")
    if before:
        _echo_diff(f"Changes from version {before}:", s.codebook_diff(before, book.version))
        dropped = s.codebook_history()["dropped_coded"].iloc[-1]
        if dropped:
            click.echo(f"Dropped with --drop-coded: {dropped}; their codings stay in the study "
                       "and count again if a later version brings those code ids back.")


def _echo_diff(lead: str, diff) -> None:
    click.echo(f"{lead} {diff.summary()}")
    for line in diff.lines():
        click.echo(f"  {line}")


@codebook.command("diff")
@study_argument
@click.argument("old", type=click.IntRange(min=1))
@click.argument("new", type=click.IntRange(min=1), required=False)
def codebook_diff(study, old, new):
    """What changed from codebook version OLD to NEW (default: the current version): codes
    added, removed, renamed, moved or edited, by code id."""
    s = Study(study)
    new = new or s.codebook_version
    _echo_diff(f"Codebook version {old} -> {new}:", s.codebook_diff(old, new))


@codebook.command("history")
@study_argument
def codebook_history(study):
    """Every codebook version: date, who added it, source file, codes, and what changed from
    the one before."""
    df = Study(study).codebook_history()
    if df.empty:
        click.echo("No codebook yet.")
        return
    rows = [("version", "date", "by", "codes", "source", "changes from the version before")]
    for r in df.itertuples():
        changes = r.changes + (f"; dropped with --drop-coded: {r.dropped_coded}"
                               if r.dropped_coded else "")
        rows.append((str(r.version), r.created_at, r.imported_by or "-", str(r.codes),
                     r.source or "-", changes))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[5])


@codebook.command("show")
@study_argument
@click.option("--format", "fmt", type=click.Choice(["tree", "csv", "yaml"]), default="tree",
              show_default=True)
@click.option("--version", "version", type=int, help="A codebook version (default: current).")
def codebook_show(study, fmt, version):
    """Print the codebook as a tree, CSV or YAML."""
    book = Study(study).codebook(version)
    if fmt == "csv":
        click.echo(book.to_csv(), nl=False)
    elif fmt == "yaml":
        click.echo(book.to_yaml(), nl=False)
    else:
        click.echo(f"{book.name} (version {book.version})")
        for c in book:
            extra = f"  [{len(c.items)} items]" if c.items else ""
            click.echo("  " * c.depth + f"{c.name}  <{c.id}>{extra}")


@codebook.command("export")
@study_argument
@click.argument("path", type=click.Path(dir_okay=False))
def codebook_export(study, path):
    """Write the codebook to a file: .yaml, .csv or .qdc (REFI-QDA, for NVivo, ATLAS.ti, MAXQDA)."""
    book = Study(study).codebook()
    suffix = Path(path).suffix.lower()
    if suffix in (".yaml", ".yml"):
        Path(path).write_text(book.to_yaml(), encoding="utf-8")
    elif suffix == ".csv":
        Path(path).write_text(book.to_csv(), encoding="utf-8")
    elif suffix == ".qdc":
        from coder.exchange.writing import write_codebook

        write_codebook(book, path)
    else:
        raise click.BadParameter("use a .yaml, .csv or .qdc file name", param_hint="PATH")
    click.echo(f"Wrote {path}")


@click.group()
def codes():
    """Import and export codings as CSV (document,segment,code[,coder,decision,memo])."""


@codes.command("import")
@study_argument
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--coder", help="Coder for rows without a 'coder' column.")
def codes_import(study, path, coder):
    """Import codings made elsewhere (another tool, a spreadsheet)."""
    r = Study(study).import_codings(path, coder=coder)
    for note in r.new_coders:
        click.echo(note)
    click.echo(f"Imported {r.rows} coding(s); {r.batch.summary()}.")


@codes.command("export")
@study_argument
@click.argument("path", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--coder", help="Only this coder's codings.")
def codes_export(study, path, coder):
    """Export codings as CSV ('-' for standard output)."""
    s = Study(study)
    df = s.export_codings(None, coder=coder)
    if path == "-":
        neutralise_frame(df).to_csv(sys.stdout, index=False)
    else:
        neutralise_frame(df).to_csv(path, index=False)
        click.echo(f"Wrote {len(df)} coding(s) to {path}")


@click.group()
def participants():
    """Participant attributes (for cross-tabs such as --by group)."""


@participants.command("import")
@study_argument
@click.argument("path", type=click.Path(dir_okay=False))
def participants_import(study, path):
    """Read a CSV with 'participant' plus attribute columns (and optional document, speaker).

    Rows for documents not in the study yet wait and are linked when the document is imported;
    until then they count in no N."""
    report = Study(study).import_participants(path)
    for line in _participants_lines("Read participants file:", report):
        click.echo(line)


@participants.command("show")
@study_argument
def participants_show(study):
    """List participants and their attributes as CSV."""
    neutralise_frame(Study(study).participants().drop(columns=["id"])).to_csv(sys.stdout,
                                                                             index=False)


@click.command()
@study_argument
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(study, as_json):
    """Documents, participants, segments, codebook, coders and how much is coded."""
    s = Study(study)
    st = s.status()
    if as_json:
        click.echo(json.dumps(st.as_dict(), indent=2))
        return
    click.echo(f"Study {st.path}")
    click.echo(f"  documents     {st.documents}")
    click.echo(f"  participants  {st.participants}" + (
        f" (and {st.participants_waiting} from a participants file who speak in no document "
        "yet: in no N)" if st.participants_waiting else ""))
    click.echo(f"  segments      {st.segments} ({st.codable_segments} from participants)")
    if st.codebook_version:
        click.echo(f"  codebook      '{st.codebook_name}' version {st.codebook_version}, "
                   f"{st.codes} codes")
    else:
        click.echo("  codebook      none (add one: coder codebook import STUDY FILE.yaml)")
    click.echo(f"  suggestions   {st.suggestions}"
               + (f" (model version {st.model_version})" if st.model_version else ""))
    if st.coders:
        for name, n in st.coders.items():
            pct = 100 * n / st.codable_segments if st.codable_segments else 0
            click.echo(f"  coder {name:<12} {n} segments decided ({pct:.0f}% of participant segments)")
    else:
        click.echo("  coders        none yet")
    docs = s.documents()
    if len(docs):
        click.echo("  documents: " + ", ".join(docs["name"].tolist()[:20])
                   + (" ..." if len(docs) > 20 else ""))


@click.command()
@click.option("--out", default="demo-study", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the demo study, report and chart.")
def demo(out):
    """Run a whole study on the bundled demo interviews: import, suggest, review, train, report."""
    from coder.cli.agree import _print_study
    from coder.demo import run_demo

    run_demo(out, echo=click.echo, show_agreement=_print_study)
