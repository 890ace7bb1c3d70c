//! Web-service tokens: short-lived JWTs a workspace issues for one scoring URI.

use time::Duration;

use super::Authority;
use crate::error::Error;
use crate::ids::WorkspaceId;
use crate::principal::Principal;
use crate::tokens::{SERVICE_TOKEN_VERSION, ServiceTokenClaims, TokenError, verify_service_token};

impl Authority {
    /// The issuer of a workspace's web-service tokens.
    pub fn workspace_issuer(&self, workspace: WorkspaceId) -> String {
        format!("{}/workspaces/{workspace}", self.cfg.public_url)
    }

    /// Signs a web-service token: `audience` is the service's scoring URI.
    pub fn issue_service_token(
        &self,
        caller: &Principal,
        workspace: WorkspaceId,
        audience: &str,
        lifetime: Duration,
    ) -> Result<(String, ServiceTokenClaims), Error> {
        let iat = self.clock.now().unix_timestamp();
        let claims = ServiceTokenClaims {
            iss: self.workspace_issuer(workspace),
            aud: audience.to_string(),
            sub: caller.object_id.to_string(),
            tid: caller.tenant_id.to_string(),
            ws: workspace.to_string(),
            iat,
            nbf: iat,
            exp: iat + lifetime.whole_seconds(),
            ver: SERVICE_TOKEN_VERSION.into(),
        };
        let token = self
            .keys
            .current()
            .signer
            .sign_jwt(&claims)
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok((token, claims))
    }

    /// Verifies a web-service token, from memory.
    pub fn verify_service_token(
        &self,
        token: &str,
        workspace: WorkspaceId,
        audience: &str,
    ) -> Result<ServiceTokenClaims, TokenError> {
        let keys = self.keys.current();
        let issuer = self.workspace_issuer(workspace);
        let claims = verify_service_token(token, &keys, audience, &issuer, self.clock.now())?;
        if claims.ws != workspace.to_string() {
            return Err(TokenError::Issuer);
        }
        Ok(claims)
    }
}
