//! Every class of bad input gets a 4xx problem+json answer that names the field and the rule.

use serde_json::json;

use crate::helpers::*;

async fn malformed_json_is_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for body in [
        "{\"phone\": ",
        "not json",
        "{\"phone\":\"13900000001\",\"password\":\"x\",\"device_id\":\"d\"} trailing",
    ] {
        let response = app
            .post("/api/v1/auth/login")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("r");
        problem(response, 400, "malformed_json").await;
    }
}

async fn wrong_types_and_missing_fields_name_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let wrong_type = app
        .post("/api/v1/auth/login")
        .json(&json!({"phone": 13900000001u64, "password": "x", "device_id": "d"}))
        .send()
        .await
        .expect("r");
    let body = problem(wrong_type, 422, "validation_failed").await;
    assert_eq!(
        (body["field"].as_str(), body["rule"].as_str()),
        (Some("phone"), Some("invalid_type"))
    );

    let missing = app
        .post("/api/v1/auth/login")
        .json(&json!({"phone": "13900000001", "device_id": "d"}))
        .send()
        .await
        .expect("r");
    let body = problem(missing, 422, "validation_failed").await;
    assert_eq!(
        (body["field"].as_str(), body["rule"].as_str()),
        (Some("password"), Some("required"))
    );
}

async fn unknown_enum_values_are_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(CITY_ADMIN).await;
    let response = app
        .post("/api/v1/users")
        .bearer_auth(&token)
        .json(&json!({"phone": "13911112222", "name": "x", "role": "mayor", "password": "long enough"}))
        .send()
        .await
        .expect("r");
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(
        (body["field"].as_str(), body["rule"].as_str()),
        (Some("role"), Some("unknown_value"))
    );
}

async fn wrong_content_type_is_415(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .post("/api/v1/auth/login")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("r");
    problem(response, 415, "unsupported_media_type").await;
    let none = app
        .post("/api/v1/auth/login")
        .body("{}")
        .send()
        .await
        .expect("r");
    problem(none, 415, "unsupported_media_type").await;
}

async fn oversized_bodies_are_413(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.json_limit = 1024).await;
    let big = json!({"phone": "13900000001", "password": "x".repeat(2000), "device_id": "d"});
    problem(
        app.post("/api/v1/auth/login")
            .json(&big)
            .send()
            .await
            .expect("r"),
        413,
        "payload_too_large",
    )
    .await;
    // Without a Content-Length the limit holds while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(b"{\"phone\":\"".to_vec()),
        Ok(vec![b'1'; 4096]),
        Ok(b"\"}".to_vec()),
    ];
    let stream = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = app
        .post("/api/v1/auth/login")
        .header("content-type", "application/json")
        .body(stream)
        .send()
        .await
        .expect("r");
    problem(response, 413, "payload_too_large").await;
}

async fn unknown_routes_and_methods(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    problem(
        app.get("/api/v1/nothing-here").send().await.expect("r"),
        404,
        "not_found",
    )
    .await;
    problem(
        app.request(reqwest::Method::DELETE, "/api/v1/me")
            .send()
            .await
            .expect("r"),
        405,
        "method_not_allowed",
    )
    .await;
}

async fn bad_query_parameters_are_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(CITY_ADMIN).await;
    let body = problem(
        app.get_as(&token, "/api/v1/villages?county=123").await,
        400,
        "invalid_query",
    )
    .await;
    assert_eq!(body["field"], "county");
    let body = problem(
        app.get_as(&token, "/api/v1/villages?county=220802100201")
            .await,
        400,
        "invalid_query",
    )
    .await;
    assert_eq!(
        body["field"], "county",
        "a village code is not a county code"
    );
    let body = problem(
        app.get_as(&token, "/api/v1/villages?geofence=maybe").await,
        400,
        "invalid_query",
    )
    .await;
    assert_eq!(body["field"], "geofence");
}

both_backends!(
    malformed_json_is_400,
    wrong_types_and_missing_fields_name_the_field,
    unknown_enum_values_are_422,
    wrong_content_type_is_415,
    oversized_bodies_are_413,
    unknown_routes_and_methods,
    bad_query_parameters_are_400,
);
