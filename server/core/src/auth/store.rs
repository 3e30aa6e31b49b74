//! The queries behind authentication: users, sessions, refresh tokens, login attempts.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::caller::Caller;
use crate::db::schema::{login_attempts, refresh_tokens, sessions, user_villages, users};
use crate::db::{write_transaction, DbConnection};
use crate::domain::{DivisionCode, Role};
use crate::error::{ApiError, ApiResult, ErrorCode};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct UserRow {
    pub id: String,
    pub phone: String,
    pub name: String,
    pub role: String,
    pub county_code: Option<String>,
    pub password_hash: String,
    pub active: bool,
    /// Set by a password reset: the user must choose a new password before anything else.
    pub must_change_password: bool,
    /// When that reset was made: its one-time password expires after
    /// [`password::ONE_TIME_VALID_HOURS`](super::password::ONE_TIME_VALID_HOURS).
    pub password_reset_at: Option<chrono::NaiveDateTime>,
}

impl UserRow {
    /// Whether the password is a reset's one-time password past its time.
    pub fn one_time_password_expired(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        let valid = chrono::Duration::hours(super::password::ONE_TIME_VALID_HOURS);
        self.must_change_password
            && self
                .password_reset_at
                .is_some_and(|at| at.and_utc() + valid < now)
    }
}

impl UserRow {
    pub fn role(&self) -> ApiResult<Role> {
        Role::parse(&self.role).ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "user {} has unknown role {}",
                self.id,
                self.role
            ))
        })
    }
}

pub fn find_user_by_phone(conn: &mut DbConnection, phone: &str) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::phone.eq(phone))
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

pub fn village_codes_of(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<String>> {
    user_villages::table
        .filter(user_villages::user_id.eq(user_id))
        .select(user_villages::village_code)
        .order(user_villages::village_code)
        .load(conn)
}

/// Builds the caller of a request from the token's user and session, refusing (403
/// `password_change_required`) a user who must change their password first.
pub fn load_caller(conn: &mut DbConnection, user_id: &str, session_id: &str) -> ApiResult<Caller> {
    let (caller, must_change_password) = load_session(conn, user_id, session_id)?;
    if must_change_password {
        return Err(password_change_required());
    }
    Ok(caller)
}

/// The refusal of every request but the password change itself (and `/me`, logout) while a
/// reset password awaits its replacement.
pub fn password_change_required() -> ApiError {
    ApiError::forbidden(
        ErrorCode::PasswordChangeRequired,
        "密码已由管理员重置，请先修改密码（POST /api/v1/me/password）再继续使用",
    )
}

/// The caller of a token's user and session, and whether they must change their password
/// before anything else. A disabled account is refused before its (revoked) session is
/// looked at, so its tokens answer `account_disabled`, not `session_revoked`.
pub fn load_session(
    conn: &mut DbConnection,
    user_id: &str,
    session_id: &str,
) -> ApiResult<(Caller, bool)> {
    let found: Option<(UserRow, Option<NaiveDateTime>)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq(session_id))
        .filter(sessions::user_id.eq(user_id))
        .select((UserRow::as_select(), sessions::revoked_at))
        .first(conn)
        .optional()?;
    let (user, revoked_at) = found.ok_or_else(|| {
        ApiError::unauthenticated(ErrorCode::SessionRevoked, "该登录会话已不存在，请重新登录")
    })?;
    if !user.active {
        return Err(ApiError::unauthenticated(
            ErrorCode::AccountDisabled,
            "该账号已停用，请联系管理员",
        ));
    }
    if revoked_at.is_some() {
        return Err(ApiError::unauthenticated(
            ErrorCode::SessionRevoked,
            "该登录会话已结束，请重新登录",
        ));
    }
    let must_change = user.must_change_password;
    Ok((caller_from(conn, user, session_id.to_owned())?, must_change))
}

pub fn caller_from(
    conn: &mut DbConnection,
    user: UserRow,
    session_id: String,
) -> ApiResult<Caller> {
    let role = user.role()?;
    let village_codes = village_codes_of(conn, &user.id)?
        .iter()
        .map(|c| {
            DivisionCode::parse(c)
                .map_err(|e| ApiError::internal(anyhow::anyhow!("stored village code {c}: {e}")))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let county_code = user
        .county_code
        .as_deref()
        .map(|c| {
            DivisionCode::parse(c)
                .map_err(|e| ApiError::internal(anyhow::anyhow!("stored county code {c}: {e}")))
        })
        .transpose()?;
    Ok(Caller {
        user_id: user.id,
        session_id,
        name: user.name,
        phone: user.phone,
        role,
        county_code,
        village_codes,
    })
}

/// How long login attempts are kept; no limit looks further back.
pub const ATTEMPT_RETENTION: chrono::Duration = chrono::Duration::days(1);

/// Failed logins that count against a throttling key or a phone now: how many, and the
/// earliest and latest of them.
pub struct FailureCount {
    pub count: i64,
    pub oldest: Option<NaiveDateTime>,
    pub latest: Option<NaiveDateTime>,
}

/// Failures since `since` and since the key's last success of one throttling key: `phone` from
/// `addr` on the known device `device`, or, without one, from devices not known to the account.
pub fn failures_for_key(
    conn: &mut DbConnection,
    phone: &str,
    addr: &str,
    device: Option<&str>,
    since: NaiveDateTime,
) -> QueryResult<FailureCount> {
    let key = || {
        let attempts = login_attempts::table
            .filter(login_attempts::phone.eq(phone))
            .filter(login_attempts::client_addr.eq(addr))
            .into_boxed();
        match device {
            Some(device) => attempts.filter(login_attempts::device_id.eq(device)),
            None => attempts.filter(login_attempts::device_id.is_null()),
        }
    };
    let last_success: Option<NaiveDateTime> = key()
        .filter(login_attempts::succeeded.eq(true))
        .filter(login_attempts::attempted_at.ge(since))
        .select(diesel::dsl::max(login_attempts::attempted_at))
        .first(conn)?;
    let since = last_success.map_or(since, |s| s.max(since));
    count_failures(conn, key().filter(login_attempts::attempted_at.gt(since)))
}

/// Failures of `phone` from every address and device since `since`. A success does not reset
/// them: the owner logging in must not hand a distributed guesser a fresh allowance.
pub fn failures_for_phone(
    conn: &mut DbConnection,
    phone: &str,
    since: NaiveDateTime,
) -> QueryResult<FailureCount> {
    let attempts = login_attempts::table
        .filter(login_attempts::phone.eq(phone))
        .filter(login_attempts::attempted_at.ge(since))
        .into_boxed();
    count_failures(conn, attempts)
}

type Attempts<'a> = login_attempts::BoxedQuery<'a, <DbConnection as diesel::Connection>::Backend>;

/// The failures among `attempts`: how many, the earliest and the latest.
fn count_failures(conn: &mut DbConnection, attempts: Attempts<'_>) -> QueryResult<FailureCount> {
    let (count, oldest, latest) = attempts
        .filter(login_attempts::succeeded.eq(false))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(login_attempts::attempted_at),
            diesel::dsl::max(login_attempts::attempted_at),
        ))
        .first::<(i64, Option<NaiveDateTime>, Option<NaiveDateTime>)>(conn)?;
    Ok(FailureCount {
        count,
        oldest,
        latest,
    })
}

/// The phone numbers that failed from one address since `since`.
pub struct AddrFailures {
    /// How many distinct phone numbers.
    pub phones: i64,
    /// Whether the phone now trying is one of them.
    pub includes: bool,
    pub oldest: Option<NaiveDateTime>,
}

pub fn failures_for_addr(
    conn: &mut DbConnection,
    addr: &str,
    phone: &str,
    since: NaiveDateTime,
) -> QueryResult<AddrFailures> {
    let failed = || {
        login_attempts::table
            .filter(login_attempts::client_addr.eq(addr))
            .filter(login_attempts::succeeded.eq(false))
            .filter(login_attempts::attempted_at.ge(since))
    };
    let (phones, oldest) = failed()
        .select((
            diesel::dsl::count(login_attempts::phone).aggregate_distinct(),
            diesel::dsl::min(login_attempts::attempted_at),
        ))
        .first::<(i64, Option<NaiveDateTime>)>(conn)?;
    let includes = diesel::select(diesel::dsl::exists(
        failed().filter(login_attempts::phone.eq(phone)),
    ))
    .get_result(conn)?;
    Ok(AddrFailures {
        phones,
        includes,
        oldest,
    })
}

/// Whether `device_id` has logged in to the account before (an open or an ended session).
pub fn is_known_device(
    conn: &mut DbConnection,
    user_id: &str,
    device_id: &str,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::device_id.eq(device_id)),
    ))
    .get_result(conn)
}

/// Makes the login attempts of one phone number wait for each other until the end of the
/// transaction, across connections and server processes, so that concurrent guesses cannot
/// all pass the throttle before any is counted. SQLite writers are serialised already (`BEGIN
/// IMMEDIATE`); PostgreSQL takes an advisory lock keyed by the phone number.
pub fn lock_phone_attempts(conn: &mut DbConnection, phone: &str) -> QueryResult<()> {
    if let DbConnection::Postgresql(pg) = conn {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("taizhang/login-attempts/{phone}"));
        let key = i64::from_be_bytes(std::array::from_fn(|i| digest[i]));
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<diesel::sql_types::BigInt, _>(key)
            .execute(pg)?;
    }
    Ok(())
}

/// Turns an attempt recorded as failed into a success (the password was right).
pub fn mark_attempt_succeeded(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    diesel::update(login_attempts::table.find(id))
        .set(login_attempts::succeeded.eq(true))
        .execute(conn)?;
    Ok(())
}

/// Records a login attempt (with the device when it is a known one, the key it is throttled
/// under) and drops this phone's and address's attempts older than [`ATTEMPT_RETENTION`].
/// Returns its id.
pub fn record_attempt(
    conn: &mut DbConnection,
    phone: &str,
    addr: &str,
    known_device: Option<&str>,
    now: DateTime<Utc>,
    succeeded: bool,
) -> QueryResult<String> {
    let now = now.naive_utc();
    let expired = now - ATTEMPT_RETENTION;
    diesel::delete(
        login_attempts::table
            .filter(login_attempts::phone.eq(phone))
            .filter(login_attempts::attempted_at.lt(expired)),
    )
    .execute(conn)?;
    diesel::delete(
        login_attempts::table
            .filter(login_attempts::client_addr.eq(addr))
            .filter(login_attempts::attempted_at.lt(expired)),
    )
    .execute(conn)?;
    let id = uuid::Uuid::now_v7().to_string();
    diesel::insert_into(login_attempts::table)
        .values((
            login_attempts::id.eq(&id),
            login_attempts::phone.eq(phone),
            login_attempts::client_addr.eq(addr),
            login_attempts::attempted_at.eq(now),
            login_attempts::succeeded.eq(succeeded),
            login_attempts::device_id.eq(known_device),
        ))
        .execute(conn)?;
    Ok(id)
}

/// Opens a session on a device and issues its first refresh token.
pub fn open_session(
    conn: &mut DbConnection,
    user_id: &str,
    device_id: &str,
    refresh_hash: &str,
    now: DateTime<Utc>,
    refresh_ttl: chrono::Duration,
) -> QueryResult<String> {
    let session_id = uuid::Uuid::now_v7().to_string();
    let now_naive = now.naive_utc();
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(&session_id),
            sessions::user_id.eq(user_id),
            sessions::device_id.eq(device_id),
            sessions::created_at.eq(now_naive),
            sessions::last_used_at.eq(now_naive),
        ))
        .execute(conn)?;
    insert_refresh_token(conn, &session_id, refresh_hash, now, refresh_ttl)?;
    Ok(session_id)
}

fn insert_refresh_token(
    conn: &mut DbConnection,
    session_id: &str,
    hash: &str,
    now: DateTime<Utc>,
    ttl: chrono::Duration,
) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_hash.eq(hash),
            refresh_tokens::session_id.eq(session_id),
            refresh_tokens::issued_at.eq(now.naive_utc()),
            refresh_tokens::expires_at.eq((now + ttl).naive_utc()),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn revoke_session(
    conn: &mut DbConnection,
    session_id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        sessions::table
            .filter(sessions::id.eq(session_id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(now.naive_utc()),
        sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)
}

/// Ends every open session of a user (each a refresh-token family) but `keep`, if given: their
/// refresh tokens and access tokens stop working at once. Returns how many ended.
pub fn revoke_user_sessions(
    conn: &mut DbConnection,
    user_id: &str,
    keep: Option<&str>,
    reason: &str,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let mut open = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .select(sessions::id)
        .into_boxed();
    if let Some(keep) = keep {
        open = open.filter(sessions::id.ne(keep));
    }
    let ids: Vec<String> = open.load(conn)?;
    diesel::update(sessions::table.filter(sessions::id.eq_any(&ids)))
        .set((
            sessions::revoked_at.eq(now.naive_utc()),
            sessions::revoked_reason.eq(reason),
        ))
        .execute(conn)
}

/// What presenting a refresh token led to.
pub enum Rotation {
    /// The token was valid: it is now spent and `new_hash` replaces it.
    Rotated { user: UserRow, session_id: String },
    /// The token had been spent before: the whole session was revoked.
    Reused,
    /// Unknown, expired, or its session already ended.
    Invalid(ErrorCode, &'static str),
}

/// Spends a refresh token and issues its successor, in one transaction. A token presented a
/// second time (stolen, or replayed by a confused client) revokes its whole session; of two
/// concurrent presentations only one can spend it, the other counts as reuse.
pub fn rotate_refresh_token(
    conn: &mut DbConnection,
    presented_hash: &str,
    new_hash: &str,
    now: DateTime<Utc>,
    ttl: chrono::Duration,
) -> ApiResult<Rotation> {
    write_transaction(conn, |conn| {
        let found: Option<(String, NaiveDateTime, Option<NaiveDateTime>)> = refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(presented_hash))
            .select((
                refresh_tokens::session_id,
                refresh_tokens::expires_at,
                refresh_tokens::used_at,
            ))
            .first(conn)
            .optional()?;
        let Some((session_id, expires_at, used_at)) = found else {
            return Ok(Rotation::Invalid(
                ErrorCode::InvalidRefreshToken,
                "刷新令牌无效，请重新登录",
            ));
        };
        let (user, revoked_at): (UserRow, Option<NaiveDateTime>) = sessions::table
            .inner_join(users::table)
            .filter(sessions::id.eq(&session_id))
            .select((UserRow::as_select(), sessions::revoked_at))
            .first(conn)?;
        if !user.active {
            return Ok(Rotation::Invalid(
                ErrorCode::AccountDisabled,
                "该账号已停用，请联系管理员",
            ));
        }
        if revoked_at.is_some() {
            return Ok(Rotation::Invalid(
                ErrorCode::SessionRevoked,
                "该登录会话已结束，请重新登录",
            ));
        }
        if used_at.is_some() {
            revoke_session(conn, &session_id, "refresh_token_reused", now)?;
            return Ok(Rotation::Reused);
        }
        if expires_at <= now.naive_utc() {
            return Ok(Rotation::Invalid(
                ErrorCode::InvalidRefreshToken,
                "刷新令牌已过期，请重新登录",
            ));
        }
        let spent = diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq(presented_hash))
                .filter(refresh_tokens::used_at.is_null()),
        )
        .set(refresh_tokens::used_at.eq(now.naive_utc()))
        .execute(conn)?;
        if spent != 1 {
            revoke_session(conn, &session_id, "refresh_token_reused", now)?;
            return Ok(Rotation::Reused);
        }
        insert_refresh_token(conn, &session_id, new_hash, now, ttl)?;
        diesel::update(sessions::table.filter(sessions::id.eq(&session_id)))
            .set(sessions::last_used_at.eq(now.naive_utc()))
            .execute(conn)?;
        Ok(Rotation::Rotated { user, session_id })
    })
}
