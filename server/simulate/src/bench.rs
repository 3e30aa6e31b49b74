//! Benchmark mode: what a simulated month costs the server, beside two baselines measured in
//! the same run on the same machine (which is shared and noisy, so only ratios travel): the
//! servers' `GET /healthz` rate (HTTP and nothing else) and bare single-row inserts into a
//! temporary table of the same database (storage and nothing else).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use futures_util::future::join_all;

use super::{Options, Simulation};
use taizhang_core::db::DatabaseUrl;

diesel::table! {
    sim_bench_raw (id) {
        id -> Text,
        body -> Text,
    }
}

#[derive(Debug, Clone, Default)]
pub struct Baseline {
    pub healthz_per_s: f64,
    pub inserts_per_s: Option<f64>,
}

/// One row of the benchmark table.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub villages: usize,
    pub submissions: usize,
    pub photos: u64,
    pub field_secs: f64,
    pub per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Peak resident memory of each server process while the month was played, MiB.
    pub peak_mib: Vec<f64>,
    /// The same from the server's start through the account set-up (Argon2 hashing of
    /// thousands of passwords at once), MiB.
    pub setup_peak_mib: Vec<f64>,
    pub baseline: Baseline,
    pub passed: bool,
}

/// `GET /healthz` from `concurrency` clients for `for_how_long`, spread over the servers.
pub async fn healthz_rate(options: &Options, for_how_long: Duration) -> anyhow::Result<f64> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let done = AtomicU64::new(0);
    let started = Instant::now();
    join_all((0..options.concurrency.max(1)).map(|k| {
        let url = format!(
            "{}/healthz",
            options.servers[k % options.servers.len()].trim_end_matches('/')
        );
        let client = &client;
        let done = &done;
        async move {
            while started.elapsed() < for_how_long {
                if let Ok(r) = client.get(&url).send().await {
                    if r.bytes().await.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }))
    .await;
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// Single-row inserts of survey-sized JSON, one after another on one connection, into a
/// scratch table of the same database (an ordinary table, so the inserts are journaled like
/// the server's; dropped afterwards).
pub fn insert_rate(database_url: &str, rows: usize) -> anyhow::Result<f64> {
    let url = DatabaseUrl::parse(database_url).map_err(anyhow::Error::msg)?;
    let mut conn = url.establish()?;
    conn.batch_execute(
        "DROP TABLE IF EXISTS sim_bench_raw; \
         CREATE TABLE sim_bench_raw (id TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL)",
    )?;
    let body = serde_json::json!({"members": (0..4).map(|k| serde_json::json!({
        "name": "张三", "id_number": "220802197001011238", "relation": k, "labour_capacity": "able",
        "employment": {"status": "out_of_province", "monthly_income_yuan": 3000},
        "training": {"wanted": true, "trade": "electrician"}, "safety_net": []
    })).collect::<Vec<_>>()})
    .to_string();
    let started = Instant::now();
    for k in 0..rows {
        diesel::insert_into(sim_bench_raw::table)
            .values((
                sim_bench_raw::id.eq(format!("row-{k}")),
                sim_bench_raw::body.eq(&body),
            ))
            .execute(&mut conn)?;
    }
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    conn.batch_execute("DROP TABLE sim_bench_raw")?;
    Ok(rate)
}

pub async fn baselines(options: &Options, database_url: Option<&str>) -> anyhow::Result<Baseline> {
    let healthz_per_s = healthz_rate(options, Duration::from_secs(3)).await?;
    let inserts_per_s = match database_url {
        Some(url) => {
            let url = url.to_owned();
            Some(tokio::task::spawn_blocking(move || insert_rate(&url, 2000)).await??)
        }
        None => None,
    };
    Ok(Baseline {
        healthz_per_s,
        inserts_per_s,
    })
}

/// Peak resident set size (VmHWM) of a process, in KiB.
pub fn peak_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// A `/proc/PID/status` figure in KiB, by its key (`VmRSS:`, `VmHWM:`).
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// User plus system CPU time of a process so far, in ms (`/proc/PID/stat`, which counts in
/// USER_HZ, 100 a second on Linux).
pub fn cpu_ms(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    Some((ticks(14)? + ticks(15)?) * 10)
}

/// Resets a process's peak resident set size to its current size (Linux: `5` into
/// `/proc/PID/clear_refs`), so that the next reading covers only what follows.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Reads each server's peak so far (MiB) and starts a new one: call it after the set-up.
pub fn peaks_then_reset(pids: &[u32]) -> Vec<f64> {
    pids.iter()
        .filter_map(|p| {
            let peak = peak_kib(*p)?;
            reset_peak(*p);
            Some(peak as f64 / 1024.0)
        })
        .collect()
}

/// The figures of a finished run.
pub fn measure(sim: &Simulation, baseline: &Baseline, pids: &[u32]) -> Row {
    let (_, p50, p99) = sim.stats.percentiles();
    let field = sim.timings.field.as_secs_f64().max(1e-9);
    Row {
        villages: sim.world.villages.len(),
        submissions: sim.field_acks,
        photos: super::stats::Stats::get(&sim.stats.photos_uploaded),
        field_secs: field,
        per_s: sim.field_acks as f64 / field,
        p50_ms: p50,
        p99_ms: p99,
        peak_mib: pids
            .iter()
            .filter_map(|p| peak_kib(*p))
            .map(|k| k as f64 / 1024.0)
            .collect(),
        setup_peak_mib: Vec::new(),
        baseline: baseline.clone(),
        passed: false,
    }
}

/// The benchmark table (Markdown).
pub fn table(rows: &[(String, Row)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| setup | villages | submissions | photos | field phase | submissions/s | p50 | p99 | server peak RSS (month) | (with account set-up) | /healthz/s | subs/s ÷ healthz/s | bare inserts/s | subs/s ÷ inserts/s | truth check |"
    );
    let _ = writeln!(
        out,
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
    );
    let mib = |list: &[f64]| {
        if list.is_empty() {
            "–".to_owned()
        } else {
            list.iter()
                .map(|m| format!("{m:.0} MiB"))
                .collect::<Vec<_>>()
                .join(" + ")
        }
    };
    for (name, r) in rows {
        let (peak, setup_peak) = (mib(&r.peak_mib), mib(&r.setup_peak_mib));
        let (inserts, ratio) = match r.baseline.inserts_per_s {
            Some(i) => (format!("{i:.0}"), format!("{:.3}", r.per_s / i)),
            None => ("–".into(), "–".into()),
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {:.1} s | {:.0} | {:.1} ms | {:.1} ms | {peak} | {setup_peak} | {:.0} | {:.3} | {inserts} | {ratio} | {} |",
            r.villages,
            r.submissions,
            r.photos,
            r.field_secs,
            r.per_s,
            r.p50_ms,
            r.p99_ms,
            r.baseline.healthz_per_s,
            r.per_s / r.baseline.healthz_per_s.max(1e-9),
            if r.passed { "passed" } else { "FAILED" },
        );
    }
    out
}
