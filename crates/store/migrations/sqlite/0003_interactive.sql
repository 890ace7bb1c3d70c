-- Device authorizations (RFC 8628) and authorization codes (RFC 6749 4.1 with PKCE). Device
-- codes and authorization codes are stored as SHA-256 digests; user codes are short-lived and
-- single-use, so they are kept as typed.
CREATE TABLE device_authorizations (
    digest        BLOB PRIMARY KEY,
    user_code     TEXT NOT NULL UNIQUE,
    tenant_id     TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    resource      TEXT NOT NULL,
    scope         TEXT,
    v1            INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    interval_secs INTEGER NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'consumed')),
    user_id       TEXT,
    last_poll_at  INTEGER
);

CREATE TABLE authorization_codes (
    digest         BLOB PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    resource       TEXT NOT NULL,
    scope          TEXT,
    nonce          TEXT,
    v1             INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used           INTEGER NOT NULL DEFAULT 0
);
