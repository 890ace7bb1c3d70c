-- Issue 12: the activity log (management writes, denials, key reads), the sign-in log (every
-- grant and sign-in) and the forced password change. Neither log holds a secret: names, ids,
-- operation names, scopes and error codes only. The *_key columns are the case-folded values
-- the filters compare.
ALTER TABLE users ADD COLUMN force_change_password BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE activity_log (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    at                  BIGINT NOT NULL,
    tenant_id           TEXT COLLATE "C",
    subscription_id     TEXT COLLATE "C",
    resource_group      TEXT COLLATE "C",
    resource_group_key  TEXT COLLATE "C",
    caller_id           TEXT COLLATE "C",
    caller_type         TEXT COLLATE "C" NOT NULL,
    caller              TEXT COLLATE "C" NOT NULL,
    caller_key          TEXT COLLATE "C" NOT NULL,
    caller_display_name TEXT COLLATE "C" NOT NULL,
    operation           TEXT COLLATE "C" NOT NULL,
    scope               TEXT COLLATE "C" NOT NULL,
    method              TEXT COLLATE "C" NOT NULL,
    status              TEXT COLLATE "C" NOT NULL,
    sub_status          TEXT COLLATE "C",
    error_code          TEXT COLLATE "C",
    correlation_id      TEXT COLLATE "C" NOT NULL,
    client_address      TEXT COLLATE "C"
);
CREATE INDEX activity_log_by_tenant ON activity_log (tenant_id, at);
CREATE INDEX activity_log_at ON activity_log (at);

-- Written in batches at the rate of grants: appended in time order, with one index (on the
-- time, for queries and pruning) and no unique index on the random id.
CREATE TABLE sign_ins (
    id                   TEXT COLLATE "C" NOT NULL,
    at                   BIGINT NOT NULL,
    tenant_id            TEXT COLLATE "C",
    user_id              TEXT COLLATE "C",
    upn                  TEXT COLLATE "C",
    upn_key              TEXT COLLATE "C",
    app_id               TEXT COLLATE "C",
    app_key              TEXT COLLATE "C",
    app_display_name     TEXT COLLATE "C",
    service_principal_id TEXT COLLATE "C",
    client_address       TEXT COLLATE "C" NOT NULL,
    interactive          BOOLEAN NOT NULL,
    grant_type           TEXT COLLATE "C" NOT NULL,
    resource             TEXT COLLATE "C",
    error_code           BIGINT NOT NULL,
    failure_reason       TEXT COLLATE "C",
    correlation_id       TEXT COLLATE "C" NOT NULL
);
CREATE INDEX sign_ins_at ON sign_ins (at);
