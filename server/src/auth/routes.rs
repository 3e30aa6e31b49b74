use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::caller::{Caller, ScopeLevel};
use super::store::{self, Rotation};
use super::{password, tokens};
use crate::config::AuthPolicy;
use crate::db::schema::{divisions, villages};
use crate::db::{write_transaction, DbConnection};
use crate::domain::Rule;
use crate::domain::{DivisionCode, Phone, Role};
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError, Problem};
use crate::http::{client_addr, ApiJson};
use crate::state::AppState;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(login)
        .service(refresh)
        .service(logout)
        .service(get_me);
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

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// JWT to send as `Authorization: Bearer …`.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires (900).
    pub expires_in: u64,
    /// Single-use token for `POST /auth/refresh`; every use returns a new one.
    pub refresh_token: String,
    /// Seconds until the refresh token expires (30 days).
    pub refresh_expires_in: u64,
    pub user: Me,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NamedCode {
    pub code: DivisionCode,
    pub name: String,
}

/// The caller: who they are and how far their scope reaches.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub id: String,
    pub phone: String,
    pub name: String,
    pub role: Role,
    /// Chinese name of the role.
    pub role_label: String,
    pub scope: ScopeLevel,
    /// 12-digit code of the county: a county reviewer's county, or the county of a field
    /// user's villages. Absent for the city administrator.
    pub county_code: Option<DivisionCode>,
    pub county_name: Option<String>,
    /// The villages assigned to an enumerator or first secretary (empty for other roles).
    pub village_codes: Vec<DivisionCode>,
    pub villages: Vec<NamedCode>,
}

fn me_of(conn: &mut DbConnection, caller: &Caller) -> ApiResult<Me> {
    let county_name = match &caller.county_code {
        Some(code) => divisions::table
            .find(code.as_str())
            .select(divisions::name)
            .first::<String>(conn)
            .optional()?,
        None => None,
    };
    let codes: Vec<&str> = caller
        .village_codes
        .iter()
        .map(DivisionCode::as_str)
        .collect();
    let named: Vec<(String, String)> = villages::table
        .filter(villages::code.eq_any(&codes))
        .select((villages::code, villages::name))
        .order(villages::code)
        .load(conn)?;
    let villages = named
        .into_iter()
        .filter_map(|(code, name)| {
            DivisionCode::parse(&code)
                .ok()
                .map(|code| NamedCode { code, name })
        })
        .collect();
    Ok(Me {
        id: caller.user_id.clone(),
        phone: caller.phone.clone(),
        name: caller.name.clone(),
        role: caller.role,
        role_label: caller.role.label().to_owned(),
        scope: caller.scope_level(),
        county_code: caller.county_code.clone(),
        county_name,
        village_codes: caller.village_codes.clone(),
        villages,
    })
}

fn check_login_request(body: &LoginRequest) -> ApiResult<Phone> {
    let mut errors = Vec::new();
    let phone = Phone::parse(&body.phone)
        .map_err(|e| errors.push(FieldError::from_invalid("phone", e)))
        .ok();
    if body.password.is_empty() {
        errors.push(FieldError::new("password", Rule::Required, "不能为空"));
    } else if body.password.len() > 1024 {
        errors.push(FieldError::new("password", Rule::TooLong, "最多 1024 字节"));
    }
    let device = body.device_id.trim();
    if device.is_empty() || device.chars().count() > 128 {
        errors.push(FieldError::new(
            "device_id",
            Rule::Length,
            "须为 1 至 128 个字符",
        ));
    }
    match phone {
        Some(phone) if errors.is_empty() => Ok(phone),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// The device id the console logs in with: shared by every browser, so never a known device.
pub const CONSOLE_DEVICE_ID: &str = "console";

/// The wait after `failures` consecutive failures of one key: none for the first few (typos),
/// then the first delay, doubling with each further failure up to the maximum.
pub fn delay_after(policy: &AuthPolicy, failures: i64) -> Option<std::time::Duration> {
    let beyond = failures - i64::from(policy.free_failures);
    if beyond <= 0 {
        return None;
    }
    let doublings = (beyond - 1).min(30) as u32;
    Some(
        policy
            .first_delay
            .saturating_mul(1 << doublings)
            .min(policy.max_delay),
    )
}

/// Whole seconds from `now` until `then`, at least 1 (for `Retry-After`).
fn seconds_until(then: NaiveDateTime, now: NaiveDateTime) -> u64 {
    let millis = (then - now).num_milliseconds().max(1);
    (millis as u64).div_ceil(1000)
}

/// Refuses (429) an attempt that comes before its key's wait has passed, or that the
/// per-address or per-phone limit stops (README, "Login throttling"). The password is not
/// checked then and the refusal is not a failure, so hammering does not lengthen the wait.
///
/// The key is (phone, address), or (phone, address, device) for a device that has logged in to
/// the account before: someone else's failures, from another address or on another device, do
/// not delay the owner. Known devices are also exempt from the two coarse limits.
fn throttle(
    conn: &mut DbConnection,
    policy: &AuthPolicy,
    phone: &str,
    addr: &str,
    known_device: Option<&str>,
    now: NaiveDateTime,
) -> ApiResult<()> {
    let retained = now - store::ATTEMPT_RETENTION;
    let streak = store::failures_for_key(conn, phone, addr, known_device, retained)?;
    if let (Some(wait), Some(latest)) = (delay_after(policy, streak.count), streak.latest) {
        let free_at = latest + chrono::Duration::from_std(wait).map_err(ApiError::internal)?;
        if now < free_at {
            let retry_after = seconds_until(free_at, now);
            return Err(ApiError::RateLimited {
                retry_after,
                detail: format!(
                    "该手机号在此地址已连续 {} 次登录失败，请 {retry_after} 秒后再试",
                    streak.count
                ),
            });
        }
    }
    if known_device.is_some() {
        return Ok(());
    }
    let window = chrono::Duration::from_std(policy.login_window).map_err(ApiError::internal)?;
    let by_addr = store::failures_for_addr(conn, addr, phone, now - window)?;
    if !by_addr.includes && by_addr.phones >= i64::from(policy.max_phones_per_addr) {
        return Err(ApiError::RateLimited {
            retry_after: seconds_until(by_addr.oldest.unwrap_or(now) + window, now),
            detail: format!(
                "此地址近 {} 分钟内已有 {} 个手机号登录失败，暂不能再尝试其他手机号",
                window.num_minutes(),
                by_addr.phones
            ),
        });
    }
    let by_phone = store::failures_for_phone(conn, phone, retained)?;
    if by_phone.count >= i64::from(policy.max_failures_per_phone) {
        return Err(ApiError::RateLimited {
            retry_after: seconds_until(
                by_phone.oldest.unwrap_or(now) + store::ATTEMPT_RETENTION,
                now,
            ),
            detail: "该手机号近一天登录失败次数过多，暂时只能从曾经登录过的设备登录".into(),
        });
    }
    Ok(())
}

/// Logs in with phone number and password.
///
/// Failed attempts are throttled per phone number and client address (per device, for a
/// device that has logged in to the account before) with growing waits, and limited per
/// address (how many phone numbers fail from it) and per phone number (failures from all
/// addresses in a day). A refused attempt answers 429 with `Retry-After`, without checking the
/// password.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in: an access and a refresh token", body = TokenResponse),
        (status = 401, description = "`invalid_credentials` or `account_disabled`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too soon after failed logins of this phone from this address, too many phone numbers failed from this address, or too many failures of this phone", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: ApiJson<LoginRequest>,
) -> ApiResult<web::Json<TokenResponse>> {
    log_in(state, req, body).await.map(web::Json)
}

/// [`login`] as a function, for the console.
pub async fn log_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: ApiJson<LoginRequest>,
) -> ApiResult<TokenResponse> {
    let body = body.0;
    let phone = check_login_request(&body)?;
    let device_id = body.device_id.trim().to_owned();
    let addr = client_addr(&req, state.settings.trust_proxy_headers);
    let policy = state.settings.auth.clone();
    let now = Utc::now();

    let phone_str = phone.as_str().to_owned();
    let device = device_id.clone();
    // Checked and counted in one transaction, the phone's attempts one at a time: concurrent
    // guesses cannot all pass the throttle before any of them is counted. The attempt counts
    // as a failure until the password proves right.
    let (user, attempt_id) = state
        .db
        .write(move |conn| {
            write_transaction(conn, |conn| {
                store::lock_phone_attempts(conn, &phone_str)?;
                let user = store::find_user_by_phone(conn, &phone_str)?;
                // Asked for unknown phones too, so the answer takes the same path either way.
                let known = store::is_known_device(
                    conn,
                    user.as_ref().map_or("", |u| u.id.as_str()),
                    &device,
                )? && user.is_some()
                    && device != CONSOLE_DEVICE_ID;
                let key = known.then_some(device.as_str());
                throttle(conn, &policy, &phone_str, &addr, key, now.naive_utc())?;
                let attempt = store::record_attempt(conn, &phone_str, &addr, key, now, false)?;
                Ok::<_, ApiError>((user, attempt))
            })
        })
        .await?;

    let password = body.password;
    let (user, verified) = tokio::task::spawn_blocking(move || match user {
        Some(user) => {
            let ok = password::verify(&user.password_hash, &password);
            (Some(user), ok)
        }
        None => {
            password::verify_dummy(&password);
            (None, false)
        }
    })
    .await
    .map_err(ApiError::internal)?;
    let user = match user {
        Some(user) if verified => user,
        _ => {
            return Err(ApiError::unauthenticated(
                ErrorCode::InvalidCredentials,
                "手机号或密码错误",
            ))
        }
    };

    let refresh_token = tokens::new_refresh_token();
    let refresh_hash = tokens::refresh_token_hash(&refresh_token);
    let refresh_ttl =
        chrono::Duration::from_std(state.settings.auth.refresh_ttl).map_err(ApiError::internal)?;
    let outcome = state
        .db
        .write(move |conn| {
            write_transaction(conn, |conn| {
                store::mark_attempt_succeeded(conn, &attempt_id)?;
                if !user.active {
                    return Ok(Err(ErrorCode::AccountDisabled));
                }
                let session_id = store::open_session(
                    conn,
                    &user.id,
                    &device_id,
                    &refresh_hash,
                    now,
                    refresh_ttl,
                )?;
                let caller = store::caller_from(conn, user, session_id)?;
                let me = me_of(conn, &caller)?;
                Ok::<_, ApiError>(Ok((caller, me)))
            })
        })
        .await?;
    let (caller, me) = match outcome {
        Ok(found) => found,
        Err(code) => {
            return Err(ApiError::unauthenticated(
                code,
                "该账号已停用，请联系管理员",
            ))
        }
    };
    tracing::info!(user_id = %caller.user_id, session_id = %caller.session_id, "login");
    token_response(&state, &caller, refresh_token, me, now)
}

fn token_response(
    state: &AppState,
    caller: &Caller,
    refresh_token: String,
    me: Me,
    now: chrono::DateTime<Utc>,
) -> ApiResult<TokenResponse> {
    let auth = &state.settings.auth;
    let access_ttl = chrono::Duration::from_std(auth.access_ttl).map_err(ApiError::internal)?;
    let access_token = tokens::issue_access(
        &state.keys,
        &caller.user_id,
        &caller.session_id,
        caller.role,
        now,
        access_ttl,
    )?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: auth.access_ttl.as_secs(),
        refresh_token,
        refresh_expires_in: auth.refresh_ttl.as_secs(),
        user: me,
    })
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
    let presented = body.0.refresh_token;
    if presented.is_empty() || presented.len() > 256 {
        return Err(ApiError::field(
            "refresh_token",
            Rule::Length,
            "须为 1 至 256 个字符",
        ));
    }
    let presented_hash = tokens::refresh_token_hash(&presented);
    let refresh_token = tokens::new_refresh_token();
    let new_hash = tokens::refresh_token_hash(&refresh_token);
    let ttl =
        chrono::Duration::from_std(state.settings.auth.refresh_ttl).map_err(ApiError::internal)?;
    let now = Utc::now();
    let (caller, me) = state
        .db
        .write(move |conn| {
            match store::rotate_refresh_token(conn, &presented_hash, &new_hash, now, ttl)? {
                Rotation::Rotated { user, session_id } => {
                    let caller = store::caller_from(conn, user, session_id)?;
                    let me = me_of(conn, &caller)?;
                    Ok((caller, me))
                }
                Rotation::Reused => {
                    tracing::warn!(
                        "a spent refresh token was presented again; its session is revoked"
                    );
                    Err(ApiError::unauthenticated(
                        ErrorCode::RefreshTokenReused,
                        "该刷新令牌已被使用过，会话已注销，请重新登录",
                    ))
                }
                Rotation::Invalid(code, detail) => Err(ApiError::unauthenticated(code, detail)),
            }
        })
        .await?;
    token_response(&state, &caller, refresh_token, me, now).map(web::Json)
}

/// Ends the caller's session: its refresh token and access tokens stop working at once.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 204, description = "Logged out"))
)]
#[post("/auth/logout")]
pub async fn logout(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    log_out(state, caller).await
}

/// [`logout`] as a function, for the console.
pub async fn log_out(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let session_id = caller.session_id.clone();
    state
        .db
        .write(move |conn| {
            Ok(store::revoke_session(
                conn,
                &session_id,
                "logout",
                Utc::now(),
            )?)
        })
        .await?;
    tracing::info!(user_id = %caller.user_id, session_id = %caller.session_id, "logout");
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's account: role, county and assigned villages.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = Me))
)]
#[get("/me")]
pub async fn get_me(state: web::Data<AppState>, caller: Caller) -> ApiResult<web::Json<Me>> {
    let me = state.db.run(move |conn| me_of(conn, &caller)).await?;
    Ok(web::Json(me))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_after_the_free_failures_up_to_the_cap() {
        let policy = AuthPolicy::default();
        let waits: Vec<Option<u64>> = [0, 3, 4, 5, 6, 13, 14, 1000]
            .into_iter()
            .map(|n| delay_after(&policy, n).map(|d| d.as_secs()))
            .collect();
        assert_eq!(
            waits,
            [
                None,
                None,
                Some(1),
                Some(2),
                Some(4),
                Some(512),
                Some(900),
                Some(900)
            ]
        );
    }
}
