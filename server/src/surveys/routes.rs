use actix_web::{post, web, HttpResponse};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::input::{HouseholdSurveyRequest, VillageSurveyRequest};
use super::{store, validate};
use crate::auth::Caller;
use crate::domain::{Role, SubmissionId, SurveyFlag};
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::ApiJsonValue;
use crate::state::AppState;
use crate::submissions::{self, canonical_json, Incoming, Kind, Outcome};

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(submit_household_survey)
        .service(submit_village_survey);
    super::read::configure(cfg);
    super::review_routes::configure(cfg);
    super::duplicates_routes::configure(cfg);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FlagDetail {
    pub flag: SurveyFlag,
    /// The other household concerned (`possible_duplicate`, `person_in_multiple_households`,
    /// `household_in_other_county`); absent when it lies outside the reader's scope.
    pub related_household_id: Option<String>,
    /// Why the flag was raised, in Chinese. It names the other household by village and head
    /// (「洮北区青山镇德顺村 张三户」) only where `related_household_id` is given, else 「另一户」.
    #[schema(example = "第 1 位成员（members[0]）也登记在洮北区青山镇德顺村 张三户中")]
    pub detail: String,
}

/// The answer to a household survey: the same body on every replay.
#[derive(Debug, Serialize, ToSchema)]
pub struct HouseholdSurveyAnswer {
    /// The submission id.
    pub id: String,
    pub household_id: String,
    /// This survey's version of the household (1 for its first survey).
    pub version: i32,
    /// Review status: `submitted` until a county reviewer decides.
    #[schema(value_type = crate::domain::ReviewStatus, example = "submitted")]
    pub status: String,
    pub flags: Vec<SurveyFlag>,
    pub flag_details: Vec<FlagDetail>,
    pub received_at: chrono::DateTime<Utc>,
}

/// The answer to a village post-demand survey.
#[derive(Debug, Serialize, ToSchema)]
pub struct VillageSurveyAnswer {
    pub id: String,
    pub village_code: String,
    #[schema(example = "2020-07")]
    pub month: String,
    #[schema(value_type = crate::domain::ReviewStatus, example = "submitted")]
    pub status: String,
    /// An earlier survey of this village and month exists; the latest one counts.
    pub supersedes_earlier: bool,
    /// Posts needed and filled, summed over post types.
    pub needed: i64,
    pub filled: i64,
    pub received_at: chrono::DateTime<Utc>,
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
    caller: Caller,
    // Taken as a result so that a refused body counts in the submission metrics.
    body: Result<ApiJsonValue<HouseholdSurveyRequest>, ApiError>,
) -> ApiResult<HttpResponse> {
    let result = household_survey(state.clone(), caller, body).await;
    state
        .metrics
        .observe_submission(Kind::HouseholdSurvey, &result);
    Ok(result?.into_response())
}

async fn household_survey(
    state: web::Data<AppState>,
    caller: Caller,
    body: Result<ApiJsonValue<HouseholdSurveyRequest>, ApiError>,
) -> ApiResult<Outcome> {
    // The body's errors come first, as when it was extracted before the handler ran.
    let ApiJsonValue {
        typed: input,
        value,
    } = body?;
    caller.require_role(&[Role::Enumerator, Role::FirstSecretary])?;
    let canonical = canonical_json(&value);
    // Who, when, where and with which device are not the answers: two enumerators giving the
    // same answers do not conflict.
    let answers =
        canonical_json(&json!({"household": value["household"], "members": value["members"]}));
    let now = Utc::now();
    let state = state.into_inner();
    let db = state.db.clone();
    db.write(move |conn| {
        let vault = &state.vault;
        let id = SubmissionId::parse(&input.submission_id).ok();
        let village = input.village_code.clone();
        if let Some(id) = &id {
            let incoming = Incoming {
                id: id.as_str(),
                kind: Kind::HouseholdSurvey,
                user_id: &caller.user_id,
                village_code: &village,
                canonical: &canonical,
                replay_checked: false,
            };
            if let Some(replayed) = submissions::replay(conn, vault, &incoming)? {
                return Ok(replayed);
            }
        }
        let survey = validate::household(&input, &caller, now).map_err(ApiError::Validation)?;
        let answers_hash = vault.keyed_hash(answers.as_bytes());
        let incoming = Incoming {
            id: survey.id.as_str(),
            kind: Kind::HouseholdSurvey,
            user_id: &caller.user_id,
            village_code: survey.village.as_str(),
            canonical: &canonical,
            replay_checked: true,
        };
        submissions::ingest(conn, vault, &incoming, now, |conn| {
            store::household(conn, vault, &survey, &answers_hash, &caller.user_id, now)
        })
    })
    .await
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
    caller: Caller,
    body: Result<ApiJsonValue<VillageSurveyRequest>, ApiError>,
) -> ApiResult<HttpResponse> {
    let result = village_survey(state.clone(), caller, body).await;
    state
        .metrics
        .observe_submission(Kind::VillageSurvey, &result);
    Ok(result?.into_response())
}

async fn village_survey(
    state: web::Data<AppState>,
    caller: Caller,
    body: Result<ApiJsonValue<VillageSurveyRequest>, ApiError>,
) -> ApiResult<Outcome> {
    let ApiJsonValue {
        typed: input,
        value,
    } = body?;
    caller.require_role(&[Role::Enumerator, Role::FirstSecretary])?;
    let canonical = canonical_json(&value);
    let now = Utc::now();
    let state = state.into_inner();
    let db = state.db.clone();
    db.write(move |conn| {
        let vault = &state.vault;
        if let Ok(id) = SubmissionId::parse(&input.submission_id) {
            let incoming = Incoming {
                id: id.as_str(),
                kind: Kind::VillageSurvey,
                user_id: &caller.user_id,
                village_code: &input.village_code,
                canonical: &canonical,
                replay_checked: false,
            };
            if let Some(replayed) = submissions::replay(conn, vault, &incoming)? {
                return Ok(replayed);
            }
        }
        let survey =
            validate::village_survey(&input, &caller, now).map_err(ApiError::Validation)?;
        let incoming = Incoming {
            id: survey.id.as_str(),
            kind: Kind::VillageSurvey,
            user_id: &caller.user_id,
            village_code: survey.village.as_str(),
            canonical: &canonical,
            replay_checked: true,
        };
        submissions::ingest(conn, vault, &incoming, now, |conn| {
            store::village(conn, &survey, &caller.user_id, now)
        })
    })
    .await
}
