//! The soak: the morning peak held for minutes on end. First secretaries of many villages check
//! in with phone-sized photos (a `PUT` of the photo, then the check-in that names it), first as
//! fast as a fixed number of phones can (the peak), then at a steady fraction of that rate for
//! the length asked. Arrivals are scheduled by the clock, not by the previous answer, so a slow
//! server meets the same demand and its slowness shows in the latency (measured from the
//! scheduled start, not from when a phone got round to sending).
//!
//! Every request must be answered with success: any other status, and any transport error, is
//! a failure, counted per minute beside the latency, the server's resident memory and the
//! database's size.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use chrono::{FixedOffset, Utc};
use futures_util::future::join_all;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::photos::{jpeg, with_exif, ExifSpec, Scene};
use crate::world::Village;

/// A phone's access token is refreshed this long after it was issued (it lasts 15 minutes).
const REFRESH_AFTER: Duration = Duration::from_secs(10 * 60);
/// How far back the soak's first check-in of each phone is dated (see `send`).
const DAYS_BACK: i64 = 400;
/// Distinct photo scenes; each check-in's bytes are made unique by its EXIF and a comment.
const SCENES: u64 = 24;

/// The database's size in bytes, read once a minute on the blocking pool.
pub type DatabaseSize = Arc<dyn Fn() -> anyhow::Result<u64> + Send + Sync>;

/// Each minute's check-ins: latency in ms, and the failure if one failed.
type ByMinute = Vec<Vec<(f64, Option<String>)>>;

/// What a soak does.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub server: String,
    pub admin_phone: String,
    pub admin_password: String,
    /// Villages taking part, one first secretary each (spread over the server's list).
    pub villages: usize,
    /// Photo width in pixels (height is three quarters of it).
    pub photo_width: u32,
    /// Length of the peak measurement.
    pub peak: Duration,
    /// Phones sending at once while the peak is measured.
    pub peak_concurrency: usize,
    /// Length of the soak.
    pub minutes: u64,
    /// The soak's rate as a fraction of the measured peak.
    pub load: f64,
    /// Check-ins in flight at most during the soak (the server admits 64 per client address).
    pub max_in_flight: usize,
    /// How long after the soak's last scheduled check-in an unanswered one still counts: later
    /// than that it is a failure, so a server that falls behind ends the run instead of
    /// draining its backlog for as long as it takes.
    pub grace: Duration,
    /// The server process, for its resident memory.
    pub pid: u32,
}

/// One minute of the soak.
#[derive(Debug, Clone, Default)]
pub struct Minute {
    pub minute: usize,
    /// Check-ins scheduled in the minute, and how many of them failed.
    pub scheduled: u64,
    pub failed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The server's CPU time (user and system) in the minute, per check-in scheduled in it.
    pub cpu_ms_per_checkin: f64,
    /// At the minute's end.
    pub rss_mib: f64,
    pub database_bytes: u64,
}

/// What a soak measured.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    /// Check-ins a second with `peak_concurrency` phones sending as fast as answered.
    pub peak_rate: f64,
    pub peak_p99_ms: f64,
    /// The rate the soak held, and what it achieved.
    pub target_rate: f64,
    pub achieved_rate: f64,
    pub minutes: Vec<Minute>,
    pub checkins: u64,
    pub failed: u64,
    /// The first few failures, for the report.
    pub failures: Vec<String>,
    pub photo_bytes: u64,
    pub database_bytes_before: u64,
    pub database_bytes_after: u64,
}

impl SoakReport {
    /// Resident memory growth from the end of the first minute (the warm-up) to the end, in
    /// percent.
    pub fn rss_growth_percent(&self) -> f64 {
        match (self.minutes.first(), self.minutes.last()) {
            (Some(first), Some(last)) if first.rss_mib > 0.0 => {
                (last.rss_mib / first.rss_mib - 1.0) * 100.0
            }
            _ => 0.0,
        }
    }

    /// The server's CPU time per check-in over the soak, in ms.
    pub fn cpu_ms_per_checkin(&self) -> f64 {
        let total: f64 = self
            .minutes
            .iter()
            .map(|m| m.cpu_ms_per_checkin * m.scheduled as f64)
            .sum();
        total / self.checkins.max(1) as f64
    }

    /// Database growth per 1 000 check-ins during the soak, in KiB.
    pub fn database_kib_per_1000(&self) -> f64 {
        let grown = self
            .database_bytes_after
            .saturating_sub(self.database_bytes_before);
        grown as f64 / 1024.0 / (self.checkins.max(1) as f64 / 1000.0)
    }

    /// The per-minute table, in Markdown.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| minute | check-ins | failed | p50 ms | p99 ms | max ms | server CPU ms a check-in | server RSS MiB | database MiB |\n\
             |--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for m in &self.minutes {
            out.push_str(&format!(
                "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} |\n",
                m.minute,
                m.scheduled,
                m.failed,
                m.p50_ms,
                m.p99_ms,
                m.max_ms,
                m.cpu_ms_per_checkin,
                m.rss_mib,
                m.database_bytes as f64 / (1 << 20) as f64
            ));
        }
        out
    }
}

/// A first secretary's phone: its account and tokens. Held for the length of a check-in, so
/// one phone sends one check-in at a time.
struct Account {
    phone: String,
    password: String,
    village: Village,
    tokens: tokio::sync::Mutex<Tokens>,
}

#[derive(Default)]
struct Tokens {
    access: String,
    refresh: String,
    issued: Option<Instant>,
}

/// Everything the check-ins share.
struct Rig {
    client: reqwest::Client,
    server: String,
    accounts: Vec<Account>,
    scenes: Vec<Vec<u8>>,
    next: AtomicU64,
    photo_bytes: AtomicU64,
}

/// How one check-in went.
struct Outcome {
    latency: Duration,
    failure: Option<String>,
}

/// Runs the soak; `database_size` gives the database's size in bytes (called once a minute,
/// on the blocking pool).
pub async fn run(options: &SoakOptions, database_size: DatabaseSize) -> anyhow::Result<SoakReport> {
    let rig = Arc::new(prepare(options).await?);
    let (peak_rate, peak_p99_ms) = peak(&rig, options).await?;
    let target_rate = (peak_rate * options.load).max(1.0);
    let size = |f: DatabaseSize| async move { tokio::task::spawn_blocking(move || f()).await? };
    let database_bytes_before = size(database_size.clone()).await?;
    let mut report = steady(&rig, options, target_rate, database_size.clone()).await?;
    report.peak_rate = peak_rate;
    report.peak_p99_ms = peak_p99_ms;
    report.database_bytes_before = database_bytes_before;
    report.database_bytes_after = size(database_size).await?;
    report.photo_bytes = rig.photo_bytes.load(Ordering::Relaxed);
    Ok(report)
}

/// Accounts for the villages (made by the city administrator, logged in) and the photo scenes.
async fn prepare(options: &SoakOptions) -> anyhow::Result<Rig> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(options.max_in_flight.max(options.peak_concurrency))
        .build()?;
    let server = options.server.trim_end_matches('/').to_owned();
    let admin = login(
        &client,
        &server,
        &options.admin_phone,
        &options.admin_password,
        "soak-admin",
    )
    .await
    .context("the city administrator logs in")?;
    let list: Value = client
        .get(format!("{server}/api/v1/villages?geofence=true"))
        .bearer_auth(&admin.access)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let villages = crate::choose_villages(&list, options.villages)?;
    let accounts: Vec<Account> = villages
        .into_iter()
        .enumerate()
        .map(|(n, village)| Account {
            phone: format!("166{n:08}"),
            password: format!("soak-{n}-pass"),
            village,
            tokens: tokio::sync::Mutex::new(Tokens::default()),
        })
        .collect();
    // Eight at a time: account creation and logins hash passwords (Argon2).
    for chunk in accounts.chunks(8) {
        let made = join_all(chunk.iter().map(|a| {
            let body = json!({
                "phone": a.phone, "name": format!("驻村第一书记{}", a.village.name),
                "role": "first_secretary", "password": a.password,
                "villages": [a.village.code],
            });
            client
                .post(format!("{server}/api/v1/users"))
                .bearer_auth(&admin.access)
                .json(&body)
                .send()
        }))
        .await;
        for (a, made) in chunk.iter().zip(made) {
            let status = made?.status();
            if !(status.is_success() || status == reqwest::StatusCode::CONFLICT) {
                bail!("creating {}: {status}", a.phone);
            }
        }
        let tokens = join_all(
            chunk
                .iter()
                .map(|a| login(&client, &server, &a.phone, &a.password, "soak")),
        )
        .await;
        for (a, tokens) in chunk.iter().zip(tokens) {
            *a.tokens.lock().await = tokens?;
        }
    }
    let width = options.photo_width.clamp(64, 4000);
    let scenes = tokio::task::spawn_blocking(move || {
        (0..SCENES)
            .map(|seed| {
                jpeg(
                    &Scene::new(7_000 + seed).render(width, width * 3 / 4, 0.0),
                    85,
                )
            })
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(Rig {
        client,
        server,
        accounts,
        scenes,
        next: AtomicU64::new(0),
        photo_bytes: AtomicU64::new(0),
    })
}

async fn login(
    client: &reqwest::Client,
    server: &str,
    phone: &str,
    password: &str,
    device: &str,
) -> anyhow::Result<Tokens> {
    let answer = client
        .post(format!("{server}/api/v1/auth/login"))
        .json(&json!({"phone": phone, "password": password, "device_id": device}))
        .send()
        .await?;
    tokens_from(answer).await
}

async fn tokens_from(answer: reqwest::Response) -> anyhow::Result<Tokens> {
    let status = answer.status();
    let body: Value = answer.json().await?;
    if !status.is_success() {
        bail!("{status} {body}");
    }
    let text = |key: &str| {
        body[key]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("tokens without {key}: {body}"))
    };
    Ok(Tokens {
        access: text("access_token")?,
        refresh: text("refresh_token")?,
        issued: Some(Instant::now()),
    })
}

/// As many phones as `peak_concurrency` check in as fast as they are answered, for `peak`:
/// the rate and its p99 latency.
async fn peak(rig: &Arc<Rig>, options: &SoakOptions) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let until = started + options.peak;
    let workers = (0..options.peak_concurrency.max(1)).map(|_| {
        let rig = rig.clone();
        async move {
            let mut latencies = Vec::new();
            while Instant::now() < until {
                let outcome = checkin(&rig, Instant::now()).await;
                if let Some(failure) = outcome.failure {
                    bail!("a check-in failed while the peak was measured: {failure}");
                }
                latencies.push(outcome.latency.as_secs_f64() * 1000.0);
            }
            Ok(latencies)
        }
    });
    let mut latencies: Vec<f64> = Vec::new();
    for worker in join_all(workers).await {
        latencies.extend(worker?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok((
        latencies.len() as f64 / elapsed,
        percentile(&mut latencies, 0.99),
    ))
}

/// Check-ins scheduled at `rate` a second for the soak's minutes, each minute summed up.
async fn steady(
    rig: &Arc<Rig>,
    options: &SoakOptions,
    rate: f64,
    database_size: DatabaseSize,
) -> anyhow::Result<SoakReport> {
    let minutes = options.minutes.max(1) as usize;
    let total = (rate * 60.0 * minutes as f64) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let gate = Arc::new(tokio::sync::Semaphore::new(options.max_in_flight.max(1)));
    let outcomes: Arc<Mutex<ByMinute>> = Arc::new(Mutex::new(vec![Vec::new(); minutes]));
    let started = Instant::now();
    let sampler = {
        let pid = options.pid;
        tokio::spawn(async move {
            let mut samples = Vec::with_capacity(minutes);
            let mut cpu = cpu_ms(pid);
            for m in 1..=minutes {
                tokio::time::sleep_until((started + Duration::from_secs(60 * m as u64)).into())
                    .await;
                let f = database_size.clone();
                let bytes = tokio::task::spawn_blocking(move || f()).await??;
                let now = cpu_ms(pid);
                let rss = resident_mib(pid);
                // As it goes, for a run watched (or stopped) before the end.
                eprintln!(
                    "soak minute {m}: server RSS {rss:.1} MiB, CPU {:.0} ms, database {:.1} MiB",
                    now - cpu,
                    bytes as f64 / (1 << 20) as f64
                );
                samples.push((rss, bytes, now - cpu));
                cpu = now;
            }
            anyhow::Ok(samples)
        })
    };
    let deadline = started + Duration::from_secs(60 * minutes as u64) + options.grace;
    let mut tasks = Vec::with_capacity(total as usize);
    for k in 0..total {
        let scheduled = started + interval.mul_f64(k as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let minute = ((scheduled - started).as_secs() / 60) as usize;
        let (rig, gate, outcomes) = (rig.clone(), gate.clone(), outcomes.clone());
        tasks.push(tokio::spawn(async move {
            // Waiting for a slot counts: the latency runs from the scheduled start.
            let answered = tokio::time::timeout_at(deadline.into(), async {
                let _permit = gate.acquire_owned().await;
                checkin(&rig, scheduled).await
            })
            .await;
            let outcome = answered.unwrap_or_else(|_| Outcome {
                latency: scheduled.elapsed(),
                failure: Some("unanswered when the soak and its grace period ended".into()),
            });
            if let Ok(mut all) = outcomes.lock() {
                let last = all.len() - 1;
                all[minute.min(last)]
                    .push((outcome.latency.as_secs_f64() * 1000.0, outcome.failure));
            }
        }));
    }
    join_all(tasks).await;
    let achieved_rate = total as f64 / started.elapsed().as_secs_f64();
    let samples = sampler.await??;
    let outcomes = std::mem::take(
        &mut *outcomes
            .lock()
            .map_err(|_| anyhow!("a check-in task panicked"))?,
    );
    let mut report = SoakReport {
        target_rate: rate,
        achieved_rate,
        ..SoakReport::default()
    };
    for (m, (outcome, (rss_mib, database_bytes, cpu))) in
        outcomes.into_iter().zip(samples).enumerate()
    {
        let failed: Vec<String> = outcome.iter().filter_map(|(_, f)| f.clone()).collect();
        let mut latencies: Vec<f64> = outcome.iter().map(|(l, _)| *l).collect();
        report.checkins += latencies.len() as u64;
        report.failed += failed.len() as u64;
        report.failures.extend(
            failed
                .iter()
                .take(5 - report.failures.len().min(5))
                .cloned(),
        );
        report.minutes.push(Minute {
            minute: m + 1,
            scheduled: latencies.len() as u64,
            failed: failed.len() as u64,
            p50_ms: percentile(&mut latencies, 0.5),
            p99_ms: percentile(&mut latencies, 0.99),
            max_ms: latencies.last().copied().unwrap_or(0.0),
            cpu_ms_per_checkin: cpu / latencies.len().max(1) as f64,
            rss_mib,
            database_bytes,
        });
    }
    Ok(report)
}

/// One check-in by the next phone in turn: its photo, then the check-in naming it.
async fn checkin(rig: &Rig, scheduled: Instant) -> Outcome {
    let n = rig.next.fetch_add(1, Ordering::Relaxed);
    let account = &rig.accounts[(n % rig.accounts.len() as u64) as usize];
    let mut tokens = account.tokens.lock().await;
    let failure = match send(rig, account, &mut tokens, n).await {
        Ok(()) => None,
        Err(e) => Some(format!("{e:#}")),
    };
    Outcome {
        latency: scheduled.elapsed(),
        failure,
    }
}

async fn send(rig: &Rig, account: &Account, tokens: &mut Tokens, n: u64) -> anyhow::Result<()> {
    if tokens.issued.is_none_or(|at| at.elapsed() > REFRESH_AFTER) {
        let answer = rig
            .client
            .post(format!("{}/api/v1/auth/refresh", rig.server))
            .json(&json!({"refresh_token": tokens.refresh}))
            .send()
            .await?;
        *tokens = tokens_from(answer).await.context("refresh")?;
    }
    let china = FixedOffset::east_opt(8 * 3600).ok_or_else(|| anyhow!("offset"))?;
    // A phone checks in once a day: its k-th check-in of the soak is dated k days after a
    // start DAYS_BACK days ago, so that the county's and the person's recent check-ins (what
    // the photo-reuse check compares with) are as many as in the field, not a year's worth
    // squeezed into one day. (Check-ins older than the upload window are flagged
    // `stale_time`, and stored all the same.)
    let day = (n / rig.accounts.len() as u64) as i64;
    let taken =
        (Utc::now() - chrono::Duration::days(DAYS_BACK - day.min(DAYS_BACK))).with_timezone(&china);
    let (lat, lon) = account.village.home;
    let photo = unique_photo(
        &rig.scenes[(n % rig.scenes.len() as u64) as usize],
        &ExifSpec {
            taken_at: &taken.format("%Y:%m:%d %H:%M:%S").to_string(),
            offset: "+08:00",
            lat,
            lon,
            orientation: 1,
        },
        n,
    );
    let sha = hex::encode(Sha256::digest(&photo));
    rig.photo_bytes
        .fetch_add(photo.len() as u64, Ordering::Relaxed);
    let put = rig
        .client
        .put(format!("{}/api/v1/photos/{sha}", rig.server))
        .bearer_auth(&tokens.access)
        .header("content-type", "image/jpeg")
        .body(photo)
        .send()
        .await?;
    let status = put.status();
    if !status.is_success() {
        bail!(
            "photo PUT {status}: {}",
            put.text().await.unwrap_or_default()
        );
    }
    let body = json!({
        "submission_id": uuid::Uuid::now_v7().to_string(), "kind": "resident_duty",
        "village_code": account.village.code, "worker_id_number": null,
        "captured_at": taken.to_rfc3339(),
        "location": {"lat": lat, "lon": lon, "accuracy_m": 12.0}, "mock_location": false,
        "photo": sha, "device": {"device_id": "soak", "app_version": "1.0.0"},
    });
    let posted = rig
        .client
        .post(format!("{}/api/v1/checkins", rig.server))
        .bearer_auth(&tokens.access)
        .json(&body)
        .send()
        .await?;
    let status = posted.status();
    let text = posted.text().await?;
    if status != reqwest::StatusCode::CREATED {
        bail!("check-in POST {status}: {text}");
    }
    Ok(())
}

/// `base` with the check-in's EXIF and a comment naming `n`, so that no two check-ins send the
/// same bytes (the pixels, and so the perceptual hash, repeat every [`SCENES`] check-ins).
fn unique_photo(base: &[u8], exif: &ExifSpec<'_>, n: u64) -> Vec<u8> {
    let tagged = with_exif(base, exif);
    let comment = format!("taizhang soak {n}");
    let mut out = Vec::with_capacity(tagged.len() + comment.len() + 4);
    out.extend_from_slice(&tagged[..2]);
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&((comment.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(comment.as_bytes());
    out.extend_from_slice(&tagged[2..]);
    out
}

/// The `q` quantile of `values` (sorted in place), 0 for none.
fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// The process's CPU time so far, in ms; 0 if it cannot be read.
fn cpu_ms(pid: u32) -> f64 {
    crate::bench::cpu_ms(pid).map_or(0.0, |ms| ms as f64)
}

/// The process's resident memory (`VmRSS`), in MiB; 0 if it cannot be read.
fn resident_mib(pid: u32) -> f64 {
    crate::bench::status_kib(pid, "VmRSS:").map_or(0.0, |kib| kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_ranks_of_the_sorted_values() {
        let mut values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&mut values, 0.5), 50.0);
        assert_eq!(percentile(&mut values, 0.99), 99.0);
        assert_eq!(percentile(&mut [], 0.99), 0.0);
    }

    #[test]
    fn each_photo_is_unique_and_still_a_jpeg() {
        let base = jpeg(&Scene::new(1).render(64, 48, 0.0), 85);
        let exif = ExifSpec {
            taken_at: "2026:12:04 08:00:00",
            offset: "+08:00",
            lat: 45.7,
            lon: 122.5,
            orientation: 1,
        };
        let (a, b) = (unique_photo(&base, &exif, 1), unique_photo(&base, &exif, 2));
        assert_ne!(a, b);
        for photo in [a, b] {
            let decoded = image::load_from_memory(&photo).expect("decodes");
            assert_eq!((decoded.width(), decoded.height()), (64, 48));
        }
    }
}
