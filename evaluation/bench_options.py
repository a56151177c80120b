"""Which options of coder's suggester make trained suggestions better *and* stable, on both corpora.

    nice -n 19 python evaluation/bench_options.py /work/shared/corpora/nhs-fft-dev
    nice -n 19 python evaluation/bench_options.py /work/shared/corpora/annomi-dev [--seeds 0,1,2]
    nice -n 19 python evaluation/bench_options.py CORPUS --posthoc   # the combinations of POSTHOC
    python evaluation/bench_options.py CORPUS --only defaults,cv=5 --no-write

Why: on NHS, moving the vectors of 5 of 4,183 train answers moved dev macro-F1 by 0.03 and
flipped the predicted codes of 77 of 600 dev answers: thresholds chosen per code on
out-of-fold predictions are unstable. This script measures each ``CodeSuggester`` option
(``coder.machine.suggest.train(study, **params)``) over several fold draws.

The study is built once per run (bench_nhs.py's NHS study with the train answers as coder
``nhs``; bench_suggest.py's AnnoMI study with the train documents as coder ``experts``) and the
vectors come from bench_nhs.py's file cache under /tmp, so each setting costs its fits only.
Every setting is trained on ``train`` once per fold seed and scored on ``dev``.

Fold seeds: coder groups its folds by document with ``_group_folds`` (largest documents
first, each to the lightest fold), which does not read ``seed`` (``seed`` only shuffles the
folds of a study with fewer documents than folds). So the seed is applied here: seed 0 is
coder's own folds, unchanged; seed s > 0 takes the documents in a ``RandomState(s)`` order,
each to the fold with the fewest rows so far (folds as balanced, other documents together).

Figures, per setting, mean and spread (max - min) over the seeds:

* **train** (the figure that chooses): the model's kept out-of-fold decisions on its own
  training segments (each row scored by a fold model without its document, cut by thresholds
  chosen without its fold). NHS: every code at or above its threshold, else the rank-1 code;
  micro-F1 over answer x code cells, macro-F1 over codes. AnnoMI: the rank-1 code among those
  allowed for the speaker (top-1 accuracy; macro-F1 over the 7 codes, as bench_active.py), and
  the NHS rule over the allowed cells ("set").
* **dev**: the same rules on the dev segments, reported beside, never used to choose.
* **changed**: the share of dev segments whose predicted codes (NHS: the code set; AnnoMI: the
  rank-1 code, and the set) are not the same under every seed. It needs no dev labels, so it
  may choose too.

The combination ("chosen") is found by forward selection under a rule written before the full
runs (after one trial run of two settings): from the defaults, each step tries every remaining option of ``POOL`` on top of the
current choice; an option passes when the mean train figure ((micro + macro) / 2) beats the
current choice's by more than the larger seed spread of the two, and the changed share is no
higher than the current's + 0.01; the passing option with the largest gain is kept, until none
passes (threshold_shrink 5 and 20 exclude each other). ``cv=5`` is then tried on top and kept
only if the changed share falls and the train figure does not (its out-of-fold models learn
from 80% rather than 67% of the rows, which lifts its train figure by itself). Options are
tried together, not only alone, because they interact: a shared cut means little on scores that
are not probabilities (``calibrate``). ``--posthoc`` runs the combinations of ``POSTHOC``
instead, written after the first run (which parts of the prototype's set carry its gain), so
they are labelled as chosen after seeing the train figures; each section of the results files
says which run it is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_nhs  # noqa: E402  (puts the project and training/ on sys.path)
import bench_suggest  # noqa: E402
import topical  # noqa: E402  (training/topical.py, on the path through bench_nhs)

from coder.machine import model as model_module  # noqa: E402
from coder.machine import suggest as lib  # noqa: E402

# today's defaults and each option of the issue alone
SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("defaults", {}),
    ("threshold_shrink=5", {"threshold_shrink": 5.0}),
    ("threshold_shrink=20", {"threshold_shrink": 20.0}),
    ("class_weight=balanced", {"class_weight": "balanced"}),
    ("calibrate", {"calibrate": True}),
    ("cv=5", {"cv": 5}),
]
# the prototype's (training/topical.py) other differences that are CodeSuggester parameters
PROTOTYPE: list[tuple[str, dict[str, Any]]] = [
    ("C=3", {"C": 3.0}),
    ("codebook_features=1", {"codebook_features": 1.0}),
    ("min_positives=3", {"min_positives": 3}),
    ("as the prototype (balanced, calibrate, shrink 20, C 3, cv 5, codebook columns, "
     "min_positives 3, min_df 2)",
     {"class_weight": "balanced", "calibrate": True, "threshold_shrink": 20.0, "C": 3.0,
      "cv": 5, "codebook_features": 1.0, "min_positives": 3, "min_df": 2}),
]
# combinations looked at after the run above (no single option passed the rule; the
# prototype's whole set did): which of its parts carry the gain and the steadiness. Written
# after seeing the train figures of the singles, so chosen post hoc: ``--posthoc``.
BCS = {"class_weight": "balanced", "calibrate": True, "threshold_shrink": 20.0}
POSTHOC: list[tuple[str, dict[str, Any]]] = [
    ("defaults", {}),
    ("tol=1e-4", {"tol": 1e-4}),
    ("C=3 + cv=5", {"C": 3.0, "cv": 5}),
    ("C=3 + cv=5 + tol=1e-4", {"C": 3.0, "cv": 5, "tol": 1e-4}),
    ("balanced + C=3 + cv=5", {"class_weight": "balanced", "C": 3.0, "cv": 5}),
    ("balanced + calibrate + shrink 20", BCS),
    ("balanced + calibrate + shrink 20 + C=3", {**BCS, "C": 3.0}),
    ("balanced + calibrate + shrink 20 + C=3 + cv=5", {**BCS, "C": 3.0, "cv": 5}),
    ("balanced + shrink 20 + C=3 + cv=5 (no calibrate)",
     {"class_weight": "balanced", "threshold_shrink": 20.0, "C": 3.0, "cv": 5}),
    ("calibrate + shrink 20 + C=3 + cv=5 (not balanced)",
     {"calibrate": True, "threshold_shrink": 20.0, "C": 3.0, "cv": 5}),
]
EXCLUSIVE = [("threshold_shrink=5", "threshold_shrink=20")]
# the options the forward selection may add (cv=5 is tried last, on stability: see above)
POOL = ["threshold_shrink=5", "threshold_shrink=20", "class_weight=balanced", "calibrate", "C=3",
        "codebook_features=1", "min_positives=3"]
STABILITY_SLACK = 0.01
HEADING = "## Suggestion settings across fold seeds (bench_options.py)"
POSTHOC_HEADING = "## Suggestion settings across fold seeds: combinations (bench_options.py --posthoc)"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- fold seeds -----------------------------------------------------------------------------------
@contextmanager
def fold_seed(seed: int):
    """coder's document folds for seed 0; for seed s, documents in a seeded random order, each to
    the fold with the fewest rows so far (see the module docstring)."""
    original = model_module._group_folds

    def seeded(groups: np.ndarray, n_splits: int):
        unique, group_of = np.unique(groups, return_inverse=True)
        sizes = np.bincount(group_of.ravel())
        rows_in = np.zeros(n_splits)
        fold_of_group = np.zeros(len(unique), dtype=np.int64)
        for g in np.random.RandomState(seed).permutation(len(unique)):
            lightest = int(np.argmin(rows_in))
            rows_in[lightest] += sizes[g]
            fold_of_group[g] = lightest
        fold = fold_of_group[group_of.ravel()]
        return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(n_splits)]

    if seed:
        model_module._group_folds = seeded
    try:
        yield
    finally:
        model_module._group_folds = original


# -- the two corpora --------------------------------------------------------------------------------
@dataclass
class Bench:
    """What one corpus needs: its study, how to train and suggest, and how to score."""

    name: str
    results: Path
    coder: str
    dev_docs: list[str]
    suggest_kw: dict[str, Any]
    score_dev: Callable[[pd.DataFrame], tuple[dict[str, float], np.ndarray]]
    score_train: Callable[[Any, int], dict[str, float]]
    metrics: list[tuple[str, str]]  # (key, column label); the first two choose
    changed: list[tuple[str, str]]  # (key of a prediction array, label)
    note: str
    study: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def margin_rank(sugg: pd.DataFrame) -> np.ndarray:
    """Each suggestion's rank within its segment by score - threshold (1 = largest)."""
    return (sugg.assign(m=sugg["score"] - sugg["threshold"])
            .groupby(["document", "segment"])["m"].rank(ascending=False, method="first")
            .to_numpy())


def nhs_bench(corpus: Path, folder: Path, emb) -> Bench:
    answers, Y, codes = bench_nhs.load_corpus(corpus)
    ids = [c["id"] for c in codes]
    is_dev = (answers["split"] == "dev").to_numpy()
    dv, tr, Ytr, Ydv = answers[is_dev], answers[~is_dev], Y[~is_dev], Y[is_dev]
    emb.encode(answers["text"].tolist() + sorted(set(answers["context"])))
    study = bench_nhs.build_study(corpus, folder)
    pd.DataFrame([(d, i + 1, ids[j], "nhs", "confirmed")
                  for d, i, row in zip(tr["doc_id"], tr["turn_index"], Ytr)
                  for j in np.flatnonzero(row)],
                 columns=["document", "segment", "code", "coder", "decision"]) \
        .to_csv(folder / "codes.csv", index=False)
    study.import_codings(folder / "codes.csv")

    def score_dev(sugg):
        P = bench_nhs.predicted_codes(sugg, dv, ids)
        out = bench_nhs.scores(Ydv, P)
        # the prototype's fallback: a row with no code at its threshold gets the code with the
        # largest score - threshold (not the largest score)
        M = bench_nhs.predicted_codes(sugg.assign(rank=margin_rank(sugg)), dv, ids)
        m = bench_nhs.scores(Ydv, M)
        return {**out, "m_micro": m["micro"], "m_macro": m["macro"]}, {"set": P}

    def score_train(study, version):
        out = bench_nhs.oof_scores(study, version, ["nhs"])
        oof = lib.out_of_fold(study, version)
        seg_ids, Yl = lib.training_labels(study, lib.suggestable_codes(study.codebook()),
                                          ["nhs"])
        order = {s: i for i, s in enumerate(seg_ids)}
        keep = oof.segment_ids >= 0
        Yb = (Yl[[order[s] for s in oof.segment_ids[keep]]] == 1).astype(np.int8)
        S, T = oof.scores[keep], oof.thresholds[oof.folds[keep]]
        m = bench_nhs.scores(Yb, topical.decide(S, T, True))
        return {**out, "m_micro": m["micro"], "m_macro": m["macro"]}

    return Bench("NHS patient feedback (FFT-QDC)", Path(__file__).with_name("NHS_RESULTS.md"),
                 "nhs", sorted(set(dv["doc_id"])), {"top_k": len(ids)}, score_dev,
                 score_train, [("micro", "micro-F1"), ("macro", "macro-F1"),
                               ("m_micro", "micro-F1, fallback max score - threshold"),
                               ("m_macro", "macro-F1, fallback max score - threshold")],
                 [("set", "dev answers whose code set changes")],
                 f"{len(tr)} train answers ({tr['doc_id'].nunique()} respondents), "
                 f"{len(dv)} dev answers; macro-F1 over the codes with a dev answer "
                 f"({int((Ydv.sum(axis=0) > 0).sum())} of {len(ids)}), rule: every code at or "
                 "above its threshold, else the rank-1 code", study)


def annomi_bench(corpus: Path, folder: Path, emb) -> Bench:
    docs, codes = bench_suggest.load_reference(corpus)
    train_docs = docs.loc[docs["split"] == "train", "doc_id"].tolist()
    dev_docs = docs.loc[docs["split"] == "dev", "doc_id"].tolist()
    study, key = bench_suggest.build_study(corpus, folder, codes, train_docs)
    emb.encode(study.segments(include_interviewer=True)["text"].tolist())
    dev = codes[codes["split"] == "dev"].reset_index(drop=True)
    dev["segment_id"] = [key[(d, i)] for d, i in zip(dev["doc_id"], dev["turn_index"])]
    allowed = {"THERAPIST": bench_suggest.THERAPIST, "CLIENT": bench_suggest.CLIENT}
    labels = bench_suggest.THERAPIST + bench_suggest.CLIENT

    def cells(truth: list[str], speakers: list[str], chosen: list[set[str]]):
        """micro/macro-F1 of code sets over (segment, code allowed for its speaker) cells."""
        tp = dict.fromkeys(labels, 0)
        fp, fn = dict(tp), dict(tp)
        for t, who, got in zip(truth, speakers, chosen):
            for c in allowed[who]:
                hit, yes = c in got, c == t
                tp[c] += hit and yes
                fp[c] += hit and not yes
                fn[c] += yes and not hit
        f1 = [2 * tp[c] / max(2 * tp[c] + fp[c] + fn[c], 1) for c in labels]
        T, F, N = sum(tp.values()), sum(fp.values()), sum(fn.values())
        return 2 * T / max(2 * T + F + N, 1), float(np.mean(f1))

    def rank_scores(truth, pred, speakers) -> dict[str, float]:
        m = bench_suggest.scores(pd.Series(truth), pd.Series(pred), pd.Series(speakers))
        return {"micro": m["top1"], "macro": (4 * m["f1_therapist"] + 3 * m["f1_client"]) / 7,
                "therapist": m["f1_therapist"], "client": m["f1_client"]}

    def score_dev(sugg):
        by_seg = {s: g for s, g in sugg.groupby("segment_id")}
        top, sets = [], []
        for s in dev["segment_id"]:
            g = by_seg.get(s)
            if g is None:
                top.append("none")
                sets.append(set())
                continue
            top.append(str(g.loc[g["rank"] == 1, "code_id"].iloc[0]))
            yes = g.loc[g["score"] >= g["threshold"], "code_id"]
            sets.append(set(map(str, yes)) or {top[-1]})
        out = rank_scores(dev["code"].tolist(), top, dev["speaker"].tolist())
        out["set_micro"], out["set_macro"] = cells(dev["code"].tolist(),
                                                   dev["speaker"].tolist(), sets)
        return out, {"top": np.asarray(top), "set": np.asarray([",".join(sorted(x))
                                                               for x in sets])}

    def score_train(study, version):
        oof = lib.out_of_fold(study, version)
        seg_ids, Yl = lib.training_labels(study, lib.suggestable_codes(study.codebook()),
                                          ["experts"])
        order = {s: i for i, s in enumerate(seg_ids)}
        keep = oof.segment_ids >= 0
        Yk = Yl[[order[s] for s in oof.segment_ids[keep]]]
        S, D = oof.scores[keep], oof.decisions()[keep]
        ids = np.asarray(oof.code_ids)
        truth, pred, speakers, sets = [], [], [], []
        for y, s, d in zip(Yk, S, D):
            if not (y == 1).any():
                continue
            t = str(ids[np.argmax(y == 1)])
            who = "THERAPIST" if t.startswith("therapist:") else "CLIENT"
            ok = np.isin(ids, allowed[who])
            best = str(ids[np.flatnonzero(ok)[np.argmax(s[ok])]])
            truth.append(t)
            speakers.append(who)
            pred.append(best)
            sets.append(set(map(str, ids[ok & d])) or {best})
        out = rank_scores(truth, pred, speakers)
        out["set_micro"], out["set_macro"] = cells(truth, speakers, sets)
        return out

    return Bench("AnnoMI", Path(__file__).with_name("RESULTS.md"), "experts", dev_docs,
                 {"top_k": 4, "include_interviewer": True}, score_dev, score_train,
                 [("micro", "top-1 acc"), ("macro", "macro-F1 (7 codes)"),
                  ("therapist", "macro-F1 therapist"), ("client", "macro-F1 client"),
                  ("set_micro", "set micro-F1"), ("set_macro", "set macro-F1")],
                 [("top", "dev utterances whose rank-1 code changes"),
                  ("set", "dev utterances whose code set changes")],
                 f"{len(train_docs)} train documents (coder `experts`), {len(dev)} dev "
                 "utterances; rank-1 rule: the best code among those allowed for the speaker "
                 "(top-1 accuracy, macro-F1 over the 7 codes = (4 therapist + 3 client) / 7); "
                 "set rule: every allowed code at or above its threshold, else the rank-1 code, "
                 "F1 over utterance x allowed-code cells", study)


def load(corpus: Path, folder: Path) -> tuple[Bench, Any]:
    columns = pd.read_csv(corpus / "docs.csv", nrows=0).columns
    if "respondent_id" in columns:
        emb = bench_nhs.CachedEmbedder(Path(tempfile.gettempdir()) / "coder_nhs_minilm")
        return nhs_bench(corpus, folder, emb), emb
    if "mi_quality" in columns:
        emb = bench_nhs.CachedEmbedder(Path(tempfile.gettempdir()) / "coder_annomi_minilm")
        return annomi_bench(corpus, folder, emb), emb
    raise SystemExit(f"{corpus}: neither the NHS nor the AnnoMI corpus (see its docs.csv)")


# -- one setting over the seeds ---------------------------------------------------------------------
def run_setting(bench: Bench, emb, params: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    runs, preds = [], []
    for seed in seeds:
        t = time.perf_counter()
        with fold_seed(seed):
            summary = lib.train(bench.study, coders=[bench.coder], embedder=emb, seed=seed,
                                **params)
        fit_s = time.perf_counter() - t
        train = bench.score_train(bench.study, summary.version)
        sugg = lib.suggest(bench.study, documents=bench.dev_docs, min_score=0.0, embedder=emb,
                           recompute=True, **bench.suggest_kw)
        dev, pred = bench.score_dev(sugg)
        runs.append({"seed": seed, "train": train, "dev": dev, "fit_s": fit_s})
        preds.append(pred)
    changed = {}
    for key, _ in bench.changed:
        P = [p[key] for p in preds]
        same = np.ones(len(P[0]), bool)
        for other in P[1:]:
            same &= np.all((P[0] == other).reshape(len(P[0]), -1), axis=1)
        changed[key] = float(1 - same.mean())
    return {"runs": runs, "changed": changed}


def summary(result: dict[str, Any], part: str, key: str) -> tuple[float, float]:
    values = [r[part][key] for r in result["runs"]]
    return float(np.mean(values)), float(np.max(values) - np.min(values))


def figure(result: dict[str, Any]) -> tuple[float, float]:
    """The choosing figure: train (micro + macro) / 2, its mean and spread over seeds."""
    values = [(r["train"]["micro"] + r["train"]["macro"]) / 2 for r in result["runs"]]
    return float(np.mean(values)), float(np.max(values) - np.min(values))


def merged(names: list[str], params: dict[str, dict]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in names:
        out.update(params[n])
    return out


def search(bench: Bench, emb, seeds: list[int], results: dict[str, dict],
           params: dict[str, dict]) -> tuple[list[str], list[str]]:
    """Forward selection from the defaults by the rule of the module docstring: each step tries
    every remaining option on top of the current choice and keeps the one with the largest gain
    that passes; then ``cv=5`` on top, kept on stability. Returns the chosen options and the
    reasons. The changed share is the corpus's first (NHS: code sets; AnnoMI: rank-1 codes)."""
    key = bench.changed[0][0]
    current: list[str] = []
    why: list[str] = []

    def run(names: list[str]) -> str:
        name = " + ".join(names) or "defaults"
        if name not in results:
            params[name] = merged(names, params)
            results[name] = run_setting(bench, emb, params[name], seeds)
            log(f"{name}: train {figure(results[name])}, changed {results[name]['changed']}")
        return name

    def compare(name: str, base: str) -> tuple[float, float, float, float, float]:
        (m, s), (bm, bs) = figure(results[name]), figure(results[base])
        return m - bm, s, bs, results[name]["changed"][key], results[base]["changed"][key]

    step = 0
    while True:
        step += 1
        base = " + ".join(current) or "defaults"
        passed = []
        for opt in POOL:
            if opt in current or any(opt in g and c in g for g in EXCLUSIVE for c in current):
                continue
            name = run(current + [opt])
            gain, s, bs, ch, bch = compare(name, base)
            ok = gain > max(s, bs) and ch <= bch + STABILITY_SLACK
            why.append(f"step {step}, {name} vs {base}: train figure {gain:+.3f} (seed spreads "
                       f"{s:.3f} / {bs:.3f}), changed {ch:.3f} vs {bch:.3f}: "
                       f"{'passes' if ok else 'fails'}")
            if ok:
                passed.append((gain, opt))
        if not passed:
            break
        current.append(max(passed)[1])
        why.append(f"step {step}: keep {current[-1]}")
    base = " + ".join(current) or "defaults"
    name = run(current + ["cv=5"])
    gain, s, bs, ch, bch = compare(name, base)
    ok = gain >= 0 and ch < bch
    why.append(f"cv=5 on top, {name} vs {base}: train figure {gain:+.3f}, changed {ch:.3f} vs "
               f"{bch:.3f}: {'keep' if ok else 'leave out'} (kept only if steadier and no "
               "lower)")
    if ok:
        current.append("cv=5")
    return current, why


# -- report -----------------------------------------------------------------------------------------
def table(bench: Bench, results: dict[str, dict], params: dict[str, dict]) -> list[str]:
    head = ["setting"] + [f"train {label}" for _, label in bench.metrics]
    head += [f"dev {label}" for _, label in bench.metrics]
    head += [label for _, label in bench.changed] + ["fit s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in results.items():
        cells = [name]
        for part in ("train", "dev"):
            for key, _ in bench.metrics:
                m, s = summary(res, part, key)
                cells.append(f"{m:.3f} ± {s:.3f}")
        cells += [f"{res['changed'][k]:.3f}" for k, _ in bench.changed]
        cells.append(f"{np.mean([r['fit_s'] for r in res['runs']]):.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report(bench: Bench, results, params, why, seeds, info, heading: str = HEADING) -> str:
    lines = [heading, "",
             f"`{info['command']}` ({info['date']}, {platform.machine()}, {os.cpu_count()} CPUs "
             f"shared with other jobs, run under `nice -n 19`; load average {info['load_start']:.1f}"
             f" at the start, {info['load_end']:.1f} at the end; {info['wall']:.0f} s). "
             f"{bench.note}. Each setting trained {len(seeds)} times (fold seeds "
             f"{', '.join(map(str, seeds))}; seed 0 = coder's own document folds, the others "
             "documents in a seeded order, each to the lightest fold: coder's `seed` does not "
             "reach its grouped folds) and scored on dev.", "",
             "Cells: mean ± spread (max - min) over the seeds. **train** = the model's kept "
             "out-of-fold decisions on its training segments: the figure that chooses, with the "
             "changed share (no dev labels in it). dev is reported beside, never used to "
             "choose. changed = share of dev segments whose predictions differ between seeds. "
             "fit s: one process niced on a shared machine, only roughly comparable.", ""]
    lines += table(bench, results, params)
    if why:
        lines += ["", "How the combination was chosen (train figure = (micro + macro) / 2 of "
                  "the train columns, mean over seeds; rule in the script's docstring, written "
                  "before the full runs; dev played no part):", ""]
        lines += [f"- {w}" for w in why]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--only", default=None, help="comma-separated setting names (no combination)")
    ap.add_argument("--no-prototype", action="store_true",
                    help="skip the prototype's other differences")
    ap.add_argument("--posthoc", action="store_true",
                    help="the combinations of POSTHOC instead (no selection)")
    ap.add_argument("--results", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write every run as JSON")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    wall = time.perf_counter()
    load_start = os.getloadavg()[0]
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = SETTINGS + ([] if args.no_prototype else PROTOTYPE)
    if args.posthoc:
        settings = POSTHOC
    if args.only:
        wanted = {s.strip() for s in args.only.split(",")}
        settings = [s for s in settings if s[0] in wanted]
    params = dict(settings)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        bench, emb = load(args.corpus, Path(tmp))
        log(f"{bench.name}: study ready ({emb.encoded} texts encoded now)")
        lib.train(bench.study, coders=[bench.coder], embedder=emb)  # vectors into the study
        for name, p in settings:
            results[name] = run_setting(bench, emb, p, seeds)
            log(f"{name}: train {figure(results[name])}, changed {results[name]['changed']}")
        why: list[str] = []
        chosen = None
        if not args.only and not args.no_prototype and not args.posthoc:
            names, why = search(bench, emb, seeds, results, params)
            chosen = " + ".join(names) or "defaults"
            why.append(f"**chosen: {chosen}** `{json.dumps(params[chosen])}`")
        bench.study.close()
    info = {"command": "python evaluation/bench_options.py " + " ".join(
                str(a) for a in (argv if argv is not None else sys.argv[1:])),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_start": load_start, "load_end": os.getloadavg()[0],
            "wall": time.perf_counter() - wall}
    heading = POSTHOC_HEADING if args.posthoc else HEADING
    text = report(bench, results, params, why, seeds, info, heading)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"params": params, "results": results, "info": info},
                                        indent=1))
    if not args.no_write:
        bench_suggest.write_results(args.results or bench.results, text, heading=heading)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
