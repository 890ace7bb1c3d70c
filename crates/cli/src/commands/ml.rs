//! `mlgate group ...` and `mlgate ml workspace ...`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use mlgate_client::workspace::WorkspaceConfig;
use mlgate_proto::CreateRoleAssignment;

use super::Session;
use crate::cli::{GroupCommand, MlCommand, OutputFormat, WorkspaceCommand};
use crate::output;

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
    let MlCommand::Workspace(cmd) = cmd;
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
