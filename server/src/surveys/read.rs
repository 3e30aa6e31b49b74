//! Reading surveys and households, always within the caller's scope. ID numbers are masked
//! unless a reviewer or the city asks to reveal them, and every revealed view is audited.

use std::collections::{HashMap, HashSet};

use actix_web::{get, web};
use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::routes::FlagDetail;
use crate::audit;
use crate::auth::{Caller, ScopeLevel};
use crate::db::schema::{
    household_surveys, households, people, photo_links, survey_flags, survey_members, users,
    village_surveys,
};
use crate::db::DbConnection;
use crate::domain::*;
use crate::error::{ApiError, ApiResult, ErrorCode, Problem};
pub(crate) use crate::http::bad_query;
use crate::http::ApiQuery;
use crate::privacy::{Purpose, Vault};
use crate::state::AppState;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_surveys)
        .service(get_survey)
        .service(get_household)
        .service(my_submissions);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SurveySummary {
    pub id: String,
    pub household_id: String,
    pub version: i32,
    pub village_code: String,
    pub enumerator_id: String,
    pub head_name: String,
    pub member_count: i32,
    pub poverty_status: PovertyStatus,
    pub surveyed_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub status: ReviewStatus,
    /// Counts the survey's state changes: name it as `seen_version` when deciding.
    pub review_version: i32,
    pub flags: Vec<SurveyFlag>,
    /// Each flag with the other household concerned and why it was raised.
    pub flag_details: Vec<FlagDetail>,
    /// WGS-84, where the survey was made.
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
    pub photos: Vec<PhotoRef>,
}

/// A photo of a submission, with the URLs a reviewer's page loads.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhotoRef {
    pub sha256: String,
    /// The photo as uploaded.
    #[schema(
        example = "/api/v1/photos/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    )]
    pub url: String,
    /// A JPEG with its longest side 320 px.
    #[schema(
        example = "/api/v1/photos/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08?size=thumb"
    )]
    pub thumbnail_url: String,
}

impl PhotoRef {
    pub fn new(sha256: String) -> Self {
        PhotoRef {
            url: format!("/api/v1/photos/{sha256}"),
            thumbnail_url: format!("/api/v1/photos/{sha256}?size=thumb"),
            sha256,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SurveyPage {
    pub items: Vec<SurveySummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

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

type SummaryRow = (
    String,
    String,
    i32,
    String,
    String,
    String,
    i32,
    String,
    NaiveDateTime,
    NaiveDateTime,
    String,
    i32,
    f64,
    f64,
    Option<f64>,
);

pub(crate) fn code(field: &str, value: &str, level: DivisionLevel) -> ApiResult<DivisionCode> {
    DivisionCode::parse_level(value, level).map_err(|e| bad_query(field, e.message))
}

pub(crate) fn day_start(field: &str, value: &str, plus_days: i64) -> ApiResult<NaiveDateTime> {
    let day = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| bad_query(field, "须为 YYYY-MM-DD 格式的日期"))?;
    let local = (day + chrono::Duration::days(plus_days))
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default();
    Ok(local - chrono::Duration::hours(8))
}

/// A position in a list ordered by a time and an id. The time keeps every digit the database
/// stored (SQLite keeps nanoseconds), so the next page starts exactly after the last item.
pub(crate) fn encode_cursor(at: NaiveDateTime, id: &str) -> String {
    let nanos = at.and_utc().timestamp_nanos_opt().unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{nanos}|{id}"))
}

pub(crate) fn decode_cursor(cursor: &str) -> ApiResult<(NaiveDateTime, String)> {
    let bad = || bad_query("cursor", "不是本服务器给出的翻页游标");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (nanos, id) = text.split_once('|').ok_or_else(bad)?;
    let at = DateTime::from_timestamp_nanos(nanos.parse().map_err(|_| bad())?);
    Ok((at.naive_utc(), id.to_owned()))
}

fn flags_of(
    conn: &mut DbConnection,
    ids: &[String],
) -> QueryResult<HashMap<String, Vec<SurveyFlag>>> {
    let mut out: HashMap<String, Vec<SurveyFlag>> = HashMap::new();
    for (survey, flag) in survey_flags::table
        .filter(survey_flags::survey_id.eq_any(ids))
        .select((survey_flags::survey_id, survey_flags::flag))
        .load::<(String, String)>(conn)?
    {
        if let Some(flag) = SurveyFlag::parse(&flag) {
            let list = out.entry(survey).or_default();
            if !list.contains(&flag) {
                list.push(flag);
            }
        }
    }
    Ok(out)
}

fn corrupt(what: &str) -> ApiError {
    ApiError::internal(anyhow::anyhow!("stored {what} is invalid"))
}

fn summaries(
    conn: &mut DbConnection,
    caller: &Caller,
    rows: Vec<SummaryRow>,
) -> ApiResult<Vec<SurveySummary>> {
    let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let mut flags = flags_of(conn, &ids)?;
    let mut details: HashMap<String, Vec<FlagDetail>> = HashMap::new();
    for (survey, detail) in flag_details(conn, caller, &ids)? {
        details.entry(survey).or_default().push(detail);
    }
    let mut photos: HashMap<String, Vec<PhotoRef>> = HashMap::new();
    for (survey, sha) in photo_links::table
        .filter(photo_links::submission_id.eq_any(&ids))
        .select((photo_links::submission_id, photo_links::photo_sha256))
        .order((photo_links::submission_id, photo_links::photo_sha256))
        .load::<(String, String)>(conn)?
    {
        photos.entry(survey).or_default().push(PhotoRef::new(sha));
    }
    rows.into_iter()
        .map(
            |(
                id,
                household_id,
                version,
                village_code,
                enumerator_id,
                head_name,
                member_count,
                poverty,
                surveyed_at,
                received_at,
                status,
                review_version,
                lat,
                lon,
                accuracy_m,
            )| {
                Ok(SurveySummary {
                    flags: flags.remove(&id).unwrap_or_default(),
                    flag_details: details.remove(&id).unwrap_or_default(),
                    photos: photos.remove(&id).unwrap_or_default(),
                    review_version,
                    lat,
                    lon,
                    accuracy_m,
                    id,
                    household_id,
                    version,
                    village_code,
                    enumerator_id,
                    head_name,
                    member_count,
                    poverty_status: PovertyStatus::parse(&poverty)
                        .ok_or_else(|| corrupt("poverty status"))?,
                    surveyed_at: surveyed_at.and_utc(),
                    received_at: received_at.and_utc(),
                    status: ReviewStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
                })
            },
        )
        .collect()
}

macro_rules! summary_columns {
    () => {
        (
            household_surveys::id,
            household_surveys::household_id,
            household_surveys::version,
            household_surveys::village_code,
            household_surveys::enumerator_id,
            household_surveys::head_name,
            household_surveys::member_count,
            household_surveys::poverty_status,
            household_surveys::surveyed_at,
            household_surveys::received_at,
            household_surveys::status,
            household_surveys::review_version,
            household_surveys::lat,
            household_surveys::lon,
            household_surveys::accuracy_m,
        )
    };
}

/// The states a reviewer still has to decide.
pub const AWAITING_REVIEW: [&str; 2] = ["submitted", "reopened"];

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
    caller: Caller,
    query: ApiQuery<SurveyQuery>,
) -> ApiResult<web::Json<SurveyPage>> {
    surveys_page(state, caller, query).await.map(web::Json)
}

/// [`list_surveys`] as a function, for the console.
pub async fn surveys_page(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<SurveyQuery>,
) -> ApiResult<SurveyPage> {
    let q = query.0;
    let village = q
        .village
        .as_deref()
        .map(|v| code("village", v, DivisionLevel::Village))
        .transpose()?;
    let county = q
        .county
        .as_deref()
        .map(|c| code("county", c, DivisionLevel::County))
        .transpose()?;
    if let Some(v) = &village {
        caller.require_village(v)?;
    }
    if let Some(c) = &county {
        caller.require_county(c)?;
    }
    let from = q
        .from
        .as_deref()
        .map(|d| day_start("from", d, 0))
        .transpose()?;
    let to = q.to.as_deref().map(|d| day_start("to", d, 1)).transpose()?;
    let cursor = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(bad_query("limit", "须为 1 至 200"));
    }
    let page = state
        .db
        .run(move |conn| {
            let mut select = household_surveys::table
                .select(summary_columns!())
                .into_boxed();
            match caller.scope_level() {
                ScopeLevel::City => {}
                ScopeLevel::County => {
                    select = select
                        .filter(household_surveys::village_code.like(caller.county_pattern()));
                }
                ScopeLevel::Villages => {
                    let own: Vec<String> = caller
                        .village_codes
                        .iter()
                        .map(|c| c.as_str().to_owned())
                        .collect();
                    select = select.filter(household_surveys::village_code.eq_any(own));
                }
            }
            if let Some(v) = village {
                select = select.filter(household_surveys::village_code.eq(v.as_str().to_owned()));
            }
            if let Some(c) = county {
                select = select.filter(household_surveys::village_code.like(c.county_pattern()));
            }
            if let Some(status) = q.status {
                select = select.filter(household_surveys::status.eq(status.as_str()));
            }
            if let Some(flag) = q.flag {
                let flagged = survey_flags::table
                    .filter(survey_flags::flag.eq(flag.as_str()))
                    .select(survey_flags::survey_id);
                select = select.filter(household_surveys::id.eq_any(flagged));
            }
            if let Some(enumerator) = q.enumerator {
                select = select.filter(household_surveys::enumerator_id.eq(enumerator));
            }
            if let Some(from) = from {
                select = select.filter(household_surveys::surveyed_at.ge(from));
            }
            if let Some(to) = to {
                select = select.filter(household_surveys::surveyed_at.lt(to));
            }
            let queue = q.needs_review == Some(true);
            if queue {
                select = select.filter(household_surveys::status.eq_any(AWAITING_REVIEW));
            }
            match cursor {
                Some((at, id)) if queue => {
                    select = select.filter(
                        household_surveys::received_at
                            .gt(at)
                            .or(household_surveys::received_at
                                .eq(at)
                                .and(household_surveys::id.gt(id))),
                    );
                }
                Some((at, id)) => {
                    select = select.filter(
                        household_surveys::received_at
                            .lt(at)
                            .or(household_surveys::received_at
                                .eq(at)
                                .and(household_surveys::id.lt(id))),
                    );
                }
                None => {}
            }
            select = if queue {
                select.order((household_surveys::received_at, household_surveys::id))
            } else {
                select.order((
                    household_surveys::received_at.desc(),
                    household_surveys::id.desc(),
                ))
            };
            let mut rows: Vec<SummaryRow> = select.limit(limit + 1).load(conn)?;
            let more = rows.len() as i64 > limit;
            rows.truncate(limit as usize);
            let next_cursor = if more {
                rows.last().map(|r| encode_cursor(r.9, &r.0))
            } else {
                None
            };
            Ok(SurveyPage {
                items: summaries(conn, &caller, rows)?,
                next_cursor,
            })
        })
        .await?;
    Ok(page)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevealQuery {
    /// Show ID numbers and phone numbers in full (county reviewers and the city only; audited).
    pub reveal: Option<bool>,
    /// Why they are revealed, for the audit log.
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmploymentView {
    pub status: EmploymentStatus,
    pub employer_id: Option<String>,
    pub post_type: Option<PostType>,
    pub monthly_income_yuan: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub name: String,
    /// Masked (`220802********1238`) unless revealed.
    pub id_number: String,
    pub sex: Sex,
    pub birth_date: NaiveDate,
    pub relation: Relation,
    pub labour_capacity: LabourCapacity,
    pub employment: Option<EmploymentView>,
    pub wants_public_post: bool,
    pub training_wanted: bool,
    pub training_trade: Option<TrainingTrade>,
    pub at_risk: bool,
    pub safety_net: Vec<SafetyNet>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SurveyDetail {
    #[serde(flatten)]
    pub summary: SurveySummary,
    pub form_version: String,
    #[schema(example = "2020-07")]
    pub month: String,
    pub household_number: Option<String>,
    /// The head's ID number, masked unless revealed.
    pub head_id_number: Option<String>,
    /// Masked (`138****0000`) unless revealed.
    pub phone: Option<String>,
    pub relocated: bool,
    pub replaces: Option<String>,
    pub review_comment: Option<String>,
    pub status_changed_at: DateTime<Utc>,
    /// Whether ID and phone numbers are shown in full.
    pub revealed: bool,
    pub members: Vec<MemberView>,
}

fn mask_phone(phone: &str) -> String {
    if phone.len() == 11 {
        format!("{}****{}", &phone[..3], &phone[7..])
    } else {
        "****".into()
    }
}

fn id_text(vault: &Vault, sealed: &str, reveal: bool) -> ApiResult<String> {
    let id = vault.open_id(sealed).map_err(ApiError::internal)?;
    Ok(if reveal {
        id.expose().to_owned()
    } else {
        id.masked()
    })
}

/// Checks a reveal request: only reviewers and the city may, and each reveal is audited.
pub(crate) fn reveal_allowed(
    caller: &Caller,
    reveal: Option<bool>,
    reason: Option<&str>,
) -> ApiResult<bool> {
    if reveal != Some(true) {
        return Ok(false);
    }
    caller.require_role(&[Role::CountyReviewer, Role::CityAdmin])?;
    if reason.is_some_and(|r| r.chars().count() > 200) {
        return Err(bad_query("reason", "最多 200 个字符"));
    }
    Ok(true)
}

fn survey_detail(
    conn: &mut DbConnection,
    vault: &Vault,
    caller: &Caller,
    id: &str,
    reveal: bool,
    reason: Option<&str>,
) -> ApiResult<SurveyDetail> {
    let not_found = || ApiError::NotFound(format!("入户调查 {id} 不存在"));
    let row: SummaryRow = household_surveys::table
        .find(id)
        .select(summary_columns!())
        .first(conn)
        .optional()?
        .ok_or_else(not_found)?;
    let village = DivisionCode::parse(&row.3).map_err(|_| corrupt("village code"))?;
    if !caller.can_access_village(&village) {
        return Err(not_found());
    }
    type Extra = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        bool,
        f64,
        f64,
        Option<f64>,
        Option<String>,
        Option<String>,
        NaiveDateTime,
    );
    let extra: Extra = household_surveys::table
        .find(id)
        .select((
            household_surveys::form_version,
            household_surveys::month,
            household_surveys::household_number,
            household_surveys::head_id_sealed,
            household_surveys::phone_sealed,
            household_surveys::relocated,
            household_surveys::lat,
            household_surveys::lon,
            household_surveys::accuracy_m,
            household_surveys::replaces,
            household_surveys::review_comment,
            household_surveys::status_changed_at,
        ))
        .first(conn)?;
    type MemberRow = (
        String,
        String,
        String,
        NaiveDate,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
        bool,
        bool,
        Option<String>,
        bool,
        String,
    );
    let members: Vec<MemberRow> = survey_members::table
        .inner_join(people::table)
        .filter(survey_members::survey_id.eq(id))
        .order(survey_members::position)
        .select((
            survey_members::name,
            people::id_sealed,
            people::sex,
            people::birth_date,
            survey_members::relation,
            survey_members::labour_capacity,
            survey_members::employment_status,
            survey_members::employer_id,
            survey_members::post_type,
            survey_members::monthly_income_yuan,
            survey_members::wants_public_post,
            survey_members::training_wanted,
            survey_members::training_trade,
            survey_members::at_risk,
            survey_members::safety_net,
        ))
        .load(conn)?;
    let members = members
        .into_iter()
        .map(|m| {
            Ok(MemberView {
                name: m.0,
                id_number: id_text(vault, &m.1, reveal)?,
                sex: Sex::parse(&m.2).ok_or_else(|| corrupt("sex"))?,
                birth_date: m.3,
                relation: Relation::parse(&m.4).ok_or_else(|| corrupt("relation"))?,
                labour_capacity: LabourCapacity::parse(&m.5)
                    .ok_or_else(|| corrupt("labour capacity"))?,
                employment: match m.6.as_deref() {
                    Some(status) => Some(EmploymentView {
                        status: EmploymentStatus::parse(status)
                            .ok_or_else(|| corrupt("employment status"))?,
                        employer_id: m.7,
                        post_type: m.8.as_deref().and_then(PostType::parse),
                        monthly_income_yuan: m.9,
                    }),
                    None => None,
                },
                wants_public_post: m.10,
                training_wanted: m.11,
                training_trade: m.12.as_deref().and_then(TrainingTrade::parse),
                at_risk: m.13,
                safety_net: m.14.split(',').filter_map(SafetyNet::parse).collect(),
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let head_id_number = extra
        .3
        .as_deref()
        .map(|s| id_text(vault, s, reveal))
        .transpose()?;
    let phone = match extra.4.as_deref() {
        Some(sealed) => {
            let clear = String::from_utf8(
                vault
                    .open(Purpose::Phone, sealed)
                    .map_err(ApiError::internal)?,
            )
            .map_err(ApiError::internal)?;
            Some(if reveal { clear } else { mask_phone(&clear) })
        }
        None => None,
    };
    if reveal {
        audit::append(
            conn,
            &audit::Entry {
                user_id: &caller.user_id,
                action: "reveal_personal_data",
                subject_type: "household_survey",
                subject_id: id,
                reason,
                ..Default::default()
            },
        )?;
    }
    let summary = summaries(conn, caller, vec![row])?
        .pop()
        .ok_or_else(|| corrupt("survey"))?;
    Ok(SurveyDetail {
        summary,
        form_version: extra.0,
        month: extra.1,
        household_number: extra.2,
        head_id_number,
        phone,
        relocated: extra.5,
        replaces: extra.9,
        review_comment: extra.10,
        status_changed_at: extra.11.and_utc(),
        revealed: reveal,
        members,
    })
}

/// The flags of the surveys, each with its survey id. A related household outside the
/// caller's scope is not named, neither by id nor in the text: the flag says only that there
/// is one (see [`super::flag_text`]).
fn flag_details(
    conn: &mut DbConnection,
    caller: &Caller,
    surveys: &[String],
) -> ApiResult<Vec<(String, FlagDetail)>> {
    let rows: Vec<(String, String, String, String)> = survey_flags::table
        .filter(survey_flags::survey_id.eq_any(surveys))
        .select((
            survey_flags::survey_id,
            survey_flags::flag,
            survey_flags::related_household_id,
            survey_flags::detail,
        ))
        .order((
            survey_flags::survey_id,
            survey_flags::flag,
            survey_flags::related_household_id,
        ))
        .load(conn)?;
    let related: Vec<&str> = rows
        .iter()
        .map(|r| r.2.as_str())
        .filter(|r| !r.is_empty())
        .collect();
    let visible: HashSet<String> = households::table
        .filter(households::id.eq_any(&related))
        .select((households::id, households::village_code))
        .load::<(String, String)>(conn)?
        .into_iter()
        .filter(|(_, village)| {
            DivisionCode::parse(village).is_ok_and(|v| caller.can_access_village(&v))
        })
        .map(|(id, _)| id)
        .collect();
    let visible_ids: Vec<&str> = visible.iter().map(String::as_str).collect();
    let names = super::flag_text::names_of(conn, &visible_ids)?;
    rows.into_iter()
        .map(|(survey, flag, related, detail)| {
            let shown = visible.contains(&related);
            let name = names.get(&related).filter(|_| shown);
            Ok((
                survey,
                FlagDetail {
                    flag: SurveyFlag::parse(&flag).ok_or_else(|| corrupt("flag"))?,
                    detail: super::flag_text::for_reader(&detail, name),
                    related_household_id: shown.then_some(related),
                },
            ))
        })
        .collect()
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
    caller: Caller,
    path: web::Path<String>,
    query: ApiQuery<RevealQuery>,
) -> ApiResult<web::Json<SurveyDetail>> {
    survey_by_id(state, caller, path, query)
        .await
        .map(web::Json)
}

/// [`get_survey`] as a function, for the console.
pub async fn survey_by_id(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: ApiQuery<RevealQuery>,
) -> ApiResult<SurveyDetail> {
    let id = SubmissionId::parse(&path.into_inner()).map_err(|e| ApiError::BadRequest {
        code: ErrorCode::InvalidPath,
        detail: format!("id：{}", e.message),
        field: Some("id".into()),
    })?;
    let reveal = reveal_allowed(&caller, query.0.reveal, query.0.reason.as_deref())?;
    let reason = query.0.reason;
    let state = state.into_inner();
    let db = state.db.clone();
    let detail = db
        .run_as(reveal, move |conn| {
            survey_detail(
                conn,
                &state.vault,
                &caller,
                id.as_str(),
                reveal,
                reason.as_deref(),
            )
        })
        .await?;
    Ok(detail)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HouseholdView {
    pub id: String,
    pub village_code: String,
    pub household_number: Option<String>,
    /// The head's ID number from the latest version that gives one, masked unless revealed.
    pub head_id_number: Option<String>,
    pub revealed: bool,
    /// Every version, oldest first.
    pub versions: Vec<SurveySummary>,
    /// The flags of all its versions.
    pub flags: Vec<FlagDetail>,
    /// Set when a reviewer merged this household into another: its versions are there now.
    pub merged_into: Option<String>,
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
    caller: Caller,
    path: web::Path<String>,
    query: ApiQuery<RevealQuery>,
) -> ApiResult<web::Json<HouseholdView>> {
    household_by_id(state, caller, path, query)
        .await
        .map(web::Json)
}

/// [`get_household`] as a function, for the console.
pub async fn household_by_id(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: ApiQuery<RevealQuery>,
) -> ApiResult<HouseholdView> {
    let id = path.into_inner();
    let reveal = reveal_allowed(&caller, query.0.reveal, query.0.reason.as_deref())?;
    let reason = query.0.reason;
    let state = state.into_inner();
    let db = state.db.clone();
    let view = db
        .run_as(reveal, move |conn| {
            let not_found = || ApiError::NotFound(format!("户 {id} 不存在"));
            let village_code: String = households::table
                .find(&id)
                .select(households::village_code)
                .first(conn)
                .optional()?
                .ok_or_else(not_found)?;
            let village =
                DivisionCode::parse(&village_code).map_err(|_| corrupt("village code"))?;
            if !caller.can_access_village(&village) {
                return Err(not_found());
            }
            let rows: Vec<SummaryRow> = household_surveys::table
                .filter(household_surveys::household_id.eq(&id))
                .select(summary_columns!())
                .order(household_surveys::version)
                .load(conn)?;
            let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
            let head_sealed: Option<String> = household_surveys::table
                .filter(household_surveys::household_id.eq(&id))
                .filter(household_surveys::head_id_sealed.is_not_null())
                .order(household_surveys::version.desc())
                .select(household_surveys::head_id_sealed)
                .first::<Option<String>>(conn)
                .optional()?
                .flatten();
            let head_id_number = head_sealed
                .as_deref()
                .map(|s| id_text(&state.vault, s, reveal))
                .transpose()?;
            if reveal {
                audit::append(
                    conn,
                    &audit::Entry {
                        user_id: &caller.user_id,
                        action: "reveal_personal_data",
                        subject_type: "household",
                        subject_id: &id,
                        reason: reason.as_deref(),
                        ..Default::default()
                    },
                )?;
            }
            let survivor = super::duplicates::survivor_of(conn, &id)?;
            let household_number =
                super::identity::numbers_of(conn, &[(id.clone(), village_code.clone())])?
                    .remove(&id);
            Ok(HouseholdView {
                flags: flag_details(conn, &caller, &ids)?
                    .into_iter()
                    .map(|(_, f)| f)
                    .collect(),
                merged_into: (survivor != id).then_some(survivor),
                versions: summaries(conn, &caller, rows)?,
                id,
                village_code,
                household_number,
                head_id_number,
                revealed: reveal,
            })
        })
        .await?;
    Ok(view)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SinceQuery {
    /// RFC 3339: only submissions received or changed after this moment (use the previous
    /// answer's `next_since`). Omit for all.
    pub since: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubmissionStatus {
    pub id: String,
    pub kind: crate::domain::SurveyKind,
    pub village_code: String,
    pub status: ReviewStatus,
    /// The reviewer's reason or request, when there is one.
    pub review_comment: Option<String>,
    /// User id of the reviewer who last decided (household surveys).
    pub reviewed_by: Option<String>,
    /// Their name, for the app to show.
    pub reviewer_name: Option<String>,
    pub flags: Vec<SurveyFlag>,
    pub received_at: DateTime<Utc>,
    pub status_changed_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MySubmissions {
    pub items: Vec<SubmissionStatus>,
    /// Pass as `since` next time.
    pub next_since: Option<DateTime<Utc>>,
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
    caller: Caller,
    query: ApiQuery<SinceQuery>,
) -> ApiResult<web::Json<MySubmissions>> {
    let since = match query.0.since.as_deref() {
        Some(s) => Some(
            DateTime::parse_from_rfc3339(s)
                .map_err(|_| {
                    bad_query("since", "须为 RFC 3339 时间，如 2020-07-20T09:31:00+08:00")
                })?
                .with_timezone(&Utc)
                .naive_utc(),
        ),
        None => None,
    };
    // Before any submission this service can have received (PostgreSQL's timestamps do not
    // reach NaiveDateTime::MIN).
    let floor = since.unwrap_or_else(|| {
        DateTime::from_timestamp(0, 0)
            .unwrap_or_default()
            .naive_utc()
    });
    let items = state
        .db
        .run(move |conn| {
            type Row = (
                String,
                String,
                String,
                Option<String>,
                NaiveDateTime,
                NaiveDateTime,
                Option<String>,
            );
            let households: Vec<Row> = household_surveys::table
                .filter(household_surveys::enumerator_id.eq(&caller.user_id))
                .filter(
                    household_surveys::received_at
                        .gt(floor)
                        .or(household_surveys::status_changed_at.gt(floor)),
                )
                .select((
                    household_surveys::id,
                    household_surveys::village_code,
                    household_surveys::status,
                    household_surveys::review_comment,
                    household_surveys::received_at,
                    household_surveys::status_changed_at,
                    household_surveys::reviewed_by,
                ))
                .load(conn)?;
            let villages: Vec<Row> = village_surveys::table
                .filter(village_surveys::surveyor_id.eq(&caller.user_id))
                .filter(
                    village_surveys::received_at
                        .gt(floor)
                        .or(village_surveys::status_changed_at.gt(floor)),
                )
                .select((
                    village_surveys::id,
                    village_surveys::village_code,
                    village_surveys::status,
                    village_surveys::review_comment,
                    village_surveys::received_at,
                    village_surveys::status_changed_at,
                    None::<String>
                        .into_sql::<diesel::sql_types::Nullable<diesel::sql_types::Text>>(),
                ))
                .load(conn)?;
            let ids: Vec<String> = households.iter().map(|r| r.0.clone()).collect();
            let mut flags = flags_of(conn, &ids)?;
            let reviewers: Vec<String> = households.iter().filter_map(|r| r.6.clone()).collect();
            let names: HashMap<String, String> = users::table
                .filter(users::id.eq_any(&reviewers))
                .select((users::id, users::name))
                .load::<(String, String)>(conn)?
                .into_iter()
                .collect();
            let mut items = households
                .into_iter()
                .map(|r| (r, crate::domain::SurveyKind::HouseholdSurvey))
                .chain(
                    villages
                        .into_iter()
                        .map(|r| (r, crate::domain::SurveyKind::VillageSurvey)),
                )
                .map(
                    |(
                        (id, village_code, status, review_comment, received_at, changed_at, by),
                        kind,
                    )| {
                        Ok(SubmissionStatus {
                            reviewer_name: by.as_ref().and_then(|b| names.get(b).cloned()),
                            reviewed_by: by,
                            flags: flags.remove(&id).unwrap_or_default(),
                            id,
                            kind,
                            village_code,
                            status: ReviewStatus::parse(&status)
                                .ok_or_else(|| corrupt("status"))?,
                            review_comment,
                            received_at: received_at.and_utc(),
                            status_changed_at: changed_at.max(received_at).and_utc(),
                        })
                    },
                )
                .collect::<ApiResult<Vec<_>>>()?;
            items.sort_by(|a, b| (a.status_changed_at, &a.id).cmp(&(b.status_changed_at, &b.id)));
            Ok(items)
        })
        .await?;
    let next_since = items.iter().map(|i| i.status_changed_at).max();
    Ok(web::Json(MySubmissions { items, next_since }))
}
