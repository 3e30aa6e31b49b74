//! The figures of the demand ledger (SPEC §7) and how one village's are computed for a month
//! from the normalised survey tables.
//!
//! As of a month's end, each household counts by its *effective* version: the latest (by
//! survey time, then id) of its versions surveyed in that month or before whose status is in
//! the basis — `approved` only, or also `submitted` / `reopened` ("including pending"). A
//! person in the effective versions of several households is counted once, in the latest of
//! them. Post demand comes from the village's latest post-demand survey of the month.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::schema::{
    duplicate_pairs, household_surveys, households, imported_households, survey_members,
    village_post_demand, village_surveys,
};
use crate::db::DbConnection;
use crate::domain::{
    EmploymentStatus, LabourCapacity, Month, PostType, PovertyStatus, TrainingTrade,
};

/// Figure → count. Absent figures are zero.
pub type Figures = BTreeMap<String, i64>;

/// Statuses a survey may have to count, per basis.
pub const APPROVED: &[&str] = &["approved"];
pub const INCLUDING_PENDING: &[&str] = &["approved", "submitted", "reopened"];

/// Employment statuses that are not work.
const NOT_WORKING: [EmploymentStatus; 3] = [
    EmploymentStatus::Student,
    EmploymentStatus::Unemployed,
    EmploymentStatus::NotApplicable,
];

/// One figure of the ledger, in the order the ledger shows them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FigureDef {
    pub key: String,
    /// Chinese label, as on the ledger's header.
    pub label: String,
    /// The section of the ledger it belongs to.
    pub group: &'static str,
}

fn def(key: impl Into<String>, label: impl Into<String>, group: &'static str) -> FigureDef {
    FigureDef {
        key: key.into(),
        label: label.into(),
        group,
    }
}

/// Every figure, in ledger order.
pub fn catalogue() -> &'static [FigureDef] {
    static CATALOGUE: OnceLock<Vec<FigureDef>> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let mut all = vec![
            def("villages", "行政村数", "coverage"),
            def(
                "villages_post_survey",
                "本月已开展公益岗需求排查的村数",
                "coverage",
            ),
            def(
                "villages_household_survey",
                "本月已开展入户调查的村数",
                "coverage",
            ),
            // Known: surveyed (an effective version) or imported from a 建档立卡 list.
            def(
                "households_known",
                "已知户数（已调查及建档立卡导入）",
                "coverage",
            ),
            def("households_not_surveyed", "已导入尚未调查户数", "coverage"),
            def("households", "掌握户数", "households"),
            def("households_surveyed", "本月入户调查户数", "households"),
        ];
        for p in PovertyStatus::ALL {
            all.push(def(
                format!("households_{}", p.as_str()),
                p.label(),
                "households",
            ));
        }
        all.push(def(
            "relocated_households",
            "易地扶贫搬迁户数",
            "households",
        ));
        all.push(def("population", "人口数", "labour"));
        for c in LabourCapacity::ALL {
            all.push(def(format!("capacity_{}", c.as_str()), c.label(), "labour"));
        }
        all.push(def(
            "labour_force",
            "劳动力人数（有劳动能力和弱劳动力）",
            "labour",
        ));
        all.push(def("employed", "已就业人数", "employment"));
        all.push(def(
            "out_migrants",
            "外出务工人数（省外和省内县外）",
            "employment",
        ));
        for s in EmploymentStatus::ALL {
            all.push(def(
                format!("employment_{}", s.as_str()),
                s.label(),
                "employment",
            ));
        }
        for p in PostType::ALL {
            all.push(def(
                format!("public_welfare_{}", p.as_str()),
                format!("扶贫公益岗：{}", p.label()),
                "public_welfare_posts",
            ));
        }
        all.push(def(
            "wants_public_post",
            "有意愿参加公益岗人数",
            "public_welfare_posts",
        ));
        all.push(def("post_needed", "公益岗需求数", "post_demand"));
        all.push(def("post_filled", "公益岗已上岗数", "post_demand"));
        all.push(def("post_gap", "公益岗缺口", "post_demand"));
        for p in PostType::ALL {
            all.push(def(
                format!("post_needed_{}", p.as_str()),
                format!("需求：{}", p.label()),
                "post_demand",
            ));
            all.push(def(
                format!("post_filled_{}", p.as_str()),
                format!("已上岗：{}", p.label()),
                "post_demand",
            ));
            all.push(def(
                format!("post_gap_{}", p.as_str()),
                format!("缺口：{}", p.label()),
                "post_demand",
            ));
        }
        all.push(def(
            "willing_people",
            "村级排查有意愿参加公益岗人数",
            "post_demand",
        ));
        all.push(def("training_wanted", "有培训需求人数", "training"));
        for t in TrainingTrade::ALL {
            all.push(def(
                format!("training_{}", t.as_str()),
                format!("培训工种：{}", t.label()),
                "training",
            ));
        }
        all.push(def("at_risk", "返贫风险人口", "risk"));
        all.push(def(
            "at_risk_without_safety_net",
            "返贫风险人口中未落实兜底措施人数",
            "risk",
        ));
        all.push(def(
            "relocated_labour",
            "易地扶贫搬迁户劳动力人数",
            "relocation",
        ));
        all
    })
}

fn index() -> &'static HashMap<&'static str, usize> {
    static INDEX: OnceLock<HashMap<&'static str, usize>> = OnceLock::new();
    INDEX.get_or_init(|| {
        catalogue()
            .iter()
            .enumerate()
            .map(|(i, d)| (d.key.as_str(), i))
            .collect()
    })
}

/// Figures in catalogue order: what is summed over hundreds of villages per request, so it is
/// a plain vector rather than a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dense(pub Vec<i64>);

impl Default for Dense {
    fn default() -> Self {
        Dense(vec![0; catalogue().len()])
    }
}

impl Dense {
    /// A village with no figures (a closed month's snapshot made before it existed) still
    /// counts as a village: the catalogue's first figure.
    pub fn village_without_data() -> Self {
        let mut dense = Dense::default();
        dense.0[0] = 1;
        dense
    }

    pub fn from_map(figures: &Figures) -> Self {
        let mut dense = Dense::default();
        for (k, v) in figures {
            if let Some(&i) = index().get(k.as_str()) {
                dense.0[i] += v;
            }
        }
        dense
    }

    pub fn get(&self, key: &str) -> i64 {
        index().get(key).map_or(0, |&i| self.0[i])
    }

    pub fn add(&mut self, other: &Dense) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a += b;
        }
    }

    /// A JSON object of the non-zero figures by key: stable when the catalogue grows.
    pub fn encode(&self) -> String {
        let map: BTreeMap<&str, i64> = catalogue()
            .iter()
            .zip(&self.0)
            .filter(|(_, v)| **v != 0)
            .map(|(d, v)| (d.key.as_str(), *v))
            .collect();
        serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
    }

    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        // Borrowed keys: no allocation per figure.
        let map: HashMap<&str, i64> = serde_json::from_str(text)?;
        let mut dense = Dense::default();
        for (k, v) in map {
            if let Some(&i) = index().get(k) {
                dense.0[i] = v;
            }
        }
        Ok(dense)
    }

    /// Sets the figures that are differences of others (gaps), which are not stored.
    pub fn with_derived(mut self) -> Self {
        let set = |d: &mut Dense, key: &str, value: i64| {
            if let Some(&i) = index().get(key) {
                d.0[i] = value;
            }
        };
        let gap = self.get("post_needed") - self.get("post_filled");
        set(&mut self, "post_gap", gap);
        for p in PostType::ALL {
            let gap = self.get(&format!("post_needed_{}", p.as_str()))
                - self.get(&format!("post_filled_{}", p.as_str()));
            set(&mut self, &format!("post_gap_{}", p.as_str()), gap);
        }
        self
    }
}

/// Adds `other` into `sum`.
pub fn add(sum: &mut Figures, other: &Figures) {
    for (k, v) in other {
        *sum.entry(k.clone()).or_insert(0) += v;
    }
}

fn bump(figures: &mut Figures, key: impl Into<String>) {
    *figures.entry(key.into()).or_insert(0) += 1;
}

/// A village's figures for a month, on both bases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VillageFigures {
    pub approved: Dense,
    pub including_pending: Dense,
}

/// A household survey version as the ledger needs it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = household_surveys, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Version {
    pub id: String,
    #[diesel(column_name = household_id)]
    pub household: String,
    #[diesel(column_name = village_code)]
    pub village: String,
    pub surveyed_at: NaiveDateTime,
    pub month: String,
    pub status: String,
    #[diesel(column_name = poverty_status)]
    pub poverty: String,
    pub relocated: bool,
}

impl Version {
    fn order(&self) -> (NaiveDateTime, &str) {
        (self.surveyed_at, self.id.as_str())
    }
}

fn versions_of(
    conn: &mut DbConnection,
    households: &[String],
    month: &str,
) -> QueryResult<Vec<Version>> {
    let mut out = Vec::new();
    // Bounded IN lists: a village has a few hundred households.
    for chunk in households.chunks(500) {
        let rows: Vec<Version> = household_surveys::table
            .filter(household_surveys::household_id.eq_any(chunk))
            .filter(household_surveys::month.le(month))
            .filter(household_surveys::status.eq_any(INCLUDING_PENDING))
            .select(Version::as_select())
            .load(conn)?;
        out.extend(rows);
    }
    Ok(out)
}

/// Each household's effective version on a basis.
fn effective<'a>(versions: &'a [Version], basis: &[&str]) -> HashMap<&'a str, &'a Version> {
    let mut best: HashMap<&str, &Version> = HashMap::new();
    for v in versions
        .iter()
        .filter(|v| basis.contains(&v.status.as_str()))
    {
        match best.get(v.household.as_str()) {
            Some(b) if b.order() >= v.order() => {}
            _ => {
                best.insert(v.household.as_str(), v);
            }
        }
    }
    best
}

/// A member row of a survey, as the ledger needs it.
#[derive(Debug, Clone)]
pub struct Member {
    pub survey: String,
    pub position: i32,
    pub person: String,
    pub capacity: String,
    pub status: Option<String>,
    pub post_type: Option<String>,
    pub wants_public_post: bool,
    pub training_wanted: bool,
    pub trade: Option<String>,
    pub at_risk: bool,
    pub safety_net: String,
    /// The registered employer named, if any (`employers`).
    pub employer_id: Option<String>,
}

/// What a village counts on one basis: its households' effective versions and the people
/// attributed to it, each with the version that counts them.
#[derive(Debug, Clone, Default)]
pub struct Counted {
    pub households: Vec<Version>,
    pub people: Vec<(Member, Version)>,
}

type MemberRow = (
    String,
    i32,
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
    bool,
    Option<String>,
    bool,
    String,
    Option<String>,
);

fn members_of(conn: &mut DbConnection, surveys: &[&str]) -> QueryResult<Vec<Member>> {
    let mut out = Vec::new();
    for chunk in surveys.chunks(500) {
        let rows: Vec<MemberRow> = survey_members::table
            .filter(survey_members::survey_id.eq_any(chunk))
            .select((
                survey_members::survey_id,
                survey_members::position,
                survey_members::person_id_hash,
                survey_members::labour_capacity,
                survey_members::employment_status,
                survey_members::post_type,
                survey_members::wants_public_post,
                survey_members::training_wanted,
                survey_members::training_trade,
                survey_members::at_risk,
                survey_members::safety_net,
                survey_members::employer_id,
            ))
            .load(conn)?;
        out.extend(rows.into_iter().map(|r| Member {
            survey: r.0,
            position: r.1,
            person: r.2,
            capacity: r.3,
            status: r.4,
            post_type: r.5,
            wants_public_post: r.6,
            training_wanted: r.7,
            trade: r.8,
            at_risk: r.9,
            safety_net: r.10,
            employer_id: r.11,
        }));
    }
    Ok(out)
}

/// Computes one village's figures for `month`, both bases.
pub fn village(
    conn: &mut DbConnection,
    village: &str,
    month: Month,
) -> QueryResult<VillageFigures> {
    crate::db::with_custom_plans(conn, |conn| village_in(conn, village, month))
}

fn village_in(conn: &mut DbConnection, village: &str, month: Month) -> QueryResult<VillageFigures> {
    let [approved, pending] = counted(conn, village, month)?;
    let unsurveyed = imported_unsurveyed(conn, village, month)?;
    // Months are compared as `YYYY-MM` text in the tables.
    let month = month.to_string();
    let month = month.as_str();
    let post_demand = post_demand(conn, village, month)?;
    let mut maps = [Figures::new(), Figures::new()];
    for ((counted, figures), unsurveyed) in [approved, pending]
        .into_iter()
        .zip(maps.iter_mut())
        .zip(unsurveyed)
    {
        household_figures(figures, &counted.households, month);
        let surveyed = counted.households.len() as i64;
        figures.insert("households_known".into(), surveyed + unsurveyed);
        figures.insert("households_not_surveyed".into(), unsurveyed);
        for (m, v) in &counted.people {
            person_figures(figures, m, v.relocated);
        }
        figures.insert("villages".into(), 1);
        if figures.get("households_surveyed").copied().unwrap_or(0) > 0 {
            figures.insert("villages_household_survey".into(), 1);
        }
        if let Some(demand) = &post_demand {
            add(figures, demand);
        }
    }
    Ok(VillageFigures {
        approved: Dense::from_map(&maps[0]),
        including_pending: Dense::from_map(&maps[1]),
    })
}

/// Households imported into the village by the month's end that have no version counting on
/// each basis (approved-only, including pending) as of then: known, not yet surveyed. One
/// surveyed is counted by its effective version where that lies; one merged into another
/// household is not counted at all.
fn imported_unsurveyed(
    conn: &mut DbConnection,
    village: &str,
    month: Month,
) -> QueryResult<[i64; 2]> {
    let ids: Vec<String> = imported_households::table
        .inner_join(households::table)
        .filter(households::village_code.eq(village))
        .filter(imported_households::imported_at.lt(month.end().naive_utc()))
        .select(imported_households::household_id)
        .load(conn)?;
    if ids.is_empty() {
        return Ok([0, 0]);
    }
    let month = month.to_string();
    let mut approved: HashSet<String> = HashSet::new();
    let mut pending: HashSet<String> = HashSet::new();
    let mut absorbed: HashSet<String> = HashSet::new();
    for chunk in ids.chunks(500) {
        let rows: Vec<(String, String)> = household_surveys::table
            .filter(household_surveys::household_id.eq_any(chunk))
            .filter(household_surveys::month.le(&month))
            .filter(household_surveys::status.eq_any(INCLUDING_PENDING))
            .select((household_surveys::household_id, household_surveys::status))
            .load(conn)?;
        for (h, status) in rows {
            if APPROVED.contains(&status.as_str()) {
                approved.insert(h.clone());
            }
            pending.insert(h);
        }
        let merged: Vec<(String, String, Option<String>)> = duplicate_pairs::table
            .filter(duplicate_pairs::state.eq("merged"))
            .filter(
                duplicate_pairs::household_a
                    .eq_any(chunk)
                    .or(duplicate_pairs::household_b.eq_any(chunk)),
            )
            .select((
                duplicate_pairs::household_a,
                duplicate_pairs::household_b,
                duplicate_pairs::survivor_id,
            ))
            .load(conn)?;
        for (a, b, survivor) in merged {
            for h in [a, b] {
                if survivor.as_deref() != Some(h.as_str()) {
                    absorbed.insert(h);
                }
            }
        }
    }
    let count = |surveyed: &HashSet<String>| {
        ids.iter()
            .filter(|h| !surveyed.contains(*h) && !absorbed.contains(*h))
            .count() as i64
    };
    Ok([count(&approved), count(&pending)])
}

/// What one village counts for `month`, approved-only and including pending.
pub fn counted(conn: &mut DbConnection, village: &str, month: Month) -> QueryResult<[Counted; 2]> {
    let month = month.to_string();
    let month = month.as_str();
    // Every version (on either basis) of every household surveyed here by the month, in one
    // query: a household that moved has versions recorded elsewhere too.
    let here = diesel::alias!(household_surveys as here);
    let surveyed_here = here
        .filter(here.field(household_surveys::village_code).eq(village))
        .filter(here.field(household_surveys::month).le(month))
        .select(here.field(household_surveys::household_id));
    let versions: Vec<Version> = household_surveys::table
        .filter(household_surveys::household_id.eq_any(surveyed_here))
        .filter(household_surveys::month.le(month))
        .filter(household_surveys::status.eq_any(INCLUDING_PENDING))
        .select(Version::as_select())
        .load(conn)?;
    let ours_pending = effective(&versions, INCLUDING_PENDING);
    let ours_approved = effective(&versions, APPROVED);
    let in_village = |m: &HashMap<&str, &Version>| -> Vec<Version> {
        m.values()
            .filter(|v| v.village == village)
            .map(|v| (*v).clone())
            .collect()
    };
    let bases = [in_village(&ours_approved), in_village(&ours_pending)];
    let mut ids: Vec<&str> = bases.iter().flatten().map(|v| v.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let members = members_of(conn, &ids)?;
    let persons: Vec<String> = {
        let set: HashSet<&str> = members.iter().map(|m| m.person.as_str()).collect();
        set.into_iter().map(str::to_owned).collect()
    };

    let elsewhere = households_elsewhere(conn, &versions, &persons, month)?;
    let other_versions = versions_of(conn, &elsewhere, month)?;
    let other_bases = [
        effective(&other_versions, APPROVED),
        effective(&other_versions, INCLUDING_PENDING),
    ];
    let mut other_ids: Vec<&str> = other_bases
        .iter()
        .flat_map(|m| m.values().map(|v| v.id.as_str()))
        .collect();
    other_ids.sort_unstable();
    other_ids.dedup();
    let person_set: HashSet<&str> = persons.iter().map(String::as_str).collect();
    let other_members: Vec<(String, String)> = members_of(conn, &other_ids)?
        .into_iter()
        .filter(|m| person_set.contains(m.person.as_str()))
        .map(|m| (m.survey, m.person))
        .collect();

    let mut out: [Counted; 2] = Default::default();
    for (i, ours) in bases.iter().enumerate() {
        let others = &other_bases[i];
        // The latest effective version holding each person, among all households.
        let mut holder: HashMap<&str, (NaiveDateTime, &str)> = HashMap::new();
        let by_id: HashMap<&str, &Version> = ours.iter().map(|v| (v.id.as_str(), v)).collect();
        let other_by_id: HashMap<&str, &Version> =
            others.values().map(|v| (v.id.as_str(), *v)).collect();
        for m in &members {
            if let Some(v) = by_id.get(m.survey.as_str()) {
                let entry = holder.entry(m.person.as_str()).or_insert(v.order());
                if v.order() > *entry {
                    *entry = v.order();
                }
            }
        }
        for (survey, person) in &other_members {
            if let Some(v) = other_by_id.get(survey.as_str()) {
                if let Some(entry) = holder.get_mut(person.as_str()) {
                    if v.order() > *entry {
                        *entry = v.order();
                    }
                }
            }
        }
        let mut counted: HashSet<&str> = HashSet::new();
        let mut people = Vec::new();
        for m in &members {
            let Some(v) = by_id.get(m.survey.as_str()) else {
                continue;
            };
            if holder.get(m.person.as_str()) != Some(&v.order()) || !counted.insert(&m.person) {
                continue;
            }
            people.push((m.clone(), (*v).clone()));
        }
        out[i] = Counted {
            households: ours.clone(),
            people,
        };
    }
    Ok(out)
}

/// The other households whose versions by `month` hold any of `persons`: their effective
/// versions compete for each person (counted once, in the latest). Most people are in no other
/// household, so the surveys holding them are read from the (person, survey) index alone, and
/// only those that are not the village's own `versions` are looked up.
fn households_elsewhere(
    conn: &mut DbConnection,
    versions: &[Version],
    persons: &[String],
    month: &str,
) -> QueryResult<Vec<String>> {
    let known: HashSet<&str> = versions.iter().map(|v| v.household.as_str()).collect();
    let ours_all: HashSet<&str> = versions.iter().map(|v| v.id.as_str()).collect();
    let mut foreign: Vec<String> = Vec::new();
    for chunk in persons.chunks(500) {
        let holding: Vec<String> = survey_members::table
            .filter(survey_members::person_id_hash.eq_any(chunk))
            .select(survey_members::survey_id)
            .distinct()
            .load(conn)?;
        foreign.extend(
            holding
                .into_iter()
                .filter(|s| !ours_all.contains(s.as_str())),
        );
    }
    foreign.sort_unstable();
    foreign.dedup();
    let mut elsewhere: Vec<String> = Vec::new();
    for chunk in foreign.chunks(500) {
        let found: Vec<String> = household_surveys::table
            .filter(household_surveys::id.eq_any(chunk))
            .filter(household_surveys::month.le(month))
            .filter(household_surveys::status.eq_any(INCLUDING_PENDING))
            .select(household_surveys::household_id)
            .distinct()
            .load(conn)?;
        elsewhere.extend(found.into_iter().filter(|h| !known.contains(h.as_str())));
    }
    elsewhere.sort_unstable();
    elsewhere.dedup();
    Ok(elsewhere)
}

fn household_figures(figures: &mut Figures, ours: &[Version], month: &str) {
    for v in ours {
        bump(figures, "households");
        if v.month == month {
            bump(figures, "households_surveyed");
        }
        bump(figures, format!("households_{}", v.poverty));
        if v.relocated {
            bump(figures, "relocated_households");
        }
    }
}

fn person_figures(figures: &mut Figures, m: &Member, relocated: bool) {
    bump(figures, "population");
    bump(figures, format!("capacity_{}", m.capacity));
    let labour =
        m.capacity == LabourCapacity::Able.as_str() || m.capacity == LabourCapacity::Weak.as_str();
    if labour {
        bump(figures, "labour_force");
        if relocated {
            bump(figures, "relocated_labour");
        }
    }
    if let Some(status) = m.status.as_deref().and_then(EmploymentStatus::parse) {
        bump(figures, format!("employment_{}", status.as_str()));
        if !NOT_WORKING.contains(&status) {
            bump(figures, "employed");
        }
        if matches!(
            status,
            EmploymentStatus::OutOfProvince | EmploymentStatus::InProvinceOutOfCounty
        ) {
            bump(figures, "out_migrants");
        }
        if status == EmploymentStatus::PublicWelfarePost {
            if let Some(post) = &m.post_type {
                bump(figures, format!("public_welfare_{post}"));
            }
        }
    }
    if m.wants_public_post {
        bump(figures, "wants_public_post");
    }
    if m.training_wanted {
        bump(figures, "training_wanted");
        if let Some(trade) = &m.trade {
            bump(figures, format!("training_{trade}"));
        }
    }
    if m.at_risk {
        bump(figures, "at_risk");
        if m.safety_net.is_empty() {
            bump(figures, "at_risk_without_safety_net");
        }
    }
}

/// The village's post demand for the month: its latest post-demand survey of that month that
/// was not rejected or replaced.
fn post_demand(
    conn: &mut DbConnection,
    village: &str,
    month: &str,
) -> QueryResult<Option<Figures>> {
    let latest: Option<(String, i32)> = village_surveys::table
        .filter(village_surveys::village_code.eq(village))
        .filter(village_surveys::month.eq(month))
        .filter(village_surveys::status.ne_all(["rejected", "superseded"]))
        .order((
            village_surveys::received_at.desc(),
            village_surveys::id.desc(),
        ))
        .select((village_surveys::id, village_surveys::willing_people))
        .first(conn)
        .optional()?;
    let Some((survey, willing)) = latest else {
        return Ok(None);
    };
    let posts: Vec<(String, i32, i32)> = village_post_demand::table
        .filter(village_post_demand::survey_id.eq(&survey))
        .select((
            village_post_demand::post_type,
            village_post_demand::needed,
            village_post_demand::filled,
        ))
        .load(conn)?;
    let mut f = Figures::new();
    f.insert("villages_post_survey".into(), 1);
    f.insert("willing_people".into(), i64::from(willing));
    for (post, needed, filled) in posts {
        *f.entry("post_needed".into()).or_insert(0) += i64::from(needed);
        *f.entry("post_filled".into()).or_insert(0) += i64::from(filled);
        *f.entry(format!("post_needed_{post}")).or_insert(0) += i64::from(needed);
        *f.entry(format!("post_filled_{post}")).or_insert(0) += i64::from(filled);
    }
    Ok(Some(f))
}
