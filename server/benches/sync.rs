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
use taizhang_testkit::bench::{self, median, ms};

use taizhang::auth::Caller;
use taizhang::db::schema::{household_surveys, households};
use taizhang::domain::{DivisionCode, Role};
use taizhang::sync::service::{page, SyncRequest, MAX_LIMIT};

fn gzipped(bytes: &[u8]) -> usize {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip").len()
}

fn main() -> anyhow::Result<()> {
    bench::each_backend(run)
}

fn run(backend: &str, postgres: Option<String>) -> anyhow::Result<()> {
    let seeded = bench::seeded(postgres)?;
    let vault = &seeded.vault;
    let key = seeded.prepared.keys.sync_cursor;
    let mut conn = seeded.prepared.db.get()?;

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
        let p = page(&mut conn, vault, &key, &caller, &request(None))?;
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
            taizhang_core::changes::households(
                c,
                &refs,
                taizhang_core::ledger::cache::Affected::All,
            )
        })?;
        let t = Instant::now();
        let p = page(&mut conn, vault, &key, &caller, &request(Some(cursor)))?;
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
            vault,
            &key,
            &caller,
            &request(Some(cursor.clone())),
        )?;
        quiet.push(t.elapsed());
        assert!(p.households.is_empty());
    }
    let quiet = median(quiet);

    println!("\nsync, {backend}, village {village} ({count} households; {sent} sent, {submissions} submissions)");
    println!("{:<56} {:>10} {:>12}", "", "median ms", "× baseline");
    let row = |name: &str, d: Duration| {
        println!(
            "{name:<56} {:>10.2} {:>12.1}",
            ms(d),
            ms(d) / ms(baseline).max(1e-6)
        )
    };
    row(
        "bare SELECT of the village's households (baseline)",
        baseline,
    );
    row("first sync of the village (one page)", first);
    row("next-day sync, 3 households changed", next_day);
    row("no-change sync", quiet);
    println!("first sync: {raw} bytes JSON, {gz} bytes gzipped ({:.1} KB); next-day {next_gz} bytes gzipped", gz as f64 / 1024.0);
    // The issue's budgets, scaled to this village's size for the bytes (150 households: 60 KB).
    let per_150 = gz as f64 / count.max(1) as f64 * 150.0 / 1024.0;
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "budgets: first sync ≤ 50 ms: {}; ≤ 60 KB gzipped per 150 households ({per_150:.1} KB): {}; no-change ≤ 5 ms: {}",
        verdict(ms(first) <= 50.0),
        verdict(per_150 <= 60.0),
        verdict(ms(quiet) <= 5.0)
    );
    Ok(())
}
