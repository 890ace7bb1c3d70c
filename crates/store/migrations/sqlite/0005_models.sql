-- Registered model versions. Files live content-addressed (sha256) in the blob store; a
-- version lists them as JSON [{path, sha256, size}].
CREATE TABLE models (
    workspace_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    name_key     TEXT NOT NULL,
    version      INTEGER NOT NULL,
    description  TEXT NOT NULL,
    tags         TEXT NOT NULL,
    files        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    PRIMARY KEY (workspace_id, name_key, version)
);
