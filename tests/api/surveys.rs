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
    // The other members' numbers follow from the head's, so different heads make different
    // families (spouse and daughter even sequence numbers, son odd).
    let base: u32 = head_id[14..17].parse().unwrap_or(1);
    let (spouse, son, daughter) = (
        (base + 100) % 499 * 2,
        (base + 200) % 499 * 2 + 1,
        (base + 300) % 499 * 2,
    );
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
            member("李秀兰", &id_number(region, "19720304", spouse), "spouse", "weak"),
            member("张小明", &id_number(region, "20050607", son), "child", "none"),
            member("张小红", &id_number(region, "20080910", daughter), "child", "none"),
        ],
        "photos": photos,
        "replaces": null,
        "device": {"device_id": "a1b2c3", "app_version": "1.0.0"}
    })
}

/// The same number with a wrong check character.
fn broken_check(id: &str) -> String {
    let last = if id.ends_with('0') { '1' } else { '0' };
    format!("{}{last}", &id[..17])
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

pub async fn upload(app: &TestApp, token: &str, name: &str) -> String {
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

/// Surveys the city admin sees (up to 200).
pub async fn count_surveys(app: &TestApp) -> usize {
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
    assert_eq!(first["status"], "submitted");
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
            |v| {
                v["members"][2]["id_number"] = json!(broken_check(
                    v["members"][2]["id_number"].as_str().unwrap_or_default()
                ))
            },
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

async fn survey_ok(app: &TestApp, token: &str, body: &Value) -> Value {
    let response = post(app, token, "/api/v1/surveys/households", body).await;
    let status = response.status();
    let answer: Value = response.json().await.expect("json");
    assert_eq!(status, 201, "{answer}");
    answer
}

async fn households_are_keyed_and_versioned(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let head = id_number("220802", "19700101", 123);
    let first = survey_ok(
        &app,
        &token,
        &household_survey(&new_id(), "张三", &head, &[]),
    )
    .await;
    // The same head, a month later: the next version of the same household.
    let mut later = household_survey(&new_id(), "张三", &head, &[]);
    later["surveyed_at"] = json!("2020-08-20T09:31:00+08:00");
    later["household"]["household_number"] = json!("2208021002010001");
    let second = survey_ok(&app, &token, &later).await;
    assert_eq!(second["household_id"], first["household_id"]);
    assert_eq!(second["version"], 2);
    // Now known by its number too: a survey with the number and no head ID finds it.
    let mut by_number = household_survey(&new_id(), "张三", &head, &[]);
    by_number["surveyed_at"] = json!("2020-09-20T09:31:00+08:00");
    by_number["household"]["household_number"] = json!("2208021002010001");
    by_number["household"]["head_id_number"] = json!(null);
    let third = survey_ok(&app, &token, &by_number).await;
    assert_eq!(
        (third["household_id"].clone(), third["version"].clone()),
        (first["household_id"].clone(), json!(3))
    );
    // Another head: another household.
    let other = survey_ok(
        &app,
        &token,
        &household_survey(
            &new_id(),
            "赵六",
            &id_number("220802", "19800202", 171),
            &[],
        ),
    )
    .await;
    assert_ne!(other["household_id"], first["household_id"]);

    let admin = app.token(CITY_ADMIN).await;
    let household: Value = app
        .get_as(
            &admin,
            &format!(
                "/api/v1/households/{}",
                first["household_id"].as_str().expect("id")
            ),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(household["versions"].as_array().map(Vec::len), Some(3));
    assert_eq!(household["household_number"], "2208021002010001");
    assert_eq!(household["head_id_number"], "220802********1238");
}

async fn conflicting_versions_need_another_enumerator_and_other_answers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (enumerator, secretary) = (
        app.token(ENUMERATOR_TAOBEI).await,
        app.token(SECRETARY_TAOBEI).await,
    );
    let head = id_number("220802", "19700101", 123);
    let with_status = |status: &str| {
        let mut body = household_survey(&new_id(), "张三", &head, &[]);
        body["household"]["poverty_status"] = json!(status);
        body
    };
    survey_ok(&app, &enumerator, &with_status("lifted")).await;
    // Near miss: the same enumerator revisits with other answers.
    let revisit = with_status("monitored");
    let revisit_id = revisit["submission_id"].as_str().expect("id").to_owned();
    assert_eq!(
        survey_ok(&app, &enumerator, &revisit).await["flags"],
        json!([])
    );
    // Near miss: another person finds what the enumerator found last.
    assert_eq!(
        survey_ok(&app, &secretary, &with_status("monitored")).await["flags"],
        json!([])
    );
    // Another enumerator, other answers, same month: conflict.
    let conflict = survey_ok(&app, &secretary, &with_status("not_lifted")).await;
    assert_eq!(conflict["flags"], json!(["conflicting_versions"]));
    // Near miss: a correction that names the version it replaces does not conflict with it.
    let mut correction = with_status("not_lifted");
    correction["replaces"] = json!(revisit_id);
    assert_eq!(
        survey_ok(&app, &secretary, &correction).await["flags"],
        json!([])
    );
    // Near miss: next month is another month.
    let mut next_month = with_status("lifted");
    next_month["surveyed_at"] = json!("2020-08-03T09:00:00+08:00");
    assert_eq!(
        survey_ok(&app, &secretary, &next_month).await["flags"],
        json!([])
    );

    let mut unknown = with_status("lifted");
    unknown["replaces"] = json!(new_id());
    let refused = problem(
        post(&app, &enumerator, "/api/v1/surveys/households", &unknown).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        (refused["field"].as_str(), refused["rule"].as_str()),
        (Some("replaces"), Some("unknown_submission"))
    );
}

async fn a_person_in_two_households_is_flagged_unless_they_moved(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let a = survey_ok(
        &app,
        &token,
        &household_survey(
            &new_id(),
            "张三",
            &id_number("220802", "19700101", 123),
            &[],
        ),
    )
    .await;
    // Household B lists A's child (members[2]).
    let mut b = household_survey(
        &new_id(),
        "钱七",
        &id_number("220802", "19750505", 191),
        &[],
    );
    let child = household_survey("x", "张三", &id_number("220802", "19700101", 123), &[])
        ["members"][2]
        .clone();
    b["members"][2] = child.clone();
    let b_answer = survey_ok(&app, &token, &b).await;
    assert_eq!(b_answer["flags"], json!(["person_in_multiple_households"]));
    assert_eq!(
        b_answer["flag_details"][0]["related_household_id"],
        a["household_id"]
    );
    // The text names A by village and head, in Chinese, and not by its id; the reviewer's
    // reading of B says the same.
    let a_id = a["household_id"].as_str().expect("id");
    let said = b_answer["flag_details"][0]["detail"]
        .as_str()
        .expect("detail");
    assert_eq!(
        said,
        "第 3 位成员（members[2]）也登记在洮北区平安镇平安村委会 张三户中"
    );
    assert!(!said.contains(a_id), "{said}");
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let read: Value = app
        .get_as(
            &reviewer,
            &format!("/api/v1/surveys/{}", b_answer["id"].as_str().expect("id")),
        )
        .await
        .json()
        .await
        .expect("survey");
    assert_eq!(read["flag_details"][0]["detail"], said, "{read}");
    // A is surveyed again without the child (who moved): a new household C with the child is fine.
    let mut a_again = household_survey(
        &new_id(),
        "张三",
        &id_number("220802", "19700101", 123),
        &[],
    );
    a_again["surveyed_at"] = json!("2020-08-20T09:31:00+08:00");
    a_again["members"]
        .as_array_mut()
        .expect("members")
        .remove(2);
    survey_ok(&app, &token, &a_again).await;
    let mut c = household_survey(
        &new_id(),
        "孙八",
        &id_number("220802", "19780808", 211),
        &[],
    );
    c["members"][2] = child;
    let c_answer = survey_ok(&app, &token, &c).await;
    // Still in B's latest version, no longer in A's.
    let related: Vec<&Value> = c_answer["flag_details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| &d["related_household_id"])
        .collect();
    assert_eq!(related, [&b_answer["household_id"]]);
}

async fn keyless_surveys_near_a_similar_household_are_possible_duplicates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let known = survey_ok(
        &app,
        &token,
        &household_survey(
            &new_id(),
            "张三",
            &id_number("220802", "19700101", 123),
            &[],
        ),
    )
    .await;
    // Keyless surveys: no household number, no head ID (each its own family).
    let keyless = |name: &str, metres_north: f64, drop_members: usize, sequence: u32| {
        let mut body = household_survey(
            &new_id(),
            "张三",
            &id_number("220802", "19860606", sequence),
            &[],
        );
        body["household"]["head_id_number"] = json!(null);
        body["household"]["head_name"] = json!(name);
        body["members"][0]["name"] = json!(name);
        body["location"]["lat"] = json!(45.736537 + metres_north / 111_200.0);
        for _ in 0..drop_members {
            body["members"].as_array_mut().expect("members").pop();
        }
        body
    };
    let duplicate = |answer: &Value| {
        answer["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .any(|f| f == "possible_duplicate")
    };
    // 50 m north, the name written with a full-width space, one member fewer: a possible duplicate.
    let near = survey_ok(&app, &token, &keyless("张　三", 50.0, 1, 231)).await;
    assert_eq!(near["flags"], json!(["possible_duplicate"]));
    assert_eq!(
        near["flag_details"][0]["related_household_id"],
        known["household_id"]
    );
    assert_eq!(
        near["flag_details"][0]["detail"],
        "与洮北区平安镇平安村委会 张三户疑似重复：户主姓名相同、人数相差不超过 1 人，且相距不到 100 米"
    );
    assert_ne!(
        near["household_id"], known["household_id"],
        "linked, not merged"
    );
    // Near misses: 150 m away; two members fewer than anyone within 100 m; another name.
    let far = survey_ok(&app, &token, &keyless("张三", -150.0, 0, 233)).await;
    assert!(!duplicate(&far), "{far}");
    let smaller = survey_ok(&app, &token, &keyless("张三", -60.0, 2, 235)).await;
    assert!(!duplicate(&smaller), "{smaller}");
    let other = survey_ok(&app, &token, &keyless("张四", 0.0, 0, 237)).await;
    assert!(!duplicate(&other), "{other}");
    // A household with a key arriving after them pairs with the keyless look-alike only: not
    // with `known`, whose key tells the two apart, nor with the near misses.
    let keyed = survey_ok(
        &app,
        &token,
        &household_survey(
            &new_id(),
            "张三",
            &id_number("220802", "19700101", 239),
            &[],
        ),
    )
    .await;
    let related: Vec<&Value> = keyed["flag_details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| &d["related_household_id"])
        .collect();
    assert_eq!(related, [&near["household_id"]], "{keyed}");
}

/// The text of every row of every table, whatever the backend: ID numbers must be in none.
async fn every_stored_byte(app: &TestApp) -> String {
    let mut conn = app.settings.database.establish().expect("db");
    let mut out = String::new();
    match &app.settings.database {
        taizhang::db::DatabaseUrl::Sqlite(path) => {
            drop(conn);
            for suffix in ["", "-wal"] {
                if let Ok(bytes) = std::fs::read(format!("{}{suffix}", path.display())) {
                    out.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
        }
        taizhang::db::DatabaseUrl::Postgres(_) => {
            use diesel::prelude::*;
            #[derive(QueryableByName)]
            struct Row {
                #[diesel(sql_type = diesel::sql_types::Text)]
                t: String,
            }
            for table in taizhang::db::schema::ALL_TABLES {
                let rows: Vec<Row> =
                    diesel::sql_query(format!("SELECT x::text AS t FROM {table} x"))
                        .load(&mut conn)
                        .expect("rows");
                out.extend(rows.into_iter().map(|r| r.t));
            }
        }
    }
    out
}

async fn id_numbers_are_never_stored_or_shown_in_clear(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let head = id_number("220802", "19700101", 123);
    let body = household_survey(&new_id(), "张三", &head, &[]);
    let ids: Vec<String> = body["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["id_number"].as_str().expect("id").to_owned())
        .collect();
    let answer = survey_ok(&app, &token, &body).await;
    let stored = every_stored_byte(&app).await;
    for id in &ids {
        assert!(
            !stored.contains(id.as_str()),
            "{} stored in clear",
            &id[..6]
        );
    }
    assert!(!stored.contains("13800000000"), "phone stored in clear");

    let path = format!("/api/v1/surveys/{}", answer["id"].as_str().expect("id"));
    let shown: Value = app.get_as(&token, &path).await.json().await.expect("json");
    let text = shown.to_string();
    assert!(
        ids.iter().all(|id| !text.contains(id.as_str())),
        "masked for the enumerator"
    );
    assert_eq!(shown["members"][0]["id_number"], "220802********1238");
    assert_eq!(shown["phone"], "138****0000");
    problem(
        app.get_as(&token, &format!("{path}?reveal=true")).await,
        403,
        "forbidden_role",
    )
    .await;

    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let masked: Value = app
        .get_as(&reviewer, &path)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(masked["revealed"], false);
    let revealed: Value = app
        .get_as(&reviewer, &format!("{path}?reveal=true&reason=核实身份"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(revealed["members"][0]["id_number"], head.as_str());
    assert_eq!(revealed["revealed"], true);
    use diesel::prelude::*;
    use taizhang::db::schema::audit_log;
    let mut conn = app.settings.database.establish().expect("db");
    let audits: Vec<(String, String, Option<String>)> = audit_log::table
        .filter(audit_log::subject_type.ne("user"))
        .select((audit_log::action, audit_log::subject_id, audit_log::reason))
        .load(&mut conn)
        .expect("audit");
    assert_eq!(
        audits,
        [(
            "reveal_personal_data".to_owned(),
            answer["id"].as_str().expect("id").to_owned(),
            Some("核实身份".to_owned())
        )]
    );
    // Another county's reviewer does not even learn it exists.
    let stranger = app.token(REVIEWER_TAONAN).await;
    problem(app.get_as(&stranger, &path).await, 404, "not_found").await;
}

async fn listing_filters_pages_and_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let mut ids = Vec::new();
    for i in 0..5u32 {
        let mut body = household_survey(
            &new_id(),
            "张三",
            &id_number("220802", "19700101", 301 + 2 * i),
            &[],
        );
        if i == 4 {
            body["village_code"] = json!("220802100200");
        }
        ids.push(
            survey_ok(&app, &token, &body).await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let admin = app.token(CITY_ADMIN).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/surveys?limit=2&cursor={c}"),
            None => "/api/v1/surveys?limit=2".into(),
        };
        let page: Value = app.get_as(&admin, &path).await.json().await.expect("json");
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|s| s["id"].as_str().expect("id").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "every survey once, newest first");

    let village: Value = app
        .get_as(&admin, "/api/v1/surveys?village=220802100200")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(village["items"].as_array().map(Vec::len), Some(1));
    let pending: Value = app
        .get_as(
            &admin,
            "/api/v1/surveys?status=submitted&county=220802000000&from=2020-07-20&to=2020-07-20",
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(pending["items"].as_array().map(Vec::len), Some(5));
    let none: Value = app
        .get_as(&admin, "/api/v1/surveys?from=2020-07-21")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0));
    problem(
        app.get_as(&admin, "/api/v1/surveys?status=lost").await,
        400,
        "invalid_query",
    )
    .await;
    problem(
        app.get_as(&admin, "/api/v1/surveys?cursor=garbage").await,
        400,
        "invalid_query",
    )
    .await;

    let secretary = app.token(SECRETARY_TAOBEI).await;
    let own: Value = app
        .get_as(&secretary, "/api/v1/surveys")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        own["items"].as_array().map(Vec::len),
        Some(4),
        "only 平安村"
    );
    problem(
        app.get_as(&secretary, "/api/v1/surveys?village=220802100200")
            .await,
        403,
        "out_of_scope",
    )
    .await;
    let stranger = app.token(REVIEWER_TAONAN).await;
    let nothing: Value = app
        .get_as(&stranger, "/api/v1/surveys")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(nothing["items"].as_array().map(Vec::len), Some(0));

    let mine: Value = app
        .get_as(&token, "/api/v1/me/submissions")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(5));
    assert!(mine["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|s| s["status"] == "submitted" && s["kind"] == "household_survey"));
    let since = mine["next_since"].as_str().expect("next_since");
    let later: Value = app
        .get_as(
            &token,
            &format!("/api/v1/me/submissions?since={}", urlencode(since)),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(later["items"].as_array().map(Vec::len), Some(0));
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

async fn village_surveys_are_exactly_once_and_validated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(SECRETARY_TAOBEI).await;
    let body = json!({
        "submission_id": new_id(), "village_code": VILLAGE, "month": "2020-07",
        "surveyed_at": "2020-07-21T10:00:00+08:00", "location": {"lat": 45.62, "lon": 122.84, "accuracy_m": 8},
        "posts": [{"post_type": "cleaner", "needed": 5, "filled": 3}, {"post_type": "forest_ranger", "needed": 2, "filled": 2}],
        "willing_people": 7, "photos": [], "device": {"device_id": "a1b2c3", "app_version": "1.0.0"}
    });
    let first = post(&app, &token, "/api/v1/surveys/villages", &body).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    assert_eq!(
        (
            first["needed"].as_i64(),
            first["filled"].as_i64(),
            first["supersedes_earlier"].as_bool()
        ),
        (Some(7), Some(5), Some(false))
    );
    let again = post(&app, &token, "/api/v1/surveys/villages", &body).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.expect("json"), first);
    let mut later = body.clone();
    later["submission_id"] = json!(new_id());
    later["surveyed_at"] = json!("2020-08-02T10:00:00+08:00");
    let second: Value = post(&app, &token, "/api/v1/surveys/villages", &later)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        second["supersedes_earlier"], true,
        "uploaded late, early next month"
    );

    type Mutation = fn(&mut Value);
    let cases: Vec<(Mutation, &str, &str)> = vec![
        (
            |v| v["posts"][1]["needed"] = json!(-1),
            "posts[1].needed",
            "range",
        ),
        (
            |v| v["posts"][1]["post_type"] = json!("cleaner"),
            "posts[1].post_type",
            "duplicate",
        ),
        (
            |v| v["posts"][0]["post_type"] = json!("astronaut"),
            "posts[0].post_type",
            "unknown_value",
        ),
        (|v| v["month"] = json!("2020-7"), "month", "month_format"),
        (|v| v["month"] = json!("2020-03"), "month", "month_mismatch"),
        (
            |v| v["willing_people"] = json!(-3),
            "willing_people",
            "range",
        ),
        (
            |v| v["village_code"] = json!("220802100200"),
            "village_code",
            "out_of_scope",
        ),
    ];
    for (mutate, field, rule) in cases {
        let mut bad = body.clone();
        bad["submission_id"] = json!(new_id());
        mutate(&mut bad);
        let answer = problem(
            post(&app, &token, "/api/v1/surveys/villages", &bad).await,
            422,
            "validation_failed",
        )
        .await;
        assert!(
            answer["errors"]
                .as_array()
                .expect("errors")
                .iter()
                .any(|e| e["field"] == field && e["rule"] == rule),
            "{field} {rule}: {answer}"
        );
    }
    let mine: Value = app
        .get_as(&token, "/api/v1/me/submissions")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(2));
}

mod more {
    use super::*;
    both_backends!(
        households_are_keyed_and_versioned,
        conflicting_versions_need_another_enumerator_and_other_answers,
        a_person_in_two_households_is_flagged_unless_they_moved,
        keyless_surveys_near_a_similar_household_are_possible_duplicates,
        id_numbers_are_never_stored_or_shown_in_clear,
        listing_filters_pages_and_scope,
        village_surveys_are_exactly_once_and_validated,
    );
}

/// Two real server processes on one PostgreSQL database, the same survey sent to both at once,
/// several times: one is stored, every answer is the first one.
#[actix_web::test]
async fn two_server_processes_on_postgres_store_one_survey() {
    let url = crate::pg::fresh_database();
    let (a, b) = (ServerProcess::start(&url), ServerProcess::start(&url));
    let client = crate::helpers::checked_client(reqwest::Client::builder());
    let mut tokens = Vec::new();
    for server in [&a, &b] {
        tokens.push(log_in(&client, &server.address, ENUMERATOR_TAOBEI).await);
    }
    let body = household_survey(
        &new_id(),
        "周九",
        &id_number("220802", "19690909", 251),
        &[],
    );
    let requests = (0..10).map(|i| {
        let (server, token) = if i % 2 == 0 {
            (&a, &tokens[0])
        } else {
            (&b, &tokens[1])
        };
        client
            .post(format!("{}/api/v1/surveys/households", server.address))
            .bearer_auth(token)
            .json(&body)
            .send()
    });
    let responses = futures_util::future::join_all(requests).await;
    let mut statuses = Vec::new();
    let mut bodies = Vec::new();
    for r in responses {
        let r = r.expect("response");
        statuses.push(r.status().as_u16());
        bodies.push(r.json::<Value>().await.expect("json"));
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    use diesel::prelude::*;
    let mut conn = taizhang::db::DatabaseUrl::parse(&url)
        .expect("url")
        .establish()
        .expect("db");
    let stored: i64 = taizhang::db::schema::household_surveys::table
        .count()
        .get_result(&mut conn)
        .expect("count");
    assert_eq!(stored, 1);
}
