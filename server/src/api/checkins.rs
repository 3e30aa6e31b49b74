//! The check-in endpoints of the JSON API: intake, a month's attendance and the list of
//! check-ins. Handlers turn requests into typed values and call [`crate::checkins::service`].

use actix_web::{get, post, web, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use utoipa::IntoParams;

use super::surveys::submission_response;
use crate::auth::{area, Area, Caller};
use crate::checkins::attendance::{Attendance, CheckinList, Filter};
use crate::checkins::input::CheckinRequest;
use crate::checkins::review::{CheckinReview, CheckinReviewRequest};
use crate::checkins::service;
use crate::checkins::store::CheckinAnswer;
use crate::checkins::subsidies::SubsidySheet;
use crate::domain::DivisionLevel;
use crate::domain::Month;
use crate::error::{bad_query, ApiError, ApiResult, Problem};
use crate::http::ApiJson;
use crate::http::Auth;
use crate::http::{ApiJsonValue, ApiQuery};
use crate::ledger::export::ExportFormat;
use crate::ledger::node::NodeFilter;
use crate::state::AppState;
use crate::submissions::{Kind, Outcome};

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(submit_checkin)
        .service(get_attendance)
        .service(list_checkins)
        .service(review_checkin)
        .service(get_subsidies);
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttendanceQuery {
    /// `YYYY-MM`.
    pub month: String,
    /// 12-digit village code.
    pub village: Option<String>,
    /// 12-digit county code.
    pub county: Option<String>,
    /// A user id: only that user's own (resident-duty) attendance.
    pub user: Option<String>,
    /// `json` (default), or the 考勤表 as `xlsx` or `csv`: a row per person, a column per day
    /// (`√` present, `疑` flagged and awaiting a reviewer, `×` dismissed, blank no check-in),
    /// with a legend row and totals columns.
    pub format: Option<ExportFormat>,
}

/// The typed filter of a month's check-ins: the month (`YYYY-MM`), codes parsed and checked
/// against the caller's scope.
pub fn filter(
    caller: &Caller,
    month: &str,
    village: Option<&str>,
    county: Option<&str>,
    user: Option<String>,
) -> ApiResult<Filter> {
    Ok(Filter {
        month: Month::parse(month.trim()).map_err(|e| bad_query("month", e.message))?,
        area: Area::parse(caller, village, None, county)?,
        user,
    })
}

impl AttendanceQuery {
    pub fn filter(self, caller: &Caller) -> ApiResult<Filter> {
        filter(
            caller,
            &self.month,
            self.village.as_deref(),
            self.county.as_deref(),
            self.user,
        )
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckinQuery {
    /// `YYYY-MM`: check-ins whose attendance day falls in the month.
    pub month: String,
    /// 12-digit village code.
    pub village: Option<String>,
    /// 12-digit county code.
    pub county: Option<String>,
    /// A user id: only that user's check-ins.
    pub user: Option<String>,
    /// `true`: only flagged check-ins; `false`: only accepted ones.
    pub flagged: Option<bool>,
    /// At most this many, newest first (1–500, default 100).
    pub limit: Option<i64>,
}

impl CheckinQuery {
    /// The typed filter, whether flagged, and the page size (1–500, default 100).
    pub fn filter(self, caller: &Caller) -> ApiResult<(Filter, Option<bool>, i64)> {
        let limit = area::limit(self.limit, 100, 500)?;
        let f = filter(
            caller,
            &self.month,
            self.village.as_deref(),
            self.county.as_deref(),
            self.user,
        )?;
        Ok((f, self.flagged, limit))
    }
}

/// Checks in: a resident-duty check-in of the caller, or a special-post worker's check-in made
/// by the village's field user.
///
/// Upload the photo (JPEG) first: a check-in may name only a photo its author uploaded (any
/// other answers 422 `photo_missing`). Exactly-once like every submission (201, then 200 with the
/// same body; 409 for a reused id). Doubtful facts do not refuse a check-in: it is stored with
/// `status: flagged` and its `flags` — `outside_geofence` (the accuracy circle does not reach the
/// village geofence), `poor_accuracy`, `future_time`, `stale_time` (older than the 7-day upload
/// window), `photo_reused` (perceptually the photo of another check-in of the same person or
/// village; or of another person's check-in in the county — the same bytes at any time, a near
/// copy within 7 days), `impossible_travel`, `mock_location`, `exif_mismatch` (the photo's EXIF time or
/// position is far from the submitted ones).
#[utoipa::path(
    tag = "checkins",
    security(("bearer" = [])),
    request_body(content = CheckinRequest, example = json!({
        "submission_id": "0190b7c2-8b00-7c3a-9a51-3f2d8e0b4c13", "kind": "resident_duty", "village_code": "220802100201",
        "worker_id_number": null, "captured_at": "2020-07-20T08:02:11+08:00",
        "location": {"lat": 45.6194, "lon": 122.8391, "accuracy_m": 9.0},
        "mock_location": false, "photo": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "device": {"device_id": "a1b2c3", "app_version": "1.0.0"}
    })),
    responses(
        (status = 201, description = "Stored, accepted or flagged", body = CheckinAnswer),
        (status = 200, description = "A replay", body = CheckinAnswer),
        (status = 403, description = "`forbidden_role`: only enumerators and first secretaries check in", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`submission_id_reused`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: e.g. `photo` `photo_missing` (upload, then retry), `worker_id_number` or `worker_ref` `not_a_post_holder`, `worker_ref` `unknown_worker` (no one of the check-in's village has this ref), `worker_ref` `one_of` (both worker fields given), `village_code` `out_of_scope`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/checkins")]
pub async fn submit_checkin(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    // Taken as a result so that a refused body counts in the submission metrics.
    body: Result<ApiJsonValue<CheckinRequest>, ApiError>,
) -> ApiResult<HttpResponse> {
    let result = receive_checkin(state.clone(), caller, body).await;
    state.metrics.observe_submission(Kind::Checkin, &result);
    Ok(submission_response(result?))
}

async fn receive_checkin(
    state: web::Data<AppState>,
    caller: Caller,
    body: Result<ApiJsonValue<CheckinRequest>, ApiError>,
) -> ApiResult<Outcome> {
    // The body's errors come first, as when it was extracted before the handler ran.
    let ApiJsonValue { typed, value } = body?;
    let now = Utc::now();
    let state = state.into_inner();
    // The state itself goes to the group commit, which holds it until the check-in is stored.
    let db = state.db.clone();
    service::submit(&db, state, caller, typed, &value, now).await
}

/// Monthly attendance of everyone who must check in, in scope: the first secretaries and
/// enumerators assigned to the villages, and the special-post and temporary-post holders of the
/// real-name ledger (each household's latest approved survey as of the month's end) — those
/// without any check-in too, with 0 days and `no_checkins: true` (a field user once, in the first
/// of their villages in the area). Per person and village: the days present (several check-ins a
/// day count once; an accepted check-in, or a flagged one a reviewer confirmed), the days still
/// flagged (awaiting a reviewer, not counted), the days dismissed (never counted), the days
/// required and whether they are met; with roll-ups per village and county. Field users see
/// their villages, county reviewers their county, the city everything. `format=xlsx|csv` gives
/// the 考勤表 instead.
#[utoipa::path(
    tag = "checkins",
    security(("bearer" = [])),
    params(AttendanceQuery),
    responses(
        (status = 200, description = "The month's attendance (JSON), or the 考勤表 as XLSX or CSV (UTF-8 with BOM)", content(
            (Attendance = "application/json"),
            (inline(String) = "text/csv"),
            (inline(crate::domain::Binary) = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        )),
        (status = 400, description = "`invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`out_of_scope`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/attendance")]
pub async fn get_attendance(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    query: ApiQuery<AttendanceQuery>,
) -> ApiResult<HttpResponse> {
    let format = query.0.format.unwrap_or_default();
    let filter = query.0.filter(&caller)?;
    if format != ExportFormat::Json {
        let download = service::attendance_export(
            &state.vault,
            &state.settings.checkins,
            caller,
            filter,
            format,
        )?;
        return super::ledger::stream(&state, download);
    }
    let attendance = service::attendance(
        &state.db,
        &state.vault,
        &state.settings.checkins,
        caller,
        filter,
    )
    .await?;
    Ok(HttpResponse::Ok().json(attendance))
}

/// The check-ins of a month in the caller's scope, newest first, with their flags, position
/// and photo: what a reviewer looks at behind a flagged attendance day.
#[utoipa::path(
    tag = "checkins",
    security(("bearer" = [])),
    params(CheckinQuery),
    responses(
        (status = 200, description = "The check-ins", body = CheckinList),
        (status = 400, description = "`invalid_query`: bad month, code or limit", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`out_of_scope`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/checkins")]
pub async fn list_checkins(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    query: ApiQuery<CheckinQuery>,
) -> ApiResult<web::Json<CheckinList>> {
    let (filter, flagged, limit) = query.0.filter(&caller)?;
    service::list_checkins(&state.db, caller, filter, flagged, limit)
        .await
        .map(web::Json)
}

/// Confirms or dismisses a flagged check-in, with a reason (audited). A confirmed check-in's day
/// counts as present; a dismissed one never counts. County reviewers decide in their county, the
/// city anywhere; a check-in outside the caller's scope is 404. One decision per check-in, and
/// final: the same decision with the same reason again answers 200 with what was stored (a
/// retry); any other second decision is 409 `illegal_transition`, as is a decision on an
/// accepted check-in.
#[utoipa::path(
    tag = "checkins",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The check-in's submission id")),
    request_body(content = CheckinReviewRequest, example = json!({"decision": "confirm", "reason": "已电话核实，当日在村开展入户走访"})),
    responses(
        (status = 201, description = "Decided", body = CheckinReview),
        (status = 200, description = "The same decision and reason again: what was stored", body = CheckinReview),
        (status = 403, description = "`forbidden_role`: only county reviewers and the city decide", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such check-in in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`illegal_transition`: already decided otherwise, or accepted (nothing to decide)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `reason` `required` or `length` (at most 500 characters), `decision` `unknown_value`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/checkins/{id}/review")]
pub async fn review_checkin(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    body: ApiJson<CheckinReviewRequest>,
) -> ApiResult<HttpResponse> {
    let (review, decided) =
        service::review_checkin(&state.db, caller, path.into_inner(), body.0, Utc::now()).await?;
    Ok(if decided {
        HttpResponse::Created().json(review)
    } else {
        HttpResponse::Ok().json(review)
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubsidyQuery {
    /// `YYYY-MM` (default: the current month).
    pub month: Option<String>,
    /// `city`, `county`, `township` or `village`; default the caller's county for a county
    /// reviewer, else the city.
    pub level: Option<DivisionLevel>,
    /// 12-digit code of the node (not needed for the city, nor for a reviewer's own county).
    pub code: Option<String>,
    /// `json` (default), `xlsx` or `csv`.
    pub format: Option<ExportFormat>,
}

/// The post subsidy sheet (岗位补贴发放表) of a node and month: every special-post and
/// temporary-post holder of the real-name ledger there (latest approved survey as of the month's
/// end), with the days attended (accepted check-ins and confirmed flagged ones; flagged ones
/// awaiting a reviewer are shown apart and not paid), the days required
/// (`--required-days-special-post`, default 20) and the amount due, holders with no day attended
/// marked (`no_attendance`); totals per village, township and county. Amounts are integer fen
/// (1 yuan = 100 fen). The rule (`rule` in the answer, set in the server's configuration): the
/// full monthly amount is 800 yuan for temporary posts (吉人社函〔2020〕28号, as the notice
/// says) and `--special-post-monthly-yuan` for special posts (default 800: the notice gives no
/// figure); `prorated` (default) pays `monthly × attended ÷ required`, fractions of a fen dropped,
/// never more than the monthly amount; `all_or_nothing` pays the full amount once the requirement
/// is met, else nothing.
#[utoipa::path(
    tag = "checkins",
    security(("bearer" = [])),
    params(SubsidyQuery),
    responses(
        (status = 200, description = "The sheet (JSON), or as XLSX (发放表 and 汇总 sheets) or CSV (UTF-8 with BOM)", content(
            (SubsidySheet = "application/json"),
            (inline(String) = "text/csv"),
            (inline(crate::domain::Binary) = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        )),
        (status = 400, description = "`invalid_query`: bad month, level, code or format", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`out_of_scope`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such node", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/subsidies")]
pub async fn get_subsidies(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    query: ApiQuery<SubsidyQuery>,
) -> ApiResult<HttpResponse> {
    let q = query.0;
    let month = area::month("month", q.month.as_deref())?;
    let node = match (q.level, &caller.county_code, caller.scope_level()) {
        (None, Some(county), crate::auth::ScopeLevel::County) if q.code.is_none() => NodeFilter {
            level: DivisionLevel::County,
            code: county.clone(),
        },
        _ => NodeFilter::parse(q.level, q.code.as_deref())?,
    };
    let format = q.format.unwrap_or_default();
    let (db, vault, policy) = (&state.db, &state.vault, &state.settings.checkins);
    if format != ExportFormat::Json {
        let download =
            service::subsidies_export(db, vault, policy, caller, node, month, format).await?;
        return super::ledger::stream(&state, download);
    }
    let sheet = service::subsidies(db, vault, policy, caller, node, month).await?;
    Ok(HttpResponse::Ok().json(sheet))
}
