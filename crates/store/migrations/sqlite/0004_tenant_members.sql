-- Users may belong to tenants other than their home tenant (as Azure AD guests do).
CREATE TABLE tenant_members (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    user_id   TEXT NOT NULL,
    is_admin  INTEGER NOT NULL,
    added_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX tenant_members_by_user ON tenant_members(user_id);
