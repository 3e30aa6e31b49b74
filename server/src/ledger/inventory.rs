//! One node of the ledger (city, county, township or village) for a month: its figures on both
//! bases beside last month's, its children's figures, and quota progress.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::cache::{self, Fresh};
use super::figures::{self, Figures, VillageFigures};
use super::quotas;
use crate::db::schema::{divisions, villages};
use crate::db::DbConnection;
use crate::domain::{DivisionCode, DivisionLevel};
use crate::error::{ApiError, ApiResult};

/// A place of the division tree the ledger is read for.
#[derive(Debug, Clone)]
pub struct Node {
    pub level: DivisionLevel,
    pub code: String,
    pub name: String,
}

/// The city's code: every village of the fixtures is in it.
pub const CITY: &str = "220800000000";

/// Looks a node up in the division tree.
pub fn node(conn: &mut DbConnection, level: DivisionLevel, code: &DivisionCode) -> ApiResult<Node> {
    // Villages live in their own table; the tree above them in `divisions`.
    let found: Option<(String, String)> = if level == DivisionLevel::Village {
        villages::table
            .find(code.as_str())
            .select(villages::name)
            .first::<String>(conn)
            .optional()?
            .map(|name| (name, level.as_str().to_owned()))
    } else {
        divisions::table
            .find(code.as_str())
            .select((divisions::name, divisions::level))
            .first(conn)
            .optional()?
    };
    match found {
        Some((name, found_level)) if found_level == level.as_str() => Ok(Node {
            level,
            code: code.as_str().to_owned(),
            name,
        }),
        _ => Err(ApiError::NotFound(format!(
            "no {} {}",
            level.as_str(),
            code.as_str()
        ))),
    }
}

/// The villages under a node, in code order.
pub fn villages_of(conn: &mut DbConnection, node: &Node) -> QueryResult<Vec<String>> {
    let q = villages::table
        .select(villages::code)
        .order(villages::code)
        .into_boxed();
    let q = match node.level {
        DivisionLevel::City => q,
        DivisionLevel::County => q.filter(villages::county_code.eq(node.code.clone())),
        DivisionLevel::Township => q.filter(villages::township_code.eq(node.code.clone())),
        DivisionLevel::Village => q.filter(villages::code.eq(node.code.clone())),
    };
    q.load(conn)
}

/// The node's children and the villages each holds.
fn children_of(conn: &mut DbConnection, node: &Node) -> QueryResult<Vec<(Node, Vec<String>)>> {
    let rows: Vec<(String, String, String)> = match node.level {
        DivisionLevel::City => villages::table
            .select((
                villages::code,
                villages::county_code,
                villages::township_code,
            ))
            .order(villages::code)
            .load(conn)?,
        DivisionLevel::County => villages::table
            .filter(villages::county_code.eq(&node.code))
            .select((
                villages::code,
                villages::county_code,
                villages::township_code,
            ))
            .order(villages::code)
            .load(conn)?,
        DivisionLevel::Township => villages::table
            .filter(villages::township_code.eq(&node.code))
            .select((
                villages::code,
                villages::county_code,
                villages::township_code,
            ))
            .order(villages::code)
            .load(conn)?,
        DivisionLevel::Village => return Ok(Vec::new()),
    };
    let level = match node.level {
        DivisionLevel::City => DivisionLevel::County,
        DivisionLevel::County => DivisionLevel::Township,
        _ => DivisionLevel::Village,
    };
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (village, county, township) in &rows {
        let key = match level {
            DivisionLevel::County => county,
            DivisionLevel::Township => township,
            _ => village,
        };
        groups.entry(key.clone()).or_default().push(village.clone());
    }
    let codes: Vec<&String> = groups.keys().collect();
    let names: HashMap<String, String> = divisions::table
        .filter(divisions::code.eq_any(codes))
        .select((divisions::code, divisions::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    Ok(groups
        .into_iter()
        .map(|(code, villages)| {
            (
                Node {
                    level,
                    name: names.get(&code).cloned().unwrap_or_default(),
                    code,
                },
                villages,
            )
        })
        .collect())
}

/// One figure of a node.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FigureRow {
    pub key: String,
    pub label: String,
    pub group: String,
    /// From each household's latest approved version as of the month's end.
    pub approved: i64,
    /// Counting surveys still awaiting review too.
    pub including_pending: i64,
    /// `approved` as of the previous month's end.
    pub previous: i64,
    /// `approved − previous`.
    pub change: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeFigures {
    /// `city`, `county`, `township` or `village`.
    pub level: DivisionLevel,
    pub code: String,
    pub name: String,
    pub figures: Vec<FigureRow>,
}

/// Post quotas of the year against posts held (county and city nodes).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuotaProgress {
    pub year: i32,
    /// Counties of the node with a quota set for the year.
    pub counties_with_quota: usize,
    pub special_posts_quota: i64,
    pub special_posts_held: i64,
    pub temporary_posts_quota: i64,
    pub temporary_posts_held: i64,
    /// Monthly subsidy per temporary post (800 yuan in the seed).
    pub temporary_post_monthly_yuan: i64,
    /// `temporary_posts_held × temporary_post_monthly_yuan`.
    pub temporary_posts_monthly_cost_yuan: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Inventory {
    #[schema(example = "2020-07")]
    pub month: String,
    /// The last day of the month: figures are as of its end.
    pub as_of: NaiveDate,
    /// A closed month is read from its frozen snapshot.
    pub closed: bool,
    pub node: NodeFigures,
    pub quota: Option<QuotaProgress>,
    pub children: Vec<NodeFigures>,
}

fn sum(villages: &[String], figures: &HashMap<String, VillageFigures>) -> (Figures, Figures) {
    let mut approved = Figures::new();
    let mut pending = Figures::new();
    for v in villages {
        if let Some(f) = figures.get(v) {
            figures::add(&mut approved, &f.approved);
            figures::add(&mut pending, &f.including_pending);
        } else {
            // A village with no data still counts as a village.
            figures::add(&mut approved, &Figures::from([("villages".into(), 1)]));
            figures::add(&mut pending, &Figures::from([("villages".into(), 1)]));
        }
    }
    (
        figures::with_derived(approved),
        figures::with_derived(pending),
    )
}

fn rows(approved: &Figures, pending: &Figures, previous: &Figures) -> Vec<FigureRow> {
    let get = |f: &Figures, k: &str| f.get(k).copied().unwrap_or(0);
    figures::catalogue()
        .iter()
        .map(|d| {
            let a = get(approved, &d.key);
            let p = get(previous, &d.key);
            FigureRow {
                key: d.key.clone(),
                label: d.label.clone(),
                group: d.group.to_owned(),
                approved: a,
                including_pending: get(pending, &d.key),
                previous: p,
                change: a - p,
            }
        })
        .collect()
}

/// `YYYY-MM` of the month before.
pub fn previous_month(month: &str) -> Option<String> {
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    let prev = first.pred_opt()?;
    Some(format!("{:04}-{:02}", prev.year(), prev.month()))
}

/// The last day of a month.
pub fn month_end(month: &str) -> Option<NaiveDate> {
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    let next = first.checked_add_months(chrono::Months::new(1))?;
    next.pred_opt()
}

/// The node's inventory for a month, and the figures it computed (for the cache).
pub fn inventory(
    conn: &mut DbConnection,
    node: &Node,
    month: &str,
) -> ApiResult<(Inventory, Vec<Fresh>)> {
    let villages = villages_of(conn, node)?;
    let (now, fresh_now) = cache::figures_for(conn, &villages, month)?;
    let previous = previous_month(month).unwrap_or_default();
    let (before, fresh_before) = cache::figures_for(conn, &villages, &previous)?;
    let closed = cache::is_closed(conn, month)?;
    let figures_of = |n: &Node, vs: &[String]| {
        let (a, p) = sum(vs, &now);
        let (prev, _) = sum(vs, &before);
        NodeFigures {
            level: n.level,
            code: n.code.clone(),
            name: n.name.clone(),
            figures: rows(&a, &p, &prev),
        }
    };
    let children = children_of(conn, node)?
        .iter()
        .map(|(n, vs)| figures_of(n, vs))
        .collect();
    let node_figures = figures_of(node, &villages);
    let year: i32 = month[..4].parse().unwrap_or_default();
    let quota = match node.level {
        DivisionLevel::City | DivisionLevel::County => {
            let held = |key: &str| {
                node_figures
                    .figures
                    .iter()
                    .find(|f| f.key == key)
                    .map_or(0, |f| f.approved)
            };
            Some(quotas::progress(
                conn,
                year,
                node,
                held("employment_special_post"),
                held("employment_temporary_public_post"),
            )?)
        }
        _ => None,
    };
    Ok((
        Inventory {
            month: month.to_owned(),
            as_of: month_end(month).unwrap_or_default(),
            closed,
            node: node_figures,
            quota,
            children,
        },
        vec![fresh_now, fresh_before],
    ))
}
