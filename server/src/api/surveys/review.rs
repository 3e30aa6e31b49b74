//! The review endpoints of the JSON API: deciding one survey or many, and the flagged
//! household pairs with a reviewer's decision on a pair. Each calls
//! [`crate::surveys::service`].

use actix_web::{get, post, web};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{area, Area, Caller};
use crate::error::{ApiResult, Problem};
use crate::http::Auth;
use crate::http::{ApiJson, ApiQuery};
use crate::state::AppState;
use crate::surveys::duplicate_list::DuplicatePage;
use crate::surveys::duplicates::{PairKind, PairOutcome, PairRequest, PairState};
use crate::surveys::review::{BulkOutcome, BulkReviewRequest, ReviewOutcome, ReviewRequest};
use crate::surveys::service::{self, Cursor, DuplicateFilter};

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
    Auth(caller): Auth,
    path: web::Path<String>,
    body: ApiJson<ReviewRequest>,
) -> ApiResult<web::Json<ReviewOutcome>> {
    // A field user is refused for the role before the id is looked at.
    service::require_reviewer(&caller)?;
    let id = service::survey_id(&path.into_inner())?;
    service::review(&state.db, caller, id, body.0)
        .await
        .map(web::Json)
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
    Auth(caller): Auth,
    body: ApiJson<BulkReviewRequest>,
) -> ApiResult<web::Json<BulkOutcome>> {
    service::bulk_review(&state.db, caller, body.0)
        .await
        .map(web::Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DuplicateQuery {
    /// `open` (the default), `kept_apart` or `merged`.
    pub state: Option<PairState>,
    /// `possible_duplicate` or `household_in_other_county` (the city's); both when omitted.
    pub kind: Option<PairKind>,
    /// 12-digit village code.
    pub village: Option<String>,
    /// 12-digit county code.
    pub county: Option<String>,
    /// From `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<i64>,
}

impl DuplicateQuery {
    /// The typed filter: `open` pairs by default, codes parsed and checked against the caller's
    /// scope, the cursor decoded, the page size 1–200 (default 50).
    pub fn filter(self, caller: &Caller) -> ApiResult<DuplicateFilter> {
        Ok(DuplicateFilter {
            area: Area::parse(
                caller,
                self.village.as_deref(),
                None,
                self.county.as_deref(),
            )?,
            cursor: self.cursor.as_deref().map(Cursor::parse).transpose()?,
            limit: area::limit(self.limit, 50, 200)?,
            state: self.state.unwrap_or(PairState::Open),
            kind: self.kind,
        })
    }
}

/// Household pairs flagged as possible duplicates in the caller's scope, oldest flag first, each
/// with both households' latest surveys side by side (county reviewers and the city).
#[utoipa::path(
    tag = "review",
    security(("bearer" = [])),
    params(DuplicateQuery),
    responses(
        (status = 200, description = "A page of pairs", body = DuplicatePage),
        (status = 400, description = "`invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`, or `out_of_scope` for a filter outside the caller's county", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/duplicates")]
pub async fn list_duplicates(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    query: ApiQuery<DuplicateQuery>,
) -> ApiResult<web::Json<DuplicatePage>> {
    // A field user is refused for the role before the query is looked at.
    service::require_reviewer(&caller)?;
    let filter = query.0.filter(&caller)?;
    service::list_duplicates(&state.db, caller, filter)
        .await
        .map(web::Json)
}

/// Decides a flagged pair (county reviewers in their county, the city anywhere).
///
/// `merge` (from `open`): the other household's survey versions move to the `survivor`,
/// numbered after its own; the absorbed household's keys now find the survivor, and the ledger
/// counts one household. `unmerge` (from `merged`, reason required) puts every moved version
/// back and reopens the pair. `keep_apart` (from `open`, reason required): the two are never
/// flagged as duplicates of each other again. Anything else is 409 `illegal_transition`.
///
/// A `household_in_other_county` pair (one household number or head's ID number in two
/// counties) is the city's alone: `merge` confirms a transfer (the household moved; it then
/// lives where it was last surveyed), `keep_apart` confirms a mistake in one of the keys;
/// audited as `confirm_transfer`, `confirm_key_mistake` and `undo_transfer`. County reviewers
/// get 404 for such a pair.
#[utoipa::path(
    tag = "review",
    security(("bearer" = [])),
    params(
        ("a" = String, Path, description = "One household id of the pair"),
        ("b" = String, Path, description = "The other (either order)"),
    ),
    request_body = PairRequest,
    responses(
        (status = 200, description = "Decided", body = PairOutcome),
        (status = 400, description = "`invalid_path`: a household id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: field users do not review", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: the two were never flagged, or not in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`illegal_transition` or `stale_review`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: reason missing, or a survivor not of the pair", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/duplicates/{a}/{b}")]
pub async fn decide_pair(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<(String, String)>,
    body: ApiJson<PairRequest>,
) -> ApiResult<web::Json<PairOutcome>> {
    let (a, b) = path.into_inner();
    service::decide_pair(&state.db, caller, a, b, body.0)
        .await
        .map(web::Json)
}
