//! The `mlgate` binary against a live server: the seed's flow through the CLI's own words.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use crate::support::*;

struct Cli<'a> {
    s: &'a TestServer,
    config: TempDir,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

impl<'a> Cli<'a> {
    fn new(s: &'a TestServer) -> Self {
        Self { s, config: TempDir::new() }
    }

    async fn run(&self, args: &[&str]) -> Out {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mlgate"))
            .args(args)
            .env("MLGATE_CONFIG_DIR", &self.config.0)
            .env("MLGATE_SERVER", &self.s.url)
            .env("MLGATE_CA_FILE", &self.s.ca_file)
            .env_remove("MLGATE_DATA_DIR")
            .output()
            .await
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn profile(&self) -> std::path::PathBuf {
        self.config.0.join("profile.json")
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_seed_flow_through_the_cli() {
    let s = TestServer::start().await;
    let cli = Cli::new(&s);

    // Not signed in yet: a clear error, exit code 1.
    let out = cli.run(&["account", "show"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("mlgate login"), "{}", out.stderr);

    let login = cli.run(&["login", "-u", ADMIN, "-p", ADMIN_PASSWORD]).await.json();
    assert_eq!(login[0]["user"]["name"], ADMIN);
    assert_eq!(login[0]["tenantId"], s.tenant_id);
    assert_eq!(mode(&cli.profile()), 0o600, "cached credentials are private");
    assert_eq!(mode(&cli.config.0), 0o700);
    assert!(
        !std::fs::read_to_string(cli.profile()).unwrap().contains(ADMIN_PASSWORD),
        "the password is not cached"
    );

    let account = cli.run(&["account", "show"]).await.json();
    assert_eq!(account["user"]["type"], "user");
    let subscription = account["id"].as_str().unwrap().to_string();

    let token = cli.run(&["account", "get-access-token"]).await.json();
    let me = s.client().me(token["accessToken"].as_str().unwrap()).await.unwrap();
    assert_eq!(me.user_principal_name.as_deref(), Some(ADMIN));
    let other = cli
        .run(&["account", "get-access-token", "--resource", "https://ml.azure.com"])
        .await
        .json();
    assert_eq!(claims(other["accessToken"].as_str().unwrap())["aud"], "https://ml.azure.com");

    // create-for-rbac --sdk-auth: the JSON Azure SDKs read, pointing at this server.
    let auth =
        cli.run(&["ad", "sp", "create-for-rbac", "--sdk-auth", "--name", "ml-auth"]).await.json();
    for f in [
        "clientId",
        "clientSecret",
        "subscriptionId",
        "tenantId",
        "activeDirectoryEndpointUrl",
        "resourceManagerEndpointUrl",
        "activeDirectoryGraphResourceId",
        "sqlManagementEndpointUrl",
        "galleryEndpointUrl",
        "managementEndpointUrl",
    ] {
        assert!(auth[f].as_str().is_some_and(|v| !v.is_empty()), "{f} missing: {auth}");
    }
    assert_eq!(auth["activeDirectoryEndpointUrl"], s.url);
    assert_eq!(auth["subscriptionId"], subscription);
    assert_eq!(auth["tenantId"], s.tenant_id);
    let app_id = auth["clientId"].as_str().unwrap().to_string();
    let secret = auth["clientSecret"].as_str().unwrap().to_string();
    assert!(secret.len() >= 43, "at least 256 bits");
    let c = s.client();
    assert!(c.client_credentials(&s.tenant_id, &app_id, &secret, ARM_SCOPE).await.is_ok());

    let shown = cli.run(&["ad", "sp", "show", "--id", &app_id]).await.json();
    assert_eq!(shown["displayName"], "ml-auth");
    assert_eq!(shown["passwordCredentials"][0]["hint"], secret[..3]);
    assert!(!shown.to_string().contains(&secret), "show never reveals the secret");
    let by_object =
        cli.run(&["ad", "sp", "show", "--id", shown["id"].as_str().unwrap()]).await.json();
    assert_eq!(by_object["appId"], app_id);

    let table = cli.run(&["ad", "sp", "list", "-o", "table"]).await;
    assert_eq!(table.code, 0);
    assert!(table.stdout.lines().next().unwrap().starts_with("DisplayName  "));
    assert!(table.stdout.contains("ml-auth"));

    // credential reset without --append: the old secret stops working at once.
    let reset = cli.run(&["ad", "sp", "credential", "reset", "--id", &app_id]).await.json();
    let second = reset["password"].as_str().unwrap().to_string();
    assert!(c.client_credentials(&s.tenant_id, &app_id, &secret, ARM_SCOPE).await.is_err());
    assert!(c.client_credentials(&s.tenant_id, &app_id, &second, ARM_SCOPE).await.is_ok());
    // with --append both work.
    let third =
        cli.run(&["ad", "sp", "credential", "reset", "--id", &app_id, "--append"]).await.json();
    let third = third["password"].as_str().unwrap().to_string();
    for sec in [&second, &third] {
        assert!(c.client_credentials(&s.tenant_id, &app_id, sec, ARM_SCOPE).await.is_ok());
    }

    // A service-principal sign-in in another profile.
    let sp_cli = Cli::new(&s);
    let out = sp_cli
        .run(&[
            "login",
            "--service-principal",
            "-u",
            &app_id,
            "-p",
            &third,
            "--tenant",
            &s.tenant_id,
        ])
        .await
        .json();
    assert_eq!(out[0]["user"]["type"], "servicePrincipal");
    let t = sp_cli.run(&["account", "get-access-token"]).await.json();
    assert_eq!(claims(t["accessToken"].as_str().unwrap())["azp"], app_id);
    let bad = sp_cli
        .run(&[
            "login",
            "--service-principal",
            "-u",
            &app_id,
            "-p",
            "wrong",
            "--tenant",
            &s.tenant_id,
        ])
        .await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("invalid_client"), "{}", bad.stderr);
    assert!(!bad.stderr.contains("wrong\""), "no secret echoed: {}", bad.stderr);

    // Disable, then delete.
    let upd = cli
        .run(&["ad", "sp", "update", "--id", &app_id, "--set", "accountEnabled=false"])
        .await
        .json();
    assert_eq!(upd["accountEnabled"], false);
    assert!(c.client_credentials(&s.tenant_id, &app_id, &third, ARM_SCOPE).await.is_err());
    let del = cli.run(&["ad", "sp", "delete", "--id", &app_id, "--yes"]).await;
    assert_eq!(del.code, 0, "{}", del.stderr);
    let gone = cli.run(&["ad", "sp", "show", "--id", &app_id]).await;
    assert_eq!(gone.code, 1);
    assert!(gone.stderr.contains("NotFound"), "{}", gone.stderr);

    // Users, created by the administrator and signing in.
    let created = cli
        .run(&[
            "ad",
            "user",
            "create",
            "--display-name",
            "Dana",
            "--user-principal-name",
            "dana@mlgate.local",
            "--password",
            "Dana-Passw0rd!",
        ])
        .await
        .json();
    assert_eq!(created["userPrincipalName"], "dana@mlgate.local");
    let dana = Cli::new(&s);
    assert_eq!(
        dana.run(&["login", "-u", "dana@mlgate.local", "-p", "Dana-Passw0rd!"]).await.code,
        0
    );
    let wrong = dana.run(&["login", "-u", "dana@mlgate.local", "-p", "nope"]).await;
    assert_eq!(wrong.code, 1);
    assert!(wrong.stderr.contains("invalid_grant"), "{}", wrong.stderr);

    // Logout forgets the profile.
    assert_eq!(cli.run(&["logout"]).await.code, 0);
    assert!(!cli.profile().exists());
    assert_eq!(cli.run(&["logout"]).await.code, 1);
}

#[tokio::test]
async fn the_cli_renews_an_expiring_token_with_its_rotating_refresh_token() {
    let s = TestServer::start().await;
    let cli = Cli::new(&s);
    cli.run(&["login", "-u", ADMIN, "-p", ADMIN_PASSWORD]).await.json();
    let first = cli.run(&["account", "get-access-token"]).await.json();
    let again = cli.run(&["account", "get-access-token"]).await.json();
    assert_eq!(first["accessToken"], again["accessToken"], "a fresh token comes from the cache");

    // Make the cached token look nearly expired: the CLI must renew it.
    let mut profile: Value =
        serde_json::from_str(&std::fs::read_to_string(cli.profile()).unwrap()).unwrap();
    let rt_before =
        profile["accounts"][0]["credential"]["refreshToken"].as_str().unwrap().to_string();
    for (_, t) in profile["accounts"][0]["tokens"].as_object_mut().unwrap() {
        t["expiresOn"] = Value::from(time::OffsetDateTime::now_utc().unix_timestamp() + 60);
    }
    std::fs::write(cli.profile(), profile.to_string()).unwrap();
    let renewed = cli.run(&["account", "get-access-token"]).await.json();
    assert_ne!(renewed["accessToken"], first["accessToken"]);
    let profile: Value =
        serde_json::from_str(&std::fs::read_to_string(cli.profile()).unwrap()).unwrap();
    assert_ne!(
        profile["accounts"][0]["credential"]["refreshToken"],
        rt_before.as_str(),
        "the rotated token was kept"
    );
}

#[tokio::test]
async fn workspaces_and_roles_through_the_cli() {
    let s = TestServer::start().await;
    let cli = Cli::new(&s);
    cli.run(&["login", "-u", ADMIN, "-p", ADMIN_PASSWORD]).await.json();

    let rg = cli.run(&["group", "create", "-n", "ml-rg", "-l", "westeurope"]).await.json();
    assert_eq!(rg["name"], "ml-rg");
    let ws = cli.run(&["ml", "workspace", "create", "-w", "ml-ws", "-g", "ml-rg"]).await.json();
    let ws_id = ws["id"].as_str().unwrap().to_string();
    assert!(ws_id.ends_with("/providers/Microsoft.MachineLearningServices/workspaces/ml-ws"));
    assert_eq!(
        cli.run(&["ml", "workspace", "list", "-g", "ml-rg"]).await.json().as_array().unwrap().len(),
        1
    );

    // show --write-config writes config.json with the server URL.
    let folder = TempDir::new();
    let out = cli
        .run(&[
            "ml",
            "workspace",
            "show",
            "-w",
            "ml-ws",
            "-g",
            "ml-rg",
            "--write-config",
            folder.0.to_str().unwrap(),
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(folder.0.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["workspace_name"], "ml-ws");
    assert_eq!(cfg["resource_group"], "ml-rg");
    assert_eq!(cfg["server"], s.url);
    assert_eq!(cfg["subscription_id"].as_str().unwrap().len(), 36);

    // The seed's flow: create-for-rbac, sp show, ml workspace share --role owner.
    let auth =
        cli.run(&["ad", "sp", "create-for-rbac", "--sdk-auth", "--name", "ml-auth"]).await.json();
    let app = auth["clientId"].as_str().unwrap().to_string();
    let secret = auth["clientSecret"].as_str().unwrap().to_string();
    let shown = cli.run(&["ad", "sp", "show", "--id", &app]).await.json();
    let oid = shown["id"].as_str().unwrap().to_string();
    let shared = cli
        .run(&[
            "ml",
            "workspace",
            "share",
            "-w",
            "ml-ws",
            "-g",
            "ml-rg",
            "--user",
            &oid,
            "--role",
            "owner",
        ])
        .await
        .json();
    assert_eq!(shared["roleDefinitionName"], "Owner");
    let c = s.client();
    let t =
        c.client_credentials(&s.tenant_id, &app, &secret, ARM_SCOPE).await.unwrap().access_token;
    let sub = cfg["subscription_id"].as_str().unwrap();
    assert_eq!(c.workspace(&t, sub, "ml-rg", "ml-ws").await.unwrap().name, "ml-ws");

    // A Reader made in one step; it reads and is refused a write.
    let reader = cli
        .run(&[
            "ad",
            "sp",
            "create-for-rbac",
            "--name",
            "ml-reader",
            "--role",
            "Reader",
            "--scopes",
            &ws_id,
        ])
        .await
        .json();
    let rt = c
        .client_credentials(
            &s.tenant_id,
            reader["appId"].as_str().unwrap(),
            reader["password"].as_str().unwrap(),
            ARM_SCOPE,
        )
        .await
        .unwrap()
        .access_token;
    assert!(c.workspace(&rt, sub, "ml-rg", "ml-ws").await.is_ok());
    assert_eq!(
        c.put_workspace(&rt, sub, "ml-rg", "ml-ws", None).await.unwrap_err().status().unwrap(),
        403
    );

    // A failed role leaves no principal behind.
    let before = cli.run(&["ad", "sp", "list"]).await.json().as_array().unwrap().len();
    let bad = cli
        .run(&[
            "ad",
            "sp",
            "create-for-rbac",
            "--name",
            "doomed",
            "--role",
            "Emperor",
            "--scopes",
            &ws_id,
        ])
        .await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("removed"), "{}", bad.stderr);
    assert_eq!(cli.run(&["ad", "sp", "list"]).await.json().as_array().unwrap().len(), before);

    // role definition create from an Azure JSON file; role assignment create / list / delete.
    let role_file = folder.0.join("role.json");
    std::fs::write(
        &role_file,
        serde_json::json!({
            "Name": "Model Reader",
            "IsCustom": true,
            "Description": "Reads models only.",
            "Actions": ["Microsoft.MachineLearningServices/workspaces/models/read"],
            "NotActions": [],
            "DataActions": [],
            "NotDataActions": [],
            "AssignableScopes": [format!("/subscriptions/{sub}")]
        })
        .to_string(),
    )
    .unwrap();
    let def = cli
        .run(&["role", "definition", "create", "--role-definition", role_file.to_str().unwrap()])
        .await
        .json();
    assert_eq!(def["Name"], "Model Reader");
    assert_eq!(def["IsCustom"], true);
    let customs = cli.run(&["role", "definition", "list", "--custom-role-only"]).await.json();
    assert_eq!(customs.as_array().unwrap().len(), 1);
    let all = cli.run(&["role", "definition", "list", "-o", "table"]).await;
    for name in ["Owner", "Contributor", "Reader", "AzureML Data Scientist", "Model Reader"] {
        assert!(all.stdout.contains(name), "{name} missing:\n{}", all.stdout);
    }
    let assigned = cli
        .run(&[
            "role",
            "assignment",
            "create",
            "--assignee",
            &app,
            "--role",
            "Model Reader",
            "--scope",
            &ws_id,
        ])
        .await
        .json();
    assert_eq!(assigned["principalId"], oid);
    let dup = cli
        .run(&[
            "role",
            "assignment",
            "create",
            "--assignee",
            &app,
            "--role",
            "Model Reader",
            "--scope",
            &ws_id,
        ])
        .await;
    assert_eq!(dup.code, 1);
    assert!(dup.stderr.contains("Conflict"), "{}", dup.stderr);
    let listed = cli.run(&["role", "assignment", "list", "--assignee", &app]).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 2);

    // role check explains.
    let check = cli
        .run(&[
            "role",
            "check",
            "--assignee",
            &app,
            "--action",
            "Microsoft.Authorization/roleAssignments/write",
            "--scope",
            &format!("{ws_id}/models/m1"),
        ])
        .await
        .json();
    assert_eq!(check["allowed"], true);
    assert_eq!(check["decidedBy"]["roleDefinitionName"], "Owner");
    let check = cli
        .run(&[
            "role",
            "check",
            "--assignee",
            reader["appId"].as_str().unwrap(),
            "--action",
            "Microsoft.MachineLearningServices/workspaces/write",
            "--scope",
            &ws_id,
        ])
        .await
        .json();
    assert_eq!(check["allowed"], false);
    assert!(check["considered"][0]["reason"].as_str().unwrap().contains("does not grant"));

    let del = cli
        .run(&[
            "role",
            "assignment",
            "delete",
            "--assignee",
            &app,
            "--role",
            "Model Reader",
            "--scope",
            &ws_id,
            "--yes",
        ])
        .await;
    assert_eq!(del.code, 0, "{}", del.stderr);
    assert_eq!(
        cli.run(&["role", "assignment", "list", "--assignee", &app])
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    assert_eq!(
        cli.run(&["ml", "workspace", "delete", "-w", "ml-ws", "-g", "ml-rg", "-y"]).await.code,
        0
    );
    let gone = cli.run(&["ml", "workspace", "show", "-w", "ml-ws", "-g", "ml-rg"]).await;
    assert_eq!(gone.code, 1);
    assert!(gone.stderr.contains("NotFound"), "{}", gone.stderr);
}

#[tokio::test]
async fn models_through_the_cli_in_a_folder_with_config_json() {
    let s = TestServer::start().await;
    let cli = Cli::new(&s);
    cli.run(&["login", "-u", ADMIN, "-p", ADMIN_PASSWORD]).await.json();
    cli.run(&["group", "create", "-n", "rg"]).await.json();
    cli.run(&["ml", "workspace", "create", "-w", "mlws", "-g", "rg"]).await.json();
    let project = TempDir::new();
    let out = cli
        .run(&[
            "ml",
            "workspace",
            "show",
            "-w",
            "mlws",
            "-g",
            "rg",
            "--write-config",
            project.0.to_str().unwrap(),
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::fs::write(project.0.join("model.onnx"), b"model bytes").unwrap();

    // Inside the project folder, -w and -g come from config.json.
    let run_in = |args: Vec<String>| {
        let dir = project.0.clone();
        let config = cli.config.0.clone();
        let url = s.url.clone();
        let ca = s.ca_file.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mlgate"))
                .args(&args)
                .current_dir(dir)
                .env("MLGATE_CONFIG_DIR", config)
                .env("MLGATE_SERVER", url)
                .env("MLGATE_CA_FILE", ca)
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)
        }
    };
    let args = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let reg = run_in(args(&[
        "ml",
        "model",
        "register",
        "-n",
        "sklearn-model",
        "-p",
        "model.onnx",
        "--tag",
        "stage=dev",
    ]))
    .await;
    assert_eq!(reg["version"], 1);
    assert_eq!(reg["tags"]["stage"], "dev");
    let again =
        run_in(args(&["ml", "model", "register", "-n", "sklearn-model", "-p", "model.onnx"])).await;
    assert_eq!(again["version"], 2);
    let list = run_in(args(&["ml", "model", "list"])).await;
    assert_eq!(list[0]["name"], "sklearn-model");
    let shown =
        run_in(args(&["ml", "model", "show", "-n", "sklearn-model", "--version", "1"])).await;
    assert_eq!(shown["files"][0]["path"], "model.onnx");
    run_in(args(&["ml", "model", "download", "-n", "sklearn-model", "-t", "out"])).await;
    assert_eq!(std::fs::read(project.0.join("out/model.onnx")).unwrap(), b"model bytes");
    run_in(args(&["ml", "model", "delete", "-n", "sklearn-model", "--version", "1", "--yes"]))
        .await;
    let versions = run_in(args(&["ml", "model", "show", "-n", "sklearn-model"])).await;
    assert_eq!(versions["version"], 2);
}
