//! The activity log and the sign-in log through real HTTP: each write, denial and key read
//! recorded once with its caller and status, queried by group, caller and time in Azure's
//! shape, readable by Reader but not by a principal without the action; sign-in failures
//! listed with their AADSTS codes; never a secret in either log.

use std::time::Duration;

use mlgate_client::models::WorkspaceAddress;
use mlgate_core::clock::Clock;
use mlgate_proto::{CreateRoleAssignment, DeployService};
use mlgate_serving::onnx::linear_regression_model;
use serde_json::{Value, json};

use crate::support::*;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// GET the subscription's activity log with a `$filter`; returns status and body.
async fn activity(s: &TestServer, token: &str, sub: &str, filter: &str) -> (u16, Value) {
    let url = format!(
        "{}/subscriptions/{sub}/providers/microsoft.insights/eventtypes/management/values",
        s.url
    );
    let resp = s
        .http()
        .get(url)
        .query(&[("api-version", "2015-04-01"), ("$filter", filter)])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn window(s: &TestServer) -> String {
    let now = s.clock.now();
    let f =
        |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap();
    format!(
        "eventTimestamp ge '{}' and eventTimestamp le '{}'",
        f(now - time::Duration::days(1)),
        f(now + time::Duration::days(1))
    )
}

fn ops<'a>(events: &'a [Value], op: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["operationName"]["value"] == op).collect()
}

#[tokio::test]
async fn writes_denials_and_key_reads_are_recorded_once_and_queried_as_azure_does() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let c = s.client();
    let http = s.http();
    let sub = c.subscriptions(&admin).await.unwrap()[0].subscription_id.clone();

    // Writes: a group (with the client's correlation id), a workspace, a model, a service.
    let resp = http
        .put(format!("{}/subscriptions/{sub}/resourceGroups/audit?api-version=2021-04-01", s.url))
        .bearer_auth(&admin)
        .header("x-ms-client-request-id", "audit-correlation-1")
        .json(&json!({"location": "local"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["x-ms-correlation-request-id"], "audit-correlation-1");
    c.put_resource_group(&admin, &sub, "elsewhere", None).await.unwrap();
    c.put_workspace(&admin, &sub, "audit", "audit-ws", None).await.unwrap();
    let ws = WorkspaceAddress {
        subscription_id: sub.clone(),
        resource_group: "audit".into(),
        workspace: "audit-ws".into(),
    };
    let dir = TempDir::new();
    let file = dir.0.join("model.onnx");
    std::fs::write(&file, linear_regression_model(&[vec![2.0]], &[1.0])).unwrap();
    c.register_model_from_path(&admin, &ws, "lin", &file, "", Default::default()).await.unwrap();
    let req = DeployService {
        model: "lin:1".into(),
        inference_config: json!({"runtime": "onnx"}),
        deployment_config: json!({"computeType": "instance", "cpu_cores": 1}),
    };
    c.deploy(&admin, &ws, "audit-svc", &req).await.unwrap();
    c.wait_for_deployment(&admin, &ws, "audit-svc", Duration::from_secs(30), |_| {}).await.unwrap();
    // Security-relevant reads and an action.
    let keys = c.service_keys(&admin, &ws, "audit-svc").await.unwrap();
    let regenerated = c.regenerate_service_key(&admin, &ws, "audit-svc", "Primary").await.unwrap();
    // A key-auth service gives no token: the attempt is recorded as failed.
    let no_token = c.service_token(&admin, &ws, "audit-svc").await.unwrap_err();
    assert_eq!(no_token.status().map(|s| s.as_u16()), Some(400));

    // A principal with no role is denied a write and a key read; a Reader is given its role.
    let outsider = s.create_sp("audit-outsider").await;
    let reader = s.create_sp("audit-reader").await;
    let assignment = CreateRoleAssignment {
        assignee: reader.app_id.clone(),
        role: "Reader".into(),
        scope: format!("/subscriptions/{sub}"),
    };
    c.create_role_assignment(&admin, &assignment).await.unwrap();
    let out_token = c
        .client_credentials(&s.tenant_id, &outsider.app_id, &outsider.password, ARM_SCOPE)
        .await
        .unwrap()
        .access_token;
    let denied = c.put_resource_group(&out_token, &sub, "audit-denied", None).await.unwrap_err();
    assert_eq!(denied.status().map(|s| s.as_u16()), Some(403));
    assert!(c.service_keys(&out_token, &ws, "audit-svc").await.is_err());
    // A write that fails after authorization (a duplicate) is recorded as failed.
    let conflict = c
        .create_role_assignment(&admin, &assignment)
        .await
        .expect_err("the same assignment twice is a conflict");
    assert_eq!(conflict.status().map(|s| s.as_u16()), Some(409));

    // The reader reads the log (Reader has */read); the outsider may not.
    let reader_token = c
        .client_credentials(&s.tenant_id, &reader.app_id, &reader.password, ARM_SCOPE)
        .await
        .unwrap()
        .access_token;
    let (status, body) = activity(&s, &out_token, &sub, &window(&s)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "AuthorizationFailed");
    let (status, body) = activity(&s, &reader_token, &sub, &window(&s)).await;
    assert_eq!(status, 200, "{body}");
    let events = body["value"].as_array().unwrap().clone();

    // Each operation once, with Azure's names, caller and status.
    let rg = ops(&events, "Microsoft.Resources/subscriptions/resourceGroups/write");
    let audit_rg: Vec<_> = rg.iter().filter(|e| e["resourceGroupName"] == "audit").collect();
    assert_eq!(audit_rg.len(), 1, "{rg:#?}");
    let e = audit_rg[0];
    assert_eq!(e["status"]["value"], "Succeeded");
    assert_eq!(e["caller"], ADMIN);
    assert_eq!(e["correlationId"], "audit-correlation-1");
    assert_eq!(e["httpRequest"]["method"], "PUT");
    assert_eq!(e["httpRequest"]["clientIpAddress"], "127.0.0.1");
    assert_eq!(e["authorization"]["scope"], format!("/subscriptions/{sub}/resourceGroups/audit"));
    assert_eq!(e["tenantId"], s.tenant_id);
    assert_eq!(e["level"], "Informational");
    assert!(e["eventDataId"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(
        ops(&events, "Microsoft.MachineLearningServices/workspaces/write").len(),
        1,
        "the workspace"
    );
    let svc_path = "Microsoft.MachineLearningServices/workspaces/services";
    assert_eq!(ops(&events, &format!("{svc_path}/write")).len(), 1, "the deployment");
    let list_keys = ops(&events, &format!("{svc_path}/listKeys/action"));
    assert_eq!(list_keys.len(), 2, "one by the admin, one denied: {list_keys:#?}");
    assert_eq!(
        list_keys.iter().filter(|e| e["status"]["value"] == "Succeeded").count(),
        1,
        "{list_keys:#?}"
    );
    assert_eq!(ops(&events, &format!("{svc_path}/regenerateKeys/action")).len(), 1);
    let token_reads = ops(&events, &format!("{svc_path}/token/action"));
    assert_eq!(token_reads.len(), 1);
    assert_eq!(token_reads[0]["status"]["value"], "Failed");
    assert_eq!(token_reads[0]["subStatus"]["value"], "BadRequest");
    let created_sp = ops(&events, "microsoft.directory/servicePrincipals/create");
    assert_eq!(created_sp.len(), 2, "two principals");
    let role = ops(&events, "Microsoft.Authorization/roleAssignments/write");
    assert_eq!(role.len(), 2, "{role:#?}");
    let failed_role: Vec<_> = role.iter().filter(|e| e["status"]["value"] == "Failed").collect();
    assert_eq!(failed_role.len(), 1);
    assert_eq!(failed_role[0]["subStatus"]["value"], "Conflict");
    assert_eq!(
        failed_role[0]["authorization"]["scope"],
        format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments")
    );

    // The denial: failed, Forbidden, with the caller's application id and error code.
    let by_outsider: Vec<_> = events.iter().filter(|e| e["caller"] == outsider.app_id).collect();
    assert_eq!(by_outsider.len(), 2, "{by_outsider:#?}");
    for e in &by_outsider {
        assert_eq!(e["status"]["value"], "Failed");
        assert_eq!(e["subStatus"]["value"], "Forbidden");
        assert_eq!(e["level"], "Error");
        assert_eq!(e["properties"]["callerType"], "ServicePrincipal");
        assert!(e["properties"]["statusMessage"].as_str().unwrap().contains("AuthorizationFailed"));
    }
    // GETs are not recorded.
    assert!(events.iter().all(|e| e["httpRequest"]["method"] != "GET"));

    // Filters: a group, a caller, a time window (the clock moves on, then one more write).
    let (_, body) =
        activity(&s, &admin, &sub, &format!("{} and resourceGroupName eq 'AUDIT'", window(&s)))
            .await;
    let in_group = body["value"].as_array().unwrap();
    assert!(!in_group.is_empty());
    assert!(
        in_group
            .iter()
            .all(|e| e["resourceGroupName"].as_str().unwrap().eq_ignore_ascii_case("audit"))
    );
    assert!(in_group.iter().any(|e| e["resourceGroupName"] == "audit"));
    let (_, body) =
        activity(&s, &admin, &sub, &format!("{} and caller eq '{}'", window(&s), outsider.app_id))
            .await;
    assert_eq!(body["value"].as_array().unwrap().len(), 2);
    let before = window(&s);
    s.clock.advance(time::Duration::days(3));
    let admin = s.admin_token().await;
    c.delete_resource_group(&admin, &sub, "elsewhere").await.unwrap();
    let (_, old) = activity(&s, &admin, &sub, &before).await;
    assert!(
        ops(
            old["value"].as_array().unwrap(),
            "Microsoft.Resources/subscriptions/resourceGroups/delete"
        )
        .is_empty(),
        "the window ends before the deletion"
    );
    let (_, new) = activity(&s, &admin, &sub, &window(&s)).await;
    let new = new["value"].as_array().unwrap();
    assert_eq!(new.len(), 1, "only the deletion is in the new window: {new:#?}");
    assert_eq!(
        new[0]["operationName"]["value"],
        "Microsoft.Resources/subscriptions/resourceGroups/delete"
    );

    // Paging: $top 2 walks every event of the first window through nextLink.
    let url = format!(
        "{}/subscriptions/{sub}/providers/Microsoft.Insights/eventtypes/management/values",
        s.url
    );
    let first = http
        .get(&url)
        .query(&[("api-version", "2015-04-01"), ("$filter", before.as_str()), ("$top", "2")])
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let mut seen = first["value"].as_array().unwrap().clone();
    let mut next = first["nextLink"].as_str().map(str::to_string);
    while let Some(link) = next {
        let page: Value =
            http.get(&link).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
        seen.extend(page["value"].as_array().unwrap().iter().cloned());
        next = page["nextLink"].as_str().map(str::to_string);
    }
    assert_eq!(seen, events, "the pages hold the same events in the same order");

    // A bad filter is a 400 with a stable code, not a 500.
    let (status, body) = activity(&s, &admin, &sub, "eventTimestamp ge 'yesterday'").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "InvalidRequestContent");

    // No secret, key or token in the API's answer or in the database.
    let text = serde_json::to_string(&events).unwrap();
    let secrets = [
        keys.primary_key.clone(),
        keys.secondary_key.clone(),
        regenerated.primary_key.clone(),
        outsider.password.clone(),
        reader.password.clone(),
        admin.clone(),
        ADMIN_PASSWORD.to_string(),
    ];
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret in the activity log's answer");
    }
    if !on_postgres() {
        let mut raw = Vec::new();
        for name in ["mlgate.db", "mlgate.db-wal"] {
            raw.extend(std::fs::read(s.data_dir().join(name)).unwrap_or_default());
        }
        assert!(contains(&raw, b"audit-correlation-1"), "the scan sees the log's rows");
        for secret in &secrets {
            assert!(!contains(&raw, secret.as_bytes()), "a secret in the database");
        }
    }
}

/// The sign-in log is written off the request path: poll until it shows `n` records.
async fn sign_ins(s: &TestServer, token: &str, query: &[(&str, &str)], n: usize) -> Vec<Value> {
    sign_ins_until(s, token, query, |v| v.len() >= n).await
}

/// Sign-in records summed over their counts.
fn attempts(records: &[Value]) -> u64 {
    records.iter().map(|r| r["signInCount"].as_u64().unwrap()).sum()
}

/// Polls until the sign-in log's answer satisfies `ready` (grants are written every second).
async fn sign_ins_until(
    s: &TestServer,
    token: &str,
    query: &[(&str, &str)],
    ready: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    for _ in 0..100 {
        let resp = s
            .http()
            .get(format!("{}/api/v1/signIns", s.url))
            .query(query)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        let v = body["value"].as_array().unwrap().clone();
        if ready(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the sign-in log did not show what was expected for {query:?}");
}

#[tokio::test]
async fn sign_ins_and_their_failures_are_listed_with_aadsts_codes() {
    let s = TestServer::start().await;
    let c = s.client();
    let sp = s.create_sp("signin-app").await;
    let wrong = "Not-The-Password-42";
    for _ in 0..3 {
        let e = c.password(&s.tenant_id, ADMIN, wrong, ARM_SCOPE).await.unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(400));
    }
    let (status, body) = s.client_credentials_grant(&sp.app_id, "wrong-secret-value").await;
    assert_eq!(status, 401);
    assert_eq!(assert_oauth_error(&body, "invalid_client"), 7000215);
    c.client_credentials(&s.tenant_id, &sp.app_id, &sp.password, ARM_SCOPE).await.unwrap();
    let admin = s.admin_token().await;

    // The three wrong passwords are one aggregated record counting three (unless the minute
    // turned between them: then two records counting three in all).
    let failures =
        sign_ins_until(&s, &admin, &[("failuresOnly", "true")], |v| attempts(v) >= 4).await;
    let count = |rs: &[&Value]| rs.iter().map(|r| r["signInCount"].as_u64().unwrap()).sum::<u64>();
    let guesses: Vec<_> = failures.iter().filter(|r| r["status"]["errorCode"] == 50126).collect();
    assert_eq!(count(&guesses), 3, "three wrong passwords: {failures:#?}");
    assert!(guesses.len() <= 2, "aggregated: {guesses:#?}");
    for g in &guesses {
        assert_eq!(g["userPrincipalName"], ADMIN);
        assert_eq!(g["ipAddress"], "127.0.0.1");
        assert_eq!(g["clientAppUsed"], "password");
        assert_eq!(g["isInteractive"], false);
        assert!(
            g["status"]["failureReason"].as_str().unwrap().contains("invalid username or password")
        );
        assert!(
            g["lastSignInDateTime"].as_str().unwrap() >= g["createdDateTime"].as_str().unwrap()
        );
    }
    let bad_secret: Vec<_> =
        failures.iter().filter(|r| r["status"]["errorCode"] == 7000215).collect();
    assert_eq!(bad_secret.len(), 1);
    assert_eq!(count(&bad_secret), 1);
    assert_eq!(bad_secret[0]["appId"], sp.app_id);
    assert_eq!(failures.len(), guesses.len() + 1, "nothing else failed: {failures:#?}");

    // Per application, successes included; the success names the service principal.
    let by_app = sign_ins(&s, &admin, &[("app", &sp.app_id)], 2).await;
    assert_eq!(by_app.len(), 2, "{by_app:#?}");
    let ok: Vec<_> = by_app.iter().filter(|r| r["status"]["errorCode"] == 0).collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0]["clientAppUsed"], "client_credentials");
    assert_eq!(ok[0]["appDisplayName"], "signin-app");
    assert!(ok[0]["servicePrincipalId"].as_str().is_some());
    // Per user: the three failures and the admin's own successful sign-ins.
    let admin_ok = |r: &Value| r["status"]["errorCode"] == 0 && r["userId"].is_string();
    let by_user = sign_ins_until(&s, &admin, &[("user", "ADMIN@mlgate.local")], |v| {
        v.iter().any(admin_ok) && v.iter().any(|r| r["status"]["errorCode"] == 50126)
    })
    .await;
    assert!(by_user.iter().all(|r| r["userPrincipalName"] == ADMIN), "{by_user:#?}");
    // Graph's path and filter say the same.
    let graph_token = c
        .password(&s.tenant_id, ADMIN, ADMIN_PASSWORD, &format!("{}/.default", s.url))
        .await
        .unwrap()
        .access_token;
    let resp = s
        .http()
        .get(format!("{}/v1.0/auditLogs/signIns", s.url))
        .query(&[("$filter", "status/errorCode ne 0")])
        .bearer_auth(&graph_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let graph: Value = resp.json().await.unwrap();
    assert_eq!(graph["value"].as_array().unwrap().len(), failures.len());

    // Only directory administrators read it.
    let sp_token = c
        .client_credentials(&s.tenant_id, &sp.app_id, &sp.password, ARM_SCOPE)
        .await
        .unwrap()
        .access_token;
    let resp = s
        .http()
        .get(format!("{}/api/v1/signIns", s.url))
        .bearer_auth(&sp_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // No password or secret in the log.
    let all = sign_ins(&s, &admin, &[], 1).await;
    let text = serde_json::to_string(&all).unwrap();
    for secret in [wrong, "wrong-secret-value", sp.password.as_str(), ADMIN_PASSWORD] {
        assert!(!text.contains(secret), "a secret in the sign-in log");
    }
    if !on_postgres() {
        let mut raw = Vec::new();
        for name in ["mlgate.db", "mlgate.db-wal"] {
            raw.extend(std::fs::read(s.data_dir().join(name)).unwrap_or_default());
        }
        assert!(contains(&raw, b"client_credentials"), "the scan sees the log's rows");
        for secret in [wrong, "wrong-secret-value", sp.password.as_str()] {
            assert!(!contains(&raw, secret.as_bytes()), "a secret in the database");
        }
    }
}

/// Identical grants of one minute are one record counting them, grants written only in memory
/// when the server stops are written before it ends, and the next minute starts a new record.
#[tokio::test]
async fn grants_are_aggregated_per_minute_and_written_at_shutdown() {
    let s = TestServer::start().await;
    let c = s.client();
    let sp = s.create_sp("busy-app").await;
    for _ in 0..25 {
        c.client_credentials(&s.tenant_id, &sp.app_id, &sp.password, ARM_SCOPE).await.unwrap();
    }
    // Stop at once: most of the 25 are counted in memory, not yet written.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let admin = s.admin_token().await;
    let app = [("app", sp.app_id.as_str())];
    let rows = sign_ins(&s, &admin, &app, 1).await;
    assert_eq!(rows.len(), 1, "one record for the minute: {rows:#?}");
    assert_eq!(rows[0]["signInCount"], 25, "{rows:#?}");
    assert_eq!(rows[0]["clientAppUsed"], "client_credentials");

    // The next minute is a record of its own; more of it add into that one.
    s.clock.advance(time::Duration::minutes(1));
    let c = s.client();
    for _ in 0..3 {
        c.client_credentials(&s.tenant_id, &sp.app_id, &sp.password, ARM_SCOPE).await.unwrap();
    }
    let rows = sign_ins_until(&s, &admin, &app, |v| attempts(v) == 28).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(rows[0]["signInCount"], 3, "newest first: {rows:#?}");
}

/// Records past their retention are deleted by the background pruning when the server starts
/// (and every hour); younger ones stay.
#[tokio::test]
async fn records_past_their_retention_are_pruned() {
    use mlgate_core::activity::ActivityQuery;
    use mlgate_core::signins::SignInQuery;
    use mlgate_core::store::AuditStore;

    let s = TestServer::start().await;
    let c = s.client();
    let tenant: mlgate_core::ids::TenantId = s.tenant_id.parse().unwrap();
    // Forty days ago: a service principal created (an activity record) and its grant.
    s.clock.advance(-time::Duration::days(40));
    let old = s.create_sp("old-app").await;
    c.client_credentials(&s.tenant_id, &old.app_id, &old.password, ARM_SCOPE).await.unwrap();
    s.clock.advance(time::Duration::days(40));
    let young = s.create_sp("young-app").await;
    c.client_credentials(&s.tenant_id, &young.app_id, &young.password, ARM_SCOPE).await.unwrap();
    // Both old records are there before the restart (so their absence after says pruned).
    let admin = s.admin_token().await;
    sign_ins(&s, &admin, &[("app", old.app_id.as_str())], 1).await;
    let month_ago = s.clock.now() - time::Duration::days(30);
    let all_time = ActivityQuery {
        tenant_id: tenant,
        subscription_id: None,
        resource_group: None,
        caller: None,
        start: month_ago - time::Duration::days(30),
        end: month_ago + time::Duration::days(31),
        before: None,
        limit: 1000,
    };
    let before = s.store.activity(&all_time).await.unwrap();
    assert!(before.iter().any(|e| e.at < month_ago), "no old activity record to prune");
    let dir = s.stop().await;

    let s = TestServer::start_with(dir, |c| {
        c.log_retention.activity = time::Duration::days(30);
        c.log_retention.sign_ins = time::Duration::days(30);
    })
    .await;
    let sign_ins = |app: &str| SignInQuery {
        tenant_id: Some(tenant),
        app: Some(app.to_string()),
        limit: 10,
        ..Default::default()
    };
    let mut pruned = false;
    for _ in 0..100 {
        if s.store.sign_ins(&sign_ins(&old.app_id)).await.unwrap().is_empty() {
            pruned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(pruned, "the old grant's sign-in record is still there");
    assert_eq!(s.store.sign_ins(&sign_ins(&young.app_id)).await.unwrap().len(), 1);
    let events = s.store.activity(&all_time).await.unwrap();
    assert!(!events.is_empty(), "the young principal's creation stays");
    assert!(
        events.iter().all(|e| e.at >= month_ago),
        "an activity record past its retention stayed: {events:#?}"
    );
}
