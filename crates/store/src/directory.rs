//! Tenants, users and their memberships, service principals and their secrets.

use async_trait::async_trait;
use mlgate_core::ids::{AppId, ObjectId, TenantId, name_key};
use mlgate_core::records::{
    ClientSecret, RoleAssignmentRecord, ServicePrincipal, Subscription, Tenant, User,
};
use mlgate_core::store::{Bootstrap, DirectoryStore, StoreError, StoreResult};
use time::OffsetDateTime;

use crate::SqlStore;
use crate::db::{Row, Tx, args};

const INSERT_TENANT: &str = "INSERT INTO tenants (id, domain, display_name) VALUES ($1, $2, $3)";
const INSERT_SUBSCRIPTION: &str =
    "INSERT INTO subscriptions (id, tenant_id, display_name) VALUES ($1, $2, $3)";
const INSERT_MEMBER: &str =
    "INSERT INTO tenant_members (tenant_id, user_id, is_admin, added_at) VALUES ($1, $2, $3, $4)";

pub(crate) fn tenant_from(row: &Row) -> StoreResult<Tenant> {
    Ok(Tenant {
        id: row.parse("id")?,
        domain: row.text("domain")?,
        display_name: row.text("display_name")?,
    })
}

pub(crate) fn subscription_from(row: &Row) -> StoreResult<Subscription> {
    Ok(Subscription {
        id: row.parse("id")?,
        tenant_id: row.parse("tenant_id")?,
        display_name: row.text("display_name")?,
    })
}

pub(crate) fn user_from(row: &Row) -> StoreResult<User> {
    Ok(User {
        object_id: row.parse("object_id")?,
        tenant_id: row.parse("tenant_id")?,
        user_principal_name: row.text("upn")?,
        display_name: row.text("display_name")?,
        password_hash: row.text("password_hash")?,
        account_enabled: row.bool("account_enabled")?,
        is_admin: row.bool("is_admin")?,
        force_change_password: row.bool("force_change_password")?,
    })
}

pub(crate) fn sp_from(row: &Row) -> StoreResult<ServicePrincipal> {
    Ok(ServicePrincipal {
        object_id: row.parse("object_id")?,
        app_id: row.parse("app_id")?,
        tenant_id: row.parse("tenant_id")?,
        display_name: row.text("display_name")?,
        account_enabled: row.bool("account_enabled")?,
        public_client: row.bool("public_client")?,
        owner: row.opt_parse("owner")?,
        created_at: row.time("created_at")?,
    })
}

/// A secret of a principal (`owner_col` = `principal`) or of an application (`application`).
pub(crate) fn secret_from(row: &Row, owner_col: &str) -> StoreResult<ClientSecret> {
    Ok(ClientSecret {
        id: row.parse("id")?,
        principal: row.parse(owner_col)?,
        digest: row.digest("digest")?,
        hint: row.text("hint")?,
        display_name: row.text("display_name")?,
        created_at: row.time("created_at")?,
        expires_at: row.opt_time("expires_at")?,
    })
}

pub(crate) async fn insert_sp(tx: &mut Tx, sp: &ServicePrincipal) -> StoreResult<()> {
    tx.exec(
        "INSERT INTO service_principals (object_id, app_id, tenant_id, display_name, \
         account_enabled, public_client, owner, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            sp.object_id,
            sp.app_id,
            sp.tenant_id,
            &sp.display_name,
            sp.account_enabled,
            sp.public_client,
            sp.owner,
            sp.created_at
        ],
    )
    .await
    .map(drop)
}

pub(crate) async fn insert_secret(tx: &mut Tx, s: &ClientSecret) -> StoreResult<()> {
    tx.exec(
        "INSERT INTO client_secrets (id, principal, digest, hint, display_name, created_at, \
         expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        args![s.id, s.principal, &s.digest, &s.hint, &s.display_name, s.created_at, s.expires_at],
    )
    .await
    .map(drop)
}

const INSERT_KEY: &str = "INSERT INTO signing_keys (kid, state, sealed_private_key, public_key, \
     created_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) async fn insert_key(
    tx: &mut Tx,
    k: &mlgate_core::records::SigningKeyRecord,
) -> StoreResult<()> {
    tx.exec(
        INSERT_KEY,
        args![
            &k.kid.0,
            k.state.as_str(),
            &k.sealed_private_key,
            &k.public_key,
            k.created_at,
            k.retired_at
        ],
    )
    .await
    .map(drop)
}

const INSERT_USER: &str = "INSERT INTO users (object_id, tenant_id, upn, display_name, \
     password_hash, account_enabled, is_admin, force_change_password) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

fn user_args(u: &User) -> Vec<crate::db::Val> {
    args![
        u.object_id,
        u.tenant_id,
        name_key(&u.user_principal_name),
        &u.display_name,
        &u.password_hash,
        u.account_enabled,
        u.is_admin,
        u.force_change_password
    ]
}

#[async_trait]
impl DirectoryStore for SqlStore {
    async fn bootstrap(&self, data: &Bootstrap) -> StoreResult<bool> {
        let mut tx = self.db.begin().await?;
        let marked = tx
            .exec(
                "INSERT INTO meta (key, value) VALUES ('bootstrapped', $1) ON CONFLICT DO NOTHING",
                args![data.tenant.id],
            )
            .await?;
        if marked == 0 {
            return Ok(false);
        }
        tx.exec(
            INSERT_TENANT,
            args![data.tenant.id, &data.tenant.domain, &data.tenant.display_name],
        )
        .await?;
        tx.exec(
            INSERT_SUBSCRIPTION,
            args![
                data.subscription.id,
                data.subscription.tenant_id,
                &data.subscription.display_name
            ],
        )
        .await?;
        tx.exec(INSERT_USER, user_args(&data.admin)).await?;
        insert_sp(&mut tx, &data.cli_application).await?;
        for k in &data.keys {
            insert_key(&mut tx, k).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        // The bootstrap tenant first: `common` resolves to it.
        let rows = self
            .db
            .all(
                "SELECT t.id, t.domain, t.display_name FROM tenants t LEFT JOIN meta m \
                 ON m.key = 'bootstrapped' AND m.value = t.id ORDER BY m.key IS NULL, t.domain",
                args![],
            )
            .await?;
        rows.iter().map(tenant_from).collect()
    }

    async fn insert_tenant(&self, t: &Tenant) -> StoreResult<()> {
        self.db
            .exec(INSERT_TENANT, args![t.id, name_key(&t.domain), &t.display_name])
            .await
            .map(drop)
    }

    async fn list_subscriptions(&self, tenant: TenantId) -> StoreResult<Vec<Subscription>> {
        let rows = self
            .db
            .all(
                "SELECT id, tenant_id, display_name FROM subscriptions WHERE tenant_id = $1 \
                 ORDER BY id",
                args![tenant],
            )
            .await?;
        rows.iter().map(subscription_from).collect()
    }

    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        self.db.exec(INSERT_USER, user_args(user)).await.map(drop)
    }

    async fn user_by_upn(&self, tenant: TenantId, upn: &str) -> StoreResult<Option<User>> {
        let row = self
            .db
            .opt(
                "SELECT * FROM users WHERE tenant_id = $1 AND upn = $2",
                args![tenant, name_key(upn)],
            )
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn user(&self, tenant: TenantId, id: ObjectId) -> StoreResult<Option<User>> {
        let row = self
            .db
            .opt("SELECT * FROM users WHERE tenant_id = $1 AND object_id = $2", args![tenant, id])
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn user_anywhere(&self, id: ObjectId) -> StoreResult<Option<User>> {
        let row = self.db.opt("SELECT * FROM users WHERE object_id = $1", args![id]).await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn user_by_upn_anywhere(&self, upn: &str) -> StoreResult<Option<User>> {
        let row = self.db.opt("SELECT * FROM users WHERE upn = $1", args![name_key(upn)]).await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn membership(&self, tenant: TenantId, user: ObjectId) -> StoreResult<Option<bool>> {
        let row = self
            .db
            .opt(
                "SELECT is_admin FROM tenant_members WHERE tenant_id = $1 AND user_id = $2",
                args![tenant, user],
            )
            .await?;
        row.map(|r| r.bool("is_admin")).transpose()
    }

    async fn memberships_of(&self, user: ObjectId) -> StoreResult<Vec<TenantId>> {
        let rows = self
            .db
            .all("SELECT tenant_id FROM tenant_members WHERE user_id = $1", args![user])
            .await?;
        rows.iter().map(|r| r.parse("tenant_id")).collect()
    }

    async fn add_member(
        &self,
        tenant: TenantId,
        user: ObjectId,
        is_admin: bool,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.db.exec(INSERT_MEMBER, args![tenant, user, is_admin, at]).await.map(drop)
    }

    async fn create_tenant(
        &self,
        tenant: &Tenant,
        subscription: &Subscription,
        cli_application: &ServicePrincipal,
        creator: ObjectId,
        owner: &RoleAssignmentRecord,
    ) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        tx.exec(INSERT_TENANT, args![tenant.id, name_key(&tenant.domain), &tenant.display_name])
            .await?;
        tx.exec(INSERT_SUBSCRIPTION, args![subscription.id, tenant.id, &subscription.display_name])
            .await?;
        tx.exec(INSERT_MEMBER, args![tenant.id, creator, true, owner.created_at]).await?;
        insert_sp(&mut tx, cli_application).await?;
        crate::rbac::insert_assignment(&mut tx, owner).await?;
        tx.commit().await
    }

    async fn list_users(&self, tenant: TenantId) -> StoreResult<Vec<User>> {
        let rows = self
            .db
            .all("SELECT * FROM users WHERE tenant_id = $1 ORDER BY upn", args![tenant])
            .await?;
        rows.iter().map(user_from).collect()
    }

    async fn update_user(&self, u: &User) -> StoreResult<()> {
        let done = self
            .db
            .exec(
                "UPDATE users SET upn = $1, display_name = $2, password_hash = $3, \
                 account_enabled = $4, force_change_password = $5 \
                 WHERE tenant_id = $6 AND object_id = $7",
                args![
                    name_key(&u.user_principal_name),
                    &u.display_name,
                    &u.password_hash,
                    u.account_enabled,
                    u.force_change_password,
                    u.tenant_id,
                    u.object_id
                ],
            )
            .await?;
        if done == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn delete_user(&self, tenant: TenantId, id: ObjectId) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        let done = tx
            .exec("DELETE FROM users WHERE tenant_id = $1 AND object_id = $2", args![tenant, id])
            .await?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        tx.exec("DELETE FROM tenant_members WHERE user_id = $1", args![id]).await?;
        tx.exec("DELETE FROM role_assignments WHERE principal_id = $1", args![id]).await?;
        tx.exec("UPDATE refresh_grants SET revoked = TRUE WHERE subject = $1", args![id]).await?;
        tx.commit().await
    }

    async fn revoke_user_grants(&self, user: ObjectId) -> StoreResult<u64> {
        self.db
            .exec(
                "UPDATE refresh_grants SET revoked = TRUE WHERE subject = $1 AND revoked = FALSE",
                args![user],
            )
            .await
    }

    async fn insert_service_principal(
        &self,
        sp: &ServicePrincipal,
        secret: Option<&ClientSecret>,
    ) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        insert_sp(&mut tx, sp).await?;
        if let Some(s) = secret {
            insert_secret(&mut tx, s).await?;
        }
        tx.commit().await
    }

    async fn service_principal_by_app_id(
        &self,
        tenant: TenantId,
        app_id: AppId,
    ) -> StoreResult<Option<ServicePrincipal>> {
        let row = self
            .db
            .opt(
                "SELECT * FROM service_principals WHERE tenant_id = $1 AND app_id = $2",
                args![tenant, app_id],
            )
            .await?;
        row.as_ref().map(sp_from).transpose()
    }

    async fn service_principal(
        &self,
        tenant: TenantId,
        id: ObjectId,
    ) -> StoreResult<Option<ServicePrincipal>> {
        let row = self
            .db
            .opt(
                "SELECT * FROM service_principals WHERE tenant_id = $1 AND object_id = $2",
                args![tenant, id],
            )
            .await?;
        row.as_ref().map(sp_from).transpose()
    }

    async fn list_service_principals(
        &self,
        tenant: TenantId,
    ) -> StoreResult<Vec<ServicePrincipal>> {
        let rows = self
            .db
            .all(
                "SELECT * FROM service_principals WHERE tenant_id = $1 \
                 ORDER BY display_name, object_id",
                args![tenant],
            )
            .await?;
        rows.iter().map(sp_from).collect()
    }

    async fn set_service_principal_enabled(
        &self,
        tenant: TenantId,
        id: ObjectId,
        enabled: bool,
    ) -> StoreResult<()> {
        let done = self
            .db
            .exec(
                "UPDATE service_principals SET account_enabled = $1 \
                 WHERE tenant_id = $2 AND object_id = $3",
                args![enabled, tenant, id],
            )
            .await?;
        if done == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn delete_service_principal(&self, tenant: TenantId, id: ObjectId) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        let done = tx
            .exec(
                "DELETE FROM service_principals WHERE tenant_id = $1 AND object_id = $2",
                args![tenant, id],
            )
            .await?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        tx.exec("DELETE FROM role_assignments WHERE principal_id = $1", args![id]).await?;
        tx.commit().await
    }

    async fn secrets_of(&self, principal: ObjectId) -> StoreResult<Vec<ClientSecret>> {
        let rows = self
            .db
            .all(
                "SELECT * FROM client_secrets WHERE principal = $1 ORDER BY created_at",
                args![principal],
            )
            .await?;
        rows.iter().map(|r| secret_from(r, "principal")).collect()
    }

    async fn add_secret(&self, secret: &ClientSecret, keep_existing: bool) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        if !keep_existing {
            tx.exec("DELETE FROM client_secrets WHERE principal = $1", args![secret.principal])
                .await?;
        }
        insert_secret(&mut tx, secret).await?;
        tx.commit().await
    }
}
