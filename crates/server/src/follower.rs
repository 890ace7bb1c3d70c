//! Following the other nodes: every node runs one [`Follower`], which reads the store's change
//! log (`changes WHERE id > last`) every `poll` (250 ms; a backend that can push wakes it at
//! once, see `ChangeStore::wait_for_change`) and reloads what each change names:
//!
//! | change | what is reloaded here |
//! |---|---|
//! | `rbac` | the RBAC engine, whole (roles and assignments) |
//! | `client` | that client's cache entry (principal, secrets) |
//! | `tenants` | the tenant list |
//! | `signing_keys` | the signing keys; verified service tokens are forgotten if a key went |
//! | `service` | its gate entry (mode, keys), and its replicas (start, restart, stop) |
//!
//! Every `reconcile` (30 s) it reloads all of it regardless, which covers a change whose
//! publish was lost (a node crashed between its write and its publish), a change of a kind
//! this version does not know, and a store that was unreachable for a while; the same pass
//! prunes change rows older than an hour and expired lock-out counts. Applying a change only
//! re-reads the store, so a change applied twice or late does no harm.
//!
//! Also here: the start-up check that this node's master key is the store's.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use mlgate_core::changes::Change;
use mlgate_core::keys::{KeySet, MasterKey};
use mlgate_core::store::Store;

use crate::state::AppState;

/// The setting that holds the master key's check value.
const MASTER_KEY_CHECK: &str = "master_key_check";
/// How long a hole in the ids is waited for (a PostgreSQL sequence hands out ids before the
/// transactions that took them commit, so a later id can be seen first).
const GAP_WAIT: Duration = Duration::from_secs(2);
/// Holes remembered at most (beyond that the reconciliation covers them).
const MAX_GAPS: usize = 1_000;
/// Rows read per poll; more wait for the next poll.
const BATCH: u32 = 1_000;
/// Change rows are kept this long (a node that stopped longer reloads everything at start).
const KEEP_CHANGES: time::Duration = time::Duration::hours(1);

/// Refuses to start with another master key than the store's: the first node stores the
/// key's check value, every later start compares. A store sealed before the check existed
/// gets it only if this key opens its signing keys.
pub async fn check_master_key(store: &dyn Store, master: &MasterKey, from_env: bool) -> Result<()> {
    let mine = master.check_value();
    let fail = |why: &str| -> Result<()> {
        let source = if from_env { "MLGATE_MASTER_KEY" } else { "the data directory's master.key" };
        bail!(
            "the master key ({source}) is not the one this store was sealed with ({why}): every \
             node sharing a store must use the same master key (set the same MLGATE_MASTER_KEY \
             on each); refusing to start"
        )
    };
    let stored = store
        .setting(MASTER_KEY_CHECK)
        .await
        .map_err(|e| anyhow::anyhow!("reading the store: {e}"))?;
    match stored {
        Some(v) if v.as_slice() == mine.as_slice() => Ok(()),
        Some(_) => fail("its check value differs"),
        None => {
            let keys = store
                .signing_keys()
                .await
                .map_err(|e| anyhow::anyhow!("reading the store: {e}"))?;
            if !keys.is_empty() && KeySet::load(&keys, master).is_err() {
                return fail("it does not open the store's signing keys");
            }
            let kept = store
                .init_setting(MASTER_KEY_CHECK, &mine)
                .await
                .map_err(|e| anyhow::anyhow!("writing the store: {e}"))?;
            if kept.as_slice() != mine.as_slice() {
                return fail("another node stored a different one just now");
            }
            Ok(())
        }
    }
}

/// Where the follower is in the log, and the holes it still waits for.
#[derive(Debug, Default)]
struct Cursor {
    last: i64,
    gaps: BTreeMap<i64, Instant>,
}

impl Cursor {
    /// The id to read after.
    fn from(&self) -> i64 {
        self.gaps.keys().next().map_or(self.last, |g| g - 1)
    }

    /// Whether the row `id` is new (to apply); notes the holes before it.
    fn accept(&mut self, id: i64, now: Instant) -> bool {
        if id > self.last {
            let first_gap = (self.last + 1).max(id - MAX_GAPS as i64);
            for g in first_gap..id {
                if self.gaps.len() < MAX_GAPS {
                    self.gaps.insert(g, now + GAP_WAIT);
                }
            }
            self.last = id;
            true
        } else {
            self.gaps.remove(&id).is_some()
        }
    }

    fn expire(&mut self, now: Instant) {
        self.gaps.retain(|_, until| *until > now);
    }
}

/// What one batch of changes asks for, each reload once.
#[derive(Debug, Default)]
struct Batch {
    rbac: bool,
    tenants: bool,
    keys: bool,
    workspaces: bool,
    /// Something this version cannot read: reconcile.
    unknown: bool,
    clients: BTreeSet<(String, String)>,
    services: BTreeSet<String>,
    parsed_clients: Vec<Change>,
}

impl Batch {
    fn add(&mut self, kind: &str, key: &str) {
        match Change::parse(kind, key) {
            Some(Change::Rbac) => self.rbac = true,
            Some(Change::Tenants) => self.tenants = true,
            Some(Change::SigningKeys) => self.keys = true,
            Some(Change::Workspaces) => self.workspaces = true,
            Some(Change::Service { name }) => {
                self.services.insert(name);
            }
            Some(c @ Change::Client { .. }) => {
                if self.clients.insert((kind.to_string(), key.to_string())) {
                    self.parsed_clients.push(c);
                }
            }
            None => self.unknown = true,
        }
    }

    fn is_empty(&self) -> bool {
        !self.rbac
            && !self.tenants
            && !self.keys
            && !self.workspaces
            && !self.unknown
            && self.clients.is_empty()
            && self.services.is_empty()
    }
}

/// The follower of one node.
pub struct Follower {
    state: AppState,
    poll: Duration,
    reconcile_every: Duration,
}

impl Follower {
    pub fn new(state: AppState, poll: Duration, reconcile_every: Duration) -> Self {
        Self { state, poll, reconcile_every }
    }

    /// Runs until the task is aborted.
    pub async fn run(self) {
        let store = self.state.store.clone();
        let mut cursor = Cursor {
            last: store.last_change_id().await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not read the change log; following from 0");
                0
            }),
            gaps: BTreeMap::new(),
        };
        let mut next_reconcile = Instant::now() + self.reconcile_every;
        let mut failing = false;
        loop {
            store.wait_for_change(self.poll).await;
            let now = Instant::now();
            cursor.expire(now);
            match store.changes_after(cursor.from(), BATCH).await {
                Ok(rows) => {
                    if failing {
                        tracing::info!("the change log is readable again; reconciling");
                        failing = false;
                        next_reconcile = now;
                    }
                    let mut batch = Batch::default();
                    for r in rows {
                        let new = cursor.accept(r.id, now);
                        if new && !self.state.authority.directory().is_own_change(r.id) {
                            batch.add(&r.kind, &r.key);
                        }
                    }
                    if !batch.is_empty() && !self.apply(batch).await {
                        next_reconcile = now + Duration::from_secs(1);
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot read the change log; serving from memory");
                        failing = true;
                    }
                    continue;
                }
            }
            if Instant::now() >= next_reconcile {
                self.reconcile().await;
                next_reconcile = Instant::now() + self.reconcile_every;
            }
        }
    }

    /// Applies one batch; false when something could not be reloaded (reconcile soon).
    async fn apply(&self, batch: Batch) -> bool {
        let s = &self.state;
        let directory = s.authority.directory();
        let mut ok = true;
        if batch.unknown {
            self.reconcile().await;
            return true;
        }
        if batch.tenants
            && let Err(e) = directory.reload_tenants().await
        {
            tracing::warn!(error = %e, "could not reload tenants");
            ok = false;
        }
        if batch.rbac
            && let Err(e) = s.access.reload().await
        {
            tracing::warn!(error = %e, "could not reload role assignments");
            ok = false;
        }
        for c in &batch.parsed_clients {
            if let Change::Client { tenant, app_id } = c {
                directory.invalidate_client(*tenant, *app_id);
            }
        }
        if batch.workspaces {
            s.resources.forget_workspaces();
        }
        if batch.keys && !self.reload_keys().await {
            ok = false;
        }
        for name in &batch.services {
            s.deployer.sync(name).await;
        }
        ok
    }

    /// Reloads the signing keys; forgets verified service tokens when a key went away.
    async fn reload_keys(&self) -> bool {
        let s = &self.state;
        let before: BTreeSet<String> = s.authority.jwks().into_iter().map(|k| k.kid).collect();
        if let Err(e) = s.authority.reload_keys().await {
            tracing::warn!(error = %e, "could not reload signing keys");
            return false;
        }
        let after: BTreeSet<String> = s.authority.jwks().into_iter().map(|k| k.kid).collect();
        if !before.is_subset(&after) {
            s.services.gate().forget_verified_tokens();
        }
        true
    }

    /// Reloads everything the changes name, and prunes the log and the lock-out counts.
    async fn reconcile(&self) {
        let s = &self.state;
        let directory = s.authority.directory();
        if let Err(e) = directory.reload_tenants().await {
            tracing::warn!(error = %e, "reconcile: tenants");
        }
        if let Err(e) = s.access.reload().await {
            tracing::warn!(error = %e, "reconcile: role assignments");
        }
        directory.clear_clients();
        s.resources.forget_workspaces();
        self.reload_keys().await;
        s.deployer.reconcile().await;
        let now = directory.now();
        if let Err(e) = s.store.prune_changes(now - KEEP_CHANGES).await {
            tracing::warn!(error = %e, "reconcile: pruning the change log");
        }
        if let Err(e) = s.authority.password_lockout().prune().await {
            tracing::warn!(error = %e, "reconcile: pruning lock-out counts");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_waits_for_holes_then_gives_up() {
        let now = Instant::now();
        let mut c = Cursor { last: 10, gaps: BTreeMap::new() };
        assert!(c.accept(11, now));
        assert_eq!(c.from(), 11);
        // 12 and 13 were taken by transactions not yet committed.
        assert!(c.accept(14, now));
        assert_eq!(c.from(), 11, "reads from before the first hole");
        assert!(!c.accept(14, now), "a row seen once is not applied again");
        assert!(c.accept(13, now), "a late row fills its hole");
        assert_eq!(c.from(), 11);
        c.expire(now + GAP_WAIT + Duration::from_millis(1));
        assert_eq!(c.from(), 14, "a hole left too long is given up");
        assert!(!c.accept(12, now));
    }

    #[test]
    fn holes_are_bounded() {
        let now = Instant::now();
        let mut c = Cursor::default();
        assert!(c.accept(1_000_000, now));
        assert!(c.gaps.len() <= MAX_GAPS);
    }

    #[test]
    fn a_batch_reloads_each_thing_once() {
        let mut b = Batch::default();
        b.add("service", "iris");
        b.add("service", "iris");
        b.add("rbac", "");
        b.add("client", "not/valid");
        assert_eq!(b.services.len(), 1);
        assert!(b.rbac && b.unknown, "an unreadable row asks for a reconciliation");
    }
}
