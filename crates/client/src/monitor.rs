//! The user lifecycle beyond create/list, and the activity and sign-in logs.

use mlgate_proto::{ChangePassword, UpdateUser, User};
use reqwest::Method;
use serde_json::Value;

use crate::{Client, Result, enc};

/// One page of a log: its records (Azure's JSON) and the link to the next page.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LogPage {
    pub value: Vec<Value>,
    #[serde(default, alias = "@odata.nextLink", rename = "nextLink")]
    pub next_link: Option<String>,
}

impl Client {
    pub async fn user(&self, token: &str, id: &str) -> Result<User> {
        let path = format!("/api/v1/users/{}", enc(id));
        self.send(self.api(Method::GET, &path, token)).await
    }

    pub async fn update_user(&self, token: &str, id: &str, req: &UpdateUser) -> Result<User> {
        let path = format!("/api/v1/users/{}", enc(id));
        self.send(self.api(Method::PATCH, &path, token).json(req)).await
    }

    pub async fn delete_user(&self, token: &str, id: &str) -> Result<()> {
        let path = format!("/api/v1/users/{}", enc(id));
        self.send_empty(self.api(Method::DELETE, &path, token)).await
    }

    /// Needs no token: the current password is the proof.
    pub async fn change_password(&self, req: &ChangePassword) -> Result<()> {
        let url = format!("{}/api/v1/changePassword", self.base);
        self.send_empty(self.http.post(url).json(req)).await
    }

    /// A page of the activity log of `subscription`; `query` holds `$filter` and friends.
    pub async fn activity_log(
        &self,
        token: &str,
        subscription: &str,
        query: &[(&str, String)],
    ) -> Result<LogPage> {
        let path = format!(
            "/subscriptions/{}/providers/Microsoft.Insights/eventtypes/management/values",
            enc(subscription)
        );
        let mut q = vec![("api-version", "2015-04-01".to_string())];
        q.extend(query.iter().cloned());
        self.send(self.api(Method::GET, &path, token).query(&q)).await
    }

    /// A page of the sign-in log (`user`, `app`, `failuresOnly`, `$top`).
    pub async fn sign_ins(&self, token: &str, query: &[(&str, String)]) -> Result<LogPage> {
        self.send(self.api(Method::GET, "/api/v1/signIns", token).query(query)).await
    }

    /// Follows a `nextLink` the server gave (on this server only).
    pub async fn next_page(&self, token: &str, link: &str) -> Result<LogPage> {
        let path = link.strip_prefix(&self.base).ok_or_else(|| {
            crate::ClientError::Config("the next page is on another server".into())
        })?;
        self.send(self.api(Method::GET, path, token)).await
    }
}
