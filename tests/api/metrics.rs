//! `/metrics`: the content type each format needs, chosen by `Accept`, a 0.0.4 text that a
//! 0.0.4 parser reads as meant, and every domain series moving when its event happens.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::checkins::{checkin_body, post as post_checkin, Shot};
use crate::helpers::*;
use crate::surveys::{household_survey, id_number, new_id, upload};

const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// What Prometheus 2.x and 3.x send when scraping.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

async fn scrape(app: &TestApp, accept: Option<&str>) -> (String, String, String) {
    let mut request = app.get("/metrics");
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("scrape");
    assert_eq!(response.status(), 200);
    let (content_type, vary) = (
        header_of(&response, "content-type"),
        header_of(&response, "vary"),
    );
    (content_type, vary, response.text().await.expect("text"))
}

async fn metrics(app: &TestApp) -> String {
    scrape(app, None).await.2
}

/// The value of one series (`name{labels}` exactly as exposed), if it is there.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

fn count(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
}

/// Checks the text against the 0.0.4 format's rules: only 0.0.4 comments and types, and
/// every sample named as its family's TYPE line says (a histogram's with its suffixes).
fn assert_prometheus_text(text: &str) {
    let mut types: HashMap<&str, &str> = HashMap::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            match words.next() {
                Some("HELP") => {}
                Some("TYPE") => {
                    let name = words.next().expect("TYPE name");
                    let kind = words.next().expect("TYPE kind");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "not a 0.0.4 type: {line}"
                    );
                    assert!(types.insert(name, kind).is_none(), "declared twice: {name}");
                }
                other => panic!("not a 0.0.4 comment ({other:?}): {line}"),
            }
            continue;
        }
        assert!(!line.is_empty(), "an empty line");
        let name = line.split(['{', ' ']).next().expect("a sample has a name");
        let family = types.get(name).copied().or_else(|| {
            ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
                name.strip_suffix(suffix)
                    .and_then(|base| types.get(base).copied())
                    .filter(|kind| *kind == "histogram")
            })
        });
        assert!(
            family.is_some(),
            "{name} has no TYPE line of its own: {line}"
        );
        // Value, and no exemplar or anything after it.
        let after_labels = match line.rsplit_once('}') {
            Some((_, rest)) => rest,
            None => line.split_once(' ').map_or("", |(_, rest)| rest),
        };
        let fields: Vec<&str> = after_labels.split_whitespace().collect();
        assert!(
            matches!(fields.len(), 1 | 2) && fields.iter().all(|f| f.parse::<f64>().is_ok()),
            "not a 0.0.4 sample: {line}"
        );
    }
    assert!(types.contains_key("taizhang_http_requests_total"));
}

async fn the_format_follows_accept(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.get("/healthz").send().await.expect("r");

    for accept in [
        None,
        Some("*/*"),
        Some("text/plain"),
        Some("application/json"),
    ] {
        let (content_type, vary, text) = scrape(&app, accept).await;
        assert_eq!(content_type, PROMETHEUS, "{accept:?}");
        assert_eq!(vary, "Accept");
        assert!(!text.contains("# EOF"), "{accept:?}: {text}");
        assert!(!text.contains("# UNIT"));
        assert_prometheus_text(&text);
        assert!(text.contains("# TYPE taizhang_http_requests_total counter\n"));
        assert!(text.contains(
            r#"taizhang_http_requests_total{method="GET",route="/healthz",status="200"} 1"#
        ));
    }

    for accept in [
        PROMETHEUS_ACCEPT,
        "application/openmetrics-text",
        "application/openmetrics-text; version=1.0.0",
    ] {
        let (content_type, vary, text) = scrape(&app, Some(accept)).await;
        assert_eq!(content_type, OPENMETRICS, "{accept}");
        assert_eq!(vary, "Accept");
        assert!(text.ends_with("# EOF\n"), "{text}");
        // OpenMetrics names a counter's family without `_total`.
        assert!(text.contains("# TYPE taizhang_http_requests counter\n"));
    }
    // Plain text preferred over OpenMetrics, or OpenMetrics refused.
    for accept in [
        "text/plain;version=0.0.4,application/openmetrics-text;q=0.5",
        "application/openmetrics-text;q=0",
    ] {
        assert_eq!(scrape(&app, Some(accept)).await.0, PROMETHEUS, "{accept}");
    }

    // Build info: the package version and a commit (`unknown` outside a git checkout).
    let text = metrics(&app).await;
    let build = text
        .lines()
        .find(|l| l.starts_with("taizhang_build_info{"))
        .unwrap_or_else(|| panic!("no build info in:\n{text}"));
    assert!(
        build.starts_with(&format!(
            "taizhang_build_info{{version=\"{}\",commit=\"",
            env!("CARGO_PKG_VERSION")
        )),
        "{build}"
    );
    assert!(build.ends_with("\"} 1"), "{build}");
    assert!(!build.contains("commit=\"\""), "{build}");
}

fn submissions(kind: &str, outcome: &str) -> String {
    format!(r#"taizhang_submissions_total{{kind="{kind}",outcome="{outcome}"}}"#)
}

fn flags(kind: &str, flag: &str) -> String {
    format!(r#"taizhang_flags_raised_total{{kind="{kind}",flag="{flag}"}}"#)
}

const QUEUE_TAOBEI: &str = r#"taizhang_review_queue_depth{county="220802000000"}"#;

async fn submissions_flags_and_the_review_queue_are_counted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let text = metrics(&app).await;
    // Every kind and outcome is there from the start, at zero.
    for kind in ["household_survey", "village_survey", "checkin"] {
        for outcome in ["stored", "replayed", "refused", "id_reused", "failed"] {
            assert_eq!(count(&text, &submissions(kind, outcome)), 0.0);
        }
    }
    assert_eq!(count(&text, &flags("checkin", "poor_accuracy")), 0.0);
    assert_eq!(value(&text, QUEUE_TAOBEI), None);

    let post = |body: Value| {
        app.post("/api/v1/surveys/households")
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    // Stored, replayed, the id reused with other content.
    let head = id_number("220802", "19700101", 123);
    let survey = household_survey(&new_id(), "张三", &head, &[]);
    assert_eq!(post(survey.clone()).await.expect("r").status(), 201);
    assert_eq!(post(survey.clone()).await.expect("r").status(), 200);
    let mut other = survey.clone();
    other["household"]["relocated"] = json!(true);
    problem(post(other).await.expect("r"), 409, "submission_id_reused").await;
    // Refused: a validation rule, and a body that does not parse as a survey.
    let mut invalid = household_survey(&new_id(), "张三", &head, &[]);
    invalid["village_code"] = json!("220881100200");
    assert_eq!(post(invalid).await.expect("r").status(), 422);
    let mut unknown = household_survey(&new_id(), "张三", &head, &[]);
    unknown["household"]["poverty_status"] = json!("Lifted");
    problem(post(unknown).await.expect("r"), 422, "validation_failed").await;

    // A keyless survey of a look-alike household 50 m away: flagged `possible_duplicate`.
    let mut keyless = household_survey(
        &new_id(),
        "张三",
        &id_number("220802", "19860606", 231),
        &[],
    );
    keyless["household"]["head_id_number"] = json!(null);
    keyless["location"]["lat"] = json!(45.736537 + 50.0 / 111_200.0);
    let answer: Value = post(keyless).await.expect("r").json().await.expect("json");
    assert_eq!(answer["flags"], json!(["possible_duplicate"]), "{answer}");

    // A check-in whose position is 500 m uncertain: stored, flagged `poor_accuracy`.
    let mut shot = Shot::new(7, chrono::Utc::now() - chrono::Duration::minutes(5));
    shot.accuracy = 500.0;
    let body = checkin_body(&app, &token, &shot).await;
    let answer: Value = post_checkin(&app, &token, &body)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(answer["flags"], json!(["poor_accuracy"]), "{answer}");
    // A city administrator may not check in: refused.
    let admin = app.token(CITY_ADMIN).await;
    let mut again = body.clone();
    again["submission_id"] = json!(new_id());
    problem(
        post_checkin(&app, &admin, &again).await,
        403,
        "forbidden_role",
    )
    .await;

    let text = metrics(&app).await;
    for (series, expected) in [
        (submissions("household_survey", "stored"), 2.0),
        (submissions("household_survey", "replayed"), 1.0),
        (submissions("household_survey", "id_reused"), 1.0),
        (submissions("household_survey", "refused"), 2.0),
        (submissions("household_survey", "failed"), 0.0),
        (submissions("checkin", "stored"), 1.0),
        (submissions("checkin", "refused"), 1.0),
        (submissions("village_survey", "stored"), 0.0),
        (flags("household_survey", "possible_duplicate"), 1.0),
        (
            flags("household_survey", "person_in_multiple_households"),
            0.0,
        ),
        (flags("checkin", "poor_accuracy"), 1.0),
        (flags("checkin", "outside_geofence"), 0.0),
        (QUEUE_TAOBEI.to_owned(), 2.0),
    ] {
        assert_eq!(count(&text, &series), expected, "{series}");
    }
    // The replay counted no flags a second time, and 洮南市 has nothing in its queue.
    assert_eq!(
        value(
            &text,
            r#"taizhang_review_queue_depth{county="220881000000"}"#
        ),
        None
    );

    // A decision takes a survey out of the queue.
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let decided = app
        .post(&format!(
            "/api/v1/surveys/{}/review",
            survey["submission_id"].as_str().expect("id")
        ))
        .bearer_auth(&reviewer)
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .expect("review");
    assert_eq!(decided.status(), 200);
    assert_eq!(count(&metrics(&app).await, QUEUE_TAOBEI), 1.0);
}

const STALE_CURRENT: &str = r#"taizhang_ledger_stale_villages{month="current"}"#;
const STALE_PREVIOUS: &str = r#"taizhang_ledger_stale_villages{month="previous"}"#;
const LAG: &str = "taizhang_ledger_recompute_lag_seconds";

async fn the_ledger_backlog_and_lag_follow_recomputation(backend: Backend) {
    // No background warmer: only the reads below recompute.
    let app = TestApp::spawn_with(backend, |s| s.ledger_warm_interval = None).await;
    let text = metrics(&app).await;
    assert_eq!(count(&text, STALE_CURRENT), 0.0);
    assert_eq!(count(&text, STALE_PREVIOUS), 0.0);
    assert_eq!(count(&text, LAG), 0.0);

    let token = app.token(ENUMERATOR_TAOBEI).await;
    let survey = household_survey(
        &new_id(),
        "张三",
        &id_number("220802", "19700101", 123),
        &[],
    );
    let stored = app
        .post("/api/v1/surveys/households")
        .bearer_auth(&token)
        .json(&survey)
        .send()
        .await
        .expect("survey");
    assert_eq!(stored.status(), 201);
    let text = metrics(&app).await;
    // One village changed: its figures of both months await recomputation.
    assert_eq!(count(&text, STALE_CURRENT), 1.0);
    assert_eq!(count(&text, STALE_PREVIOUS), 1.0);
    assert!(count(&text, LAG) > 0.0, "{text}");

    // Reading the city's figures of both months recomputes the village.
    let admin = app.token(CITY_ADMIN).await;
    let current = taizhang::domain::Month::current();
    let previous = current.previous();
    for month in [&current, &previous] {
        let read = app
            .get_as(
                &admin,
                &format!("/api/v1/inventory?level=city&month={month}"),
            )
            .await;
        assert_eq!(read.status(), 200, "{month}");
    }
    let text = metrics(&app).await;
    assert_eq!(count(&text, STALE_CURRENT), 0.0);
    assert_eq!(count(&text, STALE_PREVIOUS), 0.0);
    assert_eq!(count(&text, LAG), 0.0);
}

async fn photo_store_errors_are_counted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let put = r#"taizhang_photo_store_errors_total{operation="put"}"#;
    let check = r#"taizhang_photo_store_errors_total{operation="check"}"#;
    let text = metrics(&app).await;
    assert_eq!(count(&text, put), 0.0);
    assert_eq!(count(&text, check), 0.0);
    // A photo that stores fine counts nothing.
    upload(&app, &token, "doorplate.jpg").await;
    assert_eq!(count(&metrics(&app).await, put), 0.0);

    // The photo directory becomes a file: nothing can be stored under it.
    let dir = match &app.settings.photos.store {
        taizhang::photos::PhotoStoreConfig::Disk(dir) => dir.clone(),
        other => panic!("a disk store is expected, not {}", other.describe()),
    };
    std::fs::remove_dir_all(&dir).expect("remove the photo directory");
    std::fs::write(&dir, b"not a directory").expect("a file in its place");
    let bytes = photo_fixture("household.jpg");
    let sha = sha256_hex(&bytes);
    let refused = app.put_photo(&token, &sha, bytes).await;
    assert!(refused.status().is_server_error(), "{}", refused.status());
    let ready = app.get("/readyz").send().await.expect("readyz");
    assert_eq!(ready.status(), 503);
    let text = metrics(&app).await;
    assert_eq!(count(&text, put), 1.0, "{text}");
    assert_eq!(count(&text, check), 1.0);
}

both_backends!(
    the_format_follows_accept,
    submissions_flags_and_the_review_queue_are_counted,
    the_ledger_backlog_and_lag_follow_recomputation,
    photo_store_errors_are_counted,
);
