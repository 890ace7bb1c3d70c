//! `mlgate group ...` and `mlgate ml workspace ...`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use mlgate_client::models::WorkspaceAddress;
use mlgate_client::workspace::WorkspaceConfig;
use mlgate_proto::CreateRoleAssignment;

use super::{Session, confirm};
use crate::cli::{
    ClientOpts, GroupCommand, MlCommand, ModelCommand, ServiceCommand, WorkspaceArgs,
    WorkspaceCommand,
};
use crate::output::{self, Columns, Output};
use mlgate_client::Client;
use mlgate_proto::{DeployService, Service};

const GROUP_COLUMNS: Columns =
    &["Name=name", "Location=location", "Status=properties.provisioningState"];
const WORKSPACE_COLUMNS: Columns = &[
    "Name=name",
    "ResourceGroup=id|group",
    "Location=location",
    "State=properties.provisioningState",
    "Description=properties.description",
];
const MODEL_COLUMNS: Columns = &[
    "Name=name",
    "Version=version",
    "Files=files|len",
    "Tags=tags|tags",
    "CreatedTime=createdTime",
    "Description=description",
];
const SERVICE_COLUMNS: Columns = &[
    "Name=name",
    "State=state",
    "Model=model",
    "ComputeType=computeType",
    "AuthMode=authMode",
    "ScoringUri=scoringUri",
];

/// The audience of identity tokens for services with `aad_token` auth.
const SCORING_RESOURCE: &str = "https://ml.azure.com";

pub async fn group(c: ClientOpts, cmd: GroupCommand) -> Result<()> {
    let out = &Output::from(&c.out);
    let mut s = Session::open(&c)?;
    let token = s.api_token().await?;
    let c = &s.client;
    match cmd {
        GroupCommand::Create { name, location, sub } => {
            let sub = s.subscription(sub.subscription)?;
            let rg = c.put_resource_group(&token, &sub, &name, location.as_deref()).await?;
            output::print_table(out, &rg, GROUP_COLUMNS)
        }
        GroupCommand::Show { name, sub } => {
            let sub = s.subscription(sub.subscription)?;
            output::print_table(out, &c.resource_group(&token, &sub, &name).await?, GROUP_COLUMNS)
        }
        GroupCommand::List { sub } => {
            let sub = s.subscription(sub.subscription)?;
            output::print_table(out, &c.resource_groups(&token, &sub).await?, GROUP_COLUMNS)
        }
        GroupCommand::Delete { name, yes, sub } => {
            let sub = s.subscription(sub.subscription)?;
            confirm(yes.yes, &format!("The resource group '{name}' will be deleted"))?;
            Ok(c.delete_resource_group(&token, &sub, &name).await?)
        }
    }
}

pub async fn ml(c: ClientOpts, cmd: MlCommand) -> Result<()> {
    let out = &Output::from(&c.out);
    let mut s = Session::open(&c)?;
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
            output::print_table(out, &ws, WORKSPACE_COLUMNS)
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
            output::print_table(out, &ws, WORKSPACE_COLUMNS)
        }
        WorkspaceCommand::List { resource_group, sub } => {
            let sub = s.subscription(sub.subscription)?;
            let all = c.workspaces(&token, &sub, resource_group.as_deref()).await?;
            output::print_table(out, &all, WORKSPACE_COLUMNS)
        }
        WorkspaceCommand::Delete { workspace, resource_group, yes, sub } => {
            let sub = s.subscription(sub.subscription)?;
            confirm(
                yes.yes,
                &format!(
                    "The workspace '{workspace}' will be deleted, with its models and role \
                     assignments"
                ),
            )?;
            Ok(c.delete_workspace(&token, &sub, &resource_group, &workspace).await?)
        }
        WorkspaceCommand::Share { workspace, resource_group, user, role, sub } => {
            let sub = s.subscription(sub.subscription)?;
            // The workspace's own id is the scope (it also proves the workspace exists).
            let ws = c.workspace(&token, &sub, &resource_group, &workspace).await?;
            let req = CreateRoleAssignment { assignee: user, role, scope: ws.id };
            output::print_table(
                out,
                &c.create_role_assignment(&token, &req).await?,
                super::role::ASSIGNMENT_COLUMNS,
            )
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

async fn model(s: &mut Session, token: &str, cmd: ModelCommand, out: &Output) -> Result<()> {
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
            let m =
                c.register_model_from_path(token, &a, &name, &path, &description, tagmap).await?;
            output::print_table(out, &m, MODEL_COLUMNS)
        }
        ModelCommand::List { ws } => {
            let a = address(s, ws)?;
            output::print_table(out, &c.models(token, &a).await?, MODEL_COLUMNS)
        }
        ModelCommand::Show { name, version, ws } => {
            let a = address(s, ws)?;
            output::print_table(out, &c.model(token, &a, &name, version).await?, MODEL_COLUMNS)
        }
        ModelCommand::Download { name, version, target_dir, ws } => {
            let a = address(s, ws)?;
            output::print(out, &c.download_model(token, &a, &name, version, &target_dir).await?)
        }
        ModelCommand::Delete { name, version, yes, ws } => {
            let a = address(s, ws)?;
            confirm(yes.yes, &format!("Version {version} of the model '{name}' will be deleted"))?;
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
                return output::print_table(out, &started, SERVICE_COLUMNS);
            }
            output::print_table(
                out,
                &wait(c, token, &a, &name, "deployment").await?,
                SERVICE_COLUMNS,
            )
        }
    }
}

fn read_json(p: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))
}

/// Reads `--ic`. With `sourceDirectory` (relative to the `--ic` file's folder) the whole folder
/// is uploaded, less what its `.amlignore` (else `.gitignore`) leaves out, and travels as
/// `sourceFiles`; the entry script is a path inside it, as in Azure ML. Without, the entry
/// script alone is uploaded and travels as its digest.
async fn read_inference_config(
    c: &Client,
    token: &str,
    a: &WorkspaceAddress,
    path: &Path,
) -> Result<serde_json::Value> {
    let mut ic = read_json(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let script = ic
        .get("entryScript")
        .or(ic.get("entry_script"))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let source = ic
        .get("sourceDirectory")
        .or(ic.get("source_directory"))
        .and_then(|v| v.as_str())
        .map(|d| base.join(d));
    if let (Some(script), Some(dir)) = (&script, &source)
        && ic.get("sourceFiles").is_none()
    {
        let files = c.upload_source_directory(token, a, dir).await?;
        let wanted = script.trim_start_matches("./");
        if !files.iter().any(|f| f.path == wanted) {
            anyhow::bail!(
                "the entry script '{script}' is not in the source directory {} (entryScript is a \
                 path relative to sourceDirectory; is it left out by an .amlignore?)",
                dir.display()
            );
        }
        eprintln!("uploaded the source directory {} ({} files)", dir.display(), files.len());
        if let Some(obj) = ic.as_object_mut() {
            obj.insert("sourceFiles".into(), serde_json::to_value(&files)?);
        }
    } else if let Some(script) = script
        && ic.get("entryScriptSha256").is_none()
    {
        let script_path = base.join(&script);
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
async fn wait(
    c: &Client,
    token: &str,
    a: &WorkspaceAddress,
    name: &str,
    what: &str,
) -> Result<Service> {
    let done = c
        .wait_for_deployment(token, a, name, std::time::Duration::from_secs(600), |s| {
            eprintln!("{} {what}: {}", s.name, s.state);
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

async fn service(s: &mut Session, token: &str, cmd: ServiceCommand, out: &Output) -> Result<()> {
    let c = &s.client;
    match cmd {
        ServiceCommand::Show { name, ws } => {
            let a = address(s, ws)?;
            output::print_table(out, &c.service(token, &a, &name).await?, SERVICE_COLUMNS)
        }
        ServiceCommand::List { ws } => {
            let a = address(s, ws)?;
            output::print_table(out, &c.services(token, &a).await?, SERVICE_COLUMNS)
        }
        ServiceCommand::Delete { name, yes, ws } => {
            let a = address(s, ws)?;
            confirm(
                yes.yes,
                &format!("The web service '{name}' will be deleted and stop scoring"),
            )?;
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
                return output::print_table(out, &updated, SERVICE_COLUMNS);
            }
            output::print_table(out, &wait(c, token, &a, &name, "update").await?, SERVICE_COLUMNS)
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
