"""Import speed: segments per second for the AnnoMI transcripts under --unit turn and sentence.

Usage: python evaluation/bench_import.py ../shared/corpora/annomi-dev
Prints one line per unit; the corpus is read in place, never copied into the project.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from coder import Study


def main(corpus: str) -> None:
    files = sorted((Path(corpus) / "transcripts").glob("*.txt"))
    if not files:
        sys.exit(f"no transcripts under {corpus}/transcripts")
    print(f"{len(files)} transcripts from {corpus}")
    print("| unit | documents | segments | seconds | segments/s |")
    print("|---|---:|---:|---:|---:|")
    for unit in ("turn", "sentence"):
        with tempfile.TemporaryDirectory() as tmp:
            study = Study.create(Path(tmp) / "bench.db")
            if unit == "sentence":  # load spaCy's pipeline outside the timing, as a warm CLI would
                from coder.sources.segment import _sentencizer

                _sentencizer()
            t0 = time.perf_counter()
            report = study.import_transcripts(files, unit=unit, interviewer="THERAPIST")
            elapsed = time.perf_counter() - t0
            print(f"| {unit} | {len(files)} | {report.segments} | {elapsed:.2f} | "
                  f"{report.segments / elapsed:,.0f} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
