//! Review over HTTP: the state machine, stale decisions, bulk review, the queue, duplicate
//! resolution, the audit log and its hash chain, and who may do what where.

use diesel::prelude::*;
use reqwest::Response;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::surveys::{household_survey, id_number, new_id};

async fn post_json(app: &TestApp, token: &str, path: &str, body: &Value) -> Response {
    app.post(path)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("post")
}

async fn ok(response: Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// Submits a fresh survey of a new household (head `sequence`) and returns its answer.
async fn submit(app: &TestApp, token: &str, sequence: u32) -> Value {
    let body = household_survey(
        &new_id(),
        "王五",
        &id_number("220802", "19750505", sequence),
        &[],
    );
    ok(post_json(app, token, "/api/v1/surveys/households", &body).await).await
}

async fn decide(
    app: &TestApp,
    token: &str,
    survey: &Value,
    decision: &str,
    reason: Option<&str>,
    seen: Option<i64>,
) -> Response {
    let id = survey["id"].as_str().expect("id");
    post_json(
        app,
        token,
        &format!("/api/v1/surveys/{id}/review"),
        &json!({"decision": decision, "reason": reason, "seen_version": seen}),
    )
    .await
}

/// Action, subject, from, to, reason and request id of each entry (user creations aside).
type AuditRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn audit_rows(app: &TestApp) -> Vec<AuditRow> {
    use taizhang::db::schema::audit_log;
    let mut conn = app.settings.database.establish().expect("db");
    audit_log::table
        .filter(audit_log::subject_type.ne("user"))
        .order(audit_log::seq)
        .select((
            audit_log::action,
            audit_log::subject_id,
            audit_log::from_state,
            audit_log::to_state,
            audit_log::reason,
            audit_log::request_id,
        ))
        .load(&mut conn)
        .expect("audit rows")
}

async fn decisions_follow_the_state_machine(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let s1 = submit(&app, &field, 11).await;
    let s2 = submit(&app, &field, 13).await;
    let s3 = submit(&app, &field, 15).await;
    assert_eq!(s1["status"], "submitted");

    // submitted → approved; approving again is illegal and names the state.
    let approved = ok(decide(&app, &reviewer, &s1, "approve", None, Some(1)).await).await;
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["review_version"], 2);
    let again = problem(
        decide(&app, &reviewer, &s1, "approve", None, None).await,
        409,
        "illegal_transition",
    )
    .await;
    assert!(
        again["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("已通过"),
        "{again}"
    );

    // Rejecting needs a reason; a rejected survey cannot be approved.
    let missing = problem(
        decide(&app, &reviewer, &s2, "reject", None, None).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(missing["errors"][0]["field"], "reason");
    assert_eq!(missing["errors"][0]["rule"], "required");
    let rejected =
        ok(decide(&app, &reviewer, &s2, "reject", Some("户主签字缺失"), None).await).await;
    assert_eq!(rejected["status"], "rejected");
    problem(
        decide(&app, &reviewer, &s2, "approve", None, None).await,
        409,
        "illegal_transition",
    )
    .await;
    problem(
        decide(&app, &reviewer, &s2, "reopen", Some("再看"), None).await,
        409,
        "illegal_transition",
    )
    .await;

    // A revision request, then the enumerator's correction supersedes the survey.
    problem(
        decide(&app, &reviewer, &s3, "request_revision", Some("  "), None).await,
        422,
        "validation_failed",
    )
    .await;
    ok(decide(
        &app,
        &reviewer,
        &s3,
        "request_revision",
        Some("请补拍门牌照片"),
        None,
    )
    .await)
    .await;
    let mut correction =
        household_survey(&new_id(), "王五", &id_number("220802", "19750505", 15), &[]);
    correction["replaces"] = s3["id"].clone();
    let s4 = ok(post_json(&app, &field, "/api/v1/surveys/households", &correction).await).await;
    assert_eq!(s4["household_id"], s3["household_id"]);
    assert_eq!(s4["status"], "submitted");
    let old: Value = ok(app
        .get_as(
            &reviewer,
            &format!("/api/v1/surveys/{}", s3["id"].as_str().unwrap_or_default()),
        )
        .await)
    .await;
    assert_eq!(old["status"], "superseded");
    for decision in ["approve", "reject", "request_revision", "reopen"] {
        problem(
            decide(&app, &reviewer, &s3, decision, Some("x"), None).await,
            409,
            "illegal_transition",
        )
        .await;
    }

    // approved → reopened (reason required) → approved again, with a stale version refused.
    problem(
        decide(&app, &reviewer, &s1, "reopen", None, None).await,
        422,
        "validation_failed",
    )
    .await;
    let reopened = ok(decide(
        &app,
        &reviewer,
        &s1,
        "reopen",
        Some("收入数据存疑"),
        Some(2),
    )
    .await)
    .await;
    assert_eq!(reopened["status"], "reopened");
    problem(
        decide(&app, &reviewer, &s1, "approve", None, Some(2)).await,
        409,
        "stale_review",
    )
    .await;
    let approved = ok(decide(&app, &reviewer, &s1, "approve", None, Some(3)).await).await;
    assert_eq!(approved["review_version"], 4);

    // The enumerator's phone learns every decision, with the reviewer's name.
    let mine: Value = ok(app.get_as(&field, "/api/v1/me/submissions").await).await;
    let by_id = |id: &Value| {
        mine["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["id"] == *id)
            .cloned()
            .expect("listed")
    };
    assert_eq!(by_id(&s2["id"])["status"], "rejected");
    assert_eq!(by_id(&s2["id"])["review_comment"], "户主签字缺失");
    assert_eq!(by_id(&s2["id"])["reviewer_name"], "王秀梅");
    assert!(by_id(&s2["id"])["reviewed_by"].is_string());
    assert_eq!(by_id(&s3["id"])["status"], "superseded");
    assert_eq!(by_id(&s1["id"])["status"], "approved");
    let since = mine["next_since"].as_str().expect("next_since").to_owned();
    let nothing: Value = ok(app
        .get_as(
            &field,
            &format!("/api/v1/me/submissions?since={}", urlencode(&since)),
        )
        .await)
    .await;
    assert_eq!(nothing["items"], json!([]));

    // Every state change is in the audit log: who, from → to, why, and the request id.
    let rows = audit_rows(&app);
    let changes: Vec<(&str, Option<&str>, Option<&str>)> = rows
        .iter()
        .map(|r| (r.0.as_str(), r.2.as_deref(), r.3.as_deref()))
        .collect();
    assert_eq!(
        changes,
        [
            ("approve", Some("submitted"), Some("approved")),
            ("reject", Some("submitted"), Some("rejected")),
            (
                "request_revision",
                Some("submitted"),
                Some("revision_requested")
            ),
            ("supersede", Some("revision_requested"), Some("superseded")),
            ("reopen", Some("approved"), Some("reopened")),
            ("approve", Some("reopened"), Some("approved")),
        ]
    );
    assert_eq!(rows[1].4.as_deref(), Some("户主签字缺失"));
    assert!(
        rows.iter().all(|r| r.5.is_some()),
        "request ids recorded: {rows:?}"
    );
    let mut conn = app.settings.database.establish().expect("db");
    assert!(taizhang::audit::verify(&mut conn).is_ok());
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn two_reviewers_cannot_overwrite_each_other(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let city = app.token(CITY_ADMIN).await;
    let survey = submit(&app, &field, 21).await;
    // Both saw version 1; one approves while the other rejects, at the same moment.
    let (a, b) = tokio::join!(
        decide(&app, &reviewer, &survey, "approve", None, Some(1)),
        decide(&app, &city, &survey, "reject", Some("照片模糊"), Some(1)),
    );
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    assert!(
        statuses.contains(&200) && statuses.contains(&409),
        "{statuses:?}"
    );
    let loser = if a.status() == 409 { a } else { b };
    let body: Value = loser.json().await.expect("json");
    assert!(
        body["code"] == "stale_review" || body["code"] == "illegal_transition",
        "{body}"
    );
    assert_eq!(audit_rows(&app).len(), 1, "one decision recorded");
    // Without seen_version the second decision meets the state machine instead.
    let s2 = submit(&app, &field, 23).await;
    ok(decide(&app, &reviewer, &s2, "approve", None, None).await).await;
    problem(
        decide(&app, &city, &s2, "reject", Some("x"), None).await,
        409,
        "illegal_transition",
    )
    .await;
}

async fn bulk_review_by_ids_and_by_filter(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let other = app.token(REVIEWER_TAONAN).await;
    let mut ids = Vec::new();
    for seq in [31, 33, 35, 37, 39] {
        ids.push(submit(&app, &field, seq).await["id"].clone());
    }
    // By ids: one already decided is refused on its own, the others are decided.
    ok(decide(
        &app,
        &reviewer,
        &json!({"id": ids[0]}),
        "reject",
        Some("重复提交"),
        None,
    )
    .await)
    .await;
    let result = ok(post_json(
        &app,
        &reviewer,
        "/api/v1/reviews/bulk",
        &json!({"decision": "approve", "ids": [ids[0], ids[1]]}),
    )
    .await)
    .await;
    assert_eq!(result["decided"], 1);
    assert_eq!(result["refused"], 1);
    assert_eq!(result["items"][0]["code"], "illegal_transition");
    assert_eq!(result["items"][1]["status"], "approved");
    // Another county's reviewer names the same ids: nothing is found, nothing decided.
    let stranger = ok(post_json(
        &app,
        &other,
        "/api/v1/reviews/bulk",
        &json!({"decision": "approve", "ids": [ids[2]]}),
    )
    .await)
    .await;
    assert_eq!(stranger["items"][0]["code"], "not_found");

    // By filter: count first, then decide exactly what was counted.
    let filter = json!({"village": "220802100201"});
    let count = ok(post_json(
        &app,
        &reviewer,
        "/api/v1/reviews/bulk",
        &json!({"decision": "approve", "filter": filter, "dry_run": true}),
    )
    .await)
    .await;
    assert_eq!(count["matched"], 3);
    assert_eq!(count["decided"], 0);
    problem(
        post_json(
            &app,
            &reviewer,
            "/api/v1/reviews/bulk",
            &json!({"decision": "approve", "filter": filter}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    // The queue grew since the count: nothing is decided.
    submit(&app, &field, 41).await;
    problem(
        post_json(
            &app,
            &reviewer,
            "/api/v1/reviews/bulk",
            &json!({"decision": "approve", "filter": filter, "expected_count": 3}),
        )
        .await,
        409,
        "conflict",
    )
    .await;
    let queue: Value = ok(app
        .get_as(&reviewer, "/api/v1/surveys?needs_review=true")
        .await)
    .await;
    assert_eq!(queue["items"].as_array().expect("items").len(), 4);
    let done = ok(post_json(
        &app,
        &reviewer,
        "/api/v1/reviews/bulk",
        &json!({"decision": "approve", "filter": filter, "expected_count": 4}),
    )
    .await)
    .await;
    assert_eq!(done["decided"], 4);
    let queue: Value = ok(app
        .get_as(&reviewer, "/api/v1/surveys?needs_review=true")
        .await)
    .await;
    assert_eq!(queue["items"], json!([]));
    // A filter outside the caller's county, bad shapes.
    problem(
        post_json(
            &app,
            &other,
            "/api/v1/reviews/bulk",
            &json!({"decision": "approve", "filter": {"county": "220802000000"}, "dry_run": true}),
        )
        .await,
        403,
        "out_of_scope",
    )
    .await;
    problem(
        post_json(
            &app,
            &reviewer,
            "/api/v1/reviews/bulk",
            &json!({"decision": "approve"}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    problem(
        post_json(
            &app,
            &reviewer,
            "/api/v1/reviews/bulk",
            &json!({"decision": "approve", "ids": []}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    problem(
        post_json(
            &app,
            &reviewer,
            "/api/v1/reviews/bulk",
            &json!({"decision": "reject", "ids": [ids[2]]}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
}

async fn the_queue_is_oldest_first_with_what_a_reviewer_needs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let photo = crate::surveys::upload(&app, &field, "household.jpg").await;
    let mut first = household_survey(
        &new_id(),
        "赵大",
        &id_number("220802", "19700101", 51),
        std::slice::from_ref(&photo),
    );
    first["location"]["accuracy_m"] = json!(8.0);
    let first = ok(post_json(&app, &field, "/api/v1/surveys/households", &first).await).await;
    let second = submit(&app, &field, 53).await;
    let third = submit(&app, &field, 55).await;
    ok(decide(&app, &reviewer, &second, "approve", None, None).await).await;
    let page: Value = ok(app
        .get_as(&reviewer, "/api/v1/surveys?needs_review=true&limit=1")
        .await)
    .await;
    let item = &page["items"][0];
    assert_eq!(item["id"], first["id"]);
    assert_eq!(item["review_version"], 1);
    assert_eq!(item["accuracy_m"], 8.0);
    assert!(item["lat"].is_number() && item["lon"].is_number());
    assert_eq!(item["photos"][0]["sha256"], photo.as_str());
    assert_eq!(
        item["photos"][0]["thumbnail_url"],
        format!("/api/v1/photos/{photo}?size=thumb")
    );
    let cursor = page["next_cursor"].as_str().expect("more").to_owned();
    let next: Value = ok(app
        .get_as(
            &reviewer,
            &format!("/api/v1/surveys?needs_review=true&limit=1&cursor={cursor}"),
        )
        .await)
    .await;
    assert_eq!(
        next["items"][0]["id"], third["id"],
        "the approved one left the queue"
    );
    assert!(next["next_cursor"].is_null());
    // The thumbnail URL works for the reviewer.
    let thumb = app
        .get_as(
            &reviewer,
            item["photos"][0]["thumbnail_url"]
                .as_str()
                .unwrap_or_default(),
        )
        .await;
    assert_eq!(thumb.status(), 200);
    // Another county's reviewer has an empty queue.
    let other = app.token(REVIEWER_TAONAN).await;
    let theirs: Value = ok(app
        .get_as(&other, "/api/v1/surveys?needs_review=true")
        .await)
    .await;
    assert_eq!(theirs["items"], json!([]));
}

/// A keyless survey of 平安村 near the household `near` knows about.
fn keyless(head_sequence: u32, replaces: Option<&Value>) -> Value {
    let mut body = household_survey(
        &new_id(),
        "张三",
        &id_number("220802", "19860606", head_sequence),
        &[],
    );
    body["household"]["head_id_number"] = json!(null);
    body["location"]["lat"] = json!(45.736537 + 30.0 / 111_200.0);
    if let Some(r) = replaces {
        body["replaces"] = r["id"].clone();
    }
    body
}

fn flagged(answer: &Value) -> bool {
    answer["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .any(|f| f == "possible_duplicate")
}

async fn duplicates_are_merged_unmerged_or_kept_apart(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let stranger = app.token(REVIEWER_TAONAN).await;
    let known = ok(post_json(
        &app,
        &field,
        "/api/v1/surveys/households",
        &household_survey(
            &new_id(),
            "张三",
            &id_number("220802", "19700101", 123),
            &[],
        ),
    )
    .await)
    .await;
    let n1 = ok(post_json(
        &app,
        &field,
        "/api/v1/surveys/households",
        &keyless(301, None),
    )
    .await)
    .await;
    assert!(flagged(&n1));
    let (k, n) = (
        known["household_id"].as_str().expect("k"),
        n1["household_id"].as_str().expect("n"),
    );

    let list: Value = ok(app.get_as(&reviewer, "/api/v1/duplicates").await).await;
    assert_eq!(list["items"].as_array().expect("items").len(), 1);
    let pair = &list["items"][0];
    assert_eq!(pair["state"], "open");
    assert_eq!(pair["flagged_by_survey"], n1["id"]);
    assert!(pair["distance_m"].as_f64().expect("distance") < 40.0);
    let sides = [
        pair["a"]["household_id"].clone(),
        pair["b"]["household_id"].clone(),
    ];
    assert!(sides.contains(&json!(k)) && sides.contains(&json!(n)));
    let theirs: Value = ok(app.get_as(&stranger, "/api/v1/duplicates").await).await;
    assert_eq!(theirs["items"], json!([]));
    let path = format!("/api/v1/duplicates/{n}/{k}");
    problem(
        post_json(
            &app,
            &stranger,
            &path,
            &json!({"action": "merge", "survivor": k}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    problem(
        post_json(
            &app,
            &field,
            &path,
            &json!({"action": "merge", "survivor": k}),
        )
        .await,
        403,
        "forbidden_role",
    )
    .await;

    // Merge into the known household: one household with both versions.
    problem(
        post_json(&app, &reviewer, &path, &json!({"action": "merge"})).await,
        422,
        "validation_failed",
    )
    .await;
    problem(
        post_json(
            &app,
            &reviewer,
            &path,
            &json!({"action": "merge", "survivor": new_id()}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    problem(
        post_json(
            &app,
            &reviewer,
            &path,
            &json!({"action": "unmerge", "reason": "x"}),
        )
        .await,
        409,
        "illegal_transition",
    )
    .await;
    let merged = ok(post_json(
        &app,
        &reviewer,
        &path,
        &json!({"action": "merge", "survivor": k, "seen_version": 1}),
    )
    .await)
    .await;
    assert_eq!(merged["state"], "merged");
    assert_eq!(merged["moved_surveys"], 1);
    let survivor: Value = ok(app
        .get_as(&reviewer, &format!("/api/v1/households/{k}"))
        .await)
    .await;
    let versions: Vec<&Value> = survivor["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| &v["id"])
        .collect();
    assert_eq!(versions, [&known["id"], &n1["id"]]);
    let absorbed: Value = ok(app
        .get_as(&reviewer, &format!("/api/v1/households/{n}"))
        .await)
    .await;
    assert_eq!(absorbed["merged_into"], k);
    assert_eq!(absorbed["versions"], json!([]));
    // A correction of the absorbed household's survey lands on the survivor.
    let correction = ok(post_json(
        &app,
        &field,
        "/api/v1/surveys/households",
        &keyless(301, Some(&n1)),
    )
    .await)
    .await;
    assert_eq!(correction["household_id"], k);
    assert_eq!(correction["version"], 3);

    // Unmerge (reason required) puts the moved version back and reopens the pair.
    problem(
        post_json(&app, &reviewer, &path, &json!({"action": "unmerge"})).await,
        422,
        "validation_failed",
    )
    .await;
    problem(
        post_json(
            &app,
            &reviewer,
            &path,
            &json!({"action": "unmerge", "reason": "误合并", "seen_version": 1}),
        )
        .await,
        409,
        "stale_review",
    )
    .await;
    let unmerged = ok(post_json(
        &app,
        &reviewer,
        &path,
        &json!({"action": "unmerge", "reason": "误合并"}),
    )
    .await)
    .await;
    assert_eq!(unmerged["state"], "open");
    assert_eq!(unmerged["moved_surveys"], 1);
    let back: Value = ok(app
        .get_as(&reviewer, &format!("/api/v1/households/{n}"))
        .await)
    .await;
    assert!(back["merged_into"].is_null());
    assert_eq!(back["versions"][0]["id"], n1["id"]);
    assert_eq!(back["versions"][0]["version"], 1);

    // While the pair is open a correction of the keyless household is flagged again …
    let n2 = ok(post_json(
        &app,
        &field,
        "/api/v1/surveys/households",
        &keyless(301, Some(&n1)),
    )
    .await)
    .await;
    assert_eq!(n2["household_id"], n);
    assert!(flagged(&n2), "{n2}");
    // … once kept apart (reason required), never again.
    problem(
        post_json(&app, &reviewer, &path, &json!({"action": "keep_apart"})).await,
        422,
        "validation_failed",
    )
    .await;
    let apart = ok(post_json(
        &app,
        &reviewer,
        &path,
        &json!({"action": "keep_apart", "reason": "兄弟两户，分户居住"}),
    )
    .await)
    .await;
    assert_eq!(apart["state"], "kept_apart");
    let n3 = ok(post_json(
        &app,
        &field,
        "/api/v1/surveys/households",
        &keyless(301, Some(&n2)),
    )
    .await)
    .await;
    assert_eq!(n3["household_id"], n);
    assert!(!flagged(&n3), "{n3}");
    problem(
        post_json(
            &app,
            &reviewer,
            &path,
            &json!({"action": "merge", "survivor": k}),
        )
        .await,
        409,
        "illegal_transition",
    )
    .await;
    let open: Value = ok(app.get_as(&reviewer, "/api/v1/duplicates").await).await;
    assert_eq!(open["items"], json!([]));
    let kept: Value = ok(app
        .get_as(&reviewer, "/api/v1/duplicates?state=kept_apart")
        .await)
    .await;
    assert_eq!(kept["items"][0]["reason"], "兄弟两户，分户居住");

    let actions: Vec<String> = audit_rows(&app)
        .into_iter()
        .filter(|r| r.0 != "supersede")
        .map(|r| r.0)
        .collect();
    assert_eq!(actions, ["merge", "unmerge", "keep_apart"]);
}

async fn the_audit_log_is_append_only_and_its_chain_detects_tampering(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let city = app.token(CITY_ADMIN).await;
    for seq in [61, 63, 65] {
        let s = submit(&app, &field, seq).await;
        ok(decide(&app, &reviewer, &s, "reject", Some("材料不全"), None).await).await;
    }

    // The API: city admins only, newest first, filters, pages, CSV.
    problem(
        app.get_as(&reviewer, "/api/v1/audit").await,
        403,
        "forbidden_role",
    )
    .await;
    problem(
        app.get_as(&field, "/api/v1/audit").await,
        403,
        "forbidden_role",
    )
    .await;
    problem(
        app.get_as(&city, "/api/v1/audit?from=yesterday").await,
        400,
        "invalid_query",
    )
    .await;
    let page: Value = ok(app
        .get_as(&city, "/api/v1/audit?action=reject&limit=2")
        .await)
    .await;
    assert_eq!(page["items"].as_array().expect("items").len(), 2);
    assert_eq!(page["items"][0]["user_name"], "王秀梅");
    assert_eq!(page["items"][0]["to_state"], "rejected");
    let seqs: Vec<i64> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["seq"].as_i64().expect("seq"))
        .collect();
    assert!(seqs[0] > seqs[1], "newest first");
    let rest: Value = ok(app
        .get_as(
            &city,
            &format!(
                "/api/v1/audit?action=reject&limit=2&cursor={}",
                page["next_cursor"]
            ),
        )
        .await)
    .await;
    assert_eq!(rest["items"].as_array().expect("items").len(), 1);
    assert!(rest["next_cursor"].is_null());
    let csv = app
        .get_as(&city, "/api/v1/audit?format=csv&action=reject")
        .await;
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(csv.headers()["content-disposition"]
        .to_str()
        .unwrap_or_default()
        .contains("filename*=UTF-8''"));
    let bytes = csv.bytes().await.expect("csv");
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "BOM");
    let text = String::from_utf8(bytes[3..].to_vec()).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("序号,时间（北京时间）,操作人编号,操作人,操作"),
        "{}",
        lines[0]
    );
    assert_eq!(lines.len(), 4);
    assert!(
        lines[1].contains("退回（不通过）") && lines[1].contains("材料不全"),
        "{}",
        lines[1]
    );

    // The database refuses updates and deletes …
    let mut conn = app.settings.database.establish().expect("db");
    let total = taizhang::audit::verify(&mut conn).expect("intact");
    assert!(total >= 3);
    assert!(diesel::sql_query("UPDATE audit_log SET reason = 'x'")
        .execute(&mut conn)
        .is_err());
    assert!(diesel::sql_query("DELETE FROM audit_log")
        .execute(&mut conn)
        .is_err());
    // … and when someone with the power to lift that alters an entry, the chain shows it.
    let lift = match backend {
        Backend::Sqlite => "DROP TRIGGER audit_log_no_update",
        Backend::Postgres => "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update",
    };
    diesel::sql_query(lift)
        .execute(&mut conn)
        .expect("lift the guard");
    let target: i64 = total as i64 - 1;
    diesel::sql_query(format!(
        "UPDATE audit_log SET reason = '材料齐全' WHERE seq = {target}"
    ))
    .execute(&mut conn)
    .expect("alter");
    let broken = taizhang::audit::verify(&mut conn).expect_err("tampering found");
    let broken = broken
        .downcast::<taizhang::audit::Broken>()
        .expect("a broken chain");
    assert_eq!(broken.seq, target);

    // The command line says the same and fails.
    let url = match &app.settings.database {
        taizhang::db::DatabaseUrl::Sqlite(path) => path.display().to_string(),
        taizhang::db::DatabaseUrl::Postgres(url) => url.clone(),
    };
    let data = tempfile::tempdir().expect("data dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taizhang"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TAIZHANG_DATA_DIR", data.path())
        .env("TAIZHANG_DATABASE_URL", &url)
        .env("TAIZHANG_SECRET_KEY", TEST_SECRET)
        .args(["audit", "verify"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("breaks at entry {target}")),
        "{stderr}"
    );
    // Removing an entry instead is found too.
    diesel::sql_query(format!(
        "UPDATE audit_log SET reason = '材料不全' WHERE seq = {target}"
    ))
    .execute(&mut conn)
    .expect("restore");
    assert!(taizhang::audit::verify(&mut conn).is_ok(), "restored");
    let lift_delete = match backend {
        Backend::Sqlite => "DROP TRIGGER audit_log_no_delete",
        Backend::Postgres => "SELECT 1",
    };
    diesel::sql_query(lift_delete)
        .execute(&mut conn)
        .expect("lift");
    diesel::sql_query(format!("DELETE FROM audit_log WHERE seq = {}", target - 1))
        .execute(&mut conn)
        .expect("delete");
    let gone = taizhang::audit::verify(&mut conn).expect_err("gap found");
    assert_eq!(
        gone.downcast::<taizhang::audit::Broken>()
            .expect("broken")
            .seq,
        target - 1
    );
    let ok_out = std::process::Command::new(env!("CARGO_BIN_EXE_taizhang"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TAIZHANG_DATA_DIR", data.path())
        .env("TAIZHANG_DATABASE_URL", &url)
        .env("TAIZHANG_SECRET_KEY", TEST_SECRET)
        .args(["audit", "verify"])
        .output()
        .expect("run");
    assert!(!ok_out.status.success());
}

/// Every review endpoint against every role and scope: field roles are refused, another
/// county's reviewer finds nothing, the county's reviewer and the city may.
async fn who_may_review_what(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let secretary = app.token(SECRETARY_TAOBEI).await;
    let own = app.token(REVIEWER_TAOBEI).await;
    let stranger = app.token(REVIEWER_TAONAN).await;
    let city = app.token(CITY_ADMIN).await;
    let known = ok(post_json(
        &app,
        &field,
        "/api/v1/surveys/households",
        &household_survey(
            &new_id(),
            "张三",
            &id_number("220802", "19700101", 123),
            &[],
        ),
    )
    .await)
    .await;
    let dup = ok(post_json(
        &app,
        &field,
        "/api/v1/surveys/households",
        &keyless(401, None),
    )
    .await)
    .await;
    let (k, n) = (
        known["household_id"].as_str().expect("k"),
        dup["household_id"].as_str().expect("n"),
    );
    let survey_path = format!(
        "/api/v1/surveys/{}/review",
        known["id"].as_str().expect("id")
    );
    let pair_path = format!("/api/v1/duplicates/{k}/{n}");
    let review = json!({"decision": "approve"});
    let bulk =
        json!({"decision": "approve", "filter": {"village": "220802100201"}, "dry_run": true});
    let keep = json!({"action": "keep_apart", "reason": "两户"});

    for token in [&field, &secretary] {
        problem(
            post_json(&app, token, &survey_path, &review).await,
            403,
            "forbidden_role",
        )
        .await;
        problem(
            post_json(&app, token, "/api/v1/reviews/bulk", &bulk).await,
            403,
            "forbidden_role",
        )
        .await;
        problem(
            app.get_as(token, "/api/v1/duplicates").await,
            403,
            "forbidden_role",
        )
        .await;
        problem(
            post_json(&app, token, &pair_path, &keep).await,
            403,
            "forbidden_role",
        )
        .await;
        problem(
            app.get_as(token, "/api/v1/audit").await,
            403,
            "forbidden_role",
        )
        .await;
    }
    // The first secretary's scope has no surveys of theirs to list; the enumerator sees the
    // queue of their own villages (read only).
    let theirs: Value = ok(app
        .get_as(&field, "/api/v1/surveys?needs_review=true")
        .await)
    .await;
    assert_eq!(theirs["items"].as_array().expect("items").len(), 2);

    problem(
        post_json(&app, &stranger, &survey_path, &review).await,
        404,
        "not_found",
    )
    .await;
    problem(
        post_json(&app, &stranger, "/api/v1/reviews/bulk", &bulk).await,
        403,
        "out_of_scope",
    )
    .await;
    let none: Value = ok(app.get_as(&stranger, "/api/v1/duplicates").await).await;
    assert_eq!(none["items"], json!([]));
    problem(
        app.get_as(&stranger, "/api/v1/duplicates?county=220802000000")
            .await,
        403,
        "out_of_scope",
    )
    .await;
    problem(
        post_json(&app, &stranger, &pair_path, &keep).await,
        404,
        "not_found",
    )
    .await;
    problem(
        app.get_as(&stranger, "/api/v1/audit").await,
        403,
        "forbidden_role",
    )
    .await;
    let queue: Value = ok(app
        .get_as(&stranger, "/api/v1/surveys?needs_review=true")
        .await)
    .await;
    assert_eq!(queue["items"], json!([]));

    let counted = ok(post_json(&app, &own, "/api/v1/reviews/bulk", &bulk).await).await;
    assert_eq!(counted["matched"], 2);
    ok(app.get_as(&own, "/api/v1/duplicates").await).await;
    ok(post_json(&app, &own, &survey_path, &review).await).await;
    problem(
        app.get_as(&own, "/api/v1/audit").await,
        403,
        "forbidden_role",
    )
    .await;

    ok(post_json(&app, &city, &pair_path, &keep).await).await;
    ok(post_json(
        &app,
        &city,
        &survey_path,
        &json!({"decision": "reopen", "reason": "抽查"}),
    )
    .await)
    .await;
    ok(app.get_as(&city, "/api/v1/audit").await).await;
    ok(post_json(
        &app,
        &city,
        "/api/v1/reviews/bulk",
        &json!({"decision": "approve", "ids": [known["id"], dup["id"]]}),
    )
    .await)
    .await;
    // Bad paths are 400, not 500.
    problem(
        post_json(&app, &own, "/api/v1/surveys/not-an-id/review", &review).await,
        400,
        "invalid_path",
    )
    .await;
    problem(
        post_json(&app, &own, "/api/v1/duplicates/x/y", &keep).await,
        400,
        "invalid_path",
    )
    .await;
    problem(
        post_json(&app, &own, &survey_path, &json!({"decision": "maybe"})).await,
        422,
        "validation_failed",
    )
    .await;
}

crate::helpers::both_backends!(
    decisions_follow_the_state_machine,
    two_reviewers_cannot_overwrite_each_other,
    bulk_review_by_ids_and_by_filter,
    the_queue_is_oldest_first_with_what_a_reviewer_needs,
    duplicates_are_merged_unmerged_or_kept_apart,
    the_audit_log_is_append_only_and_its_chain_detects_tampering,
    who_may_review_what,
    a_household_in_two_pairs_is_listed_in_both,
);

async fn a_household_in_two_pairs_is_listed_in_both(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let known = ok(post_json(
        &app,
        &field,
        "/api/v1/surveys/households",
        &household_survey(
            &new_id(),
            "张三",
            &id_number("220802", "19700101", 123),
            &[],
        ),
    )
    .await)
    .await;
    // Two keyless households, 30 m north and 30 m south: each nearer the known one than the
    // other.
    let north = ok(post_json(
        &app,
        &field,
        "/api/v1/surveys/households",
        &keyless(501, None),
    )
    .await)
    .await;
    let mut south_body = keyless(503, None);
    south_body["location"]["lat"] = json!(45.736537 - 30.0 / 111_200.0);
    let south = ok(post_json(&app, &field, "/api/v1/surveys/households", &south_body).await).await;
    for answer in [&north, &south] {
        assert_eq!(
            answer["flag_details"][0]["related_household_id"],
            known["household_id"]
        );
    }
    // The two keyless ones, 60 m apart, look alike too: every look-alike is paired, not only
    // the nearest (which would depend on what had arrived when).
    let list: Value = ok(app.get_as(&reviewer, "/api/v1/duplicates").await).await;
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{list}");
    let with_known: Vec<&Value> = items
        .iter()
        .filter(|i| {
            i["a"]["household_id"] == known["household_id"]
                || i["b"]["household_id"] == known["household_id"]
        })
        .collect();
    assert_eq!(with_known.len(), 2, "{list}");
    for item in with_known {
        assert_eq!(
            [&item["a"], &item["b"]]
                .iter()
                .find(|s| s["household_id"] == known["household_id"])
                .map(|s| s["head_name"].clone()),
            Some(json!("张三"))
        );
    }
}

/// Two real server processes on one PostgreSQL: reviewers on each decide the same surveys at
/// once, and a correction races an approval. Each survey gets one decision, the audit chain
/// stays whole, and nothing fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviewers_on_two_server_processes_decide_each_survey_once() {
    let url = crate::pg::fresh_database();
    let (a, b) = (ServerProcess::start(&url), ServerProcess::start(&url));
    let client = crate::helpers::checked_client(reqwest::Client::builder());
    let field = log_in(&client, &a.address, ENUMERATOR_TAOBEI).await;
    let reviewer_a = log_in(&client, &a.address, REVIEWER_TAOBEI).await;
    let city_b = log_in(&client, &b.address, CITY_ADMIN).await;
    let mut ids = Vec::new();
    for n in 0..6u32 {
        let body = household_survey(
            &new_id(),
            "吴十",
            &id_number("220802", "19660606", 301 + 2 * n),
            &[],
        );
        let answer: Value = client
            .post(format!("{}/api/v1/surveys/households", a.address))
            .bearer_auth(&field)
            .json(&body)
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        ids.push(answer["id"].as_str().expect("id").to_owned());
    }
    // Both reviewers decide every survey at once, each naming version 1.
    let decide = |server: &ServerProcess, token: &str, id: &str, decision: &str| {
        client
            .post(format!("{}/api/v1/surveys/{id}/review", server.address))
            .bearer_auth(token)
            .json(&json!({"decision": decision, "reason": "并发", "seen_version": 1}))
            .send()
    };
    let requests = ids.iter().flat_map(|id| {
        [
            decide(&a, &reviewer_a, id, "approve"),
            decide(&b, &city_b, id, "reject"),
        ]
    });
    let statuses: Vec<u16> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.expect("response").status().as_u16())
        .collect();
    for pair in statuses.chunks(2) {
        let mut pair = pair.to_vec();
        pair.sort_unstable();
        assert_eq!(pair, [200, 409], "one decision per survey: {statuses:?}");
    }
    use diesel::prelude::*;
    let mut conn = taizhang::db::DatabaseUrl::parse(&url)
        .expect("url")
        .establish()
        .expect("db");
    let decisions: i64 = taizhang::db::schema::audit_log::table
        .filter(taizhang::db::schema::audit_log::subject_type.eq("household_survey"))
        .count()
        .get_result(&mut conn)
        .expect("count");
    assert_eq!(decisions, 6);

    // Corrections on one server race approvals on the other (the order of their locks once
    // could deadlock): every correction is stored, every approval is decided or refused.
    let field_b = log_in(&client, &b.address, ENUMERATOR_TAOBEI).await;
    let mut originals = Vec::new();
    for n in 0..6u32 {
        let body = household_survey(
            &new_id(),
            "郑十一",
            &id_number("220802", "19650505", 401 + 2 * n),
            &[],
        );
        let answer: Value = client
            .post(format!("{}/api/v1/surveys/households", a.address))
            .bearer_auth(&field)
            .json(&body)
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        originals.push((body, answer["id"].as_str().expect("id").to_owned()));
    }
    let mut approvals = Vec::new();
    let mut corrections = Vec::new();
    for (body, id) in &originals {
        approvals.push(
            client
                .post(format!("{}/api/v1/surveys/{id}/review", a.address))
                .bearer_auth(&reviewer_a)
                .json(&json!({"decision": "approve"}))
                .send(),
        );
        let mut correction = body.clone();
        correction["submission_id"] = json!(new_id());
        correction["replaces"] = json!(id);
        corrections.push(
            client
                .post(format!("{}/api/v1/surveys/households", b.address))
                .bearer_auth(&field_b)
                .json(&correction)
                .send(),
        );
    }
    let (approved, corrected) = tokio::join!(
        futures_util::future::join_all(approvals),
        futures_util::future::join_all(corrections)
    );
    for r in approved {
        let status = r.expect("response").status().as_u16();
        assert!(status == 200 || status == 409, "approval: {status}");
    }
    for r in corrected {
        assert_eq!(r.expect("response").status().as_u16(), 201, "correction");
    }
    let superseded: i64 = taizhang::db::schema::household_surveys::table
        .filter(taizhang::db::schema::household_surveys::status.eq("superseded"))
        .count()
        .get_result(&mut conn)
        .expect("count");
    assert_eq!(superseded, 6, "every original replaced");
    assert!(taizhang::audit::verify(&mut conn).is_ok());
}
