//! Group commit: submissions held back until they queue together, then let go as one batch. A
//! failing item inside the batch is answered with its own error and leaves nothing; the others
//! commit; a replay racing its first copy inside the batch gets the first copy's answer.

use std::time::Duration;

use chrono::Utc;
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::checkins::{checkin_body, Shot};
use crate::helpers::*;
use crate::surveys::{count_surveys, household_survey, id_number, new_id, upload};

const HOUSEHOLDS: &str = "/api/v1/surveys/households";
/// The village of `household_survey`.
const VILLAGE: &str = "220802100201";

/// Sends every request while the committers are paused, lets them go once all of them wait
/// in the queue, and gives each answer's status and body, in the order of `requests`.
async fn in_one_batch(app: &TestApp, requests: Vec<(&str, String, Value)>) -> Vec<(u16, Value)> {
    let before = app.db().group_commit_stats();
    let paused = app.db().pause_commits().expect("the committers start");
    let sent = requests.len();
    let answers = join_all(requests.iter().map(|(path, token, body)| async move {
        let response = app.post_as(token, path, body).await;
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.expect("json"))
    }));
    let release = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while app.db().group_commit_stats().queued < sent {
            assert!(
                std::time::Instant::now() < deadline,
                "only {} of {sent} submissions queued",
                app.db().group_commit_stats().queued
            );
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
        drop(paused);
    };
    let (answers, ()) = futures_util::join!(answers, release);
    let after = app.db().group_commit_stats();
    assert_eq!(
        (after.batches - before.batches, after.items - before.items),
        (1, sent as u64),
        "all {sent} submissions went in one batch"
    );
    answers
}

/// The village's households with pending surveys counted, from its ledger node (cached after
/// the first read, so a later read is fresh only if the writes bumped the village).
async fn pending_households(app: &TestApp) -> i64 {
    let token = app.token(CITY_ADMIN).await;
    village_households(app, &token, VILLAGE, "2020-07").await
}

async fn a_failing_item_and_a_racing_replay_inside_one_batch(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let enumerator = app.token(ENUMERATOR_TAOBEI).await;
    let secretary = app.token(SECRETARY_TAOBEI).await;
    let photo = upload(&app, &enumerator, "doorplate.jpg").await;

    let first = household_survey(
        &new_id(),
        "张三",
        &id_number("220802", "19700101", 123),
        std::slice::from_ref(&photo),
    );
    let other = household_survey(
        &new_id(),
        "李四",
        &id_number("220802", "19750303", 135),
        std::slice::from_ref(&photo),
    );
    // Valid in form, refused inside the write: its photo was never uploaded.
    let missing = "0".repeat(64);
    let unuploaded = household_survey(
        &new_id(),
        "王五",
        &id_number("220802", "19800505", 157),
        std::slice::from_ref(&missing),
    );
    // Refused by validation, but its id is sound: it too waits for the writer, which looks for
    // a receipt before answering 422.
    let good_id = id_number("220802", "19820707", 179);
    let bad_check = if good_id.ends_with('0') { '1' } else { '0' };
    let invalid = household_survey(
        &new_id(),
        "赵六",
        &format!("{}{bad_check}", &good_id[..17]),
        &[],
    );
    let checkin = checkin_body(
        &app,
        &secretary,
        &Shot::new(4242, Utc::now() - chrono::Duration::minutes(5)),
    )
    .await;

    let households_before = pending_households(&app).await;
    let answers = in_one_batch(
        &app,
        vec![
            (HOUSEHOLDS, enumerator.clone(), first.clone()),
            (HOUSEHOLDS, enumerator.clone(), unuploaded.clone()),
            (HOUSEHOLDS, enumerator.clone(), first.clone()),
            (HOUSEHOLDS, enumerator.clone(), invalid),
            ("/api/v1/checkins", secretary.clone(), checkin.clone()),
            (HOUSEHOLDS, enumerator.clone(), other.clone()),
        ],
    )
    .await;
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    // Which copy of `first` is stored and which replays it depends on the order the requests
    // reached the queue; one of each, with the same answer.
    let mut copies = [statuses[0], statuses[2]];
    copies.sort();
    assert_eq!(copies, [200, 201], "{statuses:?}");
    assert_eq!(answers[0].1, answers[2].1, "the replay is the first answer");
    assert_eq!(answers[0].1["id"], first["submission_id"]);
    assert_eq!(statuses[1], 422, "{:?}", answers[1].1);
    assert!(
        answers[1].1.to_string().contains("photo_missing"),
        "{}",
        answers[1].1
    );
    assert_eq!(statuses[3], 422);
    assert!(
        answers[3].1.to_string().contains("id_number_check_digit"),
        "{}",
        answers[3].1
    );
    assert_eq!(statuses[4], 201, "{:?}", answers[4].1);
    assert_eq!(statuses[5], 201, "{:?}", answers[5].1);
    assert_eq!(
        count_surveys(&app).await,
        2,
        "the failing item left nothing"
    );
    // The batch bumped the village's ledger generation: the cached node read before is not
    // served again.
    assert_eq!(pending_households(&app).await, households_before + 2);

    // The stored copy's id with other content is refused.
    let mut reused = first.clone();
    reused["household"]["poverty_status"] = json!("monitored");
    let refused = app.post_as(&enumerator, HOUSEHOLDS, &reused).await;
    problem(refused, 409, "submission_id_reused").await;

    // Nothing of the refused item was kept, not even its receipt: once its photo is there, the
    // same submission is stored.
    let mut fixed = unuploaded.clone();
    fixed["photos"] = json!([photo]);
    let stored = app.post_as(&enumerator, HOUSEHOLDS, &fixed).await;
    assert_eq!(stored.status(), 201);
    // And everything answered in the batch is stored for good: replays now answer 200.
    for (path, token, body, answer) in [
        (HOUSEHOLDS, &enumerator, &first, &answers[0].1),
        ("/api/v1/checkins", &secretary, &checkin, &answers[4].1),
        (HOUSEHOLDS, &enumerator, &other, &answers[5].1),
    ] {
        let again = app.post_as(token, path, body).await;
        assert_eq!(again.status(), 200);
        assert_eq!(&again.json::<Value>().await.expect("json"), answer);
    }
    assert_eq!(count_surveys(&app).await, 3);
}

/// Many submissions at once without a pause, each twice, so that replays race their first
/// copies across batches as well as within them: every one is stored exactly once and
/// answered, and no batch had to be taken apart.
async fn concurrent_submissions_share_transactions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let before = app.db().group_commit_stats();
    // 30 twice: under the server's 64 requests in flight per address.
    let bodies: Vec<Value> = (0..30)
        .map(|i| {
            household_survey(
                &new_id(),
                "孙七",
                &id_number(
                    "220802",
                    &format!("1960{:02}{:02}", 1 + i / 28, 1 + i % 28),
                    111,
                ),
                &[],
            )
        })
        .collect();
    // Each sent twice, so that replays race their first copies across batches too.
    let answers = join_all(bodies.iter().chain(bodies.iter()).map(|body| {
        let (app, token) = (&app, &token);
        async move {
            let response = app.post_as(token, HOUSEHOLDS, body).await;
            response.status().as_u16()
        }
    }))
    .await;
    assert_eq!(
        answers.iter().filter(|s| **s == 201).count(),
        30,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|s| **s == 200).count(),
        30,
        "{answers:?}"
    );
    let after = app.db().group_commit_stats();
    assert_eq!(after.items - before.items, 60);
    // SQLite's one committer meets no other writer. PostgreSQL's committers run batches side
    // by side, and two batches of one village can deadlock: the victim's item is rolled back
    // and written again alone, answered like the rest (the counts above).
    let retried = after.retried_alone - before.retried_alone;
    if matches!(backend, Backend::Sqlite) {
        assert_eq!(retried, 0);
    }
    assert_eq!(count_surveys(&app).await, 30);
    // The figures are in the metrics.
    let metrics = app
        .get("/metrics")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(&format!(
            "taizhang_group_commit_items_total {}",
            after.items
        )),
        "{metrics}"
    );
}

both_backends!(
    a_failing_item_and_a_racing_replay_inside_one_batch,
    concurrent_submissions_share_transactions
);

/// Two writers that take two rows in opposite orders, the way a reviewer's decision and a
/// batch holding its items' locks can: PostgreSQL aborts one to break the deadlock, and
/// `db::transaction` runs that one again, so both writes land and neither caller sees it.
#[test]
fn a_writer_that_a_deadlock_aborted_runs_again() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Barrier};
    use taizhang::db::{self, DatabaseUrl};

    let url = DatabaseUrl::parse(&crate::pg::fresh_database()).expect("url");
    let mut setup = url.establish().expect("db");
    for key in ["test.deadlock.a", "test.deadlock.b"] {
        db::write_setting(&mut setup, key, "0").expect("setting");
    }
    let barrier = Arc::new(Barrier::new(2));
    let runs = Arc::new(AtomicU32::new(0));
    let writer = |first: &'static str, second: &'static str| {
        let (url, barrier, runs) = (url.clone(), barrier.clone(), runs.clone());
        std::thread::spawn(move || {
            let mut conn = url.establish().expect("db");
            let mut attempt = 0;
            db::transaction(&mut conn, |conn| {
                attempt += 1;
                runs.fetch_add(1, Ordering::SeqCst);
                db::write_setting(conn, first, "1")?;
                // Only the first attempts meet: each holds its first row and wants the other's.
                if attempt == 1 {
                    barrier.wait();
                }
                db::write_setting(conn, second, "1")?;
                Ok(attempt)
            })
        })
    };
    let one = writer("test.deadlock.a", "test.deadlock.b");
    let two = writer("test.deadlock.b", "test.deadlock.a");
    let attempts = [one.join().expect("thread"), two.join().expect("thread")]
        .map(|r| r.expect("both writes land"));
    let mut sorted = attempts;
    sorted.sort_unstable();
    assert_eq!(sorted, [1, 2], "exactly one was aborted and run again");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    for key in ["test.deadlock.a", "test.deadlock.b"] {
        assert_eq!(
            db::read_setting(&mut setup, key).expect("read").as_deref(),
            Some("1")
        );
    }
}
