//! The end-to-end benchmark: the field simulator's month at city scale against real
//! `taizhang serve` processes, on SQLite, on PostgreSQL, and with two server processes on
//! one PostgreSQL — each beside its baselines measured in the same run (the servers'
//! `GET /healthz` rate and bare inserts into the same database), and each run ending in the
//! truth check.
//!
//! ```text
//! cargo bench --bench simulate
//! TAIZHANG_SIM_VILLAGES=100 TAIZHANG_SIM_DAYS=2 TAIZHANG_BENCH_BACKENDS=sqlite cargo bench --bench simulate
//! ```
//!
//! Settings (environment): `TAIZHANG_SIM_VILLAGES` (919), `TAIZHANG_SIM_DAYS` (3),
//! `TAIZHANG_SIM_HOUSEHOLDS` (households per village, 4), `TAIZHANG_SIM_CONCURRENCY` (32),
//! `TAIZHANG_SIM_FAULT_RATE` (0.05), `TAIZHANG_SIM_PHOTO_WIDTH` (1600: photos of 1600×1200, as
//! a phone's camera app sends them after its own downscaling),
//! `TAIZHANG_BENCH_BACKENDS` (`sqlite,postgres,postgres2`).
//! PostgreSQL is the throwaway cluster the tests use (`taizhang_testkit::pg`, fsync off).

// Tests and benches fail by panicking: `unwrap` and `expect` are their assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use taizhang_testkit::pg;
use taizhang_testkit::process as server_process;

use std::path::Path;
use std::time::Duration;

use server_process::Spawned;
use taizhang::simulate::{bench, Options, Simulation};

const SECRET: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

/// A free local port (the kernel's choice), so that a server restarted after the set-up comes
/// back at the address the phones know.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start(database_url: &str, data_dir: &Path, photos: &Path, port: u16) -> anyhow::Result<Spawned> {
    std::fs::create_dir_all(data_dir)?;
    Ok(server_process::spawn(
        database_url,
        data_dir,
        &format!("127.0.0.1:{port}"),
        SECRET,
        &[
            ("RUST_LOG", "warn".as_ref()),
            ("TAIZHANG_PHOTO_STORE", photos.as_os_str()),
        ],
    )?)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(name: &str, database_url: &str, processes: usize) -> anyhow::Result<bench::Row> {
    let dir = tempfile::tempdir()?;
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos)?;
    let ports: Vec<u16> = (0..processes)
        .map(|_| free_port())
        .collect::<anyhow::Result<_>>()?;
    // One after another: the first applies the migrations and loads the villages.
    let start_all = || -> anyhow::Result<Vec<Spawned>> {
        ports
            .iter()
            .enumerate()
            .map(|(k, port)| {
                start(
                    database_url,
                    &dir.path().join(format!("s{k}")),
                    &photos,
                    *port,
                )
            })
            .collect()
    };
    let mut servers = start_all()?;
    let mut options = Options::new(servers.iter().map(|s| s.address.clone()).collect());
    options.villages = env_or("TAIZHANG_SIM_VILLAGES", 919);
    options.days = env_or("TAIZHANG_SIM_DAYS", 3);
    options.households_per_village = env_or("TAIZHANG_SIM_HOUSEHOLDS", 4);
    options.concurrency = env_or("TAIZHANG_SIM_CONCURRENCY", 32);
    options.fault_rate = env_or("TAIZHANG_SIM_FAULT_RATE", 0.05);
    options.photo_width = env_or("TAIZHANG_SIM_PHOTO_WIDTH", 1600);
    options.give_up_after = Duration::from_secs(300);
    let baseline = bench::baselines(&options, Some(database_url)).await?;
    let pids: Vec<u32> = servers.iter().map(|s| s.child.id()).collect();
    let mut sim = Simulation::prepare(options).await?;
    // The account set-up hashes thousands of passwords (Argon2) at once, and the allocator
    // keeps that memory: its peak is reported apart, and the month is played by servers
    // started afresh on the same data (the phones' tokens stay valid).
    let setup_peak = bench::peaks_then_reset(&pids);
    drop(servers);
    servers = start_all()?;
    let pids: Vec<u32> = servers.iter().map(|s| s.child.id()).collect();
    sim.play().await?;
    let discrepancies = sim.check().await?;
    eprint!("{name}:\n{}", sim.summary(&discrepancies));
    let mut row = bench::measure(&sim, &baseline, &pids);
    row.setup_peak_mib = setup_peak;
    row.passed = discrepancies.is_empty();
    Ok(row)
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; a test run (`cargo test --benches`) does not: then do
    // nothing, the tests cover the simulator.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let backends = std::env::var("TAIZHANG_BENCH_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgres,postgres2".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    for backend in backends.split(',').map(str::trim) {
        let row = runtime.block_on(async {
            match backend {
                "sqlite" => {
                    let dir = tempfile::tempdir()?;
                    let url = dir.path().join("bench.sqlite3");
                    let url = url.to_string_lossy().into_owned();
                    let row = run("SQLite, 1 server", &url, 1).await;
                    drop(dir);
                    row.map(|r| ("SQLite, 1 server".to_owned(), r))
                }
                "postgres" => run("PostgreSQL, 1 server", &pg::fresh_database(), 1)
                    .await
                    .map(|r| ("PostgreSQL, 1 server".to_owned(), r)),
                "postgres2" => run("PostgreSQL, 2 servers", &pg::fresh_database(), 2)
                    .await
                    .map(|r| ("PostgreSQL, 2 servers".to_owned(), r)),
                other => Err(anyhow::anyhow!("unknown backend {other}")),
            }
        })?;
        rows.push(row);
        eprint!("{}", bench::table(&rows[rows.len() - 1..]));
    }
    println!("{}", bench::table(&rows));
    Ok(())
}
