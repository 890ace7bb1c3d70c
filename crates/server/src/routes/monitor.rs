//! Reading the logs, in Azure's shapes:
//! - `GET /subscriptions/{sub}/providers/Microsoft.Insights/eventtypes/management/values
//!   ?api-version=2015-04-01&$filter=eventTimestamp ge '...' and eventTimestamp le '...'
//!   [and resourceGroupName eq '...'] [and caller eq '...']`: the activity log as `az monitor
//!   activity-log list` reads it (`value[]` of EventData, `nextLink` with `$skipToken`);
//! - `GET /v1.0/auditLogs/signIns` (Graph, through `graph.rs`) and `GET /api/v1/signIns`: the
//!   sign-in log, Graph's signIn shape, `$top`, `$filter` on `userPrincipalName`, `appId` and
//!   `status/errorCode ne 0`, plus mlgate's `user`, `app`, `failuresOnly` query parameters.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use mlgate_core::activity::{ActivityRecord, ActivityStatus};
use mlgate_core::monitor::ActivityFilter;
use mlgate_core::principal::Principal;
use mlgate_core::signins::{SignInQuery, SignInRecord};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// `{sub}/providers/Microsoft.Insights/eventtypes/management/values` (any case).
pub fn activity_target(rest: &str) -> Option<&str> {
    let seg: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let words = ["providers", "microsoft.insights", "eventtypes", "management", "values"];
    (seg.len() == 6 && seg[1..].iter().zip(words).all(|(s, w)| s.eq_ignore_ascii_case(w)))
        .then_some(seg[0])
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::BadRequest(m.into())
}

fn parse_time(v: &str) -> Result<OffsetDateTime, ApiError> {
    let v = v.trim();
    OffsetDateTime::parse(v, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(&format!("{v}Z"), &Rfc3339))
        .map_err(|_| {
            bad(format!("'{}' is not an ISO 8601 time", v.chars().take(40).collect::<String>()))
        })
}

/// One `field op 'value'` clause of an OData `$filter` joined by `and`.
fn clauses(filter: &str) -> Result<Vec<(String, String, String)>, ApiError> {
    let mut out = Vec::new();
    let mut rest = filter.trim();
    while !rest.is_empty() {
        let (field, after) =
            rest.split_once(char::is_whitespace).ok_or_else(|| bad("bad $filter"))?;
        let after = after.trim_start();
        let (op, after) =
            after.split_once(char::is_whitespace).ok_or_else(|| bad("bad $filter"))?;
        let after = after.trim_start();
        let body = after.strip_prefix('\'').ok_or_else(|| bad("$filter values are quoted"))?;
        // '' is a quote inside the value.
        let mut value = String::new();
        let mut chars = body.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                    chars.next();
                    value.push('\'');
                    continue;
                }
                end = Some(i + 1);
                break;
            }
            value.push(c);
        }
        let end = end.ok_or_else(|| bad("an unterminated value in $filter"))?;
        out.push((field.to_ascii_lowercase(), op.to_ascii_lowercase(), value));
        rest = body[end..].trim_start();
        if let Some(r) = rest.strip_prefix("and ").or_else(|| rest.strip_prefix("AND ")) {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(bad("$filter clauses are joined by 'and'"));
        }
        if out.len() > 8 {
            return Err(bad("too many $filter clauses"));
        }
    }
    Ok(out)
}

fn skip_token(token: &str) -> Result<(OffsetDateTime, Uuid), ApiError> {
    let (at, id) = token.split_once('_').ok_or_else(|| bad("bad $skipToken"))?;
    let at = at.parse::<i64>().ok().and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok());
    match (at, Uuid::parse_str(id)) {
        (Some(at), Ok(id)) => Ok((at, id)),
        _ => Err(bad("bad $skipToken")),
    }
}

fn next_link(
    state: &AppState,
    path: &str,
    query: &HashMap<String, String>,
    token: String,
) -> String {
    let mut params: Vec<(&String, &String)> =
        query.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("$skipToken")).collect();
    params.sort();
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    q.append_pair("$skipToken", &token);
    format!("{}{path}?{}", state.public_url, q.finish())
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn localized(v: &str) -> Value {
    json!({"value": v, "localizedValue": v})
}

/// Azure's EventData.
fn event_json(r: &ActivityRecord) -> Value {
    let failed = r.status == ActivityStatus::Failed;
    let provider = r.operation.split('/').next().unwrap_or_default();
    let resource_type = r.operation.rsplit_once('/').map_or("", |(t, _)| t);
    let resource_type = resource_type
        .strip_suffix("/action")
        .map_or(resource_type, |t| t.rsplit_once('/').map_or(t, |(ty, _)| ty));
    let mut claims = serde_json::Map::new();
    if let Some(id) = &r.caller_id {
        claims.insert(
            "http://schemas.microsoft.com/identity/claims/objectidentifier".into(),
            id.clone().into(),
        );
    }
    claims.insert("name".into(), r.caller_display_name.clone().into());
    let idtyp = if r.caller_type == "ServicePrincipal" { "app" } else { "user" };
    claims.insert("idtyp".into(), idtyp.into());
    let mut properties = json!({
        "callerType": r.caller_type,
        "callerDisplayName": r.caller_display_name,
    });
    if let Some(code) = &r.error_code {
        properties["statusCode"] = r.sub_status.clone().unwrap_or_default().into();
        properties["statusMessage"] = json!({"error": {"code": code}}).to_string().into();
    }
    json!({
        "authorization": {"action": r.operation, "scope": r.scope},
        "caller": r.caller,
        "channels": "Operation",
        "claims": claims,
        "correlationId": r.correlation_id,
        "description": "",
        "eventDataId": r.id.to_string(),
        "eventName": {"value": "EndRequest", "localizedValue": "End request"},
        "category": localized("Administrative"),
        "eventTimestamp": rfc3339(r.at),
        "httpRequest": {
            "clientRequestId": r.correlation_id,
            "clientIpAddress": r.client_address.clone().unwrap_or_default(),
            "method": r.method,
        },
        "id": format!("{}/events/{}/ticks/{}", r.scope, r.id, r.at.unix_timestamp_nanos() / 100),
        "level": if failed { "Error" } else { "Informational" },
        "operationId": r.correlation_id,
        "operationName": localized(&r.operation),
        "resourceGroupName": r.resource_group.clone().unwrap_or_default(),
        "resourceProviderName": localized(provider),
        "resourceType": localized(resource_type),
        "resourceId": r.scope,
        "status": localized(r.status.as_str()),
        "subStatus": localized(r.sub_status.as_deref().unwrap_or("")),
        "submissionTimestamp": rfc3339(r.at),
        "subscriptionId": r.subscription_id.clone().unwrap_or_default(),
        "tenantId": r.tenant_id.map(|t| t.to_string()).unwrap_or_default(),
        "properties": properties,
    })
}

/// The activity log of a subscription (see the module's documentation).
pub async fn activity_log(
    state: &AppState,
    p: &Principal,
    method: &Method,
    sub: &str,
    path: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    if method != Method::GET {
        return Err(ApiError::MethodNotAllowed);
    }
    let mut filter = ActivityFilter::default();
    let get = |k: &str| query.iter().find(|(q, _)| q.eq_ignore_ascii_case(k)).map(|(_, v)| v);
    if let Some(f) = get("$filter") {
        for (field, op, value) in clauses(f)? {
            match (field.as_str(), op.as_str()) {
                ("eventtimestamp", "ge") => filter.start = Some(parse_time(&value)?),
                ("eventtimestamp", "le") => filter.end = Some(parse_time(&value)?),
                ("resourcegroupname", "eq") => filter.resource_group = Some(value),
                ("caller", "eq") => filter.caller = Some(value),
                _ => {
                    return Err(bad(format!(
                        "$filter supports eventTimestamp ge/le, resourceGroupName eq and caller \
                         eq, not '{} {op}'",
                        field.chars().take(40).collect::<String>()
                    )));
                }
            }
        }
    }
    if let Some(t) = get("$skipToken") {
        filter.before = Some(skip_token(t)?);
    }
    if let Some(t) = get("$top") {
        filter.top = Some(t.parse().map_err(|_| bad("$top must be a whole number"))?);
    }
    let (records, limit) = state.monitor.activity(p, sub, filter).await?;
    let next = (records.len() == limit as usize)
        .then(|| records.last())
        .flatten()
        .map(|r| next_link(state, path, query, format!("{}_{}", r.at.unix_timestamp(), r.id)));
    let mut body = json!({ "value": records.iter().map(event_json).collect::<Vec<_>>() });
    if let Some(n) = next {
        body["nextLink"] = n.into();
    }
    Ok(Json(body).into_response())
}

/// Graph's signIn resource.
pub fn sign_in_json(r: &SignInRecord) -> Value {
    json!({
        "id": r.id.to_string(),
        "createdDateTime": rfc3339(r.at),
        "userPrincipalName": r.user_principal_name,
        "userId": r.user_id,
        "appId": r.app_id,
        "appDisplayName": r.app_display_name,
        "servicePrincipalId": r.service_principal_id,
        "ipAddress": r.client_address,
        "clientAppUsed": r.grant,
        "isInteractive": r.interactive,
        "resourceDisplayName": r.resource,
        "correlationId": r.correlation_id,
        // Not Graph's: identical non-interactive attempts of one minute are one record (as
        // Azure's portal aggregates them); how many, and when the last was.
        "signInCount": r.count,
        "lastSignInDateTime": rfc3339(r.last_at),
        "status": {
            "errorCode": r.error_code,
            "failureReason": r.failure_reason,
        },
    })
}

/// The sign-in query a request asks for: Graph's `$filter`/`$top`/`$skipToken`, or mlgate's
/// plain parameters.
fn sign_in_query(query: &HashMap<String, String>) -> Result<SignInQuery, ApiError> {
    let get = |k: &str| query.iter().find(|(q, _)| q.eq_ignore_ascii_case(k)).map(|(_, v)| v);
    let mut q = SignInQuery {
        tenant_id: None,
        user: get("user").cloned(),
        app: get("app").cloned(),
        failures_only: get("failuresOnly").is_some_and(|v| v == "true"),
        start: None,
        end: None,
        before: get("$skipToken").map(|t| skip_token(t)).transpose()?,
        limit: get("$top")
            .map(|t| t.parse().map_err(|_| bad("$top must be a whole number")))
            .transpose()?
            .unwrap_or(mlgate_core::monitor::DEFAULT_PAGE),
    };
    if let Some(f) = get("$filter") {
        // Graph writes `status/errorCode ne 0` with an unquoted number.
        let f = f.replace("status/errorCode ne 0", "status/errorCode ne '0'");
        for (field, op, value) in clauses(&f)? {
            match (field.as_str(), op.as_str()) {
                ("userprincipalname", "eq") | ("userid", "eq") => q.user = Some(value),
                ("appid", "eq") => q.app = Some(value),
                ("status/errorcode", "ne") if value == "0" => q.failures_only = true,
                ("createddatetime", "ge") => q.start = Some(parse_time(&value)?),
                ("createddatetime", "le") => q.end = Some(parse_time(&value)?),
                _ => {
                    return Err(bad(
                        "$filter supports userPrincipalName eq, userId eq, appId eq, \
                         status/errorCode ne 0 and createdDateTime ge/le",
                    ));
                }
            }
        }
    }
    Ok(q)
}

/// The sign-in log (directory administrators).
pub async fn sign_ins(
    state: &AppState,
    p: &Principal,
    path: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let q = sign_in_query(query)?;
    let limit = q.limit.clamp(1, mlgate_core::monitor::MAX_PAGE) as usize;
    let records = state.monitor.sign_ins(p, q).await?;
    let mut body = json!({ "value": records.iter().map(sign_in_json).collect::<Vec<_>>() });
    if records.len() == limit
        && let Some(r) = records.last()
    {
        let token = format!("{}_{}", r.at.unix_timestamp(), r.id);
        body["@odata.nextLink"] = next_link(state, path, query, token).into();
    }
    Ok(Json(body).into_response())
}

/// `GET /api/v1/signIns`.
pub async fn list_sign_ins(
    State(state): State<AppState>,
    Caller(p): Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    sign_ins(&state, &p, "/api/v1/signIns", &query).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse() {
        let c = clauses(
            "eventTimestamp ge '2026-01-01T00:00:00Z' and eventTimestamp le '2026-01-02T00:00:00Z' \
             and resourceGroupName eq 'it''s'",
        )
        .unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[2], ("resourcegroupname".into(), "eq".into(), "it's".into()));
        assert!(clauses("caller eq 'x' or caller eq 'y'").is_err());
        assert!(clauses("caller eq 'x").is_err());
        assert!(parse_time("2026-01-01T00:00:00").is_ok());
        assert_eq!(
            activity_target("S/providers/microsoft.insights/EventTypes/management/values"),
            Some("S")
        );
        assert_eq!(activity_target("S/providers/microsoft.insights/eventtypes"), None);
    }
}
