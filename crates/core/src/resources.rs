//! Subscriptions, resource groups and workspaces: the ARM side. Every operation authorizes
//! first (so a stranger learns nothing, not even whether a thing exists), then reads or writes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::access::Access;
use crate::clock::Clock;
use crate::directory::Directory;
use crate::error::Error;
use crate::ids::{SubscriptionId, WorkspaceId};
use crate::principal::Principal;
use crate::rbac::Scope;
use crate::rbac::catalog::*;
use crate::rbac::scope::valid_resource_group_name;
use crate::records::{ResourceGroup, Subscription, Workspace};
use crate::store::StoreError;

pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_PAGE: u32 = 1000;
pub const DEFAULT_LOCATION: &str = "local";

/// One page of a listing; `next` is the opaque `$skipToken` of the following page.
#[derive(Debug, Clone)]
pub struct PageOf<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

pub fn resource_group_scope(sub: SubscriptionId, rg: &str) -> Result<Scope, Error> {
    Access::parse_scope(&format!("/subscriptions/{sub}/resourceGroups/{rg}"))
}

pub fn workspace_scope(sub: SubscriptionId, rg: &str, name: &str) -> Result<Scope, Error> {
    Access::parse_scope(&format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/{WORKSPACE_PROVIDER}/workspaces/{name}"
    ))
}

/// Azure ML's workspace names: 3 to 33 characters, letters, digits, `-` and `_`, starting with
/// a letter or digit.
pub fn valid_workspace_name(name: &str) -> bool {
    (3..=33).contains(&name.len())
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_location(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 64
        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
}

fn encode_token(parts: &[&str]) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(parts).unwrap_or_default())
}

fn decode_token(token: &str, n: usize) -> Result<Vec<String>, Error> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<String>>(&b).ok())
        .filter(|v| v.len() == n)
        .ok_or_else(|| Error::InvalidInput("the $skipToken is not valid".into()))
}

fn page_size(top: Option<u32>) -> Result<u32, Error> {
    match top {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(Error::InvalidInput(format!("$top must be between 1 and {MAX_PAGE}"))),
    }
}

fn not_found_rg(rg: &str) -> Error {
    Error::NotFound(format!("Resource group '{rg}' could not be found."))
}

/// Workspaces read through [`Resources::workspace`] at most remembered (the cache starts
/// over when full).
const CACHED_WORKSPACES: usize = 10_000;

/// Subscriptions and workspaces remembered after a read, so that a management read is bound by
/// the work (the token from the verified-token cache, the decision from the in-memory RBAC
/// engine, the record from here) rather than by store round trips. Only records that exist are
/// kept: an unknown name costs a store read, and a flood of random names cannot fill memory.
/// Every local write forgets what it touched; another node's write arrives as
/// [`Change::Workspaces`](crate::changes::Change) and forgets them all, within the follower's
/// poll (250 ms), as for role assignments.
#[derive(Default)]
struct ReadCache {
    subscriptions: RwLock<HashMap<SubscriptionId, Subscription>>,
    workspaces: RwLock<HashMap<(SubscriptionId, String, String), Workspace>>,
    /// Bumped by every forget: a read that started before a forget does not fill the cache
    /// with what it read (it may be what the write replaced).
    generation: AtomicU64,
}

type WorkspaceKey = (SubscriptionId, String, String);

fn workspace_key(sub: SubscriptionId, rg: &str, name: &str) -> WorkspaceKey {
    (sub, rg.to_ascii_lowercase(), name.to_ascii_lowercase())
}

impl ReadCache {
    fn subscription(&self, id: SubscriptionId) -> Option<Subscription> {
        self.subscriptions.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    fn workspace(&self, key: &WorkspaceKey) -> Option<Workspace> {
        self.workspaces.read().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn remember_subscription(&self, s: &Subscription) {
        let mut m = self.subscriptions.write().unwrap_or_else(|p| p.into_inner());
        if m.len() >= CACHED_WORKSPACES {
            m.clear();
        }
        m.insert(s.id, s.clone());
    }

    fn remember_workspace(&self, key: WorkspaceKey, ws: &Workspace, read_at: u64) {
        let mut m = self.workspaces.write().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock that forgets take too, so no forget slips in between.
        if self.generation() != read_at {
            return;
        }
        if m.len() >= CACHED_WORKSPACES {
            m.clear();
        }
        m.insert(key, ws.clone());
    }

    fn forget_workspaces(&self) {
        let mut m = self.workspaces.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        m.clear();
    }
}

pub struct Resources {
    directory: Arc<Directory>,
    access: Arc<Access>,
    clock: Arc<dyn Clock>,
    cache: ReadCache,
}

impl Resources {
    pub fn new(directory: Arc<Directory>, access: Arc<Access>, clock: Arc<dyn Clock>) -> Self {
        Self { directory, access, clock, cache: ReadCache::default() }
    }

    /// Forgets the remembered workspaces (another node changed one, or the periodic
    /// reconciliation).
    pub fn forget_workspaces(&self) {
        self.cache.forget_workspaces();
    }

    /// After a local write to workspaces: forget them here, tell the other nodes.
    async fn workspaces_changed(&self) {
        self.cache.forget_workspaces();
        self.directory.publish(crate::changes::Change::Workspaces).await;
    }

    pub fn access(&self) -> &Arc<Access> {
        &self.access
    }

    /// The subscription, if it is the caller's tenant's; otherwise "not found", as ARM says.
    async fn subscription_of(&self, caller: &Principal, sub: &str) -> Result<Subscription, Error> {
        let not_found = || {
            Error::NotFound(format!(
                "The subscription '{}' could not be found.",
                sub.chars().take(64).collect::<String>()
            ))
        };
        let id: SubscriptionId = sub.parse().map_err(|_| not_found())?;
        let found = match self.cache.subscription(id) {
            Some(s) => Some(s),
            None => {
                let s = self.directory.store().subscription(id).await?;
                if let Some(s) = &s {
                    // Subscriptions are never changed or deleted once made.
                    self.cache.remember_subscription(s);
                }
                s
            }
        };
        match found {
            Some(s) if s.tenant_id == caller.tenant_id => Ok(s),
            _ => Err(not_found()),
        }
    }

    /// The subscriptions in which the caller holds any role, as `GET /subscriptions` lists them.
    pub async fn subscriptions(&self, caller: &Principal) -> Result<Vec<Subscription>, Error> {
        let all = self.directory.subscriptions(caller).await?;
        Ok(all
            .into_iter()
            .filter(|s| {
                self.access.engine().has_any_access(caller.object_id, &Scope::subscription(s.id))
            })
            .collect())
    }

    pub async fn subscription(&self, caller: &Principal, sub: &str) -> Result<Subscription, Error> {
        let s = self.subscription_of(caller, sub).await?;
        if !self.access.engine().has_any_access(caller.object_id, &Scope::subscription(s.id)) {
            self.access.authorize(caller, SUBSCRIPTION_READ, &Scope::subscription(s.id))?;
        }
        Ok(s)
    }

    pub async fn put_resource_group(
        &self,
        caller: &Principal,
        sub: &str,
        name: &str,
        location: Option<&str>,
    ) -> Result<(ResourceGroup, bool), Error> {
        let s = self.subscription_of(caller, sub).await?;
        if !valid_resource_group_name(name) {
            return Err(Error::InvalidInput(format!(
                "'{name}' is not a valid resource group name: 1 to 90 letters, digits, '-', '_', \
                 '.', '(' or ')', not ending in '.'"
            )));
        }
        let location = location.unwrap_or(DEFAULT_LOCATION).trim();
        if !valid_location(location) {
            return Err(Error::InvalidInput(format!("'{location}' is not a valid location")));
        }
        self.access.authorize(caller, RESOURCE_GROUP_WRITE, &resource_group_scope(s.id, name)?)?;
        let rg = ResourceGroup {
            subscription_id: s.id,
            name: name.to_string(),
            location: location.to_ascii_lowercase(),
            created_at: self.clock.now(),
        };
        Ok(self.directory.store().put_resource_group(&rg).await?)
    }

    pub async fn resource_group(
        &self,
        caller: &Principal,
        sub: &str,
        name: &str,
    ) -> Result<ResourceGroup, Error> {
        let s = self.subscription_of(caller, sub).await?;
        if !valid_resource_group_name(name) {
            return Err(not_found_rg(name));
        }
        self.access.authorize(caller, RESOURCE_GROUP_READ, &resource_group_scope(s.id, name)?)?;
        self.directory.store().resource_group(s.id, name).await?.ok_or_else(|| not_found_rg(name))
    }

    pub async fn list_resource_groups(
        &self,
        caller: &Principal,
        sub: &str,
        top: Option<u32>,
        skip_token: Option<&str>,
    ) -> Result<PageOf<ResourceGroup>, Error> {
        let s = self.subscription_of(caller, sub).await?;
        let limit = page_size(top)?;
        let mut after =
            skip_token.map(|t| decode_token(t, 1)).transpose()?.map(|mut v| v.remove(0));
        let mut items = Vec::new();
        // Fetch until the page is full of groups the caller may read, or the store runs out.
        loop {
            let batch =
                self.directory.store().list_resource_groups(s.id, after.as_deref(), limit).await?;
            let exhausted = (batch.len() as u32) < limit;
            for rg in batch {
                after = Some(rg.name.clone());
                let scope = resource_group_scope(s.id, &rg.name)?;
                if self.access.authorize(caller, RESOURCE_GROUP_READ, &scope).is_ok() {
                    items.push(rg);
                    if items.len() as u32 == limit {
                        let next = after.as_deref().map(|a| encode_token(&[a]));
                        return Ok(PageOf { items, next });
                    }
                }
            }
            if exhausted {
                return Ok(PageOf { items, next: None });
            }
        }
    }

    pub async fn delete_resource_group(
        &self,
        caller: &Principal,
        sub: &str,
        name: &str,
    ) -> Result<(), Error> {
        let s = self.subscription_of(caller, sub).await?;
        if !valid_resource_group_name(name) {
            return Err(not_found_rg(name));
        }
        let scope = resource_group_scope(s.id, name)?;
        self.access.authorize(caller, RESOURCE_GROUP_DELETE, &scope)?;
        self.directory.store().delete_resource_group(s.id, name, scope.key()).await.map_err(
            |e| match e {
                StoreError::NotFound => not_found_rg(name),
                StoreError::Conflict(_) => Error::Conflict(format!(
                    "the resource group '{name}' still has web services or online endpoints in \
                     its workspaces; delete them first"
                )),
                other => other.into(),
            },
        )?;
        self.access.engine().remove_assignments_within(&scope);
        self.directory.publish(crate::changes::Change::Rbac).await;
        self.workspaces_changed().await;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn put_workspace(
        &self,
        caller: &Principal,
        sub: &str,
        rg: &str,
        name: &str,
        location: Option<&str>,
        description: Option<&str>,
        friendly_name: Option<&str>,
    ) -> Result<(Workspace, bool), Error> {
        let s = self.subscription_of(caller, sub).await?;
        if !valid_resource_group_name(rg) {
            return Err(not_found_rg(rg));
        }
        if !valid_workspace_name(name) {
            return Err(Error::InvalidInput(format!(
                "'{name}' is not a valid workspace name: 3 to 33 letters, digits, '-' or '_', \
                 starting with a letter or digit"
            )));
        }
        self.access.authorize(caller, WORKSPACE_WRITE, &workspace_scope(s.id, rg, name)?)?;
        let group = self
            .directory
            .store()
            .resource_group(s.id, rg)
            .await?
            .ok_or_else(|| not_found_rg(rg))?;
        let location = location.map(str::trim).unwrap_or(&group.location).to_ascii_lowercase();
        if !valid_location(&location) {
            return Err(Error::InvalidInput(format!("'{location}' is not a valid location")));
        }
        let text = |v: Option<&str>, max: usize, what: &str| -> Result<String, Error> {
            let v = v.unwrap_or_default().trim();
            if v.len() > max || v.chars().any(char::is_control) {
                return Err(Error::InvalidInput(format!(
                    "the {what} must be at most {max} printable characters"
                )));
            }
            Ok(v.to_string())
        };
        let ws = Workspace {
            id: WorkspaceId::new_random(),
            subscription_id: s.id,
            resource_group: group.name.clone(),
            name: name.to_string(),
            location,
            description: text(description, 1024, "description")?,
            friendly_name: text(friendly_name, 128, "friendly name")?,
            created_at: self.clock.now(),
            created_by: caller.object_id,
        };
        let written = self.directory.store().put_workspace(&ws).await?;
        self.workspaces_changed().await;
        Ok(written)
    }

    pub async fn workspace(
        &self,
        caller: &Principal,
        sub: &str,
        rg: &str,
        name: &str,
    ) -> Result<Workspace, Error> {
        let s = self.subscription_of(caller, sub).await?;
        let not_found = || {
            Error::NotFound(format!(
                "Workspace '{name}' could not be found in resource group '{rg}'."
            ))
        };
        if !valid_resource_group_name(rg) || !valid_workspace_name(name) {
            return Err(not_found());
        }
        self.access.authorize(caller, WORKSPACE_READ, &workspace_scope(s.id, rg, name)?)?;
        let key = workspace_key(s.id, rg, name);
        if let Some(ws) = self.cache.workspace(&key) {
            return Ok(ws);
        }
        let read_at = self.cache.generation();
        let ws = self.directory.store().workspace(s.id, rg, name).await?.ok_or_else(not_found)?;
        self.cache.remember_workspace(key, &ws, read_at);
        Ok(ws)
    }

    pub async fn list_workspaces(
        &self,
        caller: &Principal,
        sub: &str,
        rg: Option<&str>,
        top: Option<u32>,
        skip_token: Option<&str>,
    ) -> Result<PageOf<Workspace>, Error> {
        let s = self.subscription_of(caller, sub).await?;
        if let Some(rg) = rg {
            if !valid_resource_group_name(rg) {
                return Err(not_found_rg(rg));
            }
            // Listing a group's workspaces needs the group itself to exist and be visible.
            if self.directory.store().resource_group(s.id, rg).await?.is_none() {
                self.access.authorize(
                    caller,
                    RESOURCE_GROUP_READ,
                    &resource_group_scope(s.id, rg)?,
                )?;
                return Err(not_found_rg(rg));
            }
        }
        let limit = page_size(top)?;
        let mut after = skip_token
            .map(|t| decode_token(t, 2))
            .transpose()?
            .map(|v| (v[0].clone(), v[1].clone()));
        let mut items = Vec::new();
        loop {
            let batch = self
                .directory
                .store()
                .list_workspaces(
                    s.id,
                    rg,
                    after.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                    limit,
                )
                .await?;
            let exhausted = (batch.len() as u32) < limit;
            for ws in batch {
                after = Some((ws.resource_group.clone(), ws.name.clone()));
                let scope = workspace_scope(s.id, &ws.resource_group, &ws.name)?;
                if self.access.authorize(caller, WORKSPACE_READ, &scope).is_ok() {
                    items.push(ws);
                    if items.len() as u32 == limit {
                        let next = after.as_ref().map(|(a, b)| encode_token(&[a, b]));
                        return Ok(PageOf { items, next });
                    }
                }
            }
            if exhausted {
                return Ok(PageOf { items, next: None });
            }
        }
    }

    pub async fn delete_workspace(
        &self,
        caller: &Principal,
        sub: &str,
        rg: &str,
        name: &str,
    ) -> Result<(), Error> {
        let s = self.subscription_of(caller, sub).await?;
        let not_found = || {
            Error::NotFound(format!(
                "Workspace '{name}' could not be found in resource group '{rg}'."
            ))
        };
        if !valid_resource_group_name(rg) || !valid_workspace_name(name) {
            return Err(not_found());
        }
        let scope = workspace_scope(s.id, rg, name)?;
        self.access.authorize(caller, WORKSPACE_DELETE, &scope)?;
        self.directory.store().delete_workspace(s.id, rg, name, scope.key()).await.map_err(
            |e| match e {
                StoreError::NotFound => not_found(),
                StoreError::Conflict(_) => Error::Conflict(format!(
                    "the workspace '{name}' still has web services or online endpoints; delete \
                     them first"
                )),
                other => other.into(),
            },
        )?;
        self.access.engine().remove_assignments_within(&scope);
        self.directory.publish(crate::changes::Change::Rbac).await;
        self.workspaces_changed().await;
        Ok(())
    }
}
