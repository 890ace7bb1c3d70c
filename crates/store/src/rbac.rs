//! Custom role definitions and role assignments.

use async_trait::async_trait;
use mlgate_core::ids::{RoleAssignmentId, name_key};
use mlgate_core::records::{CustomRoleRecord, PrincipalType, RoleAssignmentRecord};
use mlgate_core::store::{KeepOneAssignment, RbacStore, StoreError, StoreResult};

use crate::SqlStore;
use crate::db::{Row, Tx, args};

pub(crate) fn assignment_from(row: &Row) -> StoreResult<RoleAssignmentRecord> {
    let kind = row.text("principal_type")?;
    Ok(RoleAssignmentRecord {
        id: row.parse("id")?,
        tenant_id: row.parse("tenant_id")?,
        principal_id: row.parse("principal_id")?,
        principal_type: PrincipalType::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt("principal_type".into()))?,
        role_id: row.parse("role_id")?,
        scope: row.text("scope")?,
        created_at: row.time("created_at")?,
        created_by: row.opt_parse("created_by")?,
    })
}

pub(crate) fn role_from(r: &Row) -> StoreResult<CustomRoleRecord> {
    Ok(CustomRoleRecord {
        id: r.parse("id")?,
        tenant_id: r.parse("tenant_id")?,
        name: r.text("name")?,
        definition_json: r.text("definition")?,
        created_at: r.time("created_at")?,
    })
}

pub(crate) async fn insert_assignment(tx: &mut Tx, a: &RoleAssignmentRecord) -> StoreResult<()> {
    tx.exec(INSERT_ASSIGNMENT, assignment_args(a)).await.map(drop)
}

const INSERT_ASSIGNMENT: &str = "INSERT INTO role_assignments (id, tenant_id, principal_id, \
     principal_type, role_id, scope, scope_key, created_at, created_by) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

fn assignment_args(a: &RoleAssignmentRecord) -> Vec<crate::db::Val> {
    args![
        a.id,
        a.tenant_id,
        a.principal_id,
        a.principal_type.as_str(),
        a.role_id,
        &a.scope,
        name_key(&a.scope),
        a.created_at,
        a.created_by
    ]
}

pub(crate) const INSERT_ROLE: &str = "INSERT INTO role_definitions (id, tenant_id, name, \
     name_key, definition, created_at) VALUES ($1, $2, $3, $4, $5, $6)";

/// Deletes the role assignments at `scope_key` or below it (a prefix match without LIKE,
/// whose wildcards a scope may contain).
pub(crate) async fn delete_assignments_within(tx: &mut Tx, scope_key: &str) -> StoreResult<()> {
    let prefix = format!("{scope_key}/");
    tx.exec(
        "DELETE FROM role_assignments WHERE scope_key = $1 \
         OR substr(scope_key, 1, length($2)) = $2",
        args![scope_key, prefix],
    )
    .await
    .map(drop)
}

#[async_trait]
impl RbacStore for SqlStore {
    async fn custom_roles(&self) -> StoreResult<Vec<CustomRoleRecord>> {
        let rows = self.db.all("SELECT * FROM role_definitions ORDER BY name_key", args![]).await?;
        rows.iter().map(role_from).collect()
    }

    async fn insert_custom_role(&self, role: &CustomRoleRecord) -> StoreResult<()> {
        self.db
            .exec(
                INSERT_ROLE,
                args![
                    role.id,
                    role.tenant_id,
                    &role.name,
                    name_key(&role.name),
                    &role.definition_json,
                    role.created_at
                ],
            )
            .await
            .map(drop)
    }

    async fn role_assignments(&self) -> StoreResult<Vec<RoleAssignmentRecord>> {
        let rows = self.db.all("SELECT * FROM role_assignments ORDER BY id", args![]).await?;
        rows.iter().map(assignment_from).collect()
    }

    async fn insert_role_assignment(&self, a: &RoleAssignmentRecord) -> StoreResult<()> {
        self.db.exec(INSERT_ASSIGNMENT, assignment_args(a)).await.map(drop)
    }

    async fn insert_role_assignments(&self, all: &[RoleAssignmentRecord]) -> StoreResult<()> {
        let mut tx = self.db.begin().await?;
        for a in all {
            insert_assignment(&mut tx, a).await?;
        }
        tx.commit().await
    }

    async fn delete_role_assignment(
        &self,
        id: RoleAssignmentId,
        keep: Option<&KeepOneAssignment>,
    ) -> StoreResult<RoleAssignmentRecord> {
        let mut tx = self.db.begin().await?;
        if let Some(keep) = keep {
            // Lock every assignment that could be "the last one" before counting, in one
            // order: of two deletions racing for the last two Owners, the second waits, then
            // counts what the first left (READ COMMITTED re-reads after the wait) and refuses.
            tx.lock_rows(
                "SELECT id FROM role_assignments WHERE role_id = $1 AND scope_key = $2 \
                 ORDER BY id FOR UPDATE",
                args![keep.role, &keep.scope_key],
            )
            .await?;
        }
        let row = tx
            .opt("DELETE FROM role_assignments WHERE id = $1 RETURNING *", args![id])
            .await?
            .ok_or(StoreError::NotFound)?;
        let record = assignment_from(&row)?;
        if let Some(keep) = keep {
            let left = tx
                .one(
                    "SELECT COUNT(*) AS n FROM role_assignments WHERE role_id = $1 AND scope_key = $2",
                    args![keep.role, &keep.scope_key],
                )
                .await?
                .int("n")?;
            if left == 0 {
                // Dropping the transaction rolls the deletion back.
                return Err(StoreError::Conflict("it is the last one".into()));
            }
        }
        tx.commit().await?;
        Ok(record)
    }
}
