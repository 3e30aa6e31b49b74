//! Keeping per-village figures ready: every change that can alter a village's figures bumps the
//! village's generation in the same transaction ([`touch_villages`], of the villages
//! [`villages_of_households`] finds for changed households);
//! a cached figure set counts only while its generation is current, and stale or missing ones
//! are recomputed for the villages concerned alone. Closed months are read from their snapshot.

use std::collections::{BTreeSet, HashMap};

use diesel::prelude::*;

use super::figures::{self, Dense, VillageFigures};
use crate::db::schema::{
    household_surveys, imported_households, ledger_cache, ledger_generations, month_closes,
    month_snapshots, survey_members,
};
use crate::db::DbConnection;
use crate::domain::Month;
use crate::error::{ApiError, ApiResult};

/// Which months' figures a change can alter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affected {
    /// The month given and every later one: a household survey counts from its own month
    /// on, so a survey stored or decided changes nothing before its month.
    From(Month),
    /// Every month (a merge, a move, an import, a village's record).
    All,
}

/// Marks the villages' figures as changed.
///
/// Besides the generation (which every cached figure set must match to count, and which is
/// also the sync stamp), a village keeps `floor_month` and `base_generation`: figure sets of a
/// month before `floor_month` computed at `base_generation` or later are still current, since
/// every change since `base_generation` altered only `floor_month` and later. A change from
/// the same month as the last keeps both; one from another month starts them afresh (only
/// figures computed at the generation just before it survive it, for the months before its
/// own); a change of every month leaves none.
pub fn touch_villages(
    conn: &mut DbConnection,
    villages: &BTreeSet<String>,
    affected: Affected,
) -> QueryResult<()> {
    use diesel::dsl::case_when;
    use ledger_generations::{base_generation, floor_month, generation};
    let bump = |conn: &mut DbConnection, village: &String| match affected {
        Affected::All => diesel::update(ledger_generations::table.find(village))
            .set((generation.eq(generation + 1), floor_month.eq("")))
            .execute(conn),
        // Every expression of a SET reads the row as it was before the update.
        Affected::From(month) => {
            let month = month.to_string();
            diesel::update(ledger_generations::table.find(village))
                .set((
                    base_generation.eq(case_when(floor_month.eq(month.clone()), base_generation)
                        .otherwise(generation)),
                    floor_month.eq(month),
                    generation.eq(generation + 1),
                ))
                .execute(conn)
        }
    };
    for village in villages {
        if bump(conn, village)? == 0 {
            // First change in this village. A racing first change inserts too: whichever
            // loses does nothing, and the update below counts its change.
            let first = diesel::insert_into(ledger_generations::table)
                .values((
                    ledger_generations::village_code.eq(village),
                    generation.eq(1i64),
                ))
                .on_conflict_do_nothing();
            crate::execute_on_backend!(conn, first)?;
            bump(conn, village)?;
        }
    }
    Ok(())
}

/// Whether a figure set of `month` cached at `cached` is current for a village at
/// `(generation, base_generation, floor_month)` (see [`touch_villages`]).
fn current(cached: i64, month: &str, (generation, base, floor): &(i64, i64, String)) -> bool {
    cached == *generation || (cached >= *base && month < floor.as_str())
}

/// Every village whose figures the households' versions can reach: where they were surveyed,
/// and where any of their people are counted. A change of the households touches them all.
pub fn villages_of_households(
    conn: &mut DbConnection,
    households: &[&str],
) -> QueryResult<BTreeSet<String>> {
    let mut villages: BTreeSet<String> = household_surveys::table
        .filter(household_surveys::household_id.eq_any(households))
        .select(household_surveys::village_code)
        .distinct()
        .load::<String>(conn)?
        .into_iter()
        .collect();
    // An imported household counts as known in its list's village until surveyed.
    villages.extend(
        imported_households::table
            .filter(imported_households::household_id.eq_any(households))
            .select(imported_households::village_code)
            .load::<String>(conn)?,
    );
    let persons: Vec<String> = survey_members::table
        .inner_join(household_surveys::table)
        .filter(household_surveys::household_id.eq_any(households))
        .select(survey_members::person_id_hash)
        .distinct()
        .load(conn)?;
    for chunk in persons.chunks(500) {
        let elsewhere: Vec<String> = survey_members::table
            .inner_join(household_surveys::table)
            .filter(survey_members::person_id_hash.eq_any(chunk))
            .select(household_surveys::village_code)
            .distinct()
            .load(conn)?;
        villages.extend(elsewhere);
    }
    Ok(villages)
}

fn parse(text: &str) -> ApiResult<Dense> {
    Dense::parse(text).map_err(|e| ApiError::internal(anyhow::anyhow!("cached figures: {e}")))
}

fn encode(figures: &Dense) -> String {
    figures.encode()
}

/// The version of a month's standing close (its snapshot), if the month is closed.
pub fn standing_close(conn: &mut DbConnection, month: Month) -> QueryResult<Option<i32>> {
    month_closes::table
        .filter(month_closes::month.eq(month.to_string()))
        .filter(month_closes::reopened_at.is_null())
        .select(month_closes::version)
        .first(conn)
        .optional()
}

/// Whether a month is closed.
pub fn is_closed(conn: &mut DbConnection, month: Month) -> QueryResult<bool> {
    Ok(standing_close(conn, month)?.is_some())
}

/// Figures computed on a read, to store in the cache: villages' with the generation they were
/// computed at, roll-ups with their stamp (see [`super::rollup`]).
pub struct Fresh {
    /// `YYYY-MM`, as stored.
    pub(super) month: String,
    pub(super) rows: Vec<(String, i64, VillageFigures)>,
    pub(super) rollups: Vec<(String, i64, VillageFigures)>,
}

impl Fresh {
    pub(super) fn new(month: Month) -> Fresh {
        Fresh {
            month: month.to_string(),
            rows: Vec::new(),
            rollups: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.rollups.is_empty()
    }
}

/// A village's cached figures for a month, and the generation they were computed at.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = ledger_cache, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct CachedRow {
    village_code: String,
    generation: i64,
    approved: String,
    pending: String,
}

/// The villages' figures for a month: from the snapshot of a closed month, else from the cache,
/// computing what is stale. Returns what it computed, for [`store`].
pub fn figures_for(
    conn: &mut DbConnection,
    villages: &[String],
    month: Month,
) -> ApiResult<(HashMap<String, VillageFigures>, Fresh)> {
    let mut out = HashMap::with_capacity(villages.len());
    let mut fresh = Fresh::new(month);
    let all = villages.len() > 200;
    if let Some(version) = standing_close(conn, month)? {
        let mut q = month_snapshots::table
            .filter(month_snapshots::month.eq(&fresh.month))
            .filter(month_snapshots::version.eq(version))
            .select((
                month_snapshots::village_code,
                month_snapshots::approved,
                month_snapshots::pending,
            ))
            .into_boxed();
        if !all {
            q = q.filter(month_snapshots::village_code.eq_any(villages));
        }
        let wanted: BTreeSet<&str> = villages.iter().map(String::as_str).collect();
        for (village, approved, pending) in q.load::<(String, String, String)>(conn)? {
            if wanted.contains(village.as_str()) {
                out.insert(
                    village,
                    VillageFigures {
                        approved: parse(&approved)?,
                        including_pending: parse(&pending)?,
                    },
                );
            }
        }
        return Ok((out, fresh));
    }
    // Generations first: data read afterwards is at least as new as them, so a stored
    // figure set is never newer-labelled than its data.
    let generations: HashMap<String, (i64, i64, String)> = {
        let mut q = ledger_generations::table.into_boxed();
        if !all {
            q = q.filter(ledger_generations::village_code.eq_any(villages));
        }
        q.select((
            ledger_generations::village_code,
            ledger_generations::generation,
            ledger_generations::base_generation,
            ledger_generations::floor_month,
        ))
        .load::<(String, i64, i64, String)>(conn)?
        .into_iter()
        .map(|(village, g, base, floor)| (village, (g, base, floor)))
        .collect()
    };
    let cached: HashMap<String, (i64, String, String)> = {
        let mut q = ledger_cache::table
            .filter(ledger_cache::month.eq(&fresh.month))
            .into_boxed();
        if !all {
            q = q.filter(ledger_cache::village_code.eq_any(villages));
        }
        q.select(CachedRow::as_select())
            .load::<CachedRow>(conn)?
            .into_iter()
            .map(|r| (r.village_code, (r.generation, r.approved, r.pending)))
            .collect()
    };
    let never = (0, 0, String::new());
    for village in villages {
        let stamps = generations.get(village).unwrap_or(&never);
        let generation = stamps.0;
        match cached.get(village) {
            Some((g, approved, pending)) if current(*g, &fresh.month, stamps) => {
                out.insert(
                    village.clone(),
                    VillageFigures {
                        approved: parse(approved)?,
                        including_pending: parse(pending)?,
                    },
                );
            }
            _ => {
                let computed = figures::village(conn, village, month)?;
                fresh
                    .rows
                    .push((village.clone(), generation, computed.clone()));
                out.insert(village.clone(), computed);
            }
        }
    }
    Ok((out, fresh))
}

/// Stores freshly computed figures, unless a change has made them stale meanwhile.
pub fn store(conn: &mut DbConnection, fresh: &Fresh) -> QueryResult<()> {
    super::rollup::store(conn, &fresh.month, &fresh.rollups)?;
    for (village, generation, figures) in &fresh.rows {
        let current: i64 = ledger_generations::table
            .find(village)
            .select(ledger_generations::generation)
            .first(conn)
            .optional()?
            .unwrap_or(0);
        if current != *generation {
            continue;
        }
        diesel::delete(ledger_cache::table.find((&fresh.month, village))).execute(conn)?;
        // Another process may store the same figures at once: either row will do.
        let insert = diesel::insert_into(ledger_cache::table)
            .values((
                ledger_cache::village_code.eq(village),
                ledger_cache::month.eq(&fresh.month),
                ledger_cache::generation.eq(generation),
                ledger_cache::approved.eq(encode(&figures.approved)),
                ledger_cache::pending.eq(encode(&figures.including_pending)),
            ))
            .on_conflict_do_nothing();
        crate::execute_on_backend!(conn, insert)?;
    }
    Ok(())
}

/// Every village's figures for a month computed from the normalised tables, ignoring the
/// cache: what a close freezes, and the benchmark's baseline.
pub fn recompute_all(
    conn: &mut DbConnection,
    villages: &[String],
    month: Month,
) -> QueryResult<HashMap<String, VillageFigures>> {
    villages
        .iter()
        .map(|v| Ok((v.clone(), figures::village(conn, v, month)?)))
        .collect()
}

pub(super) fn encode_figures(figures: &Dense) -> String {
    encode(figures)
}

/// Villages whose cached figures for `month` are missing or stale, at most `limit`: what the
/// background warmer recomputes so that readers rarely have to.
pub fn stale_villages(
    conn: &mut DbConnection,
    month: Month,
    limit: i64,
) -> QueryResult<Vec<String>> {
    let month = month.to_string();
    ledger_generations::table
        .left_join(
            ledger_cache::table.on(ledger_cache::village_code
                .eq(ledger_generations::village_code)
                .and(ledger_cache::month.eq(month.clone()))),
        )
        // Missing, or neither at the generation nor still current below the floor (see
        // `current`).
        .filter(
            ledger_cache::generation
                .nullable()
                .is_null()
                .or(ledger_cache::generation
                    .nullable()
                    .ne(ledger_generations::generation.nullable())
                    .and(
                        ledger_cache::generation
                            .nullable()
                            .lt(ledger_generations::base_generation.nullable())
                            .or(ledger_generations::floor_month.le(month)),
                    )),
        )
        .select(ledger_generations::village_code)
        .order(ledger_generations::village_code)
        .limit(limit)
        .load(conn)
}

/// How many villages' cached figures for `month` are missing or stale (0 for a closed month,
/// which is read from its snapshot): what `/metrics` reports as the ledger's backlog.
pub fn stale_count(conn: &mut DbConnection, month: Month) -> QueryResult<i64> {
    if is_closed(conn, month)? {
        return Ok(0);
    }
    // At most one code per village (919): counting the list is as cheap as counting rows.
    let stale = stale_villages(conn, month, i64::MAX)?;
    Ok(i64::try_from(stale.len()).unwrap_or(i64::MAX))
}

/// One round of the background warmer: recomputes up to `limit` stale villages of each month
/// (closed months need nothing) and returns what to store.
pub fn warm(conn: &mut DbConnection, months: &[Month], limit: i64) -> ApiResult<Vec<Fresh>> {
    let mut out = Vec::new();
    for &month in months {
        if is_closed(conn, month)? {
            continue;
        }
        let stale = stale_villages(conn, month, limit)?;
        if !stale.is_empty() {
            let (_, fresh) = figures_for(conn, &stale, month)?;
            out.push(fresh);
        }
    }
    Ok(out)
}
