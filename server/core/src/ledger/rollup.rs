//! Township, county and city figures kept ready as sums of what is below them, so that reading
//! a node sums its children's figure sets (a city: its counties'), not its villages'.
//!
//! A roll-up is labelled with a stamp: for an open month, the sum of its villages' generations
//! when it was summed (generations only grow, so the sum moves whenever any village's does);
//! for a closed month, minus the version of the snapshot it was summed from. A roll-up counts
//! while its stamp is the node's current one; a stale one is summed again from its children,
//! themselves roll-ups where current, so one village changed costs that village, its township,
//! its county and the city. Nothing above the villages is bumped when data changes: a county
//! or city counter would be a row every writer of the county or city updates.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::cache::{self, Fresh};
use super::figures::{Dense, VillageFigures};
use super::node::{child_level, Node, CITY};
use crate::db::schema::{divisions, ledger_generations, ledger_rollups, villages};
use crate::db::DbConnection;
use crate::domain::{DivisionCode, DivisionLevel, Month};
use crate::error::{ApiError, ApiResult};

/// The division tree under a node as its villages make it (townships and counties that hold a
/// village), with each node's stamp for an open month.
pub struct Tree {
    scope: Node,
    /// The city's counties and each county's townships, in code order.
    children: BTreeMap<String, Vec<String>>,
    /// Each township, county and the city: the sum of its villages' generations.
    stamps: HashMap<String, i64>,
}

impl Tree {
    /// One grouped query: a row a township, its generations summed by the database.
    pub fn load(conn: &mut DbConnection, scope: &Node) -> QueryResult<Tree> {
        let q = villages::table
            .left_join(
                ledger_generations::table.on(ledger_generations::village_code.eq(villages::code)),
            )
            .group_by((villages::county_code, villages::township_code))
            .select((
                villages::county_code,
                villages::township_code,
                // SUM of a BIGINT is NUMERIC on PostgreSQL: cast it back.
                sql::<BigInt>("CAST(COALESCE(SUM(ledger_generations.generation), 0) AS BIGINT)"),
            ))
            .order((villages::county_code, villages::township_code))
            .into_boxed();
        let code = scope.code.as_str().to_owned();
        let q = match scope.level {
            DivisionLevel::City => q,
            DivisionLevel::County => q.filter(villages::county_code.eq(code)),
            DivisionLevel::Township => q.filter(villages::township_code.eq(code)),
            DivisionLevel::Village => q.filter(villages::code.eq(code)),
        };
        let rows: Vec<(String, String, i64)> = q.load(conn)?;
        let mut children: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut stamps: HashMap<String, i64> = HashMap::new();
        for (county, township, generations) in rows {
            for node in [CITY, county.as_str(), township.as_str()] {
                *stamps.entry(node.to_owned()).or_insert(0) += generations;
            }
            let counties = children.entry(CITY.to_owned()).or_default();
            if counties.last() != Some(&county) {
                counties.push(county.clone());
            }
            children.entry(county).or_default().push(township);
        }
        Ok(Tree {
            scope: scope.clone(),
            children,
            stamps,
        })
    }

    /// The scope's children as ledger nodes, named, in code order.
    pub fn child_nodes(&self, conn: &mut DbConnection) -> QueryResult<Vec<Node>> {
        let Some(level) = child_level(self.scope.level) else {
            return Ok(Vec::new());
        };
        let named: Vec<(String, String)> = if level == DivisionLevel::Village {
            villages::table
                .filter(villages::township_code.eq(self.scope.code.as_str()))
                .select((villages::code, villages::name))
                .order(villages::code)
                .load(conn)?
        } else {
            let codes = self.children(self.scope.code.as_str());
            let names: HashMap<String, String> = divisions::table
                .filter(divisions::code.eq_any(codes))
                .select((divisions::code, divisions::name))
                .load::<(String, String)>(conn)?
                .into_iter()
                .collect();
            codes
                .iter()
                .map(|c| (c.clone(), names.get(c).cloned().unwrap_or_default()))
                .collect()
        };
        Ok(named
            .into_iter()
            .filter_map(|(code, name)| {
                // Codes read from the tables are well formed; one that is not is skipped.
                Some(Node {
                    level,
                    code: DivisionCode::parse(&code).ok()?,
                    name,
                })
            })
            .collect())
    }

    fn children(&self, code: &str) -> &[String] {
        self.children.get(code).map_or(&[], Vec::as_slice)
    }
}

/// The villages of each township, for the stale townships only.
fn villages_of_townships(
    conn: &mut DbConnection,
    townships: &[String],
) -> QueryResult<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for chunk in townships.chunks(500) {
        let rows: Vec<(String, String)> = villages::table
            .filter(villages::township_code.eq_any(chunk))
            .select((villages::township_code, villages::code))
            .order(villages::code)
            .load(conn)?;
        for (township, village) in rows {
            out.entry(township).or_default().push(village);
        }
    }
    Ok(out)
}

/// A village of the tree with no figures still counts as a village.
fn empty_village() -> VillageFigures {
    VillageFigures {
        approved: Dense::village_without_data(),
        including_pending: Dense::village_without_data(),
    }
}

fn parse(text: &str) -> ApiResult<Dense> {
    Dense::parse(text).map_err(|e| ApiError::internal(anyhow::anyhow!("rolled-up figures: {e}")))
}

const LEVELS: [DivisionLevel; 3] = [
    DivisionLevel::City,
    DivisionLevel::County,
    DivisionLevel::Township,
];

/// The figures, summed but without their derived figures, of the wanted nodes of `scope` (any
/// level; villages' are their own) for a month, and what was computed on the way to store.
///
/// Load the tree first: data read afterwards is at least as new as its stamps, so a roll-up
/// stored with them is never labelled newer than what it sums.
pub fn figures(
    conn: &mut DbConnection,
    tree: &Tree,
    wanted: &[(DivisionLevel, String)],
    month: Month,
) -> ApiResult<(HashMap<String, VillageFigures>, Fresh)> {
    let closed = cache::standing_close(conn, month)?;
    let stamp = |code: &str| match closed {
        Some(version) => -i64::from(version),
        None => tree.stamps.get(code).copied().unwrap_or(0),
    };
    let month_key = month.to_string();
    let mut out: HashMap<String, VillageFigures> = HashMap::new();
    let mut fresh = Fresh::new(month);
    // Top down: each level's wanted nodes and the children of the stale ones above.
    let mut carry: BTreeSet<String> = BTreeSet::new();
    let mut stale_by_level: Vec<Vec<String>> = Vec::new();
    let mut townships: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for level in LEVELS {
        let mut codes = std::mem::take(&mut carry);
        codes.extend(
            wanted
                .iter()
                .filter(|(l, _)| *l == level)
                .map(|(_, c)| c.clone()),
        );
        if codes.is_empty() {
            continue;
        }
        let stored: Vec<(String, i64, String, String)> = ledger_rollups::table
            .filter(ledger_rollups::month.eq(&month_key))
            .filter(ledger_rollups::code.eq_any(&codes))
            .select((
                ledger_rollups::code,
                ledger_rollups::stamp,
                ledger_rollups::approved,
                ledger_rollups::pending,
            ))
            .load(conn)?;
        let mut current: BTreeSet<String> = BTreeSet::new();
        for (code, s, approved, pending) in stored {
            if s == stamp(&code) {
                out.insert(
                    code.clone(),
                    VillageFigures {
                        approved: parse(&approved)?,
                        including_pending: parse(&pending)?,
                    },
                );
                current.insert(code);
            }
        }
        let stale: Vec<String> = codes.into_iter().filter(|c| !current.contains(c)).collect();
        if level == DivisionLevel::Township {
            townships = villages_of_townships(conn, &stale)?;
            carry.extend(townships.values().flatten().cloned());
        } else {
            for code in &stale {
                carry.extend(tree.children(code).iter().cloned());
            }
        }
        stale_by_level.push(stale);
    }
    carry.extend(
        wanted
            .iter()
            .filter(|(l, _)| *l == DivisionLevel::Village)
            .map(|(_, c)| c.clone()),
    );
    if !carry.is_empty() {
        let villages: Vec<String> = carry.into_iter().collect();
        let (figures, computed) = cache::figures_for(conn, &villages, month)?;
        out.extend(figures);
        fresh.rows = computed.rows;
        for village in villages {
            out.entry(village).or_insert_with(empty_village);
        }
    }
    // Bottom up: a stale node is the sum of its children, all known by now.
    for stale in stale_by_level.into_iter().rev() {
        for code in stale {
            let mut sum = VillageFigures::default();
            let children = townships
                .get(&code)
                .map_or_else(|| tree.children(&code), Vec::as_slice);
            for child in children {
                if let Some(f) = out.get(child) {
                    sum.approved.add(&f.approved);
                    sum.including_pending.add(&f.including_pending);
                }
            }
            fresh
                .rollups
                .push((code.clone(), stamp(&code), sum.clone()));
            out.insert(code, sum);
        }
    }
    Ok((out, fresh))
}

/// Stores roll-ups a read computed. Another reader may store the same node at once: either
/// row will do, and a row labelled with a stamp since passed only costs a recomputation.
pub fn store(
    conn: &mut DbConnection,
    month: &str,
    rows: &[(String, i64, VillageFigures)],
) -> QueryResult<()> {
    for (code, stamp, figures) in rows {
        diesel::delete(ledger_rollups::table.find((month, code))).execute(conn)?;
        let insert = diesel::insert_into(ledger_rollups::table)
            .values((
                ledger_rollups::code.eq(code),
                ledger_rollups::month.eq(month),
                ledger_rollups::stamp.eq(stamp),
                ledger_rollups::approved.eq(figures.approved.encode()),
                ledger_rollups::pending.eq(figures.including_pending.encode()),
            ))
            .on_conflict_do_nothing();
        crate::execute_on_backend!(conn, insert)?;
    }
    Ok(())
}
