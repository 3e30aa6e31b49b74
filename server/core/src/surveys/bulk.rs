//! Bulk review: many surveys decided at once, by ids or by a filter whose count was first
//! seen in a dry run. Each survey is decided in its own transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::review::{self, BulkItem, BulkOutcome, BulkReviewRequest};
use crate::auth::{Caller, ScopeLevel};
use crate::db::schema::{household_surveys, survey_flags};
use crate::db::DbConnection;
use crate::domain::Rule;
use crate::domain::{DivisionCode, DivisionLevel, ReviewStatus, SubmissionId};
use crate::error::{ApiError, ApiResult, FieldError};

/// The most surveys one request decides.
pub const BULK_LIMIT: usize = 500;

/// The surveys awaiting review (`submitted` or `reopened`) in the caller's scope that match a
/// bulk filter, oldest first.
fn matching(
    conn: &mut DbConnection,
    caller: &Caller,
    filter: &review::BulkFilter,
) -> ApiResult<Vec<String>> {
    let mut select = household_surveys::table
        .filter(household_surveys::status.eq_any([
            ReviewStatus::Submitted.as_str(),
            ReviewStatus::Reopened.as_str(),
        ]))
        .select(household_surveys::id)
        .order((household_surveys::received_at, household_surveys::id))
        .into_boxed();
    match caller.scope_level() {
        ScopeLevel::City => {}
        _ => {
            select = select.filter(household_surveys::village_code.like(caller.county_pattern()));
        }
    }
    if let Some(v) = &filter.village {
        let v = DivisionCode::parse_level(v, DivisionLevel::Village)
            .map_err(|e| ApiError::invalid("filter.village", e))?;
        caller.require_village(&v)?;
        select = select.filter(household_surveys::village_code.eq(v.as_str().to_owned()));
    }
    if let Some(c) = &filter.county {
        let c = DivisionCode::parse_level(c, DivisionLevel::County)
            .map_err(|e| ApiError::invalid("filter.county", e))?;
        caller.require_county(&c)?;
        select = select.filter(household_surveys::village_code.like(c.county_pattern()));
    }
    if let Some(flag) = filter.flag {
        let flagged = survey_flags::table
            .filter(survey_flags::flag.eq(flag.as_str()))
            .select(survey_flags::survey_id);
        select = select.filter(household_surveys::id.eq_any(flagged));
    }
    if filter.unflagged {
        let flagged = survey_flags::table.select(survey_flags::survey_id);
        select = select.filter(diesel::dsl::not(household_surveys::id.eq_any(flagged)));
    }
    if let Some(e) = &filter.enumerator {
        select = select.filter(household_surveys::enumerator_id.eq(e.clone()));
    }
    Ok(select.limit(BULK_LIMIT as i64 + 1).load(conn)?)
}

/// Checks a bulk request before anything is read: exactly one of `ids` and `filter`, 1 to
/// [`BULK_LIMIT`] ids, a filter's `expected_count` unless a dry run; and the decision's reason.
pub fn checked(request: &BulkReviewRequest) -> ApiResult<Option<String>> {
    let reason = review::checked_reason(request.decision, request.reason.as_deref())?;
    match (&request.ids, &request.filter) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "ids",
                Rule::OneOf,
                "`ids` 与 `filter` 须给出且只给出其中之一",
            )]))
        }
        (Some(ids), None) if ids.is_empty() || ids.len() > BULK_LIMIT => {
            return Err(ApiError::field(
                "ids",
                Rule::Count,
                format!("须为 1 至 {BULK_LIMIT} 个调查编号"),
            ))
        }
        (None, Some(_)) if !request.dry_run && request.expected_count.is_none() => {
            return Err(ApiError::field(
                "expected_count",
                Rule::Required,
                "按筛选条件审核时，须填写试运行（dry_run）得到的条数",
            ))
        }
        _ => {}
    }
    Ok(reason)
}

/// Decides the surveys a checked request names (see [`checked`]): the matched count for a dry
/// run, else each survey decided or refused on its own.
pub fn decide(
    conn: &mut DbConnection,
    caller: &Caller,
    request: &BulkReviewRequest,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> ApiResult<BulkOutcome> {
    let ids = match (&request.ids, &request.filter) {
        (Some(ids), _) => ids.clone(),
        (None, Some(filter)) => {
            let ids = matching(conn, caller, filter)?;
            if ids.len() > BULK_LIMIT {
                return Err(ApiError::field(
                    "filter",
                    Rule::TooMany,
                    format!("筛选条件匹配的调查超过 {BULK_LIMIT} 份，请缩小范围"),
                ));
            }
            ids
        }
        (None, None) => Vec::new(),
    };
    if request.dry_run {
        return Ok(BulkOutcome {
            dry_run: true,
            matched: ids.len(),
            decided: 0,
            refused: 0,
            items: Vec::new(),
        });
    }
    if let (Some(expected), Some(_)) = (request.expected_count, &request.filter) {
        if expected != ids.len() {
            return Err(ApiError::conflict(format!(
                "筛选条件现在匹配 {} 份调查，不是试运行时的 {expected} 份，请重新试运行",
                ids.len()
            )));
        }
    }
    let mut items = Vec::new();
    for id in &ids {
        let decided = SubmissionId::parse(id)
            .map_err(|e| ApiError::invalid("ids", e))
            .and_then(|id| {
                crate::db::transaction(conn, |conn| {
                    review::decide(
                        conn,
                        caller,
                        id.as_str(),
                        request.decision,
                        reason,
                        None,
                        now,
                    )
                })
            });
        items.push(match decided {
            Ok(o) => BulkItem {
                id: id.clone(),
                outcome: crate::domain::BulkItemOutcome::Decided,
                status: Some(o.status),
                code: None,
                detail: None,
            },
            Err(e) => BulkItem {
                id: id.clone(),
                outcome: crate::domain::BulkItemOutcome::Refused,
                status: None,
                code: Some(e.code()),
                detail: Some(e.problem().detail),
            },
        });
    }
    let decided = items
        .iter()
        .filter(|i| i.outcome == crate::domain::BulkItemOutcome::Decided)
        .count();
    Ok(BulkOutcome {
        dry_run: false,
        matched: ids.len(),
        decided,
        refused: items.len() - decided,
        items,
    })
}
