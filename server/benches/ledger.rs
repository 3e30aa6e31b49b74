//! Ledger benchmark: the city node at city scale on SQLite and PostgreSQL, beside a full recomputation from
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
//! - the city node with every figure cached (the steady state of a read-mostly ledger: the
//!   city's and its counties' roll-ups), and after one village changed (that village, its
//!   township, its county and the city summed again);
//! - for comparison, summing every village's cached figures, as the city node did before the
//!   roll-ups;
//! - a county node cached and after one of its villages changed, and a village node.

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

    // One village changed since: the read recomputes it alone, then its township, county and
    // the city from their children's sums.
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

    // The node read that sums every village's cached figures (what the city node did before
    // the roll-ups): the cached figures of both months, summed.
    let mut summed = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        for m in [month, month.previous()] {
            let (figures, fresh) = cache::figures_for(&mut conn, &villages, m)?;
            assert!(fresh.is_empty(), "everything cached");
            let mut total = taizhang::ledger::figures::Dense::default();
            for f in figures.values() {
                total.add(&f.approved);
                total.add(&f.including_pending);
            }
            assert!(total.0[0] > 0);
        }
        summed.push(t.elapsed());
    }
    let summed = median(summed);

    let node = |level, code: &str, conn: &mut _, change: bool| -> anyhow::Result<Duration> {
        let n = node::node(
            conn,
            level,
            &DivisionCode::parse(code).map_err(|e| anyhow::anyhow!(e.message))?,
        )?;
        let inside = node::villages_of(conn, &n)?;
        let mut samples = Vec::new();
        for i in 0..30 {
            if change {
                let village = inside[i * 7 % inside.len()].clone();
                cache::touch_villages(conn, &[village].into_iter().collect())?;
            }
            let t = Instant::now();
            let (_, fresh) = inventory::inventory(conn, &n, month)?;
            samples.push(t.elapsed());
            for f in &fresh {
                cache::store(conn, f)?;
            }
        }
        Ok(median(samples))
    };
    let county = node(DivisionLevel::County, "220802000000", &mut conn, false)?;
    let county_changed = node(DivisionLevel::County, "220802000000", &mut conn, true)?;
    let village = node(DivisionLevel::Village, &villages[0], &mut conn, false)?;

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
    row("every village's cached figures summed (before)", summed);
    row("county node (洮北区), cached", county);
    row("county node, one of its villages changed", county_changed);
    row("village node, cached", village);
    Ok(())
}
