//! Reading the activity and sign-in logs (`az monitor activity-log list`, Graph's
//! `auditLogs/signIns`): who may, and over what.
//!
//! - The activity log is read per subscription, as Azure's is, and needs
//!   `Microsoft.Insights/eventtypes/values/read` there (Reader and above have it through
//!   `*/read`); a filter on one resource group needs it on that group only. The subscription's
//!   view also holds its tenant's records outside any subscription (directory operations:
//!   users, service principals, applications), which Azure keeps in a separate audit log.
//! - The sign-in log is the tenant's, for directory administrators (Azure: Reports Reader and
//!   up).

use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::access::Access;
use crate::activity::{ActivityQuery, ActivityRecord};
use crate::clock::Clock;
use crate::directory::Directory;
use crate::error::Error;
use crate::ids::SubscriptionId;
use crate::principal::Principal;
use crate::rbac::catalog::ACTIVITY_LOG_READ;
use crate::rbac::scope::Scope;
use crate::signins::{SignInQuery, SignInRecord};

/// Records per page at most (a `nextLink` carries on).
pub const MAX_PAGE: u32 = 1000;
/// Records per page unless the caller asks for fewer.
pub const DEFAULT_PAGE: u32 = 200;
/// How far back a query may reach (Azure: 90 days).
pub const MAX_SPAN: Duration = Duration::days(90);

/// What a caller asks of the activity log of one subscription.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    pub start: Option<OffsetDateTime>,
    pub end: Option<OffsetDateTime>,
    pub resource_group: Option<String>,
    pub caller: Option<String>,
    pub before: Option<(OffsetDateTime, Uuid)>,
    pub top: Option<u32>,
}

pub struct Monitor {
    directory: Arc<Directory>,
    access: Arc<Access>,
    clock: Arc<dyn Clock>,
}

impl Monitor {
    pub fn new(directory: Arc<Directory>, access: Arc<Access>, clock: Arc<dyn Clock>) -> Self {
        Self { directory, access, clock }
    }

    /// One page of a subscription's activity log, newest first. The page is full when more
    /// may follow.
    pub async fn activity(
        &self,
        caller: &Principal,
        subscription: &str,
        filter: ActivityFilter,
    ) -> Result<(Vec<ActivityRecord>, u32), Error> {
        let not_found = || {
            Error::NotFound(format!(
                "The subscription '{}' could not be found.",
                subscription.chars().take(64).collect::<String>()
            ))
        };
        let sub: SubscriptionId = subscription.parse().map_err(|_| not_found())?;
        let scope = match &filter.resource_group {
            Some(rg) => Scope::parse(&format!("/subscriptions/{sub}/resourceGroups/{rg}"))
                .map_err(|e| Error::InvalidInput(e.to_string()))?,
            None => Scope::subscription(sub),
        };
        self.access.authorize(caller, ACTIVITY_LOG_READ, &scope)?;
        match self.directory.store().subscription(sub).await? {
            Some(s) if s.tenant_id == caller.tenant_id => {}
            _ => return Err(not_found()),
        }
        let now = self.clock.now();
        let end = filter.end.unwrap_or(now);
        let start = filter.start.unwrap_or(end - MAX_SPAN);
        if start > end {
            return Err(Error::InvalidInput("the start time is after the end time".into()));
        }
        if end - start > MAX_SPAN {
            return Err(Error::InvalidInput(
                "the time range must not exceed 90 days ('eventTimestamp ge' ... 'le')".into(),
            ));
        }
        let limit = filter.top.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        let query = ActivityQuery {
            tenant_id: caller.tenant_id,
            subscription_id: Some(sub.to_string()),
            resource_group: filter.resource_group,
            caller: filter.caller,
            start,
            end,
            before: filter.before,
            limit,
        };
        Ok((self.directory.store().activity(&query).await?, limit))
    }

    /// The caller's tenant's sign-ins, newest first: directory administrators only.
    pub async fn sign_ins(
        &self,
        caller: &Principal,
        mut query: SignInQuery,
    ) -> Result<Vec<SignInRecord>, Error> {
        self.directory.ensure_admin(caller).await?;
        query.tenant_id = Some(caller.tenant_id);
        query.limit = query.limit.clamp(1, MAX_PAGE);
        Ok(self.directory.store().sign_ins(&query).await?)
    }
}
