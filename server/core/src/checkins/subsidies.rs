//! The post subsidy sheet (岗位补贴发放表): every special-post and temporary-post holder of the
//! real-name ledger in a node, with the days attended (accepted or confirmed check-ins), the
//! days required, and the amount due under the configured [`SubsidyRule`]; totals per village,
//! township and county. Amounts are integer fen, summed as integers.

use std::collections::{BTreeMap, HashMap, HashSet};

use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::attendance::{self, Filter};
use super::policy::{CheckinPolicy, SubsidyRule};
use crate::auth::{Area, Caller};
use crate::db::schema::villages;
use crate::db::DbConnection;
use crate::domain::{DivisionLevel, EmploymentStatus, Month, SubsidyMethod};
use crate::error::ApiResult;
use crate::ledger::node::{self, Node, NodeFilter};
use crate::privacy::Vault;

/// The rule the amounts were computed under.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleView {
    pub method: SubsidyMethod,
    /// Temporary public-welfare posts' full monthly amount, in fen (80000 = 800 yuan).
    pub temporary_post_monthly_fen: i64,
    /// Poverty special posts' full monthly amount, in fen (configured; see the README).
    pub special_post_monthly_fen: i64,
    /// Days a post holder must attend in the month.
    pub days_required: u32,
}

/// One holder's line.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubsidyLine {
    pub county_code: String,
    pub county_name: String,
    pub township_code: String,
    pub township_name: String,
    pub village_code: String,
    pub village_name: String,
    pub name: Option<String>,
    /// Masked.
    pub worker_id_number: Option<String>,
    #[schema(value_type = EmploymentStatus, example = "temporary_public_post")]
    pub post: EmploymentStatus,
    /// Days that count (accepted, or flagged and confirmed).
    pub days_attended: u32,
    /// Days with flagged check-ins still awaiting a reviewer (not paid until confirmed).
    pub days_flagged: u32,
    pub days_required: u32,
    /// The post's full monthly amount, in fen.
    pub monthly_fen: i64,
    /// The amount due, in fen.
    pub due_fen: i64,
    /// No day attended this month (listed, with nothing due under the pro-rated rule).
    pub no_attendance: bool,
}

/// Totals of a village, township or county.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubsidyTotal {
    pub level: DivisionLevel,
    pub code: String,
    pub name: String,
    pub people: u32,
    pub no_attendance: u32,
    pub due_fen: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubsidySheet {
    #[schema(value_type = String, example = "2020-07")]
    pub month: Month,
    pub level: DivisionLevel,
    pub code: String,
    pub name: String,
    pub rule: RuleView,
    pub people: Vec<SubsidyLine>,
    pub villages: Vec<SubsidyTotal>,
    pub townships: Vec<SubsidyTotal>,
    pub counties: Vec<SubsidyTotal>,
    /// The node's total due, in fen.
    pub total_due_fen: i64,
    pub total_people: u32,
}

/// The area attendance is read for to cover a node (a township's county, then narrowed).
fn area_of(node: &Node) -> Area {
    match node.level {
        DivisionLevel::City => Area::default(),
        DivisionLevel::County => Area {
            county: Some(node.code.clone()),
            ..Area::default()
        },
        DivisionLevel::Township => Area {
            county: Some(node.code.county()),
            ..Area::default()
        },
        DivisionLevel::Village => Area {
            village: Some(node.code.clone()),
            ..Area::default()
        },
    }
}

/// Authorises and looks up the node (403 `out_of_scope`, 404 `not_found`).
pub fn resolve(conn: &mut DbConnection, caller: &Caller, filter: &NodeFilter) -> ApiResult<Node> {
    node::resolve(conn, caller, filter)
}

type Place = (String, String, String);

/// The sheet of a node for a month.
pub fn compute(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &CheckinPolicy,
    caller: &Caller,
    node: &Node,
    month: Month,
) -> ApiResult<SubsidySheet> {
    let rule: &SubsidyRule = &policy.subsidy;
    let in_node: HashSet<String> = node::villages_of(conn, node)?.into_iter().collect();
    let f = Filter {
        month,
        area: area_of(node),
        user: None,
    };
    let detailed = attendance::detailed(conn, vault, policy, caller, &f)?;
    let holders: Vec<_> = detailed
        .attendance
        .people
        .into_iter()
        .filter(|p| p.post.is_some() && in_node.contains(&p.village_code))
        .collect();
    let codes: Vec<String> = holders.iter().map(|p| p.village_code.clone()).collect();
    let places: HashMap<String, Place> = villages::table
        .filter(villages::code.eq_any(&codes))
        .select((
            villages::code,
            villages::township_code,
            villages::county_code,
        ))
        .load::<(String, String, String)>(conn)?
        .into_iter()
        .map(|(v, t, c)| (v.clone(), (v, t, c)))
        .collect();
    let mut all_codes: Vec<String> = places
        .values()
        .flat_map(|(v, t, c)| [v.clone(), t.clone(), c.clone()])
        .collect();
    all_codes.sort_unstable();
    all_codes.dedup();
    let names = crate::villages::names(conn, &all_codes)?;
    let name = |code: &str| names.get(code).cloned().unwrap_or_default();
    let mut people = Vec::new();
    for p in holders {
        let Some(post) = p.post else { continue };
        let (village, township, county) = places
            .get(&p.village_code)
            .cloned()
            .unwrap_or_else(|| (p.village_code.clone(), String::new(), String::new()));
        let monthly = rule.monthly_fen(post);
        people.push(SubsidyLine {
            county_name: name(&county),
            township_name: name(&township),
            village_name: name(&village),
            county_code: county,
            township_code: township,
            village_code: village,
            name: p.name,
            worker_id_number: p.worker_id_number,
            post,
            days_attended: p.days_present,
            days_flagged: p.days_flagged,
            days_required: p.days_required,
            monthly_fen: monthly,
            due_fen: rule.amount_due(monthly, p.days_present, p.days_required),
            no_attendance: p.days_present == 0,
        });
    }
    people.sort_by(|a, b| {
        (&a.county_code, &a.township_code, &a.village_code).cmp(&(
            &b.county_code,
            &b.township_code,
            &b.village_code,
        ))
    });
    let totals = |level: DivisionLevel, code_of: &dyn Fn(&SubsidyLine) -> String| {
        let mut map: BTreeMap<String, SubsidyTotal> = BTreeMap::new();
        for p in &people {
            let code = code_of(p);
            let t = map.entry(code.clone()).or_insert_with(|| SubsidyTotal {
                level,
                name: name(&code),
                code,
                people: 0,
                no_attendance: 0,
                due_fen: 0,
            });
            t.people += 1;
            t.no_attendance += u32::from(p.no_attendance);
            t.due_fen += p.due_fen;
        }
        map.into_values().collect::<Vec<_>>()
    };
    let villages = totals(DivisionLevel::Village, &|p| p.village_code.clone());
    let townships = totals(DivisionLevel::Township, &|p| p.township_code.clone());
    let counties = totals(DivisionLevel::County, &|p| p.county_code.clone());
    Ok(SubsidySheet {
        month,
        level: node.level,
        code: node.code.as_str().to_owned(),
        name: node.name.clone(),
        rule: RuleView {
            method: rule.method,
            temporary_post_monthly_fen: rule.temporary_post_monthly_fen,
            special_post_monthly_fen: rule.special_post_monthly_fen,
            days_required: policy.required_days_special_post,
        },
        total_due_fen: people.iter().map(|p| p.due_fen).sum(),
        total_people: people.len() as u32,
        people,
        villages,
        townships,
        counties,
    })
}

/// Fen as yuan with two decimals, for people to read (`80000` → `800.00`).
pub use crate::sheets::yuan;
