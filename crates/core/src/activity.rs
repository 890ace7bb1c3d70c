//! The activity log (Azure's Activity Log): one record per management write and per
//! security-relevant read (listing keys, getting a scoring token), with who, what, where, when
//! and how it ended. Denied attempts are recorded too. Never a secret: a record holds names,
//! ids, an operation name, a scope and an error code, nothing from a request's body.
//!
//! **In the same transaction.** The server opens an activity [`scope`] around each management
//! request and fills in the caller once the bearer token is verified. The store's write paths
//! ask [`for_commit`] as they commit a write transaction: while the request's record is
//! pending, it is inserted in that transaction, and [`committed`] marks it done, so the change
//! and its record commit together or not at all. Whatever the request did not record that way
//! (a denial, a failure that rolled back, a read such as `listKeys`) the server writes on its
//! own once the response is known. Outside a scope (background tasks, the CLI's offline
//! commands) nothing is pending and the store writes as before.

use std::future::Future;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::TenantId;
use crate::principal::{Principal, PrincipalKind};

/// How an operation ended, in Azure's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityStatus {
    Succeeded,
    Failed,
}

impl ActivityStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Succeeded" => Some(Self::Succeeded),
            "Failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event of the activity log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRecord {
    /// Azure's `eventDataId`.
    pub id: Uuid,
    pub at: OffsetDateTime,
    pub tenant_id: Option<TenantId>,
    /// The subscription the scope lies in (none for directory operations).
    pub subscription_id: Option<String>,
    /// The resource group the scope lies in, as written in the scope.
    pub resource_group: Option<String>,
    /// The caller's object id.
    pub caller_id: Option<String>,
    /// `User`, `ServicePrincipal` or `System` (the offline recovery).
    pub caller_type: String,
    /// Azure's `caller`: a user's principal name, an application's id.
    pub caller: String,
    pub caller_display_name: String,
    /// e.g. `Microsoft.Authorization/roleAssignments/write`.
    pub operation: String,
    /// The resource id the operation acted on.
    pub scope: String,
    /// The HTTP method (`httpRequest.method`).
    pub method: String,
    pub status: ActivityStatus,
    /// Azure's `subStatus`: `Forbidden`, `Conflict`, `NotFound`, `BadRequest`, ... (failures).
    pub sub_status: Option<String>,
    /// The stable error code the caller was answered (failures).
    pub error_code: Option<String>,
    pub correlation_id: String,
    pub client_address: Option<String>,
}

impl ActivityRecord {
    /// Sets the resource id, and the subscription and resource group it lies in.
    pub fn set_scope(&mut self, scope: &str) {
        self.scope = scope.to_string();
        let seg: Vec<&str> = scope.split('/').collect();
        let at = |i: usize, w: &str| seg.get(i).is_some_and(|s| s.eq_ignore_ascii_case(w));
        self.subscription_id = at(1, "subscriptions")
            .then(|| seg.get(2).filter(|s| !s.is_empty()).map(|s| s.to_ascii_lowercase()))
            .flatten();
        self.resource_group = (self.subscription_id.is_some() && at(3, "resourceGroups"))
            .then(|| seg.get(4).filter(|s| !s.is_empty()).map(|s| s.to_string()))
            .flatten();
    }

    /// Fills in who is calling.
    pub fn set_caller(&mut self, p: &Principal) {
        self.tenant_id = Some(p.tenant_id);
        self.caller_id = Some(p.object_id.to_string());
        self.caller_display_name = p.display_name.clone();
        match &p.kind {
            PrincipalKind::User { user_principal_name } => {
                self.caller_type = "User".into();
                self.caller = user_principal_name.clone();
            }
            PrincipalKind::ServicePrincipal { app_id } => {
                self.caller_type = "ServicePrincipal".into();
                self.caller = app_id.clone();
            }
        }
    }
}

/// What a query of the log asks for; times are inclusive, newest first.
#[derive(Debug, Clone)]
pub struct ActivityQuery {
    pub tenant_id: TenantId,
    /// Records of this subscription, plus the tenant's records outside any subscription.
    pub subscription_id: Option<String>,
    /// Compared case-insensitively.
    pub resource_group: Option<String>,
    /// A caller's principal name, application id or object id (case-insensitive).
    pub caller: Option<String>,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    /// Keyset: only records strictly older than this `(at, id)`.
    pub before: Option<(OffsetDateTime, Uuid)>,
    pub limit: u32,
}

/// The request's record while it is in flight.
#[derive(Debug)]
pub struct Pending {
    pub record: ActivityRecord,
    /// Set once the caller is authenticated; a record without a caller is never written.
    pub caller_known: bool,
    /// Set once the record has been written (in a write transaction, or on its own).
    pub recorded: bool,
}

tokio::task_local! {
    static CURRENT: Arc<Mutex<Pending>>;
}

/// Runs `f` with `pending` as the request's record; returns its output and the record's
/// final state.
pub async fn scope<F: Future>(pending: Pending, f: F) -> (F::Output, Pending) {
    let cell = Arc::new(Mutex::new(pending));
    let out = CURRENT.scope(cell.clone(), f).await;
    let pending = match Arc::try_unwrap(cell) {
        Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
        // A task spawned inside the scope still holds it: copy what it says now.
        Err(arc) => {
            let g = arc.lock().unwrap_or_else(|p| p.into_inner());
            Pending { record: g.record.clone(), caller_known: g.caller_known, recorded: g.recorded }
        }
    };
    (out, pending)
}

fn with<R>(f: impl FnOnce(&mut Pending) -> R) -> Option<R> {
    CURRENT.try_with(|cell| f(&mut cell.lock().unwrap_or_else(|p| p.into_inner()))).ok()
}

/// The caller is authenticated (the server's bearer extractor calls this).
pub fn set_caller(p: &Principal) {
    with(|pending| {
        pending.record.set_caller(p);
        pending.caller_known = true;
    });
}

/// A user proved who they are without a token (changing their own password): they are the
/// caller, and their user object the scope.
pub fn set_user(user: &crate::records::User) {
    with(|pending| {
        let r = &mut pending.record;
        r.tenant_id = Some(user.tenant_id);
        r.caller_id = Some(user.object_id.to_string());
        r.caller_type = "User".into();
        r.caller = user.user_principal_name.clone();
        r.caller_display_name = user.display_name.clone();
        r.set_scope(&format!("/users/{}", user.object_id));
        pending.caller_known = true;
    });
}

/// A handler that knows better than the path names the operation and scope itself (a scope
/// sent in the body, a password reset among user updates).
pub fn set_operation(operation: &str, scope: Option<&str>) {
    with(|pending| {
        pending.record.operation = operation.to_string();
        if let Some(s) = scope {
            pending.record.set_scope(s);
        }
    });
}

/// The record to insert in the write transaction being committed, if the current request
/// has one pending.
pub fn for_commit() -> Option<ActivityRecord> {
    with(|p| (p.caller_known && !p.recorded).then(|| p.record.clone())).flatten()
}

/// The write transaction that carried [`for_commit`]'s record committed.
pub fn committed() {
    with(|p| p.recorded = true);
}

/// Azure's `subStatus` for an HTTP status.
pub fn sub_status(http: u16) -> &'static str {
    match http {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "NoContent",
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        413 => "RequestEntityTooLarge",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        _ if http >= 500 => "InternalServerError",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> Pending {
        Pending {
            record: ActivityRecord {
                id: Uuid::new_v4(),
                at: OffsetDateTime::UNIX_EPOCH,
                tenant_id: None,
                subscription_id: None,
                resource_group: None,
                caller_id: None,
                caller_type: String::new(),
                caller: String::new(),
                caller_display_name: String::new(),
                operation: "X/write".into(),
                scope: "/x".into(),
                method: "PUT".into(),
                status: ActivityStatus::Succeeded,
                sub_status: None,
                error_code: None,
                correlation_id: "c".into(),
                client_address: None,
            },
            caller_known: false,
            recorded: false,
        }
    }

    #[tokio::test]
    async fn a_record_is_offered_once_and_only_with_a_caller() {
        assert!(for_commit().is_none(), "nothing outside a scope");
        let ((), done) = scope(pending(), async {
            assert!(for_commit().is_none(), "no caller yet");
            with(|p| p.caller_known = true);
            assert!(for_commit().is_some());
            committed();
            assert!(for_commit().is_none(), "recorded once");
        })
        .await;
        assert!(done.recorded);
    }
}
