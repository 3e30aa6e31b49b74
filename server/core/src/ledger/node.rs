//! The places the ledger is read for (city, county, township, village): which node a request
//! names, whether its caller may read it, and the villages below it.

use diesel::prelude::*;

use crate::auth::{Caller, ScopeLevel};
use crate::db::schema::{divisions, villages};
use crate::db::DbConnection;
use crate::domain::{DivisionCode, DivisionLevel};
use crate::error::{bad_query, ApiError, ApiResult, ErrorCode};

/// The city's code: every village of the fixtures is in it.
pub const CITY: &str = "220800000000";

/// A place of the division tree the ledger is read for.
#[derive(Debug, Clone)]
pub struct Node {
    pub level: DivisionLevel,
    pub code: DivisionCode,
    pub name: String,
}

/// A node as a request names it: its level and code, parsed but not yet looked up or checked
/// against the caller's scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFilter {
    pub level: DivisionLevel,
    pub code: DivisionCode,
}

impl NodeFilter {
    /// Parses the query's `level` (default the city) and `code` (needed below the city): 400
    /// `invalid_query` naming `code`.
    pub fn parse(level: Option<DivisionLevel>, code: Option<&str>) -> ApiResult<NodeFilter> {
        let level = level.unwrap_or(DivisionLevel::City);
        let code = match (level, code) {
            (DivisionLevel::City, None) => CITY,
            (_, Some(code)) => code,
            (_, None) => {
                return Err(bad_query(
                    "code",
                    format!("查询{}级须给出区划代码", level.label()),
                ))
            }
        };
        let code =
            DivisionCode::parse_level(code, level).map_err(|e| bad_query("code", e.message))?;
        Ok(NodeFilter { level, code })
    }

    /// The city.
    pub fn city() -> NodeFilter {
        NodeFilter {
            level: DivisionLevel::City,
            code: DivisionCode::parse(CITY).unwrap_or_else(|_| unreachable!("a valid constant")),
        }
    }
}

/// Authorises and looks up the node a caller asks for: county reviewers read their county and
/// what is in it, field users their own villages, the city everything.
pub fn resolve(conn: &mut DbConnection, caller: &Caller, filter: &NodeFilter) -> ApiResult<Node> {
    let (level, code) = (filter.level, &filter.code);
    let allowed = match (caller.scope_level(), level) {
        (ScopeLevel::City, _) => true,
        (ScopeLevel::County, DivisionLevel::City) => false,
        (ScopeLevel::County, _) => caller.can_access_county(&code.county()),
        (ScopeLevel::Villages, DivisionLevel::Village) => caller.can_access_village(code),
        (ScopeLevel::Villages, _) => false,
    };
    if !allowed {
        return Err(ApiError::Forbidden {
            code: ErrorCode::OutOfScope,
            detail: format!("{} {} 不在您的管辖范围内", level.label(), code.as_str()),
        });
    }
    node(conn, level, code)
}

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
            code: code.clone(),
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
    let code = node.code.as_str().to_owned();
    let q = match node.level {
        DivisionLevel::City => q,
        DivisionLevel::County => q.filter(villages::county_code.eq(code)),
        DivisionLevel::Township => q.filter(villages::township_code.eq(code)),
        DivisionLevel::Village => q.filter(villages::code.eq(code)),
    };
    q.load(conn)
}

/// The level below a node's (villages have none).
pub fn child_level(level: DivisionLevel) -> Option<DivisionLevel> {
    match level {
        DivisionLevel::City => Some(DivisionLevel::County),
        DivisionLevel::County => Some(DivisionLevel::Township),
        DivisionLevel::Township => Some(DivisionLevel::Village),
        DivisionLevel::Village => None,
    }
}
