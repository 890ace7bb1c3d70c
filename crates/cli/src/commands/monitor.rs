//! `mlgate monitor activity-log list` (as `az monitor activity-log list`) and the sign-in log's
//! pages (`mlgate ad signin list`).

use anyhow::Result;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::Session;
use crate::cli::{ActivityLogCommand, ClientOpts, MonitorCommand};
use crate::output::{self, Columns, Output};

const ACTIVITY_COLUMNS: Columns = &[
    "Time=eventTimestamp",
    "Operation=operationName.value",
    "Status=status.value",
    "Caller=caller",
    "ResourceGroup=resourceGroupName",
    "Correlation=correlationId",
];

pub const SIGNIN_COLUMNS: Columns = &[
    "Time=createdDateTime",
    "User=userPrincipalName",
    "App=appId",
    "Grant=clientAppUsed",
    "ErrorCode=status.errorCode",
    "Address=ipAddress",
    "Count=signInCount",
];

/// Reads pages until `max` records or the last page.
pub async fn collect(
    s: &Session,
    token: &str,
    first: mlgate_client::LogPage,
    max: usize,
) -> Result<Vec<Value>> {
    let mut page = first;
    let mut all = Vec::new();
    loop {
        all.extend(page.value);
        if all.len() >= max {
            all.truncate(max);
            return Ok(all);
        }
        match page.next_link {
            Some(link) => page = s.client.next_page(token, &link).await?,
            None => return Ok(all),
        }
    }
}

/// `2026-12-01`, `2026-12-01T10:00:00Z` or `2026-12-01T10:00:00+01:00`, as ISO 8601 text.
fn iso(t: &str) -> Result<String> {
    let t = t.trim();
    let parsed = OffsetDateTime::parse(t, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(&format!("{t}Z"), &Rfc3339))
        .or_else(|_| OffsetDateTime::parse(&format!("{t}T00:00:00Z"), &Rfc3339))
        .map_err(|_| super::usage(format!("'{t}' is not an ISO 8601 time")))?;
    Ok(parsed.format(&Rfc3339)?)
}

pub async fn run(c: ClientOpts, cmd: MonitorCommand) -> Result<()> {
    let out = &Output::from(&c.out);
    let mut s = Session::open(&c)?;
    let token = s.api_token().await?;
    let MonitorCommand::ActivityLog(ActivityLogCommand::List {
        resource_group,
        caller,
        start_time,
        end_time,
        max_events,
        subscription,
    }) = cmd;
    let sub = s.subscription(subscription)?;
    let end = match end_time {
        Some(t) => iso(&t)?,
        None => {
            mlgate_core::clock::Clock::now(&mlgate_core::clock::SystemClock).format(&Rfc3339)?
        }
    };
    let start = match start_time {
        Some(t) => iso(&t)?,
        None => (OffsetDateTime::parse(&end, &Rfc3339)? - Duration::days(7)).format(&Rfc3339)?,
    };
    let quote = |v: &str| v.replace('\'', "''");
    let mut filter = format!("eventTimestamp ge '{start}' and eventTimestamp le '{end}'");
    if let Some(g) = resource_group {
        filter.push_str(&format!(" and resourceGroupName eq '{}'", quote(&g)));
    }
    if let Some(who) = caller {
        filter.push_str(&format!(" and caller eq '{}'", quote(&who)));
    }
    let top = max_events.clamp(1, 1000).to_string();
    let first = s.client.activity_log(&token, &sub, &[("$filter", filter), ("$top", top)]).await?;
    let events = collect(&s, &token, first, max_events).await?;
    output::print_table(out, &events, ACTIVITY_COLUMNS)
}
