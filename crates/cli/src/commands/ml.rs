//! `mlgate group ...` and `mlgate ml workspace ...`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mlgate_client::models::WorkspaceAddress;
use mlgate_client::workspace::WorkspaceConfig;
use mlgate_proto::CreateRoleAssignment;

use super::Session;
use crate::cli::{
    GroupCommand, MlCommand, ModelCommand, OutputFormat, ServiceCommand, WorkspaceArgs,
    WorkspaceCommand,
};
use crate::output;
use mlgate_client::Client;
use mlgate_proto::{DeployService, Service};

/// The audience of identity tokens for services with `aad_token` auth.
const SCORING_RESOURCE: &str = "https://ml.azure.com";

pub async fn group(
    server: Option<String>,
    ca: Option<PathBuf>,
    cmd: GroupCommand,
    out: OutputFormat,
) -> Result<()> {
    let mut s = Session::open(server, ca)?;
    let token = s.api_token().await?;
    let c = &s.client;
    match cmd {
        GroupCommand::Create { name, location, sub } => {
            let sub = s.subscription(sub.subscription)?;
            output::print(
                out,
                &c.put_resource_group(&token, &sub, &name, location.as_deref()).await?,
            )
        }
        GroupCommand::Show { name, sub } => {
            let sub = s.subscription(sub.subscription)?;
            output::print(out, &c.resource_group(&token, &sub, &name).await?)
        }
        GroupCommand::List { sub } => {
            let sub = s.subscription(sub.subscription)?;
            output::print(out, &c.resource_groups(&token, &sub).await?)
        }
        GroupCommand::Delete { name, sub } => {
            let sub = s.subscription(sub.subscription)?;
            Ok(c.delete_resource_group(&token, &sub, &name).await?)
        }
    }
}

pub async fn ml(
    server: Option<String>,
    ca: Option<PathBuf>,
    cmd: MlCommand,
    out: OutputFormat,
) -> Result<()> {
    let mut s = Session::open(server, ca)?;
    let token = s.api_token().await?;
    let c = &s.client;
    let cmd = match cmd {
        MlCommand::Workspace(cmd) => cmd,
        MlCommand::Model(cmd) => return model(&mut s, &token, cmd, out).await,
        MlCommand::Service(cmd) => return service(&mut s, &token, cmd, out).await,
    };
    match cmd {
        WorkspaceCommand::Create { workspace, resource_group, description, sub } => {
            let sub = s.subscription(sub.subscription)?;
            let ws = c
                .put_workspace(&token, &sub, &resource_group, &workspace, description.as_deref())
                .await?;
            output::print(out, &ws)
        }
        WorkspaceCommand::Show { workspace, resource_group, write_config, sub } => {
            let sub = s.subscription(sub.subscription)?;
            let ws = c.workspace(&token, &sub, &resource_group, &workspace).await?;
            if let Some(dir) = write_config {
                let cfg = WorkspaceConfig {
                    subscription_id: sub.clone(),
                    resource_group: ws.id.split('/').nth(4).unwrap_or(&resource_group).to_string(),
                    workspace_name: ws.name.clone(),
                    server: Some(c.base_url().to_string()),
                };
                let path = if dir.extension().is_some_and(|e| e == "json") {
                    dir
                } else {
                    dir.join("config.json")
                };
                std::fs::write(&path, serde_json::to_string_pretty(&cfg)? + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            output::print(out, &ws)
        }
        WorkspaceCommand::List { resource_group, sub } => {
            let sub = s.subscription(sub.subscription)?;
            output::print(out, &c.workspaces(&token, &sub, resource_group.as_deref()).await?)
        }
        WorkspaceCommand::Delete { workspace, resource_group, sub } => {
            let sub = s.subscription(sub.subscription)?;
            Ok(c.delete_workspace(&token, &sub, &resource_group, &workspace).await?)
        }
        WorkspaceCommand::Share { workspace, resource_group, user, role, sub } => {
            let sub = s.subscription(sub.subscription)?;
            // The workspace's own id is the scope (it also proves the workspace exists).
            let ws = c.workspace(&token, &sub, &resource_group, &workspace).await?;
            let req = CreateRoleAssignment { assignee: user, role, scope: ws.id };
            output::print(out, &c.create_role_assignment(&token, &req).await?)
        }
    }
}

/// The workspace named by the flags, or else by the nearest `config.json`.
fn address(s: &Session, args: WorkspaceArgs) -> Result<WorkspaceAddress> {
    if let (Some(w), Some(g)) = (&args.workspace, &args.resource_group) {
        return Ok(WorkspaceAddress {
            subscription_id: s.subscription(args.sub.subscription)?,
            resource_group: g.clone(),
            workspace: w.clone(),
        });
    }
    let here = std::env::current_dir()?;
    let path = mlgate_client::workspace::find_config(&here).context(
        "give -w and -g, or run where a config.json (mlgate ml workspace show --write-config) is",
    )?;
    let cfg: WorkspaceConfig = serde_json::from_str(&std::fs::read_to_string(&path)?)
        .with_context(|| format!("{} is not a workspace config", path.display()))?;
    Ok(WorkspaceAddress {
        subscription_id: args.sub.subscription.unwrap_or(cfg.subscription_id),
        resource_group: args.resource_group.unwrap_or(cfg.resource_group),
        workspace: args.workspace.unwrap_or(cfg.workspace_name),
    })
}

async fn model(s: &mut Session, token: &str, cmd: ModelCommand, out: OutputFormat) -> Result<()> {
    let c = &s.client;
    match cmd {
        ModelCommand::Register { name, path, tags, description, ws } => {
            let mut tagmap = BTreeMap::new();
            for t in tags {
                let (k, v) =
                    t.split_once('=').with_context(|| format!("the tag '{t}' is not key=value"))?;
                tagmap.insert(k.to_string(), v.to_string());
            }
            let a = address(s, ws)?;
            output::print(
                out,
                &c.register_model_from_path(token, &a, &name, &path, &description, tagmap).await?,
            )
        }
        ModelCommand::List { ws } => {
            let a = address(s, ws)?;
            output::print(out, &c.models(token, &a).await?)
        }
        ModelCommand::Show { name, version, ws } => {
            let a = address(s, ws)?;
            output::print(out, &c.model(token, &a, &name, version).await?)
        }
        ModelCommand::Download { name, version, target_dir, ws } => {
            let a = address(s, ws)?;
            output::print(out, &c.download_model(token, &a, &name, version, &target_dir).await?)
        }
        ModelCommand::Delete { name, version, ws } => {
            let a = address(s, ws)?;
            Ok(c.delete_model(token, &a, &name, version).await?)
        }
        ModelCommand::Deploy { name, model, inference_config, deployment_config, no_wait, ws } => {
            let a = address(s, ws)?;
            let req = DeployService {
                model,
                inference_config: read_inference_config(c, token, &a, &inference_config).await?,
                deployment_config: match deployment_config {
                    Some(p) => read_json(&p)?,
                    None => serde_json::json!({}),
                },
            };
            let started = c.deploy(token, &a, &name, &req).await?;
            if no_wait {
                return output::print(out, &started);
            }
            output::print(out, &wait(c, token, &a, &name).await?)
        }
    }
}

fn read_json(p: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))
}

/// Reads `--ic`; an entry script named in it is uploaded and travels as its digest.
async fn read_inference_config(
    c: &Client,
    token: &str,
    a: &WorkspaceAddress,
    path: &Path,
) -> Result<serde_json::Value> {
    let mut ic = read_json(path)?;
    if let Some(script) = ic
        .get("entryScript")
        .or(ic.get("entry_script"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        && ic.get("entryScriptSha256").is_none()
    {
        let base = path.parent().unwrap_or(Path::new("."));
        let source = ic
            .get("sourceDirectory")
            .and_then(|v| v.as_str())
            .map(|d| base.join(d))
            .unwrap_or(base.to_path_buf());
        let script_path = source.join(&script);
        let bytes = std::fs::read(&script_path)
            .with_context(|| format!("reading the entry script {}", script_path.display()))?;
        let sha = c.upload_blob(token, a, bytes).await?;
        if let Some(obj) = ic.as_object_mut() {
            obj.insert("entryScriptSha256".into(), sha.into());
        }
    }
    // A requirements file travels as its list of requirements.
    if let Some(obj) = ic.as_object_mut()
        && let Some(file) = obj.remove("requirementsFile").or(obj.remove("requirements_file"))
    {
        let file = file.as_str().context("requirementsFile must be a path")?;
        let base = path.parent().unwrap_or(Path::new("."));
        let text = std::fs::read_to_string(base.join(file))
            .with_context(|| format!("reading the requirements file {file}"))?;
        let reqs: Vec<serde_json::Value> = text
            .lines()
            .map(|l| l.split(" #").next().unwrap_or_default().trim())
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.into())
            .collect();
        obj.insert("requirements".into(), reqs.into());
    }
    Ok(ic)
}

/// Waits for a deployment with progress on stderr, as `wait_for_deployment(show_output=True)`
/// prints it; anything but Healthy is an error with the reason and the logs.
async fn wait(c: &Client, token: &str, a: &WorkspaceAddress, name: &str) -> Result<Service> {
    let done = c
        .wait_for_deployment(token, a, name, std::time::Duration::from_secs(600), |s| {
            eprintln!("{} service creation operation: {}", s.name, s.state);
        })
        .await?;
    if done.state != "Healthy" {
        let logs = c.service_logs(token, a, name).await.unwrap_or_default();
        anyhow::bail!(
            "the deployment ended {}: {}\n{}",
            done.state,
            done.error.unwrap_or_default(),
            logs.join("\n")
        );
    }
    Ok(done)
}

async fn service(
    s: &mut Session,
    token: &str,
    cmd: ServiceCommand,
    out: OutputFormat,
) -> Result<()> {
    let c = &s.client;
    match cmd {
        ServiceCommand::Show { name, ws } => {
            let a = address(s, ws)?;
            output::print(out, &c.service(token, &a, &name).await?)
        }
        ServiceCommand::List { ws } => {
            let a = address(s, ws)?;
            output::print(out, &c.services(token, &a).await?)
        }
        ServiceCommand::Delete { name, ws } => {
            let a = address(s, ws)?;
            Ok(c.delete_service(token, &a, &name).await?)
        }
        ServiceCommand::Score { name, input_data, ws } => {
            let text = match input_data.strip_prefix('@') {
                Some(path) => {
                    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
                }
                None => input_data,
            };
            let body: serde_json::Value =
                serde_json::from_str(&text).context("--input-data is not JSON")?;
            let a = address(s, ws)?;
            let svc = c.service(token, &a, &name).await?;
            let uri = &svc.scoring_uri;
            let answer = match svc.auth_mode.as_str() {
                "key" => {
                    let keys = c.service_keys(token, &a, &name).await?;
                    c.score_with(uri, &keys.primary_key, &body).await?
                }
                "token" => {
                    let t = c.service_token(token, &a, &name).await?;
                    c.score_with(uri, &t.access_token, &body).await?
                }
                "aad_token" => {
                    let (t, _) = s.token(SCORING_RESOURCE).await?;
                    s.client.score_with(uri, &t, &body).await?
                }
                _ => c.score(uri, &body).await?,
            };
            output::print(out, &answer)
        }
        ServiceCommand::Update {
            name,
            model,
            inference_config,
            deployment_config,
            auth_enabled,
            token_auth_enabled,
            no_wait,
            ws,
        } => {
            let a = address(s, ws)?;
            let current = c.service(token, &a, &name).await?;
            let mut dc = match deployment_config {
                Some(p) => read_json(&p)?,
                None => current.deployment_config,
            };
            if let Some(obj) = dc.as_object_mut() {
                for (flag, names) in [
                    (auth_enabled, ["auth_enabled", "authEnabled"]),
                    (token_auth_enabled, ["token_auth_enabled", "tokenAuthEnabled"]),
                ] {
                    if let Some(on) = flag {
                        for n in names {
                            obj.remove(n);
                        }
                        obj.remove("auth_mode");
                        obj.remove("authMode");
                        obj.insert(names[0].into(), on.into());
                    }
                }
            }
            let req = DeployService {
                model: model.unwrap_or(current.model),
                inference_config: match inference_config {
                    Some(p) => read_inference_config(c, token, &a, &p).await?,
                    None => current.inference_config,
                },
                deployment_config: dc,
            };
            let updated = c.deploy(token, &a, &name, &req).await?;
            if no_wait || updated.state == "Healthy" {
                return output::print(out, &updated);
            }
            output::print(out, &wait(c, token, &a, &name).await?)
        }
        ServiceCommand::GetKeys { name, ws } => {
            let a = address(s, ws)?;
            output::print(out, &c.service_keys(token, &a, &name).await?)
        }
        ServiceCommand::RegenKey { name, key, ws } => {
            let a = address(s, ws)?;
            output::print(out, &c.regenerate_service_key(token, &a, &name, &key).await?)
        }
        ServiceCommand::GetToken { name, ws } => {
            let a = address(s, ws)?;
            output::print(out, &c.service_token(token, &a, &name).await?)
        }
        ServiceCommand::GetLogs { name, ws } => {
            let a = address(s, ws)?;
            for line in c.service_logs(token, &a, &name).await? {
                println!("{line}");
            }
            Ok(())
        }
    }
}
