"""The fast queue order (`coder.review.queue_ids`, what the web page asks after every decision)
is exactly the order of the full queue, for every order, filter and state of the review."""

from __future__ import annotations

import random

import pytest

from coder.review import decisions, queue, queue_ids, spans
from coder.review.search import propose
from tests.test_suggest import emb, lib, toy  # noqa: F401  (fixtures)


def _same(study, coder, **kw):
    full = [it.segment_id for it in queue(study, coder, **kw)]
    fast = queue_ids(study, coder, **kw)
    assert fast == full, kw
    return full


@pytest.mark.parametrize("order", ["uncertain", "document", "score", "random"])
def test_the_fast_order_is_the_queue_order(toy, emb, order):  # noqa: F811
    study = toy
    lib.suggest(study, embedder=emb, top_k=2, min_score=0.0)
    rng = random.Random(3)
    segs = study.segments(include_interviewer=False)
    # a review under way: decisions of two coders, a no-code, a span, a search proposal
    for seg in rng.sample(list(segs["segment_id"]), 12):
        decisions.decide(study, rng.choice(["alice", "bob"]), int(seg),
                         rng.choice(["finance", "language", "markets"]), "confirmed")
    decisions.decide(study, "alice", int(segs["segment_id"].iloc[-1]), None, "no_code")
    row = segs.iloc[5]
    spans.code_span(study, "alice", int(row.document_id), int(row.start_char),
                    int(row.start_char) + 6, "finance")
    propose(study, "bank", code="finance", coder="alice")
    for kw in ({}, {"codes": ["finance"]}, {"codes": ["Barriers*"]}, {"blind": True},
               {"documents": ["d01", "d03"]}, {"codes": ["markets"], "blind": True},
               {"seed": 7}):
        for coder in ("alice", "bob", "carol"):
            _same(study, coder, order=order, **kw)
    # and as the review goes on
    left = _same(study, "alice", order=order)
    for seg in left[:5]:
        decisions.decide(study, "alice", seg, None, "no_code")
        _same(study, "alice", order=order)
