//! The monthly dispatch (月调度), after DHIS2's data approval: each county's reviewer signs off
//! the county's month ([`super::signoff`]), then a city admin closes it, freezing every
//! village's figures as a numbered snapshot. Later changes to that month's surveys do not alter
//! it; they count from the next month on. A city admin may reopen a closed month with a reason:
//! its snapshot is kept (listed with its version), the counties sign off again, and the next
//! close makes the next version.
//!
//! The rules: only a month that has ended (Asia/Shanghai) may be signed off or closed, with no
//! override (an unfinished month has no month-end figures). A close needs every county's
//! standing sign-off and no survey of the month awaiting review, unless the city gives a
//! reason; the close then records what was missing. Every step is audited.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cache;
use super::signoff::{self, CountySignoff};
use crate::audit;
use crate::auth::Caller;
use crate::db::schema::{
    divisions, household_surveys, month_closes, month_snapshots, users, village_surveys, villages,
};
use crate::db::{write_transaction, DbConnection};
use crate::domain::{time, Month, MonthStatus, ReviewStatus, Rule};
use crate::error::{ApiError, ApiResult, ErrorCode};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonthState {
    #[schema(example = "2020-07")]
    pub month: String,
    /// `open` (figures live) or `closed` (frozen).
    #[schema(example = "closed")]
    pub state: MonthStatus,
    pub closed_at: Option<DateTime<Utc>>,
    pub closed_by: Option<String>,
    pub closed_by_name: Option<String>,
    /// The standing close's snapshot version (1 for the first close, 2 after a reopen …).
    pub version: Option<i32>,
    /// Closes made so far, the reopened ones included.
    pub closes: i32,
}

/// One close of a month and its snapshot, with the reopen that set it aside, if any.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CloseRecord {
    /// The snapshot's number, from 1.
    pub version: i32,
    pub closed_at: DateTime<Utc>,
    pub closed_by: String,
    pub closed_by_name: String,
    /// The city's reason for closing without every sign-off or with surveys awaiting review.
    pub override_reason: Option<String>,
    /// What was missing at an overridden close, in Chinese.
    pub missing: Option<String>,
    /// Villages in the snapshot.
    pub villages: i32,
    pub reopened_at: Option<DateTime<Utc>>,
    pub reopened_by: Option<String>,
    pub reopened_by_name: Option<String>,
    pub reopen_reason: Option<String>,
    /// Whether this is the snapshot the month is read from now.
    pub standing: bool,
}

/// A month's dispatch: each county's sign-off (a county reviewer sees their own county only),
/// the surveys awaiting review, and every close with its snapshot.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonthDetail {
    #[schema(example = "2020-07")]
    pub month: String,
    pub state: MonthStatus,
    /// Whether the month has ended (Asia/Shanghai): only then may it be signed off and closed.
    pub ended: bool,
    /// When it ends: local midnight starting the next month.
    pub ends_at: DateTime<Utc>,
    /// The sign-off round: the version the next close makes (the standing one's if closed).
    /// A reopen starts a new round, so sign-offs must be given again.
    pub round: i32,
    pub counties: Vec<CountySignoff>,
    /// Counties of the city, and how many of them have a standing sign-off this round.
    pub counties_total: usize,
    pub counties_signed: usize,
    /// Surveys of the month awaiting review (`submitted` or `reopened`) in the counties listed.
    pub pending_surveys: i64,
    /// Every close, first to last.
    pub closes: Vec<CloseRecord>,
}

/// A close: `reason` closes without every sign-off or with surveys awaiting review (audited,
/// naming what was missing).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    /// At most 500 characters.
    pub reason: Option<String>,
}

/// A reopen, with its reason (required).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReopenRequest {
    /// Why the month is reopened (1–500 characters).
    pub reason: Option<String>,
}

/// A free-text note or reason: trimmed, required or not, at most 500 characters.
pub fn checked_text(field: &str, text: Option<&str>, required: bool) -> ApiResult<Option<String>> {
    let text = text.map(str::trim).filter(|r| !r.is_empty());
    if required && text.is_none() {
        return Err(ApiError::field(field, Rule::Required, "请填写理由"));
    }
    if text.is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::field(field, Rule::Length, "最多 500 个字符"));
    }
    Ok(text.map(str::to_owned))
}

/// A close as stored, with the names of who closed and reopened it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = month_closes, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct CloseRow {
    month: String,
    version: i32,
    closed_at: NaiveDateTime,
    closed_by: String,
    override_reason: Option<String>,
    missing: Option<String>,
    villages: i32,
    reopened_at: Option<NaiveDateTime>,
    reopened_by: Option<String>,
    reopen_reason: Option<String>,
}

fn closes(conn: &mut DbConnection, month: Option<&str>) -> QueryResult<Vec<CloseRow>> {
    let mut q = month_closes::table
        .order((month_closes::month, month_closes::version))
        .select(CloseRow::as_select())
        .into_boxed();
    if let Some(m) = month {
        q = q.filter(month_closes::month.eq(m.to_owned()));
    }
    q.load(conn)
}

/// Names of users by id.
pub(super) fn user_names(
    conn: &mut DbConnection,
    ids: Vec<String>,
) -> QueryResult<BTreeMap<String, String>> {
    Ok(users::table
        .filter(users::id.eq_any(ids))
        .select((users::id, users::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect())
}

fn state_of(rows: &[&CloseRow], month: String, names: &BTreeMap<String, String>) -> MonthState {
    let standing = rows.iter().find(|c| c.reopened_at.is_none());
    MonthState {
        month,
        state: if standing.is_some() {
            MonthStatus::Closed
        } else {
            MonthStatus::Open
        },
        closed_at: standing.map(|c| c.closed_at.and_utc()),
        closed_by: standing.map(|c| c.closed_by.clone()),
        closed_by_name: standing.and_then(|c| names.get(&c.closed_by).cloned()),
        version: standing.map(|c| c.version),
        closes: rows.len() as i32,
    }
}

/// Every month from the first surveyed one to the current one, newest first.
pub fn list(conn: &mut DbConnection, current: Month) -> QueryResult<Vec<MonthState>> {
    let first: Option<String> = household_surveys::table
        .select(diesel::dsl::min(household_surveys::month))
        .first(conn)?;
    let all = closes(conn, None)?;
    let names = user_names(conn, all.iter().map(|c| c.closed_by.clone()).collect())?;
    // Stored months are `YYYY-MM`; one that is not cannot start the list.
    let start = first
        .iter()
        .chain(all.iter().map(|c| &c.month))
        .filter_map(|m| Month::parse(m).ok())
        .min()
        .unwrap_or(current);
    let mut months: Vec<Month> = Vec::new();
    let mut m = current;
    // Bounded: the service keeps at most a few decades of months.
    while m >= start && months.len() < 1200 {
        months.push(m);
        m = m.previous();
    }
    Ok(months
        .into_iter()
        .map(|month| {
            let month = month.to_string();
            let rows: Vec<&CloseRow> = all.iter().filter(|c| c.month == month).collect();
            state_of(&rows, month, &names)
        })
        .collect())
}

/// The sign-off round of a month: the standing close's version, or the next close's.
pub fn round(conn: &mut DbConnection, month: Month) -> QueryResult<i32> {
    if let Some(v) = cache::standing_close(conn, month)? {
        return Ok(v);
    }
    let last: Option<i32> = month_closes::table
        .filter(month_closes::month.eq(month.to_string()))
        .select(diesel::dsl::max(month_closes::version))
        .first(conn)?;
    Ok(last.unwrap_or(0) + 1)
}

/// Surveys of a month awaiting review, household and village surveys, by county.
pub fn pending_by_county(
    conn: &mut DbConnection,
    month: Month,
) -> QueryResult<BTreeMap<String, (i64, i64)>> {
    let waiting = [
        ReviewStatus::Submitted.as_str(),
        ReviewStatus::Reopened.as_str(),
    ];
    let text = month.to_string();
    let households: Vec<(String, i64)> = household_surveys::table
        .inner_join(villages::table.on(villages::code.eq(household_surveys::village_code)))
        .filter(household_surveys::month.eq(&text))
        .filter(household_surveys::status.eq_any(waiting))
        .group_by(villages::county_code)
        .select((villages::county_code, diesel::dsl::count_star()))
        .load(conn)?;
    let village: Vec<(String, i64)> = village_surveys::table
        .inner_join(villages::table.on(villages::code.eq(village_surveys::village_code)))
        .filter(village_surveys::month.eq(&text))
        .filter(village_surveys::status.eq_any(waiting))
        .group_by(villages::county_code)
        .select((villages::county_code, diesel::dsl::count_star()))
        .load(conn)?;
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (county, n) in households {
        out.entry(county).or_default().0 = n;
    }
    for (county, n) in village {
        out.entry(county).or_default().1 = n;
    }
    Ok(out)
}

/// The city's counties, code and name, in code order.
pub fn counties(conn: &mut DbConnection) -> QueryResult<Vec<(String, String)>> {
    divisions::table
        .filter(divisions::level.eq("county"))
        .select((divisions::code, divisions::name))
        .order(divisions::code)
        .load(conn)
}

/// A month's dispatch as the caller may see it: a county reviewer their own county's row.
pub fn detail(
    conn: &mut DbConnection,
    caller: &Caller,
    month: Month,
    now: DateTime<Utc>,
) -> ApiResult<MonthDetail> {
    let text = month.to_string();
    let rows = closes(conn, Some(&text))?;
    let round = round(conn, month)?;
    let all = signoff::states(conn, month, round)?;
    let counties_total = all.len();
    let counties_signed = all
        .iter()
        .filter(|c| c.state == crate::domain::SignoffState::Signed)
        .count();
    let counties: Vec<CountySignoff> = all
        .into_iter()
        .filter(|c| {
            caller
                .county_code
                .as_ref()
                .is_none_or(|mine| mine.as_str() == c.county)
        })
        .collect();
    let mut ids: Vec<String> = rows.iter().map(|c| c.closed_by.clone()).collect();
    ids.extend(rows.iter().filter_map(|c| c.reopened_by.clone()));
    let names = user_names(conn, ids)?;
    let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let closes = rows
        .iter()
        .map(|c| CloseRecord {
            version: c.version,
            closed_at: c.closed_at.and_utc(),
            closed_by: c.closed_by.clone(),
            closed_by_name: name(&c.closed_by),
            override_reason: c.override_reason.clone(),
            missing: c.missing.clone(),
            villages: c.villages,
            reopened_at: c.reopened_at.map(|t| t.and_utc()),
            reopened_by: c.reopened_by.clone(),
            reopened_by_name: c.reopened_by.as_deref().map(name),
            reopen_reason: c.reopen_reason.clone(),
            standing: c.reopened_at.is_none(),
        })
        .collect::<Vec<_>>();
    Ok(MonthDetail {
        month: text,
        state: if closes.iter().any(|c| c.standing) {
            MonthStatus::Closed
        } else {
            MonthStatus::Open
        },
        ended: now >= month.end(),
        ends_at: month.end(),
        round,
        pending_surveys: counties
            .iter()
            .map(|c| c.pending_household_surveys + c.pending_village_surveys)
            .sum(),
        counties,
        counties_total,
        counties_signed,
        closes,
    })
}

/// Refuses a month that has not ended yet: `what` is 签核 or 关账.
pub fn require_ended(month: Month, now: DateTime<Utc>, what: &str) -> ApiResult<()> {
    if now >= month.end() {
        return Ok(());
    }
    Err(ApiError::Conflict {
        code: ErrorCode::MonthNotEnded,
        detail: format!(
            "{month} 尚未结束（{} 结束），不能{what}",
            time::minute(&month.end())
        ),
    })
}

/// Refuses a closed month.
pub fn already_closed(month: Month, version: i32, what: &str) -> ApiError {
    ApiError::Conflict {
        code: ErrorCode::MonthAlreadyClosed,
        detail: format!(
            "{month} 已完成月调度（第 {version} 版快照），不能{what}；如需修改，须由市扶贫办重新开账"
        ),
    }
}

/// What a close lacks: the counties without a standing sign-off, and the surveys awaiting
/// review by county name.
struct Missing {
    unsigned: Vec<String>,
    pending: Vec<(String, i64)>,
}

impl Missing {
    fn of(conn: &mut DbConnection, month: Month, round: i32) -> ApiResult<Missing> {
        let states = signoff::states(conn, month, round)?;
        Ok(Missing {
            unsigned: states
                .iter()
                .filter(|c| c.state != crate::domain::SignoffState::Signed)
                .map(|c| c.county_name.clone())
                .collect(),
            pending: states
                .iter()
                .map(|c| {
                    let n = c.pending_household_surveys + c.pending_village_surveys;
                    (c.county_name.clone(), n)
                })
                .filter(|(_, n)| *n > 0)
                .collect(),
        })
    }

    fn is_empty(&self) -> bool {
        self.unsigned.is_empty() && self.pending.is_empty()
    }

    fn pending_total(&self) -> i64 {
        self.pending.iter().map(|(_, n)| n).sum()
    }

    fn pending_text(&self) -> String {
        self.pending
            .iter()
            .map(|(c, n)| format!("{c} {n} 份"))
            .collect::<Vec<_>>()
            .join("、")
    }

    /// What was missing, for the close's record and the audit log.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.unsigned.is_empty() {
            parts.push(format!(
                "{} 个县（市、区）未签核：{}",
                self.unsigned.len(),
                self.unsigned.join("、")
            ));
        }
        if !self.pending.is_empty() {
            parts.push(format!(
                "待审核调查 {} 份（{}）",
                self.pending_total(),
                self.pending_text()
            ));
        }
        parts.join("；")
    }

    /// The refusal of a close without a reason.
    fn refusal(&self, month: Month) -> ApiError {
        if !self.unsigned.is_empty() {
            return ApiError::Conflict {
                code: ErrorCode::SignoffsMissing,
                detail: format!(
                    "{month} 尚有 {} 个县（市、区）未签核：{}；请待各县（市、区）签核后再关账，或填写理由强制关账",
                    self.unsigned.len(),
                    self.unsigned.join("、")
                ),
            };
        }
        ApiError::Conflict {
            code: ErrorCode::SurveysPending,
            detail: format!(
                "{month} 尚有 {} 份调查待审核（{}）；请审核完毕后再关账，或填写理由强制关账",
                self.pending_total(),
                self.pending_text()
            ),
        }
    }
}

/// The class of the PostgreSQL advisory locks that serialise a month's dispatch steps; the
/// second key is the month (`YYYYMM`).
const DISPATCH_LOCK: i32 = 0x6d6f_6e74; // "mont"

/// Runs one dispatch step of a month (a sign-off, a withdrawal, a close, a reopen) as its own
/// transaction, one at a time per month across server processes. On PostgreSQL a session-level
/// advisory lock is taken *before* the transaction begins: the close reads under REPEATABLE
/// READ, whose snapshot would otherwise predate a sign-off that committed while it waited, and
/// a sign-off that read the month open could land in a round a concurrent close or reopen
/// just ended. SQLite's single writer already runs them one at a time.
pub fn dispatch_step<T>(
    conn: &mut DbConnection,
    month: Month,
    step: impl FnOnce(&mut DbConnection) -> ApiResult<T>,
) -> ApiResult<T> {
    let DbConnection::Postgresql(_) = conn else {
        return write_transaction(conn, step);
    };
    let key = month.year() * 100 + month.number() as i32;
    conn.batch_execute(&format!("SELECT pg_advisory_lock({DISPATCH_LOCK}, {key})"))?;
    let result = write_transaction(conn, step);
    // Released whatever the step did: the connection goes back to the pool.
    let unlocked = conn.batch_execute(&format!(
        "SELECT pg_advisory_unlock({DISPATCH_LOCK}, {key})"
    ));
    match (result, unlocked) {
        (Ok(_), Err(e)) => Err(e.into()),
        (result, _) => result,
    }
}

/// A unique index that refused a racing second close, or PostgreSQL's refusal to serialise a
/// close with a concurrent sign-off change.
fn raced(e: &diesel::result::Error) -> Option<diesel::result::DatabaseErrorKind> {
    use diesel::result::{DatabaseErrorKind as K, Error};
    match e {
        Error::DatabaseError(kind @ (K::UniqueViolation | K::SerializationFailure), _) => {
            Some(*kind)
        }
        _ => None,
    }
}

/// Closes a month inside the caller's write transaction: checks the month has ended and is
/// open, that every county signed off and nothing awaits review (or a reason is given), then
/// computes every village's figures and stores them as the next snapshot version.
pub fn close(
    conn: &mut DbConnection,
    month: Month,
    user_id: &str,
    now: DateTime<Utc>,
    reason: Option<String>,
) -> ApiResult<i32> {
    // One consistent view of every village: reviews committing during the close must not
    // leave some villages frozen before a change and others after it.
    if let DbConnection::Postgresql(_) = conn {
        conn.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")?;
    }
    require_ended(month, now, "关账")?;
    if let Some(v) = cache::standing_close(conn, month)? {
        return Err(already_closed(month, v, "再次关账"));
    }
    let round = round(conn, month)?;
    let text = month.to_string();
    if let DbConnection::Postgresql(_) = conn {
        // Share-lock the standing sign-offs: a withdrawal racing this close either waits for
        // it (and then finds the month closed) or makes it fail to serialise.
        let lock = format!(
            "SELECT 1 FROM month_signoffs WHERE month = '{text}' AND round = {round} \
             AND withdrawn_at IS NULL FOR SHARE"
        );
        if let Err(e) = conn.batch_execute(&lock) {
            return Err(match raced(&e) {
                Some(_) => ApiError::conflict("签核状态刚刚发生变化，请刷新后重试"),
                None => e.into(),
            });
        }
    }
    let missing = Missing::of(conn, month, round)?;
    if !missing.is_empty() && reason.is_none() {
        return Err(missing.refusal(month));
    }
    let missing_text = (!missing.is_empty()).then(|| missing.describe());
    let all: Vec<String> = villages::table
        .select(villages::code)
        .order(villages::code)
        .load(conn)?;
    // The row first: on PostgreSQL a second close racing this one waits on it and then fails
    // on the unique index, rather than computing the snapshot twice.
    let inserted = diesel::insert_into(month_closes::table)
        .values((
            month_closes::month.eq(&text),
            month_closes::version.eq(round),
            month_closes::closed_at.eq(now.naive_utc()),
            month_closes::closed_by.eq(user_id),
            month_closes::override_reason.eq(&reason),
            month_closes::missing.eq(&missing_text),
            month_closes::villages.eq(all.len() as i32),
        ))
        .execute(conn);
    if let Err(e) = inserted {
        return Err(match raced(&e) {
            Some(_) => already_closed(month, round, "再次关账"),
            None => e.into(),
        });
    }
    let figures = cache::recompute_all(conn, &all, month)?;
    for village in &all {
        let Some(f) = figures.get(village) else {
            continue;
        };
        diesel::insert_into(month_snapshots::table)
            .values((
                month_snapshots::month.eq(&text),
                month_snapshots::version.eq(round),
                month_snapshots::village_code.eq(village),
                month_snapshots::approved.eq(cache::encode_figures(&f.approved)),
                month_snapshots::pending.eq(cache::encode_figures(&f.including_pending)),
            ))
            .execute(conn)?;
    }
    let mut detail = format!("第 {round} 版快照，{} 个行政村", all.len());
    if let Some(m) = &missing_text {
        detail.push_str(&format!("；强制关账，关账时{m}"));
    }
    audit::append(
        conn,
        &audit::Entry {
            user_id,
            action: "close_month",
            subject_type: "month",
            subject_id: &text,
            from_state: Some("open"),
            to_state: Some("closed"),
            reason: reason.as_deref(),
            detail: Some(&detail),
        },
    )?;
    Ok(round)
}

/// Reopens a closed month inside the caller's write transaction: the standing snapshot is kept
/// (as a reopened version), the month's figures are live again, and the next close makes the
/// next version after the counties sign off again.
pub fn reopen(
    conn: &mut DbConnection,
    month: Month,
    user_id: &str,
    now: DateTime<Utc>,
    reason: &str,
) -> ApiResult<i32> {
    let not_closed = || ApiError::Conflict {
        code: ErrorCode::MonthNotClosed,
        detail: format!("{month} 尚未关账，无需重新开账"),
    };
    let version = cache::standing_close(conn, month)?.ok_or_else(not_closed)?;
    let text = month.to_string();
    let updated = diesel::update(
        month_closes::table
            .find((&text, version))
            .filter(month_closes::reopened_at.is_null()),
    )
    .set((
        month_closes::reopened_at.eq(Some(now.naive_utc())),
        month_closes::reopened_by.eq(Some(user_id)),
        month_closes::reopen_reason.eq(Some(reason)),
    ))
    .execute(conn)?;
    if updated == 0 {
        // A concurrent reopen won.
        return Err(not_closed());
    }
    let detail = format!(
        "第 {version} 版快照保留；下次关账生成第 {} 版快照，各县（市、区）须重新签核",
        version + 1
    );
    audit::append(
        conn,
        &audit::Entry {
            user_id,
            action: "reopen_month",
            subject_type: "month",
            subject_id: &text,
            from_state: Some("closed"),
            to_state: Some("open"),
            reason: Some(reason),
            detail: Some(&detail),
        },
    )?;
    Ok(version)
}
