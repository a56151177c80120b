"""Fit the day-one zero-shot constants of `coder.machine.model.ZS_DAY_ONE` on coded studies.

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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coder import Study  # noqa: E402
from coder.machine.embed import default_embedder  # noqa: E402
from coder.machine.model import (  # noqa: E402
    _best_threshold,
    _fit_offset_logistic,
    _sigmoid,
    calibration,
)
from coder.machine.suggest import (  # noqa: E402
    codebook_model,
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
    model = codebook_model(study, codes, embedder)
    parts = model._zero_shot_parts(model._similarity(X), mask)
    labelled = (Y >= 0) & mask
    return parts[labelled], (Y[labelled] == 1).astype(np.float64)


def rounded(figures: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in figures.items()}


def fit(studies: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """(margin, absolute, intercept) with every study weighted equally."""
    parts = np.vstack([p for p, _ in studies])
    y = np.concatenate([t for _, t in studies])
    weight = np.concatenate([np.full(len(t), 1.0 / len(t)) for _, t in studies])
    return _fit_offset_logistic(parts[:, 1:], y, parts[:, 0], np.zeros(3), 0.0, weight)


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
        report[name] = {"cells": int(len(y)), "fitted": rounded(calibration(p, y)),
                        "before (margin + absolute)": rounded(calibration(before, y)),
                        "f1_threshold": round(t, 4), "precision": round(precision, 4),
                        "recall": round(recall, 4), "f1": round(f1, 4)}
    constants = {"margin": round(float(w[0]), 3), "absolute": round(float(w[1]), 3),
                 "intercept": round(float(w[2]), 3),
                 "threshold": round(float(np.mean(thresholds)), 3)}
    print(json.dumps({"ZS_DAY_ONE": constants, "studies": report}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
