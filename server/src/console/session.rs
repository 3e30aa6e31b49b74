//! Console sessions: the API's access token in an HttpOnly cookie, CSRF tokens for forms, and
//! flash messages carried across a redirect.
//!
//! A console login opens an ordinary API session (same table, same revocation, same role and
//! scope checks). The browser never sees the refresh token: when the access token in the cookie
//! has expired, the server issues a new one for the same session as long as the session is open
//! and the token expired less than [`IDLE_LIMIT`] ago. Refresh tokens work once, and a page with
//! a dozen thumbnails would race a dozen requests to spend the same one.

use actix_web::body::MessageBody;
use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use chrono::Utc;
use futures_util::future::LocalBoxFuture;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::ConsoleError;
use crate::auth::tokens;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "tz_console";
pub const FLASH_COOKIE: &str = "tz_flash";
pub const LOGIN_COOKIE: &str = "tz_login";
pub const PATH: &str = "/console";

/// How long after its access token expired an idle console session can still be renewed.
pub const IDLE_LIMIT: chrono::Duration = chrono::Duration::hours(2);

/// The signed-in user of a console request.
pub struct Session {
    pub caller: Caller,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// A message from the previous request (after a redirect).
    pub flash: Option<Flash>,
}

#[derive(Debug, Clone)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

/// A renewed access token, for [`finish`] to set on the response.
#[derive(Clone)]
struct Renewed(String);

/// The CSRF token of a session: an HMAC of its id, so nothing has to be stored and a token
/// works for exactly one session.
pub fn csrf_token(state: &AppState, session_id: &str) -> String {
    #[allow(clippy::expect_used, reason = "HMAC accepts keys of any length")]
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&state.keys.jwt)
        .expect("HMAC accepts any key length");
    mac.update(b"console-csrf:");
    mac.update(session_id.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

impl Session {
    /// Refuses a form whose CSRF token is not this session's (403).
    pub fn check_csrf(&self, state: &AppState, presented: &str) -> Result<(), ConsoleError> {
        let expected = csrf_token(state, &self.caller.session_id);
        if constant_time_eq(expected.as_bytes(), presented.as_bytes()) {
            Ok(())
        } else {
            Err(ConsoleError::Csrf)
        }
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn session_cookie(token: String, max_age: chrono::Duration) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, token)
        .path(PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::seconds(max_age.num_seconds()))
        .finish()
}

pub fn removal(name: &'static str) -> Cookie<'static> {
    let mut cookie = Cookie::build(name, "")
        .path(PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    cookie.make_removal();
    cookie
}

/// A message for the next page the browser loads.
pub fn flash_cookie(ok: bool, text: &str) -> Cookie<'static> {
    let value = format!(
        "{}{}",
        if ok { '+' } else { '-' },
        form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>()
    );
    Cookie::build(FLASH_COOKIE, value)
        .path(PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::seconds(60))
        .finish()
}

fn read_flash(req: &HttpRequest) -> Option<Flash> {
    let cookie = req.cookie(FLASH_COOKIE)?;
    let value = cookie.value();
    let ok = value.starts_with('+');
    let text: String = form_urlencoded::parse(format!("t={}", value.get(1..)?).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    // The cookie is set by this server only, but it arrives from the browser: keep it short.
    (!text.is_empty()).then(|| Flash {
        ok,
        text: text.chars().take(300).collect(),
    })
}

/// The page to come back to after logging in: the one asked for, if it was a console page.
fn return_path(req: &HttpRequest) -> String {
    req.uri()
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| req.method() == actix_web::http::Method::GET && p.starts_with("/console"))
        .unwrap_or("/console")
        .to_owned()
}

/// Where to send a browser that must log in first.
pub fn login_redirect(next: &str) -> HttpResponse {
    let target = format!(
        "/console/login?next={}",
        form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
    );
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, target))
        .cookie(removal(SESSION_COOKIE))
        .finish()
}

async fn authenticate(req: &HttpRequest) -> Result<Session, ConsoleError> {
    let login = || ConsoleError::Login(return_path(req));
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state missing")))?;
    let token = req
        .cookie(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .ok_or_else(login)?;
    let claims = tokens::verify_access_ignoring_expiry(&state.keys, &token).map_err(|_| login())?;
    // Expired as the API judges it (`exp` before now, no leeway), yet renewable within the
    // idle limit.
    let expired_for = Utc::now().timestamp() - claims.exp;
    if expired_for > IDLE_LIMIT.num_seconds() {
        return Err(login());
    }
    let renew = expired_for > 0;
    let (caller, must_change_password) =
        crate::http::load_session(&state, claims)
            .await
            .map_err(|e| match e {
                ApiError::Unauthenticated { .. } => login(),
                other => ConsoleError::Api(other),
            })?;
    caller.require_role(&super::CONSOLE_ROLES)?;
    // After a reset, the password page (and logout) only; the error page sends the browser there.
    if must_change_password && !super::users::PASSWORD_CHANGE_PAGES.contains(&req.path()) {
        return Err(ConsoleError::Api(
            crate::auth::store::password_change_required(),
        ));
    }
    if renew {
        let ttl = chrono::Duration::from_std(state.settings.auth.access_ttl)
            .map_err(ApiError::internal)?;
        let token = tokens::issue_access(
            &state.keys,
            &caller.user_id,
            &caller.session_id,
            caller.role,
            Utc::now(),
            ttl,
        )?;
        req.extensions_mut().insert(Renewed(token));
    }
    Ok(Session {
        csrf: csrf_token(&state, &caller.session_id),
        caller,
        flash: read_flash(req),
    })
}

impl FromRequest for Session {
    type Error = ConsoleError;
    type Future = LocalBoxFuture<'static, Result<Self, ConsoleError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await })
    }
}

/// Whether the browser reached the server over HTTPS: a TLS listener, or a proxy that says so
/// (`Forwarded: proto=https`, `X-Forwarded-Proto`), believed only with `--trust-proxy-headers`
/// since anyone can send those headers.
pub fn over_https(req: &HttpRequest, trust_proxy_headers: bool) -> bool {
    req.app_config().secure()
        || (trust_proxy_headers && req.connection_info().scheme().eq_ignore_ascii_case("https"))
}

/// Console middleware: sets a renewed session cookie, clears a flash message once a page has
/// shown it, marks cookies Secure over HTTPS, and adds the headers that keep the pages in their
/// own origin.
pub async fn finish(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let had_flash = req.cookie(FLASH_COOKIE).is_some();
    let mut res = next.call(req).await?;
    let renewed = res.request().extensions().get::<Renewed>().cloned();
    let is_page = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let state = res.request().app_data::<web::Data<AppState>>().cloned();
    let https = state
        .as_ref()
        .is_some_and(|s| over_https(res.request(), s.settings.trust_proxy_headers));
    let response = res.response_mut();
    if let (Some(Renewed(token)), Some(state)) = (renewed, state) {
        let ttl = chrono::Duration::from_std(state.settings.auth.access_ttl).unwrap_or_default();
        response.add_cookie(&session_cookie(token, ttl + IDLE_LIMIT))?;
    }
    if had_flash && is_page && response.status().is_success() {
        response.add_cookie(&removal(FLASH_COOKIE))?;
    }
    let headers = response.headers_mut();
    if https {
        // Over HTTPS every cookie is Secure: a session cookie must never travel in clear, even
        // if the browser is lured to an http:// address of the same host.
        let cookies: Vec<header::HeaderValue> =
            headers.get_all(header::SET_COOKIE).cloned().collect();
        headers.remove(header::SET_COOKIE);
        for cookie in cookies {
            let secure = cookie
                .to_str()
                .ok()
                .filter(|c| !c.to_ascii_lowercase().contains("; secure"))
                .and_then(|c| header::HeaderValue::from_str(&format!("{c}; Secure")).ok());
            headers.append(header::SET_COOKIE, secure.unwrap_or(cookie));
        }
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    if is_page {
        // Pages show personal data: never from a shared cache, never from history after logout.
        headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_equal() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn flash_round_trips_chinese_text() {
        let cookie = flash_cookie(false, "驳回需要填写理由 & 100%");
        let req = actix_web::test::TestRequest::default()
            .cookie(cookie)
            .to_http_request();
        let flash = read_flash(&req).expect("a flash");
        assert!(!flash.ok);
        assert_eq!(flash.text, "驳回需要填写理由 & 100%");
    }
}
