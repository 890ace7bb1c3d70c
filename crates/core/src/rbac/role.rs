//! Role definitions: Azure's JSON on the way in and out, compiled patterns inside, and the
//! built-in roles with Azure's ids and actions.

pub use mlgate_proto::RoleDefinitionFile;

use super::action::{Action, ActionPattern};
use super::scope::Scope;
use crate::ids::{RoleDefinitionId, TenantId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDefinition {
    pub id: RoleDefinitionId,
    pub name: String,
    pub is_custom: bool,
    pub description: String,
    pub actions: Vec<ActionPattern>,
    pub not_actions: Vec<ActionPattern>,
    pub data_actions: Vec<ActionPattern>,
    pub not_data_actions: Vec<ActionPattern>,
    pub assignable_scopes: Vec<Scope>,
    /// The tenant a custom role belongs to; `None` for built-ins.
    pub tenant: Option<TenantId>,
}

fn compile(list: &[String]) -> Result<Vec<ActionPattern>, String> {
    list.iter().map(|p| ActionPattern::new(p)).collect()
}

impl RoleDefinition {
    /// Validates and compiles a custom role from its file. Scope membership (that the
    /// assignable scopes are the caller's) is checked by the use case.
    pub fn custom(
        file: &RoleDefinitionFile,
        id: RoleDefinitionId,
        tenant: TenantId,
    ) -> Result<Self, String> {
        let name = file.name.trim();
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err("'Name' must be 1 to 128 printable characters".into());
        }
        if file.is_custom == Some(false) {
            return Err("'IsCustom' must be true: built-in roles cannot be created".into());
        }
        if file.actions.is_empty() && file.data_actions.is_empty() {
            return Err("a role needs at least one entry in 'Actions' or 'DataActions'".into());
        }
        if file.assignable_scopes.is_empty() {
            return Err("'AssignableScopes' must name at least one scope".into());
        }
        let assignable_scopes = file
            .assignable_scopes
            .iter()
            .map(|s| Scope::parse(s).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        if assignable_scopes.iter().any(Scope::is_root) {
            return Err("a custom role cannot be assignable at the root scope '/'".into());
        }
        Ok(Self {
            id,
            name: name.to_string(),
            is_custom: true,
            description: file.description.trim().to_string(),
            actions: compile(&file.actions)?,
            not_actions: compile(&file.not_actions)?,
            data_actions: compile(&file.data_actions)?,
            not_data_actions: compile(&file.not_data_actions)?,
            assignable_scopes,
            tenant: Some(tenant),
        })
    }

    /// Effective permission: some `Actions` entry matches and no `NotActions` entry does.
    /// (`NotActions` subtracts; it is not a deny: another assignment may still grant.)
    pub fn permits(&self, action: &Action) -> bool {
        self.actions.iter().any(|p| p.matches(action))
            && !self.not_actions.iter().any(|p| p.matches(action))
    }

    pub fn permits_data(&self, action: &Action) -> bool {
        self.data_actions.iter().any(|p| p.matches(action))
            && !self.not_data_actions.iter().any(|p| p.matches(action))
    }

    /// May this role be assigned at `scope`?
    pub fn assignable_at(&self, scope: &Scope) -> bool {
        self.assignable_scopes.iter().any(|a| scope.is_within(a))
    }

    pub fn to_file(&self) -> RoleDefinitionFile {
        let strs = |v: &[ActionPattern]| v.iter().map(|p| p.as_str().to_string()).collect();
        RoleDefinitionFile {
            name: self.name.clone(),
            id: Some(self.id.to_string()),
            is_custom: Some(self.is_custom),
            description: self.description.clone(),
            actions: strs(&self.actions),
            not_actions: strs(&self.not_actions),
            data_actions: strs(&self.data_actions),
            not_data_actions: strs(&self.not_data_actions),
            assignable_scopes: self
                .assignable_scopes
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
        }
    }
}

pub const OWNER_ID: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
pub const CONTRIBUTOR_ID: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
pub const READER_ID: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
pub const DATA_SCIENTIST_ID: &str = "f6c7c914-8db3-469d-8ca1-694a8f32e121";

fn builtin(
    id: &str,
    name: &str,
    description: &str,
    actions: &[&str],
    not_actions: &[&str],
) -> RoleDefinition {
    let pats = |v: &[&str]| v.iter().filter_map(|p| ActionPattern::new(p).ok()).collect();
    RoleDefinition {
        id: id.parse().unwrap_or(RoleDefinitionId(uuid::Uuid::nil())),
        name: name.into(),
        is_custom: false,
        description: description.into(),
        actions: pats(actions),
        not_actions: pats(not_actions),
        data_actions: Vec::new(),
        not_data_actions: Vec::new(),
        assignable_scopes: vec![Scope::root()],
        tenant: None,
    }
}

/// Azure's built-in roles, with Azure's ids and (for the scope of mlgate) Azure's actions.
pub fn builtin_roles() -> Vec<RoleDefinition> {
    vec![
        builtin(
            OWNER_ID,
            "Owner",
            "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
            &["*"],
            &[],
        ),
        builtin(
            CONTRIBUTOR_ID,
            "Contributor",
            "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC.",
            &["*"],
            &[
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
                "Microsoft.Blueprint/blueprintAssignments/write",
                "Microsoft.Blueprint/blueprintAssignments/delete",
                "Microsoft.Compute/galleries/share/action",
                "Microsoft.Purview/consents/write",
                "Microsoft.Purview/consents/delete",
            ],
        ),
        builtin(
            READER_ID,
            "Reader",
            "View all resources, but does not allow you to make any changes.",
            &["*/read"],
            &[],
        ),
        builtin(
            DATA_SCIENTIST_ID,
            "AzureML Data Scientist",
            "Can perform all actions within an Azure Machine Learning workspace, except for creating or deleting compute resources and modifying the workspace itself.",
            &[
                "Microsoft.MachineLearningServices/workspaces/*/read",
                "Microsoft.MachineLearningServices/workspaces/*/action",
                "Microsoft.MachineLearningServices/workspaces/*/delete",
                "Microsoft.MachineLearningServices/workspaces/*/write",
            ],
            &[
                "Microsoft.MachineLearningServices/workspaces/delete",
                "Microsoft.MachineLearningServices/workspaces/write",
                "Microsoft.MachineLearningServices/workspaces/computes/*/write",
                "Microsoft.MachineLearningServices/workspaces/computes/*/delete",
                "Microsoft.MachineLearningServices/workspaces/computes/listKeys/action",
                "Microsoft.MachineLearningServices/workspaces/listKeys/action",
                "Microsoft.MachineLearningServices/workspaces/hubs/write",
                "Microsoft.MachineLearningServices/workspaces/hubs/delete",
                "Microsoft.MachineLearningServices/workspaces/featurestores/write",
                "Microsoft.MachineLearningServices/workspaces/featurestores/delete",
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_json_is_accepted_verbatim_and_validated() {
        let json = r#"{
            "Name": "Model Reader",
            "IsCustom": true,
            "Description": "Reads models.",
            "Actions": ["Microsoft.MachineLearningServices/workspaces/models/read"],
            "NotActions": [],
            "DataActions": [],
            "NotDataActions": [],
            "AssignableScopes": ["/subscriptions/6f1a2b3c-0000-4000-8000-00000000000a"]
        }"#;
        let file: RoleDefinitionFile = serde_json::from_str(json).unwrap();
        let role =
            RoleDefinition::custom(&file, RoleDefinitionId::new_random(), TenantId::new_random())
                .unwrap();
        let read = Action::new("Microsoft.MachineLearningServices/workspaces/models/read").unwrap();
        let write =
            Action::new("Microsoft.MachineLearningServices/workspaces/models/write").unwrap();
        assert!(role.permits(&read) && !role.permits(&write));

        let mut bad = file.clone();
        bad.assignable_scopes = vec!["/".into()];
        assert!(
            RoleDefinition::custom(&bad, RoleDefinitionId::new_random(), TenantId::new_random())
                .is_err()
        );
        let mut bad = file.clone();
        bad.actions = vec!["not an action".into()];
        assert!(
            RoleDefinition::custom(&bad, RoleDefinitionId::new_random(), TenantId::new_random())
                .is_err()
        );
    }

    #[test]
    fn builtin_effective_permissions() {
        let roles = builtin_roles();
        let by = |n: &str| roles.iter().find(|r| r.name == n).unwrap();
        let a = |s: &str| Action::new(s).unwrap();
        let ra_write = a("Microsoft.Authorization/roleAssignments/write");
        let ws_write = a("Microsoft.MachineLearningServices/workspaces/write");
        let ws_read = a("Microsoft.MachineLearningServices/workspaces/read");
        let model_write = a("Microsoft.MachineLearningServices/workspaces/models/write");
        assert!(by("Owner").permits(&ra_write));
        assert!(!by("Contributor").permits(&ra_write));
        assert!(by("Contributor").permits(&ws_write));
        assert!(by("Reader").permits(&ws_read) && !by("Reader").permits(&ws_write));
        let ds = by("AzureML Data Scientist");
        assert!(ds.permits(&model_write));
        assert!(ds.permits(&ws_read));
        assert!(!ds.permits(&ws_write), "NotActions removes workspace write");
        assert!(!ds.permits(&a("Microsoft.MachineLearningServices/workspaces/listKeys/action")));
    }
}
