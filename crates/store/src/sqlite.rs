//! The SQLite store: one file in the data directory, WAL mode, versioned migrations applied at
//! open. Queries are plain SQL with bound parameters; rows are mapped to domain records here
//! and nowhere else.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use mlgate_core::ids::{
    AppId, GrantFamilyId, KeyId, ObjectId, RoleAssignmentId, SecretId, SubscriptionId, TenantId,
    WorkspaceId,
};
use mlgate_core::model::{
    Application, AuthorizationCode, ClientSecret, CodeVersion, CustomRoleRecord,
    DeviceAuthorization, DeviceState, KeyState, ModelVersion, OnlineEndpoint, PrincipalType,
    RefreshGrant, ResourceGroup, RoleAssignmentRecord, SealedServiceKeys, Service,
    ServicePrincipal, ServiceState, SigningKeyRecord, Subscription, Tenant, UploadedBlob, User,
    Workspace,
};
use mlgate_core::store::{
    ApplicationStore, Bootstrap, CodeStore, DirectoryStore, EndpointStore, FlowStore, GrantStore,
    KeepOneAssignment, KeyStore, ModelStore, RbacStore, ResourceStore, ServiceStore, Store,
    StoreError, StoreResult,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;

/// Versioned migrations, applied in order, each in its own transaction.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_directory.sql")),
    (2, include_str!("../migrations/sqlite/0002_resources_rbac.sql")),
    (3, include_str!("../migrations/sqlite/0003_interactive.sql")),
    (4, include_str!("../migrations/sqlite/0004_tenant_members.sql")),
    (5, include_str!("../migrations/sqlite/0005_models.sql")),
    (6, include_str!("../migrations/sqlite/0006_services.sql")),
    (7, include_str!("../migrations/sqlite/0007_service_keys.sql")),
    (8, include_str!("../migrations/sqlite/0008_applications.sql")),
    (9, include_str!("../migrations/sqlite/0009_user_code_digest.sql")),
    (10, include_str!("../migrations/sqlite/0010_online_endpoints.sql")),
    (11, include_str!("../migrations/sqlite/0011_changes.sql")),
];

mod shared;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict("already exists".into())
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::Conflict("refers to a missing record".into())
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn from_ts(secs: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse<T: FromStr>(row: &SqliteRow, col: &str) -> StoreResult<T> {
    let text: String = row.try_get(col).map_err(map_err)?;
    text.parse().map_err(|_| StoreError::Corrupt(format!("{col}: '{text}'")))
}

fn digest32(bytes: Vec<u8>) -> StoreResult<[u8; 32]> {
    bytes.try_into().map_err(|_| StoreError::Corrupt("digest is not 32 bytes".into()))
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(map_err)?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Closes every connection; later calls fail with `Unavailable` (tests use this to take
    /// the store away).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> StoreResult<()> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, \
             applied_at INTEGER NOT NULL)",
        )
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        for (version, sql) in MIGRATIONS {
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
            if done.is_some() {
                continue;
            }
            sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(map_err)?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
                .bind(version)
                .bind(ts(OffsetDateTime::now_utc()))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            tracing::info!(version, "applied migration");
        }
        Ok(())
    }
}

fn tenant_from(row: &SqliteRow) -> StoreResult<Tenant> {
    Ok(Tenant {
        id: parse(row, "id")?,
        domain: row.try_get("domain").map_err(map_err)?,
        display_name: row.try_get("display_name").map_err(map_err)?,
    })
}

fn user_from(row: &SqliteRow) -> StoreResult<User> {
    Ok(User {
        object_id: parse(row, "object_id")?,
        tenant_id: parse(row, "tenant_id")?,
        user_principal_name: row.try_get("upn").map_err(map_err)?,
        display_name: row.try_get("display_name").map_err(map_err)?,
        password_hash: row.try_get("password_hash").map_err(map_err)?,
        account_enabled: row.try_get("account_enabled").map_err(map_err)?,
        is_admin: row.try_get("is_admin").map_err(map_err)?,
    })
}

fn sp_from(row: &SqliteRow) -> StoreResult<ServicePrincipal> {
    let owner: Option<String> = row.try_get("owner").map_err(map_err)?;
    Ok(ServicePrincipal {
        object_id: parse(row, "object_id")?,
        app_id: parse(row, "app_id")?,
        tenant_id: parse(row, "tenant_id")?,
        display_name: row.try_get("display_name").map_err(map_err)?,
        account_enabled: row.try_get("account_enabled").map_err(map_err)?,
        public_client: row.try_get("public_client").map_err(map_err)?,
        owner: owner
            .map(|o| o.parse::<ObjectId>())
            .transpose()
            .map_err(|_| StoreError::Corrupt("owner".into()))?,
        created_at: from_ts(row.try_get("created_at").map_err(map_err)?)?,
    })
}

fn secret_from(row: &SqliteRow) -> StoreResult<ClientSecret> {
    let expires: Option<i64> = row.try_get("expires_at").map_err(map_err)?;
    Ok(ClientSecret {
        id: parse::<SecretId>(row, "id")?,
        principal: parse(row, "principal")?,
        digest: digest32(row.try_get("digest").map_err(map_err)?)?,
        hint: row.try_get("hint").map_err(map_err)?,
        display_name: row.try_get("display_name").map_err(map_err)?,
        created_at: from_ts(row.try_get("created_at").map_err(map_err)?)?,
        expires_at: expires.map(from_ts).transpose()?,
    })
}

fn key_from(row: &SqliteRow) -> StoreResult<SigningKeyRecord> {
    let state: String = row.try_get("state").map_err(map_err)?;
    let retired: Option<i64> = row.try_get("retired_at").map_err(map_err)?;
    Ok(SigningKeyRecord {
        kid: KeyId(row.try_get("kid").map_err(map_err)?),
        state: KeyState::parse(&state).ok_or_else(|| StoreError::Corrupt("key state".into()))?,
        sealed_private_key: row.try_get("sealed_private_key").map_err(map_err)?,
        public_key: row.try_get("public_key").map_err(map_err)?,
        created_at: from_ts(row.try_get("created_at").map_err(map_err)?)?,
        retired_at: retired.map(from_ts).transpose()?,
    })
}

fn grant_from(row: &SqliteRow) -> StoreResult<RefreshGrant> {
    let used: Option<i64> = row.try_get("used_at").map_err(map_err)?;
    Ok(RefreshGrant {
        digest: digest32(row.try_get("digest").map_err(map_err)?)?,
        family: parse::<GrantFamilyId>(row, "family")?,
        tenant_id: parse(row, "tenant_id")?,
        subject: parse(row, "subject")?,
        client_id: parse::<AppId>(row, "client_id")?,
        resource: row.try_get("resource").map_err(map_err)?,
        scope: row.try_get("scope").map_err(map_err)?,
        issued_at: from_ts(row.try_get("issued_at").map_err(map_err)?)?,
        expires_at: from_ts(row.try_get("expires_at").map_err(map_err)?)?,
        used_at: used.map(from_ts).transpose()?,
        revoked: row.try_get("revoked").map_err(map_err)?,
    })
}

async fn insert_sp<'c, E: sqlx::SqliteExecutor<'c>>(
    e: E,
    sp: &ServicePrincipal,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO service_principals (object_id, app_id, tenant_id, display_name, \
         account_enabled, public_client, owner, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(sp.object_id.to_string())
    .bind(sp.app_id.to_string())
    .bind(sp.tenant_id.to_string())
    .bind(&sp.display_name)
    .bind(sp.account_enabled)
    .bind(sp.public_client)
    .bind(sp.owner.map(|o| o.to_string()))
    .bind(ts(sp.created_at))
    .execute(e)
    .await
    .map_err(map_err)?;
    Ok(())
}

async fn insert_secret<'c, E: sqlx::SqliteExecutor<'c>>(e: E, s: &ClientSecret) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO client_secrets (id, principal, digest, hint, display_name, created_at, \
         expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(s.id.to_string())
    .bind(s.principal.to_string())
    .bind(s.digest.to_vec())
    .bind(&s.hint)
    .bind(&s.display_name)
    .bind(ts(s.created_at))
    .bind(s.expires_at.map(ts))
    .execute(e)
    .await
    .map_err(map_err)?;
    Ok(())
}

async fn insert_key<'c, E: sqlx::SqliteExecutor<'c>>(
    e: E,
    k: &SigningKeyRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, state, sealed_private_key, public_key, created_at, \
         retired_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&k.kid.0)
    .bind(k.state.as_str())
    .bind(&k.sealed_private_key)
    .bind(&k.public_key)
    .bind(ts(k.created_at))
    .bind(k.retired_at.map(ts))
    .execute(e)
    .await
    .map_err(map_err)?;
    Ok(())
}

async fn insert_user<'c, E: sqlx::SqliteExecutor<'c>>(e: E, u: &User) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (object_id, tenant_id, upn, display_name, password_hash, \
         account_enabled, is_admin) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(u.object_id.to_string())
    .bind(u.tenant_id.to_string())
    .bind(u.user_principal_name.to_ascii_lowercase())
    .bind(&u.display_name)
    .bind(&u.password_hash)
    .bind(u.account_enabled)
    .bind(u.is_admin)
    .execute(e)
    .await
    .map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn bootstrap(&self, data: &Bootstrap) -> StoreResult<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let marked =
            sqlx::query("INSERT OR IGNORE INTO meta (key, value) VALUES ('bootstrapped', ?)")
                .bind(data.tenant.id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        if marked.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("INSERT INTO tenants (id, domain, display_name) VALUES (?, ?, ?)")
            .bind(data.tenant.id.to_string())
            .bind(&data.tenant.domain)
            .bind(&data.tenant.display_name)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("INSERT INTO subscriptions (id, tenant_id, display_name) VALUES (?, ?, ?)")
            .bind(data.subscription.id.to_string())
            .bind(data.subscription.tenant_id.to_string())
            .bind(&data.subscription.display_name)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        insert_user(&mut *tx, &data.admin).await?;
        insert_sp(&mut *tx, &data.cli_application).await?;
        for k in &data.keys {
            insert_key(&mut *tx, k).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        // The bootstrap tenant first: `common` resolves to it.
        let rows = sqlx::query(
            "SELECT t.id, t.domain, t.display_name FROM tenants t LEFT JOIN meta m \
             ON m.key = 'bootstrapped' AND m.value = t.id ORDER BY m.key IS NULL, t.domain",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(tenant_from).collect()
    }

    async fn insert_tenant(&self, t: &Tenant) -> StoreResult<()> {
        sqlx::query("INSERT INTO tenants (id, domain, display_name) VALUES (?, ?, ?)")
            .bind(t.id.to_string())
            .bind(t.domain.to_ascii_lowercase())
            .bind(&t.display_name)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn list_subscriptions(&self, tenant: TenantId) -> StoreResult<Vec<Subscription>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, display_name FROM subscriptions WHERE tenant_id = ? ORDER BY id",
        )
        .bind(tenant.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(Subscription {
                    id: parse::<SubscriptionId>(r, "id")?,
                    tenant_id: parse(r, "tenant_id")?,
                    display_name: r.try_get("display_name").map_err(map_err)?,
                })
            })
            .collect()
    }

    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        insert_user(&self.pool, user).await
    }

    async fn user_by_upn(&self, tenant: TenantId, upn: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE tenant_id = ? AND upn = ?")
            .bind(tenant.to_string())
            .bind(upn.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(user_from).transpose()
    }

    async fn user(&self, tenant: TenantId, id: ObjectId) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE tenant_id = ? AND object_id = ?")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(user_from).transpose()
    }

    async fn user_anywhere(&self, id: ObjectId) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE object_id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(user_from).transpose()
    }

    async fn user_by_upn_anywhere(&self, upn: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE upn = ?")
            .bind(upn.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(user_from).transpose()
    }

    async fn membership(&self, tenant: TenantId, user: ObjectId) -> StoreResult<Option<bool>> {
        sqlx::query_scalar(
            "SELECT is_admin FROM tenant_members WHERE tenant_id = ? AND user_id = ?",
        )
        .bind(tenant.to_string())
        .bind(user.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn memberships_of(&self, user: ObjectId) -> StoreResult<Vec<TenantId>> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT tenant_id FROM tenant_members WHERE user_id = ?")
                .bind(user.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows.iter()
            .map(|t| t.parse().map_err(|_| StoreError::Corrupt("tenant_id".into())))
            .collect()
    }

    async fn add_member(
        &self,
        tenant: TenantId,
        user: ObjectId,
        is_admin: bool,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO tenant_members (tenant_id, user_id, is_admin, added_at) VALUES (?, ?, ?, ?)")
            .bind(tenant.to_string())
            .bind(user.to_string())
            .bind(is_admin)
            .bind(ts(at))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn create_tenant(
        &self,
        tenant: &Tenant,
        subscription: &Subscription,
        cli_application: &ServicePrincipal,
        creator: ObjectId,
        owner: &RoleAssignmentRecord,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("INSERT INTO tenants (id, domain, display_name) VALUES (?, ?, ?)")
            .bind(tenant.id.to_string())
            .bind(tenant.domain.to_ascii_lowercase())
            .bind(&tenant.display_name)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("INSERT INTO subscriptions (id, tenant_id, display_name) VALUES (?, ?, ?)")
            .bind(subscription.id.to_string())
            .bind(tenant.id.to_string())
            .bind(&subscription.display_name)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("INSERT INTO tenant_members (tenant_id, user_id, is_admin, added_at) VALUES (?, ?, 1, ?)")
            .bind(tenant.id.to_string())
            .bind(creator.to_string())
            .bind(ts(owner.created_at))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        insert_sp(&mut *tx, cli_application).await?;
        insert_assignment(&mut *tx, owner).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn list_users(&self, tenant: TenantId) -> StoreResult<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users WHERE tenant_id = ? ORDER BY upn")
            .bind(tenant.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(user_from).collect()
    }

    async fn insert_service_principal(
        &self,
        sp: &ServicePrincipal,
        secret: Option<&ClientSecret>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        insert_sp(&mut *tx, sp).await?;
        if let Some(s) = secret {
            insert_secret(&mut *tx, s).await?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn service_principal_by_app_id(
        &self,
        tenant: TenantId,
        app_id: AppId,
    ) -> StoreResult<Option<ServicePrincipal>> {
        let row =
            sqlx::query("SELECT * FROM service_principals WHERE tenant_id = ? AND app_id = ?")
                .bind(tenant.to_string())
                .bind(app_id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.as_ref().map(sp_from).transpose()
    }

    async fn service_principal(
        &self,
        tenant: TenantId,
        id: ObjectId,
    ) -> StoreResult<Option<ServicePrincipal>> {
        let row =
            sqlx::query("SELECT * FROM service_principals WHERE tenant_id = ? AND object_id = ?")
                .bind(tenant.to_string())
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.as_ref().map(sp_from).transpose()
    }

    async fn list_service_principals(
        &self,
        tenant: TenantId,
    ) -> StoreResult<Vec<ServicePrincipal>> {
        let rows = sqlx::query(
            "SELECT * FROM service_principals WHERE tenant_id = ? ORDER BY display_name, object_id",
        )
        .bind(tenant.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(sp_from).collect()
    }

    async fn set_service_principal_enabled(
        &self,
        tenant: TenantId,
        id: ObjectId,
        enabled: bool,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE service_principals SET account_enabled = ? WHERE tenant_id = ? AND object_id = ?",
        )
        .bind(enabled)
        .bind(tenant.to_string())
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn delete_service_principal(&self, tenant: TenantId, id: ObjectId) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let done =
            sqlx::query("DELETE FROM service_principals WHERE tenant_id = ? AND object_id = ?")
                .bind(tenant.to_string())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM role_assignments WHERE principal_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn secrets_of(&self, principal: ObjectId) -> StoreResult<Vec<ClientSecret>> {
        let rows =
            sqlx::query("SELECT * FROM client_secrets WHERE principal = ? ORDER BY created_at")
                .bind(principal.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows.iter().map(secret_from).collect()
    }

    async fn add_secret(&self, secret: &ClientSecret, keep_existing: bool) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        if !keep_existing {
            sqlx::query("DELETE FROM client_secrets WHERE principal = ?")
                .bind(secret.principal.to_string())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        insert_secret(&mut *tx, secret).await?;
        tx.commit().await.map_err(map_err)
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(key_from).collect()
    }

    async fn rotate_signing_keys(
        &self,
        now: OffsetDateTime,
        new_next: &SigningKeyRecord,
        prune_retired_before: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let next: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE state = 'next'")
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
        if next == 0 {
            return Err(StoreError::Conflict("no next key to promote".into()));
        }
        sqlx::query(
            "UPDATE signing_keys SET state = 'retired', retired_at = ? WHERE state = 'active'",
        )
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("UPDATE signing_keys SET state = 'active' WHERE state = 'next'")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        insert_key(&mut *tx, new_next).await?;
        sqlx::query("DELETE FROM signing_keys WHERE state = 'retired' AND retired_at < ?")
            .bind(ts(prune_retired_before))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }
}

#[async_trait]
impl GrantStore for SqliteStore {
    async fn insert_refresh_grant(&self, g: &RefreshGrant) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO refresh_grants (digest, family, tenant_id, subject, client_id, resource, \
             scope, issued_at, expires_at, used_at, revoked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(g.digest.to_vec())
        .bind(g.family.to_string())
        .bind(g.tenant_id.to_string())
        .bind(g.subject.to_string())
        .bind(g.client_id.to_string())
        .bind(&g.resource)
        .bind(&g.scope)
        .bind(ts(g.issued_at))
        .bind(ts(g.expires_at))
        .bind(g.used_at.map(ts))
        .bind(g.revoked)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn use_refresh_grant(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
    ) -> StoreResult<Option<RefreshGrant>> {
        // The conditional UPDATE is the atomic step: of two concurrent exchanges exactly one
        // sees `used_at` still empty.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let row = sqlx::query("SELECT * FROM refresh_grants WHERE digest = ?")
            .bind(digest.to_vec())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let grant = grant_from(&row)?;
        if grant.used_at.is_none() {
            sqlx::query(
                "UPDATE refresh_grants SET used_at = ? WHERE digest = ? AND used_at IS NULL",
            )
            .bind(ts(now))
            .bind(digest.to_vec())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(Some(grant))
    }

    async fn revoke_grant_family(&self, family: GrantFamilyId) -> StoreResult<()> {
        sqlx::query("UPDATE refresh_grants SET revoked = 1 WHERE family = ?")
            .bind(family.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

fn rg_from(row: &SqliteRow) -> StoreResult<ResourceGroup> {
    Ok(ResourceGroup {
        subscription_id: parse(row, "subscription_id")?,
        name: row.try_get("name").map_err(map_err)?,
        location: row.try_get("location").map_err(map_err)?,
        created_at: from_ts(row.try_get("created_at").map_err(map_err)?)?,
    })
}

fn ws_from(row: &SqliteRow) -> StoreResult<Workspace> {
    Ok(Workspace {
        id: parse(row, "id")?,
        subscription_id: parse(row, "subscription_id")?,
        resource_group: row.try_get("rg_name").map_err(map_err)?,
        name: row.try_get("name").map_err(map_err)?,
        location: row.try_get("location").map_err(map_err)?,
        description: row.try_get("description").map_err(map_err)?,
        friendly_name: row.try_get("friendly_name").map_err(map_err)?,
        created_at: from_ts(row.try_get("created_at").map_err(map_err)?)?,
        created_by: parse(row, "created_by")?,
    })
}

fn assignment_from(row: &SqliteRow) -> StoreResult<RoleAssignmentRecord> {
    let kind: String = row.try_get("principal_type").map_err(map_err)?;
    let by: Option<String> = row.try_get("created_by").map_err(map_err)?;
    Ok(RoleAssignmentRecord {
        id: parse(row, "id")?,
        tenant_id: parse(row, "tenant_id")?,
        principal_id: parse(row, "principal_id")?,
        principal_type: PrincipalType::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt("principal_type".into()))?,
        role_id: parse(row, "role_id")?,
        scope: row.try_get("scope").map_err(map_err)?,
        created_at: from_ts(row.try_get("created_at").map_err(map_err)?)?,
        created_by: by
            .map(|b| b.parse())
            .transpose()
            .map_err(|_| StoreError::Corrupt("created_by".into()))?,
    })
}

async fn insert_assignment<'c, E: sqlx::SqliteExecutor<'c>>(
    e: E,
    a: &RoleAssignmentRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO role_assignments (id, tenant_id, principal_id, principal_type, role_id, \
         scope, scope_key, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(a.id.to_string())
    .bind(a.tenant_id.to_string())
    .bind(a.principal_id.to_string())
    .bind(a.principal_type.as_str())
    .bind(a.role_id.to_string())
    .bind(&a.scope)
    .bind(a.scope.to_ascii_lowercase())
    .bind(ts(a.created_at))
    .bind(a.created_by.map(|c| c.to_string()))
    .execute(e)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Deletes the role assignments at `scope_key` or below it.
async fn delete_assignments_within<'c, E: sqlx::SqliteExecutor<'c>>(
    e: E,
    scope_key: &str,
) -> StoreResult<()> {
    let prefix = format!("{scope_key}/");
    sqlx::query(
        "DELETE FROM role_assignments WHERE scope_key = ? OR substr(scope_key, 1, length(?)) = ?",
    )
    .bind(scope_key)
    .bind(&prefix)
    .bind(&prefix)
    .execute(e)
    .await
    .map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl RbacStore for SqliteStore {
    async fn custom_roles(&self) -> StoreResult<Vec<CustomRoleRecord>> {
        let rows = sqlx::query("SELECT * FROM role_definitions ORDER BY name_key")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(CustomRoleRecord {
                    id: parse(r, "id")?,
                    tenant_id: parse(r, "tenant_id")?,
                    name: r.try_get("name").map_err(map_err)?,
                    definition_json: r.try_get("definition").map_err(map_err)?,
                    created_at: from_ts(r.try_get("created_at").map_err(map_err)?)?,
                })
            })
            .collect()
    }

    async fn insert_custom_role(&self, role: &CustomRoleRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO role_definitions (id, tenant_id, name, name_key, definition, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(role.id.to_string())
        .bind(role.tenant_id.to_string())
        .bind(&role.name)
        .bind(role.name.to_ascii_lowercase())
        .bind(&role.definition_json)
        .bind(ts(role.created_at))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn role_assignments(&self) -> StoreResult<Vec<RoleAssignmentRecord>> {
        let rows = sqlx::query("SELECT * FROM role_assignments")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(assignment_from).collect()
    }

    async fn insert_role_assignment(&self, a: &RoleAssignmentRecord) -> StoreResult<()> {
        insert_assignment(&self.pool, a).await
    }

    async fn insert_role_assignments(&self, all: &[RoleAssignmentRecord]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        for a in all {
            insert_assignment(&mut *tx, a).await?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn delete_role_assignment(
        &self,
        id: RoleAssignmentId,
        keep: Option<&KeepOneAssignment>,
    ) -> StoreResult<RoleAssignmentRecord> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let row = sqlx::query("SELECT * FROM role_assignments WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        let record = assignment_from(&row)?;
        sqlx::query("DELETE FROM role_assignments WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if let Some(keep) = keep {
            let left: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM role_assignments WHERE role_id = ? AND scope_key = ?",
            )
            .bind(keep.role.to_string())
            .bind(&keep.scope_key)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
            if left == 0 {
                // Dropping the transaction rolls the deletion back.
                return Err(StoreError::Conflict("it is the last one".into()));
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }
}

#[async_trait]
impl ResourceStore for SqliteStore {
    async fn subscription(&self, id: SubscriptionId) -> StoreResult<Option<Subscription>> {
        let row = sqlx::query("SELECT id, tenant_id, display_name FROM subscriptions WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(|r| {
            Ok(Subscription {
                id: parse(&r, "id")?,
                tenant_id: parse(&r, "tenant_id")?,
                display_name: r.try_get("display_name").map_err(map_err)?,
            })
        })
        .transpose()
    }

    async fn put_resource_group(&self, rg: &ResourceGroup) -> StoreResult<(ResourceGroup, bool)> {
        let done = sqlx::query(
            "INSERT OR IGNORE INTO resource_groups (subscription_id, name, name_key, location, \
             created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(rg.subscription_id.to_string())
        .bind(&rg.name)
        .bind(rg.name.to_ascii_lowercase())
        .bind(&rg.location)
        .bind(ts(rg.created_at))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        let stored =
            self.resource_group(rg.subscription_id, &rg.name).await?.ok_or(StoreError::NotFound)?;
        Ok((stored, done.rows_affected() == 1))
    }

    async fn resource_group(
        &self,
        sub: SubscriptionId,
        name: &str,
    ) -> StoreResult<Option<ResourceGroup>> {
        let row =
            sqlx::query("SELECT * FROM resource_groups WHERE subscription_id = ? AND name_key = ?")
                .bind(sub.to_string())
                .bind(name.to_ascii_lowercase())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.as_ref().map(rg_from).transpose()
    }

    async fn list_resource_groups(
        &self,
        sub: SubscriptionId,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<ResourceGroup>> {
        let rows = sqlx::query(
            "SELECT * FROM resource_groups WHERE subscription_id = ? AND name_key > ? \
             ORDER BY name_key LIMIT ?",
        )
        .bind(sub.to_string())
        .bind(after.unwrap_or("").to_ascii_lowercase())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(rg_from).collect()
    }

    async fn delete_resource_group(&self, sub: SubscriptionId, name: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let services: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT name_key FROM services WHERE workspace_id IN \
             (SELECT id FROM workspaces WHERE subscription_id = ?1 AND rg_key = ?2) \
             UNION SELECT name_key FROM online_endpoints WHERE workspace_id IN \
             (SELECT id FROM workspaces WHERE subscription_id = ?1 AND rg_key = ?2))",
        )
        .bind(sub.to_string())
        .bind(name.to_ascii_lowercase())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        if services > 0 {
            return Err(StoreError::Conflict(format!(
                "the resource group '{name}' still has {services} web service(s) or online \
                 endpoint(s) in its workspaces; delete them first"
            )));
        }
        let done =
            sqlx::query("DELETE FROM resource_groups WHERE subscription_id = ? AND name_key = ?")
                .bind(sub.to_string())
                .bind(name.to_ascii_lowercase())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let key = format!("/subscriptions/{sub}/resourcegroups/{}", name.to_ascii_lowercase());
        delete_assignments_within(&mut *tx, &key).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn put_workspace(&self, ws: &Workspace) -> StoreResult<(Workspace, bool)> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let done = sqlx::query(
            "INSERT OR IGNORE INTO workspaces (id, subscription_id, rg_name, rg_key, name, \
             name_key, location, description, friendly_name, created_at, created_by) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(ws.id.to_string())
        .bind(ws.subscription_id.to_string())
        .bind(&ws.resource_group)
        .bind(ws.resource_group.to_ascii_lowercase())
        .bind(&ws.name)
        .bind(ws.name.to_ascii_lowercase())
        .bind(&ws.location)
        .bind(&ws.description)
        .bind(&ws.friendly_name)
        .bind(ts(ws.created_at))
        .bind(ws.created_by.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let created = done.rows_affected() == 1;
        if !created {
            sqlx::query(
                "UPDATE workspaces SET description = ?, friendly_name = ? WHERE subscription_id = ? \
                 AND rg_key = ? AND name_key = ?",
            )
            .bind(&ws.description)
            .bind(&ws.friendly_name)
            .bind(ws.subscription_id.to_string())
            .bind(ws.resource_group.to_ascii_lowercase())
            .bind(ws.name.to_ascii_lowercase())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        let stored = self
            .workspace(ws.subscription_id, &ws.resource_group, &ws.name)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok((stored, created))
    }

    async fn workspace(
        &self,
        sub: SubscriptionId,
        rg: &str,
        name: &str,
    ) -> StoreResult<Option<Workspace>> {
        let row = sqlx::query(
            "SELECT * FROM workspaces WHERE subscription_id = ? AND rg_key = ? AND name_key = ?",
        )
        .bind(sub.to_string())
        .bind(rg.to_ascii_lowercase())
        .bind(name.to_ascii_lowercase())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(ws_from).transpose()
    }

    async fn workspace_by_id(&self, id: WorkspaceId) -> StoreResult<Option<Workspace>> {
        let row = sqlx::query("SELECT * FROM workspaces WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(ws_from).transpose()
    }

    async fn list_workspaces(
        &self,
        sub: SubscriptionId,
        rg: Option<&str>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> StoreResult<Vec<Workspace>> {
        let (after_rg, after_name) = after
            .map(|(r, n)| (r.to_ascii_lowercase(), n.to_ascii_lowercase()))
            .unwrap_or_default();
        let rows = sqlx::query(
            "SELECT * FROM workspaces WHERE subscription_id = ? AND (? IS NULL OR rg_key = ?) \
             AND (rg_key, name_key) > (?, ?) ORDER BY rg_key, name_key LIMIT ?",
        )
        .bind(sub.to_string())
        .bind(rg.map(str::to_ascii_lowercase))
        .bind(rg.map(str::to_ascii_lowercase))
        .bind(after_rg)
        .bind(after_name)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(ws_from).collect()
    }

    async fn delete_workspace(&self, sub: SubscriptionId, rg: &str, name: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        // A workspace's running services would go on scoring with no workspace to manage them.
        let services: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT name_key FROM services WHERE workspace_id IN \
             (SELECT id FROM workspaces WHERE subscription_id = ?1 AND rg_key = ?2 AND name_key = ?3) \
             UNION SELECT name_key FROM online_endpoints WHERE workspace_id IN \
             (SELECT id FROM workspaces WHERE subscription_id = ?1 AND rg_key = ?2 AND name_key = ?3))",
        )
        .bind(sub.to_string())
        .bind(rg.to_ascii_lowercase())
        .bind(name.to_ascii_lowercase())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        if services > 0 {
            return Err(StoreError::Conflict(format!(
                "the workspace '{name}' still has {services} web service(s) or online endpoint(s); \
                 delete them first"
            )));
        }
        let done = sqlx::query(
            "DELETE FROM workspaces WHERE subscription_id = ? AND rg_key = ? AND name_key = ?",
        )
        .bind(sub.to_string())
        .bind(rg.to_ascii_lowercase())
        .bind(name.to_ascii_lowercase())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let key = format!(
            "/subscriptions/{sub}/resourcegroups/{}/providers/microsoft.machinelearningservices/workspaces/{}",
            rg.to_ascii_lowercase(),
            name.to_ascii_lowercase()
        );
        delete_assignments_within(&mut *tx, &key).await?;
        tx.commit().await.map_err(map_err)
    }
}

fn device_from(row: &SqliteRow) -> StoreResult<DeviceAuthorization> {
    let state: String = row.try_get("state").map_err(map_err)?;
    let user: Option<String> = row.try_get("user_id").map_err(map_err)?;
    let polled: Option<i64> = row.try_get("last_poll_at").map_err(map_err)?;
    Ok(DeviceAuthorization {
        digest: digest32(row.try_get("digest").map_err(map_err)?)?,
        user_code_digest: digest32(row.try_get("user_code_digest").map_err(map_err)?)?,
        tenant_id: parse(row, "tenant_id")?,
        client_id: parse(row, "client_id")?,
        resource: row.try_get("resource").map_err(map_err)?,
        scope: row.try_get("scope").map_err(map_err)?,
        v1: row.try_get("v1").map_err(map_err)?,
        created_at: from_ts(row.try_get("created_at").map_err(map_err)?)?,
        expires_at: from_ts(row.try_get("expires_at").map_err(map_err)?)?,
        interval_secs: row.try_get("interval_secs").map_err(map_err)?,
        state: DeviceState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt("device state".into()))?,
        user_id: user
            .map(|u| u.parse())
            .transpose()
            .map_err(|_| StoreError::Corrupt("user_id".into()))?,
        last_poll_at: polled.map(from_ts).transpose()?,
    })
}

fn code_from(row: &SqliteRow) -> StoreResult<AuthorizationCode> {
    Ok(AuthorizationCode {
        digest: digest32(row.try_get("digest").map_err(map_err)?)?,
        tenant_id: parse(row, "tenant_id")?,
        client_id: parse(row, "client_id")?,
        user_id: parse(row, "user_id")?,
        redirect_uri: row.try_get("redirect_uri").map_err(map_err)?,
        code_challenge: row.try_get("code_challenge").map_err(map_err)?,
        resource: row.try_get("resource").map_err(map_err)?,
        scope: row.try_get("scope").map_err(map_err)?,
        nonce: row.try_get("nonce").map_err(map_err)?,
        v1: row.try_get("v1").map_err(map_err)?,
        expires_at: from_ts(row.try_get("expires_at").map_err(map_err)?)?,
        used: row.try_get("used").map_err(map_err)?,
    })
}

#[async_trait]
impl FlowStore for SqliteStore {
    async fn insert_device_authorization(&self, d: &DeviceAuthorization) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO device_authorizations (digest, user_code_digest, tenant_id, client_id, resource, \
             scope, v1, created_at, expires_at, interval_secs, state, user_id, last_poll_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(d.digest.to_vec())
        .bind(d.user_code_digest.to_vec())
        .bind(d.tenant_id.to_string())
        .bind(d.client_id.to_string())
        .bind(&d.resource)
        .bind(&d.scope)
        .bind(d.v1)
        .bind(ts(d.created_at))
        .bind(ts(d.expires_at))
        .bind(d.interval_secs)
        .bind(d.state.as_str())
        .bind(d.user_id.map(|u| u.to_string()))
        .bind(d.last_poll_at.map(ts))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        // Expired authorizations are dropped as new ones arrive.
        sqlx::query("DELETE FROM device_authorizations WHERE expires_at < ?")
            .bind(ts(d.created_at) - 86_400)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn device_by_user_code(
        &self,
        user_code_digest: &[u8; 32],
    ) -> StoreResult<Option<DeviceAuthorization>> {
        let row = sqlx::query("SELECT * FROM device_authorizations WHERE user_code_digest = ?")
            .bind(user_code_digest.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(device_from).transpose()
    }

    async fn poll_device(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
    ) -> StoreResult<Option<DeviceAuthorization>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let row = sqlx::query("SELECT * FROM device_authorizations WHERE digest = ?")
            .bind(digest.to_vec())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let d = device_from(&row)?;
        sqlx::query("UPDATE device_authorizations SET last_poll_at = ? WHERE digest = ?")
            .bind(ts(now))
            .bind(digest.to_vec())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(d))
    }

    async fn decide_device(
        &self,
        user_code_digest: &[u8; 32],
        state: DeviceState,
        user: ObjectId,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE device_authorizations SET state = ?, user_id = ? WHERE user_code_digest = ? \
             AND state = 'pending' AND expires_at > ?",
        )
        .bind(state.as_str())
        .bind(user.to_string())
        .bind(user_code_digest.to_vec())
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn consume_device(&self, digest: &[u8; 32]) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE device_authorizations SET state = 'consumed' WHERE digest = ? AND state = 'approved'",
        )
        .bind(digest.to_vec())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_authorization_code(&self, c: &AuthorizationCode) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO authorization_codes (digest, tenant_id, client_id, user_id, redirect_uri, \
             code_challenge, resource, scope, nonce, v1, expires_at, used) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(c.digest.to_vec())
        .bind(c.tenant_id.to_string())
        .bind(c.client_id.to_string())
        .bind(c.user_id.to_string())
        .bind(&c.redirect_uri)
        .bind(&c.code_challenge)
        .bind(&c.resource)
        .bind(&c.scope)
        .bind(&c.nonce)
        .bind(c.v1)
        .bind(ts(c.expires_at))
        .bind(c.used)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        sqlx::query("DELETE FROM authorization_codes WHERE expires_at < ?")
            .bind(ts(c.expires_at) - 86_400)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn take_authorization_code(
        &self,
        digest: &[u8; 32],
    ) -> StoreResult<Option<AuthorizationCode>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let row = sqlx::query("SELECT * FROM authorization_codes WHERE digest = ?")
            .bind(digest.to_vec())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let c = code_from(&row)?;
        sqlx::query("UPDATE authorization_codes SET used = 1 WHERE digest = ?")
            .bind(digest.to_vec())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(c))
    }

    async fn revoke_refresh_token(&self, digest: &[u8; 32]) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE refresh_grants SET revoked = 1 WHERE family = \
             (SELECT family FROM refresh_grants WHERE digest = ?)",
        )
        .bind(digest.to_vec())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn refresh_grant(&self, digest: &[u8; 32]) -> StoreResult<Option<RefreshGrant>> {
        let row = sqlx::query("SELECT * FROM refresh_grants WHERE digest = ?")
            .bind(digest.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(grant_from).transpose()
    }
}

fn model_from(row: &SqliteRow) -> StoreResult<ModelVersion> {
    let tags: String = row.try_get("tags").map_err(map_err)?;
    let files: String = row.try_get("files").map_err(map_err)?;
    Ok(ModelVersion {
        workspace_id: parse(row, "workspace_id")?,
        name: row.try_get("name").map_err(map_err)?,
        version: row.try_get("version").map_err(map_err)?,
        description: row.try_get("description").map_err(map_err)?,
        tags: serde_json::from_str(&tags).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        files: serde_json::from_str(&files).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: from_ts(row.try_get("created_at").map_err(map_err)?)?,
        created_by: parse(row, "created_by")?,
    })
}

#[async_trait]
impl ModelStore for SqliteStore {
    async fn insert_model_version(&self, m: &ModelVersion) -> StoreResult<i64> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let next: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM models WHERE workspace_id = ? AND name_key = ?",
        )
        .bind(m.workspace_id.to_string())
        .bind(m.name.to_ascii_lowercase())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO models (workspace_id, name, name_key, version, description, tags, files, \
             created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(m.workspace_id.to_string())
        .bind(&m.name)
        .bind(m.name.to_ascii_lowercase())
        .bind(next)
        .bind(&m.description)
        .bind(serde_json::to_string(&m.tags).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        .bind(serde_json::to_string(&m.files).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        .bind(ts(m.created_at))
        .bind(m.created_by.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(next)
    }

    async fn model_versions(&self, ws: WorkspaceId, name: &str) -> StoreResult<Vec<ModelVersion>> {
        let rows = sqlx::query(
            "SELECT * FROM models WHERE workspace_id = ? AND name_key = ? ORDER BY version",
        )
        .bind(ws.to_string())
        .bind(name.to_ascii_lowercase())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(model_from).collect()
    }

    async fn model_version(
        &self,
        ws: WorkspaceId,
        name: &str,
        version: i64,
    ) -> StoreResult<Option<ModelVersion>> {
        let row = sqlx::query(
            "SELECT * FROM models WHERE workspace_id = ? AND name_key = ? AND version = ?",
        )
        .bind(ws.to_string())
        .bind(name.to_ascii_lowercase())
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(model_from).transpose()
    }

    async fn latest_models(&self, ws: WorkspaceId) -> StoreResult<Vec<ModelVersion>> {
        let rows = sqlx::query(
            "SELECT m.* FROM models m WHERE m.workspace_id = ? AND m.version = \
             (SELECT MAX(version) FROM models x WHERE x.workspace_id = m.workspace_id \
              AND x.name_key = m.name_key) ORDER BY m.name_key",
        )
        .bind(ws.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(model_from).collect()
    }

    async fn delete_model_version(
        &self,
        ws: WorkspaceId,
        name: &str,
        version: i64,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "DELETE FROM models WHERE workspace_id = ? AND name_key = ? AND version = ?",
        )
        .bind(ws.to_string())
        .bind(name.to_ascii_lowercase())
        .bind(version)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }
}

fn service_from(row: &SqliteRow) -> StoreResult<Service> {
    let state: String = row.try_get("state").map_err(map_err)?;
    let ic: String = row.try_get("inference_config").map_err(map_err)?;
    let dc: String = row.try_get("deployment_config").map_err(map_err)?;
    Ok(Service {
        name: row.try_get("name").map_err(map_err)?,
        workspace_id: parse(row, "workspace_id")?,
        model_name: row.try_get("model_name").map_err(map_err)?,
        model_version: row.try_get("model_version").map_err(map_err)?,
        inference_config: serde_json::from_str(&ic)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        deployment_config: serde_json::from_str(&dc)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        state: ServiceState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt("service state".into()))?,
        error: row.try_get("error").map_err(map_err)?,
        created_at: from_ts(row.try_get("created_at").map_err(map_err)?)?,
        updated_at: from_ts(row.try_get("updated_at").map_err(map_err)?)?,
        created_by: parse(row, "created_by")?,
    })
}

#[async_trait]
impl ServiceStore for SqliteStore {
    async fn put_service(&self, s: &Service) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let owner: Option<String> =
            sqlx::query_scalar("SELECT workspace_id FROM services WHERE name_key = ?")
                .bind(s.name.to_ascii_lowercase())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let endpoint_owner: Option<String> =
            sqlx::query_scalar("SELECT workspace_id FROM online_endpoints WHERE name_key = ?")
                .bind(s.name.to_ascii_lowercase())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        if owner.or(endpoint_owner).is_some_and(|o| o != s.workspace_id.to_string()) {
            return Err(StoreError::Conflict("the service name is taken".into()));
        }
        sqlx::query(
            "INSERT OR REPLACE INTO services (name_key, name, workspace_id, model_name, model_version, \
             inference_config, deployment_config, state, error, created_at, updated_at, created_by) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(s.name.to_ascii_lowercase())
        .bind(&s.name)
        .bind(s.workspace_id.to_string())
        .bind(&s.model_name)
        .bind(s.model_version)
        .bind(s.inference_config.to_string())
        .bind(s.deployment_config.to_string())
        .bind(s.state.as_str())
        .bind(&s.error)
        .bind(ts(s.created_at))
        .bind(ts(s.updated_at))
        .bind(s.created_by.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn service(&self, name: &str) -> StoreResult<Option<Service>> {
        let row = sqlx::query("SELECT * FROM services WHERE name_key = ?")
            .bind(name.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(service_from).transpose()
    }

    async fn services(&self, ws: WorkspaceId) -> StoreResult<Vec<Service>> {
        let rows = sqlx::query("SELECT * FROM services WHERE workspace_id = ? ORDER BY name_key")
            .bind(ws.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(service_from).collect()
    }

    async fn all_services(&self) -> StoreResult<Vec<Service>> {
        let rows = sqlx::query("SELECT * FROM services ORDER BY name_key")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(service_from).collect()
    }

    async fn set_service_state(
        &self,
        name: &str,
        state: ServiceState,
        error: Option<&str>,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE services SET state = ?, error = ?, updated_at = ? WHERE name_key = ?")
            .bind(state.as_str())
            .bind(error)
            .bind(ts(at))
            .bind(name.to_ascii_lowercase())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn delete_service(&self, name: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let done = sqlx::query("DELETE FROM services WHERE name_key = ?")
            .bind(name.to_ascii_lowercase())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        // An online endpoint keeps its keys when its deployment goes (as on Azure).
        sqlx::query(
            "DELETE FROM service_keys WHERE name_key = ?1 \
             AND NOT EXISTS (SELECT 1 FROM online_endpoints WHERE name_key = ?1)",
        )
        .bind(name.to_ascii_lowercase())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn service_keys(&self, name: &str) -> StoreResult<Option<SealedServiceKeys>> {
        let row = sqlx::query("SELECT * FROM service_keys WHERE name_key = ?")
            .bind(name.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(|r| -> StoreResult<SealedServiceKeys> {
            Ok(SealedServiceKeys {
                primary: r.try_get("primary_sealed").map_err(map_err)?,
                secondary: r.try_get("secondary_sealed").map_err(map_err)?,
                updated_at: from_ts(r.try_get("updated_at").map_err(map_err)?)?,
            })
        })
        .transpose()
    }

    async fn put_service_keys(&self, name: &str, keys: &SealedServiceKeys) -> StoreResult<()> {
        sqlx::query(
            "INSERT OR REPLACE INTO service_keys (name_key, primary_sealed, secondary_sealed, updated_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(name.to_ascii_lowercase())
        .bind(&keys.primary)
        .bind(&keys.secondary)
        .bind(ts(keys.updated_at))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }
}

fn json_col<T: serde::de::DeserializeOwned>(row: &SqliteRow, col: &str) -> StoreResult<T> {
    let text: String = row.try_get(col).map_err(map_err)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn endpoint_from(row: &SqliteRow) -> StoreResult<OnlineEndpoint> {
    let auth: String = row.try_get("auth_mode").map_err(map_err)?;
    let spec: Option<String> = row.try_get("deployment_spec").map_err(map_err)?;
    Ok(OnlineEndpoint {
        name: row.try_get("name").map_err(map_err)?,
        workspace_id: parse(row, "workspace_id")?,
        auth_mode: mlgate_core::services::AuthMode::parse(&auth)
            .ok_or_else(|| StoreError::Corrupt("endpoint auth mode".into()))?,
        description: row.try_get("description").map_err(map_err)?,
        tags: json_col(row, "tags")?,
        deployment: row.try_get("deployment").map_err(map_err)?,
        deployment_spec: spec
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: from_ts(row.try_get("created_at").map_err(map_err)?)?,
        updated_at: from_ts(row.try_get("updated_at").map_err(map_err)?)?,
        created_by: parse(row, "created_by")?,
    })
}

#[async_trait]
impl EndpointStore for SqliteStore {
    async fn put_endpoint(&self, e: &OnlineEndpoint) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let key = e.name.to_ascii_lowercase();
        let owners: Vec<String> = sqlx::query_scalar(
            "SELECT workspace_id FROM services WHERE name_key = ?1 \
             UNION SELECT workspace_id FROM online_endpoints WHERE name_key = ?1",
        )
        .bind(&key)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        if owners.iter().any(|o| *o != e.workspace_id.to_string()) {
            return Err(StoreError::Conflict("the endpoint name is taken".into()));
        }
        let spec = e.deployment_spec.as_ref().map(to_json).transpose()?;
        sqlx::query(
            "INSERT OR REPLACE INTO online_endpoints (name_key, name, workspace_id, auth_mode, \
             description, tags, deployment, deployment_spec, created_at, updated_at, created_by) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key)
        .bind(&e.name)
        .bind(e.workspace_id.to_string())
        .bind(e.auth_mode.as_str())
        .bind(&e.description)
        .bind(to_json(&e.tags)?)
        .bind(&e.deployment)
        .bind(spec)
        .bind(ts(e.created_at))
        .bind(ts(e.updated_at))
        .bind(e.created_by.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn endpoint(&self, name: &str) -> StoreResult<Option<OnlineEndpoint>> {
        let row = sqlx::query("SELECT * FROM online_endpoints WHERE name_key = ?")
            .bind(name.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(endpoint_from).transpose()
    }

    async fn endpoints(&self, ws: WorkspaceId) -> StoreResult<Vec<OnlineEndpoint>> {
        let rows =
            sqlx::query("SELECT * FROM online_endpoints WHERE workspace_id = ? ORDER BY name_key")
                .bind(ws.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows.iter().map(endpoint_from).collect()
    }

    async fn delete_endpoint_record(&self, name: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM online_endpoints WHERE name_key = ?")
            .bind(name.to_ascii_lowercase())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn delete_endpoint(&self, name: &str) -> StoreResult<()> {
        let key = name.to_ascii_lowercase();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let endpoints = sqlx::query("DELETE FROM online_endpoints WHERE name_key = ?")
            .bind(&key)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        let services = sqlx::query("DELETE FROM services WHERE name_key = ?")
            .bind(&key)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        if endpoints + services == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM service_keys WHERE name_key = ?")
            .bind(&key)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }
}

fn code_version_from(row: &SqliteRow) -> StoreResult<CodeVersion> {
    Ok(CodeVersion {
        workspace_id: parse(row, "workspace_id")?,
        name: row.try_get("name").map_err(map_err)?,
        version: row.try_get("version").map_err(map_err)?,
        hash: row.try_get("hash").map_err(map_err)?,
        code_uri: row.try_get("code_uri").map_err(map_err)?,
        files: json_col(row, "files")?,
        is_anonymous: row.try_get::<i64, _>("is_anonymous").map_err(map_err)? != 0,
        description: row.try_get("description").map_err(map_err)?,
        tags: json_col(row, "tags")?,
        created_at: from_ts(row.try_get("created_at").map_err(map_err)?)?,
        created_by: parse(row, "created_by")?,
    })
}

fn uploaded_from(row: &SqliteRow) -> StoreResult<UploadedBlob> {
    Ok(UploadedBlob {
        upload: row.try_get("upload").map_err(map_err)?,
        workspace_id: parse(row, "workspace_id")?,
        path: row.try_get("path").map_err(map_err)?,
        sha256: row.try_get("sha256").map_err(map_err)?,
        size: row.try_get::<i64, _>("size").map_err(map_err)?.max(0) as u64,
        metadata: json_col(row, "metadata")?,
        created_at: from_ts(row.try_get("created_at").map_err(map_err)?)?,
    })
}

#[async_trait]
impl CodeStore for SqliteStore {
    async fn insert_code_version(&self, c: &CodeVersion) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO code_versions (workspace_id, name_key, name, version, hash, code_uri, \
             files, is_anonymous, description, tags, created_at, created_by) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(c.workspace_id.to_string())
        .bind(c.name.to_ascii_lowercase())
        .bind(&c.name)
        .bind(&c.version)
        .bind(&c.hash)
        .bind(&c.code_uri)
        .bind(to_json(&c.files)?)
        .bind(i64::from(c.is_anonymous))
        .bind(&c.description)
        .bind(to_json(&c.tags)?)
        .bind(ts(c.created_at))
        .bind(c.created_by.to_string())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn code_version(
        &self,
        ws: WorkspaceId,
        name: &str,
        version: &str,
    ) -> StoreResult<Option<CodeVersion>> {
        let row = sqlx::query(
            "SELECT * FROM code_versions WHERE workspace_id = ? AND name_key = ? AND version = ?",
        )
        .bind(ws.to_string())
        .bind(name.to_ascii_lowercase())
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(code_version_from).transpose()
    }

    async fn code_versions(&self, ws: WorkspaceId, name: &str) -> StoreResult<Vec<CodeVersion>> {
        let rows = sqlx::query(
            "SELECT * FROM code_versions WHERE workspace_id = ? AND name_key = ? \
             ORDER BY created_at, version",
        )
        .bind(ws.to_string())
        .bind(name.to_ascii_lowercase())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(code_version_from).collect()
    }

    async fn put_uploaded_blob(
        &self,
        b: &UploadedBlob,
        max_files: u64,
        max_bytes: u64,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let (files, bytes): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM uploaded_blobs \
             WHERE upload = ? AND path != ?",
        )
        .bind(&b.upload)
        .bind(&b.path)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        if files.max(0) as u64 >= max_files
            || (bytes.max(0) as u64).saturating_add(b.size) > max_bytes
        {
            return Err(StoreError::Conflict("the upload area is full".into()));
        }
        sqlx::query(
            "INSERT OR REPLACE INTO uploaded_blobs (upload, path, workspace_id, sha256, size, \
             metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&b.upload)
        .bind(&b.path)
        .bind(b.workspace_id.to_string())
        .bind(&b.sha256)
        .bind(i64::try_from(b.size).unwrap_or(i64::MAX))
        .bind(to_json(&b.metadata)?)
        .bind(ts(b.created_at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn uploaded_blob(&self, upload: &str, path: &str) -> StoreResult<Option<UploadedBlob>> {
        let row = sqlx::query("SELECT * FROM uploaded_blobs WHERE upload = ? AND path = ?")
            .bind(upload)
            .bind(path)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(uploaded_from).transpose()
    }

    async fn uploaded_blobs(
        &self,
        upload: &str,
        prefix: &str,
        limit: u32,
    ) -> StoreResult<Vec<UploadedBlob>> {
        // A prefix match without LIKE, whose wildcards a path may contain.
        let rows = sqlx::query(
            "SELECT * FROM uploaded_blobs WHERE upload = ? AND substr(path, 1, ?) = ? \
             ORDER BY path LIMIT ?",
        )
        .bind(upload)
        .bind(i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX))
        .bind(prefix)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(uploaded_from).collect()
    }

    async fn set_uploaded_blob_metadata(
        &self,
        upload: &str,
        path: &str,
        metadata: &std::collections::BTreeMap<String, String>,
    ) -> StoreResult<()> {
        let done =
            sqlx::query("UPDATE uploaded_blobs SET metadata = ? WHERE upload = ? AND path = ?")
                .bind(to_json(metadata)?)
                .bind(upload)
                .bind(path)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn forget_uploads_before(&self, before: OffsetDateTime) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM uploaded_blobs WHERE created_at < ?")
            .bind(ts(before))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}

fn application_from(row: &SqliteRow) -> StoreResult<Application> {
    let owner: Option<String> = row.try_get("owner").map_err(map_err)?;
    Ok(Application {
        object_id: parse(row, "object_id")?,
        app_id: parse(row, "app_id")?,
        tenant_id: parse(row, "tenant_id")?,
        display_name: row.try_get("display_name").map_err(map_err)?,
        owner: owner
            .map(|o| o.parse::<ObjectId>())
            .transpose()
            .map_err(|_| StoreError::Corrupt("owner".into()))?,
        created_at: from_ts(row.try_get("created_at").map_err(map_err)?)?,
    })
}

fn application_secret_from(row: &SqliteRow) -> StoreResult<ClientSecret> {
    let expires: Option<i64> = row.try_get("expires_at").map_err(map_err)?;
    Ok(ClientSecret {
        id: parse::<SecretId>(row, "id")?,
        principal: parse(row, "application")?,
        digest: digest32(row.try_get("digest").map_err(map_err)?)?,
        hint: row.try_get("hint").map_err(map_err)?,
        display_name: row.try_get("display_name").map_err(map_err)?,
        created_at: from_ts(row.try_get("created_at").map_err(map_err)?)?,
        expires_at: expires.map(from_ts).transpose()?,
    })
}

#[async_trait]
impl ApplicationStore for SqliteStore {
    async fn insert_application(
        &self,
        app: &Application,
        sp: Option<&ServicePrincipal>,
        sp_secret: Option<&ClientSecret>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query(
            "INSERT INTO applications (object_id, app_id, tenant_id, display_name, owner, \
             created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(app.object_id.to_string())
        .bind(app.app_id.to_string())
        .bind(app.tenant_id.to_string())
        .bind(&app.display_name)
        .bind(app.owner.map(|o| o.to_string()))
        .bind(ts(app.created_at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if let Some(sp) = sp {
            insert_sp(&mut *tx, sp).await?;
        }
        if let Some(s) = sp_secret {
            insert_secret(&mut *tx, s).await?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn application(
        &self,
        tenant: TenantId,
        id: ObjectId,
    ) -> StoreResult<Option<Application>> {
        let row = sqlx::query("SELECT * FROM applications WHERE tenant_id = ? AND object_id = ?")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(application_from).transpose()
    }

    async fn application_by_app_id(
        &self,
        tenant: TenantId,
        app_id: AppId,
    ) -> StoreResult<Option<Application>> {
        let row = sqlx::query("SELECT * FROM applications WHERE tenant_id = ? AND app_id = ?")
            .bind(tenant.to_string())
            .bind(app_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(application_from).transpose()
    }

    async fn list_applications(&self, tenant: TenantId) -> StoreResult<Vec<Application>> {
        let rows = sqlx::query(
            "SELECT * FROM applications WHERE tenant_id = ? ORDER BY display_name, object_id",
        )
        .bind(tenant.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(application_from).collect()
    }

    async fn rename_application(
        &self,
        tenant: TenantId,
        id: ObjectId,
        display_name: &str,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE applications SET display_name = ? WHERE tenant_id = ? AND object_id = ?",
        )
        .bind(display_name)
        .bind(tenant.to_string())
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn delete_application(
        &self,
        tenant: TenantId,
        id: ObjectId,
    ) -> StoreResult<Option<ObjectId>> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let row = sqlx::query("SELECT * FROM applications WHERE tenant_id = ? AND object_id = ?")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let app = row.as_ref().map(application_from).transpose()?.ok_or(StoreError::NotFound)?;
        let sp: Option<String> = sqlx::query_scalar(
            "SELECT object_id FROM service_principals WHERE tenant_id = ? AND app_id = ?",
        )
        .bind(tenant.to_string())
        .bind(app.app_id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        if let Some(sp) = &sp {
            sqlx::query("DELETE FROM service_principals WHERE object_id = ?")
                .bind(sp)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            sqlx::query("DELETE FROM role_assignments WHERE principal_id = ?")
                .bind(sp)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        sqlx::query("DELETE FROM applications WHERE object_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        sp.map(|s| s.parse::<ObjectId>().map_err(|_| StoreError::Corrupt("object_id".into())))
            .transpose()
    }

    async fn application_secrets(&self, application: ObjectId) -> StoreResult<Vec<ClientSecret>> {
        let rows = sqlx::query(
            "SELECT * FROM application_secrets WHERE application = ? ORDER BY created_at",
        )
        .bind(application.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(application_secret_from).collect()
    }

    async fn add_application_secret(&self, s: &ClientSecret) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO application_secrets (id, application, digest, hint, display_name, \
             created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(s.id.to_string())
        .bind(s.principal.to_string())
        .bind(s.digest.to_vec())
        .bind(&s.hint)
        .bind(&s.display_name)
        .bind(ts(s.created_at))
        .bind(s.expires_at.map(ts))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn remove_secret(&self, owner: ObjectId, key: SecretId) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let a = sqlx::query("DELETE FROM client_secrets WHERE principal = ? AND id = ?")
            .bind(owner.to_string())
            .bind(key.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let b = sqlx::query("DELETE FROM application_secrets WHERE application = ? AND id = ?")
            .bind(owner.to_string())
            .bind(key.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        if a.rows_affected() + b.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }
}
