//! The demand ledger (需求台账) of the city, a county, a township or a village: its figures,
//! charts of the main ones, quota progress, the places below it and exports.

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::error::ConsoleResult;
use super::layout::{change, number, query, render, Nav};
use super::svg::{bars, Bar};
use super::{pairs, parse_pairs, value, Session};
use crate::auth::area;
use crate::domain::{DivisionLevel, MonthStatus, Role};
use crate::ledger::export::ExportFormat;
use crate::ledger::inventory::{FigureRow, Inventory};
use crate::ledger::months::MonthState;
use crate::ledger::node::{child_level, NodeFilter};
use crate::ledger::roster::RosterKind;
use crate::ledger::service;
use crate::state::AppState;

/// The figures charted for every node: the ledger's headline columns.
const MAIN_FIGURES: [&str; 11] = [
    "households",
    "population",
    "labour_force",
    "employed",
    "out_migrants",
    "wants_public_post",
    "post_needed",
    "post_filled",
    "post_gap",
    "training_wanted",
    "at_risk",
];

fn group_label(group: &str) -> &str {
    match group {
        "coverage" => "工作覆盖",
        "households" => "户情况",
        "labour" => "人口与劳动力",
        "employment" => "就业情况",
        "public_welfare_posts" => "扶贫公益岗在岗",
        "post_demand" => "公益岗需求（村级排查）",
        "training" => "培训需求",
        "risk" => "返贫风险",
        "relocation" => "易地扶贫搬迁",
        other => other,
    }
}

fn figure<'a>(rows: &'a [FigureRow], key: &str) -> Option<&'a FigureRow> {
    rows.iter().find(|r| r.key == key)
}

/// The node and month a ledger page names (other parameters, like `figure`, aside).
#[derive(Debug, Deserialize)]
struct NodeForm {
    level: Option<DivisionLevel>,
    code: Option<String>,
    month: Option<String>,
}

/// What a download names: the node, the month and the file's format.
#[derive(Debug, Deserialize)]
struct ExportForm {
    level: Option<DivisionLevel>,
    code: Option<String>,
    month: Option<String>,
    format: Option<ExportFormat>,
}

/// What a ledger page shows: the node's inventory for the month, and the figure compared
/// across its children.
struct View<'a> {
    level: DivisionLevel,
    code: Option<&'a str>,
    month: &'a str,
    chart_key: &'a str,
    inventory: &'a Inventory,
}

impl View<'_> {
    /// The page's query for the same node and month, with `extra` parameters.
    fn node_query(&self, extra: &[(&str, Option<&str>)]) -> String {
        let mut pairs: Vec<(&str, Option<&str>)> = vec![
            ("level", Some(self.level.as_str())),
            ("code", self.code),
            ("month", Some(self.month)),
        ];
        pairs.extend_from_slice(extra);
        query(&pairs)
    }

    fn rows(&self) -> &[FigureRow] {
        &self.inventory.node.figures
    }
}

pub async fn page(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
) -> ConsoleResult<HttpResponse> {
    let params = pairs(req.query_string());
    let caller = &session.caller;
    let mut node: NodeForm = parse_pairs(&params)?;
    // A county reviewer starts at their county, not at the city they may not read.
    if node.level.is_none() && node.code.is_none() {
        if let (Role::CountyReviewer, Some(c)) = (caller.role, &caller.county_code) {
            node.level = Some(DivisionLevel::County);
            node.code = Some(c.as_str().to_owned());
        }
    }
    let month = area::month("month", node.month.as_deref())?;
    let filter = NodeFilter::parse(node.level, node.code.as_deref())?;
    let chart_key = value(&params, "figure").unwrap_or("labour_force");
    let inventory = service::inventory(&state.db, caller, filter, month).await?;
    let months = service::months(&state.db, caller).await?;
    let month = month.to_string();
    let view = View {
        level: node.level.unwrap_or(DivisionLevel::City),
        code: node.code.as_deref(),
        month: &month,
        chart_key,
        inventory: &inventory,
    };
    let title = format!("{} {} 需求台账", inventory.node.name, inventory.month);
    let role_admin = caller.role == Role::CityAdmin;
    let body = html! {
        (filters(&view, &months))
        (meta(&view, caller.role))
        div.actions.exports {
            a.button #export-xlsx href={ "/console/ledger/export?" (view.node_query(&[("format", Some("xlsx"))])) } download { "导出 Excel（XLSX）" }
            a.button #export-csv href={ "/console/ledger/export?" (view.node_query(&[("format", Some("csv"))])) } download { "导出 CSV" }
        }
        @if let Some(q) = &inventory.quota {
            section.quota {
                h2 { (q.year) " 年公益岗指标" }
                table.list #quota {
                    thead { tr { th { "岗位" } th { "全市指标" } th { (if view.level == DivisionLevel::City { "已分配到县" } else { "本县指标" }) } th { "在岗" } } }
                    tbody {
                        tr data-post="special" {
                            td { "扶贫特岗" }
                            td.num { (q.city_special_posts_quota.map_or("—".to_owned(), number)) }
                            td.num { (number(q.special_posts_quota)) }
                            td.num.held { (number(q.special_posts_held)) }
                        }
                        tr data-post="temporary" {
                            td { "临时公益岗" }
                            td.num { (q.city_temporary_posts_quota.map_or("—".to_owned(), number)) }
                            td.num { (number(q.temporary_posts_quota)) }
                            td.num.held { (number(q.temporary_posts_held)) }
                        }
                    }
                }
                p.muted {
                    "临时公益岗月补贴合计 " (number(q.temporary_posts_monthly_cost_yuan)) " 元"
                    @if role_admin { " · " a href={ "/console/quotas?year=" (q.year) } { "调整指标" } }
                }
            }
        }
        (charts(&view))
        (all_figures(&view))
        (children_table(&view))
    };
    Ok(render(&session, Nav::Ledger, &title, body))
}

/// The month and compared-figure choosers.
fn filters(view: &View<'_>, months: &[MonthState]) -> Markup {
    let month = view.month;
    html! {
        form.filters method="get" action="/console/ledger" {
            input type="hidden" name="level" value=(view.level.as_str());
            @if let Some(c) = view.code { input type="hidden" name="code" value=(c); }
            label { "月份"
                select name="month" {
                    @for m in months {
                        option value=(m.month) selected[m.month == month] {
                            (m.month) @if m.state == MonthStatus::Closed { "（已关账）" }
                        }
                    }
                    @if !months.iter().any(|m| m.month == month) { option value=(month) selected { (month) } }
                }
            }
            label { "比较指标"
                select name="figure" {
                    @for r in view.rows() {
                        option value=(r.key) selected[r.key == view.chart_key] { (r.label) }
                    }
                }
            }
            button type="submit" { "查看" }
        }
    }
}

/// The node's level, the day figures are as of, whether the month is closed.
fn meta(view: &View<'_>, role: Role) -> Markup {
    html! {
        p.meta {
            (view.level.label()) " · 截至 " (view.inventory.as_of.format("%Y-%m-%d"))
            @if view.inventory.closed { " · " span.flag { "已关账，数据为关账时快照" } }
            @if view.level != DivisionLevel::City && role == Role::CityAdmin {
                " · " a href={ "/console/ledger?" (query(&[("month", Some(view.month))])) } { "返回全市" }
            }
        }
    }
}

/// Bars of the main figures, and of the compared figure across the children.
fn charts(view: &View<'_>) -> Markup {
    let rows = view.rows();
    let main: Vec<Bar> = MAIN_FIGURES
        .iter()
        .filter_map(|k| figure(rows, k))
        .map(|r| Bar {
            label: &r.label,
            value: r.approved,
            behind: Some(r.including_pending),
            href: None,
        })
        .collect();
    let chart_label = figure(rows, view.chart_key).map_or(view.chart_key, |r| r.label.as_str());
    let below = child_level(view.level);
    let mut children: Vec<(&str, &str, i64)> = view
        .inventory
        .children
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.code.as_str(),
                figure(&c.figures, view.chart_key).map_or(0, |r| r.approved),
            )
        })
        .collect();
    children.sort_by(|a, b| b.2.cmp(&a.2).then(a.1.cmp(b.1)));
    let child_bars: Vec<Bar> = children
        .iter()
        .take(40)
        .map(|(name, code, v)| Bar {
            label: name,
            value: *v,
            behind: None,
            href: below.map(|l| {
                format!(
                    "/console/ledger?{}",
                    query(&[
                        ("level", Some(l.as_str())),
                        ("code", Some(code)),
                        ("month", Some(view.month))
                    ])
                )
            }),
        })
        .collect();
    html! {
        div.columns {
            section {
                h2 { "主要指标" }
                (bars(&main, "深色为已审核通过的数据，浅色为含待审核调查的数据"))
            }
            @if !child_bars.is_empty() {
                section {
                    h2 { "各" (below.map_or("", |l| l.label())) "：" (chart_label) }
                    (bars(&child_bars, "按已审核数据排序，点击名称查看下级台账"))
                }
            }
        }
    }
}

/// Every figure of the node, by group, with last month's and the change.
fn all_figures(view: &View<'_>) -> Markup {
    let rows = view.rows();
    let mut groups: Vec<&str> = Vec::new();
    for r in rows {
        if !groups.contains(&r.group.as_str()) {
            groups.push(&r.group);
        }
    }
    html! {
        section {
            h2 { "全部指标" }
            table.list.figures #figures {
                thead { tr { th { "指标" } th { "已审核" } th { "含待审核" } th { "上月" } th { "变化" } } }
                @for g in &groups {
                    tbody {
                        tr.group { th colspan="5" { (group_label(g)) } }
                        @for r in rows.iter().filter(|r| r.group == *g) {
                            tr data-figure=(r.key) {
                                td {
                                    @if let Some(href) = roster_link(view, &r.key) {
                                        a href=(href) title="查看实名制台账" { (r.label) }
                                    } @else { (r.label) }
                                }
                                td.num.approved { (number(r.approved)) }
                                td.num { (number(r.including_pending)) }
                                td.num { (number(r.previous)) }
                                td.num { (change(r.change)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The real-name ledger behind a figure of the node, if it has one.
fn roster_link(view: &View<'_>, key: &str) -> Option<String> {
    let kind = RosterKind::for_figure(key)?;
    let place = match view.level {
        DivisionLevel::City => None,
        DivisionLevel::County => Some("county"),
        DivisionLevel::Township => Some("township"),
        DivisionLevel::Village => Some("village"),
    };
    let mut pairs = vec![("kind", Some(kind.as_str())), ("month", Some(view.month))];
    if let Some(p) = place {
        pairs.push((p, view.code));
    }
    Some(format!("/console/rosters?{}", query(&pairs)))
}

/// The places below the node with their main figures, each linking to its own ledger.
fn children_table(view: &View<'_>) -> Markup {
    let (rows, below) = (view.rows(), child_level(view.level));
    html! {
        @if !view.inventory.children.is_empty() {
            section {
                h2 { "下级单位" }
                table.list.children {
                    thead { tr {
                        th { (below.map_or("", |l| l.label())) }
                        @for k in MAIN_FIGURES { th { (figure(rows, k).map_or(k, |r| r.label.as_str())) } }
                    } }
                    tbody {
                        @for c in &view.inventory.children {
                            tr {
                                td {
                                    @if let Some(l) = below {
                                        a href={ "/console/ledger?" (query(&[("level", Some(l.as_str())), ("code", Some(&c.code)), ("month", Some(view.month))])) } { (c.name) }
                                    } @else { (c.name) }
                                }
                                @for k in MAIN_FIGURES {
                                    td.num { (number(figure(&c.figures, k).map_or(0, |r| r.approved))) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The ledger's download, with the console session: the browser saves it as a file.
pub async fn export(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
) -> ConsoleResult<HttpResponse> {
    let q: ExportForm = parse_pairs(&pairs(req.query_string()))?;
    let month = area::month("month", q.month.as_deref())?;
    let format = q.format.unwrap_or(ExportFormat::Xlsx);
    let node = NodeFilter::parse(q.level, q.code.as_deref())?;
    let download =
        service::inventory_export(&state.db, &session.caller, node, month, format).await?;
    Ok(crate::http::export::download(&state.db, download)?)
}
