//! The real-name ledgers (实名制台账): the people behind one of the ledger's counts, for the
//! city, a county or a village, page by page, with their downloads. ID numbers are masked; a
//! county reviewer or the city sees them in full only through a posted form with a reason, which
//! the service audits like the API's `reveal=true`.

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use super::error::ConsoleResult;
use super::layout::{csrf_field, current_month, datetime, number, query, render, Nav};
use super::{
    chosen_county, counties_of, pairs, place_filters, posted, value, villages_of, Session,
};
use crate::auth::{area, reveal_allowed, Caller};
use crate::domain::{DivisionLevel, Role};
use crate::error::bad_query;
use crate::ledger::export::ExportFormat;
use crate::ledger::node::NodeFilter;
use crate::ledger::roster::{self, RosterKind};
use crate::ledger::service::{self, RosterFilter, RosterPage};
use crate::state::AppState;

/// People per console page.
const PAGE: usize = 100;

/// What a roster page names: the kind, the month, the place and where the page starts.
struct Choice {
    kind: RosterKind,
    month: String,
    county: Option<String>,
    /// Only from a link (the township ledger's figures): the form picks a county or a village.
    township: Option<String>,
    village: Option<String>,
    cursor: Option<String>,
}

impl Choice {
    fn read(caller: &Caller, fields: &[(String, String)]) -> ConsoleResult<Self> {
        let kind = match value(fields, "kind") {
            None => RosterKind::OutMigrants,
            Some(k) => RosterKind::parse(k).ok_or_else(|| {
                bad_query(
                    "kind",
                    format!(
                        "须为 {} 之一",
                        RosterKind::ALL.map(|k| k.as_str()).join("、")
                    ),
                )
            })?,
        };
        Ok(Choice {
            kind,
            month: value(fields, "month").map_or_else(current_month, str::to_owned),
            county: chosen_county(caller, value(fields, "county")),
            township: value(fields, "township").map(str::to_owned),
            village: value(fields, "village").map(str::to_owned),
            cursor: value(fields, "cursor").map(str::to_owned),
        })
    }

    /// The service's filter: the village if one is chosen, else the county, else the city.
    fn filter(&self, reveal: bool, reason: Option<String>) -> ConsoleResult<RosterFilter> {
        let (level, code) = match (&self.village, &self.township, &self.county) {
            (Some(v), _, _) => (DivisionLevel::Village, Some(v.as_str())),
            (None, Some(t), _) => (DivisionLevel::Township, Some(t.as_str())),
            (None, None, Some(c)) => (DivisionLevel::County, Some(c.as_str())),
            (None, None, None) => (DivisionLevel::City, None),
        };
        Ok(RosterFilter {
            kind: self.kind,
            node: NodeFilter::parse(Some(level), code)?,
            month: area::month("month", Some(self.month.trim()))?,
            reveal,
            reason,
            after: self
                .cursor
                .as_deref()
                .map(roster::decode_cursor)
                .transpose()?,
            limit: PAGE,
        })
    }

    /// The query of this choice (without the cursor), with `extra` pairs.
    fn query(&self, kind: RosterKind, extra: &[(&str, Option<&str>)]) -> String {
        let mut pairs: Vec<(&str, Option<&str>)> = vec![
            ("kind", Some(kind.as_str())),
            ("month", Some(&self.month)),
            ("county", self.county.as_deref()),
            ("township", self.township.as_deref()),
            ("village", self.village.as_deref()),
        ];
        pairs.extend_from_slice(extra);
        query(&pairs)
    }
}

pub async fn page(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
) -> ConsoleResult<HttpResponse> {
    let choice = Choice::read(&session.caller, &pairs(req.query_string()))?;
    let roster = service::roster_page(
        &state.db,
        &state.vault,
        &session.caller,
        choice.filter(false, None)?,
    )
    .await?;
    show(&state, &session, &choice, &roster, None).await
}

/// ID numbers in full, for this page or as a download: a posted form with its reason.
pub async fn reveal(
    state: web::Data<AppState>,
    session: Session,
    body: web::Bytes,
) -> ConsoleResult<HttpResponse> {
    let fields = posted(&state, &session, &body)?;
    let caller = &session.caller;
    let choice = Choice::read(caller, &fields)?;
    let reason = value(&fields, "reason").map(str::trim).unwrap_or("");
    if reason.is_empty() {
        return Err(bad_query("reason", "查看完整身份证号须填写理由").into());
    }
    let reveal = reveal_allowed(caller, Some(true), Some(reason))?;
    let filter = choice.filter(reveal, Some(reason.to_owned()))?;
    match value(&fields, "format") {
        Some(f @ ("xlsx" | "csv")) => {
            let format = if f == "xlsx" {
                ExportFormat::Xlsx
            } else {
                ExportFormat::Csv
            };
            let download =
                service::roster_export(&state.db, &state.vault, caller, filter, format).await?;
            Ok(crate::http::export::download(&state.db, download)?)
        }
        _ => {
            let roster = service::roster_page(&state.db, &state.vault, caller, filter).await?;
            show(&state, &session, &choice, &roster, Some(reason)).await
        }
    }
}

/// A whole roster as XLSX or CSV, ID numbers masked.
pub async fn export(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
) -> ConsoleResult<HttpResponse> {
    let fields = pairs(req.query_string());
    let choice = Choice::read(&session.caller, &fields)?;
    let format = match value(&fields, "format") {
        Some("csv") => ExportFormat::Csv,
        None | Some("xlsx") => ExportFormat::Xlsx,
        Some(_) => return Err(bad_query("format", "须为 xlsx 或 csv").into()),
    };
    let download = service::roster_export(
        &state.db,
        &state.vault,
        &session.caller,
        choice.filter(false, None)?,
        format,
    )
    .await?;
    Ok(crate::http::export::download(&state.db, download)?)
}

async fn show(
    state: &web::Data<AppState>,
    session: &Session,
    choice: &Choice,
    roster: &RosterPage,
    reason: Option<&str>,
) -> ConsoleResult<HttpResponse> {
    let caller = &session.caller;
    let counties = counties_of(state, caller).await?;
    let villages = match &choice.county {
        Some(c) => villages_of(state, c).await?,
        None => Vec::new(),
    };
    let may_reveal = matches!(caller.role, Role::CountyReviewer | Role::CityAdmin);
    let body = html! {
        nav.tabs {
            @for k in RosterKind::ALL {
                a href={ "/console/rosters?" (choice.query(k, &[])) }
                    class=[(k == choice.kind).then_some("active")] { (short_label(k)) }
            }
        }
        form.filters method="get" action="/console/rosters" {
            input type="hidden" name="kind" value=(choice.kind.as_str());
            label { "月份" input type="month" name="month" value=(choice.month) required; }
            (place_filters(caller, &counties, choice.county.as_deref(), &villages, choice.village.as_deref()))
            button type="submit" { "查询" }
        }
        p.actions #exports {
            a.button href={ "/console/rosters/export?" (choice.query(choice.kind, &[("format", Some("xlsx"))])) } download { "导出 Excel（XLSX，身份证号遮挡）" }
            " "
            a.button href={ "/console/rosters/export?" (choice.query(choice.kind, &[("format", Some("csv"))])) } download { "导出 CSV（身份证号遮挡）" }
        }
        @if may_reveal { (reveal_form(session, choice, reason)) }
        p.meta {
            "截至 " (roster.month) " 月末各户最新一次审核通过的调查 · 本页 " (number(roster.items.len() as i64)) " 人"
            @if roster.revealed { " · " span.flag { "身份证号完整显示，已记入审计日志" } }
        }
        (people(roster))
        @if let Some(next) = &roster.next_cursor {
            @if let Some(reason) = reason {
                form.inline method="post" action="/console/rosters/reveal" {
                    (csrf_field(session))
                    (hidden_choice(choice))
                    input type="hidden" name="cursor" value=(next);
                    input type="hidden" name="reason" value=(reason);
                    button type="submit" { "下一页" }
                }
            } @else {
                p { a.button #next href={ "/console/rosters?" (choice.query(choice.kind, &[("cursor", Some(next))])) } { "下一页" } }
            }
        }
    };
    Ok(render(session, Nav::Rosters, &roster.title, body))
}

/// The choice as hidden fields of a posted form.
fn hidden_choice(choice: &Choice) -> Markup {
    html! {
        input type="hidden" name="kind" value=(choice.kind.as_str());
        input type="hidden" name="month" value=(choice.month);
        @if let Some(c) = &choice.county { input type="hidden" name="county" value=(c); }
        @if let Some(t) = &choice.township { input type="hidden" name="township" value=(t); }
        @if let Some(v) = &choice.village { input type="hidden" name="village" value=(v); }
    }
}

/// Full ID numbers on this page or in a download, with the reason the audit log keeps.
fn reveal_form(session: &Session, choice: &Choice, reason: Option<&str>) -> Markup {
    html! {
        details.reveal open[reason.is_some()] {
            summary { "查看或导出完整身份证号" }
            form #reveal method="post" action="/console/rosters/reveal" {
                (csrf_field(session))
                (hidden_choice(choice))
                @if let Some(c) = &choice.cursor { input type="hidden" name="cursor" value=(c); }
                label { "理由（必填，记入审计日志）"
                    input type="text" name="reason" maxlength="200" required value=[reason];
                }
                label { "方式"
                    select name="format" {
                        option value="page" { "在本页显示" }
                        option value="xlsx" { "导出 Excel（XLSX）" }
                        option value="csv" { "导出 CSV" }
                    }
                }
                button type="submit" { "确定" }
            }
        }
    }
}

/// The people of the page, each linking to the survey they come from.
fn people(roster: &RosterPage) -> Markup {
    html! {
        @if roster.items.is_empty() {
            p.empty { "本月没有符合条件的人员。" }
        } @else {
            table.list #roster {
                thead { tr {
                    th { "县（市、区）" } th { "乡镇" } th { "行政村" } th { "户主" } th { "姓名" }
                    th { "性别" } th { "出生日期" } th { "身份证号" } th { "与户主关系" } th { "劳动能力" }
                    th { "就业状态" } th { "月收入（元）" } th { "培训工种" } th { "返贫风险" } th { "兜底措施" }
                    th { "调查时间" }
                } }
                tbody {
                    @for e in &roster.items {
                        tr data-survey=(e.survey_id) {
                            td { (e.county_name) } td { (e.township_name) } td { (e.village_name) }
                            td { (e.head_name) }
                            td { a href={ "/console/surveys/" (e.survey_id) } { (e.name) } }
                            td { (e.sex.label()) }
                            td { (e.birth_date.format("%Y-%m-%d")) }
                            td.id { (e.id_number.as_deref().unwrap_or("（无）")) }
                            td { (e.relation.label()) }
                            td { (e.labour_capacity.label()) }
                            td { (e.employment_status.map_or("", |s| s.label())) }
                            td.num { (e.monthly_income_yuan.map(number).unwrap_or_default()) }
                            td { (e.training_trade.map_or("", |t| t.label())) }
                            td { (if e.at_risk { "是" } else { "否" }) }
                            td { (e.safety_net.iter().map(|n| n.label()).collect::<Vec<_>>().join("、")) }
                            td { (datetime(&e.surveyed_at)) }
                        }
                    }
                }
            }
        }
    }
}

/// A tab's name: the ledger's title without its common ending.
fn short_label(kind: RosterKind) -> &'static str {
    let full = kind.label();
    full.strip_suffix("实名制台账").unwrap_or(full)
}
