"""Retrieval (issue 15): every coded passage of a code and the codes below it, with its exact
text, place and coders, counted by ``coder freq``'s rules; in every output format, on the CLI
and on the web page /quotes. Also issue 17's leftovers: the report's method sections under
--allow-partial, codebook diffs noticing leads_to, sheet imports counting the memos they stored.
Real study files in tmp dirs."""

from __future__ import annotations

import csv
import html
import json

import pytest
from cli_helpers import dump, run
from docx import Document
from frequency_helpers import code, make_study, write_codebook
from openpyxl import load_workbook
from starlette.testclient import TestClient

from coder import review
from coder.analysis import frequency, quotes
from coder.errors import CoderError, ConsensusIncomplete, NothingToDo, UnknownReference
from coder.review import spans
from coder.study import Study
from coder.web.app import create_app

PEOPLE = {"p1": {"group": "A"}, "p2": {"group": "A"}, "p3": {"group": "B"}, "p4": {}}
TURNS = {"p1": ["We went abroad because home is small.", "Money was <b>tight</b> & loans slow."],
         "p2": ["Our customers moved overseas, so we followed."],
         "p3": ['=HYPERLINK("x") is what I typed.', "Society changed."],
         "p4": ["Nothing to add."]}
FORMULA = '=HYPERLINK("x")'
TAGGED = "<b>tight</b>"
CROSS = "home is small.\np1: Money was"        # from p1's first turn into their second
BASE = "http://127.0.0.1:8765"


def text_of(s, doc: str) -> str:
    return s.db.one("SELECT text FROM documents WHERE name=?", (doc,))[0]


def span(s, coder, doc, phrase, code_ref, *, to: str | None = None, memo=None) -> int:
    """Code ``phrase`` (or from it to the end of ``to``) of a document as a span."""
    t = text_of(s, doc)
    start = t.index(phrase)
    end = t.index(to) + len(to) if to else start + len(phrase)
    return spans.code_span(s, coder, doc, start, end, code_ref, memo=memo)


def seg(s, doc: str, position: int) -> int:
    return s.db.one("SELECT s.id FROM segments s JOIN documents d ON d.id=s.document_id "
                    "WHERE d.name=? AND s.position=?", (doc, position))[0]


@pytest.fixture
def qs(tmp_path):
    """Positions: 1 is the interviewer ("I: What made you go abroad?"), 2.. the participant.

    alice: p1#2 Domestic (whole); p1 'home is small.'..'Money was' Domestic (span across p1#2
           and p1#3); p1 '<b>tight</b>' Resource (span, memo 'money'); p3 '=HYPERLINK("x")'
           Domestic (span); p3#3 Societal changes (whole, not under Triggers); p2 the
           interviewer's question only, Domestic (span: never listed); p2 'go abroad?'..'Our
           customers' Resource (a span from the interviewer into p2); p4#2 Domestic as 'auto'.
    bob:   p1#2 Domestic (whole); p2#2 Resource (whole).
    A segment memo on p1#3."""
    s = make_study(tmp_path, participants=PEOPLE, turns=TURNS)
    code(s, [("alice", "p1", "Domestic conditions"), ("bob", "p1", "Domestic conditions"),
             ("alice", "p3", "Societal changes", "confirmed", 3),
             ("bob", "p2", "Resource seeking"), ("alice", "p4", "Domestic conditions", "auto")])
    span(s, "alice", "p1", "home is small.", "Domestic conditions", to="Money was")
    span(s, "alice", "p1", TAGGED, "Resource seeking", memo="money")
    span(s, "alice", "p3", FORMULA, "Domestic conditions")
    span(s, "alice", "p2", "What made you go abroad?", "Domestic conditions")
    span(s, "alice", "p2", "go abroad?", "Resource seeking", to="Our customers")
    review.memo(s, "alice", seg(s, "p1", 3), "check the <loan> story")
    yield s
    s.close()


def rows(frame, *cols):
    return [tuple(r) for r in frame[list(cols)].itertuples(index=False, name=None)]


# -- the passages --------------------------------------------------------------------------------
def test_passages_are_the_exact_spans_of_the_code_and_the_codes_below(qs):
    f = quotes.quotes(qs, "Triggers", coder="alice")
    assert rows(f, "code", "participant", "document", "position", "last_position", "text") == [
        ("Triggers/Domestic conditions", "p1", "p1", 2, 2, TURNS["p1"][0]),
        ("Triggers/Domestic conditions", "p1", "p1", 2, 3, CROSS),
        ("Triggers/Domestic conditions", "p3", "p3", 2, 2, FORMULA),
        ("Triggers/Resource seeking", "p1", "p1", 3, 3, TAGGED),
        ("Triggers/Resource seeking", "p2", "p2", 1, 2, "go abroad?\np2: Our customers"),
    ]
    for r in f.to_dict("records"):      # the text is the stored document's characters
        assert text_of(qs, r["document"])[r["start_char"]:r["end_char"]] == r["text"]
    whole = f.iloc[0]
    assert bool(whole["whole"]) and whole["text"] == qs.db.one(
        "SELECT text FROM segments WHERE id=?", (int(whole["segment_id"]),))[0]
    # the span from the interviewer's turn counts for p2 only, and names both speakers
    into = f.iloc[4]
    assert (into["participant"], into["speaker"], into["coders"]) == ("p2", "I, p2", "alice")
    assert f.iloc[3]["memo"] == "money" and f.iloc[3]["segment_memos"] == 1
    assert f.iloc[1]["segment_memos"] == 1 and f.iloc[0]["segment_memos"] == 0
    assert "Societal changes" not in " ".join(f["code"])       # another factor's code
    a = f.attrs
    assert (a["code_path"], a["N"], a["passages"], a["participants"]) == ("Triggers", 4, 5, 3)
    assert a["notes"][0] == ("5 passage(s) of Triggers and the codes below it, from 3 of the "
                             "N = 4 participants in the analysed documents; a passage of a code "
                             "below is listed under its own code.")
    assert a["notes"][1] == ("Codings: coder alice; confirmed and added codings; auto-accepted "
                             "suggestions not counted.")
    assert "a passage only on interviewer turns is not listed" in a["notes"][2]
    # a category alone: its passages only
    leaf = quotes.quotes(qs, "Resource seeking", coder="alice")
    assert list(leaf["text"]) == [TAGGED, "go abroad?\np2: Our customers"]
    assert leaf.attrs["notes"][0].startswith("2 passage(s) of Triggers/Resource seeking, from 2")


def test_a_code_without_passages_is_an_empty_list_not_an_error(qs):
    f = quotes.quotes(qs, "Competitive markets", coder="alice")
    assert f.empty and f.attrs["notes"][0].startswith("0 passage(s) of External/Foreign market")
    assert "(no passages)" in quotes.to_markdown(f)


def test_participants_with_passages_are_freq_s_n(qs):
    for who in ({"coder": "alice"}, {"coder": "bob"}, {"coders": ["alice", "bob"]},
                {"coder": "alice", "include_auto": True}):
        table = frequency.frequencies(qs, level="all", **who)
        for c in qs.codebook().codes:
            f = quotes.quotes(qs, c.id, **who)
            people = {p for v in f["participant"] for p in v.split(", ") if p}
            n = table.loc[(table["id"] == c.id) & (table["rollup"].isin(["", "any"])), "n"]
            assert len(people) == int(n.iloc[0]), (who, c.path)


def test_the_same_characters_by_two_coders_are_one_passage(qs):
    f = quotes.quotes(qs, "Triggers", coders=["alice", "bob"], rule="any")
    assert rows(f, "code", "document", "position", "coders", "text")[:2] == [
        ("Triggers/Domestic conditions", "p1", 2, "alice, bob", TURNS["p1"][0]),
        ("Triggers/Domestic conditions", "p1", 2, "alice", CROSS)]
    assert ("Triggers/Resource seeking", "p2", 2, "bob", TURNS["p2"][0]) in rows(
        f, "code", "document", "position", "coders", "text")
    assert "coders alice, bob (rule any: a participant counts if any of them coded it)" in \
        f.attrs["notes"][1]


def test_rule_all_lists_a_passage_only_where_every_coder_coded_its_segment(qs):
    f = quotes.quotes(qs, "Triggers", coders=["alice", "bob"], rule="all")
    # both put Domestic on p1#2 and Resource on p2#2; nothing else is agreed on a segment
    assert rows(f, "code", "document", "position", "last_position", "coders") == [
        ("Triggers/Domestic conditions", "p1", 2, 2, "alice, bob"),
        ("Triggers/Domestic conditions", "p1", 2, 3, "alice"),
        ("Triggers/Resource seeking", "p2", 1, 2, "alice"),
        ("Triggers/Resource seeking", "p2", 2, 2, "bob")]
    assert any(n.startswith("Rule all: a passage is listed only where every coder")
               for n in f.attrs["notes"])


def test_whose_codings_count_is_decided_and_refused_as_by_freq(qs, tmp_path):
    before = dump(qs.path)
    for who in ({}, {"coder": "carol"}, {"consensus": True}, {"coder": "alice", "rule": "some"},
                {"coder": "alice", "coders": ["bob"]}):
        with pytest.raises(CoderError) as freq_error:
            frequency.frequencies(qs, **who)
        with pytest.raises(type(freq_error.value)) as mine:
            quotes.quotes(qs, "Triggers", **who)
        assert str(mine.value) == str(freq_error.value)
    with pytest.raises(CoderError, match=r"^several coders have codings \(alice, bob\)"):
        quotes.quotes(qs, "Triggers")
    with pytest.raises(NothingToDo, match="the study has no consensus coder yet"):
        quotes.quotes(qs, "Triggers", consensus=True)
    with pytest.raises(UnknownReference, match="unknown code 'Nowhere'"):
        quotes.quotes(qs, "Nowhere", coder="alice")
    with pytest.raises(UnknownReference, match="unknown document"):
        quotes.quotes(qs, "Triggers", coder="alice", documents=["p9"])
    (tmp_path / "e").mkdir()
    empty = make_study(tmp_path / "e", participants={"p1": {}})
    with pytest.raises(NothingToDo, match="^no confirmed codings to count"):
        quotes.quotes(empty, "Triggers")
    empty.close()
    assert dump(qs.path) == before


def test_auto_accepted_codings_only_with_include_auto(qs):
    assert "p4" not in set(quotes.quotes(qs, "Domestic conditions", coder="alice")["document"])
    f = quotes.quotes(qs, "Domestic conditions", coder="alice", include_auto=True)
    assert ("p4", TURNS["p4"][0]) in rows(f, "document", "text")
    assert "auto-accepted suggestions included" in f.attrs["notes"][1]


def test_documents_limit_the_passages_and_say_so(qs):
    f = quotes.quotes(qs, "Triggers", coder="alice", documents=["p3"])
    assert list(f["text"]) == [FORMULA]
    assert "N = 1 participants in the analysed documents (p3)" in f.attrs["notes"][0]


def test_by_groups_the_passages_by_a_participant_attribute(qs):
    f = quotes.quotes(qs, "Domestic conditions", coder="alice", by="group", include_auto=True)
    assert rows(f, "value", "document", "text") == [
        ("A", "p1", TURNS["p1"][0]), ("A", "p1", CROSS), ("B", "p3", FORMULA),
        ("(none)", "p4", TURNS["p4"][0])]
    assert f.attrs["groups"] == ["A", "B", "(none)"] and f.attrs["by"] == "group"
    assert any(n.startswith("Grouped by the participant attribute group ('(none)'")
               for n in f.attrs["notes"])
    md = quotes.to_markdown(f)
    assert md.index("### group: A") < md.index("### group: B") < md.index("### group: (none)")
    with pytest.raises(UnknownReference) as freq_error:
        frequency.frequencies(qs, coder="alice", by="age")
    with pytest.raises(UnknownReference) as mine:
        quotes.quotes(qs, "Triggers", coder="alice", by="age")
    assert str(mine.value) == str(freq_error.value)
    assert str(mine.value).startswith("unknown participant attribute 'age'")


def test_a_passage_across_two_groups_is_listed_under_each(tmp_path):
    s = make_study(tmp_path, participants={"p1": {"group": "A"}}, turns={"p1": ["One two."]})
    with s.db.transaction() as conn:         # a second participant speaks in p1's document
        pid = conn.execute("INSERT INTO participants (name, created_at) VALUES ('q', 'now')"
                           ).lastrowid
        conn.execute("INSERT INTO participant_attributes VALUES (?, 'group', 'B')", (pid,))
        doc = conn.execute("SELECT id, text FROM documents").fetchone()
        sp = conn.execute("INSERT INTO speakers (document_id, label, role, participant_id) "
                          "VALUES (?, 'q', 'participant', ?)", (doc[0], pid)).lastrowid
        text = doc[1] + "\nq: Three four."
        conn.execute("UPDATE documents SET text=? WHERE id=?", (text, doc[0]))
        start = text.index("Three four.")
        conn.execute("INSERT INTO segments (document_id, position, speaker_id, turn, start_char,"
                     " end_char, text, text_hash) VALUES (?,3,?,3,?,?,'Three four.','x')",
                     (doc[0], sp, start, start + 11))
    span(s, "alice", "p1", "two.", "Domestic conditions", to="Three")
    f = quotes.quotes(s, "Triggers", coder="alice", by="group")
    assert rows(f, "value", "participant", "text") == [("A", "p1, q", "two.\nq: Three"),
                                                       ("B", "p1, q", "two.\nq: Three")]
    assert f.attrs["passages"] == 1 and f.attrs["notes"][0].startswith("1 passage(s)")
    s.close()


def partial_consensus(study, study_path, tmp_path) -> None:
    """alice and bob (conftest's study: p01's participant segments are 2, 4, 6) agree on 2 and
    disagree on 4 and 6; the consensus reconciles 4 only, so it is partial."""
    for who in ("alice", "bob"):
        review.decide(study, who, 2, "trig-domestic", "confirmed")
    review.decide(study, "alice", 4, "net-institutions", "confirmed")
    review.decide(study, "bob", 4, "bar-finance", "confirmed")
    review.decide(study, "alice", 6, "bar-finance", "confirmed")
    review.decide(study, "bob", 6, "trig-domestic", "confirmed")
    sheet = tmp_path / "agreed.csv"
    sheet.write_text("document,segment,agreed,reason\np01,4,net-institutions,agencies\n",
                     encoding="utf-8")
    r = run("reconcile", study_path, "--coders", "alice,bob", "--sheet", sheet)
    assert r.exit_code == 0 and "Not complete yet: 1 disagreement open" in r.output, r.output


def test_a_partial_consensus_is_refused_unless_allowed(study, study_path, tmp_path):
    partial_consensus(study, study_path, tmp_path)
    with pytest.raises(ConsensusIncomplete) as freq_error:
        frequency.frequencies(study, consensus=True)
    with pytest.raises(ConsensusIncomplete) as mine:
        quotes.quotes(study, "trig", consensus=True)
    assert str(mine.value) == str(freq_error.value)
    f = quotes.quotes(study, "trig", consensus=True, allow_partial=True)
    assert list(f["coders"]) == ["consensus"]
    assert f.attrs["caveat"].startswith("PARTIAL: ")
    assert f.attrs["notes"][2] == f.attrs["caveat"] + "."


# -- formats -------------------------------------------------------------------------------------
def test_csv_and_xlsx_cells_are_neutralised(qs, tmp_path):
    f = quotes.quotes(qs, "Triggers", coder="alice")
    got = list(csv.DictReader(quotes.render(f, "csv").splitlines(keepends=True)))
    assert [r["text"] for r in got][2] == "'" + FORMULA
    assert got[1]["text"] == CROSS and got[0]["position"] == "2"
    path = quotes.write(f, tmp_path / "q.xlsx")
    wb = load_workbook(path)
    ws = wb["Quotes"]
    header = [c.value for c in ws[2]]
    assert header[:4] == ["code_id", "Code", "Participant", "Document"]
    col = header.index("Passage") + 1
    cells = [ws.cell(row=r, column=col) for r in range(3, ws.max_row + 1)]
    assert [c.value for c in cells][1:3] == [CROSS, "'" + FORMULA]
    assert all(c.data_type == "s" for c in cells)
    assert any("Codings: coder alice" in str(r[0]) for r in wb["Notes"].iter_rows(
        values_only=True))


def test_docx_has_a_heading_per_code_and_each_quote_with_its_attribution(qs, tmp_path):
    f = quotes.quotes(qs, "Triggers", coder="alice", by="group")
    doc = Document(str(quotes.write(f, tmp_path / "q.docx")))
    heads = [(p.style.name, p.text) for p in doc.paragraphs if p.style.name.startswith("Heading")]
    assert heads == [("Heading 1", "Quotes: Triggers by group"),
                     ("Heading 2", "Triggers/Domestic conditions"), ("Heading 3", "group: A"),
                     ("Heading 3", "group: B"), ("Heading 2", "Triggers/Resource seeking"),
                     ("Heading 3", "group: A")]
    said = [p.text for p in doc.paragraphs if p.style.name == "Quote"]
    assert said[0] == (TURNS["p1"][0] + "\n\u2014 p1; p1, segment 2, characters 32\u201369; "
                       "coded by alice")
    assert said[1].startswith(CROSS + "\n\u2014 p1; p1, segments 2\u20133, characters")
    assert said[3].startswith(TAGGED + "\n") and said[3].endswith("; memo: money")
    assert len(said) == 5
    assert any(p.text.startswith("Codings: coder alice") for p in doc.paragraphs)


def test_markdown_keeps_transcript_text_as_text(qs):
    md = quotes.to_markdown(quotes.quotes(qs, "Triggers", coder="alice"))
    assert md.startswith("# Quotes: Triggers\n\n## Triggers/Domestic conditions\n\n")
    assert "> \\<b\\>tight\\</b\\>\n" in md and "<b>" not in md
    assert "> home is small.\n> p1: Money was\n>\n> \u2014 p1; p1, segments 2\u20133" in md


def test_json_and_table(qs):
    f = quotes.quotes(qs, "Triggers", coder="alice")
    data = json.loads(quotes.render(f, "json"))
    assert data["title"] == "Quotes: Triggers" and data["coders"] == ["alice"]
    assert [r["text"] for r in data["tables"]["Quotes"]][3] == TAGGED
    assert data["tables"]["Quotes"][0]["position"] == 2 and data["N"] == 4
    text = quotes.render(f, "table")
    assert TAGGED in text and "Passage" in text and "Note: 5 passage(s)" in text
    with pytest.raises(CoderError, match="docx is a binary format"):
        quotes.render(f, "docx")


# -- the CLI -------------------------------------------------------------------------------------
def test_cli_writes_every_format(qs, tmp_path):
    path = qs.path
    r = run("quotes", path, "--code", "Triggers", "--coder", "alice", "--format", "md")
    assert r.exit_code == 0, r.output
    assert r.output == quotes.to_markdown(quotes.quotes(qs, "Triggers", coder="alice"))
    r = run("quotes", path, "--code", "Triggers", "--coders", "alice,bob", "--rule", "all",
            "--format", "json")
    assert [x["coders"] for x in json.loads(r.output)["tables"]["Quotes"]][0] == "alice, bob"
    for suffix in ("docx", "xlsx", "csv"):
        out = tmp_path / f"q.{suffix}"
        r = run("quotes", path, "--code", "Domestic conditions", "--coder", "alice", "--by",
                "group",
                "--out", out)
        assert r.exit_code == 0, r.output
        assert r.output == f"Wrote {out} ({suffix}, 3 passages)\n" and out.stat().st_size
    r = run("quotes", path, "--code", "Triggers", "--coder", "alice")
    assert r.exit_code == 0 and "Quotes: Triggers" in r.output and TAGGED in r.output


def test_cli_refusals(qs, tmp_path):
    path = qs.path
    r = run("quotes", path, "--code", "Triggers")
    assert r.exit_code == 1
    assert r.output == ("Error: several coders have codings (alice, bob); say whose count (use "
                        "--coder NAME, --consensus, or --coders alice,bob --rule any|all)\n")
    r = run("quotes", path, "--code", "Triggers", "--coder", "alice", "--format", "docx")
    assert r.exit_code == 2 and "--format docx needs --out FILE.docx" in r.output
    r = run("quotes", path, "--coder", "alice")
    assert r.exit_code == 2 and "Missing option '--code'" in r.output
    r = run("quotes", path, "--code", "Triggers", "--coder", "alice", "--out",
            tmp_path / "nowhere" / "q.md")
    assert r.exit_code == 1 and "does not exist" in r.output
    r = run("quotes", path, "--code", "Triggers", "--coder", "alice", "--out", tmp_path / "q.pdf")
    assert r.exit_code == 1 and "unknown format '.pdf'" in r.output


# -- the web page --------------------------------------------------------------------------------
def client(path, **cookies) -> TestClient:
    c = TestClient(create_app(path), base_url=BASE)
    for k, v in cookies.items():
        c.cookies.set(k, v)
    return c


def test_web_page_lists_escaped_passages_linking_to_the_transcript(qs):
    page = client(qs.path).get("/quotes?code=triggers&coder=alice&by=group")
    assert page.status_code == 200
    body = page.text
    assert "&lt;b&gt;tight&lt;/b&gt;" in body and TAGGED not in body
    assert "=HYPERLINK(&#34;x&#34;)" in body
    assert f'href="/transcripts/p1#seg-{seg(qs, "p1", 3)}"' in body
    assert '<option value="triggers" selected>Triggers</option>' in body
    assert '<option value="group" selected>group</option>' in body
    assert "<h4>group: B</h4>" in body
    assert '<a href="/analysis?view=memos">1 segment memo</a> on this segment' in body
    assert "<em>Memo:</em> money" in body
    assert "&lt;loan&gt;" not in body and "<loan>" not in body   # memo text is only linked
    assert "Codings: coder alice; confirmed and added codings" in html.unescape(body)


def test_web_page_says_why_it_cannot_list(qs):
    c = client(qs.path)
    assert "Choose a code to see every passage" in c.get("/quotes").text
    body = html.unescape(c.get("/quotes?code=triggers").text)
    assert 'id="quotes-error">several coders have codings (alice, bob); say whose count' in body
    assert "unknown code 'nope'" in html.unescape(c.get("/quotes?code=nope&coder=bob").text)


def test_web_page_in_blind_mode_shows_only_one_s_own_passages(qs):
    body = client(qs.path, coder_name="bob", coder_blind="1").get(
        "/quotes?code=triggers&coder=alice").text
    assert "Blind mode:" in body and "coded by bob" in body and "coded by alice" not in body


# -- issue 17's leftovers ------------------------------------------------------------------------
def test_report_sections_count_a_partial_consensus_with_allow_partial(study, study_path,
                                                                       tmp_path):
    partial_consensus(study, study_path, tmp_path)
    out = tmp_path / "report.html"
    r = run("report", study_path, out, "--consensus", "--allow-partial")
    assert r.exit_code == 0, r.output
    page = html.unescape(out.read_text(encoding="utf-8"))
    methods = page[page.index("<h2>Co-occurrence</h2>"):page.index("<h2>Agreement</h2>")]
    assert "PARTIAL: consensus 'consensus' covers 2 of 3 segments" in methods
    assert "or count it as it is with --allow-partial" not in methods   # refused before


def test_codebook_diff_notices_leads_to(tmp_path):
    model = {"name": "M", "codes": [{"name": "Triggers", "codes": [{"name": "Domestic"}]},
                                    {"name": "External", "codes": [{"name": "Markets"}]}]}
    s = make_study(tmp_path, model, turns={"p1": ["hello"]})
    model["codes"][0]["leads_to"] = ["External"]
    s.import_codebook(write_codebook(tmp_path / "v2.yaml", model))
    d = s.codebook_diff(1)
    assert [(c.id, c.kinds, c.fields) for c in d.changes] == [
        ("triggers", ("edited",), ("leads_to",))]
    assert d.changes[0].line() == "edited   Triggers  <triggers>: leads_to"
    s.close()


def test_sheet_import_counts_the_memos_stored_with_codes(study, study_path, tmp_path):
    path = tmp_path / "sheet.csv"
    review.export_sheet(study, path, "alice", order="document")
    with open(path, newline="", encoding="utf-8") as fh:
        table = list(csv.reader(fh))
    head = table[0]
    table[1][head.index("decision")] = "Domestic conditions"
    table[1][head.index("memo")] = "why: saturated market"
    table[2][head.index("memo")] = "a note without a decision"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(table)
    r = run("review", "import", study_path, path, "--coder", "alice")
    assert r.exit_code == 0, r.output
    assert ("0 no code, 1 memo(s), 1 row memo(s) stored with their codes." in r.output)
    with Study(study_path) as again:
        assert again.db.one("SELECT COUNT(*) FROM codings WHERE memo = 'why: saturated market'"
                            )[0] >= 1
