use serde_json::{json, Value};
use taizhang::domain::Role;
use taizhang::secrets::Keys;

use crate::helpers::*;

async fn every_demo_user_logs_in_and_reads_me(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        (CITY_ADMIN, "city_admin", Value::Null, vec![]),
        (
            REVIEWER_TAOBEI,
            "county_reviewer",
            json!("220802000000"),
            vec![],
        ),
        (
            REVIEWER_TAONAN,
            "county_reviewer",
            json!("220881000000"),
            vec![],
        ),
        (
            ENUMERATOR_TAOBEI,
            "enumerator",
            json!("220802000000"),
            vec!["220802100200", "220802100201"],
        ),
        (
            ENUMERATOR_TAONAN,
            "enumerator",
            json!("220881000000"),
            vec!["220881100200", "220881100201"],
        ),
        (
            SECRETARY_TAOBEI,
            "first_secretary",
            json!("220802000000"),
            vec!["220802100201"],
        ),
    ];
    for (user, role, county, villages) in cases {
        let login = app.login(user).await;
        assert_eq!(login["token_type"], "Bearer");
        assert_eq!(login["expires_in"], 900);
        assert_eq!(login["refresh_expires_in"], 30 * 24 * 3600);
        assert_eq!(login["user"]["role"], role);
        let token = login["access_token"].as_str().expect("token");
        let me: Value = app
            .get_as(token, "/api/v1/me")
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(me["role"], role, "{me}");
        assert_eq!(me["county_code"], county, "{me}");
        assert_eq!(me["village_codes"], json!(villages), "{me}");
        assert_eq!(me["phone"], user.phone);
        assert!(me["role_label"].as_str().is_some_and(|l| !l.is_empty()));
    }
}

async fn wrong_password_and_unknown_phone_look_the_same(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let wrong = app
        .login_response(CITY_ADMIN.phone, "not the password", "d")
        .await;
    let a = problem(wrong, 401, "invalid_credentials").await;
    let unknown = app.login_response("13799999999", "whatever123", "d").await;
    let b = problem(unknown, 401, "invalid_credentials").await;
    assert_eq!(a["detail"], b["detail"]);
}

async fn login_input_is_validated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.login_response("12345", "", " ").await;
    let body = problem(response, 422, "validation_failed").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(fields, ["phone", "password", "device_id"]);
    assert_eq!(body["field"], "phone");
    assert_eq!(body["rule"], "phone_format");
}

async fn refresh_rotates_and_reuse_revokes_the_family(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.login(ENUMERATOR_TAOBEI).await;
    let r1 = first["refresh_token"].as_str().expect("refresh").to_owned();

    let second: Value = app
        .post("/api/v1/auth/refresh")
        .json(&json!({"refresh_token": r1}))
        .send()
        .await
        .expect("refresh")
        .json()
        .await
        .expect("json");
    let r2 = second["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    let a2 = second["access_token"].as_str().expect("access").to_owned();
    assert_ne!(r1, r2, "every refresh issues a new refresh token");
    assert_eq!(app.get_as(&a2, "/api/v1/me").await.status(), 200);

    // The spent token comes back: the whole session is revoked.
    let reused = app
        .post("/api/v1/auth/refresh")
        .json(&json!({"refresh_token": r1}))
        .send()
        .await
        .expect("refresh");
    problem(reused, 401, "refresh_token_reused").await;
    let after = app
        .post("/api/v1/auth/refresh")
        .json(&json!({"refresh_token": r2}))
        .send()
        .await
        .expect("refresh");
    problem(after, 401, "session_revoked").await;
    problem(app.get_as(&a2, "/api/v1/me").await, 401, "session_revoked").await;

    // Another login (another family) is unaffected.
    let other = app.token(ENUMERATOR_TAOBEI).await;
    assert_eq!(app.get_as(&other, "/api/v1/me").await.status(), 200);

    let unknown = app
        .post("/api/v1/auth/refresh")
        .json(&json!({"refresh_token": "nonsense"}))
        .send()
        .await
        .expect("refresh");
    problem(unknown, 401, "invalid_refresh_token").await;
}

async fn concurrent_refreshes_on_two_servers_spend_the_token_once(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = TestApp::spawn_on(a.database(), |_| {}).await;
    let login = a.login(SECRETARY_TAOBEI).await;
    let token = login["refresh_token"].as_str().expect("refresh").to_owned();
    let body = json!({"refresh_token": token});
    let (ra, rb) = tokio::join!(
        a.post("/api/v1/auth/refresh").json(&body).send(),
        b.post("/api/v1/auth/refresh").json(&body).send(),
    );
    let mut statuses = [
        ra.expect("a").status().as_u16(),
        rb.expect("b").status().as_u16(),
    ];
    statuses.sort();
    assert_eq!(statuses, [200, 401], "exactly one refresh wins");
}

async fn logout_ends_the_session_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let login = app.login(REVIEWER_TAOBEI).await;
    let access = login["access_token"].as_str().expect("access");
    let refresh = login["refresh_token"].as_str().expect("refresh");
    let out = app
        .post("/api/v1/auth/logout")
        .bearer_auth(access)
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), 204);
    problem(
        app.get_as(access, "/api/v1/me").await,
        401,
        "session_revoked",
    )
    .await;
    let again = app
        .post("/api/v1/auth/refresh")
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .expect("refresh");
    problem(again, 401, "session_revoked").await;
}

async fn bad_tokens_are_refused_by_class(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    problem(
        app.get("/api/v1/me").send().await.expect("r"),
        401,
        "missing_token",
    )
    .await;
    problem(
        app.get_as("garbage", "/api/v1/me").await,
        401,
        "invalid_token",
    )
    .await;
    let basic = app
        .get("/api/v1/me")
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .expect("r");
    problem(basic, 401, "invalid_token").await;

    // A token signed with the server's key but already expired.
    let login = app.login(CITY_ADMIN).await;
    let user_id = login["user"]["id"].as_str().expect("id");
    let claims: Value = {
        let access = login["access_token"].as_str().expect("access");
        let payload = access.split('.').nth(1).expect("payload");
        use base64::Engine;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .expect("b64"),
        )
        .expect("claims")
    };
    let keys = Keys::load(
        &taizhang::secrets::SecretSource::Value(TEST_SECRET.into()),
        std::path::Path::new("/nonexistent"),
    )
    .expect("keys");
    let past = chrono::Utc::now() - chrono::Duration::hours(2);
    let expired = taizhang::auth::tokens::issue_access(
        &keys,
        user_id,
        claims["sid"].as_str().expect("sid"),
        Role::CityAdmin,
        past,
        chrono::Duration::minutes(15),
    )
    .expect("token");
    let response = app.get_as(&expired, "/api/v1/me").await;
    assert!(response.headers().get("www-authenticate").is_some());
    problem(response, 401, "token_expired").await;

    // Signed with another key.
    let other = Keys::from_master(&[9u8; 32]);
    let forged = taizhang::auth::tokens::issue_access(
        &other,
        user_id,
        claims["sid"].as_str().expect("sid"),
        Role::CityAdmin,
        chrono::Utc::now(),
        chrono::Duration::minutes(15),
    )
    .expect("token");
    problem(
        app.get_as(&forged, "/api/v1/me").await,
        401,
        "invalid_token",
    )
    .await;
}

async fn failed_logins_are_limited_per_phone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for _ in 0..5 {
        problem(
            app.login_response(ENUMERATOR_TAOBEI.phone, "wrong-password", "d")
                .await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    // Even the right password is refused now, without being checked.
    let limited = app
        .login_response(ENUMERATOR_TAOBEI.phone, ENUMERATOR_TAOBEI.password, "d")
        .await;
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let body = problem(limited, 429, "rate_limited").await;
    assert_eq!(body["retry_after"], retry_after);
    // Other accounts are unaffected.
    assert_eq!(
        app.login_response(ENUMERATOR_TAONAN.phone, ENUMERATOR_TAONAN.password, "d")
            .await
            .status(),
        200
    );
}

async fn failed_logins_are_limited_per_address(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.auth.max_failures_per_addr = 3).await;
    for phone in ["13711111111", "13722222222", "13733333333"] {
        problem(
            app.login_response(phone, "guess-guess", "d").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    problem(
        app.login_response(CITY_ADMIN.phone, CITY_ADMIN.password, "d")
            .await,
        429,
        "rate_limited",
    )
    .await;
}

async fn a_success_clears_the_phone_failures(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for _ in 0..4 {
        app.login_response(CITY_ADMIN.phone, "wrong-password", "d")
            .await;
    }
    app.login(CITY_ADMIN).await;
    for _ in 0..4 {
        problem(
            app.login_response(CITY_ADMIN.phone, "wrong-password", "d")
                .await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    app.login(CITY_ADMIN).await;
}

both_backends!(
    every_demo_user_logs_in_and_reads_me,
    wrong_password_and_unknown_phone_look_the_same,
    login_input_is_validated,
    refresh_rotates_and_reuse_revokes_the_family,
    concurrent_refreshes_on_two_servers_spend_the_token_once,
    logout_ends_the_session_at_once,
    bad_tokens_are_refused_by_class,
    failed_logins_are_limited_per_phone,
    failed_logins_are_limited_per_address,
    a_success_clears_the_phone_failures,
);
