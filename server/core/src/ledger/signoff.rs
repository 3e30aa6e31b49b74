//! A county's sign-off of a month (县级签核), the first step of the monthly dispatch: the
//! county's reviewer attests that the county's surveys of the month are reviewed. Refused while
//! some await review unless a reason is given (audited with the count); withdrawn before the
//! close. Only the county's own reviewers sign or withdraw: the city does not sign on a county's
//! behalf, it closes with a reason instead (see [`super::months`]).

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::months::{self, already_closed, require_ended};
use crate::audit;
use crate::db::schema::month_signoffs;
use crate::db::DbConnection;
use crate::domain::{DivisionCode, Month, SignoffState};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// A sign-off: a note for the city, and the reason for signing with surveys awaiting review.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignoffRequest {
    /// At most 500 characters.
    pub note: Option<String>,
    /// Required while surveys of the month in the county await review (at most 500
    /// characters); audited with their count.
    pub reason: Option<String>,
}

/// A withdrawal of a sign-off, with an optional reason.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawRequest {
    /// At most 500 characters.
    pub reason: Option<String>,
}

/// One county's sign-off state in the month's current round, and its surveys awaiting review.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CountySignoff {
    #[schema(example = "220802000000")]
    pub county: String,
    pub county_name: String,
    /// `not_signed`, `signed` or `withdrawn` (the latest sign-off of the round was withdrawn).
    pub state: SignoffState,
    pub signed_by: Option<String>,
    pub signed_by_name: Option<String>,
    pub signed_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
    /// Why the county signed with surveys awaiting review.
    pub override_reason: Option<String>,
    /// Surveys awaiting review when it signed.
    pub pending_at_signoff: Option<i32>,
    pub withdrawn_at: Option<DateTime<Utc>>,
    pub withdrawn_by_name: Option<String>,
    pub withdraw_reason: Option<String>,
    /// Household surveys of the month awaiting review now.
    pub pending_household_surveys: i64,
    /// Village post-demand surveys of the month awaiting review now.
    pub pending_village_surveys: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = month_signoffs, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct SignoffRow {
    county_code: String,
    signed_by: String,
    signed_at: NaiveDateTime,
    note: Option<String>,
    override_reason: Option<String>,
    pending_surveys: i32,
    withdrawn_at: Option<NaiveDateTime>,
    withdrawn_by: Option<String>,
    withdraw_reason: Option<String>,
}

/// Every county's state in a round, in code order.
pub fn states(conn: &mut DbConnection, month: Month, round: i32) -> ApiResult<Vec<CountySignoff>> {
    let rows: Vec<SignoffRow> = month_signoffs::table
        .filter(month_signoffs::month.eq(month.to_string()))
        .filter(month_signoffs::round.eq(round))
        .order((month_signoffs::signed_at, month_signoffs::id))
        .select(SignoffRow::as_select())
        .load(conn)?;
    let mut ids: Vec<String> = rows.iter().map(|r| r.signed_by.clone()).collect();
    ids.extend(rows.iter().filter_map(|r| r.withdrawn_by.clone()));
    let names = months::user_names(conn, ids)?;
    let pending = months::pending_by_county(conn, month)?;
    Ok(months::counties(conn)?
        .into_iter()
        .map(|(county, county_name)| {
            // The latest sign-off of the round says where the county stands.
            let last = rows.iter().rev().find(|r| r.county_code == county);
            let (household, village) = pending.get(&county).copied().unwrap_or_default();
            CountySignoff {
                state: match last {
                    None => SignoffState::NotSigned,
                    Some(r) if r.withdrawn_at.is_none() => SignoffState::Signed,
                    Some(_) => SignoffState::Withdrawn,
                },
                signed_by: last.map(|r| r.signed_by.clone()),
                signed_by_name: last.and_then(|r| names.get(&r.signed_by).cloned()),
                signed_at: last.map(|r| r.signed_at.and_utc()),
                note: last.and_then(|r| r.note.clone()),
                override_reason: last.and_then(|r| r.override_reason.clone()),
                pending_at_signoff: last.map(|r| r.pending_surveys),
                withdrawn_at: last.and_then(|r| r.withdrawn_at.map(|t| t.and_utc())),
                withdrawn_by_name: last
                    .and_then(|r| r.withdrawn_by.as_ref())
                    .and_then(|id| names.get(id).cloned()),
                withdraw_reason: last.and_then(|r| r.withdraw_reason.clone()),
                pending_household_surveys: household,
                pending_village_surveys: village,
                county,
                county_name,
            }
        })
        .collect())
}

/// The county's state in the month's current round (404 if the code is not a county).
fn county_state(
    conn: &mut DbConnection,
    month: Month,
    round: i32,
    county: &DivisionCode,
) -> ApiResult<CountySignoff> {
    states(conn, month, round)?
        .into_iter()
        .find(|c| c.county == county.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("没有这个县（市、区）：{county}")))
}

/// Signs off a county's month inside the caller's write transaction.
pub fn sign_off(
    conn: &mut DbConnection,
    month: Month,
    county: &DivisionCode,
    user_id: &str,
    now: DateTime<Utc>,
    note: Option<String>,
    reason: Option<String>,
) -> ApiResult<()> {
    let round = months::round(conn, month)?;
    let state = county_state(conn, month, round, county)?;
    require_ended(month, now, "签核")?;
    if let Some(v) = crate::ledger::cache::standing_close(conn, month)? {
        return Err(already_closed(month, v, "签核"));
    }
    if state.state == SignoffState::Signed {
        return Err(ApiError::Conflict {
            code: ErrorCode::AlreadySignedOff,
            detail: format!(
                "{} 已于 {} 签核 {month}（{}）；如需重新签核，请先撤回",
                state.county_name,
                state
                    .signed_at
                    .as_ref()
                    .map_or_else(String::new, crate::domain::time::minute),
                state.signed_by_name.as_deref().unwrap_or("")
            ),
        });
    }
    let (household, village) = (
        state.pending_household_surveys,
        state.pending_village_surveys,
    );
    let pending = household + village;
    if pending > 0 && reason.is_none() {
        return Err(ApiError::Conflict {
            code: ErrorCode::SurveysPending,
            detail: format!(
                "{} {month} 尚有 {pending} 份调查待审核（入户调查 {household} 份、村级调查 {village} 份）；请审核完毕后再签核，或填写理由强制签核",
                state.county_name
            ),
        });
    }
    let inserted = diesel::insert_into(month_signoffs::table)
        .values((
            month_signoffs::id.eq(uuid::Uuid::now_v7().to_string()),
            month_signoffs::month.eq(month.to_string()),
            month_signoffs::round.eq(round),
            month_signoffs::county_code.eq(county.as_str()),
            month_signoffs::signed_by.eq(user_id),
            month_signoffs::signed_at.eq(now.naive_utc()),
            month_signoffs::note.eq(&note),
            month_signoffs::override_reason.eq(&reason),
            month_signoffs::pending_surveys.eq(pending as i32),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => {}
        // A colleague's sign-off of the same county won.
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => {
            return Err(ApiError::Conflict {
                code: ErrorCode::AlreadySignedOff,
                detail: format!("{} 已签核 {month}", state.county_name),
            })
        }
        Err(e) => return Err(e.into()),
    }
    let mut detail = format!("第 {round} 轮签核；待审核调查 {pending} 份");
    if let Some(n) = &note {
        detail.push_str(&format!("；说明：{n}"));
    }
    audit::append(
        conn,
        &audit::Entry {
            user_id,
            action: "sign_off_month",
            subject_type: "month_signoff",
            subject_id: &format!("{month}/{county}"),
            from_state: Some(state.state.as_str()),
            to_state: Some(SignoffState::Signed.as_str()),
            reason: reason.as_deref(),
            detail: Some(&detail),
        },
    )?;
    Ok(())
}

/// Withdraws a county's standing sign-off of an open month inside the caller's transaction.
pub fn withdraw(
    conn: &mut DbConnection,
    month: Month,
    county: &DivisionCode,
    user_id: &str,
    now: DateTime<Utc>,
    reason: Option<String>,
) -> ApiResult<()> {
    let round = months::round(conn, month)?;
    let state = county_state(conn, month, round, county)?;
    if let Some(v) = crate::ledger::cache::standing_close(conn, month)? {
        return Err(already_closed(month, v, "撤回签核"));
    }
    let not_signed = || ApiError::Conflict {
        code: ErrorCode::NotSignedOff,
        detail: format!("{} 尚未签核 {month}，无可撤回的签核", state.county_name),
    };
    if state.state != SignoffState::Signed {
        return Err(not_signed());
    }
    let updated = diesel::update(
        month_signoffs::table
            .filter(month_signoffs::month.eq(month.to_string()))
            .filter(month_signoffs::round.eq(round))
            .filter(month_signoffs::county_code.eq(county.as_str()))
            .filter(month_signoffs::withdrawn_at.is_null()),
    )
    .set((
        month_signoffs::withdrawn_at.eq(Some(now.naive_utc())),
        month_signoffs::withdrawn_by.eq(Some(user_id)),
        month_signoffs::withdraw_reason.eq(&reason),
    ))
    .execute(conn)?;
    if updated == 0 {
        return Err(not_signed());
    }
    // After the row lock: a close that committed meanwhile is seen here, and wins.
    if let Some(v) = crate::ledger::cache::standing_close(conn, month)? {
        return Err(already_closed(month, v, "撤回签核"));
    }
    audit::append(
        conn,
        &audit::Entry {
            user_id,
            action: "withdraw_signoff",
            subject_type: "month_signoff",
            subject_id: &format!("{month}/{county}"),
            from_state: Some(SignoffState::Signed.as_str()),
            to_state: Some(SignoffState::Withdrawn.as_str()),
            reason: reason.as_deref(),
            detail: Some(&format!("第 {round} 轮签核")),
        },
    )?;
    Ok(())
}
