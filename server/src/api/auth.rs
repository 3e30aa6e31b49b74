//! `/auth/login`, `/auth/refresh`, `/auth/logout`, `/me` and `/me/password`: the wire shapes
//! of the auth service (`auth::service`) and of the caller's password change.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::service::{self, Credentials, Me, TokenResponse};
use crate::error::{ApiResult, Problem};
use crate::http::AuthForPasswordChange;
use crate::http::{client_addr, ApiJson};
use crate::state::AppState;
use crate::users::service::{self as users, PasswordChange};

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(login)
        .service(refresh)
        .service(logout)
        .service(get_me)
        .service(change_password);
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// The mobile number the account was created with.
    #[schema(example = "13900000004")]
    pub phone: String,
    #[schema(example = "demo-pass-0004")]
    pub password: String,
    /// A stable id of the app installation; each device gets its own session.
    #[schema(example = "a1b2c3")]
    pub device_id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Logs in with phone number and password.
///
/// Failed attempts are throttled per phone number and client address (per device, for a
/// device that has logged in to the account before) with growing waits, and limited per
/// address (how many phone numbers fail from it) and per phone number (failures from all
/// addresses in a day). A refused attempt answers 429 with `Retry-After`, without checking the
/// password.
///
/// After an administrator's password reset the login succeeds with the one-time password, but
/// `user.must_change_password` is true: the app must ask for a new password and send it to
/// `POST /me/password`; until then every other endpoint but `/me` and logout answers 403
/// `password_change_required`.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in: an access and a refresh token", body = TokenResponse),
        (status = 401, description = "`invalid_credentials`, `account_disabled`, or `one_time_password_expired` (a reset's one-time password used more than 72 hours after the reset)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too soon after failed logins of this phone from this address, too many phone numbers failed from this address, or too many failures of this phone", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: ApiJson<LoginRequest>,
) -> ApiResult<web::Json<TokenResponse>> {
    let body = body.0;
    let credentials = Credentials::parse(&body.phone, &body.password, &body.device_id)?;
    let addr = client_addr(&req, state.settings.trust_proxy_headers);
    let auth = &state.settings.auth;
    service::log_in(&state.db, &state.keys, auth, credentials, &addr)
        .await
        .map(web::Json)
}

/// Exchanges a refresh token for a new access token and a new refresh token.
///
/// Each refresh token works once. Presenting a spent one again revokes the whole session
/// (every token descended from the same login): the app must store the new refresh token
/// before it discards the old one.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "`invalid_refresh_token`, `refresh_token_reused` (the session is now revoked), `session_revoked` or `account_disabled`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/refresh")]
pub async fn refresh(
    state: web::Data<AppState>,
    body: ApiJson<RefreshRequest>,
) -> ApiResult<web::Json<TokenResponse>> {
    let auth = &state.settings.auth;
    service::refresh(&state.db, &state.keys, auth, &body.0.refresh_token)
        .await
        .map(web::Json)
}

/// Ends the caller's session: its refresh token and access tokens stop working at once.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 204, description = "Logged out"))
)]
#[post("/auth/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    AuthForPasswordChange(caller): AuthForPasswordChange,
) -> ApiResult<HttpResponse> {
    service::log_out(&state.db, &caller).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's account: role, county and assigned villages, and whether they must change
/// their password first.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = Me))
)]
#[get("/me")]
pub async fn get_me(
    state: web::Data<AppState>,
    AuthForPasswordChange(caller): AuthForPasswordChange,
) -> ApiResult<web::Json<Me>> {
    Ok(web::Json(service::me(&state.db, &caller).await?))
}

/// Changes the caller's password: the current one (after a reset, the one-time password) and a
/// new one of 8 to 128 characters, other than the current. Ends the caller's other sessions and
/// lifts `must_change_password`; wrong current passwords are throttled as failed logins are.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; this session goes on, the others have ended"),
        (status = 422, description = "`validation_failed`: `current_password` (`required`, `too_long`, `wrong_password`), `new_password` (`password_too_short`, `password_too_long`, `same_password`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many wrong passwords of this phone from this address", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/me/password")]
pub async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    AuthForPasswordChange(caller): AuthForPasswordChange,
    body: ApiJson<PasswordChange>,
) -> ApiResult<HttpResponse> {
    let addr = client_addr(&req, state.settings.trust_proxy_headers);
    let auth = &state.settings.auth;
    users::change_password(&state.db, auth, &caller, body.0, &addr).await?;
    Ok(HttpResponse::NoContent().finish())
}
