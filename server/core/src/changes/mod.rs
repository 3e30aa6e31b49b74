//! What changed where, recorded in the transaction that changes it: the ledger's village
//! generations (cached figures go stale) and the change stamps the phone's download reads
//! (`sync`). Every writer that changes a household, a village survey or the employer registry
//! calls here, so the two can never disagree about what changed.
//!
//! A stamp is the village's ledger generation *after* this transaction bumped it. The bump
//! takes the generation row's lock until commit, so writers of one village commit in stamp
//! order: a reader that has seen generation `g` committed has seen every stamp `<= g`, and a
//! download cursor that remembers `g` misses nothing (PostgreSQL sequences give no such
//! guarantee: a lower value can commit after a higher one has been read).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::db::schema::{
    employers, households, ledger_generations, sync_counters, sync_tombstones, village_surveys,
    villages,
};
use crate::db::DbConnection;
use crate::ledger::cache::{self, Affected};

/// Why a household left a village's download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// Merged into another household (named by the tombstone).
    Merged,
    /// Now lives in another village (its latest survey by survey time is there).
    Moved,
}

impl Departure {
    pub fn as_str(self) -> &'static str {
        match self {
            Departure::Merged => "merged",
            Departure::Moved => "moved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "merged" => Some(Departure::Merged),
            "moved" => Some(Departure::Moved),
            _ => None,
        }
    }
}

/// The village's generation as this transaction sees it (0 before its first change).
pub fn generation(conn: &mut DbConnection, village: &str) -> QueryResult<i64> {
    Ok(ledger_generations::table
        .find(village)
        .select(ledger_generations::generation)
        .first::<i64>(conn)
        .optional()?
        .unwrap_or(0))
}

/// The households changed: their villages' figures are stale, and each household is stamped
/// for the download of the village it lives in now.
pub fn households(conn: &mut DbConnection, ids: &[&str], affected: Affected) -> QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let homes: Vec<(String, String)> = households::table
        .filter(households::id.eq_any(ids))
        .select((households::id, households::village_code))
        .load(conn)?;
    // Their home villages too: a household moved by this transaction is stamped where it is
    // now. Each village is bumped once, in code order with every other writer's.
    let mut villages: BTreeSet<String> = homes.iter().map(|(_, v)| v.clone()).collect();
    villages.extend(cache::villages_of_households(conn, ids)?);
    cache::touch_villages(conn, &villages, affected)?;
    for (id, village) in homes {
        let seq = generation(conn, &village)?;
        diesel::update(households::table.find(&id))
            .set(households::sync_seq.eq(seq))
            .execute(conn)?;
        // Back in this village (an unmerge, a move back): no longer gone from it.
        diesel::delete(
            sync_tombstones::table
                .filter(sync_tombstones::village_code.eq(&village))
                .filter(sync_tombstones::household_id.eq(&id)),
        )
        .execute(conn)?;
    }
    Ok(())
}

/// Households were added to these villages without a survey (an import): their figures are
/// stale. Returns each village's stamp, for the new households' `sync_seq`.
pub fn households_added(
    conn: &mut DbConnection,
    villages: &BTreeSet<String>,
) -> QueryResult<std::collections::HashMap<String, i64>> {
    cache::touch_villages(conn, villages, Affected::All)?;
    let mut stamps = std::collections::HashMap::new();
    for village in villages {
        stamps.insert(village.clone(), generation(conn, village)?);
    }
    Ok(stamps)
}

/// A household left `village`'s download: merged into `into`, or moved away. Recorded once
/// per village; a later departure from the same village replaces it.
pub fn departed(
    conn: &mut DbConnection,
    village: &str,
    household: &str,
    why: Departure,
    into: Option<&str>,
) -> QueryResult<()> {
    cache::touch_villages(conn, &BTreeSet::from([village.to_owned()]), Affected::All)?;
    let seq = generation(conn, village)?;
    diesel::delete(
        sync_tombstones::table
            .filter(sync_tombstones::village_code.eq(village))
            .filter(sync_tombstones::household_id.eq(household)),
    )
    .execute(conn)?;
    diesel::insert_into(sync_tombstones::table)
        .values((
            sync_tombstones::village_code.eq(village),
            sync_tombstones::household_id.eq(household),
            sync_tombstones::reason.eq(why.as_str()),
            sync_tombstones::into_household_id.eq(into),
            sync_tombstones::sync_seq.eq(seq),
        ))
        .execute(conn)?;
    Ok(())
}

/// A village survey was stored or reviewed: the village's figures are stale, and the survey
/// is stamped for its author's download.
pub fn village_survey(conn: &mut DbConnection, survey: &str, village: &str) -> QueryResult<()> {
    cache::touch_villages(conn, &BTreeSet::from([village.to_owned()]), Affected::All)?;
    let seq = generation(conn, village)?;
    diesel::update(village_surveys::table.find(survey))
        .set(village_surveys::sync_seq.eq(seq))
        .execute(conn)?;
    Ok(())
}

/// A village's own record changed (its position or geofence): stamped for the download of
/// everyone who works in it, so phones check against the new fence.
pub fn village(conn: &mut DbConnection, village: &str) -> QueryResult<()> {
    cache::touch_villages(conn, &BTreeSet::from([village.to_owned()]), Affected::All)?;
    let seq = generation(conn, village)?;
    diesel::update(villages::table.find(village))
        .set(villages::sync_seq.eq(seq))
        .execute(conn)?;
    Ok(())
}

/// The name of the employer registry's counter in `sync_counters`.
pub const EMPLOYERS: &str = "employers";

/// Takes the next value of a counter that belongs to no village, holding its row lock to
/// commit (the same ordering argument as the village generations).
pub fn next(conn: &mut DbConnection, counter: &str) -> QueryResult<i64> {
    let bumped = diesel::update(sync_counters::table.find(counter))
        .set(sync_counters::seq.eq(sync_counters::seq + 1))
        .execute(conn)?;
    if bumped == 0 {
        let first = diesel::insert_into(sync_counters::table)
            .values((sync_counters::name.eq(counter), sync_counters::seq.eq(0i64)))
            .on_conflict_do_nothing();
        crate::execute_on_backend!(conn, first)?;
        diesel::update(sync_counters::table.find(counter))
            .set(sync_counters::seq.eq(sync_counters::seq + 1))
            .execute(conn)?;
    }
    sync_counters::table
        .find(counter)
        .select(sync_counters::seq)
        .first(conn)
}

/// The counter's committed value (0 before its first change).
pub fn current(conn: &mut DbConnection, counter: &str) -> QueryResult<i64> {
    Ok(sync_counters::table
        .find(counter)
        .select(sync_counters::seq)
        .first::<i64>(conn)
        .optional()?
        .unwrap_or(0))
}

/// An employer was added or edited: stamped for every phone's download.
pub fn employer(conn: &mut DbConnection, id: &str, now: DateTime<Utc>) -> QueryResult<()> {
    let seq = next(conn, EMPLOYERS)?;
    diesel::update(employers::table.find(id))
        .set((
            employers::sync_seq.eq(seq),
            employers::updated_at.eq(now.naive_utc()),
        ))
        .execute(conn)?;
    Ok(())
}
