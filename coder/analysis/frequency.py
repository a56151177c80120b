"""Frequency analysis: how many of the N participants raised each code, as the seed paper's
Tables 2-7 report it.

n counts distinct participants (not segments, not documents) with at least one positive
coding on a code or on any code below it; N is every participant who speaks in the analysed
documents. Percent is 100*n/N rounded half up (62.5 -> 63), never banker's rounding, because
that is how published frequency tables are read. Parents get two labelled roll-ups: ``any``
(participants who raised anything below) and ``mean`` (the mean of its categories' exact
percents, which is how the seed reports "foreign market attraction (74%)").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import pandas as pd

from coder.errors import CoderError, ConsensusIncomplete, NothingToDo, UnknownReference
from coder.store.codebook import Code, Codebook

LEVELS = ("category", "group", "factor", "all", "item")
RULES = ("any", "all")
ROLLUPS = ("any", "mean")
SPAN_RULE = ("a coded span counts for the participant speaking in every segment it overlaps "
             "(a span across two speakers counts for each), and as a coded segment there.")
COLUMNS = ["id", "path", "factor", "group", "name", "level", "depth", "rollup", "n", "N",
           "percent", "label", "segments", "documents", "items"]


@dataclass
class Selection:
    """Which coders' decisions count, and how they combine: stated in every table."""

    coder_ids: list[int]
    coders: list[str]
    rule: str
    decisions: tuple[str, ...]
    consensus: bool = False
    coverage: Any = None     # the consensus coder's ConsensusStatus (coder.analysis.agreement)

    @property
    def include_auto(self) -> bool:
        return "auto" in self.decisions

    @property
    def caveat(self) -> str | None:
        """Said in the table's header when a partial or out-of-date consensus is counted."""
        if self.coverage is None or self.coverage.complete:
            return None
        return "PARTIAL: " + self.coverage.message()

    def describe(self) -> str:
        who = (self.coverage.summary() if self.coverage is not None
               else f"consensus coder {self.coders[0]}" if self.consensus and len(self.coders) == 1
               else f"coder {self.coders[0]}" if len(self.coders) == 1
               else f"coders {', '.join(self.coders)} (rule {self.rule}: a participant counts "
                    + ("if any of them coded it)" if self.rule == "any"
                       else "only if every one of them coded it)"))
        kinds = "confirmed and added codings"
        kinds += "; auto-accepted suggestions included" if self.include_auto else (
            "; auto-accepted suggestions not counted")
        return f"{who}; {kinds}"


@dataclass
class _Facts:
    """Everything one analysis reads from the study, fetched once."""

    book: Codebook
    selection: Selection
    participants: pd.DataFrame            # participant_id, participant (the analysed set)
    codings: pd.DataFrame                 # code_id, participant_id, coder_id, segment_id, document_id
    unattributed: int = 0                 # positive codings on segments without a participant
    unknown_codes: list[str] = field(default_factory=list)
    spans: int = 0                        # counted codings on a span rather than a segment


# -- selecting coders --------------------------------------------------------------------------
def _consensus(study, name: str, coder_id: int, rule: str, decisions: tuple[str, ...],
               allow_partial: bool, *, default: bool = False) -> Selection:
    """A consensus coder's selection, refused while it does not cover every segment its coders
    decided or is older than their latest decisions, unless ``allow_partial``."""
    from coder.analysis.agreement import consensus_status

    status = consensus_status(study, name)
    if not status.complete and not allow_partial:
        how = ("; or say whose codings count: --coder NAME, or --coders "
               + ",".join(status.coders or []) + " --rule any|all") if default else ""
        raise ConsensusIncomplete(
            status.message(),
            hint=f"bring it up to date: {status.command(study.path)}; or count it as it is "
                 f"with --allow-partial{how}")
    return Selection([coder_id], [name], rule, decisions, consensus=True, coverage=status)


def select_coders(study, *, coder: str | None = None, coders: list[str] | None = None,
                  rule: str = "any", consensus: bool = False,
                  include_auto: bool = False, allow_partial: bool = False) -> Selection:
    """Resolve the coder options to coder ids; the default is unambiguous or an error.

    A consensus coder counts only when it covers every segment its coders decided and none
    of them decided anything since it was built; ``allow_partial`` counts it anyway (the
    table's header then says what it covers). The default never picks a partial one."""
    if rule not in RULES:
        raise CoderError(f"unknown rule '{rule}'", hint="use any or all")
    given = [bool(coder), bool(coders), bool(consensus)]
    if sum(given) > 1:
        raise CoderError("choose one of --coder, --coders or --consensus")
    decisions = ("confirmed", "added", "auto") if include_auto else ("confirmed", "added")
    rows = {r["name"]: (r["id"], r["kind"])
            for r in study.db.query("SELECT id, name, kind FROM coders ORDER BY id")}
    if coder:
        coders = [coder]
    if coders:
        missing = [c for c in coders if c not in rows]
        if missing:
            raise UnknownReference("unknown coder(s): " + ", ".join(missing),
                                   hint="coders: " + (", ".join(rows) or "none yet"))
        names = list(dict.fromkeys(coders))
        if len(names) == 1 and rows[names[0]][1] == "consensus":
            return _consensus(study, names[0], rows[names[0]][0], rule, decisions, allow_partial)
        return Selection([rows[c][0] for c in names], names, rule, decisions)
    if consensus:
        names = [n for n, (_, kind) in rows.items() if kind == "consensus"]
        if not names:
            raise NothingToDo("the study has no consensus coder yet",
                              hint=f"reconcile two coders first: coder reconcile {study.path}")
        if len(names) > 1:
            raise CoderError("several consensus coders (" + ", ".join(names) + "); say which "
                             "counts", hint="use --coder NAME")
        return _consensus(study, names[0], rows[names[0]][0], rule, decisions, allow_partial)
    # No choice given: use the consensus coder if there is one that covers what its coders
    # decided, else the only coder with codings.
    marks = ",".join("?" * len(decisions))
    active = [r["name"] for r in study.db.query(
        f"SELECT DISTINCT c.name, c.id FROM coders c JOIN codings k ON k.coder_id = c.id "
        f"WHERE k.decision IN ({marks}) ORDER BY c.id", decisions)]
    agreed = [n for n in active if rows[n][1] == "consensus"]
    if len(agreed) > 1:
        raise CoderError("several consensus coders have codings (" + ", ".join(agreed)
                         + "); say whose count", hint="use --coder NAME")
    if agreed:
        return _consensus(study, agreed[0], rows[agreed[0]][0], rule, decisions, allow_partial,
                          default=True)
    if len(active) > 1:
        raise CoderError(
            "several coders have codings (" + ", ".join(active) + "); say whose count",
            hint="use --coder NAME, --consensus, or --coders "
                 + ",".join(active) + " --rule any|all")
    if not active:
        raise _nothing(study, None, include_auto)
    return Selection([rows[active[0]][0]], active, rule, decisions)


def _nothing(study, selection: Selection | None, include_auto: bool) -> NothingToDo:
    who = f" by {', '.join(selection.coders)}" if selection else ""
    coder = selection.coders[0] if selection else "NAME"
    auto = "" if include_auto else " (auto-accepted suggestions count only with --include-auto)"
    return NothingToDo(
        f"no confirmed codings{who} to count{auto}",
        hint=f"review suggestions with: coder review {study.path} --coder {coder}; "
             f"or import codings with: coder codes import {study.path} CODINGS.csv --coder {coder}")


# -- reading the study -------------------------------------------------------------------------
def _facts(study, selection: Selection, documents: list[str] | None) -> _Facts:
    book = study.codebook()
    documents = study.check_documents(documents)
    doc_filter, params = "", []
    if documents:
        doc_filter = " AND v.document IN (%s)" % ",".join("?" * len(documents))
        params = list(documents)
    people = pd.read_sql_query(
        "SELECT DISTINCT v.participant_id, v.participant FROM segment_view v "
        "WHERE v.role = 'participant' AND v.participant_id IS NOT NULL" + doc_filter
        + " ORDER BY v.participant", study.db.conn, params=params)
    coder_marks = ",".join("?" * len(selection.coder_ids))
    dec_marks = ",".join("?" * len(selection.decisions))
    codings = pd.read_sql_query(
        # a coded span counts for the speaker of every segment it overlaps (SPAN_RULE)
        "SELECT DISTINCT k.code_id, v.participant_id, k.coder_id, m.segment_id, v.document_id "
        "FROM codings k JOIN coding_segments m ON m.coding_id = k.id "
        "JOIN segment_view v ON v.segment_id = m.segment_id "
        f"WHERE k.coder_id IN ({coder_marks}) AND k.decision IN ({dec_marks}) "
        "AND k.code_id IS NOT NULL AND v.role = 'participant'" + doc_filter,
        study.db.conn, params=[*selection.coder_ids, *selection.decisions, *params])
    if codings.empty:
        raise _nothing(study, selection, selection.include_auto)
    if people.empty:
        raise NothingToDo("no participant speaks in the analysed documents",
                          hint="check the speakers' roles and --participants at import")
    unattributed = int(codings["participant_id"].isna().sum())
    codings = codings[codings["participant_id"].notna()].copy()
    codings["participant_id"] = codings["participant_id"].astype(int)
    known = {c.id for c in book.codes}
    unknown = sorted(set(codings["code_id"]) - known)
    codings = codings[codings["code_id"].isin(known)]
    spans = study.db.one(
        f"SELECT COUNT(*) FROM codings WHERE coder_id IN ({coder_marks}) AND decision IN "
        f"({dec_marks}) AND code_id IS NOT NULL AND start_char IS NOT NULL",
        [*selection.coder_ids, *selection.decisions])[0]
    return _Facts(book, selection, people, codings, unattributed, unknown, spans)


def _ancestry(book: Codebook) -> dict[str, list[str]]:
    """code id -> itself and every code above it."""
    out: dict[str, list[str]] = {}
    for c in book.codes:
        chain, cur = [c.id], c
        while cur.parent_id is not None:
            cur = book.get(cur.parent_id)
            chain.append(cur.id)
        out[c.id] = chain
    return out


def level_name(book: Codebook, code: Code, parents: set[str] | None = None) -> str:
    """Leaves are categories; a top-level parent is a factor; parents in between are groups."""
    parents = parents if parents is not None else {c.parent_id for c in book.codes}
    if code.id not in parents:
        return "category"
    return "factor" if code.depth == 1 else "group"


def round_half_up(value: Fraction, decimals: int = 0) -> Fraction:
    """Exact half-up rounding of a non-negative fraction (62.5 -> 63, 0.125 -> 0.13 at 2)."""
    scale = 10 ** decimals
    return Fraction(int(value * scale + Fraction(1, 2)), scale)


def format_percent(value: Fraction | None, decimals: int = 0) -> str:
    if value is None:
        return ""
    rounded = round_half_up(value, decimals)
    if decimals == 0:
        return f"{int(rounded)}%"
    whole = int(rounded * 10 ** decimals)
    text = str(whole).rjust(decimals + 1, "0")
    return f"{text[:-decimals]}.{text[-decimals:]}%"


def _percent_value(value: Fraction | None, decimals: int):
    if value is None:
        return None
    rounded = round_half_up(value, decimals)
    return int(rounded) if decimals == 0 else float(rounded)


# -- the analysis ------------------------------------------------------------------------------
def frequencies(study, *, coder: str | None = None, coders: list[str] | None = None,
                rule: str = "any", consensus: bool = False, level: str = "category",
                by: str | None = None, include_auto: bool = False, decimals: int = 0,
                documents: list[str] | None = None, rollups=ROLLUPS,
                sort: str = "codebook", allow_partial: bool = False) -> pd.DataFrame:
    """Participants per code, one row per code (parents: one row per roll-up kind).

    ``df.attrs`` holds N, the coders and rule used, include_auto and notes for the table
    (with a consensus coder, what it covers; ``caveat``: the header's warning when a partial
    consensus is counted with ``allow_partial``). With ``by`` (a participant attribute) there
    is one row per code and attribute value, with that group's N; a row with value "All"
    gives the whole set.
    """
    if level not in LEVELS:
        raise CoderError(f"unknown level '{level}'", hint="use " + ", ".join(LEVELS))
    if level == "item":
        raise CoderError(
            "items are not counted: they are the indicators listed on each code, not codes "
            "that segments carry",
            hint="the items column of the category table lists them; to count an item, make it "
                 "a code below its category in the codebook")
    if decimals < 0 or decimals > 6:
        raise CoderError("--decimals must be between 0 and 6")
    if sort not in ("codebook", "frequency"):
        raise CoderError(f"unknown sort '{sort}'", hint="use codebook or frequency")
    rollups = tuple(rollups)
    bad = [r for r in rollups if r not in ROLLUPS]
    if bad or not rollups:
        raise CoderError(f"unknown roll-up '{bad[0] if bad else ''}'", hint="use any and/or mean")
    selection = select_coders(study, coder=coder, coders=coders, rule=rule, consensus=consensus,
                              include_auto=include_auto, allow_partial=allow_partial)
    groups = _groups(study, by) if by else None
    facts = _facts(study, selection, documents)
    book = facts.book
    parents = {c.parent_id for c in book.codes if c.parent_id is not None}

    # (code, participant) pairs that count, after combining coders by the rule.
    up = _ancestry(book)
    rows = facts.codings.assign(target=facts.codings["code_id"].map(up)).explode("target")
    per_coder = rows[["target", "participant_id", "coder_id"]].drop_duplicates()
    counts = per_coder.groupby(["target", "participant_id"]).size()
    need = len(selection.coder_ids) if rule == "all" else 1
    raised = counts[counts >= need].reset_index()[["target", "participant_id"]]
    raised_by_code = raised.groupby("target")["participant_id"].apply(set).to_dict()

    everyone = set(facts.participants["participant_id"].astype(int))
    sets: list[tuple[str, set[int]]] = [("All", everyone)]
    if groups is not None:
        present = groups[groups["participant_id"].isin(everyone)]
        values = sorted(present["value"].unique(), key=lambda v: (v == "(none)", str(v)))
        sets += [(v, set(present.loc[present["value"] == v, "participant_id"])) for v in values]

    wanted = _codes_at(book, level, parents)
    out = []
    for value, members in sets:
        total = len(members)
        mine = rows[rows["participant_id"].isin(members)]
        seg_counts = mine.groupby("target")["segment_id"].nunique().to_dict()
        doc_counts = mine.groupby("target")["document_id"].nunique().to_dict()
        for code in wanted:
            lvl = level_name(book, code, parents)
            top = book.get(up[code.id][-1])
            middle = [book.get(i).name for i in reversed(up[code.id][1:-1])]
            base = {
                "id": code.id, "path": code.path, "factor": top.name,
                "group": " / ".join(middle), "name": code.name, "level": lvl,
                "depth": code.depth, "N": total,
                "segments": int(seg_counts.get(code.id, 0)),
                "documents": int(doc_counts.get(code.id, 0)),
                "items": "; ".join(code.items),
            }
            if by:
                base["by"], base["value"] = by, value
            n = len(raised_by_code.get(code.id, set()) & members)
            exact = Fraction(100 * n, total) if total else None
            kinds = rollups if lvl != "category" else (None,)
            for kind in kinds:
                row = dict(base, rollup=kind or "")
                if kind == "mean":
                    leaves = [c for c in book.descendants(code.id) if c.id not in parents]
                    if total and leaves:
                        got = [len(raised_by_code.get(c.id, set()) & members) for c in leaves]
                        mean = Fraction(100 * sum(got), total * len(leaves))
                    else:
                        mean = None
                    row.update(n=None, percent=_percent_value(mean, decimals),
                               label=format_percent(mean, decimals), _exact=mean)
                else:
                    row.update(n=n, percent=_percent_value(exact, decimals),
                               label=format_percent(exact, decimals), _exact=exact)
                out.append(row)
    # Parents' roll-ups over the whole set, for layouts that print them in the factor column.
    parent_rollups = {}
    for code in book.codes:
        if code.id not in parents:
            continue
        n = len(raised_by_code.get(code.id, set()))
        leaves = [c for c in book.descendants(code.id) if c.id not in parents]
        got = sum(len(raised_by_code.get(c.id, set())) for c in leaves)
        mean = Fraction(100 * got, len(everyone) * len(leaves)) if leaves else None
        parent_rollups[code.id] = {
            "path": code.path, "name": code.name, "level": level_name(book, code, parents),
            "n": n, "any": format_percent(Fraction(100 * n, len(everyone)), decimals),
            "mean": format_percent(mean, decimals)}
    columns = COLUMNS + (["by", "value"] if by else [])
    df = pd.DataFrame(out, columns=[*columns, "_exact"])
    df["n"] = df["n"].astype("Int64")
    df["percent"] = df["percent"].astype("Int64" if decimals == 0 else "Float64")
    if sort == "frequency":
        df = _sort_by_frequency(df, book)
    df = df.drop(columns="_exact").reset_index(drop=True)
    notes = _notes(facts, len(everyone))
    df.attrs.update(
        N=len(everyone), coders=list(selection.coders), rule=selection.rule,
        consensus=selection.consensus, include_auto=selection.include_auto, level=level,
        decimals=decimals, by=by, documents=documents, selection=selection.describe(),
        notes=notes, codebook=book.name, rollups=list(rollups), parents=parent_rollups,
        groups={v: len(m) for v, m in sets} if by else None,
        unattributed_codings=facts.unattributed, unknown_codes=facts.unknown_codes,
        caveat=selection.caveat,
        consensus_status=selection.coverage.as_dict() if selection.coverage else None,
    )
    return df


def _codes_at(book: Codebook, level: str, parents: set[str]) -> list[Code]:
    if level == "all":
        return list(book.codes)
    if level == "factor":
        return [c for c in book.codes if c.depth == 1]
    if level == "group":
        return [c for c in book.codes if c.depth > 1 and c.id in parents]
    return [c for c in book.codes if c.id not in parents]


def _sort_by_frequency(df: pd.DataFrame, book: Codebook) -> pd.DataFrame:
    """Most frequent first within each parent, keeping the tree's blocks together."""
    order = {c.id: c.position for c in book.codes}
    df = df.copy()
    key = df["_exact"].map(lambda f: -float(f) if f is not None else 1.0)
    # Sort within the same parent block: the block is the factor (and group) position.
    df["_block"] = df["id"].map(lambda i: order[book.get(i).parent_id]
                                if book.get(i).parent_id else -1)
    df["_key"] = key
    df["_pos"] = df["id"].map(order)
    by_cols = (["value"] if "value" in df.columns else []) + ["_block", "_key", "_pos"]
    df = df.sort_values(by_cols, kind="stable")
    return df.drop(columns=["_block", "_key", "_pos"])


def _groups(study, attribute: str) -> pd.DataFrame:
    known = [r["attribute"] for r in study.db.query(
        "SELECT DISTINCT attribute FROM participant_attributes ORDER BY attribute")]
    if attribute not in known:
        raise UnknownReference(
            f"unknown participant attribute '{attribute}'",
            hint=("attributes: " + ", ".join(known)) if known else
            "the study has no participant attributes; import them with --participants FILE.csv")
    people = pd.read_sql_query(
        "SELECT p.id AS participant_id, COALESCE(NULLIF(TRIM(a.value), ''), '(none)') AS value "
        "FROM participants p LEFT JOIN participant_attributes a "
        "ON a.participant_id = p.id AND a.attribute = ?", study.db.conn, params=[attribute])
    people["value"] = people["value"].fillna("(none)")
    return people


def _notes(facts: _Facts, total: int) -> list[str]:
    notes = [f"N = {total} participants in the analysed documents; n = participants with at "
             "least one coded segment (a parent counts anything below it); percent = 100*n/N "
             "rounded half up.",
             "Codings: " + facts.selection.describe() + ".",
             *([facts.selection.caveat + "."] if facts.selection.caveat else []),
             "Roll-ups: 'any' = participants who raised any code below; 'mean' = mean of the "
             "categories' percents. 'segments' and 'documents' count coded segments and "
             "documents, not participants."]
    if facts.spans:
        notes.append(f"{facts.spans} coding(s) are on spans, not whole segments: {SPAN_RULE}")
    if facts.unattributed:
        notes.append(f"{facts.unattributed} coding(s) on segments whose speaker is not linked to "
                     "a participant are not counted.")
    if facts.unknown_codes:
        notes.append("Codings on codes missing from the current codebook are not counted: "
                     + ", ".join(facts.unknown_codes) + ".")
    return notes


# -- exemplar quotes ---------------------------------------------------------------------------
def exemplars(study, *, per_code: int = 2, coder: str | None = None,
              coders: list[str] | None = None, rule: str = "any", consensus: bool = False,
              include_auto: bool = False, documents: list[str] | None = None,
              max_chars: int = 300, allow_partial: bool = False) -> pd.DataFrame:
    """Up to ``per_code`` quotes per code, from different participants where possible.

    Segments more of the selected coders agree on come first, then codebook reading order;
    quotes longer than ``max_chars`` are shortened with an ellipsis.
    """
    columns = ["code_id", "path", "participant", "document", "position", "speaker", "text"]
    if per_code <= 0:
        return pd.DataFrame(columns=columns)
    selection = select_coders(study, coder=coder, coders=coders, rule=rule, consensus=consensus,
                              include_auto=include_auto, allow_partial=allow_partial)
    documents = study.check_documents(documents)
    coder_marks = ",".join("?" * len(selection.coder_ids))
    dec_marks = ",".join("?" * len(selection.decisions))
    doc_filter = (" AND v.document IN (%s)" % ",".join("?" * len(documents))) if documents else ""
    rows = pd.read_sql_query(
        "SELECT k.code_id, v.participant, v.document, v.position, v.speaker, v.text, "
        "COUNT(DISTINCT k.coder_id) AS votes FROM codings k "
        "JOIN coding_segments m ON m.coding_id = k.id "
        "JOIN segment_view v ON v.segment_id = m.segment_id "
        f"WHERE k.coder_id IN ({coder_marks}) AND k.decision IN ({dec_marks}) "
        "AND k.code_id IS NOT NULL AND v.role = 'participant'" + doc_filter
        + " GROUP BY k.code_id, m.segment_id ORDER BY votes DESC, v.document, v.position",
        study.db.conn, params=[*selection.coder_ids, *selection.decisions, *(documents or [])])
    book = study.codebook()
    known = {c.id: c for c in book.codes}
    picked = []
    for code_id, block in rows.groupby("code_id", sort=False):
        if code_id not in known:
            continue
        seen: set = set()
        first, rest = [], []
        for r in block.itertuples():
            (rest if r.participant in seen else first).append(r)
            seen.add(r.participant)
        for r in (first + rest)[:per_code]:
            text = " ".join(str(r.text).split())
            if len(text) > max_chars:
                text = text[: max_chars - 1].rstrip() + "…"
            picked.append({"code_id": code_id, "path": known[code_id].path,
                           "participant": r.participant, "document": r.document,
                           "position": int(r.position), "speaker": r.speaker, "text": text})
    df = pd.DataFrame(picked, columns=columns)
    order = {c.id: c.position for c in book.codes}
    return df.sort_values("code_id", key=lambda s: s.map(order), kind="stable").reset_index(
        drop=True)
