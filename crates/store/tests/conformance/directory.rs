//! Tenants, users, principals, secrets, applications and signing keys.

use std::sync::Arc;

use mlgate_core::ids::{AppId, ObjectId, RoleDefinitionId, SubscriptionId, TenantId};
use mlgate_core::records::{Application, KeyState, Subscription, Tenant};
use mlgate_core::store::{Store, StoreError};

use crate::conformance;
use crate::support::*;

conformance!(
    bootstrap_once_then_directory_reads,
    principals_and_secrets,
    applications_beside_principals,
    signing_key_rotation,
    tenants_and_members
);

async fn bootstrap_once_then_directory_reads(s: Arc<dyn Store>) {
    s.ping().await.unwrap();
    let b = bootstrap_data();
    assert!(s.bootstrap(&b).await.unwrap());
    let mut again = bootstrap_data();
    again.tenant.domain = "other.local".into();
    assert!(!s.bootstrap(&again).await.unwrap(), "a second bootstrap writes nothing");
    let tenants = s.list_tenants().await.unwrap();
    assert_eq!(tenants, vec![b.tenant.clone()]);
    assert_eq!(s.list_subscriptions(b.tenant.id).await.unwrap(), vec![b.subscription.clone()]);

    // Principal names are keys without case: stored and looked up lower-cased.
    let admin = s.user_by_upn(b.tenant.id, "ADMIN@mlgate.LOCAL").await.unwrap().unwrap();
    assert_eq!(admin.user_principal_name, "admin@mlgate.local");
    assert_eq!(admin.object_id, b.admin.object_id);
    assert!(admin.is_admin && admin.account_enabled);
    assert_eq!(admin.password_hash, b.admin.password_hash);
    assert_eq!(s.user(b.tenant.id, admin.object_id).await.unwrap(), Some(admin.clone()));
    assert_eq!(s.user_anywhere(admin.object_id).await.unwrap(), Some(admin.clone()));
    assert_eq!(s.user_by_upn_anywhere("admin@MLGATE.local").await.unwrap(), Some(admin.clone()));
    assert_eq!(s.user(TenantId(guid()), admin.object_id).await.unwrap(), None);
    let cli = s.service_principal_by_app_id(b.tenant.id, b.cli_application.app_id).await.unwrap();
    assert_eq!(cli, Some(b.cli_application.clone()));
    let keys = s.signing_keys().await.unwrap();
    assert_eq!(keys, b.keys);

    let other = user(b.tenant.id, "second@mlgate.local");
    s.insert_user(&other).await.unwrap();
    let dup = user(b.tenant.id, "SECOND@mlgate.local");
    assert!(matches!(s.insert_user(&dup).await, Err(StoreError::Conflict(_))));
    let users = s.list_users(b.tenant.id).await.unwrap();
    let names: Vec<_> = users.iter().map(|u| u.user_principal_name.as_str()).collect();
    assert_eq!(names, ["admin@mlgate.local", "second@mlgate.local"]);
}

async fn tenants_and_members(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let tenant =
        Tenant { id: TenantId(guid()), domain: "Second.Example".into(), display_name: "2".into() };
    let sub = Subscription {
        id: SubscriptionId(guid()),
        tenant_id: tenant.id,
        display_name: "Second".into(),
    };
    let cli = sp(tenant.id, "Azure CLI");
    let owner = assignment(
        tenant.id,
        seed.admin.object_id,
        RoleDefinitionId(guid()),
        &format!("/subscriptions/{}", sub.id),
    );
    s.create_tenant(&tenant, &sub, &cli, seed.admin.object_id, &owner).await.unwrap();
    let tenants = s.list_tenants().await.unwrap();
    assert_eq!(tenants[0].id, seed.tenant.id, "the bootstrap tenant comes first");
    assert_eq!(tenants[1].domain, "second.example");
    assert_eq!(s.membership(tenant.id, seed.admin.object_id).await.unwrap(), Some(true));
    assert_eq!(s.memberships_of(seed.admin.object_id).await.unwrap(), vec![tenant.id]);
    assert!(s.role_assignments().await.unwrap().contains(&owner));

    // A failing step leaves nothing of the tenant behind (one transaction).
    let t2 =
        Tenant { id: TenantId(guid()), domain: "third.example".into(), display_name: "3".into() };
    let sub2 =
        Subscription { id: SubscriptionId(guid()), tenant_id: t2.id, display_name: "x".into() };
    let err = s.create_tenant(&t2, &sub2, &sp(t2.id, "cli"), seed.admin.object_id, &owner).await;
    assert!(matches!(err, Err(StoreError::Conflict(_))), "the same assignment id again");
    assert_eq!(s.list_tenants().await.unwrap().len(), 2);

    let guest = user(seed.tenant.id, "guest@mlgate.local");
    s.insert_user(&guest).await.unwrap();
    s.add_member(tenant.id, guest.object_id, false, t(5)).await.unwrap();
    assert_eq!(s.membership(tenant.id, guest.object_id).await.unwrap(), Some(false));
    assert_eq!(s.membership(seed.tenant.id, guest.object_id).await.unwrap(), None);
    assert!(s.add_member(tenant.id, guest.object_id, false, t(6)).await.is_err());
    let plain =
        Tenant { id: TenantId(guid()), domain: "Plain.Example".into(), display_name: "p".into() };
    s.insert_tenant(&plain).await.unwrap();
    assert!(s.list_tenants().await.unwrap().iter().any(|t| t.domain == "plain.example"));
}

async fn principals_and_secrets(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let tenant = seed.tenant.id;
    let mut a = sp(tenant, "beta");
    a.owner = Some(seed.admin.object_id);
    let first = secret(a.object_id, 1, 0);
    s.insert_service_principal(&a, Some(&first)).await.unwrap();
    let b = sp(tenant, "alpha");
    s.insert_service_principal(&b, None).await.unwrap();
    let mut same_app = sp(tenant, "dup");
    same_app.app_id = a.app_id;
    assert!(matches!(
        s.insert_service_principal(&same_app, None).await,
        Err(StoreError::Conflict(_))
    ));

    assert_eq!(s.service_principal(tenant, a.object_id).await.unwrap(), Some(a.clone()));
    assert_eq!(s.service_principal_by_app_id(tenant, a.app_id).await.unwrap(), Some(a.clone()));
    assert_eq!(s.service_principal_by_app_id(tenant, AppId(guid())).await.unwrap(), None);
    let names: Vec<_> = s
        .list_service_principals(tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.display_name)
        .collect();
    assert_eq!(names, ["Azure CLI", "alpha", "beta"]);

    s.set_service_principal_enabled(tenant, a.object_id, false).await.unwrap();
    assert!(!s.service_principal(tenant, a.object_id).await.unwrap().unwrap().account_enabled);
    assert!(matches!(
        s.set_service_principal_enabled(tenant, ObjectId(guid()), false).await,
        Err(StoreError::NotFound)
    ));

    assert_eq!(s.secrets_of(a.object_id).await.unwrap(), vec![first.clone()]);
    let second = secret(a.object_id, 2, 10);
    s.add_secret(&second, true).await.unwrap();
    assert_eq!(s.secrets_of(a.object_id).await.unwrap(), vec![first.clone(), second.clone()]);
    let reset = secret(a.object_id, 3, 20);
    s.add_secret(&reset, false).await.unwrap();
    assert_eq!(s.secrets_of(a.object_id).await.unwrap(), vec![reset.clone()], "a reset replaces");

    // Deleting a principal takes its secrets and role assignments with it.
    let role = RoleDefinitionId(guid());
    let mut ra = assignment(tenant, a.object_id, role, "/subscriptions/x");
    ra.principal_type = mlgate_core::records::PrincipalType::ServicePrincipal;
    s.insert_role_assignment(&ra).await.unwrap();
    s.delete_service_principal(tenant, a.object_id).await.unwrap();
    assert_eq!(s.service_principal(tenant, a.object_id).await.unwrap(), None);
    assert!(s.secrets_of(a.object_id).await.unwrap().is_empty());
    assert!(!s.role_assignments().await.unwrap().iter().any(|r| r.id == ra.id));
    assert!(matches!(
        s.delete_service_principal(tenant, a.object_id).await,
        Err(StoreError::NotFound)
    ));
}

async fn applications_beside_principals(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let tenant = seed.tenant.id;
    let principal = sp(tenant, "app one");
    let app = Application {
        object_id: ObjectId(guid()),
        app_id: principal.app_id,
        tenant_id: tenant,
        display_name: "app one".into(),
        owner: Some(seed.admin.object_id),
        created_at: t(0),
    };
    let sp_secret = secret(principal.object_id, 7, 0);
    s.insert_application(&app, Some(&principal), Some(&sp_secret)).await.unwrap();
    assert_eq!(s.application(tenant, app.object_id).await.unwrap(), Some(app.clone()));
    assert_eq!(s.application_by_app_id(tenant, app.app_id).await.unwrap(), Some(app.clone()));
    assert_eq!(s.secrets_of(principal.object_id).await.unwrap(), vec![sp_secret.clone()]);
    let again = Application { object_id: ObjectId(guid()), ..app.clone() };
    assert!(matches!(s.insert_application(&again, None, None).await, Err(StoreError::Conflict(_))));

    let lone = Application {
        object_id: ObjectId(guid()),
        app_id: AppId(guid()),
        display_name: "a lone app".into(),
        owner: None,
        ..app.clone()
    };
    s.insert_application(&lone, None, None).await.unwrap();
    let names: Vec<_> =
        s.list_applications(tenant).await.unwrap().into_iter().map(|a| a.display_name).collect();
    assert_eq!(names, ["a lone app", "app one"]);
    s.rename_application(tenant, lone.object_id, "renamed").await.unwrap();
    assert_eq!(
        s.application(tenant, lone.object_id).await.unwrap().unwrap().display_name,
        "renamed"
    );
    assert!(matches!(
        s.rename_application(tenant, ObjectId(guid()), "x").await,
        Err(StoreError::NotFound)
    ));

    let app_secret = secret(app.object_id, 8, 5);
    s.add_application_secret(&app_secret).await.unwrap();
    assert_eq!(s.application_secrets(app.object_id).await.unwrap(), vec![app_secret.clone()]);
    s.remove_secret(app.object_id, app_secret.id).await.unwrap();
    assert!(s.application_secrets(app.object_id).await.unwrap().is_empty());
    s.remove_secret(principal.object_id, sp_secret.id).await.unwrap();
    assert!(matches!(
        s.remove_secret(principal.object_id, sp_secret.id).await,
        Err(StoreError::NotFound)
    ));

    let ra = assignment(tenant, principal.object_id, RoleDefinitionId(guid()), "/subscriptions/y");
    s.insert_role_assignment(&ra).await.unwrap();
    let gone = s.delete_application(tenant, app.object_id).await.unwrap();
    assert_eq!(gone, Some(principal.object_id), "its principal goes too");
    assert_eq!(s.service_principal(tenant, principal.object_id).await.unwrap(), None);
    assert!(!s.role_assignments().await.unwrap().iter().any(|r| r.id == ra.id));
    assert_eq!(s.delete_application(tenant, lone.object_id).await.unwrap(), None);
    assert!(matches!(
        s.delete_application(tenant, lone.object_id).await,
        Err(StoreError::NotFound)
    ));
}

async fn signing_key_rotation(s: Arc<dyn Store>) {
    let b = bootstrap_data();
    s.bootstrap(&b).await.unwrap();
    s.rotate_signing_keys(t(100), &key("k3", KeyState::Next, 100), t(0)).await.unwrap();
    let keys = s.signing_keys().await.unwrap();
    let state = |kid: &str| keys.iter().find(|k| k.kid.0 == kid).map(|k| (k.state, k.retired_at));
    assert_eq!(state("k-active"), Some((KeyState::Retired, Some(t(100)))));
    assert_eq!(state("k-next"), Some((KeyState::Active, None)));
    assert_eq!(state("k3"), Some((KeyState::Next, None)));
    // Retired keys retired before the cut are pruned.
    s.rotate_signing_keys(t(200), &key("k4", KeyState::Next, 200), t(150)).await.unwrap();
    let kids: Vec<_> = s.signing_keys().await.unwrap().into_iter().map(|k| k.kid.0).collect();
    assert_eq!(kids, ["k-next", "k3", "k4"]);
}
