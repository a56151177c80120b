"""Texts longer than the model reads are embedded in overlapping windows and pooled, not cut off.

The arithmetic is checked with a fake tokenizer (one word piece per three characters of a word)
and the hashing embedder; the real bundled model (marked ``model``) shows that a long text's
vector now depends on its end, and that torch and ONNX agree on it.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from coder.machine import embed, onnx_backend
from coder.machine.embed import HashingEmbedder, embed_texts
from coder.machine.onnx_backend import long_texts, pool_windows, window_spans, windows
from coder.store import Store


class FakeEncoding:
    def __init__(self, text: str):
        self.word_ids: list[int | None] = [None]
        self.offsets: list[tuple[int, int]] = [(0, 0)]
        for w, m in enumerate(re.finditer(r"\S+", text)):
            for a in range(m.start(), m.end(), 3):  # a piece every 3 characters of the word
                self.word_ids.append(w)
                self.offsets.append((a, min(a + 3, m.end())))
        self.word_ids.append(None)
        self.offsets.append((0, 0))


class FakeTokenizer:
    def __init__(self):
        self.seen: list[str] = []

    def encode_batch(self, texts):
        self.seen += texts
        return [FakeEncoding(t) for t in texts]


# -- the windows ------------------------------------------------------------------------------
def test_a_text_the_model_reads_whole_is_one_window():
    assert window_spans(list(range(254))) == [(0, 254)]
    assert window_spans([]) == [(0, 0)]


def test_windows_of_one_piece_words_start_every_stride_and_end_with_the_text():
    assert window_spans(list(range(600)), 254, 128) == [(0, 254), (128, 382), (256, 510),
                                                        (384, 600)]
    # just over the window: the second window still holds size - stride pieces or more
    assert window_spans(list(range(255)), 254, 128) == [(0, 254), (128, 255)]


def test_windows_never_split_a_word_and_cover_every_piece():
    words = [i // 3 for i in range(900)]  # 300 words of 3 pieces
    spans = window_spans(words, 254, 128)
    covered = np.zeros(900, bool)
    for a, b in spans:
        assert b - a <= 254
        assert a == 0 or words[a - 1] != words[a]          # starts at a word's first piece
        assert b == 900 or words[b - 1] != words[b]         # ends after a word's last piece
        covered[a:b] = True
    assert covered.all()
    assert [a for a, _ in spans] == [0, 126, 252, 378, 504, 630, 756]


def test_a_word_longer_than_a_window_is_cut_inside_it_and_the_windows_move_on():
    words = [0] * 10 + [1] * 600 + [2] * 10
    spans = window_spans(words, 254, 128)
    assert spans[0] == (0, 10) and spans[-1][1] == 620
    assert all(b > a for a, b in spans) and len(spans) < 10


def test_windows_give_each_long_text_its_pieces_and_short_texts_themselves():
    tok = FakeTokenizer()
    short = "a few words"
    long = " ".join(f"w{i:03d}" for i in range(300))  # 300 words of 2 pieces = 600 pieces
    pieces, owner = windows([short, long, "x" * 5], tok, size=254, stride=128)
    assert pieces[0] == short and pieces[-1] == "x" * 5
    assert tok.seen == [long]                  # only texts longer than `size` characters
    assert owner.tolist() == [0, 1, 1, 1, 1, 2]
    middle = pieces[1:5]
    assert middle[0].startswith("w000") and middle[-1].endswith("w299")
    assert [len(p.split()) for p in middle] == [127, 127, 127, 108]
    assert middle[1].split()[0] == "w064"      # a window starts every 128 pieces = 64 words
    assert long_texts([short, long], tok, size=254) == [False, True]


def test_pooling_is_the_renormalised_mean_and_keeps_a_single_window_bit_for_bit():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(5, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    out = pool_windows(v, np.array([0, 1, 1, 1, 2]), 3)
    assert np.array_equal(out[0], v[0]) and np.array_equal(out[2], v[4])
    want = v[1:4].mean(axis=0)
    assert np.allclose(out[1], want / np.linalg.norm(want), atol=1e-6)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    same = pool_windows(v, np.arange(5), 5)
    assert np.array_equal(same, v)


class Windowed(HashingEmbedder):
    """The hashing stand-in, windowed like the real backends, under a real backend's name."""

    def __init__(self, tok):
        super().__init__(name="all-MiniLM-L6-v2@onnx-int8")
        self.tok = tok
        self.encoded: list[str] = []

    def encode(self, texts):
        self.encoded += texts
        pieces, owner = windows(texts, self.tok, size=254, stride=128)
        return pool_windows(super().encode(pieces), owner, len(texts))


def test_the_cache_keeps_short_vectors_and_encodes_long_texts_again_under_their_own_key(
        tmp_path, monkeypatch):
    tok = FakeTokenizer()
    store = Store.create(tmp_path / "s.db")
    emb = Windowed(tok)
    short, long = "we export to Germany", " ".join(f"w{i:03d}" for i in range(300))
    # a cache from before windows: both texts under the plain name, the long one truncated
    monkeypatch.setattr(embed, "long_texts", lambda texts: [False] * len(texts))
    old = embed_texts(store, [short, long], HashingEmbedder(name=emb.name))
    monkeypatch.setattr(embed, "long_texts", lambda texts: long_texts(texts, tok, size=254))
    got = embed_texts(store, [short, long], emb)
    assert emb.encoded == [long]                         # the short vector was still good
    assert np.array_equal(got[0], old[0]) and not np.allclose(got[1], old[1])
    rows = {tuple(r) for r in store.db.query("SELECT model, text_hash FROM embeddings")}
    keys = {m for m, _ in rows}
    assert keys == {emb.name, emb.name + embed.WINDOWED_KEY}
    assert len(rows) == 3                                # the old long vector is left alone
    again = embed_texts(store, [long, short], emb)
    assert emb.encoded == [long] and np.array_equal(again, got[::-1])
    store.close()


def test_a_test_stand_in_is_never_keyed_by_windows(tmp_path):
    store = Store.create(tmp_path / "s.db")
    embed_texts(store, ["word " * 400], HashingEmbedder())
    assert [r[0] for r in store.db.query("SELECT model FROM embeddings")] == ["hashing-256"]
    store.close()


# -- the real model ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fp32_cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx-windows")
    mp = pytest.MonkeyPatch()
    mp.setenv("CODER_CACHE_DIR", str(folder))
    onnx_backend.ensure_exported("fp32", log=lambda msg: None)
    yield folder
    mp.undo()


START = ("We had no contacts abroad when we started, so the first customers came through a "
         "friend of my brother who worked for a distributor in Rotterdam and knew the market. ")


@pytest.mark.model
def test_a_long_texts_vector_depends_on_its_end_and_both_backends_agree(fp32_cache,
                                                                        monkeypatch):
    monkeypatch.setenv("CODER_CACHE_DIR", str(fp32_cache))
    prefix = START * 9
    ends = ["In the end what mattered most was that the food on the ward was lovely.",
            "In the end the parking cost a fortune and there were never any spaces."]
    food, parking = prefix + ends[0], prefix + ends[1]
    assert long_texts([prefix, ends[0]]) == [True, False]
    torch = embed.make_embedder("torch", progress=False)
    raw = torch.model.encode([food, parking], normalize_embeddings=True)  # truncated
    assert float(raw[0] @ raw[1]) > 0.9999          # cut off, the two ends were not seen
    v = torch.encode([food, parking, "Mm-hmm."])
    assert float(v[0] @ v[1]) < 0.99                # in windows, they are
    alone = torch.encode(ends)
    assert v[0] @ alone[0] > v[1] @ alone[0] and v[1] @ alone[1] > v[0] @ alone[1]
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # a short text keeps the vector it always had
    assert np.allclose(v[2], torch.model.encode(["Mm-hmm."], normalize_embeddings=True)[0],
                       atol=1e-6)
    onnx = embed.make_embedder("onnx-fp32").encode([food, parking, "Mm-hmm."])
    assert (onnx * v).sum(axis=1).min() > 0.9999
