"""AnnoMI dev experts as one coder against coder's trained suggestions (`coder agree --machine`).

Usage: python evaluation/annomi_agreement.py ../shared/corpora/annomi-dev [study-folder]

Trains on the `train` documents' expert codes (coder `experts`), suggests on the `dev`
documents, imports the dev experts' codes as coder `experts_dev`, and prints the per-code
agreement table exactly as `coder agree STUDY --coders experts_dev --machine` shows it.
"""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import annomi_convert  # noqa: E402

from coder import Study  # noqa: E402


def main(corpus: str, folder: str | None = None) -> None:
    corpus_path = Path(corpus)
    out = Path(folder or tempfile.mkdtemp(prefix="annomi-agree-"))
    out.mkdir(parents=True, exist_ok=True)
    docs = pd.read_csv(corpus_path / "docs.csv")
    codes = pd.read_csv(corpus_path / "codes.csv")
    split = dict(zip(docs["doc_id"], docs["split"]))
    book = annomi_convert.write(corpus_path, out / "annomi_codebook.yaml")
    db = out / "annomi.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    study = Study.create(db, codebook=book)
    study.import_transcripts(sorted((corpus_path / "transcripts").glob("*.txt")),
                             interviewer="THERAPIST")
    sheet = out / "codes.csv"
    with open(sheet, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["document", "segment", "code", "coder"])
        for r in codes.itertuples():
            coder = "experts" if split[r.doc_id] == "train" else "experts_dev"
            w.writerow([r.doc_id, r.turn_index + 1, r.code, coder])
    study.import_codings(sheet)
    t0 = time.perf_counter()
    study.train(coders=["experts"])
    dev_docs = sorted(d for d, s in split.items() if s == "dev")
    study.suggest(documents=dev_docs, include_interviewer=True, recompute=True)
    print(f"trained and suggested in {time.perf_counter() - t0:.0f} s; study: {db}",
          file=sys.stderr)
    from coder.cli.agree import _print_study

    _print_study(study.agreement(["experts_dev"], machine=True, documents=dev_docs))


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(*sys.argv[1:])
