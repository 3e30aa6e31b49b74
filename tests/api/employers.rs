//! The employer registry: the list, the import (dry run, every bad row, upsert, nothing stored
//! on refusal), edits, audit entries, roles and scope, employer references in household
//! surveys, and the ledger of labourers per employer with its downloads.

use reqwest::Response;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::surveys::{household_survey, id_number, new_id};

const TAOBEI: &str = "220802000000";
const TAONAN: &str = "220881000000";

/// A valid 统一社会信用代码 ending in `n`.
fn credit(n: u32) -> String {
    taizhang::employers::import::credit_code_with_check(&format!("9122080{n:010}")).expect("valid")
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

async fn import(app: &TestApp, token: &str, csv: &str, dry_run: bool) -> Response {
    app.post(&format!("/api/v1/employers/import?dry_run={dry_run}"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .expect("import")
}

fn sheet(rows: &[String]) -> String {
    let mut out = "名称,类型,统一社会信用代码,所在县（市、区）,所在村,地址\n".to_owned();
    for r in rows {
        out.push_str(r);
        out.push('\n');
    }
    out
}

fn good_rows() -> Vec<String> {
    vec![
        format!(
            "洮北区丰收农业专业合作社,合作社,{},{TAOBEI},220802100201,平安镇",
            credit(1)
        ),
        format!("洮北区平安扶贫车间,workshop,{},洮北区,,", credit(2)),
        format!("洮南市福顺食品有限公司,龙头企业,{},{TAONAN},,", credit(3)),
        "洮北区无代码合作社,合作社,,220802000000,,".to_owned(),
    ]
}

async fn list(app: &TestApp, token: &str, query: &str) -> Value {
    let r = app
        .get_as(token, &format!("/api/v1/employers{query}"))
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

fn id_of(page: &Value, name: &str) -> String {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} listed"))["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn import_lists_and_upserts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.token(CITY_ADMIN).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let csv = sheet(&good_rows());

    let dry: Value = import(&app, &admin, &csv, true)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        dry,
        json!({"dry_run": true, "rows": 4, "created": 4, "updated": 0, "unchanged": 0})
    );
    assert_eq!(
        list(&app, &field, "").await["total"],
        0,
        "a dry run stores nothing"
    );

    let done: Value = import(&app, &admin, &csv, false)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(done["created"], 4);
    // Any signed-in user reads the registry; filters and a stable order.
    let all = list(&app, &field, "").await;
    assert_eq!(all["total"], 4);
    let names: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "洮北区丰收农业专业合作社",
            "洮北区无代码合作社",
            "洮北区平安扶贫车间",
            "洮南市福顺食品有限公司"
        ],
        "county, kind (wire value), name"
    );
    assert_eq!(
        all["items"][0]["county_code"], TAOBEI,
        "a county named by name"
    );
    assert_eq!(
        list(&app, &field, &format!("?county={TAONAN}")).await["total"],
        1
    );
    assert_eq!(list(&app, &field, "?kind=cooperative").await["total"], 2);
    assert_eq!(list(&app, &field, "?q=丰收").await["total"], 1);
    let paged = list(&app, &field, "?limit=3").await;
    assert_eq!(paged["items"].as_array().unwrap().len(), 3);
    let rest = list(
        &app,
        &field,
        &format!("?limit=3&cursor={}", paged["next_cursor"].as_str().unwrap()),
    )
    .await;
    assert_eq!(rest["items"][0]["name"], "洮南市福顺食品有限公司");
    assert!(rest["next_cursor"].is_null());
    problem(
        app.get_as(&field, "/api/v1/employers?county=2208").await,
        400,
        "invalid_query",
    )
    .await;

    // Again: unchanged; one row edited updates by its credit code.
    let again: Value = import(&app, &admin, &csv, false)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        again,
        json!({"dry_run": false, "rows": 4, "created": 0, "updated": 0, "unchanged": 4})
    );
    let mut rows = good_rows();
    rows[0] = format!(
        "洮北区丰收农牧专业合作社,合作社,{},{TAOBEI},,新地址",
        credit(1)
    );
    rows.push(format!(
        "洮北区新建扶贫车间,扶贫车间,{},{TAOBEI},,",
        credit(4)
    ));
    let upsert: Value = import(&app, &admin, &sheet(&rows), false)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        upsert,
        json!({"dry_run": false, "rows": 5, "created": 1, "updated": 1, "unchanged": 3})
    );
    let renamed = list(&app, &field, "?q=农牧").await;
    assert_eq!(renamed["items"][0]["address"], "新地址");
    assert!(renamed["items"][0]["village_code"].is_null());

    // The XLSX template imports as it is: its example row.
    let template = app
        .get_as(&admin, "/api/v1/employers/import/template?format=xlsx")
        .await;
    assert_eq!(template.status(), 200);
    let bytes = template.bytes().await.expect("bytes").to_vec();
    assert!(bytes.starts_with(b"PK"));
    let from_xlsx: Value = app
        .post("/api/v1/employers/import")
        .bearer_auth(&admin)
        .header("content-type", XLSX)
        .body(bytes)
        .send()
        .await
        .expect("import")
        .json()
        .await
        .expect("json");
    assert_eq!(from_xlsx["rows"], 1);
    let csv_template = app
        .get_as(&admin, "/api/v1/employers/import/template?format=csv")
        .await;
    assert!(csv_template
        .text()
        .await
        .expect("text")
        .contains("统一社会信用代码"));

    // Audited: one entry per employer created or changed.
    let audit: Value = app
        .get_as(&admin, "/api/v1/audit?action=create_employer")
        .await
        .json()
        .await
        .expect("audit");
    assert_eq!(audit["items"].as_array().expect("items").len(), 6);
    let audit: Value = app
        .get_as(&admin, "/api/v1/audit?action=update_employer")
        .await
        .json()
        .await
        .expect("audit");
    assert_eq!(audit["items"].as_array().expect("items").len(), 1);
}

async fn bad_rows_are_all_reported_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.token(CITY_ADMIN).await;
    let mut rows = good_rows();
    rows.push(",工厂,123,220899000000,220802100999,".to_owned()); // row 6
    rows.push(format!(
        "重复代码合作社,合作社,{},{TAOBEI},220881100200,",
        credit(1)
    )); // row 7
    let refused = problem(
        import(&app, &admin, &sheet(&rows), true).await,
        422,
        "validation_failed",
    )
    .await;
    let errors: Vec<(String, String)> = refused["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["rule"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("rows[6].name", "required"),
        ("rows[6].kind", "unknown_value"),
        ("rows[6].credit_code", "credit_code_format"),
        ("rows[6].county", "unknown_county"),
        ("rows[6].village", "unknown_village"),
        ("rows[7].credit_code", "duplicate"),
        ("rows[7].village", "out_of_scope"),
    ];
    assert_eq!(
        errors,
        expected.map(|(f, r)| (f.to_owned(), r.to_owned())).to_vec()
    );
    assert!(refused["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("第 6 行"));
    // Not a dry run either: all or nothing.
    problem(
        import(&app, &admin, &sheet(&rows), false).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(list(&app, &admin, "").await["total"], 0);
    // A missing column, a wrong type, too big a sheet.
    let no_county = "名称,类型\n某合作社,合作社\n";
    let r = problem(
        import(&app, &admin, no_county, false).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(r["errors"][0]["field"], "columns.所在县(市、区)");
    let r = app
        .post("/api/v1/employers/import")
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("r");
    problem(r, 415, "unsupported_media_type").await;
    let many: Vec<String> = (0..5001)
        .map(|i| format!("合作社{i},合作社,,{TAOBEI},,"))
        .collect();
    let r = problem(
        import(&app, &admin, &sheet(&many), true).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(r["errors"][0]["rule"], "too_many");

    // A zip bomb: a worksheet of 80 MiB of spaces (about 80 KB deflated), inside the 4 MiB
    // upload limit, is refused before the XLSX reader inflates it.
    let bomb = {
        use std::io::Write;
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        out.start_file("xl/worksheets/sheet1.xml", options)
            .expect("entry");
        let spaces = vec![b' '; 1024 * 1024];
        for _ in 0..80 {
            out.write_all(&spaces).expect("write");
        }
        out.finish().expect("zip").into_inner()
    };
    assert!(bomb.len() < 1024 * 1024, "{} bytes", bomb.len());
    let r = app
        .post("/api/v1/employers/import")
        .bearer_auth(&admin)
        .header("content-type", XLSX)
        .body(bomb)
        .send()
        .await
        .expect("r");
    let r = problem(r, 422, "validation_failed").await;
    assert_eq!(r["errors"][0]["field"], "body");
    assert_eq!(r["errors"][0]["rule"], "implausible_compression");
    assert_eq!(list(&app, &admin, "").await["total"], 0);
}

async fn edits_roles_and_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.token(CITY_ADMIN).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    assert_eq!(
        import(&app, &admin, &sheet(&good_rows()), false)
            .await
            .status(),
        200
    );
    let id = id_of(&list(&app, &admin, "").await, "洮北区平安扶贫车间");
    assert_eq!(list(&app, &admin, "").await["items"][2]["id"], id.as_str());

    // Only the city imports and edits.
    problem(
        import(&app, &reviewer, &sheet(&good_rows()), true).await,
        403,
        "forbidden_role",
    )
    .await;
    problem(
        import(&app, &field, &sheet(&good_rows()), true).await,
        403,
        "forbidden_role",
    )
    .await;
    let edit = json!({"name": "洮北区平安扶贫车间（二期）", "kind": "workshop", "county_code": TAOBEI,
                      "village_code": "220802100201", "address": "平安村", "active": false});
    let put = |token: &str, id: &str, body: &Value| {
        app.request(reqwest::Method::PUT, &format!("/api/v1/employers/{id}"))
            .bearer_auth(token.to_owned())
            .json(body)
            .send()
    };
    problem(
        put(&reviewer, &id, &edit).await.expect("r"),
        403,
        "forbidden_role",
    )
    .await;
    let edited = put(&admin, &id, &edit).await.expect("r");
    assert_eq!(edited.status(), 200);
    let edited: Value = edited.json().await.expect("json");
    assert_eq!(edited["name"], "洮北区平安扶贫车间（二期）");
    assert_eq!(edited["active"], false);
    // Inactive: listed only on request.
    assert_eq!(list(&app, &field, "").await["total"], 3);
    assert_eq!(
        list(&app, &field, "?include_inactive=true").await["total"],
        4
    );
    let audit: Value = app
        .get_as(&admin, "/api/v1/audit?action=update_employer")
        .await
        .json()
        .await
        .expect("audit");
    assert_eq!(audit["items"][0]["subject_id"], id.as_str());

    let bad = json!({"name": " ", "kind": "workshop", "county_code": "220802100201",
                     "village_code": "220881100200", "address": null, "active": true});
    let r = problem(
        put(&admin, &id, &bad).await.expect("r"),
        422,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "county_code", "village_code"]);
    let r = problem(put(&admin, &id, &json!({"name": "a", "kind": "workshop", "county_code": TAOBEI, "village_code": "220881100200", "address": null, "active": true})).await.expect("r"), 422, "validation_failed").await;
    assert_eq!(
        (
            r["errors"][0]["field"].as_str(),
            r["errors"][0]["rule"].as_str()
        ),
        (Some("village_code"), Some("out_of_scope"))
    );
    problem(
        put(&admin, "nope", &edit).await.expect("r"),
        404,
        "not_found",
    )
    .await;

    // The ledger by county: a county reviewer reads their own county only; field users neither.
    problem(
        app.get_as(
            &reviewer,
            &format!("/api/v1/ledgers/employers?county={TAONAN}&month=2020-07"),
        )
        .await,
        403,
        "out_of_scope",
    )
    .await;
    problem(
        app.get_as(&field, "/api/v1/ledgers/employers?month=2020-07")
            .await,
        403,
        "out_of_scope",
    )
    .await;
    let own = app
        .get_as(&reviewer, "/api/v1/ledgers/employers?month=2020-07")
        .await;
    assert_eq!(own.status(), 200);
    let own: Value = own.json().await.expect("json");
    assert_eq!(own["code"], TAOBEI);
    assert_eq!(
        own["items"].as_array().unwrap().len(),
        3,
        "the county's employers, inactive too"
    );
}

async fn post_survey(app: &TestApp, token: &str, body: &Value) -> Response {
    app.post("/api/v1/surveys/households")
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("post")
}

async fn surveys_name_registered_employers_of_their_kind(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.token(CITY_ADMIN).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    assert_eq!(
        import(&app, &admin, &sheet(&good_rows()), false)
            .await
            .status(),
        200
    );
    let all = list(&app, &admin, "").await;
    let coop = id_of(&all, "洮北区丰收农业专业合作社");
    let workshop = id_of(&all, "洮北区平安扶贫车间");
    let enterprise = id_of(&all, "洮南市福顺食品有限公司");
    let survey = |employment: [Value; 2]| {
        let mut body = household_survey(
            &new_id(),
            "张国强",
            &id_number("220802", "19700101", 11),
            &[],
        );
        body["members"][0]["employment"] = employment[0].clone();
        body["members"][1]["employment"] = employment[1].clone();
        body
    };
    let job = |status: &str, id: Option<&str>| json!({"status": status, "employer_id": id, "post_type": null, "monthly_income_yuan": 2000});

    // Refused, each named by member and rule: unknown, wrong kind, not for this status.
    let body = survey([
        job("cooperative", Some("no-such-employer")),
        job("workshop", Some(&coop)),
    ]);
    let r = problem(
        post_survey(&app, &field, &body).await,
        422,
        "validation_failed",
    )
    .await;
    let got: Vec<(&str, &str)> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["rule"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("members[0].employment.employer_id", "unknown_employer"),
            (
                "members[1].employment.employer_id",
                "employer_kind_mismatch"
            )
        ]
    );
    let body = survey([job("out_of_province", Some(&coop)), job("workshop", None)]);
    let r = problem(
        post_survey(&app, &field, &body).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        (
            r["errors"][0]["field"].as_str(),
            r["errors"][0]["rule"].as_str()
        ),
        (
            Some("members[0].employment.employer_id"),
            Some("not_allowed")
        )
    );

    // Accepted: a labourer of the cooperative, one of the enterprise in another county.
    let body = survey([
        job("cooperative", Some(&coop)),
        job("leading_enterprise", Some(&enterprise)),
    ]);
    let stored = post_survey(&app, &field, &body).await;
    assert_eq!(stored.status(), 201);
    let stored: Value = stored.json().await.expect("json");

    // An inactive employer may no longer be named.
    let edit = json!({"name": "洮北区平安扶贫车间", "kind": "workshop", "county_code": TAOBEI, "village_code": null, "address": null, "active": false});
    let r = app
        .request(
            reqwest::Method::PUT,
            &format!("/api/v1/employers/{workshop}"),
        )
        .bearer_auth(&admin)
        .json(&edit)
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 200);
    let mut body = survey([
        job("workshop", Some(&workshop)),
        job("out_of_province", None),
    ]);
    body["household"]["head_id_number"] = json!(id_number("220802", "19710101", 13));
    body["members"][0]["id_number"] = body["household"]["head_id_number"].clone();
    body["members"][0]["birth_date"] = json!("1971-01-01");
    let r = problem(
        post_survey(&app, &field, &body).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(r["errors"][0]["rule"], "inactive_employer");

    // The ledger: pending first, then approved; the real-name list and the downloads.
    let ledger: Value = app
        .get_as(&reviewer, "/api/v1/ledgers/employers?month=2020-07")
        .await
        .json()
        .await
        .expect("json");
    let line = |ledger: &Value, id: &str| {
        ledger["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == id)
            .cloned()
            .expect("line")
    };
    assert_eq!(
        line(&ledger, &coop)["labourers"],
        json!({"approved": 0, "including_pending": 1})
    );
    assert_eq!(
        line(&ledger, &enterprise)["labourers"],
        json!({"approved": 0, "including_pending": 1}),
        "an employer of another county employing a labourer living here"
    );
    assert_eq!(ledger["total"]["including_pending"], 2);
    let id = stored["id"].as_str().expect("id");
    let r = app
        .post(&format!("/api/v1/surveys/{id}/review"))
        .bearer_auth(&reviewer)
        .json(&json!({"decision": "approve", "reason": null, "seen_version": null}))
        .send()
        .await
        .expect("review");
    assert_eq!(r.status(), 200);
    let ledger: Value = app
        .get_as(
            &admin,
            &format!("/api/v1/ledgers/employers?month=2020-07&county={TAOBEI}"),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        line(&ledger, &coop)["labourers"],
        json!({"approved": 1, "including_pending": 1})
    );
    let people: Value = app
        .get_as(
            &reviewer,
            &format!("/api/v1/ledgers/employers/{coop}/people?month=2020-07"),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(people["items"].as_array().unwrap().len(), 1);
    assert_eq!(people["items"][0]["name"], "张国强");
    assert!(
        people["items"][0]["id_number"]
            .as_str()
            .unwrap()
            .contains('*'),
        "masked"
    );
    problem(
        app.get_as(
            &reviewer,
            "/api/v1/ledgers/employers/nope/people?month=2020-07",
        )
        .await,
        404,
        "not_found",
    )
    .await;

    let xlsx = app
        .get_as(
            &reviewer,
            "/api/v1/ledgers/employers?month=2020-07&format=xlsx",
        )
        .await;
    assert_eq!(xlsx.status(), 200);
    assert!(xlsx.bytes().await.expect("bytes").starts_with(b"PK"));
    let csv = app
        .get_as(
            &reviewer,
            &format!("/api/v1/ledgers/employers/{coop}/people?month=2020-07&format=csv"),
        )
        .await;
    let csv = csv.text().await.expect("text");
    assert!(
        csv.contains("张国强")
            && csv.contains("合计,1,人")
            && csv.contains(r#""=""220802100201""""#)
            && !csv.contains("19700101"),
        "{csv}"
    );
    let csv = app
        .get_as(
            &reviewer,
            "/api/v1/ledgers/employers?month=2020-07&format=csv",
        )
        .await
        .text()
        .await
        .expect("text");
    assert!(csv.contains("吸纳就业人数（已审核）") && csv.contains("洮北区丰收农业专业合作社"));
}

both_backends!(
    import_lists_and_upserts,
    bad_rows_are_all_reported_and_nothing_is_stored,
    edits_roles_and_scope,
    surveys_name_registered_employers_of_their_kind,
);
