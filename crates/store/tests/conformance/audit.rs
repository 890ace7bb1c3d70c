//! The activity log (written with the change it describes), the sign-in log, and the user
//! lifecycle's writes.

use std::sync::Arc;

use mlgate_core::activity::{self, ActivityQuery, ActivityRecord, ActivityStatus, Pending};
use mlgate_core::ids::{AppId, ObjectId, RoleDefinitionId, TenantId};
use mlgate_core::records::RefreshGrant;
use mlgate_core::signins::{SignInQuery, SignInRecord};
use mlgate_core::store::{Store, StoreError};

use crate::conformance;
use crate::support::*;

conformance!(
    users_update_and_delete,
    activity_commits_with_its_write,
    activity_queries,
    sign_in_batches_and_queries,
    sign_ins_aggregate_per_minute
);

async fn users_update_and_delete(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let mut u = user(seed.tenant.id, "carol@mlgate.local");
    s.insert_user(&u).await.unwrap();
    u.display_name = "Carol C".into();
    u.account_enabled = false;
    u.force_change_password = true;
    u.password_hash = "$argon2id$new".into();
    s.update_user(&u).await.unwrap();
    assert_eq!(s.user(seed.tenant.id, u.object_id).await.unwrap(), Some(u.clone()));
    let mut ghost = user(seed.tenant.id, "ghost@mlgate.local");
    ghost.display_name = "x".into();
    assert!(matches!(s.update_user(&ghost).await, Err(StoreError::NotFound)));

    let reader: RoleDefinitionId = "acdd72a7-3385-48ef-bd42-f606fba81ae7".parse().unwrap();
    let scope = format!("/subscriptions/{}", seed.sub.id);
    s.insert_role_assignment(&assignment(seed.tenant.id, u.object_id, reader, &scope))
        .await
        .unwrap();
    let grant = RefreshGrant {
        digest: [7; 32],
        family: family(),
        tenant_id: seed.tenant.id,
        subject: u.object_id,
        client_id: AppId(guid()),
        resource: "r".into(),
        scope: "s".into(),
        issued_at: t(0),
        expires_at: t(100),
        used_at: None,
        revoked: false,
    };
    s.insert_refresh_grant(&grant).await.unwrap();
    assert_eq!(s.revoke_user_grants(u.object_id).await.unwrap(), 1);
    assert_eq!(s.revoke_user_grants(u.object_id).await.unwrap(), 0, "already revoked");

    s.delete_user(seed.tenant.id, u.object_id).await.unwrap();
    assert_eq!(s.user_anywhere(u.object_id).await.unwrap(), None);
    let left = s.role_assignments().await.unwrap();
    assert!(left.iter().all(|a| a.principal_id != u.object_id), "its assignments went with it");
    assert!(matches!(s.delete_user(seed.tenant.id, u.object_id).await, Err(StoreError::NotFound)));
}

fn record(tenant: TenantId, at: i64, rg: Option<&str>, caller: &str) -> ActivityRecord {
    ActivityRecord {
        id: guid(),
        at: t(at),
        tenant_id: Some(tenant),
        subscription_id: None,
        resource_group: rg.map(str::to_string),
        caller_id: Some(guid().to_string()),
        caller_type: "User".into(),
        caller: caller.into(),
        caller_display_name: "Someone".into(),
        operation: "Microsoft.Resources/subscriptions/resourceGroups/write".into(),
        scope: "/subscriptions/x/resourceGroups/rg".into(),
        method: "PUT".into(),
        status: ActivityStatus::Succeeded,
        sub_status: None,
        error_code: None,
        correlation_id: guid().to_string(),
        client_address: Some("127.0.0.1".into()),
    }
}

fn query(tenant: TenantId) -> ActivityQuery {
    ActivityQuery {
        tenant_id: tenant,
        subscription_id: None,
        resource_group: None,
        caller: None,
        start: t(-1_000_000),
        end: t(1_000_000),
        before: None,
        limit: 100,
    }
}

/// A pending record goes into the transaction of the request's first write that changes
/// something, once; a write that fails (and rolls back) takes none with it.
async fn activity_commits_with_its_write(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let tenant = seed.tenant.id;
    let pending = |caller_known| Pending {
        record: record(tenant, 5, Some("RG"), "admin@mlgate.local"),
        caller_known,
        recorded: false,
    };

    // An autocommit write (one statement) and a later transaction in the same request.
    let store = s.clone();
    let dup = user(tenant, "dave@mlgate.local");
    let ((), done) = activity::scope(pending(true), async move {
        store.insert_user(&dup).await.unwrap();
        store.delete_user(tenant, dup.object_id).await.unwrap();
    })
    .await;
    assert!(done.recorded);
    let found = s.activity(&query(tenant)).await.unwrap();
    assert_eq!(found, vec![done.record.clone()], "recorded once, with the first write");

    // A write that fails takes its record down with it.
    let store = s.clone();
    let taken = user(tenant, "admin@mlgate.local");
    let ((), failed) = activity::scope(pending(true), async move {
        assert!(store.insert_user(&taken).await.is_err());
        assert!(matches!(
            store.delete_service_principal(tenant, ObjectId(guid())).await,
            Err(StoreError::NotFound)
        ));
    })
    .await;
    assert!(!failed.recorded, "nothing committed, nothing recorded");
    assert_eq!(s.activity(&query(tenant)).await.unwrap().len(), 1);

    // Without a caller, no record: a request that was never authenticated.
    let store = s.clone();
    let anon = user(tenant, "erin@mlgate.local");
    let ((), none) =
        activity::scope(pending(false), async move { store.insert_user(&anon).await.unwrap() })
            .await;
    assert!(!none.recorded);
    assert_eq!(s.activity(&query(tenant)).await.unwrap().len(), 1);
}

async fn activity_queries(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let tenant = seed.tenant.id;
    let sub = seed.sub.id.to_string();
    let mut in_sub = record(tenant, 10, Some("RG-One"), "alice@mlgate.local");
    in_sub.subscription_id = Some(sub.clone());
    let mut other_sub = record(tenant, 20, Some("rg-two"), "bob@mlgate.local");
    other_sub.subscription_id = Some(guid().to_string());
    let mut directory = record(tenant, 30, None, "00000000-aaaa-bbbb-cccc-000000000001");
    directory.caller_type = "ServicePrincipal".into();
    directory.status = ActivityStatus::Failed;
    directory.sub_status = Some("Forbidden".into());
    directory.error_code = Some("AuthorizationFailed".into());
    let foreign = record(TenantId(guid()), 15, Some("RG-One"), "alice@mlgate.local");
    for r in [&in_sub, &other_sub, &directory, &foreign] {
        s.insert_activity(r).await.unwrap();
    }
    let all = s.activity(&query(tenant)).await.unwrap();
    assert_eq!(all, vec![directory.clone(), other_sub.clone(), in_sub.clone()], "newest first");

    let mut q = query(tenant);
    q.subscription_id = Some(sub.to_uppercase());
    assert_eq!(s.activity(&q).await.unwrap(), vec![directory.clone(), in_sub.clone()]);
    let mut q = query(tenant);
    q.resource_group = Some("rg-one".into());
    assert_eq!(s.activity(&q).await.unwrap(), vec![in_sub.clone()]);
    let mut q = query(tenant);
    q.caller = Some("BOB@mlgate.local".into());
    assert_eq!(s.activity(&q).await.unwrap(), vec![other_sub.clone()]);
    q.caller = directory.caller_id.clone();
    assert_eq!(s.activity(&q).await.unwrap(), vec![directory.clone()]);
    let mut q = query(tenant);
    q.start = t(15);
    q.end = t(25);
    assert_eq!(s.activity(&q).await.unwrap(), vec![other_sub.clone()]);

    // Pages of one, by keyset.
    let mut q = query(tenant);
    q.limit = 1;
    let mut seen = Vec::new();
    loop {
        let page = s.activity(&q).await.unwrap();
        let Some(last) = page.last() else { break };
        q.before = Some((last.at, last.id));
        seen.extend(page);
    }
    assert_eq!(seen, all);

    assert_eq!(s.prune_activity(t(20)).await.unwrap(), 2, "before 20: in_sub and foreign");
    assert_eq!(s.activity(&query(tenant)).await.unwrap(), vec![directory, other_sub]);
}

fn sign_in(tenant: TenantId, at: i64, upn: &str, app: &str, code: u32) -> SignInRecord {
    SignInRecord {
        id: guid(),
        at: t(at),
        tenant_id: Some(tenant),
        user_id: None,
        user_principal_name: Some(upn.into()),
        app_id: Some(app.into()),
        app_display_name: None,
        service_principal_id: None,
        client_address: "10.0.0.1".into(),
        interactive: false,
        grant: "password".into(),
        resource: Some("https://management.azure.com/".into()),
        error_code: code,
        failure_reason: (code != 0).then(|| "Invalid username or password.".into()),
        correlation_id: guid().to_string(),
        count: 1,
        last_at: t(at),
    }
}

async fn sign_in_batches_and_queries(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let tenant = seed.tenant.id;
    let ok = sign_in(tenant, 1, "alice@mlgate.local", "APP-1", 0);
    let bad = sign_in(tenant, 2, "alice@mlgate.local", "app-1", 50126);
    let mut other = sign_in(tenant, 3, "bob@mlgate.local", "app-2", 0);
    other.interactive = true;
    s.insert_sign_ins(&[ok.clone(), bad.clone(), other.clone()]).await.unwrap();
    s.insert_sign_ins(&[]).await.unwrap();
    let q = |user: Option<&str>, app: Option<&str>, failures_only| SignInQuery {
        tenant_id: Some(tenant),
        user: user.map(str::to_string),
        app: app.map(str::to_string),
        failures_only,
        start: None,
        end: None,
        before: None,
        limit: 100,
    };
    assert_eq!(
        s.sign_ins(&q(None, None, false)).await.unwrap(),
        vec![other.clone(), bad.clone(), ok.clone()]
    );
    assert_eq!(
        s.sign_ins(&q(Some("ALICE@mlgate.local"), None, false)).await.unwrap(),
        vec![bad.clone(), ok.clone()]
    );
    assert_eq!(s.sign_ins(&q(None, Some("App-1"), true)).await.unwrap(), vec![bad.clone()]);
    assert_eq!(s.prune_sign_ins(t(3)).await.unwrap(), 2);
    assert_eq!(s.sign_ins(&q(None, None, false)).await.unwrap(), vec![other]);
    // A batch larger than one statement's rows lands whole, in one transaction (interactive
    // sign-ins, which are never aggregated).
    let many: Vec<_> = (0..150)
        .map(|i| {
            let mut r = sign_in(tenant, 10 + i, "c@mlgate.local", "a", 0);
            r.interactive = true;
            r
        })
        .collect();
    s.insert_sign_ins(&many).await.unwrap();
    let mut query = q(Some("c@mlgate.local"), None, false);
    query.limit = 1000;
    let found = s.sign_ins(&query).await.unwrap();
    assert_eq!(found.len(), 150);
    assert_eq!(found.first(), many.last(), "newest first");
}

/// Identical non-interactive attempts of one minute are one record: within a batch, across
/// batches (the upsert adds the counts), never across minutes, results or interactive ones.
async fn sign_ins_aggregate_per_minute(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let tenant = seed.tenant.id;
    // (`t(0)` is on a minute.) Minute 1 (60..119): two in one batch, a record counting two in
    // the next, and one failure.
    let first = sign_in(tenant, 61, "d@mlgate.local", "app-d", 0);
    let mut later = sign_in(tenant, 70, "d@mlgate.local", "app-d", 0);
    later.count = 2;
    later.last_at = t(75);
    let same = sign_in(tenant, 65, "d@mlgate.local", "app-d", 0);
    let failed = sign_in(tenant, 66, "d@mlgate.local", "app-d", 50126);
    s.insert_sign_ins(&[first.clone(), same, failed.clone()]).await.unwrap();
    s.insert_sign_ins(&[later]).await.unwrap();
    // Minute 2, and an interactive sign-in in minute 1.
    let next_minute = sign_in(tenant, 121, "d@mlgate.local", "app-d", 0);
    let mut page = sign_in(tenant, 62, "d@mlgate.local", "app-d", 0);
    page.interactive = true;
    s.insert_sign_ins(&[next_minute.clone(), page.clone()]).await.unwrap();

    let q = SignInQuery {
        tenant_id: Some(tenant),
        user: Some("d@mlgate.local".into()),
        limit: 100,
        ..Default::default()
    };
    let found = s.sign_ins(&q).await.unwrap();
    let summary: Vec<(i64, u32, u32, i64)> = found
        .iter()
        .map(|r| {
            (
                (r.at - t(0)).whole_seconds(),
                r.error_code,
                r.count,
                (r.last_at - t(0)).whole_seconds(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![(121, 0, 1, 121), (66, 50126, 1, 66), (62, 0, 1, 62), (61, 0, 4, 75)],
        "{found:#?}"
    );
    let aggregated = found.iter().find(|r| r.count == 4).unwrap();
    assert_eq!(aggregated.id, first.id, "the record is the first attempt's");
    assert_eq!(aggregated.correlation_id, first.correlation_id);
    assert_eq!(found.iter().find(|r| r.interactive).unwrap(), &page);
    assert_eq!(found.iter().find(|r| r.error_code != 0).unwrap(), &failed);
}
