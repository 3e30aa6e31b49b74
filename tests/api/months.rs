//! The monthly dispatch (月调度): each county's reviewer signs off the county's month, the city
//! closes it (refused before the month ends, before every sign-off and with surveys pending,
//! unless a reason is given), reopens it with a reason keeping the first snapshot, and the next
//! close makes a second one. Quotas: the notice's 2020 city totals are preloaded and the county
//! split may not exceed them. The console's queue shows the county and filters by enumerator.

use diesel::prelude::*;
use reqwest::Response;
use serde_json::{json, Value};

use crate::console::ConsoleClient;
use crate::helpers::*;
use crate::surveys::{household_survey, id_number, new_id};

const TAOBEI: &str = "220802000000";
const TAONAN: &str = "220881000000";

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> Response {
    app.post(path)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("post")
}

async fn ok(app: &TestApp, token: &str, path: &str, body: &Value) -> Value {
    let response = post(app, token, path, body).await;
    let status = response.status();
    let answer: Value = response.json().await.expect("json");
    assert!(status.is_success(), "{path}: {status} {answer}");
    answer
}

async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let response = app.get_as(token, path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.expect("json")
}

fn county<'a>(month: &'a Value, code: &str) -> &'a Value {
    month["counties"]
        .as_array()
        .expect("counties")
        .iter()
        .find(|c| c["county"] == code)
        .unwrap_or_else(|| panic!("{code} in {month}"))
}

/// One household survey of July 2020 in 洮北区, awaiting review; its id.
pub async fn pending_survey(app: &TestApp) -> String {
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let body = household_survey(&new_id(), "赵一", &id_number("220802", "19700101", 41), &[]);
    let answer = ok(app, &field, "/api/v1/surveys/households", &body).await;
    answer["id"].as_str().expect("id").to_owned()
}

/// Approved households of the city in July 2020, as the inventory reads them.
async fn households(app: &TestApp, token: &str) -> i64 {
    let inventory = get(app, token, "/api/v1/inventory?month=2020-07").await;
    inventory["node"]["figures"]
        .as_array()
        .expect("figures")
        .iter()
        .find(|f| f["key"] == "households")
        .and_then(|f| f["approved"].as_i64())
        .expect("households")
}

fn snapshot_rows(app: &TestApp, version: i32) -> i64 {
    use taizhang::db::schema::month_snapshots;
    let mut conn = app.settings.database.establish().expect("db");
    month_snapshots::table
        .filter(month_snapshots::month.eq("2020-07"))
        .filter(month_snapshots::version.eq(version))
        .count()
        .get_result(&mut conn)
        .expect("count")
}

async fn audit_count(app: &TestApp, token: &str, action: &str) -> usize {
    let audit = get(app, token, &format!("/api/v1/audit?action={action}")).await;
    audit["items"].as_array().expect("items").len()
}

/// Sign-off: scope, the month must have ended, refused with the count while surveys await
/// review unless a reason is given, once per round, withdrawn before the close.
async fn counties_sign_off_and_withdraw(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let survey = pending_survey(&app).await;
    let city = app.token(CITY_ADMIN).await;
    let taobei = app.token(REVIEWER_TAOBEI).await;
    let taonan = app.token(REVIEWER_TAONAN).await;
    let path = |c: &str| format!("/api/v1/months/2020-07/signoffs/{c}");

    let month = get(&app, &city, "/api/v1/months/2020-07").await;
    assert_eq!(month["state"], "open");
    assert_eq!(month["ended"], true);
    assert_eq!(month["round"], 1);
    assert_eq!(month["counties_total"], 6);
    assert_eq!(month["counties"].as_array().expect("counties").len(), 6);
    assert_eq!(county(&month, TAOBEI)["state"], "not_signed");
    assert_eq!(county(&month, TAOBEI)["pending_household_surveys"], 1);
    assert_eq!(county(&month, TAONAN)["pending_household_surveys"], 0);
    assert_eq!(month["pending_surveys"], 1);
    // A reviewer sees their own county only.
    let mine = get(&app, &taobei, "/api/v1/months/2020-07").await;
    assert_eq!(mine["counties"].as_array().expect("counties").len(), 1);
    assert_eq!(mine["counties"][0]["county"], TAOBEI);

    // Scope and role: another county's reviewer, the city, field users; bad paths.
    problem(
        post(&app, &taobei, &path(TAONAN), &json!({})).await,
        403,
        "out_of_scope",
    )
    .await;
    problem(
        post(&app, &city, &path(TAOBEI), &json!({})).await,
        403,
        "forbidden_role",
    )
    .await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    problem(
        post(&app, &field, &path(TAOBEI), &json!({})).await,
        403,
        "forbidden_role",
    )
    .await;
    problem(
        post(
            &app,
            &taobei,
            "/api/v1/months/2020-07/signoffs/220802100201",
            &json!({}),
        )
        .await,
        400,
        "invalid_path",
    )
    .await;
    // The current month has not ended.
    let current = (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m")
        .to_string();
    let early = post(
        &app,
        &taobei,
        &format!("/api/v1/months/{current}/signoffs/{TAOBEI}"),
        &json!({}),
    )
    .await;
    problem(early, 409, "month_not_ended").await;

    // Pending surveys: refused with the count, unless a reason is given.
    let refused = post(&app, &taobei, &path(TAOBEI), &json!({"note": "已核"})).await;
    let refused = problem(refused, 409, "surveys_pending").await;
    assert!(
        refused["detail"]
            .as_str()
            .expect("detail")
            .contains("尚有 1 份调查待审核"),
        "{refused}"
    );
    let long = "长".repeat(501);
    problem(
        post(&app, &taobei, &path(TAOBEI), &json!({"note": long})).await,
        422,
        "validation_failed",
    )
    .await;
    let signed = ok(
        &app,
        &taobei,
        &path(TAOBEI),
        &json!({"note": "已核", "reason": "一户待补照片，不影响汇总"}),
    )
    .await;
    let mine = county(&signed, TAOBEI);
    assert_eq!(mine["state"], "signed");
    assert_eq!(mine["note"], "已核");
    assert_eq!(mine["override_reason"], "一户待补照片，不影响汇总");
    assert_eq!(mine["pending_at_signoff"], 1);
    assert_eq!(mine["signed_by_name"], "王秀梅");
    problem(
        post(&app, &taobei, &path(TAOBEI), &json!({})).await,
        409,
        "already_signed_off",
    )
    .await;

    // Withdraw, once; then sign again.
    let withdrawn = ok(
        &app,
        &taobei,
        &format!("{}/withdraw", path(TAOBEI)),
        &json!({"reason": "发现漏审"}),
    )
    .await;
    assert_eq!(county(&withdrawn, TAOBEI)["state"], "withdrawn");
    assert_eq!(county(&withdrawn, TAOBEI)["withdraw_reason"], "发现漏审");
    problem(
        post(
            &app,
            &taobei,
            &format!("{}/withdraw", path(TAOBEI)),
            &json!({}),
        )
        .await,
        409,
        "not_signed_off",
    )
    .await;
    problem(
        post(
            &app,
            &taonan,
            &format!("{}/withdraw", path(TAOBEI)),
            &json!({}),
        )
        .await,
        403,
        "out_of_scope",
    )
    .await;
    // Reviewed now: the county signs without a reason.
    ok(
        &app,
        &taobei,
        &format!("/api/v1/surveys/{survey}/review"),
        &json!({"decision": "approve"}),
    )
    .await;
    let signed = ok(&app, &taobei, &path(TAOBEI), &json!({})).await;
    assert_eq!(county(&signed, TAOBEI)["state"], "signed");
    assert_eq!(county(&signed, TAOBEI)["pending_at_signoff"], 0);
    let signed = ok(&app, &taonan, &path(TAONAN), &json!({"note": "无待审"})).await;
    assert_eq!(signed["counties_signed"], 2);

    assert_eq!(audit_count(&app, &city, "sign_off_month").await, 3);
    assert_eq!(audit_count(&app, &city, "withdraw_signoff").await, 1);
}

/// The close: refused before the month ends, before every sign-off and with surveys pending
/// unless a reason is given; closed twice is `month_already_closed`; reopen keeps the first
/// snapshot and the next close makes a second; sign-offs are given again after a reopen.
async fn close_and_reopen_keep_numbered_snapshots(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let survey = pending_survey(&app).await;
    let city = app.token(CITY_ADMIN).await;
    let taobei = app.token(REVIEWER_TAOBEI).await;
    let close = "/api/v1/months/2020-07/close";

    let current = (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m")
        .to_string();
    let early = post(
        &app,
        &city,
        &format!("/api/v1/months/{current}/close"),
        &json!({"reason": "提前关账"}),
    )
    .await;
    problem(early, 409, "month_not_ended").await;
    problem(
        post(&app, &taobei, close, &json!({})).await,
        403,
        "forbidden_role",
    )
    .await;

    // No sign-off yet: refused naming the counties.
    let refused = problem(
        post(&app, &city, close, &json!({})).await,
        409,
        "signoffs_missing",
    )
    .await;
    let detail = refused["detail"].as_str().expect("detail");
    assert!(
        detail.contains("6 个县（市、区）未签核") && detail.contains("洮北区"),
        "{refused}"
    );
    // Every county signed (洮北区 with a reason): still refused while the survey is pending.
    let counties: Vec<String> = get(&app, &city, "/api/v1/months/2020-07").await["counties"]
        .as_array()
        .expect("counties")
        .iter()
        .map(|c| c["county"].as_str().expect("code").to_owned())
        .collect();
    let taonan = app.token(REVIEWER_TAONAN).await;
    ok(
        &app,
        &taobei,
        &format!("/api/v1/months/2020-07/signoffs/{TAOBEI}"),
        &json!({"reason": "待审一户已电话核实"}),
    )
    .await;
    ok(
        &app,
        &taonan,
        &format!("/api/v1/months/2020-07/signoffs/{TAONAN}"),
        &json!({}),
    )
    .await;
    let refused = problem(
        post(&app, &city, close, &json!({})).await,
        409,
        "signoffs_missing",
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .expect("detail")
            .contains("4 个县"),
        "{refused}"
    );
    // The other four counties have no reviewer among the demo users: the city overrides.
    assert_eq!(counties.len(), 6);
    problem(
        post(&app, &city, close, &json!({"reason": " "})).await,
        409,
        "signoffs_missing",
    )
    .await;
    let closed = ok(
        &app,
        &city,
        close,
        &json!({"reason": "其余县区无审核员，市里确认"}),
    )
    .await;
    assert_eq!(closed["state"], "closed");
    let first = &closed["closes"][0];
    assert_eq!(first["version"], 1);
    assert_eq!(first["standing"], true);
    assert_eq!(first["override_reason"], "其余县区无审核员，市里确认");
    let missing = first["missing"].as_str().expect("missing");
    assert!(
        missing.contains("4 个县（市、区）未签核") && missing.contains("待审核调查 1 份"),
        "{missing}"
    );
    let villages = first["villages"].as_i64().expect("villages");
    assert!(villages > 900, "{villages}");
    assert_eq!(snapshot_rows(&app, 1), villages);

    // Closed: no second close, no sign-off change.
    let again = problem(
        post(&app, &city, close, &json!({"reason": "再关"})).await,
        409,
        "month_already_closed",
    )
    .await;
    assert!(
        again["detail"]
            .as_str()
            .expect("detail")
            .contains("已完成月调度"),
        "{again}"
    );
    let withdraw = format!("/api/v1/months/2020-07/signoffs/{TAOBEI}/withdraw");
    problem(
        post(&app, &taobei, &withdraw, &json!({})).await,
        409,
        "month_already_closed",
    )
    .await;

    // The snapshot holds while the survey is approved afterwards.
    assert_eq!(households(&app, &city).await, 0);
    ok(
        &app,
        &taobei,
        &format!("/api/v1/surveys/{survey}/review"),
        &json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(
        households(&app, &city).await,
        0,
        "a closed month is read from its snapshot"
    );

    // Reopen: a reason is required, the month must be closed, city admins only.
    let reopen = "/api/v1/months/2020-07/reopen";
    problem(
        post(&app, &city, reopen, &json!({})).await,
        422,
        "validation_failed",
    )
    .await;
    problem(
        post(&app, &taobei, reopen, &json!({"reason": "x"})).await,
        403,
        "forbidden_role",
    )
    .await;
    problem(
        post(
            &app,
            &city,
            "/api/v1/months/2020-06/reopen",
            &json!({"reason": "x"}),
        )
        .await,
        409,
        "month_not_closed",
    )
    .await;
    let reopened = ok(&app, &city, reopen, &json!({"reason": "补录审核结果"})).await;
    assert_eq!(reopened["state"], "open");
    assert_eq!(reopened["round"], 2);
    assert_eq!(reopened["closes"][0]["standing"], false);
    assert_eq!(reopened["closes"][0]["reopen_reason"], "补录审核结果");
    assert_eq!(reopened["closes"][0]["reopened_by_name"], "李国华");
    assert_eq!(
        reopened["counties_signed"], 0,
        "sign-offs are given again after a reopen"
    );
    assert_eq!(county(&reopened, TAOBEI)["state"], "not_signed");
    assert_eq!(
        snapshot_rows(&app, 1),
        villages,
        "the first snapshot is kept"
    );
    assert_eq!(households(&app, &city).await, 1, "live figures again");
    problem(
        post(&app, &city, reopen, &json!({"reason": "再开"})).await,
        409,
        "month_not_closed",
    )
    .await;

    // The next close makes the second snapshot.
    ok(
        &app,
        &taobei,
        &format!("/api/v1/months/2020-07/signoffs/{TAOBEI}"),
        &json!({}),
    )
    .await;
    let closed = ok(&app, &city, close, &json!({"reason": "其余县区无审核员"})).await;
    let closes = closed["closes"].as_array().expect("closes");
    assert_eq!(closes.len(), 2);
    assert_eq!(closes[1]["version"], 2);
    assert_eq!(closes[1]["standing"], true);
    assert_eq!(snapshot_rows(&app, 2), villages);
    assert_eq!(snapshot_rows(&app, 1), villages);
    assert_eq!(households(&app, &city).await, 1);
    let months = get(&app, &city, "/api/v1/months").await;
    let july = months
        .as_array()
        .expect("months")
        .iter()
        .find(|m| m["month"] == "2020-07")
        .expect("july");
    assert_eq!(july["state"], "closed");
    assert_eq!(july["version"], 2);
    assert_eq!(july["closes"], 2);

    assert_eq!(audit_count(&app, &city, "close_month").await, 2);
    assert_eq!(audit_count(&app, &city, "reopen_month").await, 1);
}

/// The notice's 2020 city totals are preloaded; the county split may not exceed them.
async fn quotas_are_preloaded_and_the_split_is_bounded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let city = app.token(CITY_ADMIN).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let quotas = get(&app, &reviewer, "/api/v1/quotas/2020").await;
    assert_eq!(quotas["city"]["special_posts"], 2592);
    assert_eq!(quotas["city"]["temporary_posts"], 620);
    assert!(quotas["city"]["source"]
        .as_str()
        .expect("source")
        .contains("扶贫特岗"));
    let inventory = get(&app, &city, "/api/v1/inventory?month=2020-07").await;
    assert_eq!(inventory["quota"]["city_special_posts_quota"], 2592);
    assert_eq!(inventory["quota"]["city_temporary_posts_quota"], 620);
    assert_eq!(inventory["quota"]["special_posts_quota"], 0);

    let put = |body: Value| {
        app.request(reqwest::Method::PUT, "/api/v1/quotas/2020")
            .bearer_auth(&city)
            .json(&body)
            .send()
    };
    let over = put(json!({"counties": [
        {"county": TAOBEI, "special_posts": 2000, "temporary_posts": 300},
        {"county": TAONAN, "special_posts": 600, "temporary_posts": 300}]}))
    .await
    .expect("put");
    let over = problem(over, 422, "validation_failed").await;
    assert_eq!(over["errors"][0]["field"], "counties");
    assert_eq!(over["errors"][0]["rule"], "quota_exceeded");
    assert!(
        over["errors"][0]["detail"]
            .as_str()
            .expect("detail")
            .contains("2600"),
        "{over}"
    );
    assert_eq!(
        over["errors"].as_array().expect("errors").len(),
        1,
        "temporary posts fit"
    );
    let split = put(json!({"counties": [
        {"county": TAOBEI, "special_posts": 2000, "temporary_posts": 300},
        {"county": TAONAN, "special_posts": 592, "temporary_posts": 320}]}))
    .await
    .expect("put");
    assert_eq!(split.status(), 200);
    // A later change of one county counts the others' stored shares.
    let over = put(
        json!({"counties": [{"county": TAOBEI, "special_posts": 2001, "temporary_posts": 300}]}),
    )
    .await
    .expect("put");
    problem(over, 422, "validation_failed").await;
    // Lowering the city's totals below the split is refused too.
    let lower = put(json!({"city": {"special_posts": 2500, "temporary_posts": 620}}))
        .await
        .expect("put");
    let lower = problem(lower, 422, "validation_failed").await;
    assert_eq!(lower["errors"][0]["field"], "city.special_posts");
    let raised = put(json!({"city": {"special_posts": 3000, "temporary_posts": 700}}))
        .await
        .expect("put");
    assert_eq!(raised.status(), 200);
    let raised: Value = raised.json().await.expect("json");
    assert_eq!(raised["city"]["special_posts"], 3000);
    assert_eq!(raised["special_posts_total"], 2592);

    let county = get(
        &app,
        &reviewer,
        &format!("/api/v1/inventory?level=county&code={TAOBEI}&month=2020-07"),
    )
    .await;
    assert_eq!(county["quota"]["city_special_posts_quota"], 3000);
    assert_eq!(county["quota"]["special_posts_quota"], 2000);
    assert_eq!(audit_count(&app, &city, "set_city_quota").await, 1);
    assert_eq!(audit_count(&app, &city, "set_quota").await, 2);

    // The console's quotas page: the city edits, a reviewer reads.
    let mut console = ConsoleClient::new(&app);
    console.login(CITY_ADMIN).await;
    let csrf = console.csrf().await;
    let page = console
        .submit(
            "/console/quotas/2020",
            &[
                ("csrf", &csrf),
                (&format!("special_{TAOBEI}"), "3500"),
                (&format!("temporary_{TAOBEI}"), "300"),
            ],
        )
        .await;
    assert!(page.contains("超过全市指标"), "{page}");
    let page = console
        .submit(
            "/console/quotas/2020",
            &[
                ("csrf", &csrf),
                (&format!("special_{TAOBEI}"), "1800"),
                (&format!("temporary_{TAOBEI}"), "300"),
            ],
        )
        .await;
    assert!(page.contains("2020 年岗位指标已保存"), "{page}");
    assert!(page.contains("value=\"1800\""), "{page}");
    let mut reader = ConsoleClient::new(&app);
    reader.login(REVIEWER_TAOBEI).await;
    let page = reader
        .get("/console/quotas?year=2020")
        .await
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("全市指标") && page.contains("1,800") && !page.contains("save-quotas"),
        "{page}"
    );
}

/// The console's month page: a reviewer signs off their county, the city closes and reopens
/// with reasons; the queue shows the county and filters by enumerator and day.
async fn console_month_page_and_queue(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    pending_survey(&app).await;
    let mut reviewer = ConsoleClient::new(&app);
    reviewer.login(REVIEWER_TAOBEI).await;
    let csrf = reviewer.csrf().await;
    let page = reviewer
        .get("/console/months/2020-07")
        .await
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("signoff-reason") && !page.contains("洮南市"),
        "{page}"
    );
    let page = reviewer
        .submit(
            "/console/months/2020-07/signoff",
            &[("csrf", &csrf), ("county", TAOBEI)],
        )
        .await;
    assert!(page.contains("尚有 1 份调查待审核"), "{page}");
    let page = reviewer
        .submit(
            "/console/months/2020-07/signoff",
            &[
                ("csrf", &csrf),
                ("county", TAOBEI),
                ("reason", "已电话核实"),
            ],
        )
        .await;
    assert!(page.contains("2020-07 已签核"), "{page}");
    let page = reviewer
        .submit(
            "/console/months/2020-07/signoff",
            &[("csrf", &csrf), ("county", TAONAN), ("reason", "越权")],
        )
        .await;
    assert!(page.contains("不在您的管辖范围内"), "{page}");

    let mut city = ConsoleClient::new(&app);
    city.login(CITY_ADMIN).await;
    let csrf = city.csrf().await;
    let page = city
        .submit("/console/months/2020-07/close", &[("csrf", &csrf)])
        .await;
    assert!(page.contains("5 个县（市、区）未签核"), "{page}");
    let page = city
        .submit(
            "/console/months/2020-07/close",
            &[("csrf", &csrf), ("reason", "市里确认")],
        )
        .await;
    assert!(
        page.contains("2020-07 已关账") && page.contains("第 1 版"),
        "{page}"
    );
    let page = city
        .submit("/console/months/2020-07/reopen", &[("csrf", &csrf)])
        .await;
    assert!(page.contains("请填写理由"), "{page}");
    let page = city
        .submit(
            "/console/months/2020-07/reopen",
            &[("csrf", &csrf), ("reason", "补录")],
        )
        .await;
    assert!(
        page.contains("2020-07 已重新开账") && page.contains("补录"),
        "{page}"
    );

    // The queue: the county column, and the enumerator and day filters.
    let page = city.get("/console/queue").await.text().await.expect("page");
    assert!(page.contains("td class=\"county\">洮北区"), "{page}");
    assert!(page.contains("刘建军"), "{page}");
    let enumerator = app.login(ENUMERATOR_TAOBEI).await["user"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let other = app.login(ENUMERATOR_TAONAN).await["user"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let page = city
        .get(&format!("/console/queue?enumerator={enumerator}"))
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains("data-survey"), "{page}");
    let page = city
        .get(&format!("/console/queue?enumerator={other}"))
        .await
        .text()
        .await
        .expect("page");
    assert!(!page.contains("data-survey"), "{page}");
    let page = city
        .get("/console/queue?from=2020-07-20&to=2020-07-20")
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains("data-survey"), "{page}");
    let page = city
        .get("/console/queue?from=2020-07-21")
        .await
        .text()
        .await
        .expect("page");
    assert!(!page.contains("data-survey"), "{page}");
}

both_backends!(
    counties_sign_off_and_withdraw,
    close_and_reopen_keep_numbered_snapshots,
    quotas_are_preloaded_and_the_split_is_bounded,
    console_month_page_and_queue,
);
