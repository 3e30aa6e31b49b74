//! Changing accounts: edits (name, villages, county, active), the handover of a village to a new
//! work team, password resets and changes. The API, the console and `taizhang user …` call
//! these same functions; each change is audited in its own transaction.
//!
//! Who may do what:
//! - the city administrator (and the command line) reads and changes every account, but never
//!   deactivates or resets their own (they would lock themselves out; `/me/password` is theirs);
//! - a county reviewer reads the accounts of their county and changes the field users of it
//!   (enumerators, first secretaries): name, villages within the county, active. They never
//!   change a county and never touch reviewers or administrators; resets are the city's;
//! - field users change nothing but their own password.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{known_county, known_villages};
use crate::auth::{password, store, Caller};
use crate::db::schema::{user_villages, users};
use crate::db::{write_transaction, DbConnection};
use crate::domain::{DivisionCode, Role, Rule};
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError};

/// Who changes an account.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// A signed-in user, held to the role rules above.
    Caller(&'a Caller),
    /// `taizhang user …`, run on the server: it administers every account, and the audit log
    /// records the change as the account's own (there is no signed-in user).
    CommandLine,
}

impl Actor<'_> {
    fn id<'b>(&'b self, account: &'b str) -> &'b str {
        match self {
            Actor::Caller(c) => &c.user_id,
            Actor::CommandLine => account,
        }
    }

    fn is_self(&self, account: &str) -> bool {
        matches!(self, Actor::Caller(c) if c.user_id == account)
    }

    /// The reviewer's county when the actor is a county reviewer.
    fn reviewer_county(&self) -> Option<&DivisionCode> {
        match self {
            Actor::Caller(c) if c.role == Role::CountyReviewer => c.county_code.as_ref(),
            _ => None,
        }
    }
}

/// An edit as asked for: absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    /// 1 to 50 characters.
    #[schema(example = "王五")]
    pub name: Option<String>,
    /// Every village of an enumerator (one or more, in one county) or of a first secretary
    /// (exactly one). A village another user of the same role holds moves to this one (a work
    /// team's handover, audited as `hand_over_village` with both users); surveys, check-ins and
    /// audit entries stay with whoever made them.
    pub villages: Option<Vec<String>>,
    /// A county reviewer's county (the city administrator only); a field user's must be that
    /// of their villages.
    #[schema(example = "220802000000")]
    pub county: Option<String>,
    /// `false` deactivates the account and ends every session of it at once (its tokens answer
    /// 401 `account_disabled`); `true` reactivates it (the user logs in again).
    pub active: Option<bool>,
    /// Why, for the audit log (up to 200 characters).
    pub reason: Option<String>,
}

/// An account as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct Account {
    pub id: String,
    pub phone: String,
    pub name: String,
    pub role: String,
    pub county_code: Option<String>,
    pub active: bool,
}

impl Account {
    fn role(&self) -> ApiResult<Role> {
        Role::parse(&self.role).ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("user {} has role {}", self.id, self.role))
        })
    }

    fn who(&self) -> String {
        format!("{}（{}）", self.name, self.phone)
    }
}

/// The account with this id (404 otherwise).
pub(crate) fn account(conn: &mut DbConnection, id: &str) -> ApiResult<Account> {
    users::table
        .find(id)
        .select(Account::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ApiError::NotFound(format!("没有编号为 {id} 的用户")))
}

/// The account's id by phone number (the command line names accounts by phone).
pub fn id_by_phone(conn: &mut DbConnection, phone: &str) -> ApiResult<String> {
    let phone = crate::domain::Phone::parse(phone).map_err(|e| ApiError::invalid("phone", e))?;
    users::table
        .filter(users::phone.eq(phone.as_str()))
        .select(users::id)
        .first(conn)
        .optional()?
        .ok_or_else(|| ApiError::NotFound(format!("没有手机号为 {phone} 的用户")))
}

/// Refuses a caller who may not read the account: the city reads all, a county reviewer their
/// county's (403 `out_of_scope`), field users none (403 `forbidden_role`).
pub(crate) fn require_reader(caller: &Caller, account: &Account) -> ApiResult<()> {
    caller.require_role(&[Role::CityAdmin, Role::CountyReviewer])?;
    if caller.role == Role::CountyReviewer
        && account.county_code.as_deref() != caller.county_code.as_ref().map(|c| c.as_str())
    {
        return Err(ApiError::forbidden(
            ErrorCode::OutOfScope,
            "该用户不属于您所在的县（市、区）",
        ));
    }
    Ok(())
}

/// Refuses an actor who may not change the account (see the module's rules).
fn require_manager(actor: Actor<'_>, account: &Account, role: Role) -> ApiResult<()> {
    let Actor::Caller(caller) = actor else {
        return Ok(());
    };
    require_reader(caller, account)?;
    if caller.role == Role::CountyReviewer
        && !matches!(role, Role::Enumerator | Role::FirstSecretary)
    {
        return Err(ApiError::forbidden(
            ErrorCode::ForbiddenRole,
            "县（市、区）审核员只能管理本县（市、区）的驻村工作队员和第一书记",
        ));
    }
    Ok(())
}

/// What an edit changes, once checked: only what differs from the account as it is.
#[derive(Debug, Default)]
struct Plan {
    name: Option<String>,
    county: Option<String>,
    villages: Option<Vec<DivisionCode>>,
    active: Option<bool>,
    reason: Option<String>,
}

/// Checks an edit against the role rules and the actor's scope; every broken rule is reported.
fn plan(
    conn: &mut DbConnection,
    actor: Actor<'_>,
    account: &Account,
    role: Role,
    held: &[String],
    changes: &UserChanges,
) -> ApiResult<Plan> {
    let mut errors = Vec::new();
    let mut plan = Plan::default();
    if let Some(name) = &changes.name {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 50 {
            errors.push(FieldError::new("name", Rule::Length, "须为 1 至 50 个字符"));
        } else if name != account.name {
            plan.name = Some(name.to_owned());
        }
    }
    plan.reason = changes
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    if plan
        .reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > 200)
    {
        errors.push(FieldError::new("reason", Rule::Length, "最多 200 个字符"));
    }
    if let Some(active) = changes.active {
        if !active && actor.is_self(&account.id) {
            errors.push(FieldError::new(
                "active",
                Rule::OwnAccount,
                "不能停用自己的账号",
            ));
        } else if active != account.active {
            plan.active = Some(active);
        }
    }
    let county = match &changes.county {
        Some(raw) => known_county(conn, Some(raw), &mut errors)?,
        None => None,
    };
    let villages = match &changes.villages {
        Some(raw) => Some(known_villages(conn, raw, &mut errors)?),
        None => None,
    };
    let scope = Scope {
        actor,
        account,
        role,
        county,
        villages,
    };
    scope.check(&mut errors, &mut plan, held)?;
    if errors.is_empty() {
        Ok(plan)
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// The county and villages an edit asks for, to check against the role and the actor.
struct Scope<'a> {
    actor: Actor<'a>,
    account: &'a Account,
    role: Role,
    county: Option<DivisionCode>,
    villages: Option<Vec<DivisionCode>>,
}

impl Scope<'_> {
    fn check(
        self,
        errors: &mut Vec<FieldError>,
        plan: &mut Plan,
        held: &[String],
    ) -> ApiResult<()> {
        let current = self.account.county_code.clone();
        let asked_county = self.county.as_ref().map(|c| c.as_str().to_owned());
        // A reviewer never moves an account to another county, whatever else the edit says.
        if self.actor.reviewer_county().is_some()
            && asked_county.is_some()
            && asked_county != current
        {
            return Err(ApiError::forbidden(
                ErrorCode::ForbiddenRole,
                "县（市、区）审核员不能更改账号所属的县（市、区）",
            ));
        }
        match self.role {
            Role::CityAdmin | Role::CountyReviewer => {
                if self.villages.as_ref().is_some_and(|v| !v.is_empty()) {
                    errors.push(FieldError::new(
                        "villages",
                        Rule::ScopeMismatch,
                        format!("{}不设负责村", self.role.label()),
                    ));
                }
                if self.role == Role::CityAdmin && self.county.is_some() {
                    errors.push(FieldError::new(
                        "county",
                        Rule::ScopeMismatch,
                        "市扶贫办管理员不设县（市、区）",
                    ));
                } else if asked_county.is_some() && asked_county != current {
                    plan.county = asked_county;
                }
            }
            Role::Enumerator | Role::FirstSecretary => {
                self.field_user(errors, plan, held, current, asked_county)
            }
        }
        Ok(())
    }

    /// The villages of an enumerator or first secretary, and the county that follows from them.
    fn field_user(
        &self,
        errors: &mut Vec<FieldError>,
        plan: &mut Plan,
        held: &[String],
        current: Option<String>,
        asked_county: Option<String>,
    ) {
        let Some(villages) = &self.villages else {
            if asked_county.is_some() && asked_county != current {
                errors.push(FieldError::new(
                    "county",
                    Rule::ScopeMismatch,
                    "县（市、区）须是所负责的村所在的县（市、区）；请同时修改负责村",
                ));
            }
            return;
        };
        if let Some(own) = self.actor.reviewer_county() {
            for (i, v) in villages.iter().enumerate() {
                if &v.county() != own {
                    errors.push(FieldError::new(
                        format!("villages[{i}]"),
                        Rule::OutOfScope,
                        format!("村 {v} 不在您所在的县（市、区）"),
                    ));
                }
            }
        }
        let counties: BTreeSet<DivisionCode> = villages.iter().map(DivisionCode::county).collect();
        if self.changes_villages_count_ok(villages, errors) && counties.len() > 1 {
            errors.push(FieldError::new(
                "villages",
                Rule::OneCounty,
                "所负责的村须在同一个县（市、区）内",
            ));
        }
        let derived = counties.into_iter().next().map(|c| c.as_str().to_owned());
        if asked_county.is_some() && derived.is_some() && asked_county != derived {
            errors.push(FieldError::new(
                "county",
                Rule::ScopeMismatch,
                "县（市、区）须是所负责的村所在的县（市、区）",
            ));
        }
        let now: BTreeSet<&str> = villages.iter().map(DivisionCode::as_str).collect();
        let before: BTreeSet<&str> = held.iter().map(String::as_str).collect();
        if now != before {
            plan.villages = Some(villages.clone());
        }
        if derived.is_some() && derived != current {
            plan.county = derived;
        }
    }

    /// The number of villages the role allows; false when it is broken.
    fn changes_villages_count_ok(
        &self,
        villages: &[DivisionCode],
        errors: &mut Vec<FieldError>,
    ) -> bool {
        if villages.is_empty() {
            errors.push(FieldError::new(
                "villages",
                Rule::Required,
                "驻村工作队员和第一书记须至少负责一个村",
            ));
            return false;
        }
        if self.role == Role::FirstSecretary && villages.len() > 1 {
            errors.push(FieldError::new(
                "villages",
                Rule::OneVillage,
                "第一书记只负责一个村",
            ));
            return false;
        }
        true
    }
}

/// An audit entry to append once the change's other writes are done.
struct Pending {
    action: &'static str,
    subject_type: &'static str,
    subject_id: String,
    from_state: Option<String>,
    to_state: Option<String>,
    detail: String,
}

fn village_codes(conn: &mut DbConnection, id: &str) -> QueryResult<Vec<String>> {
    store::village_codes_of(conn, id)
}

/// Edits an account as `actor` may (see the module's rules), through `how` (the audit log says
/// which: `PATCH /api/v1/users/{id}`, the console, the command line).
pub fn update(
    conn: &mut DbConnection,
    actor: Actor<'_>,
    id: &str,
    changes: &UserChanges,
    how: &str,
) -> ApiResult<()> {
    let now = Utc::now();
    write_transaction(conn, |conn| {
        let account = account(conn, id)?;
        let role = account.role()?;
        require_manager(actor, &account, role)?;
        let held = village_codes(conn, id)?;
        let plan = plan(conn, actor, &account, role, &held, changes)?;
        let mut audit = Vec::new();
        let mut changed = Vec::new();
        if let Some(name) = &plan.name {
            diesel::update(users::table.find(id))
                .set(users::name.eq(name))
                .execute(conn)?;
            changed.push(format!("姓名：{} → {name}", account.name));
        }
        if let Some(county) = &plan.county {
            diesel::update(users::table.find(id))
                .set(users::county_code.eq(county))
                .execute(conn)?;
            let before = account.county_code.as_deref().unwrap_or("无");
            changed.push(format!("县（市、区）：{before} → {county}"));
        }
        if let Some(villages) = &plan.villages {
            hand_over(conn, &account, role, &held, villages, &mut audit)?;
            let after: Vec<&str> = villages.iter().map(DivisionCode::as_str).collect();
            changed.push(format!(
                "负责村：{} → {}",
                if held.is_empty() {
                    "无".to_owned()
                } else {
                    held.join("、")
                },
                after.join("、")
            ));
        }
        if !changed.is_empty() {
            audit.insert(
                0,
                Pending {
                    action: "update_user",
                    subject_type: "user",
                    subject_id: id.to_owned(),
                    from_state: None,
                    to_state: None,
                    detail: changed.join("；"),
                },
            );
        }
        if let Some(active) = plan.active {
            audit.push(set_active(conn, &account, active, now)?);
        }
        for entry in &audit {
            crate::audit::append(
                conn,
                &crate::audit::Entry {
                    user_id: actor.id(id),
                    action: entry.action,
                    subject_type: entry.subject_type,
                    subject_id: &entry.subject_id,
                    from_state: entry.from_state.as_deref(),
                    to_state: entry.to_state.as_deref(),
                    reason: plan.reason.as_deref(),
                    detail: Some(&format!("{}；经由 {how}", entry.detail)),
                },
            )?;
        }
        Ok(())
    })
}

/// Gives the account exactly `villages`: the ones it leaves are dropped, each new one is taken
/// from whoever of the same role held it (a handover, one audit entry per village).
fn hand_over(
    conn: &mut DbConnection,
    account: &Account,
    role: Role,
    held: &[String],
    villages: &[DivisionCode],
    audit: &mut Vec<Pending>,
) -> ApiResult<()> {
    let now: Vec<&str> = villages.iter().map(DivisionCode::as_str).collect();
    diesel::delete(
        user_villages::table
            .filter(user_villages::user_id.eq(&account.id))
            .filter(user_villages::village_code.ne_all(&now)),
    )
    .execute(conn)?;
    for village in now.iter().filter(|v| !held.iter().any(|h| h == *v)) {
        let previous: Vec<Account> = users::table
            .inner_join(user_villages::table)
            .filter(user_villages::village_code.eq(*village))
            .filter(users::role.eq(role.as_str()))
            .filter(users::id.ne(&account.id))
            .select(Account::as_select())
            .load(conn)?;
        for from in &previous {
            diesel::delete(
                user_villages::table
                    .filter(user_villages::user_id.eq(&from.id))
                    .filter(user_villages::village_code.eq(*village)),
            )
            .execute(conn)?;
            audit.push(Pending {
                action: "hand_over_village",
                subject_type: "village",
                subject_id: (*village).to_owned(),
                from_state: Some(from.id.clone()),
                to_state: Some(account.id.clone()),
                detail: format!(
                    "{}村 {village} 由 {} 移交给 {}；此前的调查、考勤与审计记录仍记在原负责人名下",
                    role.label(),
                    from.who(),
                    account.who()
                ),
            });
        }
        diesel::insert_into(user_villages::table)
            .values((
                user_villages::user_id.eq(&account.id),
                user_villages::village_code.eq(*village),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Deactivates (ending every session at once) or reactivates an account.
fn set_active(
    conn: &mut DbConnection,
    account: &Account,
    active: bool,
    now: DateTime<Utc>,
) -> ApiResult<Pending> {
    diesel::update(users::table.find(&account.id))
        .set((
            users::active.eq(active),
            users::deactivated_at.eq((!active).then_some(now.naive_utc())),
        ))
        .execute(conn)?;
    let detail = if active {
        "账号已重新启用，须重新登录".to_owned()
    } else {
        let ended = store::revoke_user_sessions(conn, &account.id, None, "account_disabled", now)?;
        format!("账号已停用，结束登录会话 {ended} 个")
    };
    Ok(Pending {
        action: if active {
            "reactivate_user"
        } else {
            "deactivate_user"
        },
        subject_type: "user",
        subject_id: account.id.clone(),
        from_state: Some(if active { "inactive" } else { "active" }.to_owned()),
        to_state: Some(if active { "active" } else { "inactive" }.to_owned()),
        detail,
    })
}

/// Resets an account's password to a new one-time password, returned to show the user once:
/// every session of the account ends, and the next login must set a new password. The city
/// administrator (or the command line) only, and not for their own account.
pub fn reset_password(
    conn: &mut DbConnection,
    actor: Actor<'_>,
    id: &str,
    how: &str,
) -> ApiResult<String> {
    if let Actor::Caller(caller) = actor {
        caller.require_role(&[Role::CityAdmin])?;
    }
    if actor.is_self(id) {
        return Err(ApiError::field(
            "id",
            Rule::OwnAccount,
            "不能重置自己的密码，请用 POST /api/v1/me/password 修改",
        ));
    }
    let one_time = password::one_time();
    let hash = password::hash(&one_time).map_err(ApiError::internal)?;
    let now = Utc::now();
    write_transaction(conn, |conn| {
        let account = account(conn, id)?;
        diesel::update(users::table.find(id))
            .set((
                users::password_hash.eq(&hash),
                users::must_change_password.eq(true),
                users::password_reset_at.eq(now.naive_utc()),
            ))
            .execute(conn)?;
        let ended = store::revoke_user_sessions(conn, id, None, "password_reset", now)?;
        crate::audit::append(
            conn,
            &crate::audit::Entry {
                user_id: actor.id(id),
                action: "reset_password",
                subject_type: "user",
                subject_id: id,
                detail: Some(&format!(
                    "为 {} 生成一次性密码（{} 小时内有效），下次登录须修改密码；结束登录会话 {ended} 个；经由 {how}",
                    account.who(),
                    password::ONE_TIME_VALID_HOURS
                )),
                ..Default::default()
            },
        )?;
        Ok(one_time.clone())
    })
}

/// Stores the caller's new password (its current one checked already): clears a reset's
/// forced change and ends the caller's other sessions, keeping this one.
pub fn store_own_password(conn: &mut DbConnection, caller: &Caller, new: &str) -> ApiResult<()> {
    let hash = password::hash(new).map_err(ApiError::internal)?;
    let now = Utc::now();
    write_transaction(conn, |conn| {
        diesel::update(users::table.find(&caller.user_id))
            .set((
                users::password_hash.eq(&hash),
                users::must_change_password.eq(false),
                users::password_changed_at.eq(now.naive_utc()),
                users::password_reset_at.eq(None::<chrono::NaiveDateTime>),
            ))
            .execute(conn)?;
        let ended = store::revoke_user_sessions(
            conn,
            &caller.user_id,
            Some(&caller.session_id),
            "password_changed",
            now,
        )?;
        crate::audit::append(
            conn,
            &crate::audit::Entry {
                user_id: &caller.user_id,
                action: "change_password",
                subject_type: "user",
                subject_id: &caller.user_id,
                detail: Some(&format!("本人修改密码；结束其他登录会话 {ended} 个")),
                ..Default::default()
            },
        )?;
        Ok(())
    })
}
