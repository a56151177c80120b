"""Active learning measured: a simulated review with the experts' codes as the oracle.

    python evaluation/bench_active.py /work/shared/corpora/nhs-fft-dev
    python evaluation/bench_active.py /work/shared/corpora/annomi-dev [--batch 100 --steps 15]

Works on both shared corpora (told apart by their ``docs.csv``), loading them with the code of
``bench_nhs.py`` (NHS patient feedback) and ``bench_suggest.py`` (AnnoMI). For each review
order, ``uncertain`` (coder's own queue: the smallest margin between a segment's two best
suggestions first), ``random`` and ``document`` (transcript order), a fresh study is built with
every transcript and no codes. The seed is the codebook alone: day-one suggestions. Then, step
by step, the next ``--batch`` segments of the train documents are taken from the coder's queue
in that order (``coder.review.queue.queue_ids``), the experts' codes for them are recorded as
coder ``experts`` (``coder.review.decisions.decide``: one ``confirmed`` decision per code), the
model is retrained on them (``coder.machine.suggest.train``, default settings) and the dev
documents are scored, by the rules of bench_nhs.py (NHS: every code at or above its threshold,
else the rank-1 code; micro-/macro-F1 over answer x code cells) and bench_suggest.py (AnnoMI:
the rank-1 code among those allowed for the speaker; micro-F1 = top-1 accuracy, macro-F1 over
the 7 codes). ``uncertain`` needs fresh suggestions on the queue after each retrain; the other
orders do not depend on them.

AnnoMI is imported with no interviewer here (bench_suggest.py makes the therapist one): coder
never queues an interviewer's turns, and the therapist codes are half the scheme.

"Decisions" counts reviewed segments (an NHS answer with three codes is one segment reviewed,
three codings). Embeddings come from bench_nhs.py's file cache under /tmp (one per corpus),
filled once; nothing is written into the project except the results file.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_nhs  # noqa: E402  (puts the project and training/ on sys.path)
import bench_suggest  # noqa: E402

from coder.machine.embed import long_texts  # noqa: E402
from coder.review.decisions import decide  # noqa: E402
from coder.review.queue import queue_ids  # noqa: E402

ORDERS = ("uncertain", "random", "document")
ORACLE = "experts"
TARGETS = (0.8, 0.9, 0.95)  # fractions of the macro-F1 of a model trained on the whole pool


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Corpus:
    """What the simulation needs of a corpus, whichever it is."""

    name: str
    results: Path                      # the results file its section goes to
    heading: str
    train_docs: list[str]
    dev_docs: list[str]
    top_k: int                         # suggestions kept per segment
    build: Callable[[Path], Any]       # folder -> (study, {segment id: the experts' code ids})
    score: Callable[[pd.DataFrame], dict[str, float]]  # dev suggestions -> scores
    texts: list[str]                   # every line of every transcript (to embed once)
    note: str = ""


def nhs(path: Path) -> Corpus:
    answers, Y, codes = bench_nhs.load_corpus(path)
    ids = [c["id"] for c in codes]
    is_dev = (answers["split"] == "dev").to_numpy()
    dv, Ydv = answers[is_dev].reset_index(drop=True), Y[is_dev]
    tr, Ytr = answers[~is_dev].reset_index(drop=True), Y[~is_dev]

    def build(folder: Path):
        study = bench_nhs.build_study(path, folder)
        segs = study.segments(include_interviewer=True)
        key = dict(zip(zip(segs["document"], segs["position"]), segs["segment_id"]))
        truth = {int(key[(d, t + 1)]): [ids[j] for j in np.flatnonzero(row)]
                 for d, t, row in zip(tr["doc_id"], tr["turn_index"], Ytr)}
        return study, truth

    def score(sugg: pd.DataFrame) -> dict[str, float]:
        return bench_nhs.scores(Ydv, bench_nhs.predicted_codes(sugg, dv, ids))

    return Corpus("NHS patient feedback (FFT-QDC)", Path(__file__).with_name("NHS_RESULTS.md"),
                  "## Active learning (simulated review)", sorted(set(tr["doc_id"])),
                  sorted(set(dv["doc_id"])), len(ids), build, score,
                  answers["text"].tolist() + sorted(set(answers["context"])),
                  note="macro-F1 over the codes with a dev answer (31 of 32), as bench_nhs.py")


def annomi(path: Path) -> Corpus:
    docs, codes = bench_suggest.load_reference(path)
    train_docs = docs.loc[docs["split"] == "train", "doc_id"].tolist()
    dev_docs = docs.loc[docs["split"] == "dev", "doc_id"].tolist()
    state: dict[str, Any] = {}

    def build(folder: Path):
        study, key = bench_suggest.build_study(path, folder, codes, train_docs,
                                               interviewer=None, reference=False)
        tr = codes[codes["split"] == "train"]
        truth = {int(key[(d, i)]): [c] for d, i, c in zip(tr["doc_id"], tr["turn_index"],
                                                          tr["code"])}
        dev = codes[codes["split"] == "dev"].reset_index(drop=True)
        dev["segment_id"] = [key[(d, i)] for d, i in zip(dev["doc_id"], dev["turn_index"])]
        state["dev"] = dev
        return study, truth

    def score(sugg: pd.DataFrame) -> dict[str, float]:
        m = bench_suggest.coder_scores(state["dev"], sugg)
        return {"micro": m["top1"], "macro": (4 * m["f1_therapist"] + 3 * m["f1_client"]) / 7,
                "therapist": m["f1_therapist"], "client": m["f1_client"]}

    texts = []
    for p in sorted((path / "transcripts").glob("*.txt")):
        texts += [ln.split(":", 1)[1].strip() for ln in p.read_text(encoding="utf-8")
                  .split("\n") if ":" in ln]
    return Corpus("AnnoMI", Path(__file__).with_name("RESULTS.md"),
                  "## Active learning (simulated review)", train_docs, dev_docs, 4, build,
                  score, texts, note="macro-F1 over the 7 codes (4 therapist, 3 client); "
                                     "micro-F1 = top-1 accuracy (one code per utterance)")


def load(path: Path) -> Corpus:
    columns = pd.read_csv(path / "docs.csv", nrows=0).columns
    if "respondent_id" in columns:
        return nhs(path)
    if "mi_quality" in columns:
        return annomi(path)
    raise SystemExit(f"{path}: neither the NHS nor the AnnoMI corpus (see its docs.csv)")


# -- the simulated review -----------------------------------------------------------------------
def suggest_and_score(study, corpus: Corpus, emb, pool: list[str] | None) -> dict[str, float]:
    """Suggestions on dev (scored) and, for the uncertain queue, on the pool documents too."""
    docs = corpus.dev_docs + (pool or [])
    sugg = study.suggest(documents=docs, top_k=corpus.top_k, min_score=0.0, embedder=emb,
                         recompute=True)
    return corpus.score(sugg[sugg["document"].isin(set(corpus.dev_docs))])


def review(corpus: Corpus, order: str, emb, pool: list[str], batch: int, steps: int,
           seed: int) -> list[dict[str, Any]]:
    """One order's curve: [{decisions, scores, seconds}], step 0 the codebook alone."""
    with tempfile.TemporaryDirectory() as tmp:
        study, truth = corpus.build(Path(tmp))
        refresh = pool if order == "uncertain" else None
        t = time.perf_counter()
        curve = [{"decisions": 0, **suggest_and_score(study, corpus, emb, refresh),
                  "seconds": time.perf_counter() - t}]
        done = 0
        for _ in range(steps):
            t = time.perf_counter()
            nxt = queue_ids(study, ORACLE, order=order, documents=pool, seed=seed)[:batch]
            if not nxt:
                break
            for seg in nxt:
                codes = truth.get(int(seg), [])
                for code in codes:
                    decide(study, ORACLE, seg, code, "confirmed")
                if not codes:
                    decide(study, ORACLE, seg, None, "no_code")
            done += len(nxt)
            study.train(coders=[ORACLE], embedder=emb)
            curve.append({"decisions": done,
                          **suggest_and_score(study, corpus, emb, refresh),
                          "seconds": time.perf_counter() - t})
            log(f"{order} {done}: macro {curve[-1]['macro']:.3f} micro {curve[-1]['micro']:.3f} "
                f"({curve[-1]['seconds']:.1f}s)")
        study.close()
    return curve


def ceiling(corpus: Corpus, emb, pool: list[str]) -> dict[str, float]:
    """Every pool segment's expert codes at once: what the review is heading for."""
    with tempfile.TemporaryDirectory() as tmp:
        study, truth = corpus.build(Path(tmp))
        segs = study.segments(documents=pool, include_interviewer=False)
        keep = set(segs["segment_id"].astype(int))
        rows = [(d, p, code, ORACLE, "confirmed")
                for s, d, p in zip(segs["segment_id"], segs["document"], segs["position"])
                for code in truth.get(int(s), []) if int(s) in keep]
        pd.DataFrame(rows, columns=["document", "segment", "code", "coder", "decision"]) \
            .to_csv(Path(tmp) / "codes.csv", index=False)
        study.import_codings(Path(tmp) / "codes.csv")
        study.train(coders=[ORACLE], embedder=emb)
        out = suggest_and_score(study, corpus, emb, None)
        out["decisions"] = len(segs)
        study.close()
    return out


def long_segment_counts(corpus: Corpus) -> dict[str, int]:
    """Segments longer than the model reads (embedded in windows), by split."""
    with tempfile.TemporaryDirectory() as tmp:
        study, _ = corpus.build(Path(tmp))
        segs = study.segments(include_interviewer=True)
        study.close()
    dev = set(corpus.dev_docs)
    flags = np.asarray(long_texts(segs["text"].tolist()))
    in_dev = segs["document"].isin(dev).to_numpy()
    return {"all": int(flags.sum()), "train": int(flags[~in_dev].sum()),
            "dev": int(flags[in_dev].sum()), "segments": len(segs)}


# -- report -------------------------------------------------------------------------------------
def reached(curve: list[dict[str, Any]], level: float) -> int | None:
    """Decisions at the first step whose dev macro-F1 is at least ``level``."""
    return next((c["decisions"] for c in curve if c["macro"] >= level), None)


def report(corpus: Corpus, curves: dict[str, list], top: dict[str, float], info: dict) -> str:
    lines = [corpus.heading, "",
             f"`{info['command']}` ({info['date']}, {platform.machine()}, {os.cpu_count()} CPUs "
             f"shared with other jobs, {platform.platform()}; all-MiniLM-L6-v2 on CPU through "
             f"sentence-transformers, embeddings cached; whole run {info['wall']:.0f} s, load "
             f"average at the end {info['load']:.1f}).", "",
             f"{corpus.name}: a simulated review with the experts' codes as the oracle (coder "
             f"`{ORACLE}`). Pool: the segments of {info['pool_docs']} train documents "
             f"({info['pool_segments']} segments to review{info['subsample']}); seed: the "
             f"codebook alone; each step takes the next {info['batch']} segments of the queue "
             f"in the given order, records the experts' codes for them, retrains coder's "
             f"suggester (defaults) and scores the {len(corpus.dev_docs)} dev documents. "
             f"{corpus.note}. Decisions = segments reviewed.", "",
             "| decisions | " + " | ".join(f"{o} macro | {o} micro" for o in curves) + " |",
             "|---" * (1 + 2 * len(curves)) + "|"]
    steps = max(len(c) for c in curves.values())
    for i in range(steps):
        cells = []
        for c in curves.values():
            cells += [f"{c[i]['macro']:.3f}", f"{c[i]['micro']:.3f}"] if i < len(c) else ["—"] * 2
        n = next(c[i]["decisions"] for c in curves.values() if i < len(c))
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines.append(f"| all {top['decisions']} at once | "
                 + " | ".join([f"{top['macro']:.3f}", f"{top['micro']:.3f}"] * len(curves))
                 + " |")
    lines += ["", f"Decisions needed to reach a dev macro-F1 (first step at or above it; "
              f"'—': not within {max(c[-1]['decisions'] for c in curves.values())} decisions). "
              f"The levels are fractions of the macro-F1 of the model trained on the whole pool "
              f"at once ({top['macro']:.3f}):", "",
              "| macro-F1 | " + " | ".join(curves) + " |", "|---" * (1 + len(curves)) + "|"]
    for frac in TARGETS:
        level = frac * top["macro"]
        got = [reached(c, level) for c in curves.values()]
        lines.append(f"| {level:.3f} ({frac:.0%}) | "
                     + " | ".join("—" if g is None else str(g) for g in got) + " |")
    secs = {o: sum(s["seconds"] for s in c) for o, c in curves.items()}
    lines += ["", "One seed, one run per order: dev macro-F1 moves by a few points from one "
              "step to the next (rare codes have a handful of dev segments, and every retrain "
              "picks new per-code thresholds), so read the curves' course, not single steps.",
              "", "Seconds per order (queue, decisions, retrain, suggest, score; all steps): "
              + ", ".join(f"{o} {s:.0f}" for o, s in secs.items()) + ".",
              "", f"Segments longer than the model reads ({info['long']['segments']} segments "
              f"in the study, interviewer turns included): {info['long']['all']} "
              f"({info['long']['train']} in train documents, {info['long']['dev']} in dev); "
              "since issue 18 they are embedded in overlapping windows, not cut off.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--batch", type=int, default=100, help="segments reviewed per step")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--pool", type=int, default=None, metavar="DOCS",
                    help="review only this many train documents (a seeded sample)")
    ap.add_argument("--orders", default=",".join(ORDERS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=None, help="embedding cache (default: /tmp)")
    ap.add_argument("--results", type=Path, default=None)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    wall = time.perf_counter()
    corpus = load(args.corpus)
    orders = [o.strip() for o in args.orders.split(",") if o.strip()]
    pool = list(corpus.train_docs)
    subsample = ""
    if args.pool is not None and args.pool < len(pool):
        pool = sorted(random.Random(args.seed).sample(pool, args.pool))
        subsample = (f"; a seeded sample of {args.pool} of the {len(corpus.train_docs)} train "
                     "documents")
    cache = args.cache or Path(tempfile.gettempdir()) / (
        "coder_nhs_minilm" if "NHS" in corpus.name else "coder_annomi_minilm")
    emb = bench_nhs.CachedEmbedder(cache)
    emb.encode(corpus.texts)  # once; every study below reads these
    log(f"{corpus.name}: embeddings ready ({emb.encoded} encoded now)")
    info: dict[str, Any] = {"batch": args.batch, "pool_docs": len(pool), "subsample": subsample,
                            "long": long_segment_counts(corpus)}
    log(f"long segments: {info['long']}")
    top = ceiling(corpus, emb, pool)
    info["pool_segments"] = top["decisions"]
    log(f"whole pool at once: macro {top['macro']:.3f} micro {top['micro']:.3f}")
    curves = {o: review(corpus, o, emb, pool, args.batch, args.steps, args.seed) for o in orders}
    info.update(wall=time.perf_counter() - wall, load=os.getloadavg()[0],
                date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                command="python evaluation/bench_active.py " + " ".join(
                    str(a) for a in (argv if argv is not None else sys.argv[1:])))
    text = report(corpus, curves, top, info)
    print(text)
    if not args.no_write:
        bench_suggest.write_results(args.results or corpus.results, text,
                                    heading=corpus.heading)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
