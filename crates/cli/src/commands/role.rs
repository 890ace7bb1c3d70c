//! `mlgate role assignment|definition|check`.

use anyhow::{Context, Result, bail};
use mlgate_proto::{CheckAccess, CreateRoleAssignment};

use super::{Session, confirm};
use crate::cli::{AssignmentCommand, ClientOpts, DefinitionCommand, RoleCommand};
use crate::output::{self, Columns, Output};

pub const ASSIGNMENT_COLUMNS: Columns = &[
    "Role=roleDefinitionName",
    "Scope=scope|scope",
    "PrincipalId=principalId",
    "PrincipalType=principalType",
    "Name=name",
];
const DEFINITION_COLUMNS: Columns =
    &["Name=Name", "IsCustom=IsCustom", "Description=Description", "Id=Id"];
/// The answer first: allowed or not, and the assignment that decided.
const CHECK_COLUMNS: Columns = &[
    "Allowed=allowed",
    "DecidedBy=decidedBy.roleDefinitionName",
    "AssignedAt=decidedBy.scope|scope",
    "Action=action",
    "Scope=scope|scope",
];

pub async fn run(c: ClientOpts, cmd: RoleCommand) -> Result<()> {
    let out = &Output::from(&c.out);
    let mut s = Session::open(&c)?;
    let token = s.api_token().await?;
    let c = &s.client;
    match cmd {
        RoleCommand::Assignment(AssignmentCommand::Create { assignee, role, scope }) => {
            let req = CreateRoleAssignment { assignee, role, scope };
            output::print_table(
                out,
                &c.create_role_assignment(&token, &req).await?,
                ASSIGNMENT_COLUMNS,
            )
        }
        RoleCommand::Assignment(AssignmentCommand::List { assignee, scope, include_inherited }) => {
            let all = c
                .role_assignments(&token, scope.as_deref(), assignee.as_deref(), include_inherited)
                .await?;
            output::print_table(out, &all, ASSIGNMENT_COLUMNS)
        }
        RoleCommand::Assignment(AssignmentCommand::Delete { ids, assignee, role, scope, yes }) => {
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
            confirm(yes.yes, &format!("{} role assignment(s) will be deleted", ids.len()))?;
            let mut deleted = Vec::new();
            for id in ids {
                deleted.push(c.delete_role_assignment(&token, &id).await?);
            }
            output::print_table(out, &deleted, ASSIGNMENT_COLUMNS)
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
            output::print_table(
                out,
                &c.create_role_definition(&token, &json).await?,
                DEFINITION_COLUMNS,
            )
        }
        RoleCommand::Definition(DefinitionCommand::List { custom_role_only }) => {
            let all: Vec<_> = c
                .role_definitions(&token)
                .await?
                .into_iter()
                .filter(|r| !custom_role_only || r.is_custom == Some(true))
                .collect();
            output::print_table(out, &all, DEFINITION_COLUMNS)
        }
        RoleCommand::Check { assignee, action, scope } => output::print_table(
            out,
            &c.check_access(&token, &CheckAccess { assignee, action, scope }).await?,
            CHECK_COLUMNS,
        ),
    }
}
