//! Monthly attendance, computed from the raw check-ins: a day counts once however many
//! check-ins it has; a day with only flagged check-ins counts apart.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::policy::CheckinPolicy;
use crate::auth::{Caller, ScopeLevel};
use crate::db::schema::{checkins, survey_members, users};
use crate::db::DbConnection;
use crate::domain::{CheckinFlag, CheckinKind, CheckinStatus, DivisionCode, DivisionLevel, Role};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::privacy::Vault;
use crate::surveys::read::PhotoRef;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttendanceQuery {
    /// `YYYY-MM`.
    pub month: String,
    /// 12-digit village code.
    pub village: Option<String>,
    /// 12-digit county code.
    pub county: Option<String>,
    /// A user id: only that user's own (resident-duty) attendance.
    pub user: Option<String>,
}

pub struct Filter {
    month: String,
    first: NaiveDate,
    next: NaiveDate,
    village: Option<DivisionCode>,
    county: Option<DivisionCode>,
    user: Option<String>,
}

fn bad(field: &str, detail: &str) -> ApiError {
    ApiError::BadRequest {
        code: ErrorCode::InvalidQuery,
        detail: format!("{field}：{detail}"),
        field: Some(field.into()),
    }
}

impl Filter {
    pub fn parse(q: AttendanceQuery, caller: &Caller) -> ApiResult<Self> {
        let first = NaiveDate::parse_from_str(&format!("{}-01", q.month.trim()), "%Y-%m-%d")
            .ok()
            .filter(|_| q.month.trim().len() == 7)
            .ok_or_else(|| bad("month", "须为 YYYY-MM 格式的月份"))?;
        let next = first + chrono::Months::new(1);
        let village = q
            .village
            .as_deref()
            .map(|v| {
                DivisionCode::parse_level(v, DivisionLevel::Village)
                    .map_err(|e| bad("village", &e.message))
            })
            .transpose()?;
        let county = q
            .county
            .as_deref()
            .map(|c| {
                DivisionCode::parse_level(c, DivisionLevel::County)
                    .map_err(|e| bad("county", &e.message))
            })
            .transpose()?;
        if let Some(v) = &village {
            caller.require_village(v)?;
        }
        if let Some(c) = &county {
            caller.require_county(c)?;
        }
        Ok(Self {
            month: first.format("%Y-%m").to_string(),
            first,
            next,
            village,
            county,
            user: q.user,
        })
    }
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
    #[schema(example = "2020-07")]
    pub month: String,
    pub people: Vec<PersonAttendance>,
    pub villages: Vec<Rollup>,
    pub counties: Vec<Rollup>,
}

type Row = (
    String,
    String,
    String,
    String,
    NaiveDate,
    String,
    Option<String>,
);

type Boxed<'a> = checkins::BoxedQuery<'a, <DbConnection as diesel::Connection>::Backend>;

/// The check-ins of the filter's month, inside the caller's scope and the filter.
fn scoped<'a>(caller: &Caller, f: &'a Filter) -> Boxed<'a> {
    let mut select = checkins::table
        .filter(checkins::attendance_date.ge(f.first))
        .filter(checkins::attendance_date.lt(f.next))
        .into_boxed();
    match caller.scope_level() {
        ScopeLevel::City => {}
        ScopeLevel::County => {
            select = select.filter(checkins::village_code.like(caller.county_pattern()));
        }
        ScopeLevel::Villages => {
            let own: Vec<String> = caller
                .village_codes
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect();
            select = select.filter(checkins::village_code.eq_any(own));
        }
    }
    if let Some(v) = &f.village {
        select = select.filter(checkins::village_code.eq(v.as_str().to_owned()));
    }
    if let Some(c) = &f.county {
        select = select.filter(checkins::village_code.like(c.county_pattern()));
    }
    if let Some(user) = &f.user {
        select = select.filter(checkins::subject.eq(format!("user:{user}")));
    }
    select
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckinQuery {
    /// `YYYY-MM`: check-ins whose attendance day falls in the month.
    pub month: String,
    /// 12-digit village code.
    pub village: Option<String>,
    /// 12-digit county code.
    pub county: Option<String>,
    /// A user id: only that user's check-ins.
    pub user: Option<String>,
    /// `true`: only flagged check-ins; `false`: only accepted ones.
    pub flagged: Option<bool>,
    /// At most this many, newest first (1–500, default 100).
    pub limit: Option<i64>,
}

impl CheckinQuery {
    pub fn filter(self, caller: &Caller) -> ApiResult<(Filter, Option<bool>, i64)> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(bad("limit", "须为 1 至 500"));
        }
        let filter = Filter::parse(
            AttendanceQuery {
                month: self.month,
                village: self.village,
                county: self.county,
                user: self.user,
            },
            caller,
        )?;
        Ok((filter, self.flagged, limit))
    }
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

type ViewRow = (
    String,
    String,
    String,
    String,
    chrono::NaiveDateTime,
    NaiveDate,
    f64,
    f64,
    Option<f64>,
    String,
    String,
    String,
);

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
        .select((
            checkins::id,
            checkins::user_id,
            checkins::kind,
            checkins::village_code,
            checkins::captured_at,
            checkins::attendance_date,
            checkins::lat,
            checkins::lon,
            checkins::accuracy_m,
            checkins::status,
            checkins::flags,
            checkins::photo_sha256,
        ))
        .order((checkins::captured_at.desc(), checkins::id))
        .limit(limit + 1)
        .load(conn)?;
    let truncated = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let ids: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let names: HashMap<String, String> = users::table
        .filter(users::id.eq_any(&ids))
        .select((users::id, users::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let items = rows
        .into_iter()
        .map(
            |(
                id,
                user_id,
                kind,
                village_code,
                captured,
                date,
                lat,
                lon,
                acc,
                status,
                flags,
                sha,
            )| {
                CheckinView {
                    id,
                    user_name: names.get(&user_id).cloned(),
                    user_id,
                    kind: CheckinKind::parse(&kind).unwrap_or(CheckinKind::ResidentDuty),
                    village_code,
                    captured_at: captured.and_utc(),
                    attendance_date: date,
                    lat,
                    lon,
                    accuracy_m: acc,
                    // Written by `store::checkin` from the same enum.
                    status: CheckinStatus::parse(&status).unwrap_or(CheckinStatus::Flagged),
                    flags: flags.split(',').filter_map(CheckinFlag::parse).collect(),
                    photo: PhotoRef::new(sha),
                }
            },
        )
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
    let rows: Vec<Row> = scoped(caller, f)
        .select((
            checkins::subject,
            checkins::kind,
            checkins::user_id,
            checkins::village_code,
            checkins::attendance_date,
            checkins::status,
            checkins::worker_id_sealed,
        ))
        .load(conn)?;

    struct Days {
        kind: String,
        user_id: String,
        worker_sealed: Option<String>,
        present: BTreeSet<NaiveDate>,
        seen: BTreeSet<NaiveDate>,
    }
    let mut by_person: BTreeMap<(String, String), Days> = BTreeMap::new();
    for (subject, kind, user_id, village, date, status, worker_sealed) in rows {
        let days = by_person.entry((subject, village)).or_insert_with(|| Days {
            kind,
            user_id,
            worker_sealed,
            present: BTreeSet::new(),
            seen: BTreeSet::new(),
        });
        days.seen.insert(date);
        if status == CheckinStatus::Accepted.as_str() {
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
        month: f.month.clone(),
        people,
        villages: villages.into_values().collect(),
        counties: counties.into_values().collect(),
    })
}
