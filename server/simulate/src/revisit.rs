//! The second month, played through sync: each field phone downloads its villages
//! (`GET /api/v1/sync`, paging with `cursor` until `has_more` is false), revisits a share of its
//! households by reference (`household_ref` and members' `person_ref`, no ID numbers), some
//! from a stale base (two field users revisit the same household from the same base: the later
//! by survey time must be flagged `stale_base`), some with a newborn without an ID number; the
//! first secretary checks the village's post holders in by `worker_ref`. The plan is a pure
//! function of the synced households and the seed, so its expectations are known before a
//! single revisit is sent.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};
use chrono::{DateTime, Duration, FixedOffset};
use serde_json::{json, Value};

use crate::phone::Phone;
use crate::world::mix;

/// Pages one sync may take before the simulator calls the feed broken.
const MAX_PAGES: usize = 10_000;

/// What one phone downloaded: the households by id (the newest page's copy wins) and the
/// cursor to continue from.
#[derive(Debug, Default, Clone)]
pub struct Synced {
    pub households: BTreeMap<String, Value>,
    pub removed: BTreeSet<String>,
    pub cursor: Option<String>,
    pub pages: usize,
}

impl Synced {
    /// What the phone holds after applying `delta`, an incremental sync from this one's cursor.
    pub fn merged(&self, delta: &Synced) -> Synced {
        let mut out = self.clone();
        for id in &delta.removed {
            out.households.remove(id);
            out.removed.insert(id.clone());
        }
        for (id, h) in &delta.households {
            out.removed.remove(id);
            out.households.insert(id.clone(), h.clone());
        }
        out.cursor = delta.cursor.clone().or(out.cursor);
        out.pages += delta.pages;
        out
    }
}

/// Downloads the feed from `cursor` (none: a first sync) until `has_more` is false.
pub async fn sync(phone: &mut Phone, cursor: Option<String>) -> anyhow::Result<Synced> {
    let mut synced = Synced {
        cursor,
        ..Synced::default()
    };
    loop {
        let path = match &synced.cursor {
            Some(c) => format!("/api/v1/sync?cursor={c}"),
            None => "/api/v1/sync".to_owned(),
        };
        let page = phone.get(&path).await.context("GET /api/v1/sync")?;
        synced.pages += 1;
        for h in page["households"].as_array().into_iter().flatten() {
            if let Some(id) = h["household_id"].as_str() {
                synced.removed.remove(id);
                synced.households.insert(id.to_owned(), h.clone());
            }
        }
        for t in page["tombstones"].as_array().into_iter().flatten() {
            if let Some(id) = t["household_id"].as_str() {
                synced.households.remove(id);
                synced.removed.insert(id.to_owned());
            }
        }
        synced.cursor = page["cursor"].as_str().map(str::to_owned);
        if page["has_more"] != json!(true) {
            return Ok(synced);
        }
        if synced.pages >= MAX_PAGES || synced.cursor.is_none() {
            bail!("the sync feed never ends (or has_more without a cursor)");
        }
    }
}

/// One planned revisit.
#[derive(Debug, Clone, PartialEq)]
pub struct Revisit {
    /// Index of the simulated user who sends it.
    pub user: usize,
    pub household_id: String,
    pub village_code: String,
    pub base_version: i64,
    pub surveyed_at: DateTime<FixedOffset>,
    /// Must be flagged `stale_base`: another revisit of the same base was surveyed earlier.
    pub stale: bool,
    /// Members the household must have once this revisit is its latest version.
    pub members: usize,
    pub newborn: bool,
    pub body: Value,
}

/// What a village's phones do in the second month.
pub struct VillageMonth<'a> {
    pub seed: u64,
    pub village_code: &'a str,
    pub position: (f64, f64),
    pub enumerator: usize,
    pub secretary: usize,
    /// The enumerator's photo (already on the server, uploaded by them) and the secretary's.
    pub photos: [&'a str; 2],
    pub device: [&'a Value; 2],
    /// When the revisits start (local time, after every first-month survey); each one `step`
    /// after the previous, a second revisit of the same base `later` after the first.
    pub start: DateTime<FixedOffset>,
    pub step: Duration,
    pub later: Duration,
}

/// A stable number for a household id, to pick by.
fn pick(seed: u64, id: &str, salt: u64) -> u64 {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    mix(seed, h, salt)
}

/// A synced member as the revisit sends it: by `person_ref`, without the ID number, with the
/// last answers (prefill), the wish for a public post flipped when `change` is set.
fn revisited_member(m: &Value, change: bool) -> Value {
    let mut out = json!({
        "person_ref": m["person_ref"], "id_number": null, "name": m["name"], "sex": m["sex"],
        "birth_date": m["birth_date"], "relation": m["relation"],
        "labour_capacity": m["labour_capacity"], "employment": m["employment"],
        "wants_public_post": m["wants_public_post"], "training": m["training"],
        "at_risk": m["at_risk"], "safety_net": m["safety_net"],
    });
    if out["training"].is_null() {
        out["training"] = json!({"wanted": false, "trade": null});
    }
    if out["safety_net"].is_null() {
        out["safety_net"] = json!([]);
    }
    if change {
        out["wants_public_post"] = json!(m["wants_public_post"] != json!(true));
    }
    out
}

/// A newborn: name, sex and birth date, no ID number, a child without labour capacity.
fn newborn(seed: u64, id: &str, born: DateTime<FixedOffset>) -> Value {
    let sex = if pick(seed, id, 7).is_multiple_of(2) {
        "male"
    } else {
        "female"
    };
    json!({
        "id_number": null, "name": "新生儿", "sex": sex,
        "birth_date": (born - Duration::days(20)).format("%Y-%m-%d").to_string(),
        "relation": "child", "labour_capacity": "none", "employment": null,
        "wants_public_post": false, "training": {"wanted": false, "trade": null},
        "at_risk": false, "safety_net": [],
    })
}

impl VillageMonth<'_> {
    /// The revisit body of `household` from base `base`, by `who` (0 the enumerator, 1 the
    /// secretary), with its submission id.
    fn body(&self, household: &Value, who: usize, at: DateTime<FixedOffset>, born: bool) -> Value {
        let id = household["household_id"].as_str().unwrap_or_default();
        let mut members: Vec<Value> = household["members"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(k, m)| revisited_member(m, pick(self.seed, id, 11 + k as u64).is_multiple_of(3)))
            .collect();
        if born {
            members.push(newborn(self.seed, id, at));
        }
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&pick(self.seed, id, 100 + who as u64).to_le_bytes());
        bytes[8..].copy_from_slice(&pick(self.seed, id, 200 + who as u64).to_le_bytes());
        let submission = uuid::Builder::from_random_bytes(bytes).into_uuid();
        json!({
            "submission_id": submission.to_string(),
            "form_version": "2020.07",
            "village_code": self.village_code,
            "surveyed_at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            "location": {"lat": self.position.0, "lon": self.position.1, "accuracy_m": 12.0, "crs": "wgs84"},
            "household_ref": {"household_id": id, "base_version": household["version"]},
            "household": {"household_number": household["household_number"],
                          "head_name": household["head_name"], "head_id_number": null,
                          "poverty_status": household["poverty_status"],
                          "relocated": household["relocated"], "phone": null},
            "members": members,
            "photos": [self.photos[who]],
            "replaces": null,
            "device": self.device[who],
        })
    }

    /// Plans the village's revisits from what its enumerator synced: about half the
    /// households; one in six of those revisited again by the secretary from the same base a
    /// little later (that later one is the stale one); one in five with a newborn.
    pub fn plan(&self, synced: &Synced) -> Vec<Revisit> {
        let mut out = Vec::new();
        let mut at = self.start;
        for (id, h) in &synced.households {
            if h["village_code"].as_str() != Some(self.village_code) || h["status"] == "rejected" {
                continue;
            }
            if !pick(self.seed, id, 1).is_multiple_of(2) {
                continue;
            }
            at += self.step;
            let base = h["version"].as_i64().unwrap_or_default();
            let had = h["members"].as_array().map_or(0, Vec::len);
            let born = pick(self.seed, id, 2).is_multiple_of(5);
            let twice = pick(self.seed, id, 3).is_multiple_of(6);
            let first = Revisit {
                user: self.enumerator,
                household_id: id.clone(),
                village_code: self.village_code.to_owned(),
                base_version: base,
                surveyed_at: at,
                stale: false,
                members: had + usize::from(born),
                newborn: born,
                body: self.body(h, 0, at, born),
            };
            if twice {
                let later = at + self.later;
                out.push(Revisit {
                    user: self.secretary,
                    surveyed_at: later,
                    stale: true,
                    members: had,
                    newborn: false,
                    body: self.body(h, 1, later, false),
                    ..first.clone()
                });
            }
            out.push(first);
        }
        out
    }
}

/// The worker refs of a village's post holders in what was synced.
pub fn worker_refs(synced: &Synced, village_code: &str) -> Vec<String> {
    let mut refs: Vec<String> = synced
        .households
        .values()
        .filter(|h| h["village_code"].as_str() == Some(village_code))
        .flat_map(|h| h["members"].as_array().cloned().unwrap_or_default())
        .filter_map(|m| m["worker_ref"].as_str().map(str::to_owned))
        .collect();
    refs.sort();
    refs.dedup();
    refs
}

/// What the server must show once the revisits are in, checked against a fresh sync and the
/// survey list: every acknowledged revisit on its named household exactly once with a version
/// above its base, `stale_base` exactly on the stale ones, the household's latest version by
/// survey time with the members it must have, and no household added or lost.
pub fn check(
    before: &Synced,
    after: &Synced,
    sent: &[(Revisit, bool)],
    listed: &BTreeMap<String, Vec<Value>>,
) -> Vec<String> {
    let mut found = Vec::new();
    let before_ids: BTreeSet<&String> = before.households.keys().collect();
    let after_ids: BTreeSet<&String> = after.households.keys().collect();
    if before_ids != after_ids {
        let added: Vec<_> = after_ids.difference(&before_ids).collect();
        let lost: Vec<_> = before_ids.difference(&after_ids).collect();
        found.push(format!(
            "the second month changed the households: added {added:?}, lost {lost:?}"
        ));
    }
    let mut latest: BTreeMap<&str, &Revisit> = BTreeMap::new();
    for (r, acked) in sent {
        let id = r.body["submission_id"].as_str().unwrap_or_default();
        let rows = listed.get(id).map_or(&[][..], Vec::as_slice);
        if !acked {
            continue;
        }
        let [row] = rows else {
            found.push(format!("revisit {id} is stored {} times", rows.len()));
            continue;
        };
        if row["household_id"].as_str() != Some(&r.household_id) {
            found.push(format!(
                "revisit {id} landed on {}, not on {}",
                row["household_id"], r.household_id
            ));
        }
        if row["version"].as_i64().unwrap_or_default() <= r.base_version {
            found.push(format!(
                "revisit {id} is version {}, not above its base {}",
                row["version"], r.base_version
            ));
        }
        let stale = crate::truth::answer_flags(row).contains("stale_base");
        if stale != r.stale {
            found.push(format!(
                "revisit {id} of {} {} stale_base, must {}",
                r.household_id,
                if stale { "has" } else { "lacks" },
                if r.stale { "have it" } else { "not" }
            ));
        }
        let slot = latest.entry(r.household_id.as_str()).or_insert(r);
        if r.surveyed_at > slot.surveyed_at {
            *slot = r;
        }
    }
    for (household, r) in latest {
        let Some(h) = after.households.get(household) else {
            continue;
        };
        let id = r.body["submission_id"].as_str().unwrap_or_default();
        if h["survey_id"].as_str() != Some(id) {
            found.push(format!(
                "household {household} syncs survey {}, its latest by survey time is {id}",
                h["survey_id"]
            ));
        }
        let members = h["members"].as_array().map_or(0, Vec::len);
        let newborns = h["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["id_number"].is_null() && m["name"] == "新生儿")
            .count();
        if members != r.members || (r.newborn && newborns == 0) {
            found.push(format!(
                "household {household} syncs {members} members ({newborns} newborn), must have {}{}",
                r.members,
                if r.newborn { " with the newborn" } else { "" }
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn household(id: &str, version: i64) -> Value {
        json!({"household_id": id, "village_code": "220802100201", "version": version,
               "survey_id": "s", "status": "approved", "head_name": "张三",
               "poverty_status": "lifted", "relocated": false, "household_number": null,
               "members": [{"person_ref": "AAAAAAAAAAAA", "name": "张三", "id_number": "220802********1238",
                            "sex": "male", "birth_date": "1970-01-01", "relation": "head",
                            "labour_capacity": "able", "wants_public_post": false,
                            "at_risk": false, "safety_net": [], "worker_ref": "BBBBBBBBBBBB"}]})
    }

    #[test]
    fn the_plan_revisits_by_reference_and_marks_the_later_of_two_as_stale() {
        let mut synced = Synced::default();
        for k in 0..60 {
            let id = format!("h{k}");
            synced.households.insert(id.clone(), household(&id, 2));
        }
        let device = json!({"device_id": "d", "app_version": "1"});
        let start = DateTime::parse_from_rfc3339("2020-08-03T09:00:00+08:00").expect("time");
        let month = VillageMonth {
            seed: 7,
            village_code: "220802100201",
            position: (45.7, 122.5),
            enumerator: 0,
            secretary: 1,
            photos: ["p0", "p1"],
            device: [&device, &device],
            start,
            step: Duration::minutes(7),
            later: Duration::hours(1),
        };
        let plan = month.plan(&synced);
        assert!(plan.len() > 20 && plan.len() < 50, "{}", plan.len());
        assert!(plan.iter().any(|r| r.stale) && plan.iter().any(|r| r.newborn));
        for r in &plan {
            assert_eq!(r.body["household_ref"]["base_version"], 2);
            assert!(r.body["household"]["head_id_number"].is_null());
            let members = r.body["members"].as_array().expect("members");
            assert_eq!(members[0]["person_ref"], "AAAAAAAAAAAA");
            assert!(members.iter().all(|m| m["id_number"].is_null()));
            if r.stale {
                let first = plan
                    .iter()
                    .find(|o| o.household_id == r.household_id && !o.stale)
                    .expect("the first revisit");
                assert!(first.surveyed_at < r.surveyed_at);
                assert_eq!(first.base_version, r.base_version);
                assert_ne!(first.body["submission_id"], r.body["submission_id"]);
            }
        }
        assert_eq!(
            plan,
            month.plan(&synced),
            "the same seed plans the same month"
        );
        assert_eq!(worker_refs(&synced, "220802100201"), ["BBBBBBBBBBBB"]);
    }
}
