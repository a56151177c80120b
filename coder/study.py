"""`Study`: the Python API over one study file, for researchers and notebooks.

A `Study` is a `coder.store.Store` (the shared queries) with one method per stage that hands
over to the stage's module and returns DataFrames or dataclasses. It is a face: the stages
never import it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from coder.store import Store
from coder.store import codebook as codebook_mod


class Study(Store):
    """A coded study in one SQLite file. ``Study.create(path)`` makes one; ``Study(path)`` opens."""

    @classmethod
    def create(cls, path: str | Path, *, codebook: str | Path | None = None) -> Study:
        from coder.sources.codebook import load

        book = load(codebook) if codebook else None  # validate before creating
        return super().create(path, book=book, source=str(codebook) if codebook else None)

    # -- sources ----------------------------------------------------------------------------
    def import_codebook(self, path: str | Path, *, drop_coded: bool = False,
                        by: str | None = None) -> codebook_mod.Codebook:
        """Add a codebook file as a new version (a no-op if it is identical to the current one).
        A version that drops codes with codings is refused unless ``drop_coded``; see
        `codebook_diff` and `codebook_history` for what changed."""
        from coder.sources.codebook import load

        book = load(path)
        with self.db.transaction():
            return self.store_codebook(book, source=str(path), drop_coded=drop_coded, by=by)

    def import_transcripts(self, paths, *, unit: str = "turn", interviewer=None,
                           participants: str | Path | None = None, replace: bool = False,
                           names: list[str] | None = None, allow_duplicate: bool = False,
                           encoding: str | None = None, progress=None):
        """Import transcript files (txt, md, docx, vtt, srt, csv); see `coder.sources.transcripts`."""
        from coder.sources import transcripts

        return transcripts.import_files(self, paths, unit=unit, interviewer=interviewer,
                                        participants=participants, replace=replace, names=names,
                                        allow_duplicate=allow_duplicate, encoding=encoding,
                                        progress=progress)

    def import_participants(self, path: str | Path):
        from coder.sources import transcripts

        return transcripts.import_participants(self, path)

    def codings(self, coder: str | list[str] | None = None, *, decisions=None,
                history: bool = False) -> pd.DataFrame:
        """Current human decisions (or, with ``history``, the audit trail), one row each."""
        from coder.sources import codings

        return codings.codings_frame(self, coder=coder, decisions=decisions, history=history)

    def import_codings(self, path: str | Path, *, coder: str | None = None):
        from coder.sources import codings

        return codings.import_csv(self, path, coder=coder)

    def export_codings(self, path: str | Path | None = None, *, coder=None) -> pd.DataFrame:
        from coder.sources import codings

        return codings.export_csv(self, path, coder=coder)

    # -- later stages: thin delegates to their modules ---------------------------------------
    def suggest(self, **kwargs) -> pd.DataFrame:
        """Pre-code segments with ranked codebook codes; see `coder.machine.suggest.suggest`."""
        from coder.machine import suggest

        return suggest.suggest(self, **kwargs)

    def suggestions(self, **kwargs) -> pd.DataFrame:
        from coder.machine import suggest

        return suggest.suggestions(self, **kwargs)

    def train(self, **kwargs):
        """Refit the suggestion model on confirmed codings; see `coder.machine.suggest.train`."""
        from coder.machine import suggest

        return suggest.train(self, **kwargs)

    def models(self) -> pd.DataFrame:
        from coder.machine import suggest

        return suggest.models(self)

    def frequencies(self, **kwargs) -> pd.DataFrame:
        """Participants per code (n of N, percent); see `coder.analysis.frequency.frequencies`."""
        from coder.analysis import frequency

        return frequency.frequencies(self, **kwargs)

    def exemplars(self, **kwargs) -> pd.DataFrame:
        """Quotes per code from confirmed segments, for tables and reports."""
        from coder.analysis import frequency

        return frequency.exemplars(self, **kwargs)

    def chart(self, path, **kwargs):
        """Bar chart (PNG) of percent of participants per code; see `coder.analysis.chart.chart`."""
        from coder.analysis import chart

        return chart.chart(self, path, **kwargs)

    def report(self, path, **kwargs):
        """One self-contained HTML page: summary, codebook, frequencies, charts, agreement."""
        from coder.analysis import report

        return report.report(self, path, **kwargs)

    def agreement(self, coders: list[str], **kwargs):
        """Inter-coder agreement per code and overall; see `coder.analysis.agreement.study_agreement`."""
        from coder.analysis import agreement

        return agreement.study_agreement(self, coders, **kwargs)

    def disagreements(self, coders: list[str], **kwargs) -> pd.DataFrame:
        from coder.analysis import agreement

        return agreement.disagreements(self, coders, **kwargs)

    def reconcile(self, sheet, *, coders: list[str], as_coder: str = "consensus",
                  single: str | None = None):
        """Record an edited disagreements sheet as a consensus coder's decisions; the
        consensus then covers every segment the coders decided (see
        `coder.analysis.agreement.build_consensus`)."""
        from coder.analysis import agreement

        return agreement.reconcile_sheet(self, sheet, coders=coders, as_coder=as_coder,
                                         single=single)

    def export_project(self, path, **kwargs):
        """Write a REFI-QDA project (.qdpx) for NVivo, ATLAS.ti, MAXQDA; see `coder.exchange`."""
        from coder.exchange.writing import export_project

        return export_project(self, path, **kwargs)

    @classmethod
    def import_project(cls, path, qdpx, **kwargs) -> Study:
        """A new study from a REFI-QDA project (.qdpx) made by another tool."""
        from coder.exchange.reading import import_project

        import_project(path, qdpx, **kwargs).close()
        return cls(path)
