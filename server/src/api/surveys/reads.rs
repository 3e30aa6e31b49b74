//! The survey reads of the JSON API: the survey list and review queue, one survey, one
//! household, and a field user's own submissions. Each handler turns its query into a typed
//! filter and calls [`crate::surveys::service`].

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{area, Area, Caller};
use crate::domain::{ReviewStatus, SurveyFlag};
use crate::error::{bad_query, ApiResult, Problem};
use crate::http::ApiQuery;
use crate::http::Auth;
use crate::state::AppState;
use crate::surveys::service::{self, Cursor, Reveal, SurveyFilter};
use crate::surveys::views::{HouseholdView, MySubmissions, SurveyDetail, SurveyPage};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SurveyQuery {
    /// 12-digit village code.
    pub village: Option<String>,
    /// 12-digit county code.
    pub county: Option<String>,
    pub status: Option<ReviewStatus>,
    pub flag: Option<SurveyFlag>,
    /// User id of the enumerator.
    pub enumerator: Option<String>,
    /// `true`: the review queue — surveys awaiting a decision (`submitted` or `reopened`),
    /// oldest received first. Otherwise newest received first.
    pub needs_review: Option<bool>,
    /// First survey day (`YYYY-MM-DD`, Asia/Shanghai), inclusive.
    pub from: Option<String>,
    /// Last survey day (`YYYY-MM-DD`, Asia/Shanghai), inclusive.
    pub to: Option<String>,
    /// From `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<i64>,
}

impl SurveyQuery {
    /// The typed filter: codes parsed and checked against the caller's scope, days as the
    /// instants they start, the cursor decoded, the page size 1–200 (default 50).
    pub fn filter(self, caller: &Caller) -> ApiResult<SurveyFilter> {
        let area = Area::parse(
            caller,
            self.village.as_deref(),
            None,
            self.county.as_deref(),
        )?;
        let from = self
            .from
            .as_deref()
            .map(|d| area::day_start("from", d, 0))
            .transpose()?;
        let to = self
            .to
            .as_deref()
            .map(|d| area::day_start("to", d, 1))
            .transpose()?;
        let cursor = self.cursor.as_deref().map(Cursor::parse).transpose()?;
        let limit = area::limit(self.limit, 50, 200)?;
        Ok(SurveyFilter {
            area,
            status: self.status,
            flag: self.flag,
            enumerator: self.enumerator,
            needs_review: self.needs_review == Some(true),
            from,
            to,
            cursor,
            limit,
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevealQuery {
    /// Show ID numbers and phone numbers in full (county reviewers and the city only; audited).
    pub reveal: Option<bool>,
    /// Why they are revealed: required with `reveal=true` (400 `invalid_query` naming
    /// `reason` without one), at most 200 characters, written to the audit log.
    pub reason: Option<String>,
}

impl From<RevealQuery> for Reveal {
    fn from(q: RevealQuery) -> Self {
        Reveal {
            wanted: q.reveal == Some(true),
            reason: q.reason,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SinceQuery {
    /// RFC 3339: only submissions received or changed after this moment (use the previous
    /// answer's `next_since`). Omit for all.
    pub since: Option<String>,
}

/// Household surveys in the caller's scope, newest received first, in pages; with
/// `needs_review=true`, the review queue, oldest first. Each item carries what a reviewer's
/// list needs: flags with their details, position, photo and thumbnail URLs, review version.
#[utoipa::path(
    tag = "surveys",
    security(("bearer" = [])),
    params(SurveyQuery),
    responses(
        (status = 200, description = "A page of surveys", body = SurveyPage),
        (status = 400, description = "`invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`out_of_scope`: the village or county filter is outside the caller's scope", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/surveys")]
pub async fn list_surveys(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    query: ApiQuery<SurveyQuery>,
) -> ApiResult<web::Json<SurveyPage>> {
    let filter = query.0.filter(&caller)?;
    service::list_surveys(&state.db, caller, filter)
        .await
        .map(web::Json)
}

/// One household survey with its members. ID and phone numbers are masked; county reviewers
/// and the city may ask for them in full with `reveal=true`, which is recorded in the audit log.
#[utoipa::path(
    tag = "surveys",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Submission id of the survey"), RevealQuery),
    responses(
        (status = 200, description = "The survey", body = SurveyDetail),
        (status = 403, description = "`forbidden_role`: field users cannot reveal ID numbers", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such survey in the caller's scope", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/surveys/{id}")]
pub async fn get_survey(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    query: ApiQuery<RevealQuery>,
) -> ApiResult<web::Json<SurveyDetail>> {
    let id = service::survey_id(&path.into_inner())?;
    service::get_survey(&state.db, &state.vault, caller, id, query.0.into())
        .await
        .map(web::Json)
}

/// A household: its versions (one per survey) and their flags.
#[utoipa::path(
    tag = "surveys",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Household id"), RevealQuery),
    responses(
        (status = 200, description = "The household", body = HouseholdView),
        (status = 404, description = "`not_found`: no such household in the caller's scope", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/households/{id}")]
pub async fn get_household(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    query: ApiQuery<RevealQuery>,
) -> ApiResult<web::Json<HouseholdView>> {
    service::get_household(
        &state.db,
        &state.vault,
        caller,
        path.into_inner(),
        query.0.into(),
    )
    .await
    .map(web::Json)
}

/// The caller's own submissions with their review status and comments, for the app to show
/// ("approved", "revision requested: …"). Poll with `since` to get only what changed.
#[utoipa::path(
    tag = "surveys",
    security(("bearer" = [])),
    params(SinceQuery),
    responses(
        (status = 200, description = "The caller's submissions changed since `since`, oldest change first", body = MySubmissions),
        (status = 400, description = "`invalid_query`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/me/submissions")]
pub async fn my_submissions(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    query: ApiQuery<SinceQuery>,
) -> ApiResult<web::Json<MySubmissions>> {
    let since = query
        .0
        .since
        .as_deref()
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| bad_query("since", "须为 RFC 3339 时间，如 2020-07-20T09:31:00+08:00"))
        })
        .transpose()?;
    service::my_submissions(&state.db, caller, since)
        .await
        .map(web::Json)
}
