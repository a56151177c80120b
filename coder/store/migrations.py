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
]
