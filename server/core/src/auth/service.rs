//! What the API and the console do with accounts: log in (throttled), refresh tokens, log out,
//! and describe the caller (`/me`), with the answers they give.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::caller::{Caller, ScopeLevel};
use super::store::{self, Rotation, UserRow};
use super::{password, throttle, tokens, AuthPolicy};
use crate::db::schema::{divisions, users, villages};
use crate::db::{Db, DbConnection};
use crate::domain::{DivisionCode, Phone, Role, Rule};
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError};
use crate::secrets::Keys;

/// The device id the console logs in with: shared by every browser, so never a known device.
pub const CONSOLE_DEVICE_ID: &str = "console";

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
    /// True after an administrator reset the password: until the user sets a new one with
    /// `POST /me/password`, every other endpoint but `/me` and logout answers 403
    /// `password_change_required`.
    pub must_change_password: bool,
}

/// A login as asked for, checked: the phone parsed, the password and device id within bounds.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub phone: Phone,
    pub password: String,
    /// Trimmed.
    pub device_id: String,
}

impl Credentials {
    /// Checks a login's fields; every broken rule is reported (422), each naming its field.
    pub fn parse(phone: &str, password: &str, device_id: &str) -> ApiResult<Credentials> {
        let mut errors = Vec::new();
        let phone = Phone::parse(phone)
            .map_err(|e| errors.push(FieldError::from_invalid("phone", e)))
            .ok();
        if password.is_empty() {
            errors.push(FieldError::new("password", Rule::Required, "不能为空"));
        } else if password.len() > 1024 {
            errors.push(FieldError::new("password", Rule::TooLong, "最多 1024 字节"));
        }
        let device = device_id.trim();
        if device.is_empty() || device.chars().count() > 128 {
            errors.push(FieldError::new(
                "device_id",
                Rule::Length,
                "须为 1 至 128 个字符",
            ));
        }
        match phone {
            Some(phone) if errors.is_empty() => Ok(Credentials {
                phone,
                password: password.to_owned(),
                device_id: device.to_owned(),
            }),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

/// The caller's account: role, county (with its name) and assigned villages (with theirs).
pub async fn me(db: &Db, caller: &Caller) -> ApiResult<Me> {
    let caller = caller.clone();
    db.run(move |conn| me_of(conn, &caller)).await
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
    let must_change_password = users::table
        .find(&caller.user_id)
        .select(users::must_change_password)
        .first::<bool>(conn)
        .optional()?
        .unwrap_or(false);
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
        must_change_password,
    })
}

/// Logs in from client address `addr`: throttled (429), then the password checked (401), then
/// a session opened and its tokens issued. See `throttle` for the limits.
pub async fn log_in(
    db: &Db,
    keys: &Keys,
    policy: &AuthPolicy,
    credentials: Credentials,
    addr: &str,
) -> ApiResult<TokenResponse> {
    let now = Utc::now();
    let (user, attempt_id) = count_attempt(db, policy, &credentials, addr, now).await?;
    let user = verify_password(user, credentials.password).await?;
    let refresh_token = tokens::new_refresh_token();
    let refresh_hash = tokens::refresh_token_hash(&refresh_token);
    let refresh_ttl = chrono::Duration::from_std(policy.refresh_ttl).map_err(ApiError::internal)?;
    let device_id = credentials.device_id;
    let outcome = db
        .transaction(move |conn| {
            if !user.active {
                store::mark_attempt_succeeded(conn, &attempt_id)?;
                return Ok(Err(ErrorCode::AccountDisabled));
            }
            // Counts as a failed attempt: an old one-time password is no proof.
            if user.one_time_password_expired(now) {
                return Ok(Err(ErrorCode::OneTimePasswordExpired));
            }
            store::mark_attempt_succeeded(conn, &attempt_id)?;
            let session_id =
                store::open_session(conn, &user.id, &device_id, &refresh_hash, now, refresh_ttl)?;
            let caller = store::caller_from(conn, user.clone(), session_id)?;
            let me = me_of(conn, &caller)?;
            Ok::<_, ApiError>(Ok((caller, me)))
        })
        .await?;
    let (caller, me) = match outcome {
        Ok(found) => found,
        Err(ErrorCode::OneTimePasswordExpired) => {
            return Err(ApiError::unauthenticated(
                ErrorCode::OneTimePasswordExpired,
                format!(
                    "一次性密码已过期（重置后 {} 小时内有效），请联系市级管理员重新重置密码",
                    password::ONE_TIME_VALID_HOURS
                ),
            ))
        }
        Err(code) => {
            return Err(ApiError::unauthenticated(
                code,
                "该账号已停用，请联系管理员",
            ))
        }
    };
    tracing::info!(user_id = %caller.user_id, session_id = %caller.session_id, "login");
    token_response(keys, policy, &caller, refresh_token, me, now)
}

/// Checks the throttle and counts the attempt, in one transaction, the phone's attempts one at
/// a time: concurrent guesses cannot all pass the throttle before any of them is counted. The
/// attempt counts as a failure until the password proves right.
async fn count_attempt(
    db: &Db,
    policy: &AuthPolicy,
    credentials: &Credentials,
    addr: &str,
    now: DateTime<Utc>,
) -> ApiResult<(Option<UserRow>, String)> {
    let phone = credentials.phone.as_str().to_owned();
    let device = credentials.device_id.clone();
    let addr = addr.to_owned();
    let policy = policy.clone();
    db.transaction(move |conn| {
        store::lock_phone_attempts(conn, &phone)?;
        let user = store::find_user_by_phone(conn, &phone)?;
        // Asked for unknown phones too, so the answer takes the same path either way.
        let known =
            store::is_known_device(conn, user.as_ref().map_or("", |u| u.id.as_str()), &device)?
                && user.is_some()
                && device != CONSOLE_DEVICE_ID;
        let key = known.then_some(device.as_str());
        throttle::throttle(conn, &policy, &phone, &addr, key, now.naive_utc())?;
        let attempt = store::record_attempt(conn, &phone, &addr, key, now, false)?;
        Ok::<_, ApiError>((user, attempt))
    })
    .await
}

/// The user, if the password is theirs (401 otherwise). An unknown phone costs the same time.
async fn verify_password(user: Option<UserRow>, password: String) -> ApiResult<UserRow> {
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
    match user {
        Some(user) if verified => Ok(user),
        _ => Err(ApiError::unauthenticated(
            ErrorCode::InvalidCredentials,
            "手机号或密码错误",
        )),
    }
}

fn token_response(
    keys: &Keys,
    policy: &AuthPolicy,
    caller: &Caller,
    refresh_token: String,
    me: Me,
    now: DateTime<Utc>,
) -> ApiResult<TokenResponse> {
    let access_ttl = chrono::Duration::from_std(policy.access_ttl).map_err(ApiError::internal)?;
    let access_token = tokens::issue_access(
        keys,
        &caller.user_id,
        &caller.session_id,
        caller.role,
        now,
        access_ttl,
    )?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: policy.access_ttl.as_secs(),
        refresh_token,
        refresh_expires_in: policy.refresh_ttl.as_secs(),
        user: me,
    })
}

/// Spends a refresh token for new tokens; a spent one presented again revokes its session.
pub async fn refresh(
    db: &Db,
    keys: &Keys,
    policy: &AuthPolicy,
    presented: &str,
) -> ApiResult<TokenResponse> {
    if presented.is_empty() || presented.len() > 256 {
        return Err(ApiError::field(
            "refresh_token",
            Rule::Length,
            "须为 1 至 256 个字符",
        ));
    }
    let presented_hash = tokens::refresh_token_hash(presented);
    let refresh_token = tokens::new_refresh_token();
    let new_hash = tokens::refresh_token_hash(&refresh_token);
    let ttl = chrono::Duration::from_std(policy.refresh_ttl).map_err(ApiError::internal)?;
    let now = Utc::now();
    let (caller, me) = db
        .write(move |conn| {
            match store::rotate_refresh_token(conn, &presented_hash, &new_hash, now, ttl)? {
                Rotation::Rotated { user, session_id } => {
                    let caller = store::caller_from(conn, user.clone(), session_id)?;
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
    token_response(keys, policy, &caller, refresh_token, me, now)
}

/// Ends the caller's session: its refresh token and access tokens stop working at once.
pub async fn log_out(db: &Db, caller: &Caller) -> ApiResult<()> {
    let session_id = caller.session_id.clone();
    db.write(move |conn| {
        Ok(store::revoke_session(
            conn,
            &session_id,
            "logout",
            Utc::now(),
        )?)
    })
    .await?;
    tracing::info!(user_id = %caller.user_id, session_id = %caller.session_id, "logout");
    Ok(())
}

/// Checks the caller's current password (before a password change) as a login would check it:
/// throttled per phone and address (429), counted as a failure unless right. Answers whether it
/// was right.
pub async fn verify_current_password(
    db: &Db,
    policy: &AuthPolicy,
    caller: &Caller,
    password: String,
    addr: &str,
) -> ApiResult<bool> {
    let now = Utc::now();
    let (phone, addr_owned, policy_owned) = (caller.phone.clone(), addr.to_owned(), policy.clone());
    let (user, attempt_id) = db
        .transaction(move |conn| {
            store::lock_phone_attempts(conn, &phone)?;
            let user = store::find_user_by_phone(conn, &phone)?;
            throttle::throttle(
                conn,
                &policy_owned,
                &phone,
                &addr_owned,
                None,
                now.naive_utc(),
            )?;
            let attempt = store::record_attempt(conn, &phone, &addr_owned, None, now, false)?;
            Ok::<_, ApiError>((user, attempt))
        })
        .await?;
    let Some(user) = user.filter(|u| u.id == caller.user_id) else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "user {} vanished",
            caller.user_id
        )));
    };
    let stored = user.password_hash;
    let right = tokio::task::spawn_blocking(move || password::verify(&stored, &password))
        .await
        .map_err(ApiError::internal)?;
    if right {
        db.write(move |conn| Ok(store::mark_attempt_succeeded(conn, &attempt_id)?))
            .await?;
    }
    Ok(right)
}
