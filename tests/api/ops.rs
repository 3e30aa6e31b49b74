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

/// Finding 7: JSON answers carrying personal data had no `Cache-Control: no-store` and no
/// `nosniff`.
async fn api_answers_are_not_cached_or_sniffed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let headers_of = |response: &reqwest::Response| {
        (
            header_of(response, "cache-control"),
            header_of(response, "x-content-type-options"),
        )
    };
    let no_store = ("no-store".to_owned(), "nosniff".to_owned());
    // The caller, a login's tokens, a problem, the villages.
    let me = app.get_as(&token, "/api/v1/me").await;
    assert_eq!(headers_of(&me), no_store, "/me");
    let login = app
        .login_response(CITY_ADMIN.phone, CITY_ADMIN.password, "d")
        .await;
    assert_eq!(headers_of(&login), no_store, "login");
    let refused = app.get("/api/v1/me").send().await.expect("r");
    assert_eq!(headers_of(&refused), no_store, "a problem");
    let villages = app.get_as(&token, "/api/v1/villages?geofence=false").await;
    assert_eq!(headers_of(&villages), no_store, "villages");

    // A photo keeps its private, long-lived caching (its URL is its hash), and is not sniffed.
    let bytes = photo_fixture("doorplate.jpg");
    let sha = sha256_hex(&bytes);
    let stored = app.put_photo(&token, &sha, bytes).await;
    assert_eq!(stored.status(), 201);
    assert_eq!(headers_of(&stored), no_store, "the upload's answer");
    let photo = app.get_as(&token, &format!("/api/v1/photos/{sha}")).await;
    assert_eq!(photo.status(), 200);
    let (cache, sniff) = headers_of(&photo);
    assert!(cache.starts_with("private"), "{cache}");
    assert_eq!(sniff, "nosniff");
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Finding 7: the SQLite file and photos were created world-readable (0644). The real binary
/// runs on a new data directory with a generated key, stores a photo and its thumbnail; then
/// nothing in the data directory is readable by anyone but the server's user.
async fn files_are_private_to_the_server(backend: Backend) {
    let root = tempfile::tempdir().expect("temporary directory");
    let data_dir = root.path().join("data");
    let url = match backend {
        Backend::Sqlite => data_dir.join("taizhang.sqlite3").display().to_string(),
        Backend::Postgres => crate::pg::fresh_database(),
    };
    // No TAIZHANG_SECRET_KEY: the server generates secret.key in the data directory.
    let server = crate::server_process::spawn(
        &url,
        &data_dir,
        "127.0.0.1:0",
        "",
        &[("TAIZHANG_WORKERS", "1".as_ref())],
    )
    .expect("start taizhang");
    let client = crate::helpers::checked_client(reqwest::Client::builder());
    let token = &log_in(&client, &server.address, ENUMERATOR_TAOBEI).await;
    let bytes = photo_fixture("doorplate.jpg");
    let sha = sha256_hex(&bytes);
    let photo = format!("{}/api/v1/photos/{sha}", server.address);
    let stored = client
        .put(&photo)
        .bearer_auth(token)
        .header("content-type", "image/jpeg")
        .body(bytes)
        .send()
        .await
        .expect("upload");
    assert_eq!(stored.status(), 201);
    let thumb = client
        .get(format!("{photo}?size=thumb"))
        .bearer_auth(token)
        .send()
        .await
        .expect("thumbnail");
    assert_eq!(thumb.status(), 200);

    let mut files = Vec::new();
    let mut dirs = vec![data_dir.clone()];
    let mut i = 0;
    while i < dirs.len() {
        for entry in std::fs::read_dir(&dirs[i]).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
        i += 1;
    }
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name()?.to_str().map(str::to_owned))
        .collect();
    let mut expected = vec![
        "secret.key".to_owned(),
        sha.clone(),
        format!("{sha}.thumb.jpg"),
    ];
    if backend == Backend::Sqlite {
        for name in [
            "taizhang.sqlite3",
            "taizhang.sqlite3-wal",
            "taizhang.sqlite3-shm",
        ] {
            expected.push(name.to_owned());
        }
    }
    for name in &expected {
        assert!(names.contains(name), "{name} is not among {names:?}");
    }
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    for dir in &dirs {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }
}

both_backends!(
    health_readiness_and_metrics,
    request_ids_are_answered_and_kept,
    the_served_contract_is_the_committed_one,
    the_catalog_lists_every_enum_in_chinese,
    api_answers_are_not_cached_or_sniffed,
    files_are_private_to_the_server,
);
