"""Embedding on a Dask cluster (issue 19): a tiny real local cluster (two worker processes, one
thread each, 127.0.0.1), a few hundred segments, the fake embedder for speed and the real int8
model where marked. Vectors come back to the one writer; each worker loads the model once."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner

from coder import Study
from coder.cli import cli
from coder.machine import distributed as D
from coder.machine import suggest as lib
from coder.machine.embed import HashingEmbedder, embed_texts

distributed = pytest.importorskip("distributed")

CODEBOOK = """\
name: Toy codebook
codes:
  - id: finance
    name: Finance
    description: money bank loans grants funding
  - id: markets
    name: Markets
    description: customers abroad export demand buyers
  - id: staff
    name: Staff
    description: people hiring employees skills training
"""
WORDS = ["bank", "loans", "export", "customers", "abroad", "hiring", "staff", "grants",
         "demand", "skills", "money", "buyers", "training", "funding", "people"]


def dump(path) -> str:
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                  silence_logs=50) as c:
        yield c


@pytest.fixture
def big(tmp_path):
    """A study of 300 distinct participant segments in 6 documents."""
    book = tmp_path / "toy.yaml"
    book.write_text(CODEBOOK, encoding="utf-8")
    s = Study.create(tmp_path / "big.db", codebook=book)
    rng = np.random.default_rng(0)
    paths = []
    for d in range(6):
        lines = []
        for t in range(50):
            words = " ".join(rng.choice(WORDS, size=6))
            lines.append(f"P{d}: Segment {d}-{t} is about {words}.")
        path = tmp_path / f"d{d}.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
    s.import_transcripts(paths)
    yield s
    s.close()


def test_vectors_from_the_cluster_are_the_local_ones(cluster, big):
    emb = HashingEmbedder(dim=64, name="hashing-64")
    texts = big.segments()["text"].tolist()
    with D.DaskEmbedder(emb, address=cluster.scheduler_address, partition=32) as remote:
        assert remote.name == emb.name == "hashing-64" and remote.workers() == 2
        got = embed_texts(big, texts, remote)
        # each worker made its embedder once (the plugin), however many partitions it ran
        made = remote._client.run(lambda: D.worker_embedder.cache_info().misses)
    assert sorted(made.values()) == [1, 1]
    np.testing.assert_allclose(got, HashingEmbedder(dim=64).encode(texts), atol=1e-3)
    assert emb.calls == 0                  # nothing was encoded in this process
    rows = big.db.query("SELECT model, dtype, COUNT(*) AS n FROM embeddings GROUP BY model")
    assert [tuple(r) for r in rows] == [("hashing-64", "<f2", 300)]


def test_suggest_on_the_cluster_equals_suggest_here(cluster, big, tmp_path):
    here = lib.suggest(big, embedder=HashingEmbedder(dim=64, name="hashing-64"), min_score=0.0)
    with big.db.transaction() as conn:
        for table in ("suggestions", "model_arrays", "models", "embeddings"):
            conn.execute(f"DELETE FROM {table}")
    emb = HashingEmbedder(dim=64, name="hashing-64")
    with D.DaskEmbedder(emb, address=cluster.scheduler_address) as remote:
        there = lib.suggest(big, embedder=remote, min_score=0.0)
    cols = ["segment_id", "code_id", "rank", "score"]
    assert len(there) == len(here) == 900
    np.testing.assert_array_equal(there[cols[:3]].to_numpy(), here[cols[:3]].to_numpy())
    np.testing.assert_allclose(there["score"], here["score"], atol=1e-6)


def test_cli_dask_address(cluster, big, monkeypatch):
    monkeypatch.setattr(lib, "default_embedder", lambda: HashingEmbedder(dim=64, name="hashing-64"))
    r = CliRunner().invoke(cli, ["suggest", str(big.path), "--dask", cluster.scheduler_address,
                                 "--min-score", "0"])
    assert r.exit_code == 0, r.output
    assert r.output == ("900 suggestions for 300 segments (model v1, codebook); sources: "
                        "codebook 900\n")
    assert big.db.one("SELECT COUNT(*) FROM embeddings")[0] == 306  # segments, code names and descriptions


def test_cli_local_workers(big, monkeypatch):
    monkeypatch.setattr(lib, "default_embedder", lambda: HashingEmbedder(dim=64, name="hashing-64"))
    r = CliRunner().invoke(cli, ["suggest", str(big.path), "--workers", "2", "--min-score", "0"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("900 suggestions for 300 segments (model v1, codebook)")


def test_unreachable_scheduler_is_refused(big, monkeypatch):
    monkeypatch.setattr(lib, "default_embedder", lambda: HashingEmbedder(dim=64, name="hashing-64"))
    monkeypatch.setattr(D, "CONNECT_TIMEOUT", "2s")
    before = dump(big.path)
    r = CliRunner().invoke(cli, ["suggest", str(big.path), "--dask", "tcp://127.0.0.1:9"])
    assert r.exit_code == 1
    assert r.output.startswith("Error: cannot reach the Dask scheduler at tcp://127.0.0.1:9 (")
    assert r.output.rstrip().endswith("(start one with: dask scheduler --host 127.0.0.1, and "
                                      "workers with: dask worker ADDRESS)")
    assert dump(big.path) == before


def test_a_worker_that_cannot_load_the_model_is_reported(cluster, big):
    class Broken(HashingEmbedder):
        spec = {"backend": "no-such-backend"}

    before = dump(big.path)
    with pytest.raises(D.ClusterError) as e:
        D.DaskEmbedder(Broken(dim=8), address=cluster.scheduler_address).start()
    assert str(e.value).startswith("the cluster's workers could not load the embedding model "
                                   "(")
    assert "no-such-backend" in str(e.value)  # the worker's error (Dask may shorten it)
    assert str(e.value).endswith("(install coder on every worker (same version))")
    assert dump(big.path) == before


def test_address_or_workers_not_both():
    with pytest.raises(lib.CoderError, match="either a scheduler address or a number"):
        D.DaskEmbedder(HashingEmbedder(), address="tcp://127.0.0.1:1", workers=2)


@pytest.mark.model
def test_the_real_int8_model_on_the_cluster(big, tmp_path_factory, monkeypatch):
    """Workers started after CODER_CACHE_DIR is set share the session's exported model."""
    from coder.machine import onnx_backend
    from coder.machine.embed import make_embedder

    monkeypatch.setenv("CODER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "onnx-cache"))
    onnx_backend.ensure_exported("int8", log=lambda msg: None)
    texts = big.segments()["text"].tolist()[:120]
    df = lib.suggest(big, backend="onnx-int8", workers=2, min_score=0.0)
    assert len(df) == 900
    got = embed_texts(big, texts, make_embedder("onnx-int8"))   # from the cache
    local = make_embedder("onnx-int8").encode(texts)
    # one text a run: a worker's vector of a text is this process's (up to float16 storage)
    assert (got * local).sum(1).min() > 0.9999
    assert big.db.one("SELECT DISTINCT model FROM embeddings")[0] == "all-MiniLM-L6-v2@onnx-int8"
