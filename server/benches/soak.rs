//! The soak: a real `taizhang serve` (release build) with photos on an S3 store holds 80 % of
//! its measured check-in peak for ten minutes, on SQLite and on PostgreSQL (see
//! `taizhang::simulate::soak`). Each minute: check-ins scheduled and failed, p50/p99/max
//! latency, the server's resident memory, the database's size.
//!
//! ```text
//! cargo bench --bench soak
//! TAIZHANG_SOAK_MINUTES=2 TAIZHANG_BENCH_BACKENDS=sqlite cargo bench --bench soak
//! ```
//!
//! Settings (environment): `TAIZHANG_BENCH_BACKENDS` (`sqlite,postgres`),
//! `TAIZHANG_SOAK_MINUTES` (10), `TAIZHANG_SOAK_LOAD` (0.8 of the peak),
//! `TAIZHANG_SOAK_VILLAGES` (919, one first secretary each), `TAIZHANG_SOAK_PHOTO_WIDTH` (1600,
//! photos 1600×1200), `TAIZHANG_SOAK_PEAK_SECS` (30), `TAIZHANG_SOAK_CONCURRENCY` (16 phones
//! while the peak is measured), `TAIZHANG_SOAK_IN_FLIGHT` (48 check-ins at most in flight), `TAIZHANG_SOAK_GRACE_SECS` (30: a
//! check-in still unanswered that long after the soak's end counts as failed).
//! The S3 store is `s3s-fs` (objects as files; `cargo install s3s-fs --features binary`): moto,
//! which the tests use, keeps objects in memory or in one open file each, and ten minutes of
//! photos are more than either holds here.
//! PostgreSQL is the throwaway cluster the tests use (fsync off).

// Tests and benches fail by panicking: `unwrap` and `expect` are their assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use taizhang_testkit::pg;
use taizhang_testkit::process as server_process;
use taizhang_testkit::s3s::S3sFs;

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use taizhang::simulate::soak::{self, DatabaseSize, SoakOptions, SoakReport};

const SECRET: &str = "50a450a450a450a450a450a450a450a450a450a450a450a450a450a450a450a4";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(QueryableByName)]
struct Size {
    #[diesel(sql_type = BigInt)]
    bytes: i64,
}

/// The database's size in bytes: the SQLite file with its write-ahead log, or PostgreSQL's
/// `pg_database_size`.
fn database_size(url: String) -> DatabaseSize {
    Arc::new(move || {
        if url.starts_with("postgres") {
            let mut conn = diesel::PgConnection::establish(&url)?;
            let size: Size =
                diesel::sql_query("SELECT pg_database_size(current_database()) AS bytes")
                    .get_result(&mut conn)?;
            Ok(size.bytes as u64)
        } else {
            Ok(["", "-wal"]
                .iter()
                .filter_map(|suffix| std::fs::metadata(format!("{url}{suffix}")).ok())
                .map(|m| m.len())
                .sum())
        }
    })
}

/// What the soak stores, for the per-check-in costs.
const CHECKINS: &str = "SELECT count(*) FROM checkins";

/// The soak's report, and on PostgreSQL what the database did per check-in.
async fn run(database_url: &str) -> anyhow::Result<(SoakReport, String)> {
    let dir = tempfile::tempdir()?;
    let bucket = "soak-photos";
    let s3 = S3sFs::start(&dir.path().join("s3"), &[bucket], "soak", "soak-secret")?;
    let server = server_process::spawn(
        database_url,
        &dir.path().join("data"),
        "127.0.0.1:0",
        SECRET,
        &[
            (
                "TAIZHANG_PHOTO_STORE",
                format!("s3://{bucket}/photos").as_ref(),
            ),
            ("AWS_ENDPOINT_URL", s3.endpoint.as_ref()),
            ("AWS_REGION", "us-east-1".as_ref()),
            ("AWS_ACCESS_KEY_ID", "soak".as_ref()),
            ("AWS_SECRET_ACCESS_KEY", "soak-secret".as_ref()),
        ],
    )?;
    let options = SoakOptions {
        server: server.address.clone(),
        admin_phone: "13900000001".into(),
        admin_password: "demo-city-0001".into(),
        villages: env_or("TAIZHANG_SOAK_VILLAGES", 919),
        photo_width: env_or("TAIZHANG_SOAK_PHOTO_WIDTH", 1600),
        peak: Duration::from_secs(env_or("TAIZHANG_SOAK_PEAK_SECS", 30)),
        peak_concurrency: env_or("TAIZHANG_SOAK_CONCURRENCY", 16),
        minutes: env_or("TAIZHANG_SOAK_MINUTES", 10),
        load: env_or("TAIZHANG_SOAK_LOAD", 0.8),
        max_in_flight: env_or("TAIZHANG_SOAK_IN_FLIGHT", 48),
        grace: Duration::from_secs(env_or("TAIZHANG_SOAK_GRACE_SECS", 30)),
        pid: server.child.id(),
    };
    let postgres = database_url.starts_with("postgres");
    let counting = if postgres {
        let url = database_url.to_owned();
        Some(tokio::task::spawn_blocking(move || pg::Activity::start(&url, CHECKINS)).await??)
    } else {
        None
    };
    let report = soak::run(&options, database_size(database_url.to_owned())).await?;
    // The server's connections report their statistics as they close.
    drop(server);
    drop(s3);
    let costs = match counting {
        Some((mut conn, before)) => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after =
                tokio::task::spawn_blocking(move || pg::Activity::read(&mut conn, CHECKINS))
                    .await??;
            format!(
                "PostgreSQL per check-in (whole run, accounts and logins included): {}\n",
                after.per_item(before)
            )
        }
        None => String::new(),
    };
    Ok((report, costs))
}

fn summary(name: &str, r: &SoakReport) -> String {
    format!(
        "{name}: peak {:.1} check-ins/s (p99 {:.0} ms) | soak at {:.1}/s ({:.2} of the peak), \
         achieved {:.1}/s | {} check-ins, {} failed | server RSS {:.1} → {:.1} MiB ({:+.1} % after the \
         first minute) | server CPU {:.2} ms a check-in | database +{:.0} KiB per 1 000 check-ins | \
         photos {:.0} KiB each\n",
        r.peak_rate,
        r.peak_p99_ms,
        r.target_rate,
        r.target_rate / r.peak_rate.max(f64::MIN_POSITIVE),
        r.achieved_rate,
        r.checkins,
        r.failed,
        r.minutes.first().map_or(0.0, |m| m.rss_mib),
        r.minutes.last().map_or(0.0, |m| m.rss_mib),
        r.rss_growth_percent(),
        r.cpu_ms_per_checkin(),
        r.database_kib_per_1000(),
        r.photo_bytes as f64 / 1024.0 / r.checkins.max(1) as f64,
    )
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; a test run (`cargo test --benches`) does not: then do
    // nothing, the simulator's tests cover the soak's parts.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let backends =
        std::env::var("TAIZHANG_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut out = String::new();
    for backend in backends.split(',').map(str::trim) {
        let (name, report, costs) = runtime.block_on(async {
            match backend {
                "sqlite" => {
                    let dir = tempfile::tempdir()?;
                    let url = dir.path().join("soak.sqlite3");
                    let (report, costs) = run(&url.to_string_lossy()).await?;
                    anyhow::Ok(("SQLite", report, costs))
                }
                "postgres" => {
                    let (report, costs) = run(&pg::fresh_database()).await?;
                    Ok(("PostgreSQL", report, costs))
                }
                other => Err(anyhow::anyhow!("unknown backend {other}")),
            }
        })?;
        let text = format!("{}{costs}\n{}", summary(name, &report), report.table());
        for failure in &report.failures {
            eprintln!("{name}: failure: {failure}");
        }
        eprintln!("{text}");
        out.push_str(&text);
        out.push('\n');
    }
    println!("{out}");
    Ok(())
}
