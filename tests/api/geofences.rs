//! Village geofences set by the city (one village, or a bulk GeoJSON/CSV import in any of
//! China's three coordinate systems) and calibrated from a first secretary's check-ins — on
//! both databases.

use chrono::{Duration, NaiveDate, Utc};
use geo::{Destination, Distance, Haversine, Point};
use serde_json::{json, Value};

use crate::checkins::{checkin_body, post, Shot};
use crate::helpers::*;

/// 平安村 (220802100201, 洮北区): today a township-seat circle of 7942 m around this centre.
const VILLAGE: &str = "220802100201";
const CENTRE: (f64, f64) = (45.736537, 122.566161);

fn moved(from: (f64, f64), bearing: f64, metres: f64) -> (f64, f64) {
    let p = Haversine.destination(Point::new(from.1, from.0), bearing, metres);
    (p.y(), p.x())
}

fn metres(a: (f64, f64), b: (f64, f64)) -> f64 {
    Haversine.distance(Point::new(a.1, a.0), Point::new(b.1, b.0))
}

async fn put_fence(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.request(
        reqwest::Method::PUT,
        &format!("/api/v1/villages/{VILLAGE}/geofence"),
    )
    .bearer_auth(token)
    .json(&body)
    .send()
    .await
    .expect("put")
}

fn fields_of(problem: &Value) -> Vec<(String, String)> {
    problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap_or_default().to_owned(),
                e["rule"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn square(c: (f64, f64), d: f64) -> Value {
    let (lat, lon) = c;
    json!({"type": "Polygon", "coordinates": [[
        [lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]
    ]]})
}

async fn the_city_sets_a_point_or_a_polygon(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.token(CITY_ADMIN).await;
    let before: Value = app
        .get_as(&admin, &format!("/api/v1/villages/{VILLAGE}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(before["geofence_provenance"], "township_seat");

    let point = moved(CENTRE, 30.0, 800.0);
    let response = put_fence(
        &app,
        &admin,
        json!({"geometry": {"type": "Point", "coordinates": [point.1, point.0]}, "radius_m": 1200, "reason": "市自然资源局村界数据"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let village: Value = response.json().await.expect("json");
    assert_eq!(village["geofence_provenance"], "imported");
    assert_eq!(village["position_source"], "imported");
    assert_eq!(village["geofence_kind"], "circle");
    assert_eq!(village["geofence_radius_m"], 1200.0);
    let centre = (
        village["centroid"]["lat"].as_f64().expect("lat"),
        village["centroid"]["lon"].as_f64().expect("lon"),
    );
    assert!(metres(centre, point) < 0.1);

    let response = put_fence(&app, &admin, json!({"geometry": square(CENTRE, 0.01)})).await;
    assert_eq!(response.status(), 200);
    let village: Value = response.json().await.expect("json");
    assert_eq!(village["geofence_kind"], "polygon");
    assert_eq!(village["geofence_provenance"], "imported");

    // The audit log keeps both changes, the fence before and after.
    let audit: Value = app
        .get_as(&admin, "/api/v1/audit?action=import_geofence")
        .await
        .json()
        .await
        .expect("json");
    let text = audit.to_string();
    assert!(
        text.contains("township_seat") && text.contains("import_geofence"),
        "{text}"
    );
}

async fn bad_geometry_scope_and_roles_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.token(CITY_ADMIN).await;
    let bowtie = json!({"type": "Polygon", "coordinates": [[[122.55, 45.72], [122.58, 45.75], [122.58, 45.72], [122.55, 45.75], [122.55, 45.72]]]});
    let body = problem(
        put_fence(&app, &admin, json!({"geometry": bowtie})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        fields_of(&body),
        [("geometry.coordinates".into(), "invalid_geometry".into())]
    );
    let body = problem(
        put_fence(
            &app,
            &admin,
            json!({"geometry": {"type": "Point", "coordinates": [CENTRE.1, CENTRE.0]}}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(fields_of(&body), [("radius_m".into(), "required".into())]);
    // A point in 大安市, far outside 洮北区.
    let body = problem(
        put_fence(
            &app,
            &admin,
            json!({"geometry": {"type": "Point", "coordinates": [124.0, 45.6]}, "radius_m": 1000}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        fields_of(&body),
        [("geometry.coordinates".into(), "outside_county".into())]
    );
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    problem(
        put_fence(&app, &reviewer, json!({"geometry": square(CENTRE, 0.01)})).await,
        403,
        "forbidden_role",
    )
    .await;
    let village: Value = app
        .get_as(&admin, &format!("/api/v1/villages/{VILLAGE}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        village["geofence_provenance"], "township_seat",
        "nothing stored"
    );
}

async fn import(
    app: &TestApp,
    token: &str,
    query: &str,
    kind: &str,
    body: String,
) -> reqwest::Response {
    app.post(&format!("/api/v1/villages/geofences/import?{query}"))
        .bearer_auth(token)
        .header("content-type", kind)
        .body(body)
        .send()
        .await
        .expect("import")
}

async fn bulk_import_dry_run_bad_rows_and_gcj02(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.token(CITY_ADMIN).await;
    // A known WGS-84 point, sent as Amap (GCJ-02) would give it.
    let truth = moved(CENTRE, 200.0, 1500.0);
    let (glat, glon) = taizhang::geography::crs::wgs84_to_gcj02(truth.0, truth.1);
    let collection = json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": VILLAGE, "radius_m": 1500}, "geometry": {"type": "Point", "coordinates": [glon, glat]}},
        {"type": "Feature", "properties": {"code": "220802100202"}, "geometry": square(CENTRE, 0.01)},
    ]});
    let response = import(
        &app,
        &admin,
        "dry_run=true&crs=gcj02",
        "application/geo+json",
        collection.to_string(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.expect("json");
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["changed"], 2, "{report}");
    let village: Value = app
        .get_as(&admin, &format!("/api/v1/villages/{VILLAGE}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        village["geofence_provenance"], "township_seat",
        "a dry run stores nothing"
    );

    // Bad rows: each reported by feature, and nothing stored though the first row is good.
    let bad = json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": VILLAGE, "radius_m": 1500}, "geometry": {"type": "Point", "coordinates": [glon, glat]}},
        {"type": "Feature", "properties": {"code": "220802100299"}, "geometry": square(CENTRE, 0.01)},
        {"type": "Feature", "properties": {"code": "220802100202"}, "geometry": {"type": "Point", "coordinates": [CENTRE.1, CENTRE.0]}},
    ]});
    let body = problem(
        import(
            &app,
            &admin,
            "crs=gcj02",
            "application/geo+json",
            bad.to_string(),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        fields_of(&body),
        [
            (
                "features[1].properties.code".into(),
                "unknown_village".into()
            ),
            ("features[2].properties.radius_m".into(), "required".into()),
        ]
    );
    let csv = format!(
        "code,lon,lat,radius_m\n{VILLAGE},{glon},{glat},1500\n220802100202,abc,45.7,1000\n"
    );
    let body = problem(
        import(&app, &admin, "crs=gcj02", "text/csv", csv).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        fields_of(&body),
        [("rows[3].lon".into(), "invalid_value".into())]
    );
    let village: Value = app
        .get_as(&admin, &format!("/api/v1/villages/{VILLAGE}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(village["geofence_provenance"], "township_seat");

    // Stored for real from CSV in GCJ-02: the village sits at the known WGS-84 point.
    let csv = format!("code,lon,lat,radius_m\n{VILLAGE},{glon},{glat},1500\n");
    let response = import(&app, &admin, "crs=gcj02", "text/csv", csv.clone()).await;
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.expect("json");
    assert_eq!(report["changed"], 1);
    let village: Value = app
        .get_as(&admin, &format!("/api/v1/villages/{VILLAGE}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(village["geofence_provenance"], "imported");
    let at = (
        village["centroid"]["lat"].as_f64().expect("lat"),
        village["centroid"]["lon"].as_f64().expect("lon"),
    );
    assert!(metres(at, truth) < 1.0, "{} m off", metres(at, truth));
    assert!(
        metres((glat, glon), truth) > 100.0,
        "GCJ-02 really is offset"
    );
    let again: Value = import(&app, &admin, "crs=gcj02", "text/csv", csv)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(again["unchanged"], 1);

    let reviewer = app.token(REVIEWER_TAOBEI).await;
    problem(
        import(
            &app,
            &reviewer,
            "",
            "application/geo+json",
            collection.to_string(),
        )
        .await,
        403,
        "forbidden_role",
    )
    .await;
}

/// Posts one check-in and answers its flags.
async fn check_in(
    app: &TestApp,
    token: &str,
    seed: u64,
    captured: chrono::DateTime<Utc>,
    at: (f64, f64),
) -> Vec<String> {
    let mut shot = Shot::new(seed, captured);
    shot.at = at;
    let body = checkin_body(app, token, &shot).await;
    let response = post(app, token, &body).await;
    assert_eq!(response.status(), 201);
    let answer: Value = response.json().await.expect("json");
    answer["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect()
}

async fn calibration_from_a_month_of_check_ins(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secretary = app.token(SECRETARY_TAOBEI).await;
    // Where the village really is: 2.5 km from the township-seat estimate.
    let truth = moved(CENTRE, 45.0, 2500.0);
    let now = Utc::now();
    for k in 0..7u64 {
        let at = moved(truth, k as f64 * 51.0, 60.0 + 40.0 * k as f64);
        let flags = check_in(
            &app,
            &secretary,
            5000 + k,
            now - Duration::hours(20 * k as i64 + 1),
            at,
        )
        .await;
        assert!(flags.is_empty(), "{flags:?}");
    }
    // The month passes: the check-ins become those of the first seven days of October 2025.
    {
        use diesel::prelude::*;
        use taizhang::db::schema::checkins;
        let mut conn = app.settings.database.establish().expect("db");
        let ids: Vec<String> = checkins::table
            .order(checkins::captured_at)
            .select(checkins::id)
            .load(&mut conn)
            .expect("ids");
        for (i, id) in ids.iter().enumerate() {
            let day = NaiveDate::from_ymd_opt(2025, 10, i as u32 + 1).expect("day");
            diesel::update(checkins::table.find(id))
                .set((
                    checkins::attendance_date.eq(day),
                    checkins::captured_at.eq(day.and_hms_opt(1, 0, 0).expect("time")),
                ))
                .execute(&mut conn)
                .expect("age");
        }
    }
    let path = format!("/api/v1/villages/{VILLAGE}/calibration");
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let proposal: Value = app
        .get_as(&reviewer, &format!("{path}?month=2025-10"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(proposal["days"], 7, "{proposal}");
    assert_eq!(proposal["acceptable"], true);
    let centre = (
        proposal["centre"]["lat"].as_f64().expect("lat"),
        proposal["centre"]["lon"].as_f64().expect("lon"),
    );
    assert!(
        metres(centre, truth) < 100.0,
        "{} m from the truth",
        metres(centre, truth)
    );
    let spread = proposal["spread_m"].as_f64().expect("spread");
    assert!((100.0..400.0).contains(&spread), "{spread}");

    // The console lists the proposal for the county's reviewer, with a form to accept it.
    let mut console = crate::console::ConsoleClient::new(&app);
    console.login(REVIEWER_TAOBEI).await;
    let page = console
        .get("/console/calibration?county=220802000000&month=2025-10")
        .await
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("平安村委会") && page.contains(&format!("/console/calibration/{VILLAGE}")),
        "{page}"
    );

    // Scope and roles.
    problem(
        app.get_as(
            &app.token(REVIEWER_TAONAN).await,
            &format!("{path}?month=2025-10"),
        )
        .await,
        403,
        "out_of_scope",
    )
    .await;
    problem(
        app.get_as(&secretary, &format!("{path}?month=2025-10"))
            .await,
        403,
        "forbidden_role",
    )
    .await;
    let accept = |token: String, body: Value| {
        let app = &app;
        let path = format!("{path}/accept");
        async move {
            app.post(&path)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("accept")
        }
    };
    problem(
        accept(app.token(CITY_ADMIN).await, json!({"month": "2025-10"})).await,
        403,
        "forbidden_role",
    )
    .await;
    problem(
        accept(
            app.token(REVIEWER_TAONAN).await,
            json!({"month": "2025-10"}),
        )
        .await,
        403,
        "out_of_scope",
    )
    .await;
    let body = problem(
        accept(reviewer.clone(), json!({"month": "2025-11"})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(fields_of(&body), [("month".into(), "too_few_days".into())]);
    let body = problem(
        accept(
            reviewer.clone(),
            json!({"month": "2025-10", "radius_m": 50000}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(fields_of(&body), [("radius_m".into(), "range".into())]);

    let response = accept(
        reviewer.clone(),
        json!({"month": "2025-10", "radius_m": 1500}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let village: Value = response.json().await.expect("json");
    assert_eq!(village["geofence_provenance"], "field_calibrated");
    assert_eq!(village["geofence_radius_m"], 1500.0);

    // Now a check-in 3 km from the village (inside the old township circle) is outside; one
    // 400 m away is not.
    let far = moved(truth, 0.0, 3000.0);
    assert!(metres(far, CENTRE) < 7942.0, "the old fence held it");
    let flags = check_in(&app, &secretary, 5100, now - Duration::hours(3), far).await;
    assert_eq!(flags, ["outside_geofence"]);
    let near = moved(truth, 90.0, 400.0);
    let flags = check_in(&app, &secretary, 5101, now - Duration::hours(1), near).await;
    assert!(flags.is_empty(), "{flags:?}");
}

both_backends!(
    the_city_sets_a_point_or_a_polygon,
    bad_geometry_scope_and_roles_are_refused,
    bulk_import_dry_run_bad_rows_and_gcj02,
    calibration_from_a_month_of_check_ins,
);
