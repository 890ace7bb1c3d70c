-- The directory, signing keys and refresh grants. Times are unix seconds; ids are lower-case
-- GUID text. Secrets never appear in clear: client secrets and refresh tokens as SHA-256
-- digests, passwords as argon2id PHC strings, private keys sealed with AES-256-GCM.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id           TEXT PRIMARY KEY,
    domain       TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL
);

CREATE TABLE subscriptions (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    display_name TEXT NOT NULL
);

CREATE TABLE users (
    object_id       TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    upn             TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    account_enabled INTEGER NOT NULL,
    is_admin        INTEGER NOT NULL,
    UNIQUE (tenant_id, upn)
);

CREATE TABLE service_principals (
    object_id       TEXT PRIMARY KEY,
    app_id          TEXT NOT NULL,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    display_name    TEXT NOT NULL,
    account_enabled INTEGER NOT NULL,
    public_client   INTEGER NOT NULL,
    owner           TEXT,
    created_at      INTEGER NOT NULL,
    UNIQUE (tenant_id, app_id)
);

CREATE TABLE client_secrets (
    id           TEXT PRIMARY KEY,
    principal    TEXT NOT NULL REFERENCES service_principals(object_id) ON DELETE CASCADE,
    digest       BLOB NOT NULL,
    hint         TEXT NOT NULL,
    display_name TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER
);
CREATE INDEX client_secrets_by_principal ON client_secrets(principal);

CREATE TABLE signing_keys (
    kid                TEXT PRIMARY KEY,
    state              TEXT NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    sealed_private_key BLOB NOT NULL,
    public_key         BLOB NOT NULL,
    created_at         INTEGER NOT NULL,
    retired_at         INTEGER
);

CREATE TABLE refresh_grants (
    digest     BLOB PRIMARY KEY,
    family     TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    resource   TEXT NOT NULL,
    scope      TEXT NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX refresh_grants_by_family ON refresh_grants(family);
