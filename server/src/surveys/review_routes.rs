use actix_web::{post, web};
use chrono::Utc;
use diesel::prelude::*;

use super::review::{self, BulkItem, BulkOutcome, BulkReviewRequest, ReviewOutcome, ReviewRequest};
use crate::auth::{Caller, ScopeLevel};
use crate::db::schema::{household_surveys, survey_flags};
use crate::db::write_transaction;
use crate::domain::Rule;
use crate::domain::{DivisionCode, DivisionLevel, ReviewStatus, Role, SubmissionId};
use crate::error::{ApiError, ApiResult, ErrorCode, FieldError, Problem};
use crate::http::ApiJson;
use crate::state::AppState;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(review_survey).service(bulk_review);
}

const BULK_LIMIT: usize = 500;

fn path_id(raw: String) -> ApiResult<SubmissionId> {
    SubmissionId::parse(&raw).map_err(|e| ApiError::BadRequest {
        code: ErrorCode::InvalidPath,
        detail: format!("id：{}", e.message),
        field: Some("id".into()),
    })
}

/// Decides one household survey (county reviewers in their county, the city anywhere).
///
/// `approve`, `reject` (reason required) and `request_revision` (comment required) take a
/// `submitted` or `reopened` survey; `reopen` (reason required) takes an `approved` one back into
/// review. Anything else is 409 `illegal_transition` naming the current state. Give
/// `seen_version` (the `review_version` you saw) so that a decision made on stale information is
/// refused with 409 `stale_review` instead of overwriting a colleague's.
#[utoipa::path(
    tag = "review",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Submission id of the survey")),
    request_body = ReviewRequest,
    responses(
        (status = 200, description = "Decided", body = ReviewOutcome),
        (status = 400, description = "`invalid_path`: the id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: field users do not review", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such survey in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`illegal_transition` or `stale_review`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `reason` `required` (reject, request_revision, reopen) or `length`; an unknown `decision`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/surveys/{id}/review")]
pub async fn review_survey(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: ApiJson<ReviewRequest>,
) -> ApiResult<web::Json<ReviewOutcome>> {
    decide_survey(state, caller, path, body)
        .await
        .map(web::Json)
}

/// [`review_survey`] as a function, for the console.
pub async fn decide_survey(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: ApiJson<ReviewRequest>,
) -> ApiResult<ReviewOutcome> {
    caller.require_role(&[Role::CountyReviewer, Role::CityAdmin])?;
    let id = path_id(path.into_inner())?;
    let request = body.0;
    let reason = review::checked_reason(request.decision, request.reason.as_deref())?;
    let now = Utc::now();
    let outcome = state
        .db
        .write(move |conn| {
            write_transaction(conn, |conn| {
                review::decide(
                    conn,
                    &caller,
                    id.as_str(),
                    request.decision,
                    reason.as_deref(),
                    request.seen_version,
                    now,
                )
            })
        })
        .await?;
    Ok(outcome)
}

/// The surveys awaiting review (`submitted` or `reopened`) in the caller's scope that match a
/// bulk filter, oldest first.
fn matching(
    conn: &mut crate::db::DbConnection,
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

/// Decides many surveys at once, by ids or by a filter.
///
/// With a filter, first ask with `dry_run: true` for the count, then repeat with
/// `expected_count` set to it: if the queue changed in between, nothing is decided (409). Each
/// survey is decided in its own transaction and reported in `items` (`decided`, or `refused`
/// with the problem code, e.g. `illegal_transition`); a refusal does not undo the others. At
/// most 500 surveys per request.
#[utoipa::path(
    tag = "review",
    security(("bearer" = [])),
    request_body = BulkReviewRequest,
    responses(
        (status = 200, description = "Per-item results (or the count, for a dry run)", body = BulkOutcome),
        (status = 403, description = "`forbidden_role` or `out_of_scope` (a filter outside the caller's county)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the filter now matches another count than `expected_count`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: neither or both of `ids` and `filter`, 0 or over 500 ids, `expected_count` missing, a filter matching over 500, `reason` missing", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/reviews/bulk")]
pub async fn bulk_review(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<BulkReviewRequest>,
) -> ApiResult<web::Json<BulkOutcome>> {
    decide_bulk(state, caller, body).await.map(web::Json)
}

/// [`bulk_review`] as a function, for the console.
pub async fn decide_bulk(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<BulkReviewRequest>,
) -> ApiResult<BulkOutcome> {
    caller.require_role(&[Role::CountyReviewer, Role::CityAdmin])?;
    let request = body.0;
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
    let now = Utc::now();
    let outcome = state
        .db
        .write(move |conn| {
            let ids = match (&request.ids, &request.filter) {
                (Some(ids), _) => ids.clone(),
                (None, Some(filter)) => {
                    let ids = matching(conn, &caller, filter)?;
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
                        write_transaction(conn, |conn| {
                            review::decide(
                                conn,
                                &caller,
                                id.as_str(),
                                request.decision,
                                reason.as_deref(),
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
        })
        .await?;
    Ok(outcome)
}
