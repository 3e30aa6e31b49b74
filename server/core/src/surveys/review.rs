//! Review of household surveys: the state machine, decisions with optimistic concurrency, bulk
//! decisions, and what a correction does to the survey it replaces. Every change is audited.
//!
//! ```text
//! submitted ──approve──▶ approved ──reopen──▶ reopened ──(as submitted)──▶ …
//!     │ ├──reject────▶ rejected
//!     │ └──request_revision──▶ revision_requested
//!     └── any but superseded ──(a correction arrives)──▶ superseded
//! ```

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit;
use crate::auth::Caller;
use crate::db::schema::household_surveys;
use crate::db::DbConnection;
use crate::domain::Rule;
use crate::domain::{DivisionCode, Month, ReviewStatus};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ledger::cache::Affected;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    /// Needs a `reason`.
    Reject,
    /// Needs a `reason`: the comment the enumerator sees.
    RequestRevision,
    /// Takes an approved survey back into review; needs a `reason`.
    Reopen,
}

impl Decision {
    pub const ALL: [Decision; 4] = [
        Decision::Approve,
        Decision::Reject,
        Decision::RequestRevision,
        Decision::Reopen,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Decision::Approve => "审核通过",
            Decision::Reject => "驳回",
            Decision::RequestRevision => "退回修改",
            Decision::Reopen => "重新审核",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
            Decision::RequestRevision => "request_revision",
            Decision::Reopen => "reopen",
        }
    }

    pub fn needs_reason(self) -> bool {
        !matches!(self, Decision::Approve)
    }
}

/// The state a decision leads to from `from`, if it may be taken there.
pub fn transition(from: ReviewStatus, decision: Decision) -> Option<ReviewStatus> {
    use ReviewStatus::*;
    match (from, decision) {
        (Submitted | Reopened, Decision::Approve) => Some(Approved),
        (Submitted | Reopened, Decision::Reject) => Some(Rejected),
        (Submitted | Reopened, Decision::RequestRevision) => Some(RevisionRequested),
        (Approved, Decision::Reopen) => Some(Reopened),
        _ => None,
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ReviewRequest {
    pub decision: Decision,
    /// Required to reject, request a revision or reopen (at most 500 characters).
    pub reason: Option<String>,
    /// The `review_version` the reviewer saw; when given and no longer current, the decision is
    /// refused with 409 `stale_review`.
    pub seen_version: Option<i32>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewOutcome {
    pub id: String,
    pub status: ReviewStatus,
    /// Counts the survey's state changes; name it as `seen_version` in the next decision.
    pub review_version: i32,
    pub review_comment: Option<String>,
    pub reviewed_by: Option<String>,
    pub status_changed_at: DateTime<Utc>,
}

/// Checks a decision's reason: present where required, bounded.
pub fn checked_reason(decision: Decision, reason: Option<&str>) -> ApiResult<Option<String>> {
    checked_text("reason", reason, decision.needs_reason())
}

/// A free-text reason or comment: trimmed, required or not, at most 500 characters.
pub fn checked_text(field: &str, text: Option<&str>, required: bool) -> ApiResult<Option<String>> {
    let text = text.map(str::trim).filter(|r| !r.is_empty());
    if required && text.is_none() {
        return Err(ApiError::field(
            field,
            Rule::Required,
            "请填写作出此决定的理由",
        ));
    }
    if text.is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::field(field, Rule::Length, "最多 500 个字符"));
    }
    Ok(text.map(str::to_owned))
}

/// What a decision reads of the survey it decides.
#[derive(Queryable, Selectable)]
#[diesel(table_name = household_surveys, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Decided {
    village_code: String,
    month: String,
    status: String,
    review_version: i32,
    household_id: String,
}

/// Locks the survey's household and returns it (again, should a merge have moved the survey
/// before the lock was taken).
fn locked_household(conn: &mut DbConnection, survey: &str, read: String) -> ApiResult<String> {
    super::duplicates::lock_households(conn, &[&read])?;
    let now: String = household_surveys::table
        .find(survey)
        .select(household_surveys::household_id)
        .first(conn)?;
    if now != read {
        super::duplicates::lock_households(conn, &[&now])?;
    }
    Ok(now)
}

/// Takes a decision on one survey, inside the caller's transaction.
pub fn decide(
    conn: &mut DbConnection,
    caller: &Caller,
    id: &str,
    decision: Decision,
    reason: Option<&str>,
    seen_version: Option<i32>,
    now: DateTime<Utc>,
) -> ApiResult<ReviewOutcome> {
    let not_found = || ApiError::NotFound(format!("入户调查 {id} 不存在"));
    let Decided {
        village_code: village,
        month,
        status,
        review_version: version,
        household_id: household,
    } = household_surveys::table
        .find(id)
        .select(Decided::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(not_found)?;
    let village = DivisionCode::parse(&village)
        .map_err(|_| ApiError::internal(anyhow::anyhow!("survey {id} has a bad village")))?;
    if !caller.can_access_village(&village) {
        return Err(not_found());
    }
    // The household first, then the survey, then the village's generation: the order every
    // writer takes them in (intake, merges), so a decision racing a correction cannot deadlock.
    let household = locked_household(conn, id, household)?;
    let from = ReviewStatus::parse(&status)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("survey {id} has status {status}")))?;
    if seen_version.is_some_and(|seen| seen != version) {
        return Err(ApiError::Conflict {
            code: ErrorCode::StaleReview,
            detail: format!(
                "该调查已到第 {version} 版（{}），不是您看到的第 {} 版，请刷新后再审核",
                from.label(),
                seen_version.unwrap_or_default()
            ),
        });
    }
    let to = transition(from, decision).ok_or_else(|| ApiError::Conflict {
        code: ErrorCode::IllegalTransition,
        detail: format!("调查当前为“{}”，不能“{}”", from.label(), decision.label()),
    })?;
    let changed = diesel::update(
        household_surveys::table
            .find(id)
            .filter(household_surveys::review_version.eq(version)),
    )
    .set((
        household_surveys::status.eq(to.as_str()),
        household_surveys::review_version.eq(version + 1),
        household_surveys::review_comment.eq(reason),
        household_surveys::reviewed_by.eq(&caller.user_id),
        household_surveys::status_changed_at.eq(now.naive_utc()),
    ))
    .execute(conn)?;
    if changed != 1 {
        // Another decision committed between our read and our write.
        return Err(ApiError::Conflict {
            code: ErrorCode::StaleReview,
            detail: "另一名审核员刚刚处理了该调查，请刷新后再审核".into(),
        });
    }
    // A rejection changes which version a revisit could have been based on.
    super::derived::recompute(conn, &std::collections::BTreeSet::from([household.clone()]))?;
    // A decision changes what counts from the survey's month on.
    let affected = Month::parse(&month).map_or(Affected::All, Affected::From);
    crate::changes::households(conn, &[household.as_str()], affected)?;
    audit::append(
        conn,
        &audit::Entry {
            user_id: &caller.user_id,
            action: decision.as_str(),
            subject_type: "household_survey",
            subject_id: id,
            from_state: Some(from.as_str()),
            to_state: Some(to.as_str()),
            reason,
            detail: None,
        },
    )?;
    Ok(ReviewOutcome {
        id: id.to_owned(),
        status: to,
        review_version: version + 1,
        review_comment: reason.map(str::to_owned),
        reviewed_by: Some(caller.user_id.clone()),
        status_changed_at: now,
    })
}

/// A correction arrived: the survey it replaces leaves review as `superseded` (unless it already
/// is), and the correction enters the queue itself. Returns the state it left, for
/// [`audit_supersede`] — appended last in the transaction, like every audit entry.
pub fn supersede(
    conn: &mut DbConnection,
    replaced: &str,
    now: DateTime<Utc>,
) -> ApiResult<Option<String>> {
    // A reviewer's decision may commit between the read and the write: the version filter
    // notices, and the state is read again.
    for _ in 0..5 {
        let (status, version): (String, i32) = household_surveys::table
            .find(replaced)
            .select((household_surveys::status, household_surveys::review_version))
            .first(conn)?;
        if status == ReviewStatus::Superseded.as_str() {
            return Ok(None);
        }
        let changed = diesel::update(
            household_surveys::table
                .find(replaced)
                .filter(household_surveys::review_version.eq(version)),
        )
        .set((
            household_surveys::status.eq(ReviewStatus::Superseded.as_str()),
            household_surveys::review_version.eq(version + 1),
            household_surveys::status_changed_at.eq(now.naive_utc()),
        ))
        .execute(conn)?;
        if changed == 1 {
            return Ok(Some(status));
        }
    }
    Err(ApiError::Unavailable(format!(
        "survey {replaced} kept changing while a correction replaced it; retry"
    )))
}

/// The audit entry of a supersession.
pub fn audit_supersede(
    conn: &mut DbConnection,
    replaced: &str,
    by: &str,
    user_id: &str,
    from: &str,
) -> ApiResult<()> {
    audit::append(
        conn,
        &audit::Entry {
            user_id,
            action: "supersede",
            subject_type: "household_survey",
            subject_id: replaced,
            from_state: Some(from),
            to_state: Some(ReviewStatus::Superseded.as_str()),
            reason: None,
            detail: Some(&format!("已由调查 {by} 更正")),
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transition_legal_and_illegal() {
        use ReviewStatus::*;
        let decisions = [
            Decision::Approve,
            Decision::Reject,
            Decision::RequestRevision,
            Decision::Reopen,
        ];
        for from in ReviewStatus::ALL {
            for d in decisions {
                let expected = match (from, d) {
                    (Submitted | Reopened, Decision::Approve) => Some(Approved),
                    (Submitted | Reopened, Decision::Reject) => Some(Rejected),
                    (Submitted | Reopened, Decision::RequestRevision) => Some(RevisionRequested),
                    (Approved, Decision::Reopen) => Some(Reopened),
                    _ => None,
                };
                assert_eq!(transition(*from, d), expected, "{from:?} {d:?}");
            }
        }
    }

    #[test]
    fn reasons_where_required() {
        assert!(checked_reason(Decision::Approve, None).is_ok());
        assert!(checked_reason(Decision::Reject, Some("  ")).is_err());
        assert!(checked_reason(Decision::Reopen, Some(&"x".repeat(501))).is_err());
        assert_eq!(
            checked_reason(Decision::RequestRevision, Some(" 补拍门牌 "))
                .ok()
                .flatten()
                .as_deref(),
            Some("补拍门牌")
        );
    }
}

/// `POST /api/v1/reviews/bulk`: the same decision for several surveys, named by id or chosen by
/// a filter.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct BulkReviewRequest {
    pub decision: Decision,
    pub reason: Option<String>,
    /// The surveys, by id (at most 500). Give either `ids` or `filter`.
    pub ids: Option<Vec<String>>,
    /// The surveys awaiting review that match (at most 500).
    pub filter: Option<BulkFilter>,
    /// Only count what the filter matches; decide nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// With `filter`: the count a dry run gave. If the queue changed since, nothing is decided
    /// (409 `conflict`), so a reviewer never approves what they did not count.
    pub expected_count: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct BulkFilter {
    /// 12-digit village code.
    pub village: Option<String>,
    /// 12-digit county code.
    pub county: Option<String>,
    /// Only surveys with this flag.
    pub flag: Option<crate::domain::SurveyFlag>,
    /// Only surveys without any flag.
    #[serde(default)]
    pub unflagged: bool,
    /// User id of the enumerator.
    pub enumerator: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BulkItem {
    pub id: String,
    /// `decided`, or `refused` with the problem `code` and `detail`.
    pub outcome: crate::domain::BulkItemOutcome,
    pub status: Option<ReviewStatus>,
    pub code: Option<crate::error::ErrorCode>,
    pub detail: Option<String>,
}

/// Per-item results: each survey is decided or refused on its own (a refusal does not undo the
/// others), and `decided` / `refused` count them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BulkOutcome {
    pub dry_run: bool,
    /// Surveys the request selected.
    pub matched: usize,
    pub decided: usize,
    pub refused: usize,
    pub items: Vec<BulkItem>,
}
