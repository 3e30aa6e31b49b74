//! The review console over plain HTTP: sessions in HttpOnly cookies, CSRF, scope, decisions
//! that change what the API reports, and errors shown as pages. `browser.rs` drives it in a
//! real browser.

use reqwest::redirect::Policy;
use reqwest::{Response, StatusCode};
use serde_json::Value;

use crate::checkins::{checkin_body, post, Shot};
use crate::helpers::*;
use crate::surveys::{household_survey, id_number, new_id, upload};

/// A browser-like client of the console: no redirects followed, cookies kept by hand.
pub struct ConsoleClient {
    base: String,
    http: reqwest::Client,
    cookies: std::collections::BTreeMap<String, String>,
}

impl ConsoleClient {
    pub fn new(app: &TestApp) -> Self {
        Self::with_headers(app, &[])
    }

    /// A client whose every request carries these headers (as a proxy in front would add).
    pub fn with_headers(app: &TestApp, headers: &[(&'static str, &'static str)]) -> Self {
        let mut default = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            default.insert(*name, reqwest::header::HeaderValue::from_static(value));
        }
        Self {
            base: app.address.clone(),
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .default_headers(default)
                .build()
                .expect("client"),
            cookies: Default::default(),
        }
    }

    fn remember(&mut self, response: &Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().expect("ascii cookie");
            let pair = text.split(';').next().expect("name=value");
            let (name, value) = pair.split_once('=').expect("name=value");
            if text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn get(&mut self, path: &str) -> Response {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("get");
        self.remember(&response);
        response
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Response {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("post");
        self.remember(&response);
        response
    }

    /// Posts a form, follows its 303 as a browser would, and returns the page it lands on.
    pub async fn submit(&mut self, path: &str, form: &[(&str, &str)]) -> String {
        let response = self.post(path, form).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        self.get(&location(&response))
            .await
            .text()
            .await
            .expect("page")
    }

    pub async fn login(&mut self, user: DemoUser) -> Response {
        let page = self.get("/console/login").await.text().await.expect("page");
        let token = hidden(&page, "login_token");
        self.post(
            "/console/login",
            &[
                ("phone", user.phone),
                ("password", user.password),
                ("login_token", &token),
                ("next", "/console/queue"),
            ],
        )
        .await
    }

    /// The CSRF token of the current session, read from a page as a browser would.
    pub async fn csrf(&mut self) -> String {
        let page = self.get("/console/queue").await.text().await.expect("page");
        hidden(&page, "csrf")
    }
}

/// The value of a hidden input in a page.
pub fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in page"))
        + marker.len();
    page[start..].split('"').next().expect("value").to_owned()
}

/// The first photo a page shows.
fn hidden_photo(page: &str) -> String {
    let marker = "/console/photos/";
    let start = page.find(marker).expect("a photo") + marker.len();
    page[start..start + 64].to_owned()
}

fn location(response: &Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Two fresh surveys of 平安村 by the 洮北 enumerator, the first with a photo; returns their ids.
pub async fn two_surveys(app: &TestApp) -> (String, String) {
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let photo = upload(app, &token, "doorplate.jpg").await;
    let mut ids = Vec::new();
    for (sequence, name) in [(41, "赵一"), (42, "钱二")] {
        let photos = if sequence == 41 {
            vec![photo.clone()]
        } else {
            Vec::new()
        };
        let body = household_survey(
            &new_id(),
            name,
            &id_number("220802", "19700101", sequence),
            &photos,
        );
        let response = app
            .post("/api/v1/surveys/households")
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("submit");
        assert_eq!(response.status(), StatusCode::CREATED);
        let answer: Value = response.json().await.expect("json");
        ids.push(answer["id"].as_str().expect("id").to_owned());
    }
    (ids[0].clone(), ids[1].clone())
}

async fn survey_status(app: &TestApp, id: &str) -> Value {
    let token = app.token(REVIEWER_TAOBEI).await;
    app.get_as(&token, &format!("/api/v1/surveys/{id}"))
        .await
        .json()
        .await
        .expect("json")
}

async fn login_sets_an_http_only_session_and_logout_ends_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut console = ConsoleClient::new(&app);

    // Without a session every page sends the browser to the login form, remembering the page.
    let response = console.get("/console/ledger?month=2020-07").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&response),
        "/console/login?next=%2Fconsole%2Fledger%3Fmonth%3D2020-07"
    );

    // A wrong password: the form again, with a message, and no session.
    let page = console
        .get("/console/login")
        .await
        .text()
        .await
        .expect("page");
    let token = hidden(&page, "login_token");
    let response = console
        .post(
            "/console/login",
            &[
                ("phone", REVIEWER_TAOBEI.phone),
                ("password", "wrong-password"),
                ("login_token", &token),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response
        .text()
        .await
        .expect("page")
        .contains("手机号或密码错误"));
    assert!(!console.cookies.contains_key("tz_console"));

    // A login posted without the form's cookie (from another site) is refused.
    let mut stranger = ConsoleClient::new(&app);
    let response = stranger
        .post(
            "/console/login",
            &[
                ("phone", REVIEWER_TAOBEI.phone),
                ("password", REVIEWER_TAOBEI.password),
                ("login_token", &token),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!stranger.cookies.contains_key("tz_console"));

    let response = console.login(REVIEWER_TAOBEI).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/console/queue");
    let set_cookie: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect();
    let session = set_cookie
        .iter()
        .find(|c| c.starts_with("tz_console="))
        .expect("session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(session.contains(attribute), "{session} lacks {attribute}");
    }
    // The cookie holds the API's own access token: the same session, the same checks.
    let access = console.cookies["tz_console"].clone();
    let me = app.get_as(&access, "/api/v1/me").await;
    assert_eq!(me.status(), StatusCode::OK);

    let page = console.get("/console/queue").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.headers()["cache-control"].to_str().expect("ascii"),
        "no-store"
    );
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .contains("default-src 'self'"));
    let html = page.text().await.expect("page");
    assert!(html.contains("王秀梅") && html.contains("审核队列"));

    // Logout needs the session's CSRF token, then ends the API session too.
    let csrf = console.csrf().await;
    let response = console.post("/console/logout", &[("csrf", "forged")]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = console.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.get_as(&access, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let response = console.get("/console/queue").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

async fn decisions_need_the_csrf_token_and_follow_the_api_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (first, second) = two_surveys(&app).await;
    let mut console = ConsoleClient::new(&app);
    console.login(REVIEWER_TAOBEI).await;

    // The queue lists both, oldest first.
    let html = console
        .get("/console/queue")
        .await
        .text()
        .await
        .expect("page");
    let a = html.find(&first).expect("first listed");
    let b = html.find(&second).expect("second listed");
    assert!(a < b, "oldest first");

    // A forged form changes nothing.
    let path = format!("/console/surveys/{first}/review");
    let response = console
        .post(&path, &[("csrf", "0000"), ("decision", "approve")])
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(survey_status(&app, &first).await["status"], "submitted");

    // Rejecting without a reason is refused by the API's rule, shown as a message.
    let csrf = console.csrf().await;
    let page = console
        .submit(&path, &[("csrf", &csrf), ("decision", "reject")])
        .await;
    assert!(
        page.contains("flash error") && page.contains("理由：请填写作出此决定的理由"),
        "{page}"
    );
    assert_eq!(survey_status(&app, &first).await["status"], "submitted");

    // A decision on a version the reviewer did not see is stale.
    let page = console
        .submit(
            &path,
            &[
                ("csrf", &csrf),
                ("decision", "approve"),
                ("seen_version", "7"),
            ],
        )
        .await;
    assert!(page.contains("该调查已被他人处理"), "{page}");

    let response = console
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("decision", "reject"),
                ("reason", "户主身份证号与户籍不符"),
                ("seen_version", "1"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let survey = survey_status(&app, &first).await;
    assert_eq!(survey["status"], "rejected");
    assert_eq!(survey["review_comment"], "户主身份证号与户籍不符");

    // Bulk approval through the queue's form.
    let page = console
        .submit(
            "/console/queue/bulk",
            &[("csrf", &csrf), ("ids", &second), ("ids", &first)],
        )
        .await;
    // The rejected one cannot be approved; the other is.
    assert!(page.contains("已通过 1 份，1 份未能通过"), "{page}");
    assert_eq!(survey_status(&app, &second).await["status"], "approved");
    assert_eq!(survey_status(&app, &first).await["status"], "rejected");
}

async fn scope_and_roles_are_the_apis(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (first, _) = two_surveys(&app).await;

    // Another county's reviewer cannot see the survey, nor decide it.
    let mut other = ConsoleClient::new(&app);
    other.login(REVIEWER_TAONAN).await;
    let response = other.get(&format!("/console/surveys/{first}")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let html = response.text().await.expect("page");
    assert!(html.contains("资源不存在"), "{html}");
    let csrf = other.csrf().await;
    let response = other
        .post(
            &format!("/console/surveys/{first}/review"),
            &[("csrf", &csrf), ("decision", "approve")],
        )
        .await;
    let page = other.get(&location(&response)).await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert_eq!(survey_status(&app, &first).await["status"], "submitted");
    // Nor read another county's ledger.
    let response = other
        .get("/console/ledger?level=county&code=220802000000&month=2020-07")
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // Field users work in the phone app: the console turns them away and keeps no session.
    let mut field = ConsoleClient::new(&app);
    let response = field.login(ENUMERATOR_TAOBEI).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response
        .text()
        .await
        .expect("page")
        .contains("请使用手机应用"));
    assert!(!field.cookies.contains_key("tz_console"));
    let response = field.get("/console/duplicates").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // Nor does a field user's API token work as a console cookie.
    let token = app.token(ENUMERATOR_TAOBEI).await;
    field.cookies.insert("tz_console".into(), token);
    assert_eq!(
        field.get("/console/queue").await.status(),
        StatusCode::FORBIDDEN
    );

    // Only the city closes months.
    let mut reviewer = ConsoleClient::new(&app);
    reviewer.login(REVIEWER_TAOBEI).await;
    let csrf = reviewer.csrf().await;
    let page = reviewer
        .submit("/console/months/2020-07/close", &[("csrf", &csrf)])
        .await;
    assert!(page.contains("当前角色无权执行此操作"), "{page}");
    let mut city = ConsoleClient::new(&app);
    city.login(CITY_ADMIN).await;
    let csrf = city.csrf().await;
    let page = city
        .submit(
            "/console/months/2020-07/close",
            &[("csrf", &csrf), ("reason", "测试：未经签核强制关账")],
        )
        .await;
    assert!(page.contains("2020-07 已关账"), "{page}");
}

async fn pages_render_in_chinese_and_bad_input_is_a_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (first, _) = two_surveys(&app).await;
    let mut console = ConsoleClient::new(&app);
    console.login(CITY_ADMIN).await;
    for (path, expect) in [
        ("/console/queue".to_owned(), "审核队列"),
        (format!("/console/surveys/{first}"), "家庭成员"),
        ("/console/duplicates".to_owned(), "疑似重复户"),
        ("/console/attendance?month=2020-07".to_owned(), "驻村考勤"),
        ("/console/ledger?month=2020-07".to_owned(), "需求台账"),
        (
            "/console/ledger?level=village&code=220802100201&month=2020-07".to_owned(),
            "平安村",
        ),
        ("/console/months".to_owned(), "月度关账"),
    ] {
        let response = console.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let html = response.text().await.expect("page");
        assert!(html.contains(expect), "{path} lacks {expect}");
        assert!(html.contains("<html lang=\"zh-CN\">"), "{path}");
        // Nothing from outside the server.
        assert!(!html.contains("http://") || html.contains("http://www.w3.org/2000/svg"));
        assert!(!html.contains("https://"), "{path} loads from outside");
    }
    // The survey page draws the village on an SVG map.
    let html = console
        .get(&format!("/console/surveys/{first}"))
        .await
        .text()
        .await
        .expect("page");
    assert!(html.contains("<svg") && html.contains("fence focus"));
    for (path, status) in [
        ("/console/attendance?month=2020-13", StatusCode::BAD_REQUEST),
        (
            "/console/ledger?level=village&code=12",
            StatusCode::BAD_REQUEST,
        ),
        ("/console/surveys/not-a-uuid", StatusCode::BAD_REQUEST),
        ("/console/no-such-page", StatusCode::NOT_FOUND),
    ] {
        let response = console.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        assert!(response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html"));
    }
    // The survey's photo through the console session, a thumbnail first.
    let thumb = format!("/console/photos/{}?size=thumb", hidden_photo(&html));
    let response = console.get(&thumb).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    let mut other = ConsoleClient::new(&app);
    other.login(REVIEWER_TAONAN).await;
    assert_eq!(other.get(&thumb).await.status(), StatusCode::NOT_FOUND);

    // A corrected survey: the page lists the household's versions, linked.
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let mut correction =
        household_survey(&new_id(), "赵一", &id_number("220802", "19700101", 41), &[]);
    correction["replaces"] = Value::String(first.clone());
    let response = app
        .post("/api/v1/surveys/households")
        .bearer_auth(&field)
        .json(&correction)
        .send()
        .await
        .expect("submit");
    assert_eq!(response.status(), StatusCode::CREATED);
    let corrected: Value = response.json().await.expect("json");
    let page = console
        .get(&format!(
            "/console/surveys/{}",
            corrected["id"].as_str().expect("id")
        ))
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains("该户历次调查（2）"), "{page}");
    assert!(page.contains(&format!("/console/surveys/{first}")));

    // Revealing the head's ID number asks for a reason and is audited.
    let masked = html.contains("220802********0411");
    assert!(masked, "masked by default");
    let html = console
        .get(&format!(
            "/console/surveys/{first}?reveal=true&reason=核实户籍"
        ))
        .await
        .text()
        .await
        .expect("page");
    assert!(html.contains("220802197001010411"), "revealed");
    let token = app.token(CITY_ADMIN).await;
    let audit: Value = app
        .get_as(&token, "/api/v1/audit?action=reveal_personal_data")
        .await
        .json()
        .await
        .expect("json");
    assert!(audit.to_string().contains("核实户籍"), "{audit}");

    // A flagged check-in shows on the month's attendance page with its photo.
    let secretary = app.token(SECRETARY_TAOBEI).await;
    let mut shot = Shot::new(7001, chrono::Utc::now() - chrono::Duration::hours(1));
    shot.accuracy = 500.0;
    let body = checkin_body(&app, &secretary, &shot).await;
    assert_eq!(
        post(&app, &secretary, &body).await.status(),
        StatusCode::CREATED
    );
    let month = (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m")
        .to_string();
    let html = console
        .get(&format!(
            "/console/attendance?month={month}&county=220802000000&village=220802100201"
        ))
        .await
        .text()
        .await
        .expect("page");
    assert!(html.contains("定位精度不足"), "the flag, in Chinese");
    assert!(html.contains(&format!(
        "/console/photos/{}?size=thumb",
        body["photo"].as_str().expect("sha")
    )));
    assert!(html.contains("赵志刚"));
    assert!(
        html.contains("pt flagged"),
        "the check-in on the village map"
    );

    // The ledger's export with the console session.
    let response = console
        .get("/console/ledger/export?level=county&code=220802000000&month=2020-07&format=xlsx")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.expect("xlsx");
    assert!(bytes.starts_with(b"PK"), "an XLSX is a ZIP");
}

async fn an_expired_access_token_is_renewed_for_an_open_session(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.auth.access_ttl = std::time::Duration::from_secs(1)
    })
    .await;
    let mut console = ConsoleClient::new(&app);
    console.login(REVIEWER_TAOBEI).await;
    let first = console.cookies["tz_console"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    // The API refuses the expired token; the console renews it for the same session.
    assert_eq!(
        app.get_as(&first, "/api/v1/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let response = console.get("/console/queue").await;
    assert_eq!(response.status(), StatusCode::OK);
    let renewed = console.cookies["tz_console"].clone();
    assert_ne!(renewed, first, "a new token was set");
    assert_eq!(
        app.get_as(&renewed, "/api/v1/me").await.status(),
        StatusCode::OK
    );
    // A session ended through the API ends the console's too, expired token or not.
    let response = app
        .post("/api/v1/auth/logout")
        .bearer_auth(&renewed)
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let response = console.get("/console/queue").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(location(&response).starts_with("/console/login"));
}

/// Finding 7: the console cookie lacked `Secure` when served over HTTPS. Behind a trusted proxy
/// that says the browser came over HTTPS every cookie is Secure; over plain HTTP, or when the
/// proxy headers are not trusted (anyone can send them), none is.
async fn cookies_are_secure_over_https(backend: Backend) {
    async fn cookies(console: &mut ConsoleClient) -> Vec<String> {
        let page = console.get("/console/login").await;
        let mut all: Vec<String> = page
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect();
        let response = console.login(REVIEWER_TAOBEI).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        all.extend(
            response
                .headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().expect("ascii").to_owned()),
        );
        assert!(all.iter().any(|c| c.starts_with("tz_console=")), "{all:?}");
        assert!(all.iter().any(|c| c.starts_with("tz_login=")), "{all:?}");
        all
    }
    let secure = |c: &String| c.split(';').any(|a| a.trim() == "Secure");

    let trusted = TestApp::spawn_with(backend, |s| s.trust_proxy_headers = true).await;
    for proxy in [
        ("x-forwarded-proto", "https"),
        ("forwarded", "for=198.51.100.7;proto=https"),
    ] {
        let mut console = ConsoleClient::with_headers(&trusted, &[proxy]);
        let set = cookies(&mut console).await;
        assert!(set.iter().all(secure), "{proxy:?}: {set:?}");
        // The session works as before.
        assert_eq!(console.get("/console/queue").await.status(), StatusCode::OK);
    }
    let mut plain = ConsoleClient::new(&trusted);
    let set = cookies(&mut plain).await;
    assert!(!set.iter().any(secure), "plain HTTP: {set:?}");

    let untrusted = TestApp::spawn(backend).await;
    let mut spoofed = ConsoleClient::with_headers(&untrusted, &[("x-forwarded-proto", "https")]);
    let set = cookies(&mut spoofed).await;
    assert!(!set.iter().any(secure), "untrusted proxy headers: {set:?}");
}

/// The real-name ledgers page: masked by default, a reveal only with a reason (audited), its
/// downloads, the ledger's figures linking to it, and scope.
async fn real_name_ledgers_page_masks_reveals_with_a_reason_and_keeps_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let heads = crate::ledger::out_migrants(&app).await;
    let mut console = ConsoleClient::new(&app);
    console.login(REVIEWER_TAOBEI).await;
    let choice = "kind=out_migrants&month=2020-07&village=220802100201";
    let response = console.get(&format!("/console/rosters?{choice}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.expect("page");
    assert!(html.contains("外出务工人员实名制台账"), "{html}");
    for listed in ["外出0", "外出1", "外出2"] {
        assert!(html.contains(listed), "{listed} missing");
    }
    assert!(
        !html.contains("外出3"),
        "a pending survey is not in the ledger"
    );
    assert!(html.contains("********"), "masked by default");
    assert!(heads.iter().all(|h| !html.contains(h.id.as_str())));

    // The masked download.
    let csv = console
        .get(&format!("/console/rosters/export?{choice}&format=csv"))
        .await;
    assert_eq!(csv.status(), StatusCode::OK);
    let csv = csv.text().await.expect("csv");
    assert!(csv.contains("外出1") && !csv.contains(heads[1].id.as_str()));

    // A reveal needs the session's token and a reason.
    let csrf = console.csrf().await;
    let form = |reason: &'static str| {
        vec![
            ("kind", "out_migrants"),
            ("month", "2020-07"),
            ("village", "220802100201"),
            ("reason", reason),
        ]
    };
    let mut forged = form("核对");
    forged.push(("csrf", "forged"));
    let refused = console.post("/console/rosters/reveal", &forged).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let mut blank = form("  ");
    blank.push(("csrf", &csrf));
    let refused = console.post("/console/rosters/reveal", &blank).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.expect("page").contains("理由"));
    let mut with_reason = form("核对务工补贴发放名单");
    with_reason.push(("csrf", &csrf));
    let shown = console.post("/console/rosters/reveal", &with_reason).await;
    assert_eq!(shown.status(), StatusCode::OK);
    let html = shown.text().await.expect("page");
    assert!(
        heads[..3].iter().all(|h| html.contains(h.id.as_str())),
        "revealed"
    );
    with_reason.push(("format", "csv"));
    let file = console.post("/console/rosters/reveal", &with_reason).await;
    assert_eq!(file.status(), StatusCode::OK);
    assert!(file
        .text()
        .await
        .expect("csv")
        .contains(heads[0].id.as_str()));
    let city = app.token(CITY_ADMIN).await;
    let audit: Value = app
        .get_as(
            &city,
            "/api/v1/audit?action=reveal_personal_data&subject_type=ledger",
        )
        .await
        .json()
        .await
        .expect("audit");
    let rows = audit["items"].as_array().expect("items");
    assert_eq!(rows.len(), 2, "the page and the download: {audit}");
    assert!(rows.iter().all(|r| r["reason"] == "核对务工补贴发放名单"));

    // The ledger's figure links to its people.
    let ledger = console
        .get("/console/ledger?level=village&code=220802100201&month=2020-07")
        .await
        .text()
        .await
        .expect("page");
    assert!(ledger
        .contains("/console/rosters?kind=out_migrants&amp;month=2020-07&amp;village=220802100201"));

    // Another county's reviewer sees neither the page nor the download.
    let mut stranger = ConsoleClient::new(&app);
    stranger.login(REVIEWER_TAONAN).await;
    for path in [
        format!("/console/rosters?{choice}"),
        format!("/console/rosters/export?{choice}&format=xlsx"),
    ] {
        assert_eq!(
            stranger.get(&path).await.status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let bad = console.get("/console/rosters?kind=everyone").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

/// The queue's enumerator filter lists the chosen county's enumerators (a reviewer's own), and
/// asks the city to choose a county first rather than listing the whole city's.
async fn the_queue_lists_the_countys_enumerators_to_filter_by(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let city = app.token(CITY_ADMIN).await;
    let users: Value = app
        .get_as(&city, "/api/v1/users?role=enumerator")
        .await
        .json()
        .await
        .expect("users");
    let name_in = |county: &str| {
        users["users"]
            .as_array()
            .expect("users")
            .iter()
            .find(|u| u["county_code"] == county)
            .and_then(|u| u["name"].as_str())
            .expect("an enumerator")
            .to_owned()
    };
    let (taobei, taonan) = (name_in("220802000000"), name_in("220881000000"));
    let select = |html: &str| {
        let at = html.find("name=\"enumerator\"").expect("the filter");
        let start = html[..at].rfind("<select").expect("a select");
        let end = start + html[start..].find("</select>").expect("its end");
        html[start..end].to_owned()
    };

    let mut console = ConsoleClient::new(&app);
    console.login(CITY_ADMIN).await;
    let whole = select(
        &console
            .get("/console/queue")
            .await
            .text()
            .await
            .expect("page"),
    );
    assert!(
        whole.contains("disabled") && !whole.contains(&taobei),
        "{whole}"
    );
    let one = select(
        &console
            .get("/console/queue?county=220802000000")
            .await
            .text()
            .await
            .expect("page"),
    );
    assert!(one.contains(&taobei) && !one.contains(&taonan), "{one}");

    let mut reviewer = ConsoleClient::new(&app);
    reviewer.login(REVIEWER_TAONAN).await;
    let own = select(
        &reviewer
            .get("/console/queue")
            .await
            .text()
            .await
            .expect("page"),
    );
    assert!(own.contains(&taonan) && !own.contains(&taobei), "{own}");
}

both_backends!(
    an_expired_access_token_is_renewed_for_an_open_session,
    login_sets_an_http_only_session_and_logout_ends_it,
    decisions_need_the_csrf_token_and_follow_the_api_rules,
    scope_and_roles_are_the_apis,
    pages_render_in_chinese_and_bad_input_is_a_page,
    cookies_are_secure_over_https,
    real_name_ledgers_page_masks_reveals_with_a_reason_and_keeps_scope,
    the_queue_lists_the_countys_enumerators_to_filter_by,
);
