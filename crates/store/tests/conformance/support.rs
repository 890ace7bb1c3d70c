//! Fresh stores and the records tests build.

use std::path::PathBuf;
use std::sync::Arc;

use mlgate_core::ids::{
    AppId, GrantFamilyId, KeyId, ObjectId, RoleAssignmentId, RoleDefinitionId, SecretId,
    SubscriptionId, TenantId, WorkspaceId,
};
use mlgate_core::records::{
    ClientSecret, KeyState, PrincipalType, ResourceGroup, RoleAssignmentRecord, SealedServiceKeys,
    Service, ServicePrincipal, ServiceState, SigningKeyRecord, Subscription, Tenant, User,
    Workspace,
};
use mlgate_core::store::{Bootstrap, Store};
use mlgate_store::SqlStore;
use time::OffsetDateTime;
use uuid::Uuid;

/// Removes the SQLite file's folder when the test ends.
pub struct Guard(PathBuf);

impl Guard {
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn sqlite() -> (Arc<dyn Store>, Guard) {
    let dir = std::env::temp_dir().join(format!("mlgate-conformance-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqlStore::open_sqlite(&dir.join("mlgate.db")).await.unwrap();
    (Arc::new(store), Guard(dir))
}

pub async fn postgres() -> Option<Arc<dyn Store>> {
    let base = mlgate_store::testing::postgres_url()?;
    let url = mlgate_store::testing::fresh_postgres_database(&base).await.unwrap();
    Some(Arc::new(SqlStore::open_postgres(&url).await.unwrap()))
}

/// A fixed time in whole seconds (stores keep seconds).
pub fn t(offset: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + offset).unwrap()
}

pub fn guid() -> Uuid {
    Uuid::new_v4()
}

pub fn key(kid: &str, state: KeyState, at: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: KeyId(kid.into()),
        state,
        sealed_private_key: format!("sealed-{kid}").into_bytes(),
        public_key: format!("public-{kid}").into_bytes(),
        created_at: t(at),
        retired_at: None,
    }
}

pub fn user(tenant: TenantId, upn: &str) -> User {
    User {
        object_id: ObjectId(guid()),
        tenant_id: tenant,
        user_principal_name: upn.into(),
        display_name: format!("User {upn}"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        account_enabled: true,
        is_admin: false,
        force_change_password: false,
    }
}

pub fn sp(tenant: TenantId, name: &str) -> ServicePrincipal {
    ServicePrincipal {
        object_id: ObjectId(guid()),
        app_id: AppId(guid()),
        tenant_id: tenant,
        display_name: name.into(),
        account_enabled: true,
        public_client: false,
        owner: None,
        created_at: t(0),
    }
}

pub fn secret(owner: ObjectId, byte: u8, at: i64) -> ClientSecret {
    ClientSecret {
        id: SecretId(guid()),
        principal: owner,
        digest: [byte; 32],
        hint: "abc".into(),
        display_name: format!("secret {byte}"),
        created_at: t(at),
        expires_at: Some(t(at + 86_400)),
    }
}

pub fn assignment(
    tenant: TenantId,
    principal: ObjectId,
    role: RoleDefinitionId,
    scope: &str,
) -> RoleAssignmentRecord {
    RoleAssignmentRecord {
        id: RoleAssignmentId(guid()),
        tenant_id: tenant,
        principal_id: principal,
        principal_type: PrincipalType::User,
        role_id: role,
        scope: scope.into(),
        created_at: t(0),
        created_by: None,
    }
}

pub fn sealed(tag: &str) -> SealedServiceKeys {
    SealedServiceKeys {
        primary: format!("{tag}-primary").into_bytes(),
        secondary: format!("{tag}-secondary").into_bytes(),
        updated_at: t(0),
    }
}

pub fn service(name: &str, ws: WorkspaceId, by: ObjectId) -> Service {
    Service {
        name: name.into(),
        workspace_id: ws,
        model_name: "m".into(),
        model_version: 1,
        inference_config: serde_json::json!({"entryScript": "score.py", "runtime": "onnx"}),
        deployment_config: serde_json::json!({"computeType": "instance"}),
        state: ServiceState::Transitioning,
        error: None,
        created_at: t(0),
        updated_at: t(0),
        created_by: by,
    }
}

/// A bootstrapped store's records: the tenant, its subscription, its admin, one resource
/// group `rg` with one workspace `ws`.
pub struct Seed {
    pub tenant: Tenant,
    pub sub: Subscription,
    pub admin: User,
    pub ws: Workspace,
}

pub fn bootstrap_data() -> Bootstrap {
    let tenant = Tenant {
        id: TenantId(guid()),
        domain: "mlgate.local".into(),
        display_name: "mlgate".into(),
    };
    let sub = Subscription {
        id: SubscriptionId(guid()),
        tenant_id: tenant.id,
        display_name: "Default".into(),
    };
    let mut admin = user(tenant.id, "Admin@MLGATE.local");
    admin.is_admin = true;
    let mut cli = sp(tenant.id, "Azure CLI");
    cli.public_client = true;
    Bootstrap {
        tenant,
        subscription: sub,
        admin,
        cli_application: cli,
        keys: vec![key("k-active", KeyState::Active, 0), key("k-next", KeyState::Next, 1)],
    }
}

pub async fn seed(s: &dyn Store) -> Seed {
    let b = bootstrap_data();
    assert!(s.bootstrap(&b).await.unwrap());
    let rg = ResourceGroup {
        subscription_id: b.subscription.id,
        name: "RG".into(),
        location: "local".into(),
        created_at: t(0),
    };
    s.put_resource_group(&rg).await.unwrap();
    let ws = workspace(b.subscription.id, "RG", "WS", b.admin.object_id);
    let (ws, created) = s.put_workspace(&ws).await.unwrap();
    assert!(created);
    Seed { tenant: b.tenant, sub: b.subscription, admin: b.admin, ws }
}

pub fn workspace(sub: SubscriptionId, rg: &str, name: &str, by: ObjectId) -> Workspace {
    Workspace {
        id: WorkspaceId(guid()),
        subscription_id: sub,
        resource_group: rg.into(),
        name: name.into(),
        location: "local".into(),
        description: "d".into(),
        friendly_name: name.into(),
        created_at: t(0),
        created_by: by,
    }
}

pub fn family() -> GrantFamilyId {
    GrantFamilyId(guid())
}
