//! The download channel `GET /api/v1/sync`: a first sync, incremental syncs after a survey and
//! a review, paging that delivers every item once even with a write between pages, tombstones
//! after a merge and revival after an unmerge, scope, bad cursors, roles and gzip.

use std::collections::BTreeMap;

use reqwest::Response;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::surveys::{household_survey, id_number, new_id};

async fn ok(response: Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert!(status.is_success(), "{status}: {body}");
    body
}

async fn post_json(app: &TestApp, token: &str, path: &str, body: &Value) -> Response {
    app.post(path)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("post")
}

async fn submit(app: &TestApp, token: &str, body: &Value) -> Value {
    ok(post_json(app, token, "/api/v1/surveys/households", body).await).await
}

fn survey(sequence: u32) -> Value {
    household_survey(
        &new_id(),
        "王五",
        &id_number("220802", "19750505", sequence),
        &[],
    )
}

fn sync_path(cursor: Option<&str>, limit: Option<u32>) -> String {
    let mut query = Vec::new();
    if let Some(c) = cursor {
        query.push(format!("cursor={c}"));
    }
    if let Some(l) = limit {
        query.push(format!("limit={l}"));
    }
    format!("/api/v1/sync?{}", query.join("&"))
}

pub(crate) async fn sync(app: &TestApp, token: &str, cursor: Option<&str>) -> Value {
    ok(app.get_as(token, &sync_path(cursor, None)).await).await
}

pub(crate) fn household_ids(page: &Value) -> Vec<String> {
    page["households"]
        .as_array()
        .expect("households")
        .iter()
        .map(|h| h["household_id"].as_str().expect("id").to_owned())
        .collect()
}

pub(crate) fn cursor_of(page: &Value) -> String {
    page["cursor"].as_str().expect("cursor").to_owned()
}

fn assert_quiet(page: &Value) {
    for list in [
        "villages",
        "villages_removed",
        "households",
        "known_households",
        "tombstones",
        "submissions",
        "employers",
    ] {
        assert_eq!(page[list], json!([]), "{list} in {page}");
    }
    assert_eq!(page["has_more"], false);
}

async fn first_and_incremental_syncs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let a = submit(&app, &field, &survey(11)).await;
    let b = submit(&app, &field, &survey(13)).await;

    let first = sync(&app, &field, None).await;
    assert_eq!(first["has_more"], false);
    let villages: Vec<&Value> = first["villages"]
        .as_array()
        .expect("villages")
        .iter()
        .map(|v| &v["code"])
        .collect();
    assert_eq!(villages, [&json!("220802100200"), &json!("220802100201")]);
    assert!(first["villages"][1]["geofence"]["type"].is_string());
    assert!(!first["villages"][1]["county_name"]
        .as_str()
        .unwrap_or_default()
        .is_empty());
    let mut ids = household_ids(&first);
    ids.sort();
    let mut expected = vec![
        a["household_id"].as_str().expect("a").to_owned(),
        b["household_id"].as_str().expect("b").to_owned(),
    ];
    expected.sort();
    assert_eq!(ids, expected);
    let h = &first["households"][0];
    assert_eq!(h["version"], 1);
    assert_eq!(h["status"], "submitted");
    assert_eq!(h["phone"], "138****0000");
    assert_eq!(h["village_code"], "220802100201");
    let members = h["members"].as_array().expect("members");
    assert_eq!(members.len(), 4);
    let refs: std::collections::HashSet<&str> = members
        .iter()
        .map(|m| m["person_ref"].as_str().expect("person_ref"))
        .collect();
    assert_eq!(refs.len(), 4, "one token a member");
    for m in members {
        assert!(m["id_number"]
            .as_str()
            .expect("masked")
            .contains("********"));
        assert!(m.get("worker_ref").is_none());
    }
    assert_eq!(members[0]["training"]["trade"], "electrician");
    assert_eq!(first["submissions"].as_array().expect("subs").len(), 2);
    assert_eq!(first["tombstones"], json!([]));

    // Nothing changed: nothing sent, the cursor stands.
    let quiet = sync(&app, &field, Some(&cursor_of(&first))).await;
    assert_quiet(&quiet);

    // A new survey: that household only.
    let c = submit(&app, &field, &survey(15)).await;
    let next = sync(&app, &field, Some(&cursor_of(&quiet))).await;
    assert_eq!(
        household_ids(&next),
        [c["household_id"].as_str().expect("c")]
    );
    assert_eq!(next["villages"], json!([]));
    assert_eq!(next["submissions"][0]["submission_id"], c["id"]);

    // A review: the household again, and the caller's submission with its comment.
    let rejected = post_json(
        &app,
        &reviewer,
        &format!("/api/v1/surveys/{}/review", a["id"].as_str().expect("id")),
        &json!({"decision": "reject", "reason": "照片不清楚"}),
    )
    .await;
    ok(rejected).await;
    let reviewed = sync(&app, &field, Some(&cursor_of(&next))).await;
    assert_eq!(
        household_ids(&reviewed),
        [a["household_id"].as_str().expect("a")]
    );
    let sub = &reviewed["submissions"][0];
    assert_eq!(sub["submission_id"], a["id"]);
    assert_eq!(sub["kind"], "household_survey");
    assert_eq!(sub["status"], "rejected");
    assert_eq!(sub["review_comment"], "照片不清楚");
    assert_eq!(sub["version"], 1);
    assert_quiet(&sync(&app, &field, Some(&cursor_of(&reviewed))).await);

    // A first secretary of the village sees its households, but no one else's submissions.
    let secretary = app.token(SECRETARY_TAOBEI).await;
    let theirs = sync(&app, &secretary, None).await;
    assert_eq!(household_ids(&theirs).len(), 3);
    assert_eq!(theirs["submissions"], json!([]));
}

async fn pages_deliver_everything_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let mut expected = Vec::new();
    for sequence in [21, 23, 25, 27, 29] {
        let answer = submit(&app, &field, &survey(sequence)).await;
        expected.push(answer["household_id"].as_str().expect("id").to_owned());
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut villages = 0;
    let mut cursor: Option<String> = None;
    let mut late = None;
    let mut pages = 0;
    loop {
        let page = ok(app
            .get_as(&field, &sync_path(cursor.as_deref(), Some(2)))
            .await)
        .await;
        pages += 1;
        let items = page["households"].as_array().expect("h").len()
            + page["villages"].as_array().expect("v").len();
        assert!(items <= 2, "{page}");
        villages += page["villages"].as_array().expect("v").len();
        for id in household_ids(&page) {
            *seen.entry(id).or_default() += 1;
        }
        cursor = Some(cursor_of(&page));
        if pages == 1 {
            // A write between pages waits for the next sync.
            let answer = submit(&app, &field, &survey(31)).await;
            late = Some(answer["household_id"].as_str().expect("id").to_owned());
        }
        if page["has_more"] == false {
            break;
        }
        assert!(pages < 20, "paging ends");
    }
    assert!(pages >= 3);
    assert_eq!(villages, 2);
    expected.sort();
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), expected);
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    let next = sync(&app, &field, cursor.as_deref()).await;
    assert_eq!(household_ids(&next), [late.expect("late")]);
}

fn keyless() -> Value {
    let mut body = household_survey(
        &new_id(),
        "张三",
        &id_number("220802", "19860606", 301),
        &[],
    );
    body["household"]["head_id_number"] = json!(null);
    body["location"]["lat"] = json!(45.736537 + 30.0 / 111_200.0);
    body
}

async fn merges_leave_tombstones_and_unmerges_revive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let reviewer = app.token(REVIEWER_TAOBEI).await;
    let known = submit(
        &app,
        &field,
        &household_survey(
            &new_id(),
            "张三",
            &id_number("220802", "19700101", 123),
            &[],
        ),
    )
    .await;
    let lookalike = submit(&app, &field, &keyless()).await;
    let (k, n) = (
        known["household_id"].as_str().expect("k").to_owned(),
        lookalike["household_id"].as_str().expect("n").to_owned(),
    );
    let before = sync(&app, &field, None).await;
    assert_eq!(household_ids(&before).len(), 2);

    let path = format!("/api/v1/duplicates/{n}/{k}");
    ok(post_json(
        &app,
        &reviewer,
        &path,
        &json!({"action": "merge", "survivor": k}),
    )
    .await)
    .await;
    let merged = sync(&app, &field, Some(&cursor_of(&before))).await;
    assert_eq!(
        merged["tombstones"],
        json!([{"household_id": n, "village_code": "220802100201", "reason": "merged", "into_household_id": k}])
    );
    assert_eq!(
        household_ids(&merged),
        [k.as_str()],
        "the absorbed is never alive"
    );
    assert_eq!(merged["households"][0]["version"], 2);

    // A first sync after the merge has nothing to drop and never the absorbed household.
    let fresh = sync(&app, &field, None).await;
    assert_eq!(household_ids(&fresh), [k.as_str()]);
    assert_eq!(fresh["tombstones"], json!([]));

    ok(post_json(
        &app,
        &reviewer,
        &path,
        &json!({"action": "unmerge", "reason": "误合并"}),
    )
    .await)
    .await;
    let revived = sync(&app, &field, Some(&cursor_of(&merged))).await;
    let mut ids = household_ids(&revived);
    ids.sort();
    let mut both = vec![k.clone(), n.clone()];
    both.sort();
    assert_eq!(ids, both);
    assert_eq!(revived["tombstones"], json!([]));
}

async fn scope_is_the_callers_villages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let other = app.token(ENUMERATOR_TAONAN).await;
    let mut theirs = household_survey(&new_id(), "赵六", &id_number("220881", "19800808", 41), &[]);
    theirs["village_code"] = json!("220881100200");
    theirs["location"] = json!({"lat": 45.34, "lon": 122.78, "accuracy_m": 10.0, "crs": "wgs84"});
    let elsewhere = submit(&app, &other, &theirs).await;
    let ours = submit(&app, &field, &survey(43)).await;
    let first = sync(&app, &field, None).await;
    assert_eq!(
        household_ids(&first),
        [ours["household_id"].as_str().expect("ours")]
    );
    let them = sync(&app, &other, None).await;
    assert_eq!(
        household_ids(&them),
        [elsewhere["household_id"].as_str().expect("theirs")]
    );

    // A village taken away is named once.
    {
        use diesel::prelude::*;
        use taizhang::db::schema::{user_villages, users};
        let mut conn = app.settings.database.establish().expect("db");
        let user: String = users::table
            .filter(users::phone.eq(ENUMERATOR_TAOBEI.phone))
            .select(users::id)
            .first(&mut conn)
            .expect("user");
        diesel::delete(
            user_villages::table
                .filter(user_villages::user_id.eq(&user))
                .filter(user_villages::village_code.eq("220802100200")),
        )
        .execute(&mut conn)
        .expect("unassign");
    }
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let removed = sync(&app, &field, Some(&cursor_of(&first))).await;
    assert_eq!(removed["villages_removed"], json!(["220802100200"]));
    assert_eq!(removed["households"], json!([]));
    assert_quiet(&sync(&app, &field, Some(&cursor_of(&removed))).await);
}

async fn bad_cursors_and_roles_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let field = app.token(ENUMERATOR_TAOBEI).await;
    let secretary = app.token(SECRETARY_TAOBEI).await;
    let first = sync(&app, &field, None).await;
    let cursor = cursor_of(&first);
    for bad in [
        "garbage".to_owned(),
        format!("x{cursor}"),
        format!("{cursor}A"),
    ] {
        let refused = problem(
            app.get_as(&field, &sync_path(Some(&bad), None)).await,
            400,
            "invalid_query",
        )
        .await;
        assert_eq!(refused["field"], "cursor");
    }
    // Another user's cursor is not theirs.
    let refused = problem(
        app.get_as(&secretary, &sync_path(Some(&cursor), None))
            .await,
        400,
        "invalid_query",
    )
    .await;
    assert_eq!(refused["field"], "cursor");
    for limit in [0, 2001] {
        let refused = problem(
            app.get_as(&field, &sync_path(None, Some(limit))).await,
            400,
            "invalid_query",
        )
        .await;
        assert_eq!(refused["field"], "limit");
    }
    for user in [REVIEWER_TAOBEI, CITY_ADMIN] {
        let token = app.token(user).await;
        problem(
            app.get_as(&token, "/api/v1/sync").await,
            403,
            "forbidden_role",
        )
        .await;
    }
}

both_backends!(
    first_and_incremental_syncs,
    pages_deliver_everything_once,
    merges_leave_tombstones_and_unmerges_revive,
    scope_is_the_callers_villages,
    bad_cursors_and_roles_are_refused,
);

/// The download travels gzip-compressed when the phone accepts it.
#[actix_web::test]
async fn sync_is_compressed_on_request() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    for sequence in [51, 53, 55] {
        submit(&app, &token, &survey(sequence)).await;
    }
    let raw = reqwest::Client::builder()
        .no_proxy()
        .gzip(false)
        .build()
        .expect("client");
    let response = raw
        .get(format!("{}/api/v1/sync", app.address))
        .bearer_auth(&token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("r");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let compressed = response.bytes().await.expect("body").len();
    let plain = app
        .get_as(&token, "/api/v1/sync")
        .await
        .bytes()
        .await
        .expect("body")
        .len();
    assert!(compressed * 2 < plain, "{compressed} vs {plain}");
}
