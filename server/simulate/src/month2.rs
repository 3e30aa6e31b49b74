//! Playing the second month ([`revisit`]) against the server: first syncs, revisits and
//! special-post check-ins by `worker_ref`, incremental syncs, then the truth check.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, Timelike};
use futures_util::future::join_all;
use serde_json::{json, Value};

use super::phone::Phone;
use super::revisit::{self, Revisit, Synced, VillageMonth};
use super::truth::{self, Counted};
use super::world::{enumerator_of, mix, secretary_of, Role, World};
use super::Simulation;
use crate::photos::{jpeg, with_exif, ExifSpec, Scene};
use taizhang_core::domain::{time, Month};

/// What the second month did and found.
#[derive(Debug, Default)]
pub struct SecondMonth {
    pub sync_pages: usize,
    pub households_synced: usize,
    pub revisits: usize,
    pub acked: usize,
    pub stale_expected: usize,
    pub newborns: usize,
    pub checkins: usize,
    /// Revisits and check-ins acknowledged per second of the sending phase.
    pub per_second: f64,
    pub elapsed: Duration,
    pub found: Vec<String>,
}

impl SecondMonth {
    /// The lines printed after the first month's summary.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "第二个月（同步复访）: sync pages {}, households synced {}, revisits {} (acknowledged {}, stale bases {}, newborns {}), worker_ref check-ins {}, {:.1} submissions/s, {:.1} s\n",
            self.sync_pages, self.households_synced, self.revisits, self.acked,
            self.stale_expected, self.newborns, self.checkins, self.per_second,
            self.elapsed.as_secs_f64()
        );
        if self.found.is_empty() {
            out.push_str("second month truth check: passed\n");
        }
        for f in self.found.iter().take(50) {
            out.push_str(&format!("  second month: {f}\n"));
        }
        out
    }
}

/// Sends one submission until answered: acknowledged (201, or 200 for a replay) or not.
async fn submit(phone: &mut Phone, path: &str, body: &Value, found: &mut Vec<String>) -> bool {
    match phone.post(path, body.clone(), true).await {
        Ok(a) if a.status.is_success() => true,
        Ok(a) => {
            found.push(format!(
                "{path} {} refused: {} {}",
                body["submission_id"], a.status, a.body
            ));
            false
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "a second-month submission was given up");
            false
        }
    }
}

/// A fresh check-in photo of the village, taken now.
fn checkin_photo(seed: u64, at: (f64, f64), width: u32) -> (String, Arc<Vec<u8>>) {
    let local = local_now();
    let stamp = local.format("%Y:%m:%d %H:%M:%S").to_string();
    let spec = ExifSpec {
        taken_at: &stamp,
        offset: "+08:00",
        lat: at.0,
        lon: at.1,
        orientation: 1,
    };
    let bytes = with_exif(
        &jpeg(&Scene::new(seed).render(width, width * 3 / 4, 0.0), 85),
        &spec,
    );
    (sha256_hex(&bytes), Arc::new(bytes))
}

/// Now, in China's time (UTC+8).
fn local_now() -> DateTime<FixedOffset> {
    let now = chrono::Utc::now();
    FixedOffset::east_opt(8 * 3600).map_or_else(|| now.fixed_offset(), |o| now.with_timezone(&o))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The photo of one of the user's first-month submissions, uploaded by them.
fn first_photo(world: &World, user: usize) -> Option<usize> {
    world
        .items
        .iter()
        .find(|it| it.user == user && !it.photos.is_empty())
        .and_then(|it| it.photos.first().copied())
}

impl Simulation {
    /// Every field phone syncs from `cursors` (none: a first sync), all at once.
    async fn sync_all(
        &mut self,
        cursors: &BTreeMap<usize, Synced>,
    ) -> BTreeMap<usize, anyhow::Result<Synced>> {
        let world = self.world.clone();
        let answers = join_all(
            self.phones
                .iter_mut()
                .enumerate()
                .filter(|(u, _)| world.users[*u].role != Role::Reviewer)
                .map(|(u, phone)| {
                    let cursor = cursors.get(&u).and_then(|s| s.cursor.clone());
                    async move { (u, revisit::sync(phone, cursor).await) }
                }),
        )
        .await;
        answers.into_iter().collect()
    }

    /// The revisits of every village, planned from its enumerator's first sync.
    fn plan_second_month(&self, first: &BTreeMap<usize, Synced>) -> Vec<Revisit> {
        let world = &*self.world;
        // The first month ends yesterday (its last corrections in the evening): the revisits
        // are today's, in the past, at distinct seconds, so that "latest by survey time" is
        // what the plan says whatever the hour the simulation runs.
        let now = local_now();
        let midnight = now - chrono::Duration::seconds(i64::from(now.num_seconds_from_midnight()));
        let start =
            (now - chrono::Duration::hours(10)).max(midnight + chrono::Duration::minutes(1));
        let window = (now - chrono::Duration::minutes(1) - start).max(chrono::Duration::zero());
        let most = world.households.len().max(1) as i32 * 2;
        let step = (window / most)
            .min(chrono::Duration::minutes(7))
            .max(chrono::Duration::seconds(1));
        let later = (window / 2).min(chrono::Duration::hours(1));
        let mut out = Vec::new();
        for (v, village) in world.villages.iter().enumerate() {
            let (e, s) = (enumerator_of(v), secretary_of(v));
            let (Some(synced), Some(pe), Some(ps)) =
                (first.get(&e), first_photo(world, e), first_photo(world, s))
            else {
                continue;
            };
            let devices = [
                json!({"device_id": world.users[e].device, "app_version": "1.5.0"}),
                json!({"device_id": world.users[s].device, "app_version": "1.5.0"}),
            ];
            let month = VillageMonth {
                seed: self.options.seed ^ 0x2e_d0,
                village_code: &village.code,
                position: village.home,
                enumerator: e,
                secretary: s,
                photos: [&world.photos[pe].sha, &world.photos[ps].sha],
                device: [&devices[0], &devices[1]],
                start,
                step,
                later: later.max(step),
            };
            out.extend(month.plan(synced));
        }
        out
    }

    /// Sends the revisits, each phone its own, all phones at once; returns each revisit with
    /// whether it was acknowledged.
    async fn send_revisits(
        &mut self,
        plan: Vec<Revisit>,
        found: &mut Vec<String>,
    ) -> Vec<(Revisit, bool)> {
        let world = self.world.clone();
        let mut mine: Vec<Vec<Revisit>> = vec![Vec::new(); self.phones.len()];
        for r in plan {
            mine[r.user].push(r);
        }
        let results = join_all(self.phones.iter_mut().zip(mine).enumerate().map(
            |(u, (phone, revisits))| {
                let world = &world;
                async move {
                    let mut found = Vec::new();
                    let mut out = Vec::new();
                    if let Some(p) = first_photo(world, u) {
                        let photo = &world.photos[p];
                        if let Err(e) = phone.ensure_photo(&photo.sha, &photo.bytes, true).await {
                            found.push(format!("user {u}'s photo: {e:#}"));
                        }
                    }
                    for (k, r) in revisits.into_iter().enumerate() {
                        let path = "/api/v1/surveys/households";
                        let mut acked = submit(phone, path, &r.body, &mut found).await;
                        if acked && k % 5 == 4 {
                            // The queue sent it again: a replay.
                            acked = submit(phone, path, &r.body, &mut found).await;
                        }
                        out.push((r, acked));
                    }
                    (out, found)
                }
            },
        ))
        .await;
        let mut sent = Vec::new();
        for (out, more) in results {
            sent.extend(out);
            found.extend(more);
        }
        sent
    }

    /// Each village's first secretary checks in up to three post holders by `worker_ref`.
    async fn worker_ref_checkins(
        &mut self,
        first: &BTreeMap<usize, Synced>,
        found: &mut Vec<String>,
    ) -> usize {
        let world = self.world.clone();
        let width = self.options.photo_width.clamp(64, 512);
        let seed = self.options.seed;
        let jobs = join_all(self.phones.iter_mut().enumerate().map(|(u, phone)| {
            let world = &world;
            async move {
                let mut found = Vec::new();
                let mut done = 0;
                let user = &world.users[u];
                let (Role::Secretary, Some(v)) = (user.role, user.village) else {
                    return (done, found);
                };
                let village = &world.villages[v];
                let Some(synced) = first.get(&enumerator_of(v)) else {
                    return (done, found);
                };
                for (k, worker_ref) in revisit::worker_refs(synced, &village.code).into_iter().take(3).enumerate() {
                    let (sha, bytes) = checkin_photo(mix(seed, v as u64, 50 + k as u64), village.home, width);
                    if let Err(e) = phone.ensure_photo(&sha, &bytes, true).await {
                        found.push(format!("check-in photo: {e:#}"));
                        continue;
                    }
                    let at = local_now() - chrono::Duration::minutes(30 - k as i64);
                    let body = json!({
                        "submission_id": uuid::Uuid::now_v7().to_string(), "kind": "special_post",
                        "village_code": village.code, "worker_id_number": null, "worker_ref": worker_ref,
                        "captured_at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
                        "location": {"lat": village.home.0, "lon": village.home.1, "accuracy_m": 10.0, "crs": "wgs84"},
                        "mock_location": false, "photo": sha,
                        "device": {"device_id": user.device, "app_version": "1.5.0"},
                    });
                    if submit(phone, "/api/v1/checkins", &body, &mut found).await {
                        done += 1;
                    }
                }
                (done, found)
            }
        }))
        .await;
        let mut total = 0;
        for (done, more) in jobs {
            total += done;
            found.extend(more);
        }
        total
    }

    /// The second month: first syncs, revisits (some stale, some with a newborn), check-ins
    /// by `worker_ref`, incremental syncs, and the check of what the server shows.
    pub async fn second_month(&mut self) -> anyhow::Result<SecondMonth> {
        let started = Instant::now();
        let mut report = SecondMonth::default();
        let mut first = BTreeMap::new();
        for (u, synced) in self.sync_all(&BTreeMap::new()).await {
            let synced = synced?;
            report.sync_pages += synced.pages;
            report.households_synced += synced.households.len();
            first.insert(u, synced);
        }
        let plan = self.plan_second_month(&first);
        report.revisits = plan.len();
        report.stale_expected = plan.iter().filter(|r| r.stale).count();
        report.newborns = plan.iter().filter(|r| r.newborn).count();
        let sending = Instant::now();
        let mut found = Vec::new();
        let sent = self.send_revisits(plan, &mut found).await;
        report.acked = sent.iter().filter(|(_, a)| *a).count();
        report.checkins = self.worker_ref_checkins(&first, &mut found).await;
        report.per_second =
            (report.acked + report.checkins) as f64 / sending.elapsed().as_secs_f64().max(1e-9);

        let listed = self.list_surveys().await?;
        let next = self.sync_all(&first).await;
        for (v, _) in self.world.clone().villages.iter().enumerate() {
            let e = enumerator_of(v);
            let (Some(before), Some(Ok(delta))) = (first.get(&e), next.get(&e)) else {
                found.push(format!("village {v}: no incremental sync"));
                continue;
            };
            let after = before.merged(delta);
            let mine: Vec<(Revisit, bool)> = sent
                .iter()
                .filter(|(r, _)| r.village_code == self.world.villages[v].code)
                .cloned()
                .collect();
            found.extend(revisit::check(before, &after, &mine, &listed));
        }
        let month = Month::containing(local_now().date_naive());
        let expected = self.second_month_ledger(&first, &sent, month);
        let world = self.world.clone();
        found.extend(self.compare_ledger(&world, &expected, month).await);
        report.found = found;
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// The ledger of `month` once the revisits are in: the first month's truth, with each
    /// revisited household's version as its enumerator synced it replaced by its latest
    /// acknowledged revisit (by survey time). Revisits are never reviewed, so the approved
    /// basis stays the first month's.
    fn second_month_ledger(
        &self,
        first: &BTreeMap<usize, Synced>,
        sent: &[(Revisit, bool)],
        month: Month,
    ) -> Vec<[BTreeMap<String, i64>; 2]> {
        let world = &*self.world;
        let mut expected = truth::ledger(world, &self.truth.receipts_now(), month);
        let mut latest: BTreeMap<&str, &Revisit> = BTreeMap::new();
        for (r, acked) in sent {
            if *acked
                && Month::containing(r.surveyed_at.date_naive()) <= month
                && latest
                    .get(r.household_id.as_str())
                    .is_none_or(|l| l.surveyed_at < r.surveyed_at)
            {
                latest.insert(&r.household_id, r);
            }
        }
        let in_month = |at: &Value| {
            DateTime::parse_from_rfc3339(at.as_str().unwrap_or_default())
                .is_ok_and(|t| Month::containing(time::local(t.to_utc()).date_naive()) == month)
        };
        for (v, village) in world.villages.iter().enumerate() {
            let Some(before) = first.get(&enumerator_of(v)) else {
                continue;
            };
            let f = &mut expected[v][1];
            for (id, r) in latest
                .iter()
                .filter(|(_, r)| r.village_code == village.code)
            {
                let Some(old) = before.households.get(*id) else {
                    continue;
                };
                Counted::of_json(old, &old["members"]).add_to(f, -1);
                Counted::of_json(&r.body["household"], &r.body["members"]).add_to(f, 1);
                let surveyed = i64::from(in_month(&r.body["surveyed_at"]))
                    - i64::from(in_month(&old["surveyed_at"]));
                *f.entry("households_surveyed".into()).or_insert(0) += surveyed;
            }
            truth::finish_figures(f);
        }
        expected
    }
}
