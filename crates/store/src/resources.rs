//! Subscriptions, resource groups and workspaces.

use async_trait::async_trait;
use mlgate_core::ids::{SubscriptionId, WorkspaceId, name_key};
use mlgate_core::records::{ResourceGroup, Subscription, Workspace};
use mlgate_core::store::{ResourceStore, StoreError, StoreResult};

use crate::SqlStore;
use crate::db::{Row, args};
use crate::directory::subscription_from;

pub(crate) fn rg_from(row: &Row) -> StoreResult<ResourceGroup> {
    Ok(ResourceGroup {
        subscription_id: row.parse("subscription_id")?,
        name: row.text("name")?,
        location: row.text("location")?,
        created_at: row.time("created_at")?,
    })
}

pub(crate) fn ws_from(row: &Row) -> StoreResult<Workspace> {
    Ok(Workspace {
        id: row.parse("id")?,
        subscription_id: row.parse("subscription_id")?,
        resource_group: row.text("rg_name")?,
        name: row.text("name")?,
        location: row.text("location")?,
        description: row.text("description")?,
        friendly_name: row.text("friendly_name")?,
        created_at: row.time("created_at")?,
        created_by: row.parse("created_by")?,
    })
}

pub(crate) const INSERT_RG: &str = "INSERT INTO resource_groups (subscription_id, name, name_key, \
     location, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";

pub(crate) fn rg_args(rg: &ResourceGroup) -> Vec<crate::db::Val> {
    args![rg.subscription_id, &rg.name, name_key(&rg.name), &rg.location, rg.created_at]
}

pub(crate) const INSERT_WS: &str = "INSERT INTO workspaces (id, subscription_id, rg_name, rg_key, \
     name, name_key, location, description, friendly_name, created_at, created_by) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING";

pub(crate) fn ws_args(ws: &Workspace) -> Vec<crate::db::Val> {
    args![
        ws.id,
        ws.subscription_id,
        &ws.resource_group,
        name_key(&ws.resource_group),
        &ws.name,
        name_key(&ws.name),
        &ws.location,
        &ws.description,
        &ws.friendly_name,
        ws.created_at,
        ws.created_by
    ]
}

/// Web services and online endpoints in the workspaces of one group (`$3` NULL) or in one
/// workspace: what keeps them from being deleted.
const RUNNING_IN: &str = "SELECT COUNT(*) AS n FROM (SELECT name_key FROM services WHERE \
     workspace_id IN (SELECT id FROM workspaces WHERE subscription_id = $1 AND rg_key = $2 \
     AND ($3 IS NULL OR name_key = $3)) UNION SELECT name_key FROM online_endpoints WHERE \
     workspace_id IN (SELECT id FROM workspaces WHERE subscription_id = $1 AND rg_key = $2 \
     AND ($3 IS NULL OR name_key = $3))) AS running";

#[async_trait]
impl ResourceStore for SqlStore {
    async fn subscription(&self, id: SubscriptionId) -> StoreResult<Option<Subscription>> {
        let row = self
            .db
            .opt("SELECT id, tenant_id, display_name FROM subscriptions WHERE id = $1", args![id])
            .await?;
        row.as_ref().map(subscription_from).transpose()
    }

    async fn put_resource_group(&self, rg: &ResourceGroup) -> StoreResult<(ResourceGroup, bool)> {
        let created = self.db.exec(INSERT_RG, rg_args(rg)).await?;
        let stored =
            self.resource_group(rg.subscription_id, &rg.name).await?.ok_or(StoreError::NotFound)?;
        Ok((stored, created == 1))
    }

    async fn resource_group(
        &self,
        sub: SubscriptionId,
        name: &str,
    ) -> StoreResult<Option<ResourceGroup>> {
        let row = self
            .db
            .opt(
                "SELECT * FROM resource_groups WHERE subscription_id = $1 AND name_key = $2",
                args![sub, name_key(name)],
            )
            .await?;
        row.as_ref().map(rg_from).transpose()
    }

    async fn list_resource_groups(
        &self,
        sub: SubscriptionId,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<ResourceGroup>> {
        let rows = self
            .db
            .all(
                "SELECT * FROM resource_groups WHERE subscription_id = $1 AND name_key > $2 \
                 ORDER BY name_key LIMIT $3",
                args![sub, name_key(after.unwrap_or("")), i64::from(limit)],
            )
            .await?;
        rows.iter().map(rg_from).collect()
    }

    async fn delete_resource_group(
        &self,
        sub: SubscriptionId,
        name: &str,
        scope_key: &str,
    ) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        // Lock the group's workspaces before counting what they hold: a deployment into one
        // of them (which holds its row) either committed before, and is counted, or waits and
        // then finds its workspace gone.
        tx.lock_rows(
            "SELECT id FROM workspaces WHERE subscription_id = $1 AND rg_key = $2 \
             ORDER BY id FOR UPDATE",
            args![sub, name_key(name)],
        )
        .await?;
        let running =
            tx.one(RUNNING_IN, args![sub, name_key(name), None::<String>]).await?.int("n")?;
        if running > 0 {
            return Err(StoreError::Conflict(format!("{running} services or endpoints")));
        }
        let done = tx
            .exec(
                "DELETE FROM resource_groups WHERE subscription_id = $1 AND name_key = $2",
                args![sub, name_key(name)],
            )
            .await?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        crate::rbac::delete_assignments_within(&mut tx, &name_key(scope_key)).await?;
        tx.commit().await
    }

    async fn put_workspace(&self, ws: &Workspace) -> StoreResult<(Workspace, bool)> {
        let mut tx = self.db.begin().await?;
        let created = tx.exec(INSERT_WS, ws_args(ws)).await? == 1;
        if !created {
            tx.exec(
                "UPDATE workspaces SET description = $1, friendly_name = $2 \
                 WHERE subscription_id = $3 AND rg_key = $4 AND name_key = $5",
                args![
                    &ws.description,
                    &ws.friendly_name,
                    ws.subscription_id,
                    name_key(&ws.resource_group),
                    name_key(&ws.name)
                ],
            )
            .await?;
        }
        tx.commit().await?;
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
        let row = self
            .db
            .opt(
                "SELECT * FROM workspaces WHERE subscription_id = $1 AND rg_key = $2 \
                 AND name_key = $3",
                args![sub, name_key(rg), name_key(name)],
            )
            .await?;
        row.as_ref().map(ws_from).transpose()
    }

    async fn workspace_by_id(&self, id: WorkspaceId) -> StoreResult<Option<Workspace>> {
        let row = self.db.opt("SELECT * FROM workspaces WHERE id = $1", args![id]).await?;
        row.as_ref().map(ws_from).transpose()
    }

    async fn list_workspaces(
        &self,
        sub: SubscriptionId,
        rg: Option<&str>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> StoreResult<Vec<Workspace>> {
        let (after_rg, after_name) =
            after.map(|(r, n)| (name_key(r), name_key(n))).unwrap_or_default();
        let rows = self
            .db
            .all(
                "SELECT * FROM workspaces WHERE subscription_id = $1 \
                 AND ($2 IS NULL OR rg_key = $2) AND (rg_key, name_key) > ($3, $4) \
                 ORDER BY rg_key, name_key LIMIT $5",
                args![sub, rg.map(name_key), after_rg, after_name, i64::from(limit)],
            )
            .await?;
        rows.iter().map(ws_from).collect()
    }

    async fn delete_workspace(
        &self,
        sub: SubscriptionId,
        rg: &str,
        name: &str,
        scope_key: &str,
    ) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        // A workspace's running services would go on scoring with no workspace to manage them:
        // lock the row, then count (see `delete_resource_group`).
        tx.lock_rows(
            "SELECT id FROM workspaces WHERE subscription_id = $1 AND rg_key = $2 \
             AND name_key = $3 FOR UPDATE",
            args![sub, name_key(rg), name_key(name)],
        )
        .await?;
        let running =
            tx.one(RUNNING_IN, args![sub, name_key(rg), name_key(name)]).await?.int("n")?;
        if running > 0 {
            return Err(StoreError::Conflict(format!("{running} services or endpoints")));
        }
        let done = tx
            .exec(
                "DELETE FROM workspaces WHERE subscription_id = $1 AND rg_key = $2 \
                 AND name_key = $3",
                args![sub, name_key(rg), name_key(name)],
            )
            .await?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        crate::rbac::delete_assignments_within(&mut tx, &name_key(scope_key)).await?;
        tx.commit().await
    }
}
