//! The import of a county's 建档立卡 list: dry run, every bad row by row/field/rule with
//! nothing stored, scope per row, idempotent re-import, the first survey joining the imported
//! household (same id, known → surveyed in the ledger's coverage), and the template.

use diesel::prelude::*;
use reqwest::Response;
use serde_json::Value;

use crate::helpers::*;
use crate::surveys::{household_survey, id_number, new_id};
use crate::sync::{cursor_of, household_ids, sync};

const VILLAGE: &str = "220802100201";
const TAONAN_VILLAGE: &str = "220881100201";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const HEADER: &str = "村代码,户编号,户主姓名,户主身份证号,家庭人口数,联系电话,贫困户属性,脱贫年度,是否易地扶贫搬迁户\n";

async fn import(app: &TestApp, token: &str, csv: &str, dry_run: bool) -> Response {
    app.post(&format!("/api/v1/households/import?dry_run={dry_run}"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .expect("import")
}

fn sheet(rows: &[String]) -> String {
    let mut out = HEADER.to_owned();
    for r in rows {
        out.push_str(r);
        out.push('\n');
    }
    out
}

fn head(n: u32) -> String {
    id_number("220802", "19700101", n)
}

fn good_rows() -> Vec<String> {
    vec![
        format!("{VILLAGE},,张三,{},4,13800000000,脱贫户,2019,否", head(123)),
        format!("{VILLAGE},A-0002,李四,{},2,,,,", head(125)),
        format!("220802100202,,王五,{},3,,监测户,,是", head(127)),
    ]
}

/// The households stored from lists, by head name.
fn imported(app: &TestApp) -> Vec<(String, String)> {
    use taizhang::db::schema::imported_households as ih;
    let mut conn = app.database().url.establish().expect("connect");
    ih::table
        .select((ih::head_name, ih::household_id))
        .order(ih::head_name)
        .load(&mut conn)
        .expect("imported households")
}

async fn json(response: Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// A coverage figure of the village's node this month: (approved, including pending).
async fn coverage(app: &TestApp, token: &str, key: &str) -> (i64, i64) {
    let inventory = json(
        app.get_as(
            token,
            &format!("/api/v1/inventory?level=village&code={VILLAGE}"),
        )
        .await,
    )
    .await;
    let row = inventory["node"]["figures"]
        .as_array()
        .expect("figures")
        .iter()
        .find(|f| f["key"] == key)
        .cloned()
        .expect("figure");
    (
        row["approved"].as_i64().expect("approved"),
        row["including_pending"].as_i64().expect("pending"),
    )
}

async fn dry_run_import_and_reimport(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let csv = sheet(&good_rows());

    let dry = json(import(&app, &reviewer, &csv, true).await).await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["rows"], 3);
    assert_eq!(dry["created"], 3);
    assert!(dry["import_id"].is_null());
    assert!(imported(&app).is_empty(), "a dry run stores nothing");
    assert_eq!(coverage(&app, &reviewer, "households_known").await, (0, 0));

    let done = json(import(&app, &reviewer, &csv, false).await).await;
    assert_eq!(done["created"], 3);
    assert_eq!(done["known"], 0);
    assert_eq!(done["file_sha256"].as_str().expect("hash").len(), 64);
    assert_eq!(imported(&app).len(), 3);
    // Two of the three live in the village.
    assert_eq!(coverage(&app, &reviewer, "households_known").await, (2, 2));
    assert_eq!(
        coverage(&app, &reviewer, "households_not_surveyed").await,
        (2, 2)
    );
    assert_eq!(coverage(&app, &reviewer, "households").await, (0, 0));

    // The same file again adds nothing; a repeated row is counted, not doubled.
    let mut rows = good_rows();
    rows.push(rows[0].clone());
    let again = json(import(&app, &reviewer, &sheet(&rows), false).await).await;
    assert_eq!(
        (
            &again["rows"],
            &again["created"],
            &again["known"],
            &again["repeated"]
        ),
        (&4.into(), &0.into(), &3.into(), &1.into())
    );
    assert_eq!(imported(&app).len(), 3, "re-import is idempotent");

    // Audited: who, how many rows, the file's hash.
    let admin = app.token(CITY_ADMIN).await;
    let audit = json(
        app.get_as(&admin, "/api/v1/audit?action=import_households")
            .await,
    )
    .await;
    let items = audit["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    let detail = items
        .iter()
        .map(|e| e["detail"].as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        detail.contains(done["file_sha256"].as_str().expect("hash")),
        "{detail}"
    );
    assert!(detail.contains("新增 3 户"), "{detail}");
}

async fn bad_rows_are_reported_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.token(CITY_ADMIN).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let mut rows = good_rows();
    rows.push(format!(
        "2208021002,,赵六,{},0,12345,穷,1999,也许",
        head(129)
    ));
    let mut broken = head(131);
    let last = if broken.ends_with('0') { '1' } else { '0' };
    broken.pop();
    broken.push(last);
    rows.push(format!("{VILLAGE},,,{broken},4,,,,"));
    rows.push(format!("{VILLAGE},,张三丰,{},5,,,,", head(123)));
    let body = problem(
        import(&app, &admin, &sheet(&rows), false).await,
        422,
        "validation_failed",
    )
    .await;
    let errors: Vec<(String, String)> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["field"].as_str().expect("field").to_owned(),
                e["rule"].as_str().expect("rule").to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("rows[5].village_code", "division_code_format"),
        ("rows[5].member_count", "range"),
        ("rows[5].phone", "phone_format"),
        ("rows[5].poverty_status", "unknown_value"),
        ("rows[5].lifted_year", "range"),
        ("rows[5].relocated", "unknown_value"),
        ("rows[6].head_name", "required"),
        ("rows[6].head_id_number", "id_number_check_digit"),
        ("rows[7].head_id_number", "duplicate"),
    ]
    .iter()
    .map(|(f, r)| (f.to_string(), r.to_string()))
    .collect();
    assert_eq!(errors, want);
    assert!(imported(&app).is_empty(), "nothing stored");

    // A reviewer imports their county's villages only: the row is refused, nothing stored.
    let other = sheet(&[
        good_rows()[0].clone(),
        format!(
            "{TAONAN_VILLAGE},,孙七,{},2,,,,",
            id_number("220881", "19800101", 11)
        ),
    ]);
    let body = problem(
        import(&app, &reviewer, &other, true).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "rows[3].village_code");
    assert_eq!(body["errors"][0]["rule"], "out_of_scope");
    problem(
        import(&app, &reviewer, &other, false).await,
        422,
        "validation_failed",
    )
    .await;
    assert!(imported(&app).is_empty());
    // The city imports any county's.
    assert_eq!(
        json(import(&app, &admin, &other, true).await).await["created"],
        2
    );
    // Field users may not import.
    let field = app.token(ENUMERATOR_TAOBEI).await;
    problem(
        import(&app, &field, &other, true).await,
        403,
        "forbidden_role",
    )
    .await;

    // Errors are bounded: the first 100, and how many in all.
    let many: Vec<String> = (0..150)
        .map(|i| format!("{VILLAGE},,户{i},bad,1,,,,"))
        .collect();
    let body = problem(
        import(&app, &admin, &sheet(&many), true).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"].as_array().expect("errors").len(), 100);
    assert_eq!(body["errors_total"], 150);
    // A missing column, and a body that is no sheet.
    problem(
        import(&app, &admin, "村代码,户主姓名\n1,2\n", true).await,
        422,
        "validation_failed",
    )
    .await;
    let wrong = app
        .post("/api/v1/households/import")
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("post");
    problem(wrong, 415, "unsupported_media_type").await;
}

async fn the_first_survey_joins_the_imported_household(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let enumerator = app.token(ENUMERATOR_TAOBEI).await;
    json(import(&app, &reviewer, &sheet(&good_rows()), false).await).await;
    let known = imported(&app);
    let zhang = known
        .iter()
        .find(|(name, _)| name == "张三")
        .map(|(_, id)| id.clone())
        .expect("张三 imported");

    // Known, not surveyed: the enumerator's download lists the village's two imported
    // households as still to visit (王五 lives in a village not assigned to them), masked.
    let first = sync(&app, &enumerator, None).await;
    assert_eq!(household_ids(&first), Vec::<String>::new());
    let to_visit: Vec<&Value> = first["known_households"]
        .as_array()
        .expect("known_households")
        .iter()
        .collect();
    let mut names: Vec<&str> = to_visit
        .iter()
        .map(|h| h["head_name"].as_str().expect("name"))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["张三", "李四"]);
    let listed = to_visit
        .iter()
        .find(|h| h["head_name"] == "张三")
        .expect("张三 listed");
    assert_eq!(listed["household_id"], zhang.as_str());
    assert_eq!(listed["village_code"], VILLAGE);
    assert_eq!(listed["member_count"], 4);
    assert_eq!(listed["poverty_status"], "lifted");
    assert_eq!(listed["lifted_year"], 2019);
    assert_eq!(listed["relocated"], false);
    assert_eq!(listed["phone"], "138****0000");
    let masked = listed["head_id_number"].as_str().expect("masked id");
    assert!(
        masked.contains('*') && !masked.contains(&head(123)[6..14]),
        "{masked}"
    );
    let li = to_visit
        .iter()
        .find(|h| h["head_name"] == "李四")
        .expect("李四 listed");
    assert_eq!(li["household_number"], "A-0002");
    assert_eq!(li["poverty_status"], Value::Null);
    let cursor = cursor_of(&first);

    // Known, not surveyed: the household exists with no versions.
    let view = json(
        app.get_as(&reviewer, &format!("/api/v1/households/{zhang}"))
            .await,
    )
    .await;
    assert_eq!(view["versions"].as_array().expect("versions").len(), 0);

    let body = household_survey(&new_id(), "张三", &head(123), &[]);
    let answer = app
        .post("/api/v1/surveys/households")
        .bearer_auth(&enumerator)
        .json(&body)
        .send()
        .await
        .expect("survey");
    assert_eq!(answer.status(), 201, "{:?}", answer.text().await);
    let answer: Value = answer.json().await.expect("json");
    assert_eq!(
        answer["household_id"],
        zhang.as_str(),
        "joins, no new household"
    );
    assert_eq!(answer["version"], 1);
    assert_eq!(imported(&app).len(), 3);

    // The next sync brings 张三 as a surveyed household, replacing the known entry.
    let next = sync(&app, &enumerator, Some(&cursor)).await;
    assert_eq!(household_ids(&next), std::slice::from_ref(&zhang));
    assert_eq!(next["known_households"], serde_json::json!([]));

    // Coverage: 张三 is surveyed now (pending), 李四 still only known.
    assert_eq!(coverage(&app, &reviewer, "households_known").await, (2, 2));
    assert_eq!(
        coverage(&app, &reviewer, "households_not_surveyed").await,
        (2, 1)
    );
    assert_eq!(coverage(&app, &reviewer, "households").await, (0, 1));

    // Importing the list again after the survey still adds nothing.
    let again = json(import(&app, &reviewer, &sheet(&good_rows()), false).await).await;
    assert_eq!((&again["created"], &again["known"]), (&0.into(), &3.into()));
}

async fn the_template_has_the_columns(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.token(CITY_ADMIN).await;
    let want = [
        "村代码",
        "户编号",
        "户主姓名",
        "户主身份证号",
        "家庭人口数",
        "联系电话",
        "贫困户属性",
        "脱贫年度",
        "是否易地扶贫搬迁户",
    ];
    let xlsx = app
        .get_as(&admin, "/api/v1/households/import/template?format=xlsx")
        .await;
    assert_eq!(xlsx.status(), 200);
    assert_eq!(xlsx.headers()["content-type"], XLSX);
    let bytes = xlsx.bytes().await.expect("bytes").to_vec();
    let rows =
        taizhang::sheets::read(&bytes, taizhang::sheets::SheetFormat::Xlsx, 10).expect("readable");
    assert_eq!(rows[0].1, want);
    assert!(rows[1].1[0].starts_with("示例"));
    let csv = app
        .get_as(&admin, "/api/v1/households/import/template?format=csv")
        .await;
    assert_eq!(csv.status(), 200);
    let text = csv.text().await.expect("text");
    assert!(text
        .trim_start_matches('\u{feff}')
        .starts_with(&want.join(",")));
    // The template imports as it is: its example row is skipped.
    let report = app
        .post("/api/v1/households/import?dry_run=true")
        .bearer_auth(&admin)
        .header("content-type", XLSX)
        .body(bytes)
        .send()
        .await
        .expect("import");
    assert_eq!(json(report).await["rows"], 0);
    problem(
        app.get_as(&admin, "/api/v1/households/import/template?format=json")
            .await,
        400,
        "invalid_query",
    )
    .await;
}

/// A list past the size at which PostgreSQL's statistics are refreshed inside the import:
/// stored whole, and a second import of it finds every row known.
async fn a_large_list_is_stored_and_known_the_second_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let rows: Vec<String> = (0..6000u32)
        .map(|i| {
            let birth = chrono::NaiveDate::from_ymd_opt(1950, 1, 1).expect("date")
                + chrono::Duration::days(i64::from(i / 400));
            let head = id_number(
                "220802",
                &birth.format("%Y%m%d").to_string(),
                100 + (i % 400),
            );
            format!("{VILLAGE},,户主{i},{head},3,,,,")
        })
        .collect();
    let first = json(import(&app, &reviewer, &sheet(&rows), false).await).await;
    assert_eq!(
        (&first["created"], &first["known"]),
        (&6000.into(), &0.into())
    );
    let again = json(import(&app, &reviewer, &sheet(&rows), false).await).await;
    assert_eq!(
        (&again["created"], &again["known"]),
        (&0.into(), &6000.into())
    );
}

both_backends!(
    a_large_list_is_stored_and_known_the_second_time,
    dry_run_import_and_reimport,
    bad_rows_are_reported_and_nothing_is_stored,
    the_first_survey_joins_the_imported_household,
    the_template_has_the_columns
);
