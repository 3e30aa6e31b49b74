use serde_json::{json, Value};

use crate::helpers::*;

async fn the_city_admin_creates_users_who_can_log_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.token(CITY_ADMIN).await;
    let created = app
        .post("/api/v1/users")
        .bearer_auth(&admin)
        .json(&json!({"phone": "13812345678", "name": "李四", "role": "enumerator", "villages": ["220821100200"], "password": "a long password"}))
        .send()
        .await
        .expect("r");
    assert_eq!(created.status(), 201);
    let body: Value = created.json().await.expect("json");
    assert_eq!(
        body["county_code"], "220821000000",
        "derived from the village"
    );
    assert!(body.get("password").is_none() && body.get("password_hash").is_none());

    let login = app
        .login_response("13812345678", "a long password", "phone-1")
        .await;
    assert_eq!(login.status(), 200);
    let login: Value = login.json().await.expect("json");
    assert_eq!(login["user"]["village_codes"], json!(["220821100200"]));

    let again = app
        .post("/api/v1/users")
        .bearer_auth(&admin)
        .json(&json!({"phone": "138-1234-5678", "name": "重复", "role": "city_admin", "password": "a long password"}))
        .send()
        .await
        .expect("r");
    problem(again, 409, "conflict").await;
}

async fn user_rules_are_checked_field_by_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.token(CITY_ADMIN).await;
    let post = |body: Value| {
        app.post("/api/v1/users")
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let cases = [
        (
            json!({"phone": "13800000010", "name": "a", "role": "first_secretary", "villages": ["220802100200", "220802100201"], "password": "long enough"}),
            "villages",
            "one_village",
        ),
        (
            json!({"phone": "13800000011", "name": "a", "role": "enumerator", "villages": ["220802100200", "220881100200"], "password": "long enough"}),
            "villages",
            "one_county",
        ),
        (
            json!({"phone": "13800000012", "name": "a", "role": "enumerator", "villages": ["220802100999"], "password": "long enough"}),
            "villages[0]",
            "unknown_village",
        ),
        (
            json!({"phone": "13800000013", "name": "a", "role": "county_reviewer", "password": "long enough"}),
            "county",
            "required",
        ),
        (
            json!({"phone": "13800000014", "name": "a", "role": "city_admin", "password": "short"}),
            "password",
            "password_too_short",
        ),
        (
            json!({"phone": "phone", "name": "a", "role": "city_admin", "password": "long enough"}),
            "phone",
            "phone_format",
        ),
    ];
    for (body, field, rule) in cases {
        let answer = problem(post(body).await.expect("r"), 422, "validation_failed").await;
        assert_eq!(
            (answer["field"].as_str(), answer["rule"].as_str()),
            (Some(field), Some(rule)),
            "{answer}"
        );
    }
}

async fn roles_are_enforced_on_user_administration(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = json!({"phone": "13800000020", "name": "a", "role": "city_admin", "password": "long enough"});
    for user in [REVIEWER_TAOBEI, ENUMERATOR_TAOBEI, SECRETARY_TAOBEI] {
        let token = app.token(user).await;
        let response = app
            .post("/api/v1/users")
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("r");
        problem(response, 403, "forbidden_role").await;
    }
    for user in [ENUMERATOR_TAOBEI, SECRETARY_TAOBEI] {
        let token = app.token(user).await;
        problem(
            app.get_as(&token, "/api/v1/users").await,
            403,
            "forbidden_role",
        )
        .await;
    }
    let reviewer = app.token(REVIEWER_TAONAN).await;
    let list: Value = app
        .get_as(&reviewer, "/api/v1/users")
        .await
        .json()
        .await
        .expect("json");
    let users = list["users"].as_array().expect("users");
    assert!(!users.is_empty());
    assert!(
        users.iter().all(|u| u["county_code"] == "220881000000"),
        "{list}"
    );
    let admin = app.token(CITY_ADMIN).await;
    let all: Value = app
        .get_as(&admin, "/api/v1/users")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(all["count"], 7);
}

both_backends!(
    the_city_admin_creates_users_who_can_log_in,
    user_rules_are_checked_field_by_field,
    roles_are_enforced_on_user_administration,
);
