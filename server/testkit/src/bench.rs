//! What the city-scale benches share: their knobs, their statistics, each backend in turn, and
//! a fresh database seeded by `taizhang seed`'s generator.

use std::time::{Duration, Instant};

use taizhang::config::Settings;
use taizhang::domain::Month;
use taizhang::privacy::Vault;
use taizhang::secrets::SecretSource;
use taizhang::simulate::seed;
use taizhang::startup::Prepared;

use crate::pg;

/// A knob: the environment variable `name` as a number, or `default`.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of the samples.
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `run(name, postgres url)` for each backend of `TAIZHANG_BENCH_BACKENDS` (SQLite by
/// default; PostgreSQL is the tests' throwaway cluster).
pub fn each_backend(
    mut run: impl FnMut(&str, Option<String>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
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

/// A fresh database at city scale: `TAIZHANG_BENCH_HOUSEHOLDS` households (100,000) surveyed
/// over `TAIZHANG_BENCH_MONTHS` months (12) from 2020-01.
pub struct Seeded {
    /// Holds the SQLite file and the photo store; dropped last.
    pub dir: tempfile::TempDir,
    pub prepared: Prepared,
    pub vault: Vault,
    pub options: seed::SeedOptions,
}

pub fn seeded(postgres: Option<String>) -> anyhow::Result<Seeded> {
    let dir = tempfile::tempdir()?;
    let mut settings = Settings::new(dir.path());
    settings.secret = SecretSource::Value("cd".repeat(32));
    if let Some(url) = postgres {
        settings.database = taizhang::db::DatabaseUrl::parse(&url).map_err(anyhow::Error::msg)?;
    }
    let prepared = taizhang::startup::prepare(&settings)?;
    let vault = Vault::new(&prepared.keys);
    let mut conn = prepared.db.get()?;
    let options = seed::SeedOptions {
        households: env("TAIZHANG_BENCH_HOUSEHOLDS", 100_000),
        months: env("TAIZHANG_BENCH_MONTHS", 12),
        start: Month::parse("2020-01").map_err(|e| anyhow::anyhow!(e.message))?,
        seed: 2020,
    };
    let started = Instant::now();
    let seeded = seed::seed(&mut conn, &vault, &options, |_| {})?;
    println!(
        "seeded {} households, {} people, {} surveys, {} member rows in {:.1} s",
        seeded.households,
        seeded.people,
        seeded.surveys,
        seeded.members,
        started.elapsed().as_secs_f64()
    );
    drop(conn);
    Ok(Seeded {
        dir,
        prepared,
        vault,
        options,
    })
}
