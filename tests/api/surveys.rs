//! Household and village surveys over HTTP: validation, exactly-once, identity and duplicates,
//! privacy of ID numbers, and the reads.

use reqwest::Response;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::*;

const VILLAGE: &str = "220802100201";

/// A valid ID number for a region, birth date (YYYYMMDD) and 3-digit sequence (odd: male).
pub fn id_number(region: &str, birth: &str, sequence: u32) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let first = format!("{region}{birth}{sequence:03}");
    let sum: u32 = first
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    format!("{first}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

fn member(name: &str, id: &str, relation: &str, capacity: &str) -> Value {
    let birth = format!("{}-{}-{}", &id[6..10], &id[10..12], &id[12..14]);
    let sex = if (id.as_bytes()[16] - b'0') % 2 == 1 {
        "male"
    } else {
        "female"
    };
    let employment = match capacity {
        "able" | "weak" => {
            json!({"status": "out_of_province", "employer_id": null, "post_type": null, "monthly_income_yuan": 3000})
        }
        _ => Value::Null,
    };
    json!({
        "name": name, "id_number": id, "sex": sex, "birth_date": birth, "relation": relation,
        "labour_capacity": capacity, "employment": employment, "wants_public_post": false,
        "training": {"wanted": true, "trade": "electrician"}, "at_risk": false, "safety_net": []
    })
}

/// A valid four-member household survey of 平安村 whose head is `head_id`.
pub fn household_survey(
    submission_id: &str,
    head_name: &str,
    head_id: &str,
    photos: &[String],
) -> Value {
    let region = &head_id[..6];
    json!({
        "submission_id": submission_id,
        "form_version": "2020.07",
        "village_code": VILLAGE,
        "surveyed_at": "2020-07-20T09:31:00+08:00",
        "location": {"lat": 45.736537, "lon": 122.566161, "accuracy_m": 12.5, "crs": "wgs84"},
        "household": {"household_number": null, "head_name": head_name, "head_id_number": head_id,
                      "poverty_status": "lifted", "relocated": false, "phone": "13800000000"},
        "members": [
            member(head_name, head_id, "head", "able"),
            member("李秀兰", &id_number(region, "19720304", 122), "spouse", "weak"),
            member("张小明", &id_number(region, "20050607", 133), "child", "none"),
            member("张小红", &id_number(region, "20080910", 144), "child", "none"),
        ],
        "photos": photos,
        "replaces": null,
        "device": {"device_id": "a1b2c3", "app_version": "1.0.0"}
    })
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> Response {
    app.post(path)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("post")
}

async fn upload(app: &TestApp, token: &str, name: &str) -> String {
    let bytes = std::fs::read(format!(
        "{}/fixtures/photos/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture");
    let sha = hex::encode(Sha256::digest(&bytes));
    let response = app
        .request(reqwest::Method::PUT, &format!("/api/v1/photos/{sha}"))
        .bearer_auth(token)
        .header("content-type", "image/jpeg")
        .body(bytes)
        .send()
        .await
        .expect("upload");
    assert!(response.status().is_success());
    sha
}

async fn count_surveys(app: &TestApp) -> usize {
    let token = app.token(CITY_ADMIN).await;
    let page: Value = app
        .get_as(&token, "/api/v1/surveys?limit=200")
        .await
        .json()
        .await
        .expect("json");
    page["items"].as_array().expect("items").len()
}

async fn replays_are_answered_once_and_reuse_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let photo = upload(&app, &token, "doorplate.jpg").await;
    let id = new_id();
    let body = household_survey(&id, "张三", &id_number("220802", "19700101", 123), &[photo]);
    let first = post(&app, &token, "/api/v1/surveys/households", &body).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    assert_eq!(first["id"], id.as_str());
    assert_eq!(first["version"], 1);
    assert_eq!(first["status"], "pending");
    assert_eq!(first["flags"], json!([]));

    // The same content, keys in another order, from a retry: 200 and the very same answer.
    let reordered: Value =
        serde_json::from_str(&serde_json::to_string_pretty(&body).expect("json")).expect("json");
    let again = post(&app, &token, "/api/v1/surveys/households", &reordered).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.expect("json"), first);

    let mut changed = body.clone();
    changed["household"]["poverty_status"] = json!("monitored");
    let reused = post(&app, &token, "/api/v1/surveys/households", &changed).await;
    problem(reused, 409, "submission_id_reused").await;
    assert_eq!(count_surveys(&app).await, 1);
}

async fn concurrent_replays_on_two_servers_store_one_survey(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = TestApp::spawn_on(a.database(), |_| {}).await;
    let (ta, tb) = (
        a.token(ENUMERATOR_TAOBEI).await,
        b.token(ENUMERATOR_TAOBEI).await,
    );
    let body = household_survey(
        &new_id(),
        "王五",
        &id_number("220802", "19650505", 155),
        &[],
    );
    let requests = (0..8).map(|i| {
        let (app, token) = if i % 2 == 0 { (&a, &ta) } else { (&b, &tb) };
        post(app, token, "/api/v1/surveys/households", &body)
    });
    let responses = futures_util::future::join_all(requests).await;
    let mut statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 201]);
    let mut bodies = Vec::new();
    for r in responses {
        bodies.push(r.json::<Value>().await.expect("json"));
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every answer is the first one"
    );
    assert_eq!(count_surveys(&a).await, 1);
}

/// Each case breaks one rule of a valid survey: (what to change, field, rule).
async fn every_rule_names_its_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let head = id_number("220802", "19700101", 123);
    type Mutation = fn(&mut Value);
    let cases: Vec<(Mutation, &str, &str)> = vec![
        (
            |v| v["submission_id"] = json!("not-a-uuid"),
            "submission_id",
            "uuid_format",
        ),
        (
            |v| v["village_code"] = json!("220881100200"),
            "village_code",
            "out_of_scope",
        ),
        (
            |v| v["village_code"] = json!("22080210020"),
            "village_code",
            "division_code_format",
        ),
        (
            |v| v["surveyed_at"] = json!("2020-07-20 09:31"),
            "surveyed_at",
            "datetime_format",
        ),
        (
            |v| v["surveyed_at"] = json!("2099-01-01T00:00:00+08:00"),
            "surveyed_at",
            "in_future",
        ),
        (
            |v| v["surveyed_at"] = json!("1999-01-01T00:00:00+08:00"),
            "surveyed_at",
            "too_early",
        ),
        (
            |v| v["location"]["lat"] = json!(95.0),
            "location.lat",
            "range",
        ),
        (
            |v| v["location"]["crs"] = json!("mars"),
            "location.crs",
            "unknown_value",
        ),
        (
            |v| v["household"]["head_id_number"] = json!("220802197001011239"),
            "household.head_id_number",
            "id_number_check_digit",
        ),
        (
            |v| v["household"]["poverty_status"] = json!("rich"),
            "household.poverty_status",
            "unknown_value",
        ),
        (
            |v| v["household"]["phone"] = json!("12345"),
            "household.phone",
            "phone_format",
        ),
        (
            |v| v["household"]["head_name"] = json!("李四"),
            "household.head_name",
            "head_mismatch",
        ),
        (
            |v| v["members"][2]["id_number"] = json!("220802200506071339"),
            "members[2].id_number",
            "id_number_check_digit",
        ),
        (
            |v| v["members"][1]["birth_date"] = json!("1972-03-05"),
            "members[1].birth_date",
            "birth_date_mismatch",
        ),
        (
            |v| v["members"][1]["sex"] = json!("male"),
            "members[1].sex",
            "sex_mismatch",
        ),
        (
            |v| v["members"][1]["labour_capacity"] = json!("strong"),
            "members[1].labour_capacity",
            "unknown_value",
        ),
        (
            |v| v["members"][0]["employment"] = json!(null),
            "members[0].employment",
            "required",
        ),
        (
            |v| v["members"][0]["employment"]["status"] = json!("public_welfare_post"),
            "members[0].employment.post_type",
            "required",
        ),
        (
            |v| v["members"][0]["employment"]["monthly_income_yuan"] = json!(-5),
            "members[0].employment.monthly_income_yuan",
            "range",
        ),
        (
            |v| v["members"][0]["training"] = json!({"wanted": true}),
            "members[0].training.trade",
            "required",
        ),
        (
            |v| v["members"][0]["safety_net"] = json!(["temporary_relief", "temporary_relief"]),
            "members[0].safety_net",
            "duplicate",
        ),
        (
            |v| v["members"][3]["id_number"] = v["members"][2]["id_number"].clone(),
            "members[3].id_number",
            "duplicate_member",
        ),
        (
            |v| v["members"][1]["relation"] = json!("head"),
            "members",
            "one_head",
        ),
        (|v| v["members"] = json!([]), "members", "count"),
        (
            |v| v["members"][0]["name"] = json!(7),
            "members[0].name",
            "invalid_type",
        ),
        (
            |v| v["photos"] = json!(["abc"]),
            "photos[0]",
            "sha256_format",
        ),
        (
            |v| v["replaces"] = v["submission_id"].clone(),
            "replaces",
            "self_reference",
        ),
        (
            |v| v["device"]["device_id"] = json!(""),
            "device.device_id",
            "length",
        ),
        (
            |v| {
                v.as_object_mut().map(|o| o.remove("household"));
            },
            "household",
            "required",
        ),
    ];
    for (mutate, field, rule) in cases {
        let mut body = household_survey(&new_id(), "张三", &head, &[]);
        mutate(&mut body);
        let answer = problem(
            post(&app, &token, "/api/v1/surveys/households", &body).await,
            422,
            "validation_failed",
        )
        .await;
        let errors = answer["errors"].as_array().expect("errors");
        assert!(
            errors
                .iter()
                .any(|e| e["field"] == field && e["rule"] == rule),
            "expected {field} {rule}, got {answer}"
        );
    }
    // Several broken rules are reported together.
    let mut body = household_survey(&new_id(), "张三", &head, &[]);
    body["members"][1]["sex"] = json!("male");
    body["location"]["lon"] = json!(190);
    let answer = problem(
        post(&app, &token, "/api/v1/surveys/households", &body).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        answer["errors"].as_array().map(Vec::len),
        Some(2),
        "{answer}"
    );

    let missing = [format!("{:064x}", 1), format!("{:064x}", 2)];
    let body = household_survey(&new_id(), "张三", &head, &missing);
    let answer = problem(
        post(&app, &token, "/api/v1/surveys/households", &body).await,
        422,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> = answer["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter(|e| e["rule"] == "photo_missing")
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        ["photos[0]", "photos[1]"],
        "every missing photo is listed"
    );

    let reviewer = app.token(REVIEWER_TAOBEI).await;
    problem(
        post(
            &app,
            &reviewer,
            "/api/v1/surveys/households",
            &household_survey(&new_id(), "张三", &head, &[]),
        )
        .await,
        403,
        "forbidden_role",
    )
    .await;
    assert_eq!(count_surveys(&app).await, 0, "nothing was stored");
}

both_backends!(
    replays_are_answered_once_and_reuse_is_refused,
    concurrent_replays_on_two_servers_store_one_survey,
    every_rule_names_its_field,
);
