use serde_json::Value;

use crate::helpers::*;

async fn list(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app.get_as(token, &format!("/api/v1/villages{query}")).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

async fn the_city_sees_all_919_villages_with_geofences(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(CITY_ADMIN).await;
    let all = list(&app, &token, "").await;
    assert_eq!(all["count"], 919);
    let villages = all["villages"].as_array().expect("villages");
    assert_eq!(villages.len(), 919);
    for v in villages {
        let code = v["code"].as_str().expect("code");
        assert_eq!(code.len(), 12);
        assert!(v["name"].as_str().is_some_and(|n| n.ends_with("村委会")));
        let geofence = &v["geofence"];
        match v["geofence_kind"].as_str() {
            Some("circle") => {
                assert_eq!(geofence["type"], "Polygon");
                let ring = geofence["coordinates"][0].as_array().expect("ring");
                assert_eq!(ring.len(), 49, "48 vertices and the closing one");
                assert_eq!(ring[0], ring[48]);
                assert!(v["geofence_radius_m"].as_f64().is_some_and(|r| r > 0.0));
            }
            Some("polygon") => assert_eq!(geofence["type"], "MultiPolygon"),
            other => panic!("geofence kind {other:?}"),
        }
    }
    let by_county = |code: &str| villages.iter().filter(|v| v["county_code"] == code).count();
    assert_eq!(
        [
            by_county("220802000000"),
            by_county("220821000000"),
            by_county("220822000000"),
            by_county("220871000000"),
            by_county("220881000000"),
            by_county("220882000000")
        ],
        [148, 141, 172, 14, 221, 223]
    );

    let taobei = list(&app, &token, "?county=220802000000&geofence=false").await;
    assert_eq!(taobei["count"], 148);
    assert!(taobei["villages"][0].get("geofence").is_none());
    let township = list(&app, &token, "?township=220802100000").await;
    assert!(township["villages"]
        .as_array()
        .expect("v")
        .iter()
        .all(|v| v["township_code"] == "220802100000" && v["township_name"] == "平安镇"));

    // The development zone's villages are fenced by 洮北区's boundary.
    let zone = list(&app, &token, "?county=220871000000").await;
    assert_eq!(zone["count"], 14);
}

async fn reviewers_see_their_county_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(REVIEWER_TAOBEI).await;
    let own = list(&app, &token, "?geofence=false").await;
    assert_eq!(own["count"], 148);
    assert!(own["villages"]
        .as_array()
        .expect("v")
        .iter()
        .all(|v| v["county_code"] == "220802000000"));
    problem(
        app.get_as(&token, "/api/v1/villages?county=220881000000")
            .await,
        403,
        "out_of_scope",
    )
    .await;
    problem(
        app.get_as(&token, "/api/v1/villages?township=220881100000")
            .await,
        403,
        "out_of_scope",
    )
    .await;
    problem(
        app.get_as(&token, "/api/v1/villages/220881100200").await,
        403,
        "out_of_scope",
    )
    .await;
    assert_eq!(
        app.get_as(&token, "/api/v1/villages/220802100200")
            .await
            .status(),
        200
    );
}

async fn field_users_see_their_villages_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let enumerator = app.token(ENUMERATOR_TAOBEI).await;
    let own = list(&app, &enumerator, "").await;
    let codes: Vec<&str> = own["villages"]
        .as_array()
        .expect("v")
        .iter()
        .filter_map(|v| v["code"].as_str())
        .collect();
    assert_eq!(codes, ["220802100200", "220802100201"]);
    let same_county = list(&app, &enumerator, "?county=220802000000").await;
    assert_eq!(same_county["count"], 2);
    problem(
        app.get_as(&enumerator, "/api/v1/villages?county=220881000000")
            .await,
        403,
        "out_of_scope",
    )
    .await;
    problem(
        app.get_as(&enumerator, "/api/v1/villages/220802100202")
            .await,
        403,
        "out_of_scope",
    )
    .await;

    let secretary = app.token(SECRETARY_TAOBEI).await;
    let one = list(&app, &secretary, "").await;
    assert_eq!(one["count"], 1);
    assert_eq!(one["villages"][0]["code"], "220802100201");
    assert_eq!(one["villages"][0]["name"], "平安村委会");
}

async fn single_village_lookup(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(CITY_ADMIN).await;
    let v: Value = app
        .get_as(&token, "/api/v1/villages/220802100201")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(v["name"], "平安村委会");
    assert_eq!(v["county_name"], "洮北区");
    problem(
        app.get_as(&token, "/api/v1/villages/220802100999").await,
        404,
        "not_found",
    )
    .await;
    let bad = problem(
        app.get_as(&token, "/api/v1/villages/220802000000").await,
        400,
        "invalid_path",
    )
    .await;
    assert_eq!(bad["field"], "code");
    problem(
        app.get("/api/v1/villages").send().await.expect("r"),
        401,
        "missing_token",
    )
    .await;
}

both_backends!(
    the_city_sees_all_919_villages_with_geofences,
    reviewers_see_their_county_only,
    field_users_see_their_villages_only,
    single_village_lookup,
);

mod compression {
    use crate::helpers::*;

    /// The full village list is large: it travels gzip-compressed when the client accepts it.
    #[actix_web::test]
    async fn village_lists_are_compressed_on_request() {
        let app = TestApp::spawn(Backend::Sqlite).await;
        let token = app.token(CITY_ADMIN).await;
        let raw = reqwest::Client::builder()
            .no_proxy()
            .gzip(false)
            .build()
            .expect("client");
        let response = raw
            .get(format!("{}/api/v1/villages", app.address))
            .bearer_auth(&token)
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("r");
        assert_eq!(response.headers()["content-encoding"], "gzip");
        let compressed = response.bytes().await.expect("body").len();
        let plain = app
            .get_as(&token, "/api/v1/villages")
            .await
            .bytes()
            .await
            .expect("body")
            .len();
        assert!(
            compressed * 3 < plain,
            "{compressed} bytes compressed vs {plain}"
        );
    }
}
