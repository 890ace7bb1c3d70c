//! The faces Microsoft's own clients see (az, azureml-core): cloud metadata and the AD FS-shaped
//! sign-in documents, Graph's applications and service principals, `Microsoft.Authorization` at
//! any scope, the inventory reads, and Azure ML model management, each over the same domain as
//! mlgate's API (RBAC, keys, tokens). The real clients run in tests/compat/azure; these tests
//! pin the wire shapes, the refusals and the bounds.

use std::time::Duration;

use mlgate_client::models::WorkspaceAddress;
use mlgate_proto::DeployService;
use mlgate_serving::onnx::linear_regression_model;
use serde_json::{Value, json};

use crate::support::*;

const MA: &str = "/providers/Microsoft.Authorization";

struct Azure {
    s: TestServer,
    admin: String,
    sub: String,
}

impl Azure {
    async fn new() -> Self {
        let s = TestServer::start().await;
        let admin = s.admin_token().await;
        let sub = s.client().subscriptions(&admin).await.unwrap()[0].subscription_id.clone();
        Self { s, admin, sub }
    }

    /// A token for Graph: this server's own URL as the audience.
    async fn graph_token(&self) -> String {
        let scope = format!("{}//.default", self.s.url);
        self.s
            .client()
            .password(&self.s.tenant_id, ADMIN, ADMIN_PASSWORD, &scope)
            .await
            .unwrap()
            .access_token
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let url = if path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.s.url)
        };
        let mut req = self.s.http().request(method.parse().unwrap(), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null), headers)
    }

    async fn client_credentials(&self, app_id: &str, secret: &str) -> u16 {
        self.s.client_credentials_grant(app_id, secret).await.0
    }
}

#[tokio::test]
async fn cloud_metadata_names_mlgate_in_both_shapes_without_credentials() {
    let a = Azure::new().await;
    let (st, one, _) =
        a.call("GET", "/metadata/endpoints?api-version=2022-09-01", None, None).await;
    assert_eq!(st, 200);
    assert_eq!(one["name"], "mlgate");
    assert_eq!(one["resourceManager"], format!("{}/", a.s.url));
    assert_eq!(one["microsoftGraphResourceId"], format!("{}/", a.s.url));
    assert_eq!(one["authentication"]["loginEndpoint"], format!("{}/adfs/t", a.s.url));
    assert_eq!(one["authentication"]["audiences"][0], ARM);
    assert!(one["suffixes"].is_object());
    // az keeps the user's trailing slash: `//metadata/...` is the same document.
    let (st, again, _) =
        a.call("GET", "//metadata/endpoints?api-version=2022-09-01", None, None).await;
    assert_eq!((st, &again), (200, &one));
    let (st, many, _) =
        a.call("GET", "/metadata/endpoints?api-version=2019-05-01", None, None).await;
    assert_eq!(st, 200);
    let names: Vec<&str> =
        many.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["mlgate", "AzureCloud"]);
    assert_eq!(many[1]["authentication"], one["authentication"]);
}

#[tokio::test]
async fn adfs_documents_point_at_the_tenants_v2_endpoints() {
    let a = Azure::new().await;
    let t = &a.s.tenant_id;
    for path in [
        format!("/adfs/t/{t}/.well-known/openid-configuration"),
        format!("/adfs/{t}/.well-known/openid-configuration"),
        "/adfs/t/organizations/.well-known/openid-configuration".to_string(),
        "/adfs/t/MLGATE.local/.well-known/openid-configuration".to_string(),
        "/adfs/adfs/.well-known/openid-configuration".to_string(),
        "/adfs/.well-known/openid-configuration".to_string(),
    ] {
        let (st, doc, _) = a.call("GET", &path, None, None).await;
        assert_eq!(st, 200, "{path}");
        assert_eq!(doc["token_endpoint"], format!("{}/{t}/oauth2/v2.0/token", a.s.url), "{path}");
        assert_eq!(
            doc["device_authorization_endpoint"],
            format!("{}/{t}/oauth2/v2.0/devicecode", a.s.url)
        );
        assert_eq!(doc["authorization_endpoint"], format!("{}/{t}/oauth2/v2.0/authorize", a.s.url));
    }
    let (st, err, _) =
        a.call("GET", "/adfs/t/nowhere.example/.well-known/openid-configuration", None, None).await;
    assert_eq!(st, 400);
    assert_oauth_error(&err, "invalid_request");
    // The service map a workspace's discoveryUrl names, for any well-formed id, without auth.
    let (st, map, _) =
        a.call("GET", &format!("/discovery/workspaces/{}", uuid::Uuid::new_v4()), None, None).await;
    assert_eq!(st, 200);
    for k in ["api", "modelmanagement", "history", "experimentation", "hyperdrive", "studio"] {
        assert_eq!(map[k], a.s.url.as_str(), "{k}");
    }
    assert_eq!(a.call("GET", "/discovery/workspaces/not-a-guid", None, None).await.0, 404);
}

#[tokio::test]
async fn graph_applications_and_principals_are_two_objects_with_one_app_id() {
    let a = Azure::new().await;
    let g = a.graph_token().await;
    let g = Some(g.as_str());
    // Graph takes tokens for Graph only.
    let (st, err, _) = a.call("GET", "/v1.0/servicePrincipals", Some(&a.admin), None).await;
    assert_eq!((st, err["error"]["code"].as_str()), (401, Some("InvalidAuthenticationToken")));
    assert_eq!(a.call("GET", "/v1.0/servicePrincipals", None, None).await.0, 401);

    // create-for-rbac's order: application, its password, then its principal.
    let (st, app, _) = a
        .call(
            "POST",
            "/v1.0/applications",
            g,
            Some(json!({"displayName": "ml-auth", "keyCredentials": []})),
        )
        .await;
    assert_eq!(st, 201, "{app}");
    let (app_oid, app_id) =
        (app["id"].as_str().unwrap().to_string(), app["appId"].as_str().unwrap().to_string());
    let body = json!({"passwordCredential": {"displayName": "rbac", "startDateTime": "2020-01-01T00:00:00Z",
                                             "endDateTime": "2099-01-01T00:00:00Z"}});
    let (st, pw, _) =
        a.call("POST", &format!("/v1.0/applications/{app_oid}/addPassword"), g, Some(body)).await;
    assert_eq!(st, 200);
    let secret = pw["secretText"].as_str().unwrap().to_string();
    assert_eq!(pw["hint"], &secret[..3]);
    assert_eq!(a.client_credentials(&app_id, &secret).await, 401, "no principal yet");
    let (st, sp, _) = a
        .call(
            "POST",
            "/v1.0/servicePrincipals",
            g,
            Some(json!({"appId": app_id, "accountEnabled": true})),
        )
        .await;
    assert_eq!(st, 201, "{sp}");
    let sp_oid = sp["id"].as_str().unwrap().to_string();
    assert_ne!(sp_oid, app_oid);
    assert_eq!(sp["servicePrincipalNames"], json!([app_id]));
    assert_eq!(a.client_credentials(&app_id, &secret).await, 200, "the application's secret works");
    let (st, dup, _) =
        a.call("POST", "/v1.0/servicePrincipals", g, Some(json!({"appId": app_id}))).await;
    assert_eq!((st, dup["error"]["code"].as_str()), (400, Some("Request_BadRequest")));

    // The filters az sends, percent-encoded as az encodes them.
    let enc = |f: &str| form_urlencoded::byte_serialize(f.as_bytes()).collect::<String>();
    for (filter, n) in [
        (format!("servicePrincipalNames/any(c:c eq '{app_id}')"), 1),
        ("displayName eq 'ML-AUTH'".to_string(), 1),
        ("startswith(displayName,'ml-')".to_string(), 1),
        ("displayName eq 'other'".to_string(), 0),
    ] {
        let (st, list, _) = a
            .call("GET", &format!("/v1.0/servicePrincipals?$filter={}", enc(&filter)), g, None)
            .await;
        assert_eq!(st, 200, "{filter}");
        assert_eq!(list["value"].as_array().unwrap().len(), n, "{filter}");
        assert!(list.get("@odata.nextLink").is_none(), "no next page key on the last page");
    }
    let (st, list, _) = a
        .call(
            "GET",
            &format!("/v1.0/applications?$filter={}", enc(&format!("appId eq '{app_id}'"))),
            g,
            None,
        )
        .await;
    assert_eq!((st, list["value"][0]["id"].as_str()), (200, Some(app_oid.as_str())));
    let (st, e, _) = a
        .call(
            "GET",
            &format!("/v1.0/servicePrincipals?$filter={}", enc("displayName ne 'x'")),
            g,
            None,
        )
        .await;
    assert_eq!((st, e["error"]["code"].as_str()), (400, Some("InvalidFilterInQueryString")));
    let (st, e, _) = a
        .call("GET", &format!("/v1.0/users?$filter={}", enc("accountEnabled eq 'true'")), g, None)
        .await;
    assert_eq!((st, e["error"]["code"].as_str()), (400, Some("Request_UnsupportedQuery")));

    // A password on the principal (ad sp credential reset) works too; removing one stops it.
    let (_, sp_pw, _) = a
        .call("POST", &format!("/v1.0/servicePrincipals/{sp_oid}/addPassword"), g, Some(json!({})))
        .await;
    let sp_secret = sp_pw["secretText"].as_str().unwrap().to_string();
    assert_eq!(a.client_credentials(&app_id, &sp_secret).await, 200);
    let (st, _, _) = a
        .call(
            "POST",
            &format!("/v1.0/servicePrincipals/{sp_oid}/removePassword"),
            g,
            Some(json!({"keyId": sp_pw["keyId"]})),
        )
        .await;
    assert_eq!(st, 204);
    assert_eq!(a.client_credentials(&app_id, &sp_secret).await, 401, "removed at once");
    let (st, e, _) = a
        .call(
            "POST",
            &format!("/v1.0/servicePrincipals/{sp_oid}/removePassword"),
            g,
            Some(json!({"keyId": sp_pw["keyId"]})),
        )
        .await;
    assert_eq!((st, e["error"]["code"].as_str()), (400, Some("Request_BadRequest")));

    // getByIds names each object's type; unknown ids are left out.
    let me = a.call("GET", "/v1.0/me", g, None).await.1;
    assert_eq!(me["userPrincipalName"], ADMIN);
    let (st, objs, _) = a.call("POST", "/v1.0/directoryObjects/getByIds", g,
        Some(json!({"ids": [sp_oid, me["id"], uuid::Uuid::new_v4().to_string()],
                    "types": ["user", "group", "servicePrincipal", "directoryObjectPartnerReference"]}))).await;
    assert_eq!(st, 200);
    let types: Vec<&str> = objs["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["@odata.type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["#microsoft.graph.servicePrincipal", "#microsoft.graph.user"]);

    // An application's token has no /me, as in Graph.
    let app_graph =
        a.s.client()
            .client_credentials(&a.s.tenant_id, &app_id, &secret, &format!("{}//.default", a.s.url))
            .await
            .unwrap();
    let (st, e, _) = a.call("GET", "/v1.0/me", Some(&app_graph.access_token), None).await;
    assert_eq!((st, e["error"]["code"].as_str()), (400, Some("Request_BadRequest")));
    // It may read the directory but not manage another's application.
    let (st, e, _) = a
        .call(
            "DELETE",
            &format!("/v1.0/applications/{app_oid}"),
            Some(&app_graph.access_token),
            None,
        )
        .await;
    assert_eq!((st, e["error"]["code"].as_str()), (403, Some("Authorization_RequestDenied")));

    // Deleting the principal leaves the application (and its secret no longer signs in).
    assert_eq!(
        a.call("DELETE", &format!("/v1.0/servicePrincipals/{sp_oid}"), g, None).await.0,
        204
    );
    let (st, e, _) = a.call("GET", &format!("/v1.0/servicePrincipals/{sp_oid}"), g, None).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("Request_ResourceNotFound")));
    assert_eq!(a.call("GET", &format!("/v1.0/applications/{app_oid}"), g, None).await.0, 200);
    assert_eq!(a.client_credentials(&app_id, &secret).await, 401);
    assert_eq!(a.call("DELETE", &format!("/v1.0/applications/{app_oid}"), g, None).await.0, 204);
    assert_eq!(a.call("GET", &format!("/v1.0/applications/{app_oid}"), g, None).await.0, 404);

    // mlgate's own API makes both objects; Graph sees the pair.
    let made = a.s.create_sp("made-by-mlgate").await;
    let (_, list, _) = a
        .call(
            "GET",
            &format!("/v1.0/applications?$filter={}", enc("displayName eq 'made-by-mlgate'")),
            g,
            None,
        )
        .await;
    assert_eq!(list["value"][0]["appId"], made.app_id.as_str());
    // Bodies are bounded.
    let big = json!({"displayName": "x".repeat(70 * 1024)});
    assert_eq!(a.call("POST", "/v1.0/applications", g, Some(big)).await.0, 413);
}

/// The scopes of the assignments listed at `scope` with `filter`.
async fn scopes(a: &Azure, scope: &str, filter: &str) -> Vec<String> {
    let path = format!("{scope}{MA}/roleAssignments?$filter={filter}");
    let (st, v, _) = a.call("GET", &path, Some(&a.admin), None).await;
    assert_eq!(st, 200, "{v}");
    v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["properties"]["scope"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn role_assignments_and_definitions_at_any_scope_are_mlgates_rbac() {
    let a = Azure::new().await;
    let c = a.s.client();
    c.put_resource_group(&a.admin, &a.sub, "rg", None).await.unwrap();
    let sub_scope = format!("/subscriptions/{}", a.sub);
    let rg_scope = format!("{sub_scope}/resourceGroups/rg");
    let sp = a.s.create_sp("assignee").await;
    let sp_oid = a
        .call("GET", &format!("/api/v1/servicePrincipals/{}", sp.app_id), Some(&a.admin), None)
        .await
        .1["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reader_def =
        format!("{sub_scope}{MA}/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7");

    // Role lookup by name: exactly one match, in the subscription's id form at any scope.
    let (st, defs, _) = a
        .call(
            "GET",
            &format!("{rg_scope}{MA}/roleDefinitions?$filter=roleName%20eq%20%27Reader%27"),
            Some(&a.admin),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(defs["value"].as_array().unwrap().len(), 1);
    assert_eq!(defs["value"][0]["id"], reader_def.as_str());
    assert_eq!(defs["value"][0]["properties"]["type"], "BuiltInRole");

    // PUT with the client's GUID; a duplicate is 409 RoleAssignmentExists.
    let id = uuid::Uuid::new_v4();
    let body = json!({"properties": {"roleDefinitionId": reader_def, "principalId": sp_oid, "principalType": "ServicePrincipal"}});
    let path = format!("{rg_scope}{MA}/roleAssignments/{id}?api-version=2022-04-01");
    let (st, ra, _) = a.call("PUT", &path, Some(&a.admin), Some(body.clone())).await;
    assert_eq!(st, 201, "{ra}");
    assert_eq!(ra["name"], id.to_string());
    assert_eq!(ra["properties"]["scope"], rg_scope.as_str());
    assert_eq!(ra["properties"]["roleDefinitionId"], reader_def.as_str());
    let other = format!("{rg_scope}{MA}/roleAssignments/{}", uuid::Uuid::new_v4());
    let (st, e, _) = a.call("PUT", &other, Some(&a.admin), Some(body.clone())).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("RoleAssignmentExists")));
    // The same PUT again is a no-op.
    assert_eq!(a.call("PUT", &path, Some(&a.admin), Some(body)).await.0, 201);

    // atScope(): at the scope and above it, not below.
    assert_eq!(
        scopes(&a, &sub_scope, "atScope()").await,
        [sub_scope.as_str()],
        "the admin's Owner only"
    );
    let at_rg = scopes(&a, &rg_scope, "atScope()").await;
    assert!(at_rg.contains(&rg_scope) && at_rg.contains(&sub_scope));
    assert_eq!(
        scopes(&a, &sub_scope, &format!("principalId%20eq%20%27{sp_oid}%27")).await,
        [rg_scope.as_str()]
    );
    assert_eq!(
        scopes(&a, &rg_scope, &format!("atScope()%20and%20assignedTo(%27{sp_oid}%27)")).await,
        [rg_scope.as_str()]
    );
    let (st, e, _) = a
        .call(
            "GET",
            &format!("{sub_scope}{MA}/roleAssignments?$filter=foo()"),
            Some(&a.admin),
            None,
        )
        .await;
    assert_eq!((st, e["error"]["code"].as_str()), (400, Some("InvalidFilterInQueryString")));

    // The assignment is enforced: the principal reads the group, not the subscription's others.
    let token = c
        .client_credentials(&a.s.tenant_id, &sp.app_id, &sp.password, ARM_SCOPE)
        .await
        .unwrap()
        .access_token;
    assert_eq!(
        a.call("GET", &format!("{rg_scope}?api-version=2022-09-01"), Some(&token), None).await.0,
        200
    );
    // A Reader may not assign roles.
    let id2 = uuid::Uuid::new_v4();
    let body = json!({"properties": {"roleDefinitionId": reader_def, "principalId": sp_oid}});
    let (st, e, _) = a
        .call("PUT", &format!("{rg_scope}{MA}/roleAssignments/{id2}"), Some(&token), Some(body))
        .await;
    assert_eq!((st, e["error"]["code"].as_str()), (403, Some("AuthorizationFailed")));

    // Delete by id: 200 with the assignment, then 204 for nothing.
    let (st, gone, _) = a.call("DELETE", &path, Some(&a.admin), None).await;
    assert_eq!((st, gone["name"].as_str()), (200, Some(id.to_string().as_str())));
    assert_eq!(a.call("DELETE", &path, Some(&a.admin), None).await.0, 204);
    assert_eq!(
        a.call("GET", &format!("{rg_scope}?api-version=2022-09-01"), Some(&token), None).await.0,
        403
    );

    // A custom role with the client's GUID, Azure's JSON under `properties`.
    let rid = uuid::Uuid::new_v4();
    let role = json!({"properties": {"roleName": "Model Reader", "description": "Reads models.", "type": "CustomRole",
        "permissions": [{"actions": ["Microsoft.MachineLearningServices/workspaces/models/read"], "notActions": [],
                         "dataActions": [], "notDataActions": []}],
        "assignableScopes": [sub_scope]}});
    let (st, made, _) = a
        .call(
            "PUT",
            &format!("{sub_scope}{MA}/roleDefinitions/{rid}"),
            Some(&a.admin),
            Some(role.clone()),
        )
        .await;
    assert_eq!(st, 201, "{made}");
    assert_eq!(made["id"], format!("{sub_scope}{MA}/roleDefinitions/{rid}"));
    assert_eq!(made["properties"]["type"], "CustomRole");
    let (_, defs, _) = a
        .call(
            "GET",
            &format!("{rg_scope}{MA}/roleDefinitions?$filter=type%20eq%20%27CustomRole%27"),
            Some(&a.admin),
            None,
        )
        .await;
    assert_eq!(defs["value"][0]["properties"]["roleName"], "Model Reader");
    let (st, _, _) = a
        .call(
            "PUT",
            &format!("{sub_scope}{MA}/roleDefinitions/{}", uuid::Uuid::new_v4()),
            Some(&a.admin),
            Some(role),
        )
        .await;
    assert_eq!(st, 409, "one role per name");
    // Bodies are bounded.
    let big =
        json!({"properties": {"roleDefinitionId": "x".repeat(70 * 1024), "principalId": sp_oid}});
    let path = format!("{rg_scope}{MA}/roleAssignments/{}", uuid::Uuid::new_v4());
    assert_eq!(a.call("PUT", &path, Some(&a.admin), Some(big)).await.0, 413);
    // Another tenant's subscription is not found.
    let elsewhere = format!("/subscriptions/{}{MA}/roleAssignments", uuid::Uuid::new_v4());
    assert_eq!(a.call("GET", &elsewhere, Some(&a.admin), None).await.0, 404);
}

#[tokio::test]
async fn tenants_resources_and_providers() {
    let a = Azure::new().await;
    let c = a.s.client();
    let (st, t, _) = a.call("GET", "/tenants?api-version=2022-12-01", Some(&a.admin), None).await;
    assert_eq!(st, 200);
    assert_eq!(t["value"][0]["tenantId"], a.s.tenant_id.as_str());
    assert_eq!(t["value"][0]["defaultDomain"], "mlgate.local");
    assert_eq!(t["value"][0]["tenantCategory"], "Home");
    for rg in ["one", "two"] {
        c.put_resource_group(&a.admin, &a.sub, rg, None).await.unwrap();
        c.put_workspace(&a.admin, &a.sub, rg, &format!("ws-{rg}"), None).await.unwrap();
    }
    let names = |v: &Value| {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let base = format!("/subscriptions/{}/resources", a.sub);
    let (st, all, _) =
        a.call("GET", &format!("{base}?api-version=2024-11-01"), Some(&a.admin), None).await;
    assert_eq!((st, names(&all)), (200, vec!["ws-one".to_string(), "ws-two".to_string()]));
    assert!(
        all["value"][0]["id"].as_str().unwrap().contains("/resourceGroups/one/"),
        "ids spell resourceGroups"
    );
    let q = "$filter=resourceGroup%20eq%20%27TWO%27%20and%20resourceType%20eq%20%27Microsoft.MachineLearningServices%2Fworkspaces%27&$expand=createdTime";
    let (_, two, _) = a.call("GET", &format!("{base}?{q}"), Some(&a.admin), None).await;
    assert_eq!(names(&two), ["ws-two"]);
    assert!(two["value"][0]["createdTime"].is_string());
    for (filter, n) in [
        ("resourceType%20eq%20%27Microsoft.Storage%2FstorageAccounts%27", 0),
        ("name%20eq%20%27ws-one%27", 1),
        ("resourceGroup%20eq%20%27none%27", 0),
        ("tagName%20eq%20%27x%27", 0),
    ] {
        let (st, v, _) =
            a.call("GET", &format!("{base}?$filter={filter}"), Some(&a.admin), None).await;
        assert_eq!((st, v["value"].as_array().unwrap().len()), (200, n), "{filter}");
    }
    let (st, e, _) =
        a.call("GET", &format!("{base}?$filter=size%20eq%20%27big%27"), Some(&a.admin), None).await;
    assert_eq!((st, e["error"]["code"].as_str()), (400, Some("InvalidFilterInQueryString")));
    let (_, top, _) = a.call("GET", &format!("{base}?$top=1"), Some(&a.admin), None).await;
    assert_eq!(names(&top), ["ws-one"]);
    let next = top["nextLink"].as_str().unwrap().to_string();
    assert!(next.starts_with(&a.s.url) && next.contains("skipToken="));
    let (_, rest, _) = a.call("GET", &next, Some(&a.admin), None).await;
    assert_eq!(names(&rest), ["ws-two"]);

    let (st, p, _) = a.call("GET", &format!("/subscriptions/{}/providers/microsoft.machinelearningservices?api-version=2024-11-01", a.sub), Some(&a.admin), None).await;
    assert_eq!(st, 200);
    assert_eq!(p["namespace"], "Microsoft.MachineLearningServices");
    assert_eq!(p["resourceTypes"][0]["resourceType"], "workspaces");
    assert_eq!(p["resourceTypes"][0]["apiVersions"][0], "2024-04-01");
    let (st, e, _) = a
        .call(
            "GET",
            &format!("/subscriptions/{}/providers/Microsoft.Nothing", a.sub),
            Some(&a.admin),
            None,
        )
        .await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("InvalidResourceNamespace")));
    // A stranger sees none of it.
    let sp = a.s.create_sp("stranger").await;
    let token = c
        .client_credentials(&a.s.tenant_id, &sp.app_id, &sp.password, ARM_SCOPE)
        .await
        .unwrap()
        .access_token;
    assert_eq!(a.call("GET", &base, Some(&token), None).await.0, 403);
}

#[tokio::test]
async fn model_management_serves_the_sdks_calls_over_the_same_services() {
    let a = Azure::new().await;
    let c = a.s.client();
    c.put_resource_group(&a.admin, &a.sub, "mm", None).await.unwrap();
    let w = c.put_workspace(&a.admin, &a.sub, "mm", "mm-ws", None).await.unwrap();
    let ws = WorkspaceAddress {
        subscription_id: a.sub.clone(),
        resource_group: "mm".into(),
        workspace: "mm-ws".into(),
    };
    let dir = TempDir::new();
    let model = dir.0.join("model.onnx");
    std::fs::write(&model, linear_regression_model(&[vec![1.0], vec![2.0]], &[0.5])).unwrap();
    for _ in 0..2 {
        c.register_model_from_path(&a.admin, &ws, "linear", &model, "", Default::default())
            .await
            .unwrap();
    }
    for (name, dc) in [
        ("mm-key", json!({"computeType": "cluster", "replicas": 2})),
        ("mm-token", json!({"computeType": "cluster", "token_auth_enabled": true})),
        ("mm-aci", json!({"computeType": "instance", "auth_enabled": true})),
    ] {
        let req = DeployService {
            model: "linear:1".into(),
            inference_config: json!({"runtime": "onnx"}),
            deployment_config: dc,
        };
        c.deploy(&a.admin, &ws, name, &req).await.unwrap();
        c.wait_for_deployment(&a.admin, &ws, name, Duration::from_secs(30), |_| {}).await.unwrap();
    }
    let mms = format!(
        "/modelmanagement/v1.0/subscriptions/{}/resourceGroups/mm/providers/Microsoft.MachineLearningServices/workspaces/mm-ws",
        a.sub
    );
    let admin = Some(a.admin.as_str());

    let (st, svc, _) =
        a.call("GET", &format!("{mms}/services/mm-key?expand=true"), admin, None).await;
    assert_eq!(st, 200);
    assert_eq!((svc["computeType"].as_str(), svc["numReplicas"].as_u64()), (Some("AKS"), Some(2)));
    assert_eq!(
        (svc["authEnabled"].as_bool(), svc["aadAuthEnabled"].as_bool()),
        (Some(true), Some(false))
    );
    for k in [
        "createdTime",
        "description",
        "kvTags",
        "properties",
        "scoringUri",
        "appInsightsEnabled",
        "computeName",
        "maxConcurrentRequestsPerContainer",
        "maxQueueWaitMs",
        "scoringTimeoutMs",
        "autoScaler",
        "containerResourceRequirements",
        "dataCollection",
        "livenessProbeRequirements",
    ] {
        assert!(svc.get(k).is_some(), "missing {k}");
    }
    let (_, aci, _) = a.call("GET", &format!("{mms}/services/mm-aci"), admin, None).await;
    assert_eq!(aci["computeType"], "ACI");
    for k in ["location", "cname", "publicIp", "sslEnabled", "sslCertificate", "sslKey"] {
        assert!(aci.get(k).is_some(), "missing {k}");
    }
    let (_, list, _) =
        a.call("GET", &format!("{mms}/services?expand=true&computeType=ACI"), admin, None).await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    let (st, e, _) =
        a.call("GET", &format!("{mms}/services/missing-svc?expand=true"), admin, None).await;
    assert_eq!(
        (st, e["statusCode"].as_u64(), e["error"]["code"].as_str()),
        (404, Some(404), Some("NotFound"))
    );

    // Keys, then a regeneration the SDK polls as an operation; the old key fails at once.
    let (st, keys, _) =
        a.call("POST", &format!("{mms}/services/mm-key/listkeys"), admin, None).await;
    assert_eq!(st, 200);
    let old = keys["primaryKey"].as_str().unwrap().to_string();
    let (st, _, h) = a
        .call(
            "POST",
            &format!("{mms}/services/mm-key/regenerateKeys"),
            admin,
            Some(json!({"keyType": "Primary", "keyValue": null})),
        )
        .await;
    assert_eq!(st, 202);
    let op = h["operation-location"].to_str().unwrap().to_string();
    assert!(op.starts_with(&format!("{}{mms}/operations/", a.s.url)), "{op}");
    let (st, state, _) = a.call("GET", &op, admin, None).await;
    assert_eq!((st, state["state"].as_str()), (200, Some("Succeeded")));
    let score = |key: String| {
        let a = &a;
        async move {
            a.s.http()
                .post(format!("{}/api/v1/service/mm-key/score", a.s.url))
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body(r#"{"data": [[1.0, 1.0]]}"#)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(score(old).await, 401);
    let (_, keys, _) =
        a.call("POST", &format!("{mms}/services/mm-key/listKeys"), admin, None).await;
    assert_eq!(score(keys["primaryKey"].as_str().unwrap().to_string()).await, 200);
    let (st, _, _) = a
        .call(
            "POST",
            &format!("{mms}/services/mm-key/regenerateKeys"),
            admin,
            Some(json!({"keyType": "Primary", "keyValue": "chosen-by-me"})),
        )
        .await;
    assert_eq!(st, 400, "mlgate makes its keys");
    assert_eq!(
        a.call("GET", &format!("{mms}/operations/{}", uuid::Uuid::new_v4()), admin, None).await.0,
        404
    );

    // A token for the token service, with numeric times.
    let (st, t, _) = a.call("POST", &format!("{mms}/services/mm-token/token"), admin, None).await;
    assert_eq!((st, t["tokenType"].as_str()), (200, Some("Bearer")));
    assert!(t["expiryOn"].as_i64().unwrap() > t["refreshAfter"].as_i64().unwrap());
    let (_, logs, _) =
        a.call("GET", &format!("{mms}/services/mm-key/logs?tail=2&init=false"), admin, None).await;
    assert_eq!(logs["content"].as_str().unwrap().lines().count(), 2);

    // A Reader gets a token but not keys, as on mlgate's own API.
    let reader = a.s.create_sp("mm-reader").await;
    c.create_role_assignment(
        &a.admin,
        &mlgate_proto::CreateRoleAssignment {
            assignee: reader.app_id.clone(),
            role: "Reader".into(),
            scope: w.id.clone(),
        },
    )
    .await
    .unwrap();
    let rt = c
        .client_credentials(&a.s.tenant_id, &reader.app_id, &reader.password, ARM_SCOPE)
        .await
        .unwrap()
        .access_token;
    assert_eq!(
        a.call("POST", &format!("{mms}/services/mm-token/token"), Some(&rt), None).await.0,
        200
    );
    let (st, e, _) =
        a.call("POST", &format!("{mms}/services/mm-key/listkeys"), Some(&rt), None).await;
    assert_eq!((st, e["statusCode"].as_u64()), (403, Some(403)));
    assert_eq!(
        a.call(
            "POST",
            &format!("{mms}/services/mm-key/regenerateKeys"),
            Some(&rt),
            Some(json!({"keyType": "Secondary"}))
        )
        .await
        .0,
        403
    );
    // The operation is readable only through its own workspace.
    c.put_workspace(&a.admin, &a.sub, "mm", "mm-other", None).await.unwrap();
    let id = op.rsplit('/').next().unwrap();
    let other_ws = mms.replace("mm-ws", "mm-other");
    assert_eq!(a.call("GET", &format!("{other_ws}/operations/{id}"), admin, None).await.0, 404);

    // Models: latest version first, and by id.
    let (st, models, _) =
        a.call("GET", &format!("{mms}/models?name=linear&count=1"), admin, None).await;
    assert_eq!(st, 200);
    assert_eq!(models["value"].as_array().unwrap().len(), 1);
    assert_eq!(
        (models["value"][0]["id"].as_str(), models["value"][0]["version"].as_i64()),
        (Some("linear:2"), Some(2))
    );
    assert!(models["value"][0]["datasets"].is_array());
    let (_, none, _) =
        a.call("GET", &format!("{mms}/models?name=nothing&count=1"), admin, None).await;
    assert_eq!(none["value"], json!([]));
    assert!(none.get("nextLink").is_none());
    let (st, m1, _) = a.call("GET", &format!("{mms}/models/linear%3A1"), admin, None).await;
    assert_eq!((st, m1["version"].as_i64()), (200, Some(1)));
    let (st, e, _) = a.call("GET", &format!("{mms}/models/linear:9"), admin, None).await;
    assert_eq!((st, e["statusCode"].as_u64()), (404, Some(404)));

    // Delete through model management; the scoring URI goes with it.
    assert_eq!(a.call("DELETE", &format!("{mms}/services/mm-aci"), admin, None).await.0, 200);
    assert_eq!(a.call("GET", &format!("{mms}/services/mm-aci"), admin, None).await.0, 404);
    // Bodies are bounded.
    let big = json!({"keyType": "x".repeat(8192)});
    assert_eq!(
        a.call("POST", &format!("{mms}/services/mm-key/regenerateKeys"), admin, Some(big)).await.0,
        413
    );
    // The workspace names its discovery URL.
    let (_, arm_ws, _) = a.call("GET", &format!("/subscriptions/{}/resourceGroups/mm/providers/Microsoft.MachineLearningServices/workspaces/mm-ws", a.sub), admin, None).await;
    assert_eq!(
        arm_ws["properties"]["discoveryUrl"],
        format!(
            "{}/discovery/workspaces/{}",
            a.s.url,
            arm_ws["properties"]["workspaceId"].as_str().unwrap()
        )
    );
}

#[tokio::test]
async fn principals_made_before_applications_existed_get_their_application_object() {
    // SQLite's migration 0008 (PostgreSQL's schema starts after it).
    let s = TestServer::start_with(TempDir::new(), sqlite_in_data_dir).await;
    let sp = s.create_sp("older").await;
    let db = s.data_dir().join("mlgate.db");
    let dir = s.stop().await;
    // Take the store back to before migration 0008.
    {
        use sqlx::ConnectOptions;
        let mut conn =
            sqlx::sqlite::SqliteConnectOptions::new().filename(&db).connect().await.unwrap();
        sqlx::raw_sql(
            "DROP TABLE application_secrets; DROP TABLE applications; \
             DELETE FROM schema_migrations WHERE version = 8;",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let s = TestServer::start_in(dir).await;
    let a = Azure { admin: s.admin_token().await, sub: String::new(), s };
    let g = a.graph_token().await;
    let filter: String =
        form_urlencoded::byte_serialize(format!("appId eq '{}'", sp.app_id).as_bytes()).collect();
    let (st, apps, _) =
        a.call("GET", &format!("/v1.0/applications?$filter={filter}"), Some(&g), None).await;
    assert_eq!(st, 200);
    let app = &apps["value"][0];
    assert_eq!(app["displayName"], "older");
    assert_ne!(app["id"], sp.object_id.as_str(), "the application has its own object id");
    uuid::Uuid::parse_str(app["id"].as_str().unwrap()).unwrap();
    assert_eq!(a.client_credentials(&sp.app_id, &sp.password).await, 200, "its secret still works");
}
