//! Changes seen by every node. Each node keeps in memory what the hot paths read (the RBAC
//! engine, the client cache, the scoring gate, the signing keys, the running services); when a
//! use case changes one of those in the store, it appends a [`Change`] to the store's change
//! log after the write succeeded. Every node follows the log (the server's `follower`) and
//! reloads what the change names, so a change made on one node takes effect on the others
//! within a poll interval; a periodic full reconciliation covers anything missed (a node that
//! crashed between its write and its publish, a change row pruned before a node read it).
//!
//! Applying a change only ever re-reads the store, so applying one twice, or late, is harmless.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ids::{AppId, TenantId};
use crate::store::StoreResult;

/// What changed, as far as other nodes' memory is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Role assignments or role definitions (any of them: the engine is reloaded whole).
    Rbac,
    /// A client's principal, application or secrets (disabled, deleted, reset, added).
    Client { tenant: TenantId, app_id: AppId },
    /// Tenants (created, or their domains).
    Tenants,
    /// A web service: deployed, updated (model, configuration, auth mode), deleted, or its
    /// keys regenerated. Names are compared case-insensitively.
    Service { name: String },
    /// The signing keys (rotated by a node or by `mlgate keys rotate`).
    SigningKeys,
    /// Workspaces (created, updated, deleted, or their resource group deleted): nodes forget
    /// the workspaces they remember.
    Workspaces,
}

impl Change {
    /// The `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rbac => "rbac",
            Self::Client { .. } => "client",
            Self::Tenants => "tenants",
            Self::Service { .. } => "service",
            Self::SigningKeys => "signing_keys",
            Self::Workspaces => "workspaces",
        }
    }

    /// The `key` column: what within the kind changed ("" when the kind is reloaded whole).
    pub fn key(&self) -> String {
        match self {
            Self::Client { tenant, app_id } => format!("{tenant}/{app_id}"),
            Self::Service { name } => name.to_ascii_lowercase(),
            Self::Rbac | Self::Tenants | Self::SigningKeys | Self::Workspaces => String::new(),
        }
    }

    /// Reads a row back; `None` for a kind this version does not know (a newer node wrote
    /// it: the reconciliation covers it).
    pub fn parse(kind: &str, key: &str) -> Option<Self> {
        Some(match kind {
            "rbac" => Self::Rbac,
            "tenants" => Self::Tenants,
            "signing_keys" => Self::SigningKeys,
            "workspaces" => Self::Workspaces,
            "service" => Self::Service { name: key.to_string() },
            "client" => {
                let (t, a) = key.split_once('/')?;
                Self::Client { tenant: t.parse().ok()?, app_id: a.parse().ok()? }
            }
            _ => return None,
        })
    }
}

/// One row of the change log.
#[derive(Debug, Clone)]
pub struct ChangeRecord {
    /// Assigned by the store, increasing.
    pub id: i64,
    pub kind: String,
    pub key: String,
    pub at: OffsetDateTime,
}

/// The change log and the few settings every node shares.
#[async_trait]
pub trait ChangeStore: Send + Sync {
    /// Appends a change; returns its id.
    async fn publish_change(&self, kind: &str, key: &str, at: OffsetDateTime) -> StoreResult<i64>;
    /// Changes with `id > after`, oldest first, at most `limit`.
    async fn changes_after(&self, after: i64, limit: u32) -> StoreResult<Vec<ChangeRecord>>;
    /// The highest id in the log (0 when empty): where a starting node begins to follow.
    async fn last_change_id(&self) -> StoreResult<i64>;
    /// Deletes changes recorded before `before`; returns how many.
    async fn prune_changes(&self, before: OffsetDateTime) -> StoreResult<u64>;
    /// Waits until another node may have published a change, at most `max_wait`.
    ///
    /// THE NOTIFY HOOK: a backend that can push (PostgreSQL's `LISTEN mlgate_changes`, woken
    /// by a `NOTIFY` in `publish_change`) overrides this to return as soon as a notification
    /// arrives; the default just sleeps, so the follower polls.
    async fn wait_for_change(&self, max_wait: Duration) {
        tokio::time::sleep(max_wait).await;
    }
    /// A shared setting by name.
    async fn setting(&self, name: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Stores `value` under `name` unless a value is there already; returns the stored value
    /// (the one given, or the one that was there). Atomic, so nodes starting together agree.
    async fn init_setting(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>>;
}

/// Ids this node published itself (its own memory is already up to date), so the follower
/// skips them. Bounded: forgetting one only costs a harmless reload.
#[derive(Default)]
pub struct OwnChanges {
    ids: Mutex<VecDeque<i64>>,
}

const OWN_CHANGES_MAX: usize = 4096;

impl OwnChanges {
    pub fn record(&self, id: i64) {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        if ids.len() >= OWN_CHANGES_MAX {
            ids.pop_front();
        }
        ids.push_back(id);
    }

    /// Whether `id` was this node's; forgets it.
    pub fn take(&self, id: i64) -> bool {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        match ids.iter().position(|x| *x == id) {
            Some(i) => {
                ids.remove(i);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_survive_their_row() {
        let all = [
            Change::Rbac,
            Change::Tenants,
            Change::SigningKeys,
            Change::Workspaces,
            Change::Service { name: "iris".into() },
            Change::Client { tenant: TenantId::new_random(), app_id: AppId::new_random() },
        ];
        for c in all {
            assert_eq!(Change::parse(c.kind(), &c.key()), Some(c.clone()));
        }
        assert_eq!(Change::parse("from_the_future", ""), None);
        assert_eq!(Change::parse("client", "not-a-key"), None);
        assert_eq!(
            Change::parse("service", &Change::Service { name: "IRIS".into() }.key()),
            Some(Change::Service { name: "iris".into() })
        );
    }

    #[test]
    fn own_changes_are_taken_once_and_bounded() {
        let own = OwnChanges::default();
        own.record(5);
        assert!(own.take(5));
        assert!(!own.take(5));
        for i in 0..(OWN_CHANGES_MAX as i64 + 10) {
            own.record(i);
        }
        assert!(!own.take(0), "the oldest were forgotten");
        assert!(own.take(OWN_CHANGES_MAX as i64 + 9));
    }
}
