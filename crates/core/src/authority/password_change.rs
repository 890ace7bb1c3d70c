//! A user changing their own password: the current password is the proof (checked like any
//! sign-in, with the same lock-out and the same bounded pool), so it needs no token, and a user
//! whose password must change (AADSTS50055) can do it. Afterwards the forced change is cleared
//! and the user's refresh tokens are revoked.

use std::net::IpAddr;

use super::{Aadsts, Authority, GrantError, OAuthErrorKind};
use crate::error::Error;
use crate::records::User;

impl Authority {
    /// Changes `username`'s password; the tenant is the one whose domain the name carries.
    pub async fn change_password(
        &self,
        username: &str,
        current: &str,
        new: &str,
        source: IpAddr,
    ) -> Result<User, GrantError> {
        let domain = username.trim().rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        let tenant = self.directory.resolve_tenant(domain).ok_or_else(|| {
            GrantError::new(
                OAuthErrorKind::InvalidGrant,
                Aadsts::InvalidCredentials,
                "Error validating credentials due to invalid username or password.",
            )
        })?;
        if current == new {
            return Err(GrantError::invalid_request(
                "The new password must differ from the current one.",
            ));
        }
        crate::users::validate_password(new)
            .map_err(|e| GrantError::invalid_request(e.to_string()))?;
        let user = self.check_password(&tenant, username, current, source).await?;
        // The activity record of this request (if any) names the user as its caller.
        crate::activity::set_user(&user);
        self.directory.set_own_password(user.clone(), new).await.map_err(|e| match e {
            Error::InvalidInput(m) => GrantError::invalid_request(m),
            other => other.into(),
        })?;
        Ok(user)
    }
}
