-- Online endpoints, the Azure ML SDK v2's face of web services. An endpoint may exist before
-- its one deployment, which is the web service of the same name (services.name_key); names
-- are unique across both tables on the server (the scoring URI names the service).
CREATE TABLE online_endpoints (
    name_key        TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    workspace_id    TEXT NOT NULL,
    auth_mode       TEXT NOT NULL,
    description     TEXT NOT NULL,
    tags            TEXT NOT NULL,
    deployment      TEXT,
    deployment_spec TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    created_by      TEXT NOT NULL
);
CREATE INDEX online_endpoints_by_workspace ON online_endpoints (workspace_id);

-- Code assets: source folders whose files sit in the blob store, as JSON [{path, sha256, size}].
CREATE TABLE code_versions (
    workspace_id TEXT NOT NULL,
    name_key     TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      TEXT NOT NULL,
    hash         TEXT,
    code_uri     TEXT NOT NULL,
    files        TEXT NOT NULL,
    is_anonymous INTEGER NOT NULL,
    description  TEXT NOT NULL,
    tags         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    PRIMARY KEY (workspace_id, name_key, version)
);

-- Files put through a signed upload URL (an upload area per startPendingUpload), until a code
-- version copies their list; forgotten after a day.
CREATE TABLE uploaded_blobs (
    upload       TEXT NOT NULL,
    path         TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    size         INTEGER NOT NULL,
    metadata     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (upload, path)
);
CREATE INDEX uploaded_blobs_by_time ON uploaded_blobs (created_at);
