//! The field simulator against the real server: a small month must pass the truth check on
//! both databases, the check must catch a planted discrepancy, and a server killed with
//! SIGKILL in the middle of the month and restarted on the same data must lose nothing.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use taizhang::simulate::world::{Payload, Review};
use taizhang::simulate::{Options, Simulation};

use crate::helpers::*;
use crate::server_process::{spawn, Spawned};

fn small(servers: Vec<String>, seed: u64) -> Options {
    let mut o = Options::new(servers);
    o.villages = 5;
    o.days = 12;
    o.households_per_village = 6;
    o.concurrency = 8;
    o.fault_rate = 0.12;
    o.seed = seed;
    o.give_up_after = Duration::from_secs(60);
    o.photo_width = 160;
    o
}

/// The run must have met what it is meant to test, or passing proves nothing.
fn assert_not_vacuous(sim: &Simulation) {
    let planted = sim.world.planted();
    for kind in [
        "outside_geofence",
        "poor_accuracy",
        "mock_location",
        "photo_reused",
        "impossible_travel",
        "possible_duplicate",
        "correction",
        "sent_twice",
    ] {
        assert!(
            planted.get(kind).copied().unwrap_or(0) > 0,
            "nothing planted of {kind}: {planted:?}"
        );
    }
    let s = &sim.stats;
    let count = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    assert_eq!(count(&s.gave_up), 0, "a phone gave something up");
    assert!(count(&s.dropped_answers) > 0, "no answer was lost");
    assert!(count(&s.replayed) > 0, "no replay was answered");
    assert!(count(&s.refreshes) > 0, "no token was refreshed");
    assert!(
        count(&s.photos_present) > 0,
        "no photo was found already there"
    );
    let receipts = sim.truth.receipts.lock().expect("receipts").clone();
    assert!(
        receipts.iter().all(|r| r.acked),
        "every planned submission is acknowledged in the end"
    );
    let stale = receipts
        .iter()
        .filter(|r| r.expect.must.contains("stale_time"))
        .count();
    let on_time = receipts
        .iter()
        .zip(&sim.world.items)
        .filter(|(r, i)| {
            matches!(i.payload, Payload::Checkin(_)) && r.acked && r.expect.must.is_empty()
        })
        .count();
    assert!(stale > 0 && on_time > 0, "stale {stale}, clean {on_time}");
}

async fn simulated_month_passes_the_truth_check(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut sim = Simulation::prepare(small(vec![app.address.clone()], 7))
        .await
        .expect("prepare");
    sim.play().await.expect("play");
    let found = sim.check().await.expect("check");
    let summary = sim.summary(&found);
    assert!(found.is_empty(), "{summary}");
    assert_not_vacuous(&sim);

    // Corrupt the server behind the simulator's back: the check must notice. A reviewer
    // reopens an approved survey (its household leaves the approved ledger)…
    let token = app.token(CITY_ADMIN).await;
    // A household surveyed once, approved: reopening it changes the approved figures.
    let versions = |h: usize| {
        sim.world
            .items
            .iter()
            .filter(|o| matches!(&o.payload, Payload::Household(s) if s.household == h))
            .count()
    };
    let reopened = sim
        .world
        .items
        .iter()
        .enumerate()
        .find(|(i, item)| {
            matches!(&item.payload, Payload::Household(s) if s.review == Review::Approve && versions(s.household) == 1)
                && sim.truth.receipt(*i).acked
        })
        .map(|(_, item)| item.id.clone())
        .expect("an approved survey");
    let response = app
        .post(&format!("/api/v1/surveys/{reopened}/review"))
        .bearer_auth(&token)
        .json(&json!({"decision": "reopen", "reason": "抽查"}))
        .send()
        .await
        .expect("reopen");
    assert_eq!(response.status(), 200);
    // …and one acknowledged check-in vanishes from the database.
    let lost = sim
        .world
        .items
        .iter()
        .enumerate()
        .find(|(i, item)| {
            matches!(item.payload, Payload::Checkin(_)) && sim.truth.receipt(*i).acked
        })
        .map(|(_, item)| item.id.clone())
        .expect("a check-in");
    let mut conn = app.settings.database.establish().expect("database");
    for table in ["photo_links", "checkins", "submissions"] {
        let column = match table {
            "photo_links" => "submission_id",
            _ => "id",
        };
        diesel::RunQueryDsl::execute(
            diesel::sql_query(format!("DELETE FROM {table} WHERE {column} = '{lost}'")),
            &mut conn,
        )
        .expect("delete");
    }
    let found = sim.check().await.expect("check again");
    let text = found.join("\n");
    assert!(
        text.contains(&format!("survey {reopened} is \"reopened\"")),
        "{text}"
    );
    assert!(
        text.contains("ledger") && text.contains("approved households"),
        "{text}"
    );
    assert!(
        text.contains(&format!("acknowledged check-in {lost} is not stored")),
        "{text}"
    );
}

/// A `taizhang serve` process on a given port and data directory, so that it can be killed
/// and started again on the same data at the same address.
fn killable(database_url: &str, data_dir: &Path, port: u16) -> Spawned {
    spawn(
        database_url,
        data_dir,
        &format!("127.0.0.1:{port}"),
        TEST_SECRET,
        &[("TAIZHANG_WORKERS", "2".as_ref())],
    )
    .expect("the server starts")
}

async fn sigkill_in_the_middle_loses_nothing(backend: Backend) {
    let dir = tempfile::tempdir().expect("data dir");
    let url = match backend {
        Backend::Sqlite => dir
            .path()
            .join("taizhang.sqlite3")
            .to_string_lossy()
            .into_owned(),
        Backend::Postgres => crate::pg::fresh_database(),
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut server = Some(killable(&url, dir.path(), port));
    let mut options = small(vec![format!("http://127.0.0.1:{port}")], 11);
    options.villages = 3;
    // A month ending yesterday spans two calendar months most days: the ledger of both is
    // checked.
    options.days = 30;
    options.households_per_village = 4;
    options.fault_rate = 0.05;
    let mut sim = Simulation::prepare(options).await.expect("prepare");
    let stats = sim.stats.clone();
    let total: usize = sim.world.field.iter().map(Vec::len).sum();
    let mut killed_at = 0;
    let killer = async {
        while stats.done.load(Ordering::Relaxed) < total as u64 / 3 {
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
        // SIGKILL: no shutdown, no flush; whatever was in flight is cut off.
        if let Some(mut s) = server.take() {
            s.child.kill().expect("SIGKILL");
            let _ = s.child.wait();
        }
        killed_at = stats.done.load(Ordering::Relaxed);
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        server = Some(killable(&url, dir.path(), port));
    };
    let (played, ()) = futures_util::future::join(sim.play(), killer).await;
    played.expect("play");
    assert!(
        killed_at > 0 && killed_at < total as u64,
        "killed mid-run ({killed_at} of {total})"
    );
    assert!(
        stats.network_errors.load(Ordering::Relaxed) > 0,
        "the phones met the dead server"
    );
    assert_eq!(stats.gave_up.load(Ordering::Relaxed), 0, "nothing given up");
    let found = sim.check().await.expect("check");
    assert!(found.is_empty(), "{}", sim.summary(&found));
    assert!(
        sim.truth
            .receipts
            .lock()
            .expect("receipts")
            .iter()
            .all(|r| r.acked),
        "every submission acknowledged, across the restart"
    );
    drop(server);
}

/// `taizhang simulate` as a command: exit 0 and the summary table when the check passes.
async fn the_command_prints_a_summary_and_exits_zero(_backend: Backend) {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let address = app.address.clone();
    let output = actix_web::rt::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_taizhang"))
            .args([
                "simulate",
                "--server",
                &address,
                "--villages",
                "2",
                "--days",
                "4",
                "--households-per-village",
                "3",
                "--photo-width",
                "128",
                "--quiet",
            ])
            .output()
    })
    .await
    .expect("join")
    .expect("run taizhang simulate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("truth check: PASSED"), "{stdout}");
    assert!(stdout.contains("check-in"), "{stdout}");
}

/// The same seed plans the same month (ids, bodies, photos); another seed another.
#[test]
fn the_plan_follows_from_the_seed() {
    use taizhang::geography::Geofence;
    use taizhang::simulate::world::{plan, positions, Params, Village};
    let village = |code: &str, lat: f64, lon: f64| {
        let fence = Geofence::Circle {
            center: geo::Point::new(lon, lat),
            radius_m: 1500.0,
        };
        let (home, far) = positions(&fence, (lat, lon));
        Village {
            code: code.into(),
            name: "试验村".into(),
            county: format!("{}000000", &code[..6]),
            fence,
            home,
            far,
        }
    };
    let villages = || {
        vec![
            village("220802100201", 45.62, 122.84),
            village("220881100200", 45.34, 122.79),
        ]
    };
    let params = |seed: u64| Params {
        seed,
        employers: Default::default(),
        days: 6,
        households_per_village: 4,
        photo_width: 96,
        reuse_bits: taizhang::photos::REUSE_THRESHOLD,
        now: chrono::DateTime::parse_from_rfc3339("2026-11-27T12:00:00+08:00")
            .expect("time")
            .with_timezone(&chrono::Utc),
        future_clock: true,
    };
    let fingerprint = |seed: u64| {
        let world = plan(&params(seed), villages()).expect("plan");
        let items: Vec<String> = world.items.iter().map(|i| i.body.to_string()).collect();
        let photos: Vec<String> = world.photos.iter().map(|p| p.sha.clone()).collect();
        (items, photos, world.field.clone())
    };
    let a = fingerprint(5);
    assert!(!a.0.is_empty() && !a.1.is_empty());
    assert_eq!(a, fingerprint(5));
    assert_ne!(a.0, fingerprint(6).0);
}

both_backends!(
    simulated_month_passes_the_truth_check,
    sigkill_in_the_middle_loses_nothing
);

mod command {
    #[actix_web::test]
    async fn the_command_prints_a_summary_and_exits_zero() {
        super::the_command_prints_a_summary_and_exits_zero(crate::helpers::Backend::Sqlite).await
    }
}
