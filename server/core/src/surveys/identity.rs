//! Household identity: the keys — national household number, keyed hash of the head's ID
//! number — that name a household inside one county, and what follows when a household of
//! another county holds the same key.
//!
//! A key matches only within the county of the survey's village, so a survey can never land on
//! (and reveal, or move away) another county's household. A key already held in another county
//! pairs the two households for the city (`household_in_other_county`): a transfer merges them,
//! a mistake keeps them apart. Every survey carrying the shared key, on both sides, is flagged,
//! so the flags are the same whichever side's surveys arrived first.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::duplicates::{self, PairKind};
use crate::db::schema::{household_keys, household_surveys, survey_flags};
use crate::db::DbConnection;
use crate::domain::{DivisionCode, SurveyFlag};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    HouseholdNumber,
    HeadId,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::HouseholdNumber => "household_number",
            KeyKind::HeadId => "head_id",
        }
    }
}

/// The keys a survey names for its household, and the county they are valid in.
#[derive(Debug, Clone)]
pub struct Keys<'a> {
    pub county: DivisionCode,
    pub household_number: Option<&'a str>,
    pub head_id_hash: Option<&'a str>,
}

impl Keys<'_> {
    /// Each key present, the household number first (it is the stronger one).
    fn present(&self) -> impl Iterator<Item = (KeyKind, &str)> {
        [
            (KeyKind::HouseholdNumber, self.household_number),
            (KeyKind::HeadId, self.head_id_hash),
        ]
        .into_iter()
        .filter_map(|(kind, value)| value.map(|v| (kind, v)))
    }

    pub fn is_empty(&self) -> bool {
        self.present().next().is_none()
    }
}

/// Serialises the surveys naming the same key, whatever their county, until the transaction
/// ends (PostgreSQL; SQLite has one writer at a time anyway). Without it two counties' first
/// surveys of one key, committing at once, would each miss the other's household and neither
/// be flagged. Taken before any household row lock, in one order, so it cannot deadlock.
pub fn lock_keys(conn: &mut DbConnection, keys: &Keys<'_>) -> QueryResult<()> {
    if let DbConnection::Postgresql(pg) = conn {
        let mut names: Vec<String> = keys
            .present()
            .map(|(kind, value)| format!("household_key:{}:{value}", kind.as_str()))
            .collect();
        names.sort();
        for name in names {
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind::<diesel::sql_types::Text, _>(name)
                .execute(pg)?;
        }
    }
    Ok(())
}

/// The household of the county holding one of the keys (by number, else by head), if any.
pub fn find_in_county(conn: &mut DbConnection, keys: &Keys<'_>) -> QueryResult<Option<String>> {
    for (kind, value) in keys.present() {
        let found = household_keys::table
            .find((keys.county.as_str(), kind.as_str(), value))
            .select(household_keys::household_id)
            .first(conn)
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// Records the keys by which `household` is known in the county: each key not yet held there,
/// of a kind the household has no key of yet (a household keeps the number it was first known
/// by). Two surveys racing for a new key both pass the check; the second insert is a unique
/// violation, which the submission's retry turns into a match.
pub fn learn(conn: &mut DbConnection, keys: &Keys<'_>, household: &str) -> QueryResult<()> {
    for (kind, value) in keys.present() {
        let taken = household_keys::table
            .find((keys.county.as_str(), kind.as_str(), value))
            .count()
            .get_result::<i64>(conn)?
            > 0;
        let has_kind = household_keys::table
            .filter(household_keys::county_code.eq(keys.county.as_str()))
            .filter(household_keys::kind.eq(kind.as_str()))
            .filter(household_keys::household_id.eq(household))
            .count()
            .get_result::<i64>(conn)?
            > 0;
        if !taken && !has_kind {
            diesel::insert_into(household_keys::table)
                .values((
                    household_keys::county_code.eq(keys.county.as_str()),
                    household_keys::kind.eq(kind.as_str()),
                    household_keys::value.eq(value),
                    household_keys::household_id.eq(household),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Households of other counties (as they stand after merges) holding one of the keys, other
/// than `own` and those the city has already decided on with it.
pub fn in_other_counties(
    conn: &mut DbConnection,
    keys: &Keys<'_>,
    own: &str,
) -> QueryResult<Vec<String>> {
    let mut holders: Vec<String> = Vec::new();
    for (kind, value) in keys.present() {
        holders.extend(
            household_keys::table
                .filter(household_keys::kind.eq(kind.as_str()))
                .filter(household_keys::value.eq(value))
                .filter(household_keys::county_code.ne(keys.county.as_str()))
                .select(household_keys::household_id)
                .load::<String>(conn)?,
        );
    }
    let decided = duplicates::decided_partners(conn, own)?;
    let mut out: Vec<String> = Vec::new();
    for holder in holders {
        let survivor = duplicates::survivor_of(conn, &holder)?;
        if survivor != own && !decided.contains(&survivor) && !out.contains(&survivor) {
            out.push(survivor);
        }
    }
    out.sort();
    Ok(out)
}

/// What the flag says, as stored. It names no household and nothing of the other county: the
/// reader may be on either side, and only one who may see the other household (the city) reads
/// its name in place of 「另一户」 (see [`super::flag_text`]).
pub fn flag_detail() -> String {
    "户编号或户主身份证号与另一户（其他县（市、区））相同：未合并，待市扶贫办确认是迁移还是录入错误"
        .to_owned()
}

/// Pairs `own` with each household of another county that holds one of its keys
/// ([`in_other_counties`]), and flags the other side's surveys that carry the shared key (the
/// arriving survey's own flags are stored by the caller, after its row).
pub fn pair_across_counties(
    conn: &mut DbConnection,
    keys: &Keys<'_>,
    own: &str,
    others: &[String],
    survey_id: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    for other in others {
        duplicates::record_pair(
            conn,
            own,
            other,
            survey_id,
            now,
            PairKind::HouseholdInOtherCounty,
        )?;
        let mut carrying: Vec<String> = Vec::new();
        if let Some(number) = keys.household_number {
            carrying.extend(
                household_surveys::table
                    .filter(household_surveys::household_id.eq(other))
                    .filter(household_surveys::household_number.eq(number))
                    .select(household_surveys::id)
                    .load::<String>(conn)?,
            );
        }
        if let Some(head) = keys.head_id_hash {
            carrying.extend(
                household_surveys::table
                    .filter(household_surveys::household_id.eq(other))
                    .filter(household_surveys::head_id_hash.eq(head))
                    .select(household_surveys::id)
                    .load::<String>(conn)?,
            );
        }
        carrying.sort();
        carrying.dedup();
        for survey in carrying {
            let known = survey_flags::table
                .find((
                    survey.as_str(),
                    SurveyFlag::HouseholdInOtherCounty.as_str(),
                    own,
                ))
                .count()
                .get_result::<i64>(conn)?
                > 0;
            if !known {
                diesel::insert_into(survey_flags::table)
                    .values((
                        survey_flags::survey_id.eq(&survey),
                        survey_flags::flag.eq(SurveyFlag::HouseholdInOtherCounty.as_str()),
                        survey_flags::related_household_id.eq(own),
                        survey_flags::detail.eq(flag_detail()),
                    ))
                    .execute(conn)?;
            }
        }
    }
    Ok(())
}

/// The household number each household is known by in its own county, for display.
pub fn numbers_of(
    conn: &mut DbConnection,
    households: &[(String, String)],
) -> QueryResult<HashMap<String, String>> {
    let ids: Vec<&str> = households.iter().map(|(id, _)| id.as_str()).collect();
    let rows: Vec<(String, String, String)> = household_keys::table
        .filter(household_keys::household_id.eq_any(&ids))
        .filter(household_keys::kind.eq(KeyKind::HouseholdNumber.as_str()))
        .select((
            household_keys::household_id,
            household_keys::county_code,
            household_keys::value,
        ))
        .order((household_keys::household_id, household_keys::county_code))
        .load(conn)?;
    let county_of: HashMap<&str, String> = households
        .iter()
        .map(|(id, village)| {
            (
                id.as_str(),
                format!("{}000000", &village[..6.min(village.len())]),
            )
        })
        .collect();
    let mut out: HashMap<String, String> = HashMap::new();
    for (household, county, value) in rows {
        // The number of the county it lives in wins over one learnt elsewhere before a transfer.
        let home = county_of.get(household.as_str()) == Some(&county);
        if home || !out.contains_key(&household) {
            out.insert(household, value);
        }
    }
    Ok(out)
}
