//! One rule for text (issue 14, finding 3): NUL and the other control characters are refused
//! with 422 `validation_failed`, rule `control_character`, naming the field, in every JSON
//! body, console form, query and path, on both databases, and nothing is written. NUL used to
//! be a 500 on PostgreSQL (some before login); SQLite stored it, and other control characters.

use std::collections::BTreeMap;

use diesel::prelude::*;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::console::{two_surveys, ConsoleClient};
use crate::helpers::*;
use crate::surveys::{household_survey, id_number, new_id};

const RULE: &str = "control_character";

/// A test server without the ledger warmer, so that no row changes unless a request changes it.
async fn quiet_app(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |s| s.ledger_warm_interval = None).await
}

/// Rows in every table, to show that refused requests wrote nothing.
fn row_counts(app: &TestApp) -> BTreeMap<String, i64> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.database().url.establish().expect("connect");
    taizhang::db::schema::ALL_TABLES
        .iter()
        .map(|table| {
            let count = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
                .get_result::<Count>(&mut conn)
                .expect("count rows");
            (table.to_string(), count.n)
        })
        .collect()
}

/// Asserts a 422 problem+json whose field errors are exactly `fields` (in any order), each
/// `control_character`.
async fn refused(response: Response, fields: &[&str]) -> Value {
    let body = problem(response, 422, "validation_failed").await;
    let mut errors: Vec<(&str, &str)> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap_or_default(),
                e["rule"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    errors.sort();
    let mut expected: Vec<(&str, &str)> = fields.iter().map(|f| (*f, RULE)).collect();
    expected.sort();
    assert_eq!(errors, expected, "{body}");
    body
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

// ---------------------------------------------------------------------------------------------
// Every parameter and every string field of a JSON body in the OpenAPI document.

/// One request of the sweep: a control character in exactly one field.
struct Case {
    method: Method,
    /// Path and query, ready to send.
    target: String,
    body: Option<Value>,
    /// Who sends it (none for the operations without security).
    user: Option<DemoUser>,
    /// The field the answer must name.
    field: String,
}

/// The logged-in user for whom an operation is meant, so only the text rule can refuse it.
fn user_for(method: &Method, path: &str) -> DemoUser {
    match (method.as_str(), path) {
        ("POST", "/api/v1/surveys/villages") => SECRETARY_TAOBEI,
        ("POST", "/api/v1/surveys/households" | "/api/v1/checkins")
        | ("PUT" | "HEAD", "/api/v1/photos/{sha256}")
        | (_, "/api/v1/me/submissions") => ENUMERATOR_TAOBEI,
        (_, p) if p.contains("/review") || p.contains("/duplicates") => REVIEWER_TAOBEI,
        _ => CITY_ADMIN,
    }
}

/// A schema with its `$ref`s and nullable `oneOf`s followed to the one it means. (Some query
/// parameters name schemas the document lacks; parameters are not resolved, bodies must be.)
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..8 {
        if let Some(reference) = schema["$ref"].as_str() {
            let name = reference.rsplit('/').next().unwrap_or_default();
            schema = &doc["components"]["schemas"][name];
            assert!(!schema.is_null(), "the document defines {name}");
        } else if let Some(choices) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
            match choices.iter().find(|c| c["type"] != "null") {
                Some(choice) => schema = choice,
                None => break,
            }
        } else {
            break;
        }
    }
    schema
}

fn has_type(schema: &Value, name: &str) -> bool {
    match &schema["type"] {
        Value::String(t) => t == name,
        Value::Array(ts) => ts.iter().any(|t| t == name),
        _ => false,
    }
}

/// A body for `schema` with placeholder values, and `bad` at the field `target`. The text
/// rule runs before typed validation, so the placeholders need not be valid.
fn build(doc: &Value, schema: &Value, path: &str, target: &str, bad: &str, depth: usize) -> Value {
    let schema = resolve(doc, schema);
    if path == target {
        return Value::String(bad.into());
    }
    if depth > 8 {
        return Value::Null;
    }
    if has_type(schema, "object") || schema.get("properties").is_some() {
        let mut object = serde_json::Map::new();
        if let Some(properties) = schema["properties"].as_object() {
            for (name, property) in properties {
                let child = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                object.insert(
                    name.clone(),
                    build(doc, property, &child, target, bad, depth + 1),
                );
            }
        }
        Value::Object(object)
    } else if has_type(schema, "array") {
        json!([build(
            doc,
            &schema["items"],
            &format!("{path}[0]"),
            target,
            bad,
            depth + 1
        )])
    } else if has_type(schema, "string") {
        json!("x")
    } else if has_type(schema, "integer") {
        json!(1)
    } else if has_type(schema, "number") {
        json!(1.5)
    } else if has_type(schema, "boolean") {
        json!(false)
    } else {
        Value::Null
    }
}

/// The paths of every string field of a body schema (enums included).
fn string_fields(doc: &Value, schema: &Value, path: &str, depth: usize, out: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if depth > 8 {
        return;
    }
    if let Some(properties) = schema["properties"].as_object() {
        for (name, property) in properties {
            let child = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            string_fields(doc, property, &child, depth + 1, out);
        }
    } else if has_type(schema, "array") {
        string_fields(doc, &schema["items"], &format!("{path}[0]"), depth + 1, out);
    } else if has_type(schema, "string") {
        out.push(if path.is_empty() {
            "body".into()
        } else {
            path.into()
        });
    }
}

/// Every case of the committed OpenAPI document, with `bad` as the offending text.
fn cases(doc: &Value, bad: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let user = op
                .get("security")
                .map(|_| user_for(&method, path))
                .filter(|_| !path.starts_with("/api/v1/auth/"));
            let params: Vec<&Value> = op["parameters"]
                .as_array()
                .map(|p| p.iter().collect())
                .unwrap_or_default();
            // Path parameters get a harmless placeholder unless they are the one under test.
            let route = |bad_param: Option<&str>| {
                let mut route = path.clone();
                for p in params.iter().filter(|p| p["in"] == "path") {
                    let name = p["name"].as_str().unwrap_or_default();
                    let value = if Some(name) == bad_param {
                        encode(bad)
                    } else if has_type(&p["schema"], "integer") {
                        "2020".to_owned()
                    } else {
                        "placeholder".to_owned()
                    };
                    route = route.replace(&format!("{{{name}}}"), &value);
                }
                route
            };
            // Every parameter, whatever its documented type: on the wire each one is text.
            for p in &params {
                let name = p["name"].as_str().expect("parameter name");
                let target = match p["in"].as_str() {
                    Some("path") => route(Some(name)),
                    Some("query") => format!("{}?{name}={}", route(None), encode(bad)),
                    _ => continue,
                };
                cases.push(Case {
                    method: method.clone(),
                    target,
                    body: None,
                    user,
                    field: name.to_owned(),
                });
            }
            let Some(schema) = op["requestBody"]["content"]["application/json"].get("schema")
            else {
                continue;
            };
            let mut fields = Vec::new();
            string_fields(doc, schema, "", 0, &mut fields);
            for field in fields {
                let target = if field == "body" { "" } else { field.as_str() };
                cases.push(Case {
                    method: method.clone(),
                    target: route(None),
                    body: Some(build(doc, schema, "", target, bad, 0)),
                    user,
                    field,
                });
            }
        }
    }
    cases
}

async fn every_string_input_of_the_openapi_document_refuses_control_characters(backend: Backend) {
    let app = quiet_app(backend).await;
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/mobile-api-spec/openapi.json"
        ))
        .expect("the committed document"),
    )
    .expect("json");
    // A survey to point the review, reveal and household reads at: its routes exist, so only
    // the text rule stands between those requests and a write or an audited reveal.
    let enumerator = app.token(ENUMERATOR_TAOBEI).await;
    let survey: Value = app
        .post("/api/v1/surveys/households")
        .bearer_auth(&enumerator)
        .json(&household_survey(
            &new_id(),
            "王五",
            &id_number("220802", "19750505", 17),
            &[],
        ))
        .send()
        .await
        .expect("survey")
        .json()
        .await
        .expect("json");
    let survey_id = survey["id"].as_str().expect("survey id").to_owned();

    let mut tokens = BTreeMap::new();
    for user in [
        CITY_ADMIN,
        REVIEWER_TAOBEI,
        ENUMERATOR_TAOBEI,
        SECRETARY_TAOBEI,
    ] {
        tokens.insert(user.phone, app.token(user).await);
    }
    let before = row_counts(&app);

    // NUL (PostgreSQL's 500), ESC (sent as `\u001b`), DEL and NEL (sent raw in JSON, as UTF-8).
    for bad in ["a\u{0}b", "\u{1b}[31m", "a\u{7f}", "a\u{85}b"] {
        let cases = cases(&doc, bad);
        let fields: Vec<&str> = cases.iter().map(|c| c.field.as_str()).collect();
        for expected in [
            "device_id",
            "password",
            "refresh_token",
            "household.head_name",
            "members[0].name",
            "members[0].employment.employer_id",
            "form_version",
            "photos[0]",
            "reason",
            "filter.enumerator",
            "counties[0].county",
            "enumerator",
            "action",
            "sha256",
            "id",
            "b",
            "year",
            "size",
            "geofence",
        ] {
            assert!(fields.contains(&expected), "the sweep covers {expected}");
        }
        assert!(cases.len() > 100, "{} cases", cases.len());
        for case in cases {
            let target = case
                .target
                .replace("/placeholder", &format!("/{survey_id}"));
            let mut request = app.request(case.method.clone(), &target);
            if let Some(user) = case.user {
                request = request.bearer_auth(&tokens[user.phone]);
            }
            if let Some(body) = &case.body {
                request = request.json(body);
            }
            let response = request.send().await.expect("request");
            let what = format!("{} {target} field {} ({bad:?})", case.method, case.field);
            if case.method == Method::HEAD {
                assert_eq!(
                    response.status(),
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "{what}"
                );
                continue;
            }
            assert_eq!(
                response.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{what}"
            );
            refused(response, &[&case.field]).await;
        }
    }
    assert_eq!(row_counts(&app), before, "refused requests wrote nothing");
}

// ---------------------------------------------------------------------------------------------
// The reported cases, one by one.

async fn nul_in_the_device_id_is_refused_before_login(backend: Backend) {
    let app = quiet_app(backend).await;
    let before = row_counts(&app);
    for device in ["a\u{0}", "a\nb"] {
        let response = app
            .login_response(CITY_ADMIN.phone, CITY_ADMIN.password, device)
            .await;
        let body = refused(response, &["device_id"]).await;
        assert!(body.get("access_token").is_none());
    }
    // A key with a control character is named with it escaped.
    let response = app
        .post("/api/v1/auth/login")
        .json(
            &json!({"phone": CITY_ADMIN.phone, "password": CITY_ADMIN.password,
                      "device_id": "d", "x\u{0}": 1}),
        )
        .send()
        .await
        .expect("login");
    refused(response, &["x\\u{0}"]).await;
    // Written raw, a control character is not JSON: 400, as any other syntax error.
    let response = app
        .post("/api/v1/auth/login")
        .header("content-type", "application/json")
        .body("{\"phone\":\"1\u{0}\",\"password\":\"p\",\"device_id\":\"d\"}")
        .send()
        .await
        .expect("login");
    problem(response, 400, "malformed_json").await;
    assert_eq!(
        row_counts(&app),
        before,
        "no session, no counted login failure"
    );
    // The account is untouched: the right device id logs in.
    app.token(CITY_ADMIN).await;
}

async fn nul_in_query_filters_and_reveal_reasons_is_refused(backend: Backend) {
    let app = quiet_app(backend).await;
    let (survey, _) = two_surveys(&app).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let admin = app.token(CITY_ADMIN).await;
    let before = row_counts(&app);
    refused(
        app.get_as(&reviewer, "/api/v1/surveys?enumerator=a%00b")
            .await,
        &["enumerator"],
    )
    .await;
    refused(
        app.get_as(&admin, "/api/v1/audit?action=%00").await,
        &["action"],
    )
    .await;
    // Every offending parameter at once, decoded as the handler would see it (`+`, `%1b`).
    refused(
        app.get_as(&admin, "/api/v1/audit?user=%1b&subject_type=a+%7F&limit=5")
            .await,
        &["user", "subject_type"],
    )
    .await;
    // Before login too: nothing further is read.
    refused(
        app.get("/api/v1/surveys?enumerator=%00")
            .send()
            .await
            .expect("r"),
        &["enumerator"],
    )
    .await;
    // A reveal is audited, so a refused reason must reveal and audit nothing. Queries never
    // take line breaks, not even a reason.
    for reason in ["%00", "a%0Ab", "%C2%85"] {
        let response = app
            .get_as(
                &reviewer,
                &format!("/api/v1/surveys/{survey}?reveal=true&reason={reason}"),
            )
            .await;
        refused(response, &["reason"]).await;
    }
    assert_eq!(row_counts(&app), before, "no audit entry, nothing else");
}

async fn control_characters_in_names_and_survey_fields_are_refused(backend: Backend) {
    let app = quiet_app(backend).await;
    let admin = app.token(CITY_ADMIN).await;
    let enumerator = app.token(ENUMERATOR_TAOBEI).await;
    let before = row_counts(&app);
    let response = app
        .post("/api/v1/users")
        .bearer_auth(&admin)
        .json(
            &json!({"phone": "13911112222", "name": "王\u{7}五", "role": "enumerator",
                      "villages": ["220802100201"], "password": "long enough"}),
        )
        .send()
        .await
        .expect("r");
    refused(response, &["name"]).await;

    // An otherwise valid survey: every offending field is named at once, nothing is stored.
    let mut survey = household_survey(&new_id(), "张三", &id_number("220802", "19700101", 23), &[]);
    survey["form_version"] = json!("2020.07\u{0}");
    survey["household"]["head_name"] = json!("张\u{7}三");
    survey["members"][1]["name"] = json!("李\u{0}秀兰");
    survey["device"]["device_id"] = json!("a1\u{9}b2");
    let response = app
        .post("/api/v1/surveys/households")
        .bearer_auth(&enumerator)
        .json(&survey)
        .send()
        .await
        .expect("r");
    let body = refused(
        response,
        &[
            "device.device_id",
            "form_version",
            "household.head_name",
            "members[1].name",
        ],
    )
    .await;
    let detail = body["errors"]
        .as_array()
        .and_then(|errors| errors.iter().find(|e| e["field"] == "form_version"))
        .and_then(|e| e["detail"].as_str())
        .unwrap_or_default();
    assert!(detail.contains("U+0000"), "{body}");
    assert_eq!(row_counts(&app), before, "nothing stored");

    // The same survey without them is stored.
    survey["form_version"] = json!("2020.07");
    survey["household"]["head_name"] = json!("张三");
    survey["members"][1]["name"] = json!("李秀兰");
    survey["device"]["device_id"] = json!("a1b2");
    let response = app
        .post("/api/v1/surveys/households")
        .bearer_auth(&enumerator)
        .json(&survey)
        .send()
        .await
        .expect("r");
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn review_reasons_may_span_lines_but_hold_no_other_control_characters(backend: Backend) {
    let app = quiet_app(backend).await;
    let (survey, _) = two_surveys(&app).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let review = format!("/api/v1/surveys/{survey}/review");
    let before = row_counts(&app);
    for reason in ["户主\u{0}签字缺失", "\u{1b}[2J", "签字\u{7f}"] {
        let response = app
            .post(&review)
            .bearer_auth(&reviewer)
            .json(&json!({"decision": "reject", "reason": reason}))
            .send()
            .await
            .expect("r");
        refused(response, &["reason"]).await;
    }
    let response = app
        .post(&format!("/api/v1/duplicates/{survey}/{survey}"))
        .bearer_auth(&reviewer)
        .json(&json!({"action": "keep_apart", "reason": "a\u{0}"}))
        .send()
        .await
        .expect("r");
    refused(response, &["reason"]).await;
    assert_eq!(row_counts(&app), before, "no decision taken");

    // A reason written over several lines in a text area is free text, and kept as written.
    let reason = "户主签字缺失；\r\n\t请补签后重新提交";
    let response = app
        .post(&review)
        .bearer_auth(&reviewer)
        .json(&json!({"decision": "request_revision", "reason": reason}))
        .send()
        .await
        .expect("r");
    assert_eq!(response.status(), StatusCode::OK);
    let stored: Value = app
        .get_as(&reviewer, &format!("/api/v1/surveys/{survey}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(stored["review_comment"], reason);
}

async fn paths_and_unknown_routes_are_checked_decoded(backend: Backend) {
    let app = quiet_app(backend).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    refused(
        app.get_as(&reviewer, "/api/v1/surveys/a%00b").await,
        &["id"],
    )
    .await;
    refused(
        app.get_as(&reviewer, "/api/v1/households/%1B").await,
        &["id"],
    )
    .await;
    refused(
        app.get("/api/v1/nothing%00").send().await.expect("r"),
        &["path"],
    )
    .await;
    refused(
        app.post("/api/v1/auth/login%7F")
            .json(&json!({}))
            .send()
            .await
            .expect("r"),
        &["path"],
    )
    .await;
    // Percent signs that are not escapes, `+` and non-ASCII text are no control characters.
    problem(
        app.get_as(&reviewer, "/api/v1/surveys/a+%zz%E5%B9%B3")
            .await,
        400,
        "invalid_path",
    )
    .await;
}

async fn console_forms_queries_and_paths_refuse_control_characters(backend: Backend) {
    let app = quiet_app(backend).await;
    let (survey, _) = two_surveys(&app).await;
    let mut console = ConsoleClient::new(&app);
    let page_of = |response: Response| async move {
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html"));
        response.text().await.expect("page")
    };
    let before = row_counts(&app);
    // The login form, before its CSRF token or the password is looked at.
    let page = page_of(
        console
            .post(
                "/console/login",
                &[("phone", "1390000000\u{0}"), ("password", "x")],
            )
            .await,
    )
    .await;
    assert!(page.contains("手机号：不能含控制字符"), "{page}");
    assert_eq!(row_counts(&app), before, "no login attempt counted");

    console.login(REVIEWER_TAOBEI).await;
    let before = row_counts(&app);
    let csrf = console.csrf().await;
    let decide = format!("/console/surveys/{survey}/review");
    let page = page_of(
        console
            .post(
                &decide,
                &[
                    ("csrf", &csrf),
                    ("decision", "reject"),
                    ("reason", "缺\u{0}签字"),
                ],
            )
            .await,
    )
    .await;
    assert!(
        page.contains("理由：除制表符和换行外不能含控制字符"),
        "{page}"
    );
    page_of(console.get("/console/queue?enumerator=%1B").await).await;
    page_of(console.get(&format!("/console/surveys/{survey}%00")).await).await;
    page_of(console.get("/console/no-such-page%7F").await).await;
    assert_eq!(row_counts(&app), before, "no decision taken");

    // Line breaks in the reason's text area are fine.
    let response = console
        .post(
            &decide,
            &[
                ("csrf", &csrf),
                ("decision", "reject"),
                ("reason", "户主签字缺失\r\n请补签"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let stored: Value = app
        .get_as(&reviewer, &format!("/api/v1/surveys/{survey}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(stored["status"], "rejected");
    assert_eq!(stored["review_comment"], "户主签字缺失\r\n请补签");
}

both_backends!(
    every_string_input_of_the_openapi_document_refuses_control_characters,
    nul_in_the_device_id_is_refused_before_login,
    nul_in_query_filters_and_reveal_reasons_is_refused,
    control_characters_in_names_and_survey_fields_are_refused,
    review_reasons_may_span_lines_but_hold_no_other_control_characters,
    paths_and_unknown_routes_are_checked_decoded,
    console_forms_queries_and_paths_refuse_control_characters,
);
