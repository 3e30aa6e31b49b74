//! A reviewer's decision on a flagged check-in: confirmed (the day counts as present) or
//! dismissed (it never counts), with a reason, audited. One decision per check-in and final: the
//! same decision with the same reason again answers what was stored (a retried request), any
//! other is refused with 409 `illegal_transition`, so the pay a day earns cannot flip quietly.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit;
use crate::auth::Caller;
use crate::db::schema::{checkin_reviews, checkins};
use crate::db::DbConnection;
use crate::domain::{CheckinDecision, CheckinStatus, DivisionCode, Role};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// Who may decide: county reviewers (their county) and the city.
pub const REVIEWERS: [Role; 2] = [Role::CountyReviewer, Role::CityAdmin];

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckinReviewRequest {
    pub decision: CheckinDecision,
    /// Why (required, at most 500 characters): what the reviewer checked.
    #[schema(example = "已电话核实，当日在村开展入户走访")]
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckinReview {
    /// The check-in's id.
    pub id: String,
    pub decision: CheckinDecision,
    pub reason: String,
    pub reviewed_by: String,
    pub decided_at: DateTime<Utc>,
    /// Whether the check-in's day now counts as present.
    pub counts: bool,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = checkin_reviews, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Stored {
    checkin_id: String,
    decision: String,
    reason: String,
    reviewer_id: String,
    decided_at: NaiveDateTime,
}

impl Stored {
    fn answer(self) -> CheckinReview {
        let decision = CheckinDecision::parse(&self.decision).unwrap_or(CheckinDecision::Dismiss);
        CheckinReview {
            id: self.checkin_id,
            counts: decision == CheckinDecision::Confirm,
            decision,
            reason: self.reason,
            reviewed_by: self.reviewer_id,
            decided_at: self.decided_at.and_utc(),
        }
    }
}

/// The decision a check-in already has, if any.
pub fn decision_of(conn: &mut DbConnection, id: &str) -> QueryResult<Option<CheckinReview>> {
    Ok(checkin_reviews::table
        .find(id)
        .select(Stored::as_select())
        .first(conn)
        .optional()?
        .map(Stored::answer))
}

/// Decides on a flagged check-in, inside the caller's write transaction. A check-in outside the
/// caller's scope is 404, as if it did not exist.
pub fn decide(
    conn: &mut DbConnection,
    caller: &Caller,
    id: &str,
    request: &CheckinReviewRequest,
    now: DateTime<Utc>,
) -> ApiResult<(CheckinReview, bool)> {
    caller.require_role(&REVIEWERS)?;
    let reason = crate::surveys::review::checked_text("reason", Some(&request.reason), true)?
        .unwrap_or_default();
    let not_found = || ApiError::NotFound(format!("打卡记录 {id} 不存在"));
    let (village, status): (String, String) = checkins::table
        .find(id)
        .select((checkins::village_code, checkins::status))
        .first(conn)
        .optional()?
        .ok_or_else(not_found)?;
    let village = DivisionCode::parse(&village)
        .map_err(|_| ApiError::internal(anyhow::anyhow!("check-in {id} has a bad village")))?;
    if !caller.can_access_village(&village) {
        return Err(not_found());
    }
    if status == CheckinStatus::Accepted.as_str() {
        return Err(ApiError::Conflict {
            code: ErrorCode::IllegalTransition,
            detail: "该打卡已核验通过，不需要核实".into(),
        });
    }
    if let Some(earlier) = decision_of(conn, id)? {
        return replay(earlier, request.decision, &reason);
    }
    let inserted = diesel::insert_into(checkin_reviews::table)
        .values((
            checkin_reviews::checkin_id.eq(id),
            checkin_reviews::decision.eq(request.decision.as_str()),
            checkin_reviews::reason.eq(&reason),
            checkin_reviews::reviewer_id.eq(&caller.user_id),
            checkin_reviews::decided_at.eq(now.naive_utc()),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => {}
        // Another reviewer's decision committed first (PostgreSQL): answer as to a second one.
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => {
            return Err(ApiError::Conflict {
                code: ErrorCode::IllegalTransition,
                detail: "另一名审核员刚刚处理了这条打卡，请刷新后查看".into(),
            })
        }
        Err(e) => return Err(e.into()),
    }
    let to = match request.decision {
        CheckinDecision::Confirm => "confirmed",
        CheckinDecision::Dismiss => "dismissed",
    };
    audit::append(
        conn,
        &audit::Entry {
            user_id: &caller.user_id,
            action: match request.decision {
                CheckinDecision::Confirm => "checkin_confirm",
                CheckinDecision::Dismiss => "checkin_dismiss",
            },
            subject_type: "checkin",
            subject_id: id,
            from_state: Some(CheckinStatus::Flagged.as_str()),
            to_state: Some(to),
            reason: Some(&reason),
            detail: Some(request.decision.label()),
        },
    )?;
    let stored = decision_of(conn, id)?.ok_or_else(not_found)?;
    Ok((stored, true))
}

/// A second decision: the same one with the same reason is a retry (answered, not stored
/// again); any other is refused.
fn replay(
    earlier: CheckinReview,
    decision: CheckinDecision,
    reason: &str,
) -> ApiResult<(CheckinReview, bool)> {
    if earlier.decision == decision && earlier.reason == reason {
        return Ok((earlier, false));
    }
    let china = crate::domain::time::china();
    Err(ApiError::Conflict {
        code: ErrorCode::IllegalTransition,
        detail: format!(
            "该打卡已于 {} 被“{}”（理由：{}），核实结论不能更改",
            earlier
                .decided_at
                .with_timezone(&china)
                .format("%Y-%m-%d %H:%M"),
            earlier.decision.label(),
            earlier.reason
        ),
    })
}
