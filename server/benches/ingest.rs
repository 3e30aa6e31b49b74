//! Survey ingest over HTTP against a baseline of bare inserts, on SQLite and on PostgreSQL.
//!
//! ```text
//! cargo bench --bench ingest                    # 400 surveys per backend
//! TAIZHANG_BENCH_SURVEYS=2000 TAIZHANG_BENCH_BACKENDS=sqlite cargo bench --bench ingest
//! ```
//!
//! For each backend the real server runs in-process on a fresh database. The baseline is the
//! same number of single-row inserts of each survey's raw JSON into a one-table scratch table of
//! the same database, one after another on one connection. The ingest is the same surveys
//! (4 members, 2 photos each, every head a new household) POSTed to
//! `/api/v1/surveys/households` by 8 concurrent clients, then as many new ones by 32, each round
//! with the median and 99th-percentile latency of its requests, after an unmeasured warm-up
//! round (and, on PostgreSQL, `ANALYZE`, as autovacuum would have run in service). On
//! PostgreSQL the one-connection round also reports the statements per survey and the most
//! frequent ones. Concurrent surveys share write
//! transactions (the group commit), so more clients means larger batches. To show where the time goes, it also
//! times the same number of authenticated `GET /api/v1/me` (HTTP, token check, session
//! lookup). PostgreSQL is the throwaway cluster the tests use (fsync off), so both backends are
//! measured without disk flushes.

// Tests and benches fail by panicking: `unwrap` and `expect` are their assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use taizhang_testkit::pg;

use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use taizhang::auth::Caller;
use taizhang::config::Settings;
use taizhang::db::DatabaseUrl;
use taizhang::domain::{DivisionCode, Role};
use taizhang::privacy::Vault;
use taizhang::secrets::Keys;
use taizhang::secrets::SecretSource;
use taizhang::startup::Application;
use taizhang::submissions::{self, Kind, Received};
use taizhang::surveys::input::HouseholdSurveyRequest;
use taizhang::surveys::{ingest as store, validate};

diesel::table! {
    bench_raw (id) {
        id -> Text,
        body -> Text,
    }
}

/// What the bench stores, for the per-survey costs on PostgreSQL.
const SURVEYS: &str = "SELECT count(*) FROM household_surveys";

/// Concurrent clients of the HTTP rounds; each round sends its own surveys.
const CONCURRENCY: [usize; 2] = [8, 32];

fn id_number(birth: &str, sequence: u32) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let first = format!("220802{birth}{sequence:03}");
    let sum: u32 = first
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    format!("{first}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

/// Survey `i`: a new household of four (its own birth dates), two photos.
fn survey(i: usize, photos: &[String]) -> Value {
    let day = |year: u32| format!("{year}{:02}{:02}", 1 + (i / 28) % 12, 1 + i % 28);
    let seq = (i / 336) as u32 % 499;
    let member = |name: &str, id: String, relation: &str, capacity: &str| {
        let sex = if (id.as_bytes()[16] - b'0') % 2 == 1 {
            "male"
        } else {
            "female"
        };
        let employment = if capacity == "able" {
            json!({"status": "out_of_province", "employer_id": null, "post_type": null, "monthly_income_yuan": 3000})
        } else {
            Value::Null
        };
        json!({"name": name, "id_number": id, "sex": sex,
               "birth_date": format!("{}-{}-{}", &id[6..10], &id[10..12], &id[12..14]),
               "relation": relation, "labour_capacity": capacity, "employment": employment,
               "wants_public_post": i.is_multiple_of(3), "training": {"wanted": true, "trade": "electrician"},
               "at_risk": false, "safety_net": []})
    };
    let head = id_number(&day(1970), seq * 2 + 1);
    json!({
        "submission_id": uuid::Uuid::now_v7().to_string(),
        "form_version": "2020.07",
        "village_code": "220802100201",
        "surveyed_at": "2020-07-20T09:31:00+08:00",
        "location": {"lat": 45.736537, "lon": 122.566161, "accuracy_m": 12.5},
        "household": {"household_number": null, "head_name": "张三", "head_id_number": head,
                      "poverty_status": "lifted", "relocated": false, "phone": "13800000000"},
        "members": [
            member("张三", head.clone(), "head", "able"),
            member("李秀兰", id_number(&day(1972), seq * 2), "spouse", "able"),
            member("张小明", id_number(&day(2005), seq * 2 + 1), "child", "none"),
            member("张小红", id_number(&day(2008), seq * 2), "child", "none"),
        ],
        "photos": photos,
        "replaces": null,
        "device": {"device_id": "bench", "app_version": "1.0.0"}
    })
}

/// Sends a request and reads the whole answer (an unread body would cost the connection).
async fn status_after_body(request: reqwest::RequestBuilder) -> u16 {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    }
}

/// One HTTP round: its rate and the latency of its requests.
struct Round {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// POSTs `bodies` by `concurrency` clients; every one must be stored.
async fn ingest(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    bodies: &[Value],
    concurrency: usize,
) -> anyhow::Result<Round> {
    let n = bodies.len();
    let started = Instant::now();
    let answers: Vec<(u16, f64)> = futures_util::stream::iter(bodies.iter())
        .map(|body| {
            let request = client
                .post(format!("{base}/api/v1/surveys/households"))
                .bearer_auth(token)
                .json(body);
            async move {
                let sent = Instant::now();
                let status = status_after_body(request).await;
                (status, sent.elapsed().as_secs_f64() * 1000.0)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let rate = rate(n, started);
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    anyhow::ensure!(
        created == n,
        "{created} of {n} surveys were stored (statuses {:?})",
        answers.iter().take(5).map(|(s, _)| s).collect::<Vec<_>>()
    );
    let mut latencies: Vec<f64> = answers.into_iter().map(|(_, ms)| ms).collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((n as f64 * q).ceil() as usize).clamp(1, n) - 1];
    Ok(Round {
        rate,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
    })
}

fn rate(n: usize, started: Instant) -> f64 {
    n as f64 / started.elapsed().as_secs_f64()
}

async fn run(name: &str, database: DatabaseUrl, n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut settings = Settings::new(dir.path());
    settings.database = database.clone();
    settings.bind = "127.0.0.1:0".into();
    settings.secret = SecretSource::Value("ab".repeat(32));
    settings.demo = true;
    settings.workers = Some(2);
    settings.db_pool_size = 8;
    let app = Application::build(settings).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(32)
        .build()?;
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"phone": "13900000004", "password": "demo-field-0004", "device_id": "bench"}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut photos = Vec::new();
    for file in ["doorplate.jpg", "household.jpg"] {
        let bytes = std::fs::read(format!(
            "{}/fixtures/photos/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))?;
        let sha = hex::encode(Sha256::digest(&bytes));
        client
            .put(format!("{base}/api/v1/photos/{sha}"))
            .bearer_auth(&token)
            .header("content-type", "image/jpeg")
            .body(bytes)
            .send()
            .await?
            .error_for_status()?;
        photos.push(sha);
    }
    let mut bodies: Vec<Value> = (0..n).map(|i| survey(i, &photos)).collect();

    // Baseline: bare single-row inserts of the raw JSON, one connection, one after another.
    let mut conn = database.establish()?;
    conn.batch_execute(
        "CREATE TABLE bench_raw (id TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL)",
    )?;
    let raw: Vec<(String, String)> = bodies
        .iter()
        .map(|b| {
            (
                b["submission_id"].as_str().unwrap_or_default().to_owned(),
                b.to_string(),
            )
        })
        .collect();
    let started = Instant::now();
    for (id, body) in &raw {
        diesel::insert_into(bench_raw::table)
            .values((bench_raw::id.eq(id), bench_raw::body.eq(body)))
            .execute(&mut conn)?;
    }
    let baseline = rate(n, started);

    // A warm-up round, not measured: the tables hold a round of surveys, and PostgreSQL's
    // statistics know it. A table that grew from empty since its last ANALYZE is planned as
    // tiny, with sequential scans; autovacuum analyzes it within a minute of its growth in
    // service, but a round here lasts seconds.
    let warm_first = (CONCURRENCY.len() + 1) * n;
    let warm: Vec<Value> = (warm_first..warm_first + n)
        .map(|i| survey(i, &photos))
        .collect();
    ingest(&client, &base, &token, &warm, CONCURRENCY[0]).await?;
    if let DatabaseUrl::Postgres(_) = &database {
        conn.batch_execute("ANALYZE")?;
    }

    // The same surveys over HTTP, by 8 clients and by 32 (a fresh set of surveys each).
    let mut http = Vec::new();
    for (round, concurrency) in CONCURRENCY.into_iter().enumerate() {
        let bodies: Vec<Value> = if round == 0 {
            std::mem::take(&mut bodies)
        } else {
            (round * n..(round + 1) * n)
                .map(|i| survey(i, &photos))
                .collect()
        };
        http.push((
            concurrency,
            ingest(&client, &base, &token, &bodies, concurrency).await?,
        ));
    }
    let started = Instant::now();
    futures_util::stream::iter(0..n)
        .map(|_| {
            let request = client.get(format!("{base}/api/v1/me")).bearer_auth(&token);
            async move { status_after_body(request).await }
        })
        .buffer_unordered(CONCURRENCY[0])
        .collect::<Vec<_>>()
        .await;
    let me = rate(n, started);
    let user_id = login["user"]["id"].as_str().unwrap_or_default().to_owned();
    handle.stop(true).await;

    // The same work without HTTP: parse, validate, seal and store on one connection.
    let vault = Vault::new(&Keys::from_master(&[0xab; 32]));
    let caller = Caller {
        user_id: user_id.clone(),
        session_id: String::new(),
        name: String::new(),
        phone: String::new(),
        role: Role::Enumerator,
        county_code: DivisionCode::parse("220802000000").ok(),
        village_codes: ["220802100200", "220802100201"]
            .iter()
            .filter_map(|c| DivisionCode::parse(c).ok())
            .collect(),
    };
    let first = CONCURRENCY.len() * n;
    let direct_bodies: Vec<Value> = (first..first + n).map(|i| survey(i, &photos)).collect();
    // On PostgreSQL, what the database does for each of these surveys: the round trips.
    let counting = match &database {
        DatabaseUrl::Postgres(url) => Some(pg::Activity::start(url, SURVEYS)?),
        DatabaseUrl::Sqlite(_) => None,
    };
    let started = Instant::now();
    for value in &direct_bodies {
        let input: HouseholdSurveyRequest = serde_json::from_value(value.clone())?;
        let now = chrono::Utc::now();
        let received = Received {
            kind: Kind::HouseholdSurvey,
            user_id: &user_id,
            claimed_id: &input.submission_id,
            claimed_village: &input.village_code,
            value,
        };
        // The server's two halves, without the group commit: each survey its own transaction.
        let prepared = submissions::prepare(&vault, &received, || {
            validate::household(&input, &caller, now)
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        submissions::commit(&mut conn, &prepared, now, |conn, survey| {
            store::household(conn, &vault, &caller, survey, now)
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let direct = rate(n, started);
    let mut costs = String::new();
    if let Some((mut conn, before)) = counting {
        let after = pg::Activity::read(&mut conn, SURVEYS)?;
        costs = format!(
            "\n{name:<9} per survey, one connection: {}",
            after.per_item(before)
        );
        for line in pg::Activity::top_statements(&mut conn, n as i64, 40)? {
            costs += &format!("\n    {line}");
        }
    }

    let mut line = format!("{name:<9} baseline {baseline:>6.0} inserts/s");
    for (concurrency, round) in &http {
        line += &format!(
            " | HTTP ingest by {concurrency:>2} clients {:>5.0} surveys/s = {:.3} of baseline, \
             p50 {:.1} ms, p99 {:.1} ms",
            round.rate,
            round.rate / baseline,
            round.p50_ms,
            round.p99_ms,
        );
    }
    println!(
        "{line} | without HTTP, one connection: {direct:>5.0} surveys/s = {:.3} of baseline | \
         authenticated GET /me {me:>5.0}/s{costs}",
        direct / baseline,
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("TAIZHANG_BENCH_SURVEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    // TAIZHANG_BENCH_BACKENDS=sqlite (or postgres) measures one backend only.
    let only = std::env::var("TAIZHANG_BENCH_BACKENDS").unwrap_or_default();
    actix_web::rt::System::new().block_on(async move {
        if only.is_empty() || only.contains("sqlite") {
            let dir = tempfile::tempdir()?;
            run(
                "sqlite",
                DatabaseUrl::Sqlite(dir.path().join("bench.sqlite3")),
                n,
            )
            .await?;
        }
        if only.is_empty() || only.contains("postgres") {
            let url = tokio::task::spawn_blocking(pg::fresh_database).await?;
            run(
                "postgres",
                DatabaseUrl::parse(&url).map_err(anyhow::Error::msg)?,
                n,
            )
            .await?;
        }
        Ok(())
    })
}
