//! `mlgate store migrate`: every record of one store copied into another, empty one (SQLite
//! to PostgreSQL when a single node grows into several), in one transaction on the target,
//! then verified by counting each table on both sides.
//!
//! Rows are copied as they are stored (digests, sealed keys, argon2 hashes): nothing is
//! opened or re-sealed, so the same master key opens the target, and every secret a client
//! holds (client secrets, passwords, refresh tokens, service keys) still works after the move.

use mlgate_core::store::{StoreError, StoreResult};

use crate::SqlStore;
use crate::db::{Row, Val};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Int,
    Bool,
    Bytes,
}

use Kind::{Bool, Bytes, Int, Text};

/// Every table, parents before children, with its columns and their kinds.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    ("meta", &[("key", Text), ("value", Text)]),
    ("tenants", &[("id", Text), ("domain", Text), ("display_name", Text)]),
    ("subscriptions", &[("id", Text), ("tenant_id", Text), ("display_name", Text)]),
    (
        "users",
        &[
            ("object_id", Text),
            ("tenant_id", Text),
            ("upn", Text),
            ("display_name", Text),
            ("password_hash", Text),
            ("account_enabled", Bool),
            ("is_admin", Bool),
            ("force_change_password", Bool),
        ],
    ),
    (
        "tenant_members",
        &[("tenant_id", Text), ("user_id", Text), ("is_admin", Bool), ("added_at", Int)],
    ),
    (
        "service_principals",
        &[
            ("object_id", Text),
            ("app_id", Text),
            ("tenant_id", Text),
            ("display_name", Text),
            ("account_enabled", Bool),
            ("public_client", Bool),
            ("owner", Text),
            ("created_at", Int),
        ],
    ),
    (
        "client_secrets",
        &[
            ("id", Text),
            ("principal", Text),
            ("digest", Bytes),
            ("hint", Text),
            ("display_name", Text),
            ("created_at", Int),
            ("expires_at", Int),
        ],
    ),
    (
        "applications",
        &[
            ("object_id", Text),
            ("app_id", Text),
            ("tenant_id", Text),
            ("display_name", Text),
            ("owner", Text),
            ("created_at", Int),
        ],
    ),
    (
        "application_secrets",
        &[
            ("id", Text),
            ("application", Text),
            ("digest", Bytes),
            ("hint", Text),
            ("display_name", Text),
            ("created_at", Int),
            ("expires_at", Int),
        ],
    ),
    (
        "signing_keys",
        &[
            ("kid", Text),
            ("state", Text),
            ("sealed_private_key", Bytes),
            ("public_key", Bytes),
            ("created_at", Int),
            ("retired_at", Int),
        ],
    ),
    (
        "refresh_grants",
        &[
            ("digest", Bytes),
            ("family", Text),
            ("tenant_id", Text),
            ("subject", Text),
            ("client_id", Text),
            ("resource", Text),
            ("scope", Text),
            ("issued_at", Int),
            ("expires_at", Int),
            ("used_at", Int),
            ("revoked", Bool),
        ],
    ),
    (
        "device_authorizations",
        &[
            ("digest", Bytes),
            ("user_code_digest", Bytes),
            ("tenant_id", Text),
            ("client_id", Text),
            ("resource", Text),
            ("scope", Text),
            ("v1", Bool),
            ("created_at", Int),
            ("expires_at", Int),
            ("interval_secs", Int),
            ("state", Text),
            ("user_id", Text),
            ("last_poll_at", Int),
        ],
    ),
    (
        "authorization_codes",
        &[
            ("digest", Bytes),
            ("tenant_id", Text),
            ("client_id", Text),
            ("user_id", Text),
            ("redirect_uri", Text),
            ("code_challenge", Text),
            ("resource", Text),
            ("scope", Text),
            ("nonce", Text),
            ("v1", Bool),
            ("expires_at", Int),
            ("used", Bool),
        ],
    ),
    (
        "resource_groups",
        &[
            ("subscription_id", Text),
            ("name", Text),
            ("name_key", Text),
            ("location", Text),
            ("created_at", Int),
        ],
    ),
    (
        "workspaces",
        &[
            ("id", Text),
            ("subscription_id", Text),
            ("rg_name", Text),
            ("rg_key", Text),
            ("name", Text),
            ("name_key", Text),
            ("location", Text),
            ("description", Text),
            ("friendly_name", Text),
            ("created_at", Int),
            ("created_by", Text),
        ],
    ),
    (
        "role_definitions",
        &[
            ("id", Text),
            ("tenant_id", Text),
            ("name", Text),
            ("name_key", Text),
            ("definition", Text),
            ("created_at", Int),
        ],
    ),
    (
        "role_assignments",
        &[
            ("id", Text),
            ("tenant_id", Text),
            ("principal_id", Text),
            ("principal_type", Text),
            ("role_id", Text),
            ("scope", Text),
            ("scope_key", Text),
            ("created_at", Int),
            ("created_by", Text),
        ],
    ),
    (
        "models",
        &[
            ("workspace_id", Text),
            ("name", Text),
            ("name_key", Text),
            ("version", Int),
            ("description", Text),
            ("tags", Text),
            ("files", Text),
            ("created_at", Int),
            ("created_by", Text),
        ],
    ),
    (
        "services",
        &[
            ("name_key", Text),
            ("name", Text),
            ("workspace_id", Text),
            ("model_name", Text),
            ("model_version", Int),
            ("inference_config", Text),
            ("deployment_config", Text),
            ("state", Text),
            ("error", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("created_by", Text),
        ],
    ),
    (
        "service_keys",
        &[
            ("name_key", Text),
            ("primary_sealed", Bytes),
            ("secondary_sealed", Bytes),
            ("updated_at", Int),
        ],
    ),
    (
        "online_endpoints",
        &[
            ("name_key", Text),
            ("name", Text),
            ("workspace_id", Text),
            ("auth_mode", Text),
            ("description", Text),
            ("tags", Text),
            ("deployment", Text),
            ("deployment_spec", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("created_by", Text),
        ],
    ),
    (
        "code_versions",
        &[
            ("workspace_id", Text),
            ("name_key", Text),
            ("name", Text),
            ("version", Text),
            ("hash", Text),
            ("code_uri", Text),
            ("files", Text),
            ("is_anonymous", Bool),
            ("description", Text),
            ("tags", Text),
            ("created_at", Int),
            ("created_by", Text),
        ],
    ),
    (
        "uploaded_blobs",
        &[
            ("upload", Text),
            ("path", Text),
            ("workspace_id", Text),
            ("sha256", Text),
            ("size", Int),
            ("metadata", Text),
            ("created_at", Int),
        ],
    ),
    (
        "activity_log",
        &[
            ("id", Text),
            ("at", Int),
            ("tenant_id", Text),
            ("subscription_id", Text),
            ("resource_group", Text),
            ("resource_group_key", Text),
            ("caller_id", Text),
            ("caller_type", Text),
            ("caller", Text),
            ("caller_key", Text),
            ("caller_display_name", Text),
            ("operation", Text),
            ("scope", Text),
            ("method", Text),
            ("status", Text),
            ("sub_status", Text),
            ("error_code", Text),
            ("correlation_id", Text),
            ("client_address", Text),
        ],
    ),
    (
        "sign_ins",
        &[
            ("id", Text),
            ("at", Int),
            ("tenant_id", Text),
            ("user_id", Text),
            ("upn", Text),
            ("upn_key", Text),
            ("app_id", Text),
            ("app_key", Text),
            ("app_display_name", Text),
            ("service_principal_id", Text),
            ("client_address", Text),
            ("interactive", Bool),
            ("grant_type", Text),
            ("resource", Text),
            ("error_code", Int),
            ("failure_reason", Text),
            ("correlation_id", Text),
            ("attempts", Int),
            ("last_at", Int),
            ("agg_key", Text),
        ],
    ),
];

/// Rows copied per table, in copy order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub tables: Vec<(&'static str, u64)>,
}

impl CopyReport {
    pub fn total(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

fn value(row: &Row, col: &str, kind: Kind) -> StoreResult<Val> {
    Ok(match kind {
        Text => Val::Text(row.get(col)?),
        Int => Val::Int(row.get(col)?),
        Bool => Val::Bool(row.get(col)?),
        Bytes => Val::Bytes(row.get(col)?),
    })
}

async fn counts(store: &SqlStore) -> StoreResult<Vec<(&'static str, u64)>> {
    let mut out = Vec::with_capacity(TABLES.len());
    for (table, _) in TABLES {
        let rows = store.db.all_built(format!("SELECT COUNT(*) AS n FROM {table}"), vec![]).await?;
        let n = rows.first().map(|r| r.int("n")).transpose()?.unwrap_or(0);
        out.push((*table, u64::try_from(n).unwrap_or(0)));
    }
    Ok(out)
}

/// Copies every record of `from` into `to`, which must be empty (freshly migrated), in one
/// transaction; then counts every table on both sides. `Conflict` when `to` holds records;
/// `Corrupt` when the counts differ afterwards.
pub async fn copy_all(from: &SqlStore, to: &SqlStore) -> StoreResult<CopyReport> {
    if counts(to).await?.iter().any(|(_, n)| *n > 0) {
        return Err(StoreError::Conflict(
            "the target store is not empty: copy into a new database".into(),
        ));
    }
    let mut tx = to.db.begin().await?;
    for (table, cols) in TABLES {
        let names: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
        let select = format!("SELECT {} FROM {table}", names.join(", "));
        let placeholders: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
        let insert = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            names.join(", "),
            placeholders.join(", ")
        );
        for row in from.db.all_built(select, vec![]).await? {
            let args =
                cols.iter().map(|(c, k)| value(&row, c, *k)).collect::<StoreResult<Vec<_>>>()?;
            tx.exec_built(insert.clone(), args).await?;
        }
    }
    tx.commit().await?;
    let (source, target) = (counts(from).await?, counts(to).await?);
    if source != target {
        return Err(StoreError::Corrupt(format!(
            "the copy's counts differ: source {source:?}, target {target:?}"
        )));
    }
    Ok(CopyReport { tables: source })
}

#[cfg(test)]
mod tests {
    /// Every table the migrations create is copied (a new table must be added here).
    #[test]
    fn every_table_is_listed() {
        let schema = concat!(
            include_str!("../migrations/postgres/0001_schema.sql"),
            include_str!("../migrations/postgres/0003_activity_signins_users.sql")
        );
        let created: Vec<&str> = schema
            .lines()
            .filter_map(|l| l.strip_prefix("CREATE TABLE "))
            .map(|l| l.trim_end_matches(" (").trim())
            .collect();
        let listed: Vec<&str> = super::TABLES.iter().map(|(t, _)| *t).collect();
        let mut a = created.clone();
        let mut b = listed.clone();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
}
