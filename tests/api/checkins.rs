//! Check-ins over HTTP: exactly-once, every flag on its case and silent on the near miss, and
//! attendance equal to a recomputation from the raw check-ins — on both databases.

use chrono::{DateTime, Duration, FixedOffset, Utc};
use geo::{Bearing, Destination, Haversine, Point};
use reqwest::Response;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use taizhang::simulate::photos::{jpeg, with_exif, ExifSpec, Scene};

use crate::helpers::*;
use crate::surveys::{household_survey, id_number, new_id};

/// 平安村 (220802100201): a circle of 7942 m around this centre.
const CENTRE: (f64, f64) = (45.736537, 122.566161);
const RADIUS_M: f64 = 7942.0;

fn china(t: DateTime<Utc>) -> String {
    t.with_timezone(&FixedOffset::east_opt(8 * 3600).expect("offset"))
        .to_rfc3339()
}

/// A fresh JPEG of scene `seed` whose EXIF says it was taken at `taken` at `(lat, lon)`.
fn photo(seed: u64, taken: DateTime<Utc>, at: (f64, f64)) -> Vec<u8> {
    let local = taken.with_timezone(&FixedOffset::east_opt(8 * 3600).expect("offset"));
    let stamp = local.format("%Y:%m:%d %H:%M:%S").to_string();
    let spec = ExifSpec {
        taken_at: &stamp,
        offset: "+08:00",
        lat: at.0,
        lon: at.1,
        orientation: 1,
    };
    with_exif(&jpeg(&Scene::new(seed).render(320, 240, 0.0), 85), &spec)
}

async fn upload(app: &TestApp, token: &str, bytes: Vec<u8>, content_type: &str) -> String {
    let sha = hex::encode(Sha256::digest(&bytes));
    let response = app
        .request(reqwest::Method::PUT, &format!("/api/v1/photos/{sha}"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .expect("upload");
    assert!(
        response.status().is_success(),
        "upload: {}",
        response.status()
    );
    sha
}

pub struct Shot {
    pub seed: u64,
    pub captured: DateTime<Utc>,
    pub at: (f64, f64),
    pub accuracy: f64,
    pub crs: &'static str,
    pub village: &'static str,
}

impl Shot {
    pub fn new(seed: u64, captured: DateTime<Utc>) -> Self {
        Self {
            seed,
            captured,
            at: CENTRE,
            accuracy: 10.0,
            crs: "wgs84",
            village: "220802100201",
        }
    }
}

pub async fn checkin_body(app: &TestApp, token: &str, shot: &Shot) -> Value {
    let sha = upload(
        app,
        token,
        photo(shot.seed, shot.captured, shot.at),
        "image/jpeg",
    )
    .await;
    json!({
        "submission_id": new_id(), "kind": "resident_duty", "village_code": shot.village, "worker_id_number": null,
        "captured_at": china(shot.captured),
        "location": {"lat": shot.at.0, "lon": shot.at.1, "accuracy_m": shot.accuracy, "crs": shot.crs},
        "mock_location": false, "photo": sha, "device": {"device_id": "d", "app_version": "1.0.0"}
    })
}

pub async fn post(app: &TestApp, token: &str, body: &Value) -> Response {
    app.post("/api/v1/checkins")
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("post")
}

async fn flags_of(app: &TestApp, token: &str, shot: &Shot) -> Vec<String> {
    let body = checkin_body(app, token, shot).await;
    let response = post(app, token, &body).await;
    assert_eq!(response.status(), 201);
    let answer: Value = response.json().await.expect("json");
    let flags: Vec<String> = answer["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        answer["status"],
        if flags.is_empty() {
            "accepted"
        } else {
            "flagged"
        }
    );
    flags
}

fn point(at: (f64, f64)) -> Point<f64> {
    Point::new(at.1, at.0)
}

fn moved(from: (f64, f64), bearing: f64, metres: f64) -> (f64, f64) {
    let p = Haversine.destination(point(from), bearing, metres);
    (p.y(), p.x())
}

async fn accepted_then_replayed_even_a_week_later(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(SECRETARY_TAOBEI).await;
    let taken = Utc::now() - Duration::minutes(3);
    let body = checkin_body(&app, &token, &Shot::new(1001, taken)).await;
    let first = post(&app, &token, &body).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    assert_eq!(first["status"], "accepted", "{first}");
    // The day it was taken, in China (not today's: the two differ just after midnight).
    let today = taken
        .with_timezone(&FixedOffset::east_opt(8 * 3600).expect("offset"))
        .date_naive();
    assert_eq!(first["attendance_date"], today.to_string());

    // A week passes (the receipt ages), then the phone sends the same check-in again.
    use diesel::prelude::*;
    use taizhang::db::schema::{checkins, submissions};
    let mut conn = app.settings.database.establish().expect("db");
    let week_ago = (taken - Duration::days(8)).naive_utc();
    diesel::update(submissions::table)
        .set(submissions::received_at.eq(week_ago))
        .execute(&mut conn)
        .expect("age");
    diesel::update(checkins::table)
        .set(checkins::received_at.eq(week_ago))
        .execute(&mut conn)
        .expect("age");
    let again = post(&app, &token, &body).await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.json::<Value>().await.expect("json"),
        first,
        "the first answer, not a stale one"
    );
    let stored: i64 = checkins::table
        .count()
        .get_result(&mut conn)
        .expect("count");
    assert_eq!(stored, 1);
    let month = today.format("%Y-%m");
    let attendance: Value = app
        .get_as(&token, &format!("/api/v1/attendance?month={month}"))
        .await
        .json()
        .await
        .expect("json");
    let secretary = attendance["people"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["role"] == "first_secretary"))
        .expect("the secretary");
    assert_eq!(secretary["days_present"], 1, "{attendance}");
}

async fn geofence_edges_accuracy_and_gcj02(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(SECRETARY_TAOBEI).await;
    // Hours apart, so moving about the village is never impossible travel.
    let now = Utc::now() - Duration::hours(6);
    // 50 m outside the circle: outside with 10 m accuracy, inside with 60 m.
    let mut shot = Shot::new(1002, now);
    shot.at = moved(CENTRE, 0.0, RADIUS_M + 50.0);
    assert_eq!(flags_of(&app, &token, &shot).await, ["outside_geofence"]);
    shot.seed = 1003;
    shot.accuracy = 60.0;
    shot.captured = now + Duration::hours(1);
    assert!(flags_of(&app, &token, &shot).await.is_empty());

    // A position read from Amap (GCJ-02): inside only once converted to WGS-84.
    let (g_lat, g_lon) = taizhang::geography::crs::wgs84_to_gcj02(CENTRE.0, CENTRE.1);
    let offset_bearing = Haversine.bearing(point(CENTRE), Point::new(g_lon, g_lat));
    let inside_wgs = moved(CENTRE, offset_bearing, RADIUS_M - 100.0);
    let as_gcj = taizhang::geography::crs::wgs84_to_gcj02(inside_wgs.0, inside_wgs.1);
    let mut shot = Shot::new(1004, now + Duration::hours(2));
    shot.at = as_gcj;
    shot.crs = "gcj02";
    assert!(
        flags_of(&app, &token, &shot).await.is_empty(),
        "converted, it is inside"
    );
    let mut shot = Shot::new(1005, now + Duration::hours(3));
    shot.at = as_gcj;
    assert_eq!(
        flags_of(&app, &token, &shot).await,
        ["outside_geofence"],
        "taken as WGS-84 it is not"
    );
}

async fn polygon_geofences_count_the_boundary_as_inside(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // 新平村 (洮北区) has no position of its own: its geofence is the county boundary.
    let admin = app.token(CITY_ADMIN).await;
    let created = app
        .post("/api/v1/users")
        .bearer_auth(&admin)
        .json(&json!({"phone": "13811110000", "name": "新平村第一书记", "role": "first_secretary", "villages": ["220802170300"], "password": "long enough"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let token = app
        .login_response("13811110000", "long enough", "d")
        .await
        .json::<Value>()
        .await
        .expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let village: Value = app
        .get_as(&token, "/api/v1/villages/220802170300")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(village["geofence_kind"], "polygon");
    let vertex = &village["geofence"]["coordinates"][0][0][0];
    let on_boundary = (
        vertex[1].as_f64().expect("lat"),
        vertex[0].as_f64().expect("lon"),
    );
    let now = Utc::now() - Duration::hours(5);
    let mut shot = Shot::new(1006, now);
    shot.village = "220802170300";
    shot.at = on_boundary;
    assert!(
        flags_of(&app, &token, &shot).await.is_empty(),
        "a point on the boundary is in"
    );
    // Well outside the county (120 km west), even with a 1 km accuracy circle: out.
    let mut far = Shot::new(1007, now + Duration::hours(3));
    far.village = "220802170300";
    far.at = (on_boundary.0, on_boundary.1 - 1.6);
    far.accuracy = 90.0;
    assert_eq!(flags_of(&app, &token, &far).await, ["outside_geofence"]);
}

async fn local_midnight_splits_days_and_travel_is_judged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(SECRETARY_TAOBEI).await;
    let today = (Utc::now() - Duration::days(2))
        .with_timezone(&FixedOffset::east_opt(8 * 3600).expect("offset"))
        .date_naive();
    let local = |day: chrono::NaiveDate, h: u32, m: u32| {
        day.and_hms_opt(h, m, 0)
            .expect("time")
            .and_local_timezone(FixedOffset::east_opt(8 * 3600).expect("offset"))
            .single()
            .expect("local")
            .with_timezone(&Utc)
    };
    let late = Shot::new(1008, local(today, 23, 59));
    let body = checkin_body(&app, &token, &late).await;
    let a: Value = post(&app, &token, &body).await.json().await.expect("json");
    let early = Shot::new(1009, local(today + Duration::days(1), 0, 1));
    let body = checkin_body(&app, &token, &early).await;
    let b: Value = post(&app, &token, &body).await.json().await.expect("json");
    assert_eq!(a["attendance_date"], today.to_string());
    assert_eq!(
        b["attendance_date"],
        (today + Duration::days(1)).to_string()
    );
    assert!(
        a["flags"].as_array().expect("flags").is_empty()
            && b["flags"].as_array().expect("flags").is_empty()
    );

    // 50 km east ten minutes later: impossible. (The village geofence is left too.)
    let mut jump = Shot::new(1010, local(today + Duration::days(1), 0, 11));
    jump.at = moved(CENTRE, 90.0, 50_000.0);
    let flags = flags_of(&app, &token, &jump).await;
    assert!(flags.contains(&"impossible_travel".to_owned()), "{flags:?}");
    // The same 50 km two hours after that: a drive, not a jump.
    let mut drive = Shot::new(1011, local(today + Duration::days(1), 2, 11));
    drive.at = CENTRE;
    assert!(!flags_of(&app, &token, &drive)
        .await
        .contains(&"impossible_travel".to_owned()));
}

async fn reused_photos_mock_locations_times_and_exif(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(SECRETARY_TAOBEI).await;
    let now = Utc::now() - Duration::minutes(30);
    let first = Shot::new(1012, now);
    assert!(flags_of(&app, &token, &first).await.is_empty());
    // The same picture re-encoded at quality 60 and resized: reused.
    let original = image::load_from_memory(&photo(1012, now, CENTRE))
        .expect("decode")
        .to_rgb8();
    let smaller =
        image::imageops::resize(&original, 240, 180, image::imageops::FilterType::Triangle);
    let spec_time = (now + Duration::minutes(5))
        .with_timezone(&FixedOffset::east_opt(8 * 3600).expect("offset"))
        .format("%Y:%m:%d %H:%M:%S")
        .to_string();
    let edited = with_exif(
        &jpeg(&smaller, 60),
        &ExifSpec {
            taken_at: &spec_time,
            offset: "+08:00",
            lat: CENTRE.0,
            lon: CENTRE.1,
            orientation: 1,
        },
    );
    let sha = upload(&app, &token, edited, "image/jpeg").await;
    let body = json!({
        "submission_id": new_id(), "kind": "resident_duty", "village_code": "220802100201", "worker_id_number": null,
        "captured_at": china(now + Duration::minutes(5)), "location": {"lat": CENTRE.0, "lon": CENTRE.1, "accuracy_m": 10.0},
        "mock_location": false, "photo": sha, "device": {"device_id": "d", "app_version": "1.0.0"}
    });
    let answer: Value = post(&app, &token, &body).await.json().await.expect("json");
    assert_eq!(answer["flags"], json!(["photo_reused"]));

    let mut mock = checkin_body(&app, &token, &Shot::new(1013, now + Duration::minutes(10))).await;
    mock["mock_location"] = json!(true);
    let answer: Value = post(&app, &token, &mock).await.json().await.expect("json");
    assert_eq!(answer["flags"], json!(["mock_location"]));

    let future = Shot::new(1014, Utc::now() + Duration::hours(1));
    assert_eq!(flags_of(&app, &token, &future).await, ["future_time"]);
    let stale = Shot::new(1015, Utc::now() - Duration::days(8));
    assert_eq!(flags_of(&app, &token, &stale).await, ["stale_time"]);
    let six_days = Shot::new(1016, Utc::now() - Duration::days(6));
    assert!(
        flags_of(&app, &token, &six_days).await.is_empty(),
        "inside the upload window"
    );

    // A photo taken yesterday (by its EXIF) sent as today's check-in.
    let sha = upload(
        &app,
        &token,
        photo(1017, now - Duration::days(1), CENTRE),
        "image/jpeg",
    )
    .await;
    let body = json!({
        "submission_id": new_id(), "kind": "resident_duty", "village_code": "220802100201", "worker_id_number": null,
        "captured_at": china(now + Duration::minutes(20)), "location": {"lat": CENTRE.0, "lon": CENTRE.1, "accuracy_m": 10.0},
        "mock_location": false, "photo": sha, "device": {"device_id": "d", "app_version": "1.0.0"}
    });
    let answer: Value = post(&app, &token, &body).await.json().await.expect("json");
    assert_eq!(answer["flags"], json!(["exif_mismatch"]));

    // Refusals: a photo never uploaded, a malformed time.
    let mut body = checkin_body(&app, &token, &Shot::new(1019, now)).await;
    body["photo"] = json!(format!("{:064x}", 7));
    let refused = problem(post(&app, &token, &body).await, 422, "validation_failed").await;
    assert_eq!(refused["rule"], "photo_missing");
    body["captured_at"] = json!("yesterday");
    let refused = problem(post(&app, &token, &body).await, 422, "validation_failed").await;
    assert_eq!(
        (refused["field"].as_str(), refused["rule"].as_str()),
        (Some("captured_at"), Some("datetime_format"))
    );
}

async fn special_post_workers_must_hold_a_post(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let enumerator = app.token(ENUMERATOR_TAOBEI).await;
    let head = id_number("220802", "19700101", 123);
    let mut survey = household_survey(&new_id(), "张三", &head, &[]);
    survey["members"][0]["employment"] = json!({"status": "special_post", "employer_id": null, "post_type": null, "monthly_income_yuan": 800});
    let stored = app
        .post("/api/v1/surveys/households")
        .bearer_auth(&enumerator)
        .json(&survey)
        .send()
        .await
        .expect("survey");
    assert_eq!(stored.status(), 201);
    let spouse = survey["members"][1]["id_number"]
        .as_str()
        .expect("id")
        .to_owned();

    let secretary = app.token(SECRETARY_TAOBEI).await;
    let now = Utc::now() - Duration::minutes(10);
    let mut body = checkin_body(&app, &secretary, &Shot::new(1020, now)).await;
    body["kind"] = json!("special_post");
    body["worker_id_number"] = json!(head);
    let answer = post(&app, &secretary, &body).await;
    assert_eq!(answer.status(), 201);
    assert_eq!(
        answer.json::<Value>().await.expect("json")["status"],
        "accepted"
    );

    let mut not_holder = checkin_body(
        &app,
        &secretary,
        &Shot::new(1021, now + Duration::minutes(1)),
    )
    .await;
    not_holder["kind"] = json!("special_post");
    not_holder["worker_id_number"] = json!(spouse);
    let refused = problem(
        post(&app, &secretary, &not_holder).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        (refused["field"].as_str(), refused["rule"].as_str()),
        (Some("worker_id_number"), Some("not_a_post_holder"))
    );
    not_holder["worker_id_number"] = json!(null);
    let refused = problem(
        post(&app, &secretary, &not_holder).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(refused["rule"], "required");

    let month = now
        .with_timezone(&FixedOffset::east_opt(8 * 3600).expect("offset"))
        .format("%Y-%m");
    let attendance: Value = app
        .get_as(&secretary, &format!("/api/v1/attendance?month={month}"))
        .await
        .json()
        .await
        .expect("json");
    let worker = attendance["people"]
        .as_array()
        .expect("people")
        .iter()
        .find(|p| p["kind"] == "special_post")
        .expect("the worker");
    assert_eq!(worker["worker_id_number"], "220802********1238");
    assert_eq!(worker["name"], "张三");
    assert_eq!(worker["days_present"], 1);
}

/// The token the sync feed gives on a post holder of `village` (computed here with the test
/// server's key).
fn worker_ref(village: &str, id: &str) -> String {
    let keys = taizhang::secrets::Keys::load(
        &taizhang::secrets::SecretSource::Value(TEST_SECRET.into()),
        std::path::Path::new("."),
    )
    .expect("keys");
    let vault = taizhang::privacy::Vault::new(&keys);
    let id = taizhang::domain::IdNumber::parse(id).expect("id");
    vault.worker_ref(village, &vault.index_id(&id))
}

/// Stores a household of `village` whose head `head` holds a special post.
async fn post_holder(app: &TestApp, token: &str, village: &str, head: &str) {
    let mut survey = household_survey(&new_id(), "张三", head, &[]);
    survey["village_code"] = json!(village);
    survey["members"][0]["employment"] = json!({"status": "special_post", "employer_id": null, "post_type": null, "monthly_income_yuan": 800});
    let stored = app
        .post("/api/v1/surveys/households")
        .bearer_auth(token)
        .json(&survey)
        .send()
        .await
        .expect("survey");
    assert_eq!(stored.status(), 201);
}

async fn refused_on(app: &TestApp, token: &str, body: &Value) -> (String, String) {
    let refused = problem(post(app, token, body).await, 422, "validation_failed").await;
    (
        refused["field"].as_str().unwrap_or_default().to_owned(),
        refused["rule"].as_str().unwrap_or_default().to_owned(),
    )
}

/// A special-post check-in names its worker by the synced `worker_ref`: resolved in the
/// check-in's village only, exactly once, and the same person as a check-in by ID number.
async fn special_post_checkins_by_worker_ref(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let village = "220802100201";
    let head = id_number("220802", "19700101", 123);
    post_holder(&app, &app.token(ENUMERATOR_TAOBEI).await, village, &head).await;
    let elsewhere = id_number("220881", "19650101", 321);
    post_holder(
        &app,
        &app.token(ENUMERATOR_TAONAN).await,
        "220881100200",
        &elsewhere,
    )
    .await;

    let secretary = app.token(SECRETARY_TAOBEI).await;
    let now = Utc::now() - Duration::days(1);
    let mut by_ref = checkin_body(&app, &secretary, &Shot::new(1030, now)).await;
    by_ref["kind"] = json!("special_post");
    by_ref["worker_id_number"] = json!(null);
    by_ref["worker_ref"] = json!(worker_ref(village, &head));
    let first = post(&app, &secretary, &by_ref).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    assert_eq!(first["status"], "accepted");
    let replay = post(&app, &secretary, &by_ref).await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.json::<Value>().await.expect("json"), first);
    // The ref is part of the content: the same id with another worker is a reused id.
    let mut other = by_ref.clone();
    other["worker_ref"] = json!(worker_ref(village, &elsewhere));
    problem(
        post(&app, &secretary, &other).await,
        409,
        "submission_id_reused",
    )
    .await;

    // Refusals, nothing stored: another village's post holder (by its own village's ref, and
    // by this village's ref of a person not listed here), a garbage ref, both fields.
    let later = now + Duration::hours(2);
    let mut bad = checkin_body(&app, &secretary, &Shot::new(1031, later)).await;
    bad["kind"] = json!("special_post");
    bad["worker_id_number"] = json!(null);
    for token in [
        worker_ref("220881100200", &elsewhere),
        worker_ref(village, &elsewhere),
        worker_ref("220881100200", &head),
        "AAAAAAAAAAAA".to_owned(),
    ] {
        bad["worker_ref"] = json!(token);
        assert_eq!(
            refused_on(&app, &secretary, &bad).await,
            ("worker_ref".into(), "unknown_worker".into())
        );
    }
    bad["worker_ref"] = json!("not a ref!");
    assert_eq!(
        refused_on(&app, &secretary, &bad).await,
        ("worker_ref".into(), "invalid_value".into())
    );
    bad["worker_ref"] = json!(worker_ref(village, &head));
    bad["worker_id_number"] = json!(head);
    assert_eq!(
        refused_on(&app, &secretary, &bad).await,
        ("worker_ref".into(), "one_of".into())
    );
    bad["kind"] = json!("resident_duty");
    bad["worker_id_number"] = json!(null);
    assert_eq!(
        refused_on(&app, &secretary, &bad).await,
        ("worker_ref".into(), "not_allowed".into())
    );

    // The next day by ID number: the same person, two days present.
    let mut by_id = checkin_body(&app, &secretary, &Shot::new(1032, now + Duration::days(1))).await;
    by_id["kind"] = json!("special_post");
    by_id["worker_id_number"] = json!(head);
    assert_eq!(post(&app, &secretary, &by_id).await.status(), 201);
    let month = now
        .with_timezone(&FixedOffset::east_opt(8 * 3600).expect("offset"))
        .format("%Y-%m");
    let attendance: Value = app
        .get_as(&secretary, &format!("/api/v1/attendance?month={month}"))
        .await
        .json()
        .await
        .expect("json");
    let workers: Vec<&Value> = attendance["people"]
        .as_array()
        .expect("people")
        .iter()
        .filter(|p| p["kind"] == "special_post")
        .collect();
    let same_month = (now + Duration::days(1))
        .with_timezone(&FixedOffset::east_opt(8 * 3600).expect("offset"))
        .format("%Y-%m")
        .to_string()
        == month.to_string();
    assert_eq!(workers.len(), 1, "{workers:?}");
    assert_eq!(workers[0]["worker_id_number"], "220802********1238");
    assert_eq!(workers[0]["days_present"], if same_month { 2 } else { 1 });
}

/// Attendance from the API equals a recomputation from the raw check-in rows.
async fn attendance_equals_a_recomputation_from_raw_checkins(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = (Utc::now() - Duration::days(6))
        .with_timezone(&FixedOffset::east_opt(8 * 3600).expect("offset"))
        .date_naive();
    let at = |day: i64, h: u32| {
        (base + Duration::days(day))
            .and_hms_opt(h, 0, 0)
            .expect("time")
            .and_local_timezone(FixedOffset::east_opt(8 * 3600).expect("offset"))
            .single()
            .expect("local")
            .with_timezone(&Utc)
    };
    let mut seed = 1100;
    for (user, days) in [
        (SECRETARY_TAOBEI, vec![(0, 8), (0, 17), (1, 9), (3, 8)]),
        (ENUMERATOR_TAOBEI, vec![(0, 9), (2, 10), (2, 11), (4, 8)]),
    ] {
        let token = app.token(user).await;
        for (day, hour) in days {
            seed += 1;
            let mut shot = Shot::new(seed, at(day, hour));
            if user.phone == ENUMERATOR_TAOBEI.phone && day == 2 {
                shot.accuracy = 500.0; // both check-ins of that day flagged: a flagged day
            }
            let body = checkin_body(&app, &token, &shot).await;
            assert_eq!(post(&app, &token, &body).await.status(), 201);
        }
    }
    let admin = app.token(CITY_ADMIN).await;
    let months: std::collections::BTreeSet<String> = (0..5)
        .map(|d| (base + Duration::days(d)).format("%Y-%m").to_string())
        .collect();
    use diesel::prelude::*;
    use taizhang::db::schema::checkins;
    let mut conn = app.settings.database.establish().expect("db");
    let raw: Vec<(String, String, chrono::NaiveDate, String)> = checkins::table
        .select((
            checkins::subject,
            checkins::village_code,
            checkins::attendance_date,
            checkins::status,
        ))
        .load(&mut conn)
        .expect("rows");
    for month in months {
        let api: Value = app
            .get_as(&admin, &format!("/api/v1/attendance?month={month}"))
            .await
            .json()
            .await
            .expect("json");
        let mut expected = std::collections::BTreeMap::new();
        for (subject, village, date, status) in &raw {
            if date.format("%Y-%m").to_string() != month {
                continue;
            }
            let e = expected
                .entry((subject.clone(), village.clone()))
                .or_insert((
                    std::collections::BTreeSet::new(),
                    std::collections::BTreeSet::new(),
                ));
            e.1.insert(*date);
            if status == "accepted" {
                e.0.insert(*date);
            }
        }
        let people = api["people"].as_array().expect("people");
        // Everyone who must check in is listed; those without a check-in with nothing counted.
        let (absent, people): (Vec<&Value>, Vec<&Value>) =
            people.iter().partition(|p| p["no_checkins"] == true);
        assert_eq!(people.len(), expected.len(), "{api}");
        for p in &absent {
            let key = (
                p["subject"].as_str().expect("s").to_owned(),
                p["village_code"].as_str().expect("v").to_owned(),
            );
            assert!(!expected.contains_key(&key), "{key:?} checked in");
            assert_eq!(
                (p["days_present"].as_u64(), p["days_flagged"].as_u64()),
                (Some(0), Some(0))
            );
        }
        assert!(
            !absent.is_empty(),
            "the demo users who did not check in are listed"
        );
        for p in &people {
            let key = (
                p["subject"].as_str().expect("s").to_owned(),
                p["village_code"].as_str().expect("v").to_owned(),
            );
            let (present, seen) = &expected[&key];
            assert_eq!(p["days_present"], present.len(), "{key:?}");
            assert_eq!(
                p["days_flagged"],
                seen.difference(present).count(),
                "{key:?}"
            );
            assert_eq!(p["days_required"], 20);
            assert_eq!(p["requirement_met"], present.len() >= 20);
        }
        let village_total: u64 = api["villages"]
            .as_array()
            .expect("v")
            .iter()
            .map(|v| v["days_present"].as_u64().unwrap_or(0))
            .sum();
        let people_total: u64 = people
            .iter()
            .map(|p| p["days_present"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(village_total, people_total);

        // The check-in list agrees with the raw rows: flagged, accepted, all, newest first.
        let in_month: Vec<&(String, String, chrono::NaiveDate, String)> = raw
            .iter()
            .filter(|r| r.2.format("%Y-%m").to_string() == month)
            .collect();
        for (filter, expected) in [
            (
                "&flagged=true",
                in_month.iter().filter(|r| r.3 != "accepted").count(),
            ),
            (
                "&flagged=false",
                in_month.iter().filter(|r| r.3 == "accepted").count(),
            ),
            ("", in_month.len()),
        ] {
            let list: Value = app
                .get_as(&admin, &format!("/api/v1/checkins?month={month}{filter}"))
                .await
                .json()
                .await
                .expect("json");
            let items = list["items"].as_array().expect("items");
            assert_eq!(items.len(), expected, "{filter}: {list}");
            assert_eq!(list["truncated"], false);
            let times: Vec<&str> = items
                .iter()
                .map(|c| c["captured_at"].as_str().expect("time"))
                .collect();
            assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
            for c in items {
                let flagged = !c["flags"].as_array().expect("flags").is_empty();
                assert_eq!(c["status"] == "flagged", flagged, "{c}");
                assert!(c["photo"]["thumbnail_url"]
                    .as_str()
                    .is_some_and(|u| u.ends_with("?size=thumb")));
            }
        }
        if in_month.len() > 1 {
            let one: Value = app
                .get_as(&admin, &format!("/api/v1/checkins?month={month}&limit=1"))
                .await
                .json()
                .await
                .expect("json");
            assert_eq!(one["items"].as_array().map(Vec::len), Some(1));
            assert_eq!(one["truncated"], true);
        }
    }
    // Scope: 洮南市's reviewer sees only their own county's absentees; the secretary's own
    // filter works.
    let stranger = app.token(REVIEWER_TAONAN).await;
    let month = base.format("%Y-%m");
    let none: Value = app
        .get_as(&stranger, &format!("/api/v1/attendance?month={month}"))
        .await
        .json()
        .await
        .expect("json");
    let theirs = none["people"].as_array().expect("people");
    assert!(!theirs.is_empty());
    assert!(theirs.iter().all(|p| p["no_checkins"] == true
        && p["village_code"]
            .as_str()
            .is_some_and(|v| v.starts_with("220881"))));
    let none: Value = app
        .get_as(&stranger, &format!("/api/v1/checkins?month={month}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0));
    problem(
        app.get_as(
            &stranger,
            &format!("/api/v1/checkins?month={month}&village=220802100201"),
        )
        .await,
        403,
        "out_of_scope",
    )
    .await;
    problem(
        app.get_as(&admin, &format!("/api/v1/checkins?month={month}&limit=0"))
            .await,
        400,
        "invalid_query",
    )
    .await;
    problem(
        app.get_as(
            &stranger,
            &format!("/api/v1/attendance?month={month}&county=220802000000"),
        )
        .await,
        403,
        "out_of_scope",
    )
    .await;
    problem(
        app.get_as(&admin, "/api/v1/attendance?month=2020-13").await,
        400,
        "invalid_query",
    )
    .await;
}

/// The table holding check-in `id`: its month's partition or the default one on PostgreSQL,
/// `None` on SQLite (one table).
fn partition_of(app: &TestApp, id: &str) -> Option<String> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Table {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let mut conn = app.database().url.establish().expect("connect");
    let taizhang::db::DbConnection::Postgresql(pg) = &mut conn else {
        return None;
    };
    let row: Table =
        diesel::sql_query("SELECT tableoid::regclass::text AS name FROM checkins WHERE id = $1")
            .bind::<diesel::sql_types::Text, _>(id)
            .get_result(pg)
            .expect("the check-in's table");
    Some(row.name)
}

/// On PostgreSQL check-ins live in month partitions the server made ahead (the month before,
/// this one and the next two); one dated in a month without a partition waits in the default
/// one and moves when its month's partition is made. Replays, lists and reviews find it wherever
/// it lies, on both databases.
async fn checkins_live_in_their_months_partition(backend: Backend) {
    use taizhang::checkins::partitions;
    use taizhang::domain::Month;
    let app = TestApp::spawn(backend).await;
    let token = app.token(SECRETARY_TAOBEI).await;
    let postgres = backend == Backend::Postgres;

    // The month of the check-in's own time (China), not of the test's: at a month's turn the two
    // differ.
    let at = Utc::now() - Duration::minutes(5);
    let today = checkin_body(&app, &token, &Shot::new(9001, at)).await;
    let answer: Value = post(&app, &token, &today).await.json().await.expect("json");
    let id = answer["id"].as_str().expect("id").to_owned();
    let month = Month::of(&at).to_string().replace('-', "_");
    let expected = postgres.then(|| format!("checkins_{month}"));
    assert_eq!(partition_of(&app, &id), expected);

    // A phone whose queue held a check-in of March 2025: accepted (flagged stale), kept in the
    // default partition, moved when its month's partition is made.
    let old_at = DateTime::parse_from_rfc3339("2025-03-10T09:00:00+08:00")
        .expect("time")
        .with_timezone(&Utc);
    let old = checkin_body(&app, &token, &Shot::new(9002, old_at)).await;
    let first = post(&app, &token, &old).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    assert_eq!(first["status"], "flagged", "{first}");
    let old_id = first["id"].as_str().expect("id").to_owned();
    assert_eq!(
        partition_of(&app, &old_id),
        postgres.then(|| "checkins_default".to_owned())
    );
    let march = Month::parse("2025-03").expect("month");
    let mut conn = app.database().url.establish().expect("connect");
    let made = partitions::ensure(&mut conn, march, march).expect("partition");
    assert_eq!(made, if postgres { vec![march] } else { vec![] });
    assert_eq!(
        partitions::ensure(&mut conn, march, march).expect("again"),
        vec![],
        "a partition is made once"
    );
    // Start-up made this month's and the next ones': nothing is left to make.
    assert_eq!(
        partitions::ensure_current(&mut conn).expect("current"),
        vec![]
    );
    assert_eq!(
        partition_of(&app, &old_id),
        postgres.then(|| "checkins_2025_03".to_owned())
    );

    // Wherever it lies: the replay answers what was stored, the list shows it, a review of it
    // is stored.
    let replay = post(&app, &token, &old).await;
    assert_eq!(replay.status(), 200);
    let replay: Value = replay.json().await.expect("json");
    assert_eq!(replay, first);
    let admin = app.token(CITY_ADMIN).await;
    let list: Value = app
        .get_as(&admin, "/api/v1/checkins?month=2025-03")
        .await
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, vec![old_id.as_str()], "{list}");
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let review = app
        .post(&format!("/api/v1/checkins/{old_id}/review"))
        .bearer_auth(&reviewer)
        .json(&json!({"decision": "confirm", "reason": "补传的记录，已电话核实"}))
        .send()
        .await
        .expect("review");
    assert_eq!(review.status(), 201);
    app.stop().await;
}

/// The photo-reuse check's county query (a county's check-ins within a week, but the person's
/// own) is answered from the county index alone, on both databases: at province scale reading a
/// table row for each of the fortnight's 11 000 check-ins cost 39 ms a check-in (BENCHMARKS.md).
async fn the_county_reuse_query_reads_the_index_alone(backend: Backend) {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Sqlite {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    #[derive(diesel::QueryableByName)]
    struct Postgres {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let app = TestApp::spawn(backend).await;
    let mut conn = app.database().url.establish().expect("connect");
    let today = Utc::now().date_naive();
    let (from, to) = (today - Duration::days(7), today + Duration::days(7));
    // The very query intake runs, its binds given in the order of its arguments.
    let query = taizhang::checkins::store::reuse::county("220802000000", from, to, "user:1");
    let explain = |sql: String, prefix: &str| {
        diesel::sql_query(format!("{prefix} {sql}"))
            .bind::<diesel::sql_types::Text, _>("220802000000")
            .bind::<diesel::sql_types::Date, _>(from)
            .bind::<diesel::sql_types::Date, _>(to)
            .bind::<diesel::sql_types::Text, _>("user:1")
    };
    let plan: Vec<String> = match &mut conn {
        taizhang::db::DbConnection::Sqlite(c) => explain(
            taizhang_testkit::sql_of::<diesel::sqlite::Sqlite, _>(&query),
            "EXPLAIN QUERY PLAN",
        )
        .load::<Sqlite>(c)
        .expect("plan")
        .into_iter()
        .map(|r| r.detail)
        .collect(),
        taizhang::db::DbConnection::Postgresql(c) => {
            // An empty table is read whole whatever its indexes: ask for the index's plan.
            diesel::connection::SimpleConnection::batch_execute(
                c,
                "SET enable_seqscan = off; SET enable_bitmapscan = off",
            )
            .expect("set");
            explain(
                taizhang_testkit::sql_of::<diesel::pg::Pg, _>(&query),
                "EXPLAIN",
            )
            .load::<Postgres>(c)
            .expect("plan")
            .into_iter()
            .map(|r| r.line)
            .collect()
        }
    };
    let scans: Vec<&String> = plan
        .iter()
        .filter(|l| l.contains("SCAN") || l.contains("SEARCH") || l.contains("Scan"))
        .collect();
    assert!(!scans.is_empty(), "{plan:?}");
    for scan in scans {
        assert!(
            scan.contains("COVERING INDEX checkins_county")
                || (scan.contains("Index Only Scan") && scan.contains("county_code")),
            "{plan:?}"
        );
    }
    app.stop().await;
}

both_backends!(
    accepted_then_replayed_even_a_week_later,
    the_county_reuse_query_reads_the_index_alone,
    checkins_live_in_their_months_partition,
    geofence_edges_accuracy_and_gcj02,
    polygon_geofences_count_the_boundary_as_inside,
    local_midnight_splits_days_and_travel_is_judged,
    reused_photos_mock_locations_times_and_exif,
    special_post_workers_must_hold_a_post,
    special_post_checkins_by_worker_ref,
    attendance_equals_a_recomputation_from_raw_checkins,
);
