//! `taizhang seed`: realistic generated survey data at city scale, written straight into the
//! database (not over HTTP), for benchmarks and for trying the ledger. Deterministic from a
//! seed. Households are spread over the 919 villages; each is first surveyed in one of the
//! first months and re-surveyed in later months now and then, with members whose work changes;
//! most surveys are approved, some await review, a few are rejected. Every village files a
//! post-demand survey each month.

use std::collections::BTreeSet;

use chrono::{Duration, NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::db::schema::{
    household_keys, household_surveys, households, people, submissions, survey_members, users,
    village_post_demand, village_surveys, villages,
};
use crate::db::{write_transaction, DbConnection};
use crate::domain::{EmploymentStatus, IdNumber, PostType, TrainingTrade};
use crate::error::ApiError;
use crate::privacy::{Purpose, Vault};
use crate::surveys::identity::KeyKind;

#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub households: usize,
    pub months: usize,
    /// First month, `YYYY-MM`.
    pub start: String,
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

fn months_from(start: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let first = NaiveDate::parse_from_str(&format!("{start}-01"), "%Y-%m-%d")
        .map_err(|_| anyhow::anyhow!("--start must be YYYY-MM"))?;
    (0..count)
        .map(|i| {
            first
                .checked_add_months(chrono::Months::new(i as u32))
                .map(|d| d.format("%Y-%m").to_string())
                .ok_or_else(|| anyhow::anyhow!("month out of range"))
        })
        .collect()
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
                        users::name.eq(format!("造数·{county}入户调查员")),
                        users::role.eq("enumerator"),
                        users::county_code.eq(Some(county)),
                        // Not an Argon2 hash: nobody can log in as a seed user.
                        users::password_hash.eq("!seed"),
                        users::active.eq(false),
                        users::created_at.eq(chrono::Utc::now().naive_utc()),
                    ))
                    .execute(conn)?;
                crate::audit::append(
                    conn,
                    &crate::audit::Entry {
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

/// Writes the data; `progress` is told how many households are done.
pub fn seed(
    conn: &mut DbConnection,
    vault: &Vault,
    options: &SeedOptions,
    mut progress: impl FnMut(usize),
) -> anyhow::Result<Seeded> {
    let months = months_from(&options.start, options.months.max(1))?;
    let all_villages: Vec<(String, String, f64, f64)> = villages::table
        .select((
            villages::code,
            villages::county_code,
            villages::lat,
            villages::lon,
        ))
        .order(villages::code)
        .load(conn)?;
    anyhow::ensure!(
        !all_villages.is_empty(),
        "no villages: run `taizhang migrate` first"
    );
    let counties: BTreeSet<String> = all_villages.iter().map(|v| v.1.clone()).collect();
    let enumerators = seed_users(conn, &counties)?;
    let enumerator_of = |county: &str| {
        enumerators
            .iter()
            .find(|(c, _)| c == county)
            .map(|(_, id)| id.clone())
            .unwrap_or_default()
    };
    let mut rng = StdRng::seed_from_u64(options.seed);
    // Continue the person counter after earlier seed runs.
    let mut person_counter: usize = people::table.count().get_result::<i64>(conn)? as usize;
    let mut done = Seeded::default();
    let surnames = [
        "张", "王", "李", "刘", "陈", "杨", "赵", "黄", "周", "吴", "孙", "马",
    ];
    let given = [
        "国强", "秀兰", "建华", "桂英", "志明", "玉珍", "海峰", "丽娟", "春生", "淑芬",
    ];
    let capacities = ["able", "able", "able", "weak", "lost", "none"];
    let relations = ["spouse", "child", "child", "parent", "grandchild"];

    let mut start = 0;
    while start < options.households {
        let end = (start + BATCH).min(options.households);
        write_transaction(conn, |conn| -> Result<(), ApiError> {
            for _ in start..end {
                let (village, county, lat, lon) =
                    &all_villages[rng.gen_range(0..all_villages.len())];
                let enumerator = enumerator_of(county);
                let size = 1 + [0, 1, 1, 1, 2, 2, 3][rng.gen_range(0..7)];
                let mut members = Vec::with_capacity(size);
                for m in 0..size {
                    person_counter += 1;
                    let id =
                        IdNumber::generated(&county[..6], person_counter as u64).map_err(|e| {
                            ApiError::internal(anyhow::anyhow!(
                                "generated ID number: {}",
                                e.message
                            ))
                        })?;
                    let capacity = capacities[rng.gen_range(0..capacities.len())];
                    let (status, post) = work(&mut rng, capacity);
                    let at_risk = rng.gen_bool(0.012);
                    members.push(Member {
                        hash: vault.index_id(&id),
                        name: format!(
                            "{}{}",
                            surnames[rng.gen_range(0..surnames.len())],
                            given[rng.gen_range(0..given.len())]
                        ),
                        relation: if m == 0 {
                            "head"
                        } else {
                            relations[rng.gen_range(0..relations.len())]
                        },
                        capacity,
                        status,
                        post,
                        wants_post: rng.gen_bool(0.12),
                        trade: rng.gen_bool(0.18).then(|| {
                            TrainingTrade::ALL[rng.gen_range(0..TrainingTrade::ALL.len())]
                        }),
                        at_risk,
                        net: if at_risk && rng.gen_bool(0.7) {
                            "subsistence_allowance"
                        } else {
                            ""
                        },
                        id,
                    });
                }
                for m in &members {
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
                let head_hash = members[0].hash.clone();
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
                        household_keys::value.eq(&head_hash),
                        household_keys::household_id.eq(&household),
                    ))
                    .execute(conn)?;
                done.households += 1;
                done.people += members.len();
                let poverty =
                    ["lifted", "lifted", "lifted", "monitored", "not_lifted"][rng.gen_range(0..5)];
                let relocated = rng.gen_bool(0.08);
                let first_month = rng.gen_range(0..months.len().min(3));
                let mut version = 0;
                for (mi, month) in months.iter().enumerate() {
                    if mi < first_month || (mi > first_month && !rng.gen_bool(0.3)) {
                        continue;
                    }
                    version += 1;
                    // Some people change work between surveys.
                    for m in members.iter_mut() {
                        if rng.gen_bool(0.15) {
                            let (status, post) = work(&mut rng, m.capacity);
                            m.status = status;
                            m.post = post;
                        }
                    }
                    let day = rng.gen_range(1..28);
                    let surveyed_at: NaiveDateTime =
                        NaiveDate::parse_from_str(&format!("{month}-{day:02}"), "%Y-%m-%d")
                            .map_err(ApiError::internal)?
                            .and_hms_opt(
                                rng.gen_range(0..10),
                                rng.gen_range(0..60),
                                rng.gen_range(0..60),
                            )
                            .unwrap_or_default();
                    let received_at = surveyed_at + Duration::hours(rng.gen_range(1..48));
                    let roll = rng.gen_range(0..100);
                    let status = match roll {
                        0..=84 => "approved",
                        85..=92 => "submitted",
                        93..=97 => "rejected",
                        _ => "reopened",
                    };
                    let survey = uuid::Uuid::now_v7().to_string();
                    let body =
                        serde_json::json!({"seeded": true, "household": household, "month": month});
                    diesel::insert_into(submissions::table)
                        .values((
                            submissions::id.eq(&survey),
                            submissions::kind.eq("household_survey"),
                            submissions::user_id.eq(&enumerator),
                            submissions::village_code.eq(village),
                            submissions::content_hash.eq(vault.keyed_hash(survey.as_bytes())),
                            submissions::body_sealed
                                .eq(vault.seal(Purpose::Submission, body.to_string().as_bytes())),
                            submissions::response_status.eq(201),
                            submissions::response.eq("{}"),
                            submissions::received_at.eq(received_at),
                        ))
                        .execute(conn)?;
                    diesel::insert_into(household_surveys::table)
                        .values((
                            (
                                household_surveys::id.eq(&survey),
                                household_surveys::household_id.eq(&household),
                                household_surveys::version.eq(version),
                                household_surveys::village_code.eq(village),
                                household_surveys::enumerator_id.eq(&enumerator),
                                household_surveys::form_version.eq("2020.07"),
                                household_surveys::surveyed_at.eq(surveyed_at - Duration::hours(8)),
                                household_surveys::month.eq(month),
                                household_surveys::received_at.eq(received_at - Duration::hours(8)),
                                household_surveys::household_number.eq(None::<String>),
                                household_surveys::head_name.eq(&members[0].name),
                                household_surveys::head_name_norm.eq(&members[0].name),
                            ),
                            (
                                household_surveys::head_id_hash.eq(&head_hash),
                                household_surveys::head_id_sealed.eq(vault.seal_id(&members[0].id)),
                                household_surveys::poverty_status.eq(poverty),
                                household_surveys::relocated.eq(relocated),
                                household_surveys::phone_sealed.eq(None::<String>),
                                household_surveys::member_count.eq(members.len() as i32),
                                household_surveys::lat.eq(lat + rng.gen_range(-0.01..0.01)),
                                household_surveys::lon.eq(lon + rng.gen_range(-0.01..0.01)),
                                household_surveys::accuracy_m.eq(Some(rng.gen_range(3.0..30.0))),
                                household_surveys::answers_hash
                                    .eq(vault.keyed_hash(format!("{survey}/answers").as_bytes())),
                                household_surveys::status.eq(status),
                                household_surveys::status_changed_at.eq(received_at),
                                household_surveys::review_version.eq(if status == "submitted" {
                                    1
                                } else {
                                    2
                                }),
                            ),
                        ))
                        .execute(conn)?;
                    for (position, m) in members.iter().enumerate() {
                        diesel::insert_into(survey_members::table)
                            .values((
                                survey_members::survey_id.eq(&survey),
                                survey_members::position.eq(position as i32),
                                survey_members::person_id_hash.eq(&m.hash),
                                survey_members::name.eq(&m.name),
                                survey_members::relation.eq(m.relation),
                                survey_members::labour_capacity.eq(m.capacity),
                                survey_members::employment_status.eq(m.status.map(|s| s.as_str())),
                                survey_members::employer_id.eq(None::<String>),
                                survey_members::post_type.eq(m.post.map(|p| p.as_str())),
                                survey_members::monthly_income_yuan
                                    .eq(m.status.map(|_| rng.gen_range(800..6000i64))),
                                survey_members::wants_public_post.eq(m.wants_post),
                                survey_members::training_wanted.eq(m.trade.is_some()),
                                survey_members::training_trade.eq(m.trade.map(|t| t.as_str())),
                                survey_members::at_risk.eq(m.at_risk),
                                survey_members::safety_net.eq(m.net),
                            ))
                            .execute(conn)?;
                        done.members += 1;
                    }
                    done.surveys += 1;
                }
            }
            Ok(())
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        start = end;
        progress(start);
    }

    // Post-demand surveys: every village, every month.
    write_transaction(conn, |conn| -> Result<(), ApiError> {
        for (village, county, _, _) in &all_villages {
            let enumerator = enumerator_of(county);
            for month in &months {
                let survey = uuid::Uuid::now_v7().to_string();
                let at = NaiveDate::parse_from_str(&format!("{month}-25"), "%Y-%m-%d")
                    .map_err(ApiError::internal)?
                    .and_hms_opt(2, 0, 0)
                    .unwrap_or_default();
                diesel::insert_into(submissions::table)
                    .values((
                        submissions::id.eq(&survey),
                        submissions::kind.eq("village_survey"),
                        submissions::user_id.eq(&enumerator),
                        submissions::village_code.eq(village),
                        submissions::content_hash.eq(vault.keyed_hash(survey.as_bytes())),
                        submissions::body_sealed
                            .eq(vault.seal(Purpose::Submission, b"{\"seeded\":true}")),
                        submissions::response_status.eq(201),
                        submissions::response.eq("{}"),
                        submissions::received_at.eq(at),
                    ))
                    .execute(conn)?;
                diesel::insert_into(village_surveys::table)
                    .values((
                        village_surveys::id.eq(&survey),
                        village_surveys::village_code.eq(village),
                        village_surveys::month.eq(month),
                        village_surveys::surveyor_id.eq(&enumerator),
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
                done.village_surveys += 1;
            }
        }
        // Every village's figures changed.
        let codes: BTreeSet<String> = all_villages.iter().map(|v| v.0.clone()).collect();
        super::cache::touch_villages(conn, &codes)?;
        Ok(())
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(done)
}
