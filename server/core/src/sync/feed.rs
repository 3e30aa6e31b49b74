//! What one page of the download holds, and which items go on it: per stream, the items
//! stamped after the generation delivered and at most the session's target, in
//! `(stamp, kind, id)` order, `limit` items a page across streams.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::cursor::{Position, State, Stream};
use crate::changes;
use crate::db::schema::{employers, households, sync_tombstones, village_surveys, villages};
use crate::db::DbConnection;
use crate::domain::{
    EmployerKind, EmploymentStatus, LabourCapacity, PostType, PovertyStatus, Relation,
    ReviewStatus, SafetyNet, Sex, SurveyKind, TrainingTrade,
};

/// One page of the download.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncPage {
    /// Send it back as `cursor` on the next request (the next page, or tomorrow's sync).
    pub cursor: String,
    /// More items wait: ask again with this `cursor` at once.
    pub has_more: bool,
    /// Villages newly assigned to the caller, or whose record changed.
    pub villages: Vec<SyncVillage>,
    /// Villages no longer assigned to the caller: drop them and their households.
    #[schema(value_type = Vec<String>, example = json!(["220802100200"]))]
    pub villages_removed: Vec<String>,
    /// Households new or changed since the cursor, each as its effective version. One that was
    /// in `known_households` comes here with its first survey: replace it by `household_id`.
    pub households: Vec<SyncHousehold>,
    /// Households the county imported from its 建档立卡 list and nobody has surveyed yet: the
    /// households still to visit. Survey one as a new household with its `household_number` (or
    /// the head's ID number) and the survey joins it.
    pub known_households: Vec<SyncKnownHousehold>,
    /// Households gone from a village since the cursor: merged into another, or moved away.
    pub tombstones: Vec<Tombstone>,
    /// Review states of the caller's own submissions among the changes: those awaiting review,
    /// reopened or rejected, and those whose state changed since the start of last month.
    pub submissions: Vec<SubmissionState>,
    /// Employers of the registry new or changed since the cursor.
    pub employers: Vec<SyncEmployer>,
}

/// A village the caller works in, with its geofence.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncVillage {
    #[schema(example = "220802100201")]
    pub code: String,
    #[schema(example = "平安村委会")]
    pub name: String,
    pub township_code: String,
    pub township_name: String,
    pub county_code: String,
    pub county_name: String,
    /// The village's reference position (WGS-84).
    pub lat: f64,
    pub lon: f64,
    /// The geofence as a GeoJSON Polygon or MultiPolygon geometry, as `GET /villages` gives it.
    #[schema(value_type = Object)]
    pub geofence: serde_json::Value,
}

/// A position in WGS-84.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncLocation {
    pub lat: f64,
    pub lon: f64,
}

/// A household as the phone prefills a revisit from: its effective version (the latest by
/// survey time among submitted, approved and reopened versions; else its latest by survey time
/// that is not superseded).
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncHousehold {
    pub household_id: String,
    pub village_code: String,
    /// The version number of the effective version: a revisit names it as `base_version`.
    pub version: i32,
    /// The effective version's survey (its `submission_id`).
    pub survey_id: String,
    pub surveyed_at: DateTime<Utc>,
    pub status: ReviewStatus,
    pub household_number: Option<String>,
    pub head_name: String,
    pub poverty_status: PovertyStatus,
    pub relocated: bool,
    /// Masked (`138****0000`), or null when none was given.
    pub phone: Option<String>,
    pub location: SyncLocation,
    pub members: Vec<SyncMember>,
}

/// A household known from the county's list, not yet surveyed: what the list gave.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncKnownHousehold {
    pub household_id: String,
    pub village_code: String,
    /// The list's 户编号; send it in the first survey so that the survey joins this household.
    pub household_number: Option<String>,
    pub head_name: String,
    /// The head's ID number, masked (`220802********1238`).
    pub head_id_number: String,
    /// 家庭人口数 as the list gave it.
    pub member_count: i32,
    /// Masked (`138****0000`), or null when the list gave none.
    pub phone: Option<String>,
    /// Null when the list left it blank.
    pub poverty_status: Option<PovertyStatus>,
    pub lifted_year: Option<i32>,
    pub relocated: Option<bool>,
    pub imported_at: DateTime<Utc>,
}

/// A member with their last answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncMember {
    /// Names this person inside this household: a revisit sends it instead of the ID number.
    #[schema(example = "q3Jk9v0LwZbA")]
    pub person_ref: String,
    pub name: String,
    /// Masked (`220802********1238`); null for a member without an ID number.
    pub id_number: Option<String>,
    pub sex: Sex,
    pub birth_date: NaiveDate,
    pub relation: Relation,
    pub labour_capacity: LabourCapacity,
    pub employment: Option<SyncEmployment>,
    pub wants_public_post: bool,
    pub training: Option<SyncTraining>,
    pub at_risk: bool,
    pub safety_net: Vec<SafetyNet>,
    /// For special-post and temporary-public-post workers only: names the worker to the
    /// village's check-in roster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_ref: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncEmployment {
    pub status: EmploymentStatus,
    pub employer_id: Option<String>,
    pub post_type: Option<PostType>,
    pub monthly_income_yuan: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncTraining {
    pub wanted: bool,
    pub trade: Option<TrainingTrade>,
}

/// Why a household left a village's download.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TombstoneReason {
    /// Merged into `into_household_id` by a reviewer.
    Merged,
    /// Now lives in another village.
    Moved,
}

/// A household gone from a village: drop it; a merged one lives on as `into_household_id`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tombstone {
    pub household_id: String,
    pub village_code: String,
    pub reason: TombstoneReason,
    pub into_household_id: Option<String>,
}

/// Where one of the caller's submissions stands in review.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubmissionState {
    pub submission_id: String,
    pub kind: SurveyKind,
    pub village_code: String,
    /// Household surveys: the household and the version number.
    pub household_id: Option<String>,
    pub version: Option<i32>,
    pub status: ReviewStatus,
    pub review_comment: Option<String>,
    pub status_changed_at: DateTime<Utc>,
}

/// An employer of the registry (龙头企业, 合作社, 扶贫车间).
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncEmployer {
    pub id: String,
    pub kind: EmployerKind,
    pub name: String,
    pub county_code: String,
    pub village_code: Option<String>,
    /// An inactive employer may no longer be named in a survey.
    pub active: bool,
}

/// Item kinds, in their order within one stamp.
pub const VILLAGE: u8 = 0;
pub const HOUSEHOLD: u8 = 1;
pub const TOMBSTONE: u8 = 2;
pub const VILLAGE_SURVEY: u8 = 3;
pub const EMPLOYER: u8 = 4;

/// An item chosen for the page: its stream and its position.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub stream: String,
    pub key: Position,
}

/// Narrows a boxed query to a stream's window after its position, for items of `$kind`.
macro_rules! window {
    ($query:expr, $seq:expr, $id:expr, $kind:expr, $stream:expr, $target:expr) => {{
        let q = $query
            .filter($seq.gt($stream.done))
            .filter($seq.le($target));
        match &$stream.after {
            None => q,
            Some((s, k, _)) if $kind > *k => q.filter($seq.ge(*s)),
            Some((s, k, _)) if $kind < *k => q.filter($seq.gt(*s)),
            Some((s, _, i)) => q.filter($seq.gt(*s).or($seq.eq(*s).and($id.gt(i.clone())))),
        }
    }};
}

fn keyed(kind: u8, rows: Vec<(i64, String)>) -> Vec<Position> {
    rows.into_iter().map(|(s, id)| (s, kind, id)).collect()
}

/// The next at most `n` items of a village's stream.
fn village_items(
    conn: &mut DbConnection,
    user: &str,
    village: &str,
    stream: &Stream,
    target: i64,
    n: i64,
) -> QueryResult<Vec<Position>> {
    let mut all = keyed(
        VILLAGE,
        window!(
            villages::table
                .filter(villages::code.eq(village))
                .into_boxed(),
            villages::sync_seq,
            villages::code,
            VILLAGE,
            stream,
            target
        )
        .select((villages::sync_seq, villages::code))
        .load(conn)?,
    );
    all.extend(keyed(
        HOUSEHOLD,
        window!(
            households::table
                .filter(households::village_code.eq(village))
                .into_boxed(),
            households::sync_seq,
            households::id,
            HOUSEHOLD,
            stream,
            target
        )
        .order((households::sync_seq, households::id))
        .limit(n)
        .select((households::sync_seq, households::id))
        .load(conn)?,
    ));
    // A phone that has nothing of the village has nothing to drop.
    if stream.done >= 0 {
        all.extend(keyed(
            TOMBSTONE,
            window!(
                sync_tombstones::table
                    .filter(sync_tombstones::village_code.eq(village))
                    .into_boxed(),
                sync_tombstones::sync_seq,
                sync_tombstones::household_id,
                TOMBSTONE,
                stream,
                target
            )
            .order((sync_tombstones::sync_seq, sync_tombstones::household_id))
            .limit(n)
            .select((sync_tombstones::sync_seq, sync_tombstones::household_id))
            .load(conn)?,
        ));
    }
    all.extend(keyed(
        VILLAGE_SURVEY,
        window!(
            village_surveys::table
                .filter(village_surveys::village_code.eq(village))
                .filter(village_surveys::surveyor_id.eq(user))
                .into_boxed(),
            village_surveys::sync_seq,
            village_surveys::id,
            VILLAGE_SURVEY,
            stream,
            target
        )
        .order((village_surveys::sync_seq, village_surveys::id))
        .limit(n)
        .select((village_surveys::sync_seq, village_surveys::id))
        .load(conn)?,
    ));
    all.sort();
    all.truncate(usize::try_from(n).unwrap_or(0));
    Ok(all)
}

/// The next at most `n` items of the employer registry.
fn employer_items(
    conn: &mut DbConnection,
    stream: &Stream,
    target: i64,
    n: i64,
) -> QueryResult<Vec<Position>> {
    Ok(keyed(
        EMPLOYER,
        window!(
            employers::table.into_boxed(),
            employers::sync_seq,
            employers::id,
            EMPLOYER,
            stream,
            target
        )
        .order((employers::sync_seq, employers::id))
        .limit(n)
        .select((employers::sync_seq, employers::id))
        .load(conn)?,
    ))
}

/// Chooses the page's items, advancing the cursor past them. Returns whether more wait.
pub fn choose(
    conn: &mut DbConnection,
    state: &mut State,
    limit: i64,
) -> QueryResult<(Vec<Chosen>, bool)> {
    let mut chosen = Vec::new();
    let mut remaining = limit;
    let user = state.user.clone();
    for (name, stream) in state.streams.iter_mut() {
        let Some(target) = stream.target else {
            continue;
        };
        if remaining == 0 {
            break;
        }
        let mut items = if name == changes::EMPLOYERS {
            employer_items(conn, stream, target, remaining + 1)?
        } else {
            village_items(conn, &user, name, stream, target, remaining + 1)?
        };
        if items.len() as i64 > remaining {
            items.truncate(usize::try_from(remaining).unwrap_or(0));
            stream.after = items.last().cloned();
            remaining = 0;
        } else {
            remaining -= items.len() as i64;
            stream.done = target;
            stream.target = None;
            stream.after = None;
        }
        chosen.extend(items.into_iter().map(|key| Chosen {
            stream: name.clone(),
            key,
        }));
    }
    let more = state.streams.values().any(|s| s.target.is_some());
    Ok((chosen, more))
}

pub(crate) fn utc(at: NaiveDateTime) -> DateTime<Utc> {
    at.and_utc()
}
