//! The directory: users (list; for administrators: create, disable or enable, reset the
//! password with an optional change at next sign-in) and service principals (create;
//! secrets: add with the expiry, shown once with the `--sdk-auth` JSON to download; list by
//! hint and expiry; delete).

use axum::extract::{Form, Path};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mlgate_core::applications::CredentialOwner;
use mlgate_core::directory::NewSecret;

use super::layout::{Nav, button_form, csrf_field, ok_box};
use super::{Ctx, datetime, field, input};
use crate::web::pages::esc;

/// `GET /console/directory`.
pub async fn show(ctx: Ctx) -> Response {
    render(&ctx, String::new()).await
}

async fn render(ctx: &Ctx, notice: String) -> Response {
    let p = &ctx.principal;
    let dir = ctx.state.authority.directory();
    let mut body = format!("<h1>Directory</h1>{notice}");

    body.push_str("<section aria-labelledby=\"users\"><h2 id=\"users\">Users</h2>");
    match dir.list_users(p).await {
        Ok(users) => {
            let admin = dir.ensure_admin(p).await.is_ok();
            body.push_str("<div class=\"scroll\"><table><thead><tr><th scope=\"col\">User name</th><th scope=\"col\">Display name</th><th scope=\"col\">Enabled</th><th scope=\"col\">Administrator</th>");
            if admin {
                body.push_str("<th scope=\"col\">Manage</th>");
            }
            body.push_str("</tr></thead><tbody>");
            for (i, u) in users.iter().enumerate() {
                body.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                    esc(&u.user_principal_name),
                    esc(&u.display_name),
                    if u.account_enabled { "yes" } else { "no" },
                    if u.is_admin { "yes" } else { "" }
                ));
                if admin {
                    let action = format!("/console/directory/users/{}", u.object_id);
                    let (toggle, label) = if u.account_enabled {
                        ("disable", "Disable")
                    } else {
                        ("enable", "Enable")
                    };
                    body.push_str(&format!(
                        "<td><form method=\"post\" action=\"{action}\">{csrf}<input type=\"hidden\" name=\"action\" value=\"{toggle}\">\
                         <button type=\"submit\" id=\"user-{toggle}-{i}\">{label}</button></form>\
                         <form method=\"post\" action=\"{action}\">{csrf}<input type=\"hidden\" name=\"action\" value=\"reset\">\
                         <label for=\"reset-pw-{i}\">New password for {name}</label>\
                         <input type=\"password\" id=\"reset-pw-{i}\" name=\"new_password\" autocomplete=\"new-password\" required minlength=\"8\">\
                         <label><input type=\"checkbox\" name=\"force_change\" value=\"1\" checked> Change at next sign-in</label>\
                         <button type=\"submit\" id=\"user-reset-{i}\">Reset password</button></form></td>",
                        csrf = csrf_field(&ctx.csrf),
                        name = esc(&u.user_principal_name),
                    ));
                }
                body.push_str("</tr>");
            }
            body.push_str("</tbody></table></div>");
        }
        Err(e) => body.push_str(&super::layout::error_box(&e.to_string())),
    }
    if dir.ensure_admin(p).await.is_ok() {
        body.push_str(&format!(
            "<h3>Create a user</h3><form method=\"post\" action=\"/console/directory/users\">{}<div class=\"row\"><div>{}</div><div>{}</div><div>\
             <label for=\"user_password\">Initial password</label><input type=\"password\" id=\"user_password\" name=\"user_password\" autocomplete=\"new-password\" required minlength=\"8\"></div></div>\
             <button type=\"submit\" id=\"create-user\">Create user</button></form>",
            csrf_field(&ctx.csrf),
            input("user_name", "User name (name@domain)", "", "required"),
            input("user_display", "Display name", "", "required"),
        ));
    }
    body.push_str("</section>");

    body.push_str("<section aria-labelledby=\"sps\"><h2 id=\"sps\">Service principals</h2>");
    match dir.list_service_principals(p).await {
        Ok(list) => {
            let list: Vec<_> = list.into_iter().filter(|(sp, _)| !sp.public_client).collect();
            if list.is_empty() {
                body.push_str("<p class=\"muted\">No service principals.</p>");
            }
            for (sp, secrets) in &list {
                let id = sp.object_id.to_string();
                body.push_str(&format!(
                    "<div class=\"sp\" id=\"sp-{id}\"><h3>{}</h3><dl class=\"facts\"><dt>Application id</dt><dd><code>{}</code></dd><dt>Object id</dt><dd><code>{id}</code></dd><dt>Enabled</dt><dd>{}</dd></dl>",
                    esc(&sp.display_name),
                    sp.app_id,
                    if sp.account_enabled { "yes" } else { "no" }
                ));
                body.push_str("<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Secret</th><th scope=\"col\">Created</th><th scope=\"col\">Expires</th><th scope=\"col\"><span class=\"muted\">Action</span></th></tr></thead><tbody>");
                for s in secrets {
                    body.push_str(&format!(
                        "<tr><td><code>{}…</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(&s.hint),
                        datetime(s.created_at),
                        s.expires_at.map(datetime).unwrap_or_else(|| "never".into()),
                        button_form(
                            &format!("/console/directory/sps/{id}/secrets/{}/delete", s.id),
                            &ctx.csrf,
                            &[],
                            "Delete",
                            "danger",
                            &format!("delete-secret-{}", s.id)
                        )
                    ));
                }
                if secrets.is_empty() {
                    body.push_str("<tr><td colspan=\"4\" class=\"muted\">No secrets.</td></tr>");
                }
                body.push_str(&format!(
                    "</tbody></table></div><form method=\"post\" action=\"/console/directory/sps/{id}/secrets\">{}\
                     <div class=\"row\"><div><label for=\"years-{id}\">Expires after (years)</label><input type=\"text\" inputmode=\"numeric\" id=\"years-{id}\" name=\"years\" value=\"1\"></div></div>\
                     <button type=\"submit\" class=\"secondary\" id=\"add-secret-{id}\">Add a secret</button></form></div>",
                    csrf_field(&ctx.csrf)
                ));
            }
        }
        Err(e) => body.push_str(&super::layout::error_box(&e.to_string())),
    }
    body.push_str(&format!(
        "<h3>Create a service principal</h3><form method=\"post\" action=\"/console/directory/sps\">{}<div class=\"row\"><div>{}</div>\
         <div><label for=\"sp_years\">Secret expires after (years)</label><input type=\"text\" inputmode=\"numeric\" id=\"sp_years\" name=\"years\" value=\"1\"></div></div>\
         <button type=\"submit\" id=\"create-sp\">Create service principal</button></form></section>",
        csrf_field(&ctx.csrf),
        input("sp_name", "Display name", "", "required maxlength=\"120\""),
    ));
    ctx.page("Directory", Nav::Directory, body).into_response()
}

fn years(f: &super::Form) -> Option<u32> {
    field(f, "years").parse().ok()
}

/// The new secret, shown once, with the `--sdk-auth` JSON as a download (a `data:` link, so
/// the secret is never stored to be served again).
async fn shown_once(ctx: &Ctx, n: &NewSecret, what: &str) -> String {
    let sub = ctx
        .state
        .resources
        .subscriptions(&ctx.principal)
        .await
        .ok()
        .and_then(|s| s.first().map(|s| s.id.to_string()))
        .unwrap_or_default();
    let sdk = mlgate_proto::SdkAuth::new(
        n.principal.app_id.to_string(),
        n.secret.clone(),
        sub,
        n.principal.tenant_id.to_string(),
        &ctx.state.public_url,
    );
    let json = serde_json::to_string_pretty(&sdk).unwrap_or_default();
    format!(
        "{}<section aria-labelledby=\"new-secret\"><h2 id=\"new-secret\">Copy the secret now</h2><div class=\"warn\">It is shown only this once.</div>\
         <dl class=\"facts\"><dt>Application id</dt><dd><code id=\"new-app-id\">{}</code></dd><dt>Secret</dt><dd><span class=\"secret\" id=\"new-secret-value\">{}</span> \
         <button type=\"button\" class=\"secondary small\" data-copy=\"new-secret-value\">Copy</button></dd><dt>Expires</dt><dd>{}</dd></dl>\
         <p><a id=\"sdk-auth\" download=\"{}-sdk-auth.json\" href=\"data:application/json;base64,{}\">Download the --sdk-auth JSON</a></p></section>",
        ok_box(what),
        n.principal.app_id,
        esc(&n.secret),
        n.record.expires_at.map(datetime).unwrap_or_else(|| "never".into()),
        esc(&n
            .principal
            .display_name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>()),
        STANDARD.encode(json.as_bytes()),
    )
}

/// `POST /console/directory/users`.
pub async fn create_user(ctx: Ctx, Form(f): Form<super::Form>) -> Response {
    if !ctx.csrf_ok(&f) {
        return ctx.forged();
    }
    let dir = ctx.state.authority.directory();
    let password = f.get("user_password").map(String::as_str).unwrap_or("");
    match dir
        .create_user(&ctx.principal, field(&f, "user_name"), field(&f, "user_display"), password)
        .await
    {
        Ok(u) => render(&ctx, ok_box(&format!("User {} created.", u.user_principal_name))).await,
        Err(e) => ctx.error(e),
    }
}

/// `POST /console/directory/users/{id}`: `az ad user update` (`--account-enabled`,
/// `--password`, `--force-change-password-next-sign-in`). Directory administrators only; the
/// core refuses everyone else, and disabling oneself.
pub async fn update_user(ctx: Ctx, Path(id): Path<String>, Form(f): Form<super::Form>) -> Response {
    if !ctx.csrf_ok(&f) {
        return ctx.forged();
    }
    let change = match f.get("action").map(String::as_str) {
        Some("disable") => {
            mlgate_core::users::UserUpdate { account_enabled: Some(false), ..Default::default() }
        }
        Some("enable") => {
            mlgate_core::users::UserUpdate { account_enabled: Some(true), ..Default::default() }
        }
        Some("reset") => mlgate_core::users::UserUpdate {
            password: Some(f.get("new_password").cloned().unwrap_or_default()),
            force_change_password: Some(f.contains_key("force_change")),
            ..Default::default()
        },
        _ => {
            return ctx.error(mlgate_core::Error::InvalidInput(
                "the action must be disable, enable or reset".into(),
            ));
        }
    };
    let what = match (change.account_enabled, change.password.is_some()) {
        (Some(false), _) => "disabled",
        (Some(true), _) => "enabled",
        _ => "given a new password",
    };
    let dir = ctx.state.authority.directory();
    match dir.update_user(&ctx.principal, &id, change).await {
        Ok(u) => render(&ctx, ok_box(&format!("User {} {what}.", u.user_principal_name))).await,
        Err(e) => ctx.error(e),
    }
}

/// `POST /console/directory/sps`: `az ad sp create-for-rbac`.
pub async fn create_sp(ctx: Ctx, Form(f): Form<super::Form>) -> Response {
    if !ctx.csrf_ok(&f) {
        return ctx.forged();
    }
    let dir = ctx.state.authority.directory();
    match dir.create_service_principal(&ctx.principal, field(&f, "sp_name"), years(&f)).await {
        Ok(n) => {
            tracing::info!(app = %n.principal.app_id, by = %ctx.principal.object_id, "service principal created in the console");
            let notice = shown_once(
                &ctx,
                &n,
                &format!("Service principal '{}' created.", n.principal.display_name),
            )
            .await;
            render(&ctx, notice).await
        }
        Err(e) => ctx.error(e),
    }
}

/// `POST /console/directory/sps/{id}/secrets`: `az ad sp credential reset --append`.
pub async fn add_secret(ctx: Ctx, Path(id): Path<String>, Form(f): Form<super::Form>) -> Response {
    if !ctx.csrf_ok(&f) {
        return ctx.forged();
    }
    let dir = ctx.state.authority.directory();
    match dir.reset_credential(&ctx.principal, &id, true, years(&f), None).await {
        Ok(n) => {
            let notice =
                shown_once(&ctx, &n, &format!("A new secret for '{}'.", n.principal.display_name))
                    .await;
            render(&ctx, notice).await
        }
        Err(e) => ctx.error(e),
    }
}

/// `POST /console/directory/sps/{id}/secrets/{key}/delete`: Graph's `removePassword`.
pub async fn delete_secret(
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    Form(f): Form<super::Form>,
) -> Response {
    if !ctx.csrf_ok(&f) {
        return ctx.forged();
    }
    let dir = ctx.state.authority.directory();
    let sp = match dir.find_service_principal(&ctx.principal, &id).await {
        Ok((sp, _)) => sp,
        Err(e) => return ctx.error(e),
    };
    match ctx
        .state
        .applications
        .remove_password(&ctx.principal, CredentialOwner::ServicePrincipal(sp.object_id), &key)
        .await
    {
        Ok(()) => render(&ctx, ok_box("The secret was deleted; it stops working at once.")).await,
        Err(e) => ctx.error(e),
    }
}
