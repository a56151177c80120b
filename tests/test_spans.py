"""Code any span: the model (migration 0008), coding inside a turn and across turns, undo, and
the rules by which frequency and agreement count spans."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from coder.analysis import agreement as A
from coder.analysis import frequency
from coder.errors import CoderError, NothingToDo
from coder.review import decisions, spans
from coder.study import Study
from tests.cli_helpers import run

DATA = Path(__file__).parent / "data"


@pytest.fixture
def old_study(tmp_path):
    """A study written by the release before spans (made with commit a10f18d's `coder init`,
    `codebook import`, `import` and `codes import`): two coders, ten decisions."""
    path = tmp_path / "old.db"
    shutil.copy(DATA / "study-before-spans.db", path)
    return path


def test_an_old_study_opens_and_every_coding_becomes_its_segments_span(old_study):
    study = Study(old_study)
    assert "0008_coded_spans" in study.db.applied_migrations()
    rows = study.db.query(
        "SELECT x.start_char, x.end_char, x.whole, s.start_char AS s0, s.end_char AS s1 "
        "FROM coding_spans x JOIN segments s ON s.id = x.segment_id")
    assert len(rows) == 10
    assert all(r["whole"] == 1 and (r["start_char"], r["end_char"]) == (r["s0"], r["s1"])
               for r in rows)
    df = study.codings()
    assert df["whole"].all()
    # nothing else changed: the counts the old release printed (each code 1 of 2 for alice)
    table = frequency.frequencies(study, coder="alice")
    cats = table[table["level"] == "category"].set_index("id")
    assert cats.loc[["trig-domestic", "trig-globalization", "net-institutions",
                     "net-personal", "bar-finance"], "n"].tolist() == [1, 1, 1, 1, 1]
    assert set(cats["N"]) == {2}
    res = A.study_agreement(study, ["alice", "bob"], ci=False)
    assert res.units == 5 and res.spans == 0 and res.span_rule is None
    # and the old batch still undoes
    assert run("undo", old_study, "--batch", "1").exit_code == 0
    assert study.db.one("SELECT COUNT(*) FROM codings")[0] == 0


def _doc(study, name="p01"):
    row = study.db.one("SELECT id, text FROM documents WHERE name=?", (name,))
    return row["id"], row["text"]


def _segment(study, doc, position):
    return study.db.one("SELECT * FROM segments WHERE document_id=? AND position=?",
                        (doc, position))


def test_a_phrase_inside_a_turn_keeps_its_exact_characters_and_undoes(old_study):
    study = Study(old_study)
    doc, text = _doc(study)
    seg = _segment(study, doc, 4)                # "The agencies, MATRADE especially. ..."
    start = text.index("MATRADE", seg["start_char"])
    end = start + len("MATRADE")
    cid = spans.code_span(study, "carol", "p01", start, end, "net-institutions", memo="the agency")
    got = study.db.one("SELECT * FROM coding_spans WHERE coding_id=?", (cid,))
    assert (got["start_char"], got["end_char"], got["whole"]) == (start, end, 0)
    assert got["segment_id"] == seg["id"]
    frame = spans.document_codings(study, "p01", coders=["carol"])
    assert frame["text"].tolist() == ["MATRADE"]
    assert frame["memo"].tolist() == ["the agency"]
    # the audit trail has the span too
    hist = study.db.one("SELECT start_char, end_char FROM coding_history WHERE coding_id=?",
                        (cid,))
    assert (hist["start_char"], hist["end_char"]) == (start, end)
    decisions.undo(study, "carol")
    assert study.db.one("SELECT COUNT(*) FROM codings WHERE id=?", (cid,))[0] == 0


def test_a_span_equal_to_a_segment_is_the_segment_decision(old_study):
    study = Study(old_study)
    doc, _ = _doc(study)
    seg = _segment(study, doc, 6)
    cid = spans.code_span(study, "carol", "p01", seg["start_char"], seg["end_char"],
                          "bar-finance")
    row = study.db.one("SELECT * FROM codings WHERE id=?", (cid,))
    assert row["start_char"] is None and row["segment_id"] == seg["id"]
    assert row["decision"] == "added"


def test_a_span_across_two_turns_counts_for_both_speakers(tmp_path):
    path = tmp_path / "two.db"
    run("init", path)
    run("codebook", "import", path, DATA / "small_codebook.yaml")
    (tmp_path / "pair.txt").write_text(
        "ANA: Our home market is tiny and saturated.\n\n"
        "BEN: Yes, and the banks never lend to us.\n", encoding="utf-8")
    r = run("import", path, tmp_path / "pair.txt")
    assert r.exit_code == 0, r.output
    study = Study(path)
    doc, text = _doc(study, "pair")
    start = text.index("tiny")
    end = text.index("banks") + len("banks")
    cid = spans.code_span(study, "alice", "pair", start, end, "trig-domestic")
    covered = study.db.query("SELECT segment_id, overlap, length FROM coding_segments "
                             "WHERE coding_id=? ORDER BY segment_id", (cid,))
    assert len(covered) == 2 and all(0 < r["overlap"] < r["length"] for r in covered)
    table = frequency.frequencies(study, coder="alice")
    row = table.set_index("id").loc["trig-domestic"]
    assert (row["n"], row["N"]) == (2, 2)
    assert any("spans, not whole segments" in n for n in table.attrs["notes"])


def test_coding_a_span_clears_no_code_and_undo_restores_it(old_study):
    study = Study(old_study)
    doc, text = _doc(study, "p02")
    seg = _segment(study, doc, 2)                # bob said 'no code' here
    start = text.index("supply chains", seg["start_char"])
    spans.code_span(study, "bob", "p02", start, start + len("supply chains"),
                    "trig-globalization")
    none = study.db.one("SELECT COUNT(*) FROM codings k JOIN coders c ON c.id = k.coder_id "
                        "WHERE c.name='bob' AND k.segment_id=? AND k.code_id IS NULL",
                        (seg["id"],))[0]
    assert none == 0
    decisions.undo(study, "bob")
    rows = study.db.query("SELECT code_id, decision, start_char FROM codings k JOIN coders c ON "
                          "c.id = k.coder_id WHERE c.name='bob' AND k.segment_id=?", (seg["id"],))
    assert [(r["code_id"], r["decision"], r["start_char"]) for r in rows] == [
        (None, "no_code", None)]


def test_a_segment_decision_leaves_the_coders_spans_alone(old_study):
    study = Study(old_study)
    doc, text = _doc(study)
    seg = _segment(study, doc, 2)
    start = text.index("saturated", seg["start_char"])
    sid = spans.code_span(study, "alice", "p01", start, start + 9, "trig-domestic")
    # alice's whole-segment decision on the same code changes and is undone; the span stays
    decisions.decide(study, "alice", seg["id"], "trig-domestic", "rejected")
    decisions.undo(study, "alice")
    assert study.db.one("SELECT COUNT(*) FROM codings WHERE id=?", (sid,))[0] == 1
    whole = study.db.one("SELECT decision FROM codings k JOIN coders c ON c.id=k.coder_id "
                         "WHERE c.name='alice' AND segment_id=? AND code_id='trig-domestic' "
                         "AND start_char IS NULL", (seg["id"],))
    assert whole["decision"] == "confirmed"


def test_recode_remove_and_memo_are_undone_exactly(old_study):
    study = Study(old_study)
    doc, text = _doc(study)
    seg = _segment(study, doc, 6)
    start = text.index("Bank loans", seg["start_char"])
    cid = spans.code_span(study, "carol", "p01", start, start + 10, "bar-finance")
    new = spans.recode(study, "carol", cid, "net-institutions")
    assert study.db.one("SELECT code_id, start_char FROM codings WHERE id=?", (new,))[:] == (
        "net-institutions", start)
    decisions.undo(study, "carol")

    def at_span():
        return study.db.query("SELECT id, code_id, memo FROM codings WHERE start_char=?",
                              (start,))
    assert [r["code_id"] for r in at_span()] == ["bar-finance"]
    cid = at_span()[0]["id"]
    spans.set_memo(study, "carol", cid, "loans, not grants")
    assert study.db.one("SELECT memo FROM codings WHERE id=?", (cid,))["memo"] == \
        "loans, not grants"
    spans.remove_coding(study, "carol", cid)
    assert study.db.one("SELECT COUNT(*) FROM codings WHERE id=?", (cid,))[0] == 0
    decisions.undo(study, "carol")
    assert [(r["code_id"], r["memo"]) for r in at_span()] == [("bar-finance", "loans, not grants")]
    with pytest.raises(CoderError, match="another coder's"):
        spans.remove_coding(study, "alice", at_span()[0]["id"])


@pytest.mark.parametrize("start,end,message", [
    (5, 5, "not inside"), (-1, 4, "not inside"), (0, 10**6, "not inside")])
def test_bad_spans_are_refused_clearly(old_study, start, end, message):
    study = Study(old_study)
    with pytest.raises(CoderError, match=message):
        spans.code_span(study, "carol", "p01", start, end, "bar-finance")


def test_a_span_on_a_speaker_label_or_blank_is_refused(old_study):
    study = Study(old_study)
    _, text = _doc(study)
    label = text.index("DR AMINAH")
    with pytest.raises(CoderError, match="outside every segment"):
        spans.code_span(study, "carol", "p01", label, label + 4, "bar-finance")
    gap = text.index("\n\n")
    with pytest.raises(CoderError, match="white space"):
        spans.code_span(study, "carol", "p01", gap, gap + 2, "bar-finance")
    with pytest.raises(CoderError, match="decision 'added' or 'confirmed'"):
        spans.code_span(study, "carol", "p01", 0, 5, "bar-finance", decision="rejected")


def test_agreement_marks_segments_by_the_stated_overlap(old_study):
    study = Study(old_study)
    doc, text = _doc(study)
    # carol codes three words of each of the three answers alice coded
    for pos, code in ((2, "trig-domestic"), (4, "net-institutions"), (6, "bar-finance")):
        seg = _segment(study, doc, pos)
        spans.code_span(study, "carol", "p01", seg["start_char"], seg["start_char"] + 12, code)
    anything = A.study_agreement(study, ["alice", "carol"], ci=False, documents=["p01"])
    assert anything.units == 3 and anything.spans == 3
    assert "overlaps at all" in anything.span_rule
    assert anything.comparisons[0].pooled.percent_agreement == 1.0
    # 12 characters are under half of each answer: at 0.5 carol marked (decided) none of them
    with pytest.raises(NothingToDo, match="no segment was decided by every one"):
        A.study_agreement(study, ["alice", "carol"], ci=False, documents=["p01"], overlap=0.5)
    with pytest.raises(CoderError, match="--overlap must be between 0 and 1"):
        A.study_agreement(study, ["alice", "carol"], ci=False, documents=["p01"], overlap=1.5)
    r = run("agree", old_study, "--coders", "alice,carol", "--documents", "p01",
            "--resamples", "0")
    assert r.exit_code == 0, r.output
    assert "3 coding(s) are on spans, not whole segments: a coded span marks every segment " \
        "it overlaps at all (--overlap)." in r.output


# -- training: the span rule --------------------------------------------------------------------
def test_training_follows_the_span_rule(tmp_path):
    from coder.machine import suggest as lib
    from coder.machine.embed import HashingEmbedder
    from tests.test_suggest import CODEBOOK, write_transcripts

    book = tmp_path / "toy.yaml"
    book.write_text(CODEBOOK, encoding="utf-8")
    study = Study.create(tmp_path / "toy.db", codebook=book)
    study.import_transcripts(write_transcripts(tmp_path))
    segs = study.segments(include_interviewer=False)
    first, second, third = (segs.iloc[i] for i in range(3))
    # bob: a span over most of one answer (a positive there), a few words of another (an extra
    # positive text; the segment is decided for other codes only), a whole-segment decision
    spans.code_span(study, "bob", int(first.document_id), int(first.start_char),
                    int(first.end_char) - 3, "finance")
    spans.code_span(study, "bob", int(second.document_id), int(second.start_char),
                    int(second.start_char) + 5, "markets")
    decisions.decide(study, "bob", int(third.segment_id), "language", "confirmed")
    codes = lib.suggestable_codes(study.codebook())
    col = {c.id: j for j, c in enumerate(codes)}
    ids, Y = lib.training_labels(study, codes, ["bob"])
    row = {s: Y[i] for i, s in enumerate(ids)}
    assert row[int(first.segment_id)][col["finance"]] == 1
    assert row[int(second.segment_id)][col["markets"]] == -1     # neither: a narrow span
    assert row[int(second.segment_id)][col["finance"]] == 0      # decided for the others
    extra = lib.span_examples(study, codes, ["bob"])
    assert extra["text"].tolist() == [second.text[:5]]
    assert extra["code"].tolist() == [col["markets"]]
    model = lib.train(study, coders=["bob"], embedder=HashingEmbedder(dim=64))
    assert model.trained_on["span_examples"] == 1
    assert "covering at least half" in model.trained_on["span_rule"]
    oof = lib.out_of_fold(study, model.version)
    assert -1 in set(oof.segment_ids.tolist())       # the extra text belongs to no segment
    assert set(oof.segment_ids.tolist()) - {-1} == set(ids)
    study.close()


def test_a_span_moves_with_its_text_when_the_transcript_is_replaced(tmp_path):
    path = tmp_path / "s.db"
    run("init", path)
    run("codebook", "import", path, DATA / "small_codebook.yaml")
    t = tmp_path / "pair.txt"
    t.write_text("ANA: Our home market is tiny and saturated.\n\n"
                 "BEN: The banks never lend to us.\n", encoding="utf-8")
    run("import", path, t)
    study = Study(path)
    _, text = _doc(study, "pair")
    kept = spans.code_span(study, "alice", "pair", text.index("tiny"),
                           text.index("tiny") + 4, "trig-domestic")
    lost = spans.code_span(study, "alice", "pair", text.index("banks"),
                           text.index("banks") + 5, "bar-finance")
    study.close()
    # a new first turn moves ANA's turn down; BEN's turn is edited: its span cannot follow
    t.write_text("BEN: Hello.\n\nANA: Our home market is tiny and saturated.\n\n"
                 "BEN: The lenders never lend to us.\n", encoding="utf-8")
    r = run("import", path, t, "--replace")
    assert r.exit_code == 0, r.output
    study = Study(path)
    _, text = _doc(study, "pair")
    rows = spans.document_codings(study, "pair")
    assert rows["text"].tolist() == ["tiny"]
    assert rows["start_char"].tolist() == [text.index("tiny")]
    assert study.db.one("SELECT COUNT(*) FROM codings WHERE id IN (?, ?)", (kept, lost))[0] == 1


def test_codings_csv_carries_spans_out_and_back(old_study, tmp_path):
    study = Study(old_study)
    _, text = _doc(study)
    start = text.index("MATRADE")
    spans.code_span(study, "carol", "p01", start, start + 7, "net-institutions", memo="agency")
    out = tmp_path / "codings.csv"
    r = run("codes", "export", old_study, out, "--coder", "carol")
    assert r.exit_code == 0, r.output
    exported = out.read_text(encoding="utf-8")
    assert ",MATRADE," in exported and f",{start},{start + 7}" in exported
    study.close()
    # into a copy of the old study, where carol has nothing yet
    fresh = tmp_path / "fresh.db"
    shutil.copy(DATA / "study-before-spans.db", fresh)
    r = run("codes", "import", fresh, out)
    assert r.exit_code == 0, r.output
    got = spans.document_codings(Study(fresh), "p01", coders=["carol"])
    assert got[["text", "start_char", "memo"]].values.tolist() == [["MATRADE", start, "agency"]]
    # a span that misses its segment, or a rejection on a span, is a bad row; nothing written
    bad = tmp_path / "bad.csv"
    bad.write_text("document,segment,code,coder,decision,start,end\n"
                   f"p01,2,net-institutions,dave,confirmed,{start},{start + 7}\n"
                   f"p01,4,net-institutions,dave,rejected,{start},{start + 7}\n",
                   encoding="utf-8")
    r = run("codes", "import", fresh, bad)
    assert r.exit_code == 1
    assert "line 2: span" in r.output and "does not overlap segment 2" in r.output
    assert "line 3: a span (start/end) takes decision confirmed or added" in r.output
