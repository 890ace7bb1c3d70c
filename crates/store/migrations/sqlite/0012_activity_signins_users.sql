-- Issue 12: the activity log (management writes, denials, key reads), the sign-in log (every
-- grant and sign-in) and the forced password change. Neither log holds a secret: names, ids,
-- operation names, scopes and error codes only. The *_key columns are the case-folded values
-- the filters compare.
ALTER TABLE users ADD COLUMN force_change_password INTEGER NOT NULL DEFAULT 0;

CREATE TABLE activity_log (
    id                  TEXT PRIMARY KEY,
    at                  INTEGER NOT NULL,
    tenant_id           TEXT,
    subscription_id     TEXT,
    resource_group      TEXT,
    resource_group_key  TEXT,
    caller_id           TEXT,
    caller_type         TEXT NOT NULL,
    caller              TEXT NOT NULL,
    caller_key          TEXT NOT NULL,
    caller_display_name TEXT NOT NULL,
    operation           TEXT NOT NULL,
    scope               TEXT NOT NULL,
    method              TEXT NOT NULL,
    status              TEXT NOT NULL,
    sub_status          TEXT,
    error_code          TEXT,
    correlation_id      TEXT NOT NULL,
    client_address      TEXT
);
CREATE INDEX activity_log_by_tenant ON activity_log (tenant_id, at);
CREATE INDEX activity_log_at ON activity_log (at);

-- Written in batches at the rate of grants: appended in time order, with one index (on the
-- time, for queries and pruning) and no unique index on the random id.
CREATE TABLE sign_ins (
    id                   TEXT NOT NULL,
    at                   INTEGER NOT NULL,
    tenant_id            TEXT,
    user_id              TEXT,
    upn                  TEXT,
    upn_key              TEXT,
    app_id               TEXT,
    app_key              TEXT,
    app_display_name     TEXT,
    service_principal_id TEXT,
    client_address       TEXT NOT NULL,
    interactive          INTEGER NOT NULL,
    grant_type           TEXT NOT NULL,
    resource             TEXT,
    error_code           INTEGER NOT NULL,
    failure_reason       TEXT,
    correlation_id       TEXT NOT NULL
);
CREATE INDEX sign_ins_at ON sign_ins (at);
