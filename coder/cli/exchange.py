"""CLI for REFI-QDA exchange: ``coder export`` (.qdpx) and ``coder import-project``.

``coder codebook import/export`` with .qdc files go through :mod:`coder.sources.codebook` and
:func:`coder.exchange.writing.write_codebook` in the codebook group.
"""

from __future__ import annotations

import click

from coder.cli.options import split_list, study_argument


def register(cli):
    @cli.command("export")
    @study_argument
    @click.argument("qdpx", type=click.Path(dir_okay=False))
    @click.option("--coders", help="Comma-separated coder names (default: every coder).")
    @click.option("--include-suggestions", is_flag=True,
                  help="Also export machine suggestions, as codings by the user 'machine'.")
    @click.option("--without-auto", is_flag=True,
                  help="Keep bulk-accepted ('auto') codings out of what other tools see; they "
                       "still travel in coder's private file.")
    def export_cmd(study, qdpx, coders, include_suggestions, without_auto):
        """Export the study as a REFI-QDA project (.qdpx) for NVivo, ATLAS.ti, MAXQDA, QualCoder."""
        from coder.exchange.writing import export_project
        from coder.study import Study

        with Study(study) as s:
            result = export_project(s, qdpx, coders=split_list(coders),
                                    include_suggestions=include_suggestions,
                                    include_auto=not without_auto)
        for w in result.warnings:
            click.echo(f"Warning: {w}", err=True)
        click.echo(f"Wrote {result.path}: {result.codes} codes, {result.sources} documents, "
                   f"{result.cases} participants, {result.selections} codings"
                   + (f", {result.suggestions} suggestions" if include_suggestions else "")
                   + f" by {', '.join(result.users) or 'nobody'}"
                   + (f"; {result.private_decisions} more decisions (rejected, no code"
                      + (", auto" if without_auto else "") + ") only coder reads back"
                      if result.private_decisions else "") + ".")

    @cli.command("import-project")
    @click.argument("new_study", type=click.Path(dir_okay=False))
    @click.argument("qdpx", type=click.Path(dir_okay=False))
    @click.option("--unit", type=click.Choice(["turn", "sentence", "paragraph"]),
                  default="turn", show_default=True,
                  help="How documents are segmented (turn: a source without consistent speaker "
                       "labels is cut by paragraph).")
    @click.option("--offsets", type=click.Choice(["auto", "codepoints", "utf16"]),
                  default="auto", show_default=True,
                  help="How selection positions count: code points (the standard), UTF-16 code "
                       "units (NVivo for Windows), or decided per source from the selections.")
    @click.option("--skip-missing", is_flag=True,
                  help="Import the rest when a source's text file is missing from the zip "
                       "(default: import nothing) and list what was skipped.")
    def import_project_cmd(new_study, qdpx, unit, offsets, skip_missing):
        """Make a new study from a REFI-QDA project (.qdpx) exported by another tool."""
        from coder.exchange.reading import import_project, project_report

        warnings: list[str] = []
        study = import_project(new_study, qdpx, unit=unit, warnings=warnings, offsets=offsets,
                               skip_missing=skip_missing)
        with study:
            st = study.status()
            n_codings = study.db.one("SELECT COUNT(*) FROM codings")[0]
            batch = study.db.one("SELECT MAX(id) FROM batches")[0]
            report = project_report(study)
        for w in warnings:
            click.echo(f"Warning: {w}", err=True)
        for line in (report.lines() if report else []):
            click.echo(line)
        click.echo(f"Created {new_study}: {st.documents} documents, {st.segments} segments, "
                   f"{st.participants} participants, {st.codes} codes, {n_codings} codings by "
                   f"{len(st.coders)} coder(s)"
                   + (f" (batch {batch}; undo with: coder undo {new_study} --batch {batch})"
                      if batch else "") + ".")
