//! `GET /sync`: the caller's streams against the cursor, one page of items, the next cursor.

use std::collections::HashMap;

use diesel::prelude::*;

use super::cursor::{self, State};
use super::feed::{
    self, utc, Chosen, SubmissionState, SyncEmployer, SyncPage, SyncVillage, Tombstone,
    TombstoneReason,
};
use super::households;
use crate::auth::Caller;
use crate::changes::{self, Departure};
use crate::db::schema::{
    employers, ledger_generations, sync_tombstones, village_surveys, villages,
};
use crate::db::{Db, DbConnection};
use crate::domain::{EmployerKind, ReviewStatus, Role, SurveyKind};
use crate::error::{ApiError, ApiResult};
use crate::privacy::Vault;

/// Items a page holds unless the phone asks otherwise, and at most.
pub const DEFAULT_LIMIT: i64 = 500;
pub const MAX_LIMIT: i64 = 2000;

/// What the phone asked for.
pub struct SyncRequest {
    /// The cursor of the last page, if any (none: a first sync).
    pub cursor: Option<String>,
    pub limit: i64,
}

fn corrupt(what: &str) -> ApiError {
    ApiError::internal(anyhow::anyhow!("stored {what} is invalid"))
}

/// One page of the download for an enumerator or first secretary (others 403).
pub async fn sync(
    db: &Db,
    vault: &Vault,
    cursor_key: &[u8; 32],
    caller: &Caller,
    request: SyncRequest,
) -> ApiResult<SyncPage> {
    caller.require_role(&[Role::Enumerator, Role::FirstSecretary])?;
    let vault = vault.clone();
    let key = *cursor_key;
    let caller = caller.clone();
    db.run(move |conn| page(conn, &vault, &key, &caller, &request))
        .await
}

/// [`sync`] on a connection, once the role is checked (the benchmark calls it directly).
pub fn page(
    conn: &mut DbConnection,
    vault: &Vault,
    key: &[u8; 32],
    caller: &Caller,
    request: &SyncRequest,
) -> ApiResult<SyncPage> {
    let mut state = match &request.cursor {
        Some(text) => cursor::decode(key, &caller.user_id, text)?,
        None => State {
            user: caller.user_id.clone(),
            ..State::default()
        },
    };
    let assigned: Vec<String> = caller
        .village_codes
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    let villages_removed = open_sessions(conn, &mut state, &assigned)?;
    if villages_removed.is_empty() && state.streams.values().all(|s| s.target.is_none()) {
        // Nothing changed: the cursor stands.
        return Ok(empty(cursor::encode(key, &state), villages_removed));
    }
    let (chosen, has_more) = feed::choose(conn, &mut state, request.limit)?;
    let mut page = build(conn, vault, &state.user, &chosen)?;
    page.cursor = cursor::encode(key, &state);
    page.has_more = has_more;
    page.villages_removed = villages_removed;
    Ok(page)
}

fn empty(cursor: String, villages_removed: Vec<String>) -> SyncPage {
    SyncPage {
        cursor,
        has_more: false,
        villages: Vec::new(),
        villages_removed,
        households: Vec::new(),
        known_households: Vec::new(),
        tombstones: Vec::new(),
        submissions: Vec::new(),
        employers: Vec::new(),
    }
}

/// Drops the streams of villages no longer assigned (returned) and opens a session on every
/// stream whose generation moved past what was delivered (a new village starts from nothing).
fn open_sessions(
    conn: &mut DbConnection,
    state: &mut State,
    assigned: &[String],
) -> QueryResult<Vec<String>> {
    let removed: Vec<String> = state
        .streams
        .keys()
        .filter(|k| k.as_str() != changes::EMPLOYERS && !assigned.contains(k))
        .cloned()
        .collect();
    for village in &removed {
        state.streams.remove(village);
    }
    let mut generations: HashMap<String, i64> = ledger_generations::table
        .filter(ledger_generations::village_code.eq_any(assigned))
        .select((
            ledger_generations::village_code,
            ledger_generations::generation,
        ))
        .load::<(String, i64)>(conn)?
        .into_iter()
        .collect();
    generations.insert(
        changes::EMPLOYERS.to_owned(),
        changes::current(conn, changes::EMPLOYERS)?,
    );
    for village in assigned {
        generations.entry(village.clone()).or_insert(0);
    }
    for (name, generation) in generations {
        let stream = state.streams.entry(name).or_default();
        if stream.target.is_none() && generation > stream.done {
            stream.target = Some(generation);
        }
    }
    Ok(removed)
}

fn of_kind(chosen: &[Chosen], kind: u8) -> Vec<(String, String)> {
    chosen
        .iter()
        .filter(|c| c.key.1 == kind)
        .map(|c| (c.stream.clone(), c.key.2.clone()))
        .collect()
}

/// The page's content for the chosen items.
fn build(
    conn: &mut DbConnection,
    vault: &Vault,
    user: &str,
    chosen: &[Chosen],
) -> ApiResult<SyncPage> {
    let households::Page {
        households,
        known,
        mut submissions,
    } = households::households(conn, vault, user, &of_kind(chosen, feed::HOUSEHOLD))?;
    submissions.extend(village_submissions(
        conn,
        &of_kind(chosen, feed::VILLAGE_SURVEY),
    )?);
    let mut page = empty(String::new(), Vec::new());
    page.villages = village_records(conn, &of_kind(chosen, feed::VILLAGE))?;
    page.households = households;
    page.known_households = known;
    page.tombstones = tombstones(conn, &of_kind(chosen, feed::TOMBSTONE))?;
    page.submissions = submissions;
    page.employers = registry(conn, &of_kind(chosen, feed::EMPLOYER))?;
    Ok(page)
}

fn village_records(
    conn: &mut DbConnection,
    items: &[(String, String)],
) -> ApiResult<Vec<SyncVillage>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let codes: Vec<String> = items.iter().map(|(_, c)| c.clone()).collect();
    let rows: Vec<(String, String, String, String, f64, f64, String)> = villages::table
        .filter(villages::code.eq_any(&codes))
        .order(villages::code)
        .select((
            villages::code,
            villages::name,
            villages::township_code,
            villages::county_code,
            villages::lat,
            villages::lon,
            villages::geofence,
        ))
        .load(conn)?;
    let mut divisions: Vec<String> = rows.iter().map(|r| r.2.clone()).collect();
    divisions.extend(rows.iter().map(|r| r.3.clone()));
    let names = crate::villages::names(conn, &divisions)?;
    rows.into_iter()
        .map(|(code, name, township, county, lat, lon, geofence)| {
            Ok(SyncVillage {
                geofence: serde_json::from_str(&geofence).map_err(|_| corrupt("geofence"))?,
                township_name: names.get(&township).cloned().unwrap_or_default(),
                county_name: names.get(&county).cloned().unwrap_or_default(),
                code,
                name,
                township_code: township,
                county_code: county,
                lat,
                lon,
            })
        })
        .collect()
}

fn tombstones(conn: &mut DbConnection, items: &[(String, String)]) -> ApiResult<Vec<Tombstone>> {
    let mut out = Vec::new();
    for (village, household) in items {
        let row: Option<(String, Option<String>)> = sync_tombstones::table
            .find((village, household))
            .select((sync_tombstones::reason, sync_tombstones::into_household_id))
            .first(conn)
            .optional()?;
        if let Some((reason, into)) = row {
            out.push(Tombstone {
                household_id: household.clone(),
                village_code: village.clone(),
                reason: match Departure::parse(&reason) {
                    Some(Departure::Merged) => TombstoneReason::Merged,
                    Some(Departure::Moved) => TombstoneReason::Moved,
                    None => return Err(corrupt("tombstone reason")),
                },
                into_household_id: into,
            });
        }
    }
    Ok(out)
}

type VillageSurveyRow = (
    String,
    String,
    String,
    Option<String>,
    chrono::NaiveDateTime,
);

fn village_submissions(
    conn: &mut DbConnection,
    items: &[(String, String)],
) -> ApiResult<Vec<SubmissionState>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = items.iter().map(|(_, id)| id.clone()).collect();
    let rows: Vec<VillageSurveyRow> = village_surveys::table
        .filter(village_surveys::id.eq_any(&ids))
        .order(village_surveys::id)
        .select((
            village_surveys::id,
            village_surveys::village_code,
            village_surveys::status,
            village_surveys::review_comment,
            village_surveys::status_changed_at,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(id, village, status, comment, at)| {
            Ok(SubmissionState {
                submission_id: id,
                kind: SurveyKind::VillageSurvey,
                village_code: village,
                household_id: None,
                version: None,
                status: ReviewStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
                review_comment: comment,
                status_changed_at: utc(at),
            })
        })
        .collect()
}

type EmployerRow = (String, String, String, String, Option<String>, bool);

fn registry(conn: &mut DbConnection, items: &[(String, String)]) -> ApiResult<Vec<SyncEmployer>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = items.iter().map(|(_, id)| id.clone()).collect();
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let rows: Vec<EmployerRow> = employers::table
            .filter(employers::id.eq_any(chunk))
            .order(employers::id)
            .select((
                employers::id,
                employers::kind,
                employers::name,
                employers::county_code,
                employers::village_code,
                employers::active,
            ))
            .load(conn)?;
        for (id, kind, name, county_code, village_code, active) in rows {
            out.push(SyncEmployer {
                kind: EmployerKind::parse(&kind).ok_or_else(|| corrupt("employer kind"))?,
                id,
                name,
                county_code,
                village_code,
                active,
            });
        }
    }
    Ok(out)
}
