use actix_web::{get, post, web, HttpResponse};
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use super::input::{self, CheckinRequest};
use super::{attendance, store};
use crate::auth::Caller;
use crate::domain::{CheckinFlag, Role, SubmissionId};
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::ApiJsonValue;
use crate::state::AppState;
use crate::submissions::{self, canonical_json, Incoming, Kind, Outcome};

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(submit_checkin)
        .service(get_attendance)
        .service(list_checkins);
}

/// The answer to a check-in: the same body on every replay.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckinAnswer {
    pub id: String,
    /// `accepted`, or `flagged` with the reasons in `flags`; a check-in is never refused for
    /// doubtful facts.
    #[schema(example = "accepted")]
    pub status: crate::domain::CheckinStatus,
    pub flags: Vec<CheckinFlag>,
    /// The local (Asia/Shanghai) day the check-in counts for.
    #[schema(example = "2020-07-20")]
    pub attendance_date: chrono::NaiveDate,
    #[schema(value_type = crate::domain::CheckinKind, example = "resident_duty")]
    pub kind: String,
    pub received_at: chrono::DateTime<Utc>,
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
        (status = 422, description = "`validation_failed`: e.g. `photo` `photo_missing` (upload, then retry), `worker_id_number` `not_a_post_holder`, `village_code` `out_of_scope`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/checkins")]
pub async fn submit_checkin(
    state: web::Data<AppState>,
    caller: Caller,
    // Taken as a result so that a refused body counts in the submission metrics.
    body: Result<ApiJsonValue<CheckinRequest>, ApiError>,
) -> ApiResult<HttpResponse> {
    let result = receive_checkin(state.clone(), caller, body).await;
    state.metrics.observe_submission(Kind::Checkin, &result);
    Ok(result?.into_response())
}

async fn receive_checkin(
    state: web::Data<AppState>,
    caller: Caller,
    body: Result<ApiJsonValue<CheckinRequest>, ApiError>,
) -> ApiResult<Outcome> {
    // The body's errors come first, as when it was extracted before the handler ran.
    let ApiJsonValue {
        typed: request,
        value,
    } = body?;
    caller.require_role(&[Role::Enumerator, Role::FirstSecretary])?;
    let canonical = canonical_json(&value);
    let now = Utc::now();
    let state = state.into_inner();
    let db = state.db.clone();
    db.write(move |conn| {
        let vault = &state.vault;
        if let Ok(id) = SubmissionId::parse(&request.submission_id) {
            let incoming = Incoming {
                id: id.as_str(),
                kind: Kind::Checkin,
                user_id: &caller.user_id,
                village_code: &request.village_code,
                canonical: &canonical,
                replay_checked: false,
            };
            if let Some(replayed) = submissions::replay(conn, vault, &incoming)? {
                return Ok(replayed);
            }
        }
        let checkin = input::validate(&request, &caller, now).map_err(ApiError::Validation)?;
        let incoming = Incoming {
            id: checkin.id.as_str(),
            kind: Kind::Checkin,
            user_id: &caller.user_id,
            village_code: checkin.village.as_str(),
            canonical: &canonical,
            replay_checked: true,
        };
        submissions::ingest(conn, vault, &incoming, now, |conn| {
            store::store(
                conn,
                vault,
                &state.geofences,
                &state.settings.checkins,
                &checkin,
                &caller.user_id,
                now,
            )
        })
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
    params(attendance::AttendanceQuery),
    responses(
        (status = 200, description = "The month's attendance", body = attendance::Attendance),
        (status = 400, description = "`invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`out_of_scope`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/attendance")]
pub async fn get_attendance(
    state: web::Data<AppState>,
    caller: Caller,
    query: crate::http::ApiQuery<attendance::AttendanceQuery>,
) -> ApiResult<web::Json<attendance::Attendance>> {
    attendance_of_month(state, caller, query)
        .await
        .map(web::Json)
}

/// [`get_attendance`] as a function, for the console.
pub async fn attendance_of_month(
    state: web::Data<AppState>,
    caller: Caller,
    query: crate::http::ApiQuery<attendance::AttendanceQuery>,
) -> ApiResult<attendance::Attendance> {
    let query = attendance::Filter::parse(query.0, &caller)?;
    let state = state.into_inner();
    let db = state.db.clone();
    let answer = db
        .run(move |conn| {
            attendance::compute(
                conn,
                &state.vault,
                &state.settings.checkins,
                &caller,
                &query,
            )
        })
        .await?;
    Ok(answer)
}

/// The check-ins of a month in the caller's scope, newest first, with their flags, position
/// and photo: what a reviewer looks at behind a flagged attendance day.
#[utoipa::path(
    tag = "checkins",
    security(("bearer" = [])),
    params(attendance::CheckinQuery),
    responses(
        (status = 200, description = "The check-ins", body = attendance::CheckinList),
        (status = 400, description = "`invalid_query`: bad month, code or limit", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`out_of_scope`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/checkins")]
pub async fn list_checkins(
    state: web::Data<AppState>,
    caller: Caller,
    query: crate::http::ApiQuery<attendance::CheckinQuery>,
) -> ApiResult<web::Json<attendance::CheckinList>> {
    checkins_of_month(state, caller, query).await.map(web::Json)
}

/// [`list_checkins`] as a function, for the console.
pub async fn checkins_of_month(
    state: web::Data<AppState>,
    caller: Caller,
    query: crate::http::ApiQuery<attendance::CheckinQuery>,
) -> ApiResult<attendance::CheckinList> {
    let (filter, flagged, limit) = query.0.filter(&caller)?;
    state
        .db
        .run(move |conn| attendance::list(conn, &caller, &filter, flagged, limit))
        .await
}
