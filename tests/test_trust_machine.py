"""The machine's agreement is never measured on its own training data (issue 14, parts 2 and
3): `coder train` keeps the cross-validated (out-of-fold, grouped by document) predictions with
the model and prints cross-validated per-code quality; `agree --machine` scores segments a
model learned from with them, segments it did not learn from with its suggestions, labels and
reports the two apart, and keeps the human-human figure. Real study files, the fake embedder
of tests/test_suggest.py, exact messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from test_suggest import CODEBOOK, code_all, topic_of, toy, write_transcripts  # noqa: F401  (fixture)

from coder.analysis import agreement as A
from coder.cli import cli
from coder.machine import suggest as lib
from coder.machine.embed import HashingEmbedder
from coder.machine.model import _best_threshold
from coder.store.db import now


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(autouse=True)
def fake_model(monkeypatch):
    monkeypatch.setattr(lib, "default_embedder", lambda: HashingEmbedder(dim=256))


def code_like_bob(study, documents=None):
    """bob codes as alice does, except that he calls every third finance segment markets."""
    segs = study.segments(documents=documents, include_interviewer=False)
    cid = study.coder_id("bob")
    rows, finance = [], 0
    for r in segs.itertuples():
        topic = topic_of(r.text)
        if topic == "language" and r.speaker != "ALICE":
            rows.append((r.segment_id, cid, None, "no_code"))
            continue
        if topic == "finance":
            finance += 1
            topic = "markets" if finance % 3 == 0 else topic
        rows.append((r.segment_id, cid, topic, "confirmed"))
    with study.db.transaction() as conn:
        conn.executemany("INSERT INTO codings (segment_id, coder_id, code_id, decision, "
                         "created_at) VALUES (?,?,?,?, ?)", [(*r, now()) for r in rows])


@pytest.fixture
def trained(toy):
    """alice and bob coded d00-d04; the model (v2) learned from them; suggestions made by it."""
    docs = [f"d{i:02d}" for i in range(5)]
    lib.suggest(toy, min_score=0.0)                        # v1: the codebook model
    code_all(toy, documents=docs)
    code_like_bob(toy, documents=docs)
    lib.train(toy)
    lib.suggest(toy, recompute=True)
    return toy


def pooled(res, kind):
    return [c.pooled.krippendorff_alpha for c in res.comparisons if c.kind == kind]


# -- the fit keeps its out-of-fold predictions ----------------------------------------------------
def test_train_keeps_cross_validated_predictions_as_plain_arrays(trained):
    names = {r["name"]: r["dtype"] for r in trained.db.query(
        "SELECT name, dtype FROM model_arrays WHERE model_version = 2")}
    assert {"oof_segment", "oof_score", "oof_fold", "oof_threshold"} <= set(names)
    assert not any(d.startswith("|O") for d in names.values())  # never objects, never pickles
    oof = lib.out_of_fold(trained, 2)
    assert (oof.n_folds, oof.grouped_by) == (5, "document")
    assert oof.describe() == "cross-validated by document (5 folds)"
    assert lib.out_of_fold(trained, 1) is None                   # the codebook model
    # each fold's threshold is chosen on the other folds only
    seg_ids, Y = lib.training_labels(trained, lib.suggestable_codes(trained.codebook()))
    order = {s: i for i, s in enumerate(seg_ids)}
    Y = Y[[order[s] for s in oof.segment_ids]]
    c = oof.code_ids.index("finance")
    for f in range(3):
        out = (oof.folds != f) & (Y[:, c] >= 0)
        assert oof.thresholds[f, c] == pytest.approx(
            _best_threshold(oof.scores[out, c], Y[out, c] == 1)[0])
    # folds are whole documents
    docs = dict(trained.db.query("SELECT id, document_id FROM segments"))
    by_doc = {}
    for s, f in zip(oof.segment_ids, oof.folds):
        by_doc.setdefault(docs[int(s)], set()).add(int(f))
    assert all(len(v) == 1 for v in by_doc.values())


def test_train_prints_cross_validated_quality_and_marks_codes_too_few_to_judge(toy, tmp_path):
    code_all(toy)
    # keep only 3 of alice's Language segments: too few to judge
    keep = [r[0] for r in toy.db.query(
        "SELECT id FROM codings WHERE code_id = 'language' ORDER BY id LIMIT 3")]
    toy.db.execute("DELETE FROM codings WHERE code_id = 'language' AND id NOT IN (%s)"
                   % ",".join(map(str, keep)))
    report = tmp_path / "m.json"
    r = run("train", toy.path, "--report", report)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[1] == (
        "Cross-validated by document (5 folds): each segment scored by a model fitted without "
        "its document; thresholds chosen without the segment's fold. Support: confirmed "
        "segments; negatives: segments decided without the code. A code with fewer than 5 "
        "confirmed segments has too few positives to judge.")
    cv = json.loads(report.read_text())["metrics"]["cross_validation"]
    tried = {float(c): f for c, f in cv["C_tried"].items()}
    assert set(tried) == {1.0, 3.0} and cv["C"] == max(tried, key=tried.get)
    assert lines[2] == (f"Regularisation C {cv['C']:g}, chosen by these folds' macro-F1 (C 1: "
                        f"{tried[1.0]:.3f}, C 3: {tried[3.0]:.3f}): the figures below are of the "
                        "better of two, slightly optimistic.")
    assert lines[3].split() == ["code", "source", "support", "negatives", "precision", "recall",
                                "f1", "threshold"]
    per_code = {e["code"]: e for e in json.loads(report.read_text())["metrics"]["per_code"]}
    for e in per_code.values():
        assert {"cv_precision", "cv_recall", "cv_f1", "too_few_to_judge"} <= set(e)
    lang = next(line for line in lines if line.startswith("Barriers/Language"))
    assert lang.split()[1:5] == ["codebook", "3", str(per_code["Barriers/Language"]["negatives"]),
                                 "-"]
    assert lang.endswith("too few positives to judge (3 < 5)")
    fin = per_code["Barriers/Finance"]
    row = next(line for line in lines if line.startswith("Barriers/Finance")).split()
    assert row[1:7] == [fin["source"], "18", str(fin["negatives"]),
                        f"{fin['cv_precision']:.2f}", f"{fin['cv_recall']:.2f}",
                        f"{fin['cv_f1']:.2f}"]
    assert not fin["too_few_to_judge"]


# -- agree --machine -----------------------------------------------------------------------------
def test_agree_machine_uses_out_of_fold_predictions_on_training_segments(trained):
    res = A.study_agreement(trained, ["alice", "bob"], machine=True, ci=False)
    assert [(c.coders, c.kind) for c in res.comparisons] == [
        (["alice", "bob"], "coders"), (["alice", "machine"], "cross-validated"),
        (["bob", "machine"], "cross-validated")]
    label = "machine, model v2, cross-validated by document (5 folds)"
    assert [(m.key, m.label, len(m.units)) for m in res.machine] == [
        ("cross-validated", label, res.units)]
    assert res.comparisons[1].label == f"alice + machine ({label})"
    # the machine's codes are the kept out-of-fold decisions, not the in-sample suggestions
    oof = lib.out_of_fold(trained, 2)
    marks, _ = A.machine_marks(trained, [int(s) for s in oof.segment_ids])
    decided = oof.decisions()
    for i, s in enumerate(oof.segment_ids):
        hits = np.flatnonzero(decided[i])
        best = hits[np.argsort(-oof.scores[i, hits], kind="stable")][:3]
        assert marks[int(s)] == {oof.code_ids[j] for j in best}
    # the human-human figure is the one without --machine
    humans = A.study_agreement(trained, ["alice", "bob"], ci=False)
    assert res.comparisons[0].pooled.krippendorff_alpha == humans.comparisons[0].pooled \
        .krippendorff_alpha
    assert 0 < humans.comparisons[0].pooled.krippendorff_alpha < 1


def test_segments_it_did_not_learn_from_are_reported_apart(trained):
    code_all(trained, documents=["d05"])
    code_like_bob(trained, documents=["d05"])          # decided after the model was trained
    res = A.study_agreement(trained, ["alice", "bob"], machine=True, ci=False)
    unseen = [m for m in res.machine if m.key == "unseen"]
    assert [m.label for m in unseen] == ["machine, model v2, segments it was not trained on"]
    assert len(unseen[0].units) == 9 and res.units == 54
    assert [(c.coders, c.kind, c.units) for c in res.comparisons] == [
        (["alice", "bob"], "coders", 54),
        (["alice", "machine"], "cross-validated", 45), (["bob", "machine"], "cross-validated", 45),
        (["alice", "machine"], "unseen", 9), (["bob", "machine"], "unseen", 9)]
    r = run("agree", trained.path, "--coders", "alice,bob", "--machine", "--resamples", "0")
    assert r.exit_code == 0, r.output
    assert ("Agreement per code: 54 segments decided by every coder (alice, bob); compared: "
            "alice + bob") in r.output
    assert ("machine (cross-validated): machine, model v2, cross-validated by document (5 "
            "folds); 45 of the 54 segments.\n"
            "machine (not trained on): machine, model v2, segments it was not trained on; 9 of "
            "the 54 segments.\n"
            "The machine's kinds of judgement are compared separately, never pooled.\n"
            ) in r.output
    data = json.loads(run("agree", trained.path, "--coders", "alice,bob", "--machine", "--json",
                          "--resamples", "0").output)
    assert data["coders"] == ["alice", "bob"] and data["kind"] == "coders"
    assert [(c["label"], c["units"]) for c in data["comparisons"]] == [
        ("alice + machine (machine, model v2, cross-validated by document (5 folds))", 45),
        ("bob + machine (machine, model v2, cross-validated by document (5 folds))", 45),
        ("alice + machine (machine, model v2, segments it was not trained on)", 9),
        ("bob + machine (machine, model v2, segments it was not trained on)", 9)]
    assert data["machine"] == [
        {"kind": "cross-validated", "label": "machine, model v2, cross-validated by document "
         "(5 folds)", "units": 45},
        {"kind": "unseen", "label": "machine, model v2, segments it was not trained on",
         "units": 9}]


def test_a_model_without_kept_predictions_is_labelled_in_sample(trained):
    trained.db.execute("DELETE FROM model_arrays WHERE model_version = 2 AND name LIKE 'oof_%'")
    res = A.study_agreement(trained, ["alice"], machine=True, ci=False)
    assert [(m.key, m.label) for m in res.machine] == [(
        "unknown", "machine, model v2, in-sample where it was trained (no cross-validated "
        f"predictions kept; retrain: coder train {trained.path})")]
    assert [c.coders for c in res.comparisons] == [["alice", "machine"]]


def test_every_pair_of_three_coders_with_the_machine_as_extra_columns(trained):
    segs = trained.segments(documents=["d00"], include_interviewer=False)
    cid = trained.coder_id("carol")
    with trained.db.transaction() as conn:
        conn.executemany("INSERT INTO codings (segment_id, coder_id, code_id, decision, "
                         "created_at) VALUES (?,?, 'markets', 'confirmed', ?)",
                         [(int(s), cid, now()) for s in segs["segment_id"]])
    res = A.study_agreement(trained, ["alice", "bob", "carol"], machine=True, ci=False)
    assert [(c.coders, c.kind) for c in res.comparisons] == [
        (["alice", "bob", "carol"], "coders"), (["alice", "bob"], "pair"),
        (["alice", "carol"], "pair"), (["bob", "carol"], "pair"),
        (["alice", "machine"], "cross-validated"), (["bob", "machine"], "cross-validated"),
        (["carol", "machine"], "cross-validated")]
    r = run("agree", trained.path, "--coders", "alice,bob,carol", "--machine", "--resamples", "0")
    assert r.exit_code == 0, r.output
    table = r.output[r.output.index("Every comparison, pooled over segment × code"):]
    rows = [line.strip("│ ").split("│")[0].strip() for line in table.splitlines()
            if line.startswith("│")]
    assert rows == ["alice + bob + carol", "alice + bob", "alice + carol", "bob + carol",
                    "alice + machine (cross-validated)", "bob + machine (cross-validated)",
                    "carol + machine (cross-validated)"]
