//! The directory: bootstrap, tenant resolution, and the service-principal use cases.
//!
//! Client lookups on the token path go through a short-lived cache (see [`ClientCache`]): local
//! writes invalidate it at once; other nodes sharing the store see a change within the TTL.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;

use time::{Duration, OffsetDateTime};

use crate::changes::{Change, OwnChanges};
use crate::clock::Clock;
use crate::error::Error;
use crate::ids::{AppId, ObjectId, SecretId, SubscriptionId, TenantId};
use crate::keys::{MasterKey, new_signing_key};
use crate::password::hash_password;
use crate::principal::Principal;
use crate::records::{
    Application, ClientSecret, KeyState, ServicePrincipal, Subscription, Tenant, User,
};
use crate::secrets::{hint, new_client_secret, sha256};
use crate::store::{Bootstrap, Store};

/// What the first start created, for the operator.
#[derive(Debug, Clone)]
pub struct BootstrapReport {
    pub created: bool,
    pub tenant: Option<Tenant>,
    pub admin_user_principal_name: Option<String>,
    /// Present only when the password was generated; printed once, never stored in clear.
    pub generated_password: Option<String>,
}

pub const DEFAULT_SECRET_YEARS: u32 = 1;
const MAX_SECRET_YEARS: u32 = 100;
const MAX_DISPLAY_NAME: usize = 120;

/// Creates the default tenant, subscription, admin, CLI application and signing keys, unless
/// the store already has a tenant. Idempotent: a restart changes nothing.
pub async fn bootstrap(
    store: &dyn Store,
    master: &MasterKey,
    clock: &dyn Clock,
    domain: &str,
    admin_password: Option<String>,
) -> Result<BootstrapReport, Error> {
    if !store.list_tenants().await?.is_empty() {
        return Ok(BootstrapReport {
            created: false,
            tenant: None,
            admin_user_principal_name: None,
            generated_password: None,
        });
    }
    let now = clock.now();
    let domain = domain.trim().to_ascii_lowercase();
    validate_domain(&domain)?;
    let tenant = Tenant {
        id: TenantId::new_random(),
        domain: domain.clone(),
        display_name: "Default Directory".into(),
    };
    let (password, generated) = match admin_password {
        Some(p) if !p.is_empty() => (p, None),
        _ => {
            let p = new_client_secret();
            (p.clone(), Some(p))
        }
    };
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(Error::Internal)?;
    let admin = User {
        object_id: ObjectId::new_random(),
        tenant_id: tenant.id,
        user_principal_name: format!("admin@{domain}"),
        display_name: "mlgate administrator".into(),
        password_hash,
        account_enabled: true,
        is_admin: true,
        force_change_password: false,
    };
    let cli_application = cli_application(tenant.id, now)?;
    let keys = vec![
        new_signing_key(master, KeyState::Active, now)
            .map_err(|e| Error::Internal(e.to_string()))?,
        new_signing_key(master, KeyState::Next, now).map_err(|e| Error::Internal(e.to_string()))?,
    ];
    let data = Bootstrap {
        subscription: Subscription {
            id: SubscriptionId::new_random(),
            tenant_id: tenant.id,
            display_name: "Default subscription".into(),
        },
        tenant: tenant.clone(),
        admin,
        cli_application,
        keys,
    };
    let created = store.bootstrap(&data).await?;
    Ok(BootstrapReport {
        created,
        admin_user_principal_name: created.then(|| data.admin.user_principal_name.clone()),
        tenant: created.then_some(tenant),
        generated_password: if created { generated } else { None },
    })
}

/// The CLI's public client, present in every tenant (as Microsoft's first-party apps are).
pub fn cli_application(tenant: TenantId, now: OffsetDateTime) -> Result<ServicePrincipal, Error> {
    Ok(ServicePrincipal {
        object_id: ObjectId::new_random(),
        app_id: mlgate_proto::CLI_CLIENT_ID
            .parse()
            .map_err(|_| Error::Internal("bad CLI client id".into()))?,
        tenant_id: tenant,
        display_name: "Microsoft Azure CLI".into(),
        account_enabled: true,
        public_client: true,
        owner: None,
        created_at: now,
    })
}

pub fn validate_domain(domain: &str) -> Result<(), Error> {
    let ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok { Ok(()) } else { Err(Error::InvalidInput(format!("'{domain}' is not a domain name"))) }
}

/// A client application with its secrets, as the token endpoint needs it.
#[derive(Debug, Clone)]
pub struct ClientEntry {
    pub principal: ServicePrincipal,
    pub secrets: Vec<ClientSecret>,
}

/// Recently looked-up clients, keyed by tenant and appId. Unknown clients are not cached, so
/// random client ids cannot fill it; it is also bounded.
type ClientKey = (TenantId, AppId);

struct ClientCache {
    /// Each entry with the time it was read from the store.
    entries: RwLock<HashMap<ClientKey, (OffsetDateTime, Arc<ClientEntry>)>>,
    ttl: Duration,
}

const CLIENT_CACHE_MAX: usize = 100_000;

impl ClientCache {
    fn get(&self, key: &(TenantId, AppId), now: OffsetDateTime) -> Option<Arc<ClientEntry>> {
        let map = self.entries.read().unwrap_or_else(|p| p.into_inner());
        map.get(key).filter(|(at, _)| now - *at < self.ttl).map(|(_, e)| e.clone())
    }

    fn put(&self, key: (TenantId, AppId), now: OffsetDateTime, entry: Arc<ClientEntry>) {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CLIENT_CACHE_MAX {
            map.clear();
        }
        map.insert(key, (now, entry));
    }

    fn invalidate(&self, key: &(TenantId, AppId)) {
        self.entries.write().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// The directory's use cases over a [`Store`].
pub struct Directory {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Read by every token request: loaded without a lock (replaced whole on a change).
    tenants: ArcSwap<Vec<Tenant>>,
    clients: ClientCache,
    /// Changes this node published (its follower skips them).
    own_changes: OwnChanges,
}

/// A freshly minted secret: the only moment its clear text exists on the server.
#[derive(Debug, Clone)]
pub struct NewSecret {
    pub principal: ServicePrincipal,
    pub secret: String,
    pub record: ClientSecret,
}

impl Directory {
    pub async fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        client_cache_ttl: Duration,
    ) -> Result<Self, Error> {
        let tenants = store.list_tenants().await?;
        Ok(Self {
            store,
            clock,
            tenants: ArcSwap::from_pointee(tenants),
            clients: ClientCache { entries: RwLock::new(HashMap::new()), ttl: client_cache_ttl },
            own_changes: OwnChanges::default(),
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub fn tenants(&self) -> Arc<Vec<Tenant>> {
        self.tenants.load_full()
    }

    /// The tenant named by a URL segment: its GUID, its domain, or `common`/`organizations`
    /// (the first tenant, mlgate's home directory).
    pub fn resolve_tenant(&self, segment: &str) -> Option<Tenant> {
        Self::find_tenant(&self.tenants.load(), segment).cloned()
    }

    /// [`Self::resolve_tenant`]'s id alone, without copying the tenant.
    pub fn resolve_tenant_id(&self, segment: &str) -> Option<TenantId> {
        Self::find_tenant(&self.tenants.load(), segment).map(|t| t.id)
    }

    fn find_tenant<'a>(tenants: &'a [Tenant], segment: &str) -> Option<&'a Tenant> {
        let seg = segment.trim();
        if seg.eq_ignore_ascii_case("common") || seg.eq_ignore_ascii_case("organizations") {
            return tenants.first();
        }
        if let Ok(id) = seg.parse::<TenantId>() {
            return tenants.iter().find(|t| t.id == id);
        }
        // Domains are kept in lower case.
        tenants.iter().find(|t| t.domain.eq_ignore_ascii_case(seg))
    }

    pub fn tenant(&self, id: TenantId) -> Option<Tenant> {
        self.tenants().iter().find(|t| t.id == id).cloned()
    }

    /// A client application by appId, from the cache when fresh.
    pub async fn client(
        &self,
        tenant: TenantId,
        app_id: AppId,
    ) -> Result<Option<Arc<ClientEntry>>, Error> {
        let key = (tenant, app_id);
        let now = self.clock.now();
        if let Some(hit) = self.clients.get(&key, now) {
            return Ok(Some(hit));
        }
        let Some(principal) = self.store.service_principal_by_app_id(tenant, app_id).await? else {
            return Ok(None);
        };
        let mut secrets = self.store.secrets_of(principal.object_id).await?;
        // Graph puts `create-for-rbac`'s secret on the application object: it is as good.
        if let Some(app) = self.store.application_by_app_id(tenant, app_id).await? {
            secrets.extend(self.store.application_secrets(app.object_id).await?);
        }
        let entry = Arc::new(ClientEntry { principal, secrets });
        self.clients.put(key, now, entry.clone());
        Ok(Some(entry))
    }

    pub async fn user_by_upn(&self, tenant: TenantId, upn: &str) -> Result<Option<User>, Error> {
        Ok(self.store.user_by_upn(tenant, &upn.trim().to_ascii_lowercase()).await?)
    }

    pub async fn user(&self, tenant: TenantId, id: ObjectId) -> Result<Option<User>, Error> {
        Ok(self.store.user(tenant, id).await?)
    }

    /// A user of `tenant`: one whose home it is, or a member added to it. For a member,
    /// `is_admin` is the membership's.
    pub async fn member(&self, tenant: TenantId, id: ObjectId) -> Result<Option<User>, Error> {
        let Some(mut user) = self.store.user_anywhere(id).await? else { return Ok(None) };
        if user.tenant_id == tenant {
            return Ok(Some(user));
        }
        match self.store.membership(tenant, id).await? {
            Some(admin) => {
                user.is_admin = admin;
                Ok(Some(user))
            }
            None => Ok(None),
        }
    }

    /// The user signing in to `tenant` with this name, if it is one of the tenant's users.
    pub async fn user_for_sign_in(
        &self,
        tenant: TenantId,
        upn: &str,
    ) -> Result<Option<User>, Error> {
        match self.store.user_by_upn_anywhere(upn.trim()).await? {
            Some(u) => self.member(tenant, u.object_id).await,
            None => Ok(None),
        }
    }

    /// The caller's home tenant and the tenants it was added to.
    pub async fn tenants_of(&self, caller: &Principal) -> Result<Vec<Tenant>, Error> {
        let mut ids = vec![];
        if let Some(u) = self.store.user_anywhere(caller.object_id).await? {
            ids.push(u.tenant_id);
            ids.extend(self.store.memberships_of(u.object_id).await?);
        } else {
            ids.push(caller.tenant_id);
        }
        Ok(ids.into_iter().filter_map(|t| self.tenant(t)).collect())
    }

    /// Re-reads the tenant list (after a tenant was created, possibly by another node).
    pub async fn reload_tenants(&self) -> Result<(), Error> {
        let tenants = self.store.list_tenants().await?;
        self.tenants.store(Arc::new(tenants));
        Ok(())
    }

    /// Adds an existing user (by principal name or object id) to the caller's tenant.
    /// Directory administrators of that tenant only.
    pub async fn add_member(
        &self,
        caller: &Principal,
        user: &str,
        admin: bool,
    ) -> Result<User, Error> {
        self.ensure_admin(caller).await?;
        let found = match user.trim().parse::<uuid::Uuid>() {
            Ok(g) => self.store.user_anywhere(ObjectId(g)).await?,
            Err(_) => self.store.user_by_upn_anywhere(user).await?,
        };
        let found = found.ok_or_else(|| {
            Error::NotFound(format!(
                "user '{}' does not exist",
                user.chars().take(100).collect::<String>()
            ))
        })?;
        if found.tenant_id == caller.tenant_id
            || self.store.membership(caller.tenant_id, found.object_id).await?.is_some()
        {
            return Err(Error::Conflict(format!(
                "'{}' is already a member of this tenant",
                found.user_principal_name
            )));
        }
        self.store.add_member(caller.tenant_id, found.object_id, admin, self.clock.now()).await?;
        Ok(found)
    }

    pub async fn subscriptions(&self, caller: &Principal) -> Result<Vec<Subscription>, Error> {
        Ok(self.store.list_subscriptions(caller.tenant_id).await?)
    }

    fn new_secret(
        &self,
        principal: ObjectId,
        expires_at: Option<OffsetDateTime>,
    ) -> (String, ClientSecret) {
        let secret = new_client_secret();
        let record = ClientSecret {
            id: SecretId::new_random(),
            principal,
            digest: sha256(secret.as_bytes()),
            hint: hint(&secret),
            display_name: "rbac".into(),
            created_at: self.clock.now(),
            expires_at,
        };
        (secret, record)
    }

    fn expiry(&self, years: Option<u32>, end_date: Option<&str>) -> Result<OffsetDateTime, Error> {
        let now = self.clock.now();
        if let Some(end) = end_date {
            let end = OffsetDateTime::parse(end, &time::format_description::well_known::Rfc3339)
                .map_err(|_| Error::InvalidInput(format!("'{end}' is not an RFC 3339 date")))?;
            if end <= now {
                return Err(Error::InvalidInput("the end date is in the past".into()));
            }
            return Ok(end);
        }
        let years = years.unwrap_or(DEFAULT_SECRET_YEARS);
        if years == 0 || years > MAX_SECRET_YEARS {
            return Err(Error::InvalidInput(format!("years must be 1..={MAX_SECRET_YEARS}")));
        }
        Ok(now + Duration::days(365 * i64::from(years)))
    }

    /// `az ad sp create-for-rbac`: a new application and service principal with one secret.
    /// Any member of the tenant may register applications (Azure's default); the creator owns it.
    pub async fn create_service_principal(
        &self,
        caller: &Principal,
        display_name: &str,
        years: Option<u32>,
    ) -> Result<NewSecret, Error> {
        let display_name = display_name.trim();
        if display_name.is_empty()
            || display_name.len() > MAX_DISPLAY_NAME
            || display_name.chars().any(char::is_control)
        {
            return Err(Error::InvalidInput(format!(
                "the display name must be 1 to {MAX_DISPLAY_NAME} printable characters"
            )));
        }
        let expires_at = self.expiry(years, None)?;
        let sp = ServicePrincipal {
            object_id: ObjectId::new_random(),
            app_id: AppId::new_random(),
            tenant_id: caller.tenant_id,
            display_name: display_name.to_string(),
            account_enabled: true,
            public_client: false,
            owner: Some(caller.object_id),
            created_at: self.clock.now(),
        };
        let (secret, record) = self.new_secret(sp.object_id, Some(expires_at));
        // Graph's two objects, made together: the application and its principal.
        let app = Application {
            object_id: ObjectId::new_random(),
            app_id: sp.app_id,
            tenant_id: sp.tenant_id,
            display_name: sp.display_name.clone(),
            owner: sp.owner,
            created_at: sp.created_at,
        };
        self.store.insert_application(&app, Some(&sp), Some(&record)).await?;
        Ok(NewSecret { principal: sp, secret, record })
    }

    /// Finds a principal by objectId or appId (both are accepted, as by `az ad sp show --id`).
    pub async fn find_service_principal(
        &self,
        caller: &Principal,
        id: &str,
    ) -> Result<(ServicePrincipal, Vec<ClientSecret>), Error> {
        let not_found = || Error::NotFound(format!("service principal '{id}' does not exist"));
        let guid: uuid::Uuid = id.trim().parse().map_err(|_| not_found())?;
        let sp = match self.store.service_principal(caller.tenant_id, ObjectId(guid)).await? {
            Some(sp) => sp,
            None => self
                .store
                .service_principal_by_app_id(caller.tenant_id, AppId(guid))
                .await?
                .ok_or_else(not_found)?,
        };
        let secrets = self.store.secrets_of(sp.object_id).await?;
        Ok((sp, secrets))
    }

    pub async fn list_service_principals(
        &self,
        caller: &Principal,
    ) -> Result<Vec<(ServicePrincipal, Vec<ClientSecret>)>, Error> {
        let mut out = Vec::new();
        for sp in self.store.list_service_principals(caller.tenant_id).await? {
            let secrets = self.store.secrets_of(sp.object_id).await?;
            out.push((sp, secrets));
        }
        Ok(out)
    }

    pub async fn ensure_admin(&self, caller: &Principal) -> Result<(), Error> {
        if caller.is_user()
            && let Some(u) = self.member(caller.tenant_id, caller.object_id).await?
            && u.is_admin
            && u.account_enabled
        {
            return Ok(());
        }
        Err(Error::Forbidden(format!(
            "'{}' is not a directory administrator of tenant '{}'",
            caller.object_id, caller.tenant_id
        )))
    }

    /// `az ad user create`: directory administrators only. The name must be in the tenant's
    /// domain; the password at least 8 characters.
    pub async fn create_user(
        &self,
        caller: &Principal,
        user_principal_name: &str,
        display_name: &str,
        password: &str,
    ) -> Result<User, Error> {
        self.ensure_admin(caller).await?;
        let tenant = self
            .tenant(caller.tenant_id)
            .ok_or_else(|| Error::Internal("caller's tenant is unknown".into()))?;
        let upn = user_principal_name.trim().to_ascii_lowercase();
        let valid_local = |l: &str| {
            !l.is_empty()
                && l.len() <= 64
                && l.chars().all(|c| c.is_ascii_alphanumeric() || "._-+'".contains(c))
        };
        match upn.split_once('@') {
            Some((local, domain)) if valid_local(local) && domain == tenant.domain => {}
            _ => {
                return Err(Error::InvalidInput(format!(
                    "the user principal name must be 'name@{}'",
                    tenant.domain
                )));
            }
        }
        let display_name = display_name.trim();
        if display_name.is_empty() || display_name.len() > MAX_DISPLAY_NAME {
            return Err(Error::InvalidInput(format!(
                "the display name must be 1 to {MAX_DISPLAY_NAME} characters"
            )));
        }
        if password.chars().count() < 8 || password.len() > 256 {
            return Err(Error::InvalidInput("the password must be 8 to 256 characters".into()));
        }
        let password = password.to_string();
        let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(Error::Internal)?;
        let user = User {
            object_id: ObjectId::new_random(),
            tenant_id: tenant.id,
            user_principal_name: upn.clone(),
            display_name: display_name.to_string(),
            password_hash,
            account_enabled: true,
            is_admin: false,
            force_change_password: false,
        };
        self.store.insert_user(&user).await.map_err(|e| match e {
            crate::store::StoreError::Conflict(_) => {
                Error::Conflict(format!("a user named '{upn}' already exists"))
            }
            other => other.into(),
        })?;
        Ok(user)
    }

    pub async fn list_users(&self, caller: &Principal) -> Result<Vec<User>, Error> {
        Ok(self.store.list_users(caller.tenant_id).await?)
    }

    /// Forgets a cached client at once (its principal or secrets changed), here only.
    pub fn invalidate_client(&self, tenant: TenantId, app_id: AppId) {
        self.clients.invalidate(&(tenant, app_id));
    }

    /// Forgets every cached client (the periodic reconciliation of several nodes).
    pub fn clear_clients(&self) {
        self.clients.entries.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// A client's principal or secrets changed in the store: forget it here and tell the
    /// other nodes.
    pub async fn client_changed(&self, tenant: TenantId, app_id: AppId) {
        self.invalidate_client(tenant, app_id);
        self.publish(Change::Client { tenant, app_id }).await;
    }

    /// Tells the other nodes sharing the store that `change` was written (call it after the
    /// write succeeded; this node's memory is the caller's to update). A publish that fails
    /// is logged, not returned: the write stands, and the other nodes' reconciliation picks
    /// it up within its period.
    pub async fn publish(&self, change: Change) {
        match self.store.publish_change(change.kind(), &change.key(), self.clock.now()).await {
            Ok(id) => self.own_changes.record(id),
            Err(e) => tracing::warn!(
                kind = change.kind(),
                error = %e,
                "could not publish a change; other nodes see it at their next reconciliation"
            ),
        }
    }

    /// Whether change `id` was published by this node (and so is applied here already).
    pub fn is_own_change(&self, id: i64) -> bool {
        self.own_changes.take(id)
    }

    /// Owners and directory administrators manage a principal; nobody manages the CLI's.
    pub(crate) async fn ensure_can_manage(
        &self,
        caller: &Principal,
        sp: &ServicePrincipal,
    ) -> Result<(), Error> {
        if sp.public_client && sp.owner.is_none() {
            return Err(Error::Forbidden(format!(
                "'{}' is a built-in application and cannot be changed",
                sp.display_name
            )));
        }
        if sp.owner == Some(caller.object_id) {
            return Ok(());
        }
        self.ensure_admin(caller).await.map_err(|_| {
            Error::Forbidden(format!(
                "'{}' may not manage service principal '{}': only its owner or a directory \
                 administrator may",
                caller.object_id, sp.app_id
            ))
        })
    }

    /// Deletes the principal, its secrets and its role assignments, and its application object
    /// (mlgate's API shows the two as one); returns the principal's object id.
    pub async fn delete_service_principal(
        &self,
        caller: &Principal,
        id: &str,
    ) -> Result<ObjectId, Error> {
        let (sp, _) = self.find_service_principal(caller, id).await?;
        self.ensure_can_manage(caller, &sp).await?;
        match self.store.application_by_app_id(sp.tenant_id, sp.app_id).await? {
            Some(app) => {
                self.store.delete_application(sp.tenant_id, app.object_id).await?;
            }
            None => self.store.delete_service_principal(sp.tenant_id, sp.object_id).await?,
        }
        self.client_changed(sp.tenant_id, sp.app_id).await;
        // Its role assignments went with it.
        self.publish(Change::Rbac).await;
        Ok(sp.object_id)
    }

    pub async fn set_service_principal_enabled(
        &self,
        caller: &Principal,
        id: &str,
        enabled: bool,
    ) -> Result<ServicePrincipal, Error> {
        let (mut sp, _) = self.find_service_principal(caller, id).await?;
        self.ensure_can_manage(caller, &sp).await?;
        self.store.set_service_principal_enabled(sp.tenant_id, sp.object_id, enabled).await?;
        self.client_changed(sp.tenant_id, sp.app_id).await;
        sp.account_enabled = enabled;
        Ok(sp)
    }

    /// `az ad sp credential reset`: a new secret; the old ones go unless `append`.
    pub async fn reset_credential(
        &self,
        caller: &Principal,
        id: &str,
        append: bool,
        years: Option<u32>,
        end_date: Option<&str>,
    ) -> Result<NewSecret, Error> {
        let (sp, _) = self.find_service_principal(caller, id).await?;
        self.ensure_can_manage(caller, &sp).await?;
        let expires_at = self.expiry(years, end_date)?;
        let (secret, record) = self.new_secret(sp.object_id, Some(expires_at));
        self.store.add_secret(&record, append).await?;
        self.client_changed(sp.tenant_id, sp.app_id).await;
        Ok(NewSecret { principal: sp, secret, record })
    }
}
