-- Microsoft Graph keeps an application registration and its service principal as two directory
-- objects with two object ids sharing one appId: `az ad sp create-for-rbac` creates the
-- application, puts a secret on it, then creates the service principal; `az ad sp delete`
-- removes the principal and leaves the application. Secrets may sit on either object; the
-- token endpoint accepts both for the appId.
CREATE TABLE applications (
    object_id    TEXT PRIMARY KEY,
    app_id       TEXT NOT NULL,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    display_name TEXT NOT NULL,
    owner        TEXT,
    created_at   INTEGER NOT NULL,
    UNIQUE (tenant_id, app_id)
);

CREATE TABLE application_secrets (
    id           TEXT PRIMARY KEY,
    application  TEXT NOT NULL REFERENCES applications(object_id) ON DELETE CASCADE,
    digest       BLOB NOT NULL,
    hint         TEXT NOT NULL,
    display_name TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER
);
CREATE INDEX application_secrets_by_application ON application_secrets(application);

-- Every confidential client made before this migration gets its application object (a new
-- random v4 GUID); the CLI's public client is a first-party app with a principal only.
INSERT INTO applications (object_id, app_id, tenant_id, display_name, owner, created_at)
SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' ||
             substr(hex(randomblob(2)), 2) || '-' ||
             substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' ||
             hex(randomblob(6))),
       app_id, tenant_id, display_name, owner, created_at
FROM service_principals
WHERE public_client = 0;

-- Deleting a principal now deletes its role assignments in the same transaction; drop those
-- a deletion left behind before.
DELETE FROM role_assignments
WHERE principal_type = 'ServicePrincipal'
  AND principal_id NOT IN (SELECT object_id FROM service_principals);
