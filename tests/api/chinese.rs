//! Text a person reads is Simplified Chinese: every problem `detail` and `errors[].detail`, the
//! catalog's rule labels, and the console's pages, error pages and messages. Field paths, codes,
//! numbers and the values a client sent may stay as they are inside the Chinese sentence.

use reqwest::{Method, StatusCode};
use reqwest_middleware::RequestBuilder;
use serde_json::{json, Value};

use crate::console::{two_surveys, ConsoleClient};
use crate::helpers::*;
use crate::surveys::{household_survey, id_number, new_id};

/// Technical names a Chinese sentence may carry as they are.
const TECHNICAL: &[&str] = &[
    "JSON",
    "JPEG",
    "UUID",
    "SHA",
    "RFC",
    "YYYY",
    "MM",
    "DD",
    "GB",
    "ID",
    "API",
    "GET",
    "PUT",
    "POST",
    "URL",
    "MiB",
    "Content-Type",
    "Authorization",
    "Bearer",
    "CSV",
    "XLSX",
    "xlsx",
    "csv",
    "true",
    "false",
    "null",
    "libjpeg",
    "EOI",
    "SOF",
    "SOS",
    "DNL",
    "YCbCr",
    "PNG",
    "WebP",
    "GIF",
    "HEIF",
    "AVIF",
    "image",
    "jpeg",
    "application",
    "json",
    "U",
    "Excel",
];

/// The English words of `text` a person would have to read: words outside backticks that are
/// not field paths or codes (anything with `_`, `.`, `[`, `/`, `:` or a digit), not a name
/// listed in `allowed` (the request's own field names) and not a technical name.
pub fn english_words(text: &str, allowed: &[&str]) -> Vec<String> {
    let outside_quotes: String = text.split('`').step_by(2).collect::<Vec<_>>().join(" ");
    let mut words = Vec::new();
    let token_chars = |c: char| c.is_ascii_alphanumeric() || "_.[]/:-<>=?&%#+*".contains(c);
    for token in outside_quotes.split(|c: char| !token_chars(c)) {
        let token = token.trim_matches(|c: char| ".:-".contains(c));
        if token.is_empty()
            || token
                .chars()
                .any(|c| c.is_ascii_digit() || "_.[]/:<>=?&%#+*".contains(c))
        {
            continue;
        }
        for word in token.split('-') {
            let letters = word.chars().filter(char::is_ascii_alphabetic).count();
            if letters >= 2
                && !TECHNICAL.contains(&word)
                && !allowed.contains(&word)
                && !TECHNICAL.contains(&token)
            {
                words.push(word.to_owned());
            }
        }
    }
    words
}

fn has_chinese(text: &str) -> bool {
    text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// Checks one problem answer: a Chinese `title`, `detail` and `errors[].detail`, none with an
/// English word beyond the request's field names.
fn assert_chinese_problem(what: &str, body: &Value) {
    let fields: Vec<String> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .chain(body["field"].as_str())
        .flat_map(|f| f.split(['.', '[', ']']).map(str::to_owned))
        .collect();
    let allowed: Vec<&str> = fields.iter().map(String::as_str).collect();
    let mut texts = vec![
        body["title"].as_str().unwrap_or_default(),
        body["detail"].as_str().unwrap_or_default(),
    ];
    for e in body["errors"].as_array().into_iter().flatten() {
        texts.push(e["detail"].as_str().unwrap_or_default());
    }
    for text in texts {
        assert!(has_chinese(text), "{what}: not Chinese: {text:?} in {body}");
        let english = english_words(text, &allowed);
        assert!(
            english.is_empty(),
            "{what}: English {english:?} in {text:?}"
        );
    }
}

#[test]
fn the_check_finds_english_and_passes_codes() {
    assert_eq!(
        english_words("members[0] is also a member of household 01a2", &[]),
        ["is", "also", "member", "of", "household"]
    );
    assert_eq!(
        english_words("county 220881000000 is outside your scope", &[]),
        ["county", "is", "outside", "your", "scope"]
    );
    assert!(english_words(
        "members[2].id_number：身份证号校验位不对（GB 11643）；`Lifted` 不是允许的取值",
        &[]
    )
    .is_empty());
    assert!(english_words("phone：须为以 1 开头的 11 位大陆手机号", &["phone"]).is_empty());
    assert_eq!(english_words("phone：须为", &[]), ["phone"]);
}

struct Case {
    what: &'static str,
    request: RequestBuilder,
    status: u16,
    code: &'static str,
}

async fn every_problem_detail_is_chinese(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let taonan = app.token(REVIEWER_TAONAN).await;
    let json_post =
        |path: &str, token: &str, body: Value| app.post(path).bearer_auth(token).json(&body);
    let survey = |edit: &dyn Fn(&mut Value)| {
        let mut body = household_survey(
            &new_id(),
            "张三",
            &id_number("220802", "19700101", 123),
            &[],
        );
        edit(&mut body);
        body
    };
    let survey_path = "/api/v1/surveys/households";
    let (first, _) = two_surveys(&app).await;

    let cases = vec![
        Case {
            what: "login: bad phone, empty password, no device",
            request: app
                .post("/api/v1/auth/login")
                .json(&json!({"phone": "12", "password": "", "device_id": ""})),
            status: 422,
            code: "validation_failed",
        },
        Case {
            what: "login: wrong password",
            request: app.post("/api/v1/auth/login").json(
                &json!({"phone": "13900000001", "password": "wrong-password", "device_id": "d"}),
            ),
            status: 401,
            code: "invalid_credentials",
        },
        Case {
            what: "login: a number for a string",
            request: app
                .post("/api/v1/auth/login")
                .json(&json!({"phone": 13900000001u64, "password": "x", "device_id": "d"})),
            status: 422,
            code: "validation_failed",
        },
        Case {
            what: "login: a missing field",
            request: app
                .post("/api/v1/auth/login")
                .json(&json!({"phone": "13900000001", "device_id": "d"})),
            status: 422,
            code: "validation_failed",
        },
        Case {
            what: "malformed JSON",
            request: app
                .post("/api/v1/auth/login")
                .header("content-type", "application/json")
                .body("{\"phone\": "),
            status: 400,
            code: "malformed_json",
        },
        Case {
            what: "trailing characters",
            request: app
                .post("/api/v1/auth/login")
                .header("content-type", "application/json")
                .body("{\"phone\":\"13900000001\",\"password\":\"x\",\"device_id\":\"d\"} x"),
            status: 400,
            code: "malformed_json",
        },
        Case {
            what: "form instead of JSON",
            request: app
                .post("/api/v1/auth/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("phone=1"),
            status: 415,
            code: "unsupported_media_type",
        },
        Case {
            what: "refresh: empty token",
            request: app
                .post("/api/v1/auth/refresh")
                .json(&json!({"refresh_token": ""})),
            status: 422,
            code: "validation_failed",
        },
        Case {
            what: "refresh: unknown token",
            request: app
                .post("/api/v1/auth/refresh")
                .json(&json!({"refresh_token": "no-such-token"})),
            status: 401,
            code: "invalid_refresh_token",
        },
        Case {
            what: "no token",
            request: app.get("/api/v1/me"),
            status: 401,
            code: "missing_token",
        },
        Case {
            what: "a bad token",
            request: app.get("/api/v1/me").bearer_auth("not-a-token"),
            status: 401,
            code: "invalid_token",
        },
        Case {
            what: "a bad authorization scheme",
            request: app.get("/api/v1/me").header("authorization", "Basic abc"),
            status: 401,
            code: "invalid_token",
        },
        Case {
            what: "no such route",
            request: app.get("/api/v1/no-such-thing"),
            status: 404,
            code: "not_found",
        },
        Case {
            what: "method not allowed",
            request: app.request(Method::DELETE, "/api/v1/catalog"),
            status: 405,
            code: "method_not_allowed",
        },
        Case {
            what: "an enumerator creates a user",
            request: json_post(
                "/api/v1/users",
                &field,
                json!({"phone": "13911111111", "name": "某", "role": "enumerator",
                       "password": "long-enough-1", "villages": ["220802100201"]}),
            ),
            status: 403,
            code: "forbidden_role",
        },
        Case {
            what: "a user breaking the role rules",
            request: json_post(
                "/api/v1/users",
                &app.token(CITY_ADMIN).await,
                json!({"phone": "139", "name": "", "role": "first_secretary",
                       "password": "short", "villages": []}),
            ),
            status: 422,
            code: "validation_failed",
        },
        Case {
            what: "another county's village",
            request: app.get("/api/v1/villages/220881100201").bearer_auth(&field),
            status: 403,
            code: "out_of_scope",
        },
        Case {
            what: "another county's ledger",
            request: app
                .get("/api/v1/inventory?level=county&code=220802000000&month=2020-07")
                .bearer_auth(&taonan),
            status: 403,
            code: "out_of_scope",
        },
        Case {
            what: "a malformed village code in the path",
            request: app.get("/api/v1/villages/12").bearer_auth(&field),
            status: 400,
            code: "invalid_path",
        },
        Case {
            what: "a malformed month",
            request: app
                .get("/api/v1/inventory?level=city&month=2020-13")
                .bearer_auth(&app.token(CITY_ADMIN).await),
            status: 400,
            code: "invalid_query",
        },
        Case {
            what: "a limit out of range",
            request: app.get("/api/v1/surveys?limit=0").bearer_auth(&reviewer),
            status: 400,
            code: "invalid_query",
        },
        Case {
            what: "an unknown survey",
            request: app
                .get(&format!("/api/v1/surveys/{}", new_id()))
                .bearer_auth(&reviewer),
            status: 404,
            code: "not_found",
        },
        Case {
            what: "a survey with an unknown enum value",
            request: json_post(
                survey_path,
                &field,
                survey(&|b| b["household"]["poverty_status"] = json!("Lifted")),
            ),
            status: 422,
            code: "validation_failed",
        },
        Case {
            what: "a survey breaking many rules",
            request: json_post(
                survey_path,
                &field,
                survey(&|b| {
                    b["submission_id"] = json!("not-a-uuid");
                    b["village_code"] = json!("220881100201");
                    b["surveyed_at"] = json!("yesterday");
                    b["location"]["lat"] = json!(123.0);
                    b["household"]["household_number"] = json!("no spaces allowed");
                    b["household"]["head_name"] = json!("李四");
                    b["household"]["phone"] = json!("12345");
                    b["members"][1]["id_number"] = json!("220802197203040001");
                    b["members"][2]["birth_date"] = json!("2005-13-01");
                    b["members"][2]["relation"] = json!("head");
                    b["members"][0]["employment"]["post_type"] = json!("cleaner");
                    b["members"][0]["training"] = json!({"wanted": true, "trade": null});
                    b["photos"] = json!(["abc", "abc"]);
                    b["device"]["device_id"] = json!("");
                }),
            ),
            status: 422,
            code: "validation_failed",
        },
        Case {
            what: "a survey naming a photo never uploaded",
            request: json_post(
                survey_path,
                &field,
                survey(&|b| b["photos"] = json!(["ab12".repeat(16)])),
            ),
            status: 422,
            code: "validation_failed",
        },
        Case {
            what: "a village survey with a bad month and numbers",
            request: json_post(
                "/api/v1/surveys/villages",
                &field,
                json!({"submission_id": new_id(), "village_code": "220802100201",
                       "month": "2020-7", "surveyed_at": "2020-07-20T09:31:00+08:00",
                       "posts": [{"post_type": "cleaner", "needed": -1, "filled": 0},
                                 {"post_type": "cleaner", "needed": 1, "filled": 0}],
                       "willing_people": -3, "photos": [],
                       "device": {"device_id": "d", "app_version": "1"}}),
            ),
            status: 422,
            code: "validation_failed",
        },
        Case {
            what: "a check-in breaking rules",
            request: json_post(
                "/api/v1/checkins",
                &field,
                json!({"submission_id": new_id(), "kind": "resident_duty",
                       "village_code": "220881100201", "worker_id_number": "220802197001011234",
                       "captured_at": "noon", "location": {"lat": 0, "lon": 200, "accuracy_m": -1},
                       "mock_location": false, "photo": "xyz",
                       "device": {"device_id": "", "app_version": "1"}}),
            ),
            status: 422,
            code: "validation_failed",
        },
        Case {
            what: "a review without its reason",
            request: json_post(
                &format!("/api/v1/surveys/{first}/review"),
                &reviewer,
                json!({"decision": "reject"}),
            ),
            status: 422,
            code: "validation_failed",
        },
        Case {
            what: "a stale review",
            request: json_post(
                &format!("/api/v1/surveys/{first}/review"),
                &reviewer,
                json!({"decision": "approve", "seen_version": 7}),
            ),
            status: 409,
            code: "stale_review",
        },
        Case {
            what: "a bulk review with both ids and filter",
            request: json_post(
                "/api/v1/reviews/bulk",
                &reviewer,
                json!({"decision": "approve", "ids": [first], "filter": {}}),
            ),
            status: 422,
            code: "validation_failed",
        },
        Case {
            what: "a decision on a pair never flagged",
            request: json_post(
                &format!("/api/v1/duplicates/{}/{}", new_id(), new_id()),
                &reviewer,
                json!({"action": "keep_apart", "reason": "不同户"}),
            ),
            status: 404,
            code: "not_found",
        },
        Case {
            what: "a pair named by something else than ids",
            request: json_post(
                "/api/v1/duplicates/a/b",
                &reviewer,
                json!({"action": "keep_apart", "reason": "不同户"}),
            ),
            status: 400,
            code: "invalid_path",
        },
        Case {
            what: "a photo under a malformed hash",
            request: app
                .request(Method::PUT, "/api/v1/photos/xyz")
                .bearer_auth(&field)
                .header("content-type", "image/jpeg")
                .body("x"),
            status: 400,
            code: "invalid_path",
        },
        Case {
            what: "a photo that is no image",
            request: app
                .request(
                    Method::PUT,
                    &format!(
                        "/api/v1/photos/{}",
                        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"not a photo"))
                    ),
                )
                .bearer_auth(&field)
                .header("content-type", "image/jpeg")
                .body("not a photo"),
            status: 422,
            code: "validation_failed",
        },
        Case {
            what: "a photo that is not JPEG",
            request: app
                .request(Method::PUT, &format!("/api/v1/photos/{}", "b".repeat(64)))
                .bearer_auth(&field)
                .header("content-type", "image/png")
                .body("x"),
            status: 415,
            code: "unsupported_media_type",
        },
        Case {
            what: "a query parameter of the wrong type",
            request: app
                .get("/api/v1/checkins?month=2020-07&limit=many")
                .bearer_auth(&reviewer),
            status: 400,
            code: "invalid_query",
        },
        Case {
            what: "a control character",
            request: app
                .post("/api/v1/auth/login")
                .json(&json!({"phone": "13900000001", "password": "a\u{0}b", "device_id": "d"})),
            status: 422,
            code: "validation_failed",
        },
        Case {
            what: "an oversized body",
            request: app
                .post("/api/v1/auth/login")
                .header("content-type", "application/json")
                .body(vec![b' '; 3 * 1024 * 1024]),
            status: 413,
            code: "payload_too_large",
        },
    ];
    for case in cases {
        let response = case.request.send().await.expect(case.what);
        let body = problem(response, case.status, case.code).await;
        assert_chinese_problem(case.what, &body);
    }
}

async fn the_catalog_labels_every_rule(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let catalog: Value = app
        .get("/api/v1/catalog")
        .send()
        .await
        .expect("catalog")
        .json()
        .await
        .expect("json");
    let rules = catalog["enums"]
        .as_array()
        .expect("enums")
        .iter()
        .find(|e| e["name"] == "rule")
        .expect("the rule enum");
    let listed: Vec<(&str, &str)> = rules["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| {
            (
                v["value"].as_str().unwrap_or_default(),
                v["label"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let all = taizhang::domain::Rule::ALL;
    assert_eq!(listed.len(), all.len());
    for rule in all {
        assert!(
            listed
                .iter()
                .any(|(value, label)| *value == rule.as_str() && has_chinese(label)),
            "{} is not listed with a Chinese label",
            rule.as_str()
        );
    }
    // The document lists the same values.
    let spec: Value = serde_json::from_str(include_str!("../../mobile-api-spec/openapi.json"))
        .expect("committed spec");
    let values: Vec<&str> = spec["components"]["schemas"]["Rule"]["enum"]
        .as_array()
        .expect("Rule enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(values, all.iter().map(|r| r.as_str()).collect::<Vec<_>>());
}

/// `html` without the elements named (their content included).
fn without(html: &str, element: &str) -> String {
    let (open, close) = (format!("<{element}"), format!("</{element}>"));
    let mut kept = String::new();
    let mut tail = html;
    while let Some(start) = tail.find(&open) {
        kept.push_str(&tail[..start]);
        tail = tail[start..]
            .find(&close)
            .map_or("", |end| &tail[start + end + close.len()..]);
    }
    kept.push_str(tail);
    kept
}

/// The text of a page a person sees: no tags, scripts, styles or attributes.
fn visible_text(html: &str) -> String {
    let html = without(&without(html, "script"), "style");
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

/// Labels and placeholders a person reads inside tags.
fn attribute_texts(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    // Values of inputs and options are for the server, not for people: not checked.
    for name in ["title=\"", "placeholder=\"", "aria-label=\"", "alt=\""] {
        for part in html.split(name).skip(1) {
            out.push(part.split('"').next().unwrap_or_default().to_owned());
        }
    }
    out
}

fn assert_no_english(what: &str, html: &str) {
    let mut texts = vec![visible_text(html)];
    texts.extend(attribute_texts(html));
    for text in texts {
        let english = english_words(&text, &[]);
        let at = english
            .first()
            .and_then(|w| text.find(w.as_str()))
            .unwrap_or(0);
        let start = (0..=at.saturating_sub(120))
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        let around: String = text[start..].chars().take(240).collect();
        assert!(
            english.is_empty(),
            "{what}: English {english:?} in …{around}…"
        );
    }
}

async fn console_pages_show_no_english(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (first, _) = two_surveys(&app).await;
    // A flagged survey: its flag text shows on the survey page.
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let mut again = household_survey(
        &new_id(),
        "孙八",
        &id_number("220802", "19780808", 211),
        &[],
    );
    again["members"][2] = household_survey("x", "赵一", &id_number("220802", "19700101", 41), &[])
        ["members"][2]
        .clone();
    let flagged: Value = app
        .post("/api/v1/surveys/households")
        .bearer_auth(&field)
        .json(&again)
        .send()
        .await
        .expect("survey")
        .json()
        .await
        .expect("answer");
    let flagged = flagged["id"].as_str().expect("id").to_owned();

    let mut console = ConsoleClient::new(&app);
    let login = console.get("/console/login").await;
    assert_no_english("login page", &login.text().await.expect("page"));
    console.login(CITY_ADMIN).await;
    for path in [
        "/console/queue".to_owned(),
        "/console/queue?status=all".to_owned(),
        format!("/console/surveys/{first}"),
        format!("/console/surveys/{flagged}"),
        "/console/duplicates".to_owned(),
        "/console/attendance?month=2020-07".to_owned(),
        "/console/ledger?month=2020-07".to_owned(),
        "/console/ledger?level=village&code=220802100201&month=2020-07".to_owned(),
        "/console/months".to_owned(),
    ] {
        let response = console.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let html = response.text().await.expect("page");
        if path.ends_with(&flagged) {
            assert!(
                html.contains("也登记在洮北区平安镇平安村委会 赵一户中"),
                "the flag names the other household: {path}"
            );
        }
        assert_no_english(&path, &html);
    }
    // Error pages: bad input, a missing page, another county's ledger.
    let mut other = ConsoleClient::new(&app);
    other.login(REVIEWER_TAONAN).await;
    let survey_page = format!("/console/surveys/{first}");
    for (as_other, path, status) in [
        (false, "/console/attendance?month=2020-13", 400),
        (false, "/console/surveys/not-a-uuid", 400),
        (false, "/console/no-such-page", 404),
        (
            true,
            "/console/ledger?level=county&code=220802000000&month=2020-07",
            403,
        ),
        (true, survey_page.as_str(), 404),
    ] {
        let client = if as_other { &mut other } else { &mut console };
        let response = client.get(path).await;
        assert_eq!(response.status().as_u16(), status, "{path}");
        let html = response.text().await.expect("page");
        assert!(has_chinese(&visible_text(&html)), "{path}");
        assert_no_english(path, &html);
    }
    // A refused decision's message.
    let csrf = console.csrf().await;
    let page = console
        .submit(
            &format!("/console/surveys/{first}/review"),
            &[("csrf", &csrf), ("decision", "reject")],
        )
        .await;
    assert!(page.contains("flash error"), "{page}");
    assert_no_english("refused decision", &page);
}

both_backends!(
    every_problem_detail_is_chinese,
    the_catalog_labels_every_rule,
    console_pages_show_no_english,
);
