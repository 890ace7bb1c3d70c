-- Deployed web services. Names are unique on the server: the scoring URI is
-- /api/v1/service/{name}/score, as on AKS.
CREATE TABLE services (
    name_key          TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    workspace_id      TEXT NOT NULL,
    model_name        TEXT NOT NULL,
    model_version     INTEGER NOT NULL,
    inference_config  TEXT NOT NULL,
    deployment_config TEXT NOT NULL,
    state             TEXT NOT NULL,
    error             TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    created_by        TEXT NOT NULL
);
