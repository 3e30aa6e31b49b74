//! Revisits by reference: the household a survey names by `household_ref` (from the sync
//! feed) and its members named by `person_ref`, resolved to the household, its base version
//! and each member's person key — inside the caller's scope, so a reference copied from
//! elsewhere names nothing. Also the person key of every member (ID number, reference, or a
//! key made for a member without an ID number).

use std::collections::HashMap;

use chrono::NaiveDate;
use diesel::prelude::*;

use super::validate::{HouseholdSurvey, Identity};
use crate::auth::Caller;
use crate::db::schema::{household_surveys, households, merge_moves, people, survey_members};
use crate::db::DbConnection;
use crate::domain::{DivisionCode, Rule};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::privacy::Vault;

/// A revisit's household, resolved.
#[derive(Debug, Clone)]
pub struct Revisit {
    /// The household the survey becomes a version of (the survivor, if the named one was
    /// merged into another).
    pub household: String,
    /// The survey the phone showed (its `base_version`).
    pub base_survey: String,
}

/// How each member is known to the server.
#[derive(Debug, Clone)]
pub struct Person {
    /// `survey_members.person_id_hash`: the ID number's keyed hash, or `noid-…`.
    pub key: String,
    /// The sealed ID number of a member who brought one in clear (a new `people` row may be
    /// needed); `None` otherwise.
    pub new_sealed: Option<String>,
    /// Whether the person is stored already (named by reference).
    pub known: bool,
}

/// The resolved members and the head's ID number as the survey gives it or, on a revisit,
/// as the server knows it.
pub struct Resolved {
    pub people: Vec<Person>,
    /// The head's keyed hash and sealed number, if any.
    pub head: Option<(String, String)>,
}

/// The key of a member without an ID number: made from the submission and the member's
/// position, so a replay makes the same one.
pub fn unnumbered_key(submission: &str, position: usize) -> String {
    format!("noid-{submission}-{position}")
}

fn refused(field: impl Into<String>, rule: Rule, detail: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![FieldError::new(field, rule, detail)])
}

/// Resolves `household_ref`: a household of a village the caller may survey, in the survey's
/// county, and one of its versions. Anything else answers as unknown: ids outside the caller's
/// scope are not confirmed to exist.
pub fn household(
    conn: &mut DbConnection,
    caller: &Caller,
    survey: &HouseholdSurvey,
) -> ApiResult<Option<Revisit>> {
    let Some(reference) = &survey.household_ref else {
        return Ok(None);
    };
    let unknown = || {
        refused(
            "household_ref.household_id",
            Rule::UnknownHousehold,
            "该户不存在，或不在您负责的村中：请先同步（GET /api/v1/sync）",
        )
    };
    let named = &reference.household_id;
    let village: Option<String> = households::table
        .find(named)
        .select(households::village_code)
        .first(conn)
        .optional()?;
    let Some(village) = village else {
        return Err(unknown());
    };
    let home = DivisionCode::parse(&village).map_err(|_| unknown())?;
    if home.county() != survey.village.county() || !caller.can_access_village(&home) {
        return Err(unknown());
    }
    super::duplicates::lock_households(conn, &[named])?;
    let household = super::duplicates::survivor_of(conn, named)?;
    if household != *named {
        super::duplicates::lock_households(conn, &[&household])?;
    }
    let base_survey = base_survey(conn, named, &household, reference.base_version)?;
    let Some(base_survey) = base_survey else {
        return Err(refused(
            "household_ref.base_version",
            Rule::UnknownVersion,
            format!("该户没有第 {} 版调查", reference.base_version),
        ));
    };
    Ok(Some(Revisit {
        household,
        base_survey,
    }))
}

/// The survey that was version `version` of `named` when the phone synced: its own version,
/// or, if `named` was merged into `survivor` since, the version a merge moved.
fn base_survey(
    conn: &mut DbConnection,
    named: &str,
    survivor: &str,
    version: i32,
) -> QueryResult<Option<String>> {
    if named != survivor {
        let moved: Option<String> = merge_moves::table
            .filter(merge_moves::from_household.eq(named))
            .filter(merge_moves::from_version.eq(version))
            .select(merge_moves::survey_id)
            .first(conn)
            .optional()?;
        if moved.is_some() {
            return Ok(moved);
        }
    }
    household_surveys::table
        .filter(household_surveys::household_id.eq(named))
        .filter(household_surveys::version.eq(version))
        .select(household_surveys::id)
        .first(conn)
        .optional()
}

/// A stored person: sex, birth date and sealed number.
type Stored = (String, NaiveDate, Option<String>);

/// The people of the household's versions, by the `person_ref` each has under the named
/// household and under the survivor.
fn people_by_ref(
    conn: &mut DbConnection,
    vault: &Vault,
    named: &str,
    household: &str,
) -> QueryResult<HashMap<String, (String, Stored)>> {
    let rows: Vec<(String, String, NaiveDate, Option<String>)> = survey_members::table
        .inner_join(household_surveys::table)
        .inner_join(people::table)
        .filter(household_surveys::household_id.eq(household))
        .select((
            survey_members::person_id_hash,
            people::sex,
            people::birth_date,
            people::id_sealed,
        ))
        .distinct()
        .load(conn)?;
    let mut out = HashMap::new();
    for (key, sex, birth, sealed) in rows {
        let stored = (sex, birth, sealed);
        for h in [named, household] {
            out.insert(vault.person_ref(h, &key), (key.clone(), stored.clone()));
        }
    }
    Ok(out)
}

/// Each member's person key, and the head's ID number. A member by reference must be one of
/// the household's people, with the sex and birth date on record.
pub fn members(
    conn: &mut DbConnection,
    vault: &Vault,
    survey: &HouseholdSurvey,
    revisit: Option<&Revisit>,
) -> ApiResult<Resolved> {
    let by_ref = match (revisit, &survey.household_ref) {
        (Some(r), Some(named)) => people_by_ref(conn, vault, &named.household_id, &r.household)?,
        _ => HashMap::new(),
    };
    let mut errors = Vec::new();
    let mut people = Vec::with_capacity(survey.members.len());
    let mut head = survey
        .head_id
        .as_ref()
        .map(|id| (vault.index_id(id), vault.seal_id(id)));
    for (i, m) in survey.members.iter().enumerate() {
        let person = match &m.id {
            Identity::Number(id) => Person {
                key: vault.index_id(id),
                new_sealed: Some(vault.seal_id(id)),
                known: false,
            },
            Identity::Unknown => Person {
                key: unnumbered_key(survey.id.as_str(), i),
                new_sealed: None,
                known: false,
            },
            Identity::Ref(r) => {
                let Some((key, (sex, birth, sealed))) = by_ref.get(r) else {
                    errors.push(FieldError::new(
                        format!("members[{i}].person_ref"),
                        Rule::UnknownPerson,
                        "该户中没有这名成员：请用最近一次同步中的 person_ref，新成员请填写身份证号或留空",
                    ));
                    continue;
                };
                if sex != m.sex.as_str() {
                    errors.push(FieldError::new(
                        format!("members[{i}].sex"),
                        Rule::SexMismatch,
                        "与该成员登记的性别不符",
                    ));
                }
                if *birth != m.birth_date {
                    errors.push(FieldError::new(
                        format!("members[{i}].birth_date"),
                        Rule::BirthDateMismatch,
                        "与该成员登记的出生日期不符",
                    ));
                }
                if m.relation == crate::domain::Relation::Head {
                    head = head_by_ref(head, key, sealed.as_deref(), &mut errors, i);
                }
                Person {
                    key: key.clone(),
                    new_sealed: None,
                    known: true,
                }
            }
        };
        if people.iter().any(|p: &Person| p.key == person.key) {
            errors.push(FieldError::new(
                format!("members[{i}]"),
                Rule::DuplicateMember,
                "本户中同一成员出现了两次",
            ));
        }
        people.push(person);
    }
    if errors.is_empty() {
        Ok(Resolved { people, head })
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// The head named by reference: their stored number is the household's key, unless the
/// survey typed another one.
fn head_by_ref(
    typed: Option<(String, String)>,
    key: &str,
    sealed: Option<&str>,
    errors: &mut Vec<FieldError>,
    i: usize,
) -> Option<(String, String)> {
    match (typed, sealed) {
        (Some((hash, _)), _) if hash != key => {
            errors.push(FieldError::new(
                "household.head_id_number",
                Rule::HeadMismatch,
                format!("与户主成员 members[{i}] 的身份证号不符"),
            ));
            None
        }
        (Some(typed), _) => Some(typed),
        (None, Some(sealed)) => Some((key.to_owned(), sealed.to_owned())),
        (None, None) => None,
    }
}

/// Stores the people a survey brings for the first time.
pub fn store_people(
    conn: &mut DbConnection,
    survey: &HouseholdSurvey,
    resolved: &Resolved,
) -> QueryResult<()> {
    let fresh: Vec<&str> = resolved
        .people
        .iter()
        .filter(|p| !p.known)
        .map(|p| p.key.as_str())
        .collect();
    let stored: Vec<String> = people::table
        .filter(people::id_hash.eq_any(&fresh))
        .select(people::id_hash)
        .load(conn)?;
    let rows: Vec<_> = survey
        .members
        .iter()
        .zip(&resolved.people)
        .filter(|(_, p)| !p.known && !stored.contains(&p.key))
        .map(|(m, p)| {
            (
                people::id_hash.eq(p.key.as_str()),
                people::id_sealed.eq(p.new_sealed.as_deref()),
                people::sex.eq(m.sex.as_str()),
                people::birth_date.eq(m.birth_date),
            )
        })
        .collect();
    if !rows.is_empty() {
        // One statement for the household's new people.
        crate::execute_on_backend!(conn, diesel::insert_into(people::table).values(rows))?;
    }
    Ok(())
}
