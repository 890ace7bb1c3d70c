//! Role assignments, role definitions and access checks.

use mlgate_proto::{
    CheckAccess, CheckAccessResult, CreateRoleAssignment, Page, RoleAssignment, RoleDefinitionFile,
};
use reqwest::Method;

use crate::{Client, Result, enc};

impl Client {
    pub async fn create_role_assignment(
        &self,
        token: &str,
        req: &CreateRoleAssignment,
    ) -> Result<RoleAssignment> {
        self.send(self.api(Method::POST, "/api/v1/roleAssignments", token).json(req)).await
    }

    pub async fn role_assignments(
        &self,
        token: &str,
        scope: Option<&str>,
        assignee: Option<&str>,
        include_inherited: bool,
    ) -> Result<Vec<RoleAssignment>> {
        let mut q: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = scope {
            q.push(("scope", s));
        }
        if let Some(a) = assignee {
            q.push(("assignee", a));
        }
        if include_inherited {
            q.push(("includeInherited", "true"));
        }
        let page: Page<RoleAssignment> =
            self.send(self.api(Method::GET, "/api/v1/roleAssignments", token).query(&q)).await?;
        Ok(page.value)
    }

    pub async fn delete_role_assignment(&self, token: &str, id: &str) -> Result<RoleAssignment> {
        // Accept a full ARM id as well as the bare GUID.
        let id = id.rsplit('/').next().unwrap_or(id);
        self.send(self.api(Method::DELETE, &format!("/api/v1/roleAssignments/{}", enc(id)), token))
            .await
    }

    /// Sends a role definition file as it is: the server validates Azure's JSON.
    pub async fn create_role_definition(
        &self,
        token: &str,
        definition: &serde_json::Value,
    ) -> Result<RoleDefinitionFile> {
        self.send(self.api(Method::POST, "/api/v1/roleDefinitions", token).json(definition)).await
    }

    pub async fn role_definitions(&self, token: &str) -> Result<Vec<RoleDefinitionFile>> {
        let page: Page<RoleDefinitionFile> =
            self.send(self.api(Method::GET, "/api/v1/roleDefinitions", token)).await?;
        Ok(page.value)
    }

    pub async fn check_access(&self, token: &str, req: &CheckAccess) -> Result<CheckAccessResult> {
        self.send(self.api(Method::POST, "/api/v1/authorization/check", token).json(req)).await
    }
}
