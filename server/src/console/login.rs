//! Logging in and out of the console.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;

use super::error::{explain, ConsoleResult};
use super::layout::{bare, html_response};
use super::session::{
    constant_time_eq, removal, session_cookie, Session, IDLE_LIMIT, LOGIN_COOKIE, PATH,
    SESSION_COOKIE,
};
use super::{form_fields, pairs, posted, value, ConsoleError, CONSOLE_ROLES};
use crate::auth::service::{self, Credentials, CONSOLE_DEVICE_ID};
use crate::auth::tokens;
use crate::error::{ApiError, ErrorCode};
use crate::http::client_addr;
use crate::state::AppState;

/// Where to go after logging in: a console path only, so the form cannot send anyone elsewhere.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/console") && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/console",
    }
}

fn form(next: &str, token: &str, phone: &str, error: Option<&str>) -> maud::Markup {
    bare(
        "登录",
        html! {
            main.narrow.login {
                h1 { "台账 · 审核控制台" }
                p.muted { "县（市、区）扶贫办审核员与市扶贫办管理员使用。" }
                @if let Some(error) = error {
                    div.flash.error role="alert" { (error) }
                }
                form method="post" action="/console/login" {
                    input type="hidden" name="next" value=(next);
                    input type="hidden" name="login_token" value=(token);
                    label { "手机号"
                        input #phone type="tel" name="phone" value=(phone) autocomplete="username"
                            required inputmode="numeric" maxlength="11";
                    }
                    label { "密码"
                        input #password type="password" name="password" autocomplete="current-password" required;
                    }
                    button.primary #login type="submit" { "登录" }
                }
            }
        },
    )
}

/// The login form. It sets a random cookie that the form repeats, so another site cannot post
/// a login into this one (login CSRF).
pub async fn page(req: HttpRequest) -> HttpResponse {
    let query = pairs(req.query_string());
    let next = safe_next(value(&query, "next"));
    let token = crate::auth::tokens::new_refresh_token();
    let cookie = actix_web::cookie::Cookie::build(LOGIN_COOKIE, token.clone())
        .path(PATH)
        .http_only(true)
        .same_site(actix_web::cookie::SameSite::Strict)
        .finish();
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .cookie(cookie)
        .body(form(next, &token, "", None).into_string())
}

pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ConsoleResult<HttpResponse> {
    let fields = form_fields(&body)?;
    let next = safe_next(value(&fields, "next")).to_owned();
    let phone = value(&fields, "phone").unwrap_or("").to_owned();
    let presented = value(&fields, "login_token").unwrap_or("");
    let expected = req.cookie(LOGIN_COOKIE);
    if expected.is_none_or(|c| !constant_time_eq(c.value().as_bytes(), presented.as_bytes())) {
        return Err(ConsoleError::Csrf);
    }
    let password = value(&fields, "password").unwrap_or("");
    let addr = client_addr(&req, state.settings.trust_proxy_headers);
    let logged_in = match Credentials::parse(&phone, password, CONSOLE_DEVICE_ID) {
        Ok(credentials) => {
            let auth = &state.settings.auth;
            service::log_in(&state.db, &state.keys, auth, credentials, &addr).await
        }
        Err(e) => Err(e),
    };
    match logged_in {
        Ok(tokens) if !CONSOLE_ROLES.contains(&tokens.user.role) => {
            // The password was right, but the console is not theirs: end the session it opened.
            let (caller, _) = crate::http::load_session(
                &state,
                tokens::verify_access(&state.keys, &tokens.access_token)?,
            )
            .await?;
            service::log_out(&state.db, &caller).await?;
            let message = format!(
                "审核控制台供县（市、区）和市扶贫办使用，{}请使用手机应用。",
                tokens.user.role_label
            );
            let mut res = html_response(form(&next, presented, &phone, Some(&message)));
            *res.status_mut() = StatusCode::FORBIDDEN;
            Ok(res)
        }
        Ok(tokens) => {
            let ttl = chrono::Duration::seconds(tokens.expires_in as i64);
            Ok(HttpResponse::SeeOther()
                .insert_header((actix_web::http::header::LOCATION, next))
                .cookie(session_cookie(tokens.access_token, ttl + IDLE_LIMIT))
                .cookie(removal(LOGIN_COOKIE))
                .finish())
        }
        Err(
            e @ (ApiError::Unauthenticated { .. }
            | ApiError::Validation(_)
            | ApiError::RateLimited { .. }),
        ) => {
            let message = match e.code() {
                ErrorCode::InvalidCredentials | ErrorCode::ValidationFailed => {
                    "手机号或密码错误。".to_owned()
                }
                _ => explain(&e),
            };
            let mut res = html_response(form(&next, presented, &phone, Some(&message)));
            *res.status_mut() = if e.code() == ErrorCode::RateLimited {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::UNAUTHORIZED
            };
            Ok(res)
        }
        Err(other) => Err(other.into()),
    }
}

/// Ends the session everywhere (the API's logout), then forgets the cookie.
pub async fn logout(
    state: web::Data<AppState>,
    session: Session,
    body: web::Bytes,
) -> ConsoleResult<HttpResponse> {
    posted(&state, &session, &body)?;
    service::log_out(&state.db, &session.caller).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, "/console/login"))
        .cookie(removal(SESSION_COOKIE))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_in_the_console() {
        assert_eq!(safe_next(Some("/console/queue?x=1")), "/console/queue?x=1");
        assert_eq!(safe_next(Some("https://evil.example/")), "/console");
        assert_eq!(safe_next(Some("//evil.example/console")), "/console");
        assert_eq!(safe_next(None), "/console");
    }
}
