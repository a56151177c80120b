"""`coder demo`: a whole study in one command, on the bundled demo interviews.

Builds a study, imports mixed-format transcripts, pre-codes them from the codebook alone, plays
a scripted review by two demo coders through the same review code a person uses, trains,
re-suggests, and prints the suggestions, the agreement table and the frequency table.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from coder.errors import CoderError
from coder.study import Study

PACKAGE = Path(__file__).resolve().parent
DEMO_DATA = PACKAGE / "demo_data"
# codebook/ in a checkout; a wheel installs that folder as coder/codebooks (pyproject's
# package-dir), so an installed coder carries the seed codebook too
SEED_CODEBOOK = next((folder / "sme_internationalization.yaml"
                      for folder in (PACKAGE.parent / "codebook", PACKAGE / "codebooks")
                      if (folder / "sme_internationalization.yaml").exists()),
                     PACKAGE.parent / "codebook" / "sme_internationalization.yaml")
TRANSCRIPT_SUFFIXES = (".txt", ".docx", ".vtt", ".srt", ".md", ".csv")


@dataclass
class DemoResult:
    study_path: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0
    decisions: int = 0
    model_version: int | None = None


def transcripts() -> list[Path]:
    return sorted(p for p in DEMO_DATA.iterdir()
                  if p.suffix in TRANSCRIPT_SUFFIXES and p.stem != "participants"
                  and p.name not in ("decisions.csv", "memos.csv"))


def play_decisions(study: Study, path: Path) -> int:
    """Apply the bundled demo decisions through `coder.review.decide`, one transaction each,
    exactly as key presses in `coder review` would."""
    from coder import review

    book = study.codebook()
    seg_ids = {(r["document"], r["position"]): r["segment_id"]
               for r in study.db.query("SELECT document, position, segment_id FROM segment_view")}
    n = 0
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            segment_id = seg_ids[(row["document"], int(row["segment"]))]
            code_id = book.resolve(row["code"]).id if row.get("code") else None
            review.decide(study, row["coder"], segment_id, code_id, row["decision"],
                          source="demo")
            n += 1
    return n


def play_memos(study: Study, path: Path) -> int:
    """The demo coders' memos on segments (`coder.review.memo`), as `m` in the review writes
    them, so the report's and the web page's memo views have something to show."""
    from coder import review

    seg_ids = {(r["document"], r["position"]): r["segment_id"]
               for r in study.db.query("SELECT document, position, segment_id FROM segment_view")}
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        review.memo(study, row["coder"], seg_ids[(row["document"], int(row["segment"]))],
                    row["memo"])
    return len(rows)


def run_demo(out: str | Path, *, echo: Callable[[str], None] = print,
             embedder=None, show_agreement: Callable | None = None) -> DemoResult:
    """The whole pipeline on the bundled interviews. ``show_agreement`` prints the agreement
    result (the CLI passes its rich table); by default it is echoed as a plain table."""
    from coder.analysis import chart, frequency, report, tables
    from coder.machine import suggest

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    study_path = out / "study.db"
    if study_path.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(str(study_path) + suffix).unlink(missing_ok=True)
    if not SEED_CODEBOOK.exists():
        raise CoderError(f"the demo codebook is missing: {SEED_CODEBOOK}")
    started = time.perf_counter()
    result = DemoResult(study_path=study_path)

    echo(f"1/7  Creating {study_path} with the seed codebook (six-factor SME internationalization model)")
    study = Study.create(study_path, codebook=SEED_CODEBOOK)
    files = transcripts()
    echo(f"2/7  Importing {len(files)} interviews (" +
         ", ".join(sorted({p.suffix for p in files})) + ") with participant groups")
    rep = study.import_transcripts(files, participants=DEMO_DATA / "participants.csv")
    echo(f"     {rep.segments} segments, {len(study.participants())} participants")

    echo("3/7  Pre-coding from the codebook alone (embedding model, offline)")
    first = suggest.suggest(study, embedder=embedder)
    echo(f"     {len(first)} suggestions")

    echo("4/7  Playing the scripted review of demo coders alice and bob")
    result.decisions = play_decisions(study, DEMO_DATA / "decisions.csv")
    memos = play_memos(study, DEMO_DATA / "memos.csv")
    echo(f"     {result.decisions} decisions and {memos} memos stored")

    echo("5/7  Training on confirmed codes and re-suggesting")
    summary = suggest.train(study, coders=["alice", "bob"], embedder=embedder)
    result.model_version = summary.version
    suggest.suggest(study, embedder=embedder, recompute=True)
    echo(f"     model version {summary.version}")

    echo("6/7  Results")
    _print_suggestions(study, echo)
    echo("")
    agreement = study.agreement(["alice", "bob"], machine=True)
    if show_agreement is not None:
        show_agreement(agreement)
    else:
        echo(agreement.table().to_string())
    freq = frequency.frequencies(study, coders=["alice", "bob"], rule="any")
    echo("")
    echo(tables.to_text(freq))

    echo("7/7  Writing the report and the chart")
    result.outputs["report"] = report.report(study, out / "report.html", coders=["alice", "bob"])
    result.outputs["chart"] = chart.chart(study, out / "frequencies.png",
                                          coders=["alice", "bob"]).path
    result.outputs["study"] = study_path
    result.seconds = time.perf_counter() - started
    echo("")
    for name, path in result.outputs.items():
        echo(f"     {name:<7} {path}")
    echo(f"Done in {result.seconds:.0f} s. Next, try:")
    echo(f"  coder review {study_path} --coder you        # confirm codes from the keyboard")
    echo(f"  coder serve {study_path}                     # the same in your browser")
    echo(f"  coder freq {study_path} --coders alice,bob --by group")
    study.close()
    return result


def _print_suggestions(study: Study, echo) -> None:
    df = study.suggestions()
    if not len(df):
        return
    echo("")
    echo("Suggestions for a few segments (score, source):")
    for (doc, seg), rows in list(df.groupby(["document", "segment"], sort=False))[:4]:
        text = rows.iloc[0]["text"]
        echo(f"  {doc} #{seg}: {text[:90]}{'...' if len(text) > 90 else ''}")
        for _, r in rows.iterrows():
            echo(f"      {r['score']:.2f}  {r['code']}  ({r['source']})")
