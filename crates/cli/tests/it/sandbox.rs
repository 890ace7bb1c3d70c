//! Issue 9's critical finding, as a test: a principal with only AzureML Data Scientist on one
//! workspace deploys a `score.py` whose `init()` goes after the server's secrets. Confined,
//! every attempt fails and the service still scores; the same script run unconfined (the
//! operator's explicit opt-out) succeeds, which shows the attempts are real.

use std::path::Path;
use std::time::Duration;

use mlgate_client::models::WorkspaceAddress;
use mlgate_proto::{CreateRoleAssignment, DeployService};
use serde_json::{Value, json};

use crate::support::*;

/// Tries what an attacker would, in `init()`, and reports each outcome from `run()`.
const ATTACK_PY: &str = r#"
import json, os

results = {}

def attempt(name, fn):
    try:
        fn()
        results[name] = "ALLOWED"
    except Exception as e:
        results[name] = "denied: " + type(e).__name__

def write(path):
    with open(path, "w") as f:
        f.write("pwned")

def init():
    model_dir = os.environ["AZUREML_MODEL_DIR"]
    # {data}/services/{svc}/{model}-{v}/model
    data = os.path.abspath(os.path.join(model_dir, "..", "..", "..", ".."))
    attempt("read master.key", lambda: open(os.path.join(data, "master.key")).read())
    attempt("read the database", lambda: open(os.path.join(data, "mlgate.db"), "rb").read(16))
    attempt("read the CA key", lambda: open(os.path.join(data, "tls", "ca-key.pem")).read())
    attempt("list the data dir", lambda: os.listdir(data))
    attempt("read another service's model", lambda: open(os.environ["VICTIM_FILE"]).read())
    attempt("read the server's environment", lambda: open("/proc/%d/environ" % os.getppid(), "rb").read())
    attempt("read the server's memory map", lambda: open("/proc/%d/maps" % os.getppid()).read())
    attempt("write into the data dir", lambda: write(os.path.join(data, "pwned")))
    attempt("write into its own model dir", lambda: write(os.path.join(model_dir, "pwned")))
    attempt("signal the server", lambda: os.kill(os.getppid(), 0))
    # Positive controls: what a scoring script needs still works.
    results["own model"] = open(os.path.join(model_dir, "coef.json")).read()
    write(os.path.join(os.environ["TMPDIR"], "scratch.txt"))
    results["scratch"] = open(os.path.join(os.environ["TMPDIR"], "scratch.txt")).read()
    results["env"] = sorted(os.environ)
    results["declared"] = os.environ.get("GREETING")
    results["cwd"] = os.getcwd()
    results["data"] = data
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            pass  # the listing's own descriptor, closed by now
    results["fds"] = fds
    status = open("/proc/self/status").read()
    results["CapEff"] = [l.split()[1] for l in status.splitlines() if l.startswith("CapEff")][0]
    results["CapBnd"] = [l.split()[1] for l in status.splitlines() if l.startswith("CapBnd")][0]

def run(raw):
    return {"results": results, "sum": sum(json.loads(raw)["data"])}
"#;

const VICTIM_PY: &str = r#"
def init():
    pass

def run(raw):
    return "victim"
"#;

struct Fixture {
    s: TestServer,
    ws: WorkspaceAddress,
    token: String,
}

/// A workspace, and a service principal that is only AzureML Data Scientist on it.
async fn fixture(adjust: impl FnOnce(&mut mlgate_server::ServerConfig)) -> Fixture {
    // SQLite in the data directory, so "read the database" is a file the script could try.
    let s = TestServer::start_with(TempDir::new(), |c| {
        sqlite_in_data_dir(c);
        adjust(c);
    })
    .await;
    let admin = s.admin_token().await;
    let c = s.client();
    let sub = c.subscriptions(&admin).await.unwrap()[0].subscription_id.clone();
    c.put_resource_group(&admin, &sub, "sbx", None).await.unwrap();
    let ws_id = c.put_workspace(&admin, &sub, "sbx", "sbx-ws", None).await.unwrap().id;
    let sp = s.create_sp("data-scientist").await;
    c.create_role_assignment(
        &admin,
        &CreateRoleAssignment {
            assignee: sp.app_id.clone(),
            role: "AzureML Data Scientist".into(),
            scope: ws_id,
        },
    )
    .await
    .unwrap();
    let token = c
        .client_credentials(&s.tenant_id, &sp.app_id, &sp.password, ARM_SCOPE)
        .await
        .unwrap()
        .access_token;
    let ws = WorkspaceAddress {
        subscription_id: sub,
        resource_group: "sbx".into(),
        workspace: "sbx-ws".into(),
    };
    Fixture { s, ws, token }
}

impl Fixture {
    /// Registers a model holding `file_name` and deploys `script` over it; returns the final
    /// service.
    async fn deploy(
        &self,
        name: &str,
        file_name: &str,
        script: &str,
        env: Value,
    ) -> mlgate_proto::Service {
        let c = self.s.client();
        let dir = TempDir::new();
        std::fs::write(dir.0.join(file_name), r#"{"coef": [1.0]}"#).unwrap();
        c.register_model_from_path(&self.token, &self.ws, name, &dir.0, "", Default::default())
            .await
            .unwrap();
        let sha = c.upload_blob(&self.token, &self.ws, script.as_bytes().to_vec()).await.unwrap();
        let req = DeployService {
            model: format!("{name}:1"),
            inference_config: json!({
                "runtime": "python", "entryScript": "score.py", "entryScriptSha256": sha,
                "environmentVariables": env,
            }),
            deployment_config: json!({"computeType": "instance", "memory_gb": 1}),
        };
        c.deploy(&self.token, &self.ws, name, &req).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let svc = c.service(&self.token, &self.ws, name).await.unwrap();
            if svc.state != "Transitioning" || tokio::time::Instant::now() > deadline {
                return svc;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn attack(&self) -> Value {
        let victim = self.deploy("victim", "secret.json", VICTIM_PY, json!({})).await;
        assert_eq!(victim.state, "Healthy", "{victim:?}");
        let victim_file = self.s.data_dir().join("services/victim/victim-1/model/secret.json");
        assert!(victim_file.exists(), "the victim's file is where the attacker looks");
        let env = json!({"VICTIM_FILE": victim_file.display().to_string(), "GREETING": "hello"});
        let svc = self.deploy("attacker", "coef.json", ATTACK_PY, env).await;
        assert_eq!(svc.state, "Healthy", "{svc:?}");
        let c = self.s.client();
        let answer = c.score(&svc.scoring_uri, &json!({"data": [1, 2, 3]})).await.unwrap();
        assert_eq!(answer["sum"], 6, "the service still scores: {answer}");
        answer["results"].clone()
    }
}

const ATTACKS: &[&str] = &[
    "read master.key",
    "read the database",
    "read the CA key",
    "list the data dir",
    "read another service's model",
    "read the server's environment",
    "read the server's memory map",
    "write into the data dir",
    "write into its own model dir",
    "signal the server",
];

#[tokio::test]
async fn a_data_scientists_entry_script_cannot_reach_the_servers_secrets() {
    let f = fixture(|_| {}).await;
    let r = f.attack().await;
    for a in ATTACKS {
        assert!(r[a].as_str().unwrap().starts_with("denied"), "{a}: {}", r[a]);
    }
    // What a scoring script legitimately needs still works.
    assert_eq!(r["own model"], r#"{"coef": [1.0]}"#);
    assert_eq!(r["scratch"], "pwned");
    assert_eq!(r["declared"], "hello", "variables the deployment declares reach the script");
    // The environment is exactly the contract's: nothing of the server's.
    let allowed = [
        "AZUREML_MODEL_DIR",
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "PYTHONDONTWRITEBYTECODE",
        "VIRTUAL_ENV",
        "VICTIM_FILE",
        "GREETING",
    ];
    for k in r["env"].as_array().unwrap() {
        assert!(allowed.contains(&k.as_str().unwrap()), "the worker saw {k}");
    }
    let data = r["data"].as_str().unwrap();
    assert!(Path::new(data).join("master.key").exists(), "the attack aimed at the real data dir");
    assert!(!r["cwd"].as_str().unwrap().starts_with(data), "cwd {} is in the data dir", r["cwd"]);
    // No descriptor leads into the data directory (only pipes and the listing itself).
    for (fd, target) in r["fds"].as_object().unwrap() {
        let t = target.as_str().unwrap();
        assert!(
            ["0", "1", "2"].contains(&fd.as_str())
                || t.starts_with("pipe:")
                || t.starts_with("/proc/"),
            "fd {fd} -> {t} was inherited"
        );
        assert!(!t.starts_with(data), "fd {fd} -> {t}");
    }
    assert_eq!(r["CapEff"], "0000000000000000", "no capabilities");
    assert_eq!(r["CapBnd"], "0000000000000000", "none to regain by exec");
    assert!(!f.s.data_dir().join("pwned").exists());
}

#[tokio::test]
async fn without_confinement_entry_scripts_do_not_run_unless_the_operator_opts_out() {
    // No launcher (as on a kernel without Landlock): the deployment fails, saying why.
    let f = fixture(|c| c.sandbox_launcher = None).await;
    let svc = f.deploy("attacker", "coef.json", ATTACK_PY, json!({})).await;
    assert_eq!(svc.state, "Failed");
    let err = svc.error.unwrap_or_default();
    assert!(err.contains("run only confined"), "{err}");
    assert!(err.contains("--allow-unconfined-entry-scripts"), "{err}");
    // ONNX models run in process and need no confinement.

    // With the operator's explicit opt-out the same attack succeeds: the test above would
    // notice a sandbox that stopped working.
    let f = fixture(|c| {
        c.sandbox_launcher = None;
        c.allow_unconfined_entry_scripts = true;
    })
    .await;
    let r = f.attack().await;
    assert_eq!(r["read master.key"], "ALLOWED", "{r}");
    assert_eq!(r["read another service's model"], "ALLOWED", "{r}");
    // The environment is cleared even then.
    assert!(r["env"].as_array().unwrap().iter().all(|k| k != "CARGO_MANIFEST_DIR"));
}

/// A server that is not root (the systemd unit's `mlgate` user) cannot shrink the capability
/// bounding set; the launcher must still confine, not fail. Run as nobody through `setpriv`
/// (needs root to switch users; skipped, loudly, elsewhere).
#[test]
fn the_launcher_confines_when_the_server_is_not_root() {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("SKIPPED: needs root and /usr/bin/setpriv to run the launcher as nobody");
        return;
    }
    let dir = std::env::temp_dir().join(format!("mlgate-nonroot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("mlgate");
    std::fs::copy(env!("CARGO_BIN_EXE_mlgate"), &exe).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args(["sandbox-exec", "--read", "/usr", "--read", "/lib", "--read", "/lib64"])
        .args(["--read", "/bin", "--workdir"])
        .arg(&dir)
        .args(["--", "/bin/sh", "-c", "id -u; cat /etc/hostname && echo READ; true"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("65534"), "{stdout}");
    assert!(!stdout.contains("READ"), "outside the policy was readable: {stdout}");
    // The control: the same command unconfined reads the file, so the denial is the sandbox's.
    let control = std::process::Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sh", "-c"])
        .arg("cat /etc/hostname && echo READ")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&control.stdout).contains("READ"));
    std::fs::remove_dir_all(&dir).ok();
}
