"""Teams that code apart: a study split into one copy per coder (:func:`split`), and the copies
merged back (:func:`merge`) before agreement is measured.

How things are matched (never by a file name alone):

* documents by their stored text (and ``sha256``); a document of the same name whose text
  differs is an *edited transcript*, a conflict;
* segments by document and offsets; a decision whose segment the study cuts differently keeps
  its characters as a span (positive decisions) or is listed as dropped;
* codes by id, then by path; participants by name, attributes by participant and name;
  coders by name.

Decisions merge three-way: a copy made by :func:`split` records how far its history went
(``study_info.split_mark``), so a decision changed only in the copy is taken, one changed only
in the study is kept, and one changed in both (to different values) is a *conflict*. Copies
made otherwise have no mark: a decision the study and the copy both hold, differently, is then a
conflict (one only the copy holds is added; one it lacks is kept). Every decision taken
comes with its ``coding_history`` rows, its decision context (what the coder could see) and,
for a consensus coder, its sources. A coder's "no code" and their codes on one segment exclude
each other, so merged decisions that would put both there are a conflict too.

Not carried: the copies' suggestions, models, undo records and search proposals (the study's
own stay); the embedding cache is, since it is keyed by text.

Conflicts are listed with where they are; the merge refuses (:class:`MergeConflicts`, nothing
written) unless each is resolved: ``prefer='newest'`` (the later decision, import or codebook
version; when equal or unknown, the copy named later), ``prefer='study'`` (the study's side
where the study is one side), ``prefer=FILE`` (that copy's side where it is one, else the
study's) and ``add_codes=True`` for codes only a copy has.

All or nothing: the merged study is built in a temporary file next to the target and moved into
place with ``os.replace`` (refused while another program has the target open); the inputs
are read through SQLite's backup API from read-only connections, never opened for writing. The decisions a merge brings in are one numbered batch
(kind ``merge``), so ``coder undo STUDY --batch N`` takes them back. A transcript replaced by a
copy's edited version stays replaced after the undo (its old segments are gone).
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import sqlite3
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coder.errors import CoderError, StudyError
from coder.exchange.offsets import _offset_map
from coder.sources.codebook.tree import from_dict
from coder.store import Store, batches, check_coder_name, is_sqlite_file, text_hash
from coder.store.db import now

POSITIVE = ("confirmed", "added", "auto")
MEANING = ("decision", "memo", "reason")
CODE_FIELDS = ("name", "path", "parent_id", "description", "include", "exclude", "items",
               "examples", "speakers")
CONFLICT_KINDS = ("decision", "code", "transcript", "codebook", "attribute", "speaker")
SHOWN = 25  # conflicts named in a refusal; --dry-run lists them all


class MergeConflicts(CoderError):
    """A merge refused because of conflicts no option resolved; ``conflicts`` lists them."""

    def __init__(self, message: str, conflicts: list[Conflict], *, hint: str | None = None):
        self.conflicts = conflicts
        super().__init__(message, hint=hint)


@dataclass
class Conflict:
    """Two copies that disagree, where, and how (or whether) an option settled it."""

    kind: str                       # one of CONFLICT_KINDS
    where: str                      # "p01 #4, alice, Networking/Personal relations"
    sides: list[tuple[str, str]]    # (file, what it holds)
    winner: str | None = None       # the file whose side was kept; None: unresolved
    how: str = ""                   # the option that settled it

    def line(self) -> str:
        text = f"{self.kind}: {self.where}: " + "; ".join(f"{f} has {w}" for f, w in self.sides)
        if self.winner is not None:
            return text + f" -> {self.winner}'s kept ({self.how})"
        return text + " (unresolved)"


@dataclass
class MergePlan:
    """What a merge did, or (``dry_run``) would do; ``written`` says whether it did."""

    target: str
    sources: list[str]
    created: bool = False           # the target did not exist: it started as the first copy
    dry_run: bool = False
    written: bool = False
    documents: dict[str, list[str]] = field(default_factory=dict)  # added/matched/replaced
    participants: list[str] = field(default_factory=list)          # added
    attributes: int = 0                                            # attribute values set
    coders: list[str] = field(default_factory=list)                # added
    codes_added: list[str] = field(default_factory=list)
    codes_changed: list[str] = field(default_factory=list)
    codebook_version: int | None = None                            # a new version, if any
    decisions: dict[str, Counter] = field(default_factory=dict)    # file -> what happened
    history: int = 0                # coding_history rows carried over
    contexts: int = 0               # decision contexts carried over
    memos: int = 0
    dropped: list[str] = field(default_factory=list)  # decisions that could not be placed
    conflicts: list[Conflict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    batch: int | None = None

    @property
    def unresolved(self) -> list[Conflict]:
        return [c for c in self.conflicts if c.winner is None]

    def lines(self) -> list[str]:
        """The whole plan, as `coder merge --dry-run` prints it."""
        out = [f"Merge into {self.target}"
               + (f" (new: starts as a copy of {self.sources[0]})" if self.created else "")
               + f" from {', '.join(self.sources[1:] if self.created else self.sources)}:"]
        for kind in ("added", "matched", "replaced", "kept"):
            names = self.documents.get(kind, [])
            if names:
                out.append(f"  documents {kind}: {len(names)} ({', '.join(names[:12])}"
                           + (", ..." if len(names) > 12 else "") + ")")
        if self.participants:
            out.append(f"  participants added: {', '.join(self.participants)}")
        if self.attributes:
            out.append(f"  participant attributes set: {self.attributes}")
        if self.coders:
            out.append(f"  coders added: {', '.join(self.coders)}")
        if self.codes_added:
            out.append(f"  codes added: {', '.join(self.codes_added)}")
        if self.codes_changed:
            out.append(f"  codes changed: {', '.join(self.codes_changed)}")
        for src, counts in self.decisions.items():
            parts = [f"{n} {what}" for what, n in sorted(counts.items()) if n]
            out.append(f"  decisions from {src}: " + (", ".join(parts) or "nothing new"))
        if self.history or self.contexts or self.memos:
            out.append(f"  carried: {self.history} history row(s), {self.contexts} decision "
                       f"context(s), {self.memos} memo(s)")
        if self.dropped:
            out.append(f"  dropped ({len(self.dropped)}): " + "; ".join(self.dropped[:10])
                       + ("; ..." if len(self.dropped) > 10 else ""))
        for note in self.notes:
            out.append(f"  note: {note}")
        if self.conflicts:
            out.append(f"  conflicts: {len(self.conflicts)}, {len(self.unresolved)} unresolved")
            out += [f"    {c.line()}" for c in self.conflicts]
        else:
            out.append("  conflicts: none")
        if self.written:
            out.append("  " + (f"batch {self.batch} (undo: coder undo {self.target} --batch "
                               f"{self.batch})" if self.batch else "no decision changed, so no "
                               "batch was recorded"))
        elif self.unresolved:
            out.append("  the merge would be refused: resolve the conflicts with "
                       + _hint(self.unresolved))
        else:
            out.append("  nothing written (dry run); run without --dry-run to merge")
        return out


MergeReport = MergePlan


def _hint(conflicts: list[Conflict]) -> str:
    kinds = {c.kind for c in conflicts}
    options = []
    if kinds - {"code"}:
        options.append("--prefer newest|study|FILE")
    if "code" in kinds:
        options.append("--add-codes")
    return " and ".join(options)


# -- files -------------------------------------------------------------------------------------
def _snapshot(source: Path, dest: Path) -> None:
    """Copy a study through SQLite's backup API from a read-only connection (its WAL
    included), never opening the source for writing; a study without a WAL in use is read as
    immutable, so not even a -wal or -shm file appears next to it."""
    wal = Path(str(source) + "-wal")
    busy = wal.exists() and wal.stat().st_size > 0
    src = sqlite3.connect(f"{source.resolve().as_uri()}?{'mode=ro' if busy else 'immutable=1'}",
                          uri=True)
    try:
        dst = sqlite3.connect(str(dest))
        try:
            src.backup(dst)
        finally:
            dst.close()
    except sqlite3.Error as e:
        raise StudyError(f"cannot read {source}: {e}") from None
    finally:
        src.close()


def _temp_next_to(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def _remove(path: Path) -> None:
    for p in (path, Path(str(path) + "-wal"), Path(str(path) + "-shm")):
        p.unlink(missing_ok=True)


def _finish(store: Store) -> None:
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


def _move_into_place(tmp: Path, target: Path) -> None:
    """``os.replace`` the finished file onto the target, once nothing else has the target open:
    a program still holding it (``coder serve``) would go on writing to the old file, and its
    WAL would be read as the new one's. Leaving WAL mode needs the only connection, so it is the
    test; the target is held locked until it is replaced."""
    if target.exists():
        gc.collect()    # a study this process dropped but has not collected still holds it
        conn = sqlite3.connect(str(target), timeout=2.0, isolation_level=None)
        try:
            try:
                mode = conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
            except sqlite3.OperationalError:
                mode = None
            if mode != "delete":
                raise StudyError(f"{target} is open in another program (coder serve, a review?)",
                                 hint="close it and merge again; nothing was written")
            conn.execute("BEGIN EXCLUSIVE")
            shutil.copymode(target, tmp)
            os.replace(tmp, target)
        finally:
            conn.close()
    else:
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_study_file(path: Path, what: str) -> None:
    if not path.exists():
        raise StudyError(f"no study at {path}", hint=f"check the {what}'s file name")
    if not is_sqlite_file(path):
        raise StudyError(f"{path} is not a coder study (not an SQLite file)")


# -- the merge ---------------------------------------------------------------------------------
def merge(target_path: str | Path, sources: list[str | Path] | tuple[str | Path, ...], *,
          dry_run: bool = False, prefer: str | Path | None = None,
          add_codes: bool = False) -> MergePlan:
    """Merge copies of a study into ``target_path``; returns the plan (written unless
    ``dry_run``). A target that does not exist starts as a copy of the first source, whose
    decisions are then the study's own (the batch holds what the other copies bring).

    Refused with :class:`MergeConflicts` (nothing written) while a conflict is unresolved."""
    target = Path(target_path)
    srcs = [Path(s) for s in sources]
    if not srcs:
        raise CoderError("nothing to merge: name at least one copy",
                         hint="coder merge STUDY COPY [COPY ...]")
    created = not target.exists()
    if created and len(srcs) < 2:
        raise CoderError(f"{target} does not exist and one copy alone makes no merge",
                         hint=f"copy it instead, or name two copies to merge into {target.name}")
    if not target.parent.exists():
        raise StudyError(f"folder {target.parent} does not exist")
    if not created:
        _check_study_file(target, "study")
    seen: list[Path] = [] if created else [target.resolve()]
    for s in srcs:
        _check_study_file(s, "copy")
        if s.resolve() in seen:
            raise CoderError(f"{s} is named twice (or is the study itself)",
                             hint="name each copy once, after the study")
        seen.append(s.resolve())
    prefer_file = None
    if prefer is not None and str(prefer) not in ("newest", "study"):
        p = Path(prefer)
        if not p.exists() or p.resolve() not in seen:
            raise CoderError(f"--prefer {prefer}: not one of the files merged",
                             hint="use newest, study, or one of the copies' file names")
        prefer_file = "study" if p.resolve() == target.resolve() else next(
            str(s) for s in srcs if s.resolve() == p.resolve())
    rule = prefer_file or (str(prefer) if prefer is not None else None)

    plan = MergePlan(target=str(target), sources=[str(s) for s in srcs], created=created,
                     dry_run=dry_run)
    tmp = _temp_next_to(target)
    try:
        _snapshot(srcs[0] if created else target, tmp)
        work = Store(tmp)
        try:
            with tempfile.TemporaryDirectory(prefix="coder-merge-") as scratch:
                copies = []
                try:
                    for i, s in enumerate(srcs[1:] if created else srcs):
                        snap = Path(scratch) / f"copy{i}.db"
                        _snapshot(s, snap)
                        copies.append((str(s), Store(snap)))
                    _Merger(work, str(target), plan, rule, add_codes).run(copies)
                finally:
                    for _, c in copies:
                        c.close()
        except BaseException:
            work.close()
            raise
        if plan.unresolved or dry_run:
            work.close()
        if plan.unresolved and not dry_run:
            shown = [c.line() for c in plan.unresolved[:SHOWN]]
            more = len(plan.unresolved) - len(shown)
            raise MergeConflicts(
                f"cannot merge into {target}: {len(plan.unresolved)} conflict(s) unresolved, "
                "nothing was written:\n  " + "\n  ".join(shown)
                + (f"\n  and {more} more (see them all with --dry-run)" if more else ""),
                plan.unresolved,
                hint="resolve them with " + _hint(plan.unresolved) + ", or in the copies")
        if dry_run:
            return plan
        _finish(work)
        _move_into_place(tmp, target)
        plan.written = True
    finally:
        _remove(tmp)
    return plan


class _Merger:
    """One merge: the working copy of the study and the copies, merged one after another."""

    def __init__(self, work: Store, target: str, plan: MergePlan, prefer: str | None,
                 add_codes: bool):
        self.work, self.db, self.target = work, work.db, target
        self.plan, self.prefer, self.add_codes = plan, prefer, add_codes
        self.origin: dict[int, str] = {}    # codings.id -> the copy it came from in this merge

    # -- resolving -----------------------------------------------------------------------
    def conflict(self, kind: str, where: str, ours: tuple[str, str, str | None],
                 theirs: tuple[str, str, str | None]) -> str | None:
        """Record a conflict between (file, what, when) sides; return the winning file."""
        winner, how = None, ""
        files = (ours[0], theirs[0])
        if kind == "code":
            if self.add_codes:
                winner, how = theirs[0], "--add-codes"
        elif self.prefer == "newest":
            newer = theirs if (theirs[2] or "") >= (ours[2] or "") else ours
            winner, how = newer[0], "--prefer newest"
        elif self.prefer == "study":
            if self.target in files:
                winner, how = self.target, "--prefer study"
        elif self.prefer is not None:
            if self.prefer in files:
                winner, how = self.prefer, f"--prefer {self.prefer}"
            elif self.target in files:
                winner, how = self.target, f"--prefer {self.prefer}: the study's"
        self.plan.conflicts.append(Conflict(kind, where, [ours[:2], theirs[:2]], winner, how))
        return winner

    # -- one copy after another ----------------------------------------------------------
    def run(self, copies: list[tuple[str, Store]]) -> None:
        """Codebooks, participants and documents first (every copy), then the decisions of
        every copy as one batch, then what refers to decisions (consensus provenance)."""
        maps: dict[str, dict] = {}
        if self.plan.created:       # it began as the first copy; it is nobody's copy now
            with self.db.transaction():
                self.db.execute("DELETE FROM study_info WHERE key LIKE 'split_%'")
        for name, src in copies:
            self.decided = self.plan.decisions.setdefault(name, Counter())
            with self.db.transaction():
                self.codebook(name, src)
                self.participants(name, src)
                self.documents(name, src)
            maps[name] = {"code_map": self.code_map, "doc_map": self.doc_map}
        coders = sorted({c for _, s in copies for c in s.coders()})
        with self.db.transaction(), batches.record(
                self.work, "merge", source=", ".join(n for n, _ in copies),
                coders=coders) as batch:
            for name, src in copies:
                self.__dict__.update(maps[name])
                self.decided = self.plan.decisions[name]
                self.map_segments(src)
                self.decisions(name, src)
                maps[name].update(seg_map=self.seg_map, coding_map=self.coding_map)
        self.plan.batch = batch.number
        with self.db.transaction():
            for name, src in copies:
                self.__dict__.update(maps[name])
                self.consensus(name, src)
                self.embeddings(src)

    # -- codebook ------------------------------------------------------------------------
    def codebook(self, name: str, src: Store) -> None:
        self.name = name
        self.code_map: dict[str, str] = {}
        if src.codebook_version is None:
            return
        theirs = src.codebook()
        if self.work.codebook_version is None:
            self.work.store_codebook(from_dict(theirs.to_dict(), Path(name)), source=name)
            self.plan.codes_added += [c.path for c in theirs]
            self.code_map = {c.id: c.id for c in theirs}
            return
        ours = self.work.codebook()
        by_path = {c.path.lower(): c.id for c in ours}
        if self.db.one("SELECT 1 FROM codebook_versions WHERE sha256=?", (theirs.sha256,)):
            # the copy's codebook is one the study had: the study's is the later word
            for code in theirs:
                self.code_map[code.id] = (code.id if code.id in {c.id for c in ours}
                                          else by_path.get(code.path.lower(), code.id))
            return
        when_ours = self.db.one("SELECT created_at FROM codebook_versions WHERE version=?",
                                (ours.version,))[0]
        when_theirs = src.db.one("SELECT created_at FROM codebook_versions WHERE version=?",
                                 (theirs.version,))[0]
        tree = ours.to_dict()
        nodes: dict[str, dict] = {}

        def index(items, parent):
            for n in items:
                nodes[n["id"]] = n
                n["_parent"] = parent
                index(n.get("codes", []), n["id"])

        index(tree["codes"], None)
        changed = False
        for code in theirs:      # pre-order: a parent is placed before its children
            mine = code.id if code.id in nodes else by_path.get(code.path.lower())
            parent = self.code_map.get(code.parent_id) if code.parent_id else None
            if mine is None:
                won = self.conflict("code", f"'{code.path}' <{code.id}>",
                                    (self.target, "no such code", None),
                                    (name, "it", None))
                if won is None:
                    continue
                node = {"id": code.id, "name": code.name, **_fields(code), "_parent": parent}
                siblings = nodes[parent].setdefault("codes", []) if parent in nodes \
                    else tree["codes"]
                siblings.append(node)
                nodes[node["id"]] = node
                self.code_map[code.id] = node["id"]
                self.plan.codes_added.append(code.path)
                changed = True
                continue
            self.code_map[code.id] = mine
            have = ours.get(mine)
            differs = [f for f in CODE_FIELDS if f not in ("path", "parent_id")
                       and getattr(have, f) != getattr(code, f)]
            if (parent or None) != (have.parent_id or None):
                differs.append("place")
            if not differs:
                continue
            won = self.conflict(
                "codebook", f"code <{mine}> ({', '.join(differs)})",
                (self.target, f"'{have.path}'" + _brief(have, differs), when_ours),
                (name, f"'{code.path}'" + _brief(code, differs), when_theirs))
            if won == name:
                node = nodes[mine]
                node["name"] = code.name
                for key in ("description", "include", "exclude", "items", "examples",
                            "speakers"):
                    node.pop(key, None)
                node.update(_fields(code))
                if "place" in differs and (parent is None or parent in nodes):
                    old = nodes[node["_parent"]]["codes"] if node["_parent"] else tree["codes"]
                    old.remove(node)
                    new = nodes[parent].setdefault("codes", []) if parent else tree["codes"]
                    new.append(node)
                    node["_parent"] = parent
                self.plan.codes_changed.append(code.path)
                changed = True
        if changed:
            _strip(tree["codes"])
            book = from_dict(tree, Path(name))
            stored = self.work.store_codebook(book, source=f"merge of {name}")
            self.plan.codebook_version = stored.version
        # codes of older versions of the copy (dropped since) keep their ids
        for r in src.db.query("SELECT DISTINCT id FROM codes"):
            self.code_map.setdefault(r["id"], r["id"])

    # -- participants --------------------------------------------------------------------
    def participant_id(self, name: str) -> int:
        row = self.db.one("SELECT id FROM participants WHERE name=?", (name,))
        if row is not None:
            return row["id"]
        self.plan.participants.append(name)
        return self.db.execute("INSERT INTO participants (name, created_at) VALUES (?,?)",
                               (name, now())).lastrowid

    def participants(self, name: str, src: Store) -> None:
        for p in src.db.query("SELECT id, name FROM participants ORDER BY id"):
            pid = self.participant_id(p["name"])
            for a in src.db.query("SELECT attribute, value FROM participant_attributes "
                                  "WHERE participant_id=?", (p["id"],)):
                have = self.db.one("SELECT value FROM participant_attributes WHERE "
                                   "participant_id=? AND attribute=?", (pid, a["attribute"]))
                if have is not None and have["value"] == a["value"]:
                    continue
                if have is not None and self.conflict(
                        "attribute", f"participant {p['name']}, {a['attribute']}",
                        (self.target, repr(have["value"]), None),
                        (name, repr(a["value"]), None)) != name:
                    continue
                self.db.execute("INSERT INTO participant_attributes (participant_id, "
                                "attribute, value) VALUES (?,?,?) ON CONFLICT(participant_id, "
                                "attribute) DO UPDATE SET value=excluded.value",
                                (pid, a["attribute"], a["value"]))
                self.plan.attributes += 1
        for link in src.db.query("SELECT l.*, p.name FROM participant_links l JOIN "
                                 "participants p ON p.id = l.participant_id"):
            if self.db.one("SELECT 1 FROM documents WHERE name=?", (link["document"],)):
                continue
            self.db.execute("INSERT OR IGNORE INTO participant_links (participant_id, document,"
                            " speaker, source, line) VALUES (?,?,?,?,?)",
                            (self.participant_id(link["name"]), link["document"],
                             link["speaker"], link["source"], link["line"]))

    # -- documents -----------------------------------------------------------------------
    def documents(self, name: str, src: Store) -> None:
        """Match each of the copy's documents to one of the study's; map its segments."""
        self.doc_map: dict[int, tuple[int, Any]] = {}   # copy doc -> (study doc, offset map)
        ours = {r["id"]: r for r in self.db.query("SELECT id, name, sha256, text, imported_at "
                                                  "FROM documents")}
        by_text = {}
        for r in ours.values():
            by_text.setdefault(text_hash(r["text"]), []).append(r)
        for d in src.db.query("SELECT * FROM documents ORDER BY id"):
            same = by_text.get(text_hash(d["text"]), [])
            hit = next((r for r in same if r["name"] == d["name"]), same[0] if same else None)
            if hit is not None:
                self.doc_map[d["id"]] = (hit["id"], None)
                if d["name"] not in self.plan.documents.get("matched", []):
                    self.plan.documents.setdefault("matched", []).append(d["name"])
                if hit["name"] != d["name"]:
                    self.plan.notes.append(f"{name}: document '{d['name']}' is '{hit['name']}' "
                                           "in the study (same text)")
                continue
            named = next((r for r in ours.values() if r["name"] == d["name"]), None)
            if named is None:
                self.doc_map[d["id"]] = (self.add_document(src, d), None)
                self.plan.documents.setdefault("added", []).append(d["name"])
                continue
            won = self.conflict(
                "transcript", f"document '{d['name']}'",
                (self.target, f"text sha256 {text_hash(named['text'])[:12]} ({len(named['text'])}"
                 f" characters, imported {named['imported_at']})", named["imported_at"]),
                (name, f"text sha256 {text_hash(d['text'])[:12]} ({len(d['text'])} characters, "
                 f"imported {d['imported_at']})", d["imported_at"]))
            if won == name:
                self.replace_document(name, src, d, named)
                self.doc_map[d["id"]] = (named["id"], None)
                self.plan.documents.setdefault("replaced", []).append(d["name"])
            else:
                self.doc_map[d["id"]] = (named["id"], None)
                self.plan.documents.setdefault("kept", []).append(d["name"])

    def map_segments(self, src: Store) -> None:
        """The copy's segments as the study's, once every copy's transcripts are in: by
        document and offsets (through the edits, where the study kept another version)."""
        self.seg_map: dict[int, int] = {}               # copy segment -> study segment
        for d in src.db.query("SELECT id, text FROM documents"):
            doc = self.doc_map[d["id"]][0]
            mine = self.db.one("SELECT text FROM documents WHERE id=?", (doc,))[0]
            self.doc_map[d["id"]] = (doc, None if mine == d["text"]
                                     else _offset_map(d["text"], mine))
        for s in src.db.query("SELECT id, document_id, start_char, end_char, text FROM segments"):
            doc, shift = self.doc_map[s["document_id"]]
            a, b = (shift(s["start_char"]), shift(s["end_char"])) if shift else (
                s["start_char"], s["end_char"])
            row = self.db.one("SELECT id FROM segments WHERE document_id=? AND start_char=? AND "
                              "end_char=? AND text=?", (doc, a, b, s["text"]))
            if row is not None:
                self.seg_map[s["id"]] = row["id"]

    def speakers(self, src: Store, d, doc_id: int) -> dict[int, int]:
        """The copy's speakers of a document as the study's (by label), added where missing."""
        out = {}
        for sp in src.db.query("SELECT s.*, p.name AS participant FROM speakers s LEFT JOIN "
                               "participants p ON p.id = s.participant_id WHERE document_id=?",
                               (d["id"],)):
            have = self.db.one("SELECT s.id, s.role, p.name FROM speakers s LEFT JOIN "
                               "participants p ON p.id = s.participant_id WHERE document_id=? "
                               "AND label=?", (doc_id, sp["label"]))
            if have is not None:
                out[sp["id"]] = have["id"]
                if (have["role"], have["name"]) != (sp["role"], sp["participant"]) and (
                        have["name"] is None or self.conflict(
                            "speaker", f"document '{d['name']}', speaker {sp['label']}",
                            (self.target, f"{have['role']} {have['name']}", None),
                            (self.name, f"{sp['role']} {sp['participant']}", None))
                        == self.name):
                    pid = self.participant_id(sp["participant"]) if sp["participant"] else None
                    self.db.execute("UPDATE speakers SET role=?, participant_id=? WHERE id=?",
                                    (sp["role"], pid, have["id"]))
                continue
            pid = self.participant_id(sp["participant"]) if sp["participant"] else None
            out[sp["id"]] = self.db.execute(
                "INSERT INTO speakers (document_id, label, role, participant_id) "
                "VALUES (?,?,?,?)", (doc_id, sp["label"], sp["role"], pid)).lastrowid
        return out

    def insert_segments(self, src: Store, d, doc_id: int, speakers: dict[int, int],
                        offset: int = 0) -> list[int]:
        ids = []
        for s in src.db.query("SELECT * FROM segments WHERE document_id=? ORDER BY position",
                              (d["id"],)):
            ids.append(self.db.execute(
                "INSERT INTO segments (document_id, position, speaker_id, turn, start_char, "
                "end_char, text, text_hash, start_time, end_time) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (doc_id, s["position"] + offset, speakers.get(s["speaker_id"]), s["turn"],
                 s["start_char"], s["end_char"], s["text"], s["text_hash"], s["start_time"],
                 s["end_time"])).lastrowid)
        return ids

    def add_document(self, src: Store, d) -> int:
        doc_id = self.db.execute(
            "INSERT INTO documents (name, source_path, format, encoding, sha256, text, unit, "
            "metadata, imported_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (d["name"], d["source_path"], d["format"], d["encoding"], d["sha256"], d["text"],
             d["unit"], d["metadata"], d["imported_at"])).lastrowid
        self.insert_segments(src, d, doc_id, self.speakers(src, d, doc_id))
        self.db.execute("DELETE FROM participant_links WHERE document=?", (d["name"],))
        return doc_id

    def replace_document(self, name: str, src: Store, d, old) -> None:
        """The copy's edited transcript replaces the study's: segments with the same text keep
        their decisions (as a re-import with --replace does), spans whose characters are
        unchanged move with them; the rest of the study's decisions on it are dropped."""
        doc_id = old["id"]
        self.db.execute("UPDATE documents SET source_path=?, format=?, encoding=?, sha256=?, "
                        "text=?, unit=?, metadata=?, imported_at=? WHERE id=?",
                        (d["source_path"], d["format"], d["encoding"], d["sha256"], d["text"],
                         d["unit"], d["metadata"], d["imported_at"], doc_id))
        olds = self.db.query("SELECT id, text_hash FROM segments WHERE document_id=? "
                             "ORDER BY position", (doc_id,))
        new_ids = self.insert_segments(src, d, doc_id, self.speakers(src, d, doc_id),
                                       offset=10_000_000)
        by_hash: dict[str, list[int]] = {}
        for sid in new_ids:
            h = self.db.one("SELECT text_hash FROM segments WHERE id=?", (sid,))[0]
            by_hash.setdefault(h, []).append(sid)
        shift = _offset_map(old["text"], d["text"])
        for s in olds:
            targets = by_hash.get(s["text_hash"])
            if targets:
                to = targets.pop(0)
                for table in ("codings", "memos", "decision_contexts"):
                    self.db.execute(f"UPDATE {table} SET segment_id=? WHERE segment_id=?"
                                    + (" AND start_char IS NULL" if table == "codings" else ""),
                                    (to, s["id"]))
        for k in self.db.query("SELECT k.id, k.start_char, k.end_char FROM codings k JOIN "
                               "segments s ON s.id = k.segment_id WHERE s.document_id=? AND "
                               "k.start_char IS NOT NULL", (doc_id,)):
            a, b = shift(k["start_char"]), shift(k["end_char"])
            anchor = self.anchor(doc_id, a, b, minimum=10_000_000)
            if (anchor is not None
                    and old["text"][k["start_char"]:k["end_char"]] == d["text"][a:b]):
                self.db.execute("UPDATE codings SET segment_id=?, start_char=?, end_char=? "
                                "WHERE id=?", (anchor, a, b, k["id"]))
        lost = self.db.one("SELECT COUNT(*) FROM codings k JOIN segments s ON s.id = "
                           "k.segment_id WHERE s.document_id=? AND s.position < ?",
                           (doc_id, 10_000_000))[0]
        if lost:
            self.plan.dropped.append(f"{lost} of the study's decision(s) on '{d['name']}' "
                                     f"(passages {name}'s version changed)")
        self.db.execute("DELETE FROM segments WHERE document_id=? AND position < ?",
                        (doc_id, 10_000_000))
        self.db.execute("UPDATE segments SET position = position - ? WHERE document_id=?",
                        (10_000_000, doc_id))
        self.db.execute("DELETE FROM speakers WHERE document_id=? AND id NOT IN "
                        "(SELECT speaker_id FROM segments WHERE speaker_id IS NOT NULL)",
                        (doc_id,))

    def anchor(self, doc_id: int, start: int, end: int, minimum: int = 0) -> int | None:
        row = self.db.one("SELECT id FROM segments WHERE document_id=? AND start_char < ? AND "
                          "end_char > ? AND position >= ? ORDER BY start_char LIMIT 1",
                          (doc_id, end, start, minimum))
        return row["id"] if row else None

    # -- decisions -----------------------------------------------------------------------
    def coder_id(self, name: str, kind: str) -> int:
        row = self.db.one("SELECT id FROM coders WHERE name=? COLLATE NOCASE", (name,))
        if row is not None:
            return row["id"]
        self.plan.coders.append(name)
        return self.db.execute("INSERT INTO coders (name, kind, created_at) VALUES (?,?,?)",
                               (check_coder_name(name), kind, now())).lastrowid

    def place(self, src: Store, k) -> tuple[int, int | None, int | None] | None:
        """Where one of the copy's codings goes in the study: (segment, start, end)."""
        s = src.db.one("SELECT document_id, start_char, end_char FROM segments WHERE id=?",
                       (k["segment_id"],))
        if k["start_char"] is None and k["segment_id"] in self.seg_map:
            return self.seg_map[k["segment_id"]], None, None
        doc, shift = self.doc_map[s["document_id"]]
        a0 = k["start_char"] if k["start_char"] is not None else s["start_char"]
        b0 = k["end_char"] if k["end_char"] is not None else s["end_char"]
        a, b = (shift(a0), shift(b0)) if shift else (a0, b0)
        text = src.db.one("SELECT text FROM documents WHERE id=?", (s["document_id"],))[0]
        mine = self.db.one("SELECT text FROM documents WHERE id=?", (doc,))[0]
        if b <= a or text[a0:b0] != mine[a:b]:
            return None
        whole = self.db.one("SELECT id FROM segments WHERE document_id=? AND start_char=? AND "
                            "end_char=?", (doc, a, b))
        if whole is not None:
            return whole["id"], None, None
        if k["decision"] not in POSITIVE:      # rejections and "no code" stay on segments
            return None
        anchor = self.anchor(doc, a, b)
        return (anchor, a, b) if anchor is not None else None

    def decisions(self, name: str, src: Store) -> None:
        mark = src.db.one("SELECT value FROM study_info WHERE key='split_mark'")
        mark = int(mark[0]) if mark else None
        origin = "SELECT value FROM study_info WHERE key='study_id'"
        if mark is not None and src.db.one(origin) != self.db.one(origin):
            self.plan.notes.append(f"{name} was split from another study: every difference "
                                   "is a conflict")
            mark = None
        names = {r["id"]: (r["name"], r["kind"]) for r in src.db.query("SELECT * FROM coders")}
        self.coding_map: dict[int, int] = {}
        keys: dict[tuple, dict] = {}          # study key -> the copy's state and history
        # both audit trails read once, by decision (coding_history has no index to ask)
        self.their_history: dict[tuple, list] = {}
        for h in src.db.query("SELECT * FROM coding_history ORDER BY id"):
            self.their_history.setdefault(_hkey(h), []).append(h)
        self.our_history: dict[tuple, set] = {}
        for h in self.db.query("SELECT * FROM coding_history"):
            self.our_history.setdefault(_hkey(h), set()).add(_fingerprint(h))
        for k in src.db.query("SELECT * FROM codings ORDER BY id"):
            placed = self.place(src, k)
            if placed is None:
                self.plan.dropped.append(f"{name}: {names[k['coder_id']][0]}'s "
                                         f"{k['decision']} {k['code_id'] or '(no code)'} on "
                                         f"{_where(src, k['segment_id'])} (passage not in the "
                                         "study)")
                self.decided["dropped"] += 1
                continue
            cid = self.coder_id(*names[k["coder_id"]])
            code = self.code_map.get(k["code_id"], k["code_id"]) if k["code_id"] else None
            key = (placed[0], cid, code, placed[1], placed[2])
            keys[key] = {"row": dict(k), "src": (k["segment_id"], k["coder_id"], k["code_id"],
                                                  k["start_char"], k["end_char"])}
        if mark is not None:
            # decisions the copy had when it was made and removed since: removed here too
            segments = {r[0] for r in src.db.query("SELECT id FROM segments")}
            for h in (rows[-1] for rows in self.their_history.values()):
                if (h["action"] != "delete" or h["coder_id"] not in names
                        or h["segment_id"] not in segments):
                    continue
                placed = self.place(src, h)
                if placed is None:
                    continue
                cid = self.coder_id(*names[h["coder_id"]])
                code = self.code_map.get(h["code_id"], h["code_id"]) if h["code_id"] else None
                key = (placed[0], cid, code, placed[1], placed[2])
                keys.setdefault(key, {"row": None, "src": (h["segment_id"], h["coder_id"],
                                                           h["code_id"], h["start_char"],
                                                           h["end_char"])})
        touched = set()
        for key, theirs in keys.items():
            if self.one_decision(name, src, key, theirs, mark):
                touched.add((key[0], key[1]))
        for seg, cid in sorted(touched):
            self.exclusive(name, seg, cid)
        self.memos(name, src)

    def current(self, key: tuple) -> dict | None:
        seg, cid, code, a, b = key
        row = self.db.one("SELECT * FROM codings WHERE segment_id=? AND coder_id=? AND "
                          "code_id IS ? AND start_char IS ? AND end_char IS ?",
                          (seg, cid, code, a, b))
        return dict(row) if row is not None else None

    def one_decision(self, name: str, src: Store, key: tuple, theirs: dict,
                     mark: int | None) -> bool:
        """Merge one decision (study key) three-way; True when the study's changed."""
        new, ours = theirs["row"], self.current(key)
        if _meaning(ours) == _meaning(new):
            if new is not None and ours is not None:
                self.coding_map[new["id"]] = ours["id"]
                self.decided["same"] += 1
            return False
        if mark is not None:
            # what the copy held when it was made, and every state it went through since
            rows = self.their_history.get(theirs["src"], [])
            h = next((r for r in reversed(rows) if r["id"] <= mark), None)
            base = _state(h)
            since = [_state(r) for r in rows if r["id"] > mark]
            # the study holds a state the copy had, the copy went on from it: take the copy's
            clear = _meaning(ours) in [base, *since]
            if not clear and _meaning(new) == base:
                return False                    # changed in the study only: keep it
        else:                                   # no common ancestor known
            clear = ours is None
        if not clear:
            won = self.conflict(
                "decision", self.describe(key),
                (self.origin.get(ours["id"], self.target) if ours else self.target,
                 _said(ours), ours["created_at"] if ours else None),
                (name, _said(new), new["created_at"] if new else None))
            if won != name:
                self.decided["kept (conflict)"] += 1
                return False
        self.apply(name, src, key, ours, new, theirs["src"])
        return True

    def apply(self, name: str, src: Store, key: tuple, ours: dict | None, new: dict | None,
              src_key: tuple) -> None:
        seg, cid, code, a, b = key
        if ours is not None:
            coding_id = ours["id"]
        else:
            coding_id = self.db.one("SELECT COALESCE(MAX(id), 0) + 1 FROM codings")[0]
        self.carry_history(src, src_key, key, coding_id)
        if new is None:
            self.db.execute("DELETE FROM codings WHERE id=?", (coding_id,))
            self.decided["removed"] += 1
            return
        values = {c: new[c] for c in new if c not in ("id",)}
        values.update(segment_id=seg, coder_id=cid, code_id=code, start_char=a, end_char=b,
                      codebook_version=self.codebook_version(src, new["codebook_version"]),
                      model_version=self.model_version(src, new["model_version"]),
                      context_id=self.context(src, new["context_id"], cid, seg))
        if ours is None:
            values["id"] = coding_id
            cols = list(values)
            self.db.execute(f"INSERT INTO codings ({', '.join(cols)}) VALUES "
                            f"({', '.join('?' * len(cols))})", tuple(values.values()))
            self.decided["new"] += 1
        else:
            cols = list(values)
            self.db.execute(f"UPDATE codings SET {', '.join(c + '=?' for c in cols)} WHERE id=?",
                            (*values.values(), coding_id))
            self.decided["replaced"] += 1
        self.origin[coding_id] = name
        self.coding_map[new["id"]] = coding_id

    def carry_history(self, src: Store, src_key: tuple, key: tuple, coding_id: int) -> None:
        """The copy's audit trail of one decision, rows the study lacks, before the change."""
        have = self.our_history.setdefault(key, set())
        for h in self.their_history.get(src_key, []):
            if _fingerprint(h) in have:
                continue
            have.add(_fingerprint(h))
            self.db.execute(
                "INSERT INTO coding_history (coding_id, action, segment_id, coder_id, code_id, "
                "decision, memo, reason, source, recorded_at, start_char, end_char) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (coding_id, h["action"], key[0], key[1], key[2], h["decision"], h["memo"],
                 h["reason"], h["source"], h["recorded_at"], key[3], key[4]))
            self.plan.history += 1

    def exclusive(self, name: str, seg: int, cid: int) -> None:
        """"No code" and codes on one segment exclude each other for one coder: when merged
        decisions put both there, that is a conflict too."""
        rows = [dict(r) for r in self.db.query("SELECT * FROM codings WHERE segment_id=? AND "
                                               "coder_id=? AND start_char IS NULL", (seg, cid))]
        none = [r for r in rows if r["code_id"] is None]
        codes = [r for r in rows if r["code_id"] is not None and r["decision"] in POSITIVE]
        if not none or not codes:
            return
        mine = [r for r in none + codes if self.origin.get(r["id"]) == name]
        other = [r for r in none + codes if self.origin.get(r["id"]) != name]
        if not mine or not other:
            return
        won = self.conflict(
            "decision", self.describe((seg, cid, None, None, None)).replace(
                ", (no code)", ", no code and codes together"),
            (self.origin.get(other[0]["id"], self.target), "; ".join(_said(r) for r in other),
             max(r["created_at"] for r in other)),
            (name, "; ".join(_said(r) for r in mine), max(r["created_at"] for r in mine)))
        if won is None:
            return
        keep_none = any(r["code_id"] is None for r in (mine if won == name else other))
        for r in (codes if keep_none else none):
            self.db.execute("DELETE FROM codings WHERE id=?", (r["id"],))

    def describe(self, key: tuple) -> str:
        seg, cid, code, a, b = key
        coder = self.db.one("SELECT name FROM coders WHERE id=?", (cid,))[0]
        path = "(no code)"
        if code is not None:
            row = self.db.one("SELECT path FROM codes WHERE id=? ORDER BY codebook_version DESC "
                              "LIMIT 1", (code,))
            path = row[0] if row else code
        span = f" characters {a}..{b}" if a is not None else ""
        return f"{_where(self.work, seg)}{span}, {coder}, {path}"

    # -- what comes with a decision ------------------------------------------------------
    def codebook_version(self, src: Store, version: int | None) -> int | None:
        if version is None:
            return None
        sha = src.db.one("SELECT sha256 FROM codebook_versions WHERE version=?", (version,))
        if sha is not None:
            row = self.db.one("SELECT MAX(version) FROM codebook_versions WHERE sha256=?",
                              (sha[0],))
            if row[0] is not None:
                return row[0]
        return self.work.codebook_version

    def model_version(self, src: Store, version: int | None) -> int | None:
        """The study's model that is the copy's (same kind, embedder and time), else none."""
        if version is None:
            return None
        m = src.db.one("SELECT kind, embedder, created_at FROM models WHERE version=?",
                       (version,))
        if m is None:
            return None
        row = self.db.one("SELECT version FROM models WHERE kind=? AND embedder=? AND "
                          "created_at=?", (m["kind"], m["embedder"], m["created_at"]))
        return row[0] if row else None

    def context(self, src: Store, context_id: int | None, cid: int, seg: int) -> int | None:
        if context_id is None:
            return None
        x = src.db.one("SELECT * FROM decision_contexts WHERE id=?", (context_id,))
        if x is None:
            return None
        self.plan.contexts += 1
        return self.db.execute(
            "INSERT INTO decision_contexts (coder_id, segment_id, face, blind, others_shown, "
            "others, model_version, model_coders, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (cid, seg, x["face"], x["blind"], x["others_shown"], x["others"],
             self.model_version(src, x["model_version"]), x["model_coders"],
             x["created_at"])).lastrowid

    def memos(self, name: str, src: Store) -> None:
        for m in src.db.query("SELECT m.*, c.name AS coder, c.kind FROM memos m LEFT JOIN "
                              "coders c ON c.id = m.coder_id ORDER BY m.id"):
            seg = self.seg_map.get(m["segment_id"]) if m["segment_id"] is not None else None
            if m["segment_id"] is not None and seg is None:
                self.plan.dropped.append(f"{name}: a memo on {_where(src, m['segment_id'])}")
                continue
            doc = self.doc_map[m["document_id"]][0] if m["document_id"] is not None else None
            cid = self.coder_id(m["coder"], m["kind"]) if m["coder"] else None
            if self.db.one("SELECT 1 FROM memos WHERE segment_id IS ? AND document_id IS ? AND "
                           "coder_id IS ? AND text=?", (seg, doc, cid, m["text"])):
                continue
            self.db.execute("INSERT INTO memos (segment_id, document_id, coder_id, text, "
                            "created_at) VALUES (?,?,?,?,?)",
                            (seg, doc, cid, m["text"], m["created_at"]))
            self.plan.memos += 1

    def consensus(self, name: str, src: Store) -> None:
        """A consensus coder new to the study comes with its build and members; each of its
        decisions brought in with the decisions it carries over or settles."""
        for b in src.db.query("SELECT b.*, c.name FROM consensus_builds b JOIN coders c ON "
                              "c.id = b.coder_id"):
            cid = self.coder_id(b["name"], "consensus")
            if self.db.one("SELECT 1 FROM consensus_builds WHERE coder_id=?", (cid,)):
                continue
            members = src.db.query("SELECT m.coder_id, m.position, c.name FROM "
                                   "consensus_members m JOIN coders c ON c.id = m.coder_id "
                                   "WHERE consensus_id=?", (b["coder_id"],))
            later = src.db.one("SELECT COUNT(*) FROM coding_history WHERE id > ? AND coder_id "
                               "IN (SELECT coder_id FROM consensus_members WHERE "
                               "consensus_id=?)", (b["history_mark"], b["coder_id"]))[0]
            mark = 0 if later else self.db.one("SELECT COALESCE(MAX(id), 0) FROM "
                                               "coding_history")[0]
            self.db.execute("INSERT INTO consensus_builds (coder_id, single, history_mark, "
                            "built_at) VALUES (?,?,?,?)", (cid, b["single"], mark, b["built_at"]))
            for m in members:
                self.db.execute("INSERT INTO consensus_members (consensus_id, coder_id, "
                                "position) VALUES (?,?,?)",
                                (cid, self.coder_id(m["name"], "human"), m["position"]))
        for s in src.db.query("SELECT * FROM consensus_sources"):
            a, b = self.coding_map.get(s["coding_id"]), self.coding_map.get(s["source_coding_id"])
            if a is not None and b is not None and self.origin.get(a) == name:
                self.db.execute("INSERT OR IGNORE INTO consensus_sources (coding_id, "
                                "source_coding_id) VALUES (?,?)", (a, b))

    def embeddings(self, src: Store) -> None:
        """The copy's cached vectors (keyed by text): a merged study need not encode again."""
        rows = src.db.query("SELECT model, text_hash, dim, vector, dtype FROM embeddings")
        self.db.conn.executemany("INSERT OR IGNORE INTO embeddings (model, text_hash, dim, "
                                 "vector, dtype) VALUES (?,?,?,?,?)",
                                 [tuple(r) for r in rows])


def _state(h) -> tuple | None:
    """The meaning of a decision after a history row (None: it was removed, or never made)."""
    return None if h is None or h["action"] == "delete" else _meaning(dict(h))


def _hkey(h) -> tuple:
    """A history row's decision: (segment, coder, code, start, end) as codings keys it."""
    return (h["segment_id"], h["coder_id"], h["code_id"], h["start_char"], h["end_char"])


def _fingerprint(h) -> tuple:
    """One history row, as the same in any copy of the study."""
    return (h["action"], h["decision"], h["memo"], h["reason"], h["recorded_at"])


def _meaning(row: dict | None) -> tuple | None:
    return None if row is None else tuple(row.get(k) for k in MEANING)


def _said(row: dict | None) -> str:
    if row is None:
        return "no decision (removed)"
    text = row["decision"] + (f" with memo {row['memo']!r}" if row.get("memo") else "")
    return text + (f" ({row['created_at']})" if row.get("created_at") else "")


def _where(store: Store, segment_id: int) -> str:
    at = store.db.one("SELECT document, position FROM segment_view WHERE segment_id=?",
                      (segment_id,))
    return f"{at['document']} #{at['position']}" if at else f"segment {segment_id}"


def _fields(code) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("description", "include", "exclude"):
        if getattr(code, key):
            out[key] = getattr(code, key)
    for key in ("items", "examples", "speakers", "leads_to"):
        if getattr(code, key):
            out[key] = list(getattr(code, key))
    return out


def _brief(code, fields: list[str]) -> str:
    shown = [f"{f} {getattr(code, f)!r}" for f in fields if f not in ("name", "place")][:2]
    return f" ({'; '.join(shown)})" if shown else ""


def _strip(nodes: list[dict]) -> None:
    for n in nodes:
        n.pop("_parent", None)
        _strip(n.get("codes", []))


# -- split -------------------------------------------------------------------------------------
@dataclass
class SplitReport:
    out: str
    coder: str
    blind: bool
    removed: dict[str, int] = field(default_factory=dict)  # what --blind took out, by table

    def summary(self) -> str:
        text = f"Wrote {self.out}: a copy of the study for {self.coder}"
        if self.blind:
            gone = ", ".join(f"{n} {t}" for t, n in self.removed.items() if n)
            text += (" to code blind; other coders' work removed (" + (gone or "there was none")
                     + ")")
        return text + f". Merge it back with: coder merge STUDY {self.out}"


def split(study_path: str | Path, coder: str, out_path: str | Path, *,
          blind: bool = False) -> SplitReport:
    """A copy of the study for one coder (the backup API into a temporary file, then moved).

    ``blind``: every other coder's decisions, history, decision contexts, memos, undo records
    and consensus coders are removed, with the models trained on them and their suggestions,
    and the file is vacuumed so none of it can be read back from free pages. The copy records
    how far its history went (``split_mark``), so a later merge knows what changed where."""
    study_path, out = Path(study_path), Path(out_path)
    _check_study_file(study_path, "study")
    if out.exists():
        raise StudyError(f"{out} already exists", hint="choose a new file name for the copy")
    if not out.parent.exists():
        raise StudyError(f"folder {out.parent} does not exist")
    name = check_coder_name(coder)
    tmp = _temp_next_to(out)
    report = SplitReport(out=str(out), coder=name, blind=blind)
    try:
        _snapshot(study_path, tmp)
        copy = Store(tmp)
        try:
            ref = copy.resolve_coder(name, create=True)
            report.coder = ref.name
            with copy.db.transaction() as conn:
                if blind:
                    report.removed = _blind(copy, ref.id)
                mark = conn.execute("SELECT COALESCE(MAX(id), 0) FROM coding_history").fetchone()
                for key, value in (("split_mark", str(mark[0])), ("split_for", ref.name),
                                   ("split_at", now()), ("split_blind", str(int(blind)))):
                    conn.execute("INSERT OR REPLACE INTO study_info VALUES (?, ?)", (key, value))
            if blind:
                copy.db.execute("VACUUM")
            _finish(copy)
        except BaseException:
            copy.close()
            raise
        if out.exists():
            raise StudyError(f"{out} already exists", hint="choose a new file name for the copy")
        os.chmod(tmp, 0o666 & ~_umask())     # as any new file, not mkstemp's owner-only
        os.replace(tmp, out)
    finally:
        _remove(tmp)
    return report


def _blind(copy: Store, keep: int) -> dict[str, int]:
    """Remove what would let the coder see how the others coded; inside the caller's
    transaction."""
    db = copy.db
    others = [r[0] for r in db.query("SELECT id FROM coders WHERE id != ?", (keep,))]
    names = {r[0] for r in db.query("SELECT name FROM coders WHERE id != ?", (keep,))}
    removed: Counter = Counter()
    # models that learned from another coder, and what they suggested
    for m in db.query("SELECT version, kind, trained_on FROM models"):
        learned = set(json.loads(m["trained_on"] or "{}").get("coders", []))
        if m["kind"] == "trained" and learned & names:
            removed["suggestions"] += db.execute("DELETE FROM suggestions WHERE model_version=?",
                                                 (m["version"],)).rowcount
            db.execute("UPDATE codings SET model_version=NULL WHERE model_version=?",
                       (m["version"],))
            db.execute("UPDATE decision_contexts SET model_version=NULL WHERE model_version=?",
                       (m["version"],))
            removed["models"] += db.execute("DELETE FROM models WHERE version=?",
                                            (m["version"],)).rowcount
    if not others:
        return dict(removed)
    marks = ",".join("?" * len(others))
    removed["consensus builds"] += db.execute(
        f"DELETE FROM consensus_builds WHERE coder_id IN ({marks})", others).rowcount
    db.execute(f"DELETE FROM consensus_members WHERE coder_id IN ({marks})", others)
    removed["decisions"] += db.execute(f"DELETE FROM codings WHERE coder_id IN ({marks})",
                                       others).rowcount
    db.execute("DELETE FROM consensus_sources")
    db.execute(f"DELETE FROM coding_history WHERE coder_id IN ({marks})", others)
    removed["decision contexts"] += db.execute(
        f"DELETE FROM decision_contexts WHERE coder_id IN ({marks})", others).rowcount
    removed["memos"] += db.execute(f"DELETE FROM memos WHERE coder_id IN ({marks})",
                                   others).rowcount
    db.execute(f"DELETE FROM review_actions WHERE coder_id IN ({marks})", others)
    db.execute(f"DELETE FROM batch_changes WHERE coder_id IN ({marks})", others)
    db.execute("DELETE FROM batches WHERE id NOT IN (SELECT batch_id FROM batch_changes)")
    db.execute(f"DELETE FROM coders WHERE id IN ({marks})", others)
    return dict(removed)

