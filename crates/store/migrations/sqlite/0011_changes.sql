-- Several nodes on one store (issue 11): the change log every node follows, settings every
-- node shares (the master key's check value), and the password lock-out's counters.
CREATE TABLE changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after pruning
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX changes_at ON changes (at);

CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

-- Keys are SHA-256 digests of what they count (no user name or address in clear).
CREATE TABLE login_attempts (
    key BLOB PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_failure INTEGER NOT NULL
);
CREATE INDEX login_attempts_last ON login_attempts (last_failure);

CREATE TABLE familiar_sources (
    account BLOB NOT NULL,
    source BLOB NOT NULL,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (account, source)
);
CREATE INDEX familiar_sources_seen ON familiar_sources (seen_at);
