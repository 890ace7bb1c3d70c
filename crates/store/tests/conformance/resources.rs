//! Resource groups, workspaces, custom roles and role assignments.

use std::sync::Arc;

use mlgate_core::ids::{ObjectId, RoleDefinitionId, TenantId};
use mlgate_core::records::{CustomRoleRecord, ResourceGroup};
use mlgate_core::store::{KeepOneAssignment, Store, StoreError};

use crate::conformance;
use crate::support::*;

conformance!(groups_and_workspaces, deleting_a_scope_takes_its_assignments, roles_and_assignments);

async fn groups_and_workspaces(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let sub = seed.sub.id;
    assert_eq!(s.subscription(sub).await.unwrap(), Some(seed.sub.clone()));
    // Names keep their first spelling and compare without case.
    let again = ResourceGroup {
        subscription_id: sub,
        name: "rg".into(),
        location: "elsewhere".into(),
        created_at: t(9),
    };
    let (stored, created) = s.put_resource_group(&again).await.unwrap();
    assert!(!created);
    assert_eq!((stored.name.as_str(), stored.location.as_str()), ("RG", "local"));
    for name in ["b-2", "A_1", "c.3"] {
        let rg = ResourceGroup { name: name.into(), ..again.clone() };
        assert!(s.put_resource_group(&rg).await.unwrap().1);
    }
    let page: Vec<_> =
        s.list_resource_groups(sub, None, 2).await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(page, ["A_1", "b-2"]);
    let rest: Vec<_> = s
        .list_resource_groups(sub, Some("B-2"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(rest, ["c.3", "RG"]);

    let ws = s.workspace(sub, "rg", "ws").await.unwrap().unwrap();
    assert_eq!(ws, seed.ws);
    assert_eq!(s.workspace_by_id(ws.id).await.unwrap(), Some(ws.clone()));
    let mut update = workspace(sub, "Rg", "wS", seed.admin.object_id);
    update.description = "new".into();
    let (updated, created) = s.put_workspace(&update).await.unwrap();
    assert!(!created);
    assert_eq!((updated.id, updated.description.as_str()), (ws.id, "new"), "the id stays");
    let w2 = workspace(sub, "b-2", "alpha", seed.admin.object_id);
    s.put_workspace(&w2).await.unwrap();
    let w3 = workspace(sub, "RG", "aaa", seed.admin.object_id);
    s.put_workspace(&w3).await.unwrap();
    let all: Vec<_> = s
        .list_workspaces(sub, None, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|w| format!("{}/{}", w.resource_group, w.name))
        .collect();
    assert_eq!(all, ["b-2/alpha", "RG/aaa", "RG/WS"]);
    let in_rg: Vec<_> = s
        .list_workspaces(sub, Some("rg"), Some(("rg", "AAA")), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(in_rg, ["WS"]);
    let orphan = workspace(sub, "no-such-group", "x", seed.admin.object_id);
    assert!(s.put_workspace(&orphan).await.is_err(), "a workspace needs its group");

    // A workspace or group with a service or endpoint is not deleted.
    s.put_service(&service("svc", ws.id, seed.admin.object_id), &sealed("a")).await.unwrap();
    let ws_scope = ws_scope_key(&seed, "RG", "WS");
    assert!(matches!(
        s.delete_workspace(sub, "rg", "ws", &ws_scope).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.delete_resource_group(sub, "rg", &format!("/subscriptions/{sub}/resourcegroups/rg"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    s.delete_endpoint("svc").await.unwrap();
    s.delete_workspace(sub, "RG", "WS", &ws_scope).await.unwrap();
    assert_eq!(s.workspace(sub, "rg", "ws").await.unwrap(), None);
    assert!(matches!(
        s.delete_workspace(sub, "RG", "WS", &ws_scope).await,
        Err(StoreError::NotFound)
    ));
    // A group takes its workspaces with it.
    s.delete_resource_group(sub, "RG", &format!("/subscriptions/{sub}/resourcegroups/rg"))
        .await
        .unwrap();
    assert_eq!(s.workspace_by_id(w3.id).await.unwrap(), None);
    assert_eq!(s.resource_group(sub, "rg").await.unwrap(), None);
}

fn ws_scope_key(seed: &Seed, rg: &str, ws: &str) -> String {
    format!(
        "/subscriptions/{}/resourcegroups/{rg}/providers/microsoft.machinelearningservices/workspaces/{ws}",
        seed.sub.id
    )
    .to_ascii_lowercase()
}

async fn deleting_a_scope_takes_its_assignments(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let tenant = seed.tenant.id;
    let role = RoleDefinitionId(guid());
    let ws_scope = ws_scope_key(&seed, "RG", "WS");
    let base = format!("/subscriptions/{}/resourceGroups/RG", seed.sub.id);
    let at_ws = assignment(
        tenant,
        ObjectId(guid()),
        role,
        &format!("{base}/providers/Microsoft.MachineLearningServices/workspaces/WS"),
    );
    let below = assignment(
        tenant,
        ObjectId(guid()),
        role,
        &format!("{base}/providers/Microsoft.MachineLearningServices/workspaces/WS/services/x"),
    );
    // A sibling whose name starts like it stays, and so does the group's own.
    let sibling = assignment(
        tenant,
        ObjectId(guid()),
        role,
        &format!("{base}/providers/Microsoft.MachineLearningServices/workspaces/WS2"),
    );
    let at_rg = assignment(tenant, ObjectId(guid()), role, &base);
    s.insert_role_assignments(&[at_ws.clone(), below.clone(), sibling.clone(), at_rg.clone()])
        .await
        .unwrap();
    s.delete_workspace(seed.sub.id, "RG", "WS", &ws_scope).await.unwrap();
    let left: Vec<_> = s.role_assignments().await.unwrap().into_iter().map(|a| a.id).collect();
    assert!(left.contains(&sibling.id) && left.contains(&at_rg.id));
    assert!(!left.contains(&at_ws.id) && !left.contains(&below.id));
}

async fn roles_and_assignments(s: Arc<dyn Store>) {
    let seed = seed(s.as_ref()).await;
    let tenant = seed.tenant.id;
    let role = CustomRoleRecord {
        id: RoleDefinitionId(guid()),
        tenant_id: tenant,
        name: "Model Reader".into(),
        definition_json: r#"{"actions":["*/read"]}"#.into(),
        created_at: t(0),
    };
    s.insert_custom_role(&role).await.unwrap();
    let same_name = CustomRoleRecord {
        id: RoleDefinitionId(guid()),
        name: "MODEL reader".into(),
        ..role.clone()
    };
    assert!(matches!(s.insert_custom_role(&same_name).await, Err(StoreError::Conflict(_))));
    let elsewhere = CustomRoleRecord { tenant_id: TenantId(guid()), ..same_name.clone() };
    assert!(s.insert_custom_role(&elsewhere).await.is_err(), "an unknown tenant is refused");
    assert_eq!(s.custom_roles().await.unwrap(), vec![role.clone()]);

    let scope = format!("/subscriptions/{}", seed.sub.id);
    let a = assignment(tenant, seed.admin.object_id, role.id, &scope);
    s.insert_role_assignment(&a).await.unwrap();
    let mut same = assignment(tenant, seed.admin.object_id, role.id, &scope.to_uppercase());
    same.scope = scope.replace("subscriptions", "SUBSCRIPTIONS");
    assert!(matches!(s.insert_role_assignment(&same).await, Err(StoreError::Conflict(_))));
    // A failing bulk insert inserts none.
    let fresh = assignment(tenant, ObjectId(guid()), role.id, &scope);
    assert!(s.insert_role_assignments(&[fresh.clone(), same.clone()]).await.is_err());
    assert!(!s.role_assignments().await.unwrap().iter().any(|r| r.id == fresh.id));

    // The last assignment of a role at a scope is kept when asked.
    let keep = KeepOneAssignment { role: role.id, scope_key: scope.to_ascii_lowercase() };
    assert!(matches!(
        s.delete_role_assignment(a.id, Some(&keep)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(s.role_assignments().await.unwrap().contains(&a), "rolled back");
    let other = assignment(tenant, ObjectId(guid()), role.id, &scope);
    s.insert_role_assignment(&other).await.unwrap();
    assert_eq!(s.delete_role_assignment(a.id, Some(&keep)).await.unwrap(), a);
    assert_eq!(s.delete_role_assignment(other.id, None).await.unwrap(), other);
    assert!(matches!(s.delete_role_assignment(a.id, None).await, Err(StoreError::NotFound)));
}
