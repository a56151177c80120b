"""What a trained model keeps in the study besides its weights, read back without the model
code: the arrays, checked before they are trusted, and its cross-validated (out-of-fold)
predictions, which `coder agree --machine` scores on the segments it learned from.

Kept apart from coder.machine.suggest so that reading them does not import scikit-learn and
the model (about 1.8 s of a command's start).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from coder.errors import StudyError

if TYPE_CHECKING:
    from coder.store import Store

_ARRAY_KINDS = set("biufcU")


def read_array(study: Store, version: int, row) -> np.ndarray:
    """One stored array, checked (checksum, dtype, size, shape) before it is trusted."""
    def damaged(why: str) -> StudyError:
        return StudyError(f"model version {version} in {study.path} is damaged: array "
                          f"'{row['name']}' {why}", hint=f"train a new one: coder train {study.path}")

    data = row["data"]
    if not isinstance(data, bytes):
        raise damaged("is not binary data")
    if row["sha256"] is not None and hashlib.sha256(data).hexdigest() != row["sha256"]:
        raise damaged("does not match its checksum")
    try:
        dtype = np.dtype(row["dtype"])
        shape = json.loads(row["shape"])
    except (TypeError, ValueError):
        raise damaged("has an unreadable type or shape") from None
    if dtype.kind not in _ARRAY_KINDS or dtype.itemsize == 0:
        raise damaged(f"has a type ({row['dtype']}) a model never stores")
    if (not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape)):
        raise damaged("has an unreadable shape")
    if len(data) != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
        raise damaged(f"holds {len(data)} bytes, not what its shape {shape} needs")
    return np.frombuffer(data, dtype=dtype).reshape(shape)



@dataclass
class OutOfFold:
    """A trained model's cross-validated predictions for the segments it learned from: each
    row scored by a fold model fitted without it (folds grouped by document when there were
    enough documents), decided by a threshold chosen without its fold."""

    version: int
    segment_ids: np.ndarray          # (rows,)
    code_ids: list[str]
    scores: np.ndarray               # (rows, codes)
    folds: np.ndarray                # (rows,) fold of each row
    thresholds: np.ndarray           # (folds, codes)
    n_folds: int
    grouped_by: str | None           # 'document', 'segment', or None (not cross-validated)

    def decisions(self) -> np.ndarray:
        """(rows, codes) bool: the code at or above its fold's threshold."""
        if not self.n_folds:
            return np.zeros(self.scores.shape, bool)
        return self.scores >= self.thresholds[self.folds]

    def describe(self) -> str:
        if self.grouped_by == "document":
            return f"cross-validated by document ({self.n_folds} folds)"
        if self.grouped_by == "segment":
            return (f"cross-validated by segment ({self.n_folds} folds; too few documents to "
                    "group them)")
        return "not cross-validated"


OUT_OF_FOLD = ("code_ids", "oof_segment", "oof_score", "oof_fold", "oof_threshold")


def out_of_fold(study: Store, version: int) -> OutOfFold | None:
    """The cross-validated predictions kept with a trained model; None for a codebook model
    or one trained before coder kept them."""
    rows = study.db.query("SELECT name, dtype, shape, data, sha256 FROM model_arrays WHERE "
                          "model_version=? AND name IN (%s)" % ",".join("?" * len(OUT_OF_FOLD)),
                          (version, *OUT_OF_FOLD))
    arrays = {r["name"]: read_array(study, version, r) for r in rows}
    if len(arrays) < len(OUT_OF_FOLD):
        return None
    row = study.db.one("SELECT metrics FROM models WHERE version=?", (version,))
    info = json.loads(row["metrics"] if row is not None else "{}").get("cross_validation", {})
    return OutOfFold(version=version, segment_ids=arrays["oof_segment"].astype(np.int64),
                     code_ids=[str(c) for c in arrays["code_ids"]],
                     scores=arrays["oof_score"].astype(np.float64),
                     folds=arrays["oof_fold"].astype(np.int64),
                     thresholds=arrays["oof_threshold"].astype(np.float64),
                     n_folds=int(info.get("folds", len(arrays["oof_threshold"]))),
                     grouped_by=info.get("grouped_by"))
