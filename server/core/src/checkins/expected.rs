//! Who must check in during a month, whether or not they did: the first secretaries and
//! enumerators assigned to villages, and the special-post and temporary-post holders of the
//! real-name ledger (each household's latest approved version as of the month's end, as the
//! ledger's 实名制台账 lists them). Attendance lists them all, so an absentee shows with 0 days.

use std::collections::HashMap;

use diesel::prelude::*;

use super::attendance::Filter;
use crate::auth::Caller;
use crate::db::schema::{household_surveys, people, survey_members, user_villages, users};
use crate::db::DbConnection;
use crate::domain::{CheckinKind, EmploymentStatus, Role};
use crate::error::ApiResult;
use crate::ledger::figures;
use crate::privacy::Vault;

/// A person who must check in, in one village.
#[derive(Debug, Clone)]
pub struct Expected {
    /// `user:<id>` or `person:<person key>`, as check-ins name them.
    pub subject: String,
    pub kind: CheckinKind,
    pub village_code: String,
    pub user_id: Option<String>,
    pub name: String,
    pub role: Option<Role>,
    /// A post holder's ID number, masked.
    pub worker_id_number: Option<String>,
    /// A post holder's post: `special_post` or `temporary_public_post`.
    pub post: Option<EmploymentStatus>,
}

const POSTS: [EmploymentStatus; 2] = [
    EmploymentStatus::SpecialPost,
    EmploymentStatus::TemporaryPublicPost,
];

/// The active field users assigned to villages in the caller's scope and the filter's area,
/// each with the villages of theirs that are in it (in code order).
pub fn field_users(
    conn: &mut DbConnection,
    caller: &Caller,
    f: &Filter,
) -> ApiResult<Vec<(Expected, Vec<String>)>> {
    let mut select = user_villages::table
        .inner_join(users::table)
        .filter(users::active.eq(true))
        .filter(users::role.eq_any([Role::Enumerator.as_str(), Role::FirstSecretary.as_str()]))
        .select((
            users::id,
            users::name,
            users::role,
            user_villages::village_code,
        ))
        .order((users::id, user_villages::village_code))
        .into_boxed();
    crate::auth::area::narrow_to_area!(select, user_villages::village_code, caller, &f.area);
    if let Some(user) = &f.user {
        select = select.filter(users::id.eq(user.clone()));
    }
    let rows: Vec<(String, String, String, String)> = select.load(conn)?;
    let mut out: Vec<(Expected, Vec<String>)> = Vec::new();
    for (id, name, role, village) in rows {
        match out.last_mut() {
            Some((e, villages)) if e.user_id.as_deref() == Some(id.as_str()) => {
                villages.push(village)
            }
            _ => out.push((
                Expected {
                    subject: format!("user:{id}"),
                    kind: CheckinKind::ResidentDuty,
                    village_code: village.clone(),
                    user_id: Some(id),
                    name,
                    role: Role::parse(&role),
                    worker_id_number: None,
                    post: None,
                },
                vec![village],
            )),
        }
    }
    Ok(out)
}

/// The post holders of the real-name ledger in the caller's scope and the filter's area, village
/// by village; none when the filter names one user.
pub fn post_holders(
    conn: &mut DbConnection,
    vault: &Vault,
    caller: &Caller,
    f: &Filter,
) -> ApiResult<Vec<Expected>> {
    if f.user.is_some() {
        return Ok(Vec::new());
    }
    // Only villages whose surveys ever named a post are worth computing the ledger for.
    let month = f.month.to_string();
    let mut select = household_surveys::table
        .inner_join(survey_members::table)
        .filter(survey_members::employment_status.eq_any(POSTS.map(EmploymentStatus::as_str)))
        .filter(household_surveys::month.le(month))
        .select(household_surveys::village_code)
        .distinct()
        .into_boxed();
    crate::auth::area::narrow_to_area!(select, household_surveys::village_code, caller, &f.area);
    let mut villages: Vec<String> = select.load(conn)?;
    villages.sort_unstable();
    let mut out = Vec::new();
    for village in villages {
        out.extend(village_holders(conn, vault, &village, f)?);
    }
    Ok(out)
}

/// A village's post holders for the month, in household and member order.
fn village_holders(
    conn: &mut DbConnection,
    vault: &Vault,
    village: &str,
    f: &Filter,
) -> ApiResult<Vec<Expected>> {
    let [approved, _] = figures::counted(conn, village, f.month)?;
    let mut chosen: Vec<(&figures::Member, EmploymentStatus, &str)> = approved
        .people
        .iter()
        .filter_map(|(m, v)| {
            let post = m.status.as_deref().and_then(EmploymentStatus::parse)?;
            POSTS
                .contains(&post)
                .then_some((m, post, v.household.as_str()))
        })
        .collect();
    if chosen.is_empty() {
        return Ok(Vec::new());
    }
    chosen.sort_by(|a, b| (a.2, a.0.position).cmp(&(b.2, b.0.position)));
    let surveys: Vec<&str> = chosen.iter().map(|(m, _, _)| m.survey.as_str()).collect();
    let names: HashMap<(String, i32), String> = survey_members::table
        .filter(survey_members::survey_id.eq_any(&surveys))
        .select((
            survey_members::survey_id,
            survey_members::position,
            survey_members::name,
        ))
        .load::<(String, i32, String)>(conn)?
        .into_iter()
        .map(|(s, p, n)| ((s, p), n))
        .collect();
    let keys: Vec<&str> = chosen.iter().map(|(m, _, _)| m.person.as_str()).collect();
    let sealed: HashMap<String, Option<String>> = people::table
        .filter(people::id_hash.eq_any(&keys))
        .select((people::id_hash, people::id_sealed))
        .load::<(String, Option<String>)>(conn)?
        .into_iter()
        .collect();
    Ok(chosen
        .into_iter()
        .map(|(m, post, _)| Expected {
            subject: format!("person:{}", m.person),
            kind: CheckinKind::SpecialPost,
            village_code: village.to_owned(),
            user_id: None,
            name: names
                .get(&(m.survey.clone(), m.position))
                .cloned()
                .unwrap_or_default(),
            role: None,
            worker_id_number: sealed
                .get(&m.person)
                .and_then(Option::as_deref)
                .and_then(|s| vault.open_id(s).ok())
                .map(|id| id.masked()),
            post: Some(post),
        })
        .collect())
}
