//! The activity log and the sign-in log. An activity record is also inserted by [`Tx::commit`]
//! when the current request has one pending (see `mlgate_core::activity`): [`insert_activity`]
//! is the one statement for both.

use async_trait::async_trait;
use mlgate_core::activity::{ActivityQuery, ActivityRecord, ActivityStatus};
use mlgate_core::ids::name_key;
use mlgate_core::signins::{SignInQuery, SignInRecord};
use mlgate_core::store::{AuditStore, StoreError, StoreResult};
use time::OffsetDateTime;

use crate::SqlStore;
use crate::db::{Row, Tx, Val, args};

const INSERT_ACTIVITY: &str = "INSERT INTO activity_log (id, at, tenant_id, subscription_id, \
     resource_group, resource_group_key, caller_id, caller_type, caller, caller_key, \
     caller_display_name, operation, scope, method, status, sub_status, error_code, \
     correlation_id, client_address) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
     $13, $14, $15, $16, $17, $18, $19)";

fn activity_args(r: &ActivityRecord) -> Vec<Val> {
    args![
        r.id.to_string(),
        r.at,
        r.tenant_id,
        r.subscription_id.as_ref().map(|s| s.to_ascii_lowercase()),
        &r.resource_group,
        r.resource_group.as_deref().map(name_key),
        &r.caller_id,
        &r.caller_type,
        &r.caller,
        name_key(&r.caller),
        &r.caller_display_name,
        &r.operation,
        &r.scope,
        &r.method,
        r.status.as_str(),
        &r.sub_status,
        &r.error_code,
        &r.correlation_id,
        &r.client_address,
    ]
}

/// Inserts the record in `tx` (the write it describes commits with it).
pub(crate) async fn insert_activity(tx: &mut Tx, r: &ActivityRecord) -> StoreResult<()> {
    tx.exec(INSERT_ACTIVITY, activity_args(r)).await.map(drop)
}

fn activity_from(row: &Row) -> StoreResult<ActivityRecord> {
    let status = row.text("status")?;
    Ok(ActivityRecord {
        id: row.parse("id")?,
        at: row.time("at")?,
        tenant_id: row.opt_parse("tenant_id")?,
        subscription_id: row.opt_text("subscription_id")?,
        resource_group: row.opt_text("resource_group")?,
        caller_id: row.opt_text("caller_id")?,
        caller_type: row.text("caller_type")?,
        caller: row.text("caller")?,
        caller_display_name: row.text("caller_display_name")?,
        operation: row.text("operation")?,
        scope: row.text("scope")?,
        method: row.text("method")?,
        status: ActivityStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status: '{status}'")))?,
        sub_status: row.opt_text("sub_status")?,
        error_code: row.opt_text("error_code")?,
        correlation_id: row.text("correlation_id")?,
        client_address: row.opt_text("client_address")?,
    })
}

const SIGN_IN_COLUMNS: &str = "INSERT INTO sign_ins (id, at, tenant_id, user_id, upn, upn_key, \
     app_id, app_key, app_display_name, service_principal_id, client_address, interactive, \
     grant_type, resource, error_code, failure_reason, correlation_id, attempts, last_at, \
     agg_key) VALUES ";
/// A record whose aggregation key is already there (an earlier batch of the same minute, or
/// another node's) adds its count into it: the record stays the first attempt's.
const SIGN_IN_UPSERT: &str = " ON CONFLICT (agg_key) DO UPDATE SET \
     attempts = sign_ins.attempts + excluded.attempts, \
     last_at = CASE WHEN excluded.last_at > sign_ins.last_at THEN excluded.last_at \
     ELSE sign_ins.last_at END";
const SIGN_IN_ARITY: usize = 20;
/// Rows per INSERT: one statement per 64 records rather than one per record.
const SIGN_INS_PER_STATEMENT: usize = 64;

/// `INSERT ... VALUES ($1, ..., $20), ($21, ...) ON CONFLICT ...` for `rows` rows:
/// placeholders only.
fn insert_sign_ins_sql(rows: usize) -> String {
    use std::fmt::Write;
    let mut sql = String::with_capacity(SIGN_IN_COLUMNS.len() + rows * SIGN_IN_ARITY * 5);
    sql.push_str(SIGN_IN_COLUMNS);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..SIGN_IN_ARITY {
            let sep = if c == 0 { "" } else { ", " };
            let _ = write!(sql, "{sep}${}", r * SIGN_IN_ARITY + c + 1);
        }
        sql.push(')');
    }
    sql.push_str(SIGN_IN_UPSERT);
    sql
}

fn sign_in_args((r, key): &(SignInRecord, Option<String>)) -> Vec<Val> {
    args![
        r.id.to_string(),
        r.at,
        r.tenant_id,
        &r.user_id,
        &r.user_principal_name,
        r.user_principal_name.as_deref().map(name_key),
        &r.app_id,
        r.app_id.as_deref().map(name_key),
        &r.app_display_name,
        &r.service_principal_id,
        &r.client_address,
        r.interactive,
        &r.grant,
        &r.resource,
        i64::from(r.error_code),
        &r.failure_reason,
        &r.correlation_id,
        i64::from(r.count),
        r.last_at,
        key,
    ]
}

fn sign_in_from(row: &Row) -> StoreResult<SignInRecord> {
    Ok(SignInRecord {
        id: row.parse("id")?,
        at: row.time("at")?,
        tenant_id: row.opt_parse("tenant_id")?,
        user_id: row.opt_text("user_id")?,
        user_principal_name: row.opt_text("upn")?,
        app_id: row.opt_text("app_id")?,
        app_display_name: row.opt_text("app_display_name")?,
        service_principal_id: row.opt_text("service_principal_id")?,
        client_address: row.text("client_address")?,
        interactive: row.bool("interactive")?,
        grant: row.text("grant_type")?,
        resource: row.opt_text("resource")?,
        error_code: u32::try_from(row.int("error_code")?)
            .map_err(|_| StoreError::Corrupt("error_code".into()))?,
        failure_reason: row.opt_text("failure_reason")?,
        correlation_id: row.text("correlation_id")?,
        count: u32::try_from(row.int("attempts")?.min(i64::from(u32::MAX)))
            .map_err(|_| StoreError::Corrupt("attempts".into()))?,
        last_at: row.time("last_at")?,
    })
}

/// The records with their aggregation keys, those sharing a key merged into one: one
/// statement may not update the same row twice (PostgreSQL refuses it).
fn keyed(records: &[SignInRecord]) -> Vec<(SignInRecord, Option<String>)> {
    let mut out: Vec<(SignInRecord, Option<String>)> = Vec::with_capacity(records.len());
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for r in records {
        let key = r.aggregation_key();
        if let Some(k) = &key {
            if let Some(&i) = at.get(k) {
                out[i].0.absorb(r);
                continue;
            }
            at.insert(k.clone(), out.len());
        }
        out.push((r.clone(), key));
    }
    out
}

/// The keyset cursor's two arguments (both null for the first page).
fn before_args(before: Option<(OffsetDateTime, uuid::Uuid)>) -> (Option<i64>, Option<String>) {
    match before {
        Some((at, id)) => (Some(at.unix_timestamp()), Some(id.to_string())),
        None => (None, None),
    }
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn insert_activity(&self, record: &ActivityRecord) -> StoreResult<()> {
        self.db.exec(INSERT_ACTIVITY, activity_args(record)).await.map(drop)
    }

    async fn activity(&self, q: &ActivityQuery) -> StoreResult<Vec<ActivityRecord>> {
        let (before_at, before_id) = before_args(q.before);
        let rows = self
            .db
            .all(
                "SELECT * FROM activity_log WHERE tenant_id = $1 AND at >= $2 AND at <= $3 \
                 AND (CAST($4 AS TEXT) IS NULL OR subscription_id = $4 OR subscription_id IS NULL) \
                 AND (CAST($5 AS TEXT) IS NULL OR resource_group_key = $5) \
                 AND (CAST($6 AS TEXT) IS NULL OR caller_key = $6 OR caller_id = $6) \
                 AND (CAST($7 AS BIGINT) IS NULL OR (at, id) < ($7, $8)) \
                 ORDER BY at DESC, id DESC LIMIT $9",
                args![
                    q.tenant_id,
                    q.start,
                    q.end,
                    q.subscription_id.as_ref().map(|s| s.to_ascii_lowercase()),
                    q.resource_group.as_deref().map(name_key),
                    q.caller.as_deref().map(name_key),
                    before_at,
                    before_id,
                    i64::from(q.limit),
                ],
            )
            .await?;
        rows.iter().map(activity_from).collect()
    }

    async fn prune_activity(&self, before: OffsetDateTime) -> StoreResult<u64> {
        self.db.exec("DELETE FROM activity_log WHERE at < $1", args![before]).await
    }

    async fn insert_sign_ins(&self, records: &[SignInRecord]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let records = keyed(records);
        let mut tx = self.db.begin().await?;
        for chunk in records.chunks(SIGN_INS_PER_STATEMENT) {
            let args: Vec<Val> = chunk.iter().flat_map(sign_in_args).collect();
            tx.exec_built(insert_sign_ins_sql(chunk.len()), args).await?;
        }
        tx.commit().await
    }

    async fn sign_ins(&self, q: &SignInQuery) -> StoreResult<Vec<SignInRecord>> {
        let (before_at, before_id) = before_args(q.before);
        let rows = self
            .db
            .all(
                "SELECT * FROM sign_ins WHERE (CAST($1 AS TEXT) IS NULL OR tenant_id = $1) \
                 AND (CAST($2 AS TEXT) IS NULL OR upn_key = $2 OR user_id = $2) \
                 AND (CAST($3 AS TEXT) IS NULL OR app_key = $3) \
                 AND ($4 = FALSE OR error_code <> 0) \
                 AND (CAST($5 AS BIGINT) IS NULL OR at >= $5) \
                 AND (CAST($6 AS BIGINT) IS NULL OR at <= $6) \
                 AND (CAST($7 AS BIGINT) IS NULL OR (at, id) < ($7, $8)) \
                 ORDER BY at DESC, id DESC LIMIT $9",
                args![
                    q.tenant_id,
                    q.user.as_deref().map(name_key),
                    q.app.as_deref().map(name_key),
                    q.failures_only,
                    q.start,
                    q.end,
                    before_at,
                    before_id,
                    i64::from(q.limit),
                ],
            )
            .await?;
        rows.iter().map(sign_in_from).collect()
    }

    async fn prune_sign_ins(&self, before: OffsetDateTime) -> StoreResult<u64> {
        self.db.exec("DELETE FROM sign_ins WHERE at < $1", args![before]).await
    }
}
