//! Attendance that pays: everyone who must check in is listed (absentees with 0 days), flagged
//! check-ins confirmed or dismissed by a reviewer in scope, the 考勤表 and the subsidy sheet
//! (amounts equal to a recomputation here) — on both databases.

use chrono::{Duration, FixedOffset, Utc};
use serde_json::{json, Value};

use crate::checkins::{checkin_body, post, Shot};
use crate::helpers::*;
use crate::surveys::{household_survey, id_number, new_id};

const TAOBEI_ENUMERATOR: &str = "刘建军";
const TAOBEI_SECRETARY: &str = "赵志刚";
const TAONAN_ENUMERATOR: &str = "陈海燕";

fn month_of(t: chrono::DateTime<Utc>) -> String {
    t.with_timezone(&FixedOffset::east_opt(8 * 3600).expect("offset"))
        .format("%Y-%m")
        .to_string()
}

async fn json_of(app: &TestApp, token: &str, path: &str) -> Value {
    let response = app.get_as(token, path).await;
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn review(app: &TestApp, token: &str, id: &str, body: &Value) -> reqwest::Response {
    app.post(&format!("/api/v1/checkins/{id}/review"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("review")
}

/// A household whose head holds a special post and whose spouse a temporary post, approved so
/// that both are on the real-name ledger. Returns the two ID numbers.
async fn post_holders(app: &TestApp, seq: u32) -> (String, String) {
    let enumerator = app.token(ENUMERATOR_TAOBEI).await;
    let head = id_number("220802", "19700101", seq);
    let id = new_id();
    let mut survey = household_survey(&id, "张三", &head, &[]);
    survey["members"][0]["employment"] = json!({"status": "special_post", "employer_id": null, "post_type": null, "monthly_income_yuan": 800});
    survey["members"][1]["employment"] = json!({"status": "temporary_public_post", "employer_id": null, "post_type": null, "monthly_income_yuan": 800});
    let stored = app
        .post("/api/v1/surveys/households")
        .bearer_auth(&enumerator)
        .json(&survey)
        .send()
        .await
        .expect("survey");
    assert_eq!(
        stored.status(),
        201,
        "{}",
        stored.text().await.unwrap_or_default()
    );
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let approved = app
        .post(&format!("/api/v1/surveys/{id}/review"))
        .bearer_auth(&reviewer)
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .expect("approve");
    assert_eq!(approved.status(), 200);
    let spouse = survey["members"][1]["id_number"]
        .as_str()
        .expect("id")
        .to_owned();
    (head, spouse)
}

/// A flagged (poor accuracy) check-in of a worker by the secretary; its id.
async fn flagged_worker_checkin(
    app: &TestApp,
    seed: u64,
    worker: &str,
    at: chrono::DateTime<Utc>,
) -> String {
    let secretary = app.token(SECRETARY_TAOBEI).await;
    let mut shot = Shot::new(seed, at);
    shot.accuracy = 500.0;
    let mut body = checkin_body(app, &secretary, &shot).await;
    body["kind"] = json!("special_post");
    body["worker_id_number"] = json!(worker);
    let answer = post(app, &secretary, &body).await;
    assert_eq!(answer.status(), 201);
    let answer: Value = answer.json().await.expect("json");
    assert_eq!(answer["status"], "flagged", "{answer}");
    answer["id"].as_str().expect("id").to_owned()
}

fn person<'a>(attendance: &'a Value, name: &str) -> &'a Value {
    attendance["people"]
        .as_array()
        .expect("people")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} is listed: {attendance}"))
}

async fn absentees_are_listed_with_zero_days(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (head, _) = post_holders(&app, 301).await;
    let month = month_of(Utc::now());
    let admin = app.token(CITY_ADMIN).await;
    let attendance = json_of(&app, &admin, &format!("/api/v1/attendance?month={month}")).await;
    for name in [
        TAOBEI_ENUMERATOR,
        TAOBEI_SECRETARY,
        TAONAN_ENUMERATOR,
        "张三",
        "李秀兰",
    ] {
        let p = person(&attendance, name);
        assert_eq!(p["no_checkins"], true, "{p}");
        assert_eq!(p["days_present"], 0);
        assert_eq!(p["requirement_met"], false);
    }
    assert_eq!(person(&attendance, "张三")["post"], "special_post");
    assert_eq!(
        person(&attendance, "李秀兰")["post"],
        "temporary_public_post"
    );
    assert_eq!(
        person(&attendance, "张三")["worker_id_number"].as_str(),
        Some(format!("{}********{}", &head[..6], &head[14..]).as_str())
    );
    // A county reviewer sees only their county's people.
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let theirs = json_of(
        &app,
        &reviewer,
        &format!("/api/v1/attendance?month={month}"),
    )
    .await;
    assert!(theirs["people"]
        .as_array()
        .expect("people")
        .iter()
        .all(|p| p["village_code"]
            .as_str()
            .is_some_and(|v| v.starts_with("220802"))));
    assert!(theirs["people"]
        .as_array()
        .expect("people")
        .iter()
        .all(|p| p["name"] != TAONAN_ENUMERATOR));
    let total: u64 = attendance["villages"]
        .as_array()
        .expect("villages")
        .iter()
        .map(|v| v["no_checkins"].as_u64().unwrap_or(0))
        .sum();
    let absent = attendance["people"]
        .as_array()
        .expect("people")
        .iter()
        .filter(|p| p["no_checkins"] == true)
        .count();
    assert_eq!(total as usize, absent);
}

async fn flags_are_confirmed_or_dismissed_in_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (head, spouse) = post_holders(&app, 311).await;
    let at = Utc::now() - Duration::minutes(10);
    let month = month_of(at);
    let confirmed = flagged_worker_checkin(&app, 4101, &head, at).await;
    let dismissed = flagged_worker_checkin(&app, 4102, &spouse, at + Duration::minutes(1)).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let admin = app.token(CITY_ADMIN).await;

    // Undecided: a flagged day, counted for no one.
    let before = json_of(&app, &admin, &format!("/api/v1/attendance?month={month}")).await;
    assert_eq!(person(&before, "张三")["days_flagged"], 1);
    assert_eq!(person(&before, "张三")["days_present"], 0);
    assert_eq!(person(&before, "张三")["no_checkins"], false);

    // Refusals: another county's reviewer sees no such check-in; field users may not decide;
    // a reason is required.
    let other = app.token(REVIEWER_TAONAN).await;
    let confirm = json!({"decision": "confirm", "reason": "已电话核实，当日在岗"});
    problem(
        review(&app, &other, &confirmed, &confirm).await,
        404,
        "not_found",
    )
    .await;
    let secretary = app.token(SECRETARY_TAOBEI).await;
    problem(
        review(&app, &secretary, &confirmed, &confirm).await,
        403,
        "forbidden_role",
    )
    .await;
    let refused = problem(
        review(
            &app,
            &reviewer,
            &confirmed,
            &json!({"decision": "confirm", "reason": "  "}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        (refused["field"].as_str(), refused["rule"].as_str()),
        (Some("reason"), Some("required"))
    );
    problem(
        review(&app, &reviewer, "no-such-checkin", &confirm).await,
        404,
        "not_found",
    )
    .await;

    let answer = review(&app, &reviewer, &confirmed, &confirm).await;
    assert_eq!(answer.status(), 201);
    let answer: Value = answer.json().await.expect("json");
    assert_eq!(
        (answer["decision"].as_str(), answer["counts"].as_bool()),
        (Some("confirm"), Some(true))
    );
    // A retry answers the same; a different decision is refused.
    assert_eq!(
        review(&app, &reviewer, &confirmed, &confirm).await.status(),
        200
    );
    let changed = json!({"decision": "dismiss", "reason": "改判"});
    problem(
        review(&app, &admin, &confirmed, &changed).await,
        409,
        "illegal_transition",
    )
    .await;
    let dismiss = json!({"decision": "dismiss", "reason": "照片与本人不符"});
    assert_eq!(
        review(&app, &admin, &dismissed, &dismiss).await.status(),
        201
    );

    let after = json_of(&app, &admin, &format!("/api/v1/attendance?month={month}")).await;
    let zhang = person(&after, "张三");
    assert_eq!(
        (
            zhang["days_present"].as_u64(),
            zhang["days_confirmed"].as_u64(),
            zhang["days_flagged"].as_u64()
        ),
        (Some(1), Some(1), Some(0))
    );
    let li = person(&after, "李秀兰");
    assert_eq!(
        (
            li["days_present"].as_u64(),
            li["days_dismissed"].as_u64(),
            li["days_flagged"].as_u64()
        ),
        (Some(0), Some(1), Some(0))
    );

    // Audited, with the reason.
    use diesel::prelude::*;
    use taizhang::db::schema::audit_log;
    let mut conn = app.settings.database.establish().expect("db");
    let entries: Vec<(String, String, Option<String>)> = audit_log::table
        .filter(audit_log::subject_type.eq("checkin"))
        .select((audit_log::action, audit_log::subject_id, audit_log::reason))
        .order(audit_log::seq)
        .load(&mut conn)
        .expect("audit");
    assert_eq!(
        entries,
        vec![
            (
                "checkin_confirm".to_owned(),
                confirmed.clone(),
                Some("已电话核实，当日在岗".to_owned())
            ),
            (
                "checkin_dismiss".to_owned(),
                dismissed.clone(),
                Some("照片与本人不符".to_owned())
            ),
        ]
    );
}

/// The subsidy sheet, recomputed here from the attendance it rests on.
async fn subsidies_equal_a_recomputation(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.checkins.subsidy.special_post_monthly_fen = 123_456;
        s.checkins.required_days_special_post = 7;
    })
    .await;
    let (head, _spouse) = post_holders(&app, 321).await;
    let at = Utc::now() - Duration::minutes(10);
    let month = month_of(at);
    let id = flagged_worker_checkin(&app, 4201, &head, at).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let confirm = json!({"decision": "confirm", "reason": "村委会出具考勤证明"});
    assert_eq!(review(&app, &reviewer, &id, &confirm).await.status(), 201);

    let sheet = json_of(&app, &reviewer, &format!("/api/v1/subsidies?month={month}")).await;
    assert_eq!(
        (sheet["level"].as_str(), sheet["code"].as_str()),
        (Some("county"), Some("220802000000"))
    );
    let attendance = json_of(
        &app,
        &reviewer,
        &format!("/api/v1/attendance?month={month}"),
    )
    .await;
    let people = sheet["people"].as_array().expect("people");
    assert_eq!(people.len(), 2, "{sheet}");
    let mut total = 0i64;
    for line in people {
        let name = line["name"].as_str().expect("name");
        let a = person(&attendance, name);
        let attended = a["days_present"].as_i64().expect("days");
        let (monthly, required) = match line["post"].as_str() {
            Some("special_post") => (123_456i64, 7i64),
            Some("temporary_public_post") => (80_000, 7),
            other => panic!("post {other:?}"),
        };
        let due = (monthly * attended / required).min(monthly);
        assert_eq!(line["days_attended"].as_i64(), Some(attended));
        assert_eq!(line["days_required"].as_i64(), Some(required));
        assert_eq!(line["monthly_fen"].as_i64(), Some(monthly));
        assert_eq!(line["due_fen"].as_i64(), Some(due), "{line}");
        assert_eq!(line["no_attendance"].as_bool(), Some(attended == 0));
        total += due;
    }
    assert_eq!(person(&attendance, "张三")["days_present"], 1);
    assert_eq!(sheet["total_due_fen"].as_i64(), Some(total));
    assert_eq!(total, 123_456 / 7);
    for level in ["villages", "townships", "counties"] {
        let sum: i64 = sheet[level]
            .as_array()
            .expect(level)
            .iter()
            .map(|t| t["due_fen"].as_i64().unwrap_or(0))
            .sum();
        assert_eq!(sum, total, "{level}");
    }
    // Out of scope: another county, as a node.
    let other = app.token(REVIEWER_TAONAN).await;
    problem(
        app.get_as(
            &other,
            &format!("/api/v1/subsidies?month={month}&level=county&code=220802000000"),
        )
        .await,
        403,
        "out_of_scope",
    )
    .await;
}

/// Each sheet's name and its first `rows` rows, as openpyxl reads them.
fn openpyxl_rows(bytes: &[u8], rows: usize) -> Value {
    let book = crate::helpers::openpyxl_book(bytes, rows);
    let sheets = book.as_object().expect("sheets");
    Value::Object(
        sheets
            .iter()
            .map(|(name, sheet)| (name.clone(), sheet["rows"].clone()))
            .collect(),
    )
}

async fn download(app: &TestApp, token: &str, path: &str) -> Vec<u8> {
    let response = app.get_as(token, path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.bytes().await.expect("bytes").to_vec()
}

async fn sheets_open_with_the_expected_headers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (head, _) = post_holders(&app, 331).await;
    let at = Utc::now() - Duration::minutes(10);
    let month = month_of(at);
    flagged_worker_checkin(&app, 4301, &head, at).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;

    let book = openpyxl_rows(
        &download(
            &app,
            &reviewer,
            &format!("/api/v1/attendance?month={month}&format=xlsx"),
        )
        .await,
        50,
    );
    let rows = book["考勤表"].as_array().expect("考勤表");
    assert!(rows[0][0]
        .as_str()
        .is_some_and(|t| t.contains("驻村考勤表")));
    assert!(rows[1][0].as_str().is_some_and(|t| t.starts_with("图例")));
    let headers: Vec<&str> = rows[2]
        .as_array()
        .expect("headers")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(&headers[..5], ["行政村", "姓名", "类别", "身份证号", "1日"]);
    assert!(headers.ends_with(&[
        "出勤天数",
        "待核实天数",
        "核实无效天数",
        "应出勤天数",
        "是否达标",
        "村代码"
    ]));
    let zhang = rows.iter().find(|r| r[1] == "张三").expect("张三's row");
    let day: usize = at
        .with_timezone(&FixedOffset::east_opt(8 * 3600).expect("offset"))
        .format("%d")
        .to_string()
        .parse()
        .expect("day");
    assert_eq!(zhang[3 + day], "疑");
    let n = headers.len();
    assert_eq!(zhang[n - 6], 0, "days present, as a number");
    assert_eq!(zhang[n - 5], 1, "flagged days, as a number");
    assert!(
        zhang[n - 1].as_str().is_some_and(|c| c.len() == 12),
        "the village code, as text"
    );

    let csv = download(
        &app,
        &reviewer,
        &format!("/api/v1/attendance?month={month}&format=csv"),
    )
    .await;
    assert!(csv.starts_with(b"\xEF\xBB\xBF"));
    assert!(String::from_utf8(csv).expect("utf-8").contains("张三"));

    let book = openpyxl_rows(
        &download(
            &app,
            &reviewer,
            &format!("/api/v1/subsidies?month={month}&format=xlsx"),
        )
        .await,
        50,
    );
    let rows = book["发放表"].as_array().expect("发放表");
    assert!(rows[0][0]
        .as_str()
        .is_some_and(|t| t.contains("岗位补贴发放表")));
    let headers: Vec<&str> = rows[2]
        .as_array()
        .expect("headers")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(headers, taizhang::checkins::sheets::SUBSIDY_HEADERS);
    let li = rows
        .iter()
        .find(|r| r[3] == "李秀兰")
        .expect("李秀兰's row");
    assert_eq!(li[9], 800, "the monthly amount in yuan, as a number");
    assert_eq!(li[10], 0);
    assert_eq!(li[11], "本月无出勤");
    let totals = book["汇总"].as_array().expect("汇总");
    assert_eq!(totals[2][0], "级别");
    assert!(totals
        .iter()
        .any(|r| r[0] == "县（市、区）" && r[1] == "220802000000"));
    let csv = download(
        &app,
        &reviewer,
        &format!("/api/v1/subsidies?month={month}&format=csv"),
    )
    .await;
    assert!(String::from_utf8(csv)
        .expect("utf-8")
        .contains("本月无出勤"));
}

both_backends!(
    absentees_are_listed_with_zero_days,
    flags_are_confirmed_or_dismissed_in_scope,
    subsidies_equal_a_recomputation,
    sheets_open_with_the_expected_headers,
);
