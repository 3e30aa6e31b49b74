//! Monthly attendance, computed from the raw check-ins: a day counts once however many
//! check-ins it has; a day with only flagged check-ins counts apart.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::policy::CheckinPolicy;
use crate::auth::{Area, Caller};
use crate::db::schema::{checkins, survey_members, users};
use crate::db::DbConnection;
use crate::domain::{CheckinFlag, CheckinKind, CheckinStatus, Month, Role};
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

/// One person's attendance in one village.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonAttendance {
    /// `user:<id>` for resident duty, `person:<keyed hash>` for a special-post worker.
    pub subject: String,
    pub kind: CheckinKind,
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub role: Option<Role>,
    /// A special-post worker's ID number, masked.
    pub worker_id_number: Option<String>,
    pub village_code: String,
    /// Days with at least one accepted check-in.
    pub days_present: u32,
    /// Days with check-ins, all of them flagged.
    pub days_flagged: u32,
    pub days_required: u32,
    pub requirement_met: bool,
}

/// Totals for a village or a county.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Rollup {
    pub code: String,
    pub people: u32,
    pub requirement_met: u32,
    pub days_present: u32,
    pub days_flagged: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Attendance {
    #[schema(value_type = String, example = "2020-07")]
    pub month: Month,
    pub people: Vec<PersonAttendance>,
    pub villages: Vec<Rollup>,
    pub counties: Vec<Rollup>,
}

/// A check-in as attendance counts it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = checkins, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Row {
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
    let items = rows
        .into_iter()
        .map(|r| CheckinView {
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
    let rows: Vec<Row> = scoped(caller, f).select(Row::as_select()).load(conn)?;

    struct Days {
        kind: String,
        user_id: String,
        worker_sealed: Option<String>,
        present: BTreeSet<NaiveDate>,
        seen: BTreeSet<NaiveDate>,
    }
    let mut by_person: BTreeMap<(String, String), Days> = BTreeMap::new();
    for r in rows {
        let date = r.attendance_date;
        let days = by_person
            .entry((r.subject, r.village_code))
            .or_insert_with(|| Days {
                kind: r.kind,
                user_id: r.user_id,
                worker_sealed: r.worker_id_sealed,
                present: BTreeSet::new(),
                seen: BTreeSet::new(),
            });
        days.seen.insert(date);
        if r.status == CheckinStatus::Accepted.as_str() {
            days.present.insert(date);
        }
    }

    let user_ids: Vec<&str> = by_person.values().map(|d| d.user_id.as_str()).collect();
    let people_users: HashMap<String, (String, String)> = users::table
        .filter(users::id.eq_any(&user_ids))
        .select((users::id, users::name, users::role))
        .load::<(String, String, String)>(conn)?
        .into_iter()
        .map(|(id, name, role)| (id, (name, role)))
        .collect();

    let mut people = Vec::new();
    for ((subject, village), days) in by_person {
        let kind = CheckinKind::parse(&days.kind).unwrap_or(CheckinKind::ResidentDuty);
        let (user_id, name, role, worker_id_number) = match subject.strip_prefix("person:") {
            Some(hash) => {
                let name: Option<String> = survey_members::table
                    .filter(survey_members::person_id_hash.eq(hash))
                    .select(survey_members::name)
                    .first(conn)
                    .optional()?;
                let masked = days
                    .worker_sealed
                    .as_deref()
                    .and_then(|s| vault.open_id(s).ok())
                    .map(|id| id.masked());
                (None, name, None, masked)
            }
            None => {
                let (name, role) = people_users.get(&days.user_id).cloned().unzip();
                (
                    Some(days.user_id.clone()),
                    name,
                    role.as_deref().and_then(Role::parse),
                    None,
                )
            }
        };
        let days_present = days.present.len() as u32;
        let days_required = policy.required_days(kind, role);
        people.push(PersonAttendance {
            subject,
            kind,
            user_id,
            name,
            role,
            worker_id_number,
            village_code: village,
            days_present,
            days_flagged: days.seen.difference(&days.present).count() as u32,
            days_required,
            requirement_met: days_present >= days_required,
        });
    }

    let mut villages: BTreeMap<String, Rollup> = BTreeMap::new();
    let mut counties: BTreeMap<String, Rollup> = BTreeMap::new();
    for p in &people {
        let county = format!("{}000000", &p.village_code[..6]);
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
        }
    }
    Ok(Attendance {
        month: f.month,
        people,
        villages: villages.into_values().collect(),
        counties: counties.into_values().collect(),
    })
}
