-- The schema SQLite reached at its migration 0010, in PostgreSQL's types: times are unix
-- seconds (BIGINT), ids lower-case GUID text, digests and sealed keys BYTEA, flags BOOLEAN.
-- Secrets never appear in clear: client secrets, refresh tokens, device and authorization
-- codes as SHA-256 digests, user codes as HMAC-SHA256 digests, passwords as argon2id PHC
-- strings, private and service keys sealed with AES-256-GCM. `*_key` columns hold the
-- lower-cased name ARM compares. Text compares byte by byte (COLLATE "C"), as in SQLite, so
-- orders and keyset pages are the same on both databases whatever the cluster's locale.
CREATE TABLE meta (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT COLLATE "C" NOT NULL
);

CREATE TABLE tenants (
    id           TEXT COLLATE "C" PRIMARY KEY,
    domain       TEXT COLLATE "C" NOT NULL UNIQUE,
    display_name TEXT COLLATE "C" NOT NULL
);

CREATE TABLE subscriptions (
    id           TEXT COLLATE "C" PRIMARY KEY,
    tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    display_name TEXT COLLATE "C" NOT NULL
);

CREATE TABLE users (
    object_id       TEXT COLLATE "C" PRIMARY KEY,
    tenant_id       TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    upn             TEXT COLLATE "C" NOT NULL,
    display_name    TEXT COLLATE "C" NOT NULL,
    password_hash   TEXT COLLATE "C" NOT NULL,
    account_enabled BOOLEAN NOT NULL,
    is_admin        BOOLEAN NOT NULL,
    UNIQUE (tenant_id, upn)
);
CREATE INDEX users_by_upn ON users (upn);

CREATE TABLE tenant_members (
    tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    user_id   TEXT COLLATE "C" NOT NULL,
    is_admin  BOOLEAN NOT NULL,
    added_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX tenant_members_by_user ON tenant_members (user_id);

CREATE TABLE service_principals (
    object_id       TEXT COLLATE "C" PRIMARY KEY,
    app_id          TEXT COLLATE "C" NOT NULL,
    tenant_id       TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    display_name    TEXT COLLATE "C" NOT NULL,
    account_enabled BOOLEAN NOT NULL,
    public_client   BOOLEAN NOT NULL,
    owner           TEXT COLLATE "C",
    created_at      BIGINT NOT NULL,
    UNIQUE (tenant_id, app_id)
);

CREATE TABLE client_secrets (
    id           TEXT COLLATE "C" PRIMARY KEY,
    principal    TEXT COLLATE "C" NOT NULL REFERENCES service_principals(object_id) ON DELETE CASCADE,
    digest       BYTEA NOT NULL,
    hint         TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT
);
CREATE INDEX client_secrets_by_principal ON client_secrets (principal);

CREATE TABLE applications (
    object_id    TEXT COLLATE "C" PRIMARY KEY,
    app_id       TEXT COLLATE "C" NOT NULL,
    tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    display_name TEXT COLLATE "C" NOT NULL,
    owner        TEXT COLLATE "C",
    created_at   BIGINT NOT NULL,
    UNIQUE (tenant_id, app_id)
);

CREATE TABLE application_secrets (
    id           TEXT COLLATE "C" PRIMARY KEY,
    application  TEXT COLLATE "C" NOT NULL REFERENCES applications(object_id) ON DELETE CASCADE,
    digest       BYTEA NOT NULL,
    hint         TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT
);
CREATE INDEX application_secrets_by_application ON application_secrets (application);

CREATE TABLE signing_keys (
    kid                TEXT COLLATE "C" PRIMARY KEY,
    state              TEXT COLLATE "C" NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    sealed_private_key BYTEA NOT NULL,
    public_key         BYTEA NOT NULL,
    created_at         BIGINT NOT NULL,
    retired_at         BIGINT
);

CREATE TABLE refresh_grants (
    digest     BYTEA PRIMARY KEY,
    family     TEXT COLLATE "C" NOT NULL,
    tenant_id  TEXT COLLATE "C" NOT NULL,
    subject    TEXT COLLATE "C" NOT NULL,
    client_id  TEXT COLLATE "C" NOT NULL,
    resource   TEXT COLLATE "C" NOT NULL,
    scope      TEXT COLLATE "C" NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    revoked    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX refresh_grants_by_family ON refresh_grants (family);

CREATE TABLE device_authorizations (
    digest           BYTEA PRIMARY KEY,
    user_code_digest BYTEA NOT NULL UNIQUE,
    tenant_id        TEXT COLLATE "C" NOT NULL,
    client_id        TEXT COLLATE "C" NOT NULL,
    resource         TEXT COLLATE "C" NOT NULL,
    scope            TEXT COLLATE "C",
    v1               BOOLEAN NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    interval_secs    BIGINT NOT NULL,
    state            TEXT COLLATE "C" NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'consumed')),
    user_id          TEXT COLLATE "C",
    last_poll_at     BIGINT
);

CREATE TABLE authorization_codes (
    digest         BYTEA PRIMARY KEY,
    tenant_id      TEXT COLLATE "C" NOT NULL,
    client_id      TEXT COLLATE "C" NOT NULL,
    user_id        TEXT COLLATE "C" NOT NULL,
    redirect_uri   TEXT COLLATE "C" NOT NULL,
    code_challenge TEXT COLLATE "C" NOT NULL,
    resource       TEXT COLLATE "C" NOT NULL,
    scope          TEXT COLLATE "C",
    nonce          TEXT COLLATE "C",
    v1             BOOLEAN NOT NULL,
    expires_at     BIGINT NOT NULL,
    used           BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE resource_groups (
    subscription_id TEXT COLLATE "C" NOT NULL REFERENCES subscriptions(id),
    name            TEXT COLLATE "C" NOT NULL,
    name_key        TEXT COLLATE "C" NOT NULL,
    location        TEXT COLLATE "C" NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, name_key)
);

CREATE TABLE workspaces (
    id              TEXT COLLATE "C" NOT NULL UNIQUE,
    subscription_id TEXT COLLATE "C" NOT NULL,
    rg_name         TEXT COLLATE "C" NOT NULL,
    rg_key          TEXT COLLATE "C" NOT NULL,
    name            TEXT COLLATE "C" NOT NULL,
    name_key        TEXT COLLATE "C" NOT NULL,
    location        TEXT COLLATE "C" NOT NULL,
    description     TEXT COLLATE "C" NOT NULL,
    friendly_name   TEXT COLLATE "C" NOT NULL,
    created_at      BIGINT NOT NULL,
    created_by      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (subscription_id, rg_key, name_key),
    FOREIGN KEY (subscription_id, rg_key)
        REFERENCES resource_groups(subscription_id, name_key) ON DELETE CASCADE
);

CREATE TABLE role_definitions (
    id         TEXT COLLATE "C" PRIMARY KEY,
    tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    name       TEXT COLLATE "C" NOT NULL,
    name_key   TEXT COLLATE "C" NOT NULL,
    definition TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name_key)
);

CREATE TABLE role_assignments (
    id             TEXT COLLATE "C" PRIMARY KEY,
    tenant_id      TEXT COLLATE "C" NOT NULL,
    principal_id   TEXT COLLATE "C" NOT NULL,
    principal_type TEXT COLLATE "C" NOT NULL,
    role_id        TEXT COLLATE "C" NOT NULL,
    scope          TEXT COLLATE "C" NOT NULL,
    scope_key      TEXT COLLATE "C" NOT NULL,
    created_at     BIGINT NOT NULL,
    created_by     TEXT COLLATE "C",
    UNIQUE (principal_id, role_id, scope_key)
);
CREATE INDEX role_assignments_by_scope ON role_assignments (scope_key);
CREATE INDEX role_assignments_by_principal ON role_assignments (principal_id);

CREATE TABLE models (
    workspace_id TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    name_key     TEXT COLLATE "C" NOT NULL,
    version      BIGINT NOT NULL,
    description  TEXT COLLATE "C" NOT NULL,
    tags         TEXT COLLATE "C" NOT NULL,
    files        TEXT COLLATE "C" NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (workspace_id, name_key, version)
);

CREATE TABLE services (
    name_key          TEXT COLLATE "C" PRIMARY KEY,
    name              TEXT COLLATE "C" NOT NULL,
    workspace_id      TEXT COLLATE "C" NOT NULL,
    model_name        TEXT COLLATE "C" NOT NULL,
    model_version     BIGINT NOT NULL,
    inference_config  TEXT COLLATE "C" NOT NULL,
    deployment_config TEXT COLLATE "C" NOT NULL,
    state             TEXT COLLATE "C" NOT NULL,
    error             TEXT COLLATE "C",
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    created_by        TEXT COLLATE "C" NOT NULL
);
CREATE INDEX services_by_workspace ON services (workspace_id);

CREATE TABLE service_keys (
    name_key         TEXT COLLATE "C" PRIMARY KEY,
    primary_sealed   BYTEA NOT NULL,
    secondary_sealed BYTEA NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE online_endpoints (
    name_key        TEXT COLLATE "C" PRIMARY KEY,
    name            TEXT COLLATE "C" NOT NULL,
    workspace_id    TEXT COLLATE "C" NOT NULL,
    auth_mode       TEXT COLLATE "C" NOT NULL,
    description     TEXT COLLATE "C" NOT NULL,
    tags            TEXT COLLATE "C" NOT NULL,
    deployment      TEXT COLLATE "C",
    deployment_spec TEXT COLLATE "C",
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    created_by      TEXT COLLATE "C" NOT NULL
);
CREATE INDEX online_endpoints_by_workspace ON online_endpoints (workspace_id);

CREATE TABLE code_versions (
    workspace_id TEXT COLLATE "C" NOT NULL,
    name_key     TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    version      TEXT COLLATE "C" NOT NULL,
    hash         TEXT COLLATE "C",
    code_uri     TEXT COLLATE "C" NOT NULL,
    files        TEXT COLLATE "C" NOT NULL,
    is_anonymous BOOLEAN NOT NULL,
    description  TEXT COLLATE "C" NOT NULL,
    tags         TEXT COLLATE "C" NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (workspace_id, name_key, version)
);

CREATE TABLE uploaded_blobs (
    upload       TEXT COLLATE "C" NOT NULL,
    path         TEXT COLLATE "C" NOT NULL,
    workspace_id TEXT COLLATE "C" NOT NULL,
    sha256       TEXT COLLATE "C" NOT NULL,
    size         BIGINT NOT NULL,
    metadata     TEXT COLLATE "C" NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (upload, path)
);
CREATE INDEX uploaded_blobs_by_time ON uploaded_blobs (created_at);
