//! The caller of an API request, from its bearer token: verified, then checked against the
//! database on every request so that logout, a revoked session or a disabled account take
//! effect at once rather than when the access token expires.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use crate::auth::{store, tokens, Caller};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// The bearer token of a request, if it has one.
fn bearer(req: &HttpRequest) -> ApiResult<String> {
    let value = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthenticated(
            ErrorCode::MissingToken,
            "请先登录，并在请求头中携带 `Authorization: Bearer <访问令牌>`",
        )
    })?;
    let value = value.to_str().map_err(|_| {
        ApiError::unauthenticated(ErrorCode::InvalidToken, "`Authorization` 请求头不是文本")
    })?;
    let mut parts = value.splitn(2, ' ');
    match (parts.next(), parts.next()) {
        (Some(scheme), Some(token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim().to_owned())
        }
        _ => Err(ApiError::unauthenticated(
            ErrorCode::InvalidToken,
            "`Authorization` 请求头须为 `Bearer <访问令牌>`",
        )),
    }
}

/// The application state and the request's access token, verified (signature, expiry): what
/// both extractors check before they look the session up.
fn verified(req: &HttpRequest) -> ApiResult<(web::Data<AppState>, tokens::AccessClaims)> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state missing")))?;
    let claims = tokens::verify_access(&state.keys, &bearer(req)?)?;
    Ok((state, claims))
}

/// The authenticated caller of an API request, as an extractor: `Auth(caller): Auth` in a
/// handler's arguments. (A wrapper, since `Caller` belongs to the core crate.)
pub struct Auth(pub Caller);

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let claims = verified(req);
        Box::pin(async move {
            let (state, claims) = claims?;
            load_caller(&state, claims).await.map(Auth)
        })
    }
}

/// The caller of an API request that works while a reset password awaits its replacement
/// (`/me`, `/me/password`, logout): [`Auth`] refuses everything else with 403
/// `password_change_required` until then.
pub struct AuthForPasswordChange(pub Caller);

/// The paths [`AuthForPasswordChange`] serves, for the OpenAPI document: every other secured
/// operation may answer `password_change_required`.
pub const PASSWORD_CHANGE_PATHS: [&str; 3] =
    ["/api/v1/me", "/api/v1/me/password", "/api/v1/auth/logout"];

impl FromRequest for AuthForPasswordChange {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let claims = verified(req);
        Box::pin(async move {
            let (state, claims) = claims?;
            let (caller, _) = load_session(&state, claims).await?;
            Ok(AuthForPasswordChange(caller))
        })
    }
}

/// The caller a verified token names, if its session is still open, its account active and
/// its password not awaiting a forced change.
pub async fn load_caller(state: &AppState, claims: tokens::AccessClaims) -> ApiResult<Caller> {
    state
        .db
        .run(move |conn| store::load_caller(conn, &claims.sub, &claims.sid))
        .await
}

/// The caller a verified token names, if its session is still open and its account active,
/// and whether they must change their password before anything else.
pub async fn load_session(
    state: &AppState,
    claims: tokens::AccessClaims,
) -> ApiResult<(Caller, bool)> {
    state
        .db
        .run(move |conn| store::load_session(conn, &claims.sub, &claims.sid))
        .await
}
