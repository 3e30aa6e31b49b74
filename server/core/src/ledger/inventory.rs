//! One node of the ledger (city, county, township or village) for a month: its figures on both
//! bases beside last month's, its children's figures, and quota progress.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::cache::{self, Fresh};
use super::figures::{self, Dense, VillageFigures};
use super::node::{villages_of, Node};
use super::quotas::{self, QuotaProgress};
use super::rollup;
use crate::db::schema::{divisions, villages};
use crate::db::DbConnection;
use crate::domain::{DivisionLevel, Month};
use crate::error::ApiResult;

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

fn rows(approved: &Dense, pending: &Dense, previous: &Dense) -> Vec<FigureRow> {
    figures::catalogue()
        .iter()
        .enumerate()
        .map(|(i, d)| FigureRow {
            key: d.key.clone(),
            label: d.label.clone(),
            group: d.group.to_owned(),
            approved: approved.0[i],
            including_pending: pending.0[i],
            previous: previous.0[i],
            change: approved.0[i] - previous.0[i],
        })
        .collect()
}

/// The node's inventory for a month, and the figures it computed (for the cache). The node's
/// and its children's figures are roll-ups where current ([`rollup`]), so a city node sums its
/// counties, not its villages.
pub fn inventory(
    conn: &mut DbConnection,
    node: &Node,
    month: Month,
) -> ApiResult<(Inventory, Vec<Fresh>)> {
    let tree = rollup::Tree::load(conn, node)?;
    let children = tree.child_nodes(conn)?;
    let mut wanted: Vec<(DivisionLevel, String)> =
        vec![(node.level, node.code.as_str().to_owned())];
    wanted.extend(
        children
            .iter()
            .map(|n| (n.level, n.code.as_str().to_owned())),
    );
    let (now, fresh_now) = rollup::figures(conn, &tree, &wanted, month)?;
    let (before, fresh_before) = rollup::figures(conn, &tree, &wanted, month.previous())?;
    let closed = cache::is_closed(conn, month)?;
    let figures_of = |n: &Node| {
        let code = n.code.as_str();
        let pick = |m: &HashMap<String, VillageFigures>| m.get(code).cloned().unwrap_or_default();
        let (now, before) = (pick(&now), pick(&before));
        NodeFigures {
            level: n.level,
            code: code.to_owned(),
            name: n.name.clone(),
            figures: rows(
                &now.approved.with_derived(),
                &now.including_pending.with_derived(),
                &before.approved.with_derived(),
            ),
        }
    };
    let children = children.iter().map(figures_of).collect();
    let node_figures = figures_of(node);
    let quota = quota_of(conn, node, month, &node_figures)?;
    Ok((
        Inventory {
            month: month.to_string(),
            as_of: month.last_day(),
            closed,
            node: node_figures,
            quota,
            children,
        },
        vec![fresh_now, fresh_before],
    ))
}

/// Quota progress of a city or county node for the month's year (none below a county).
fn quota_of(
    conn: &mut DbConnection,
    node: &Node,
    month: Month,
    figures: &NodeFigures,
) -> ApiResult<Option<QuotaProgress>> {
    let county = match node.level {
        DivisionLevel::City => None,
        DivisionLevel::County => Some(&node.code),
        _ => return Ok(None),
    };
    let held = |key: &str| {
        figures
            .figures
            .iter()
            .find(|f| f.key == key)
            .map_or(0, |f| f.approved)
    };
    Ok(Some(quotas::progress(
        conn,
        month.year(),
        county,
        held("employment_special_post"),
        held("employment_temporary_public_post"),
    )?))
}

/// One row of an export: a place and its approved figures.
#[derive(Debug, Clone)]
pub struct Place {
    pub code: String,
    pub name: String,
    /// County and township names, for the village sheet.
    pub county_name: String,
    pub township_name: String,
    pub figures: Dense,
}

/// What an export of a node shows: each level below it (down to villages), and the total.
#[derive(Debug, Clone)]
pub struct Places {
    pub levels: Vec<(DivisionLevel, Vec<Place>)>,
    pub total: Dense,
}

/// A village and the township and county it lies in.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = villages, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct VillageRow {
    code: String,
    name: String,
    township_code: String,
    county_code: String,
}

/// Every place below a node with its approved figures for the month, and the figures computed
/// on the way (for the cache).
pub fn places(conn: &mut DbConnection, node: &Node, month: Month) -> ApiResult<(Places, Fresh)> {
    let villages_list = villages_of(conn, node)?;
    let (figures, fresh) = cache::figures_for(conn, &villages_list, month)?;
    let rows: Vec<VillageRow> = villages::table
        .filter(villages::code.eq_any(&villages_list))
        .select(VillageRow::as_select())
        .order(villages::code)
        .load(conn)?;
    let names: HashMap<String, String> = divisions::table
        .select((divisions::code, divisions::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let name = |code: &str| names.get(code).cloned().unwrap_or_default();
    let empty = Dense::village_without_data();
    let mut village_rows = Vec::new();
    let mut townships: BTreeMap<String, Place> = BTreeMap::new();
    let mut counties: BTreeMap<String, Place> = BTreeMap::new();
    let mut total = Dense::default();
    for VillageRow {
        code,
        name: village_name,
        township_code: township,
        county_code: county,
    } in rows
    {
        let f = figures.get(&code).map_or(&empty, |f| &f.approved).clone();
        total.add(&f);
        for (map, key, parent) in [
            (&mut townships, township.clone(), county.clone()),
            (&mut counties, county.clone(), String::new()),
        ] {
            map.entry(key.clone())
                .or_insert_with(|| Place {
                    name: name(&key),
                    county_name: name(&parent),
                    township_name: String::new(),
                    code: key,
                    figures: Dense::default(),
                })
                .figures
                .add(&f);
        }
        village_rows.push(Place {
            code,
            name: village_name,
            county_name: name(&county),
            township_name: name(&township),
            figures: f.with_derived(),
        });
    }
    let finish = |m: BTreeMap<String, Place>| -> Vec<Place> {
        m.into_values()
            .map(|mut p| {
                p.figures = p.figures.with_derived();
                p
            })
            .collect()
    };
    let mut levels = Vec::new();
    if node.level == DivisionLevel::City {
        levels.push((DivisionLevel::County, finish(counties)));
    }
    if matches!(node.level, DivisionLevel::City | DivisionLevel::County) {
        levels.push((DivisionLevel::Township, finish(townships)));
    }
    levels.push((DivisionLevel::Village, village_rows));
    Ok((
        Places {
            levels,
            total: total.with_derived(),
        },
        fresh,
    ))
}

/// Writes a node's export: XLSX with a sheet per level, or CSV of its villages.
pub fn write_export(
    node: &Node,
    title: &str,
    places: &Places,
    csv: bool,
    sink: &mut dyn std::io::Write,
) -> ApiResult<()> {
    use crate::sheets::{Cell, Csv, Layout, Xlsx};
    let catalogue = figures::catalogue();
    let total_label = format!("{}合计", node.name);
    let figures = |f: &Dense| f.0.iter().map(|n| Cell::Number(*n)).collect::<Vec<_>>();
    if csv {
        let mut headers: Vec<&str> = vec!["县（市、区）", "乡镇（街道）", "行政村", "村代码"];
        headers.extend(catalogue.iter().map(|d| d.label.as_str()));
        let mut out = Csv::new(sink, &headers)?;
        let villages = places
            .levels
            .iter()
            .find(|(l, _)| *l == DivisionLevel::Village)
            .map(|(_, p)| p.as_slice())
            .unwrap_or_default();
        for p in villages {
            let mut cells = vec![
                Cell::text(&p.county_name),
                Cell::text(&p.township_name),
                Cell::text(&p.name),
                Cell::code(&p.code),
            ];
            cells.extend(figures(&p.figures));
            out.row(&cells)?;
        }
        let mut cells = vec![Cell::text(&total_label)];
        cells.extend((0..3).map(|_| Cell::empty()));
        cells.extend(figures(&places.total));
        out.row(&cells)?;
        return out.finish();
    }
    let mut book = Xlsx::new()?;
    for (level, rows) in &places.levels {
        let village_sheet = *level == DivisionLevel::Village;
        let mut headers: Vec<&str> = if village_sheet {
            vec!["县（市、区）", "乡镇（街道）", "行政村", "村代码"]
        } else {
            vec![level.label(), "代码"]
        };
        let fixed = headers.len();
        headers.extend(catalogue.iter().map(|d| d.label.as_str()));
        let mut widths: Vec<usize> = if village_sheet {
            vec![10, 12, 14, 14]
        } else {
            vec![12, 14]
        };
        widths.extend(catalogue.iter().map(|_| 8));
        let (name, title) = (
            format!("{}汇总", level.label()),
            format!("{title}（按{}，截至月末已审核数据）", level.label()),
        );
        let mut sheet = book.sheet(Layout {
            name: &name,
            title: &title,
            note: None,
            headers: &headers,
            widths: &widths,
        })?;
        for p in rows {
            let mut cells = if village_sheet {
                vec![
                    Cell::text(&p.county_name),
                    Cell::text(&p.township_name),
                    Cell::text(&p.name),
                    Cell::code(&p.code),
                ]
            } else {
                vec![Cell::text(&p.name), Cell::code(&p.code)]
            };
            cells.extend(figures(&p.figures));
            sheet.row(&cells)?;
        }
        let mut cells = vec![Cell::text(&total_label)];
        cells.extend((1..fixed).map(|_| Cell::empty()));
        cells.extend(figures(&places.total));
        sheet.total(&cells)?;
        sheet.finish()?;
    }
    book.finish(sink)
}
