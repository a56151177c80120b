"""Fit the day-one zero-shot constants of `coder.model.ZS_DAY_ONE` on coded studies.

    python training/fit_zero_shot.py STUDY.db:CODER[,CODER] [STUDY.db:CODER ...]

Each study contributes its coders' decisions (labelled segment x code cells, as `coder train`
reads them) and the codebook-only similarities of those segments (no confirmed segments in the
code prototypes: that is day one). The fit is the logistic model of `CodeSuggester` with the
prior ``log(1 / (K - 1))`` as an offset:

    P(code applies) = sigmoid(log(1/(K-1)) + margin_w * margin + absolute_w * absolute + intercept)

with every study weighted equally (a study with 48 codes has far more cells than one with 7).
The threshold is the mean over studies of the F1-maximising cut of the fitted scores. Prints
the constants as JSON, and per study the log-loss, Brier score and expected calibration error
(ECE, 10 bins) of the fitted scores and of the fixed map used before (margin + absolute, no
prior, no intercept).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coder import Study  # noqa: E402
from coder.embed import default_embedder  # noqa: E402
from coder.model import CodeSuggester, _best_threshold, _sigmoid  # noqa: E402
from coder.suggest import (  # noqa: E402
    code_vectors,
    eligibility,
    segment_features,
    suggestable_codes,
    training_labels,
)


def cells(path: str, coders: list[str]):
    """Zero-shot parts (cells, 4) and labels (cells,) of a study's labelled segment x code cells."""
    study = Study(path)
    codes = suggestable_codes(study.codebook())
    embedder = default_embedder()
    seg_ids, Y = training_labels(study, codes, coders)
    segs = study.segments(include_interviewer=True)
    segs = segs[segs["segment_id"].isin(seg_ids)].reset_index(drop=True)
    order = {s: i for i, s in enumerate(seg_ids)}
    Y = Y[[order[s] for s in segs["segment_id"]]]
    mask = eligibility(codes, segs)
    X = segment_features(study, segs, embedder).X
    protos, pieces, owner = code_vectors(study, codes, embedder)
    model = CodeSuggester().fit(np.zeros((0, protos.shape[1])), np.zeros((0, len(codes))),
                                code_ids=[c.id for c in codes], code_vectors=protos,
                                piece_vectors=pieces, piece_code=owner)
    parts = model._zero_shot_parts(model._similarity(X), mask)
    labelled = (Y >= 0) & mask
    return parts[labelled], (Y[labelled] == 1).astype(np.float64)


def calibration(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(abs(p[bins == b].mean() - y[bins == b].mean()) * (bins == b).mean()
              for b in range(10) if (bins == b).any())
    return {"log_loss": round(float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))), 4),
            "brier": round(float(np.mean((p - y) ** 2)), 4), "ece": round(float(ece), 4),
            "mean_score": round(float(p.mean()), 4), "positive_rate": round(float(y.mean()), 4)}


def fit(studies: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    parts = np.vstack([p for p, _ in studies])
    y = np.concatenate([t for _, t in studies])
    weight = np.concatenate([np.full(len(t), 1.0 / len(t)) for _, t in studies])

    def objective(w):
        z = parts[:, 0] + parts[:, 1:] @ w
        loss = float((weight * (np.logaddexp(0.0, z) - y * z)).sum())
        return loss, parts[:, 1:].T @ (weight * (_sigmoid(z) - y))

    return minimize(objective, np.zeros(3), jac=True, method="L-BFGS-B").x


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", nargs="+", metavar="STUDY.db:CODER[,CODER]")
    args = parser.parse_args(argv)
    data, names = [], []
    for spec in args.studies:
        path, _, who = spec.rpartition(":")
        if not path or not who:
            parser.error(f"{spec}: expected STUDY.db:CODER[,CODER]")
        data.append(cells(path, who.split(",")))
        names.append(spec)
    w = fit(data)
    thresholds = []
    report = {}
    for name, (parts, y) in zip(names, data):
        p = _sigmoid(parts[:, 0] + parts[:, 1:] @ w)
        t, precision, recall, f1 = _best_threshold(p, y == 1)
        thresholds.append(t)
        before = _sigmoid(parts[:, 1] + parts[:, 2])
        report[name] = {"cells": int(len(y)), "fitted": calibration(p, y),
                        "before (margin + absolute)": calibration(before, y),
                        "f1_threshold": round(t, 4), "precision": round(precision, 4),
                        "recall": round(recall, 4), "f1": round(f1, 4)}
    constants = {"margin": round(float(w[0]), 3), "absolute": round(float(w[1]), 3),
                 "intercept": round(float(w[2]), 3),
                 "threshold": round(float(np.mean(thresholds)), 3)}
    print(json.dumps({"ZS_DAY_ONE": constants, "studies": report}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
