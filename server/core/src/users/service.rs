//! Accounts for the administration API and the console: the list a reviewer or the city
//! administrator may see, one account, creation, edits, password resets (the rules are in
//! [`super::manage`]) and the caller's own password change.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::manage::{self, Actor, UserChanges};
use super::{create as store, validate, NewUserInput};
use crate::auth::{password, AuthPolicy, Caller, ScopeLevel};
use crate::db::schema::{user_villages, users};
use crate::db::{Db, DbConnection};
use crate::domain::{DivisionCode, Role, Rule};
use crate::error::{ApiError, ApiResult, FieldError};

#[derive(Debug, Serialize, ToSchema)]
pub struct UserSummary {
    pub id: String,
    pub phone: String,
    pub name: String,
    pub role: Role,
    pub role_label: String,
    pub county_code: Option<String>,
    pub village_codes: Vec<String>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    /// True after a password reset, until the user sets a new password.
    pub must_change_password: bool,
    /// When the user last set their own password (absent: never since creation or reset).
    pub password_changed_at: Option<DateTime<Utc>>,
    /// When the account was deactivated (absent while active).
    pub deactivated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub count: usize,
    pub users: Vec<UserSummary>,
}

/// A user as the list shows it.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct UserRow {
    id: String,
    phone: String,
    name: String,
    role: String,
    county_code: Option<String>,
    active: bool,
    created_at: NaiveDateTime,
    must_change_password: bool,
    password_changed_at: Option<NaiveDateTime>,
    deactivated_at: Option<NaiveDateTime>,
}

fn summaries(conn: &mut DbConnection, rows: Vec<UserRow>) -> ApiResult<Vec<UserSummary>> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut villages: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (user, village) in user_villages::table
        .filter(user_villages::user_id.eq_any(&ids))
        .order((user_villages::user_id, user_villages::village_code))
        .load::<(String, String)>(conn)?
    {
        villages.entry(user).or_default().push(village);
    }
    rows.into_iter()
        .map(|r| {
            let role = Role::parse(&r.role).ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("user {} has role {}", r.id, r.role))
            })?;
            Ok(UserSummary {
                village_codes: villages.remove(&r.id).unwrap_or_default(),
                id: r.id,
                phone: r.phone,
                name: r.name,
                role,
                role_label: role.label().to_owned(),
                county_code: r.county_code,
                active: r.active,
                created_at: r.created_at.and_utc(),
                must_change_password: r.must_change_password,
                password_changed_at: r.password_changed_at.map(|t| t.and_utc()),
                deactivated_at: r.deactivated_at.map(|t| t.and_utc()),
            })
        })
        .collect()
}

/// Which accounts to list; absent parts admit every account.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub county: Option<DivisionCode>,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

/// The accounts the caller may see, by phone number: all of them for the city administrator,
/// the county's for a county reviewer; field users are refused (403). A county outside the
/// caller's scope is refused (403 `out_of_scope`).
pub async fn list(db: &Db, caller: &Caller, filter: UserFilter) -> ApiResult<UserList> {
    caller.require_role(&[Role::CityAdmin, Role::CountyReviewer])?;
    if let Some(county) = &filter.county {
        caller.require_county(county)?;
    }
    let scope = match caller.scope_level() {
        ScopeLevel::County => caller.county_code.clone(),
        _ => None,
    };
    let list = db.run(move |conn| query(conn, scope, &filter)).await?;
    Ok(UserList {
        count: list.len(),
        users: list,
    })
}

/// The accounts of `within` (every county when none) that the filter admits, by phone number:
/// the list behind [`list`] and `taizhang user list`.
pub fn query(
    conn: &mut DbConnection,
    within: Option<DivisionCode>,
    filter: &UserFilter,
) -> ApiResult<Vec<UserSummary>> {
    let mut query = users::table
        .select(UserRow::as_select())
        .order(users::phone)
        .into_boxed();
    if let Some(county) = within {
        query = query.filter(users::county_code.eq(county.as_str().to_owned()));
    }
    if let Some(county) = &filter.county {
        query = query.filter(users::county_code.eq(county.as_str().to_owned()));
    }
    if let Some(role) = filter.role {
        query = query.filter(users::role.eq(role.as_str()));
    }
    if let Some(active) = filter.active {
        query = query.filter(users::active.eq(active));
    }
    let rows: Vec<UserRow> = query.load(conn)?;
    summaries(conn, rows)
}

/// One account as the list shows it.
pub fn summary(conn: &mut DbConnection, id: &str) -> ApiResult<UserSummary> {
    let row: UserRow = users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ApiError::NotFound(format!("没有编号为 {id} 的用户")))?;
    let mut list = summaries(conn, vec![row])?;
    list.pop()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("user {id} vanished")))
}

/// One account, for the city administrator or a reviewer of its county.
pub async fn get(db: &Db, caller: &Caller, id: String) -> ApiResult<UserSummary> {
    caller.require_role(&[Role::CityAdmin, Role::CountyReviewer])?;
    let caller = caller.clone();
    db.run(move |conn| {
        let account = manage::account(conn, &id)?;
        manage::require_reader(&caller, &account)?;
        summary(conn, &id)
    })
    .await
}

/// Edits an account (see [`manage`] for who may change what); answers it as it is now.
pub async fn update(
    db: &Db,
    caller: &Caller,
    id: String,
    changes: UserChanges,
    how: &'static str,
) -> ApiResult<UserSummary> {
    caller.require_role(&[Role::CityAdmin, Role::CountyReviewer])?;
    let by = caller.clone();
    let summary = db
        .write(move |conn| {
            manage::update(conn, Actor::Caller(&by), &id, &changes, how)?;
            summary(conn, &id)
        })
        .await?;
    tracing::info!(by = %caller.user_id, user_id = %summary.id, active = summary.active, "user changed");
    Ok(summary)
}

/// A password reset's answer: the one-time password, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordReset {
    pub user: UserSummary,
    /// Give it to the user in person or by phone; it is not stored and cannot be shown again.
    /// The user must replace it at the next login.
    #[schema(example = "k7dq-m2xa-9fpe")]
    pub one_time_password: String,
    /// After this the one-time password no longer logs in (401 `one_time_password_expired`);
    /// the administrator resets again.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Resets an account's password (city administrator): a one-time password, every session of
/// the account ended.
pub async fn reset_password(
    db: &Db,
    caller: &Caller,
    id: String,
    how: &'static str,
) -> ApiResult<PasswordReset> {
    caller.require_role(&[Role::CityAdmin])?;
    let by = caller.clone();
    let reset = db
        .write(move |conn| {
            let one_time_password = manage::reset_password(conn, Actor::Caller(&by), &id, how)?;
            let valid = chrono::Duration::hours(crate::auth::password::ONE_TIME_VALID_HOURS);
            Ok(PasswordReset {
                user: summary(conn, &id)?,
                one_time_password,
                expires_at: chrono::Utc::now() + valid,
            })
        })
        .await?;
    tracing::info!(by = %caller.user_id, user_id = %reset.user.id, "password reset");
    Ok(reset)
}

/// The caller's password change as asked for.
#[derive(Debug, Clone, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    /// 8 to 128 characters, other than the current one.
    pub new_password: String,
}

/// Changes the caller's own password: the current one checked as a login checks it (throttled
/// per phone and address, 429), the new one against the policy. Clears a reset's forced change
/// and ends the caller's other sessions.
pub async fn change_password(
    db: &Db,
    policy: &AuthPolicy,
    caller: &Caller,
    input: PasswordChange,
    addr: &str,
) -> ApiResult<()> {
    let mut errors = Vec::new();
    if input.current_password.is_empty() {
        errors.push(FieldError::new(
            "current_password",
            Rule::Required,
            "不能为空",
        ));
    } else if input.current_password.len() > 1024 {
        errors.push(FieldError::new(
            "current_password",
            Rule::TooLong,
            "最多 1024 字节",
        ));
    }
    if let Err(e) = password::check_policy(&input.new_password) {
        errors.push(FieldError::from_invalid("new_password", e));
    } else if input.new_password == input.current_password {
        errors.push(FieldError::new(
            "new_password",
            Rule::SamePassword,
            "新密码须与当前密码不同",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let right = crate::auth::service::verify_current_password(
        db,
        policy,
        caller,
        input.current_password,
        addr,
    )
    .await?;
    if !right {
        return Err(ApiError::field(
            "current_password",
            Rule::WrongPassword,
            "当前密码不正确",
        ));
    }
    let by = caller.clone();
    db.write(move |conn| manage::store_own_password(conn, &by, &input.new_password))
        .await?;
    tracing::info!(user_id = %caller.user_id, "password changed");
    Ok(())
}

/// Creates an account (city administrator only), audited as done by the caller through `how`.
pub async fn create(
    db: &Db,
    caller: &Caller,
    input: NewUserInput,
    how: &'static str,
) -> ApiResult<UserSummary> {
    caller.require_role(&[Role::CityAdmin])?;
    let by = caller.user_id.clone();
    let summary = db
        .write(move |conn| {
            let user = validate(conn, &input)?;
            let id = store(conn, &user, Some(&by), how)?;
            summary(conn, &id)
        })
        .await?;
    tracing::info!(by = %caller.user_id, user_id = %summary.id, role = %summary.role, "user created");
    Ok(summary)
}
