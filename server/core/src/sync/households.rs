//! The households of a page: each one's effective version with its members (masked numbers,
//! `person_ref`, the check-in roster's `worker_ref`), and the caller's own submissions among
//! their versions.

use std::collections::{HashMap, HashSet};

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::feed::{
    utc, SubmissionState, SyncEmployment, SyncHousehold, SyncKnownHousehold, SyncLocation,
    SyncMember, SyncTraining,
};
use crate::db::schema::{
    duplicate_pairs, household_surveys, imported_households, people, survey_members,
};
use crate::db::DbConnection;
use crate::domain::{time, Month};
use crate::domain::{
    EmploymentStatus, LabourCapacity, PostType, PovertyStatus, Relation, ReviewStatus, SafetyNet,
    Sex, SurveyKind, TrainingTrade,
};
use crate::error::{ApiError, ApiResult};
use crate::ledger::figures::INCLUDING_PENDING;

/// Review states still open to the phone: it may correct or resend.
const UNSETTLED: [&str; 3] = ["submitted", "reopened", "rejected"];
use crate::privacy::Vault;
use crate::surveys::views::phone_text;

#[derive(Queryable, Selectable)]
#[diesel(table_name = household_surveys, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct VersionRow {
    id: String,
    household_id: String,
    version: i32,
    village_code: String,
    enumerator_id: String,
    surveyed_at: NaiveDateTime,
    status: String,
    household_number: Option<String>,
    head_name: String,
    poverty_status: String,
    relocated: bool,
    phone_sealed: Option<String>,
    lat: f64,
    lon: f64,
    review_comment: Option<String>,
    status_changed_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = survey_members, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct MemberRow {
    survey_id: String,
    person_id_hash: String,
    name: String,
    #[diesel(select_expression = people::id_sealed)]
    id_sealed: Option<String>,
    #[diesel(select_expression = people::sex)]
    sex: String,
    #[diesel(select_expression = people::birth_date)]
    birth_date: NaiveDate,
    relation: String,
    labour_capacity: String,
    employment_status: Option<String>,
    employer_id: Option<String>,
    post_type: Option<String>,
    monthly_income_yuan: Option<i64>,
    wants_public_post: bool,
    training_wanted: bool,
    training_trade: Option<String>,
    at_risk: bool,
    safety_net: String,
}

fn corrupt(what: &str) -> ApiError {
    ApiError::internal(anyhow::anyhow!("stored {what} is invalid"))
}

/// The effective version: the latest by (survey time, id) counting for the ledger including
/// pending, else the latest that is not superseded.
fn effective<'a>(versions: &[&'a VersionRow]) -> Option<&'a VersionRow> {
    let latest = |pick: &dyn Fn(&VersionRow) -> bool| {
        versions
            .iter()
            .copied()
            .filter(|v| pick(v))
            .max_by(|a, b| (a.surveyed_at, &a.id).cmp(&(b.surveyed_at, &b.id)))
    };
    latest(&|v| INCLUDING_PENDING.contains(&v.status.as_str()))
        .or_else(|| latest(&|v| v.status != ReviewStatus::Superseded.as_str()))
}

/// Households merged into another (never sent as alive).
fn absorbed(conn: &mut DbConnection, ids: &[String]) -> QueryResult<HashSet<String>> {
    let mut out = HashSet::new();
    for chunk in ids.chunks(500) {
        let pairs: Vec<(String, String, Option<String>)> = duplicate_pairs::table
            .filter(duplicate_pairs::state.eq("merged"))
            .filter(
                duplicate_pairs::household_a
                    .eq_any(chunk)
                    .or(duplicate_pairs::household_b.eq_any(chunk)),
            )
            .select((
                duplicate_pairs::household_a,
                duplicate_pairs::household_b,
                duplicate_pairs::survivor_id,
            ))
            .load(conn)?;
        for (a, b, survivor) in pairs {
            for h in [a, b] {
                if survivor.as_deref() != Some(h.as_str()) {
                    out.insert(h);
                }
            }
        }
    }
    Ok(out)
}

/// The households of a page.
pub struct Page {
    /// Those surveyed, each as its effective version.
    pub households: Vec<SyncHousehold>,
    /// Those known from an imported list and not yet surveyed.
    pub known: Vec<SyncKnownHousehold>,
    /// The caller's submissions among the surveyed ones' versions.
    pub submissions: Vec<SubmissionState>,
}

/// The households (in the order given) and the caller's submissions among their versions.
pub fn households(
    conn: &mut DbConnection,
    vault: &Vault,
    user: &str,
    ids: &[(String, String)],
) -> ApiResult<Page> {
    let just_ids: Vec<String> = ids.iter().map(|(_, h)| h.clone()).collect();
    let mut versions: Vec<VersionRow> = Vec::new();
    for chunk in just_ids.chunks(500) {
        versions.extend(
            household_surveys::table
                .filter(household_surveys::household_id.eq_any(chunk))
                .select(VersionRow::as_select())
                .load::<VersionRow>(conn)?,
        );
    }
    let gone = absorbed(conn, &just_ids)?;
    let mut by_household: HashMap<&str, Vec<&VersionRow>> = HashMap::new();
    for v in &versions {
        by_household
            .entry(v.household_id.as_str())
            .or_default()
            .push(v);
    }
    let mut chosen: Vec<(&str, &VersionRow)> = Vec::new();
    let mut unsurveyed: Vec<(&str, &str)> = Vec::new();
    for (village, id) in ids {
        if gone.contains(id) {
            continue;
        }
        match by_household.get(id.as_str()) {
            Some(vs) => chosen.extend(effective(vs).map(|v| (village.as_str(), v))),
            None => unsurveyed.push((village.as_str(), id.as_str())),
        }
    }
    let known = known(conn, vault, &unsurveyed)?;
    let survey_ids: Vec<String> = chosen.iter().map(|(_, v)| v.id.clone()).collect();
    let mut members = members_of(conn, &survey_ids)?;
    let mut out = Vec::with_capacity(chosen.len());
    for (village, v) in chosen {
        let rows = members.remove(v.id.as_str()).unwrap_or_default();
        out.push(household(vault, village, v, rows)?);
    }
    // The review states the phone can act on: awaiting review or sent back, or settled since
    // the start of last month. A state settled long ago (an approved survey of last year) is
    // history the phone does not need; it stays readable in the survey list.
    let since = time::start_of(Month::containing(time::today()).previous().first_day()).naive_utc();
    let mut mine: Vec<&VersionRow> = versions
        .iter()
        .filter(|v| v.enumerator_id == user)
        .filter(|v| UNSETTLED.contains(&v.status.as_str()) || v.status_changed_at >= since)
        .collect();
    mine.sort_by(|a, b| (&a.household_id, a.version).cmp(&(&b.household_id, b.version)));
    let submissions = mine
        .into_iter()
        .map(|v| {
            Ok(SubmissionState {
                submission_id: v.id.clone(),
                kind: SurveyKind::HouseholdSurvey,
                village_code: v.village_code.clone(),
                household_id: Some(v.household_id.clone()),
                version: Some(v.version),
                status: ReviewStatus::parse(&v.status).ok_or_else(|| corrupt("status"))?,
                review_comment: v.review_comment.clone(),
                status_changed_at: utc(v.status_changed_at),
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Page {
        households: out,
        known,
        submissions,
    })
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = imported_households, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct KnownRow {
    household_id: String,
    household_number: Option<String>,
    head_name: String,
    head_id_sealed: String,
    member_count: i32,
    phone_sealed: Option<String>,
    poverty_status: Option<String>,
    lifted_year: Option<i32>,
    relocated: Option<bool>,
    imported_at: NaiveDateTime,
}

/// The page's households that have no version yet: those an imported list made (in the order
/// given).
fn known(
    conn: &mut DbConnection,
    vault: &Vault,
    ids: &[(&str, &str)],
) -> ApiResult<Vec<SyncKnownHousehold>> {
    let mut rows: HashMap<String, KnownRow> = HashMap::new();
    for chunk in ids.chunks(500) {
        let wanted: Vec<&str> = chunk.iter().map(|(_, id)| *id).collect();
        for row in imported_households::table
            .filter(imported_households::household_id.eq_any(wanted))
            .select(KnownRow::as_select())
            .load::<KnownRow>(conn)?
        {
            rows.insert(row.household_id.clone(), row);
        }
    }
    ids.iter()
        .filter_map(|(village, id)| rows.remove(*id).map(|row| (*village, row)))
        .map(|(village, row)| {
            Ok(SyncKnownHousehold {
                head_id_number: vault
                    .open_id(&row.head_id_sealed)
                    .map_err(ApiError::internal)?
                    .masked(),
                phone: row
                    .phone_sealed
                    .as_deref()
                    .map(|p| phone_text(vault, p, false))
                    .transpose()?,
                poverty_status: row
                    .poverty_status
                    .as_deref()
                    .map(|p| PovertyStatus::parse(p).ok_or_else(|| corrupt("poverty status")))
                    .transpose()?,
                household_id: row.household_id,
                village_code: village.to_owned(),
                household_number: row.household_number,
                head_name: row.head_name,
                member_count: row.member_count,
                lifted_year: row.lifted_year,
                relocated: row.relocated,
                imported_at: utc(row.imported_at),
            })
        })
        .collect()
}

fn members_of(
    conn: &mut DbConnection,
    surveys: &[String],
) -> QueryResult<HashMap<String, Vec<MemberRow>>> {
    let mut out: HashMap<String, Vec<MemberRow>> = HashMap::new();
    for chunk in surveys.chunks(500) {
        let rows: Vec<MemberRow> = survey_members::table
            .inner_join(people::table)
            .filter(survey_members::survey_id.eq_any(chunk))
            .order((survey_members::survey_id, survey_members::position))
            .select(MemberRow::as_select())
            .load(conn)?;
        for r in rows {
            out.entry(r.survey_id.clone()).or_default().push(r);
        }
    }
    Ok(out)
}

fn household(
    vault: &Vault,
    village: &str,
    v: &VersionRow,
    rows: Vec<MemberRow>,
) -> ApiResult<SyncHousehold> {
    let phone = v
        .phone_sealed
        .as_deref()
        .map(|p| phone_text(vault, p, false))
        .transpose()?;
    let members = rows
        .into_iter()
        .map(|m| member(vault, village, &v.household_id, m))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(SyncHousehold {
        household_id: v.household_id.clone(),
        village_code: village.to_owned(),
        version: v.version,
        survey_id: v.id.clone(),
        surveyed_at: utc(v.surveyed_at),
        status: ReviewStatus::parse(&v.status).ok_or_else(|| corrupt("status"))?,
        household_number: v.household_number.clone(),
        head_name: v.head_name.clone(),
        poverty_status: PovertyStatus::parse(&v.poverty_status)
            .ok_or_else(|| corrupt("poverty status"))?,
        relocated: v.relocated,
        phone,
        location: SyncLocation {
            lat: v.lat,
            lon: v.lon,
        },
        members,
    })
}

fn member(vault: &Vault, village: &str, household: &str, m: MemberRow) -> ApiResult<SyncMember> {
    let status = m
        .employment_status
        .as_deref()
        .map(|s| EmploymentStatus::parse(s).ok_or_else(|| corrupt("employment status")))
        .transpose()?;
    let on_roster = matches!(
        status,
        Some(EmploymentStatus::SpecialPost | EmploymentStatus::TemporaryPublicPost)
    );
    let id_number = match &m.id_sealed {
        Some(sealed) => Some(vault.open_id(sealed).map_err(ApiError::internal)?.masked()),
        None => None,
    };
    Ok(SyncMember {
        person_ref: vault.person_ref(household, &m.person_id_hash),
        worker_ref: on_roster.then(|| vault.worker_ref(village, &m.person_id_hash)),
        name: m.name,
        id_number,
        sex: Sex::parse(&m.sex).ok_or_else(|| corrupt("sex"))?,
        birth_date: m.birth_date,
        relation: Relation::parse(&m.relation).ok_or_else(|| corrupt("relation"))?,
        labour_capacity: LabourCapacity::parse(&m.labour_capacity)
            .ok_or_else(|| corrupt("labour capacity"))?,
        employment: status.map(|status| SyncEmployment {
            status,
            employer_id: m.employer_id,
            post_type: m.post_type.as_deref().and_then(PostType::parse),
            monthly_income_yuan: m.monthly_income_yuan,
        }),
        wants_public_post: m.wants_public_post,
        training: Some(SyncTraining {
            wanted: m.training_wanted,
            trade: m.training_trade.as_deref().and_then(TrainingTrade::parse),
        }),
        at_risk: m.at_risk,
        safety_net: m
            .safety_net
            .split(',')
            .filter_map(SafetyNet::parse)
            .collect(),
    })
}
