//! Graph's application objects and their secrets, beside their service principals.

use async_trait::async_trait;
use mlgate_core::ids::{AppId, ObjectId, SecretId, TenantId};
use mlgate_core::records::{Application, ClientSecret, ServicePrincipal};
use mlgate_core::store::{ApplicationStore, StoreError, StoreResult};

use crate::SqlStore;
use crate::db::{Row, args};
use crate::directory::{insert_secret, insert_sp, secret_from};

pub(crate) fn application_from(row: &Row) -> StoreResult<Application> {
    Ok(Application {
        object_id: row.parse("object_id")?,
        app_id: row.parse("app_id")?,
        tenant_id: row.parse("tenant_id")?,
        display_name: row.text("display_name")?,
        owner: row.opt_parse("owner")?,
        created_at: row.time("created_at")?,
    })
}

pub(crate) const INSERT_APPLICATION: &str = "INSERT INTO applications (object_id, app_id, \
     tenant_id, display_name, owner, created_at) VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) fn application_args(app: &Application) -> Vec<crate::db::Val> {
    args![app.object_id, app.app_id, app.tenant_id, &app.display_name, app.owner, app.created_at]
}

pub(crate) const INSERT_APPLICATION_SECRET: &str = "INSERT INTO application_secrets (id, \
     application, digest, hint, display_name, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(crate) fn application_secret_args(s: &ClientSecret) -> Vec<crate::db::Val> {
    args![s.id, s.principal, &s.digest, &s.hint, &s.display_name, s.created_at, s.expires_at]
}

#[async_trait]
impl ApplicationStore for SqlStore {
    async fn insert_application(
        &self,
        app: &Application,
        sp: Option<&ServicePrincipal>,
        sp_secret: Option<&ClientSecret>,
    ) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        tx.exec(INSERT_APPLICATION, application_args(app)).await?;
        if let Some(sp) = sp {
            insert_sp(&mut tx, sp).await?;
        }
        if let Some(s) = sp_secret {
            insert_secret(&mut tx, s).await?;
        }
        tx.commit().await
    }

    async fn application(
        &self,
        tenant: TenantId,
        id: ObjectId,
    ) -> StoreResult<Option<Application>> {
        let row = self
            .db
            .opt(
                "SELECT * FROM applications WHERE tenant_id = $1 AND object_id = $2",
                args![tenant, id],
            )
            .await?;
        row.as_ref().map(application_from).transpose()
    }

    async fn application_by_app_id(
        &self,
        tenant: TenantId,
        app_id: AppId,
    ) -> StoreResult<Option<Application>> {
        let row = self
            .db
            .opt(
                "SELECT * FROM applications WHERE tenant_id = $1 AND app_id = $2",
                args![tenant, app_id],
            )
            .await?;
        row.as_ref().map(application_from).transpose()
    }

    async fn list_applications(&self, tenant: TenantId) -> StoreResult<Vec<Application>> {
        let rows = self
            .db
            .all(
                "SELECT * FROM applications WHERE tenant_id = $1 ORDER BY display_name, object_id",
                args![tenant],
            )
            .await?;
        rows.iter().map(application_from).collect()
    }

    async fn rename_application(
        &self,
        tenant: TenantId,
        id: ObjectId,
        display_name: &str,
    ) -> StoreResult<()> {
        let done = self
            .db
            .exec(
                "UPDATE applications SET display_name = $1 WHERE tenant_id = $2 AND object_id = $3",
                args![display_name, tenant, id],
            )
            .await?;
        if done == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn delete_application(
        &self,
        tenant: TenantId,
        id: ObjectId,
    ) -> StoreResult<Option<ObjectId>> {
        let mut tx = self.db.begin().await?;
        let app = tx
            .opt(
                "DELETE FROM applications WHERE tenant_id = $1 AND object_id = $2 RETURNING *",
                args![tenant, id],
            )
            .await?
            .as_ref()
            .map(application_from)
            .transpose()?
            .ok_or(StoreError::NotFound)?;
        let sp = tx
            .opt(
                "DELETE FROM service_principals WHERE tenant_id = $1 AND app_id = $2 \
                 RETURNING object_id",
                args![tenant, app.app_id],
            )
            .await?
            .map(|r| r.parse::<ObjectId>("object_id"))
            .transpose()?;
        if let Some(sp) = sp {
            tx.exec("DELETE FROM role_assignments WHERE principal_id = $1", args![sp]).await?;
        }
        tx.commit().await?;
        Ok(sp)
    }

    async fn application_secrets(&self, application: ObjectId) -> StoreResult<Vec<ClientSecret>> {
        let rows = self
            .db
            .all(
                "SELECT * FROM application_secrets WHERE application = $1 ORDER BY created_at",
                args![application],
            )
            .await?;
        rows.iter().map(|r| secret_from(r, "application")).collect()
    }

    async fn add_application_secret(&self, s: &ClientSecret) -> StoreResult<()> {
        self.db.exec(INSERT_APPLICATION_SECRET, application_secret_args(s)).await.map(drop)
    }

    async fn remove_secret(&self, owner: ObjectId, key: SecretId) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        let a = tx
            .exec("DELETE FROM client_secrets WHERE principal = $1 AND id = $2", args![owner, key])
            .await?;
        let b = tx
            .exec(
                "DELETE FROM application_secrets WHERE application = $1 AND id = $2",
                args![owner, key],
            )
            .await?;
        tx.commit().await?;
        if a + b == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }
}
