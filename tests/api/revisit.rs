//! The monthly revisit over HTTP: revisits naming the household and its members by reference,
//! stale bases, members without an ID number, keyless look-alikes, and the promise that the
//! arrival order of an offline queue never changes a flag or a figure.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use taizhang_core::privacy::Vault;
use taizhang_core::secrets::Keys;

use crate::helpers::*;
use crate::surveys::id_number;

const COUNTY: &str = "220802";

fn uuid() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The vault of the test server (its master secret is the test kit's), for making the
/// references the sync feed would give.
fn vault() -> Vault {
    let secret = hex::decode(TEST_SECRET).expect("hex secret");
    Vault::new(&Keys::from_master(&secret))
}

fn sex_of(id: &str) -> &'static str {
    if (id.as_bytes()[16] - b'0') % 2 == 1 {
        "male"
    } else {
        "female"
    }
}

fn birth_of(id: &str) -> String {
    format!("{}-{}-{}", &id[6..10], &id[10..12], &id[12..14])
}

/// A member by ID number, able to work, earning `income` out of the province.
fn member(name: &str, id: &str, relation: &str, income: i64) -> Value {
    json!({
        "name": name, "id_number": id, "sex": sex_of(id), "birth_date": birth_of(id),
        "relation": relation, "labour_capacity": "able",
        "employment": {"status": "out_of_province", "employer_id": null, "post_type": null,
                       "monthly_income_yuan": income},
        "wants_public_post": false, "training": null, "at_risk": false, "safety_net": []
    })
}

/// A member without an ID number.
fn unnumbered(name: &str, sex: &str, birth: &str, relation: &str) -> Value {
    json!({
        "name": name, "id_number": null, "sex": sex, "birth_date": birth,
        "relation": relation, "labour_capacity": "none", "employment": null,
        "wants_public_post": false, "training": null, "at_risk": false, "safety_net": []
    })
}

struct Survey<'a> {
    id: &'a str,
    village: &'a str,
    at: &'a str,
    head_name: &'a str,
    head_id: Option<&'a str>,
    members: Vec<Value>,
    position: (f64, f64),
}

fn body(s: &Survey<'_>) -> Value {
    json!({
        "submission_id": s.id, "form_version": "2020.07", "village_code": s.village,
        "surveyed_at": s.at,
        "location": {"lat": s.position.0, "lon": s.position.1, "accuracy_m": 10.0},
        "household": {"household_number": null, "head_name": s.head_name,
                      "head_id_number": s.head_id, "poverty_status": "lifted",
                      "relocated": false, "phone": null},
        "members": s.members, "photos": [], "replaces": null,
        "device": {"device_id": "revisit-test", "app_version": "1.0.0"}
    })
}

async fn submit(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.post("/api/v1/surveys/households")
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("submit")
}

async fn submit_ok(app: &TestApp, token: &str, body: &Value) -> Value {
    let response = submit(app, token, body).await;
    let status = response.status().as_u16();
    let answer: Value = response.json().await.expect("json");
    assert!(status == 201 || status == 200, "{status}: {answer}");
    answer
}

async fn survey_flags(app: &TestApp, token: &str, id: &str) -> Vec<(String, Option<String>)> {
    let detail: Value = app
        .get_as(token, &format!("/api/v1/surveys/{id}"))
        .await
        .json()
        .await
        .expect("json");
    let mut flags: Vec<(String, Option<String>)> = detail["flag_details"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    (
                        f["flag"].as_str().unwrap_or_default().to_owned(),
                        f["related_household_id"].as_str().map(str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    flags.sort();
    flags
}

/// A field user with the given villages, made by the city administrator; returns a token.
async fn field_user(app: &TestApp, phone: &str, villages: &[String]) -> String {
    let admin = app.token(CITY_ADMIN).await;
    let response = app
        .post("/api/v1/users")
        .bearer_auth(&admin)
        .json(
            &json!({"phone": phone, "name": format!("调查员{}", &phone[7..]),
                      "role": "enumerator", "villages": villages, "password": "revisit-pass-1"}),
        )
        .send()
        .await
        .expect("create user");
    assert_eq!(
        response.status().as_u16(),
        201,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let login = app
        .login_response(phone, "revisit-pass-1", "revisit-device")
        .await;
    let login: Value = login.json().await.expect("json");
    login["access_token"].as_str().expect("token").to_owned()
}

/// The first `n` villages of 洮北区 in code order.
fn villages(n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(format!("{}/fixtures/villages.csv", taizhang_testkit::ROOT))
        .expect("villages.csv");
    let mut codes: Vec<String> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .filter(|c| c.starts_with(COUNTY))
        .map(str::to_owned)
        .collect();
    codes.sort();
    codes.truncate(n);
    codes
}

/// Every permutation of `0..n`, in lexicographic order.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut current: Vec<usize> = (0..n).collect();
    loop {
        out.push(current.clone());
        let Some(i) = (0..n.saturating_sub(1))
            .rev()
            .find(|&i| current[i] < current[i + 1])
        else {
            return out;
        };
        let j = (i + 1..n)
            .rev()
            .find(|&j| current[j] > current[i])
            .unwrap_or(i + 1);
        current.swap(i, j);
        current[i + 1..].reverse();
    }
}

/// The five surveys of one arrival-order case in `village`, numbered apart by `k`:
/// a) household A by the first enumerator (3 July), with person P;
/// b) A revisited by the second enumerator (20 July) with other answers;
/// c) household B by the first (10 July), listing P too;
/// d) a keyless look-alike of B by the second (12 July), members without ID numbers;
/// e) the second enumerator's correction of b (21 July), answers still unlike a's.
/// Returns the bodies and who sends each (0: first, 1: second enumerator).
fn case(village: &str, k: u32) -> Vec<(Value, usize)> {
    let head_a = id_number("220802", "19700101", 2 * k + 1);
    let p = id_number("220802", "19750505", 2 * k);
    let head_b = id_number("220802", "19680808", 2 * k + 1);
    let near = (45.7365, 122.5661);
    let a_members = |income: i64| {
        vec![
            member("张一", &head_a, "head", income),
            member("王二", &p, "spouse", 2000),
        ]
    };
    let a = Survey {
        id: &uuid(),
        village,
        at: "2020-07-03T09:00:00+08:00",
        head_name: "张一",
        head_id: Some(&head_a),
        members: a_members(3000),
        position: (45.70, 122.50),
    };
    let a = body(&a);
    let b_id = uuid();
    let b = body(&Survey {
        id: &b_id,
        village,
        at: "2020-07-20T09:00:00+08:00",
        head_name: "张一",
        head_id: Some(&head_a),
        members: a_members(4000),
        position: (45.70, 122.50),
    });
    let c = body(&Survey {
        id: &uuid(),
        village,
        at: "2020-07-10T09:00:00+08:00",
        head_name: "李三",
        head_id: Some(&head_b),
        members: vec![
            member("李三", &head_b, "head", 2500),
            member("王二", &p, "spouse", 2000),
        ],
        position: near,
    });
    let d = body(&Survey {
        id: &uuid(),
        village,
        at: "2020-07-12T09:00:00+08:00",
        head_name: "李 三",
        head_id: None,
        members: vec![
            unnumbered("李三", "male", "1968-08-08", "head"),
            unnumbered("李四", "male", "2019-01-01", "child"),
        ],
        position: (near.0 + 0.0003, near.1),
    });
    let mut e = body(&Survey {
        id: &uuid(),
        village,
        at: "2020-07-21T09:00:00+08:00",
        head_name: "张一",
        head_id: Some(&head_a),
        members: a_members(4500),
        position: (45.70, 122.50),
    });
    e["replaces"] = json!(b_id);
    vec![(a, 0), (b, 1), (c, 0), (d, 1), (e, 1)]
}

/// What a case ended with, in terms that do not depend on generated ids: each survey's flags
/// naming the other household by its letter, which surveys share a household, and the
/// village's figures.
async fn outcome(app: &TestApp, reviewer: &str, village: &str, answers: &[Value]) -> Value {
    let letters = ["a", "b", "c", "d", "e"];
    let household_of: Vec<String> = answers
        .iter()
        .map(|a| a["household_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let letter_of = |h: &str| -> String {
        // A household by the first survey of it, in case order.
        household_of
            .iter()
            .position(|x| x == h)
            .map_or_else(|| "?".to_owned(), |i| letters[i].to_uppercase())
    };
    let mut flags = BTreeMap::new();
    for (i, a) in answers.iter().enumerate() {
        let id = a["id"].as_str().unwrap_or_default();
        let named: Vec<String> = survey_flags(app, reviewer, id)
            .await
            .into_iter()
            .map(|(f, related)| {
                format!(
                    "{f}:{}",
                    related.as_deref().map(&letter_of).unwrap_or_default()
                )
            })
            .collect();
        flags.insert(letters[i], named);
    }
    let households: Vec<String> = household_of.iter().map(|h| letter_of(h)).collect();
    let node: Value = app
        .get_as(
            reviewer,
            &format!("/api/v1/inventory?level=village&code={village}&month=2020-07"),
        )
        .await
        .json()
        .await
        .expect("json");
    assert!(
        node["node"]["figures"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "{node}"
    );
    json!({"flags": flags, "households": households, "figures": node["node"]["figures"]})
}

/// Every arrival order of the case's five surveys (a correction that arrives before the survey
/// it corrects is refused and sent again at the end of the queue, as the app does) ends with
/// the same flags on the same surveys and the same ledger.
async fn every_arrival_order_gives_the_same_flags_and_ledger(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let orders = permutations(5);
    let codes = villages(orders.len());
    let first = field_user(&app, "13900000101", &codes).await;
    let second = field_user(&app, "13900000102", &codes).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let mut seen: Option<(Vec<usize>, Value)> = None;
    for (k, order) in orders.iter().enumerate() {
        let village = &codes[k];
        let surveys = case(village, k as u32);
        let mut answers: Vec<Value> = vec![Value::Null; surveys.len()];
        let mut queue: Vec<usize> = order.clone();
        let mut tries = 0;
        while let Some(i) = queue.first().copied() {
            queue.remove(0);
            let (body, who) = &surveys[i];
            let token = if *who == 0 { &first } else { &second };
            let response = submit(&app, token, body).await;
            let status = response.status().as_u16();
            let answer: Value = response.json().await.expect("json");
            if status == 422 && answer["errors"][0]["rule"] == "unknown_submission" {
                queue.push(i);
                tries += 1;
                assert!(tries < 10, "the queue does not drain: {answer}");
                continue;
            }
            assert!(
                status == 201,
                "order {order:?}, survey {i}: {status} {answer}"
            );
            answers[i] = answer;
        }
        let got = outcome(&app, &reviewer, village, &answers).await;
        match &seen {
            None => {
                let flags = &got["flags"];
                // The case is what it claims to be: the first enumerator's July answers and
                // the correction differ; P is in the latest versions of A (the correction,
                // 21 July) and of B; D looks like B.
                assert_eq!(flags["a"], json!(["conflicting_versions:"]), "{got}");
                assert_eq!(
                    flags["b"],
                    json!([]),
                    "a corrected survey compares with nothing"
                );
                assert_eq!(
                    flags["c"],
                    json!(["person_in_multiple_households:A", "possible_duplicate:D"]),
                    "{got}"
                );
                assert_eq!(flags["d"], json!(["possible_duplicate:C"]), "{got}");
                assert_eq!(
                    flags["e"],
                    json!(["conflicting_versions:", "person_in_multiple_households:C"]),
                    "{got}"
                );
                assert_eq!(got["households"], json!(["A", "A", "C", "D", "A"]), "{got}");
                seen = Some((order.clone(), got));
            }
            Some((first_order, expected)) => assert_eq!(
                &got, expected,
                "arrival order {order:?} differs from {first_order:?}"
            ),
        }
    }
    app.stop().await;
}

/// The household as the sync feed would name it: its id and each member's `person_ref`.
fn refs(household: &str, ids: &[&str]) -> Vec<String> {
    let vault = vault();
    ids.iter()
        .map(|id| {
            let id = taizhang_core::domain::IdNumber::parse(id).expect("id");
            vault.person_ref(household, &vault.index_id(&id))
        })
        .collect()
}

fn by_ref(member: &Value, person_ref: &str) -> Value {
    let mut m = member.clone();
    m["id_number"] = Value::Null;
    m["person_ref"] = json!(person_ref);
    m
}

/// A revisit names the household and its members by reference, adds a newborn without an ID
/// number and is stored as the next version of the same household; a revisit based on a
/// version that is no longer the latest by survey time is flagged `stale_base`, even when the
/// newer version arrives after it.
async fn revisits_by_reference_and_stale_bases(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let village = "220802100201";
    let head = id_number("220802", "19700101", 123);
    let spouse = id_number("220802", "19720304", 246);
    let members = vec![
        member("赵大", &head, "head", 3000),
        member("钱二", &spouse, "spouse", 1000),
    ];
    let first = submit_ok(
        &app,
        &field,
        &body(&Survey {
            id: &uuid(),
            village,
            at: "2020-07-01T09:00:00+08:00",
            head_name: "赵大",
            head_id: Some(&head),
            members: members.clone(),
            position: (45.7365, 122.5661),
        }),
    )
    .await;
    let household = first["household_id"]
        .as_str()
        .expect("household")
        .to_owned();
    let r = refs(&household, &[&head, &spouse]);

    // The revisit: nothing retyped, a newborn without an ID number.
    let mut newer = members.clone();
    newer[0]["employment"]["monthly_income_yuan"] = json!(3500);
    let revisit_members = vec![
        by_ref(&newer[0], &r[0]),
        by_ref(&newer[1], &r[1]),
        unnumbered("赵小", "female", "2020-06-01", "child"),
    ];
    let revisit_body = |id: &str, at: &str, base: i64| {
        let mut b = body(&Survey {
            id,
            village,
            at,
            head_name: "赵大",
            head_id: None,
            members: revisit_members.clone(),
            position: (45.7365, 122.5661),
        });
        b["household_ref"] = json!({"household_id": household, "base_version": base});
        b
    };
    let late_id = uuid();
    let late = submit_ok(
        &app,
        &field,
        &revisit_body(&late_id, "2020-07-25T09:00:00+08:00", 1),
    )
    .await;
    assert_eq!(late["household_id"], json!(household));
    assert_eq!(late["version"], json!(2));
    assert_eq!(
        late["flags"],
        json!([]),
        "nothing lies between its base and it yet"
    );

    // The household's view: three members now, the newborn without a number, the head's
    // number known from the reference.
    let view: Value = app
        .get_as(&reviewer, &format!("/api/v1/surveys/{late_id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(view["members"].as_array().map(Vec::len), Some(3), "{view}");
    assert_eq!(view["members"][2]["id_number"], Value::Null);
    assert!(view["members"][0]["id_number"]
        .as_str()
        .is_some_and(|m| m.contains('*')));

    // A survey made between the base and the revisit arrives afterwards (by keys): the
    // revisit becomes stale, and says which version it missed.
    let between = body(&Survey {
        id: &uuid(),
        village,
        at: "2020-07-20T09:00:00+08:00",
        head_name: "赵大",
        head_id: Some(&head),
        members: members.clone(),
        position: (45.7365, 122.5661),
    });
    let between = submit_ok(&app, &field, &between).await;
    assert_eq!(between["household_id"], json!(household));
    let flags = survey_flags(&app, &reviewer, &late_id).await;
    assert_eq!(flags, vec![("stale_base".to_owned(), None)], "{flags:?}");
    let detail: Value = app
        .get_as(&reviewer, &format!("/api/v1/surveys/{late_id}"))
        .await
        .json()
        .await
        .expect("json");
    assert!(
        detail["flag_details"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("第 1 版") && d.contains("第 3 版")),
        "{detail}"
    );

    // A revisit based on the latest version is not stale.
    let fresh = submit_ok(
        &app,
        &field,
        &revisit_body(&uuid(), "2020-07-28T09:00:00+08:00", 2),
    )
    .await;
    assert_eq!(fresh["flags"], json!([]), "{fresh}");
    app.stop().await;
}

/// Bad references are refused with the field and the rule, and store nothing; a reference
/// outside the caller's scope answers as unknown.
async fn bad_references_are_refused_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let other_county = app.token(ENUMERATOR_TAONAN).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let village = "220802100201";
    let head = id_number("220802", "19700101", 321);
    let spouse = id_number("220802", "19720304", 642);
    let members = vec![
        member("孙大", &head, "head", 3000),
        member("周二", &spouse, "spouse", 1000),
    ];
    let first = submit_ok(
        &app,
        &field,
        &body(&Survey {
            id: &uuid(),
            village,
            at: "2020-07-01T09:00:00+08:00",
            head_name: "孙大",
            head_id: Some(&head),
            members: members.clone(),
            position: (45.7365, 122.5661),
        }),
    )
    .await;
    let household = first["household_id"]
        .as_str()
        .expect("household")
        .to_owned();
    let r = refs(&household, &[&head, &spouse]);
    let revisit = |refs: [&str; 2], reference: Value| {
        let mut b = body(&Survey {
            id: &uuid(),
            village,
            at: "2020-07-20T09:00:00+08:00",
            head_name: "孙大",
            head_id: None,
            members: vec![by_ref(&members[0], refs[0]), by_ref(&members[1], refs[1])],
            position: (45.7365, 122.5661),
        });
        b["household_ref"] = reference;
        b
    };
    let ours = json!({"household_id": household, "base_version": 1});
    let other_household = refs(&uuid(), &[&spouse]);
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            revisit([&r[0], "AAAAAAAAAAAA"], ours.clone()),
            "members[1].person_ref",
            "unknown_person",
        ),
        // A reference made for another household names no one here.
        (
            revisit([&r[0], &other_household[0]], ours.clone()),
            "members[1].person_ref",
            "unknown_person",
        ),
        (
            revisit([&r[0], "short"], ours.clone()),
            "members[1].person_ref",
            "ref_format",
        ),
        (
            revisit([&r[0], &r[0]], ours.clone()),
            "members[1].person_ref",
            "duplicate_member",
        ),
        (
            revisit(
                [&r[0], &r[1]],
                json!({"household_id": household, "base_version": 9}),
            ),
            "household_ref.base_version",
            "unknown_version",
        ),
        (
            revisit(
                [&r[0], &r[1]],
                json!({"household_id": uuid(), "base_version": 1}),
            ),
            "household_ref.household_id",
            "unknown_household",
        ),
        (
            revisit(
                [&r[0], &r[1]],
                json!({"household_id": "not-a-uuid", "base_version": 1}),
            ),
            "household_ref.household_id",
            "uuid_format",
        ),
        (
            revisit(
                [&r[0], &r[1]],
                json!({"household_id": household, "base_version": 0}),
            ),
            "household_ref.base_version",
            "range",
        ),
    ];
    for (body, field_path, rule) in cases {
        let response = submit(&app, &field, &body).await;
        let refused = problem(response, 422, "validation_failed").await;
        let errors = refused["errors"].as_array().cloned().unwrap_or_default();
        assert!(
            errors
                .iter()
                .any(|e| e["field"] == field_path && e["rule"] == rule),
            "{field_path} {rule}: {refused}"
        );
    }
    // A person_ref without household_ref; an ID number and a reference for one member.
    let mut no_ref = revisit([&r[0], &r[1]], Value::Null);
    no_ref["household"]["head_id_number"] = json!(head);
    let refused = problem(
        submit(&app, &field, &no_ref).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        refused["errors"][0]["field"], "members[0].person_ref",
        "{refused}"
    );
    assert_eq!(refused["errors"][0]["rule"], "not_allowed", "{refused}");
    let mut both = revisit([&r[0], &r[1]], ours.clone());
    both["members"][1]["id_number"] = json!(spouse);
    let refused = problem(submit(&app, &field, &both).await, 422, "validation_failed").await;
    assert_eq!(refused["errors"][0]["rule"], "one_of", "{refused}");

    // Another county's enumerator naming this household learns nothing of it.
    let mut theirs = revisit([&r[0], &r[1]], ours.clone());
    theirs["village_code"] = json!("220881100200");
    let refused = problem(
        submit(&app, &other_county, &theirs).await,
        422,
        "validation_failed",
    )
    .await;
    let text = refused.to_string();
    assert!(
        text.contains("unknown_household") || text.contains("out_of_scope"),
        "{refused}"
    );

    let view: Value = app
        .get_as(&reviewer, &format!("/api/v1/households/{household}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        view["versions"].as_array().map(Vec::len),
        Some(1),
        "nothing stored: {view}"
    );
    app.stop().await;
}

/// Members without ID numbers are accepted; a household without either key is matched to a
/// look-alike within 100 m (both sides flagged), and a namesake 600 m away is not.
async fn keyless_households_are_matched_by_look_alike(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let secretary = app.token(SECRETARY_TAOBEI).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let village = "220802100201";
    let keyless = |id: &str, at: &str, position: (f64, f64)| {
        body(&Survey {
            id,
            village,
            at,
            head_name: "吴老汉",
            head_id: None,
            members: vec![
                unnumbered("吴老汉", "male", "1940-03-03", "head"),
                unnumbered("吴老太", "female", "1942-04-04", "spouse"),
            ],
            position,
        })
    };
    let first = submit_ok(
        &app,
        &field,
        &keyless(&uuid(), "2020-07-01T09:00:00+08:00", (45.7365, 122.5661)),
    )
    .await;
    assert_eq!(first["flags"], json!([]), "{first}");
    // 600 m north: a namesake, not a duplicate.
    let far = submit_ok(
        &app,
        &field,
        &keyless(&uuid(), "2020-07-02T09:00:00+08:00", (45.7419, 122.5661)),
    )
    .await;
    assert_eq!(far["flags"], json!([]), "{far}");
    assert_ne!(far["household_id"], first["household_id"]);
    // 30 m away, by another enumerator: a possible duplicate, shown on both sides.
    let near = submit_ok(
        &app,
        &secretary,
        &keyless(&uuid(), "2020-07-03T09:00:00+08:00", (45.7368, 122.5661)),
    )
    .await;
    assert_eq!(near["flags"], json!(["possible_duplicate"]), "{near}");
    let first_id = first["id"].as_str().unwrap_or_default();
    let flags = survey_flags(&app, &reviewer, first_id).await;
    assert_eq!(
        flags,
        vec![(
            "possible_duplicate".to_owned(),
            near["household_id"].as_str().map(str::to_owned)
        )]
    );
    let far_flags = survey_flags(&app, &reviewer, far["id"].as_str().unwrap_or_default()).await;
    assert!(far_flags.is_empty(), "{far_flags:?}");
    app.stop().await;
}

both_backends!(
    every_arrival_order_gives_the_same_flags_and_ledger,
    revisits_by_reference_and_stale_bases,
    bad_references_are_refused_and_store_nothing,
    keyless_households_are_matched_by_look_alike,
);
