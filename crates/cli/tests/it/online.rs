//! The Azure ML SDK v2's faces (issue 16): online endpoints and deployments over the same web
//! services, models in ARM's shape, code assets uploaded through signed Azure-Blob-shaped
//! URLs. azure-ai-ml itself runs in tests/compat/azure/test_sdk_v2.py; these tests pin the wire
//! shapes, RBAC, the long-running operations and the bounds.

use std::time::Duration;

use mlgate_client::models::WorkspaceAddress;
use mlgate_proto::{CreateRoleAssignment, DeployService};
use mlgate_serving::onnx::linear_regression_model;
use serde_json::{Value, json};

use crate::support::*;

const API: &str = "api-version=2023-04-01-preview";

struct V2 {
    s: TestServer,
    admin: String,
    sub: String,
    ws_id: String,
    /// `/subscriptions/.../workspaces/ws`
    base: String,
    dir: TempDir,
}

impl V2 {
    /// A workspace `ws` in group `rg` with an ONNX model `lin` (version 1).
    async fn new() -> Self {
        let s = TestServer::start().await;
        let admin = s.admin_token().await;
        let c = s.client();
        let sub = c.subscriptions(&admin).await.unwrap()[0].subscription_id.clone();
        c.put_resource_group(&admin, &sub, "rg", None).await.unwrap();
        let w = c.put_workspace(&admin, &sub, "rg", "v2-ws", None).await.unwrap();
        let dir = TempDir::new();
        let model = dir.0.join("model.onnx");
        std::fs::write(&model, linear_regression_model(&[vec![1.0], vec![2.0]], &[0.5])).unwrap();
        c.register_model_from_path(
            &admin,
            &Self::address(&sub),
            "lin",
            &model,
            "",
            Default::default(),
        )
        .await
        .unwrap();
        let base = format!(
            "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/v2-ws"
        );
        Self { s, admin, sub, ws_id: w.id, base, dir }
    }

    fn address(sub: &str) -> WorkspaceAddress {
        WorkspaceAddress {
            subscription_id: sub.to_string(),
            resource_group: "rg".into(),
            workspace: "v2-ws".into(),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("https://") {
            return path.to_string();
        }
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{}{path}{sep}{API}", self.s.url, self.base)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req =
            self.s.http().request(method.parse().unwrap(), self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null), headers)
    }

    async fn sp_token(&self, name: &str, role: &str, scope: &str) -> String {
        let sp = self.s.create_sp(name).await;
        self.s
            .client()
            .create_role_assignment(
                &self.admin,
                &CreateRoleAssignment {
                    assignee: sp.app_id.clone(),
                    role: role.into(),
                    scope: self.ws_id.clone(),
                },
            )
            .await
            .unwrap();
        self.s
            .client()
            .client_credentials(&self.s.tenant_id, &sp.app_id, &sp.password, scope)
            .await
            .unwrap()
            .access_token
    }

    /// Polls an operation URL until it is no longer InProgress.
    async fn wait(&self, op: &str) -> Value {
        for _ in 0..300 {
            let (st, body, _) = self.call("GET", op, &self.admin, None).await;
            assert_eq!(st, 200, "{body}");
            if body["status"] != "InProgress" {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the operation did not finish");
    }

    async fn score(&self, name: &str, credential: Option<&str>) -> (u16, Value) {
        let mut req = self
            .s
            .http()
            .post(format!("{}/api/v1/service/{name}/score", self.s.url))
            .json(&json!({"data": [[1.0, 1.0]]}));
        if let Some(c) = credential {
            req = req.bearer_auth(c);
        }
        let resp = req.send().await.unwrap();
        let st = resp.status().as_u16();
        (st, resp.json().await.unwrap_or(Value::Null))
    }

    fn model_id(&self) -> String {
        format!("{}/models/lin/versions/1", self.base)
    }

    /// Creates endpoint `name` with `auth` and an ONNX deployment `blue`; waits for it.
    async fn endpoint_with_onnx(&self, name: &str, auth: &str) {
        let (st, e, _) = self
            .call(
                "PUT",
                &format!("/onlineEndpoints/{name}"),
                &self.admin,
                Some(json!({
                "location": "local", "properties": {"authMode": auth}})),
            )
            .await;
        assert_eq!(st, 201, "{e}");
        let (st, d, h) = self
            .call(
                "PUT",
                &format!("/onlineEndpoints/{name}/deployments/blue"),
                &self.admin,
                Some(json!({"location": "local", "sku": {"name": "Default", "capacity": 1},
                    "properties": {"endpointComputeType": "Managed", "model": self.model_id(),
                        "instanceType": "Standard_DS3_v2"}})),
            )
            .await;
        assert_eq!(st, 201, "{d}");
        let op = h["azure-asyncoperation"].to_str().unwrap().to_string();
        assert_eq!(self.wait(&op).await["status"], "Succeeded");
    }
}

#[tokio::test]
async fn online_endpoints_are_the_web_services_in_arms_shape() {
    let v = V2::new().await;
    let c = v.s.client();
    let admin = v.admin.as_str();
    // A service deployed through mlgate's own API is an endpoint with one deployment.
    let req = DeployService {
        model: "lin:1".into(),
        inference_config: json!({"runtime": "onnx"}),
        deployment_config: json!({"computeType": "cluster"}),
    };
    c.deploy(admin, &V2::address(&v.sub), "v1-svc", &req).await.unwrap();
    c.wait_for_deployment(admin, &V2::address(&v.sub), "v1-svc", Duration::from_secs(30), |_| {})
        .await
        .unwrap();
    let (st, list, _) = v.call("GET", "/onlineEndpoints", admin, None).await;
    assert_eq!(st, 200);
    let e = &list["value"][0];
    assert_eq!(e["id"], format!("{}/onlineEndpoints/v1-svc", v.base));
    assert_eq!(e["type"], "Microsoft.MachineLearningServices/workspaces/onlineEndpoints");
    assert_eq!(e["kind"], "Managed");
    assert_eq!(e["properties"]["authMode"], "Key");
    assert_eq!(e["properties"]["provisioningState"], "Succeeded");
    assert_eq!(e["properties"]["traffic"], json!({"default": 100}));
    assert_eq!(e["properties"]["scoringUri"], format!("{}/api/v1/service/v1-svc/score", v.s.url));
    assert!(e["systemData"]["createdAt"].is_string() && e["identity"]["type"] == "None");

    // Created from the SDK's shape: the endpoint first (no deployment yet), then a deployment.
    let (st, e, _) = v
        .call("PUT", "/onlineEndpoints/ep-one", admin, Some(json!({"location": "local",
            "properties": {"authMode": "AMLToken", "description": "first"}, "tags": {"team": "a"}})))
        .await;
    assert_eq!(st, 201, "{e}");
    assert_eq!(
        (e["properties"]["traffic"].clone(), e["tags"]["team"].clone()),
        (json!({}), json!("a"))
    );
    let (st, _, _) = v.call("GET", "/onlineEndpoints/ep-one/deployments/blue", admin, None).await;
    assert_eq!(st, 404);
    assert_eq!(v.score("ep-one", None).await.0, 404, "nothing runs before a deployment");
    let (st, d, h) = v
        .call(
            "PUT",
            "/onlineEndpoints/ep-one/deployments/blue",
            admin,
            Some(json!({
            "location": "local", "sku": {"name": "Default", "capacity": 2},
            "properties": {"endpointComputeType": "Managed", "model": v.model_id(),
                "instanceType": "Standard_F2s_v2", "environmentId": "azureml:env:1",
                "requestSettings": {"maxConcurrentRequestsPerInstance": 2, "requestTimeout": "PT5S",
                    "maxQueueWait": "PT0.5S"}}})),
        )
        .await;
    assert_eq!(st, 201, "{d}");
    assert_eq!(h["retry-after"], "1");
    let op = h["azure-asyncoperation"].to_str().unwrap().to_string();
    assert!(op.starts_with(&format!("{}{}/operations/", v.s.url, v.base)), "{op}");
    let done = v.wait(&op).await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    let (st, d, _) = v.call("GET", "/onlineEndpoints/ep-one/deployments/blue", admin, None).await;
    assert_eq!(st, 200);
    let p = &d["properties"];
    assert_eq!(
        (p["endpointComputeType"].clone(), p["model"].clone()),
        (json!("Managed"), json!(v.model_id()))
    );
    assert_eq!(
        (p["instanceType"].clone(), p["environmentId"].clone()),
        (json!("Standard_F2s_v2"), json!("azureml:env:1"))
    );
    assert_eq!(
        p["requestSettings"],
        json!({"maxConcurrentRequestsPerInstance": 2, "requestTimeout": "PT5S", "maxQueueWait": "PT0.5S"})
    );
    assert_eq!(
        (d["sku"]["capacity"].clone(), p["provisioningState"].clone()),
        (json!(2), json!("Succeeded"))
    );
    assert_eq!(p["scaleSettings"]["scaleType"], "Default");

    // One implementation: the service face shows the same service, with the same scoring URI.
    let svc = c.service(admin, &V2::address(&v.sub), "ep-one").await.unwrap();
    assert_eq!((svc.auth_mode.as_str(), svc.state.as_str()), ("token", "Healthy"));
    // One deployment per endpoint; traffic goes to it whole.
    let (st, e, _) = v
        .call(
            "PUT",
            "/onlineEndpoints/ep-one/deployments/green",
            admin,
            Some(json!({
            "properties": {"model": v.model_id()}})),
        )
        .await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("Conflict")), "{e}");
    for (traffic, want) in [
        (json!({"blue": 100}), 200),
        (json!({"blue": 50}), 400),
        (json!({"blue": 0}), 400),
        (json!({"green": 100}), 400),
        (json!({"blue": 100, "green": 0}), 200),
    ] {
        let (st, e, _) = v
            .call(
                "PUT",
                "/onlineEndpoints/ep-one",
                admin,
                Some(json!({
                "properties": {"authMode": "AMLToken", "traffic": traffic}})),
            )
            .await;
        assert_eq!(st, want, "{traffic}: {e}");
    }
    let (_, e, _) = v.call("GET", "/onlineEndpoints/ep-one", admin, None).await;
    assert_eq!(e["properties"]["traffic"], json!({"blue": 100}));
    assert_eq!(e["properties"]["description"], "", "a PUT replaces the whole endpoint, as in ARM");

    // Tokens for AMLToken, with numeric times; they score.
    let (st, t, _) = v.call("POST", "/onlineEndpoints/ep-one/token", admin, None).await;
    assert_eq!((st, t["tokenType"].as_str()), (200, Some("Bearer")));
    assert!(t["expiryTimeUtc"].as_i64().unwrap() > t["refreshAfterTimeUtc"].as_i64().unwrap());
    let token = t["accessToken"].as_str().unwrap().to_string();
    assert_eq!(v.score("ep-one", Some(&token)).await.0, 200);
    let (st, e, _) = v.call("POST", "/onlineEndpoints/v1-svc/token", admin, None).await;
    assert_eq!((st, e["error"]["code"].as_str()), (400, Some("InvalidRequestContent")));
    // Switching the auth mode applies at once and keeps the model running.
    let (st, _, _) = v
        .call(
            "PUT",
            "/onlineEndpoints/ep-one",
            admin,
            Some(json!({"properties": {"authMode": "Key"}})),
        )
        .await;
    assert_eq!(st, 200);
    let (_, keys, _) = v.call("POST", "/onlineEndpoints/ep-one/listKeys", admin, None).await;
    let key = keys["primaryKey"].as_str().unwrap().to_string();
    assert_eq!(v.score("ep-one", Some(&key)).await.0, 200);
    assert_eq!(v.score("ep-one", Some(&token)).await.0, 401, "tokens no longer open it");

    // Names are the server's: a service name is an endpoint name in every workspace.
    c.put_workspace(admin, &v.sub, "rg", "other", None).await.unwrap();
    let other = v.base.replace("/workspaces/v2-ws", "/workspaces/other");
    let resp =
        v.s.http()
            .put(format!("{}{other}/onlineEndpoints/v1-svc?{API}", v.s.url))
            .bearer_auth(admin)
            .json(&json!({"properties": {"authMode": "Key"}}))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status().as_u16(), 409);

    // Paged lists: `count` pages, `nextLink` carries on.
    let (_, page1, _) = v.call("GET", "/onlineEndpoints?count=1", admin, None).await;
    assert_eq!(page1["value"].as_array().unwrap().len(), 1);
    let next = page1["nextLink"].as_str().unwrap().to_string();
    let (_, page2, _) = v.call("GET", &next, admin, None).await;
    assert_eq!(page2["value"].as_array().unwrap().len(), 1);
    assert_ne!(page1["value"][0]["name"], page2["value"][0]["name"]);
    assert!(page2["nextLink"].is_null());

    // Deleting the deployment leaves the endpoint and its keys; deleting the endpoint, nothing.
    let (st, _, h) =
        v.call("DELETE", "/onlineEndpoints/ep-one/deployments/blue", admin, None).await;
    assert_eq!(st, 202);
    assert!(h.contains_key("location") && h.contains_key("azure-asyncoperation"));
    assert_eq!(v.wait(h["location"].to_str().unwrap()).await["status"], "Succeeded");
    let (st, e, _) = v.call("GET", "/onlineEndpoints/ep-one", admin, None).await;
    assert_eq!((st, e["properties"]["traffic"].clone()), (200, json!({})));
    let (_, same, _) = v.call("POST", "/onlineEndpoints/ep-one/listKeys", admin, None).await;
    assert_eq!(same["primaryKey"], keys["primaryKey"], "an endpoint keeps its keys");
    assert_eq!(v.score("ep-one", Some(&key)).await.0, 404);
    let (st, _, _) = v.call("DELETE", "/onlineEndpoints/ep-one", admin, None).await;
    assert_eq!(st, 202);
    let (st, e, _) = v.call("GET", "/onlineEndpoints/ep-one", admin, None).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("NotFound")));
    assert!(e["error"]["message"].as_str().unwrap().contains("ep-one"));
}

#[tokio::test]
async fn endpoint_rbac_uses_azures_actions_and_a_reader_gets_a_token_not_keys() {
    let v = V2::new().await;
    v.endpoint_with_onnx("ep-tok", "AMLToken").await;
    v.endpoint_with_onnx("ep-aad", "AADToken").await;
    let reader = v.sp_token("ep-reader", "Reader", ARM_SCOPE).await;
    let (st, _, _) = v.call("GET", "/onlineEndpoints/ep-tok", &reader, None).await;
    assert_eq!(st, 200);
    let (st, t, _) = v.call("POST", "/onlineEndpoints/ep-tok/token", &reader, None).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(v.score("ep-tok", t["accessToken"].as_str()).await.0, 200);
    for (method, path, action) in [
        ("POST", "/onlineEndpoints/ep-tok/listKeys", "onlineEndpoints/listKeys/action"),
        ("POST", "/onlineEndpoints/ep-tok/regenerateKeys", "onlineEndpoints/regenerateKeys/action"),
        ("PUT", "/onlineEndpoints/ep-tok", "onlineEndpoints/write"),
        ("DELETE", "/onlineEndpoints/ep-tok", "onlineEndpoints/delete"),
        ("PUT", "/onlineEndpoints/ep-tok/deployments/blue", "onlineEndpoints/deployments/write"),
        (
            "DELETE",
            "/onlineEndpoints/ep-tok/deployments/blue",
            "onlineEndpoints/deployments/delete",
        ),
    ] {
        let (st, e, _) = v
            .call(
                method,
                path,
                &reader,
                Some(json!({"keyType": "Primary", "properties": {"authMode": "Key"}})),
            )
            .await;
        assert_eq!((st, e["error"]["code"].as_str()), (403, Some("AuthorizationFailed")), "{path}");
        let m = e["error"]["message"].as_str().unwrap();
        assert!(
            m.contains(&format!("Microsoft.MachineLearningServices/workspaces/{action}")),
            "{m}"
        );
    }
    // AADToken: an identity token for Azure ML's audience, and the endpoint's score action.
    let reader_ml = v.sp_token("ep-reader-ml", "Reader", "https://ml.azure.com/.default").await;
    let (st, e) = v.score("ep-aad", Some(&reader_ml)).await;
    assert_eq!(st, 403);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("onlineEndpoints/score/action"),
        "{e}"
    );
    let scientist_ml =
        v.sp_token("ep-ds", "AzureML Data Scientist", "https://ml.azure.com/.default").await;
    assert_eq!(v.score("ep-aad", Some(&scientist_ml)).await.0, 200);
    let scientist_arm = v.sp_token("ep-ds-arm", "AzureML Data Scientist", ARM_SCOPE).await;
    assert_eq!(v.score("ep-aad", Some(&scientist_arm)).await.0, 401, "ARM tokens do not score");
    // A stranger (no role) learns nothing.
    let stranger = v.s.create_sp("ep-stranger").await;
    let t =
        v.s.client()
            .client_credentials(&v.s.tenant_id, &stranger.app_id, &stranger.password, ARM_SCOPE)
            .await
            .unwrap()
            .access_token;
    assert_eq!(v.call("GET", "/onlineEndpoints", &t, None).await.0, 403);
    assert_eq!(v.call("GET", "/onlineEndpoints/nothing-here", &t, None).await.0, 403);
}

#[tokio::test]
async fn regenerating_keys_is_an_operation_and_the_old_key_fails_at_once() {
    let v = V2::new().await;
    v.endpoint_with_onnx("ep-key", "Key").await;
    let admin = v.admin.as_str();
    let (_, keys, _) = v.call("POST", "/onlineEndpoints/ep-key/listKeys", admin, None).await;
    let old = keys["primaryKey"].as_str().unwrap().to_string();
    assert_eq!(v.score("ep-key", Some(&old)).await.0, 200);
    // azure-ai-ml sends the current value as keyValue: that is a regeneration.
    let (st, _, h) = v
        .call(
            "POST",
            "/onlineEndpoints/ep-key/regenerateKeys",
            admin,
            Some(json!({"keyType": "Primary", "keyValue": old})),
        )
        .await;
    assert_eq!(st, 202);
    let op = h["location"].to_str().unwrap().to_string();
    assert_eq!(h["azure-asyncoperation"].to_str().unwrap(), op);
    assert_eq!(v.wait(&op).await["status"], "Succeeded");
    assert_eq!(v.score("ep-key", Some(&old)).await.0, 401);
    let (_, keys, _) = v.call("POST", "/onlineEndpoints/ep-key/listKeys", admin, None).await;
    let new = keys["primaryKey"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(v.score("ep-key", Some(new)).await.0, 200);
    // Any other value is refused: mlgate makes keys.
    let (st, e, _) = v
        .call(
            "POST",
            "/onlineEndpoints/ep-key/regenerateKeys",
            admin,
            Some(json!({"keyType": "Secondary", "keyValue": "chosen-by-me"})),
        )
        .await;
    assert_eq!((st, e["error"]["code"].as_str()), (400, Some("InvalidRequestContent")));
    let (st, _, _) = v
        .call(
            "POST",
            "/onlineEndpoints/ep-key/regenerateKeys",
            admin,
            Some(json!({"keyType": "Tertiary"})),
        )
        .await;
    assert_eq!(st, 400);
    // Operations are read through their workspace only, and unknown ones are 404.
    let other = op.replace("/workspaces/v2-ws/", "/workspaces/nope/");
    assert_eq!(v.call("GET", &other, admin, None).await.0, 404);
    let missing = format!("/operations/{}", uuid::Uuid::new_v4());
    assert_eq!(v.call("GET", &missing, admin, None).await.0, 404);
}

#[tokio::test]
async fn models_answer_in_arms_shape_to_azures_clients_and_flat_to_mlgates() {
    let v = V2::new().await;
    let admin = v.admin.as_str();
    let c = v.s.client();
    let model = v.dir.0.join("model.onnx");
    c.register_model_from_path(
        admin,
        &V2::address(&v.sub),
        "lin",
        &model,
        "two",
        Default::default(),
    )
    .await
    .unwrap();
    let (st, list, _) = v.call("GET", "/models?listViewType=ActiveOnly", admin, None).await;
    assert_eq!(st, 200);
    let m = &list["value"][0];
    assert_eq!(
        (m["name"].clone(), m["properties"]["latestVersion"].clone()),
        (json!("lin"), json!("2"))
    );
    assert_eq!(m["id"], format!("{}/models/lin", v.base));
    let (_, none, _) = v.call("GET", "/models?listViewType=ArchivedOnly", admin, None).await;
    assert_eq!(none["value"], json!([]));
    assert_eq!(v.call("GET", "/models?listViewType=Sideways", admin, None).await.0, 400);
    let (_, container, _) = v.call("GET", "/models/lin", admin, None).await;
    assert_eq!(container["properties"]["nextVersion"], "3");
    let (_, versions, _) = v.call("GET", "/models/lin/versions", admin, None).await;
    let names: Vec<_> =
        versions["value"].as_array().unwrap().iter().map(|x| x["name"].clone()).collect();
    assert_eq!(names, vec![json!("2"), json!("1")]);
    let (st, mv, _) = v.call("GET", "/models/lin/versions/2", admin, None).await;
    assert_eq!(st, 200);
    let p = &mv["properties"];
    assert_eq!(
        (p["description"].clone(), p["modelType"].clone()),
        (json!("two"), json!("custom_model"))
    );
    assert!(p["flavors"].is_object() && p["tags"].is_object() && p["properties"].is_object());
    assert!(
        p["modelUri"]
            .as_str()
            .unwrap()
            .ends_with("/models/lin/versions/2/download?path=model.onnx")
    );
    assert!(mv["systemData"]["createdAt"].is_string());
    // The model URI downloads the file (with mlgate's own shape: no api-version).
    let uri = p["modelUri"].as_str().unwrap();
    let bytes = v.s.http().get(uri).bearer_auth(admin).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(bytes.as_ref(), std::fs::read(&model).unwrap().as_slice());
    let (st, _, _) =
        v.call("PUT", "/models/lin/versions/3", admin, Some(json!({"properties": {}}))).await;
    assert_eq!(st, 400, "models are registered through mlgate's API");
    // mlgate's own client still gets its flat shape from the same paths.
    let mine = c.models(admin, &V2::address(&v.sub)).await.unwrap();
    assert_eq!((mine[0].name.as_str(), mine[0].version), ("lin", 2));
}

/// The signed upload URL's query, and its container URL, from `startPendingUpload`.
async fn pending_upload(v: &V2, code: &str) -> String {
    let (st, up, _) = v
        .call(
            "POST",
            &format!("/codes/{code}/versions/1/startPendingUpload"),
            &v.admin,
            Some(json!({"pendingUploadType": "TemporaryBlobReference"})),
        )
        .await;
    assert_eq!(st, 200, "{up}");
    let sas = up["blobReferenceForConsumption"]["credential"]["sasUri"].as_str().unwrap();
    assert_eq!(up["blobReferenceForConsumption"]["credential"]["credentialType"], "SAS");
    assert!(sas.starts_with(up["blobReferenceForConsumption"]["blobUri"].as_str().unwrap()));
    sas.to_string()
}

fn blob_url(sas: &str, path: &str) -> String {
    let (base, query) = sas.split_once('?').unwrap();
    format!("{base}/{path}?{query}")
}

#[tokio::test]
async fn code_is_uploaded_through_signed_urls_and_deployed_as_a_folder() {
    let v = V2::new().await;
    let admin = v.admin.as_str();
    let http = v.s.http();
    let sas = pending_upload(&v, "src").await;
    let score = "import json\nfrom helper import k\n\ndef init():\n    pass\n\ndef run(raw):\n    return [sum(r) * k for r in json.loads(raw)[\"data\"]]\n";
    for (path, body) in [("src/score.py", score), ("src/helper.py", "k = 3.0\n")] {
        let resp = http
            .put(blob_url(&sas, path))
            .header("x-ms-blob-type", "BlockBlob")
            .header("x-ms-meta-origin", "test")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        assert!(resp.headers().contains_key("etag"));
    }
    // Put again with If-None-Match: * is refused; properties and listing read back.
    let resp = http
        .put(blob_url(&sas, "src/helper.py"))
        .header("x-ms-blob-type", "BlockBlob")
        .header("if-none-match", "*")
        .body("k = 4.0\n")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (resp.status().as_u16(), resp.headers()["x-ms-error-code"].to_str().unwrap()),
        (409, "BlobAlreadyExists")
    );
    let resp = http.head(blob_url(&sas, "src/score.py")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["x-ms-meta-origin"], "test");
    assert_eq!(resp.headers()["content-length"], score.len().to_string());
    let resp = http.head(blob_url(&sas, "src/missing.py")).send().await.unwrap();
    assert_eq!(
        (resp.status().as_u16(), resp.headers()["x-ms-error-code"].to_str().unwrap()),
        (404, "BlobNotFound")
    );
    let resp = http
        .put(format!("{}&comp=metadata", blob_url(&sas, "src/score.py")))
        .header("x-ms-meta-upload_status", "completed")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (base, query) = sas.split_once('?').unwrap();
    let xml = http
        .get(format!("{base}?restype=container&comp=list&prefix=src/&include=metadata&{query}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        xml.contains("<Name>src/helper.py</Name>") && xml.contains("<Name>src/score.py</Name>"),
        "{xml}"
    );
    assert!(xml.contains("<upload_status>completed</upload_status>"), "{xml}");
    let got = http.get(blob_url(&sas, "src/score.py")).send().await.unwrap().text().await.unwrap();
    assert_eq!(got, score);

    // A code version names the uploaded folder; the same again is the same version.
    let code_uri = format!("{base}/src");
    let body = json!({"properties": {"codeUri": code_uri, "isAnonymous": false,
        "properties": {"hash_sha256": "abc123", "hash_version": "202208"}}});
    let (st, cv, _) = v.call("PUT", "/codes/src/versions/1", admin, Some(body.clone())).await;
    assert_eq!(st, 201, "{cv}");
    assert_eq!(cv["id"], format!("{}/codes/src/versions/1", v.base));
    assert_eq!(cv["properties"]["codeUri"], code_uri);
    assert_eq!(v.call("PUT", "/codes/src/versions/1", admin, Some(body)).await.0, 200);
    let (_, by_hash, _) =
        v.call("GET", "/codes/src/versions?hash=abc123&hashVersion=202208", admin, None).await;
    assert_eq!(by_hash["value"].as_array().unwrap().len(), 1);
    let (_, none, _) = v.call("GET", "/codes/src/versions?hash=other", admin, None).await;
    assert_eq!(none["value"], json!([]));
    let (st, e, _) = v
        .call(
            "PUT",
            "/codes/src/versions/2",
            admin,
            Some(json!({"properties": {"codeUri": format!("{base}/nothing")}})),
        )
        .await;
    assert_eq!(st, 400, "{e}");
    let (st, _, _) = v
        .call(
            "PUT",
            "/codes/src/versions/3",
            admin,
            Some(json!({"properties": {"codeUri": "https://evil.example/x/y"}})),
        )
        .await;
    assert_eq!(st, 400);

    // A deployment of the folder: the entry script imports its neighbour.
    let (st, _, _) = v
        .call(
            "PUT",
            "/onlineEndpoints/ep-code",
            admin,
            Some(json!({"properties": {"authMode": "Key"}})),
        )
        .await;
    assert_eq!(st, 201);
    let (st, d, h) = v
        .call("PUT", "/onlineEndpoints/ep-code/deployments/blue", admin, Some(json!({
            "properties": {"model": v.model_id(),
                "codeConfiguration": {"codeId": format!("{}/codes/src/versions/1", v.base), "scoringScript": "score.py"},
                "environmentVariables": {"GREETING": "hi"}}})))
        .await;
    assert_eq!(st, 201, "{d}");
    assert_eq!(d["properties"]["codeConfiguration"]["scoringScript"], "score.py");
    let done = v.wait(h["azure-asyncoperation"].to_str().unwrap()).await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    let (_, keys, _) = v.call("POST", "/onlineEndpoints/ep-code/listKeys", admin, None).await;
    let (st, out) = v.score("ep-code", keys["primaryKey"].as_str()).await;
    assert_eq!((st, out), (200, json!([6.0])));
    let (st, logs, _) = v
        .call(
            "POST",
            "/onlineEndpoints/ep-code/deployments/blue/getLogs",
            admin,
            Some(json!({"tail": 50})),
        )
        .await;
    assert_eq!(st, 200);
    assert!(logs["content"].as_str().unwrap().contains("Laid out 2 source file(s)"), "{logs}");
    // A script that is not in the folder is refused before anything starts.
    let (st, e, _) = v
        .call("PUT", "/onlineEndpoints/ep-code/deployments/blue", admin, Some(json!({
            "properties": {"model": v.model_id(),
                "codeConfiguration": {"codeId": format!("{}/codes/src/versions/1", v.base), "scoringScript": "nope.py"}}})))
        .await;
    assert_eq!(st, 400, "{e}");
    let (st, d, _) = v.call("GET", "/onlineEndpoints/ep-code/deployments/blue", admin, None).await;
    assert_eq!(
        (st, d["properties"]["provisioningState"].as_str()),
        (200, Some("Succeeded")),
        "the running deployment stays"
    );
}

#[tokio::test]
async fn upload_urls_are_signed_scoped_short_lived_and_bounded() {
    let v = V2::new().await;
    let http = v.s.http();
    let sas = pending_upload(&v, "bounded").await;
    let put = |url: String, body: reqwest::Body| {
        let http = http.clone();
        async move {
            let resp = http
                .put(url)
                .header("x-ms-blob-type", "BlockBlob")
                .body(body)
                .send()
                .await
                .unwrap();
            let code =
                resp.headers().get("x-ms-error-code").map(|c| c.to_str().unwrap().to_string());
            (resp.status().as_u16(), code)
        }
    };
    assert_eq!(put(blob_url(&sas, "a.txt"), "a".into()).await.0, 201);
    // A changed signature, another area under the same signature, no signature: refused.
    let forged = sas.replace("sig=", "sig=A");
    assert_eq!(
        put(blob_url(&forged, "a.txt"), "a".into()).await,
        (403, Some("AuthenticationFailed".into()))
    );
    let (base, query) = sas.split_once('?').unwrap();
    let area = base.rsplit('/').next().unwrap();
    let elsewhere =
        format!("{}/{}?{query}", base.trim_end_matches(area).trim_end_matches('/'), "0".repeat(32));
    assert_eq!(put(blob_url(&elsewhere, "a.txt"), "a".into()).await.0, 403);
    assert_eq!(put(format!("{base}/a.txt"), "a".into()).await.0, 403);
    let tampered = sas.replace("skoid=", "skoid=0");
    assert_eq!(put(blob_url(&tampered, "a.txt"), "a".into()).await.0, 403);
    // Paths stay inside the area; only block blobs, whole.
    assert_eq!(put(blob_url(&sas, "a%2F..%2F..%2Fb.txt"), "a".into()).await.0, 400);
    let resp = http
        .put(blob_url(&sas, "a.txt"))
        .header("x-ms-blob-type", "AppendBlob")
        .body("a")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let resp = http
        .put(format!("{}&comp=block&blockid=AAAA", blob_url(&sas, "big.bin")))
        .body("a")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    // A file over 64 MiB is refused from its declared length, before its body is read; the
    // client sees the 413 or, past the drained 8 MiB, a closed connection. Nothing is kept.
    let over = vec![0u8; 64 * 1024 * 1024 + 1];
    let resp = http
        .put(blob_url(&sas, "big.bin"))
        .header("x-ms-blob-type", "BlockBlob")
        .body(over)
        .send()
        .await;
    if let Ok(resp) = resp {
        assert_eq!(resp.status().as_u16(), 413);
    }
    let resp = http.head(blob_url(&sas, "big.bin")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    // Upload URLs need codes/write: a Reader gets none.
    let reader = v.sp_token("up-reader", "Reader", ARM_SCOPE).await;
    let (st, _, _) =
        v.call("POST", "/codes/x/versions/1/startPendingUpload", &reader, Some(json!({}))).await;
    assert_eq!(st, 403);
    // An hour later the URL no longer works.
    v.s.clock.advance(time::Duration::minutes(61));
    assert_eq!(
        put(blob_url(&sas, "late.txt"), "a".into()).await,
        (403, Some("AuthenticationFailed".into()))
    );
}

#[tokio::test]
async fn bad_bodies_get_arm_errors() {
    let v = V2::new().await;
    let admin = v.admin.as_str();
    let huge = json!({"properties": {"authMode": "Key", "description": "x".repeat(300 * 1024)}});
    let (st, _, _) = v.call("PUT", "/onlineEndpoints/big-one", admin, Some(huge)).await;
    assert_eq!(st, 413);
    for (body, what) in [
        (json!({"properties": {}}), "authMode"),
        (json!({"properties": {"authMode": "Password"}}), "authMode"),
        (json!({"properties": {"authMode": "Key", "compute": "k8s"}}), "Kubernetes"),
    ] {
        let (st, e, _) = v.call("PUT", "/onlineEndpoints/bad-one", admin, Some(body)).await;
        assert_eq!(st, 400, "{e}");
        assert!(e["error"]["code"].as_str().unwrap().starts_with("InvalidRequest"), "{e}");
        assert!(e["error"]["message"].as_str().unwrap().contains(what), "{e}");
    }
    let (st, _, _) = v
        .call(
            "PUT",
            "/onlineEndpoints/Bad_Name",
            admin,
            Some(json!({"properties": {"authMode": "Key"}})),
        )
        .await;
    assert_eq!(st, 400);
    v.call(
        "PUT",
        "/onlineEndpoints/ok-one",
        admin,
        Some(json!({"properties": {"authMode": "Key"}})),
    )
    .await;
    for body in [
        json!({"properties": {}}),
        json!({"properties": {"model": "/subscriptions/x/models/lin/versions/1"}}),
        json!({"properties": {"model": v.model_id(), "endpointComputeType": "Kubernetes"}}),
        json!({"properties": {"model": v.model_id(), "requestSettings": {"requestTimeout": "soon"}}}),
        json!({"properties": {"model": v.model_id()}, "sku": {"capacity": 0}}),
        json!({"properties": {"model": v.model_id(), "environmentVariables": {"A": "b"}}}),
    ] {
        let (st, e, _) = v
            .call("PUT", "/onlineEndpoints/ok-one/deployments/blue", admin, Some(body.clone()))
            .await;
        assert_eq!(st, 400, "{body}: {e}");
        assert!(e["error"]["message"].is_string());
    }
    let resp =
        v.s.http()
            .put(v.url("/onlineEndpoints/ok-one"))
            .bearer_auth(admin)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let (st, _, _) = v.call("PATCH", "/onlineEndpoints/ok-one/listKeys", admin, None).await;
    assert_eq!(st, 405);
    // A workspace with an endpoint (even one with no deployment yet) is not deleted.
    let resp =
        v.s.http()
            .delete(format!("{}{}?{API}", v.s.url, v.base))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status().as_u16(), 409);
}

#[tokio::test]
async fn an_upload_area_holds_a_bounded_number_of_files_and_bytes() {
    use mlgate_core::records::UploadedBlob;
    use mlgate_core::store::CodeStore;
    let s = TestServer::start().await;
    let blob = |path: &str, size: u64| UploadedBlob {
        upload: "a".repeat(32),
        workspace_id: mlgate_core::ids::WorkspaceId::new_random(),
        path: path.into(),
        sha256: "0".repeat(64),
        size,
        metadata: Default::default(),
        created_at: time::OffsetDateTime::now_utc(),
    };
    s.store.put_uploaded_blob(&blob("one", 4), 2, 10).await.unwrap();
    s.store.put_uploaded_blob(&blob("two", 4), 2, 10).await.unwrap();
    // A third file, or bytes past the bound, are refused; replacing a file counts once.
    assert!(s.store.put_uploaded_blob(&blob("three", 1), 2, 10).await.is_err());
    assert!(s.store.put_uploaded_blob(&blob("two", 7), 2, 10).await.is_err());
    s.store.put_uploaded_blob(&blob("two", 6), 2, 10).await.unwrap();
    let listed = s.store.uploaded_blobs(&"a".repeat(32), "", 10).await.unwrap();
    assert_eq!(listed.iter().map(|b| b.size).sum::<u64>(), 10);
    // Old areas are forgotten.
    let n = s
        .store
        .forget_uploads_before(time::OffsetDateTime::now_utc() + time::Duration::seconds(5))
        .await
        .unwrap();
    assert_eq!(n, 2);
}
