//! `mlgate role assignment|definition|check`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use mlgate_proto::{CheckAccess, CreateRoleAssignment};

use super::Session;
use crate::cli::{AssignmentCommand, DefinitionCommand, OutputFormat, RoleCommand};
use crate::output;

pub async fn run(
    server: Option<String>,
    ca: Option<PathBuf>,
    cmd: RoleCommand,
    out: OutputFormat,
) -> Result<()> {
    let mut s = Session::open(server, ca)?;
    let token = s.api_token().await?;
    let c = &s.client;
    match cmd {
        RoleCommand::Assignment(AssignmentCommand::Create { assignee, role, scope }) => {
            let req = CreateRoleAssignment { assignee, role, scope };
            output::print(out, &c.create_role_assignment(&token, &req).await?)
        }
        RoleCommand::Assignment(AssignmentCommand::List { assignee, scope, include_inherited }) => {
            let all = c
                .role_assignments(&token, scope.as_deref(), assignee.as_deref(), include_inherited)
                .await?;
            output::print(out, &all)
        }
        RoleCommand::Assignment(AssignmentCommand::Delete { ids, assignee, role, scope }) => {
            let ids = if !ids.is_empty() {
                ids
            } else {
                let (Some(assignee), Some(role)) = (assignee, role) else {
                    bail!("give --ids, or --assignee and --role (and optionally --scope)");
                };
                let found: Vec<String> = c
                    .role_assignments(&token, scope.as_deref(), Some(&assignee), false)
                    .await?
                    .into_iter()
                    .filter(|a| {
                        a.role_definition_name.eq_ignore_ascii_case(&role)
                            || a.role_definition_id.ends_with(&role)
                    })
                    .filter(|a| {
                        scope
                            .as_ref()
                            .is_none_or(|s| a.scope.eq_ignore_ascii_case(s.trim_end_matches('/')))
                    })
                    .map(|a| a.name)
                    .collect();
                if found.is_empty() {
                    bail!("no matching role assignment");
                }
                found
            };
            let mut deleted = Vec::new();
            for id in ids {
                deleted.push(c.delete_role_assignment(&token, &id).await?);
            }
            output::print(out, &deleted)
        }
        RoleCommand::Definition(DefinitionCommand::Create { role_definition }) => {
            let text = if role_definition.trim_start().starts_with('{') {
                role_definition
            } else {
                std::fs::read_to_string(&role_definition)
                    .with_context(|| format!("reading {role_definition}"))?
            };
            let json: serde_json::Value =
                serde_json::from_str(&text).context("the role definition is not valid JSON")?;
            output::print(out, &c.create_role_definition(&token, &json).await?)
        }
        RoleCommand::Definition(DefinitionCommand::List { custom_role_only }) => {
            let all: Vec<_> = c
                .role_definitions(&token)
                .await?
                .into_iter()
                .filter(|r| !custom_role_only || r.is_custom == Some(true))
                .collect();
            output::print(out, &all)
        }
        RoleCommand::Check { assignee, action, scope } => output::print(
            out,
            &c.check_access(&token, &CheckAccess { assignee, action, scope }).await?,
        ),
    }
}
