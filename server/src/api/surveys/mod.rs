//! The survey endpoints of the JSON API, in the order they are mounted: intake of household
//! and village surveys (here), the reads ([`reads`]) and review ([`review`]). Handlers turn
//! requests into typed values and call [`crate::surveys::service`].

mod reads;
mod review;

use actix_web::{post, web, HttpResponse};
use chrono::Utc;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::ApiJsonValue;
use crate::http::Auth;
use crate::state::AppState;
use crate::submissions::{Kind, Outcome};
use crate::surveys::ingest::{HouseholdSurveyAnswer, VillageSurveyAnswer};
use crate::surveys::input::{HouseholdSurveyRequest, VillageSurveyRequest};
use crate::surveys::service;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(submit_household_survey)
        .service(submit_village_survey)
        .service(reads::list_surveys)
        .service(reads::get_survey)
        .service(reads::get_household)
        .service(reads::my_submissions)
        .service(review::review_survey)
        .service(review::bulk_review)
        .service(review::list_duplicates)
        .service(review::decide_pair);
}

/// A submission's answer: 201 when stored now, 200 with the same body for a replay.
pub(super) fn submission_response(outcome: Outcome) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(outcome.status())
        .unwrap_or(actix_web::http::StatusCode::CREATED);
    HttpResponse::build(status)
        .content_type("application/json")
        .body(outcome.into_body())
}

/// Submits a household survey (入户调查).
///
/// Upload the photos first. The first request with a `submission_id` answers 201; the same
/// id with the same content answers 200 with the same body (retry freely); the same id with
/// other content answers 409 `submission_id_reused`. A survey of a known household (same
/// household number, else same head ID number) becomes its next version. Flags:
/// `possible_duplicate` (no household number or head ID, but a household of the village has
/// the same head name, a size within one and lies within 100 m), `person_in_multiple_households`
/// (a member's ID number is in another household's latest version), `conflicting_versions`
/// (another enumerator surveyed the household this month with other answers).
#[utoipa::path(
    tag = "surveys",
    security(("bearer" = [])),
    request_body(content = HouseholdSurveyRequest, example = json!({
        "submission_id": "0190b7c2-6d1e-7c3a-9a51-3f2d8e0b4c11",
        "form_version": "2020.07",
        "village_code": "220802100201",
        "surveyed_at": "2020-07-20T09:31:00+08:00",
        "location": {"lat": 45.6194, "lon": 122.8391, "accuracy_m": 12.5, "crs": "wgs84"},
        "household": {"household_number": null, "head_name": "张三", "head_id_number": "220802197001011238",
                      "poverty_status": "lifted", "relocated": false, "phone": "13800000000"},
        "members": [{"name": "张三", "id_number": "220802197001011238", "sex": "male", "birth_date": "1970-01-01",
                     "relation": "head", "labour_capacity": "able",
                     "employment": {"status": "out_of_province", "employer_id": null, "post_type": null, "monthly_income_yuan": 3000},
                     "wants_public_post": false, "training": {"wanted": true, "trade": "electrician"},
                     "at_risk": false, "safety_net": []}],
        "photos": ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
        "replaces": null,
        "device": {"device_id": "a1b2c3", "app_version": "1.0.0"}
    })),
    responses(
        (status = 201, description = "Stored", body = HouseholdSurveyAnswer, example = json!({
            "id": "0190b7c2-6d1e-7c3a-9a51-3f2d8e0b4c11", "household_id": "0193a6c4-2f0e-7b9a-8c1d-5e6f7a8b9c0d",
            "version": 1, "status": "submitted", "flags": [], "flag_details": [], "received_at": "2020-07-20T11:02:03.123Z"
        })),
        (status = 200, description = "A replay: stored before, answered as then", body = HouseholdSurveyAnswer),
        (status = 403, description = "`forbidden_role`: only enumerators and first secretaries submit surveys", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`submission_id_reused`: this id was used for other content", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `errors` names every field and rule, e.g. `members[2].id_number` `id_number_check_digit`, `village_code` `out_of_scope`, `photos[0]` `photo_missing` (upload it, then retry)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/surveys/households")]
pub async fn submit_household_survey(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    // Taken as a result so that a refused body counts in the submission metrics.
    body: Result<ApiJsonValue<HouseholdSurveyRequest>, ApiError>,
) -> ApiResult<HttpResponse> {
    let result = household_survey(state.clone(), caller, body).await;
    state
        .metrics
        .observe_submission(Kind::HouseholdSurvey, &result);
    Ok(submission_response(result?))
}

async fn household_survey(
    state: web::Data<AppState>,
    caller: Caller,
    body: Result<ApiJsonValue<HouseholdSurveyRequest>, ApiError>,
) -> ApiResult<Outcome> {
    // The body's errors come first, as when it was extracted before the handler ran.
    let ApiJsonValue { typed, value } = body?;
    let now = Utc::now();
    service::submit_household(&state.db, &state.vault, caller, typed, &value, now).await
}

/// Submits a village's public-welfare post demand for a month (公益岗需求排查), normally by its
/// first secretary. Exactly-once like every submission; a later survey of the same village and
/// month supersedes the earlier one for the ledger.
#[utoipa::path(
    tag = "surveys",
    security(("bearer" = [])),
    request_body(content = VillageSurveyRequest, example = json!({
        "submission_id": "0190b7c2-7a00-7c3a-9a51-3f2d8e0b4c12", "village_code": "220802100201", "month": "2020-07",
        "surveyed_at": "2020-07-21T10:00:00+08:00", "location": {"lat": 45.62, "lon": 122.84, "accuracy_m": 8},
        "posts": [{"post_type": "cleaner", "needed": 5, "filled": 3}], "willing_people": 7,
        "photos": [], "device": {"device_id": "a1b2c3", "app_version": "1.0.0"}
    })),
    responses(
        (status = 201, description = "Stored", body = VillageSurveyAnswer),
        (status = 200, description = "A replay", body = VillageSurveyAnswer),
        (status = 403, description = "`forbidden_role`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`submission_id_reused`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`, e.g. `posts[1].needed` `range`, `month` `month_mismatch`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/surveys/villages")]
pub async fn submit_village_survey(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    body: Result<ApiJsonValue<VillageSurveyRequest>, ApiError>,
) -> ApiResult<HttpResponse> {
    let result = village_survey(state.clone(), caller, body).await;
    state
        .metrics
        .observe_submission(Kind::VillageSurvey, &result);
    Ok(submission_response(result?))
}

async fn village_survey(
    state: web::Data<AppState>,
    caller: Caller,
    body: Result<ApiJsonValue<VillageSurveyRequest>, ApiError>,
) -> ApiResult<Outcome> {
    let ApiJsonValue { typed, value } = body?;
    let now = Utc::now();
    service::submit_village(&state.db, &state.vault, caller, typed, &value, now).await
}
