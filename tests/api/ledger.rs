//! The ledger against the truth: generated households surveyed over three months, decided by
//! reviewers, corrected, merged and moved between households; every figure of every node and
//! month must equal a recomputation written plainly here from what the test itself sent. Then
//! a month is closed and must stay frozen while later changes show in the next month.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;
use reqwest::Response;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::surveys::{id_number, new_id};

const MONTHS: [&str; 3] = ["2020-05", "2020-06", "2020-07"];
/// Two villages in each of two counties, each with its enumerator and reviewer.
const VILLAGES: [(&str, usize); 4] = [
    ("220802100200", 0),
    ("220802100201", 0),
    ("220881100200", 1),
    ("220881100201", 1),
];
const CAPACITIES: [&str; 4] = ["able", "weak", "lost", "none"];
const STATUSES: [&str; 15] = [
    "out_of_province",
    "in_province_out_of_county",
    "in_county",
    "special_post",
    "temporary_public_post",
    "public_welfare_post",
    "workshop",
    "leading_enterprise",
    "cooperative",
    "home_based",
    "self_employed",
    "farming",
    "student",
    "unemployed",
    "not_applicable",
];
const POSTS: [&str; 7] = [
    "cleaner",
    "forest_ranger",
    "road_keeper",
    "water_keeper",
    "safety_patrol",
    "village_assistant",
    "other",
];
const TRADES: [&str; 4] = ["electrician", "cook", "e_commerce", "livestock"];
const NETS: [&str; 4] = [
    "subsistence_allowance",
    "temporary_relief",
    "special_post",
    "temporary_post",
];
const POVERTY: [&str; 3] = ["lifted", "not_lifted", "monitored"];

/// A small deterministic generator (xorshift), so the data is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len())]
    }
}

/// A person as the test knows them.
#[derive(Clone)]
pub struct Person {
    pub id: String,
    pub name: String,
}

/// What a member's survey said about them.
#[derive(Clone, Debug)]
struct MemberFacts {
    person: String,
    capacity: String,
    status: Option<String>,
    post: Option<String>,
    wants_post: bool,
    trade: Option<String>,
    at_risk: bool,
    nets: usize,
}

/// A household survey the test sent, and where it stands.
#[derive(Clone, Debug)]
struct Sent {
    id: String,
    household: String,
    village: String,
    month: String,
    /// Sent in time order: later is larger.
    order: usize,
    status: String,
    poverty: String,
    relocated: bool,
    members: Vec<MemberFacts>,
}

/// A village post-demand survey: village, month, order, posts (type, needed, filled), willing.
type VillageSent = (String, String, usize, Vec<(String, i64, i64)>, i64);

struct Model {
    surveys: Vec<Sent>,
    village_surveys: Vec<VillageSent>,
}

fn member_json(rng: &mut Rng, person: &Person, relation: &str) -> (Value, MemberFacts) {
    let id = &person.id;
    let birth = format!("{}-{}-{}", &id[6..10], &id[10..12], &id[12..14]);
    let sex = if (id.as_bytes()[16] - b'0') % 2 == 1 {
        "male"
    } else {
        "female"
    };
    let capacity = rng.pick(&CAPACITIES);
    let labour = capacity == "able" || capacity == "weak";
    let status = labour.then(|| rng.pick(&STATUSES));
    let post = (status == Some("public_welfare_post")).then(|| rng.pick(&POSTS));
    let employment = match status {
        Some(s) => {
            json!({"status": s, "employer_id": null, "post_type": post, "monthly_income_yuan": 1500})
        }
        None => Value::Null,
    };
    let trade = rng.chance(30).then(|| rng.pick(&TRADES));
    let at_risk = rng.chance(20);
    let nets: Vec<&str> = if at_risk && rng.chance(50) {
        vec![rng.pick(&NETS)]
    } else {
        Vec::new()
    };
    let wants_post = rng.chance(25);
    let value = json!({
        "name": person.name, "id_number": id, "sex": sex, "birth_date": birth, "relation": relation,
        "labour_capacity": capacity, "employment": employment, "wants_public_post": wants_post,
        "training": {"wanted": trade.is_some(), "trade": trade}, "at_risk": at_risk, "safety_net": nets
    });
    let facts = MemberFacts {
        person: id.clone(),
        capacity: capacity.into(),
        status: status.map(str::to_owned),
        post: post.map(str::to_owned),
        wants_post,
        trade: trade.map(str::to_owned),
        at_risk,
        nets: nets.len(),
    };
    (value, facts)
}

#[allow(clippy::too_many_arguments)]
fn survey_json(
    rng: &mut Rng,
    village: &str,
    month: &str,
    order: usize,
    head: &Person,
    others: &[Person],
    replaces: Option<&str>,
) -> (Value, Vec<MemberFacts>, String, bool) {
    let mut members = Vec::new();
    let mut facts = Vec::new();
    let (m, f) = member_json(rng, head, "head");
    members.push(m);
    facts.push(f);
    for p in others {
        let (m, f) = member_json(rng, p, "child");
        members.push(m);
        facts.push(f);
    }
    let poverty = rng.pick(&POVERTY).to_owned();
    let relocated = rng.chance(20);
    // Distinct times, increasing with `order` (seven minutes apart), inside the month.
    let start =
        chrono::NaiveDateTime::parse_from_str(&format!("{month}-01 08:00"), "%Y-%m-%d %H:%M")
            .expect("month start");
    let surveyed_at = (start + chrono::Duration::minutes(7 * order as i64))
        .format("%Y-%m-%dT%H:%M:00+08:00")
        .to_string();
    let body = json!({
        "submission_id": new_id(),
        "form_version": "2020.07",
        "village_code": village,
        "surveyed_at": surveyed_at,
        "location": {"lat": 45.6, "lon": 122.8, "accuracy_m": 10.0, "crs": "wgs84"},
        "household": {"household_number": null, "head_name": head.name,
                      "head_id_number": head.id,
                      "poverty_status": poverty, "relocated": relocated, "phone": null},
        "members": members,
        "photos": [],
        "replaces": replaces,
        "device": {"device_id": "ledger-test", "app_version": "1.0.0"}
    });
    (body, facts, poverty, relocated)
}

async fn send(app: &TestApp, token: &str, path: &str, body: &Value) -> Value {
    let response: Response = app
        .post(path)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("post");
    let status = response.status();
    let answer: Value = response.json().await.expect("json");
    assert!(status.is_success(), "{path}: {status} {answer}");
    answer
}

async fn decide(app: &TestApp, token: &str, id: &str, decision: &str) {
    send(
        app,
        token,
        &format!("/api/v1/surveys/{id}/review"),
        &json!({"decision": decision, "reason": "核查"}),
    )
    .await;
}

/// The figures, recomputed plainly from what was sent: per village, then summed.
fn truth(model: &Model, month: &str, basis: &[&str]) -> BTreeMap<String, BTreeMap<String, i64>> {
    let mut out: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let add = |out: &mut BTreeMap<String, BTreeMap<String, i64>>, village: &str, key: String| {
        *out.entry(village.to_owned())
            .or_default()
            .entry(key)
            .or_insert(0) += 1;
    };
    // Each household's latest counted survey as of the month's end.
    let mut latest: HashMap<&str, &Sent> = HashMap::new();
    for s in &model.surveys {
        if s.month.as_str() > month || !basis.contains(&s.status.as_str()) {
            continue;
        }
        let newer = latest
            .get(s.household.as_str())
            .is_none_or(|l| l.order < s.order);
        if newer {
            latest.insert(&s.household, s);
        }
    }
    // Each person in the latest of those surveys that names them.
    let mut holder: HashMap<&str, (&Sent, &MemberFacts)> = HashMap::new();
    for s in latest.values() {
        for m in &s.members {
            let newer = holder
                .get(m.person.as_str())
                .is_none_or(|(h, _)| h.order < s.order);
            if newer {
                holder.insert(&m.person, (s, m));
            }
        }
    }
    for s in latest.values() {
        add(&mut out, &s.village, "households".into());
        if s.month == month {
            add(&mut out, &s.village, "households_surveyed".into());
        }
        add(&mut out, &s.village, format!("households_{}", s.poverty));
        if s.relocated {
            add(&mut out, &s.village, "relocated_households".into());
        }
    }
    for (s, m) in holder.values() {
        let v = s.village.as_str();
        add(&mut out, v, "population".into());
        add(&mut out, v, format!("capacity_{}", m.capacity));
        if m.capacity == "able" || m.capacity == "weak" {
            add(&mut out, v, "labour_force".into());
            if s.relocated {
                add(&mut out, v, "relocated_labour".into());
            }
        }
        if let Some(status) = &m.status {
            add(&mut out, v, format!("employment_{status}"));
            if !["student", "unemployed", "not_applicable"].contains(&status.as_str()) {
                add(&mut out, v, "employed".into());
            }
            if status == "out_of_province" || status == "in_province_out_of_county" {
                add(&mut out, v, "out_migrants".into());
            }
            if let Some(post) = &m.post {
                add(&mut out, v, format!("public_welfare_{post}"));
            }
        }
        if m.wants_post {
            add(&mut out, v, "wants_public_post".into());
        }
        if let Some(trade) = &m.trade {
            add(&mut out, v, "training_wanted".into());
            add(&mut out, v, format!("training_{trade}"));
        }
        if m.at_risk {
            add(&mut out, v, "at_risk".into());
            if m.nets == 0 {
                add(&mut out, v, "at_risk_without_safety_net".into());
            }
        }
    }
    for (village, _) in VILLAGES {
        let f = out.entry(village.to_owned()).or_default();
        f.insert("villages".into(), 1);
        if f.get("households_surveyed").copied().unwrap_or(0) > 0 {
            f.insert("villages_household_survey".into(), 1);
        }
        // Nothing imported here: every known household is a surveyed one.
        if let Some(&n) = f.get("households") {
            f.insert("households_known".into(), n);
        }
        let latest_post = model
            .village_surveys
            .iter()
            .filter(|(v, m, ..)| v == village && m == month)
            .max_by_key(|(_, _, order, ..)| *order);
        if let Some((_, _, _, posts, willing)) = latest_post {
            f.insert("villages_post_survey".into(), 1);
            f.insert("willing_people".into(), *willing);
            for (post, needed, filled) in posts {
                *f.entry("post_needed".into()).or_insert(0) += needed;
                *f.entry("post_filled".into()).or_insert(0) += filled;
                *f.entry(format!("post_needed_{post}")).or_insert(0) += needed;
                *f.entry(format!("post_filled_{post}")).or_insert(0) += filled;
            }
        }
        let needed = f.get("post_needed").copied().unwrap_or(0);
        let filled = f.get("post_filled").copied().unwrap_or(0);
        f.insert("post_gap".into(), needed - filled);
        for post in POSTS {
            let n = f.get(&format!("post_needed_{post}")).copied().unwrap_or(0);
            let d = f.get(&format!("post_filled_{post}")).copied().unwrap_or(0);
            f.insert(format!("post_gap_{post}"), n - d);
        }
    }
    out
}

/// Sums the villages of a node (by code prefix) out of the per-village truth; villages without
/// data count as villages only.
fn node_truth(
    per_village: &BTreeMap<String, BTreeMap<String, i64>>,
    prefix: &str,
    village_count: i64,
) -> BTreeMap<String, i64> {
    let mut sum: BTreeMap<String, i64> = BTreeMap::new();
    for (village, figures) in per_village {
        if village.starts_with(prefix) {
            for (k, v) in figures {
                *sum.entry(k.clone()).or_insert(0) += v;
            }
        }
    }
    let with_data = per_village.keys().filter(|v| v.starts_with(prefix)).count() as i64;
    *sum.entry("villages".into()).or_insert(0) += village_count - with_data;
    sum
}

/// Checks every figure of every node for a month against the truth, on both bases.
async fn check_month(
    app: &TestApp,
    token: &str,
    model: &Model,
    before: &Model,
    month: &str,
    counts: &HashMap<String, i64>,
) {
    let previous_month = match month {
        "2020-05" => "2020-04",
        "2020-06" => "2020-05",
        _ => "2020-06",
    };
    let previous = truth(before, previous_month, &["approved"]);
    let approved = truth(model, month, &["approved"]);
    let pending = truth(model, month, &["approved", "submitted", "reopened"]);
    let mut nodes: Vec<(&str, String, String)> = vec![("city", "220800000000".into(), "".into())];
    for county in ["220802000000", "220881000000"] {
        nodes.push(("county", county.into(), county[..6].into()));
    }
    for (village, _) in VILLAGES {
        nodes.push((
            "township",
            format!("{}000", &village[..9]),
            village[..9].into(),
        ));
        nodes.push(("village", village.into(), village.into()));
    }
    for (level, code, prefix) in nodes {
        let path = format!("/api/v1/inventory?level={level}&code={code}&month={month}");
        let response = app.get_as(token, &path).await;
        assert_eq!(response.status(), 200, "{path}");
        let inventory: Value = response.json().await.expect("json");
        let count = if level == "village" { 1 } else { counts[&code] };
        let want_a = node_truth(&approved, &prefix, count);
        let want_p = node_truth(&pending, &prefix, count);
        let want_prev = node_truth(&previous, &prefix, count);
        for row in inventory["node"]["figures"].as_array().expect("figures") {
            let key = row["key"].as_str().expect("key");
            let a = want_a.get(key).copied().unwrap_or(0);
            let p = want_p.get(key).copied().unwrap_or(0);
            assert_eq!(row["approved"], a, "{month} {level} {code} {key} approved");
            assert_eq!(
                row["including_pending"], p,
                "{month} {level} {code} {key} pending"
            );
            let prev = want_prev.get(key).copied().unwrap_or(0);
            assert_eq!(
                row["previous"], prev,
                "{month} {level} {code} {key} previous"
            );
            assert_eq!(
                row["change"],
                a - prev,
                "{month} {level} {code} {key} change"
            );
        }
        // The children add up to the node.
        if level != "village" {
            for key in [
                "households",
                "population",
                "labour_force",
                "post_gap",
                "villages",
            ] {
                let node_value = inventory["node"]["figures"]
                    .as_array()
                    .expect("figures")
                    .iter()
                    .find(|r| r["key"] == key)
                    .map(|r| r["approved"].as_i64().unwrap_or(0))
                    .unwrap_or(0);
                let children: i64 = inventory["children"]
                    .as_array()
                    .expect("children")
                    .iter()
                    .map(|c| {
                        c["figures"]
                            .as_array()
                            .expect("figures")
                            .iter()
                            .find(|r| r["key"] == key)
                            .map(|r| r["approved"].as_i64().unwrap_or(0))
                            .unwrap_or(0)
                    })
                    .sum();
                assert_eq!(
                    node_value, children,
                    "{month} {level} {code} children's {key}"
                );
            }
        }
    }
}

async fn village_counts(app: &TestApp, token: &str) -> HashMap<String, i64> {
    let mut counts = HashMap::new();
    let all: Value = app
        .get_as(token, "/api/v1/villages?geofence=false")
        .await
        .json()
        .await
        .expect("villages");
    let list = all["villages"].as_array().expect("village list");
    counts.insert("220800000000".to_owned(), list.len() as i64);
    for v in list {
        let code = v["code"].as_str().expect("code");
        *counts.entry(format!("{}000000", &code[..6])).or_insert(0) += 1;
        *counts.entry(format!("{}000", &code[..9])).or_insert(0) += 1;
    }
    counts
}

async fn every_figure_equals_a_recomputation_from_the_raw_submissions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let city = app.token(CITY_ADMIN).await;
    let enumerators = [
        app.token(ENUMERATOR_TAOBEI).await,
        app.token(ENUMERATOR_TAONAN).await,
    ];
    let reviewers = [
        app.token(REVIEWER_TAOBEI).await,
        app.token(REVIEWER_TAONAN).await,
    ];
    let counts = village_counts(&app, &city).await;
    let mut rng = Rng(0x5eed_1ed6e7);
    let mut model = Model {
        surveys: Vec::new(),
        village_surveys: Vec::new(),
    };
    let mut order = 0usize;
    let mut person_no = 0u32;
    let mut new_person = |county: usize| {
        person_no += 1;
        let region = ["220802", "220881"][county];
        let birth = chrono::NaiveDate::from_ymd_opt(1950, 1, 1).expect("date")
            + chrono::Duration::days(i64::from(person_no) * 37);
        Person {
            id: id_number(
                region,
                &birth.format("%Y%m%d").to_string(),
                person_no % 1000,
            ),
            name: format!("村民{person_no}"),
        }
    };
    // Households: (village, county, head, other members).
    let mut households: Vec<(&str, usize, Person, Vec<Person>)> = Vec::new();
    for (village, county) in VILLAGES {
        for _ in 0..5 {
            let head = new_person(county);
            let size = 1 + rng.below(4);
            let others = (0..size).map(|_| new_person(county)).collect();
            households.push((village, county, head, others));
        }
    }
    let mut household_ids: Vec<Option<String>> = vec![None; households.len()];

    for month in MONTHS {
        for (i, (village, county, head, others)) in households.clone().into_iter().enumerate() {
            if rng.chance(35) && household_ids[i].is_some() {
                continue;
            }
            order += 1;
            let (body, facts, poverty, relocated) =
                survey_json(&mut rng, village, month, order, &head, &others, None);
            let answer = send(
                &app,
                &enumerators[county],
                "/api/v1/surveys/households",
                &body,
            )
            .await;
            let household = answer["household_id"]
                .as_str()
                .expect("household")
                .to_owned();
            household_ids[i] = Some(household.clone());
            let mut sent = Sent {
                id: answer["id"].as_str().expect("id").to_owned(),
                household,
                village: village.into(),
                month: month.into(),
                order,
                status: "submitted".into(),
                poverty,
                relocated,
                members: facts,
            };
            let roll = rng.below(100);
            if roll < 55 {
                decide(&app, &reviewers[county], &sent.id, "approve").await;
                sent.status = "approved".into();
            } else if roll < 65 {
                decide(&app, &reviewers[county], &sent.id, "reject").await;
                sent.status = "rejected".into();
            } else if roll < 80 {
                // A revision: the correction replaces it, approved or left pending.
                decide(&app, &reviewers[county], &sent.id, "request_revision").await;
                sent.status = "superseded".into();
                let replaced = sent.id.clone();
                model.surveys.push(sent.clone());
                order += 1;
                let (body, facts, poverty, relocated) = survey_json(
                    &mut rng,
                    village,
                    month,
                    order,
                    &head,
                    &others,
                    Some(&replaced),
                );
                let answer = send(
                    &app,
                    &enumerators[county],
                    "/api/v1/surveys/households",
                    &body,
                )
                .await;
                sent = Sent {
                    id: answer["id"].as_str().expect("id").to_owned(),
                    household: answer["household_id"]
                        .as_str()
                        .expect("household")
                        .to_owned(),
                    village: village.into(),
                    month: month.into(),
                    order,
                    status: "submitted".into(),
                    poverty,
                    relocated,
                    members: facts,
                };
                if rng.chance(50) {
                    decide(&app, &reviewers[county], &sent.id, "approve").await;
                    sent.status = "approved".into();
                }
            }
            model.surveys.push(sent);
        }
        // Post-demand surveys of two villages, one of them twice (the latest counts).
        for (village, county) in [VILLAGES[0], VILLAGES[2], VILLAGES[2]] {
            order += 1;
            let posts: Vec<(String, i64, i64)> = POSTS[..3]
                .iter()
                .map(|p| {
                    let needed = rng.below(6) as i64;
                    (p.to_string(), needed, rng.below(needed as usize + 1) as i64)
                })
                .collect();
            let willing = rng.below(9) as i64;
            let body = json!({
                "submission_id": new_id(), "village_code": village, "month": month,
                "surveyed_at": format!("{month}-20T10:{:02}:00+08:00", order % 60),
                "location": {"lat": 45.6, "lon": 122.8, "accuracy_m": 8},
                "posts": posts.iter().map(|(p, n, f)| json!({"post_type": p, "needed": n, "filled": f})).collect::<Vec<_>>(),
                "willing_people": willing, "photos": [],
                "device": {"device_id": "ledger-test", "app_version": "1.0.0"}
            });
            send(
                &app,
                &enumerators[county],
                "/api/v1/surveys/villages",
                &body,
            )
            .await;
            model
                .village_surveys
                .push((village.into(), month.into(), order, posts, willing));
        }
    }

    // A person moves: the first household's last member appears in a later, approved survey
    // of another household of the same county — counted once, there.
    let (village, county, head, mut others) = households[6].clone();
    let moved = households[5]
        .3
        .last()
        .cloned()
        .unwrap_or_else(|| households[5].2.clone());
    others.push(moved);
    order += 1;
    let (body, facts, poverty, relocated) =
        survey_json(&mut rng, village, "2020-07", order, &head, &others, None);
    let answer = send(
        &app,
        &enumerators[county],
        "/api/v1/surveys/households",
        &body,
    )
    .await;
    assert!(
        answer["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .any(|f| f == "person_in_multiple_households"),
        "{answer}"
    );
    let id = answer["id"].as_str().expect("id").to_owned();
    decide(&app, &reviewers[county], &id, "approve").await;
    model.surveys.push(Sent {
        id,
        household: answer["household_id"]
            .as_str()
            .expect("household")
            .to_owned(),
        village: village.into(),
        month: "2020-07".into(),
        order,
        status: "approved".into(),
        poverty,
        relocated,
        members: facts,
    });

    for month in MONTHS {
        check_month(&app, &city, &model, &model, month, &counts).await;
    }
    // The reads left the city's, counties' and townships' sums ready for the next reader.
    {
        use taizhang::db::schema::ledger_rollups as r;
        let mut conn = app.database().url.establish().expect("connect");
        let cities: i64 = r::table
            .filter(r::code.eq("220800000000"))
            .count()
            .get_result(&mut conn)
            .expect("roll-ups");
        assert!(cities >= MONTHS.len() as i64, "{cities} city roll-ups");
    }

    // Later decisions change the figures (the cache must notice): approve what is pending,
    // reopen one approved survey.
    let pending: Vec<(usize, String)> = model
        .surveys
        .iter()
        .enumerate()
        .filter(|(_, s)| s.status == "submitted")
        .map(|(i, s)| (i, s.id.clone()))
        .collect();
    for (i, id) in pending.iter().take(3) {
        let county = usize::from(model.surveys[*i].village.starts_with("220881"));
        decide(&app, &reviewers[county], id, "approve").await;
        model.surveys[*i].status = "approved".into();
    }
    let reopen = model
        .surveys
        .iter()
        .position(|s| s.status == "approved" && s.month == "2020-06")
        .expect("an approved June survey");
    let county = usize::from(model.surveys[reopen].village.starts_with("220881"));
    let id = model.surveys[reopen].id.clone();
    send(
        &app,
        &reviewers[county],
        &format!("/api/v1/surveys/{id}/review"),
        &json!({"decision": "reopen", "reason": "抽查"}),
    )
    .await;
    model.surveys[reopen].status = "reopened".into();
    for month in MONTHS {
        check_month(&app, &city, &model, &model, month, &counts).await;
    }

    // Close June: its figures freeze. A later decision on a June survey leaves June as it was
    // and shows in July.
    let frozen = Model {
        surveys: model.surveys.clone(),
        village_surveys: model.village_surveys.clone(),
    };
    // No county signed off and surveys await review: the city closes with a reason.
    let closed: Value = app
        .post("/api/v1/months/2020-06/close")
        .bearer_auth(&city)
        .json(&json!({"reason": "测试：未经签核强制关账"}))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(closed["state"], "closed");
    let again = app
        .post("/api/v1/months/2020-06/close")
        .bearer_auth(&city)
        .json(&json!({"reason": "再次关账"}))
        .send()
        .await
        .expect("post");
    let again = problem(again, 409, "month_already_closed").await;
    assert!(
        again["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("已完成月调度"),
        "{again}"
    );
    send(
        &app,
        &reviewers[county],
        &format!("/api/v1/surveys/{id}/review"),
        &json!({"decision": "approve"}),
    )
    .await;
    model.surveys[reopen].status = "approved".into();
    check_month(&app, &city, &frozen, &model, "2020-06", &counts).await;
    check_month(&app, &city, &model, &frozen, "2020-07", &counts).await;
    let months: Value = app
        .get_as(&city, "/api/v1/months")
        .await
        .json()
        .await
        .expect("months");
    let june = months
        .as_array()
        .expect("months")
        .iter()
        .find(|m| m["month"] == "2020-06")
        .cloned()
        .expect("june");
    assert_eq!(june["state"], "closed");
    assert_eq!(june["closed_by_name"], "李国华");
}

/// Four households of 平安村 (220802100201) whose heads work out of the province, in July
/// 2020: three approved, one pending. Their heads.
pub async fn out_migrants(app: &TestApp) -> Vec<Person> {
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let mut rng = Rng(77);
    let mut heads = Vec::new();
    for n in 0..4u32 {
        let head = Person {
            id: id_number("220802", "19800101", 101 + 2 * n),
            name: format!("外出{n}"),
        };
        let (mut body, ..) = survey_json(
            &mut rng,
            "220802100201",
            "2020-07",
            n as usize,
            &head,
            &[],
            None,
        );
        body["members"][0]["labour_capacity"] = json!("able");
        body["members"][0]["employment"] = json!({"status": "out_of_province", "employer_id": null, "post_type": null, "monthly_income_yuan": 4200});
        let answer = send(app, &field, "/api/v1/surveys/households", &body).await;
        if n < 3 {
            decide(
                app,
                &reviewer,
                answer["id"].as_str().expect("id"),
                "approve",
            )
            .await;
        }
        heads.push(head);
    }
    heads
}

/// Real-name ledgers, exports, quotas and months, and who may read what.
async fn real_name_ledgers_exports_quotas_and_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let city = app.token(CITY_ADMIN).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let secretary = app.token(SECRETARY_TAOBEI).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let stranger = app.token(REVIEWER_TAONAN).await;
    let heads = out_migrants(&app).await;

    // JSON, paged across the page boundary, masked.
    let path = "/api/v1/ledgers/out_migrants?level=county&code=220802000000&month=2020-07&limit=2";
    let first: Value = app
        .get_as(&reviewer, path)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        first["items"].as_array().expect("items").len(),
        2,
        "{first}"
    );
    assert_eq!(first["revealed"], false);
    let id = first["items"][0]["id_number"].as_str().expect("id");
    assert!(id.contains("********"), "{id}");
    assert_eq!(first["items"][0]["employment_status"], "out_of_province");
    assert_eq!(first["items"][0]["monthly_income_yuan"], 4200);
    let cursor = first["next_cursor"].as_str().expect("more");
    let rest: Value = app
        .get_as(&reviewer, &format!("{path}&cursor={cursor}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        rest["items"].as_array().expect("items").len(),
        1,
        "the pending one is not listed"
    );
    assert!(rest["next_cursor"].is_null());
    let mut listed: Vec<String> = first["items"]
        .as_array()
        .expect("items")
        .iter()
        .chain(rest["items"].as_array().expect("items"))
        .map(|i| i["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, ["外出0", "外出1", "外出2"]);

    // Revealed for a reviewer, audited; refused to field users.
    let revealed: Value = app
        .get_as(
            &reviewer,
            &format!("{path}&reveal=true&reason=核对务工补贴"),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(revealed["revealed"], true);
    assert!(heads
        .iter()
        .any(|h| revealed["items"][0]["id_number"] == h.id.as_str()));
    problem(app.get_as(&field, "/api/v1/ledgers/out_migrants?level=village&code=220802100201&month=2020-07&reveal=true").await, 403, "forbidden_role").await;
    // A reveal needs a reason, in the JSON and in the files alike; a blank one is none.
    for tail in ["", "&reason=%20%20", "&format=csv", "&format=xlsx&reason="] {
        let path = format!(
            "/api/v1/ledgers/out_migrants?level=county&code=220802000000&month=2020-07&reveal=true{tail}"
        );
        let refused = problem(app.get_as(&city, &path).await, 400, "invalid_query").await;
        assert_eq!(refused["field"], "reason", "{refused}");
    }
    let audit: Value = app
        .get_as(
            &city,
            "/api/v1/audit?action=reveal_personal_data&subject_type=ledger",
        )
        .await
        .json()
        .await
        .expect("audit");
    assert_eq!(audit["items"][0]["reason"], "核对务工补贴");
    assert_eq!(
        audit["items"][0]["subject_id"],
        "out_migrants/county/220802000000/2020-07"
    );

    // Scope: another county's reviewer, field users above their villages.
    problem(app.get_as(&stranger, path).await, 403, "out_of_scope").await;
    problem(
        app.get_as(
            &stranger,
            "/api/v1/inventory?level=county&code=220802000000&month=2020-07",
        )
        .await,
        403,
        "out_of_scope",
    )
    .await;
    problem(
        app.get_as(&reviewer, "/api/v1/inventory?month=2020-07")
            .await,
        403,
        "out_of_scope",
    )
    .await;
    problem(
        app.get_as(
            &field,
            "/api/v1/inventory?level=county&code=220802000000&month=2020-07",
        )
        .await,
        403,
        "out_of_scope",
    )
    .await;
    let own: Value = app
        .get_as(
            &secretary,
            "/api/v1/inventory?level=village&code=220802100201&month=2020-07",
        )
        .await
        .json()
        .await
        .expect("own village");
    assert_eq!(own["node"]["name"], "平安村委会");
    // A township's children are its villages, each with its own name.
    let township: Value = app
        .get_as(
            &city,
            "/api/v1/inventory?level=township&code=220802100000&month=2020-07",
        )
        .await
        .json()
        .await
        .expect("township");
    let children = township["children"].as_array().expect("children");
    assert!(children.len() > 1, "{township}");
    assert!(
        children
            .iter()
            .all(|c| c["name"].as_str().is_some_and(|n| !n.is_empty())),
        "{children:?}"
    );
    let ping_an = children
        .iter()
        .find(|c| c["code"] == "220802100201")
        .expect("平安 among its township's villages");
    assert_eq!(ping_an["name"], "平安村委会");
    problem(
        app.get_as(
            &secretary,
            "/api/v1/inventory?level=village&code=220802100200&month=2020-07",
        )
        .await,
        403,
        "out_of_scope",
    )
    .await;
    // Bad input.
    problem(
        app.get_as(&city, "/api/v1/ledgers/everyone").await,
        400,
        "invalid_path",
    )
    .await;
    problem(
        app.get_as(&city, "/api/v1/inventory?month=2020-13").await,
        400,
        "invalid_query",
    )
    .await;
    problem(
        app.get_as(&city, "/api/v1/inventory?month=2999-01").await,
        400,
        "invalid_query",
    )
    .await;
    problem(
        app.get_as(&city, "/api/v1/inventory?level=county").await,
        400,
        "invalid_query",
    )
    .await;
    problem(
        app.get_as(&city, "/api/v1/inventory?level=county&code=220802100201")
            .await,
        400,
        "invalid_query",
    )
    .await;
    problem(
        app.get_as(&city, "/api/v1/inventory?level=county&code=220899000000")
            .await,
        404,
        "not_found",
    )
    .await;
    problem(
        app.get_as(&city, "/api/v1/inventory?level=nation").await,
        400,
        "invalid_query",
    )
    .await;

    // CSV: BOM, Chinese headers, the people, a totals row.
    let csv = app.get_as(&reviewer, &format!("{path}&format=csv")).await;
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let bytes = csv.bytes().await.expect("csv");
    assert!(
        bytes.starts_with(b"\xEF\xBB\xBF"),
        "{:?}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
    );
    let text = String::from_utf8(bytes[3..].to_vec()).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("县（市、区）,乡镇（街道）,行政村,户主姓名,姓名"),
        "{}",
        lines[0]
    );
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines[1].contains("省外务工") && lines[1].contains("********"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[4], "合计,3,人");
    // XLSX: a zip holding a worksheet, with a Chinese file name.
    let xlsx = app.get_as(&reviewer, &format!("{path}&format=xlsx")).await;
    assert_eq!(xlsx.status(), 200);
    assert_eq!(
        xlsx.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert!(xlsx.headers()["content-disposition"]
        .to_str()
        .unwrap_or_default()
        .contains(".xlsx"));
    let bytes = xlsx.bytes().await.expect("xlsx");
    assert!(bytes.starts_with(b"PK\x03\x04"));
    assert!(bytes.windows(24).any(|w| w == b"xl/worksheets/sheet1.xml"));
    // As Excel and WPS open it: incomes are numbers, codes text, a filter on the headers, and
    // the page set up for print with the title and headers on every page.
    let book = crate::helpers::openpyxl_book(&bytes, 10);
    let sheet = book
        .as_object()
        .and_then(|b| b.values().next())
        .expect("a sheet");
    let rows = sheet["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 6, "title, headers, 3 people, total: {sheet}");
    assert_eq!(rows[1][12], "月收入（元）");
    let people = &rows[2..5];
    assert!(
        people.iter().all(|r| r[12].is_null() || r[12].is_number()),
        "{rows:?}"
    );
    assert!(people.iter().any(|r| r[12].is_number()), "{rows:?}");
    assert!(
        people
            .iter()
            .all(|r| r[17].as_str().is_some_and(|c| c.len() == 12)),
        "{rows:?}"
    );
    assert_eq!(rows[5][1], 3, "the total is a number");
    assert_eq!(sheet["autofilter"], "A2:R5");
    assert_eq!(sheet["freeze"], "A3");
    assert_eq!(sheet["orientation"], "landscape");
    assert_eq!(sheet["paper"], 9);
    // One page wide (1 is the default width, which the file may leave out), as many high.
    assert_eq!(sheet["fit_to_page"], true);
    assert!(
        sheet["fit_width"].is_null() || sheet["fit_width"] == 1,
        "{sheet}"
    );
    assert_eq!(sheet["fit_height"], 0);
    assert_eq!(
        sheet["title_rows"].as_str().map(|t| t.replace('$', "")),
        Some("1:2".into())
    );
    // The CSV keeps village codes as text too, with no stray characters.
    assert!(lines[1].contains(r#","=""2208"#), "{}", lines[1]);
    assert!(!text.contains('\t'), "no tab before the codes");

    // The ledger of the county as a workbook (townships and villages) and as CSV.
    let book = app
        .get_as(
            &reviewer,
            "/api/v1/inventory/export?level=county&code=220802000000&month=2020-07",
        )
        .await;
    assert_eq!(book.status(), 200);
    let bytes = book.bytes().await.expect("xlsx");
    assert!(
        bytes.windows(24).any(|w| w == b"xl/worksheets/sheet2.xml"),
        "a sheet per level"
    );
    let table = app
        .get_as(
            &reviewer,
            "/api/v1/inventory/export?level=county&code=220802000000&month=2020-07&format=csv",
        )
        .await;
    let text = String::from_utf8(table.bytes().await.expect("csv")[3..].to_vec()).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    let villages_in_county = lines.len() - 2;
    let total = lines.last().expect("total");
    assert!(total.starts_with("洮北区合计,,,,"), "{total}");
    let inventory: Value = app
        .get_as(
            &reviewer,
            "/api/v1/inventory?level=county&code=220802000000&month=2020-07",
        )
        .await
        .json()
        .await
        .expect("json");
    let figure = |key: &str| {
        inventory["node"]["figures"]
            .as_array()
            .expect("figures")
            .iter()
            .find(|f| f["key"] == key)
            .map(|f| f["approved"].as_i64().unwrap_or(-1))
            .unwrap_or(-1)
    };
    assert_eq!(figure("villages") as usize, villages_in_county);
    assert_eq!(figure("out_migrants"), 3);
    assert_eq!(
        total.split(',').nth(4),
        Some(villages_in_county.to_string().as_str())
    );

    // Quotas: city admins set them (audited), progress shows in the county and the city.
    let quotas = json!({"temporary_post_monthly_yuan": 800, "counties": [
        {"county": "220802000000", "special_posts": 500, "temporary_posts": 120},
        {"county": "220881000000", "special_posts": 400, "temporary_posts": 100}]});
    let forbidden = app
        .request(reqwest::Method::PUT, "/api/v1/quotas/2020")
        .bearer_auth(&reviewer)
        .json(&quotas)
        .send()
        .await
        .expect("put");
    problem(forbidden, 403, "forbidden_role").await;
    let bad = app.request(reqwest::Method::PUT, "/api/v1/quotas/2020").bearer_auth(&city)
        .json(&json!({"counties": [{"county": "220802100201", "special_posts": -1, "temporary_posts": 1}]})).send().await.expect("put");
    let body = problem(bad, 422, "validation_failed").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().unwrap_or_default())
        .collect();
    assert!(
        fields.contains(&"counties[0].county") && fields.contains(&"counties[0].special_posts"),
        "{body}"
    );
    let set = app
        .request(reqwest::Method::PUT, "/api/v1/quotas/2020")
        .bearer_auth(&city)
        .json(&quotas)
        .send()
        .await
        .expect("put");
    assert_eq!(set.status(), 200);
    let set: Value = set.json().await.expect("json");
    assert_eq!(set["special_posts_total"], 900);
    let read: Value = app
        .get_as(&reviewer, "/api/v1/quotas/2020")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(read["counties"][0]["county_name"], "洮北区");
    let county: Value = app
        .get_as(
            &reviewer,
            "/api/v1/inventory?level=county&code=220802000000&month=2020-07",
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(county["quota"]["special_posts_quota"], 500);
    assert_eq!(county["quota"]["temporary_post_monthly_yuan"], 800);
    let whole: Value = app
        .get_as(&city, "/api/v1/inventory?month=2020-07")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(whole["quota"]["temporary_posts_quota"], 220);
    assert_eq!(
        whole["children"].as_array().expect("children").len(),
        6,
        "the city's county-level units"
    );
    let audit: Value = app
        .get_as(&city, "/api/v1/audit?action=set_quota")
        .await
        .json()
        .await
        .expect("audit");
    assert_eq!(audit["items"].as_array().expect("items").len(), 2);

    // Months: closing is for city admins, once.
    problem(
        app.post("/api/v1/months/2020-07/close")
            .bearer_auth(&reviewer)
            .json(&json!({}))
            .send()
            .await
            .expect("post"),
        403,
        "forbidden_role",
    )
    .await;
    problem(
        app.post("/api/v1/months/2020-7/close")
            .bearer_auth(&city)
            .json(&json!({}))
            .send()
            .await
            .expect("post"),
        400,
        "invalid_path",
    )
    .await;
    problem(
        app.get_as(&field, "/api/v1/months").await,
        403,
        "forbidden_role",
    )
    .await;
    let months: Value = app
        .get_as(&reviewer, "/api/v1/months")
        .await
        .json()
        .await
        .expect("months");
    assert!(months
        .as_array()
        .expect("months")
        .iter()
        .any(|m| m["month"] == "2020-07" && m["state"] == "open"));
}

/// Two city admins close the same month at once: one closes it, the other is told it is closed.
async fn concurrent_closes_close_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.token(CITY_ADMIN).await;
    let second = app.token(CITY_ADMIN).await;
    let close = |token: String| {
        let request = app
            .post("/api/v1/months/2020-03/close")
            .bearer_auth(token)
            .json(&json!({"reason": "测试：并发关账"}));
        async move { request.send().await.expect("close") }
    };
    let (a, b) = tokio::join!(close(first), close(second));
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409]);
    let loser = if a.status() == 409 { a } else { b };
    problem(loser, 409, "month_already_closed").await;
}

/// The background warmer recomputes a changed village's figures for the current month without
/// any reader asking.
async fn changed_villages_are_recomputed_in_the_background(backend: Backend) {
    use diesel::prelude::*;
    use taizhang::db::schema::{ledger_cache, ledger_generations};
    let app = TestApp::spawn_with(backend, |s| {
        s.ledger_warm_interval = Some(std::time::Duration::from_millis(300));
    })
    .await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let now =
        chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("offset"));
    let mut body = crate::surveys::household_survey(
        &new_id(),
        "钱七",
        &id_number("220802", "19770707", 77),
        &[],
    );
    body["surveyed_at"] = json!(now.format("%Y-%m-%dT%H:%M:%S%:z").to_string());
    send(&app, &field, "/api/v1/surveys/households", &body).await;
    let month = now.format("%Y-%m").to_string();
    let mut conn = app.settings.database.establish().expect("db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let generation: i64 = ledger_generations::table
            .find("220802100201")
            .select(ledger_generations::generation)
            .first(&mut conn)
            .expect("generation");
        let cached: Option<(i64, String)> = ledger_cache::table
            .find((&month, "220802100201"))
            .select((ledger_cache::generation, ledger_cache::pending))
            .first(&mut conn)
            .optional()
            .expect("cache");
        if let Some((g, pending)) = cached {
            if g == generation {
                assert!(pending.contains("\"households\":1"), "{pending}");
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "not warmed in 20 s");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A survey of July keeps June's cached figures of its village current (nothing of June
/// changed); a correction dated July of a June survey does not (the June survey stops
/// counting in June), and neither does a rejection of a June survey decided in July.
async fn a_change_leaves_earlier_months_cached(backend: Backend) {
    use taizhang::domain::Month;
    use taizhang::ledger::cache;
    const VILLAGE: &str = "220802100201";
    let app = TestApp::spawn(backend).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let city = app.token(CITY_ADMIN).await;
    let households = |month: &'static str| village_households(&app, &city, VILLAGE, month);
    let stale = |month: &str| {
        let mut conn = app.database().url.establish().expect("connect");
        let month = Month::parse(month).expect("month");
        cache::stale_villages(&mut conn, month, 1000)
            .expect("stale")
            .contains(&VILLAGE.to_owned())
    };
    let survey = |name: &str, id_tail: u32, surveyed_at: &str| {
        let mut body = crate::surveys::household_survey(
            &new_id(),
            name,
            &id_number("220802", "19660606", id_tail),
            &[],
        );
        body["surveyed_at"] = json!(surveyed_at);
        body
    };
    let june = survey("六月", 511, "2020-06-20T09:31:00+08:00");
    let june_answer = send(&app, &field, "/api/v1/surveys/households", &june).await;
    let second_june = survey("六月二", 513, "2020-06-21T09:31:00+08:00");
    let second_answer = send(&app, &field, "/api/v1/surveys/households", &second_june).await;
    // The July read caches July and June (for the change from June).
    assert_eq!(households("2020-07").await, 2);
    assert_eq!(households("2020-06").await, 2);
    assert!(!stale("2020-06") && !stale("2020-07"));

    send(
        &app,
        &field,
        "/api/v1/surveys/households",
        &survey("七月", 515, "2020-07-20T09:31:00+08:00"),
    )
    .await;
    assert!(stale("2020-07"), "July changed");
    assert!(!stale("2020-06"), "June did not");
    assert_eq!(households("2020-07").await, 3);
    assert_eq!(households("2020-06").await, 2);

    // A correction dated July of the first June survey: June counts it no longer.
    let mut correction = june.clone();
    correction["submission_id"] = json!(new_id());
    correction["surveyed_at"] = json!("2020-07-22T09:31:00+08:00");
    correction["replaces"] = june_answer["id"].clone();
    send(&app, &field, "/api/v1/surveys/households", &correction).await;
    assert!(stale("2020-06"), "the corrected survey was June's");
    assert_eq!(households("2020-06").await, 1);
    assert_eq!(households("2020-07").await, 3);

    // A rejection of the other June survey, decided now.
    assert!(!stale("2020-06"));
    decide(
        &app,
        &reviewer,
        second_answer["id"].as_str().expect("id"),
        "reject",
    )
    .await;
    assert!(stale("2020-06"), "the rejected survey was June's");
    assert_eq!(households("2020-06").await, 0);
    assert_eq!(households("2020-07").await, 2);
}

crate::helpers::both_backends!(
    a_change_leaves_earlier_months_cached,
    every_figure_equals_a_recomputation_from_the_raw_submissions,
    real_name_ledgers_exports_quotas_and_scope,
    concurrent_closes_close_once,
    changed_villages_are_recomputed_in_the_background,
);
