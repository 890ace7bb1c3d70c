//! The authenticated caller of the API, built from a verified access token.

use crate::ids::{ObjectId, TenantId};
use crate::tokens::AccessClaims;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    User { user_principal_name: String },
    ServicePrincipal { app_id: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub object_id: ObjectId,
    pub tenant_id: TenantId,
    pub kind: PrincipalKind,
    pub display_name: String,
    pub claims: AccessClaims,
}

impl Principal {
    /// `None` when the claims do not name a well-formed object and tenant.
    pub fn from_claims(claims: AccessClaims) -> Option<Self> {
        let object_id = claims.oid.parse().ok()?;
        let tenant_id = claims.tid.parse().ok()?;
        let kind = if claims.idtyp == "app" {
            PrincipalKind::ServicePrincipal { app_id: claims.client_app_id().to_string() }
        } else {
            let upn = claims
                .upn
                .clone()
                .or_else(|| claims.preferred_username.clone())
                .unwrap_or_default();
            PrincipalKind::User { user_principal_name: upn }
        };
        let display_name =
            claims.name.clone().or_else(|| claims.app_displayname.clone()).unwrap_or_default();
        Some(Self { object_id, tenant_id, kind, display_name, claims })
    }

    pub fn is_user(&self) -> bool {
        matches!(self.kind, PrincipalKind::User { .. })
    }
}
