//! `taizhang simulate`: a month of village work played against a running server over HTTP,
//! as the phones and the county reviewers would play it, then the server checked against the
//! simulator's own ground truth.
//!
//! The month is planned up front from the seed ([`world`]): villages' enumerators and first
//! secretaries (accounts made by the city administrator over the API), households with their
//! members, surveys (some surveyed again, some corrected with `replaces`, look-alike households
//! for a reviewer to merge), post-demand surveys, daily check-ins with planted faults (outside
//! the geofence, poor accuracy, mock location, reused photo, EXIF off, impossible travel, a
//! clock a day ahead), and each phone's offline queue flushed late, out of order and partly
//! twice. Playing it ([`phone`]) adds network faults ([`faults`]): answers lost after the
//! server committed, timeouts, retries with backoff, expired tokens. The truth ([`truth`])
//! then demands: every acknowledged submission present exactly once with the status and flags
//! it must have, the ledger figures of every village and of the city, and attendance days.

pub mod bench;
pub mod employers;
pub mod faults;
pub mod month2;
pub mod people;
pub mod phone;
pub mod photos;
pub mod revisit;
pub mod seed;
pub mod soak;
pub mod stats;
pub mod truth;
pub mod world;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::future::join_all;
use serde_json::{json, Value};

use self::faults::Faults;
use self::phone::{Phone, PhoneConfig};
use self::stats::Stats;
use self::truth::Truth;
use self::world::{Item, Payload, Review, Role, Village, World};
use taizhang_core::domain::Month;
use taizhang_core::geography::Geofence;

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Base URLs of the server processes; phones are spread over them.
    pub servers: Vec<String>,
    pub villages: usize,
    pub days: u32,
    pub seed: u64,
    pub households_per_village: usize,
    /// Requests in flight at once, over all phones.
    pub concurrency: usize,
    /// Probability that a phone's attempt meets a network fault.
    pub fault_rate: f64,
    pub admin_phone: String,
    pub admin_password: String,
    /// Must match the server's `--checkin-upload-window-days`.
    pub upload_window_days: u64,
    /// Must match the server's `--photo-reuse-bits`.
    pub reuse_bits: u32,
    /// A phone gives a submission up after retrying this long.
    pub give_up_after: Duration,
    pub photo_width: u32,
    pub progress: bool,
    /// 2: after the month, a second month through sync ([`revisit`]).
    pub months: u32,
    /// See [`world::Params::future_clock`].
    pub future_clock: bool,
}

impl Options {
    pub fn new(servers: Vec<String>) -> Self {
        Options {
            servers,
            villages: 10,
            days: 30,
            seed: 2020,
            households_per_village: 8,
            concurrency: 32,
            fault_rate: 0.08,
            admin_phone: "13900000001".into(),
            admin_password: "demo-city-0001".into(),
            upload_window_days: 7,
            reuse_bits: taizhang_core::photos::REUSE_THRESHOLD,
            give_up_after: Duration::from_secs(120),
            photo_width: 256,
            progress: false,
            months: 1,
            future_clock: true,
        }
    }
}

/// `taizhang simulate` flags.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Base URL of the server (e.g. http://127.0.0.1:8080); repeat for several processes.
    #[arg(long = "server", required = true)]
    servers: Vec<String>,
    /// Villages to play (spread over the city's 919).
    #[arg(long, default_value_t = 10)]
    villages: usize,
    /// Days of field work, ending yesterday.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Random seed: the same seed plans the same month.
    #[arg(long, default_value_t = 2020)]
    seed: u64,
    /// Households per village.
    #[arg(long, default_value_t = 8)]
    households_per_village: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Probability of a network fault per attempt (lost answer, timeout).
    #[arg(long, default_value_t = 0.08)]
    fault_rate: f64,
    /// The city administrator who creates the simulated staff; the password comes from
    /// TAIZHANG_SIM_ADMIN_PASSWORD (default: the demo administrator's).
    #[arg(long, default_value = "13900000001")]
    admin_phone: String,
    /// The server's --checkin-upload-window-days.
    #[arg(long, default_value_t = 7)]
    upload_window_days: u64,
    /// The server's --photo-reuse-bits.
    #[arg(long, default_value_t = taizhang_core::photos::REUSE_THRESHOLD)]
    photo_reuse_bits: u32,
    /// Seconds a phone keeps retrying one request before giving it up.
    #[arg(long, default_value_t = 120)]
    give_up_after_secs: u64,
    /// Width of the generated photos in pixels.
    #[arg(long, default_value_t = 256)]
    photo_width: u32,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// 2: then play a second month through sync (first syncs, revisits by reference, stale
    /// bases, newborns, check-ins by worker_ref) and check it too.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=2))]
    months: u32,
    /// Also measure: submissions per second, latency percentiles, the server's peak memory
    /// (give --server-pid) and the baselines (GET /healthz; bare inserts with --baseline-database-url).
    #[arg(long)]
    bench: bool,
    /// Process ids of the servers, to read their peak memory (VmHWM).
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
    /// The servers' database, for the bare-insert baseline (a temporary table).
    #[arg(
        long,
        env = "TAIZHANG_SIM_BASELINE_DATABASE_URL",
        hide_env_values = true
    )]
    baseline_database_url: Option<String>,
}

/// Durations of the phases.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub setup: Duration,
    pub field: Duration,
    pub review: Duration,
    pub check: Duration,
}

pub struct Simulation {
    pub options: Options,
    pub world: Arc<World>,
    pub truth: Truth,
    pub stats: Arc<Stats>,
    phones: Vec<Phone>,
    /// Several city-administrator sessions, to set up and check in parallel.
    admins: Vec<Phone>,
    /// Server user id of each simulated user.
    user_ids: Vec<String>,
    pub timings: Timings,
    /// Submissions acknowledged for the first time during the field phases.
    pub field_acks: usize,
    bar: indicatif::ProgressBar,
    pub client: reqwest::Client,
}

/// What every phone of a run shares: the options, the HTTP client, the counters and the
/// limit on requests in flight.
struct Wiring<'a> {
    options: &'a Options,
    stats: &'a Arc<Stats>,
    client: &'a reqwest::Client,
    gate: &'a Arc<tokio::sync::Semaphore>,
}

impl Wiring<'_> {
    /// A phone of account `login` (phone, password, device), on server `server` (modulo
    /// the number of servers).
    fn phone(&self, server: usize, login: (&str, &str, &str), faults: Faults) -> Phone {
        let servers = &self.options.servers;
        Phone::new(PhoneConfig {
            server: servers[server % servers.len()]
                .trim_end_matches('/')
                .to_owned(),
            phone: login.0.to_owned(),
            password: login.1.to_owned(),
            device: login.2.to_owned(),
            client: self.client.clone(),
            faults,
            stats: self.stats.clone(),
            give_up_after: self.options.give_up_after,
            gate: self.gate.clone(),
        })
    }
}

/// The villages the server serves, with geofences, `count` of them spread over the list.
/// The registry as the server lists it (every page), for the members' employer ids.
async fn list_employers(admin: &mut Phone) -> anyhow::Result<employers::DemoEmployers> {
    let mut list = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/employers?limit=1000&cursor={c}"),
            None => "/api/v1/employers?limit=1000".to_owned(),
        };
        let page = admin.get(&path).await?;
        for e in page["items"].as_array().into_iter().flatten() {
            let field = |name: &str| e[name].as_str().unwrap_or_default().to_owned();
            list.push((field("id"), field("county_code"), field("kind")));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(employers::DemoEmployers::from_list(list)),
        }
    }
}

pub(crate) fn choose_villages(list: &Value, count: usize) -> anyhow::Result<Vec<Village>> {
    let all = list["villages"]
        .as_array()
        .ok_or_else(|| anyhow!("GET /villages answered without villages"))?;
    if count == 0 || count > all.len() {
        bail!(
            "--villages must be 1 to {} (the server has {})",
            all.len(),
            all.len()
        );
    }
    let mut sorted: Vec<&Value> = all.iter().collect();
    sorted.sort_by_key(|v| v["code"].as_str().unwrap_or_default().to_owned());
    (0..count)
        .map(|k| {
            let v = sorted[k * sorted.len() / count];
            let text = |key: &str| {
                v[key]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow!("village without {key}: {v}"))
            };
            let centroid = (
                v["centroid"]["lat"].as_f64().unwrap_or_default(),
                v["centroid"]["lon"].as_f64().unwrap_or_default(),
            );
            let fence = Geofence::from_stored(
                v["geofence_kind"].as_str().unwrap_or_default(),
                v["geofence_radius_m"].as_f64(),
                centroid.0,
                centroid.1,
                &v["geofence"].to_string(),
            )
            .ok_or_else(|| anyhow!("village {} has no usable geofence", v["code"]))?;
            let (home, far) = world::positions(&fence, centroid);
            Ok(Village {
                code: text("code")?,
                name: text("name")?,
                county: text("county_code")?,
                fence,
                home,
                far,
            })
        })
        .collect()
}

/// Splits work into `n` interleaved shares.
fn shares<T: Clone>(units: &[T], n: usize) -> Vec<Vec<T>> {
    let n = n.max(1);
    let mut out = vec![Vec::new(); n];
    for (k, u) in units.iter().enumerate() {
        out[k % n].push(u.clone());
    }
    out
}

impl Simulation {
    /// Logs the administrator in, plans the month against the server's villages, creates the
    /// staff accounts and logs every phone in.
    pub async fn prepare(options: Options) -> anyhow::Result<Self> {
        let started = Instant::now();
        if options.servers.is_empty() {
            bail!("no --server given");
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(options.concurrency)
            .build()?;
        let stats = Arc::new(Stats::default());
        let gate = Arc::new(tokio::sync::Semaphore::new(options.concurrency.max(1)));
        let wiring = Wiring {
            options: &options,
            stats: &stats,
            client: &client,
            gate: &gate,
        };
        let mut admins: Vec<Phone> = (0..options.concurrency.clamp(1, 8))
            .map(|k| {
                let device = format!("sim-admin-{k}");
                let login = (
                    options.admin_phone.as_str(),
                    options.admin_password.as_str(),
                    device.as_str(),
                );
                wiring.phone(k, login, Faults::new(0, 0.0))
            })
            .collect();
        for admin in &mut admins {
            admin
                .login()
                .await
                .context("the city administrator logs in")?;
        }
        let list = admins[0].get("/api/v1/villages?geofence=true").await?;
        let villages = choose_villages(&list, options.villages)?;
        let employers = list_employers(&mut admins[0]).await?;
        let params = world::Params {
            employers,
            seed: options.seed,
            days: options.days,
            households_per_village: options.households_per_village.max(1),
            photo_width: options.photo_width.clamp(64, 2048),
            reuse_bits: options.reuse_bits,
            now: chrono::Utc::now(),
            future_clock: options.future_clock,
        };
        let world = tokio::task::spawn_blocking(move || world::plan(&params, villages)).await??;
        let world = Arc::new(world);

        // Staff accounts, made by the city administrator over the API; a second run with
        // the same seed finds them there.
        create_staff(&mut admins, &world).await?;

        let mut phones: Vec<Phone> = world
            .users
            .iter()
            .enumerate()
            .map(|(u, user)| {
                let rate = if user.role == Role::Reviewer {
                    0.0
                } else {
                    options.fault_rate
                };
                let login = (
                    user.phone.as_str(),
                    user.password.as_str(),
                    user.device.as_str(),
                );
                wiring.phone(
                    u,
                    login,
                    Faults::new(world::mix(options.seed, u as u64, 3), rate),
                )
            })
            .collect();
        let ids = join_all(phones.iter_mut().map(|phone| async move {
            phone.login().await?;
            let me = phone.get("/api/v1/me").await?;
            me["id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("GET /me without id: {me}"))
        }))
        .await;
        let user_ids = ids.into_iter().collect::<anyhow::Result<Vec<String>>>()?;
        let items = world.items.len();
        let bar = progress_bar(&options, &world)?;
        Ok(Simulation {
            truth: Truth::new(
                items,
                chrono::Duration::days(options.upload_window_days as i64),
                options.reuse_bits,
            ),
            options,
            world,
            stats,
            phones,
            admins,
            user_ids,
            timings: Timings {
                setup: started.elapsed(),
                ..Default::default()
            },
            field_acks: 0,
            bar,
            client,
        })
    }

    fn acked_count(&self) -> usize {
        self.truth
            .receipts
            .lock()
            .map(|r| r.iter().filter(|r| r.acked).count())
            .unwrap_or(0)
    }

    /// The month: field days, the stragglers, review, corrections, second review.
    pub async fn play(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let world = self.world.clone();
        self.bar.set_message("外业");
        self.flush(&world.field).await;
        self.bar.set_message("补传");
        self.flush(&world.late).await;
        self.field_acks = self.acked_count();
        self.timings.field = started.elapsed();

        let started = Instant::now();
        self.bar.set_message("审核");
        self.review(false).await;
        self.merge().await;
        self.bar.set_message("更正");
        let mut corrections = vec![Vec::new(); world.users.len()];
        for &i in &world.corrections {
            corrections[world.items[i].user].push(i);
        }
        self.flush(&corrections).await;
        self.review(true).await;
        self.bar.finish_and_clear();
        self.timings.review = started.elapsed();
        Ok(())
    }

    /// The field days and the stragglers only, for the demo: the surveys stay in the review
    /// queue, flagged check-ins await a reviewer and look-alike households stay open pairs.
    pub async fn play_field(&mut self) {
        let world = self.world.clone();
        self.flush(&world.field).await;
        self.flush(&world.late).await;
        self.bar.finish_and_clear();
    }

    /// Every phone sends its share, one item after another, all phones at once.
    async fn flush(&mut self, ops: &[Vec<usize>]) {
        let world = &*self.world;
        let truth = &self.truth;
        let stats = &*self.stats;
        let bar = &self.bar;
        join_all(
            self.phones
                .iter_mut()
                .zip(ops)
                .map(|(phone, mine)| async move {
                    for (n, &i) in mine.iter().enumerate() {
                        if n % 10 == 9 {
                            // The access token ran out while the phone was offline.
                            phone.expire_access();
                        }
                        send(phone, world, truth, stats, i).await;
                        bar.inc(1);
                    }
                }),
        )
        .await;
    }

    /// The county reviewers decide: first the surveys from the field, then the corrections.
    async fn review(&mut self, corrections: bool) {
        let world = &*self.world;
        let truth = &self.truth;
        join_all(
            self.phones
                .iter_mut()
                .enumerate()
                .filter(|(u, _)| world.users[*u].role == Role::Reviewer)
                .map(|(u, phone)| async move {
                    let county = world.users[u].county.clone().unwrap_or_default();
                    let mut approve = Vec::new();
                    for (i, item) in world.items.iter().enumerate() {
                        let Payload::Household(s) = &item.payload else {
                            continue;
                        };
                        let village = &world.villages[world.households[s.household].village];
                        if village.county != county
                            || s.replaces.is_some() != corrections
                            || !truth.receipt(i).acked
                        {
                            continue;
                        }
                        let (decision, reason) = match s.review {
                            Review::Approve => {
                                approve.push(item.id.clone());
                                continue;
                            }
                            Review::Leave => continue,
                            Review::Reject => ("reject", "户主身份信息与户籍不符"),
                            Review::Revise => {
                                ("request_revision", "请核实家庭成员务工情况后重新提交")
                            }
                        };
                        let path = format!("/api/v1/surveys/{}/review", item.id);
                        match phone
                            .post(
                                &path,
                                json!({"decision": decision, "reason": reason}),
                                false,
                            )
                            .await
                        {
                            Ok(a) if a.status.is_success() => {}
                            Ok(a) => truth.discrepancy(format!(
                                "review {decision} of survey {} refused: {} {}",
                                item.id, a.status, a.body
                            )),
                            Err(e) => {
                                truth.discrepancy(format!("review of survey {}: {e:#}", item.id))
                            }
                        }
                    }
                    for chunk in approve.chunks(200) {
                        match phone
                            .post(
                                "/api/v1/reviews/bulk",
                                json!({"decision": "approve", "ids": chunk}),
                                false,
                            )
                            .await
                        {
                            Ok(a) if a.status.is_success() => {}
                            Ok(a) => truth.discrepancy(format!(
                                "bulk approval of {} surveys refused: {} {}",
                                chunk.len(),
                                a.status,
                                a.body
                            )),
                            Err(e) => truth.discrepancy(format!("bulk approval: {e:#}")),
                        }
                    }
                }),
        )
        .await;
    }

    /// Look-alike households the plan made are merged into the first one surveyed.
    async fn merge(&mut self) {
        let world = &*self.world;
        for &(first, dup) in &world.merges {
            let (a, b) = (self.truth.receipt(first), self.truth.receipt(dup));
            if !(a.acked && b.acked) {
                continue;
            }
            let (Some(ha), Some(hb)) = (
                a.answer["household_id"].as_str(),
                b.answer["household_id"].as_str(),
            ) else {
                self.truth.discrepancy(format!(
                    "survey answers without household_id: {} {}",
                    a.answer, b.answer
                ));
                continue;
            };
            let village = match &world.items[first].payload {
                Payload::Household(s) => world.households[s.household].village,
                _ => continue,
            };
            let county = &world.villages[village].county;
            let Some(reviewer) = world
                .users
                .iter()
                .position(|u| u.county.as_ref() == Some(county))
            else {
                continue;
            };
            let path = format!("/api/v1/duplicates/{ha}/{hb}");
            match self.phones[reviewer]
                .post(&path, json!({"action": "merge", "survivor": ha}), false)
                .await
            {
                Ok(answer) if answer.status.is_success() => {}
                Ok(answer) => self.truth.discrepancy(format!(
                    "merging {ha} and {hb} refused: {} {}",
                    answer.status, answer.body
                )),
                Err(e) => self
                    .truth
                    .discrepancy(format!("merging {ha} and {hb}: {e:#}")),
            }
        }
    }

    /// Checks the server against the truth; returns every difference found (none: passed).
    pub async fn check(&mut self) -> anyhow::Result<Vec<String>> {
        let started = Instant::now();
        let mut found: Vec<String> = self
            .truth
            .discrepancies
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default();
        let receipts = self.truth.receipts_now();
        let world = self.world.clone();
        // 1. Household surveys.
        found.extend(self.check_surveys(&world, &receipts).await?);
        // 2. Check-ins and post-demand surveys.
        found.extend(self.check_replays(&world, &receipts).await);
        // 3. The ledger of every village and of the city, for each month of the run.
        let mut months: Vec<Month> = world.days.iter().map(|d| Month::containing(*d)).collect();
        months.dedup();
        for month in months {
            let more = self.check_ledger(&world, &receipts, month).await;
            found.extend(more);
        }

        // 4. Attendance days of every simulated person.
        found.extend(self.check_attendance(&world, &receipts).await?);
        self.timings.check = started.elapsed();
        Ok(found)
    }

    /// Every survey of the simulated villages as the survey list gives it, by submission id.
    async fn list_surveys(&mut self) -> anyhow::Result<BTreeMap<String, Vec<Value>>> {
        let world = self.world.clone();
        let villages: Vec<usize> = (0..world.villages.len()).collect();
        let admins = self.admins.len();
        let listed = join_all(self.admins.iter_mut().zip(shares(&villages, admins)).map(
            |(admin, mine)| {
                let world = &world;
                async move {
                    let mut out: Vec<Value> = Vec::new();
                    for v in mine {
                        let mut cursor: Option<String> = None;
                        loop {
                            let mut path = format!(
                                "/api/v1/surveys?village={}&limit=200",
                                world.villages[v].code
                            );
                            if let Some(c) = &cursor {
                                path.push_str(&format!("&cursor={c}"));
                            }
                            let page = admin.get(&path).await?;
                            out.extend(page["items"].as_array().cloned().unwrap_or_default());
                            match page["next_cursor"].as_str() {
                                Some(c) => cursor = Some(c.to_owned()),
                                None => break,
                            }
                        }
                    }
                    Ok::<Vec<Value>, anyhow::Error>(out)
                }
            },
        ))
        .await;
        let mut by_id: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for share in listed {
            for s in share? {
                by_id
                    .entry(s["id"].as_str().unwrap_or_default().to_owned())
                    .or_default()
                    .push(s);
            }
        }
        Ok(by_id)
    }

    /// Household surveys: each acknowledged one listed exactly once, with the status and flags
    /// it must have, and each household's versions on one household.
    async fn check_surveys(
        &mut self,
        world: &World,
        receipts: &[truth::Receipt],
    ) -> anyhow::Result<Vec<String>> {
        let mut found = Vec::new();
        let statuses = truth::final_statuses(world, receipts);
        let on_server = self.list_surveys().await?;
        let mut planned_ids: BTreeSet<&str> = BTreeSet::new();
        let mut household_ids: HashMap<usize, BTreeSet<String>> = HashMap::new();
        for (i, item) in world.items.iter().enumerate() {
            let Payload::Household(s) = &item.payload else {
                continue;
            };
            planned_ids.insert(&item.id);
            let r = &receipts[i];
            let copies = on_server.get(&item.id).map_or(0, Vec::len);
            if !r.acked {
                if !r.uncertain && copies > 0 {
                    found.push(format!(
                        "survey {} was never acknowledged but is stored",
                        item.id
                    ));
                }
                continue;
            }
            if copies != 1 {
                found.push(format!(
                    "acknowledged survey {} is stored {copies} times",
                    item.id
                ));
                continue;
            }
            let Some(row) = on_server.get(&item.id).and_then(|c| c.first()) else {
                continue;
            };
            if row["status"] != statuses[i] {
                found.push(format!(
                    "survey {} is {} on the server, must be {}",
                    item.id, row["status"], statuses[i]
                ));
            }
            let flags = truth::answer_flags(row);
            let expected: BTreeSet<String> = s.flags.iter().map(|f| f.to_string()).collect();
            if flags != expected {
                found.push(format!(
                    "survey {} has flags {flags:?}, must have {expected:?}",
                    item.id
                ));
            }
            household_ids
                .entry(s.household)
                .or_default()
                .insert(row["household_id"].as_str().unwrap_or_default().to_owned());
        }
        for id in on_server.keys() {
            if !planned_ids.contains(id.as_str()) {
                found.push(format!(
                    "survey {id} on the server was never sent by the simulator"
                ));
            }
        }
        let mut owner: HashMap<&str, usize> = HashMap::new();
        for (h, ids) in &household_ids {
            if ids.len() != 1 {
                found.push(format!(
                    "household {} ({}) is split over server households {ids:?}",
                    h, world.households[*h].head_name
                ));
            }
            for id in ids {
                if let Some(other) = owner.insert(id.as_str(), *h) {
                    found.push(format!(
                        "households {other} and {h} share server household {id}"
                    ));
                }
            }
        }
        Ok(found)
    }

    /// Check-ins and post-demand surveys: resending each acknowledged one must be a replay
    /// (200) answered with the flags the check-in must have.
    async fn check_replays(&mut self, world: &World, receipts: &[truth::Receipt]) -> Vec<String> {
        let replays: Vec<Vec<String>> = join_all(self.phones.iter_mut().enumerate().map(|(u, phone)| {
            let world = &world;
            let receipts = &receipts;
            async move {
                let mut out = Vec::new();
                for (i, item) in world.items.iter().enumerate() {
                    if item.user != u || !receipts[i].acked || matches!(item.payload, Payload::Household(_)) {
                        continue;
                    }
                    match phone.post(item.path(), item.body.clone(), false).await {
                        Ok(a) if a.status == reqwest::StatusCode::OK => {
                            if let Payload::Checkin(_) = item.payload {
                                let e = &receipts[i].expect;
                                for (what, answer) in [("first answer", &receipts[i].answer), ("replay", &a.body)] {
                                    let flags = truth::answer_flags(answer);
                                    if !e.admits(&flags) {
                                        out.push(format!("check-in {} ({what}) has flags {flags:?}, must have {}", item.id, truth::describe_expect(e)));
                                    }
                                }
                            }
                        }
                        Ok(a) => out.push(format!("acknowledged {} {} is not stored: resending it answered {} {}", kind(item), item.id, a.status, a.body)),
                        Err(e) => out.push(format!("resending {} {}: {e:#}", kind(item), item.id)),
                    }
                }
                out
            }
        }))
        .await;
        replays.into_iter().flatten().collect()
    }

    /// Attendance days of every simulated person, per month and county, against the truth's
    /// ranges.
    async fn check_attendance(
        &mut self,
        world: &World,
        receipts: &[truth::Receipt],
    ) -> anyhow::Result<Vec<String>> {
        let mut found = Vec::new();
        let expected_days = truth::attendance(world, receipts);
        let months: BTreeSet<Month> = expected_days.keys().map(|k| k.2).collect();
        let counties: BTreeSet<String> = world.villages.iter().map(|v| v.county.clone()).collect();
        let ours: HashMap<&str, usize> = self
            .user_ids
            .iter()
            .enumerate()
            .map(|(u, id)| (id.as_str(), u))
            .collect();
        let village_codes: BTreeSet<&str> =
            world.villages.iter().map(|v| v.code.as_str()).collect();
        let mut seen: BTreeSet<truth::PersonMonth> = BTreeSet::new();
        for m in &months {
            for county in &counties {
                let answer = self.admins[0]
                    .get(&format!("/api/v1/attendance?month={m}&county={county}"))
                    .await?;
                for person in answer["people"].as_array().cloned().unwrap_or_default() {
                    let village = person["village_code"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    if !village_codes.contains(village.as_str()) {
                        continue;
                    }
                    // Attendance lists everyone who must check in: one with no check-in at
                    // all is the server's absentee, not a check-in the truth must know of.
                    let absent = person["no_checkins"] == true;
                    let known = person["user_id"].as_str().and_then(|id| ours.get(id));
                    let Some(&u) = known else {
                        if absent {
                            continue;
                        }
                        found.push(format!("attendance {m}: someone the simulator does not know checked in at {village}: {person}"));
                        continue;
                    };
                    let key = (u, village.clone(), *m);
                    if absent && !expected_days.contains_key(&key) {
                        continue;
                    }
                    let (present, flagged) = (
                        person["days_present"].as_u64().unwrap_or(0) as u32,
                        person["days_flagged"].as_u64().unwrap_or(0) as u32,
                    );
                    match expected_days.get(&key) {
                        Some(&(p0, p1, f0, f1)) => {
                            if !(p0..=p1).contains(&present) || !(f0..=f1).contains(&flagged) {
                                found.push(format!("attendance {m} of {} at {village}: server {present} days present and {flagged} flagged, truth {p0}..={p1} and {f0}..={f1}", world.users[u].phone));
                            }
                        }
                        None => found.push(format!(
                            "attendance {m} of {} at {village} on the server, none in truth",
                            world.users[u].phone
                        )),
                    }
                    seen.insert(key);
                }
            }
        }
        for key in expected_days.keys() {
            if !seen.contains(key) {
                found.push(format!(
                    "attendance {} of {} at {}: missing on the server",
                    key.2, world.users[key.0].phone, key.1
                ));
            }
        }
        Ok(found)
    }

    /// The ledger figures of every simulated village and of the city for `month`, on both
    /// bases, against the truth.
    async fn check_ledger(
        &mut self,
        world: &World,
        receipts: &[truth::Receipt],
        month: Month,
    ) -> Vec<String> {
        let expected = truth::ledger(world, receipts, month);
        self.compare_ledger(world, &expected, month).await
    }

    /// The ledger figures of every simulated village and of the city (their sum) for `month`,
    /// on both bases, against `expected` (per village: approved, including pending).
    async fn compare_ledger(
        &mut self,
        world: &World,
        expected: &[[BTreeMap<String, i64>; 2]],
        month: Month,
    ) -> Vec<String> {
        let mut found = Vec::new();
        let nodes: Vec<(String, String, usize)> = world
            .villages
            .iter()
            .enumerate()
            .map(|(v, village)| ("village".to_owned(), village.code.clone(), v))
            .chain([(
                "city".to_owned(),
                taizhang_core::ledger::node::CITY.to_owned(),
                usize::MAX,
            )])
            .collect();
        let admins = self.admins.len();
        let answers = join_all(self.admins.iter_mut().zip(shares(&nodes, admins)).map(
            |(admin, mine)| async move {
                let mut out = Vec::new();
                for (level, code, v) in mine {
                    let node = admin
                        .get(&format!(
                            "/api/v1/inventory?level={level}&code={code}&month={month}"
                        ))
                        .await;
                    out.push((code, v, node));
                }
                out
            },
        ))
        .await;
        let mut city: [BTreeMap<String, i64>; 2] = Default::default();
        for figures in expected {
            for b in 0..2 {
                for (k, n) in &figures[b] {
                    *city[b].entry(k.clone()).or_insert(0) += n;
                }
            }
        }
        for (code, v, node) in answers.into_iter().flatten() {
            let node = match node {
                Ok(node) => node,
                Err(e) => {
                    found.push(format!("ledger of {code}: {e:#}"));
                    continue;
                }
            };
            let truth = if v == usize::MAX { &city } else { &expected[v] };
            let rows = node["node"]["figures"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for (b, basis) in ["approved", "including_pending"].into_iter().enumerate() {
                let mut keys: BTreeSet<String> = truth[b].keys().cloned().collect();
                let mut server: BTreeMap<String, i64> = BTreeMap::new();
                for row in &rows {
                    let key = row["key"].as_str().unwrap_or_default().to_owned();
                    server.insert(key.clone(), row[basis].as_i64().unwrap_or_default());
                    keys.insert(key);
                }
                for key in keys {
                    // How many villages the node has is geography, not field work.
                    if key == "villages" {
                        continue;
                    }
                    let want = truth[b].get(&key).copied().unwrap_or(0);
                    let got = server.get(&key).copied().unwrap_or(0);
                    if want != got {
                        found.push(format!(
                            "ledger {code} {month} {basis} {key}: server {got}, truth {want}"
                        ));
                    }
                }
            }
        }

        found
    }

    /// The summary table printed at the end of a run.
    pub fn summary(&self, discrepancies: &[String]) -> String {
        let receipts = self.truth.receipts_now();
        let mut by_kind: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
        let mut flags_expected: BTreeMap<String, usize> = BTreeMap::new();
        let mut flags_seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, item) in self.world.items.iter().enumerate() {
            let e = by_kind.entry(kind(item)).or_default();
            e.0 += 1;
            if receipts[i].acked {
                e.1 += 1;
            }
            e.2 += receipts[i].sends as usize;
            if let Payload::Checkin(_) = item.payload {
                for f in &receipts[i].expect.must {
                    *flags_expected.entry(f.to_string()).or_default() += 1;
                }
                for f in truth::answer_flags(&receipts[i].answer) {
                    *flags_seen.entry(f).or_default() += 1;
                }
            }
            if let Payload::Household(s) = &item.payload {
                for f in &s.flags {
                    *flags_expected.entry(f.to_string()).or_default() += 1;
                }
                for f in truth::answer_flags(&receipts[i].answer) {
                    *flags_seen.entry(f).or_default() += 1;
                }
            }
        }
        let s = &self.stats;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "simulated {} villages × {} days, seed {}, {} staff accounts, {} households",
            self.world.villages.len(),
            self.world.days.len(),
            self.options.seed,
            self.world.users.len(),
            self.world.households.len()
        );
        let _ = writeln!(
            out,
            "{:<28} {:>9} {:>13} {:>7}",
            "submissions", "planned", "acknowledged", "sends"
        );
        for (k, (planned, acked, sends)) in &by_kind {
            let _ = writeln!(out, "{k:<28} {planned:>9} {acked:>13} {sends:>7}");
        }
        let _ = writeln!(
            out,
            "{:<28} {:>9}",
            "answers 201 / 200 (replay)",
            format!("{} / {}", Stats::get(&s.created), Stats::get(&s.replayed))
        );
        for (label, n) in [
            ("HTTP attempts", &s.attempts),
            ("retries", &s.retries),
            ("answers lost (injected)", &s.dropped_answers),
            ("timeouts", &s.timeouts),
            ("connection errors", &s.network_errors),
            ("5xx answers", &s.server_errors),
            ("gave up", &s.gave_up),
            ("logins / token refreshes", &s.logins),
            ("photos uploaded", &s.photos_uploaded),
            ("photos already there (HEAD)", &s.photos_present),
        ] {
            let value = if label.starts_with("logins") {
                format!("{} / {}", Stats::get(n), Stats::get(&s.refreshes))
            } else {
                Stats::get(n).to_string()
            };
            let _ = writeln!(out, "{label:<28} {value:>9}");
        }
        let _ = writeln!(out, "{:<28} {:>9} {:>13}", "flag", "expected", "raised");
        let keys: BTreeSet<&String> = flags_expected.keys().chain(flags_seen.keys()).collect();
        for k in keys {
            let _ = writeln!(
                out,
                "{k:<28} {:>9} {:>13}",
                flags_expected.get(k).unwrap_or(&0),
                flags_seen.get(k).unwrap_or(&0)
            );
        }
        let planted = self.world.planted();
        let _ = writeln!(
            out,
            "planted: {}",
            planted
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            out,
            "phases: setup {:.1} s, field {:.1} s, review {:.1} s, check {:.1} s",
            self.timings.setup.as_secs_f64(),
            self.timings.field.as_secs_f64(),
            self.timings.review.as_secs_f64(),
            self.timings.check.as_secs_f64()
        );
        if discrepancies.is_empty() {
            let _ = writeln!(out, "truth check: PASSED (every acknowledged submission once, statuses, flags, ledger of {} villages and the city, attendance)", self.world.villages.len());
        } else {
            let _ = writeln!(
                out,
                "truth check: FAILED, {} differences:",
                discrepancies.len()
            );
            for d in discrepancies.iter().take(40) {
                let _ = writeln!(out, "  - {d}");
            }
            if discrepancies.len() > 40 {
                let _ = writeln!(out, "  … and {} more", discrepancies.len() - 40);
            }
        }
        out
    }

    /// Server user id of a simulated user.
    pub fn user_id(&self, u: usize) -> &str {
        &self.user_ids[u]
    }
}

/// The staff's accounts, made by the city administrators over the API, shared out among
/// them; an account already there (a second run with the same seed) is fine.
async fn create_staff(admins: &mut [Phone], world: &World) -> anyhow::Result<()> {
    let users: Vec<usize> = (0..world.users.len()).collect();
    // As many shares as administrators' sessions: zip would drop the rest.
    let sessions = admins.len();
    let results = join_all(admins.iter_mut().zip(shares(&users, sessions)).map(|(admin, mine)| {
        async move {
            for u in mine {
                let user = &world.users[u];
                let mut body = json!({"phone": user.phone, "name": user.name, "role": user.role.api(), "password": user.password});
                match (user.village, &user.county) {
                    (Some(v), _) => body["villages"] = json!([world.villages[v].code]),
                    (None, Some(c)) => body["county"] = json!(c),
                    _ => {}
                }
                let answer = admin.post("/api/v1/users", body, false).await?;
                if !(answer.status.is_success() || answer.status == reqwest::StatusCode::CONFLICT) {
                    bail!("creating user {}: {} {}", user.phone, answer.status, answer.body);
                }
            }
            Ok::<(), anyhow::Error>(())
        }
    }))
    .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(())
}

/// The progress bar of the submissions to send (hidden unless `--progress`).
fn progress_bar(options: &Options, world: &World) -> anyhow::Result<indicatif::ProgressBar> {
    let bar = if options.progress {
        let total: usize = world
            .field
            .iter()
            .chain(&world.late)
            .map(Vec::len)
            .sum::<usize>()
            + world.corrections.len();
        indicatif::ProgressBar::new(total as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} 模拟 {bar:40} {pos}/{len} 次提交 ({per_sec}, 剩余 {eta}) {msg}",
            )?,
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    Ok(bar)
}

fn kind(item: &Item) -> &'static str {
    match item.payload {
        Payload::Household(_) => "household survey",
        Payload::Village(_) => "post-demand survey",
        Payload::Checkin(_) => "check-in",
    }
}

/// Sends one item as the phone's queue does: photos first (HEAD, then PUT if missing), then
/// the submission until the server answers; a second send of an acknowledged item must be
/// answered as a replay.
async fn send(phone: &mut Phone, world: &World, truth: &Truth, stats: &Stats, i: usize) {
    let item = &world.items[i];
    let before = truth.receipt(i);
    truth.update(i, |r| r.sends += 1);
    stats.count(&stats.done);
    if before.acked {
        match phone.post(item.path(), item.body.clone(), true).await {
            Ok(a) if a.status == reqwest::StatusCode::OK => {
                stats.count(&stats.replayed);
                if truth::answer_flags(&a.body) != truth::answer_flags(&before.answer) {
                    truth.discrepancy(format!(
                        "{} {} answered a resend with other flags: {} then {}",
                        kind(item),
                        item.id,
                        before.answer["flags"],
                        a.body["flags"]
                    ));
                }
            }
            Ok(a) => truth.discrepancy(format!(
                "{} {} resent: {} {} (must be 200, a replay)",
                kind(item),
                item.id,
                a.status,
                a.body
            )),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "a resend was given up"),
        }
        return;
    }
    for &p in &item.photos {
        let photo = &world.photos[p];
        if let Err(e) = phone.ensure_photo(&photo.sha, &photo.bytes, true).await {
            tracing::warn!(error = %format!("{e:#}"), "a photo upload was given up");
            truth.update(i, |r| r.uncertain = true);
            return;
        }
    }
    let expect = truth.expect_checkin(world, item);
    match phone.post(item.path(), item.body.clone(), true).await {
        Ok(a)
            if a.status == reqwest::StatusCode::CREATED || a.status == reqwest::StatusCode::OK =>
        {
            if a.status == reqwest::StatusCode::CREATED {
                stats.count(&stats.created);
            } else {
                stats.count(&stats.replayed);
            }
            stats.latency(a.latency);
            truth.acknowledged(world, i, expect, a);
        }
        Ok(a) => {
            stats.count(&stats.refused);
            truth.discrepancy(format!(
                "{} {} refused: {} {}",
                kind(item),
                item.id,
                a.status,
                a.body
            ));
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "a submission was given up");
            truth.update(i, |r| r.uncertain = true);
        }
    }
}

/// `serve --demo`'s field work on a database without check-ins: eight villages' enumerators
/// and first secretaries over the last six days (the phones upload it all now, and a check-in
/// older than the server's seven-day upload window would be flagged stale), played against the
/// server at `server` as their phones would (no network faults, no clock ahead), so that
/// attendance, flagged check-ins, the review queue and duplicate pairs all have something to
/// show. Returns the submissions acknowledged.
pub async fn demo_field_work(server: String) -> anyhow::Result<usize> {
    let mut options = Options::new(vec![server]);
    options.villages = 8;
    options.days = 6;
    options.households_per_village = 4;
    options.concurrency = 4;
    options.fault_rate = 0.0;
    options.photo_width = 640;
    options.future_clock = false;
    let mut simulation = Simulation::prepare(options).await?;
    simulation.play_field().await;
    Ok(simulation.acked_count())
}

/// The truth check counts everything the server holds in the villages played and in the city,
/// so on a server that already holds surveys or check-ins it would print hundreds of
/// differences that say nothing about the server: refuse up front instead.
async fn require_fresh_server(options: &Options) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()?;
    let server = options
        .servers
        .first()
        .map(|s| s.trim_end_matches('/'))
        .context("no --server given")?;
    let login: Value = client
        .post(format!("{server}/api/v1/auth/login"))
        .json(&json!({
            "phone": options.admin_phone,
            "password": options.admin_password,
            "device_id": "sim-fresh-check",
        }))
        .send()
        .await
        .with_context(|| format!("reaching {server}"))?
        .error_for_status()
        .context("the city administrator logs in")?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .context("the login answer has no access token")?;
    let get = |path: String| {
        let request = client
            .get(format!("{server}{path}"))
            .bearer_auth(token)
            .send();
        async move {
            let page: Value = request.await?.error_for_status()?.json().await?;
            anyhow::Ok(
                page["items"]
                    .as_array()
                    .is_some_and(|items| !items.is_empty()),
            )
        }
    };
    let today = taizhang_core::domain::time::today();
    let first = today - chrono::Duration::days(i64::from(options.days) + 1);
    let mut months = vec![Month::containing(first)];
    while let Some(&last) = months.last() {
        if last >= Month::containing(today) {
            break;
        }
        months.push(last.next());
    }
    let mut held = Vec::new();
    if get("/api/v1/surveys?limit=1".into()).await? {
        held.push("surveys".to_owned());
    }
    for month in months {
        if get(format!("/api/v1/checkins?month={month}&limit=1")).await? {
            held.push(format!("check-ins of {month}"));
        }
    }
    if !held.is_empty() {
        bail!(
            "{server} already holds {}: the simulator checks the server against what it sent \
             itself, so it needs a fresh database (start the server on a new --data-dir with \
             --demo --demo-households 0)",
            held.join(", ")
        );
    }
    Ok(())
}

/// `taizhang simulate`: prepare, play, check, print; an error when the check fails.
pub fn main(args: SimulateArgs) -> anyhow::Result<()> {
    let admin_password = std::env::var("TAIZHANG_SIM_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "demo-city-0001".into());
    let options = Options {
        servers: args.servers,
        villages: args.villages,
        days: args.days,
        seed: args.seed,
        households_per_village: args.households_per_village,
        concurrency: args.concurrency.max(1),
        fault_rate: args.fault_rate,
        admin_phone: args.admin_phone,
        admin_password,
        upload_window_days: args.upload_window_days,
        reuse_bits: args.photo_reuse_bits,
        give_up_after: Duration::from_secs(args.give_up_after_secs),
        photo_width: args.photo_width,
        progress: !args.quiet,
        months: args.months,
        future_clock: true,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let baseline = if args.bench {
            Some(bench::baselines(&options, args.baseline_database_url.as_deref()).await?)
        } else {
            None
        };
        require_fresh_server(&options).await?;
        let mut sim = Simulation::prepare(options).await?;
        let setup_peak = bench::peaks_then_reset(&args.server_pids);
        sim.play().await?;
        let mut discrepancies = sim.check().await?;
        print!("{}", sim.summary(&discrepancies));
        if sim.options.months >= 2 {
            let second = sim.second_month().await?;
            print!("{}", second.summary());
            discrepancies.extend(second.found);
        }
        if let Some(baseline) = baseline {
            let mut row = bench::measure(&sim, &baseline, &args.server_pids);
            row.setup_peak_mib = setup_peak;
            row.passed = discrepancies.is_empty();
            print!("{}", bench::table(&[("this run".to_owned(), row)]));
        }
        if discrepancies.is_empty() {
            Ok(())
        } else {
            bail!("the truth check found {} differences", discrepancies.len())
        }
    })
}
