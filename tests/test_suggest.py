"""Suggestions and retraining on real study files (fake embedder; the real model is marked)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from coder import Study
from coder.cli import cli
from coder.errors import NothingToDo, UnknownReference
from coder.machine import suggest as lib
from coder.machine.embed import HashingEmbedder, embed_texts

CODEBOOK = """\
name: Toy codebook
codes:
  - id: bar
    name: Barriers
    codes:
      - id: finance
        name: Finance
        description: money bank loans grants funding
        items: [bank loans are slow, grants are hard to get]
      - id: language
        name: Language
        description: english translation language speaking
        speakers: [alice]
  - id: markets
    name: Markets
    description: customers abroad export demand buyers
"""

TOPICS = {
    "finance": ["Money is the problem, bank loans take months.",
                "Grants and funding are hard to get from the bank.",
                "Without capital and loans we cannot pay the cost."],
    "language": ["Speaking english is hard for our staff.",
                 "We pay for translation of every language document.",
                 "The language barrier, english speaking, is real."],
    "markets": ["Customers abroad want our export products.",
                "Demand from buyers abroad keeps growing.",
                "Export customers and foreign demand pull us out."],
}
QUESTIONS = ["What stops you?", "Tell me more.", "And then?"]


def write_transcripts(folder, n_docs=6):
    paths = []
    names = list(TOPICS)
    for d in range(n_docs):
        lines = []
        for t in range(9):
            topic = names[(d + t) % 3]
            speaker = "ALICE" if t % 2 == 0 else "BOB"
            lines.append(f"INTERVIEWER: {QUESTIONS[t % 3]}")
            lines.append(f"{speaker}: {TOPICS[topic][(d + t) % 3]} Case {d}-{t}.")
        path = folder / f"d{d:02d}.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


@pytest.fixture
def toy(tmp_path):
    book = tmp_path / "toy.yaml"
    book.write_text(CODEBOOK, encoding="utf-8")
    s = Study.create(tmp_path / "toy.db", codebook=book)
    s.import_transcripts(write_transcripts(tmp_path))
    yield s
    s.close()


@pytest.fixture
def emb():
    return HashingEmbedder(dim=256)


def topic_of(text):
    for topic, texts in TOPICS.items():
        if any(text.startswith(t) for t in texts):
            return topic
    return None


def code_all(study, coder="alice", documents=None):
    """Confirm each participant segment's true topic (Language only where ALICE speaks)."""
    segs = study.segments(documents=documents, include_interviewer=False)
    cid = study.coder_id(coder)
    rows = []
    for r in segs.itertuples():
        topic = topic_of(r.text)
        if topic == "language" and r.speaker != "ALICE":
            rows.append((r.segment_id, cid, None, "no_code"))
        else:
            rows.append((r.segment_id, cid, topic, "confirmed"))
    with study.db.transaction() as conn:
        conn.executemany("INSERT INTO codings (segment_id, coder_id, code_id, decision, "
                         "created_at) VALUES (?,?,?,?, '2026-01-01T00:00:00Z')", rows)
    return len(rows)


def count(study, table):
    return study.db.one(f"SELECT COUNT(*) FROM {table}")[0]


# -- zero-shot --------------------------------------------------------------------------------
def test_codebook_suggestions_rank_the_right_code(toy, emb):
    df = lib.suggest(toy, embedder=emb, top_k=3, min_score=0.0)
    top = df[df["rank"] == 1]
    assert len(top) == toy.segments(include_interviewer=False).shape[0]
    hits = [topic_of(t) == c for t, c in zip(top["text"], top["code_id"])]
    assert np.mean(hits) > 0.6
    assert set(df["source"]) == {"codebook"}
    assert ((df["score"] >= 0) & (df["score"] <= 1)).all()
    assert df["model_version"].nunique() == 1
    assert toy.db.one("SELECT kind FROM models")["kind"] == "codebook"
    stored = toy.db.one("SELECT * FROM suggestions LIMIT 1")
    assert stored["codebook_version"] == 1 and stored["threshold"] is not None


def test_speaker_restriction_and_interviewer_turns(toy, emb):
    lib.suggest(toy, embedder=emb, min_score=0.0, top_k=3)
    rows = toy.db.query("SELECT v.speaker, v.role, g.code_id FROM suggestions g "
                        "JOIN segment_view v ON v.segment_id = g.segment_id")
    assert {r["role"] for r in rows} == {"participant"}
    assert {r["speaker"] for r in rows if r["code_id"] == "language"} == {"ALICE"}
    lib.suggest(toy, embedder=emb, min_score=0.0, include_interviewer=True, recompute=True)
    rows = toy.db.query("SELECT v.role, g.code_id FROM suggestions g "
                        "JOIN segment_view v ON v.segment_id = g.segment_id")
    assert "interviewer" in {r["role"] for r in rows}
    assert "language" not in {r["code_id"] for r in rows if r["role"] == "interviewer"}


def test_only_leaf_codes_are_suggested(toy, emb):
    df = lib.suggest(toy, embedder=emb, min_score=0.0)
    assert "bar" not in set(df["code_id"])


def test_codebook_model_is_a_new_version_when_its_parameters_change(toy, emb):
    """Scores must match the model record they cite: suggestions made by an upgraded coder whose
    day-one constants differ get a new codebook model version; the old record is untouched."""
    lib.suggest(toy, embedder=emb, min_score=0.0)
    toy.db.execute("UPDATE models SET params = ? WHERE version = 1",
                   (json.dumps({"zs_margin": 1.0}),))
    df = lib.suggest(toy, embedder=emb, min_score=0.0, recompute=True)
    assert set(df["model_version"]) == {2}
    assert [r["kind"] for r in toy.db.query("SELECT kind FROM models ORDER BY version")] == [
        "codebook", "codebook"]
    assert json.loads(toy.db.one("SELECT params FROM models WHERE version=1")[0]) == {
        "zs_margin": 1.0}
    again = lib.suggest(toy, embedder=emb, min_score=0.0, recompute=True)
    assert set(again["model_version"]) == {2}


# -- caching and duplicates -------------------------------------------------------------------
def test_second_run_encodes_nothing_and_never_duplicates(toy, emb):
    lib.suggest(toy, embedder=emb, min_score=0.0)
    first = emb.calls
    n = count(toy, "suggestions")
    assert first > 0
    lib.suggest(toy, embedder=emb, min_score=0.0, recompute=True)
    assert emb.calls == first
    assert count(toy, "suggestions") == n
    again = lib.suggest(toy, embedder=emb, min_score=0.0)  # nothing left to do
    assert again.empty and count(toy, "suggestions") == n


def test_identical_texts_are_encoded_once(toy, emb):
    vectors = embed_texts(toy, ["Okay.", "Mm-hmm.", "Okay.", "Okay."], emb)
    assert emb.calls == 2 and vectors.shape == (4, 256)
    np.testing.assert_array_equal(vectors[0], vectors[2])


# -- training ---------------------------------------------------------------------------------
def test_train_then_suggest_uses_the_classifier(toy, emb, tmp_path):
    code_all(toy)
    report = tmp_path / "report.json"
    m = lib.train(toy, embedder=emb, report=report)
    assert m.version == 1 and m.kind == "trained"
    assert set(m.trained_on["classifier_codes"]) == {"Barriers/Finance", "Barriers/Language",
                                                     "Markets"}
    per_code = {e["code"]: e for e in m.metrics["per_code"]}
    assert per_code["Markets"]["support"] == 18
    assert per_code["Markets"]["evaluated"] == "cross-validated"
    assert per_code["Markets"]["f1"] > 0.8
    assert json.loads(report.read_text())["version"] == 1
    assert count(toy, "model_arrays") > 5
    df = lib.suggest(toy, embedder=emb, min_score=0.0)
    assert set(df["source"]) <= {"blend", "classifier"} and (df["model_version"] == 1).all()
    top = df[(df["rank"] == 1) & ~((df["speaker"] == "BOB") & df["text"].map(
        lambda t: topic_of(t) == "language"))]
    assert np.mean([topic_of(t) == c for t, c in zip(top["text"], top["code_id"])]) > 0.95
    assert "language" not in set(df.loc[df["speaker"] == "BOB", "code_id"])


def test_training_is_deterministic(toy, emb):
    code_all(toy)
    lib.train(toy, embedder=emb)
    a = lib.suggest(toy, embedder=emb, min_score=0.0)
    lib.train(toy, embedder=emb)
    b = lib.suggest(toy, embedder=emb, min_score=0.0)
    assert (b["model_version"] == 2).all()
    np.testing.assert_array_equal(a["score"].to_numpy(), b["score"].to_numpy())
    assert a["code_id"].tolist() == b["code_id"].tolist()


def stored_suggestions(study):
    return study.db.query("SELECT segment_id, code_id, score, rank, source, threshold, "
                          "model_version, codebook_version FROM suggestions "
                          "ORDER BY segment_id, code_id")


def second_toy(tmp_path, name):
    """A study made as `toy` is, in its own folder."""
    folder = tmp_path / name
    folder.mkdir()
    book = folder / "toy.yaml"
    book.write_text(CODEBOOK, encoding="utf-8")
    s = Study.create(folder / "toy.db", codebook=book)
    s.import_transcripts(write_transcripts(folder))
    return s


def test_train_and_suggest_stores_what_train_then_suggest_store(toy, tmp_path):
    """One process retrains and re-scores every segment: the same model, the same
    suggestions as `train` then `suggest --recompute`, each text encoded once."""
    one, emb_one, emb_two = second_toy(tmp_path, "one"), HashingEmbedder(256), HashingEmbedder(256)
    for study, e in ((toy, emb_two), (one, emb_one)):
        lib.suggest(study, embedder=e, min_score=0.0)  # the codebook's, to be replaced
        code_all(study, documents=["d00", "d01", "d02", "d03"])
    encoded = emb_one.calls
    lib.train(toy, embedder=emb_two)
    two = lib.suggest(toy, embedder=emb_two, min_score=0.0, recompute=True)
    summary, both = lib.train_and_suggest(one, embedder=emb_one, min_score=0.0)
    assert emb_one.calls == encoded  # nothing encoded again
    assert summary.version == 2 and summary.trained_on["documents"] == 4
    assert stored_suggestions(one) == stored_suggestions(toy)
    assert set(both["document"]) == {f"d{d:02d}" for d in range(6)}  # every document
    assert (both["model_version"] == 2).all()
    assert list(both.columns) == list(two.columns)
    keys = ["segment_id", "code_id"]
    pd_two, pd_both = (d.sort_values(keys).reset_index(drop=True) for d in (two, both))
    assert pd_both.drop(columns="segment_id").equals(pd_two.drop(columns="segment_id"))
    one.close()


def test_a_large_rewrite_builds_the_suggestion_indexes_again(toy, emb, monkeypatch):
    def indexes():
        return toy.db.query("SELECT name, sql FROM sqlite_master WHERE type='index' AND "
                            "tbl_name='suggestions' ORDER BY name")

    before = indexes()
    lib.suggest(toy, embedder=emb, min_score=0.0)
    expected = stored_suggestions(toy)
    monkeypatch.setattr(lib, "BULK_REWRITE", 1)
    lib.suggest(toy, embedder=emb, min_score=0.0, recompute=True)
    assert stored_suggestions(toy) == expected
    assert indexes() == before and len(before) >= 3
    plan = " ".join(r["detail"] for r in toy.db.query(
        "EXPLAIN QUERY PLAN SELECT * FROM suggestions WHERE code_id='x'"))
    assert "suggestions_by_code" in plan


def test_features_of_some_documents_are_those_read_for_them(toy, emb):
    segs = toy.segments(include_interviewer=True)
    feats = lib.segment_features(toy, segs, emb)
    keep = segs["document"].isin(["d01", "d04"]).to_numpy()
    part = lib.segment_features(toy, segs[keep].reset_index(drop=True), emb)
    got = feats.documents(keep)
    np.testing.assert_array_equal(got.X, part.X)
    np.testing.assert_array_equal(got.context, part.context)
    np.testing.assert_array_equal(got.previous, part.previous)
    assert got.texts == part.texts and got.context_texts == part.context_texts
    assert (part.context[part.previous < 0] == 0).all()
    np.testing.assert_array_equal(part.context[1], part.X[0])  # the turn before, same document
    rows = np.array([3, 1, 4])
    assert feats.kwargs(rows, context=False)["context"] is None
    np.testing.assert_array_equal(feats.kwargs(rows)["context"], feats.context[rows])
    assert feats.kwargs()["texts"] is feats.texts  # all rows: no copies


def test_stored_model_reloads_from_arrays(toy, emb):
    code_all(toy)
    lib.train(toy, embedder=emb)
    blobs = toy.db.query("SELECT name, dtype FROM model_arrays WHERE model_version=1")
    assert all(not r["dtype"].startswith("|O") for r in blobs)
    model = lib.load_model(toy, 1)
    assert model.code_ids_.tolist() == ["finance", "language", "markets"]


def test_rejections_and_multi_label_codings(toy, emb):
    segs = toy.segments(include_interviewer=False)
    cid = toy.coder_id("bob")
    rows = []
    for r in segs.itertuples():
        rows.append((r.segment_id, cid, topic_of(r.text), "confirmed"))
        if topic_of(r.text) == "finance":  # finance talk also counts as markets here
            rows.append((r.segment_id, cid, "markets", "added"))
        if topic_of(r.text) == "language":
            rows.append((r.segment_id, cid, "finance", "rejected"))
    with toy.db.transaction() as conn:
        conn.executemany("INSERT INTO codings (segment_id, coder_id, code_id, decision, "
                         "created_at) VALUES (?,?,?,?, '2026-01-01T00:00:00Z')", rows)
    ids, Y = lib.training_labels(toy, lib.suggestable_codes(toy.codebook()), ["bob"])
    assert Y.shape == (len(segs), 3)
    assert ((Y == 1).sum(axis=1) >= 1).all() and ((Y == 1).sum(axis=1) == 2).sum() == 18
    lib.train(toy, embedder=emb, coders=["bob"])
    df = lib.suggest(toy, embedder=emb, min_score=0.0, top_k=3)
    finance = df[[topic_of(t) == "finance" for t in df["text"]]]
    above = finance[finance["score"] >= finance["threshold"]]
    assert set(above.groupby("segment_id")["code_id"].apply(frozenset)) == {
        frozenset({"finance", "markets"})}


def test_auto_decisions_are_not_training_data(toy, emb):
    segs = toy.segments(include_interviewer=False)
    cid = toy.coder_id("alice")
    with toy.db.transaction() as conn:
        conn.executemany("INSERT INTO codings (segment_id, coder_id, code_id, decision, "
                         "created_at) VALUES (?,?,?, 'auto', '2026-01-01T00:00:00Z')",
                         [(s, cid, "markets") for s in segs["segment_id"]])
    with pytest.raises(NothingToDo, match="no confirmed codings"):
        lib.train(toy, embedder=emb)
    assert count(toy, "models") == 0


# -- bad input --------------------------------------------------------------------------------
def test_no_codebook(tmp_path, emb):
    s = Study.create(tmp_path / "empty.db")
    with pytest.raises(NothingToDo, match="no codebook"):
        lib.suggest(s, embedder=emb)


def test_codes_without_text(tmp_path, emb):
    book = tmp_path / "bare.yaml"
    book.write_text("name: Bare\ncodes:\n  - name: A\n  - name: B\n", encoding="utf-8")
    s = Study.create(tmp_path / "bare.db", codebook=book)
    s.import_transcripts(write_transcripts(tmp_path, 1))
    with pytest.raises(lib.NoCodebookText, match="no code has a description"):
        lib.suggest(s, embedder=emb)
    assert count(s, "suggestions") == 0 and count(s, "models") == 0


def test_unknown_documents_and_coders(toy, emb):
    with pytest.raises(UnknownReference, match="unknown document.*: nope"):
        lib.suggest(toy, documents=["d00", "nope"], embedder=emb)
    code_all(toy)
    with pytest.raises(UnknownReference, match="unknown coder.*: carol"):
        lib.train(toy, coders=["carol"], embedder=emb)
    assert count(toy, "suggestions") == 0 and count(toy, "models") == 0


def test_documents_filter(toy, emb):
    df = lib.suggest(toy, documents=["d01"], embedder=emb, min_score=0.0)
    assert set(df["document"]) == {"d01"}


# -- CLI --------------------------------------------------------------------------------------
@pytest.fixture
def fake_model(monkeypatch):
    monkeypatch.setattr(lib, "default_embedder", lambda: HashingEmbedder(dim=256))


def test_cli_suggest_export_train_models(toy, tmp_path, fake_model):
    path = str(toy.path)
    runner = CliRunner()
    r = runner.invoke(cli, ["suggest", path, "--min-score", "0", "--top-k", "2"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("108 suggestions for 54 segments (model v1, codebook)")
    out = tmp_path / "s.csv"
    r = runner.invoke(cli, ["suggestions", "export", path, str(out)])
    assert r.exit_code == 0 and r.output == f"Wrote 108 suggestions to {out}\n"
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["document", "segment", "speaker", "text", "code", "score", "rank",
                             "source", "model_version"]
    assert rows[0]["document"] == "d00" and rows[0]["rank"] == "1"
    r = runner.invoke(cli, ["train", path])
    assert r.exit_code == 1
    assert r.output.startswith("Error: no confirmed codings on codes of codebook version 1")
    code_all(toy)
    r = runner.invoke(cli, ["train", path, "--coders", "alice", "--report",
                            str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("Model v2: trained on 54 segments from 6 documents by alice")
    assert "Markets" in r.output
    r = runner.invoke(cli, ["models", path])
    assert r.exit_code == 0 and "trained" in r.output and "codebook" in r.output
    r = runner.invoke(cli, ["train", path, "--suggest", "--min-score", "0", "--top-k", "2"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("Model v3: trained on 54 segments")
    assert r.output.splitlines()[-1].startswith("108 suggestions for 54 segments "
                                                "(model v3, trained); sources: ")
    assert toy.db.one("SELECT COUNT(*), MIN(model_version) FROM suggestions")[:] == (108, 3)


def test_cli_bad_input(toy, tmp_path, fake_model):
    runner = CliRunner()
    r = runner.invoke(cli, ["suggest", str(toy.path), "--documents", "d00,zz"])
    assert r.exit_code == 1
    assert r.output.startswith("Error: unknown document(s): zz")
    r = runner.invoke(cli, ["suggest", str(toy.path), "--top-k", "0"])
    assert r.exit_code == 2
    r = runner.invoke(cli, ["suggestions", "export", str(toy.path), str(tmp_path / "x.csv")])
    assert r.exit_code == 1 and "no suggestions yet" in r.output


# -- the real model ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def real_embedder():
    from coder.machine.embed import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder(progress=False)
    emb.model  # load once per session  # noqa: B018
    return emb


@pytest.mark.model
def test_real_model_zero_shot_and_training(toy, real_embedder):
    df = lib.suggest(toy, embedder=real_embedder, min_score=0.0)
    top = df[df["rank"] == 1]
    assert np.mean([topic_of(t) == c for t, c in zip(top["text"], top["code_id"])]) > 0.6
    vectors = toy.db.query("SELECT dim FROM embeddings WHERE model='all-MiniLM-L6-v2'")
    assert vectors and {r["dim"] for r in vectors} == {384}
    code_all(toy)
    m = lib.train(toy, embedder=real_embedder)
    assert m.embedder == "all-MiniLM-L6-v2"
    df = lib.suggest(toy, embedder=real_embedder, min_score=0.0)
    top = df[(df["rank"] == 1) & ~((df["speaker"] == "BOB") & df["text"].map(
        lambda t: topic_of(t) == "language"))]
    assert np.mean([topic_of(t) == c for t, c in zip(top["text"], top["code_id"])]) > 0.9
