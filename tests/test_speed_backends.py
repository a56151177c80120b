"""Embedding backends (issue 19): torch, ONNX float32 and int8 exported on this computer; the
cache keyed by backend, float16 storage, a trained model never fed another backend's vectors.
Real study files; fake embedders named like the real backends, and the real model where marked
(exported once per test session into a temporary cache, never the user's)."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from cli_helpers import dump
from click.testing import CliRunner
from test_suggest import CODEBOOK, code_all, toy, write_transcripts  # noqa: F401  (fixture)

from coder import Study
from coder.cli import cli
from coder.errors import CoderError
from coder.machine import embed
from coder.machine import suggest as lib
from coder.machine.embed import HashingEmbedder, backend_of, embed_texts, make_embedder

TORCH = "all-MiniLM-L6-v2"
INT8 = "all-MiniLM-L6-v2@onnx-int8"
FP32 = "all-MiniLM-L6-v2@onnx-fp32"


class Fake(HashingEmbedder):
    """A hashing embedder wearing a real backend's name (so nothing loads a model)."""

    def __init__(self, backend: str, dim: int = 256, seed: str = ""):
        names = {"torch": TORCH, "onnx-int8": INT8, "onnx-fp32": FP32}
        super().__init__(dim=dim, name=names[backend])
        self.backend = backend
        self.seed = seed

    def encode(self, texts):
        return super().encode([self.seed + t for t in texts])


@pytest.fixture
def fakes(monkeypatch):
    """The process's embedders of each backend, and the default (onnx-fp32), all fake."""
    made = {b: Fake(b, seed=b) for b in embed.BACKENDS}
    monkeypatch.setattr(lib, "shared_embedder", lambda backend: made[backend])
    monkeypatch.setattr(lib, "default_embedder", lambda: made[embed.default_backend()])
    monkeypatch.delenv(embed.BACKEND_ENV, raising=False)
    return made


# -- names, the default, the environment ------------------------------------------------------
def test_backend_names_and_default(monkeypatch):
    monkeypatch.delenv(embed.BACKEND_ENV, raising=False)
    assert embed.DEFAULT_BACKEND == "onnx-fp32" and embed.default_backend() == "onnx-fp32"
    assert make_embedder("torch").name == TORCH          # the name every older cache has
    assert make_embedder("onnx-int8").name == INT8
    assert make_embedder("onnx-fp32").name == FP32
    assert make_embedder().name == FP32
    from coder.machine import onnx_backend

    assert onnx_backend.MODEL_NAME == embed.DEFAULT_MODEL
    assert [backend_of(n) for n in (TORCH, INT8, FP32, "hashing-256", "other@onnx-int8")] == \
        ["torch", "onnx-int8", "onnx-fp32", None, None]
    monkeypatch.setenv(embed.BACKEND_ENV, "torch")
    assert embed.default_backend() == "torch" and make_embedder().name == TORCH
    monkeypatch.setenv(embed.BACKEND_ENV, "gpu")
    with pytest.raises(CoderError) as e:
        embed.default_backend()
    assert str(e.value) == ("CODER_EMBEDDING_BACKEND='gpu' is not an embedding backend "
                            "(use one of torch, onnx-fp32, onnx-int8)")
    with pytest.raises(CoderError, match="unknown embedding backend 'tpu'"):
        make_embedder("tpu")


def test_specs_rebuild_the_same_embedder():
    for emb in (make_embedder("torch"), make_embedder("onnx-int8", threads=1),
                HashingEmbedder(dim=32, name="h")):
        again = make_embedder(**emb.spec)
        assert again.name == emb.name and again.spec == emb.spec


# -- the cache: keyed by backend, float16 ------------------------------------------------------
def test_cache_is_keyed_by_backend(toy):
    texts = ["Okay.", "We export to Spain.", "Okay."]
    a, b = Fake("torch", seed="a"), Fake("onnx-int8", seed="b")
    va = embed_texts(toy, texts, a)
    vb = embed_texts(toy, texts, b)
    assert a.calls == 2 and b.calls == 2              # b reuses none of a's vectors
    assert not np.allclose(va, vb)
    rows = toy.db.query("SELECT model, COUNT(*) AS n FROM embeddings GROUP BY model ORDER BY model")
    assert [(r["model"], r["n"]) for r in rows] == [(TORCH, 2), (INT8, 2)]
    np.testing.assert_array_equal(embed_texts(toy, texts, a), va)  # from the cache
    assert a.calls == 2


def test_vectors_are_stored_as_float16_and_read_back_exactly(toy):
    emb = HashingEmbedder(dim=64)
    fresh = embed_texts(toy, ["Export demand grows.", "Mm-hmm."], emb)
    rows = toy.db.query("SELECT dtype, dim, length(vector) AS n FROM embeddings")
    assert {(r["dtype"], r["dim"], r["n"]) for r in rows} == {("<f2", 64, 128)}
    again = embed_texts(toy, ["Export demand grows.", "Mm-hmm."], emb)
    assert emb.calls == 2
    np.testing.assert_array_equal(fresh, again)   # what is returned is what is stored
    exact = emb.encode(["Export demand grows."])[0]
    assert float(fresh[0] @ exact) > 0.99999


def test_float32_vectors_of_older_files_still_load(toy):
    emb = HashingEmbedder(dim=8)
    old = (np.arange(1, 9) / np.linalg.norm(np.arange(1, 9))).astype("<f4")
    from coder.store.db import text_hash

    with toy.db.transaction() as conn:
        conn.execute("INSERT INTO embeddings (model, text_hash, dim, vector) VALUES (?,?,?,?)",
                     (emb.name, text_hash("old text"), 8, old.tobytes()))
        conn.execute("INSERT INTO embeddings (model, text_hash, dim, vector, dtype) "
                     "VALUES (?,?,?,?,?)", (emb.name, text_hash("odd"), 8, old.tobytes(), "<i4"))
    got = embed_texts(toy, ["old text", "odd"], emb)
    np.testing.assert_array_equal(got[0], old)     # float32 row: read as it is
    assert emb.calls == 1                          # an unknown dtype is damage: encoded again
    assert toy.db.one("SELECT dtype FROM embeddings WHERE text_hash=?",
                      (text_hash("odd"),))[0] == "<f2"


def test_a_study_from_before_the_step_migrates(tmp_path):
    path = tmp_path / "old.db"
    s = Study.create(path)
    s.close()
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE embeddings DROP COLUMN dtype")
    conn.execute("INSERT INTO embeddings (model, text_hash, dim, vector) VALUES "
                 "('hashing-4', 'h', 4, ?)", (np.ones(4, "<f4").tobytes(),))
    conn.execute("DELETE FROM _migrations WHERE name='0007_embedding_backend'")
    conn.commit()
    conn.close()
    s = Study(path)
    assert "0007_embedding_backend" in s.db.applied_migrations()
    assert s.db.one("SELECT dtype FROM embeddings")[0] == "<f4"
    s.close()


def test_encoding_is_written_in_pieces(toy, monkeypatch):
    monkeypatch.setattr(embed, "WRITE_EVERY", 7)
    emb = HashingEmbedder(dim=16)
    texts = [f"text {i}" for i in range(20)]
    embed_texts(toy, texts, emb)
    assert emb.batches == [7, 7, 6]
    assert toy.db.one("SELECT COUNT(*) FROM embeddings")[0] == 20


# -- a trained model and the backend -----------------------------------------------------------
def test_suggest_follows_the_backend_the_model_learned_from(toy, fakes):
    code_all(toy)
    m = lib.train(toy, embedder=fakes["torch"])
    assert m.embedder == TORCH
    df = lib.suggest(toy, min_score=0.0)            # no backend asked: the model's own
    assert set(df["model_version"]) == {m.version}
    assert fakes["onnx-int8"].calls == 0
    models = {r["embedder"] for r in toy.db.query("SELECT embedder FROM models")}
    assert models == {TORCH}


def test_another_backend_than_the_models_is_refused(toy, fakes):
    code_all(toy)
    lib.train(toy, embedder=fakes["torch"])
    before = dump(toy.path)
    with pytest.raises(lib.BackendMismatch) as e:
        lib.suggest(toy, backend="onnx-int8")
    assert str(e.value) == (
        "model v1 learned from all-MiniLM-L6-v2 vectors (backend torch); suggesting with "
        "backend onnx-int8 would mix vectors of two backends (use --backend torch, or retrain "
        f"on onnx-int8 vectors: CODER_EMBEDDING_BACKEND=onnx-int8 coder train {toy.path})")
    with pytest.raises(lib.BackendMismatch):
        lib.suggest(toy, embedder=fakes["onnx-fp32"])
    assert dump(toy.path) == before
    assert fakes["onnx-int8"].calls == 0 and fakes["onnx-fp32"].calls == 0


def test_a_model_of_vectors_no_backend_makes_is_refused(toy, fakes):
    code_all(toy)
    lib.train(toy, embedder=HashingEmbedder(dim=256))
    before = dump(toy.path)
    with pytest.raises(lib.BackendMismatch) as e:
        lib.suggest(toy)
    assert str(e.value) == (
        "model v1 learned from 'hashing-256' vectors, which no embedding backend of this coder "
        f"makes (retrain on onnx-fp32 vectors: coder train {toy.path})")
    assert dump(toy.path) == before


def test_codebook_models_are_one_per_backend(toy, fakes):
    a = lib.suggest(toy, backend="torch", min_score=0.0)
    b = lib.suggest(toy, backend="onnx-int8", min_score=0.0)
    assert a["model_version"].iloc[0] != b["model_version"].iloc[0]
    rows = toy.db.query("SELECT version, embedder FROM models ORDER BY version")
    assert [(r["version"], r["embedder"]) for r in rows] == [(1, TORCH), (2, INT8)]


# -- the CLI ----------------------------------------------------------------------------------
def test_cli_backend_option(toy, fakes):
    r = CliRunner().invoke(cli, ["suggest", str(toy.path), "--backend", "onnx-fp32",
                                 "--min-score", "0"])
    assert r.exit_code == 0, r.output
    assert r.output == ("138 suggestions for 54 segments (model v1, codebook); sources: "
                        "codebook 138\n")
    assert toy.db.one("SELECT DISTINCT model FROM embeddings")[0] == FP32


def test_cli_refuses_another_backend_than_the_models(toy, fakes):
    code_all(toy)
    lib.train(toy, embedder=fakes["torch"])
    before = dump(toy.path)
    r = CliRunner().invoke(cli, ["suggest", str(toy.path), "--backend", "onnx-int8"])
    assert r.exit_code == 1
    assert r.output.startswith("Error: model v1 learned from all-MiniLM-L6-v2 vectors (backend "
                               "torch); suggesting with backend onnx-int8 would mix vectors")
    assert dump(toy.path) == before


def test_cli_bad_options(toy, fakes):
    before = dump(toy.path)
    runner = CliRunner()
    r = runner.invoke(cli, ["suggest", str(toy.path), "--backend", "gpu"])
    assert r.exit_code == 2 and "Invalid value for '--backend': 'gpu' is not one of" in r.output
    r = runner.invoke(cli, ["suggest", str(toy.path), "--workers", "0"])
    assert r.exit_code == 2 and "Invalid value for '--workers'" in r.output
    r = runner.invoke(cli, ["suggest", str(toy.path), "--workers", "2", "--dask",
                            "tcp://127.0.0.1:8786"])
    assert r.exit_code == 2 and "Error: use --dask or --workers, not both" in r.output
    assert dump(toy.path) == before


def test_an_unwritable_model_cache_is_reported(toy, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("CODER_CACHE_DIR", str(blocker / "cache"))
    before = dump(toy.path)
    embed.shared_embedder.cache_clear()  # no model loaded by an earlier test
    r = CliRunner().invoke(cli, ["suggest", str(toy.path), "--backend", "onnx-int8"])
    embed.shared_embedder.cache_clear()
    assert r.exit_code == 1
    assert r.output.startswith(f"Error: cannot write the exported model to {blocker}/cache/onnx (")
    assert r.output.rstrip().endswith("(set CODER_CACHE_DIR to a folder you can write, or use "
                                      "--backend torch)")
    assert dump(toy.path) == before


# -- the real model, exported once per session into a temporary cache -------------------------
@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory):
    folder = tmp_path_factory.getbasetemp() / "onnx-cache"
    mp = pytest.MonkeyPatch()
    mp.setenv("CODER_CACHE_DIR", str(folder))
    from coder.machine import onnx_backend

    onnx_backend.ensure_exported("int8", log=lambda msg: None)
    yield folder
    mp.undo()


SENTENCES = ["We started exporting to Germany after a trade fair.", "Mm-hmm.",
             "The bank would not give us a loan for the new machines, so we waited a year.",
             "So you feel the drinking is not a problem for you right now?"]


@pytest.mark.model
def test_export_is_recorded_checked_and_close_to_torch(onnx_cache, monkeypatch):
    import json

    from coder.machine import onnx_backend

    monkeypatch.setenv("CODER_CACHE_DIR", str(onnx_cache))
    for variant in ("fp32", "int8"):
        path, record = onnx_backend.exported_paths(variant)
        info = json.loads(record.read_text(encoding="utf-8"))
        assert info["sha256"] == onnx_backend.sha256_file(path)
        assert info["variant"] == variant and info["source"] == onnx_backend.source_fingerprint()
        assert onnx_backend.verified_model(variant) == path
    torch_vectors = make_embedder("torch", progress=False).encode(SENTENCES)
    fp32 = make_embedder("onnx-fp32").encode(SENTENCES)
    int8 = make_embedder("onnx-int8").encode(SENTENCES)
    assert fp32.shape == int8.shape == (4, 384)
    assert (fp32 * torch_vectors).sum(1).min() > 0.9999
    assert (int8 * torch_vectors).sum(1).min() > 0.9
    # a changed file no longer verifies and is made again (from the cached float32 export)
    path, _ = onnx_backend.exported_paths("int8")
    with open(path, "ab") as fh:
        fh.write(b"\0")
    assert onnx_backend.verified_model("int8") is None
    messages = []
    assert onnx_backend.ensure_exported("int8", log=messages.append) == path
    assert messages == ["Quantizing it to int8 (once per computer) ..."]
    assert onnx_backend.verified_model("int8") == path


@pytest.mark.model
def test_suggest_with_the_int8_backend(toy, onnx_cache, monkeypatch):
    monkeypatch.setenv("CODER_CACHE_DIR", str(onnx_cache))
    r = CliRunner().invoke(cli, ["suggest", str(toy.path), "--backend", "onnx-int8",
                                 "--min-score", "0"])
    assert r.exit_code == 0, r.output
    rows = toy.db.query("SELECT DISTINCT model, dtype, dim FROM embeddings")
    assert [tuple(r) for r in rows] == [(INT8, "<f2", 384)]
    assert toy.db.one("SELECT embedder FROM models")[0] == INT8
