//! Duplicate resolution for households flagged `possible_duplicate`: a reviewer merges the pair
//! (one survives; the other's survey versions move to it, reversibly) or keeps it apart (the
//! pair is never flagged again). Every decision is audited.
//!
//! A pair is stored once, ordered (`household_a < household_b`), when it is first flagged. An
//! absorbed household stays in `households` so that its keys still find it; lookups follow the
//! merged pair to the survivor ([`survivor_of`]).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit;
use crate::auth::Caller;
use crate::changes::Departure;
use crate::db::schema::{duplicate_pairs, household_surveys, households, merge_moves};
use crate::db::DbConnection;
use crate::domain::Rule;
use crate::domain::{DivisionCode, Role};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ledger::cache::Affected;

/// Merges are at most this deep before a lookup gives up following them (a guard against a
/// cycle, which the merge rules do not allow).
const MAX_CHAIN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PairState {
    /// Flagged, not yet decided.
    Open,
    /// Decided to be two households: never flagged again.
    KeptApart,
    /// One household: see `survivor_id`.
    Merged,
}

impl PairState {
    pub const ALL: [PairState; 3] = [PairState::Open, PairState::KeptApart, PairState::Merged];

    pub fn label(self) -> &'static str {
        match self {
            PairState::Open => "待处理",
            PairState::KeptApart => "确认非同一户",
            PairState::Merged => "已合并",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PairState::Open => "open",
            PairState::KeptApart => "kept_apart",
            PairState::Merged => "merged",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Why two households were paired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PairKind {
    /// Keyless look-alikes in one village, for the county reviewer.
    PossibleDuplicate,
    /// The same household number or head's ID number in two counties, for the city: merging is
    /// a transfer (the household moved), keeping apart a mistake in one of the keys.
    HouseholdInOtherCounty,
}

impl PairKind {
    pub const ALL: [PairKind; 2] = [
        PairKind::PossibleDuplicate,
        PairKind::HouseholdInOtherCounty,
    ];

    pub fn label(self) -> &'static str {
        match self {
            PairKind::PossibleDuplicate => "疑似重复户",
            PairKind::HouseholdInOtherCounty => "跨县（市、区）同一户编号或户主",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PairKind::PossibleDuplicate => "possible_duplicate",
            PairKind::HouseholdInOtherCounty => "household_in_other_county",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The audit log's name for a decision on a pair of this kind.
    fn audit_action(self, action: PairAction) -> &'static str {
        match (self, action) {
            (PairKind::PossibleDuplicate, a) => a.as_str(),
            (PairKind::HouseholdInOtherCounty, PairAction::Merge) => "confirm_transfer",
            (PairKind::HouseholdInOtherCounty, PairAction::KeepApart) => "confirm_key_mistake",
            (PairKind::HouseholdInOtherCounty, PairAction::Unmerge) => "undo_transfer",
        }
    }
}

/// The pair's key: the two ids in order.
pub fn ordered<'a>(x: &'a str, y: &'a str) -> (&'a str, &'a str) {
    if x <= y {
        (x, y)
    } else {
        (y, x)
    }
}

/// The household that `household` now belongs to: itself, or the survivor of the merge that
/// absorbed it (followed through later merges).
pub fn survivor_of(conn: &mut DbConnection, household: &str) -> QueryResult<String> {
    let mut current = household.to_owned();
    for _ in 0..MAX_CHAIN {
        match absorbed_into(conn, &current)? {
            Some(next) => current = next,
            None => break,
        }
    }
    Ok(current)
}

/// The survivor of the merge that absorbed `household`, if one did.
fn absorbed_into(conn: &mut DbConnection, household: &str) -> QueryResult<Option<String>> {
    duplicate_pairs::table
        .filter(duplicate_pairs::state.eq(PairState::Merged.as_str()))
        .filter(
            duplicate_pairs::household_a
                .eq(household)
                .or(duplicate_pairs::household_b.eq(household)),
        )
        .filter(duplicate_pairs::survivor_id.ne(household))
        .select(duplicate_pairs::survivor_id.assume_not_null())
        .first(conn)
        .optional()
}

/// Households that must never be flagged as duplicates of `household`: those kept apart from
/// it, and those already merged with it.
pub fn decided_partners(conn: &mut DbConnection, household: &str) -> QueryResult<Vec<String>> {
    let pairs: Vec<(String, String)> = duplicate_pairs::table
        .filter(duplicate_pairs::state.ne(PairState::Open.as_str()))
        .filter(
            duplicate_pairs::household_a
                .eq(household)
                .or(duplicate_pairs::household_b.eq(household)),
        )
        .select((duplicate_pairs::household_a, duplicate_pairs::household_b))
        .load(conn)?;
    Ok(pairs
        .into_iter()
        .map(|(a, b)| if a == household { b } else { a })
        .collect())
}

/// Locks households' rows until the transaction ends (PostgreSQL; SQLite has one writer at a
/// time anyway), in id order so that two transactions locking the same rows cannot deadlock.
/// Merges take them before reading the households' surveys, and a survey's household is
/// resolved under them, so no survey lands on a household a concurrent merge absorbs.
pub fn lock_households(conn: &mut DbConnection, ids: &[&str]) -> QueryResult<()> {
    if let DbConnection::Postgresql(pg) = conn {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        for id in sorted {
            diesel::sql_query("SELECT id FROM households WHERE id = $1 FOR UPDATE")
                .bind::<diesel::sql_types::Text, _>(id)
                .execute(pg)?;
        }
    }
    Ok(())
}

/// Records a flagged pair, once; a pair already known keeps its state.
pub fn record_pair(
    conn: &mut DbConnection,
    x: &str,
    y: &str,
    survey_id: &str,
    now: DateTime<Utc>,
    kind: PairKind,
) -> QueryResult<()> {
    let (a, b) = ordered(x, y);
    let known = duplicate_pairs::table
        .find((a, b))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if !known {
        diesel::insert_into(duplicate_pairs::table)
            .values((
                duplicate_pairs::household_a.eq(a),
                duplicate_pairs::household_b.eq(b),
                duplicate_pairs::state.eq(PairState::Open.as_str()),
                duplicate_pairs::flagged_at.eq(now.naive_utc()),
                duplicate_pairs::flagged_by_survey.eq(survey_id),
                duplicate_pairs::version.eq(1),
                duplicate_pairs::kind.eq(kind.as_str()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// What a reviewer does with a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PairAction {
    Merge,
    Unmerge,
    KeepApart,
}

impl PairAction {
    pub const ALL: [PairAction; 3] = [
        PairAction::Merge,
        PairAction::Unmerge,
        PairAction::KeepApart,
    ];

    pub fn label(self) -> &'static str {
        match self {
            PairAction::Merge => "合并",
            PairAction::Unmerge => "撤销合并",
            PairAction::KeepApart => "确认非同一户",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PairAction::Merge => "merge",
            PairAction::Unmerge => "unmerge",
            PairAction::KeepApart => "keep_apart",
        }
    }
}

/// The state of a pair after a decision.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PairOutcome {
    pub household_a: String,
    pub household_b: String,
    pub kind: PairKind,
    pub state: PairState,
    pub survivor_id: Option<String>,
    /// Name it as `seen_version` in the next decision on this pair.
    pub version: i32,
    /// Survey versions moved by this decision (to the survivor on merge, back on unmerge).
    pub moved_surveys: usize,
}

struct Pair {
    a: String,
    b: String,
    state: PairState,
    kind: PairKind,
    survivor: Option<String>,
    version: i32,
}

/// A pair's state as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = duplicate_pairs, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct PairRow {
    state: String,
    kind: String,
    survivor_id: Option<String>,
    version: i32,
}

fn load_pair(conn: &mut DbConnection, caller: &Caller, x: &str, y: &str) -> ApiResult<Pair> {
    let (a, b) = ordered(x, y);
    let not_found = || ApiError::NotFound(format!("户 {a} 与 {b} 从未被标记为待处理的户对"));
    let PairRow {
        state,
        kind,
        survivor_id: survivor,
        version,
    } = duplicate_pairs::table
        .find((a, b))
        .select(PairRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(not_found)?;
    // Both households must be in the caller's scope; outside it, the pair does not exist.
    let villages: Vec<String> = households::table
        .filter(households::id.eq_any([a, b]))
        .select(households::village_code)
        .load(conn)?;
    for village in &villages {
        let code = DivisionCode::parse(village).map_err(|_| {
            ApiError::internal(anyhow::anyhow!("household village {village} is invalid"))
        })?;
        if !caller.can_access_village(&code) {
            return Err(not_found());
        }
    }
    let kind = PairKind::parse(&kind)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("pair kind {kind} is invalid")))?;
    // Two counties' households: only the city decides (a county sees one side at most).
    if kind == PairKind::HouseholdInOtherCounty && caller.role != Role::CityAdmin {
        return Err(not_found());
    }
    Ok(Pair {
        a: a.to_owned(),
        b: b.to_owned(),
        state: PairState::parse(&state)
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("pair state {state} is invalid")))?,
        kind,
        survivor,
        version,
    })
}

fn illegal(action: PairAction, state: PairState) -> ApiError {
    ApiError::Conflict {
        code: ErrorCode::IllegalTransition,
        detail: format!(
            "户对当前为“{}”，不能执行“{}”",
            state.label(),
            action.label()
        ),
    }
}

fn stale() -> ApiError {
    ApiError::Conflict {
        code: ErrorCode::StaleReview,
        detail: "另一名审核员刚刚处理了这对户，请刷新后再处理".into(),
    }
}

// A reviewer's decision on a pair (a doc comment would enter the OpenAPI document).
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

/// A decision on a pair, inside the caller's transaction.
pub struct PairDecision<'a> {
    pub households: (&'a str, &'a str),
    pub action: PairAction,
    /// For `merge`: the household that remains.
    pub survivor: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub seen_version: Option<i32>,
}

/// The absorbed household of a merge leaves its village's download, naming the survivor (an
/// unmerge revives it there: `changes::households` drops the tombstone).
fn absorbed_departs(conn: &mut DbConnection, pair: &Pair, kept: &str) -> QueryResult<()> {
    let gone = if kept == pair.a { &pair.b } else { &pair.a };
    let village: String = households::table
        .find(gone)
        .select(households::village_code)
        .first(conn)?;
    crate::changes::departed(conn, &village, gone, Departure::Merged, Some(kept))
}

pub fn decide(
    conn: &mut DbConnection,
    caller: &Caller,
    decision: &PairDecision<'_>,
    now: DateTime<Utc>,
) -> ApiResult<PairOutcome> {
    lock_households(conn, &[decision.households.0, decision.households.1])?;
    let pair = load_pair(conn, caller, decision.households.0, decision.households.1)?;
    if decision.seen_version.is_some_and(|v| v != pair.version) {
        return Err(ApiError::Conflict {
            code: ErrorCode::StaleReview,
            detail: format!(
                "这对户已更新到第 {} 版（{}），不是您看到的版本，请刷新后再处理",
                pair.version,
                pair.state.label()
            ),
        });
    }
    let (to, survivor, moved) = match (decision.action, pair.state) {
        (PairAction::KeepApart, PairState::Open) => (PairState::KeptApart, None, 0),
        (PairAction::Merge, PairState::Open) => {
            let survivor = decision.survivor.unwrap_or_default();
            let absorbed = if survivor == pair.a {
                pair.b.as_str()
            } else if survivor == pair.b {
                pair.a.as_str()
            } else {
                return Err(ApiError::field(
                    "survivor",
                    Rule::OneOfPair,
                    "保留的户须是这对户之一",
                ));
            };
            for household in [survivor, absorbed] {
                if let Some(into) = absorbed_into(conn, household)? {
                    return Err(ApiError::Conflict {
                        code: ErrorCode::IllegalTransition,
                        detail: format!("户 {household} 已并入户 {into}，请对那一户作出处理"),
                    });
                }
            }
            let moved = move_versions(conn, &pair, absorbed, survivor)?;
            (PairState::Merged, Some(survivor.to_owned()), moved)
        }
        (PairAction::Unmerge, PairState::Merged) => {
            let survivor = pair.survivor.clone().unwrap_or_default();
            if let Some(into) = absorbed_into(conn, &survivor)? {
                return Err(ApiError::Conflict {
                    code: ErrorCode::IllegalTransition,
                    detail: format!("保留的户 {survivor} 此后已并入户 {into}，请先撤销那次合并"),
                });
            }
            let moved = move_back(conn, &pair)?;
            (PairState::Open, None, moved)
        }
        (action, state) => return Err(illegal(action, state)),
    };
    let changed = diesel::update(
        duplicate_pairs::table
            .find((&pair.a, &pair.b))
            .filter(duplicate_pairs::version.eq(pair.version)),
    )
    .set((
        duplicate_pairs::state.eq(to.as_str()),
        duplicate_pairs::survivor_id.eq(&survivor),
        duplicate_pairs::decided_by.eq(&caller.user_id),
        duplicate_pairs::decided_at.eq(now.naive_utc()),
        duplicate_pairs::reason.eq(decision.reason),
        duplicate_pairs::version.eq(pair.version + 1),
    ))
    .execute(conn)?;
    if changed != 1 {
        return Err(stale());
    }
    if pair.kind == PairKind::HouseholdInOtherCounty {
        // A transfer moves the household to where it was last surveyed (and its undoing moves
        // each back), so that scope follows the household to its new county and the old
        // village's phones drop it.
        for household in [&pair.a, &pair.b] {
            super::derived::settle_home(conn, household)?;
        }
    }
    // Versions moved between the two: what compares versions is recomputed for both, and for
    // the households their people are listed in.
    let reach = super::derived::reach(conn, &[pair.a.as_str(), pair.b.as_str()])?;
    super::derived::recompute(conn, &reach)?;
    crate::changes::households(conn, &[pair.a.as_str(), pair.b.as_str()], Affected::All)?;
    if let Some(kept) = survivor.as_deref() {
        absorbed_departs(conn, &pair, kept)?;
    }
    let detail = match (&survivor, decision.action) {
        (Some(s), _) => format!("保留户 {s}；移入 {moved} 个调查版本"),
        (None, PairAction::Unmerge) => format!("移回 {moved} 个调查版本"),
        _ => String::new(),
    };
    audit::append(
        conn,
        &audit::Entry {
            user_id: &caller.user_id,
            action: pair.kind.audit_action(decision.action),
            subject_type: "household_pair",
            subject_id: &format!("{}+{}", pair.a, pair.b),
            from_state: Some(pair.state.as_str()),
            to_state: Some(to.as_str()),
            reason: decision.reason,
            detail: (!detail.is_empty()).then_some(detail.as_str()),
        },
    )?;
    Ok(PairOutcome {
        household_a: pair.a,
        household_b: pair.b,
        kind: pair.kind,
        state: to,
        survivor_id: survivor,
        version: pair.version + 1,
        moved_surveys: moved,
    })
}

/// Moves the absorbed household's versions to the survivor, numbered after the survivor's own
/// in the order they were surveyed, and records each move.
fn move_versions(
    conn: &mut DbConnection,
    pair: &Pair,
    absorbed: &str,
    survivor: &str,
) -> ApiResult<usize> {
    let last: i32 = household_surveys::table
        .filter(household_surveys::household_id.eq(survivor))
        .select(diesel::dsl::max(household_surveys::version))
        .first::<Option<i32>>(conn)?
        .unwrap_or(0);
    let surveys: Vec<(String, i32)> = household_surveys::table
        .filter(household_surveys::household_id.eq(absorbed))
        .order((household_surveys::surveyed_at, household_surveys::version))
        .select((household_surveys::id, household_surveys::version))
        .load(conn)?;
    for (n, (survey, version)) in surveys.iter().enumerate() {
        let to_version = last + 1 + n as i32;
        diesel::update(household_surveys::table.find(survey))
            .set((
                household_surveys::household_id.eq(survivor),
                household_surveys::version.eq(to_version),
            ))
            .execute(conn)?;
        diesel::insert_into(merge_moves::table)
            .values((
                merge_moves::household_a.eq(&pair.a),
                merge_moves::household_b.eq(&pair.b),
                merge_moves::survey_id.eq(survey),
                merge_moves::from_household.eq(absorbed),
                merge_moves::from_version.eq(version),
                merge_moves::to_version.eq(to_version),
            ))
            .execute(conn)?;
    }
    Ok(surveys.len())
}

/// Puts the versions a merge moved back where they were, and forgets the moves.
fn move_back(conn: &mut DbConnection, pair: &Pair) -> ApiResult<usize> {
    let moves: Vec<(String, String, i32)> = merge_moves::table
        .filter(merge_moves::household_a.eq(&pair.a))
        .filter(merge_moves::household_b.eq(&pair.b))
        .select((
            merge_moves::survey_id,
            merge_moves::from_household,
            merge_moves::from_version,
        ))
        .load(conn)?;
    for (survey, household, version) in &moves {
        diesel::update(household_surveys::table.find(survey))
            .set((
                household_surveys::household_id.eq(household),
                household_surveys::version.eq(version),
            ))
            .execute(conn)?;
    }
    diesel::delete(
        merge_moves::table
            .filter(merge_moves::household_a.eq(&pair.a))
            .filter(merge_moves::household_b.eq(&pair.b)),
    )
    .execute(conn)?;
    Ok(moves.len())
}
