//! The 建档立卡 import over HTTP against a baseline of bare inserts, on SQLite and PostgreSQL.
//!
//! ```text
//! cargo bench --bench import                     # 100 000 rows per backend
//! TAIZHANG_BENCH_ROWS=20000 TAIZHANG_BENCH_BACKENDS=sqlite cargo bench --bench import
//! ```
//!
//! For each backend the real server runs in-process on a fresh database. The baseline is the
//! same number of single-row inserts (a household-sized row: id, village, two texts) into a
//! scratch table of the same database, in one transaction on one connection. The import is one
//! CSV of that many households over the city's villages POSTed to `/api/v1/households/import`
//! by the city admin: parsing, checks, keyed hashes, sealing, the known-key look-ups and the
//! households, keys, people and import rows, in one transaction. PostgreSQL is the throwaway
//! cluster the tests use (fsync off).

// Benches fail by panicking: `unwrap` and `expect` are their assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::{json, Value};
use taizhang::config::Settings;
use taizhang::db::DatabaseUrl;
use taizhang::domain::{IdNumber, Sex};
use taizhang::secrets::SecretSource;
use taizhang::startup::Application;
use taizhang_testkit::pg;

diesel::table! {
    bench_rows (id) {
        id -> Text,
        village_code -> Text,
        head_name -> Text,
        head_id -> Text,
    }
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
    settings.demo_households = 0;
    settings.workers = Some(2);
    let app = Application::build(settings).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder().no_proxy().build()?;
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"phone": "13900000001", "password": "demo-city-0001", "device_id": "bench"}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"].as_str().unwrap().to_owned();

    let mut conn = database.establish()?;
    let villages: Vec<String> = taizhang::db::schema::villages::table
        .select(taizhang::db::schema::villages::code)
        .order(taizhang::db::schema::villages::code)
        .load(&mut conn)?;
    let rows: Vec<(String, String, String)> = (0..n)
        .map(|i| {
            let village = villages[i % villages.len()].clone();
            // Distinct for distinct i (below 182,500): see IdNumber::generated.
            let sex = if i % 2 == 0 { Sex::Male } else { Sex::Female };
            let id =
                IdNumber::generated(&village[..6], 1950 + (i % 40) as i32, sex, i as u64).unwrap();
            (village, format!("户主{i}"), id.expose().to_owned())
        })
        .collect();
    let mut csv = "村代码,户主姓名,户主身份证号,家庭人口数,贫困户属性\n".to_owned();
    for (village, name, id) in &rows {
        csv.push_str(&format!("{village},{name},{id},4,脱贫户\n"));
    }

    let kib = csv.len() / 1024;
    // Baseline: bare single-row inserts of comparable rows, one transaction.
    conn.batch_execute(
        "CREATE TABLE bench_rows (id TEXT PRIMARY KEY NOT NULL, village_code TEXT NOT NULL, head_name TEXT NOT NULL, head_id TEXT NOT NULL)",
    )?;
    let started = Instant::now();
    conn.transaction(|conn| {
        for (i, (village, name, id)) in rows.iter().enumerate() {
            diesel::insert_into(bench_rows::table)
                .values((
                    bench_rows::id.eq(i.to_string()),
                    bench_rows::village_code.eq(village),
                    bench_rows::head_name.eq(name),
                    bench_rows::head_id.eq(id),
                ))
                .execute(conn)?;
        }
        diesel::QueryResult::Ok(())
    })?;
    let baseline = rate(n, started);

    let started = Instant::now();
    let response = client
        .post(format!("{base}/api/v1/households/import"))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .body(csv.clone())
        .send()
        .await?;
    let status = response.status();
    let report: Value = response.json().await?;
    let import = rate(n, started);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["created"], n, "{report}");

    // The same file again: every row known, nothing stored.
    let started = Instant::now();
    let again: Value = client
        .post(format!("{base}/api/v1/households/import"))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?
        .json()
        .await?;
    let reimport = rate(n, started);
    assert_eq!(again["known"], n, "{again}");

    println!(
        "{name:<9} {n} rows ({} KiB CSV): bare inserts {baseline:>9.0} rows/s | import {import:>9.0} rows/s ({:.2}× the baseline) | re-import (all known) {reimport:>9.0} rows/s",
        kib,
        import / baseline
    );
    handle.stop(true).await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("TAIZHANG_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
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
