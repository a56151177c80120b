"""The queries every stage shares: the study's codebook, documents, segments, participants and
coders. Each stage takes a `Store`; the `coder.Store` facade is a `Store` with the stages'
methods added, so nothing below the faces ever imports the facade.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import coder.store.codebook as codebook_mod
from coder import __version__
from coder.errors import CodebookError, CoderError, NothingToDo, StudyError, UnknownReference
from coder.store.db import Database, now

POSITIVE = ("confirmed", "added")  # decisions that put a code on a segment


@dataclass
class StudyStatus:
    path: str
    documents: int
    participants: int
    segments: int
    codable_segments: int
    codebook_version: int | None
    codebook_name: str | None
    codes: int
    coders: dict[str, int]          # coder -> segments decided
    suggestions: int
    model_version: int | None
    # participants (from a participants file) who speak in no document yet: in no N
    participants_waiting: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Store:
    """One study file and its shared queries. ``Store.create(path)`` makes one; ``Store(path)``
    opens it."""

    def __init__(self, path: str | Path, *, _create: bool = False):
        self.path = Path(path)
        self.db = Database(self.path, create=_create)
        self._codebooks: dict[int, codebook_mod.Codebook] = {}

    @classmethod
    def create(cls, path: str | Path, *, book: codebook_mod.Codebook | None = None,
               source: str | None = None):
        """A new study file, with a codebook already read and checked (or none yet)."""
        path = Path(path)
        if path.exists() and path.stat().st_size > 0:
            raise StudyError(f"{path} already exists", hint="open it, or choose another file name")
        if not path.parent.exists():
            raise StudyError(f"folder {path.parent} does not exist")
        store = cls(path, _create=True)
        with store.db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO study_info VALUES ('created_with', ?)",
                         (f"coder {__version__}",))
            conn.execute("INSERT OR REPLACE INTO study_info VALUES ('created_at', ?)", (now(),))
            conn.execute("INSERT OR REPLACE INTO study_info VALUES ('study_id', ?)",
                         (str(uuid.uuid4()),))
            if book is not None:
                store.store_codebook(book, source=source or "")
        return store

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- codebook ---------------------------------------------------------------------------
    @property
    def codebook_version(self) -> int | None:
        row = self.db.one("SELECT MAX(version) AS v FROM codebook_versions")
        return row["v"] if row and row["v"] is not None else None

    def codebook(self, version: int | None = None) -> codebook_mod.Codebook:
        """The current (or a given) codebook version."""
        version = version or self.codebook_version
        if version is None:
            raise NothingToDo("the study has no codebook",
                              hint=f"add one: coder codebook import {self.path} CODEBOOK.yaml")
        if version not in self._codebooks:
            info = self.db.one("SELECT * FROM codebook_versions WHERE version=?", (version,))
            if info is None:
                raise UnknownReference(
                    f"no codebook version {version}",
                    hint=f"versions 1 to {self.codebook_version}; see them with: "
                         f"coder codebook history {self.path}")
            codes = [
                codebook_mod.Code(
                    id=r["id"], name=r["name"], path=r["path"], parent_id=r["parent_id"],
                    depth=r["depth"], position=r["position"], description=r["description"],
                    include=r["include"], exclude=r["exclude"], items=json.loads(r["items"]),
                    examples=json.loads(r["examples"]), speakers=json.loads(r["speakers"]),
                    color=r["color"], codable=bool(r["codable"]))
                for r in self.db.query(
                    "SELECT * FROM codes WHERE codebook_version=? ORDER BY position", (version,))
            ]
            # leads_to (factor order) lives only in the version's canonical content
            leads = {c.get("id"): c.get("leads_to") or []
                     for c in json.loads(info["content"] or "[]") if isinstance(c, dict)}
            for c in codes:
                c.leads_to = list(leads.get(c.id, []))
            self._codebooks[version] = codebook_mod.Codebook(
                name=info["name"], description=info["description"] or "", codes=codes,
                version=version)
        return self._codebooks[version]

    def store_codebook(self, book: codebook_mod.Codebook, source: str, *,
                       drop_coded: bool = False, by: str | None = None) -> codebook_mod.Codebook:
        """Add a codebook as a new version (the current one if identical); inside the caller's
        transaction.

        A version without a code that has codings (compared by id) is refused unless
        ``drop_coded``: those codings would count in no table. Dropped they stay in the study
        (and count again if a later version brings the id back); the version records them.
        ``by``: who adds it (default: the computer account running coder)."""
        previous = self.codebook() if self.codebook_version else None
        book = codebook_mod.assign_ids(book, previous)
        # another tool's GUIDs, verbatim, for the next export (a code's id outlives versions)
        self.db.conn.executemany(
            "INSERT OR REPLACE INTO exchange_guids (kind, ref, guid) VALUES ('code', ?, ?)",
            [(c.id, c.guid) for c in book.codes if c.guid])
        if previous is not None and previous.sha256 == book.sha256 and previous.name == book.name:
            return previous
        removed = codebook_mod.diff(previous, book).removed
        coded = self.code_codings([c.id for c in removed])
        dropped = {c.id: coded[c.id] for c in removed if coded.get(c.id)}
        if dropped and not drop_coded:
            paths = {c.id: c.old_path for c in removed}
            named = [f"'{paths[i]}' <{i}> ({n} coding{'s' if n != 1 else ''})"
                     for i, n in dropped.items()]
            if len(named) > 10:
                named = named[:10] + [f"and {len(named) - 10} more"]
            raise CodebookError(
                f"this codebook drops {len(dropped)} code{'s' if len(dropped) != 1 else ''} "
                f"that {'have' if len(dropped) != 1 else 'has'} codings: " + ", ".join(named),
                path=source or None,
                hint="their codings would count in no table; to rename or move a code keep its "
                     "id; use --drop-coded to drop them anyway")
        version = (self.codebook_version or 0) + 1
        self.db.execute(
            "INSERT INTO codebook_versions (version, name, description, source, sha256, content,"
            " created_at, dropped_coded, imported_by) VALUES (?,?,?,?,?,?,?,?,?)",
            (version, book.name, book.description, source, book.sha256, book.canonical_json(), now(),
             json.dumps(dropped), by or _account()))
        self.db.conn.executemany(
            "INSERT INTO codes (codebook_version, id, parent_id, path, name, depth, position,"
            " description, include, exclude, items, examples, speakers, color, codable)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(version, c.id, c.parent_id, c.path, c.name, c.depth, c.position, c.description,
              c.include, c.exclude, json.dumps(c.items, ensure_ascii=False),
              json.dumps(c.examples, ensure_ascii=False),
              json.dumps(c.speakers, ensure_ascii=False), c.color, int(c.codable))
             for c in book.codes])
        book.version = version
        self._codebooks[version] = book
        return book

    def codebook_versions(self) -> pd.DataFrame:
        return pd.read_sql_query(
            "SELECT v.version, v.name, v.source, v.created_at, COUNT(c.id) AS codes "
            "FROM codebook_versions v LEFT JOIN codes c ON c.codebook_version = v.version "
            "GROUP BY v.version ORDER BY v.version", self.db.conn)

    def code_codings(self, code_ids: list[str] | None = None) -> dict[str, int]:
        """Codings (every decision that names a code) per code id, for the given or all codes."""
        sql = "SELECT code_id, COUNT(*) AS n FROM codings WHERE code_id IS NOT NULL"
        params: list[str] = []
        if code_ids is not None:
            if not code_ids:
                return {}
            sql += " AND code_id IN (%s)" % ",".join("?" * len(code_ids))
            params = list(code_ids)
        return {r["code_id"]: r["n"] for r in self.db.query(sql + " GROUP BY code_id", params)}

    def codebook_diff(self, old: int, new: int | None = None) -> codebook_mod.CodebookDiff:
        """What changed from codebook version ``old`` to ``new`` (default: the current one)."""
        return codebook_mod.diff(self.codebook(old), self.codebook(new or self.codebook_version))

    def codebook_history(self) -> pd.DataFrame:
        """Every codebook version: when, from which file, how many codes, what changed from the
        version before (``changes``) and which coded codes it dropped (``dropped_coded``)."""
        rows = []
        previous = None
        for info in self.db.query("SELECT version, name, source, created_at, dropped_coded, "
                                  "imported_by FROM codebook_versions ORDER BY version"):
            book = self.codebook(info["version"])
            dropped = json.loads(info["dropped_coded"] or "{}")
            rows.append({
                "version": info["version"], "created_at": info["created_at"],
                "imported_by": info["imported_by"] or "",
                "source": info["source"] or "", "name": info["name"], "codes": len(book),
                "changes": (codebook_mod.diff(previous, book).summary() if previous is not None
                            else "first version"),
                "dropped_coded": ", ".join(f"{i} ({n} coding{'s' if n != 1 else ''})"
                                           for i, n in dropped.items())})
            previous = book
        return pd.DataFrame(rows, columns=["version", "created_at", "imported_by", "source",
                                           "name", "codes", "changes", "dropped_coded"])

    # -- documents, segments, participants --------------------------------------------------
    def documents(self) -> pd.DataFrame:
        return pd.read_sql_query(
            "SELECT d.id, d.name, d.format, d.unit, d.source_path, d.imported_at, "
            "(SELECT COUNT(*) FROM segments s WHERE s.document_id = d.id) AS segments "
            "FROM documents d ORDER BY d.name", self.db.conn)

    def document_id(self, name: str) -> int:
        row = self.db.one("SELECT id FROM documents WHERE name=?", (name,))
        if row is None:
            raise UnknownReference(f"unknown document '{name}'",
                                   hint=f"see the names with: coder status {self.path}")
        return row["id"]

    def check_documents(self, names: list[str] | None) -> list[str] | None:
        """Validate document names given by a user; all unknown names are reported at once."""
        if not names:
            return None
        known = {r["name"] for r in self.db.query("SELECT name FROM documents")}
        missing = [n for n in names if n not in known]
        if missing:
            raise UnknownReference("unknown document(s): " + ", ".join(missing),
                                   hint=f"see the names with: coder status {self.path}")
        return names

    def segments(self, *, documents: list[str] | None = None,
                 include_interviewer: bool = True) -> pd.DataFrame:
        """One row per segment, in reading order, with speaker role and participant."""
        sql = "SELECT * FROM segment_view"
        where, params = [], []
        if documents:
            self.check_documents(documents)
            where.append("document IN (%s)" % ",".join("?" * len(documents)))
            params += documents
        if not include_interviewer:
            where.append("role = 'participant'")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY document, position"
        return pd.read_sql_query(sql, self.db.conn, params=params)

    def participants(self) -> pd.DataFrame:
        """One row per participant with one column per attribute."""
        people = pd.read_sql_query("SELECT id, name AS participant FROM participants ORDER BY name",
                                   self.db.conn)
        attrs = pd.read_sql_query(
            "SELECT participant_id AS id, attribute, value FROM participant_attributes",
            self.db.conn)
        if len(attrs):
            wide = attrs.pivot(index="id", columns="attribute", values="value").reset_index()
            wide.columns.name = None
            people = people.merge(wide, on="id", how="left")
        return people

    # -- coders and codings -----------------------------------------------------------------
    def resolve_coder(self, name: str, *, create: bool = False, kind: str = "human"):
        """The coder a typed name means (`coder.store.coders`): an existing coder matched
        case-insensitively keeps its spelling; a near-duplicate is refused; a new name is
        added when ``create`` (``.created`` says so) or returned with ``id`` None."""
        from coder.store.coders import resolve

        ref = resolve(self.db, check_coder_name(name))
        if ref.id is not None or not create:
            return ref
        # insert-or-get in one write transaction, resolved again under the write lock: the
        # same new coder deciding from two places at once must not collide or split in two
        with self.db.transaction() as conn:
            ref = resolve(self.db, ref.given)
            if ref.id is None:
                cur = conn.execute("INSERT INTO coders (name, kind, created_at) VALUES (?,?,?) "
                                   "ON CONFLICT(name) DO NOTHING", (ref.name, kind, now()))
                ref.created = cur.rowcount == 1
                ref.id = conn.execute("SELECT id FROM coders WHERE name=?",
                                      (ref.name,)).fetchone()[0]
        return ref

    def coder_id(self, name: str, *, create: bool = True, kind: str = "human") -> int:
        ref = self.resolve_coder(name, create=create, kind=kind)
        if ref.id is None:
            similar = f"did you mean {' or '.join(ref.similar)}? " if ref.similar else ""
            raise UnknownReference(f"unknown coder '{ref.name}'", hint=similar + "coders: " + (
                ", ".join(self.coders()) or "none yet"))
        return ref.id

    def coders(self) -> list[str]:
        return [r["name"] for r in self.db.query("SELECT name FROM coders ORDER BY id")]

    # -- overview ---------------------------------------------------------------------------
    def status(self) -> StudyStatus:
        q = lambda sql: self.db.one(sql)[0]  # noqa: E731
        version = self.codebook_version
        coders = {r["name"]: r["n"] for r in self.db.query(
            "SELECT c.name, COUNT(DISTINCT k.segment_id) AS n FROM coders c "
            "LEFT JOIN codings k ON k.coder_id = c.id GROUP BY c.id ORDER BY c.id")}
        return StudyStatus(
            path=str(self.path),
            documents=q("SELECT COUNT(*) FROM documents"),
            # who counts in N: participants who speak (waiting rows of a participants file
            # do not)
            participants=q("SELECT COUNT(DISTINCT participant_id) FROM speakers "
                           "WHERE role='participant' AND participant_id IS NOT NULL"),
            participants_waiting=q(
                "SELECT COUNT(*) FROM participants WHERE id NOT IN (SELECT participant_id FROM "
                "speakers WHERE role='participant' AND participant_id IS NOT NULL)"),
            segments=q("SELECT COUNT(*) FROM segments"),
            codable_segments=q("SELECT COUNT(*) FROM segment_view WHERE role='participant'"),
            codebook_version=version,
            codebook_name=self.codebook().name if version else None,
            codes=len(self.codebook()) if version else 0,
            coders=coders,
            suggestions=q("SELECT COUNT(*) FROM suggestions"),
            model_version=q("SELECT MAX(version) FROM models"),
        )


def check_coder_name(name: str | None) -> str:
    """Coder names are what people type: non-empty, no surrounding or control whitespace."""
    if name is None or not str(name).strip():
        raise CoderError("a coder name is required and cannot be empty",
                         hint="e.g. --coder alice")
    name = str(name)
    if name != name.strip() or any(ch in name for ch in "\t\n\r,;"):
        raise CoderError(f"coder name {name!r} has surrounding whitespace, a comma or a semicolon",
                         hint="use a plain name such as 'alice'")
    if not any(ch.isalnum() for ch in name):
        raise CoderError(f"coder name {name!r} has no letter or digit",
                         hint="use a plain name such as 'alice'")
    return name


def _account() -> str | None:
    """The computer account running coder: who added a codebook version when not told."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):   # no such user in the password database (some containers)
        return None
