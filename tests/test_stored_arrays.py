"""A study file whose stored model or embedding arrays were tampered with gives a clear error
(or, for the embedding cache, is quietly re-encoded), never a numpy traceback."""

from __future__ import annotations

import pytest
from test_suggest import code_all, emb, toy  # noqa: F401  (fixtures)

from coder.errors import StudyError
from coder.machine import suggest as lib


@pytest.fixture
def trained(toy, emb):  # noqa: F811
    code_all(toy)
    version = lib.train(toy, embedder=emb).version
    return toy, version


@pytest.mark.parametrize("tamper, message", [
    ("UPDATE model_arrays SET dtype='|O8' WHERE name='coef'", "has a type (|O8) a model never stores"),
    ("UPDATE model_arrays SET data=data || x'00', sha256=NULL WHERE name='coef'", "bytes, not what its shape"),
    ("UPDATE model_arrays SET data=x'00', sha256=NULL WHERE name='coef'", "bytes, not what its shape"),
    ("UPDATE model_arrays SET shape='\"x\"' WHERE name='coef'", "has an unreadable shape"),
    ("UPDATE model_arrays SET data=zeroblob(length(data)) WHERE name='coef'", "does not match its checksum"),
])
def test_a_tampered_model_array_is_refused_with_what_to_do(trained, emb, tamper, message):  # noqa: F811
    study, version = trained
    with study.db.transaction() as conn:
        conn.execute(tamper)
    with pytest.raises(StudyError) as e:
        lib.load_model(study, version)
    assert message in str(e.value)
    assert f"model version {version} in {study.path} is damaged" in str(e.value)
    assert f"(train a new one: coder train {study.path})" in str(e.value)


def test_damaged_cached_embeddings_are_encoded_again(toy, emb):  # noqa: F811
    lib.suggest(toy, embedder=emb, min_score=0.0)
    n = toy.db.one("SELECT COUNT(*) FROM embeddings")[0]
    with toy.db.transaction() as conn:
        conn.execute("UPDATE embeddings SET vector=x'0000' WHERE rowid IN "
                     "(SELECT rowid FROM embeddings LIMIT 2)")
        conn.execute("UPDATE embeddings SET vector=zeroblob(4 * dim), dim=dim + 0 WHERE rowid IN "
                     "(SELECT rowid FROM embeddings LIMIT 1 OFFSET 5)")
    df = lib.suggest(toy, embedder=emb, min_score=0.0, recompute=True)
    assert len(df)
    assert toy.db.one("SELECT COUNT(*) FROM embeddings")[0] == n
    lengths = {r[0] for r in toy.db.query("SELECT length(vector) FROM embeddings")}
    assert lengths == {2 * 256}  # float16 vectors (step 0007_embedding_backend)
