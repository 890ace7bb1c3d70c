//! The user lifecycle through HTTP and the `mlgate` binary: an administrator's reset and the
//! forced change (AADSTS50055 at the password grant and the sign-in pages, until the user
//! changes it), disabling (AADSTS50057), deletion, and the offline recovery of a lost
//! administrator password (then signing in works, and the activity log says so).

use std::os::unix::fs::PermissionsExt;

use mlgate_proto::{ChangePassword, CreateUser, UpdateUser};
use serde_json::Value;

use crate::support::*;

async fn mlgate(
    s: &TestServer,
    config: &TempDir,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mlgate"));
    cmd.args(args)
        .env("MLGATE_CONFIG_DIR", &config.0)
        .env("MLGATE_SERVER", &s.url)
        .env("MLGATE_CA_FILE", &s.ca_file)
        .env_remove("MLGATE_DATA_DIR")
        .env_remove("MLGATE_NEW_USER_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The AADSTS code of a refused password grant.
async fn refused(s: &TestServer, user: &str, password: &str) -> u64 {
    let (status, body) = s
        .post_token(
            true,
            &[
                ("grant_type", "password"),
                ("client_id", mlgate_proto::CLI_CLIENT_ID),
                ("username", user),
                ("password", password),
                ("scope", ARM_SCOPE),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_oauth_error(&body, "invalid_grant")
}

#[tokio::test]
async fn reset_forced_change_disable_and_delete() {
    let s = TestServer::start().await;
    let c = s.client();
    let admin = s.admin_token().await;
    let uma = "uma@mlgate.local";
    let first = "Uma-First-Passw0rd";
    let created = c
        .create_user(
            &admin,
            &CreateUser {
                user_principal_name: uma.into(),
                display_name: "Uma".into(),
                password: first.into(),
                force_change_password_next_sign_in: true,
            },
        )
        .await
        .unwrap();
    assert!(created.force_change_password_next_sign_in);

    // Forced change: the right password is refused with 50055 at the grant ...
    assert_eq!(refused(&s, uma, first).await, 50055);
    // ... a wrong one is still a wrong password (50126), and says nothing more.
    assert_eq!(refused(&s, uma, "Wrong-Passw0rd-1").await, 50126);
    // ... and the authorize page offers the change instead of signing in.
    let page = authorize_sign_in(&s, uma, first).await;
    assert!(page.contains("id=\"changepassword\""), "{page}");
    assert!(page.contains("/changepassword?username=uma%40mlgate.local"), "{page}");

    // The user changes it (no token needed), through the CLI.
    let config = TempDir::new();
    let second = "Uma-Second-Passw0rd";
    let (code, _, err) = mlgate(
        &s,
        &config,
        &["ad", "user", "change-password", "--user-principal-name", uma],
        &[("MLGATE_CURRENT_PASSWORD", first), ("MLGATE_NEW_PASSWORD", second)],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    // The old password is gone, the new one signs in.
    assert_eq!(refused(&s, uma, first).await, 50126);
    let t = c.password(&s.tenant_id, uma, second, ARM_SCOPE).await.unwrap();
    let refresh = t.refresh_token.clone().unwrap();
    // A wrong current password is refused with Azure's code, through the API.
    let e = c
        .change_password(&ChangePassword {
            user_principal_name: uma.into(),
            current_password: "Not-It-Passw0rd".into(),
            new_password: "Whatever-Passw0rd".into(),
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("invalid_grant"), "{e}");

    // An administrator disables the account through the CLI: 50057, refresh tokens revoked.
    let (code, _, err) =
        mlgate(&s, &config, &["login", "-u", ADMIN, "-p", ADMIN_PASSWORD], &[]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = mlgate(
        &s,
        &config,
        &["ad", "user", "update", "--id", uma, "--account-enabled", "false"],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["accountEnabled"], false);
    assert_eq!(refused(&s, uma, second).await, 50057);
    let r = c.refresh(&s.tenant_id, &refresh, ARM_SCOPE).await.unwrap_err();
    assert!(r.to_string().contains("invalid_grant"), "{r}");
    // Nobody disables themself.
    let me = c
        .update_user(
            &admin,
            ADMIN,
            &UpdateUser { account_enabled: Some(false), ..Default::default() },
        )
        .await
        .unwrap_err();
    assert_eq!(me.status().map(|s| s.as_u16()), Some(409));

    // An administrator's reset with a forced change: enabled again, 50055 until changed.
    let third = "Uma-Third-Passw0rd";
    let (code, _, err) = mlgate(
        &s,
        &config,
        &[
            "ad",
            "user",
            "update",
            "--id",
            uma,
            "--account-enabled",
            "true",
            "--force-change-password-next-sign-in",
        ],
        &[("MLGATE_NEW_USER_PASSWORD", third)],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(refused(&s, uma, third).await, 50055);
    let (code, out, _) = mlgate(&s, &config, &["ad", "user", "show", "--id", uma], &[]).await;
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["forceChangePasswordNextSignIn"], true);

    // A user who is not an administrator may not change others.
    let other = c
        .create_user(
            &admin,
            &CreateUser {
                user_principal_name: "olga@mlgate.local".into(),
                display_name: "Olga".into(),
                password: "Olga-Passw0rd-1".into(),
                force_change_password_next_sign_in: false,
            },
        )
        .await
        .unwrap();
    let olga = c
        .password(&s.tenant_id, "olga@mlgate.local", "Olga-Passw0rd-1", ARM_SCOPE)
        .await
        .unwrap()
        .access_token;
    let e = c
        .update_user(&olga, uma, &UpdateUser { account_enabled: Some(false), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(403));

    // Deletion: the user is gone and signs in no more.
    let (code, _, err) =
        mlgate(&s, &config, &["ad", "user", "delete", "--id", &other.id, "--yes"], &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(c.user(&admin, &other.id).await.is_err());
    assert_eq!(refused(&s, "olga@mlgate.local", "Olga-Passw0rd-1").await, 50126);

    // The CLI reads both logs.
    let (code, out, err) = mlgate(
        &s,
        &config,
        &["monitor", "activity-log", "list", "--caller", ADMIN, "--max-events", "500"],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let listed = listed.as_array().unwrap();
    assert!(listed.iter().all(|e| e["caller"] == ADMIN));
    assert!(
        listed.iter().any(|e| e["operationName"]["value"] == "microsoft.directory/users/delete")
    );
    let (code, out, err) = mlgate(
        &s,
        &config,
        &["ad", "signin", "list", "--failures-only", "--user", uma, "-o", "json"],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let failures: Value = serde_json::from_str(&out).unwrap();
    let codes: Vec<u64> = failures
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"]["errorCode"].as_u64().unwrap())
        .collect();
    for expected in [50055, 50126, 50057] {
        assert!(codes.contains(&expected), "{expected} missing from {codes:?}");
    }
    assert!(!out.contains(first) && !out.contains(second) && !out.contains(third));

    // Each of these is in the activity log, once, with the administrator as caller and no
    // password anywhere in it.
    let sub = c.subscriptions(&admin).await.unwrap()[0].subscription_id.clone();
    let events = activity_all(&s, &admin, &sub).await;
    let count = |op: &str| events.iter().filter(|e| e["operationName"]["value"] == op).count();
    assert_eq!(count("microsoft.directory/users/create"), 2);
    assert_eq!(
        count("microsoft.directory/users/update"),
        3,
        "the disable, the refused self-disable, the non-administrator's attempt"
    );
    assert_eq!(
        count("microsoft.directory/users/password/update"),
        2,
        "uma's own change (she is the caller) and the administrator's reset"
    );
    let own: Vec<_> = events
        .iter()
        .filter(|e| {
            e["operationName"]["value"] == "microsoft.directory/users/password/update"
                && e["caller"] == uma
        })
        .collect();
    assert_eq!(own.len(), 1, "{events:#?}");
    assert_eq!(count("microsoft.directory/users/delete"), 1);
    let text = serde_json::to_string(&events).unwrap();
    for pw in [first, second, third, "Olga-Passw0rd-1"] {
        assert!(!text.contains(pw));
    }
}

/// The subscription's activity over a day either side of the wall clock (the server's clock
/// is a test clock; the offline reset writes the wall clock's time).
async fn activity_all(s: &TestServer, token: &str, sub: &str) -> Vec<Value> {
    let f =
        |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let filter = format!(
        "eventTimestamp ge '{}' and eventTimestamp le '{}'",
        f(now - time::Duration::days(1)),
        f(now + time::Duration::days(1))
    );
    let body: Value = s
        .http()
        .get(format!(
            "{}/subscriptions/{sub}/providers/Microsoft.Insights/eventtypes/management/values",
            s.url
        ))
        .query(&[("api-version", "2015-04-01"), ("$filter", filter.as_str())])
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["value"].as_array().unwrap().clone()
}

/// Signs in at `/authorize` (the CLI's public client, a loopback redirect); returns the page.
async fn authorize_sign_in(s: &TestServer, user: &str, password: &str) -> String {
    let http = s.http();
    let url = format!("{}/organizations/oauth2/v2.0/authorize", s.url);
    let params = [
        ("client_id", mlgate_proto::CLI_CLIENT_ID),
        ("response_type", "code"),
        ("redirect_uri", "http://127.0.0.1:8400"),
        ("scope", ARM_SCOPE),
        ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
        ("code_challenge_method", "S256"),
    ];
    let resp = http.get(&url).query(&params).send().await.unwrap();
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next().map(str::to_string))
        .collect();
    let form = resp.text().await.unwrap();
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no csrf field: {form}"))
        .to_string();
    let mut fields: Vec<(&str, &str)> = params.to_vec();
    fields.push(("csrf", &csrf));
    fields.push(("username", user));
    fields.push(("password", password));
    let resp =
        http.post(&url).header("cookie", cookies.join("; ")).form(&fields).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn offline_reset_of_a_lost_administrator_password() {
    let s = TestServer::start().await;
    let config = TempDir::new();
    let data_dir = s.data_dir();
    let mut args = vec![
        "admin".to_string(),
        "reset-password".into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--user".into(),
        ADMIN.into(),
        "--generate".into(),
    ];
    if let Some(url) = &s.store_url {
        args.push("--store".into());
        args.push(url.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = mlgate(&s, &config, &args, &[]).await;
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    let file = data_dir.join(format!("reset-password-{}", shown["id"].as_str().unwrap()));
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let password = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(!out.contains(&password) && !err.contains(&password), "never printed");

    // The old password no longer works; the new one does.
    assert_eq!(refused(&s, ADMIN, ADMIN_PASSWORD).await, 50126);
    let token = s.client().password(&s.tenant_id, ADMIN, &password, ARM_SCOPE).await.unwrap();

    // The activity log has it: a System caller, the password update, once.
    let sub =
        s.client().subscriptions(&token.access_token).await.unwrap()[0].subscription_id.clone();
    let events = activity_all(&s, &token.access_token, &sub).await;
    let resets: Vec<_> = events
        .iter()
        .filter(|e| e["operationName"]["value"] == "microsoft.directory/users/password/update")
        .collect();
    assert_eq!(resets.len(), 1, "{events:#?}");
    assert_eq!(resets[0]["properties"]["callerType"], "System");
    assert_eq!(resets[0]["status"]["value"], "Succeeded");
    assert!(!serde_json::to_string(&events).unwrap().contains(&password));

    // Without the data directory there is nothing to reset with.
    let (code, _, err) = mlgate(
        &s,
        &config,
        &[
            "admin",
            "reset-password",
            "--data-dir",
            "/nonexistent/mlgate",
            "--user",
            ADMIN,
            "--generate",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");
}
