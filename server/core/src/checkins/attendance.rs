//! Monthly attendance, computed from the raw check-ins: a day counts once however many
//! check-ins it has; a day with only flagged check-ins counts apart.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::policy::CheckinPolicy;
use crate::auth::{Area, Caller};
use crate::db::schema::{checkin_reviews, checkins, survey_members, users};
use crate::db::DbConnection;
use crate::domain::{
    CheckinDecision, CheckinFlag, CheckinKind, CheckinStatus, EmploymentStatus, Month, Role,
};
use crate::error::ApiResult;
use crate::photos::PhotoRef;
use crate::privacy::Vault;

/// Whose check-ins of which month: typed and scope-checked (see [`Area::parse`]).
#[derive(Debug, Clone)]
pub struct Filter {
    pub month: Month,
    /// Its village and county; the township is not used.
    pub area: Area,
    /// A user id: only that user's own (resident-duty) check-ins.
    pub user: Option<String>,
}

/// One person's attendance in one village: everyone who must check in is listed (see
/// [`super::expected`]), those without a check-in with 0 days and `no_checkins`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonAttendance {
    /// `user:<id>` for resident duty, `person:<keyed hash>` for a special-post worker.
    pub subject: String,
    pub kind: CheckinKind,
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub role: Option<Role>,
    /// A special-post worker's ID number, masked.
    pub worker_id_number: Option<String>,
    /// The post a holder has on the real-name ledger (`special_post` or
    /// `temporary_public_post`); null for field users and for a worker not (yet) on the ledger.
    #[schema(value_type = Option<EmploymentStatus>, example = "temporary_public_post")]
    pub post: Option<EmploymentStatus>,
    pub village_code: String,
    /// Days that count: with an accepted check-in, or a flagged one a reviewer confirmed.
    pub days_present: u32,
    /// Days with flagged check-ins awaiting a reviewer, and none that counts.
    pub days_flagged: u32,
    /// Of `days_present`, the days counted only thanks to a confirmed flagged check-in.
    pub days_confirmed: u32,
    /// Days whose only check-ins were dismissed (never counted).
    pub days_dismissed: u32,
    pub days_required: u32,
    pub requirement_met: bool,
    /// No check-in at all this month (an absentee, listed so that no one is paid unseen).
    pub no_checkins: bool,
}

/// Totals for a village or a county.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Rollup {
    pub code: String,
    pub people: u32,
    pub requirement_met: u32,
    pub days_present: u32,
    pub days_flagged: u32,
    /// People without any check-in this month.
    pub no_checkins: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Attendance {
    #[schema(value_type = String, example = "2020-07")]
    pub month: Month,
    pub people: Vec<PersonAttendance>,
    pub villages: Vec<Rollup>,
    pub counties: Vec<Rollup>,
}

/// What one day of a person's month shows, best first when a day has several check-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DayMark {
    /// An accepted or a confirmed check-in: the day counts.
    Present,
    /// Flagged check-ins awaiting a reviewer.
    Flagged,
    /// Only dismissed check-ins.
    Dismissed,
}

/// Attendance with each person's days, in the order of `attendance.people`: what the
/// 考勤表 and the subsidy sheet are written from.
pub struct Detailed {
    pub attendance: Attendance,
    pub days: Vec<BTreeMap<NaiveDate, DayMark>>,
}

/// A check-in as attendance counts it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = checkins, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Row {
    id: String,
    subject: String,
    kind: String,
    user_id: String,
    village_code: String,
    attendance_date: NaiveDate,
    status: String,
    worker_id_sealed: Option<String>,
}

type Boxed<'a> = checkins::BoxedQuery<'a, <DbConnection as diesel::Connection>::Backend>;

/// The check-ins of the filter's month, inside the caller's scope and the filter.
fn scoped<'a>(caller: &Caller, f: &'a Filter) -> Boxed<'a> {
    let mut select = checkins::table
        .filter(checkins::attendance_date.ge(f.month.first_day()))
        .filter(checkins::attendance_date.le(f.month.last_day()))
        .into_boxed();
    crate::auth::area::narrow_to_area!(select, checkins::village_code, caller, &f.area);
    if let Some(user) = &f.user {
        select = select.filter(checkins::subject.eq(format!("user:{user}")));
    }
    select
}

/// One check-in as a reviewer sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckinView {
    /// The submission id.
    pub id: String,
    pub user_id: String,
    pub user_name: Option<String>,
    pub kind: CheckinKind,
    pub village_code: String,
    pub captured_at: chrono::DateTime<chrono::Utc>,
    pub attendance_date: NaiveDate,
    /// WGS-84.
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
    #[schema(example = "flagged")]
    pub status: CheckinStatus,
    pub flags: Vec<CheckinFlag>,
    pub photo: PhotoRef,
    /// A reviewer's decision on a flagged check-in (`POST /checkins/{id}/review`), if any.
    pub decision: Option<CheckinDecision>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckinList {
    pub items: Vec<CheckinView>,
    /// More matched than `limit`.
    pub truncated: bool,
}

/// A check-in as a reviewer sees it, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = checkins, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct ViewRow {
    id: String,
    user_id: String,
    kind: String,
    village_code: String,
    captured_at: chrono::NaiveDateTime,
    attendance_date: NaiveDate,
    lat: f64,
    lon: f64,
    accuracy_m: Option<f64>,
    status: String,
    flags: String,
    photo_sha256: String,
}

/// The check-ins of a month in the caller's scope, newest first.
pub fn list(
    conn: &mut DbConnection,
    caller: &Caller,
    f: &Filter,
    flagged: Option<bool>,
    limit: i64,
) -> ApiResult<CheckinList> {
    let mut select = scoped(caller, f);
    match flagged {
        Some(true) => select = select.filter(checkins::status.ne(CheckinStatus::Accepted.as_str())),
        Some(false) => {
            select = select.filter(checkins::status.eq(CheckinStatus::Accepted.as_str()))
        }
        None => {}
    }
    let mut rows: Vec<ViewRow> = select
        .select(ViewRow::as_select())
        .order((checkins::captured_at.desc(), checkins::id))
        .limit(limit + 1)
        .load(conn)?;
    let truncated = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let ids: Vec<&str> = rows.iter().map(|r| r.user_id.as_str()).collect();
    let names: HashMap<String, String> = users::table
        .filter(users::id.eq_any(&ids))
        .select((users::id, users::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let checkin_ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let decided: HashMap<String, String> = checkin_reviews::table
        .filter(checkin_reviews::checkin_id.eq_any(&checkin_ids))
        .select((checkin_reviews::checkin_id, checkin_reviews::decision))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let items = rows
        .into_iter()
        .map(|r| CheckinView {
            decision: decided.get(&r.id).and_then(|d| CheckinDecision::parse(d)),
            id: r.id,
            user_name: names.get(&r.user_id).cloned(),
            user_id: r.user_id,
            kind: CheckinKind::parse(&r.kind).unwrap_or(CheckinKind::ResidentDuty),
            village_code: r.village_code,
            captured_at: r.captured_at.and_utc(),
            attendance_date: r.attendance_date,
            lat: r.lat,
            lon: r.lon,
            accuracy_m: r.accuracy_m,
            // Written by `store::checkin` from the same enum.
            status: CheckinStatus::parse(&r.status).unwrap_or(CheckinStatus::Flagged),
            flags: r.flags.split(',').filter_map(CheckinFlag::parse).collect(),
            photo: PhotoRef::new(r.photo_sha256),
        })
        .collect();
    Ok(CheckinList { items, truncated })
}

pub fn compute(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &CheckinPolicy,
    caller: &Caller,
    f: &Filter,
) -> ApiResult<Attendance> {
    Ok(detailed(conn, vault, policy, caller, f)?.attendance)
}

/// A person's check-ins of the month, day by day.
struct Days {
    kind: String,
    user_id: String,
    worker_sealed: Option<String>,
    marks: BTreeMap<NaiveDate, DayMark>,
    accepted: BTreeSet<NaiveDate>,
    confirmed: BTreeSet<NaiveDate>,
}

/// The month's check-ins by person and village, each day marked by its best check-in, the
/// reviewers' decisions applied.
fn days_by_person(
    conn: &mut DbConnection,
    caller: &Caller,
    f: &Filter,
) -> ApiResult<BTreeMap<(String, String), Days>> {
    let rows: Vec<Row> = scoped(caller, f).select(Row::as_select()).load(conn)?;
    let decisions: HashMap<String, String> = checkin_reviews::table
        .inner_join(checkins::table)
        .filter(checkins::attendance_date.ge(f.month.first_day()))
        .filter(checkins::attendance_date.le(f.month.last_day()))
        .select((checkin_reviews::checkin_id, checkin_reviews::decision))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let mut by_person: BTreeMap<(String, String), Days> = BTreeMap::new();
    for r in rows {
        let mark = if r.status == CheckinStatus::Accepted.as_str() {
            DayMark::Present
        } else {
            match decisions.get(&r.id).and_then(|d| CheckinDecision::parse(d)) {
                Some(CheckinDecision::Confirm) => DayMark::Present,
                Some(CheckinDecision::Dismiss) => DayMark::Dismissed,
                None => DayMark::Flagged,
            }
        };
        let days = by_person
            .entry((r.subject, r.village_code))
            .or_insert_with(|| Days {
                kind: r.kind,
                user_id: r.user_id,
                worker_sealed: r.worker_id_sealed,
                marks: BTreeMap::new(),
                accepted: BTreeSet::new(),
                confirmed: BTreeSet::new(),
            });
        let best = days.marks.entry(r.attendance_date).or_insert(mark);
        *best = (*best).min(mark);
        if r.status == CheckinStatus::Accepted.as_str() {
            days.accepted.insert(r.attendance_date);
        } else if mark == DayMark::Present {
            days.confirmed.insert(r.attendance_date);
        }
    }
    Ok(by_person)
}

/// The month's attendance with each person's days.
pub fn detailed(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &CheckinPolicy,
    caller: &Caller,
    f: &Filter,
) -> ApiResult<Detailed> {
    let by_person = days_by_person(conn, caller, f)?;
    let users_of: Vec<&str> = by_person.values().map(|d| d.user_id.as_str()).collect();
    let people_users: HashMap<String, (String, String)> = users::table
        .filter(users::id.eq_any(&users_of))
        .select((users::id, users::name, users::role))
        .load::<(String, String, String)>(conn)?
        .into_iter()
        .map(|(id, name, role)| (id, (name, role)))
        .collect();
    let holders = super::expected::post_holders(conn, vault, caller, f)?;
    let holder_of: HashMap<(String, String), super::expected::Expected> = holders
        .iter()
        .map(|h| ((h.subject.clone(), h.village_code.clone()), h.clone()))
        .collect();

    let mut rows: Vec<(PersonAttendance, BTreeMap<NaiveDate, DayMark>)> = Vec::new();
    for ((subject, village), days) in by_person {
        let holder = holder_of.get(&(subject.clone(), village.clone()));
        let person = match subject.strip_prefix("person:") {
            Some(hash) => worker(conn, vault, hash, &days, holder)?,
            None => {
                let (name, role) = people_users.get(&days.user_id).cloned().unzip();
                Identity {
                    user_id: Some(days.user_id.clone()),
                    name,
                    role: role.as_deref().and_then(Role::parse),
                    worker_id_number: None,
                    post: None,
                }
            }
        };
        let kind = CheckinKind::parse(&days.kind).unwrap_or(CheckinKind::ResidentDuty);
        let n_confirmed = days.confirmed.difference(&days.accepted).count();
        rows.push((
            person_row(
                policy,
                subject,
                kind,
                village,
                person,
                &days.marks,
                n_confirmed,
            ),
            days.marks,
        ));
    }
    add_absentees(conn, caller, f, policy, holders, &mut rows)?;
    rows.sort_by(|a, b| {
        (&a.0.village_code, a.0.kind, &a.0.name, &a.0.subject).cmp(&(
            &b.0.village_code,
            b.0.kind,
            &b.0.name,
            &b.0.subject,
        ))
    });
    let (people, days): (Vec<_>, Vec<_>) = rows.into_iter().unzip();
    let (villages, counties) = rollups(&people);
    Ok(Detailed {
        attendance: Attendance {
            month: f.month,
            people,
            villages,
            counties,
        },
        days,
    })
}

/// Who a row is: a field user or a post holder.
struct Identity {
    user_id: Option<String>,
    name: Option<String>,
    role: Option<Role>,
    worker_id_number: Option<String>,
    post: Option<EmploymentStatus>,
}

/// A special-post worker who checked in: named from the ledger if they are on it, else from
/// any survey that lists them.
fn worker(
    conn: &mut DbConnection,
    vault: &Vault,
    hash: &str,
    days: &Days,
    holder: Option<&super::expected::Expected>,
) -> ApiResult<Identity> {
    let name = match holder {
        Some(h) => Some(h.name.clone()),
        None => survey_members::table
            .filter(survey_members::person_id_hash.eq(hash))
            .select(survey_members::name)
            .first(conn)
            .optional()?,
    };
    let masked = days
        .worker_sealed
        .as_deref()
        .and_then(|s| vault.open_id(s).ok())
        .map(|id| id.masked())
        .or_else(|| holder.and_then(|h| h.worker_id_number.clone()));
    Ok(Identity {
        user_id: None,
        name,
        role: None,
        worker_id_number: masked,
        post: holder.and_then(|h| h.post),
    })
}

fn person_row(
    policy: &CheckinPolicy,
    subject: String,
    kind: CheckinKind,
    village: String,
    who: Identity,
    marks: &BTreeMap<NaiveDate, DayMark>,
    days_confirmed: usize,
) -> PersonAttendance {
    let count = |m: DayMark| marks.values().filter(|v| **v == m).count() as u32;
    let days_present = count(DayMark::Present);
    let days_required = policy.required_days(kind, who.role);
    PersonAttendance {
        subject,
        kind,
        user_id: who.user_id,
        name: who.name,
        role: who.role,
        worker_id_number: who.worker_id_number,
        post: who.post,
        village_code: village,
        days_present,
        days_flagged: count(DayMark::Flagged),
        days_confirmed: days_confirmed as u32,
        days_dismissed: count(DayMark::Dismissed),
        days_required,
        requirement_met: days_present >= days_required,
        no_checkins: marks.is_empty(),
    }
}

/// Adds everyone who must check in and has no row: a field user without any check-in in the
/// area (once, in the first of their villages there), a post holder without one in their
/// village.
fn add_absentees(
    conn: &mut DbConnection,
    caller: &Caller,
    f: &Filter,
    policy: &CheckinPolicy,
    holders: Vec<super::expected::Expected>,
    rows: &mut Vec<(PersonAttendance, BTreeMap<NaiveDate, DayMark>)>,
) -> ApiResult<()> {
    let seen_subjects: BTreeSet<String> = rows.iter().map(|r| r.0.subject.clone()).collect();
    let seen: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.0.subject.clone(), r.0.village_code.clone()))
        .collect();
    let users = super::expected::field_users(conn, caller, f)?;
    let absent = users
        .into_iter()
        .map(|(e, _)| e)
        .filter(|e| !seen_subjects.contains(&e.subject))
        .chain(
            holders
                .into_iter()
                .filter(|h| !seen.contains(&(h.subject.clone(), h.village_code.clone()))),
        );
    let none = BTreeMap::new();
    for e in absent {
        let who = Identity {
            user_id: e.user_id,
            name: Some(e.name),
            role: e.role,
            worker_id_number: e.worker_id_number,
            post: e.post,
        };
        rows.push((
            person_row(policy, e.subject, e.kind, e.village_code, who, &none, 0),
            BTreeMap::new(),
        ));
    }
    Ok(())
}

/// Totals per village and per county.
fn rollups(people: &[PersonAttendance]) -> (Vec<Rollup>, Vec<Rollup>) {
    let mut villages: BTreeMap<String, Rollup> = BTreeMap::new();
    let mut counties: BTreeMap<String, Rollup> = BTreeMap::new();
    for p in people {
        let county = format!("{}000000", p.village_code.get(..6).unwrap_or_default());
        for (map, code) in [
            (&mut villages, p.village_code.clone()),
            (&mut counties, county),
        ] {
            let r = map.entry(code.clone()).or_insert_with(|| Rollup {
                code,
                ..Rollup::default()
            });
            r.people += 1;
            r.requirement_met += u32::from(p.requirement_met);
            r.days_present += p.days_present;
            r.days_flagged += p.days_flagged;
            r.no_checkins += u32::from(p.no_checkins);
        }
    }
    (
        villages.into_values().collect(),
        counties.into_values().collect(),
    )
}
