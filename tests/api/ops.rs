use serde_json::Value;

use crate::helpers::*;

async fn health_readiness_and_metrics(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let health: Value = app
        .get("/healthz")
        .send()
        .await
        .expect("r")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok");
    let ready: Value = app
        .get("/readyz")
        .send()
        .await
        .expect("r")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["migrations_applied"], true);
    assert_eq!(
        ready["database"],
        if backend == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );

    let token = app.token(CITY_ADMIN).await;
    app.get_as(&token, "/api/v1/villages?geofence=false").await;
    app.get("/api/v1/villages").send().await.expect("r");
    let metrics = app
        .get("/metrics")
        .send()
        .await
        .expect("r")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(
            r#"taizhang_http_requests_total{method="GET",route="/api/v1/villages",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        r#"taizhang_http_requests_total{method="GET",route="/api/v1/villages",status="401"} 1"#
    ));
    assert!(metrics.contains("taizhang_http_request_duration_seconds_bucket"));
    assert!(metrics.contains("taizhang_db_pool_max_connections 4"));
}

async fn request_ids_are_answered_and_kept(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .get("/healthz")
        .header("x-request-id", "app-retry-42")
        .send()
        .await
        .expect("r");
    assert_eq!(response.headers()["x-request-id"], "app-retry-42");
    let response = app
        .get("/healthz")
        .header("x-request-id", "has spaces")
        .send()
        .await
        .expect("r");
    assert_ne!(response.headers()["x-request-id"], "has spaces");
}

async fn the_served_contract_is_the_committed_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let served = app
        .get("/api/v1/openapi.json")
        .send()
        .await
        .expect("r")
        .text()
        .await
        .expect("text");
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/mobile-api-spec/openapi.json"
    ))
    .expect("committed spec");
    assert_eq!(served, committed);
}

async fn the_catalog_lists_every_enum_in_chinese(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let catalog: Value = app
        .get("/api/v1/catalog")
        .send()
        .await
        .expect("r")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = catalog["enums"]
        .as_array()
        .expect("enums")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    for expected in [
        "poverty_status",
        "labour_capacity",
        "employment_status",
        "post_type",
        "safety_net",
        "checkin_kind",
        "checkin_flag",
        "survey_flag",
        "crs",
        "role",
    ] {
        assert!(names.contains(&expected), "{expected} missing");
    }
    let employment = catalog["enums"]
        .as_array()
        .expect("enums")
        .iter()
        .find(|e| e["name"] == "employment_status")
        .expect("employment");
    assert_eq!(employment["values"].as_array().expect("values").len(), 15);
    assert!(employment["values"]
        .as_array()
        .expect("values")
        .iter()
        .any(|v| v["value"] == "temporary_public_post" && v["label"] == "临时公益岗"));
}

both_backends!(
    health_readiness_and_metrics,
    request_ids_are_answered_and_kept,
    the_served_contract_is_the_committed_one,
    the_catalog_lists_every_enum_in_chinese,
);
