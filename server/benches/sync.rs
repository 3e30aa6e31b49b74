//! Sync benchmark: the phone's download (`sync::service::page`, the server's work behind
//! `GET /api/v1/sync`) at city scale on SQLite, beside a bare read of the village's households
//! in the same run.
//!
//! ```text
//! cargo bench --bench sync                                   # 100 000 households, 12 months
//! TAIZHANG_BENCH_HOUSEHOLDS=20000 cargo bench --bench sync   # smaller, quicker
//! TAIZHANG_BENCH_BACKENDS=sqlite,postgres cargo bench --bench sync
//! ```
//!
//! Seeds as the ledger bench does (`taizhang seed`'s generator), takes the village with the
//! most households and its county's seed enumerator as the caller (so every version is "their
//! own" submission: the largest `submissions` list), then times, median of several runs:
//! - the baseline: `SELECT id, sync_seq FROM households WHERE village_code = ?`;
//! - a first sync of the village (one page, no cursor), with its JSON and gzipped sizes;
//! - a next-day sync after three households changed;
//! - a no-change sync.

// Tests and benches fail by panicking: `unwrap` and `expect` are their assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use taizhang_testkit::pg;

use taizhang::auth::Caller;
use taizhang::config::Settings;
use taizhang::db::schema::{household_surveys, households};
use taizhang::domain::{DivisionCode, Month, Role};
use taizhang::privacy::Vault;
use taizhang::secrets::SecretSource;
use taizhang::simulate::seed;
use taizhang::sync::service::{page, SyncRequest, MAX_LIMIT};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn gzipped(bytes: &[u8]) -> usize {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip").len()
}

fn main() -> anyhow::Result<()> {
    let backends = std::env::var("TAIZHANG_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite".into());
    for backend in backends.split(',').map(str::trim) {
        match backend {
            "sqlite" => run("SQLite", None)?,
            "postgres" => run("PostgreSQL", Some(pg::fresh_database()))?,
            other => anyhow::bail!("unknown backend {other}: sqlite or postgres"),
        }
    }
    Ok(())
}

fn run(backend: &str, postgres: Option<String>) -> anyhow::Result<()> {
    let households_n = env("TAIZHANG_BENCH_HOUSEHOLDS", 100_000);
    let months = env("TAIZHANG_BENCH_MONTHS", 12);
    let dir = tempfile::tempdir()?;
    let mut settings = Settings::new(dir.path());
    settings.secret = SecretSource::Value("cd".repeat(32));
    if let Some(url) = postgres {
        settings.database = taizhang::db::DatabaseUrl::parse(&url).map_err(anyhow::Error::msg)?;
    }
    let prepared = taizhang::startup::prepare(&settings)?;
    let vault = Vault::new(&prepared.keys);
    let key = prepared.keys.sync_cursor;
    let mut conn = prepared.db.get()?;
    let started = Instant::now();
    let options = seed::SeedOptions {
        households: households_n,
        months,
        start: Month::parse("2020-01").map_err(|e| anyhow::anyhow!(e.message))?,
        seed: 2020,
    };
    let seeded = seed::seed(&mut conn, &vault, &options, |_| {})?;
    println!(
        "seeded {} households, {} surveys, {} member rows in {:.1} s",
        seeded.households,
        seeded.surveys,
        seeded.members,
        started.elapsed().as_secs_f64()
    );

    // The largest village, and its county's seed enumerator.
    let (village, count): (String, i64) = households::table
        .group_by(households::village_code)
        .select((households::village_code, diesel::dsl::count_star()))
        .order((diesel::dsl::count_star().desc(), households::village_code))
        .first(&mut conn)?;
    let enumerator: String = household_surveys::table
        .filter(household_surveys::village_code.eq(&village))
        .select(household_surveys::enumerator_id)
        .first(&mut conn)?;
    let caller = Caller {
        user_id: enumerator,
        session_id: "bench".into(),
        name: "bench".into(),
        phone: "13900000000".into(),
        role: Role::Enumerator,
        county_code: Some(DivisionCode::parse(&village)?.county()),
        village_codes: vec![DivisionCode::parse(&village)?],
    };
    let request = |cursor: Option<String>| SyncRequest {
        cursor,
        limit: MAX_LIMIT,
    };

    let mut baseline = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let rows: Vec<(String, i64)> = households::table
            .filter(households::village_code.eq(&village))
            .select((households::id, households::sync_seq))
            .load(&mut conn)?;
        baseline.push(t.elapsed());
        assert_eq!(rows.len() as i64, count);
    }
    let baseline = median(baseline);

    let mut first = Vec::new();
    let mut last = None;
    for _ in 0..10 {
        let t = Instant::now();
        let p = page(&mut conn, &vault, &key, &caller, &request(None))?;
        first.push(t.elapsed());
        assert!(!p.has_more);
        last = Some(p);
    }
    let first_page = last.expect("a page");
    let first = median(first);
    let json = serde_json::to_vec(&first_page)?;
    let (raw, gz) = (json.len(), gzipped(&json));
    let submissions = first_page.submissions.len();
    let sent = first_page.households.len();
    let mut cursor = first_page.cursor;

    // Next day: three households changed (a revisit, a review) since the cursor.
    let ids: Vec<String> = households::table
        .filter(households::village_code.eq(&village))
        .select(households::id)
        .limit(3)
        .load(&mut conn)?;
    let mut next_day = Vec::new();
    let mut next_gz = 0;
    for _ in 0..10 {
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        taizhang::db::write_transaction(&mut conn, |c| {
            taizhang_core::changes::households(c, &refs)
        })?;
        let t = Instant::now();
        let p = page(&mut conn, &vault, &key, &caller, &request(Some(cursor)))?;
        next_day.push(t.elapsed());
        assert_eq!(p.households.len(), 3);
        next_gz = gzipped(&serde_json::to_vec(&p)?);
        cursor = p.cursor;
    }
    let next_day = median(next_day);

    let mut quiet = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let p = page(
            &mut conn,
            &vault,
            &key,
            &caller,
            &request(Some(cursor.clone())),
        )?;
        quiet.push(t.elapsed());
        assert!(p.households.is_empty());
    }
    let quiet = median(quiet);

    println!("\nsync, {backend}, village {village} ({count} households; {sent} sent, {submissions} submissions)");
    println!("{:<56} {:>10}", "", "median ms");
    let row = |name: &str, d: Duration| println!("{name:<56} {:>10.2}", ms(d));
    row(
        "bare SELECT of the village's households (baseline)",
        baseline,
    );
    row("first sync of the village (one page)", first);
    row("next-day sync, 3 households changed", next_day);
    row("no-change sync", quiet);
    println!("first sync: {raw} bytes JSON, {gz} bytes gzipped ({:.1} KB); next-day {next_gz} bytes gzipped", gz as f64 / 1024.0);
    Ok(())
}
