"""Issue 19's quality bound on the topical corpus: coder's suggestions on NHS patient feedback
with each embedding backend (torch float32, ONNX float32, ONNX int8), codebook only and trained.

    python evaluation/bench_nhs_backends.py /work/shared/corpora/nhs-fft-dev

Per backend, a study with the corpus (built as `bench_nhs.py` builds it) and the train
answers' codes as coder ``nhs``: suggest the dev answers from the codebook, train on ``nhs`` and
suggest again, with that backend's vectors only. Codes per answer by `bench_nhs.predicted_codes` (at or above the threshold, else the
rank-1 code). Prints micro/macro-F1 per backend, the change in points against torch float32,
and the cosine of each backend's dev vectors to torch's (mean and worst).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import bench_nhs  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
BACKENDS = ("torch", "onnx-fp32", "onnx-int8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    args = ap.parse_args(argv)
    from coder.machine import embed

    answers, Y, codes = bench_nhs.load_corpus(args.corpus)
    ids = [c["id"] for c in codes]
    dev = answers[answers["split"] == "dev"]
    Ydv = Y[(answers["split"] == "dev").to_numpy()]
    train = answers[answers["split"] == "train"]
    rows, vectors = [], {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for backend in BACKENDS:  # a study each: its only model learned from this backend
            folder = Path(tmp) / backend
            folder.mkdir()
            study = bench_nhs.build_study(args.corpus, folder)
            pd.DataFrame([(d, i + 1, ids[j], "nhs", "confirmed")
                          for (d, i), y in zip(zip(train["doc_id"], train["turn_index"]),
                                               Y[(answers["split"] == "train").to_numpy()])
                          for j in np.flatnonzero(y)],
                         columns=["document", "segment", "code", "coder", "decision"]) \
                .to_csv(folder / "codes.csv", index=False)
            study.import_codings(folder / "codes.csv")
            dev_docs = sorted(set(dev["doc_id"]))
            emb = embed.make_embedder(backend)
            t = time.perf_counter()
            s0 = study.suggest(documents=dev_docs, top_k=len(ids), min_score=0.0, embedder=emb,
                               recompute=True)
            day_one = bench_nhs.scores(Ydv, bench_nhs.predicted_codes(s0, dev, ids))
            study.train(coders=["nhs"], embedder=emb)
            s1 = study.suggest(documents=dev_docs, top_k=len(ids), min_score=0.0, embedder=emb,
                               recompute=True)
            trained = bench_nhs.scores(Ydv, bench_nhs.predicted_codes(s1, dev, ids))
            vectors[backend] = embed.embed_texts(study, dev["text"].tolist(), emb)
            rows.append((backend, day_one, trained, time.perf_counter() - t))
            print(f"{backend}: day one {day_one['micro']:.3f}/{day_one['macro']:.3f}, trained "
                  f"{trained['micro']:.3f}/{trained['macro']:.3f} "
                  f"({time.perf_counter() - t:.0f} s)", file=sys.stderr)
            study.close()
    ref = rows[0]
    print(f"NHS dev ({len(dev)} answers), micro/macro-F1 by backend; change in points against "
          f"torch float32; cosine of the dev vectors to torch's. "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load "
          f"{os.getloadavg()[0]:.1f}, {time.perf_counter() - started:.0f} s in all.\n")
    print("| backend | day one micro | day one macro | trained micro | trained macro | "
          "worst change (points) | cosine to torch: mean / worst |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for backend, d1, tr, _ in rows:
        change = min(100 * (d1[k] - ref[1][k]) for k in ("micro", "macro"))
        change = min(change, *(100 * (tr[k] - ref[2][k]) for k in ("micro", "macro")))
        cos = np.sum(vectors[backend] * vectors["torch"], axis=1) / (
            np.linalg.norm(vectors[backend], axis=1) * np.linalg.norm(vectors["torch"], axis=1))
        print(f"| {backend} | {d1['micro']:.3f} | {d1['macro']:.3f} | {tr['micro']:.3f} | "
              f"{tr['macro']:.3f} | {change:+.1f} | {cos.mean():.5f} / {cos.min():.5f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
