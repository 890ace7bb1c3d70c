-- Device user codes at rest as a keyed digest (HMAC-SHA256 under a key derived from the master
-- key) instead of in clear: with only ~35 bits, a code could be read back from a copy of the
-- database in the 15 minutes it is valid. Pending authorizations are dropped, not converted
-- (the clear codes are what must go, and they expire within 15 minutes anyway); their clients
-- see `invalid_grant` and start again. secure_delete zeroes the dropped pages, so the old codes
-- do not linger in the file's free list.
PRAGMA secure_delete = ON;
DROP TABLE device_authorizations;

CREATE TABLE device_authorizations (
    digest           BLOB PRIMARY KEY,
    user_code_digest BLOB NOT NULL UNIQUE,
    tenant_id        TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    resource         TEXT NOT NULL,
    scope            TEXT,
    v1               INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    interval_secs    INTEGER NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'consumed')),
    user_id          TEXT,
    last_poll_at     INTEGER
);

PRAGMA secure_delete = OFF;
