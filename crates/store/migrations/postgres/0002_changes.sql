-- Several nodes on one store (issue 11): the change log every node follows (publishers also
-- NOTIFY mlgate_changes), settings every node shares (the master key's check value), and the
-- password lock-out's counters.
CREATE TABLE changes (
    id   BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    at   BIGINT NOT NULL
);
CREATE INDEX changes_at ON changes (at);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

-- Keys are SHA-256 digests of what they count (no user name or address in clear).
CREATE TABLE login_attempts (
    key          BYTEA PRIMARY KEY,
    failures     BIGINT NOT NULL,
    last_failure BIGINT NOT NULL
);
CREATE INDEX login_attempts_last ON login_attempts (last_failure);

CREATE TABLE familiar_sources (
    account BYTEA NOT NULL,
    source  BYTEA NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (account, source)
);
CREATE INDEX familiar_sources_seen ON familiar_sources (seen_at);
