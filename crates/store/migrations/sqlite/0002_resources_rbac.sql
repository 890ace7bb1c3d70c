-- Resource groups, workspaces, custom role definitions and role assignments. Names keep their
-- first spelling; `*_key` columns hold the lower-cased form ARM compares.
CREATE TABLE resource_groups (
    subscription_id TEXT NOT NULL REFERENCES subscriptions(id),
    name            TEXT NOT NULL,
    name_key        TEXT NOT NULL,
    location        TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, name_key)
);

CREATE TABLE workspaces (
    id              TEXT NOT NULL UNIQUE,
    subscription_id TEXT NOT NULL,
    rg_name         TEXT NOT NULL,
    rg_key          TEXT NOT NULL,
    name            TEXT NOT NULL,
    name_key        TEXT NOT NULL,
    location        TEXT NOT NULL,
    description     TEXT NOT NULL,
    friendly_name   TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    created_by      TEXT NOT NULL,
    PRIMARY KEY (subscription_id, rg_key, name_key),
    FOREIGN KEY (subscription_id, rg_key)
        REFERENCES resource_groups(subscription_id, name_key) ON DELETE CASCADE
);

CREATE TABLE role_definitions (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (tenant_id, name_key)
);

CREATE TABLE role_assignments (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    principal_id   TEXT NOT NULL,
    principal_type TEXT NOT NULL,
    role_id        TEXT NOT NULL,
    scope          TEXT NOT NULL,
    scope_key      TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    created_by     TEXT,
    UNIQUE (principal_id, role_id, scope_key)
);
CREATE INDEX role_assignments_by_scope ON role_assignments(scope_key);
