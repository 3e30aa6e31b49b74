//! The simulated month, planned up front and deterministically from the seed: the staff, the
//! households, every submission with the faults planted in it, and the order in which each
//! phone flushes its offline queue. Nothing here talks to the server (`play` does), so the
//! same seed against the same villages gives the same month.

use std::collections::HashSet;
use std::sync::Arc;
use taizhang_core::domain::time::china;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use geo::{Destination, Haversine, Point};
use serde_json::{json, Value};

use super::photos::{jpeg, with_exif, ExifSpec, Scene};
use taizhang_core::domain::{Month, Sex};
use taizhang_core::geography::Geofence;
use taizhang_core::random::SplitMix;

/// A village as the server describes it, with two positions picked against its geofence.
#[derive(Debug, Clone)]
pub struct Village {
    pub code: String,
    pub name: String,
    pub county: String,
    pub fence: Geofence,
    /// (lat, lon) WGS-84, well inside the fence: 150 m around it is inside too.
    pub home: (f64, f64),
    /// (lat, lon), far outside the fence.
    pub far: (f64, f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Enumerator,
    Secretary,
    Reviewer,
}

impl Role {
    pub fn api(self) -> &'static str {
        match self {
            Role::Enumerator => "enumerator",
            Role::Secretary => "first_secretary",
            Role::Reviewer => "county_reviewer",
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub phone: String,
    pub name: String,
    pub role: Role,
    pub village: Option<usize>,
    pub county: Option<String>,
    pub password: String,
    pub device: String,
}

/// A generated JPEG with EXIF, and what the server will read from it.
#[derive(Debug, Clone)]
pub struct Photo {
    pub sha: String,
    pub bytes: Arc<Vec<u8>>,
    pub phash: u64,
    pub exif_taken: DateTime<FixedOffset>,
    /// (lat, lon).
    pub exif_position: (f64, f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    pub id: String,
    pub sex: &'static str,
    pub birth: NaiveDate,
    pub relation: &'static str,
    pub capacity: &'static str,
    pub status: Option<&'static str>,
    pub post: Option<&'static str>,
    pub income: i64,
    pub wants_post: bool,
    pub trade: Option<&'static str>,
    pub at_risk: bool,
    pub safety_net: Vec<&'static str>,
}

/// A household as it really is (the truth); its surveys are versions of it.
#[derive(Debug, Clone)]
pub struct Household {
    pub village: usize,
    pub head_name: String,
    /// Surveyed without household number or head ID number: only a reviewer can tell it from
    /// a look-alike.
    pub keyless: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    Approve,
    Reject,
    /// Request a revision; the enumerator sends a correction naming the survey (`replaces`).
    Revise,
    /// Left in the queue: counts only "including pending".
    Leave,
}

/// One household survey (a version of a household).
#[derive(Debug, Clone)]
pub struct Survey {
    pub household: usize,
    pub surveyed_at: DateTime<FixedOffset>,
    pub poverty: &'static str,
    pub relocated: bool,
    pub members: Vec<Member>,
    /// Item index of the survey this one corrects.
    pub replaces: Option<usize>,
    pub review: Review,
    /// The survey flags the server must raise, and no others.
    pub flags: Vec<&'static str>,
}

/// A village post-demand survey.
#[derive(Debug, Clone)]
pub struct PostDemand {
    pub village: usize,
    pub month: Month,
    /// (post type, needed, filled).
    pub posts: Vec<(&'static str, i64, i64)>,
    pub willing: i64,
}

#[derive(Debug, Clone)]
pub struct Checkin {
    pub village: usize,
    pub captured: DateTime<FixedOffset>,
    /// (lat, lon).
    pub position: (f64, f64),
    pub accuracy: f64,
    pub mock: bool,
    pub photo: usize,
    /// Faults planted on purpose (for the summary; the expected flags are derived).
    pub planted: Vec<&'static str>,
}

#[derive(Debug, Clone)]
pub enum Payload {
    Household(Survey),
    Village(PostDemand),
    Checkin(Checkin),
}

/// One submission: who sends it, what it is, and the exact JSON the phone sends (always the
/// same bytes, so a resend is a replay).
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub user: usize,
    pub payload: Payload,
    pub body: Value,
    /// Photo indexes to have on the server first.
    pub photos: Vec<usize>,
}

impl Item {
    pub fn path(&self) -> &'static str {
        match self.payload {
            Payload::Household(_) => "/api/v1/surveys/households",
            Payload::Village(_) => "/api/v1/surveys/villages",
            Payload::Checkin(_) => "/api/v1/checkins",
        }
    }
}

/// The whole month.
pub struct World {
    pub villages: Vec<Village>,
    pub users: Vec<User>,
    pub households: Vec<Household>,
    pub photos: Vec<Photo>,
    pub items: Vec<Item>,
    /// Per user: the order in which the phone sends items during the field days (an item
    /// may appear twice: the app did not notice it had gone).
    pub field: Vec<Vec<usize>>,
    /// Per user: what is flushed after everyone else (stale queues found in a drawer).
    pub late: Vec<Vec<usize>>,
    /// Corrections, sent after the first review round by their enumerator.
    pub corrections: Vec<usize>,
    /// Duplicate pairs to merge: (item of the survivor's survey, item of the look-alike).
    pub merges: Vec<(usize, usize)>,
    /// The simulated days, oldest first.
    pub days: Vec<NaiveDate>,
}

pub struct Params {
    pub seed: u64,
    /// The registry the server lists (`GET /employers`): members employed by a workshop,
    /// leading enterprise or cooperative name one of their county of that kind.
    pub employers: crate::employers::DemoEmployers,
    pub days: u32,
    pub households_per_village: usize,
    pub photo_width: u32,
    pub reuse_bits: u32,
    /// When the plan is made: the future check-ins are planted ahead of it.
    pub now: DateTime<Utc>,
    /// Whether a phone may have a clock a day ahead (a check-in dated tomorrow); the demo
    /// has none, so that nothing in it is dated after now.
    pub future_clock: bool,
}

pub fn mix(a: u64, b: u64, c: u64) -> u64 {
    let mut r = SplitMix::new(a ^ b.rotate_left(17) ^ c.rotate_left(41) ^ 0x5151_7a1d);
    r.next_u64()
}

struct Rng(SplitMix);

impl Rng {
    fn new(a: u64, b: u64, c: u64) -> Self {
        Rng(SplitMix::new(mix(a, b, c)))
    }
    fn chance(&mut self, p: f64) -> bool {
        self.0.next_f64() < p
    }
    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n.max(1) as u64) as usize
    }
    fn pick<T: Copy>(&mut self, options: &[T]) -> T {
        options[self.below(options.len())]
    }
    fn weighted<T: Copy>(&mut self, options: &[(T, u32)]) -> T {
        let total: u32 = options.iter().map(|o| o.1).sum();
        let mut n = (self.0.next_u64() % u64::from(total.max(1))) as u32;
        for (value, weight) in options {
            if n < *weight {
                return *value;
            }
            n -= weight;
        }
        options[0].0
    }
    fn uuid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.0.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.0.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }
}

/// A position `metres` from `from` (lat, lon) on `bearing`.
pub fn moved(from: (f64, f64), bearing: f64, metres: f64) -> (f64, f64) {
    let p = Haversine.destination(Point::new(from.1, from.0), bearing, metres);
    (p.y(), p.x())
}

pub fn point(at: (f64, f64)) -> Point<f64> {
    Point::new(at.1, at.0)
}

/// A point well inside the fence (150 m around it inside too) and one far outside.
pub fn positions(fence: &Geofence, centroid: (f64, f64)) -> ((f64, f64), (f64, f64)) {
    let well_inside = |p: (f64, f64)| {
        fence.distance_outside_m(point(p)) == 0.0
            && (0..8)
                .all(|k| fence.distance_outside_m(point(moved(p, 45.0 * k as f64, 150.0))) == 0.0)
    };
    let mut home = centroid;
    'search: for ring in 0..40 {
        for k in 0..12 {
            let candidate = moved(centroid, 30.0 * k as f64, 150.0 * ring as f64);
            if well_inside(candidate) {
                home = candidate;
                break 'search;
            }
        }
    }
    // Far enough that no accuracy circle reaches back in, near enough for a day trip.
    let far = [25_000.0, 40_000.0, 60_000.0]
        .into_iter()
        .flat_map(|d| (0..8).map(move |k| (45.0 * k as f64, d)))
        .map(|(bearing, d)| moved(home, bearing, d))
        .find(|c| fence.distance_outside_m(point(*c)) > 5_000.0)
        .unwrap_or_else(|| moved(home, 0.0, 80_000.0));
    (home, far)
}

const STATUSES: &[(&str, u32)] = &[
    ("out_of_province", 22),
    ("in_province_out_of_county", 14),
    ("in_county", 14),
    ("special_post", 3),
    ("temporary_public_post", 1),
    ("public_welfare_post", 6),
    ("workshop", 2),
    ("leading_enterprise", 3),
    ("cooperative", 3),
    ("home_based", 4),
    ("self_employed", 4),
    ("farming", 16),
    ("unemployed", 5),
];
const POSTS: &[&str] = &[
    "cleaner",
    "forest_ranger",
    "road_keeper",
    "water_keeper",
    "safety_patrol",
    "village_assistant",
    "other",
];
const TRADES: &[&str] = &[
    "electrician",
    "welder",
    "cook",
    "domestic_service",
    "elderly_care",
    "driver",
    "construction",
    "e_commerce",
    "crop_farming",
    "livestock",
];

fn work(rng: &mut Rng, capacity: &str) -> (Option<&'static str>, Option<&'static str>, i64) {
    if capacity != "able" && capacity != "weak" {
        return (None, None, 0);
    }
    let status = rng.weighted(STATUSES);
    let post = (status == "public_welfare_post").then(|| rng.pick(POSTS));
    let income = match status {
        "unemployed" => 0,
        "temporary_public_post" => 800,
        _ => 500 + 100 * rng.below(45) as i64,
    };
    (Some(status), post, income)
}

fn member(
    rng: &mut Rng,
    region: &str,
    counter: u64,
    name: String,
    drawn: &crate::people::Drawn,
    on: NaiveDate,
) -> anyhow::Result<Member> {
    let id = crate::people::id_number(region, drawn, on, counter)?;
    let (birth, sex, relation) = (id.birth_date(), id.sex().as_str(), drawn.relation);
    let age = on.years_since(birth).unwrap_or(0);
    let capacity = match age {
        0..=15 => "none",
        16..=59 => rng.weighted(&[("able", 85), ("weak", 15)]),
        _ => rng.weighted(&[("weak", 30), ("lost", 40), ("none", 30)]),
    };
    let (status, post, income) = work(rng, capacity);
    let labour = status.is_some();
    let at_risk = rng.chance(0.05);
    Ok(Member {
        name,
        id: id.expose().to_owned(),
        sex,
        birth,
        relation,
        capacity,
        status,
        post,
        income,
        wants_post: labour && rng.chance(0.12),
        trade: (labour && rng.chance(0.2)).then(|| rng.pick(TRADES)),
        at_risk,
        safety_net: if at_risk && rng.chance(0.5) {
            vec![rng.pick(&["subsistence_allowance", "temporary_relief"])]
        } else {
            vec![]
        },
    })
}

pub fn member_json(m: &Member, employer: Option<String>) -> Value {
    json!({
        "name": m.name, "id_number": m.id, "sex": m.sex,
        "birth_date": m.birth.format("%Y-%m-%d").to_string(), "relation": m.relation,
        "labour_capacity": m.capacity,
        "employment": m.status.map(|s| json!({"status": s, "employer_id": employer, "post_type": m.post, "monthly_income_yuan": m.income})),
        "wants_public_post": m.wants_post,
        "training": {"wanted": m.trade.is_some(), "trade": m.trade},
        "at_risk": m.at_risk, "safety_net": m.safety_net,
    })
}

fn rfc3339(t: DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

fn device(user: &User) -> Value {
    json!({"device_id": user.device, "app_version": "1.4.2"})
}

/// Builds a photo: a village scene with the camera's EXIF, and what the server will hash.
fn make_photo(
    seed: u64,
    width: u32,
    taken: DateTime<FixedOffset>,
    at: (f64, f64),
) -> anyhow::Result<Photo> {
    let height = width * 3 / 4;
    let img = Scene::new(seed).render(width, height, 0.0);
    let plain = jpeg(&img, 82);
    let local = taken.with_timezone(&china());
    let bytes = with_exif(
        &plain,
        &ExifSpec {
            taken_at: &local.format("%Y:%m:%d %H:%M:%S").to_string(),
            offset: "+08:00",
            lat: at.0,
            lon: at.1,
            orientation: 1,
        },
    );
    let sha = taizhang_core::photos::intake::sha256_hex(&bytes);
    let analysis = taizhang_core::photos::intake::analyze(
        &bytes,
        &sha,
        &taizhang_core::photos::decode::ImageLimits::DEFAULT,
    )
    .map_err(|e| anyhow::anyhow!("generated photo does not pass intake: {e}"))?;
    Ok(Photo {
        sha,
        bytes: Arc::new(bytes),
        phash: analysis.phash,
        exif_taken: local,
        exif_position: at,
    })
}

/// What one village contributes, planned independently of the others (so villages can be
/// planned on several threads and the result does not depend on how many).
struct VillagePlan {
    households: Vec<Household>,
    photos: Vec<Photo>,
    /// Items with photo and household indexes local to the village.
    items: Vec<Item>,
    field: [Vec<usize>; 2],
    late: [Vec<usize>; 2],
    corrections: Vec<usize>,
    merges: Vec<(usize, usize)>,
}

/// Users of a village: enumerator at `2v`, first secretary at `2v + 1`; reviewers after all.
pub fn enumerator_of(v: usize) -> usize {
    2 * v
}
pub fn secretary_of(v: usize) -> usize {
    2 * v + 1
}

pub fn plan(params: &Params, villages: Vec<Village>) -> anyhow::Result<World> {
    let today = params.now.with_timezone(&china()).date_naive();
    // The month ends yesterday: every planned time is in the past.
    let days: Vec<NaiveDate> = (1..=params.days.max(1))
        .rev()
        .map(|back| today - Duration::days(i64::from(back)))
        .collect();
    let users = staff(params, &villages);

    // Plan villages on every core: photo generation is most of the work.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = villages.len().div_ceil(threads).max(1);
    let mut plans: Vec<(usize, anyhow::Result<VillagePlan>)> = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = villages
            .chunks(chunk)
            .enumerate()
            .map(|(c, slice)| {
                let users = &users;
                let days = &days;
                scope.spawn(move || {
                    slice
                        .iter()
                        .enumerate()
                        .map(|(i, village)| {
                            let v = c * chunk + i;
                            (v, plan_village(params, v, village, users, days))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(list) => plans.extend(list),
                Err(_) => plans.push((0, Err(anyhow::anyhow!("a planning thread panicked")))),
            }
        }
    });
    plans.sort_by_key(|(v, _)| *v);

    assemble(villages, users, days, plans)
}

/// The staff: an enumerator and a first secretary per village (in village order, see
/// [`enumerator_of`]), then a county reviewer per county.
fn staff(params: &Params, villages: &[Village]) -> Vec<User> {
    let run_tag = params.seed % 1000;
    let mut users = Vec::new();
    for v in 0..villages.len() {
        for role in [Role::Enumerator, Role::Secretary] {
            let n = users.len();
            users.push(User {
                phone: format!("17{run_tag:03}{n:06}"),
                name: staff_name(params.seed, n),
                role,
                village: Some(v),
                county: None,
                password: format!("sim-{}-{n}-pass", params.seed),
                device: format!("sim-phone-{n}"),
            });
        }
    }
    let mut counties: Vec<String> = villages.iter().map(|v| v.county.clone()).collect();
    counties.sort();
    counties.dedup();
    for county in counties {
        let n = users.len();
        users.push(User {
            phone: format!("17{run_tag:03}{n:06}"),
            name: staff_name(params.seed, n),
            role: Role::Reviewer,
            village: None,
            county: Some(county),
            password: format!("sim-{}-{n}-pass", params.seed),
            device: format!("sim-console-{n}"),
        });
    }
    users
}

/// A person's name for staff member `n` (what the console shows).
fn staff_name(seed: u64, n: usize) -> String {
    let mut rng = Rng::new(seed, n as u64, 0x57af);
    let mut roll = |lo: u32, hi: u32| lo + rng.below((hi - lo + 1) as usize) as u32;
    let sex = if roll(1, 100) <= 70 {
        Sex::Male
    } else {
        Sex::Female
    };
    crate::people::name(sex, None, &mut roll)
}

/// The world from the villages' plans, their local indexes made global.
fn assemble(
    villages: Vec<Village>,
    users: Vec<User>,
    days: Vec<NaiveDate>,
    plans: Vec<(usize, anyhow::Result<VillagePlan>)>,
) -> anyhow::Result<World> {
    let mut world = World {
        villages,
        users,
        households: Vec::new(),
        photos: Vec::new(),
        items: Vec::new(),
        field: Vec::new(),
        late: Vec::new(),
        corrections: Vec::new(),
        merges: Vec::new(),
        days,
    };
    world.field = vec![Vec::new(); world.users.len()];
    world.late = vec![Vec::new(); world.users.len()];
    for (v, plan) in plans {
        let plan = plan?;
        let (h0, p0, i0) = (
            world.households.len(),
            world.photos.len(),
            world.items.len(),
        );
        world.households.extend(plan.households);
        world.photos.extend(plan.photos);
        for mut item in plan.items {
            item.photos.iter_mut().for_each(|p| *p += p0);
            match &mut item.payload {
                Payload::Household(s) => {
                    s.household += h0;
                    if let Some(r) = s.replaces.as_mut() {
                        *r += i0;
                    }
                }
                Payload::Checkin(c) => c.photo += p0,
                Payload::Village(_) => {}
            }
            world.items.push(item);
        }
        for (k, user) in [enumerator_of(v), secretary_of(v)].into_iter().enumerate() {
            world.field[user] = plan.field[k].iter().map(|i| i + i0).collect();
            world.late[user] = plan.late[k].iter().map(|i| i + i0).collect();
        }
        world
            .corrections
            .extend(plan.corrections.iter().map(|i| i + i0));
        world
            .merges
            .extend(plan.merges.iter().map(|(a, b)| (a + i0, b + i0)));
    }
    Ok(world)
}

fn at_local(day: NaiveDate, hour: u32, minute: u32) -> DateTime<FixedOffset> {
    let naive = day.and_hms_opt(hour, minute.min(59), 0).unwrap_or_default();
    china()
        .from_local_datetime(&naive)
        .single()
        .unwrap_or_else(|| china().from_utc_datetime(&naive))
}

/// Plans one village: its households and surveys, corrections, post-demand surveys, check-ins
/// and the order its two phones flush them in. The steps run in this order and draw from one
/// generator, so their order is part of the plan.
fn plan_village(
    params: &Params,
    v: usize,
    village: &Village,
    users: &[User],
    days: &[NaiveDate],
) -> anyhow::Result<VillagePlan> {
    let mut planner = VillagePlanner::new(params, v, village, users, days);
    for h in 0..params.households_per_village {
        planner.household(h)?;
    }
    planner.corrections();
    planner.post_demand();
    for (k, user) in [planner.enumerator, planner.secretary]
        .into_iter()
        .enumerate()
    {
        planner.checkins(k, user)?;
    }
    planner.flush_order();
    Ok(planner.plan)
}

/// The state of planning one village.
struct VillagePlanner<'a> {
    params: &'a Params,
    v: usize,
    village: &'a Village,
    users: &'a [User],
    days: &'a [NaiveDate],
    rng: Rng,
    enumerator: usize,
    secretary: usize,
    plan: VillagePlan,
    /// Items each phone creates on each day (its offline queue fills up), by local index.
    created: [Vec<Vec<usize>>; 2],
    /// The last person number used.
    counter: u64,
    /// Head names used in the village.
    names: HashSet<String>,
    /// Perceptual hashes of the village's distinct photos.
    photo_hashes: Vec<u64>,
    photo_seed: u64,
}

/// A survey's review, as reviewers decide them.
fn review_of(rng: &mut Rng) -> Review {
    rng.weighted(&[
        (Review::Approve, 75),
        (Review::Reject, 7),
        (Review::Revise, 10),
        (Review::Leave, 8),
    ])
}

impl<'a> VillagePlanner<'a> {
    fn new(
        params: &'a Params,
        v: usize,
        village: &'a Village,
        users: &'a [User],
        days: &'a [NaiveDate],
    ) -> Self {
        VillagePlanner {
            params,
            v,
            village,
            users,
            days,
            rng: Rng::new(params.seed, v as u64, 1),
            enumerator: enumerator_of(v),
            secretary: secretary_of(v),
            plan: VillagePlan {
                households: Vec::new(),
                photos: Vec::new(),
                items: Vec::new(),
                field: [Vec::new(), Vec::new()],
                late: [Vec::new(), Vec::new()],
                corrections: Vec::new(),
                merges: Vec::new(),
            },
            created: [vec![Vec::new(); days.len()], vec![Vec::new(); days.len()]],
            // People are numbered from a seed-dependent base so that runs with other seeds on
            // the same database do not share ID numbers.
            counter: (params.seed.wrapping_mul(7919) % 20_000_000) + v as u64 * 400,
            names: HashSet::new(),
            photo_hashes: Vec::new(),
            photo_seed: mix(params.seed, v as u64, 2),
        }
    }

    /// A photo for this village; when `distinct`, one whose perceptual hash is far from every
    /// other distinct photo of the village, so that the server can only call one "reused"
    /// where the plan reuses it.
    fn fresh_photo(
        &mut self,
        taken: DateTime<FixedOffset>,
        at: (f64, f64),
        distinct: bool,
    ) -> anyhow::Result<usize> {
        for _ in 0..64 {
            self.photo_seed = self.photo_seed.wrapping_add(0x9E37_79B9);
            let photo = make_photo(self.photo_seed, self.params.photo_width, taken, at)?;
            let margin = self.params.reuse_bits + 6;
            if distinct
                && self
                    .photo_hashes
                    .iter()
                    .any(|h| taizhang_core::photos::phash::distance(*h, photo.phash) <= margin)
            {
                continue;
            }
            if distinct {
                self.photo_hashes.push(photo.phash);
            }
            self.plan.photos.push(photo);
            return Ok(self.plan.photos.len() - 1);
        }
        anyhow::bail!("no distinct photo found for village {}", self.village.code)
    }

    /// A head of household, and a name for them not yet used in the village.
    fn head(&mut self) -> (crate::people::Drawn, String) {
        let rng = &mut self.rng;
        let mut roll = |lo: u32, hi: u32| lo + rng.below((hi - lo + 1) as usize) as u32;
        let head = crate::people::head(&mut roll);
        loop {
            let name = crate::people::name(head.sex, None, &mut roll);
            let name = if self.names.contains(&name) {
                let second = crate::people::name(head.sex, Some(""), &mut roll);
                format!("{name}{}", second.chars().last().unwrap_or('明'))
            } else {
                name
            };
            if self.names.insert(name.clone()) {
                return (head, name);
            }
        }
    }

    /// The members of a household of `size` headed by `head_name`, as on `on`.
    fn members(
        &mut self,
        head: crate::people::Drawn,
        head_name: &str,
        size: usize,
        on: NaiveDate,
    ) -> anyhow::Result<Vec<Member>> {
        let village = self.village;
        let region = &village.code[..6];
        let surname: String = head_name.chars().take(1).collect();
        let rng = &mut self.rng;
        let mut roll = |lo: u32, hi: u32| lo + rng.below((hi - lo + 1) as usize) as u32;
        let mut drawn = vec![head];
        for k in 1..size {
            let relation = if k == 1 {
                "spouse"
            } else {
                ["child", "child", "parent", "grandchild"][roll(0, 3) as usize]
            };
            drawn.push(crate::people::relative(relation, &head, &mut roll));
        }
        let mut members = Vec::new();
        for d in drawn {
            self.counter += 1;
            let inherits = head.sex == Sex::Male && matches!(d.relation, "child" | "grandchild");
            let rng = &mut self.rng;
            let mut roll = |lo: u32, hi: u32| lo + rng.below((hi - lo + 1) as usize) as u32;
            let name = match d.relation {
                "head" => head_name.to_owned(),
                _ => crate::people::name(d.sex, inherits.then_some(surname.as_str()), &mut roll),
            };
            members.push(member(&mut self.rng, region, self.counter, name, &d, on)?);
        }
        Ok(members)
    }

    /// Household `h` and its surveys: the first by the enumerator; for the keyless household
    /// sometimes a look-alike by the first secretary, for the others sometimes a second
    /// survey later in the month.
    fn household(&mut self, h: usize) -> anyhow::Result<()> {
        let (head, head_name) = self.head();
        let keyless = h == 0;
        let days = self.days;
        let day = self.rng.below(days.len());
        let surveyed = at_local(
            days[day],
            9 + self.rng.below(8) as u32,
            self.rng.below(60) as u32,
        );
        let size_weights: &[(usize, u32)] = &[(1, 10), (2, 25), (3, 25), (4, 22), (5, 12), (6, 6)];
        let size = self.rng.weighted(size_weights);
        let members = self.members(head, &head_name, size, days[day])?;
        let rng = &mut self.rng;
        let poverty = rng.weighted(&[("lifted", 80), ("not_lifted", 5), ("monitored", 15)]);
        let relocated = rng.chance(0.08);
        let position = moved(
            self.village.home,
            rng.below(360) as f64,
            100.0 + rng.below(700) as f64,
        );
        self.plan.households.push(Household {
            village: self.v,
            head_name: head_name.clone(),
            keyless,
        });
        let photo = self.fresh_photo(surveyed, position, false)?;
        let survey = Survey {
            household: h,
            surveyed_at: surveyed,
            poverty,
            relocated,
            members: members.clone(),
            replaces: None,
            // One survey of every run is sent back, so that a correction is always played.
            review: if keyless {
                Review::Approve
            } else if self.v == 0 && h == 1 {
                Review::Revise
            } else {
                review_of(&mut self.rng)
            },
            flags: vec![],
        };
        let sent = Sent {
            head_name: &head_name,
            keyless,
            position,
            photo,
        };
        let first_survey = survey.clone();
        let first = self.push_survey(self.enumerator, &sent, survey);
        self.created[0][day].push(first);

        if keyless && self.rng.chance(0.7) && day + 1 < days.len() {
            self.look_alike(&sent, &first_survey, day, first);
        } else if !keyless && self.rng.chance(0.25) && day + 1 < days.len() {
            self.surveyed_again(&sent, &first_survey, day);
        }
        Ok(())
    }

    /// The first secretary surveys the same family again, writing the name with a full-width
    /// space, 30 m away: a look-alike household for a reviewer to merge.
    fn look_alike(&mut self, sent: &Sent<'_>, first_survey: &Survey, day: usize, first: usize) {
        let days = self.days;
        let later = day + 1 + self.rng.below(days.len() - day - 1);
        let mut chars = sent.head_name.chars();
        let spaced: String = chars
            .next()
            .into_iter()
            .chain(['\u{3000}'])
            .chain(chars)
            .collect();
        let survey = Survey {
            household: first_survey.household,
            surveyed_at: at_local(
                days[later],
                10 + self.rng.below(7) as u32,
                self.rng.below(60) as u32,
            ),
            poverty: first_survey.poverty,
            relocated: first_survey.relocated,
            members: first_survey.members.clone(),
            replaces: None,
            review: Review::Approve,
            // The same people in two households until the reviewer merges the pair; after
            // the merge they are one household's (the check runs after review), and the
            // look-alike is flagged on both sides.
            flags: vec!["possible_duplicate"],
        };
        let look_alike = Sent {
            head_name: &spaced,
            keyless: true,
            position: moved(sent.position, 45.0, 30.0),
            photo: sent.photo,
        };
        let dup = self.push_survey(self.secretary, &look_alike, survey);
        if let Payload::Household(original) = &mut self.plan.items[first].payload {
            original.flags.push("possible_duplicate");
        }
        // Held back to the end: its flags depend on the first survey being there.
        self.plan.late[1].push(dup);
        self.plan.merges.push((first, dup));
    }

    /// Surveyed again later in the month: someone's work changed.
    fn surveyed_again(&mut self, sent: &Sent<'_>, first_survey: &Survey, day: usize) {
        let days = self.days;
        let later = day + 1 + self.rng.below(days.len() - day - 1);
        let mut members = first_survey.members.clone();
        if let Some(m) = members.iter_mut().find(|m| m.status.is_some()) {
            let (status, post, income) = work(&mut self.rng, m.capacity);
            m.status = status;
            m.post = post;
            m.income = income;
            m.wants_post = !m.wants_post;
        }
        let survey = Survey {
            household: first_survey.household,
            surveyed_at: at_local(
                days[later],
                9 + self.rng.below(8) as u32,
                self.rng.below(60) as u32,
            ),
            poverty: first_survey.poverty,
            relocated: first_survey.relocated,
            members,
            replaces: None,
            review: review_of(&mut self.rng),
            flags: vec![],
        };
        let again = self.push_survey(
            self.enumerator,
            &Sent {
                keyless: false,
                ..*sent
            },
            survey,
        );
        self.created[0][later].push(again);
    }

    /// Corrections of the surveys sent back for revision: made on the evening of the last day.
    fn corrections(&mut self) {
        let last = self.days[self.days.len() - 1];
        let revised: Vec<usize> = self
            .plan
            .items
            .iter()
            .enumerate()
            .filter(|(_, item)| matches!(&item.payload, Payload::Household(s) if s.review == Review::Revise))
            .map(|(i, _)| i)
            .collect();
        for (k, i) in revised.into_iter().enumerate() {
            let Payload::Household(original) = self.plan.items[i].payload.clone() else {
                continue;
            };
            let household = self.plan.households[original.household].clone();
            let mut members = original.members.clone();
            if let Some(m) = members.iter_mut().find(|m| m.status.is_some()) {
                m.status = Some("in_county");
                m.post = None;
                m.income = 2600;
            } else if let Some(m) = members.first_mut() {
                m.at_risk = !m.at_risk;
                m.safety_net.clear();
            }
            let item = &self.plan.items[i];
            let photo = item.photos.first().copied().unwrap_or_default();
            let position = (
                item.body["location"]["lat"]
                    .as_f64()
                    .unwrap_or(self.village.home.0),
                item.body["location"]["lon"]
                    .as_f64()
                    .unwrap_or(self.village.home.1),
            );
            let survey = Survey {
                household: original.household,
                surveyed_at: at_local(last, 19, k as u32 % 60) + Duration::hours(k as i64 / 60),
                poverty: original.poverty,
                relocated: original.relocated,
                members,
                replaces: Some(i),
                review: self
                    .rng
                    .weighted(&[(Review::Approve, 8), (Review::Leave, 2)]),
                flags: vec![],
            };
            let sent = Sent {
                head_name: &household.head_name,
                keyless: household.keyless,
                position,
                photo,
            };
            let c = self.push_survey(self.enumerator, &sent, survey);
            self.plan.corrections.push(c);
        }
    }

    /// Post-demand surveys: one a month by the first secretary, the last month's sometimes
    /// filed twice (the later one counts).
    fn post_demand(&mut self) {
        let days = self.days;
        let mut months: Vec<(Month, usize)> = Vec::new();
        for (d, day) in days.iter().enumerate() {
            let month = Month::containing(*day);
            if months.last().is_none_or(|(m, _)| *m != month) {
                months.push((month, d));
            }
        }
        for (k, (month, first_day)) in months.iter().enumerate() {
            let end = months.get(k + 1).map_or(days.len(), |(_, d)| *d);
            let filings = if k + 1 == months.len() && self.rng.chance(0.3) {
                2
            } else {
                1
            };
            for _ in 0..filings {
                let day = first_day + self.rng.below(end - first_day);
                self.post_demand_survey(*month, day);
            }
        }
    }

    /// One post-demand survey of `month`, filed on day `day` of the run.
    fn post_demand_survey(&mut self, month: Month, day: usize) {
        let (village, rng) = (self.village, &mut self.rng);
        let posts: Vec<(&'static str, i64, i64)> = POSTS[..3 + rng.below(4)]
            .iter()
            .map(|p| {
                let needed = rng.below(6) as i64;
                (*p, needed, rng.below(needed as usize + 1) as i64)
            })
            .collect();
        let demand = PostDemand {
            village: self.v,
            month,
            posts,
            willing: rng.below(12) as i64,
        };
        let id = rng.uuid();
        let body = json!({
            "submission_id": id, "village_code": village.code, "month": month,
            "surveyed_at": rfc3339(at_local(self.days[day], 10, rng.below(60) as u32)),
            "location": {"lat": village.home.0, "lon": village.home.1, "accuracy_m": 8.0},
            "posts": demand.posts.iter().map(|(p, n, f)| json!({"post_type": p, "needed": n, "filled": f})).collect::<Vec<_>>(),
            "willing_people": demand.willing, "photos": [],
            "device": device(&self.users[self.secretary]),
        });
        self.plan.items.push(Item {
            id,
            user: self.secretary,
            payload: Payload::Village(demand),
            body,
            photos: vec![],
        });
        self.created[1][day].push(self.plan.items.len() - 1);
    }

    /// Check-ins of phone `k` (the enumerator's on most days, the first secretary's nearly
    /// every day); the first secretary's phone sometimes has a clock a day ahead.
    fn checkins(&mut self, k: usize, user: usize) -> anyhow::Result<()> {
        let mut last_photo: Option<usize> = None;
        let presence = if k == 0 { 0.7 } else { 0.9 };
        let days = self.days;
        for (d, day) in days.iter().enumerate() {
            if !self.rng.chance(presence) {
                continue;
            }
            let day_items = self.day_checkins(*day, &mut last_photo)?;
            for c in day_items {
                let i = self.push_checkin(user, c);
                self.created[k][d].push(i);
            }
        }
        if k == 1 && self.params.future_clock && self.rng.chance(0.3) {
            // A phone whose clock runs a day ahead.
            let ahead = self.params.now.with_timezone(&china()) + Duration::hours(26);
            let photo = self.fresh_photo(ahead, self.village.home, true)?;
            let c = Checkin {
                village: self.v,
                captured: ahead,
                position: self.village.home,
                accuracy: 9.0,
                mock: false,
                photo,
                planted: vec!["future_time"],
            };
            let i = self.push_checkin(user, c);
            self.plan.late[1].push(i);
        }
        Ok(())
    }

    /// One person's check-ins of a day present: the morning one, with its planted faults, and
    /// now and then a second, one from outside the fence or one after impossible travel.
    fn day_checkins(
        &mut self,
        day: NaiveDate,
        last_photo: &mut Option<usize>,
    ) -> anyhow::Result<Vec<Checkin>> {
        let (village, rng) = (self.village, &mut self.rng);
        let morning = at_local(day, 7 + rng.below(2) as u32, rng.below(60) as u32);
        let position = moved(village.home, rng.below(360) as f64, rng.below(60) as f64);
        let mut accuracy = 5.0 + rng.below(30) as f64;
        let mut planted = Vec::new();
        let mut mock = false;
        if rng.chance(0.04) {
            accuracy = 180.0;
            planted.push("poor_accuracy");
        }
        if rng.chance(0.03) {
            mock = true;
            planted.push("mock_location");
        }
        let photo = match *last_photo {
            Some(p) if self.rng.chance(0.05) => {
                // Yesterday's picture again: reused (and its EXIF time gives it away).
                planted.push("photo_reused");
                p
            }
            _ => {
                let taken = if self.rng.chance(0.03) {
                    planted.push("exif_mismatch");
                    morning - Duration::hours(3)
                } else {
                    morning
                };
                self.fresh_photo(taken, position, true)?
            }
        };
        *last_photo = Some(photo);
        let mut day_items = vec![Checkin {
            village: self.v,
            captured: morning,
            position,
            accuracy,
            mock,
            photo,
            planted,
        }];
        if self.rng.chance(0.08) {
            // A second check-in the same day: still one day of attendance.
            let noon = morning + Duration::hours(4);
            let position = moved(
                village.home,
                self.rng.below(360) as f64,
                self.rng.below(60) as f64,
            );
            let photo = self.fresh_photo(noon, position, true)?;
            day_items.push(Checkin {
                village: self.v,
                captured: noon,
                position,
                accuracy: 12.0,
                mock: false,
                photo,
                planted: vec![],
            });
        }
        if self.rng.chance(0.03) {
            // Checked in from town in the afternoon: outside the geofence.
            let afternoon = morning + Duration::hours(6);
            let photo = self.fresh_photo(afternoon, village.far, true)?;
            day_items.push(Checkin {
                village: self.v,
                captured: afternoon,
                position: village.far,
                accuracy: 15.0,
                mock: false,
                photo,
                planted: vec!["outside_geofence"],
            });
        }
        if self.rng.chance(0.03) {
            // 25 km in five minutes: a borrowed phone, or a spoofed position.
            let soon = morning + Duration::minutes(5);
            let photo = self.fresh_photo(soon, village.far, true)?;
            day_items.push(Checkin {
                village: self.v,
                captured: soon,
                position: village.far,
                accuracy: 10.0,
                mock: false,
                photo,
                planted: vec!["impossible_travel", "outside_geofence"],
            });
        }
        Ok(day_items)
    }

    /// The flush order: each evening the phone may have a signal; if so it sends its queue,
    /// sometimes newest first, sometimes with neighbours swapped; a few items it sends again.
    fn flush_order(&mut self) {
        let rng = &mut self.rng;
        for (k, per_day) in self.created.iter().enumerate() {
            let mut queue: Vec<usize> = Vec::new();
            let mut sent: Vec<usize> = Vec::new();
            for (d, items) in per_day.iter().enumerate() {
                queue.extend(items);
                let last_day = d + 1 == per_day.len();
                if !(last_day || rng.chance(0.6)) {
                    continue;
                }
                if rng.chance(0.3) {
                    queue.reverse();
                } else {
                    for j in 1..queue.len() {
                        if rng.chance(0.2) {
                            queue.swap(j - 1, j);
                        }
                    }
                }
                let mut again = Vec::new();
                for i in queue.drain(..) {
                    sent.push(i);
                    if rng.chance(0.04) {
                        again.push(i);
                    }
                }
                queue = again;
            }
            sent.append(&mut queue);
            self.plan.field[k] = sent;
        }
    }

    /// Adds a household survey sent by `user`; returns its item index.
    fn push_survey(&mut self, user: usize, sent: &Sent<'_>, survey: Survey) -> usize {
        let plan = &mut self.plan;
        let id = self.rng.uuid();
        let head_id = (!sent.keyless).then(|| survey.members[0].id.clone());
        let replaces = survey.replaces.map(|r| plan.items[r].id.clone());
        let body = json!({
            "submission_id": id,
            "form_version": "2020.07",
            "village_code": self.village.code,
            "surveyed_at": rfc3339(survey.surveyed_at),
            "location": {"lat": sent.position.0, "lon": sent.position.1, "accuracy_m": 10.0 + self.rng.below(20) as f64, "crs": "wgs84"},
            "household": {"household_number": null, "head_name": sent.head_name, "head_id_number": head_id,
                          "poverty_status": survey.poverty, "relocated": survey.relocated, "phone": null},
            "members": survey.members.iter().map(|m| {
                let status = m.status.and_then(taizhang_core::domain::EmploymentStatus::parse);
                let employer = self.params.employers.pick(&self.village.county, status, &m.id);
                member_json(m, employer)
            }).collect::<Vec<_>>(),
            "photos": [plan.photos[sent.photo].sha],
            "replaces": replaces,
            "device": device(&self.users[user]),
        });
        plan.items.push(Item {
            id,
            user,
            payload: Payload::Household(survey),
            body,
            photos: vec![sent.photo],
        });
        plan.items.len() - 1
    }

    /// Adds a check-in sent by `user`; returns its item index.
    fn push_checkin(&mut self, user: usize, c: Checkin) -> usize {
        let id = self.rng.uuid();
        let body = json!({
            "submission_id": id, "kind": "resident_duty", "village_code": self.village.code,
            "worker_id_number": null, "captured_at": rfc3339(c.captured),
            "location": {"lat": c.position.0, "lon": c.position.1, "accuracy_m": c.accuracy},
            "mock_location": c.mock, "photo": self.plan.photos[c.photo].sha,
            "device": device(&self.users[user]),
        });
        let photo = c.photo;
        self.plan.items.push(Item {
            id,
            user,
            payload: Payload::Checkin(c),
            body,
            photos: vec![photo],
        });
        self.plan.items.len() - 1
    }
}

/// How a household survey is sent: the head's name as written, whether the head's ID number
/// is left out, where it was taken and its photo.
#[derive(Clone, Copy)]
struct Sent<'n> {
    head_name: &'n str,
    keyless: bool,
    position: (f64, f64),
    photo: usize,
}

impl World {
    /// Every planted fault, by kind (for the summary and for tests that must not pass
    /// vacuously).
    pub fn planted(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut out = std::collections::BTreeMap::new();
        for item in &self.items {
            match &item.payload {
                Payload::Checkin(c) => {
                    for p in &c.planted {
                        *out.entry(*p).or_insert(0) += 1;
                    }
                }
                Payload::Household(s) => {
                    for f in &s.flags {
                        *out.entry(*f).or_insert(0) += 1;
                    }
                    if s.replaces.is_some() {
                        *out.entry("correction").or_insert(0) += 1;
                    }
                }
                Payload::Village(_) => {}
            }
        }
        let resent: usize = self
            .field
            .iter()
            .map(|ops| {
                let mut seen = HashSet::new();
                ops.iter().filter(|i| !seen.insert(**i)).count()
            })
            .sum();
        out.insert("sent_twice", resent);
        out
    }
}
