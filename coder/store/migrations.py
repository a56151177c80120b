"""Schema steps, applied in order and recorded by name in ``_migrations``.

Add a step at the end; never edit one that has shipped. Each stage owns its tables:
documents/segments (import), codebook_versions/codes (codebook), embeddings/models/
suggestions (suggest), codings/coding_history/memos (review), participants (import).
"""



MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_foundation",
        """
CREATE TABLE study_info (key TEXT PRIMARY KEY, value TEXT);

CREATE TABLE documents (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,            -- file name without extension unless given
    source_path TEXT,
    format TEXT NOT NULL,                 -- txt, md, docx, vtt, srt, csv, qdpx
    encoding TEXT,
    sha256 TEXT NOT NULL,                 -- of the source file's bytes: re-import detection
    text TEXT NOT NULL,                   -- normalised text; segment offsets index into it
    unit TEXT NOT NULL CHECK (unit IN ('turn', 'sentence', 'paragraph')),
    metadata TEXT NOT NULL DEFAULT '{}',  -- JSON
    imported_at TEXT NOT NULL
);

CREATE TABLE participants (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE participant_attributes (
    participant_id INTEGER NOT NULL REFERENCES participants(id) ON DELETE CASCADE,
    attribute TEXT NOT NULL,
    value TEXT,
    PRIMARY KEY (participant_id, attribute)
);

-- One row per speaker label per document: who the speaker is and whether they are coded.
CREATE TABLE speakers (
    id INTEGER PRIMARY KEY,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('participant', 'interviewer')),
    participant_id INTEGER REFERENCES participants(id) ON DELETE SET NULL,
    UNIQUE (document_id, label)
);

CREATE TABLE segments (
    id INTEGER PRIMARY KEY,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,            -- 1-based, in reading order
    speaker_id INTEGER REFERENCES speakers(id) ON DELETE SET NULL,
    turn INTEGER,                         -- 1-based turn the segment belongs to
    start_char INTEGER NOT NULL,          -- offsets into documents.text, Python str indices
    end_char INTEGER NOT NULL,
    text TEXT NOT NULL,
    text_hash TEXT NOT NULL,              -- sha256 of text: embedding cache key
    start_time REAL,                      -- seconds, for vtt/srt/csv with times
    end_time REAL,
    UNIQUE (document_id, position)
);
CREATE INDEX segments_hash ON segments(text_hash);

CREATE TABLE codebook_versions (
    version INTEGER PRIMARY KEY,          -- 1, 2, ...; the highest is current
    name TEXT NOT NULL,
    description TEXT,
    source TEXT,                          -- file it came from
    sha256 TEXT NOT NULL,                 -- of the canonical content
    content TEXT NOT NULL,                -- canonical JSON of the whole tree
    created_at TEXT NOT NULL
);

-- A code as it stands in one codebook version; id is stable across versions.
CREATE TABLE codes (
    codebook_version INTEGER NOT NULL REFERENCES codebook_versions(version) ON DELETE CASCADE,
    id TEXT NOT NULL,
    parent_id TEXT,
    path TEXT NOT NULL,                   -- 'Factor/Category'
    name TEXT NOT NULL,
    depth INTEGER NOT NULL,               -- 1 = top level (factor)
    position INTEGER NOT NULL,            -- codebook order (pre-order)
    description TEXT NOT NULL DEFAULT '',
    include TEXT NOT NULL DEFAULT '',
    exclude TEXT NOT NULL DEFAULT '',
    items TEXT NOT NULL DEFAULT '[]',     -- JSON list of strings
    examples TEXT NOT NULL DEFAULT '[]',  -- JSON list of strings
    speakers TEXT NOT NULL DEFAULT '[]',  -- JSON list: labels or roles it applies to
    PRIMARY KEY (codebook_version, id)
);

CREATE TABLE coders (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL DEFAULT 'human' CHECK (kind IN ('human', 'consensus')),
    created_at TEXT NOT NULL
);

-- Human decisions. Only confirmed/added (and auto, when asked) count in analysis.
CREATE TABLE codings (
    id INTEGER PRIMARY KEY,
    segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    coder_id INTEGER NOT NULL REFERENCES coders(id),
    code_id TEXT,                         -- NULL only for decision 'no_code'
    decision TEXT NOT NULL
        CHECK (decision IN ('confirmed', 'added', 'rejected', 'no_code', 'auto')),
    codebook_version INTEGER,
    model_version INTEGER,                -- the model whose suggestion was decided, if any
    suggestion_score REAL,
    memo TEXT,
    reason TEXT,                          -- reconcilers' reason for consensus decisions
    seconds REAL,                         -- time the coder spent on it
    source TEXT NOT NULL DEFAULT 'review',-- review, web, spreadsheet, import, reconcile, demo
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX codings_one_decision
    ON codings(segment_id, coder_id, COALESCE(code_id, ''));
CREATE INDEX codings_by_coder ON codings(coder_id, decision);

-- Audit trail: every change to codings, written by triggers so nothing can bypass it.
CREATE TABLE coding_history (
    id INTEGER PRIMARY KEY,
    coding_id INTEGER NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('insert', 'update', 'delete')),
    segment_id INTEGER NOT NULL,
    coder_id INTEGER NOT NULL,
    code_id TEXT,
    decision TEXT NOT NULL,
    memo TEXT,
    reason TEXT,
    source TEXT,
    recorded_at TEXT NOT NULL
);
CREATE TRIGGER codings_history_insert AFTER INSERT ON codings BEGIN
    INSERT INTO coding_history (coding_id, action, segment_id, coder_id, code_id, decision, memo,
                                reason, source, recorded_at)
    VALUES (NEW.id, 'insert', NEW.segment_id, NEW.coder_id, NEW.code_id, NEW.decision, NEW.memo,
            NEW.reason, NEW.source, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
END;
CREATE TRIGGER codings_history_update AFTER UPDATE ON codings BEGIN
    INSERT INTO coding_history (coding_id, action, segment_id, coder_id, code_id, decision, memo,
                                reason, source, recorded_at)
    VALUES (NEW.id, 'update', NEW.segment_id, NEW.coder_id, NEW.code_id, NEW.decision, NEW.memo,
            NEW.reason, NEW.source, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
END;
CREATE TRIGGER codings_history_delete AFTER DELETE ON codings BEGIN
    INSERT INTO coding_history (coding_id, action, segment_id, coder_id, code_id, decision, memo,
                                reason, source, recorded_at)
    VALUES (OLD.id, 'delete', OLD.segment_id, OLD.coder_id, OLD.code_id, OLD.decision, OLD.memo,
            OLD.reason, OLD.source, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
END;

-- Machine side: cached embeddings, model versions with their arrays, suggestions.
CREATE TABLE embeddings (
    model TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,                 -- float32, little-endian
    PRIMARY KEY (model, text_hash)
);

CREATE TABLE models (
    version INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,                   -- 'codebook' (zero-shot) or 'trained'
    embedder TEXT NOT NULL,
    codebook_version INTEGER NOT NULL,
    seed INTEGER,
    params TEXT NOT NULL DEFAULT '{}',    -- JSON: hyperparameters, thresholds policy
    trained_on TEXT NOT NULL DEFAULT '{}',-- JSON: coders, counts per code
    metrics TEXT NOT NULL DEFAULT '{}',   -- JSON: cross-validated quality per code
    created_at TEXT NOT NULL
);

-- Model weights as plain arrays (never pickled): a shared study cannot run code.
CREATE TABLE model_arrays (
    model_version INTEGER NOT NULL REFERENCES models(version) ON DELETE CASCADE,
    name TEXT NOT NULL,
    dtype TEXT NOT NULL,
    shape TEXT NOT NULL,                  -- JSON list
    data BLOB NOT NULL,
    PRIMARY KEY (model_version, name)
);

CREATE TABLE suggestions (
    id INTEGER PRIMARY KEY,
    segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    code_id TEXT NOT NULL,
    score REAL NOT NULL,                  -- calibrated, 0..1
    rank INTEGER NOT NULL,                -- 1 = best for this segment
    source TEXT NOT NULL CHECK (source IN ('codebook', 'classifier', 'blend')),
    threshold REAL,                       -- the code's threshold when suggested
    model_version INTEGER,
    codebook_version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (segment_id, code_id)
);
CREATE INDEX suggestions_by_code ON suggestions(code_id);

CREATE TABLE memos (
    id INTEGER PRIMARY KEY,
    segment_id INTEGER REFERENCES segments(id) ON DELETE CASCADE,
    document_id INTEGER REFERENCES documents(id) ON DELETE CASCADE,
    coder_id INTEGER REFERENCES coders(id),
    text TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- One row per segment: what analysis and exports read.
CREATE VIEW segment_view AS
SELECT s.id AS segment_id, d.id AS document_id, d.name AS document, s.position, s.turn,
       sp.label AS speaker, COALESCE(sp.role, 'participant') AS role,
       p.id AS participant_id, p.name AS participant,
       s.start_char, s.end_char, s.start_time, s.end_time, s.text, s.text_hash
FROM segments s
JOIN documents d ON d.id = s.document_id
LEFT JOIN speakers sp ON sp.id = s.speaker_id
LEFT JOIN participants p ON p.id = sp.participant_id;
""",
    ),
    (
        "0002_review",
        """
-- Undo for the review: one row per decision a coder made, with what it changed, so that
-- 'undo' restores exactly the codings rows that decision touched (coding_history keeps the audit).
CREATE TABLE review_actions (
    id INTEGER PRIMARY KEY,
    coder_id INTEGER NOT NULL REFERENCES coders(id),
    segment_id INTEGER REFERENCES segments(id) ON DELETE CASCADE,
    changes TEXT NOT NULL,                -- JSON list of {"code_id": ..., "before": row or null}
    created_at TEXT NOT NULL,
    undone_at TEXT
);
CREATE INDEX review_actions_by_coder ON review_actions(coder_id, undone_at, id);
""",
    ),
    (
        "0006_array_checksums",
        """
-- A stored model array is checked against this before use: a tampered or damaged study file
-- gives a clear message, never a wrong prediction. NULL for arrays stored before this step.
ALTER TABLE model_arrays ADD COLUMN sha256 TEXT;
""",
    ),
    (
        "0003_consensus_provenance",
        """
-- A consensus coder built by `coder reconcile`: the rule for segments only some of its coders
-- decided, and how far their decisions had been read (coding_history.id) when it was built;
-- a later decision of theirs makes it out of date.
CREATE TABLE consensus_builds (
    coder_id INTEGER PRIMARY KEY REFERENCES coders(id) ON DELETE CASCADE,
    single TEXT NOT NULL CHECK (single IN ('keep', 'drop', 'ask')),
    history_mark INTEGER NOT NULL,
    built_at TEXT NOT NULL
);
-- The coders whose decisions a consensus coder reconciles, in the order given.
CREATE TABLE consensus_members (
    consensus_id INTEGER NOT NULL REFERENCES consensus_builds(coder_id) ON DELETE CASCADE,
    coder_id INTEGER NOT NULL REFERENCES coders(id),
    position INTEGER NOT NULL,
    PRIMARY KEY (consensus_id, coder_id)
);
-- Provenance of a consensus decision: the coders' decisions (codings.id) it carries over
-- (source 'consensus-agreed' or 'consensus-single') or settles (source 'reconcile').
CREATE TABLE consensus_sources (
    coding_id INTEGER NOT NULL REFERENCES codings(id) ON DELETE CASCADE,
    source_coding_id INTEGER NOT NULL,    -- may be gone since: the coder changed their mind
    PRIMARY KEY (coding_id, source_coding_id)
);
""",
    ),
    (
        "0005_codebook_provenance",
        """
-- Codebook provenance: the coded codes a version dropped because its import was told to
-- (--drop-coded), with how many codings each had then: JSON {code id: codings}.
ALTER TABLE codebook_versions ADD COLUMN dropped_coded TEXT NOT NULL DEFAULT '{}';

-- Who is who before the transcript arrives: a participants-file row naming a document that is
-- not in the study yet waits here and is linked when that document is imported; until then the
-- participant speaks nowhere and counts in no N.
CREATE TABLE participant_links (
    participant_id INTEGER NOT NULL REFERENCES participants(id) ON DELETE CASCADE,
    document TEXT NOT NULL,               -- a document name not yet in the study
    speaker TEXT NOT NULL DEFAULT '',     -- '' = the document's one respondent
    source TEXT,                          -- the participants file that said so, and its line
    line INTEGER,
    PRIMARY KEY (document, speaker)
);
""",
    ),
    (
        "0004_batches_and_context",
        """
-- Imports and bulk steps as numbered batches (coder/store/batches.py): every codings row a
-- batch wrote, changed or removed, as it was before and after, so `coder undo --batch N` puts
-- back exactly what was there; memos it added; the coding_history and review_actions ids it
-- wrote (its rows in the audit trail, and the single decisions a later undo must skip).
CREATE TABLE batches (
    id INTEGER PRIMARY KEY,               -- the batch number people see: "batch 3"
    kind TEXT NOT NULL,                   -- sheet, codings, project, bulk
    source TEXT,                          -- the file imported, if any
    coders TEXT NOT NULL DEFAULT '[]',    -- JSON: whose decisions it recorded
    memos TEXT NOT NULL DEFAULT '[]',     -- JSON: ids of the memos it added
    history_from INTEGER,                 -- coding_history ids it wrote (inclusive), if any
    history_to INTEGER,
    actions_from INTEGER,                 -- review_actions ids it wrote (inclusive), if any
    actions_to INTEGER,
    created_at TEXT NOT NULL,
    undone_at TEXT
);
CREATE TABLE batch_changes (
    batch_id INTEGER NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    coding_id INTEGER NOT NULL,           -- codings.id (a row put back keeps its id)
    segment_id INTEGER NOT NULL,
    coder_id INTEGER NOT NULL,
    code_id TEXT,
    before TEXT,                          -- JSON of the whole codings row; NULL: none before
    after TEXT,                           -- JSON of the whole row it left; NULL: it removed it
    PRIMARY KEY (batch_id, coding_id)
);
CREATE INDEX batch_changes_by_key ON batch_changes(segment_id, coder_id);

-- What a coder could see when deciding (coder/review/context.py): blind or not, whether other
-- coders' codes were shown and whose were on screen, the model of the suggestions shown and
-- the coders that model learned from. NULL context on a decision: not recorded (imported, or
-- made before this step).
CREATE TABLE decision_contexts (
    id INTEGER PRIMARY KEY,
    coder_id INTEGER NOT NULL,
    segment_id INTEGER NOT NULL,
    face TEXT NOT NULL,                   -- terminal, web, sheet
    blind INTEGER NOT NULL DEFAULT 0,
    others_shown INTEGER NOT NULL DEFAULT 0,  -- the face showed other coders' codes
    others TEXT NOT NULL DEFAULT '[]',    -- JSON: coders whose codes on the segment were shown
    model_version INTEGER,                -- of the suggestions shown; NULL: none shown
    model_coders TEXT NOT NULL DEFAULT '[]',  -- JSON: the coders that model learned from
    created_at TEXT NOT NULL
);
CREATE INDEX decision_contexts_by_segment ON decision_contexts(coder_id, segment_id);
ALTER TABLE codings ADD COLUMN context_id INTEGER REFERENCES decision_contexts(id);
""",
    ),
    (
        "0007_embedding_backend",
        """
-- Embeddings stored compactly (coder/machine/embed.py): the number type of each cached vector,
-- '<f4' (float32, every vector cached before this step) or '<f2' (float16, half the bytes).
-- Which backend made a vector stays in `model` ("all-MiniLM-L6-v2" = torch fp32,
-- "all-MiniLM-L6-v2@onnx-int8", ...), so vectors of two backends never share a key.
ALTER TABLE embeddings ADD COLUMN dtype TEXT NOT NULL DEFAULT '<f4';
""",
    ),
    (
        "0008_coded_spans",
        """
-- Code any span (coder/review/spans.py): a coding covers the characters [start_char, end_char)
-- of its segment's document (code points into documents.text, like segment offsets). NULL
-- offsets: the whole segment -- every decision made before this step, and every decision made
-- on a segment since; such a coding's span is its segment's. A narrower or wider span has its
-- offsets here; segment_id is then the first segment it overlaps (its anchor) and it may reach
-- into the segments after it. One current decision per (segment, coder, code, span).
ALTER TABLE codings ADD COLUMN start_char INTEGER;
ALTER TABLE codings ADD COLUMN end_char INTEGER;
ALTER TABLE coding_history ADD COLUMN start_char INTEGER;
ALTER TABLE coding_history ADD COLUMN end_char INTEGER;
DROP INDEX codings_one_decision;
CREATE UNIQUE INDEX codings_one_decision
    ON codings(segment_id, coder_id, COALESCE(code_id, ''), COALESCE(start_char, -1),
               COALESCE(end_char, -1));
CREATE INDEX segments_span ON segments(document_id, start_char, end_char);

DROP TRIGGER codings_history_insert;
DROP TRIGGER codings_history_update;
DROP TRIGGER codings_history_delete;
CREATE TRIGGER codings_history_insert AFTER INSERT ON codings BEGIN
    INSERT INTO coding_history (coding_id, action, segment_id, coder_id, code_id, decision, memo,
                                reason, source, recorded_at, start_char, end_char)
    VALUES (NEW.id, 'insert', NEW.segment_id, NEW.coder_id, NEW.code_id, NEW.decision, NEW.memo,
            NEW.reason, NEW.source, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), NEW.start_char,
            NEW.end_char);
END;
CREATE TRIGGER codings_history_update AFTER UPDATE ON codings BEGIN
    INSERT INTO coding_history (coding_id, action, segment_id, coder_id, code_id, decision, memo,
                                reason, source, recorded_at, start_char, end_char)
    VALUES (NEW.id, 'update', NEW.segment_id, NEW.coder_id, NEW.code_id, NEW.decision, NEW.memo,
            NEW.reason, NEW.source, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), NEW.start_char,
            NEW.end_char);
END;
CREATE TRIGGER codings_history_delete AFTER DELETE ON codings BEGIN
    INSERT INTO coding_history (coding_id, action, segment_id, coder_id, code_id, decision, memo,
                                reason, source, recorded_at, start_char, end_char)
    VALUES (OLD.id, 'delete', OLD.segment_id, OLD.coder_id, OLD.code_id, OLD.decision, OLD.memo,
            OLD.reason, OLD.source, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), OLD.start_char,
            OLD.end_char);
END;

-- Every coding with its span spelled out: the document and [start_char, end_char), whole
-- segment or not (whole = 1 when it is its segment's span).
CREATE VIEW coding_spans AS
SELECT k.id AS coding_id, k.segment_id, k.coder_id, k.code_id, k.decision, s.document_id,
       COALESCE(k.start_char, s.start_char) AS start_char,
       COALESCE(k.end_char, s.end_char) AS end_char,
       k.start_char IS NULL AS whole
FROM codings k JOIN segments s ON s.id = k.segment_id;

-- Each coding with every segment its span overlaps, and by how many characters: what
-- frequency, segment-level agreement and training read (they state their overlap rule).
-- A whole-segment coding overlaps its own segment only, fully.
CREATE VIEW coding_segments AS
SELECT k.id AS coding_id, k.segment_id AS segment_id, k.coder_id, k.code_id, k.decision,
       s.end_char - s.start_char AS overlap, s.end_char - s.start_char AS length, 1 AS whole
FROM codings k JOIN segments s ON s.id = k.segment_id
WHERE k.start_char IS NULL
UNION ALL
SELECT k.id, s.id, k.coder_id, k.code_id, k.decision,
       MIN(k.end_char, s.end_char) - MAX(k.start_char, s.start_char),
       s.end_char - s.start_char, 0
FROM codings k JOIN segments a ON a.id = k.segment_id
JOIN segments s ON s.document_id = a.document_id AND s.start_char < k.end_char
                AND s.end_char > k.start_char
WHERE k.start_char IS NOT NULL;
""",
    ),
    (
        "0009_search",
        """
-- Text search (coder/sources/search.py): an FTS5 index over segment text, external content
-- (the text is stored once, in segments), kept current by triggers on every import, --replace
-- and delete; unicode61 with remove_diacritics 2, so 'cafe' finds 'café'. Filled here for the
-- segments a study already holds.
CREATE VIRTUAL TABLE segments_fts USING fts5(
    text, content='segments', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2');
CREATE TRIGGER segments_fts_insert AFTER INSERT ON segments BEGIN
    INSERT INTO segments_fts (rowid, text) VALUES (NEW.id, NEW.text);
END;
CREATE TRIGGER segments_fts_delete AFTER DELETE ON segments BEGIN
    INSERT INTO segments_fts (segments_fts, rowid, text) VALUES ('delete', OLD.id, OLD.text);
END;
CREATE TRIGGER segments_fts_update AFTER UPDATE OF text ON segments BEGIN
    INSERT INTO segments_fts (segments_fts, rowid, text) VALUES ('delete', OLD.id, OLD.text);
    INSERT INTO segments_fts (rowid, text) VALUES (NEW.id, NEW.text);
END;
INSERT INTO segments_fts (segments_fts) VALUES ('rebuild');

-- Search hits turned into proposals for one coder's review queue (coder/review/search.py).
-- A proposal is never a coding: nothing here counts in analysis until the coder confirms it,
-- which writes a codings row (source 'search'); a rejection writes a 'rejected' decision on
-- the segment. [start_char, end_char): document offsets of the proposed span (the hit, its
-- sentence or the whole segment), always inside segment_id. query/regex/options: the search
-- that made it. status: pending until decided; action_id is the review_actions row of the
-- decision, so undoing that decision opens the proposal again (open_search_proposals).
CREATE TABLE search_proposals (
    id INTEGER PRIMARY KEY,
    segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    start_char INTEGER NOT NULL,
    end_char INTEGER NOT NULL,
    code_id TEXT NOT NULL,
    coder_id INTEGER NOT NULL REFERENCES coders(id) ON DELETE CASCADE,
    span TEXT NOT NULL CHECK (span IN ('hit', 'sentence', 'segment')),
    query TEXT NOT NULL,
    regex INTEGER NOT NULL DEFAULT 0,
    options TEXT NOT NULL DEFAULT '{}',   -- JSON: speaker, documents, span
    created_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'confirmed', 'rejected')),
    decided_at TEXT,
    coding_id INTEGER,                    -- the codings row the decision wrote (a record only)
    action_id INTEGER,                    -- review_actions.id of that decision
    UNIQUE (coder_id, code_id, segment_id, start_char, end_char)
);
CREATE INDEX search_proposals_by_coder ON search_proposals(coder_id, status);

-- Proposals still to decide: pending, or decided by a decision since undone.
CREATE VIEW open_search_proposals AS
SELECT p.* FROM search_proposals p
WHERE p.status = 'pending'
   OR EXISTS (SELECT 1 FROM review_actions a WHERE a.id = p.action_id
              AND a.undone_at IS NOT NULL);
""",
    ),
    (
        "0010_exchange_fidelity",
        """
-- Exchange without loss (coder/exchange/reading.py): what another QDA tool's project says about
-- its codes, and the identifiers it gave things, kept so a re-export can say it back.
-- codes.color: '#RRGGBB' or NULL (coder picks one when it draws); codes.codable: 0 for a
-- category that only groups codes (REFI-QDA isCodable="false"), never suggested or decided.
ALTER TABLE codes ADD COLUMN color TEXT;
ALTER TABLE codes ADD COLUMN codable INTEGER NOT NULL DEFAULT 1;

-- The GUIDs a REFI-QDA project gave things, verbatim (case and braces as written), keyed by
-- what coder calls them. kind / ref:
--   user coders.id         code codes.id (stable across versions)
--   source documents.id    case participants.id  variable the attribute's name
--   selection codings.id   coding codings.id     note memos.id
--   coding_note codings.id (the Note that held a coding's memo)
--   annotation memos.id    (a PlainTextSelection that carried only a memo)
CREATE TABLE exchange_guids (
    kind TEXT NOT NULL,
    ref TEXT NOT NULL,
    guid TEXT NOT NULL,
    PRIMARY KEY (kind, ref)
);
-- rows whose thing is gone go with it (row ids can be reused)
CREATE TRIGGER exchange_guids_coding AFTER DELETE ON codings BEGIN
    DELETE FROM exchange_guids WHERE kind IN ('selection', 'coding', 'coding_note')
                                 AND ref = CAST(OLD.id AS TEXT);
END;
CREATE TRIGGER exchange_guids_memo AFTER DELETE ON memos BEGIN
    DELETE FROM exchange_guids WHERE kind IN ('note', 'annotation')
                                 AND ref = CAST(OLD.id AS TEXT);
END;
CREATE TRIGGER exchange_guids_document AFTER DELETE ON documents BEGIN
    DELETE FROM exchange_guids WHERE kind = 'source' AND ref = CAST(OLD.id AS TEXT);
END;
CREATE TRIGGER exchange_guids_participant AFTER DELETE ON participants BEGIN
    DELETE FROM exchange_guids WHERE kind = 'case' AND ref = CAST(OLD.id AS TEXT);
END;
""",
    ),
    (
        "0011_queue_index",
        """
-- The review queue's order (coder/review/queue.py queue_ids) reads each segment's two best
-- suggestions after every decision: found through this index without touching the table.
CREATE INDEX suggestions_by_rank ON suggestions(segment_id, rank, score);
""",
    ),
    (
        "0012_users",
        """
-- Coders who sign in to a served study (coder/store/users.py). A coder without a row here can
-- still code from the CLI or an unserved page; the row only says how the page knows them.
CREATE TABLE users (
    coder_id INTEGER PRIMARY KEY REFERENCES coders(id),
    role TEXT NOT NULL DEFAULT 'coder' CHECK (role IN ('coder', 'lead')),
    password_hash TEXT NOT NULL,          -- scrypt$N$r$p$salt$key (base64); never the password
    one_time INTEGER NOT NULL DEFAULT 1,  -- 1: the printed password, to be replaced at sign-in
    created_at TEXT NOT NULL,
    password_set_at TEXT NOT NULL,
    last_signin_at TEXT
);

-- Sign-in sessions: the cookie's SHA-256, never the cookie itself, so a copy of the study
-- file does not sign anyone in.
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    coder_id INTEGER NOT NULL REFERENCES users(coder_id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    ended_at TEXT,
    client TEXT
);
CREATE INDEX sessions_by_coder ON sessions(coder_id);
""",
    ),
    (
        "0015_codebook_imported_by",
        """
-- Who added each codebook version (`coder codebook import --by`, else the computer account):
-- a codebook's history says when, from which file and by whom.
ALTER TABLE codebook_versions ADD COLUMN imported_by TEXT;
""",
    ),
]
