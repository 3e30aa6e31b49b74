//! `taizhang seed` and `serve --demo`'s surveys: realistic generated survey data at city scale,
//! written straight into the database (not over HTTP), for benchmarks and for trying the ledger.
//! Deterministic from a seed. Households are spread over the 919 villages; each is first surveyed in one of the
//! first months and re-surveyed in later months now and then, with members whose work changes;
//! most surveys are approved, some await review, a few are rejected. Every village files a
//! post-demand survey each month.

use std::collections::{BTreeSet, HashSet};

use chrono::{Datelike, Duration, NaiveDateTime};
use diesel::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use taizhang_core::db::schema::{
    household_keys, household_surveys, households, people, submissions, survey_members, users,
    village_post_demand, village_surveys, villages,
};
use taizhang_core::db::{write_transaction, DbConnection};
use taizhang_core::domain::{EmploymentStatus, IdNumber, Month, PostType, Sex, TrainingTrade};
use taizhang_core::error::ApiError;
use taizhang_core::privacy::{Purpose, Vault};
use taizhang_core::surveys::identity::KeyKind;

#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub households: usize,
    pub months: usize,
    /// First month.
    pub start: Month,
    pub seed: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Seeded {
    pub households: usize,
    pub people: usize,
    pub surveys: usize,
    pub members: usize,
    pub village_surveys: usize,
}

/// Households written per transaction.
const BATCH: usize = 200;

/// `count` months from `start` on.
fn months_from(start: Month, count: usize) -> Vec<Month> {
    std::iter::successors(Some(start), |m| Some(m.next()))
        .take(count)
        .collect()
}

/// The last of the `count` months from `start` on (`start` itself when `count` is 0).
pub fn last_month(start: Month, count: usize) -> Month {
    months_from(start, count.max(1))
        .last()
        .copied()
        .unwrap_or(start)
}

/// A village households are drawn into.
#[derive(Queryable, Selectable)]
#[diesel(table_name = villages, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct SeedVillage {
    code: String,
    county_code: String,
    lat: f64,
    lon: f64,
}

/// What every household of a run draws from.
struct Run<'a> {
    vault: &'a Vault,
    months: &'a [Month],
    villages: &'a [SeedVillage],
    /// (county code, seed enumerator id).
    enumerators: &'a [(String, String)],
    /// The demo employer registry members name.
    employers: &'a crate::employers::DemoEmployers,
    /// Now, in UTC: nothing generated is dated after it.
    now: NaiveDateTime,
}

impl Run<'_> {
    fn enumerator_of(&self, county: &str) -> String {
        self.enumerators
            .iter()
            .find(|(c, _)| c == county)
            .map(|(_, id)| id.clone())
            .unwrap_or_default()
    }
}

/// A person's name for the `i`-th seed enumerator.
fn staff_name(i: usize) -> String {
    let mut rng = StdRng::seed_from_u64(0x5eed_0000 + i as u64);
    let sex = if rng.gen_bool(0.7) {
        Sex::Male
    } else {
        Sex::Female
    };
    let name = crate::people::name(sex, None, &mut roll(&mut rng));
    name
}

/// The seed users who "made" the surveys: one enumerator per county (they cannot log in).
fn seed_users(
    conn: &mut DbConnection,
    counties: &BTreeSet<String>,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, county) in counties.iter().enumerate() {
        let phone = format!("1990000{:04}", i + 1);
        let existing: Option<String> = users::table
            .filter(users::phone.eq(&phone))
            .select(users::id)
            .first(conn)
            .optional()?;
        let id = match existing {
            Some(id) => id,
            None => {
                let id = uuid::Uuid::now_v7().to_string();
                diesel::insert_into(users::table)
                    .values((
                        users::id.eq(&id),
                        users::phone.eq(&phone),
                        users::name.eq(staff_name(i)),
                        users::role.eq("enumerator"),
                        users::county_code.eq(Some(county)),
                        // Not an Argon2 hash: nobody can log in as a seed user.
                        users::password_hash.eq("!seed"),
                        users::active.eq(false),
                        users::created_at.eq(chrono::Utc::now().naive_utc()),
                    ))
                    .execute(conn)?;
                taizhang_core::audit::append(
                    conn,
                    &taizhang_core::audit::Entry {
                        user_id: &id,
                        action: "create_user",
                        subject_type: "user",
                        subject_id: &id,
                        to_state: Some("enumerator"),
                        detail: Some(&format!(
                            "县（市、区）{county}；taizhang seed 生成的调查员（不能登录）"
                        )),
                        ..Default::default()
                    },
                )?;
                id
            }
        };
        out.push((county.clone(), id));
    }
    Ok(out)
}

struct Member {
    id: IdNumber,
    hash: String,
    name: String,
    relation: &'static str,
    capacity: &'static str,
    status: Option<EmploymentStatus>,
    post: Option<PostType>,
    wants_post: bool,
    trade: Option<TrainingTrade>,
    at_risk: bool,
    net: &'static str,
}

fn work(rng: &mut StdRng, capacity: &str) -> (Option<EmploymentStatus>, Option<PostType>) {
    if capacity != "able" && capacity != "weak" {
        return (None, None);
    }
    // Roughly the seed's picture: most work away or in the county, some on posts.
    let weights: [(EmploymentStatus, u32); 15] = [
        (EmploymentStatus::OutOfProvince, 22),
        (EmploymentStatus::InProvinceOutOfCounty, 14),
        (EmploymentStatus::InCounty, 14),
        (EmploymentStatus::SpecialPost, 3),
        (EmploymentStatus::TemporaryPublicPost, 1),
        (EmploymentStatus::PublicWelfarePost, 6),
        (EmploymentStatus::Workshop, 2),
        (EmploymentStatus::LeadingEnterprise, 3),
        (EmploymentStatus::Cooperative, 3),
        (EmploymentStatus::HomeBased, 4),
        (EmploymentStatus::SelfEmployed, 4),
        (EmploymentStatus::Farming, 16),
        (EmploymentStatus::Student, 2),
        (EmploymentStatus::Unemployed, 5),
        (EmploymentStatus::NotApplicable, 1),
    ];
    let total: u32 = weights.iter().map(|w| w.1).sum();
    let mut pick = rng.gen_range(0..total);
    let mut status = EmploymentStatus::Farming;
    for (s, w) in weights {
        if pick < w {
            status = s;
            break;
        }
        pick -= w;
    }
    let post = (status == EmploymentStatus::PublicWelfarePost)
        .then(|| PostType::ALL[rng.gen_range(0..PostType::ALL.len())]);
    (Some(status), post)
}

/// Generates `households` households' surveys over the last three months when the database has
/// no household survey yet, so that `serve --demo` has a review queue and a ledger to show.
/// Deterministic; most surveys approved, about one in twelve awaiting review.
pub fn ensure_demo_surveys(
    conn: &mut DbConnection,
    keys: &taizhang_core::secrets::Keys,
    households: usize,
) -> anyhow::Result<Option<Seeded>> {
    let any: i64 = household_surveys::table.count().get_result(conn)?;
    if any > 0 {
        return Ok(None);
    }
    let options = SeedOptions {
        households,
        months: 3,
        start: Month::containing(taizhang_core::domain::time::today())
            .previous()
            .previous(),
        seed: 2020,
    };
    let vault = Vault::new(keys);
    let seeded = seed(conn, &vault, &options, |_| {})?;
    Ok(Some(seeded))
}

/// Writes the data; `progress` is told how many households are done.
pub fn seed(
    conn: &mut DbConnection,
    vault: &Vault,
    options: &SeedOptions,
    mut progress: impl FnMut(usize),
) -> anyhow::Result<Seeded> {
    let now = chrono::Utc::now().naive_utc();
    // Months that have begun (in Beijing time) only: nothing is dated in the future.
    let today = taizhang_core::domain::time::today();
    let months: Vec<Month> = months_from(options.start, options.months.max(1))
        .into_iter()
        .filter(|m| m.first_day() <= today)
        .collect();
    anyhow::ensure!(
        !months.is_empty(),
        "the first month {} has not begun yet",
        options.start
    );
    let all_villages: Vec<SeedVillage> = villages::table
        .select(SeedVillage::as_select())
        .order(villages::code)
        .load(conn)?;
    anyhow::ensure!(
        !all_villages.is_empty(),
        "no villages: run `taizhang migrate` first"
    );
    let counties: BTreeSet<String> = all_villages.iter().map(|v| v.county_code.clone()).collect();
    let enumerators = seed_users(conn, &counties)?;
    let employers = write_transaction(conn, |conn| {
        crate::employers::ensure(conn, options.households, options.seed)
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let run = Run {
        employers: &employers,
        vault,
        months: &months,
        villages: &all_villages,
        enumerators: &enumerators,
        now,
    };
    let mut rng = StdRng::seed_from_u64(options.seed);
    // Continue after earlier seed runs, clear of the numbers they gave.
    let earlier: i64 = people::table.count().get_result(conn)?;
    let mut counter = People {
        counter: earlier as u64,
        taken: if earlier > 0 {
            people::table
                .select(people::id_hash)
                .load::<String>(conn)?
                .into_iter()
                .collect()
        } else {
            HashSet::new()
        },
    };
    let mut done = Seeded::default();
    let mut start = 0;
    while start < options.households {
        let end = (start + BATCH).min(options.households);
        write_transaction(conn, |conn| -> Result<(), ApiError> {
            for _ in start..end {
                household(conn, &run, &mut rng, &mut counter, &mut done)?;
            }
            Ok(())
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        start = end;
        progress(start);
    }
    write_transaction(conn, |conn| {
        village_surveys(conn, &run, &mut rng, &mut done)
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(done)
}

/// Relations of the members after the head and the spouse.
const RELATIONS: [&str; 5] = ["child", "child", "child", "parent", "grandchild"];

/// Uniform draws from `lo..=hi`, for [`people`].
fn roll(rng: &mut StdRng) -> impl FnMut(u32, u32) -> u32 + '_ {
    move |lo, hi| rng.gen_range(lo..=hi)
}

/// Labour capacity as age allows: children and the very old have none.
fn capacity_at(rng: &mut StdRng, age: u32) -> &'static str {
    match age {
        0..=15 => "none",
        16..=59 => ["able", "able", "able", "able", "weak", "lost"][rng.gen_range(0..6)],
        60..=69 => ["able", "weak", "weak", "lost"][rng.gen_range(0..4)],
        _ => ["weak", "lost", "none"][rng.gen_range(0..3)],
    }
}

/// One household: a village, its members (new people), its first survey month and the surveys
/// of that month and, now and then, of later months.
fn household(
    conn: &mut DbConnection,
    run: &Run<'_>,
    rng: &mut StdRng,
    counter: &mut People,
    done: &mut Seeded,
) -> Result<(), ApiError> {
    let village = &run.villages[rng.gen_range(0..run.villages.len())];
    let enumerator = run.enumerator_of(&village.county_code);
    let size = 1 + [0, 1, 1, 1, 2, 2, 3][rng.gen_range(0..7)];
    // Ages as of the first month surveyed.
    let on = run.months[0].first_day();
    let head = crate::people::head(&mut roll(rng));
    let mut drawn = vec![head];
    for m in 1..size {
        let relation = if m == 1 && rng.gen_bool(0.85) {
            "spouse"
        } else {
            RELATIONS[rng.gen_range(0..RELATIONS.len())]
        };
        drawn.push(crate::people::relative(relation, &head, &mut roll(rng)));
    }
    let mut members = Vec::with_capacity(size);
    let mut head_surname = String::new();
    for d in &drawn {
        // Children and the head's father carry the head's surname when the head is a man.
        let inherits = head.sex == Sex::Male
            && (matches!(d.relation, "child" | "grandchild")
                || (d.relation == "parent" && d.sex == Sex::Male));
        let surname = (inherits && !head_surname.is_empty()).then_some(head_surname.as_str());
        let member = draw_member(rng, run, &village.county_code, d, surname, on, counter)?;
        if d.relation == "head" {
            head_surname = member.name.chars().take(1).collect();
        }
        members.push(member);
    }
    let household = insert_household(conn, run.vault, &village.code, &members)?;
    done.households += 1;
    done.people += members.len();
    let poverty = ["lifted", "lifted", "lifted", "monitored", "not_lifted"][rng.gen_range(0..5)];
    let relocated = rng.gen_bool(0.08);
    let first_month = rng.gen_range(0..run.months.len().min(3));
    let mut version = 0;
    for (mi, month) in run.months.iter().enumerate() {
        if mi < first_month || (mi > first_month && !rng.gen_bool(0.3)) {
            continue;
        }
        version += 1;
        // Some people change work between surveys.
        for m in members.iter_mut() {
            if rng.gen_bool(0.15) {
                let (status, post) = work(rng, m.capacity);
                m.status = status;
                m.post = post;
            }
        }
        let survey = SeedSurvey {
            household: &household,
            village,
            enumerator: &enumerator,
            version,
            month: *month,
            poverty,
            relocated,
            employers: run.employers,
            now: run.now,
        };
        insert_survey(conn, run.vault, rng, &survey, &members, done)?;
    }
    Ok(())
}

/// The people generated so far: a counter that makes their ID numbers, and the keyed hashes
/// taken (the database's, on an `--append` run), so that no two share a number.
struct People {
    counter: u64,
    taken: HashSet<String>,
}

/// A member as drawn (the head first), with a name and an ID number no one else has.
fn draw_member(
    rng: &mut StdRng,
    run: &Run<'_>,
    county: &str,
    drawn: &crate::people::Drawn,
    surname: Option<&str>,
    on: chrono::NaiveDate,
    generated: &mut People,
) -> Result<Member, ApiError> {
    let (id, hash) = loop {
        generated.counter += 1;
        let id = crate::people::id_number(&county[..6], drawn, on, generated.counter)
            .map_err(ApiError::internal)?;
        let hash = run.vault.index_id(&id);
        if generated.taken.insert(hash.clone()) {
            break (id, hash);
        }
    };
    let name = crate::people::name(drawn.sex, surname, &mut roll(rng));
    let capacity = capacity_at(rng, drawn.age);
    let (status, post) = work(rng, capacity);
    let at_risk = rng.gen_bool(0.012);
    // The fields draw in the order written here: keep it, the data depends on it.
    Ok(Member {
        hash,
        name,
        relation: drawn.relation,
        capacity,
        status,
        post,
        wants_post: status.is_some() && rng.gen_bool(0.12),
        trade: (matches!(capacity, "able" | "weak") && rng.gen_bool(0.18))
            .then(|| TrainingTrade::ALL[rng.gen_range(0..TrainingTrade::ALL.len())]),
        at_risk,
        net: if at_risk && rng.gen_bool(0.7) {
            "subsistence_allowance"
        } else {
            ""
        },
        id,
    })
}

/// The people, the household and its head's identity key; returns the household's id.
fn insert_household(
    conn: &mut DbConnection,
    vault: &Vault,
    village: &str,
    members: &[Member],
) -> Result<String, ApiError> {
    for m in members {
        diesel::insert_into(people::table)
            .values((
                people::id_hash.eq(&m.hash),
                people::id_sealed.eq(vault.seal_id(&m.id)),
                people::sex.eq(m.id.sex().as_str()),
                people::birth_date.eq(m.id.birth_date()),
            ))
            .execute(conn)?;
    }
    let household = uuid::Uuid::now_v7().to_string();
    diesel::insert_into(households::table)
        .values((
            households::id.eq(&household),
            households::village_code.eq(village),
            households::created_at.eq(chrono::Utc::now().naive_utc()),
        ))
        .execute(conn)?;
    diesel::insert_into(household_keys::table)
        .values((
            household_keys::county_code.eq(format!("{}000000", &village[..6])),
            household_keys::kind.eq(KeyKind::HeadId.as_str()),
            household_keys::value.eq(&members[0].hash),
            household_keys::household_id.eq(&household),
        ))
        .execute(conn)?;
    Ok(household)
}

/// One survey of a household, before its times and status are drawn.
struct SeedSurvey<'a> {
    household: &'a str,
    village: &'a SeedVillage,
    enumerator: &'a str,
    version: i32,
    month: Month,
    poverty: &'static str,
    relocated: bool,
    employers: &'a crate::employers::DemoEmployers,
    now: NaiveDateTime,
}

/// A household survey: its submission, the survey row and its member rows. Draws the survey's
/// times, status, position and incomes.
fn insert_survey(
    conn: &mut DbConnection,
    vault: &Vault,
    rng: &mut StdRng,
    s: &SeedSurvey<'_>,
    members: &[Member],
    done: &mut Seeded,
) -> Result<(), ApiError> {
    // A working day's hour in Beijing time (UTC+8), no later than now.
    let now_local = now_in_china(s.now);
    let last_day = if Month::containing(now_local.date()) == s.month {
        now_local.day().min(28)
    } else {
        28
    };
    let day = rng.gen_range(1..=last_day);
    let local: NaiveDateTime = s
        .month
        .first_day()
        .with_day(day)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("day {day} of {}", s.month)))?
        .and_hms_opt(
            rng.gen_range(8..18),
            rng.gen_range(0..60),
            rng.gen_range(0..60),
        )
        .unwrap_or_default();
    let surveyed_at =
        (local - Duration::hours(8)).min(s.now - Duration::minutes(rng.gen_range(90..600)));
    let received_at = (surveyed_at + Duration::minutes(rng.gen_range(20..2880))).min(s.now);
    let roll = rng.gen_range(0..100);
    let status = match roll {
        0..=84 => "approved",
        85..=92 => "submitted",
        93..=97 => "rejected",
        _ => "reopened",
    };
    let survey = uuid::Uuid::now_v7().to_string();
    let body = serde_json::json!({"seeded": true, "household": s.household, "month": s.month});
    let village = &s.village.code;
    diesel::insert_into(submissions::table)
        .values((
            submissions::id.eq(&survey),
            submissions::kind.eq("household_survey"),
            submissions::user_id.eq(s.enumerator),
            submissions::village_code.eq(village),
            submissions::content_hash.eq(vault.keyed_hash(survey.as_bytes())),
            submissions::body_sealed
                .eq(vault.seal(Purpose::Submission, body.to_string().as_bytes())),
            submissions::response_status.eq(201),
            submissions::response.eq("{}"),
            submissions::received_at.eq(received_at),
        ))
        .execute(conn)?;
    let head = &members[0];
    // The position and accuracy draw in the order written here (lat, lon, accuracy).
    diesel::insert_into(household_surveys::table)
        .values((
            (
                household_surveys::id.eq(&survey),
                household_surveys::household_id.eq(s.household),
                household_surveys::version.eq(s.version),
                household_surveys::village_code.eq(village),
                household_surveys::enumerator_id.eq(s.enumerator),
                household_surveys::form_version.eq("2020.07"),
                household_surveys::surveyed_at.eq(surveyed_at),
                household_surveys::month.eq(s.month.to_string()),
                household_surveys::received_at.eq(received_at),
                household_surveys::household_number.eq(None::<String>),
                household_surveys::head_name.eq(&head.name),
                household_surveys::head_name_norm.eq(&head.name),
            ),
            (
                household_surveys::head_id_hash.eq(&head.hash),
                household_surveys::head_id_sealed.eq(vault.seal_id(&head.id)),
                household_surveys::poverty_status.eq(s.poverty),
                household_surveys::relocated.eq(s.relocated),
                household_surveys::phone_sealed.eq(None::<String>),
                household_surveys::member_count.eq(members.len() as i32),
                household_surveys::lat.eq(s.village.lat + rng.gen_range(-0.01..0.01)),
                household_surveys::lon.eq(s.village.lon + rng.gen_range(-0.01..0.01)),
                household_surveys::accuracy_m.eq(Some(rng.gen_range(3.0..30.0))),
                household_surveys::answers_hash
                    .eq(vault.keyed_hash(format!("{survey}/answers").as_bytes())),
                household_surveys::status.eq(status),
                household_surveys::status_changed_at.eq(received_at),
                household_surveys::review_version.eq(if status == "submitted" { 1 } else { 2 }),
            ),
        ))
        .execute(conn)?;
    for (position, m) in members.iter().enumerate() {
        let employer = s.employers.pick(&s.village.county_code, m.status, &m.hash);
        insert_member(conn, rng, &survey, position, m, employer)?;
        done.members += 1;
    }
    done.surveys += 1;
    Ok(())
}

/// A member row of a survey; draws the member's income when they work.
fn insert_member(
    conn: &mut DbConnection,
    rng: &mut StdRng,
    survey: &str,
    position: usize,
    m: &Member,
    employer: Option<String>,
) -> Result<(), ApiError> {
    diesel::insert_into(survey_members::table)
        .values((
            survey_members::survey_id.eq(survey),
            survey_members::position.eq(position as i32),
            survey_members::person_id_hash.eq(&m.hash),
            survey_members::name.eq(&m.name),
            survey_members::relation.eq(m.relation),
            survey_members::labour_capacity.eq(m.capacity),
            survey_members::employment_status.eq(m.status.map(|s| s.as_str())),
            survey_members::employer_id.eq(employer),
            survey_members::post_type.eq(m.post.map(|p| p.as_str())),
            survey_members::monthly_income_yuan.eq(m.status.map(|_| rng.gen_range(800..6000i64))),
            survey_members::wants_public_post.eq(m.wants_post),
            survey_members::training_wanted.eq(m.trade.is_some()),
            survey_members::training_trade.eq(m.trade.map(|t| t.as_str())),
            survey_members::at_risk.eq(m.at_risk),
            survey_members::safety_net.eq(m.net),
        ))
        .execute(conn)?;
    Ok(())
}

/// Post-demand surveys: every village, every month; then every village's figures changed.
fn village_surveys(
    conn: &mut DbConnection,
    run: &Run<'_>,
    rng: &mut StdRng,
    done: &mut Seeded,
) -> Result<(), ApiError> {
    for village in run.villages {
        let enumerator = run.enumerator_of(&village.county_code);
        for month in run.months {
            village_survey(conn, run, rng, &village.code, &enumerator, *month)?;
            done.village_surveys += 1;
        }
    }
    let codes: BTreeSet<String> = run.villages.iter().map(|v| v.code.clone()).collect();
    taizhang_core::ledger::cache::touch_villages(
        conn,
        &codes,
        taizhang_core::ledger::cache::Affected::All,
    )?;
    Ok(())
}

/// Beijing time (UTC+8) of a UTC time.
fn now_in_china(utc: NaiveDateTime) -> NaiveDateTime {
    utc + Duration::hours(8)
}

/// One village's post-demand survey of `month`, filed on the 25th (or earlier, if the 25th has
/// not come yet).
fn village_survey(
    conn: &mut DbConnection,
    run: &Run<'_>,
    rng: &mut StdRng,
    village: &str,
    enumerator: &str,
    month: Month,
) -> Result<(), ApiError> {
    let vault = run.vault;
    let survey = uuid::Uuid::now_v7().to_string();
    let at = month
        .first_day()
        .with_day(25)
        .and_then(|d| d.and_hms_opt(2, 0, 0))
        .unwrap_or_default()
        .min(run.now - Duration::minutes(rng.gen_range(30..240)));
    diesel::insert_into(submissions::table)
        .values((
            submissions::id.eq(&survey),
            submissions::kind.eq("village_survey"),
            submissions::user_id.eq(enumerator),
            submissions::village_code.eq(village),
            submissions::content_hash.eq(vault.keyed_hash(survey.as_bytes())),
            submissions::body_sealed.eq(vault.seal(Purpose::Submission, b"{\"seeded\":true}")),
            submissions::response_status.eq(201),
            submissions::response.eq("{}"),
            submissions::received_at.eq(at),
        ))
        .execute(conn)?;
    diesel::insert_into(village_surveys::table)
        .values((
            village_surveys::id.eq(&survey),
            village_surveys::village_code.eq(village),
            village_surveys::month.eq(month.to_string()),
            village_surveys::surveyor_id.eq(enumerator),
            village_surveys::surveyed_at.eq(at),
            village_surveys::received_at.eq(at),
            village_surveys::willing_people.eq(rng.gen_range(0..12)),
            village_surveys::lat.eq(None::<f64>),
            village_surveys::lon.eq(None::<f64>),
            village_surveys::accuracy_m.eq(None::<f64>),
            village_surveys::status.eq("submitted"),
            village_surveys::status_changed_at.eq(at),
        ))
        .execute(conn)?;
    for post in [
        PostType::Cleaner,
        PostType::ForestRanger,
        PostType::RoadKeeper,
    ] {
        let needed = rng.gen_range(0..5);
        diesel::insert_into(village_post_demand::table)
            .values((
                village_post_demand::survey_id.eq(&survey),
                village_post_demand::post_type.eq(post.as_str()),
                village_post_demand::needed.eq(needed),
                village_post_demand::filled.eq(rng.gen_range(0..=needed)),
            ))
            .execute(conn)?;
    }
    Ok(())
}
