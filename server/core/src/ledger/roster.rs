//! Real-name ledgers (实名制台账): the people behind the ledger's counts, as of a month's end,
//! from each household's latest approved version, village by village in code order.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::figures::{self, Member, Version};
use crate::db::schema::{divisions, household_surveys, people, survey_members, villages};
use crate::db::DbConnection;
use crate::domain::{
    EmploymentStatus, LabourCapacity, Month, PostType, Relation, SafetyNet, Sex, TrainingTrade,
};
use crate::error::{ApiError, ApiResult};
use crate::privacy::Vault;
use crate::sheets::Cell;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RosterKind {
    /// Working out of the province or out of the county (外出务工).
    OutMigrants,
    /// Holding a poverty special post (扶贫特岗).
    SpecialPosts,
    /// Holding a temporary public-welfare post (临时公益岗).
    TemporaryPosts,
    /// Holding a village public-welfare post (扶贫公益岗).
    PublicWelfarePosts,
    /// Employed by a workshop, leading enterprise or cooperative.
    EnterpriseEmployment,
    /// Wanting training (培训需求).
    TrainingDemand,
    /// At risk of returning to poverty (返贫风险).
    AtRisk,
    /// Labour of relocated households (易地扶贫搬迁户劳动力).
    RelocatedLabour,
}

impl RosterKind {
    pub const ALL: [RosterKind; 8] = [
        RosterKind::OutMigrants,
        RosterKind::SpecialPosts,
        RosterKind::TemporaryPosts,
        RosterKind::PublicWelfarePosts,
        RosterKind::EnterpriseEmployment,
        RosterKind::TrainingDemand,
        RosterKind::AtRisk,
        RosterKind::RelocatedLabour,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RosterKind::OutMigrants => "out_migrants",
            RosterKind::SpecialPosts => "special_posts",
            RosterKind::TemporaryPosts => "temporary_posts",
            RosterKind::PublicWelfarePosts => "public_welfare_posts",
            RosterKind::EnterpriseEmployment => "enterprise_employment",
            RosterKind::TrainingDemand => "training_demand",
            RosterKind::AtRisk => "at_risk",
            RosterKind::RelocatedLabour => "relocated_labour",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            RosterKind::OutMigrants => "外出务工人员实名制台账",
            RosterKind::SpecialPosts => "扶贫特岗人员实名制台账",
            RosterKind::TemporaryPosts => "临时公益岗人员实名制台账",
            RosterKind::PublicWelfarePosts => "扶贫公益岗人员实名制台账",
            RosterKind::EnterpriseEmployment => "扶贫车间、龙头企业、合作社就业人员实名制台账",
            RosterKind::TrainingDemand => "培训需求人员实名制台账",
            RosterKind::AtRisk => "返贫风险人员实名制台账",
            RosterKind::RelocatedLabour => "易地扶贫搬迁户劳动力实名制台账",
        }
    }

    /// The ledger figure whose people this roster lists, by the figure's key.
    pub fn for_figure(key: &str) -> Option<Self> {
        Some(match key {
            "out_migrants" => RosterKind::OutMigrants,
            "employment_special_post" => RosterKind::SpecialPosts,
            "employment_temporary_public_post" => RosterKind::TemporaryPosts,
            "employment_public_welfare_post" => RosterKind::PublicWelfarePosts,
            "training_wanted" => RosterKind::TrainingDemand,
            "at_risk" => RosterKind::AtRisk,
            "relocated_labour" => RosterKind::RelocatedLabour,
            _ => return None,
        })
    }

    fn matches(self, m: &Member, v: &Version) -> bool {
        let status = m.status.as_deref();
        let labour = m.capacity == "able" || m.capacity == "weak";
        match self {
            RosterKind::OutMigrants => matches!(
                status,
                Some("out_of_province" | "in_province_out_of_county")
            ),
            RosterKind::SpecialPosts => status == Some("special_post"),
            RosterKind::TemporaryPosts => status == Some("temporary_public_post"),
            RosterKind::PublicWelfarePosts => status == Some("public_welfare_post"),
            RosterKind::EnterpriseEmployment => matches!(
                status,
                Some("workshop" | "leading_enterprise" | "cooperative")
            ),
            RosterKind::TrainingDemand => m.training_wanted,
            RosterKind::AtRisk => m.at_risk,
            RosterKind::RelocatedLabour => v.relocated && labour,
        }
    }
}

/// One person of a real-name ledger.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RosterEntry {
    pub county_name: String,
    pub township_name: String,
    pub village_code: String,
    pub village_name: String,
    pub household_id: String,
    pub head_name: String,
    pub name: String,
    pub sex: Sex,
    pub birth_date: NaiveDate,
    /// Masked (`220802********1238`) unless revealed; null for a member without an ID number.
    pub id_number: Option<String>,
    pub relation: Relation,
    pub labour_capacity: LabourCapacity,
    pub employment_status: Option<EmploymentStatus>,
    pub post_type: Option<PostType>,
    pub monthly_income_yuan: Option<i64>,
    pub training_trade: Option<TrainingTrade>,
    pub at_risk: bool,
    pub safety_net: Vec<SafetyNet>,
    /// The survey the entry comes from.
    pub survey_id: String,
    pub surveyed_at: DateTime<Utc>,
}

type Names = (String, String, String);

/// County, township and village names of a village.
fn names_of(conn: &mut DbConnection, village: &str) -> QueryResult<Names> {
    let (name, township, county): (String, String, String) = villages::table
        .find(village)
        .select((
            villages::name,
            villages::township_code,
            villages::county_code,
        ))
        .first(conn)?;
    let names: HashMap<String, String> = divisions::table
        .filter(divisions::code.eq_any([&township, &county]))
        .select((divisions::code, divisions::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    Ok((
        names.get(&county).cloned().unwrap_or_default(),
        names.get(&township).cloned().unwrap_or_default(),
        name,
    ))
}

fn corrupt(what: &str) -> ApiError {
    ApiError::internal(anyhow::anyhow!("stored {what} is invalid"))
}

/// What a real-name ledger shows of a member beyond what the figures read.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = survey_members, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct MemberDetail {
    survey_id: String,
    position: i32,
    name: String,
    relation: String,
    monthly_income_yuan: Option<i64>,
    safety_net: String,
    #[diesel(select_expression = people::sex)]
    sex: String,
    #[diesel(select_expression = people::birth_date)]
    birth_date: NaiveDate,
    #[diesel(select_expression = people::id_sealed)]
    id_sealed: Option<String>,
}

/// The village's people of a kind for the month, in household and member order.
pub fn village_entries(
    conn: &mut DbConnection,
    vault: &Vault,
    village: &str,
    month: Month,
    kind: RosterKind,
    reveal: bool,
) -> ApiResult<Vec<RosterEntry>> {
    entries_where(conn, vault, village, month, reveal, |m, v| {
        kind.matches(m, v)
    })
}

/// The village's people for the month whom `chosen` picks, in household and member order.
pub fn entries_where(
    conn: &mut DbConnection,
    vault: &Vault,
    village: &str,
    month: Month,
    reveal: bool,
    chosen: impl Fn(&Member, &Version) -> bool,
) -> ApiResult<Vec<RosterEntry>> {
    let [approved, _] = figures::counted(conn, village, month)?;
    let mut chosen: Vec<&(Member, Version)> = approved
        .people
        .iter()
        .filter(|(m, v)| chosen(m, v))
        .collect();
    if chosen.is_empty() {
        return Ok(Vec::new());
    }
    chosen.sort_by(|a, b| (&a.1.household, a.0.position).cmp(&(&b.1.household, b.0.position)));
    let (county_name, township_name, village_name) = names_of(conn, village)?;
    let surveys: Vec<&str> = chosen.iter().map(|(m, _)| m.survey.as_str()).collect();
    let heads: HashMap<String, String> = household_surveys::table
        .filter(household_surveys::id.eq_any(&surveys))
        .select((household_surveys::id, household_surveys::head_name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let rows: Vec<MemberDetail> = survey_members::table
        .inner_join(people::table)
        .filter(survey_members::survey_id.eq_any(&surveys))
        .select(MemberDetail::as_select())
        .load(conn)?;
    let details: HashMap<(String, i32), MemberDetail> = rows
        .into_iter()
        .map(|r| ((r.survey_id.clone(), r.position), r))
        .collect();
    chosen
        .into_iter()
        .map(|(m, v)| {
            let d = details
                .get(&(m.survey.clone(), m.position))
                .ok_or_else(|| corrupt("member"))?;
            let id = match &d.id_sealed {
                Some(sealed) => Some(vault.open_id(sealed).map_err(ApiError::internal)?),
                None => None,
            };
            Ok(RosterEntry {
                county_name: county_name.clone(),
                township_name: township_name.clone(),
                village_code: village.to_owned(),
                village_name: village_name.clone(),
                household_id: v.household.clone(),
                head_name: heads.get(&m.survey).cloned().unwrap_or_default(),
                name: d.name.clone(),
                sex: Sex::parse(&d.sex).ok_or_else(|| corrupt("sex"))?,
                birth_date: d.birth_date,
                id_number: id.map(|id| {
                    if reveal {
                        id.expose().to_owned()
                    } else {
                        id.masked()
                    }
                }),
                relation: Relation::parse(&d.relation).ok_or_else(|| corrupt("relation"))?,
                labour_capacity: LabourCapacity::parse(&m.capacity)
                    .ok_or_else(|| corrupt("labour capacity"))?,
                employment_status: m.status.as_deref().and_then(EmploymentStatus::parse),
                post_type: m.post_type.as_deref().and_then(PostType::parse),
                monthly_income_yuan: d.monthly_income_yuan,
                training_trade: m.trade.as_deref().and_then(TrainingTrade::parse),
                at_risk: m.at_risk,
                safety_net: d
                    .safety_net
                    .split(',')
                    .filter_map(SafetyNet::parse)
                    .collect(),
                survey_id: m.survey.clone(),
                surveyed_at: v.surveyed_at.and_utc(),
            })
        })
        .collect()
}

/// Where a page starts: a village code and how many of its entries were already given.
pub type RosterCursor = (String, usize);

/// The `next_cursor` of a page.
pub fn encode_cursor(village: &str, offset: usize) -> String {
    format!("{village}.{offset}")
}

/// A `cursor` query parameter, as [`encode_cursor`] made it (else 400 `invalid_query`).
pub fn decode_cursor(cursor: &str) -> ApiResult<RosterCursor> {
    let bad = || crate::error::bad_query("cursor", "不是本服务器给出的翻页游标");
    let (village, offset) = cursor.split_once('.').ok_or_else(bad)?;
    crate::domain::DivisionCode::parse_level(village, crate::domain::DivisionLevel::Village)
        .map_err(|_| bad())?;
    Ok((village.to_owned(), offset.parse().map_err(|_| bad())?))
}

/// What a page of a real-name ledger lists.
pub struct PageRequest<'a> {
    pub villages: &'a [String],
    pub month: Month,
    pub kind: RosterKind,
    pub reveal: bool,
    pub after: Option<RosterCursor>,
    pub limit: usize,
}

/// A page of a real-name ledger, and where the next one starts.
pub fn page(
    conn: &mut DbConnection,
    vault: &Vault,
    request: PageRequest<'_>,
) -> ApiResult<(Vec<RosterEntry>, Option<RosterCursor>)> {
    let PageRequest {
        villages,
        month,
        kind,
        reveal,
        after,
        limit,
    } = request;
    let mut out = Vec::new();
    let start = match &after {
        Some((village, _)) => villages
            .iter()
            .position(|v| v == village)
            .unwrap_or(villages.len()),
        None => 0,
    };
    for village in &villages[start..] {
        let skip = match &after {
            Some((v, n)) if v == village => *n,
            _ => 0,
        };
        let entries = village_entries(conn, vault, village, month, kind, reveal)?;
        let available = entries.len().saturating_sub(skip);
        let wanted = limit - out.len();
        out.extend(entries.into_iter().skip(skip).take(wanted));
        if available > wanted {
            return Ok((out, Some((village.clone(), skip + wanted))));
        }
        if out.len() == limit {
            // The page ends exactly at this village's end: continue after it.
            let next = villages
                .iter()
                .skip_while(|v| *v != village)
                .nth(1)
                .map(|v| (v.clone(), 0));
            return Ok((out, next));
        }
    }
    Ok((out, None))
}

/// Column headers of a real-name ledger, in Chinese.
pub const HEADERS: [&str; 18] = [
    "县（市、区）",
    "乡镇（街道）",
    "行政村",
    "户主姓名",
    "姓名",
    "性别",
    "出生日期",
    "身份证号",
    "与户主关系",
    "劳动能力",
    "就业状态",
    "公益岗类型",
    "月收入（元）",
    "培训工种",
    "返贫风险",
    "兜底措施",
    "调查时间（北京时间）",
    "村代码",
];

/// Column widths of a real-name ledger's sheet, in characters.
pub const WIDTHS: [usize; 18] = [
    8, 10, 12, 8, 8, 4, 10, 18, 10, 10, 12, 10, 8, 10, 6, 16, 16, 12,
];

/// An entry as the cells of its row, in Chinese: the income a number, the ID number and the
/// village code text.
pub fn cells(e: &RosterEntry) -> [Cell; 18] {
    let china = crate::domain::time::china();
    let label = |l: Option<&'static str>| Cell::text(l.unwrap_or_default());
    [
        Cell::text(&e.county_name),
        Cell::text(&e.township_name),
        Cell::text(&e.village_name),
        Cell::text(&e.head_name),
        Cell::text(&e.name),
        Cell::text(e.sex.label()),
        Cell::text(e.birth_date.format("%Y-%m-%d").to_string()),
        Cell::code(e.id_number.clone().unwrap_or_default()),
        Cell::text(e.relation.label()),
        Cell::text(e.labour_capacity.label()),
        label(e.employment_status.map(|s| s.label())),
        label(e.post_type.map(|p| p.label())),
        e.monthly_income_yuan.map_or_else(Cell::empty, Cell::Number),
        label(e.training_trade.map(|t| t.label())),
        Cell::text(if e.at_risk { "是" } else { "否" }),
        Cell::text(
            e.safety_net
                .iter()
                .map(|n| n.label())
                .collect::<Vec<_>>()
                .join("、"),
        ),
        Cell::text(
            e.surveyed_at
                .with_timezone(&china)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
        ),
        Cell::code(&e.village_code),
    ]
}

/// The totals line under a real-name ledger.
pub fn total(count: i64) -> [Cell; 3] {
    [Cell::text("合计"), Cell::Number(count), Cell::text("人")]
}
