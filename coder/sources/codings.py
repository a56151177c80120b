"""Human codings: the codings table as DataFrames, and the codings CSV (import and export).

The CSV has columns ``document,segment,code`` and optional ``coder``, ``decision`` (confirmed
by default), ``memo``, and ``start,end`` for a coded span (character offsets into the document,
end exclusive; blank for the whole segment); an export adds ``speaker,text,time`` (text: the
span's exact characters) and can be imported unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from coder.errors import CoderError, InputError
from coder.spreadsheet import CsvReader, cell_text, neutralise_frame
from coder.store import batches, check_coder_name
from coder.store.batches import Batch
from coder.store.coders import coder_key
from coder.store.db import ONE_DECISION, now

if TYPE_CHECKING:
    from coder.store import Store



DECISIONS = ("confirmed", "added", "rejected", "no_code", "auto")
EXPORT_COLUMNS = ["document", "segment", "code", "coder", "decision", "memo", "speaker", "text",
                  "time", "start", "end"]


def _stored_name(study: Store, name: str) -> str:
    """A coder name as stored ('Alice' finds alice); a name matching no coder stays as given."""
    try:
        return study.resolve_coder(name).name
    except CoderError:
        return name


def codings_frame(study: Store, *, coder=None, decisions=None, history: bool = False) -> pd.DataFrame:
    """Current decisions joined with their segment and code path (or the audit trail)."""
    table = "coding_history" if history else "codings"
    extra = ("k.action, k.recorded_at AS created_at, k.coding_id" if history else
             "k.id AS coding_id, k.seconds, k.codebook_version, k.model_version, "
             "k.suggestion_score, k.created_at")
    sql = (f"SELECT {extra}, k.segment_id, v.document, v.position, v.speaker, v.participant, "
           "c.name AS coder, k.code_id, cd.path AS code_path, k.decision, k.memo, k.reason, "
           "k.source, COALESCE(k.start_char, v.start_char) AS start_char, "
           "COALESCE(k.end_char, v.end_char) AS end_char, k.start_char IS NULL AS whole, "
           "CASE WHEN k.start_char IS NULL THEN v.text ELSE substr(d.text, k.start_char + 1, "
           "k.end_char - k.start_char) END AS text "
           f"FROM {table} k JOIN coders c ON c.id = k.coder_id "
           "LEFT JOIN segment_view v ON v.segment_id = k.segment_id "
           "LEFT JOIN documents d ON d.id = v.document_id "
           "LEFT JOIN codes cd ON cd.id = k.code_id AND cd.codebook_version = "
           "(SELECT MAX(version) FROM codebook_versions)")
    where, params = [], []
    if coder:
        names = [coder] if isinstance(coder, str) else list(coder)
        names = [_stored_name(study, n) for n in names]
        where.append("c.name IN (%s)" % ",".join("?" * len(names)))
        params += names
    if decisions:
        where.append("k.decision IN (%s)" % ",".join("?" * len(decisions)))
        params += list(decisions)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY " + ("k.id" if history else
                           "v.document, v.position, c.name, cd.position, start_char, end_char")
    return pd.read_sql_query(sql, study.db.conn, params=params)


@dataclass
class CodingsImport:
    rows: int                   # codings rows in the file, all imported
    batch: Batch | None = None  # the numbered batch (batch.number None: nothing changed)
    new_coders: list[str] = field(default_factory=list)  # "new coder 'carol'" notes


def import_csv(study: Store, path, *, coder: str | None = None) -> CodingsImport:
    """Import codings made elsewhere, as one numbered batch (`coder.store.batches`). Every row
    is checked first; all bad rows are reported together and nothing is imported unless all
    are good. Coder names match existing coders case-insensitively; near-duplicates are bad
    rows."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    from coder.sources.transcripts import decode, normalise

    text, _ = decode(path.read_bytes(), path)
    reader = CsvReader(normalise(text), path)
    fields = {(f or "").strip().lower() for f in reader.fieldnames or []}
    missing = [c for c in ("document", "segment", "code") if c not in fields]
    if missing:
        raise InputError(f"missing column(s): {', '.join(missing)}", path=path, line=1,
                         hint="a codings CSV has columns document,segment,code[,coder,decision,memo]")
    if "coder" not in fields and not coder:
        raise InputError("no coder: the CSV has no 'coder' column", path=path,
                         hint="give one with --coder NAME")
    book = study.codebook()
    positions, bounds = {}, {}
    for r in study.db.query("SELECT d.name, s.position, s.id, s.start_char, s.end_char "
                            "FROM segments s JOIN documents d ON d.id = s.document_id"):
        positions[(r["name"], r["position"])] = r["id"]
        bounds[r["id"]] = (r["start_char"], r["end_char"])
    documents = {name for name, _ in positions}
    errors, rows = [], []
    new_names: dict[str, tuple[str, int, Any]] = {}
    for lineno, row in enumerate(reader, 2):
        row = {(k or "").strip().lower(): cell_text(v) for k, v in row.items()}
        problems = []
        doc = row.get("document", "")
        if doc not in documents:
            problems.append(f"unknown document '{doc}'")
        try:
            pos = int(row.get("segment", ""))
        except ValueError:
            pos = None
            problems.append(f"segment '{row.get('segment', '')}' is not a number")
        if pos is not None and doc in documents and (doc, pos) not in positions:
            problems.append(f"document '{doc}' has no segment {pos}")
        decision = (row.get("decision") or "confirmed").lower().replace("-", "_").replace(" ", "_")
        if decision not in DECISIONS:
            problems.append(f"unknown decision '{decision}' (use {', '.join(DECISIONS)})")
        code_id = None
        ref = row.get("code", "")
        if decision == "no_code" or ref.lower() in ("", "none") and decision == "no_code":
            code_id = None
        elif not ref:
            problems.append("empty code")
        else:
            try:
                code_id = book.resolve(ref).id
            except Exception as e:  # UnknownReference with its hint
                problems.append(str(e))
        name = row.get("coder") or coder
        try:
            ref = study.resolve_coder(check_coder_name(name))
        except CoderError as e:
            problems.append(str(e))
        else:
            name = ref.name
            if ref.new:
                first = new_names.setdefault(coder_key(name), (name, lineno, ref))
                if first[0] != name:
                    problems.append(f"coder '{name}' and '{first[0]}' (line {first[1]}) differ "
                                    "only in case, spaces or punctuation; use one spelling")
        span = (None, None)
        if (row.get("start") or row.get("end")) and not problems:
            span = _span(study, doc, positions, bounds, positions[(doc, pos)], row, decision,
                         problems)
        if problems:
            errors.append(f"line {lineno}: " + "; ".join(problems))
            continue
        anchor = span[2] if len(span) == 3 else positions[(doc, pos)]
        rows.append((anchor, name, code_id, decision, row.get("memo") or None, *span[:2]))
    if errors:
        shown = errors[:20] + ([f"... and {len(errors) - 20} more"] if len(errors) > 20 else [])
        raise InputError(f"{len(errors)} bad row(s), nothing imported:\n  " + "\n  ".join(shown),
                         path=path)
    names = list(dict.fromkeys(name for _, name, *_ in rows))
    with batches.record(study, "codings", source=str(path), coders=names) as batch:
        conn = study.db.conn
        coder_ids = {name: study.coder_id(name) for name in names}
        for segment_id, name, code_id, decision, memo, start, end in rows:
            # an imported decision: what its coder saw is not known (context_id NULL)
            conn.execute(
                "INSERT INTO codings (segment_id, coder_id, code_id, decision, codebook_version,"
                " memo, source, created_at, start_char, end_char) VALUES (?,?,?,?,?,?,?,?,?,?) "
                f"ON CONFLICT {ONE_DECISION} DO UPDATE SET "
                "decision=excluded.decision, memo=excluded.memo, source=excluded.source, "
                "created_at=excluded.created_at, context_id=NULL "
                # the same decision again is left as it is (a re-import changes nothing)
                "WHERE codings.decision IS NOT excluded.decision "
                "OR codings.memo IS NOT excluded.memo",
                (segment_id, coder_ids[name], code_id, decision, book.version, memo, "import",
                 now(), start, end))
    return CodingsImport(rows=len(rows), batch=batch,
                         new_coders=[ref.note() for _, _, ref in new_names.values()])


def _span(study: Store, doc: str, positions, bounds, segment_id: int, row: dict, decision: str,
          problems: list[str]) -> tuple:
    """A row's ``start``/``end`` (document character offsets, end exclusive): (start, end,
    anchor segment), or (None, None) when they are exactly the row's segment."""
    try:
        start, end = int(row.get("start", "")), int(row.get("end", ""))
    except ValueError:
        problems.append(f"start '{row.get('start', '')}' and end '{row.get('end', '')}' must "
                        "both be whole numbers (character offsets in the document)")
        return (None, None)
    seg_start, seg_end = bounds[segment_id]
    if (start, end) == (seg_start, seg_end):
        return (None, None)
    if decision not in ("confirmed", "added"):
        problems.append(f"a span (start/end) takes decision confirmed or added, not {decision}")
        return (None, None)
    length = study.db.one("SELECT length(text) FROM documents WHERE name=?", (doc,))[0]
    if not (0 <= start < end <= length):
        problems.append(f"span {start}..{end} is not inside document '{doc}' (0..{length})")
        return (None, None)
    if not (start < seg_end and end > seg_start):
        problems.append(f"span {start}..{end} does not overlap segment {row.get('segment')} "
                        f"({seg_start}..{seg_end})")
        return (None, None)
    anchor = study.db.one(
        "SELECT s.id FROM segments s JOIN documents d ON d.id = s.document_id WHERE d.name=? "
        "AND s.start_char < ? AND s.end_char > ? ORDER BY s.start_char LIMIT 1",
        (doc, end, start))[0]
    return (start, end, anchor)


def export_csv(study: Store, path=None, *, coder=None) -> pd.DataFrame:
    df = codings_frame(study, coder=coder)
    out = pd.DataFrame({
        "document": df["document"], "segment": df["position"],
        "code": df["code_path"].where(df["code_id"].notna(), "none"),
        "coder": df["coder"], "decision": df["decision"], "memo": df["memo"].fillna(""),
        "speaker": df["speaker"], "text": df["text"], "time": df["created_at"],
        # a coded span's document offsets (end exclusive); blank: the whole segment
        "start": df["start_char"].where(~df["whole"].astype(bool)).astype("Int64"),
        "end": df["end_char"].where(~df["whole"].astype(bool)).astype("Int64"),
    })
    out.loc[df["code_id"].notna() & df["code_path"].isna(), "code"] = df["code_id"]
    if path is not None:
        neutralise_frame(out).to_csv(path, index=False)
    return out
