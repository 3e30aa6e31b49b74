//! What follows from the set of a household's versions, whatever order they arrived in:
//! where the household lives, and the flags that compare versions — a person also in another
//! household's latest version (`person_in_multiple_households`), other enumerators' answers
//! of the same month (`conflicting_versions`), and a revisit based on a version that was no
//! longer the latest (`stale_base`).
//!
//! "Latest" is by survey time (`surveyed_at`, then id), never by arrival, among the versions no
//! correction replaces. These flags are recomputed from the stored versions for every household
//! an arrival can affect, so an older survey arriving late flags both sides, and any arrival
//! order ends with the same flags.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::changes::{self, Departure};
use crate::db::schema::{household_surveys, households, survey_flags, survey_members, users};
use crate::db::DbConnection;
use crate::domain::SurveyFlag;

/// The flags recomputed here (the others are raised once, on arrival, on both sides).
const DERIVED: [SurveyFlag; 3] = [
    SurveyFlag::PersonInMultipleHouseholds,
    SurveyFlag::ConflictingVersions,
    SurveyFlag::StaleBase,
];

/// A household's version as the comparisons need it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = household_surveys, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Version {
    id: String,
    version: i32,
    village_code: String,
    enumerator_id: String,
    surveyed_at: NaiveDateTime,
    month: String,
    answers_hash: String,
    replaces: Option<String>,
    base_survey_id: Option<String>,
    status: String,
}

impl Version {
    fn order(&self) -> (NaiveDateTime, &str) {
        (self.surveyed_at, self.id.as_str())
    }
}

/// A household's versions, and which of them no correction replaces.
struct Versions {
    all: Vec<Version>,
    replaced: HashSet<String>,
}

impl Versions {
    fn load(conn: &mut DbConnection, household: &str) -> QueryResult<Self> {
        let all: Vec<Version> = household_surveys::table
            .filter(household_surveys::household_id.eq(household))
            .select(Version::as_select())
            .load(conn)?;
        let replaced = all.iter().filter_map(|v| v.replaces.clone()).collect();
        Ok(Self { all, replaced })
    }

    fn live(&self) -> impl Iterator<Item = &Version> {
        self.all.iter().filter(|v| !self.replaced.contains(&v.id))
    }

    fn latest(&self) -> Option<&Version> {
        self.live().max_by(|a, b| a.order().cmp(&b.order()))
    }
}

/// The household lives in the village of its latest version by survey time; when that
/// changes, it leaves the old village's download.
pub fn settle_home(conn: &mut DbConnection, household: &str) -> QueryResult<()> {
    let versions = Versions::load(conn, household)?;
    let Some(latest) = versions.latest() else {
        return Ok(());
    };
    let current: String = households::table
        .find(household)
        .select(households::village_code)
        .first(conn)?;
    if current != latest.village_code {
        diesel::update(households::table.find(household))
            .set(households::village_code.eq(&latest.village_code))
            .execute(conn)?;
        changes::departed(conn, &current, household, Departure::Moved, None)?;
    }
    Ok(())
}

/// The households whose derived flags a change to `households` can alter: themselves, and
/// every household one of their people has ever been listed in.
pub fn reach(conn: &mut DbConnection, households: &[&str]) -> QueryResult<BTreeSet<String>> {
    let persons: Vec<String> = survey_members::table
        .inner_join(household_surveys::table)
        .filter(household_surveys::household_id.eq_any(households))
        .select(survey_members::person_id_hash)
        .distinct()
        .load(conn)?;
    let mut out: BTreeSet<String> = households.iter().map(|h| (*h).to_owned()).collect();
    for chunk in persons.chunks(500) {
        let found: Vec<String> = survey_members::table
            .inner_join(household_surveys::table)
            .filter(survey_members::person_id_hash.eq_any(chunk))
            .select(household_surveys::household_id)
            .distinct()
            .load(conn)?;
        out.extend(found);
    }
    Ok(out)
}

/// A flag to store on one survey.
struct Derived {
    survey: String,
    flag: SurveyFlag,
    related: String,
    detail: String,
}

/// Recomputes the derived flags of every version of each household, from what is stored.
pub fn recompute(conn: &mut DbConnection, households: &BTreeSet<String>) -> QueryResult<()> {
    let mut latest_of: HashMap<String, Option<String>> = HashMap::new();
    for household in households {
        let versions = Versions::load(conn, household)?;
        latest_of.insert(household.clone(), versions.latest().map(|v| v.id.clone()));
        let ids: Vec<&str> = versions.all.iter().map(|v| v.id.as_str()).collect();
        diesel::delete(
            survey_flags::table
                .filter(survey_flags::survey_id.eq_any(&ids))
                .filter(survey_flags::flag.eq_any(DERIVED.map(SurveyFlag::as_str))),
        )
        .execute(conn)?;
        let mut flags = elsewhere(conn, household, &versions, &mut latest_of)?;
        flags.extend(conflicts(conn, &versions)?);
        flags.extend(stale_bases(&versions));
        for f in flags {
            diesel::insert_into(survey_flags::table)
                .values((
                    survey_flags::survey_id.eq(&f.survey),
                    survey_flags::flag.eq(f.flag.as_str()),
                    survey_flags::related_household_id.eq(&f.related),
                    survey_flags::detail.eq(&f.detail),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// The latest version of a household, remembered across the households of one recompute.
fn latest_id(
    conn: &mut DbConnection,
    household: &str,
    memo: &mut HashMap<String, Option<String>>,
) -> QueryResult<Option<String>> {
    if let Some(known) = memo.get(household) {
        return Ok(known.clone());
    }
    let latest = Versions::load(conn, household)?
        .latest()
        .map(|v| v.id.clone());
    memo.insert(household.to_owned(), latest.clone());
    Ok(latest)
}

/// Members of the household's latest version who are also in another household's latest
/// version: one flag per other household, at the first such member.
fn elsewhere(
    conn: &mut DbConnection,
    household: &str,
    versions: &Versions,
    memo: &mut HashMap<String, Option<String>>,
) -> QueryResult<Vec<Derived>> {
    let Some(latest) = versions.latest() else {
        return Ok(Vec::new());
    };
    let members: Vec<(i32, String)> = survey_members::table
        .filter(survey_members::survey_id.eq(&latest.id))
        .select((survey_members::position, survey_members::person_id_hash))
        .order(survey_members::position)
        .load(conn)?;
    let persons: Vec<&str> = members.iter().map(|(_, p)| p.as_str()).collect();
    let listed: Vec<(String, String, String)> = survey_members::table
        .inner_join(household_surveys::table)
        .filter(survey_members::person_id_hash.eq_any(&persons))
        .filter(household_surveys::household_id.ne(household))
        .select((
            household_surveys::household_id,
            household_surveys::id,
            survey_members::person_id_hash,
        ))
        .load(conn)?;
    // Other household → its people listed in its latest version.
    let mut shared: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for (other, survey, person) in listed {
        if latest_id(conn, &other, memo)?.as_deref() == Some(survey.as_str()) {
            shared.entry(other).or_default().insert(person);
        }
    }
    let mut out = Vec::new();
    for (other, people) in shared {
        let Some((position, _)) = members.iter().find(|(_, p)| people.contains(p)) else {
            continue;
        };
        out.push(Derived {
            survey: latest.id.clone(),
            flag: SurveyFlag::PersonInMultipleHouseholds,
            related: other,
            detail: format!(
                "第 {} 位成员（members[{position}]）也登记在另一户中",
                position + 1
            ),
        });
    }
    Ok(out)
}

/// Same household, same month: each enumerator's latest answers that month must agree with
/// every other enumerator's, or each of those versions is flagged, naming another enumerator
/// whose answers differ. An enumerator whose latest version of the month was corrected has no
/// answers of their own that month: the correction speaks for them.
fn conflicts(conn: &mut DbConnection, versions: &Versions) -> QueryResult<Vec<Derived>> {
    let mut by_month: BTreeMap<&str, BTreeMap<&str, &Version>> = BTreeMap::new();
    for v in &versions.all {
        let slot = by_month
            .entry(v.month.as_str())
            .or_default()
            .entry(v.enumerator_id.as_str())
            .or_insert(v);
        if v.order() > slot.order() {
            *slot = v;
        }
    }
    let mut out = Vec::new();
    for (month, mut latest) in by_month {
        latest.retain(|_, v| !versions.replaced.contains(&v.id));
        for v in latest.values() {
            let differing = latest
                .values()
                .filter(|o| o.answers_hash != v.answers_hash)
                .max_by(|a, b| a.order().cmp(&b.order()));
            let Some(other) = differing else {
                continue;
            };
            let name: Option<String> = users::table
                .find(&other.enumerator_id)
                .select(users::name)
                .first(conn)
                .optional()?;
            let who = name.map_or_else(|| "另一名调查员".to_owned(), |n| format!("调查员 {n}"));
            out.push(Derived {
                survey: v.id.clone(),
                flag: SurveyFlag::ConflictingVersions,
                related: String::new(),
                detail: format!("{who}同月（{month}）对本户的调查答案与此不同"),
            });
        }
    }
    Ok(out)
}

/// A revisit is stale when the household has another version surveyed after the one the
/// revisit was based on and before the revisit (other than a version the revisit corrects, or
/// one a reviewer rejected: the sync feed never offers a rejected version as the base, so a
/// phone could not have known better). A review decision therefore recomputes these flags.
fn stale_bases(versions: &Versions) -> Vec<Derived> {
    let by_id: HashMap<&str, &Version> = versions.all.iter().map(|v| (v.id.as_str(), v)).collect();
    let mut out = Vec::new();
    for r in &versions.all {
        let Some(base) = r.base_survey_id.as_deref().and_then(|b| by_id.get(b)) else {
            continue;
        };
        let newer = versions
            .all
            .iter()
            .filter(|y| y.id != r.id && y.id != base.id && Some(&y.id) != r.replaces.as_ref())
            .filter(|y| y.status != crate::domain::ReviewStatus::Rejected.as_str())
            .filter(|y| base.order() < y.order() && y.order() < r.order())
            .max_by(|a, b| a.order().cmp(&b.order()));
        if let Some(y) = newer {
            out.push(Derived {
                survey: r.id.clone(),
                flag: SurveyFlag::StaleBase,
                related: String::new(),
                detail: format!(
                    "本次回访依据的是第 {} 版，但本户在该版之后、本次回访之前还有第 {} 版（{} 调查）：请对照两次调查后再审核",
                    base.version,
                    y.version,
                    crate::domain::time::local(y.surveyed_at.and_utc()).format("%Y-%m-%d %H:%M"),
                ),
            });
        }
    }
    out
}
