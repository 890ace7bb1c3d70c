//! Resource groups and workspaces, over the ARM-shaped API.

use mlgate_proto::{Page, PutResource, ResourceGroup, Workspace, WorkspacePutProperties};
use reqwest::Method;

use crate::{Client, Result, enc};

const API_VERSION: &str = "2024-04-01";

fn rg_path(sub: &str, rg: &str) -> String {
    mlgate_proto::arm::resource_group_id(&enc(sub), &enc(rg))
}

fn ws_path(sub: &str, rg: &str, name: &str) -> String {
    mlgate_proto::arm::workspace_id(&enc(sub), &enc(rg), &enc(name))
}

impl Client {
    /// Follows `nextLink`s until the listing ends.
    async fn all_pages<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        first: String,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut url = Some(format!("{}{first}?api-version={API_VERSION}", self.base_url()));
        while let Some(u) = url {
            let page: Page<T> = self.send(self.http.get(u).bearer_auth(token)).await?;
            out.extend(page.value);
            url = page.next_link;
        }
        Ok(out)
    }

    pub async fn put_resource_group(
        &self,
        token: &str,
        sub: &str,
        rg: &str,
        location: Option<&str>,
    ) -> Result<ResourceGroup> {
        let body = PutResource { location: location.map(str::to_string), properties: None };
        self.send(self.api(Method::PUT, &rg_path(sub, rg), token).json(&body)).await
    }

    pub async fn resource_group(&self, token: &str, sub: &str, rg: &str) -> Result<ResourceGroup> {
        self.send(self.api(Method::GET, &rg_path(sub, rg), token)).await
    }

    pub async fn resource_groups(&self, token: &str, sub: &str) -> Result<Vec<ResourceGroup>> {
        self.all_pages(token, format!("/subscriptions/{}/resourceGroups", enc(sub))).await
    }

    pub async fn delete_resource_group(&self, token: &str, sub: &str, rg: &str) -> Result<()> {
        self.send_empty(self.api(Method::DELETE, &rg_path(sub, rg), token)).await
    }

    pub async fn put_workspace(
        &self,
        token: &str,
        sub: &str,
        rg: &str,
        name: &str,
        description: Option<&str>,
    ) -> Result<Workspace> {
        let body = PutResource {
            location: None,
            properties: Some(WorkspacePutProperties {
                description: description.map(str::to_string),
                friendly_name: Some(name.to_string()),
            }),
        };
        self.send(self.api(Method::PUT, &ws_path(sub, rg, name), token).json(&body)).await
    }

    pub async fn workspace(
        &self,
        token: &str,
        sub: &str,
        rg: &str,
        name: &str,
    ) -> Result<Workspace> {
        self.send(self.api(Method::GET, &ws_path(sub, rg, name), token)).await
    }

    /// Workspaces of a resource group, or of the whole subscription.
    pub async fn workspaces(
        &self,
        token: &str,
        sub: &str,
        rg: Option<&str>,
    ) -> Result<Vec<Workspace>> {
        let path = match rg {
            Some(rg) => format!(
                "{}/providers/Microsoft.MachineLearningServices/workspaces",
                rg_path(sub, rg)
            ),
            None => format!(
                "/subscriptions/{}/providers/Microsoft.MachineLearningServices/workspaces",
                enc(sub)
            ),
        };
        self.all_pages(token, path).await
    }

    pub async fn delete_workspace(
        &self,
        token: &str,
        sub: &str,
        rg: &str,
        name: &str,
    ) -> Result<()> {
        self.send_empty(self.api(Method::DELETE, &ws_path(sub, rg, name), token)).await
    }
}
