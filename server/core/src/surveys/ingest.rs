//! Storing validated surveys: household identity, versions, duplicate flags, and the rows of
//! the village post-demand survey; and the answers they get. Runs inside the transaction that
//! claimed the submission id.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use geo::Point;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::duplicates::PairKind;
use super::flag_text::FlagDetail;
use super::identity;
use super::revisit::{self, Revisit};
use super::validate::{HouseholdSurvey, VillageSurvey};
use crate::auth::Caller;
use crate::db::schema::{
    household_surveys, households, photo_links, survey_flags, survey_members, village_post_demand,
    village_surveys,
};
use crate::db::DbConnection;
use crate::domain::Rule;
use crate::domain::{DivisionCode, Month, SurveyFlag};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::geography::distance_m;
use crate::ledger::cache::Affected;
use crate::privacy::Vault;

/// The answer to a household survey: the same body on every replay.
#[derive(Debug, Serialize, ToSchema)]
pub struct HouseholdSurveyAnswer {
    /// The submission id.
    pub id: String,
    pub household_id: String,
    /// This survey's version of the household (1 for its first survey).
    pub version: i32,
    /// Review status: `submitted` until a county reviewer decides.
    #[schema(value_type = crate::domain::ReviewStatus, example = "submitted")]
    pub status: String,
    pub flags: Vec<SurveyFlag>,
    pub flag_details: Vec<FlagDetail>,
    pub received_at: chrono::DateTime<Utc>,
}

/// The answer to a village post-demand survey.
#[derive(Debug, Serialize, ToSchema)]
pub struct VillageSurveyAnswer {
    pub id: String,
    pub village_code: String,
    #[schema(example = "2020-07")]
    pub month: String,
    #[schema(value_type = crate::domain::ReviewStatus, example = "submitted")]
    pub status: String,
    /// An earlier survey of this village and month exists; the latest one counts.
    pub supersedes_earlier: bool,
    /// Posts needed and filled, summed over post types.
    pub needed: i64,
    pub filled: i64,
    pub received_at: chrono::DateTime<Utc>,
}

/// Households this close (metres) with the same head name and size are possible duplicates.
pub const DUPLICATE_RADIUS_M: f64 = 100.0;

#[derive(Debug, Clone)]
pub struct Flag {
    pub flag: SurveyFlag,
    /// The other household concerned, if any.
    pub related_household_id: Option<String>,
    pub detail: String,
}

/// A field error for every named photo its author has not uploaded. Someone else's photo is
/// missing too, whoever stored it: naming a photo's hash is not enough to use it, and the
/// answer does not reveal that it exists. (The village needs no check here: only field users
/// submit, and their villages are foreign keys.)
fn missing_photos(
    conn: &mut DbConnection,
    photo_list: &[String],
    author: &str,
) -> ApiResult<Vec<FieldError>> {
    if photo_list.is_empty() {
        return Ok(Vec::new());
    }
    let present = crate::photos::db::uploaded_of(conn, photo_list, author)?;
    Ok(photo_list
        .iter()
        .enumerate()
        .filter(|(_, sha)| !present.contains(sha))
        .map(|(i, sha)| {
            FieldError::new(
                format!("photos[{i}]"),
                Rule::PhotoMissing,
                format!("照片 {sha} 尚未由本人上传：请先 PUT /api/v1/photos/{sha}，再重新提交"),
            )
        })
        .collect())
}

fn link_photos(
    conn: &mut DbConnection,
    photo_list: &[String],
    submission_id: &str,
    village: &str,
) -> ApiResult<()> {
    if photo_list.is_empty() {
        return Ok(());
    }
    // A new submission has no links yet: insert without looking, in one statement.
    let rows: Vec<_> = photo_list
        .iter()
        .map(|sha| {
            (
                photo_links::photo_sha256.eq(sha.as_str()),
                photo_links::submission_id.eq(submission_id),
                photo_links::village_code.eq(village),
            )
        })
        .collect();
    crate::execute_on_backend!(conn, diesel::insert_into(photo_links::table).values(rows))?;
    Ok(())
}

/// The household a survey is about.
struct Resolved {
    id: String,
    /// Made by this survey (so it has no earlier versions).
    created: bool,
}

/// Finds the household a survey is about — the one a revisit names, else by household number,
/// else by the head's ID-number hash, each only among the households of the survey's county,
/// else (for a correction) the household of the survey it replaces — or creates it. A
/// household merged into another resolves to the survivor.
fn resolve_household(
    conn: &mut DbConnection,
    survey: &HouseholdSurvey,
    keys: &identity::Keys<'_>,
    revisit: Option<&Revisit>,
    now: DateTime<Utc>,
) -> ApiResult<Resolved> {
    identity::lock_keys(conn, keys)?;
    if let Some(r) = revisit {
        identity::learn(conn, keys, &r.household)?;
        return Ok(Resolved {
            id: r.household.clone(),
            created: false,
        });
    }
    let mut found = identity::find_in_county(conn, keys)?;
    if found.is_none() {
        if let Some(replaced) = &survey.replaces {
            found = household_surveys::table
                .find(replaced.as_str())
                .select(household_surveys::household_id)
                .first(conn)
                .optional()?;
        }
    }
    if let Some(found) = found {
        super::duplicates::lock_households(conn, &[&found])?;
        let id = super::duplicates::survivor_of(conn, &found)?;
        if id != found {
            super::duplicates::lock_households(conn, &[&id])?;
        }
        // Keys learnt later are kept (where it lives follows its versions: `derived`).
        identity::learn(conn, keys, &id)?;
        return Ok(Resolved { id, created: false });
    }
    let id = uuid::Uuid::now_v7().to_string();
    diesel::insert_into(households::table)
        .values((
            households::id.eq(&id),
            households::village_code.eq(survey.village.as_str()),
            households::created_at.eq(now.naive_utc()),
        ))
        .execute(conn)?;
    identity::learn(conn, keys, &id)?;
    Ok(Resolved { id, created: true })
}

/// A survey of a household whose head has the same name, for the look-alike check.
#[derive(Queryable, Selectable)]
#[diesel(table_name = household_surveys, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct LookAlike {
    id: String,
    household_id: String,
    lat: f64,
    lon: f64,
}

/// The versions of other households of the village that look like this survey: the same
/// normalised head name, a size within one member, a position within 100 m, and at least one
/// of the two without either key — unless a reviewer already kept the two apart or merged
/// them. Every version is compared, not only the latest, and every matching version is
/// returned (by household), so the flags do not depend on which versions had arrived when.
fn look_alikes(
    conn: &mut DbConnection,
    survey: &HouseholdSurvey,
    keyless: bool,
    own: &str,
) -> ApiResult<Vec<(String, Vec<String>)>> {
    let name = super::validate::normalise_name(&survey.head_name);
    let size = survey.members.len() as i32;
    let mut query = household_surveys::table
        .filter(household_surveys::village_code.eq(survey.village.as_str()))
        .filter(household_surveys::head_name_norm.eq(&name))
        .filter(household_surveys::household_id.ne(own))
        .filter(household_surveys::member_count.between(size - 1, size + 1))
        .into_boxed();
    if !keyless {
        // Two households that both have a key are told apart by their keys: only a keyless
        // version can look like this one. The partial index of keyless versions answers this
        // without reading the village's every household of the same name.
        query = query
            .filter(household_surveys::household_number.is_null())
            .filter(household_surveys::head_id_hash.is_null());
    }
    let candidates: Vec<LookAlike> = query
        .select(LookAlike::as_select())
        .order((household_surveys::household_id, household_surveys::id))
        .load(conn)?;
    let decided = super::duplicates::decided_partners(conn, own)?;
    let here = Point::new(survey.position.lon, survey.position.lat);
    let mut found: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for c in candidates {
        let household = super::duplicates::survivor_of(conn, &c.household_id)?;
        if household == own || decided.contains(&household) {
            continue;
        }
        if distance_m(here, Point::new(c.lon, c.lat)) <= DUPLICATE_RADIUS_M {
            found.entry(household).or_default().push(c.id);
        }
    }
    Ok(found.into_iter().collect())
}

/// The photos and the corrected survey a household survey names: its author's uploads, a
/// survey of the same village (one of another county answers as unknown).
fn check_references(
    conn: &mut DbConnection,
    survey: &HouseholdSurvey,
    enumerator_id: &str,
) -> ApiResult<()> {
    let mut errors = missing_photos(conn, &survey.photos, enumerator_id)?;
    errors.extend(crate::employers::service::check_references(
        conn,
        survey.members.iter().map(|m| {
            m.employment
                .as_ref()
                .map(|e| (e.status, e.employer_id.as_deref()))
        }),
    )?);
    if let Some(replaced) = &survey.replaces {
        let village: Option<String> = household_surveys::table
            .find(replaced.as_str())
            .select(household_surveys::village_code)
            .first(conn)
            .optional()?;
        // A survey of another county answers as unknown: ids outside the caller's scope are
        // not confirmed to exist.
        let county = survey.village.county();
        let village =
            village.filter(|v| DivisionCode::parse(v).is_ok_and(|v| v.county() == county));
        match village {
            None => errors.push(FieldError::new(
                "replaces",
                Rule::UnknownSubmission,
                format!("入户调查 {replaced} 不存在"),
            )),
            Some(v) if v != survey.village.as_str() => errors.push(FieldError::new(
                "replaces",
                Rule::OtherVillage,
                "被更正的调查属于另一个村",
            )),
            Some(_) => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// The version this survey makes of its household: 1 for a new one, else one after its last.
fn next_version(conn: &mut DbConnection, household: &Resolved) -> QueryResult<i32> {
    if household.created {
        return Ok(1);
    }
    Ok(household_surveys::table
        .filter(household_surveys::household_id.eq(&household.id))
        .select(diesel::dsl::max(household_surveys::version))
        .first::<Option<i32>>(conn)?
        .unwrap_or(0)
        + 1)
}

/// The flags a household survey raises on arrival (the others are derived: see
/// [`super::derived`]), with the households they pair it with.
struct Raised {
    flags: Vec<Flag>,
    /// Keyless look-alikes in the village: (household, its matching versions).
    look_alikes: Vec<(String, Vec<String>)>,
    /// Households holding one of its keys in other counties.
    other_counties: Vec<String>,
}

fn look_alike_detail() -> String {
    format!(
        "与另一户疑似重复：户主姓名相同、人数相差不超过 1 人，且相距不到 {DUPLICATE_RADIUS_M} 米"
    )
}

/// What is doubtful about a survey on its own arrival: look-alikes, its keys in other counties.
fn raise_flags(
    conn: &mut DbConnection,
    survey: &HouseholdSurvey,
    keys: &identity::Keys<'_>,
    household: &Resolved,
) -> ApiResult<Raised> {
    let mut flags = Vec::new();
    let look_alikes = look_alikes(conn, survey, keys.is_empty(), &household.id)?;
    for (other, _) in &look_alikes {
        flags.push(Flag {
            flag: SurveyFlag::PossibleDuplicate,
            detail: look_alike_detail(),
            related_household_id: Some(other.clone()),
        });
    }
    let other_counties = if keys.is_empty() {
        Vec::new()
    } else {
        identity::in_other_counties(conn, keys, &household.id)?
    };
    for other in &other_counties {
        flags.push(Flag {
            flag: SurveyFlag::HouseholdInOtherCounty,
            related_household_id: Some(other.clone()),
            detail: identity::flag_detail(),
        });
    }
    Ok(Raised {
        flags,
        look_alikes,
        other_counties,
    })
}

/// Where a survey's row comes from besides the survey: its household, version and author.
struct Version<'a> {
    household_id: &'a str,
    version: i32,
    /// The head's keyed hash and sealed number.
    head: Option<&'a (String, String)>,
    answers_hash: &'a str,
    enumerator_id: &'a str,
    base_survey: Option<&'a str>,
}

/// The survey's own row, `submitted`.
fn insert_survey(
    conn: &mut DbConnection,
    vault: &Vault,
    survey: &HouseholdSurvey,
    v: &Version<'_>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(household_surveys::table)
        .values((
            household_surveys::id.eq(survey.id.as_str()),
            household_surveys::household_id.eq(v.household_id),
            household_surveys::version.eq(v.version),
            household_surveys::village_code.eq(survey.village.as_str()),
            household_surveys::enumerator_id.eq(v.enumerator_id),
            household_surveys::form_version.eq(&survey.form_version),
            household_surveys::surveyed_at.eq(survey.surveyed_at.naive_utc()),
            household_surveys::month.eq(&survey.month),
            household_surveys::received_at.eq(now.naive_utc()),
            household_surveys::household_number.eq(&survey.household_number),
            household_surveys::head_name.eq(&survey.head_name),
            household_surveys::head_name_norm
                .eq(super::validate::normalise_name(&survey.head_name)),
            household_surveys::head_id_hash.eq(v.head.map(|h| h.0.as_str())),
            household_surveys::head_id_sealed.eq(v.head.map(|h| h.1.as_str())),
            household_surveys::poverty_status.eq(survey.poverty_status.as_str()),
            household_surveys::relocated.eq(survey.relocated),
            household_surveys::phone_sealed.eq(survey
                .phone
                .as_ref()
                .map(|p| vault.seal(crate::privacy::Purpose::Phone, p.as_str().as_bytes()))),
            household_surveys::member_count.eq(survey.members.len() as i32),
            household_surveys::lat.eq(survey.position.lat),
            household_surveys::lon.eq(survey.position.lon),
            household_surveys::accuracy_m.eq(survey.position.accuracy_m),
            household_surveys::answers_hash.eq(v.answers_hash),
            household_surveys::replaces.eq(survey.replaces.as_ref().map(|r| r.as_str())),
            household_surveys::status.eq("submitted"),
            household_surveys::status_changed_at.eq(now.naive_utc()),
            household_surveys::review_version.eq(1),
            household_surveys::base_survey_id.eq(v.base_survey),
        ))
        .execute(conn)?;
    Ok(())
}

/// The survey's members, each a person (stored once, by key) at a position.
fn insert_members(
    conn: &mut DbConnection,
    survey: &HouseholdSurvey,
    resolved: &revisit::Resolved,
) -> QueryResult<()> {
    revisit::store_people(conn, survey, resolved)?;
    let rows: Vec<_> = survey
        .members
        .iter()
        .zip(&resolved.people)
        .enumerate()
        .map(|(position, (m, person))| {
            let employment = m.employment.as_ref();
            (
                survey_members::survey_id.eq(survey.id.as_str()),
                survey_members::position.eq(position as i32),
                survey_members::person_id_hash.eq(person.key.as_str()),
                survey_members::name.eq(m.name.as_str()),
                survey_members::relation.eq(m.relation.as_str()),
                survey_members::labour_capacity.eq(m.labour_capacity.as_str()),
                survey_members::employment_status.eq(employment.map(|e| e.status.as_str())),
                survey_members::employer_id.eq(employment.and_then(|e| e.employer_id.as_deref())),
                survey_members::post_type
                    .eq(employment.and_then(|e| e.post_type).map(|p| p.as_str())),
                survey_members::monthly_income_yuan
                    .eq(employment.and_then(|e| e.monthly_income_yuan)),
                survey_members::wants_public_post.eq(m.wants_public_post),
                survey_members::training_wanted.eq(m.training_wanted),
                survey_members::training_trade.eq(m.training.map(|t| t.as_str())),
                survey_members::at_risk.eq(m.at_risk),
                survey_members::safety_net.eq(m
                    .safety_net
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(",")),
            )
        })
        .collect();
    // One statement for the household, not one a member.
    crate::execute_on_backend!(
        conn,
        diesel::insert_into(survey_members::table).values(rows)
    )?;
    Ok(())
}

/// Stores a flag on another survey unless it is there already.
fn flag_once(
    conn: &mut DbConnection,
    survey: &str,
    flag: SurveyFlag,
    related: &str,
    detail: &str,
) -> QueryResult<()> {
    let known = survey_flags::table
        .find((survey, flag.as_str(), related))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if !known {
        diesel::insert_into(survey_flags::table)
            .values((
                survey_flags::survey_id.eq(survey),
                survey_flags::flag.eq(flag.as_str()),
                survey_flags::related_household_id.eq(related),
                survey_flags::detail.eq(detail),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The raised flags and the pairs they make (a look-alike, a key in another county).
fn record_flags(
    conn: &mut DbConnection,
    survey: &HouseholdSurvey,
    keys: &identity::Keys<'_>,
    household_id: &str,
    raised: &Raised,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    for (other, their_surveys) in &raised.look_alikes {
        super::duplicates::record_pair(
            conn,
            household_id,
            other,
            survey.id.as_str(),
            now,
            PairKind::PossibleDuplicate,
        )?;
        // Both sides show the pair, whichever arrived first.
        for their_survey in their_surveys {
            flag_once(
                conn,
                their_survey,
                SurveyFlag::PossibleDuplicate,
                household_id,
                &look_alike_detail(),
            )?;
        }
    }
    for f in &raised.flags {
        diesel::insert_into(survey_flags::table)
            .values((
                survey_flags::survey_id.eq(survey.id.as_str()),
                survey_flags::flag.eq(f.flag.as_str()),
                survey_flags::related_household_id
                    .eq(f.related_household_id.as_deref().unwrap_or("")),
                survey_flags::detail.eq(&f.detail),
            ))
            .execute(conn)?;
    }
    identity::pair_across_counties(
        conn,
        keys,
        household_id,
        &raised.other_counties,
        survey.id.as_str(),
        now,
    )?;
    Ok(())
}

/// The ledger of the survey's household (and of the corrected survey's) is stale now; a
/// superseded survey is audited, last: its lock is held to commit (see `audit::append`).
fn touch_and_audit(
    conn: &mut DbConnection,
    survey: &HouseholdSurvey,
    household_id: &str,
    superseded: Option<&str>,
    enumerator_id: &str,
) -> ApiResult<()> {
    let mut touched = vec![household_id];
    let replaced: Option<(String, String)> = match &survey.replaces {
        Some(r) => household_surveys::table
            .find(r.as_str())
            .select((household_surveys::household_id, household_surveys::month))
            .first(conn)
            .optional()?,
        None => None,
    };
    // The survey counts from its month on; the one it corrects stops counting from its own.
    let mut from = survey.month.as_str();
    if let Some((h, month)) = &replaced {
        touched.push(h);
        from = from.min(month.as_str());
    }
    let affected = Month::parse(from).map_or(Affected::All, Affected::From);
    crate::changes::households(conn, &touched, affected)?;
    if let (Some(from), Some(replaced)) = (superseded, &survey.replaces) {
        super::review::audit_supersede(
            conn,
            replaced.as_str(),
            survey.id.as_str(),
            enumerator_id,
            from,
        )?;
    }
    Ok(())
}

/// The answer, replayed to the enumerator: households outside the survey's county are not
/// named in it.
fn household_answer(
    conn: &mut DbConnection,
    survey: &HouseholdSurvey,
    household_id: &str,
    version: i32,
    flags: &[Flag],
    now: DateTime<Utc>,
) -> ApiResult<Value> {
    let county = survey.village.county();
    let mut shown = Vec::new();
    for f in flags {
        if let Some(h) = &f.related_household_id {
            if in_county(conn, h, &county)? {
                shown.push(h.as_str());
            }
        }
    }
    let names = super::flag_text::names_of(conn, &shown)?;
    let mut flag_details = Vec::with_capacity(flags.len());
    for f in flags {
        let related = f
            .related_household_id
            .as_deref()
            .filter(|h| shown.contains(h));
        let name = related.and_then(|h| names.get(h));
        flag_details.push(json!({
            "flag": f.flag,
            "related_household_id": related,
            "detail": super::flag_text::for_reader(&f.detail, name),
        }));
    }
    Ok(json!({
        "id": survey.id,
        "household_id": household_id,
        "version": version,
        "status": "submitted",
        "flags": distinct_flags(flags),
        "flag_details": flag_details,
        "received_at": now,
    }))
}

/// The answers alone, as the server understands them (members by person key, however the
/// phone named them), hashed: two enumerators giving the same answers do not conflict, whether
/// one typed the ID numbers and the other named the members by reference.
fn answers_hash(vault: &Vault, survey: &HouseholdSurvey, resolved: &revisit::Resolved) -> String {
    let members: Vec<Value> = survey
        .members
        .iter()
        .zip(&resolved.people)
        .map(|(m, p)| {
            let e = m.employment.as_ref();
            json!({
                "person": p.key, "name": m.name, "sex": m.sex.as_str(),
                "birth_date": m.birth_date.to_string(), "relation": m.relation.as_str(),
                "labour_capacity": m.labour_capacity.as_str(),
                "employment": e.map(|e| json!([e.status.as_str(), e.employer_id,
                    e.post_type.map(|p| p.as_str()), e.monthly_income_yuan])),
                "wants_public_post": m.wants_public_post, "training": m.training_wanted,
                "trade": m.training.map(|t| t.as_str()), "at_risk": m.at_risk,
                "safety_net": m.safety_net.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let answers = json!({
        "household_number": survey.household_number,
        "head_name": super::validate::normalise_name(&survey.head_name),
        "head": resolved.head.as_ref().map(|h| &h.0),
        "poverty_status": survey.poverty_status.as_str(),
        "relocated": survey.relocated,
        "phone": survey.phone.as_ref().map(|p| p.as_str().to_owned()),
        "members": members,
    });
    vault.keyed_hash(crate::submissions::canonical_json(&answers).as_bytes())
}

/// Stores a validated household survey as the next version of its household (the one a
/// revisit names, else found by its keys, else made), with its members and flags; recomputes
/// the flags that compare versions for every household it can affect; returns the answer.
pub fn household(
    conn: &mut DbConnection,
    vault: &Vault,
    caller: &Caller,
    survey: &HouseholdSurvey,
    now: DateTime<Utc>,
) -> ApiResult<Value> {
    let enumerator_id = caller.user_id.as_str();
    check_references(conn, survey, enumerator_id)?;
    let revisit = revisit::household(conn, caller, survey)?;
    let resolved = revisit::members(conn, vault, survey, revisit.as_ref())?;
    let keys = identity::Keys {
        county: survey.village.county(),
        household_number: survey.household_number.as_deref(),
        head_id_hash: resolved.head.as_ref().map(|h| h.0.as_str()),
    };
    let household = resolve_household(conn, survey, &keys, revisit.as_ref(), now)?;
    let version = next_version(conn, &household)?;
    let raised = raise_flags(conn, survey, &keys, &household)?;
    let answers_hash = answers_hash(vault, survey, &resolved);
    let row = Version {
        household_id: &household.id,
        version,
        head: resolved.head.as_ref(),
        answers_hash: &answers_hash,
        enumerator_id,
        base_survey: revisit.as_ref().map(|r| r.base_survey.as_str()),
    };
    insert_survey(conn, vault, survey, &row, now)?;
    let superseded = match &survey.replaces {
        Some(replaced) => super::review::supersede(conn, replaced.as_str(), now)?,
        None => None,
    };
    insert_members(conn, survey, &resolved)?;
    record_flags(conn, survey, &keys, &household.id, &raised, now)?;
    link_photos(
        conn,
        &survey.photos,
        survey.id.as_str(),
        survey.village.as_str(),
    )?;
    super::derived::settle_home(conn, &household.id)?;
    let reach = super::derived::reach(conn, &[household.id.as_str()])?;
    super::derived::recompute(conn, &reach)?;
    touch_and_audit(
        conn,
        survey,
        &household.id,
        superseded.as_deref(),
        enumerator_id,
    )?;
    let flags = stored_flags(conn, survey.id.as_str())?;
    household_answer(conn, survey, &household.id, version, &flags, now)
}

/// The flags stored on a survey, in flag order.
fn stored_flags(conn: &mut DbConnection, survey: &str) -> QueryResult<Vec<Flag>> {
    let rows: Vec<(String, String, String)> = survey_flags::table
        .filter(survey_flags::survey_id.eq(survey))
        .select((
            survey_flags::flag,
            survey_flags::related_household_id,
            survey_flags::detail,
        ))
        .load(conn)?;
    let mut flags: Vec<Flag> = rows
        .into_iter()
        .filter_map(|(flag, related, detail)| {
            Some(Flag {
                flag: SurveyFlag::parse(&flag)?,
                related_household_id: (!related.is_empty()).then_some(related),
                detail,
            })
        })
        .collect();
    flags.sort_by(|a, b| {
        (a.flag as u8, &a.related_household_id).cmp(&(b.flag as u8, &b.related_household_id))
    });
    Ok(flags)
}

/// Whether a household lives in the county.
fn in_county(conn: &mut DbConnection, household: &str, county: &DivisionCode) -> QueryResult<bool> {
    let village: Option<String> = households::table
        .find(household)
        .select(households::village_code)
        .first(conn)
        .optional()?;
    Ok(village
        .and_then(|v| DivisionCode::parse(&v).ok())
        .is_some_and(|v| v.county() == *county))
}

/// Each flag once, in the order first raised.
fn distinct_flags(flags: &[Flag]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for f in flags {
        if !out.contains(&f.flag.as_str()) {
            out.push(f.flag.as_str());
        }
    }
    out
}

/// Stores a village post-demand survey and returns the answer.
pub fn village(
    conn: &mut DbConnection,
    survey: &VillageSurvey,
    surveyor_id: &str,
    now: DateTime<Utc>,
) -> ApiResult<Value> {
    let errors = missing_photos(conn, &survey.photos, surveyor_id)?;
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    diesel::insert_into(village_surveys::table)
        .values((
            village_surveys::id.eq(survey.id.as_str()),
            village_surveys::village_code.eq(survey.village.as_str()),
            village_surveys::month.eq(&survey.month),
            village_surveys::surveyor_id.eq(surveyor_id),
            village_surveys::surveyed_at.eq(survey.surveyed_at.naive_utc()),
            village_surveys::received_at.eq(now.naive_utc()),
            village_surveys::willing_people.eq(survey.willing_people),
            village_surveys::lat.eq(survey.position.map(|p| p.lat)),
            village_surveys::lon.eq(survey.position.map(|p| p.lon)),
            village_surveys::accuracy_m.eq(survey.position.and_then(|p| p.accuracy_m)),
            village_surveys::status.eq("submitted"),
            village_surveys::status_changed_at.eq(now.naive_utc()),
        ))
        .execute(conn)?;
    for p in &survey.posts {
        diesel::insert_into(village_post_demand::table)
            .values((
                village_post_demand::survey_id.eq(survey.id.as_str()),
                village_post_demand::post_type.eq(p.post_type.as_str()),
                village_post_demand::needed.eq(p.needed),
                village_post_demand::filled.eq(p.filled),
            ))
            .execute(conn)?;
    }
    link_photos(
        conn,
        &survey.photos,
        survey.id.as_str(),
        survey.village.as_str(),
    )?;
    crate::changes::village_survey(conn, survey.id.as_str(), survey.village.as_str())?;
    // Earlier surveys of the same village and month stay stored; the latest is the month's.
    let earlier = village_surveys::table
        .filter(village_surveys::village_code.eq(survey.village.as_str()))
        .filter(village_surveys::month.eq(&survey.month))
        .filter(village_surveys::id.ne(survey.id.as_str()))
        .count()
        .get_result::<i64>(conn)?;
    Ok(json!({
        "id": survey.id,
        "village_code": survey.village,
        "month": survey.month,
        "status": "submitted",
        "supersedes_earlier": earlier > 0,
        "needed": survey.posts.iter().map(|p| i64::from(p.needed)).sum::<i64>(),
        "filled": survey.posts.iter().map(|p| i64::from(p.filled)).sum::<i64>(),
        "received_at": now,
    }))
}
