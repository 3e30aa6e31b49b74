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
//!
//! `TAIZHANG_BENCH_PROFILE=1` instead prints where one village's computation spends its time,
//! query by query, and on PostgreSQL the plans of its dearest queries.

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
    if std::env::var_os("TAIZHANG_BENCH_PROFILE").is_some() {
        let some: Vec<String> = villages.iter().step_by(46).cloned().collect();
        return profile(&mut conn, &some, month);
    }

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
    // the city from their children's sums. A survey of the month shown leaves the month
    // before current; a change of every month (a merge, a late survey of an earlier month)
    // does not.
    let mut changed = |affected: cache::Affected| -> anyhow::Result<Duration> {
        let mut samples = Vec::new();
        for i in 0..10 {
            let village = villages[i * 37 % villages.len()].clone();
            cache::touch_villages(&mut conn, &[village].into_iter().collect(), affected)?;
            let t = Instant::now();
            let (_, fresh) = inventory::inventory(&mut conn, &city, month)?;
            samples.push(t.elapsed());
            for f in &fresh {
                cache::store(&mut conn, f)?;
            }
        }
        Ok(median(samples))
    };
    let one_changed = changed(cache::Affected::From(month))?;
    let one_changed_all = changed(cache::Affected::All)?;

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
                cache::touch_villages(
                    conn,
                    &[village].into_iter().collect(),
                    cache::Affected::From(month),
                )?;
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
    row(
        "city node, one village changed (this month's survey)",
        one_changed,
    );
    row(
        "city node, one village changed (every month)",
        one_changed_all,
    );
    row("every village's cached figures summed (before)", summed);
    row("county node (洮北区), cached", county);
    row("county node, one of its villages changed", county_changed);
    row("village node, cached", village);
    Ok(())
}

/// With `TAIZHANG_BENCH_PROFILE=1`: where one village's computation spends its time, query by
/// query (diesel's instrumentation), over `villages`.
fn profile(
    conn: &mut taizhang::db::DbConnection,
    villages: &[String],
    month: taizhang::domain::Month,
) -> anyhow::Result<()> {
    use diesel::connection::{Connection, InstrumentationEvent};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    type Spent = HashMap<String, (usize, Duration)>;
    let spent: Arc<Mutex<Spent>> = Arc::default();
    let started: Arc<Mutex<Option<(String, Instant)>>> = Arc::default();
    {
        let (spent, started) = (spent.clone(), started.clone());
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                let text = query.to_string();
                let sql = text.split("-- binds").next().unwrap_or("").trim();
                // IN lists of different lengths are one query.
                let sql: String = sql
                    .split(", $")
                    .next()
                    .unwrap_or(sql)
                    .chars()
                    .take(160)
                    .collect();
                *started.lock().unwrap() = Some((sql, Instant::now()));
            }
            InstrumentationEvent::FinishQuery { .. } => {
                if let Some((sql, at)) = started.lock().unwrap().take() {
                    let mut spent = spent.lock().unwrap();
                    let entry = spent.entry(sql).or_default();
                    entry.0 += 1;
                    entry.1 += at.elapsed();
                }
            }
            _ => {}
        });
    }
    if matches!(conn, taizhang::db::DbConnection::Postgresql(_)) {
        explain(conn, &villages[0], month)?;
    }
    let t = Instant::now();
    for village in villages {
        taizhang::ledger::figures::village(conn, village, month)?;
    }
    let total = t.elapsed();
    conn.set_instrumentation(|_: InstrumentationEvent<'_>| {});
    let mut rows: Vec<(String, (usize, Duration))> = spent.lock().unwrap().drain().collect();
    rows.sort_by_key(|(_, (_, d))| std::cmp::Reverse(*d));
    println!(
        "\none village's figures, {} villages: {:.2} ms a village",
        villages.len(),
        ms(total) / villages.len() as f64
    );
    for (sql, (n, d)) in rows.iter().take(12) {
        println!(
            "{:>8.2} ms {:>5}×  {sql}",
            ms(*d) / villages.len() as f64,
            n
        );
    }
    Ok(())
}

/// The plans of the village computation's two dearest queries on PostgreSQL, as it runs them.
fn explain(
    conn: &mut taizhang::db::DbConnection,
    village: &str,
    month: taizhang::domain::Month,
) -> anyhow::Result<()> {
    use diesel::prelude::*;
    use diesel::sql_types::Text;
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let list = |sql: String, conn: &mut taizhang::db::DbConnection| -> anyhow::Result<String> {
        let rows: Vec<(String,)> = diesel::sql_query(sql)
            .load::<Line>(conn)?
            .into_iter()
            .map(|l| (l.line,))
            .collect();
        Ok(format!(
            "ARRAY[{}]::text[]",
            rows.iter()
                .map(|(v,)| format!("'{v}'"))
                .collect::<Vec<_>>()
                .join(",")
        ))
    };
    let m = month.to_string();
    let persons = list(format!(
        "SELECT DISTINCT sm.person_id_hash AS \"QUERY PLAN\" FROM survey_members sm JOIN household_surveys hs ON hs.id = sm.survey_id WHERE hs.village_code = '{village}' AND hs.month <= '{m}'"
    ), conn)?;
    let surveys = list(format!(
        "SELECT id AS \"QUERY PLAN\" FROM household_surveys WHERE village_code = '{village}' AND month <= '{m}'"
    ), conn)?;
    for sql in [
        format!("EXPLAIN (ANALYZE, BUFFERS) SELECT DISTINCT hs.household_id FROM survey_members sm JOIN household_surveys hs ON sm.survey_id = hs.id WHERE sm.person_id_hash = ANY({persons}) AND hs.month <= '{m}' AND hs.status = ANY(ARRAY['approved','submitted','reopened']::text[])"),
        format!("EXPLAIN (ANALYZE, BUFFERS) SELECT survey_id, position, person_id_hash, labour_capacity FROM survey_members WHERE survey_id = ANY({surveys})"),
        format!("EXPLAIN (ANALYZE, BUFFERS) SELECT DISTINCT household_id FROM household_surveys WHERE village_code = '{village}' AND month <= '{m}'"),
    ] {
        println!();
        for l in diesel::sql_query(sql).load::<Line>(conn)? {
            println!("  {}", l.line);
        }
    }
    Ok(())
}
