//! The review console in a real browser: headless Chromium driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`; `.ci/run` installs them). A county reviewer logs in,
//! approves one survey, rejects another with a reason, sees the ledger change and downloads
//! the XLSX. A screenshot of each main page is saved under `target/console-screenshots/` for a
//! person to look at.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::checkins::{checkin_body, post, Shot};
use crate::console::two_surveys;
use crate::helpers::*;
use crate::surveys::{household_survey, id_number, new_id};

/// A chromedriver on a free port and a browser session through it; both end on drop.
struct Browser {
    client: Client,
    driver: Child,
    downloads: tempfile::TempDir,
    _profile: tempfile::TempDir,
}

fn executable(env: &str, candidates: &[&str]) -> PathBuf {
    if let Ok(path) = std::env::var(env) {
        return PathBuf::from(path);
    }
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "{} not found: install Debian's chromium and chromium-driver \
                 (`.ci/run` does), or set {env}",
                candidates[0]
            )
        })
}

impl Browser {
    async fn start() -> Browser {
        let driver_path = executable(
            "TAIZHANG_CHROMEDRIVER",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
        );
        let chromium = executable("TAIZHANG_CHROMIUM", &["/usr/bin/chromium"]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let downloads = tempfile::tempdir().expect("downloads");
        let profile = tempfile::tempdir().expect("profile");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                // The machine has no internet: without the background-networking switches
                // Chromium keeps trying Google's services.
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                    "--lang=zh-CN", format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {
                    "download.default_directory": downloads.path(),
                    "download.prompt_for_download": false,
                    "intl.accept_languages": "zh-CN",
                },
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("browser session");
        Browser {
            client,
            driver,
            downloads,
            _profile: profile,
        }
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// The element `css` selects, once the page has it (at most `limit`).
    async fn element_within(&self, css: &str, limit: Duration) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(limit)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        self.element_within(css, Duration::from_secs(10)).await
    }

    async fn text(&self, css: &str) -> String {
        self.element(css).await.text().await.expect("text")
    }

    async fn click(&self, css: &str) {
        self.element(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Clicks what loads a new page, and waits until the old page is gone: reading the page
    /// earlier would find the old one's elements.
    async fn click_and_load(&self, css: &str) {
        let old = self.client.find(Locator::Css("html")).await.expect("page");
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        while old.tag_name().await.is_ok() {
            assert!(Instant::now() < deadline, "clicking {css} loaded no page");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.element_within("body", Duration::from_secs(15)).await;
    }

    async fn fill(&self, css: &str, text: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .send_keys(text)
            .await
            .expect("type");
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Waits for a completed download with the extension.
    async fn downloaded(&self, extension: &str) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(file) = std::fs::read_dir(self.downloads.path())
                .expect("downloads")
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|e| e == extension))
            {
                return std::fs::read(file).expect("read download");
            }
            assert!(Instant::now() < deadline, "no .{extension} downloaded");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// `target/console-screenshots/`, beside the build (CARGO_TARGET_TMPDIR is `target/tmp`).
fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap_or(Path::new("target"))
        .join("console-screenshots")
}

fn figure_cell(figure: &str) -> String {
    format!("tr[data-figure=\"{figure}\"] td.approved")
}

async fn a_reviewer_approves_rejects_and_exports(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (first, second) = two_surveys(&app).await;
    let browser = Browser::start().await;
    let b = &browser;
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };

    // The console sends a stranger to its login page.
    b.client
        .goto(&format!("{}/console", app.address))
        .await
        .expect("open console");
    assert!(b.path().await.starts_with("/console/login"));
    b.shot(&format!("{name}-01-login")).await;
    b.fill("#phone", REVIEWER_TAOBEI.phone).await;
    b.fill("#password", REVIEWER_TAOBEI.password).await;
    b.click_and_load("#login").await;
    assert_eq!(b.text("main h1").await, "审核队列");
    assert_eq!(b.path().await, "/console/queue");
    b.shot(&format!("{name}-02-queue")).await;

    // The village's ledger before: nothing approved yet.
    let ledger = format!(
        "{}/console/ledger?level=village&code=220802100201&month=2020-07",
        app.address
    );
    b.client.goto(&ledger).await.expect("ledger");
    assert_eq!(b.text(&figure_cell("households")).await, "0");
    assert_eq!(b.text(&figure_cell("population")).await, "0");

    // Approve the first from the queue.
    b.client
        .goto(&format!("{}/console/queue", app.address))
        .await
        .expect("queue");
    b.click_and_load(&format!("tr[data-survey=\"{first}\"] a.open"))
        .await;
    assert_eq!(b.path().await, format!("/console/surveys/{first}"));
    assert!(b.text("figure.map figcaption").await.contains("平安村"));
    b.shot(&format!("{name}-03-survey")).await;
    b.click_and_load("form.decision.approve button").await;
    assert_eq!(b.text("#status").await, "已通过");
    assert!(b.text(".flash.ok").await.contains("审核通过"));

    // Reject the second with a reason.
    b.client
        .goto(&format!("{}/console/surveys/{second}", app.address))
        .await
        .expect("survey");
    b.fill(
        "form.decision.reject textarea",
        "家庭成员身份证号有误，请核实",
    )
    .await;
    b.click_and_load("form.decision.reject button").await;
    assert_eq!(b.text("#status").await, "已驳回");
    assert!(b
        .text("dl.facts")
        .await
        .contains("家庭成员身份证号有误，请核实"));

    // The ledger counts the approved household and its four members, not the rejected one.
    b.client.goto(&ledger).await.expect("ledger");
    assert_eq!(b.text(&figure_cell("households")).await, "1");
    assert_eq!(b.text(&figure_cell("population")).await, "4");
    b.shot(&format!("{name}-04-ledger")).await;

    // The export button downloads the XLSX with the browser's session.
    b.click("#export-xlsx").await;
    let xlsx = b.downloaded("xlsx").await;
    assert!(xlsx.starts_with(b"PK"), "an XLSX is a ZIP archive");

    // A keyless survey of a household like the first: a possible duplicate, merged side by side.
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let mut twin = household_survey(&new_id(), "赵一", &id_number("220802", "19700101", 41), &[]);
    twin["household"]["head_id_number"] = serde_json::Value::Null;
    twin["location"]["lat"] = json!(45.736537 + 30.0 / 111_200.0);
    let response = app
        .post("/api/v1/surveys/households")
        .bearer_auth(&field)
        .json(&twin)
        .send()
        .await
        .expect("submit");
    assert_eq!(response.status(), 201);
    b.client
        .goto(&format!("{}/console/duplicates", app.address))
        .await
        .expect("duplicates");
    assert_eq!(
        b.client
            .find_all(Locator::Css("article.pair"))
            .await
            .expect("pairs")
            .len(),
        1
    );
    b.shot(&format!("{name}-05-duplicates")).await;
    let old = b.client.find(Locator::Css("html")).await.expect("page");
    b.click("form.decision.merge-a button").await;
    // The merge asks first.
    b.client.accept_alert().await.expect("a confirmation");
    b.element_within(".flash.ok", Duration::from_secs(15)).await;
    assert!(old.tag_name().await.is_err(), "a new page");
    assert!(b.text(".flash.ok").await.contains("合并"));

    // A check-in with poor accuracy, for the attendance page to show.
    let secretary = app.token(SECRETARY_TAOBEI).await;
    let mut shot = Shot::new(7002, chrono::Utc::now() - chrono::Duration::hours(2));
    shot.accuracy = 500.0;
    let body = checkin_body(&app, &secretary, &shot).await;
    assert_eq!(post(&app, &secretary, &body).await.status(), 201);
    let month = (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m")
        .to_string();
    let attendance = format!("/console/attendance?month={month}&village=220802100201");
    for (path, shot) in [
        (attendance.as_str(), "06-attendance"),
        ("/console/ledger?month=2020-07", "07-ledger-county"),
        ("/console/months", "08-months"),
    ] {
        b.client
            .goto(&format!("{}{path}", app.address))
            .await
            .expect("page");
        assert!(!b.text("main h1").await.is_empty());
        if shot == "06-attendance" {
            assert!(
                b.text("#flagged").await.contains("定位精度不足"),
                "the flagged check-in is listed"
            );
        }
        b.shot(&format!("{name}-{shot}")).await;
    }
    browser.stop().await;
}

async fn the_city_manages_staff_and_reads_the_audit_log(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = Browser::start().await;
    let b = &browser;
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let go = |path: &str| format!("{}{path}", app.address);
    log_in_as(b, &app, CITY_ADMIN).await;

    // The list, filtered by role.
    b.click_and_load("nav a[href=\"/console/users\"]").await;
    assert_eq!(b.text("main h1").await, "人员管理");
    b.client
        .goto(&go("/console/users?role=county_reviewer"))
        .await
        .expect("users");
    let rows = b
        .client
        .find_all(Locator::Css("#users tbody tr"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 2);
    b.shot(&format!("{name}-20-users")).await;

    // Deactivate an enumerator: the phone is refused at once; then reactivate.
    b.client.goto(&go("/console/users")).await.expect("users");
    b.click_and_load(&format!(
        "tr[data-phone=\"{}\"] a.edit",
        ENUMERATOR_TAOBEI.phone
    ))
    .await;
    b.shot(&format!("{name}-21-user")).await;
    b.fill("#active input[name=reason]", "工作队轮换").await;
    b.click_and_load("#toggle-active").await;
    assert!(b.text(".flash.ok").await.contains("已停用"));
    assert_eq!(b.text("#account-state").await, "已停用");
    let refused = app
        .login_response(ENUMERATOR_TAOBEI.phone, ENUMERATOR_TAOBEI.password, "d")
        .await;
    problem(refused, 401, "account_disabled").await;
    b.click_and_load("#toggle-active").await;
    assert_eq!(b.text("#account-state").await, "在用");

    // Reset a reviewer's password: the one-time password is shown once.
    b.client.goto(&go("/console/users")).await.expect("users");
    b.click_and_load(&format!(
        "tr[data-phone=\"{}\"] a.edit",
        REVIEWER_TAOBEI.phone
    ))
    .await;
    b.click_and_load("#reset-password").await;
    let one_time = b.text("#one-time-password").await;
    assert_eq!(one_time.len(), 14, "{one_time}");
    b.shot(&format!("{name}-22-reset")).await;

    // The audit log shows it.
    b.click_and_load("nav a[href=\"/console/audit\"]").await;
    b.client
        .goto(&go("/console/audit?action=reset_password"))
        .await
        .expect("audit");
    let rows = b
        .client
        .find_all(Locator::Css("#audit tr[data-action=\"reset_password\"]"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1);
    assert!(b.text("#audit tbody").await.contains("重置密码"));
    b.shot(&format!("{name}-23-audit")).await;

    // The reviewer logs in with it and must choose a new password before anything else.
    b.click_and_load("form[action=\"/console/logout\"] button")
        .await;
    log_in(b, &app, REVIEWER_TAOBEI.phone, &one_time).await;
    assert_eq!(b.path().await, "/console/password");
    assert!(b.text(".flash.error").await.contains("重置"));
    b.client.goto(&go("/console/queue")).await.expect("queue");
    assert_eq!(
        b.path().await,
        "/console/password",
        "every other page sends them back"
    );
    b.fill("#current-password", &one_time).await;
    b.fill("#new-password", "a brand new secret").await;
    b.click_and_load("#change").await;
    assert_eq!(b.path().await, "/console/queue");
    assert!(b.text(".flash.ok").await.contains("密码已修改"));
    // A reviewer has the users page but not the audit log.
    let audit = b
        .client
        .find_all(Locator::Css("nav a[href=\"/console/audit\"]"))
        .await
        .expect("links");
    assert!(audit.is_empty());
    b.client.goto(&go("/console/users")).await.expect("users");
    let rows = b
        .client
        .find_all(Locator::Css("#users tbody tr"))
        .await
        .expect("rows");
    assert_eq!(
        rows.len(),
        3,
        "the reviewer, the enumerator and the first secretary of 洮北区"
    );
    browser.stop().await;
}

/// Clicks what asks to confirm and then loads a new page: accepts the confirmation and waits
/// until the old page is gone.
async fn confirm_and_load(b: &Browser, css: &str) {
    let old = b.client.find(Locator::Css("html")).await.expect("page");
    b.click(css).await;
    b.client.accept_alert().await.expect("a confirmation");
    let deadline = Instant::now() + Duration::from_secs(15);
    while old.tag_name().await.is_ok() {
        assert!(Instant::now() < deadline, "clicking {css} loaded no page");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.element_within("body", Duration::from_secs(15)).await;
}

async fn log_in_as(b: &Browser, app: &TestApp, user: DemoUser) {
    log_in(b, app, user.phone, user.password).await;
}

/// Signs in through the console's form, as a fresh visitor (no cookies).
async fn log_in(b: &Browser, app: &TestApp, phone: &str, password: &str) {
    b.client.delete_all_cookies().await.expect("cookies");
    b.client
        .goto(&format!("{}/console", app.address))
        .await
        .expect("open console");
    b.fill("#phone", phone).await;
    b.fill("#password", password).await;
    b.click_and_load("#login").await;
}

/// The month page: a reviewer signs off their county with a reason (a survey awaits review),
/// the city closes with a reason and reopens with one; the quotas page shows the notice's
/// totals.
async fn the_month_is_signed_off_closed_and_reopened(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    crate::months::pending_survey(&app).await;
    let browser = Browser::start().await;
    let b = &browser;
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let page = format!("{}/console/months/2020-07", app.address);
    let taobei = "tr[data-county=\"220802000000\"] td.state";

    log_in_as(b, &app, REVIEWER_TAOBEI).await;
    b.client.goto(&page).await.expect("month");
    assert_eq!(b.text(taobei).await, "未签核");
    assert!(b.text("#counties").await.contains("洮北区"));
    b.fill("#signoff-note", "本月已核").await;
    b.fill("#signoff-reason", "一户待补照片，已电话核实").await;
    b.click_and_load("#signoff").await;
    assert!(b.text(".flash.ok").await.contains("已签核"));
    assert_eq!(b.text(taobei).await, "已签核");
    assert!(b.text("#counties").await.contains("本月已核"));
    b.shot(&format!("{name}-09-month-signed")).await;

    log_in_as(b, &app, CITY_ADMIN).await;
    b.client.goto(&page).await.expect("month");
    assert_eq!(b.text(taobei).await, "已签核");
    b.fill("#close-reason", "其余县区无审核员，市里确认").await;
    confirm_and_load(b, "#close").await;
    assert!(b.text(".flash.ok").await.contains("已关账"));
    assert_eq!(b.text("#summary .state").await, "已关账");
    assert!(b.text("#closes").await.contains("第 1 版（现行）"));
    b.shot(&format!("{name}-10-month-closed")).await;
    b.fill("#reopen-reason", "补录审核结果").await;
    confirm_and_load(b, "#reopen").await;
    assert!(b.text(".flash.ok").await.contains("已重新开账"));
    assert_eq!(b.text("#summary .state").await, "未关账");
    assert_eq!(
        b.text(taobei).await,
        "未签核",
        "counties sign again after a reopen"
    );
    assert!(b.text("#closes").await.contains("补录审核结果"));

    b.client
        .goto(&format!("{}/console/quotas?year=2020", app.address))
        .await
        .expect("quotas");
    let special = b.element("#city-special").await;
    assert_eq!(
        special.prop("value").await.expect("value").as_deref(),
        Some("2592")
    );
    b.shot(&format!("{name}-11-quotas")).await;
    browser.stop().await;
}

/// A reviewer confirms a flagged check-in from the attendance page, with a reason: the day then
/// counts; the subsidy page opens from there with its export buttons.
async fn a_reviewer_confirms_a_flagged_checkin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secretary = app.token(SECRETARY_TAOBEI).await;
    let mut shot = Shot::new(7102, chrono::Utc::now() - chrono::Duration::minutes(30));
    shot.accuracy = 500.0;
    let body = checkin_body(&app, &secretary, &shot).await;
    assert_eq!(post(&app, &secretary, &body).await.status(), 201);
    let month = (chrono::Utc::now() - chrono::Duration::minutes(30) + chrono::Duration::hours(8))
        .format("%Y-%m")
        .to_string();
    let browser = Browser::start().await;
    let b = &browser;
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    log_in_as(b, &app, REVIEWER_TAOBEI).await;
    b.client
        .goto(&format!(
            "{}/console/attendance?month={month}&village=220802100201",
            app.address
        ))
        .await
        .expect("attendance");
    assert!(b.text("#flagged").await.contains("定位精度不足"));
    b.element("#flagged article.checkin img[src*=\"size=thumb\"]")
        .await;
    // The absentee enumerator is listed too.
    assert!(b.text("#attendance").await.contains("刘建军"));
    b.shot(&format!("{name}-09-flagged")).await;
    b.fill("#flagged form.review textarea", "已电话核实，当日在村值守")
        .await;
    b.click_and_load("#flagged form.review button").await;
    b.shot(&format!("{name}-10-confirmed")).await;
    assert!(
        b.text(".flash").await.contains("核实有效"),
        "{}",
        b.text("main").await
    );
    assert!(b.text("#flagged").await.contains("已核实有效"));
    assert!(b
        .client
        .find_all(Locator::Css("#flagged form.review"))
        .await
        .expect("forms")
        .is_empty());
    b.shot(&format!("{name}-10-confirmed")).await;
    b.click_and_load("#exports a[href^=\"/console/subsidies\"]")
        .await;
    assert!(b.text("main h1").await.contains("岗位补贴发放表"));
    b.click("#exports a[href*=\"format=xlsx\"]").await;
    let xlsx = b.downloaded("xlsx").await;
    assert!(xlsx.starts_with(b"PK"), "an XLSX is a ZIP archive");
    b.shot(&format!("{name}-11-subsidies")).await;
    browser.stop().await;
}

/// The real-name ledgers: from the ledger's figure to its people, masked; then in full with a
/// reason.
async fn a_reviewer_reads_a_real_name_ledger(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let heads = crate::ledger::out_migrants(&app).await;
    let browser = Browser::start().await;
    let b = &browser;
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    log_in_as(b, &app, REVIEWER_TAOBEI).await;
    b.client
        .goto(&format!(
            "{}/console/ledger?level=village&code=220802100201&month=2020-07",
            app.address
        ))
        .await
        .expect("ledger");
    b.click_and_load("tr[data-figure=\"out_migrants\"] a").await;
    assert_eq!(
        b.text("main h1").await,
        "平安村委会2020年7月外出务工人员实名制台账"
    );
    let rows = b
        .client
        .find_all(fantoccini::Locator::Css("#roster tbody tr"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 3);
    assert!(b.text("#roster").await.contains("********"));
    b.shot(&format!("{name}-12-roster")).await;

    b.click("details.reveal summary").await;
    b.fill("#reveal input[name=reason]", "核对务工补贴发放名单")
        .await;
    b.click_and_load("#reveal button[type=submit]").await;
    assert!(b.text("p.meta").await.contains("已记入审计日志"));
    assert!(b.text("#roster").await.contains(heads[0].id.as_str()));
    b.shot(&format!("{name}-13-roster-revealed")).await;
    browser.stop().await;
}

both_backends!(
    a_reviewer_approves_rejects_and_exports,
    the_city_manages_staff_and_reads_the_audit_log,
    the_month_is_signed_off_closed_and_reopened,
    a_reviewer_confirms_a_flagged_checkin,
    a_reviewer_reads_a_real_name_ledger,
);
