//! Races, run from many tasks at once on a multi-threaded runtime. On PostgreSQL each task
//! has its own connection, so these are the races several nodes would run.

use std::collections::BTreeSet;
use std::sync::Arc;

use mlgate_core::ids::{ObjectId, RoleDefinitionId};
use mlgate_core::records::{DeviceState, KeyState, UploadedBlob};
use mlgate_core::store::{KeepOneAssignment, Store, StoreError};
use tokio::task::JoinSet;

use crate::conformance;
use crate::flows::{code, device, grant};
use crate::records::{endpoint, model};
use crate::support::*;

conformance!(
    one_refresh_token_redeemed_at_once,
    one_code_redeemed_at_once,
    one_device_code_at_once,
    model_versions_at_once,
    last_two_owners_removed_at_once,
    deployments_with_keys_at_once,
    one_name_two_workspaces_at_once,
    uploads_into_a_full_area_at_once,
    signing_key_rotations_at_once,
    a_deployment_and_its_workspaces_deletion_at_once,
);

const TASKS: usize = 16;

/// Runs `f(i)` for `i` in `0..n` at once and collects the results.
async fn at_once<T, F, Fut>(n: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let mut set = JoinSet::new();
    for i in 0..n {
        let fut = f(i);
        let start = start.clone();
        set.spawn(async move {
            start.wait().await;
            fut.await
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out
}

async fn one_refresh_token_redeemed_at_once(s: Arc<dyn Store>) {
    for round in 0..5u8 {
        let fam = family();
        let g = grant(round, fam);
        s.insert_refresh_grant(&g).await.unwrap();
        let results = at_once(TASKS, |i| {
            let s = s.clone();
            async move { s.use_refresh_grant(&g.digest, t(i as i64 + 1)).await.unwrap().unwrap() }
        })
        .await;
        let winners: Vec<_> = results.iter().filter(|g| g.used_at.is_none()).collect();
        assert_eq!(winners.len(), 1, "exactly one redemption wins (round {round})");
        // The winner's new token joins the family; every loser is a reuse, and a reuse revokes
        // the family (what the authority does with a used grant), new token included.
        let child = grant(round + 100, fam);
        s.insert_refresh_grant(&child).await.unwrap();
        for loser in results.iter().filter(|g| g.used_at.is_some()) {
            s.revoke_grant_family(loser.family).await.unwrap();
        }
        assert!(s.refresh_grant(&child.digest).await.unwrap().unwrap().revoked);
    }
}

async fn one_code_redeemed_at_once(s: Arc<dyn Store>) {
    for round in 0..5u8 {
        let c = code(round);
        s.insert_authorization_code(&c).await.unwrap();
        let results = at_once(TASKS, |_| {
            let s = s.clone();
            async move { s.take_authorization_code(&c.digest).await.unwrap().unwrap() }
        })
        .await;
        assert_eq!(results.iter().filter(|c| !c.used).count(), 1, "round {round}");
    }
}

async fn one_device_code_at_once(s: Arc<dyn Store>) {
    for round in 0..5u8 {
        let d = device(round);
        s.insert_device_authorization(&d).await.unwrap();
        let decided = at_once(TASKS, |i| {
            let s = s.clone();
            let state = if i % 2 == 0 { DeviceState::Approved } else { DeviceState::Denied };
            async move {
                let user = ObjectId(guid());
                s.decide_device(&d.user_code_digest, state, user, t(1)).await.unwrap()
            }
        })
        .await;
        assert_eq!(decided.iter().filter(|d| **d).count(), 1, "one decision (round {round})");
        if s.poll_device(&d.digest, t(2)).await.unwrap().unwrap().state == DeviceState::Approved {
            let consumed = at_once(TASKS, |_| {
                let s = s.clone();
                async move { s.consume_device(&d.digest).await.unwrap() }
            })
            .await;
            assert_eq!(consumed.iter().filter(|c| **c).count(), 1, "one token (round {round})");
        }
    }
}

async fn model_versions_at_once(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let (ws, by) = (seed.ws.id, seed.admin.object_id);
    let n = 24;
    let versions = at_once(n, |i| {
        let s = s.clone();
        // Two models at once, so registrations of one do not wait for the other.
        let name = if i % 3 == 0 { "other" } else { "Digits" };
        async move { (name, s.insert_model_version(&model(ws, name, by)).await.unwrap()) }
    })
    .await;
    for name in ["Digits", "other"] {
        let mut got: Vec<i64> =
            versions.iter().filter(|(m, _)| *m == name).map(|(_, v)| *v).collect();
        got.sort();
        let expected: Vec<i64> = (1..=got.len() as i64).collect();
        assert_eq!(got, expected, "{name}: 1..N, no gap, no duplicate");
        let stored: Vec<i64> =
            s.model_versions(ws, name).await.unwrap().into_iter().map(|m| m.version).collect();
        assert_eq!(stored, expected);
    }
}

async fn last_two_owners_removed_at_once(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let owner = RoleDefinitionId(guid());
    for round in 0..8 {
        let scope = format!("/subscriptions/{}/resourceGroups/r{round}", seed.sub.id);
        let keep = KeepOneAssignment { role: owner, scope_key: scope.to_ascii_lowercase() };
        let a = assignment(seed.tenant.id, ObjectId(guid()), owner, &scope);
        let b = assignment(seed.tenant.id, ObjectId(guid()), owner, &scope);
        s.insert_role_assignments(&[a.clone(), b.clone()]).await.unwrap();
        let ids = [a.id, b.id];
        let results = at_once(2, |i| {
            let s = s.clone();
            let keep = keep.clone();
            async move { s.delete_role_assignment(ids[i], Some(&keep)).await }
        })
        .await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let refused = results.iter().filter(|r| matches!(r, Err(StoreError::Conflict(_)))).count();
        assert_eq!((ok, refused), (1, 1), "one goes, the last stays (round {round}): {results:?}");
        let left = s
            .role_assignments()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.role_id == owner && r.scope == scope)
            .count();
        assert_eq!(left, 1);
    }
}

async fn deployments_with_keys_at_once(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let (ws, by) = (seed.ws.id, seed.admin.object_id);
    let results = at_once(TASKS, |i| {
        let s = s.clone();
        async move {
            let mut svc = service("Racer", ws, by);
            svc.model_version = i as i64 + 1;
            s.put_service(&svc, &sealed(&format!("k{i}"))).await
        }
    })
    .await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    // One set of keys, never replaced by a later deployment: the first writer's.
    let keys = s.service_keys("racer").await.unwrap().unwrap();
    let offered: BTreeSet<_> = (0..TASKS).map(|i| sealed(&format!("k{i}")).primary).collect();
    assert!(offered.contains(&keys.primary));
    assert_eq!(keys, sealed(&String::from_utf8_lossy(&keys.primary).replace("-primary", "")));

    // Keys asked for at once, where none are yet: one set is stored and every caller reads it.
    let stored = at_once(TASKS, |i| {
        let s = s.clone();
        async move { s.insert_service_keys("lonely", &sealed(&format!("l{i}"))).await.unwrap() }
    })
    .await;
    assert_eq!(stored.iter().filter(|b| **b).count(), 1);
}

async fn one_name_two_workspaces_at_once(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let by = seed.admin.object_id;
    let (other, _) = s.put_workspace(&workspace(seed.sub.id, "RG", "two", by)).await.unwrap();
    let spaces = [seed.ws.id, other.id];
    for round in 0..6 {
        let name = format!("contested-{round}");
        let results = at_once(8, |i| {
            let s = s.clone();
            let name = name.clone();
            let ws = spaces[i % 2];
            // Services and endpoints share the name space; half of each.
            async move {
                let r = if i % 4 < 2 {
                    s.put_service(&service(&name, ws, by), &sealed("x")).await
                } else {
                    s.put_endpoint(&endpoint(&name, ws, by)).await
                };
                (ws, r)
            }
        })
        .await;
        let winners: BTreeSet<_> =
            results.iter().filter(|(_, r)| r.is_ok()).map(|(ws, _)| *ws).collect();
        assert_eq!(winners.len(), 1, "one workspace holds the name (round {round}): {results:?}");
        for (ws, r) in &results {
            if !winners.contains(ws) {
                assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
            }
        }
        let owner = winners.iter().next().copied();
        let svc = s.service(&name).await.unwrap().map(|x| x.workspace_id);
        let ep = s.endpoint(&name).await.unwrap().map(|x| x.workspace_id);
        assert!(svc.is_none() || svc == owner);
        assert!(ep.is_none() || ep == owner);
    }
}

async fn uploads_into_a_full_area_at_once(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let area = "b".repeat(32);
    let results = at_once(TASKS, |i| {
        let s = s.clone();
        let blob = UploadedBlob {
            upload: area.clone(),
            workspace_id: seed.ws.id,
            path: format!("f{i}"),
            sha256: "00".repeat(32),
            size: 1,
            metadata: Default::default(),
            created_at: t(0),
        };
        async move { s.put_uploaded_blob(&blob, 5, 1_000).await }
    })
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 5, "the file cap holds");
    assert_eq!(s.uploaded_blobs(&area, "", 100).await.unwrap().len(), 5);
}

async fn signing_key_rotations_at_once(s: Arc<dyn Store>) {
    s.bootstrap(&bootstrap_data()).await.unwrap();
    let results = at_once(6, |i| {
        let s = s.clone();
        async move {
            let next = key(&format!("r{i}"), KeyState::Next, 10 + i as i64);
            s.rotate_signing_keys(t(10), &next, t(0)).await
        }
    })
    .await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let keys = s.signing_keys().await.unwrap();
    let count = |st: KeyState| keys.iter().filter(|k| k.state == st).count();
    assert_eq!((count(KeyState::Active), count(KeyState::Next)), (1, 1), "{keys:?}");
    assert_eq!(count(KeyState::Retired), 6);
}

async fn a_deployment_and_its_workspaces_deletion_at_once(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let by = seed.admin.object_id;
    for round in 0..8 {
        let name = format!("ws{round}");
        let (ws, _) = s.put_workspace(&workspace(seed.sub.id, "RG", &name, by)).await.unwrap();
        let scope = format!(
            "/subscriptions/{}/resourcegroups/rg/providers/microsoft.machinelearningservices/workspaces/{name}",
            seed.sub.id
        );
        let sub = seed.sub.id;
        let results = at_once(2, |i| {
            let s = s.clone();
            let (name, scope) = (name.clone(), scope.clone());
            async move {
                if i == 0 {
                    s.put_service(&service(&format!("svc-{name}"), ws.id, by), &sealed("k")).await
                } else {
                    s.delete_workspace(sub, "RG", &name, &scope).await
                }
            }
        })
        .await;
        // Never a service left in a workspace that is gone: one of the two gives way.
        let workspace_left = s.workspace_by_id(ws.id).await.unwrap().is_some();
        let service_left = s.service(&format!("svc-{name}")).await.unwrap().is_some();
        assert!(workspace_left || !service_left, "an orphan service (round {round}): {results:?}");
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    }
}
