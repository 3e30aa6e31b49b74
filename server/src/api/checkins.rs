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
use crate::checkins::service::{self, Verification};
use crate::checkins::store::CheckinAnswer;
use crate::domain::Month;
use crate::error::{bad_query, ApiError, ApiResult, Problem};
use crate::http::Auth;
use crate::http::{ApiJsonValue, ApiQuery};
use crate::state::AppState;
use crate::submissions::{Kind, Outcome};

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(submit_checkin)
        .service(get_attendance)
        .service(list_checkins);
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
    let db = state.db.clone();
    db.write(move |conn| {
        let with = Verification {
            vault: &state.vault,
            geofences: &state.geofences,
            policy: &state.settings.checkins,
        };
        service::submit(conn, &with, &caller, &typed, &value, now)
    })
    .await
}

/// Monthly attendance: per person and village, the days present (several check-ins a day count
/// once; a day with only flagged check-ins counts apart, as flagged), the days required and
/// whether they are met; with roll-ups per village and county. Field users see their villages,
/// county reviewers their county, the city everything.
#[utoipa::path(
    tag = "checkins",
    security(("bearer" = [])),
    params(AttendanceQuery),
    responses(
        (status = 200, description = "The month's attendance", body = Attendance),
        (status = 400, description = "`invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`out_of_scope`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/attendance")]
pub async fn get_attendance(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    query: ApiQuery<AttendanceQuery>,
) -> ApiResult<web::Json<Attendance>> {
    let filter = query.0.filter(&caller)?;
    service::attendance(
        &state.db,
        &state.vault,
        &state.settings.checkins,
        caller,
        filter,
    )
    .await
    .map(web::Json)
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
