use serde_json::{json, Value};
use taizhang::config::Settings;
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

/// A login as if from `addr` (the server trusts `X-Forwarded-For` in these tests).
async fn login_from(
    app: &TestApp,
    addr: &str,
    phone: &str,
    password: &str,
    device_id: &str,
) -> reqwest::Response {
    app.post("/api/v1/auth/login")
        .header("x-forwarded-for", addr)
        .json(&json!({"phone": phone, "password": password, "device_id": device_id}))
        .send()
        .await
        .expect("login request")
}

/// A server that takes client addresses from `X-Forwarded-For`, as behind a proxy.
async fn behind_proxy(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    TestApp::spawn_with(backend, |s| {
        s.trust_proxy_headers = true;
        configure(s)
    })
    .await
}

/// Records `n` failed logins of `phone` from `addr`, `ago` before now, straight in the database
/// (a persistent guesser, without waiting out the delays).
fn record_failures(app: &TestApp, phone: &str, addr: &str, n: usize, ago: chrono::Duration) {
    let mut conn = app.database().url.establish().expect("database");
    let at = chrono::Utc::now() - ago;
    for _ in 0..n {
        taizhang::auth::store::record_attempt(&mut conn, phone, addr, None, at, false)
            .expect("recorded");
    }
}

async fn retry_after(response: reqwest::Response) -> u64 {
    let seconds: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    let body = problem(response, 429, "rate_limited").await;
    assert_eq!(body["retry_after"], seconds);
    seconds
}

const ATTACKER: &str = "203.0.113.66";
const OWNER: &str = "198.51.100.7";

/// Finding 6: five wrong passwords from anywhere used to lock the phone for 15 minutes, even for
/// its owner with the right password.
async fn an_attackers_failures_do_not_stop_the_owner(backend: Backend) {
    let app = behind_proxy(backend, |_| {}).await;
    let phone = ENUMERATOR_TAOBEI.phone;
    // Three failures are free, the fourth makes the next try wait.
    for _ in 0..4 {
        problem(
            login_from(&app, ATTACKER, phone, "wrong-password", "evil").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    // Even the right password is refused now from there, without being checked.
    let wait =
        retry_after(login_from(&app, ATTACKER, phone, ENUMERATOR_TAOBEI.password, "evil").await)
            .await;
    assert_eq!(wait, 1);
    // A persistent attacker: fifty failures.
    record_failures(&app, phone, ATTACKER, 50, chrono::Duration::seconds(1));
    let wait = retry_after(login_from(&app, ATTACKER, phone, "guess", "evil").await).await;
    assert!((800..=900).contains(&wait), "{wait}");

    // The owner, from their own address, on a phone that never logged in before: not delayed.
    let owner = login_from(
        &app,
        OWNER,
        phone,
        ENUMERATOR_TAOBEI.password,
        "owner-phone",
    )
    .await;
    assert_eq!(owner.status(), 200);
    // Nor after mistyping once.
    problem(
        login_from(&app, OWNER, phone, "typo", "owner-phone").await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(
        login_from(
            &app,
            OWNER,
            phone,
            ENUMERATOR_TAOBEI.password,
            "owner-phone"
        )
        .await
        .status(),
        200
    );
}

/// The waits double with each failure beyond the free ones, up to 15 minutes.
async fn waits_grow_with_each_failure_up_to_the_cap(backend: Backend) {
    let app = behind_proxy(backend, |_| {}).await;
    let phone = CITY_ADMIN.phone;
    let mut failures = 0;
    let mut waits = Vec::new();
    for total in [6, 8, 10, 12, 40] {
        record_failures(
            &app,
            phone,
            ATTACKER,
            total - failures,
            chrono::Duration::milliseconds(500),
        );
        failures = total;
        waits.push(retry_after(login_from(&app, ATTACKER, phone, "guess", "d").await).await);
    }
    // 6 failures: 4 s; 8: 16 s; 10: 64 s; 12: 256 s; 40: the cap (less the half second).
    for (wait, expected) in waits.iter().zip([4u64, 16, 64, 256, 900]) {
        assert!(
            (expected - 1..=expected).contains(wait),
            "waits {waits:?}, expected about {expected}"
        );
    }
    // Once the wait has passed the next guess is checked (and fails).
    let other = REVIEWER_TAONAN.phone;
    record_failures(&app, other, ATTACKER, 12, chrono::Duration::seconds(300));
    problem(
        login_from(&app, ATTACKER, other, "guess", "d").await,
        401,
        "invalid_credentials",
    )
    .await;
}

/// Finding 6: about fifty failures from one address used to lock every login from it, so a
/// village behind one NAT was locked out together.
async fn failures_on_one_phone_do_not_lock_the_others_behind_the_address(backend: Backend) {
    let app = behind_proxy(backend, |_| {}).await;
    let village = "100.64.0.1";
    // The owner logs in from the village once (the device is known from then on).
    let owner = ENUMERATOR_TAOBEI;
    assert_eq!(
        login_from(&app, village, owner.phone, owner.password, "owner-phone")
            .await
            .status(),
        200
    );
    // Someone behind the same NAT guesses that phone's password, on and on (after the owner's
    // login, which would have cleared earlier failures).
    record_failures(&app, owner.phone, village, 60, chrono::Duration::zero());
    retry_after(login_from(&app, village, owner.phone, "guess", "other-phone").await).await;
    // Everyone else in the village logs in.
    for user in [ENUMERATOR_TAONAN, SECRETARY_TAOBEI, REVIEWER_TAOBEI] {
        assert_eq!(
            login_from(&app, village, user.phone, user.password, "their-phone")
                .await
                .status(),
            200,
            "{}",
            user.phone
        );
    }
    // And so does the owner on their own phone, which counts its failures apart.
    assert_eq!(
        login_from(&app, village, owner.phone, owner.password, "owner-phone")
            .await
            .status(),
        200
    );
    problem(
        login_from(&app, village, owner.phone, "typo", "owner-phone").await,
        401,
        "invalid_credentials",
    )
    .await;
}

/// One address trying a password on many accounts is stopped after a few phone numbers.
async fn an_address_may_try_only_so_many_phones(backend: Backend) {
    let app = behind_proxy(backend, |s| s.auth.max_phones_per_addr = 3).await;
    // A reviewer's phone is a known device from the start.
    assert_eq!(
        login_from(
            &app,
            OWNER,
            REVIEWER_TAOBEI.phone,
            REVIEWER_TAOBEI.password,
            "rv"
        )
        .await
        .status(),
        200
    );
    for phone in ["13711111111", "13722222222", "13733333333"] {
        problem(
            login_from(&app, ATTACKER, phone, "Spring2020", "d").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    // A fourth phone number from there is refused, whatever the password.
    retry_after(login_from(&app, ATTACKER, CITY_ADMIN.phone, CITY_ADMIN.password, "d").await).await;
    // Phone numbers it already tried are throttled on their own, not refused.
    problem(
        login_from(&app, ATTACKER, "13711111111", "Summer2020", "d").await,
        401,
        "invalid_credentials",
    )
    .await;
    // A device that logged in to its account before is not stopped by the address's count.
    assert_eq!(
        login_from(
            &app,
            ATTACKER,
            REVIEWER_TAOBEI.phone,
            REVIEWER_TAOBEI.password,
            "rv"
        )
        .await
        .status(),
        200
    );
    // Nor is anyone at another address.
    assert_eq!(
        login_from(&app, OWNER, CITY_ADMIN.phone, CITY_ADMIN.password, "d")
            .await
            .status(),
        200
    );
}

/// Guessing one phone's password from many addresses stops at the per-phone ceiling; the
/// owner's known device still logs in.
async fn a_phone_guessed_from_many_addresses_takes_only_known_devices(backend: Backend) {
    let app = behind_proxy(backend, |s| s.auth.max_failures_per_phone = 5).await;
    let owner = SECRETARY_TAOBEI;
    assert_eq!(
        login_from(&app, OWNER, owner.phone, owner.password, "owner-phone")
            .await
            .status(),
        200
    );
    for k in 1..=5 {
        problem(
            login_from(&app, &format!("203.0.113.{k}"), owner.phone, "guess", "bot").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    retry_after(login_from(&app, "203.0.113.6", owner.phone, owner.password, "bot").await).await;
    retry_after(login_from(&app, OWNER, owner.phone, owner.password, "new-phone").await).await;
    assert_eq!(
        login_from(&app, OWNER, owner.phone, owner.password, "owner-phone")
            .await
            .status(),
        200
    );
}

/// Concurrent guesses are checked and counted one at a time: sent all at once they cannot all
/// pass before the first is counted (here the first failure already asks for a minute's wait).
async fn concurrent_guesses_are_counted_one_by_one(backend: Backend) {
    let app = behind_proxy(backend, |s| {
        s.auth.free_failures = 0;
        s.auth.first_delay = std::time::Duration::from_secs(60);
    })
    .await;
    let guesses = (0..16).map(|k| {
        login_from(
            &app,
            ATTACKER,
            CITY_ADMIN.phone,
            if k == 15 {
                CITY_ADMIN.password
            } else {
                "guess"
            },
            "d",
        )
    });
    let mut statuses: Vec<u16> = futures_util::future::join_all(guesses)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    statuses.sort();
    let checked = statuses.iter().filter(|s| **s != 429).count();
    assert_eq!(checked, 1, "only one guess is checked: {statuses:?}");
}

async fn a_success_clears_the_phone_failures(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for _ in 0..4 {
        app.login_response(CITY_ADMIN.phone, "wrong-password", "d")
            .await;
    }
    // The fourth failure asked for a second's wait.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
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
}

both_backends!(
    every_demo_user_logs_in_and_reads_me,
    wrong_password_and_unknown_phone_look_the_same,
    login_input_is_validated,
    refresh_rotates_and_reuse_revokes_the_family,
    concurrent_refreshes_on_two_servers_spend_the_token_once,
    logout_ends_the_session_at_once,
    bad_tokens_are_refused_by_class,
    an_attackers_failures_do_not_stop_the_owner,
    waits_grow_with_each_failure_up_to_the_cap,
    failures_on_one_phone_do_not_lock_the_others_behind_the_address,
    an_address_may_try_only_so_many_phones,
    a_phone_guessed_from_many_addresses_takes_only_known_devices,
    concurrent_guesses_are_counted_one_by_one,
    a_success_clears_the_phone_failures,
);
