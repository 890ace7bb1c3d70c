//! Web services: deploy a registered model, watch its state, read its logs, score it.

use std::time::Duration;

use mlgate_proto::{DeployService, Page, RegenerateKey, Service, ServiceKeys, ServiceToken};
use reqwest::Method;

use crate::models::WorkspaceAddress;
use crate::{Client, ClientError, Result, enc};

fn path(ws: &WorkspaceAddress, name: Option<&str>) -> String {
    let base = mlgate_proto::arm::workspace_child_id(
        &enc(&ws.subscription_id),
        &enc(&ws.resource_group),
        &enc(&ws.workspace),
        "services",
    );
    match name {
        Some(n) => format!("{base}/{}", enc(n)),
        None => base,
    }
}

impl Client {
    /// `Model.deploy(...)`: answers at once with state Transitioning.
    pub async fn deploy(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
        req: &DeployService,
    ) -> Result<Service> {
        self.send(self.api(Method::PUT, &path(ws, Some(name)), token).json(req)).await
    }

    pub async fn service(&self, token: &str, ws: &WorkspaceAddress, name: &str) -> Result<Service> {
        self.send(self.api(Method::GET, &path(ws, Some(name)), token)).await
    }

    pub async fn services(&self, token: &str, ws: &WorkspaceAddress) -> Result<Vec<Service>> {
        let page: Page<Service> = self.send(self.api(Method::GET, &path(ws, None), token)).await?;
        Ok(page.value)
    }

    pub async fn delete_service(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
    ) -> Result<()> {
        self.send_empty(self.api(Method::DELETE, &path(ws, Some(name)), token)).await
    }

    /// `Webservice.get_logs()`.
    pub async fn service_logs(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
    ) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Logs {
            logs: Vec<String>,
        }
        let l: Logs = self
            .send(self.api(Method::GET, &format!("{}/logs", path(ws, Some(name))), token))
            .await?;
        Ok(l.logs)
    }

    /// `Webservice.wait_for_deployment(show_output)`: polls until Healthy or Failed; with
    /// `progress`, reports each state change.
    pub async fn wait_for_deployment(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
        timeout: Duration,
        mut progress: impl FnMut(&Service),
    ) -> Result<Service> {
        let deadline = std::time::Instant::now() + timeout;
        let mut last = String::new();
        loop {
            let s = self.service(token, ws, name).await?;
            if s.state != last {
                progress(&s);
                last = s.state.clone();
            }
            if s.state == "Healthy" || s.state == "Failed" || s.state == "Unhealthy" {
                return Ok(s);
            }
            if std::time::Instant::now() >= deadline {
                return Err(ClientError::Config(format!(
                    "'{name}' is still {} after {timeout:?}",
                    s.state
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `Webservice.get_keys()` (needs `listKeys/action`: Contributor or above).
    pub async fn service_keys(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
    ) -> Result<ServiceKeys> {
        let p = format!("{}/listKeys", path(ws, Some(name)));
        self.send(self.api(Method::POST, &p, token)).await
    }

    /// `Webservice.regen_key("Primary" | "Secondary")`: answers the keys now in force.
    pub async fn regenerate_service_key(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
        key_type: &str,
    ) -> Result<ServiceKeys> {
        let p = format!("{}/regenerateKeys", path(ws, Some(name)));
        let body = RegenerateKey { key_type: key_type.to_string() };
        self.send(self.api(Method::POST, &p, token).json(&body)).await
    }

    /// `Webservice.get_token()` (Reader is enough).
    pub async fn service_token(
        &self,
        token: &str,
        ws: &WorkspaceAddress,
        name: &str,
    ) -> Result<ServiceToken> {
        let p = format!("{}/token", path(ws, Some(name)));
        self.send(self.api(Method::POST, &p, token)).await
    }

    /// Posts a scoring request to a service's `scoring_uri`, with no credential.
    pub async fn score(
        &self,
        scoring_uri: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        self.send(self.http.post(scoring_uri).json(body)).await
    }

    /// Posts a scoring request with `Authorization: Bearer <key or token>`.
    pub async fn score_with(
        &self,
        scoring_uri: &str,
        credential: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        self.send(self.http.post(scoring_uri).bearer_auth(credential).json(body)).await
    }
}
