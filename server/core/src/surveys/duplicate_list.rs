//! The list of flagged household pairs, both sides with their latest surveys side by side,
//! for the reviewer who decides them.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use geo::Point;
use serde::Serialize;
use utoipa::ToSchema;

use super::duplicates::{PairKind, PairState};
use super::views::Cursor;
use crate::auth::{Area, Caller, ScopeLevel};
use crate::db::schema::{duplicate_pairs, household_surveys, households};
use crate::db::DbConnection;
use crate::domain::ReviewStatus;
use crate::error::{bad_query, ApiError, ApiResult};
use crate::geography::distance_m;

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

/// Which pairs a list shows: typed and scope-checked (see [`Area::parse`]).
#[derive(Debug, Clone)]
pub struct DuplicateFilter {
    pub state: PairState,
    /// Both kinds when absent.
    pub kind: Option<PairKind>,
    /// Its village and county; the township is not used.
    pub area: Area,
    pub cursor: Option<Cursor>,
    pub limit: i64,
}

/// One pair as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = duplicate_pairs, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct PairRow {
    household_a: String,
    household_b: String,
    state: String,
    survivor_id: Option<String>,
    version: i32,
    flagged_at: NaiveDateTime,
    flagged_by_survey: String,
    decided_by: Option<String>,
    decided_at: Option<NaiveDateTime>,
    reason: Option<String>,
    kind: String,
}

/// The pairs of a page: inside the caller's scope (both households) and the filter, oldest
/// flag first, one more than the limit to tell whether a next page exists.
fn pair_rows(
    conn: &mut DbConnection,
    caller: &Caller,
    f: &DuplicateFilter,
) -> ApiResult<Vec<PairRow>> {
    // Listed by the first household's village (the other is checked for scope below).
    let mut select = duplicate_pairs::table
        .inner_join(households::table.on(households::id.eq(duplicate_pairs::household_a)))
        .filter(duplicate_pairs::state.eq(f.state.as_str()))
        .select(PairRow::as_select())
        .into_boxed();
    if let Some(kind) = f.kind {
        select = select.filter(duplicate_pairs::kind.eq(kind.as_str()));
    }
    if caller.scope_level() != ScopeLevel::City {
        let own_county = caller.county_pattern();
        // Both households in scope: households move, so the pair's two villages may lie in
        // different counties.
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
    if let Some(v) = &f.area.village {
        select = select.filter(households::village_code.eq(v.as_str().to_owned()));
    }
    if let Some(c) = &f.area.county {
        select = select.filter(households::village_code.like(c.county_pattern()));
    }
    if let Some(Cursor { at, key }) = &f.cursor {
        let (a, b) = key
            .split_once('|')
            .ok_or_else(|| bad_query("cursor", "不是本服务器给出的翻页游标"))?;
        let (a, b, at) = (a.to_owned(), b.to_owned(), *at);
        select = select.filter(
            duplicate_pairs::flagged_at
                .gt(at)
                .or(duplicate_pairs::flagged_at.eq(at).and(
                    duplicate_pairs::household_a
                        .gt(a.clone())
                        .or(duplicate_pairs::household_a
                            .eq(a)
                            .and(duplicate_pairs::household_b.gt(b))),
                )),
        );
    }
    Ok(select
        .order((
            duplicate_pairs::flagged_at,
            duplicate_pairs::household_a,
            duplicate_pairs::household_b,
        ))
        .limit(f.limit + 1)
        .load(conn)?)
}

/// Household pairs flagged as possible duplicates in the caller's scope, oldest flag first,
/// each with both households' latest surveys side by side.
pub fn list(
    conn: &mut DbConnection,
    caller: &Caller,
    f: &DuplicateFilter,
) -> ApiResult<DuplicatePage> {
    let mut rows = pair_rows(conn, caller, f)?;
    let more = rows.len() as i64 > f.limit;
    rows.truncate(f.limit as usize);
    let next_cursor = more
        .then(|| {
            rows.last().map(|r| {
                Cursor::encode(
                    r.flagged_at,
                    &format!("{}|{}", r.household_a, r.household_b),
                )
            })
        })
        .flatten();
    let ids: Vec<String> = rows
        .iter()
        .flat_map(|r| [r.household_a.clone(), r.household_b.clone()])
        .collect();
    let sides = sides(conn, &ids)?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        // A household may be in several pairs of the page: copy, do not take.
        let (Some(side_a), Some(side_b)) = (
            sides.get(&r.household_a).cloned(),
            sides.get(&r.household_b).cloned(),
        ) else {
            return Err(ApiError::internal(anyhow::anyhow!(
                "pair {}+{} names a missing household",
                r.household_a,
                r.household_b
            )));
        };
        let distance_m = match (side_a.lat, side_a.lon, side_b.lat, side_b.lon) {
            (Some(la), Some(lo), Some(lb), Some(mb)) => {
                Some(distance_m(Point::new(lo, la), Point::new(mb, lb)).round())
            }
            _ => None,
        };
        items.push(DuplicatePair {
            household_a: r.household_a,
            household_b: r.household_b,
            kind: PairKind::parse(&r.kind).unwrap_or(PairKind::PossibleDuplicate),
            state: PairState::parse(&r.state).unwrap_or(PairState::Open),
            survivor_id: r.survivor_id,
            version: r.version,
            flagged_at: r.flagged_at.and_utc(),
            flagged_by_survey: r.flagged_by_survey,
            decided_by: r.decided_by,
            decided_at: r.decided_at.map(|t| t.and_utc()),
            reason: r.reason,
            distance_m,
            a: side_a,
            b: side_b,
        });
    }
    Ok(DuplicatePage { items, next_cursor })
}

/// A household's survey, for its side of a pair.
#[derive(Queryable, Selectable)]
#[diesel(table_name = household_surveys, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct LatestRow {
    household_id: String,
    id: String,
    head_name: String,
    member_count: i32,
    lat: f64,
    lon: f64,
    surveyed_at: NaiveDateTime,
    status: String,
}

/// Both sides of every pair of a page, by household id.
fn sides(conn: &mut DbConnection, ids: &[String]) -> ApiResult<HashMap<String, HouseholdSide>> {
    let homes: Vec<(String, String)> = households::table
        .filter(households::id.eq_any(ids))
        .select((households::id, households::village_code))
        .load(conn)?;
    let mut numbers = super::identity::numbers_of(conn, &homes)?;
    let surveys: Vec<LatestRow> = household_surveys::table
        .filter(household_surveys::household_id.eq_any(ids))
        .order((
            household_surveys::household_id,
            household_surveys::version.desc(),
        ))
        .select(LatestRow::as_select())
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
    for r in surveys {
        let Some(side) = out.get_mut(&r.household_id) else {
            continue;
        };
        side.versions += 1;
        if side.latest_survey_id.is_none() {
            side.latest_survey_id = Some(r.id);
            side.head_name = Some(r.head_name);
            side.member_count = Some(r.member_count);
            side.lat = Some(r.lat);
            side.lon = Some(r.lon);
            side.surveyed_at = Some(r.surveyed_at.and_utc());
            side.status = ReviewStatus::parse(&r.status);
        }
    }
    Ok(out)
}
