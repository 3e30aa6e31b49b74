//! Ledger benchmark: the city node at city scale on SQLite, beside a full recomputation from
//! the normalised tables in the same run.
//!
//! ```text
//! cargo bench --bench ledger                                   # 100 000 households, 12 months
//! TAIZHANG_BENCH_HOUSEHOLDS=20000 cargo bench --bench ledger   # smaller, quicker
//! TAIZHANG_BENCH_BACKENDS=sqlite,postgres cargo bench --bench ledger
//! ```
//!
//! Seeds a fresh database (SQLite by default; PostgreSQL is the tests' throwaway cluster) with `taizhang seed`'s generator (919 villages, ~2.4 people a
//! household, ~4 surveys a household over the months), then times for the last month:
//! - the full recomputation of every village from the normalised tables (the baseline);
//! - the city node with every village's figures cached (the steady state of a read-mostly
//!   ledger), and after one village changed (one village recomputed);
//! - a county and a village node, cached.

// Tests and benches fail by panicking: `unwrap` and `expect` are their assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use taizhang_testkit::bench::{self, median, ms};

use std::time::{Duration, Instant};

use taizhang::domain::{DivisionCode, DivisionLevel};
use taizhang::ledger::{cache, inventory, node};
use taizhang::simulate::seed;

fn main() -> anyhow::Result<()> {
    bench::each_backend(run)
}

fn run(backend: &str, postgres: Option<String>) -> anyhow::Result<()> {
    let seeded = bench::seeded(postgres)?;
    let options = &seeded.options;
    let months = options.months;
    let mut conn = seeded.prepared.db.get()?;
    // The last month seeded.
    let month = seed::last_month(options.start, months);
    let city = node::node(
        &mut conn,
        DivisionLevel::City,
        &DivisionCode::parse(node::CITY).map_err(|e| anyhow::anyhow!(e.message))?,
    )?;
    let villages = node::villages_of(&mut conn, &city)?;

    // Baseline: every village from the normalised tables.
    let mut full = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let figures = cache::recompute_all(&mut conn, &villages, month)?;
        full.push(t.elapsed());
        assert_eq!(figures.len(), villages.len());
    }
    let full = median(full);

    // Cold: the first read computes and caches both months it shows.
    let t = Instant::now();
    let (_, fresh) = inventory::inventory(&mut conn, &city, month)?;
    let cold = t.elapsed();
    for f in &fresh {
        cache::store(&mut conn, f)?;
    }

    let mut warm = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let (inv, fresh) = inventory::inventory(&mut conn, &city, month)?;
        warm.push(t.elapsed());
        assert!(fresh.iter().all(|f| f.is_empty()), "everything cached");
        assert!(inv
            .node
            .figures
            .iter()
            .any(|f| f.key == "households" && f.approved > 0));
    }
    let warm = median(warm);

    // One village changed since: the read recomputes it alone.
    let mut one_changed = Vec::new();
    for i in 0..10 {
        let village = villages[i * 37 % villages.len()].clone();
        cache::touch_villages(&mut conn, &[village].into_iter().collect())?;
        let t = Instant::now();
        let (_, fresh) = inventory::inventory(&mut conn, &city, month)?;
        one_changed.push(t.elapsed());
        for f in &fresh {
            cache::store(&mut conn, f)?;
        }
    }
    let one_changed = median(one_changed);

    let node = |level, code: &str, conn: &mut _| -> anyhow::Result<Duration> {
        let n = node::node(
            conn,
            level,
            &DivisionCode::parse(code).map_err(|e| anyhow::anyhow!(e.message))?,
        )?;
        let mut samples = Vec::new();
        for _ in 0..30 {
            let t = Instant::now();
            inventory::inventory(conn, &n, month)?;
            samples.push(t.elapsed());
        }
        Ok(median(samples))
    };
    let county = node(DivisionLevel::County, "220802000000", &mut conn)?;
    let village = node(DivisionLevel::Village, &villages[0], &mut conn)?;

    println!(
        "\nledger, month {month}, {backend} ({} villages)",
        villages.len()
    );
    println!("{:<52} {:>10} {:>10}", "", "median ms", "÷ full");
    let row = |name: &str, d: Duration| {
        println!("{name:<52} {:>10.2} {:>10.4}", ms(d), ms(d) / ms(full));
    };
    row("full recomputation of every village (baseline)", full);
    row("city node, cold (computes this and last month)", cold);
    row("city node, every village cached", warm);
    row("city node, one village changed since", one_changed);
    row("county node (洮北区), cached", county);
    row("village node, cached", village);
    Ok(())
}
