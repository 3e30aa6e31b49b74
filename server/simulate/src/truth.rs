//! The simulator's ground truth: what each phone sent and what the server acknowledged, the
//! flags each check-in must earn (decided when it is sent, from what the server already
//! holds of that person and village, the way the server decides), and the final check of the
//! server against all of it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, Utc};

use super::phone::Answer;
use super::world::{point, Item, Payload, Review, World};
use taizhang_core::checkins::verify::{speed_kmh, Neighbour};
use taizhang_core::domain::Month;
use taizhang_core::geography::distance_m;

/// Flags a check-in must have, and flags it may have (the upload window ran out while the
/// phone was still retrying: the server's clock decided).
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub must: BTreeSet<&'static str>,
    pub may: BTreeSet<&'static str>,
}

impl Expect {
    pub fn admits(&self, flags: &BTreeSet<String>) -> bool {
        self.must.iter().all(|f| flags.contains(*f))
            && flags
                .iter()
                .all(|f| self.must.contains(f.as_str()) || self.may.contains(f.as_str()))
    }
    fn describe(&self) -> String {
        let must: Vec<&str> = self.must.iter().copied().collect();
        let may: Vec<&str> = self.may.iter().copied().collect();
        if may.is_empty() {
            format!("{must:?}")
        } else {
            format!("{must:?} and perhaps {may:?}")
        }
    }
}

/// What became of one item.
#[derive(Debug, Clone, Default)]
pub struct Receipt {
    /// The server acknowledged it (201 or 200).
    pub acked: bool,
    /// The phone gave up on it: the server may or may not hold it.
    pub uncertain: bool,
    pub status: u16,
    pub answer: serde_json::Value,
    /// Order of first acknowledgement (one phone sends one thing at a time, so within a
    /// phone this is the order the server stored them in).
    pub sequence: u64,
    pub expect: Expect,
    pub sends: u32,
}

/// A check-in the server holds, as the travel and reuse rules see it.
#[derive(Debug, Clone, Copy)]
struct Held {
    captured: DateTime<Utc>,
    position: (f64, f64),
    accuracy: f64,
    phash: u64,
}

/// A check-in as the county-wide reuse rule sees it.
#[derive(Debug, Clone, Copy)]
struct CountyHeld {
    user: usize,
    day: NaiveDate,
    photo: usize,
    phash: u64,
}

impl CountyHeld {
    fn of(world: &World, user: usize, c: &super::world::Checkin) -> Self {
        CountyHeld {
            user,
            day: local_day(c.captured),
            photo: c.photo,
            phash: world.photos[c.photo].phash,
        }
    }
}

/// The local (Asia/Shanghai) day a check-in counts for.
fn local_day(at: DateTime<FixedOffset>) -> NaiveDate {
    let china = FixedOffset::east_opt(8 * 3600).unwrap_or(*at.offset());
    at.with_timezone(&china).date_naive()
}

/// Whether `other` makes `this` a reuse under the server's county rule: another person's
/// check-in in the county with the same photo, or a near copy within the window of days.
fn county_reuse(this: &CountyHeld, other: &CountyHeld, bits: u32) -> bool {
    other.user != this.user
        && (other.photo == this.photo
            || ((other.day - this.day).num_days().abs()
                <= taizhang_core::checkins::store::COUNTY_REUSE_DAYS
                && taizhang_core::photos::phash::distance(other.phash, this.phash) <= bits))
}

pub struct Truth {
    pub receipts: Mutex<Vec<Receipt>>,
    pub discrepancies: Mutex<Vec<String>>,
    by_user: Mutex<HashMap<usize, Vec<Held>>>,
    by_village: Mutex<HashMap<usize, Vec<Held>>>,
    /// Acknowledged check-ins by county, with their person, day and photo.
    by_county: Mutex<HashMap<String, Vec<CountyHeld>>>,
    /// Every planned check-in by county, acknowledged or not.
    planned_by_county: OnceLock<HashMap<String, Vec<CountyHeld>>>,
    sequence: AtomicU64,
    pub upload_window: Duration,
    pub reuse_bits: u32,
}

/// Server thresholds the model mirrors (the defaults of `taizhang serve`).
const MAX_ACCURACY_M: f64 = 100.0;
const FUTURE_TOLERANCE_MIN: i64 = 5;
const MAX_SPEED_KMH: f64 = 150.0;
const EXIF_TIME_TOLERANCE_MIN: i64 = 30;
const EXIF_DISTANCE_M: f64 = 1_000.0;

impl Truth {
    /// A copy of the receipts as they stand, for a check or a summary to read at leisure.
    pub fn receipts_now(&self) -> Vec<Receipt> {
        self.receipts.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn new(items: usize, upload_window: Duration, reuse_bits: u32) -> Self {
        Truth {
            receipts: Mutex::new(vec![Receipt::default(); items]),
            discrepancies: Mutex::new(Vec::new()),
            by_user: Mutex::new(HashMap::new()),
            by_village: Mutex::new(HashMap::new()),
            by_county: Mutex::new(HashMap::new()),
            planned_by_county: OnceLock::new(),
            sequence: AtomicU64::new(0),
            upload_window,
            reuse_bits,
        }
    }

    fn planned_by_county(&self, world: &World) -> &HashMap<String, Vec<CountyHeld>> {
        self.planned_by_county.get_or_init(|| {
            let mut out: HashMap<String, Vec<CountyHeld>> = HashMap::new();
            for item in &world.items {
                if let Payload::Checkin(c) = &item.payload {
                    out.entry(world.villages[c.village].county.clone())
                        .or_default()
                        .push(CountyHeld::of(world, item.user, c));
                }
            }
            out
        })
    }

    pub fn discrepancy(&self, text: String) {
        if let Ok(mut d) = self.discrepancies.lock() {
            d.push(text);
        }
    }

    pub fn receipt(&self, i: usize) -> Receipt {
        self.receipts
            .lock()
            .map(|r| r[i].clone())
            .unwrap_or_default()
    }

    pub fn update(&self, i: usize, f: impl FnOnce(&mut Receipt)) {
        if let Ok(mut r) = self.receipts.lock() {
            f(&mut r[i]);
        }
    }

    /// The flags a check-in must earn if the server stores it now, except the time window
    /// (see [`Truth::acknowledged`]).
    pub fn expect_checkin(&self, world: &World, item: &Item) -> Expect {
        let Payload::Checkin(c) = &item.payload else {
            return Expect::default();
        };
        let village = &world.villages[c.village];
        let photo = &world.photos[c.photo];
        let mut must = BTreeSet::new();
        let mut may = BTreeSet::new();
        if !village.fence.admits(point(c.position), c.accuracy) {
            must.insert("outside_geofence");
        }
        if c.accuracy > MAX_ACCURACY_M {
            must.insert("poor_accuracy");
        }
        if c.mock {
            must.insert("mock_location");
        }
        let captured = c.captured.with_timezone(&Utc);
        if captured - Utc::now() > Duration::minutes(FUTURE_TOLERANCE_MIN) {
            must.insert("future_time");
        }
        if (photo.exif_taken.with_timezone(&Utc) - captured).abs()
            > Duration::minutes(EXIF_TIME_TOLERANCE_MIN)
            || distance_m(point(photo.exif_position), point(c.position))
                > EXIF_DISTANCE_M + c.accuracy
        {
            must.insert("exif_mismatch");
        }
        let mine: Vec<Held> = self
            .by_user
            .lock()
            .map(|m| m.get(&item.user).cloned().unwrap_or_default())
            .unwrap_or_default();
        let theirs: Vec<Held> = self
            .by_village
            .lock()
            .map(|m| m.get(&c.village).cloned().unwrap_or_default())
            .unwrap_or_default();
        if mine.iter().chain(&theirs).any(|h| {
            taizhang_core::photos::phash::distance(h.phash, photo.phash) <= self.reuse_bits
        }) {
            must.insert("photo_reused");
        }
        // Across the county: certain once the other check-in was acknowledged before this one
        // is sent; possible for any other planned check-in (phones of other villages send
        // concurrently, and an answer lost after the commit leaves a stored check-in unknown).
        let county = &village.county;
        let this = CountyHeld::of(world, item.user, c);
        let acknowledged: Vec<CountyHeld> = self
            .by_county
            .lock()
            .map(|m| m.get(county).cloned().unwrap_or_default())
            .unwrap_or_default();
        if acknowledged
            .iter()
            .any(|o| county_reuse(&this, o, self.reuse_bits))
        {
            must.insert("photo_reused");
        } else if self
            .planned_by_county(world)
            .get(county)
            .is_some_and(|all| all.iter().any(|o| county_reuse(&this, o, self.reuse_bits)))
        {
            may.insert("photo_reused");
        }
        // The person's check-ins just before (or at the same time) and just after this one.
        let before = mine
            .iter()
            .filter(|h| h.captured <= captured)
            .max_by_key(|h| h.captured);
        let after = mine
            .iter()
            .filter(|h| h.captured > captured)
            .min_by_key(|h| h.captured);
        let this = Neighbour {
            captured_at: captured,
            position: point(c.position),
            accuracy_m: c.accuracy,
        };
        if before.into_iter().chain(after).any(|h| {
            speed_kmh(
                this,
                Neighbour {
                    captured_at: h.captured,
                    position: point(h.position),
                    accuracy_m: h.accuracy,
                },
            ) > MAX_SPEED_KMH
        }) {
            must.insert("impossible_travel");
        }
        if must.contains("photo_reused") {
            may.remove("photo_reused");
        }
        Expect { must, may }
    }

    /// The server acknowledged an item for the first time: it holds it from now on. The
    /// upload window is judged by the server's clock somewhere between the first attempt and
    /// this answer.
    pub fn acknowledged(&self, world: &World, i: usize, mut expect: Expect, answer: Answer) {
        let (first_attempt, answered) = (answer.first_attempt, answer.answered);
        let item = &world.items[i];
        if let Payload::Checkin(c) = &item.payload {
            let captured = c.captured.with_timezone(&Utc);
            let slack = Duration::seconds(2);
            if first_attempt - captured > self.upload_window + slack {
                expect.must.insert("stale_time");
            } else if answered - captured > self.upload_window - slack {
                expect.may.insert("stale_time");
            }
            let held = Held {
                captured,
                position: c.position,
                accuracy: c.accuracy,
                phash: world.photos[c.photo].phash,
            };
            if let Ok(mut m) = self.by_user.lock() {
                m.entry(item.user).or_default().push(held);
            }
            if let Ok(mut m) = self.by_village.lock() {
                m.entry(c.village).or_default().push(held);
            }
            if let Ok(mut m) = self.by_county.lock() {
                m.entry(world.villages[c.village].county.clone())
                    .or_default()
                    .push(CountyHeld::of(world, item.user, c));
            }
        }
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        self.update(i, |r| {
            r.acked = true;
            r.status = answer.status.as_u16();
            r.answer = answer.body;
            r.sequence = sequence;
            r.expect = expect;
        });
    }
}

fn flags_of(value: &serde_json::Value) -> BTreeSet<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub fn answer_flags(answer: &serde_json::Value) -> BTreeSet<String> {
    flags_of(&answer["flags"])
}

/// The status each household survey must end in (other items: "submitted").
pub fn final_statuses(world: &World, receipts: &[Receipt]) -> Vec<&'static str> {
    let superseded: std::collections::HashSet<usize> = world
        .items
        .iter()
        .enumerate()
        .filter_map(|(j, other)| match &other.payload {
            Payload::Household(s) if receipts[j].acked => s.replaces,
            _ => None,
        })
        .collect();
    world
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| match &item.payload {
            _ if superseded.contains(&i) => "superseded",
            Payload::Household(s) => match s.review {
                Review::Approve => "approved",
                Review::Reject => "rejected",
                Review::Revise => "revision_requested",
                Review::Leave => "submitted",
            },
            _ => "submitted",
        })
        .collect()
}

/// The ledger figures of each simulated village for `month`, on both bases, computed from
/// the plan and what was acknowledged: each household by its latest version (by survey time,
/// then id) among those in the basis, post demand from the last post-demand survey stored.
pub fn ledger(
    world: &World,
    receipts: &[Receipt],
    month: Month,
) -> Vec<[BTreeMap<String, i64>; 2]> {
    let statuses = final_statuses(world, receipts);
    let mut out: Vec<[BTreeMap<String, i64>; 2]> =
        vec![[BTreeMap::new(), BTreeMap::new()]; world.villages.len()];
    let bases: [&[&str]; 2] = [&["approved"], &["approved", "submitted", "reopened"]];
    for (b, basis) in bases.iter().enumerate() {
        let mut best: HashMap<usize, (NaiveDateTime, &str, usize)> = HashMap::new();
        for (i, item) in world.items.iter().enumerate() {
            let Payload::Household(s) = &item.payload else {
                continue;
            };
            if !receipts[i].acked || !basis.contains(&statuses[i]) {
                continue;
            }
            if Month::containing(s.surveyed_at.date_naive()) > month {
                continue;
            }
            let key = (s.surveyed_at.naive_utc(), item.id.as_str(), i);
            match best.get(&s.household) {
                Some(b) if (b.0, b.1) >= (key.0, key.1) => {}
                _ => {
                    best.insert(s.household, key);
                }
            }
        }
        for (household, (_, _, i)) in best {
            let Payload::Household(s) = &world.items[i].payload else {
                continue;
            };
            let f = &mut out[world.households[household].village][b];
            Counted::of_survey(s).add_to(f, 1);
            if Month::containing(s.surveyed_at.date_naive()) == month {
                *f.entry("households_surveyed".into()).or_insert(0) += 1;
            }
        }
    }
    let latest = latest_post_demand(world, receipts, month);
    for (v, figures) in out.iter_mut().enumerate() {
        for f in figures.iter_mut() {
            if let Some((_, i)) = latest.get(&v) {
                if let Payload::Village(d) = &world.items[*i].payload {
                    f.insert("villages_post_survey".into(), 1);
                    f.insert("willing_people".into(), d.willing);
                    for (post, needed, filled) in &d.posts {
                        *f.entry("post_needed".into()).or_insert(0) += needed;
                        *f.entry("post_filled".into()).or_insert(0) += filled;
                        *f.entry(format!("post_needed_{post}")).or_insert(0) += needed;
                        *f.entry(format!("post_filled_{post}")).or_insert(0) += filled;
                    }
                }
            }
            finish_figures(f);
        }
    }
    out
}

/// What the ledger counts of one household version, from the model or from the JSON the
/// server sent or the phone sends.
#[derive(Debug, Clone, Default)]
pub struct Counted {
    pub poverty: String,
    pub relocated: bool,
    pub members: Vec<CountedMember>,
}

/// What the ledger counts of one member.
#[derive(Debug, Clone, Default)]
pub struct CountedMember {
    pub capacity: String,
    pub status: Option<String>,
    pub post: Option<String>,
    pub wants_post: bool,
    pub trade: Option<String>,
    pub at_risk: bool,
    pub safety_net: bool,
}

impl Counted {
    pub fn of_survey(s: &super::world::Survey) -> Self {
        Counted {
            poverty: s.poverty.to_owned(),
            relocated: s.relocated,
            members: s
                .members
                .iter()
                .map(|m| CountedMember {
                    capacity: m.capacity.to_owned(),
                    status: m.status.map(str::to_owned),
                    post: m.post.map(str::to_owned),
                    wants_post: m.wants_post,
                    trade: m.trade.map(str::to_owned),
                    at_risk: m.at_risk,
                    safety_net: !m.safety_net.is_empty(),
                })
                .collect(),
        }
    }

    /// From `household` (poverty status and relocation, as a synced household carries them at
    /// its top level and a survey body under `household`) and its `members`.
    pub fn of_json(household: &serde_json::Value, members: &serde_json::Value) -> Self {
        let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
        Counted {
            poverty: text(&household["poverty_status"]).unwrap_or_default(),
            relocated: household["relocated"] == true,
            members: members
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| CountedMember {
                    capacity: text(&m["labour_capacity"]).unwrap_or_default(),
                    status: text(&m["employment"]["status"]),
                    post: text(&m["employment"]["post_type"]),
                    wants_post: m["wants_public_post"] == true,
                    trade: text(&m["training"]["trade"]),
                    at_risk: m["at_risk"] == true,
                    safety_net: m["safety_net"].as_array().is_some_and(|n| !n.is_empty()),
                })
                .collect(),
        }
    }

    /// Adds (`sign` 1) or takes away (-1) this version's figures.
    pub fn add_to(&self, f: &mut BTreeMap<String, i64>, sign: i64) {
        let mut bump = |k: String| *f.entry(k).or_insert(0) += sign;
        bump("households".into());
        bump(format!("households_{}", self.poverty));
        if self.relocated {
            bump("relocated_households".into());
        }
        for m in &self.members {
            bump("population".into());
            bump(format!("capacity_{}", m.capacity));
            if m.capacity == "able" || m.capacity == "weak" {
                bump("labour_force".into());
                if self.relocated {
                    bump("relocated_labour".into());
                }
            }
            if let Some(status) = m.status.as_deref() {
                bump(format!("employment_{status}"));
                if !["student", "unemployed", "not_applicable"].contains(&status) {
                    bump("employed".into());
                }
                if status == "out_of_province" || status == "in_province_out_of_county" {
                    bump("out_migrants".into());
                }
                if let (Some(post), "public_welfare_post") = (m.post.as_deref(), status) {
                    bump(format!("public_welfare_{post}"));
                }
            }
            if m.wants_post {
                bump("wants_public_post".into());
            }
            if let Some(trade) = m.trade.as_deref() {
                bump("training_wanted".into());
                bump(format!("training_{trade}"));
            }
            if m.at_risk {
                bump("at_risk".into());
                if !m.safety_net {
                    bump("at_risk_without_safety_net".into());
                }
            }
        }
    }
}

/// Finishes a village's figures: the survey-coverage flags, the post gaps, no zeros.
pub fn finish_figures(f: &mut BTreeMap<String, i64>) {
    let surveyed = f.get("households_surveyed").copied().unwrap_or(0) > 0;
    f.insert("villages_household_survey".into(), i64::from(surveyed));
    // The simulator imports no lists: every known household is a surveyed one.
    let households = f.get("households").copied().unwrap_or(0);
    f.insert("households_known".into(), households);
    let gaps: Vec<(String, i64)> = f
        .iter()
        .filter_map(|(k, needed)| {
            k.strip_prefix("post_needed").map(|rest| {
                let filled = f.get(&format!("post_filled{rest}")).copied().unwrap_or(0);
                (format!("post_gap{rest}"), needed - filled)
            })
        })
        .collect();
    f.extend(gaps);
    f.retain(|_, v| *v != 0);
}

/// Per village, the post-demand survey of `month` stored last: (its sequence, its item).
fn latest_post_demand(
    world: &World,
    receipts: &[Receipt],
    month: Month,
) -> HashMap<usize, (u64, usize)> {
    let mut latest: HashMap<usize, (u64, usize)> = HashMap::new();
    for (i, item) in world.items.iter().enumerate() {
        if let Payload::Village(d) = &item.payload {
            if receipts[i].acked && d.month == month {
                let seq = receipts[i].sequence;
                if latest.get(&d.village).is_none_or(|(s, _)| seq > *s) {
                    latest.insert(d.village, (seq, i));
                }
            }
        }
    }
    latest
}

/// (simulated user, village code, month).
pub type PersonMonth = (usize, String, Month);
/// Days present (at least, at most) and days flagged (at least, at most).
pub type DayRange = (u32, u32, u32, u32);

/// Days of attendance per (user, village code, month): (present min, present max, flagged
/// min, flagged max). A check-in whose flags the server's clock decided counts both ways.
pub fn attendance(world: &World, receipts: &[Receipt]) -> BTreeMap<PersonMonth, DayRange> {
    // Per person and day: (some clean, some undecided, some flagged).
    // Per day: (some clean, some undecided, some flagged).
    let mut days: BTreeMap<PersonMonth, BTreeMap<String, (bool, bool, bool)>> = BTreeMap::new();
    for (i, item) in world.items.iter().enumerate() {
        let Payload::Checkin(c) = &item.payload else {
            continue;
        };
        if !receipts[i].acked {
            continue;
        }
        let local = c
            .captured
            .with_timezone(&taizhang_core::domain::time::china());
        let key = (
            item.user,
            world.villages[c.village].code.clone(),
            Month::containing(local.date_naive()),
        );
        let day = days
            .entry(key)
            .or_default()
            .entry(local.format("%Y-%m-%d").to_string())
            .or_default();
        let e = &receipts[i].expect;
        if !e.must.is_empty() {
            day.2 = true;
        } else if !e.may.is_empty() {
            day.1 = true;
        } else {
            day.0 = true;
        }
    }
    days.into_iter()
        .map(|(key, per_day)| {
            let mut r = (0, 0, 0, 0);
            for (clean, undecided, _) in per_day.values() {
                if *clean {
                    r.0 += 1;
                }
                if *clean || *undecided {
                    r.1 += 1;
                }
                if !clean && !undecided {
                    r.2 += 1;
                }
                if !clean {
                    r.3 += 1;
                }
            }
            (key, r)
        })
        .collect()
}

pub fn describe_expect(e: &Expect) -> String {
    e.describe()
}
