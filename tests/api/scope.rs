//! Scope on every lookup, not only on reads: a household key that another county already holds,
//! and a photo named by its hash, stay inside the caller's scope (issue 14, findings 1 and 4).

use chrono::{Duration, FixedOffset, Utc};
use reqwest::{Method, Response};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use taizhang::simulate::photos::{jpeg, with_exif, ExifSpec, Scene};

use crate::helpers::*;
use crate::surveys::{household_survey, id_number};

/// 洮北区 (220802) and 洮南市 (220881) villages of the demo users.
const TAOBEI_VILLAGE: &str = "220802100201";
const TAONAN_VILLAGE: &str = "220881100201";
const TAONAN_OTHER_VILLAGE: &str = "220881100200";
const NUMBER: &str = "2208021002010001";

async fn send(app: &TestApp, token: &str, method: Method, path: &str, body: &Value) -> Response {
    app.request(method, path)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request")
}

async fn created(response: Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// A survey of `village` whose head is `head_id`, with an optional household number.
fn survey(id: &str, village: &str, head_id: &str, number: Option<&str>, at: &str) -> Value {
    let mut body = household_survey(id, "张三", head_id, &[]);
    body["village_code"] = json!(village);
    body["household"]["household_number"] = json!(number);
    body["surveyed_at"] = json!(at);
    // Inside the village's county (the geofence does not matter for surveys).
    body
}

fn flags(answer: &Value) -> Vec<String> {
    let mut out: Vec<String> = answer["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

async fn households_of_village(app: &TestApp, token: &str, village: &str) -> (i64, i64) {
    let inventory: Value = app
        .get_as(
            token,
            &format!("/api/v1/inventory?level=village&code={village}&month=2020-07"),
        )
        .await
        .json()
        .await
        .expect("inventory");
    let row = inventory["node"]["figures"]
        .as_array()
        .expect("figures")
        .iter()
        .find(|r| r["key"] == "households")
        .cloned()
        .expect("households figure");
    (
        row["approved"].as_i64().expect("approved"),
        row["including_pending"].as_i64().expect("pending"),
    )
}

async fn approve(app: &TestApp, token: &str, survey_id: &str) {
    created(
        send(
            app,
            token,
            Method::POST,
            &format!("/api/v1/surveys/{survey_id}/review"),
            &json!({"decision": "approve"}),
        )
        .await,
    )
    .await;
}

async fn a_key_of_another_county_is_flagged_never_merged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (taobei_field, taonan_field) = (
        app.token(ENUMERATOR_TAOBEI).await,
        app.token(ENUMERATOR_TAONAN).await,
    );
    let (taobei, taonan, city) = (
        app.token(REVIEWER_TAOBEI).await,
        app.token(REVIEWER_TAONAN).await,
        app.token(CITY_ADMIN).await,
    );
    let head = id_number("220802", "19700101", 123);
    let original = created(
        send(
            &app,
            &taobei_field,
            Method::POST,
            "/api/v1/surveys/households",
            &survey(
                &uuid::Uuid::now_v7().to_string(),
                TAOBEI_VILLAGE,
                &head,
                Some(NUMBER),
                "2020-07-10T09:00:00+08:00",
            ),
        )
        .await,
    )
    .await;
    let taobei_household = original["household_id"].as_str().expect("id").to_owned();
    approve(&app, &taobei, original["id"].as_str().expect("id")).await;
    assert_eq!(
        households_of_village(&app, &taobei, TAOBEI_VILLAGE).await,
        (1, 1)
    );

    // 洮南 names 洮北's household number (another head): its own household, flagged.
    let by_number = created(
        send(
            &app,
            &taonan_field,
            Method::POST,
            "/api/v1/surveys/households",
            &survey(
                &uuid::Uuid::now_v7().to_string(),
                TAONAN_VILLAGE,
                &id_number("220881", "19650303", 211),
                Some(NUMBER),
                "2020-07-20T09:00:00+08:00",
            ),
        )
        .await,
    )
    .await;
    let taonan_household = by_number["household_id"].as_str().expect("id").to_owned();
    assert_ne!(taonan_household, taobei_household);
    assert_eq!(by_number["version"], 1);
    assert_eq!(flags(&by_number), ["household_in_other_county"]);
    assert_eq!(
        by_number["flag_details"][0]["related_household_id"],
        Value::Null
    );
    assert!(
        !by_number.to_string().contains(&taobei_household),
        "the answer names nothing of the other county: {by_number}"
    );
    // Nor does its text: 「另一户」, not 洮北's village.
    let said = by_number["flag_details"][0]["detail"]
        .as_str()
        .expect("detail");
    assert!(said.contains("另一户"), "{said}");
    assert!(!said.contains("洮北") && !said.contains("平安"), "{said}");
    // The city sees both counties: its reading names 洮北's household.
    let for_city: Value = app
        .get_as(
            &city,
            &format!("/api/v1/surveys/{}", by_number["id"].as_str().expect("id")),
        )
        .await
        .json()
        .await
        .expect("survey");
    assert_eq!(
        for_city["flag_details"][0]["related_household_id"],
        taobei_household.as_str()
    );
    assert!(
        for_city["flag_details"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("与洮北区平安镇平安村委会 张三户（其他县（市、区））相同")),
        "{for_city}"
    );
    // 洮南 names 洮北's head's ID number (no household number): the head-ID path, the same.
    let by_head = created(
        send(
            &app,
            &taonan_field,
            Method::POST,
            "/api/v1/surveys/households",
            &survey(
                &uuid::Uuid::now_v7().to_string(),
                TAONAN_OTHER_VILLAGE,
                &head,
                None,
                "2020-07-21T09:00:00+08:00",
            ),
        )
        .await,
    )
    .await;
    let head_household = by_head["household_id"].as_str().expect("id").to_owned();
    assert!(![&taobei_household, &taonan_household].contains(&&head_household));
    // Its members are 洮北's people too: flagged, and again without naming the household.
    assert_eq!(
        flags(&by_head),
        ["household_in_other_county", "person_in_multiple_households"]
    );
    assert!(by_head["flag_details"]
        .as_array()
        .expect("details")
        .iter()
        .all(|f| f["related_household_id"].is_null()));
    assert!(!by_head.to_string().contains(&taobei_household));

    // Nothing of 洮北 is visible to 洮南, even revealed, and 洮北 still has its household.
    problem(
        app.get_as(&taonan, &format!("/api/v1/households/{taobei_household}"))
            .await,
        404,
        "not_found",
    )
    .await;
    let revealed: Value = app
        .get_as(
            &taonan,
            &format!(
                "/api/v1/surveys/{}?reveal=true&reason=%E6%A0%B8%E5%AF%B9",
                by_head["id"].as_str().expect("id")
            ),
        )
        .await
        .json()
        .await
        .expect("survey");
    assert_eq!(revealed["household_id"], head_household.as_str());
    assert!(revealed["flag_details"]
        .as_array()
        .expect("details")
        .iter()
        .all(|f| f["related_household_id"].is_null()
            && f["detail"].as_str().is_some_and(|d| d.contains("另一户")
                && !d.contains("洮北")
                && !d.contains("平安"))));
    let home: Value = app
        .get_as(&taobei, &format!("/api/v1/households/{taobei_household}"))
        .await
        .json()
        .await
        .expect("household");
    assert_eq!(home["versions"].as_array().map(Vec::len), Some(1));
    assert_eq!(home["village_code"], TAOBEI_VILLAGE);
    assert_eq!(home["household_number"], NUMBER);
    // 洮北's survey is flagged too (whichever side arrives first, both carry the flag), and
    // names neither 洮南 household to 洮北's reviewer.
    assert_eq!(
        home["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .map(|f| (f["flag"].clone(), f["related_household_id"].clone()))
            .collect::<Vec<_>>(),
        vec![
            (json!("household_in_other_county"), Value::Null),
            (json!("household_in_other_county"), Value::Null),
            // The same people are in 洮南's households' latest versions: shown on both sides,
            // naming no household of the other county.
            (json!("person_in_multiple_households"), Value::Null)
        ]
    );
    for f in home["flags"].as_array().expect("flags") {
        let d = f["detail"].as_str().expect("detail");
        assert!(
            !d.contains("洮南") && !d.contains("荣华") && !d.contains("瓦房"),
            "{d}"
        );
    }

    // 洮南 approves: 洮北's counts do not move.
    approve(&app, &taonan, by_number["id"].as_str().expect("id")).await;
    approve(&app, &taonan, by_head["id"].as_str().expect("id")).await;
    assert_eq!(
        households_of_village(&app, &taobei, TAOBEI_VILLAGE).await,
        (1, 1)
    );
    assert_eq!(
        households_of_village(&app, &taonan, TAONAN_VILLAGE).await,
        (1, 1)
    );

    // The pairs are the city's: county reviewers neither list nor decide them.
    for token in [&taobei, &taonan] {
        let page: Value = app
            .get_as(token, "/api/v1/duplicates")
            .await
            .json()
            .await
            .expect("page");
        assert_eq!(
            page["items"],
            json!([]),
            "a county lists no cross-county pair"
        );
    }
    let page: Value = app
        .get_as(&city, "/api/v1/duplicates?kind=household_in_other_county")
        .await
        .json()
        .await
        .expect("page");
    let pairs = page["items"].as_array().expect("items");
    assert_eq!(pairs.len(), 2);
    assert!(pairs
        .iter()
        .all(|p| p["kind"] == "household_in_other_county"));
    let decide = |a: &str, b: &str| format!("/api/v1/duplicates/{a}/{b}");
    problem(
        send(
            &app,
            &taonan,
            Method::POST,
            &decide(&taobei_household, &taonan_household),
            &json!({"action": "merge", "survivor": taonan_household}),
        )
        .await,
        404,
        "not_found",
    )
    .await;

    // The city: the head-ID one was a mistake; the number one a transfer (the household moved
    // to 洮南, where it was surveyed last).
    let mistake = created(
        send(
            &app,
            &city,
            Method::POST,
            &decide(&taobei_household, &head_household),
            &json!({"action": "keep_apart", "reason": "户主身份证号录入错误"}),
        )
        .await,
    )
    .await;
    assert_eq!(mistake["state"], "kept_apart");
    let transfer = created(
        send(
            &app,
            &city,
            Method::POST,
            &decide(&taobei_household, &taonan_household),
            &json!({"action": "merge", "survivor": taobei_household}),
        )
        .await,
    )
    .await;
    assert_eq!(transfer["state"], "merged");
    assert_eq!(transfer["kind"], "household_in_other_county");
    assert_eq!(
        households_of_village(&app, &city, TAOBEI_VILLAGE).await,
        (0, 0)
    );
    assert_eq!(
        households_of_village(&app, &city, TAONAN_VILLAGE).await,
        (1, 1)
    );
    let actions: Vec<String> = {
        use diesel::prelude::*;
        use taizhang::db::schema::audit_log;
        let mut conn = app.settings.database.establish().expect("db");
        audit_log::table
            .filter(audit_log::subject_type.eq("household_pair"))
            .order(audit_log::seq)
            .select(audit_log::action)
            .load(&mut conn)
            .expect("audit")
    };
    assert_eq!(actions, ["confirm_key_mistake", "confirm_transfer"]);

    // After the transfer, 洮南's next survey by the number is the same household, unflagged.
    let next = created(
        send(
            &app,
            &taonan_field,
            Method::POST,
            "/api/v1/surveys/households",
            &survey(
                &uuid::Uuid::now_v7().to_string(),
                TAONAN_VILLAGE,
                &id_number("220881", "19650303", 211),
                Some(NUMBER),
                "2020-08-05T09:00:00+08:00",
            ),
        )
        .await,
    )
    .await;
    assert_eq!(next["household_id"], taobei_household.as_str());
    assert_eq!(next["version"], 3);
    assert!(flags(&next).is_empty(), "{next}");
}

/// Each survey's flags, and (approved, including pending) households of each village.
type Outcome = (Vec<(String, Vec<String>)>, Vec<(i64, i64)>);

/// Flags and figures do not depend on the order in which the two counties' surveys arrive.
async fn cross_county_flags_are_the_same_in_any_arrival_order(backend: Backend) {
    let ids: Vec<String> = (0..3).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let head = id_number("220802", "19700101", 123);
    let surveys = [
        // 洮北 twice (a revisit), 洮南 once, all with the same number.
        (
            ENUMERATOR_TAOBEI,
            survey(
                &ids[0],
                TAOBEI_VILLAGE,
                &head,
                Some(NUMBER),
                "2020-07-10T09:00:00+08:00",
            ),
        ),
        (
            ENUMERATOR_TAOBEI,
            survey(
                &ids[1],
                TAOBEI_VILLAGE,
                &head,
                Some(NUMBER),
                "2020-07-15T09:00:00+08:00",
            ),
        ),
        (
            ENUMERATOR_TAONAN,
            survey(
                &ids[2],
                TAONAN_VILLAGE,
                &id_number("220881", "19650303", 211),
                Some(NUMBER),
                "2020-07-12T09:00:00+08:00",
            ),
        ),
    ];
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let mut outcomes: Vec<Outcome> = Vec::new();
    for order in orders {
        let app = TestApp::spawn(backend).await;
        for &i in &order {
            let token = app.token(surveys[i].0).await;
            created(
                send(
                    &app,
                    &token,
                    Method::POST,
                    "/api/v1/surveys/households",
                    &surveys[i].1,
                )
                .await,
            )
            .await;
        }
        let city = app.token(CITY_ADMIN).await;
        let mut flagged = Vec::new();
        for id in &ids {
            let detail: Value = app
                .get_as(&city, &format!("/api/v1/surveys/{id}"))
                .await
                .json()
                .await
                .expect("survey");
            flagged.push((id.clone(), flags(&detail)));
        }
        let figures = vec![
            households_of_village(&app, &city, TAOBEI_VILLAGE).await,
            households_of_village(&app, &city, TAONAN_VILLAGE).await,
        ];
        outcomes.push((flagged, figures));
        app.stop().await;
    }
    let expected = (
        ids.iter()
            .map(|id| (id.clone(), vec!["household_in_other_county".to_owned()]))
            .collect::<Vec<_>>(),
        vec![(0, 1), (0, 1)],
    );
    for (order, outcome) in orders.iter().zip(&outcomes) {
        assert_eq!(outcome, &expected, "arrival order {order:?}");
    }
}

/// Two counties' first surveys of one key, sent at once to two servers on one database: however
/// they interleave, both end up flagged and paired (the key's lock serialises them).
async fn simultaneous_first_surveys_of_one_key_are_both_flagged(backend: Backend) {
    let first = TestApp::spawn(backend).await;
    let second = TestApp::spawn_on(first.database(), |_| {}).await;
    let (taobei, taonan) = (
        first.token(ENUMERATOR_TAOBEI).await,
        second.token(ENUMERATOR_TAONAN).await,
    );
    let city = first.token(CITY_ADMIN).await;
    for round in 0..6u32 {
        let number = format!("22080210020100{round:02}");
        let (a, b) = (
            survey(
                &uuid::Uuid::now_v7().to_string(),
                TAOBEI_VILLAGE,
                &id_number("220802", "19700101", 101 + 2 * round),
                Some(&number),
                "2020-07-10T09:00:00+08:00",
            ),
            survey(
                &uuid::Uuid::now_v7().to_string(),
                TAONAN_VILLAGE,
                &id_number("220881", "19650303", 301 + 2 * round),
                Some(&number),
                "2020-07-11T09:00:00+08:00",
            ),
        );
        let (ra, rb) = tokio::join!(
            send(
                &first,
                &taobei,
                Method::POST,
                "/api/v1/surveys/households",
                &a
            ),
            send(
                &second,
                &taonan,
                Method::POST,
                "/api/v1/surveys/households",
                &b
            ),
        );
        let (ra, rb) = (created(ra).await, created(rb).await);
        for answer in [&ra, &rb] {
            let stored: Value = first
                .get_as(
                    &city,
                    &format!("/api/v1/surveys/{}", answer["id"].as_str().expect("id")),
                )
                .await
                .json()
                .await
                .expect("survey");
            assert_eq!(
                flags(&stored),
                ["household_in_other_county"],
                "round {round}"
            );
        }
    }
}

fn photo_bytes(seed: u64) -> Vec<u8> {
    let now = Utc::now().with_timezone(&FixedOffset::east_opt(8 * 3600).expect("offset"));
    let stamp = now.format("%Y:%m:%d %H:%M:%S").to_string();
    with_exif(
        &jpeg(&Scene::new(seed).render(640, 480, 0.0), 85),
        &ExifSpec {
            taken_at: &stamp,
            offset: "+08:00",
            lat: 45.736537,
            lon: 122.566161,
            orientation: 1,
        },
    )
}

fn checkin(village: &str, photo: &str, at: (f64, f64)) -> Value {
    let now = Utc::now() - Duration::minutes(10);
    json!({
        "submission_id": uuid::Uuid::now_v7().to_string(), "kind": "resident_duty",
        "village_code": village, "worker_id_number": null,
        "captured_at": now.with_timezone(&FixedOffset::east_opt(8 * 3600).expect("offset")).to_rfc3339(),
        "location": {"lat": at.0, "lon": at.1, "accuracy_m": 10.0, "crs": "wgs84"},
        "mock_location": false, "photo": photo, "device": {"device_id": "d", "app_version": "1.0.0"}
    })
}

fn rows(app: &TestApp, table: &str) -> i64 {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.settings.database.establish().expect("db");
    diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
        .get_result::<Count>(&mut conn)
        .expect("count")
        .n
}

async fn photos_belong_to_their_uploaders(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, secretary, stranger) = (
        app.token(ENUMERATOR_TAOBEI).await,
        app.token(SECRETARY_TAOBEI).await,
        app.token(ENUMERATOR_TAONAN).await,
    );
    let bytes = photo_bytes(4101);
    let sha = hex::encode(Sha256::digest(&bytes));
    assert_eq!(
        app.put_photo(&owner, &sha, bytes.clone()).await.status(),
        201
    );

    // HEAD answers for the caller's own uploads only.
    assert_eq!(app.head_photo(&owner, &sha).await, 200);
    assert_eq!(app.head_photo(&stranger, &sha).await, 404);
    assert_eq!(app.head_photo(&secretary, &sha).await, 404);

    // Naming someone else's photo: missing, as if it did not exist; nothing stored.
    let mut body = household_survey(
        &uuid::Uuid::now_v7().to_string(),
        "王五",
        &id_number("220881", "19750505", 301),
        std::slice::from_ref(&sha),
    );
    body["village_code"] = json!(TAONAN_VILLAGE);
    let before = rows(&app, "submissions");
    let refused = problem(
        send(
            &app,
            &stranger,
            Method::POST,
            "/api/v1/surveys/households",
            &body,
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        (refused["field"].as_str(), refused["rule"].as_str()),
        (Some("photos[0]"), Some("photo_missing"))
    );
    let unknown = format!("{:064x}", 99);
    let mut with_unknown = body.clone();
    with_unknown["submission_id"] = json!(uuid::Uuid::now_v7().to_string());
    with_unknown["photos"] = json!([unknown]);
    let unknown_refusal = problem(
        send(
            &app,
            &stranger,
            Method::POST,
            "/api/v1/surveys/households",
            &with_unknown,
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        unknown_refusal["rule"], refused["rule"],
        "the same answer as a photo nobody has"
    );
    let checkin_body = checkin(TAONAN_VILLAGE, &sha, (45.33, 122.79));
    let refused = problem(
        send(
            &app,
            &stranger,
            Method::POST,
            "/api/v1/checkins",
            &checkin_body,
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        (refused["field"].as_str(), refused["rule"].as_str()),
        (Some("photo"), Some("photo_missing"))
    );
    assert_eq!(rows(&app, "submissions"), before);
    problem(
        app.get_as(&stranger, &format!("/api/v1/photos/{sha}?size=full"))
            .await,
        404,
        "not_found",
    )
    .await;

    // Claiming the photo takes its bytes: a wrong or empty body is refused and changes nothing.
    for wrong in [photo_bytes(4102), Vec::new()] {
        let refused = problem(
            app.put_photo(&stranger, &sha, wrong).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(refused["rule"], "sha256_mismatch");
        assert_eq!(app.head_photo(&stranger, &sha).await, 404);
    }
    // With the bytes, the stranger is an uploader too (200: stored already) and may name it.
    assert_eq!(app.put_photo(&stranger, &sha, bytes).await.status(), 200);
    assert_eq!(app.head_photo(&stranger, &sha).await, 200);
    created(
        send(
            &app,
            &stranger,
            Method::POST,
            "/api/v1/surveys/households",
            &body,
        )
        .await,
    )
    .await;
    assert_eq!(rows(&app, "submissions"), before + 1);
}

/// A village's reference position, (lat, lon).
async fn centroid(app: &TestApp, token: &str, code: &str) -> (f64, f64) {
    let village: Value = app
        .get_as(token, &format!("/api/v1/villages/{code}"))
        .await
        .json()
        .await
        .expect("village");
    (
        village["centroid"]["lat"].as_f64().expect("lat"),
        village["centroid"]["lon"].as_f64().expect("lon"),
    )
}

async fn a_photo_reused_anywhere_in_the_county_is_flagged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (secretary, enumerator, stranger) = (
        app.token(SECRETARY_TAOBEI).await,
        app.token(ENUMERATOR_TAOBEI).await,
        app.token(ENUMERATOR_TAONAN).await,
    );
    let admin = app.token(CITY_ADMIN).await;
    let pingan = centroid(&app, &admin, "220802100201").await;
    let other = centroid(&app, &admin, "220802100200").await;
    let taonan = centroid(&app, &admin, TAONAN_VILLAGE).await;

    // The first secretary's check-in in 平安村.
    let bytes = photo_bytes(4201);
    let sha = hex::encode(Sha256::digest(&bytes));
    let first = check_in(&app, &secretary, "220802100201", pingan, &bytes, 201).await;
    assert!(!first, "the first use is no reuse");

    // Another person, another village of the county, the same bytes (uploaded again): reused.
    assert!(check_in(&app, &enumerator, "220802100200", other, &bytes, 200).await);

    // A near copy (resized, re-encoded) by that other person: reused too.
    let near = {
        let decoded = image::load_from_memory(&bytes).expect("decode").to_rgb8();
        let smaller =
            image::imageops::resize(&decoded, 480, 360, image::imageops::FilterType::Triangle);
        jpeg(&smaller, 70)
    };
    assert!(check_in(&app, &enumerator, "220802100200", other, &near, 201).await);

    // A fresh picture of that village: not reused (the near miss).
    let fresh = photo_bytes(4299);
    assert!(!check_in(&app, &enumerator, "220802100200", other, &fresh, 201).await);

    // Another county is outside the rule (and its user had to upload the bytes to name them).
    assert!(!check_in(&app, &stranger, TAONAN_VILLAGE, taonan, &bytes, 200).await);
    assert_eq!(app.head_photo(&stranger, &sha).await, 200);
}

/// Uploads `bytes` as `token` (expecting `upload_status`), checks in with them at `at` in
/// `village`, and tells whether the check-in was flagged `photo_reused`.
async fn check_in(
    app: &TestApp,
    token: &str,
    village: &str,
    at: (f64, f64),
    bytes: &[u8],
    upload_status: u16,
) -> bool {
    let sha = hex::encode(Sha256::digest(bytes));
    assert_eq!(
        app.put_photo(token, &sha, bytes.to_vec()).await.status(),
        upload_status
    );
    let answer = created(
        send(
            app,
            token,
            Method::POST,
            "/api/v1/checkins",
            &checkin(village, &sha, at),
        )
        .await,
    )
    .await;
    flags(&answer).contains(&"photo_reused".to_owned())
}

both_backends!(
    a_key_of_another_county_is_flagged_never_merged,
    cross_county_flags_are_the_same_in_any_arrival_order,
    simultaneous_first_surveys_of_one_key_are_both_flagged,
    photos_belong_to_their_uploaders,
    a_photo_reused_anywhere_in_the_county_is_flagged,
);
