//! The Azure CLI's habits in `mlgate`: output formats and `--query` (checked against jq and
//! yq), several signed-in accounts, confirmation before deleting, the password prompt on a
//! real pseudo-terminal (tmux), errors that name their cause, whole source directories, and
//! the landing page.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::support::*;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        &self.stdout
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// The `mlgate` binary with its own profile folder, talking to one server.
struct Cli {
    config: TempDir,
    url: String,
    ca: std::path::PathBuf,
}

impl Cli {
    fn new(s: &TestServer) -> Self {
        Self { config: TempDir::new(), url: s.url.clone(), ca: s.ca_file.clone() }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_mlgate"));
        c.args(args)
            .env("MLGATE_CONFIG_DIR", &self.config.0)
            .env("MLGATE_SERVER", &self.url)
            .env("MLGATE_CA_FILE", &self.ca)
            .env_remove("MLGATE_DATA_DIR")
            .stdin(Stdio::null());
        c
    }

    async fn run(&self, args: &[&str]) -> Out {
        let out = self.command(args).output().await.unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn run_in(&self, dir: &Path, args: &[&str]) -> Out {
        let out = self.command(args).current_dir(dir).output().await.unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs a filter program (jq, yq) over `input` and returns its stdout.
async fn filter(program: &str, args: &[&str], input: &str) -> String {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is needed (scripts/setup-test-deps.sh): {e}"));
    child.stdin.take().unwrap().write_all(input.as_bytes()).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "{program} {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn output_formats_and_queries_agree_with_jq_and_yq() {
    let s = TestServer::start().await;
    let cli = Cli::new(&s);
    cli.run(&["login", "-u", ADMIN, "-p", ADMIN_PASSWORD, "-o", "none"]).await.ok();
    cli.run(&["group", "create", "-n", "rg-b", "-l", "westeurope"]).await.ok();
    cli.run(&["group", "create", "-n", "rg-a", "-l", "north europe"]).await.ok();
    let json_text = cli.run(&["group", "list"]).await.ok().to_string();
    let groups: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(groups.as_array().unwrap().len(), 2);

    // -o tsv: one line per item, the values in key order, a nested object empty.
    let tsv = cli.run(&["group", "list", "-o", "tsv"]).await.ok().to_string();
    let jq_tsv = filter(
        "jq",
        &[
            "-r",
            ".[] | [to_entries[] | .value | if type == \"array\" then length \
             elif type == \"object\" then \"\" else . end] | @tsv",
        ],
        &json_text,
    )
    .await;
    assert_eq!(tsv, jq_tsv);

    // --query before -o: the names, and a projection whose keys come out sorted.
    let names = cli.run(&["group", "list", "--query", "[].name", "-o", "tsv"]).await;
    assert_eq!(names.ok(), filter("jq", &["-r", ".[].name"], &json_text).await);
    let picked = cli
        .run(&["group", "list", "--query", "[?location=='westeurope'].{n: name, l: location}"])
        .await
        .json();
    let jq_picked = filter(
        "jq",
        &["[.[] | select(.location == \"westeurope\") | {n: .name, l: .location}]"],
        &json_text,
    )
    .await;
    assert_eq!(picked, serde_json::from_str::<Value>(&jq_picked).unwrap());
    let one = cli
        .run(&[
            "group",
            "show",
            "-n",
            "rg-a",
            "--query",
            "properties.provisioningState",
            "-o",
            "tsv",
        ])
        .await;
    assert_eq!(one.ok(), "Succeeded\n");

    // -o yaml reads back (yq) as the same value as -o json.
    let yaml = cli.run(&["group", "list", "-o", "yaml"]).await.ok().to_string();
    assert!(yaml.contains("name: rg-a"), "{yaml}");
    let from_yaml: Value = serde_json::from_str(&filter("yq", &["."], &yaml).await).unwrap();
    assert_eq!(from_yaml, groups);
    // jsonc is the same JSON in colour.
    let jsonc = cli.run(&["group", "list", "-o", "jsonc"]).await.ok().to_string();
    assert!(jsonc.contains("\x1b["));
    // -o none prints nothing; the exit code still tells.
    assert_eq!(cli.run(&["group", "list", "-o", "none"]).await.ok(), "");

    // Tables: the command's own columns, short names, no ARM ids.
    let table = cli.run(&["group", "list", "-o", "table"]).await.ok().to_string();
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["Name", "Location", "Status"]);
    assert!(!table.contains("/subscriptions/"), "{table}");
    let ws = cli.run(&["ml", "workspace", "create", "-w", "ws1", "-g", "rg-a"]).await.json();
    let ws_id = ws["id"].as_str().unwrap().to_string();
    let check = cli
        .run(&[
            "role",
            "check",
            "--assignee",
            ADMIN,
            "--action",
            "Microsoft.MachineLearningServices/workspaces/write",
            "--scope",
            &ws_id,
            "-o",
            "table",
        ])
        .await
        .ok()
        .to_string();
    let lines: Vec<&str> = check.lines().collect();
    assert!(lines[0].starts_with("Allowed  DecidedBy"), "{check}");
    assert!(lines[2].starts_with("true") && lines[2].contains("Owner"), "{check}");
    assert!(
        lines[2].contains("subscription ") && lines[2].contains("workspace rg-a/ws1"),
        "{check}"
    );

    // A query that does not parse is a usage error (exit code 2), as in az.
    let bad = cli.run(&["group", "list", "--query", "[?name=="]).await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("JMESPath"), "{}", bad.stderr);
    // The flags may come before the command too.
    let before = cli.run(&["-o", "tsv", "--query", "[0].name", "group", "list"]).await;
    assert_eq!(before.ok(), "rg-a\n");
}

#[tokio::test]
async fn several_accounts_stay_signed_in_and_account_set_switches() {
    let s = TestServer::start().await;
    let cli = Cli::new(&s);
    cli.run(&["login", "-u", ADMIN, "-p", ADMIN_PASSWORD, "-o", "none"]).await.ok();
    let sub =
        cli.run(&["account", "show", "--query", "id", "-o", "tsv"]).await.ok().trim().to_string();
    let sp = cli.run(&["ad", "sp", "create-for-rbac", "--name", "ci-sp"]).await.json();
    let (app, secret) = (sp["appId"].as_str().unwrap(), sp["password"].as_str().unwrap());

    // The service principal's sign-in is added, not swapped in for the administrator's.
    let login = cli
        .run(&["login", "--service-principal", "-u", app, "-p", secret, "--tenant", &s.tenant_id])
        .await;
    login.ok();
    assert!(login.stderr.contains("account set -s"), "{}", login.stderr);
    let me = cli.run(&["account", "show"]).await.json();
    assert_eq!(me["user"]["name"], app);
    // It has no subscription yet: the error says how to switch back.
    let no_sub = cli.run(&["group", "list"]).await;
    assert_eq!(no_sub.code, 1);
    assert!(no_sub.stderr.contains("no subscription"), "{}", no_sub.stderr);
    assert!(no_sub.stderr.contains("mlgate account set -s"), "{}", no_sub.stderr);

    let list = cli.run(&["account", "list"]).await.json();
    let users: Vec<&str> =
        list.as_array().unwrap().iter().map(|r| r["user"]["name"].as_str().unwrap()).collect();
    assert_eq!(users, [ADMIN, app], "both accounts are listed: {list}");
    assert_eq!(list[0]["id"], sub.as_str());
    assert_eq!(list[1]["name"], "N/A(tenant level account)", "as az shows one: {list}");
    assert_eq!(list[1]["isDefault"], true);

    // account set -s finds the subscription under the administrator and makes it active.
    cli.run(&["account", "set", "-s", &sub]).await.ok();
    assert_eq!(cli.run(&["account", "show"]).await.json()["user"]["name"], ADMIN);
    cli.run(&["group", "list"]).await.ok();

    // Signing in again as the same user replaces that account; the other stays.
    cli.run(&["login", "-u", ADMIN, "-p", ADMIN_PASSWORD, "-o", "none"]).await.ok();
    let profile: Value =
        serde_json::from_str(&std::fs::read_to_string(cli.config.0.join("profile.json")).unwrap())
            .unwrap();
    assert_eq!(profile["accounts"].as_array().unwrap().len(), 2);

    // logout signs out the active account only; the next is then active.
    cli.run(&["logout"]).await.ok();
    assert_eq!(cli.run(&["account", "show"]).await.json()["user"]["name"], app);
    cli.run(&["logout", "--username", app]).await.ok();
    assert!(!cli.config.0.join("profile.json").exists());
}

#[tokio::test]
async fn destructive_commands_ask_or_need_yes() {
    let s = TestServer::start().await;
    let cli = Cli::new(&s);
    cli.run(&["login", "-u", ADMIN, "-p", ADMIN_PASSWORD, "-o", "none"]).await.ok();
    cli.run(&["group", "create", "-n", "doomed"]).await.ok();
    // No terminal to ask on: refused unasked (usage error), nothing deleted.
    let refused = cli.run(&["group", "delete", "-n", "doomed"]).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    cli.run(&["group", "show", "-n", "doomed"]).await.ok();
    cli.run(&["group", "delete", "-n", "doomed", "--yes"]).await.ok();
    assert_eq!(cli.run(&["group", "show", "-n", "doomed"]).await.code, 1);
}

#[tokio::test]
async fn errors_name_their_cause_and_the_next_step() {
    let s = TestServer::start().await;
    let other = TestServer::start().await;
    let cli = Cli::new(&s);

    // -u without -p and no terminal: a usage error that says why.
    let no_tty = cli.run(&["login", "-u", ADMIN]).await;
    assert_eq!(no_tty.code, 2, "{}", no_tty.stderr);
    assert!(no_tty.stderr.contains("-p is missing"), "{}", no_tty.stderr);

    // The other server's CA cannot vouch for this server: the error names the file used and
    // how to pass another.
    let wrong_ca = other.ca_file.to_str().unwrap();
    let out = cli.run(&["login", "-u", ADMIN, "-p", ADMIN_PASSWORD, "--ca-file", wrong_ca]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains(wrong_ca), "{}", out.stderr);
    assert!(out.stderr.contains("--ca-file"), "{}", out.stderr);

    // An unknown resource is not an expired sign-in.
    cli.run(&["login", "-u", ADMIN, "-p", ADMIN_PASSWORD, "-o", "none"]).await.ok();
    let unknown =
        cli.run(&["account", "get-access-token", "--resource", "https://unknown.example"]).await;
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("does not know the resource"), "{}", unknown.stderr);
    assert!(!unknown.stderr.contains("expired"), "{}", unknown.stderr);
    // The sign-in itself is fine.
    cli.run(&["account", "get-access-token", "--resource", "https://ml.azure.com"]).await.ok();
}

/// `mlgate login -u` on a real pseudo-terminal: the password is asked for, typed without
/// echo, and the sign-in works.
#[tokio::test]
async fn login_asks_for_the_password_on_a_terminal() {
    let s = TestServer::start().await;
    let cli = Cli::new(&s);
    let sock = cli.config.0.join("tmux.sock");
    let sock = sock.to_str().unwrap();
    let tmux = |args: &[&str]| {
        let out = std::process::Command::new("tmux")
            .arg("-S")
            .arg(sock)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("tmux is needed (scripts/setup-test-deps.sh): {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let command = format!(
        "env MLGATE_CONFIG_DIR='{}' MLGATE_SERVER='{}' MLGATE_CA_FILE='{}' '{}' login -u {ADMIN} \
         -o tsv --query '[0].user.name'; echo EXIT=$?; sleep 60",
        cli.config.0.display(),
        s.url,
        s.ca_file.display(),
        env!("CARGO_BIN_EXE_mlgate"),
    );
    tmux(&["new-session", "-d", "-s", "login", "-x", "200", "-y", "20", &command]);
    let wait_for = |what: &'static str| {
        let tmux = &tmux;
        async move {
            for _ in 0..200 {
                let pane = tmux(&["capture-pane", "-p", "-t", "login"]);
                if pane.contains(what) {
                    return pane;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("'{what}' never appeared: {}", tmux(&["capture-pane", "-p", "-t", "login"]));
        }
    };
    wait_for("Password:").await;
    tmux(&["send-keys", "-t", "login", "-l", ADMIN_PASSWORD]);
    tmux(&["send-keys", "-t", "login", "Enter"]);
    let pane = wait_for("EXIT=").await;
    tmux(&["kill-server"]);
    assert!(pane.contains("EXIT=0"), "{pane}");
    assert!(pane.contains(ADMIN), "{pane}");
    assert!(!pane.contains(ADMIN_PASSWORD), "the password was echoed: {pane}");
    assert_eq!(cli.run(&["account", "show"]).await.json()["user"]["name"], ADMIN);
}

const SCORE_PY: &str = r#"
import json, os
from helper import double

def init():
    pass

def run(raw_data):
    data = json.loads(raw_data)["data"]
    return {"doubled": [double(x) for x in data], "ignored_file_present": os.path.exists("notes/secret.txt")}
"#;

#[tokio::test]
async fn source_directory_uploads_the_folder_and_the_script_imports_from_it() {
    let s = TestServer::start().await;
    let cli = Cli::new(&s);
    cli.run(&["login", "-u", ADMIN, "-p", ADMIN_PASSWORD, "-o", "none"]).await.ok();
    cli.run(&["group", "create", "-n", "rg"]).await.ok();
    cli.run(&["ml", "workspace", "create", "-w", "src-ws", "-g", "rg"]).await.ok();
    let dir = TempDir::new();
    let d = &dir.0;
    std::fs::create_dir_all(d.join("model")).unwrap();
    std::fs::write(d.join("model/weights.json"), "{}").unwrap();
    std::fs::create_dir_all(d.join("app/src/notes")).unwrap();
    std::fs::write(d.join("app/src/score.py"), SCORE_PY).unwrap();
    std::fs::write(d.join("app/src/helper.py"), "def double(x):\n    return 2 * x\n").unwrap();
    std::fs::write(d.join("app/src/notes/secret.txt"), "not for the server").unwrap();
    std::fs::write(d.join("app/src/.amlignore"), "notes/\n").unwrap();
    std::fs::write(
        d.join("app/ic.json"),
        r#"{"runtime": "python", "sourceDirectory": "src", "entryScript": "score.py"}"#,
    )
    .unwrap();
    let ws = ["-w", "src-ws", "-g", "rg"];
    let reg = cli
        .run_in(d, &[&["ml", "model", "register", "-n", "m", "-p", "model"][..], &ws].concat())
        .await;
    reg.ok();
    let deploy = cli
        .run_in(
            d,
            &[
                &["ml", "model", "deploy", "-n", "src-svc", "-m", "m:1", "--ic", "app/ic.json"][..],
                &ws,
            ]
            .concat(),
        )
        .await;
    let svc = deploy.json();
    assert_eq!(svc["state"], "Healthy", "{}", deploy.stderr);
    assert!(
        deploy.stderr.contains("(3 files)"),
        "score.py, helper.py, .amlignore: {}",
        deploy.stderr
    );
    let files = svc["inferenceConfig"]["sourceFiles"].as_array().unwrap();
    assert!(files.iter().all(|f| !f["path"].as_str().unwrap().starts_with("notes/")));
    let scored = cli
        .run(
            &[
                &["ml", "service", "score", "-n", "src-svc", "--input-data", r#"{"data": [1, 2]}"#]
                    [..],
                &ws,
            ]
            .concat(),
        )
        .await
        .json();
    assert_eq!(scored, json!({"doubled": [2, 4], "ignored_file_present": false}));

    // An entry script outside the source directory is refused before anything is deployed.
    std::fs::write(
        d.join("app/bad.json"),
        r#"{"runtime": "python", "sourceDirectory": "src", "entryScript": "missing.py"}"#,
    )
    .unwrap();
    let bad =
        cli
            .run_in(
                d,
                &[
                    &[
                        "ml",
                        "model",
                        "deploy",
                        "-n",
                        "bad-svc",
                        "-m",
                        "m:1",
                        "--ic",
                        "app/bad.json",
                    ][..],
                    &ws,
                ]
                .concat(),
            )
            .await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("relative to sourceDirectory"), "{}", bad.stderr);
}

#[tokio::test]
async fn the_landing_page_says_what_this_is_and_links_to_devicelogin() {
    let s = TestServer::start().await;
    let resp = s.http().get(format!("{}/", s.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(
        resp.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'")
    );
    let body = resp.text().await.unwrap();
    assert!(body.contains("href=\"/devicelogin\""), "{body}");
    assert!(body.contains("href=\"/console\""), "{body}");
    assert!(body.contains("/.well-known/openid-configuration"), "{body}");
    assert!(body.contains(&s.url), "{body}");
}

/// `mlgate tls trust --no-system` puts the CA in an NSS database (Chromium's), under a name
/// carrying its fingerprint; doing it again changes nothing. `tls show` says what to do.
#[tokio::test]
async fn tls_trust_installs_the_ca_for_browsers() {
    let s = TestServer::start().await;
    let dir = TempDir::new();
    let db = dir.0.join("nssdb");
    let trust = |db: std::path::PathBuf, ca: std::path::PathBuf| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_mlgate"))
            .args(["tls", "trust", "--no-system", "--nss-db"])
            .arg(db)
            .arg("--ca-file")
            .arg(ca)
            .output()
            .await
            .unwrap()
    };
    for _ in 0..2 {
        let out = trust(db.clone(), s.ca_file.clone()).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("installed the CA for Chromium"), "{stdout}");
    }
    let listed = std::process::Command::new("certutil")
        .args(["-L", "-d"])
        .arg(format!("sql:{}", db.display()))
        .output()
        .expect("certutil (libnss3-tools) is needed: scripts/setup-test-deps.sh");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(listed.matches("mlgate-local-ca-").count(), 1, "{listed}");
    assert!(listed.contains("C,,"), "trusted to issue server certificates: {listed}");

    let show = tokio::process::Command::new(env!("CARGO_BIN_EXE_mlgate"))
        .args(["tls", "show", "--data-dir"])
        .arg(s.data_dir())
        .output()
        .await
        .unwrap();
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(show.contains("sudo mlgate tls trust"), "{show}");
    assert!(show.contains(&s.ca_file.display().to_string()), "{show}");
    let missing = tokio::process::Command::new(env!("CARGO_BIN_EXE_mlgate"))
        .args(["tls", "show", "--data-dir"])
        .arg(dir.0.join("nothing"))
        .output()
        .await
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("mlgate serve --data-dir"));
}
