//! The duplicate-resolution endpoints: the list of flagged household pairs with both sides
//! side by side, and a reviewer's decision on a pair.

use std::collections::HashMap;

use actix_web::{get, post, web};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use geo::Point;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::duplicates::{self, PairAction, PairDecision, PairKind, PairOutcome, PairState};
use super::read::{bad_query, code, decode_cursor, encode_cursor};
use crate::auth::{Caller, ScopeLevel};
use crate::db::schema::{duplicate_pairs, household_surveys, households};
use crate::db::{write_transaction, DbConnection};
use crate::domain::Rule;
use crate::domain::{DivisionLevel, ReviewStatus, Role};
use crate::error::{ApiError, ApiResult, ErrorCode, Problem};
use crate::geography::distance_m;
use crate::http::{ApiJson, ApiQuery};
use crate::state::AppState;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_duplicates).service(decide_pair);
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

/// One side of a pair: the household and its latest survey.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HouseholdSide {
    pub household_id: String,
    pub village_code: String,
    pub household_number: Option<String>,
    /// The latest survey of the household (none while it is absorbed by a merge).
    pub latest_survey_id: Option<String>,
    pub head_name: Option<String>,
    pub member_count: Option<i32>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub surveyed_at: Option<DateTime<Utc>>,
    pub status: Option<ReviewStatus>,
    /// Survey versions the household holds.
    pub versions: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DuplicatePair {
    pub household_a: String,
    pub household_b: String,
    /// Look-alikes of one village, or one key held in two counties (decided by the city:
    /// `merge` confirms a transfer, `keep_apart` a mistake in a key).
    pub kind: PairKind,
    pub state: PairState,
    pub survivor_id: Option<String>,
    /// Name it as `seen_version` when deciding.
    pub version: i32,
    pub flagged_at: DateTime<Utc>,
    /// The survey whose arrival raised the flag.
    pub flagged_by_survey: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    /// Between the latest surveys' positions, when both have one.
    pub distance_m: Option<f64>,
    pub a: HouseholdSide,
    pub b: HouseholdSide,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DuplicatePage {
    pub items: Vec<DuplicatePair>,
    pub next_cursor: Option<String>,
}

type PairRow = (
    String,
    String,
    String,
    Option<String>,
    i32,
    NaiveDateTime,
    String,
    Option<String>,
    Option<NaiveDateTime>,
    Option<String>,
    String,
);

fn sides(conn: &mut DbConnection, ids: &[String]) -> ApiResult<HashMap<String, HouseholdSide>> {
    let homes: Vec<(String, String)> = households::table
        .filter(households::id.eq_any(ids))
        .select((households::id, households::village_code))
        .load(conn)?;
    let mut numbers = super::identity::numbers_of(conn, &homes)?;
    type Latest = (String, String, String, i32, f64, f64, NaiveDateTime, String);
    let surveys: Vec<Latest> = household_surveys::table
        .filter(household_surveys::household_id.eq_any(ids))
        .order((
            household_surveys::household_id,
            household_surveys::version.desc(),
        ))
        .select((
            household_surveys::household_id,
            household_surveys::id,
            household_surveys::head_name,
            household_surveys::member_count,
            household_surveys::lat,
            household_surveys::lon,
            household_surveys::surveyed_at,
            household_surveys::status,
        ))
        .load(conn)?;
    let mut out: HashMap<String, HouseholdSide> = homes
        .into_iter()
        .map(|(id, village_code)| {
            (
                id.clone(),
                HouseholdSide {
                    household_number: numbers.remove(&id),
                    household_id: id,
                    village_code,
                    latest_survey_id: None,
                    head_name: None,
                    member_count: None,
                    lat: None,
                    lon: None,
                    surveyed_at: None,
                    status: None,
                    versions: 0,
                },
            )
        })
        .collect();
    for (household, id, head, members, lat, lon, at, status) in surveys {
        let Some(side) = out.get_mut(&household) else {
            continue;
        };
        side.versions += 1;
        if side.latest_survey_id.is_none() {
            side.latest_survey_id = Some(id);
            side.head_name = Some(head);
            side.member_count = Some(members);
            side.lat = Some(lat);
            side.lon = Some(lon);
            side.surveyed_at = Some(at.and_utc());
            side.status = ReviewStatus::parse(&status);
        }
    }
    Ok(out)
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
    caller: Caller,
    query: ApiQuery<DuplicateQuery>,
) -> ApiResult<web::Json<DuplicatePage>> {
    duplicates_page(state, caller, query).await.map(web::Json)
}

/// [`list_duplicates`] as a function, for the console.
pub async fn duplicates_page(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<DuplicateQuery>,
) -> ApiResult<DuplicatePage> {
    caller.require_role(&[Role::CountyReviewer, Role::CityAdmin])?;
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
    let cursor = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(bad_query("limit", "须为 1 至 200"));
    }
    let pair_state = q.state.unwrap_or(PairState::Open);
    let pair_kind = q.kind;
    let page = state
        .db
        .run(move |conn| {
            // Listed by the first household's village (the other is checked for scope below).
            let mut select = duplicate_pairs::table
                .inner_join(households::table.on(households::id.eq(duplicate_pairs::household_a)))
                .filter(duplicate_pairs::state.eq(pair_state.as_str()))
                .select((
                    duplicate_pairs::household_a,
                    duplicate_pairs::household_b,
                    duplicate_pairs::state,
                    duplicate_pairs::survivor_id,
                    duplicate_pairs::version,
                    duplicate_pairs::flagged_at,
                    duplicate_pairs::flagged_by_survey,
                    duplicate_pairs::decided_by,
                    duplicate_pairs::decided_at,
                    duplicate_pairs::reason,
                    duplicate_pairs::kind,
                ))
                .into_boxed();
            if let Some(kind) = pair_kind {
                select = select.filter(duplicate_pairs::kind.eq(kind.as_str()));
            }
            if caller.scope_level() != ScopeLevel::City {
                let own_county = caller.county_pattern();
                // Both households in scope: households move, so the pair's two villages may
                // lie in different counties.
                let other = diesel::alias!(households as other_household);
                let in_scope = other
                    .filter(
                        other
                            .field(households::village_code)
                            .like(own_county.clone()),
                    )
                    .select(other.field(households::id));
                select = select
                    .filter(households::village_code.like(own_county.clone()))
                    .filter(duplicate_pairs::household_b.eq_any(in_scope));
            }
            if let Some(v) = village {
                select = select.filter(households::village_code.eq(v.as_str().to_owned()));
            }
            if let Some(c) = county {
                select = select.filter(households::village_code.like(c.county_pattern()));
            }
            if let Some((at, key)) = cursor {
                let (a, b) = key
                    .split_once('|')
                    .ok_or_else(|| bad_query("cursor", "不是本服务器给出的翻页游标"))?;
                let (a, b) = (a.to_owned(), b.to_owned());
                select = select.filter(
                    duplicate_pairs::flagged_at
                        .gt(at)
                        .or(duplicate_pairs::flagged_at.eq(at).and(
                            duplicate_pairs::household_a.gt(a.clone()).or(
                                duplicate_pairs::household_a
                                    .eq(a)
                                    .and(duplicate_pairs::household_b.gt(b)),
                            ),
                        )),
                );
            }
            let mut rows: Vec<PairRow> = select
                .order((
                    duplicate_pairs::flagged_at,
                    duplicate_pairs::household_a,
                    duplicate_pairs::household_b,
                ))
                .limit(limit + 1)
                .load(conn)?;
            let more = rows.len() as i64 > limit;
            rows.truncate(limit as usize);
            let next_cursor = more
                .then(|| {
                    rows.last()
                        .map(|r| encode_cursor(r.5, &format!("{}|{}", r.0, r.1)))
                })
                .flatten();
            let ids: Vec<String> = rows
                .iter()
                .flat_map(|r| [r.0.clone(), r.1.clone()])
                .collect();
            let sides = sides(conn, &ids)?;
            let mut items = Vec::with_capacity(rows.len());
            for (a, b, st, survivor, version, flagged_at, survey, by, at, reason, kind) in rows {
                // A household may be in several pairs of the page: copy, do not take.
                let (Some(side_a), Some(side_b)) = (sides.get(&a).cloned(), sides.get(&b).cloned())
                else {
                    return Err(ApiError::internal(anyhow::anyhow!(
                        "pair {a}+{b} names a missing household"
                    )));
                };
                let distance_m = match (side_a.lat, side_a.lon, side_b.lat, side_b.lon) {
                    (Some(la), Some(lo), Some(lb), Some(mb)) => {
                        Some(distance_m(Point::new(lo, la), Point::new(mb, lb)).round())
                    }
                    _ => None,
                };
                items.push(DuplicatePair {
                    household_a: a,
                    household_b: b,
                    kind: PairKind::parse(&kind).unwrap_or(PairKind::PossibleDuplicate),
                    state: PairState::parse(&st).unwrap_or(PairState::Open),
                    survivor_id: survivor,
                    version,
                    flagged_at: flagged_at.and_utc(),
                    flagged_by_survey: survey,
                    decided_by: by,
                    decided_at: at.map(|t| t.and_utc()),
                    reason,
                    distance_m,
                    a: side_a,
                    b: side_b,
                });
            }
            Ok(DuplicatePage { items, next_cursor })
        })
        .await?;
    Ok(page)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PairRequest {
    pub action: PairAction,
    /// For `merge`: the household that remains (one of the two).
    pub survivor: Option<String>,
    /// Required for `keep_apart` and `unmerge` (at most 500 characters).
    pub reason: Option<String>,
    /// The pair's `version` as the reviewer saw it; when given and stale → 409 `stale_review`.
    pub seen_version: Option<i32>,
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
    caller: Caller,
    path: web::Path<(String, String)>,
    body: ApiJson<PairRequest>,
) -> ApiResult<web::Json<PairOutcome>> {
    decide_duplicate_pair(state, caller, path, body)
        .await
        .map(web::Json)
}

/// [`decide_pair`] as a function, for the console.
pub async fn decide_duplicate_pair(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: ApiJson<PairRequest>,
) -> ApiResult<PairOutcome> {
    caller.require_role(&[Role::CountyReviewer, Role::CityAdmin])?;
    let (a, b) = path.into_inner();
    for (field, id) in [("a", &a), ("b", &b)] {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(ApiError::BadRequest {
                code: ErrorCode::InvalidPath,
                detail: format!("{field}：户的 ID 须为 UUID"),
                field: Some(field.into()),
            });
        }
    }
    let request = body.0;
    let needs_reason = matches!(request.action, PairAction::KeepApart | PairAction::Unmerge);
    let reason = super::review::checked_text("reason", request.reason.as_deref(), needs_reason)?;
    if request.action == PairAction::Merge && request.survivor.is_none() {
        return Err(ApiError::field(
            "survivor",
            Rule::Required,
            "合并时须指定保留的户",
        ));
    }
    let now = Utc::now();
    let outcome = state
        .db
        .write(move |conn| {
            write_transaction(conn, |conn| {
                duplicates::decide(
                    conn,
                    &caller,
                    &PairDecision {
                        households: (&a, &b),
                        action: request.action,
                        survivor: request.survivor.as_deref(),
                        reason: reason.as_deref(),
                        seen_version: request.seen_version,
                    },
                    now,
                )
            })
        })
        .await?;
    Ok(outcome)
}
