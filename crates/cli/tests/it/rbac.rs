//! RBAC over the API: the role x operation matrix, inheritance, custom roles, revocation, and
//! bad input with nothing half-written.

use mlgate_client::{Client, ClientError};
use mlgate_proto::{CheckAccess, CreateRoleAssignment};
use serde_json::json;

use crate::support::*;

struct World {
    s: TestServer,
    admin: String,
    sub: String,
    ws1_scope: String,
}

async fn world() -> World {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let c = s.client();
    let sub = c.subscriptions(&admin).await.unwrap()[0].subscription_id.clone();
    c.put_resource_group(&admin, &sub, "rg1", Some("westeurope")).await.unwrap();
    c.put_resource_group(&admin, &sub, "rg2", None).await.unwrap();
    let ws1 = c.put_workspace(&admin, &sub, "rg1", "ws1", Some("first")).await.unwrap();
    c.put_workspace(&admin, &sub, "rg2", "ws2", None).await.unwrap();
    World { s, admin, sub, ws1_scope: ws1.id }
}

/// A new service principal holding `role` at `scope`; returns a client token for it.
async fn principal_with(w: &World, name: &str, role: Option<(&str, &str)>) -> (String, String) {
    let sp = w.s.create_sp(name).await;
    if let Some((role, scope)) = role {
        let req = CreateRoleAssignment {
            assignee: sp.app_id.clone(),
            role: role.into(),
            scope: scope.into(),
        };
        w.s.client().create_role_assignment(&w.admin, &req).await.unwrap();
    }
    let t =
        w.s.client()
            .client_credentials(&w.s.tenant_id, &sp.app_id, &sp.password, ARM_SCOPE)
            .await
            .unwrap();
    (sp.object_id, t.access_token)
}

/// A principal's name, its role and scope (if any), and the expected [read, write, delete,
/// assign] statuses.
type Row<'a> = (&'a str, Option<(&'a str, &'a str)>, [u16; 4]);

fn code<T>(r: Result<T, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Api { status, body }) => (status.as_u16(), body.error.code),
        Ok(_) => (200, String::new()),
        Err(e) => panic!("{e:?}"),
    }
}

fn status<T: std::fmt::Debug>(r: &Result<T, ClientError>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(e) => e.status().map(|s| s.as_u16()).unwrap_or(0),
    }
}

/// The outcome of each operation for a token: read, write, delete, assign roles.
async fn operations(w: &World, c: &Client, token: &str) -> [u16; 4] {
    let read = c.workspace(token, &w.sub, "rg1", "ws1").await;
    let write = c.put_workspace(token, &w.sub, "rg1", "ws1", Some("changed")).await;
    // Deleting a workspace that does not exist: 404 means "allowed", 403 "denied".
    let delete = c.delete_workspace(token, &w.sub, "rg1", "no-such-ws").await;
    let target = w.s.create_sp("assign-target").await;
    let assign = c
        .create_role_assignment(
            token,
            &CreateRoleAssignment {
                assignee: target.object_id.clone(),
                role: "Reader".into(),
                scope: w.ws1_scope.clone(),
            },
        )
        .await;
    [status(&read), status(&write), status(&delete), status(&assign)]
}

#[tokio::test]
async fn the_role_by_operation_matrix() {
    let w = world().await;
    let c = w.s.client();
    let rg1 = format!("/subscriptions/{}/resourceGroups/rg1", w.sub);

    let custom = json!({
        "Name": "Workspace Operator",
        "IsCustom": true,
        "Description": "Reads and updates workspaces but never deletes them.",
        "Actions": ["Microsoft.MachineLearningServices/workspaces/*"],
        "NotActions": ["Microsoft.MachineLearningServices/workspaces/delete"],
        "DataActions": [],
        "NotDataActions": [],
        "AssignableScopes": [format!("/subscriptions/{}", w.sub)]
    });
    c.create_role_definition(&w.admin, &custom).await.unwrap();

    //                          read write delete assign
    let expect: &[Row] = &[
        ("owner", Some(("Owner", &rg1)), [200, 200, 404, 200]),
        ("contributor", Some(("Contributor", &rg1)), [200, 200, 404, 403]),
        ("reader", Some(("Reader", &rg1)), [200, 403, 403, 403]),
        ("data-scientist", Some(("AzureML Data Scientist", &rg1)), [200, 403, 403, 403]),
        ("custom", Some(("workspace operator", &rg1)), [200, 200, 403, 403]),
        ("other-rg", Some(("Owner", "")), [403, 403, 403, 403]),
        ("nobody", None, [403, 403, 403, 403]),
    ];
    let rg2 = format!("/subscriptions/{}/resourceGroups/rg2", w.sub);
    for (name, role, want) in expect {
        let role = role.map(|(r, s)| (r, if s.is_empty() { rg2.as_str() } else { s }));
        let (_, token) = principal_with(&w, name, role).await;
        let got = operations(&w, &c, &token).await;
        assert_eq!(&got, want, "{name}: [read, write, delete, assign]");
    }

    // Actions on things below the workspace, through the explanation endpoint.
    let (ds, _) = principal_with(&w, "ds2", Some(("AzureML Data Scientist", &w.ws1_scope))).await;
    let (reader, _) = principal_with(&w, "reader2", Some(("Reader", &w.ws1_scope))).await;
    let check = |who: String, action: &str| {
        let c = c.clone();
        let req = CheckAccess {
            assignee: who,
            action: action.into(),
            scope: format!("{}/models/m1", w.ws1_scope),
        };
        let admin = w.admin.clone();
        async move { c.check_access(&admin, &req).await.unwrap() }
    };
    let r = check(ds.clone(), "Microsoft.MachineLearningServices/workspaces/models/write").await;
    assert!(r.allowed);
    assert_eq!(r.decided_by.unwrap().role_definition_name, "AzureML Data Scientist");
    assert!(
        !check(ds.clone(), "Microsoft.MachineLearningServices/workspaces/listKeys/action")
            .await
            .allowed
    );
    let r =
        check(reader.clone(), "Microsoft.MachineLearningServices/workspaces/models/write").await;
    assert!(!r.allowed);
    assert!(r.considered[0].reason.contains("does not grant"), "{r:?}");
    assert!(
        check(reader, "Microsoft.MachineLearningServices/workspaces/models/read").await.allowed
    );
}

#[tokio::test]
async fn denials_name_principal_action_and_scope_and_revocation_is_immediate() {
    let w = world().await;
    let c = w.s.client();
    let (oid, token) = principal_with(&w, "reader", Some(("Reader", &w.ws1_scope))).await;
    let err = c.put_workspace(&token, &w.sub, "rg1", "ws1", None).await.unwrap_err();
    match err {
        ClientError::Api { status, body } => {
            assert_eq!(status.as_u16(), 403);
            assert_eq!(body.error.code, "AuthorizationFailed");
            let m = &body.error.message;
            assert!(m.contains(&oid), "{m}");
            assert!(m.contains("Microsoft.MachineLearningServices/workspaces/write"), "{m}");
            assert!(
                m.contains(
                    "/resourceGroups/rg1/providers/Microsoft.MachineLearningServices/workspaces/ws1"
                ),
                "{m}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Reading works, until the assignment is removed: the very next request is refused.
    assert!(c.workspace(&token, &w.sub, "rg1", "ws1").await.is_ok());
    let list = c.role_assignments(&w.admin, Some(&w.ws1_scope), Some(&oid), false).await.unwrap();
    assert_eq!(list.len(), 1);
    c.delete_role_assignment(&w.admin, &list[0].id).await.unwrap();
    assert_eq!(status(&c.workspace(&token, &w.sub, "rg1", "ws1").await), 403);
    // A principal with no role sees no subscription.
    assert!(c.subscriptions(&token).await.unwrap().is_empty());
    // And without a token at all: 401.
    let r =
        w.s.http()
            .get(format!("{}/subscriptions/{}/resourceGroups/rg1", w.s.url, w.sub))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn inherited_assignments_are_listed_with_include_inherited() {
    let w = world().await;
    let c = w.s.client();
    let rg1 = format!("/subscriptions/{}/resourceGroups/rg1", w.sub);
    let (oid, _) = principal_with(&w, "inherit", Some(("Reader", &rg1))).await;
    let at_ws = c.role_assignments(&w.admin, Some(&w.ws1_scope), Some(&oid), false).await.unwrap();
    assert!(at_ws.is_empty());
    let inherited =
        c.role_assignments(&w.admin, Some(&w.ws1_scope), Some(&oid), true).await.unwrap();
    assert_eq!(inherited.len(), 1);
    assert_eq!(inherited[0].scope.to_ascii_lowercase(), rg1.to_ascii_lowercase());
    // Paths and scopes match case-insensitively, as in ARM.
    let upper = format!(
        "/SUBSCRIPTIONS/{}/RESOURCEGROUPS/RG1/PROVIDERS/MICROSOFT.MACHINELEARNINGSERVICES/WORKSPACES/WS1",
        w.sub
    );
    let r =
        w.s.http()
            .get(format!("{}{upper}?api-version=2024-04-01", w.s.url))
            .bearer_auth(&w.admin)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn bad_rbac_input_gets_clear_errors_and_nothing_half_written() {
    let w = world().await;
    let c = w.s.client();
    let sub_scope = format!("/subscriptions/{}", w.sub);
    let sp = w.s.create_sp("target").await;
    let assign = |role: &str, scope: &str| CreateRoleAssignment {
        assignee: sp.app_id.clone(),
        role: role.into(),
        scope: scope.into(),
    };

    // Malformed role JSON: not JSON at all, missing fields, bad actions, root scope.
    let http = w.s.http();
    let url = format!("{}/api/v1/roleDefinitions", w.s.url);
    let r = http
        .post(&url)
        .bearer_auth(&w.admin)
        .header("content-type", "application/json")
        .body("{\"Name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    for bad in [
        json!({"IsCustom": true, "Actions": ["*/read"], "AssignableScopes": [sub_scope]}),
        json!({"Name": "x", "Actions": ["not an action"], "AssignableScopes": [sub_scope]}),
        json!({"Name": "x", "Actions": [], "AssignableScopes": [sub_scope]}),
        json!({"Name": "x", "Actions": ["*/read"], "AssignableScopes": ["/"]}),
        json!({"Name": "x", "Actions": ["*/read"], "AssignableScopes": []}),
        json!({"Name": "x", "Actions": ["*/read"], "AssignableScopes": ["/subscriptions/00000000-0000-4000-8000-000000000000"]}),
    ] {
        let (st, _) = code(c.create_role_definition(&w.admin, &bad).await);
        assert!(st == 400 || st == 404, "{bad}: {st}");
    }
    // A role whose AssignableScopes is one resource group cannot be assigned elsewhere.
    let narrow = json!({"Name": "RG1 Only", "Actions": ["*/read"],
                        "AssignableScopes": [format!("{sub_scope}/resourceGroups/rg1")]});
    c.create_role_definition(&w.admin, &narrow).await.unwrap();
    assert_eq!(code(c.create_role_definition(&w.admin, &narrow).await), (409, "Conflict".into()));
    assert_eq!(
        code(
            c.create_role_definition(
                &w.admin,
                &json!({"Name": "owner", "Actions": ["*"], "AssignableScopes": [sub_scope]})
            )
            .await
        )
        .0,
        409
    );
    let (st, _) = code(
        c.create_role_assignment(
            &w.admin,
            &assign("RG1 Only", &format!("{sub_scope}/resourceGroups/rg2")),
        )
        .await,
    );
    assert_eq!(st, 400);
    assert_eq!(
        code(c.create_role_assignment(&w.admin, &assign("RG1 Only", &w.ws1_scope)).await).0,
        200
    );

    // Unknown role, unknown principal, malformed and missing scopes.
    assert_eq!(
        code(c.create_role_assignment(&w.admin, &assign("Emperor", &sub_scope)).await).0,
        400
    );
    let stranger = CreateRoleAssignment {
        assignee: uuid::Uuid::new_v4().to_string(),
        role: "Reader".into(),
        scope: sub_scope.clone(),
    };
    assert_eq!(code(c.create_role_assignment(&w.admin, &stranger).await).0, 400);
    assert_eq!(
        code(c.create_role_assignment(&w.admin, &assign("Reader", "subscriptions/nope")).await).0,
        400
    );
    assert_eq!(
        code(
            c.create_role_assignment(
                &w.admin,
                &assign("Reader", &format!("{sub_scope}/resourceGroups/ghost"))
            )
            .await
        )
        .0,
        404
    );

    // Duplicate assignment: 409.
    c.create_role_assignment(&w.admin, &assign("Reader", &sub_scope)).await.unwrap();
    assert_eq!(
        code(c.create_role_assignment(&w.admin, &assign("reader", &sub_scope)).await),
        (409, "Conflict".into())
    );

    // The last Owner of the subscription cannot be removed; the refused deletion changes nothing.
    let owners: Vec<_> = c
        .role_assignments(&w.admin, Some(&sub_scope), None, false)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.role_definition_name == "Owner" && a.scope.eq_ignore_ascii_case(&sub_scope))
        .collect();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        code(c.delete_role_assignment(&w.admin, &owners[0].name).await),
        (409, "Conflict".into())
    );
    assert!(c.workspace(&w.admin, &w.sub, "rg1", "ws1").await.is_ok(), "the admin is still Owner");
    // With a second Owner, the first can go.
    c.create_role_assignment(&w.admin, &assign("Owner", &sub_scope)).await.unwrap();
    c.delete_role_assignment(&w.admin, &owners[0].name).await.unwrap();
    assert_eq!(status(&c.workspace(&w.admin, &w.sub, "rg1", "ws1").await), 403);

    // Invalid names.
    let token = c
        .client_credentials(&w.s.tenant_id, &sp.app_id, &sp.password, ARM_SCOPE)
        .await
        .unwrap()
        .access_token;
    assert_eq!(code(c.put_resource_group(&token, &w.sub, "bad name!", None).await).0, 400);
    assert_eq!(code(c.put_workspace(&token, &w.sub, "rg1", "x", None).await).0, 400);
    assert_eq!(code(c.put_workspace(&token, &w.sub, "rg1", "-leading-dash", None).await).0, 400);
    assert_eq!(code(c.put_workspace(&token, &w.sub, "ghost-rg", "fine-name", None).await).0, 404);
    assert_eq!(
        code(c.resource_group(&token, &uuid::Uuid::new_v4().to_string(), "rg1").await).0,
        404
    );
}

#[tokio::test]
async fn listings_page_with_next_link_and_deletes_cascade() {
    let w = world().await;
    let c = w.s.client();
    for i in 0..7 {
        c.put_workspace(&w.admin, &w.sub, "rg1", &format!("page-{i:02}"), None).await.unwrap();
    }
    let url = format!(
        "{}/subscriptions/{}/resourceGroups/rg1/providers/Microsoft.MachineLearningServices/workspaces?api-version=2024-04-01&$top=3",
        w.s.url, w.sub
    );
    let mut next = Some(url);
    let mut names = Vec::new();
    let mut pages = 0;
    while let Some(u) = next {
        let page: serde_json::Value =
            w.s.http().get(&u).bearer_auth(&w.admin).send().await.unwrap().json().await.unwrap();
        pages += 1;
        for v in page["value"].as_array().unwrap() {
            names.push(v["name"].as_str().unwrap().to_string());
        }
        next = page["nextLink"].as_str().map(str::to_string);
    }
    assert_eq!(names.len(), 8, "{names:?}");
    assert!(pages >= 3);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    // The SDK follows nextLink by itself.
    assert_eq!(c.workspaces(&w.admin, &w.sub, None).await.unwrap().len(), 9);

    // Deleting a group removes its workspaces and the role assignments in it.
    let (oid, token) = principal_with(&w, "doomed", Some(("Reader", &w.ws1_scope))).await;
    c.delete_resource_group(&w.admin, &w.sub, "rg1").await.unwrap();
    assert_eq!(status(&c.resource_group(&w.admin, &w.sub, "rg1").await), 404);
    assert!(c.role_assignments(&w.admin, None, Some(&oid), false).await.unwrap().is_empty());
    c.put_resource_group(&w.admin, &w.sub, "rg1", None).await.unwrap();
    c.put_workspace(&w.admin, &w.sub, "rg1", "ws1", None).await.unwrap();
    assert_eq!(
        status(&c.workspace(&token, &w.sub, "rg1", "ws1").await),
        403,
        "no access survives a re-creation"
    );

    // The OpenAPI document is served.
    let doc: serde_json::Value =
        w.s.http()
            .get(format!("{}/api/v1/openapi.json", w.s.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"].as_object().unwrap().len() > 10);
}

/// Every operation the OpenAPI document lists is one the server routes: without a token it is
/// refused as unauthenticated, and with the token of a principal that holds no role it reaches
/// its handler (refused as forbidden, not found or bad input), never "no route" or "method not
/// allowed". A path or method renamed on one side fails this.
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let w = world().await;
    let (_, nobody) = principal_with(&w, "nobody", None).await;
    let http = w.s.http();
    let doc: serde_json::Value = http
        .get(format!("{}/api/v1/openapi.json", w.s.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = fill_placeholders(
            &path
                .replace("{subscriptionId}", &w.sub)
                .replace("{resourceGroupName}", "rg1")
                .replace("{workspaceName}", "ws1")
                .replace("{sha256}", &"0".repeat(64))
                .replace("{version}", "1"),
        );
        for (method, op) in item.as_object().unwrap() {
            if !["get", "put", "post", "patch", "delete", "head"].contains(&method.as_str()) {
                continue;
            }
            assert!(op["responses"].is_object(), "{method} {path} documents no responses");
            let m: reqwest::Method = method.to_uppercase().parse().unwrap();
            for token in [None, Some(nobody.as_str())] {
                let mut req = http
                    .request(m.clone(), format!("{}{concrete}", w.s.url))
                    .header("content-type", "application/json")
                    .body("{}");
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap();
                let who =
                    if token.is_some() { "with a role-less token" } else { "without a token" };
                assert_ne!(status, 405, "{method} {path} {who}: method not routed");
                assert!(!body.contains("No route matches"), "{method} {path} {who}: not routed");
                if token.is_none() && !path.ends_with("/score") {
                    assert_eq!(status, 401, "{method} {path} answers without a token: {body}");
                }
                if token.is_some() {
                    assert!(
                        [200, 201, 202, 204, 400, 401, 403, 404, 409].contains(&status),
                        "{method} {path} {who}: {status} {body}"
                    );
                }
            }
            operations += 1;
        }
    }
    assert!(operations >= 40, "only {operations} operations documented");
}

/// Replaces any remaining `{name}` placeholder with a plausible value.
fn fill_placeholders(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let j = rest[i..].find('}').map_or(rest.len(), |j| i + j + 1);
        out.push_str("x1");
        rest = &rest[j..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn workspace_from_config_with_a_service_principal() {
    use mlgate_client::workspace::{
        Authentication, ServicePrincipalAuthentication, Workspace, WorkspaceConfig,
    };
    let w = world().await;
    let sp = w.s.create_sp("sdk-user").await;
    w.s.client()
        .create_role_assignment(
            &w.admin,
            &CreateRoleAssignment {
                assignee: sp.app_id.clone(),
                role: "Reader".into(),
                scope: w.ws1_scope.clone(),
            },
        )
        .await
        .unwrap();
    let dir = TempDir::new();
    let nested = dir.0.join("project/src");
    std::fs::create_dir_all(dir.0.join(".azureml")).unwrap();
    std::fs::create_dir_all(&nested).unwrap();
    let cfg = WorkspaceConfig {
        subscription_id: w.sub.clone(),
        resource_group: "rg1".into(),
        workspace_name: "ws1".into(),
        server: Some(w.s.url.clone()),
    };
    std::fs::write(dir.0.join(".azureml/config.json"), serde_json::to_string(&cfg).unwrap())
        .unwrap();
    let auth = Authentication::ServicePrincipal(ServicePrincipalAuthentication::new(
        &w.s.tenant_id,
        &sp.app_id,
        &sp.password,
    ));
    let ws =
        Workspace::from_config_with_ca(Some(&nested), Some(auth), Some(&w.s.ca_pem)).await.unwrap();
    assert_eq!(ws.name, "ws1");
    assert_eq!(ws.get_details().properties.description, "first");
    assert_eq!(ws.config(), cfg);
    // A principal without access is refused.
    let outsider = w.s.create_sp("outsider").await;
    let auth = Authentication::ServicePrincipal(ServicePrincipalAuthentication::new(
        &w.s.tenant_id,
        &outsider.app_id,
        &outsider.password,
    ));
    let err = Workspace::from_config_with_ca(Some(&nested), Some(auth), Some(&w.s.ca_pem))
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(403));
    // The AML_* variables, read through a lookup function.
    let vars = |k: &str| match k {
        "AML_TENANT_ID" => Some(w.s.tenant_id.clone()),
        "AML_PRINCIPAL_ID" => Some(sp.app_id.clone()),
        "AML_PRINCIPAL_PASS" => Some(sp.password.clone()),
        _ => None,
    };
    let from_env = ServicePrincipalAuthentication::from_lookup(vars).unwrap();
    assert_eq!(from_env.service_principal_id, sp.app_id);
    assert!(ServicePrincipalAuthentication::from_lookup(|_| None).is_err());
}
