//! A month's attendance: days present per person and village (absentees too), the 考勤表
//! export, and the flagged check-ins with their photos to confirm or dismiss; for one village,
//! its check-ins on a map of its geofence; and the post subsidy sheet with its exports.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use chrono::Utc;

use super::error::{explain, ConsoleResult};
use super::layout::{csrf_field, current_month, datetime, render, Nav};
use super::svg::{map, Fence, Mark, Point};
use super::{
    back_to, chosen_county, counties_of, name, names, pairs, parse_pairs, place_filters, posted,
    see_other_with, value, villages_of, Session,
};
use crate::auth::{Area, Caller};
use crate::checkins::attendance::{Attendance, CheckinList, Filter};
use crate::checkins::review::CheckinReviewRequest;
use crate::checkins::service;
use crate::checkins::subsidies::yuan;
use crate::domain::Month;
use crate::domain::{CheckinDecision, DivisionLevel};
use crate::error::bad_query;
use crate::ledger::export::{Download, ExportFormat};
use crate::ledger::node::NodeFilter;
use crate::state::AppState;

pub async fn page(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
) -> ConsoleResult<HttpResponse> {
    let params = pairs(req.query_string());
    let caller = &session.caller;
    let month = value(&params, "month").map_or_else(current_month, str::to_owned);
    let county = chosen_county(caller, value(&params, "county"));
    let village = value(&params, "village").map(str::to_owned);
    let filter = Filter {
        month: Month::parse(month.trim()).map_err(|e| bad_query("month", e.message))?,
        area: Area::parse(caller, village.as_deref(), None, county.as_deref())?,
        user: None,
    };
    let attendance = service::attendance(
        &state.db,
        &state.vault,
        &state.settings.checkins,
        caller.clone(),
        filter.clone(),
    )
    .await?;
    let flagged =
        service::list_checkins(&state.db, caller.clone(), filter.clone(), Some(true), 100).await?;
    let counties = counties_of(&state, caller).await?;
    let villages = match &county {
        Some(c) => villages_of(&state, c).await?,
        None => Vec::new(),
    };
    let mut codes: Vec<String> = attendance.villages.iter().map(|r| r.code.clone()).collect();
    codes.extend(attendance.counties.iter().map(|r| r.code.clone()));
    codes.extend(flagged.items.iter().map(|c| c.village_code.clone()));
    let (places, _) = names(&state, codes, Vec::new()).await?;

    // One village: every check-in of the month on its map.
    let village_map = match &village {
        Some(code) => Some(village_map(&state, caller, &filter, code, &month).await?),
        None => None,
    };

    let mut query = vec![("month".to_owned(), month.clone())];
    query.extend(county.iter().map(|c| ("county".to_owned(), c.clone())));
    query.extend(village.iter().map(|v| ("village".to_owned(), v.clone())));
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&query)
        .finish();
    let back = format!("/console/attendance?{encoded}");
    let body = html! {
        form.filters method="get" action="/console/attendance" {
            label { "月份" input type="month" name="month" value=(month) required; }
            (place_filters(caller, &counties, county.as_deref(), &villages, village.as_deref()))
            button type="submit" { "查询" }
        }
        p.actions #exports {
            a.button href={ "/console/attendance/export?" (encoded) "&format=xlsx" } { "导出考勤表（XLSX）" }
            " "
            a.button href={ "/console/attendance/export?" (encoded) "&format=csv" } { "导出考勤表（CSV）" }
            " "
            a.button href={ "/console/subsidies?month=" (month) } { "岗位补贴发放表" }
        }
        @if attendance.counties.len() > 1 {
            h2 { "各县（市、区）" }
            table.list {
                thead { tr { th { "县（市、区）" } th { "人数" } th { "达标人数" } th { "出勤天数" } th { "仅有标记打卡的天数" } } }
                tbody {
                    @for r in &attendance.counties {
                        tr { td { (name(&places, &r.code)) } td.num { (r.people) } td.num { (r.requirement_met) } td.num { (r.days_present) } td.num { (r.days_flagged) } }
                    }
                }
            }
        }
        (people_table(&attendance, &places))
        @if let Some(m) = village_map {
            h2 { "打卡位置" }
            (m)
        }
        (flagged_list(&session, &flagged, &places, &back))
    };
    Ok(render(
        &session,
        Nav::Attendance,
        &format!("{month} 驻村考勤"),
        body,
    ))
}

/// Every check-in of the month in one village, on the village's map.
async fn village_map(
    state: &web::Data<AppState>,
    caller: &Caller,
    filter: &Filter,
    code: &str,
    month: &str,
) -> ConsoleResult<Markup> {
    let code_of = crate::villages::service::village_code(code)?;
    let v = crate::villages::service::get(&state.db, caller, code_of).await?;
    let one = Filter {
        area: Area::parse(caller, Some(code), None, None)?,
        ..filter.clone()
    };
    let all = service::list_checkins(&state.db, caller.clone(), one, None, 500).await?;
    let points: Vec<Point> = all
        .items
        .iter()
        .map(|c| Point {
            lat: c.lat,
            lon: c.lon,
            label: format!(
                "{} {}{}",
                c.user_name.as_deref().unwrap_or(""),
                datetime(&c.captured_at),
                if c.flags.is_empty() {
                    ""
                } else {
                    "（有标记）"
                }
            ),
            mark: if c.status == crate::domain::CheckinStatus::Accepted {
                Mark::Accepted
            } else {
                Mark::Flagged
            },
            accuracy_m: c.accuracy_m,
        })
        .collect();
    let fences: Vec<Fence> = v
        .geofence
        .iter()
        .map(|g| Fence {
            name: &v.name,
            geometry: g,
            focus: true,
        })
        .collect();
    Ok(map(
        &fences,
        &points,
        &format!(
            "{} {} 月打卡位置：绿点为有效打卡，红点为有标记的打卡",
            v.name, month
        ),
    ))
}

/// Each person's days present, flagged and required, and whether they are met.
fn people_table(attendance: &Attendance, places: &HashMap<String, String>) -> Markup {
    html! {
        h2 { "人员出勤（" (attendance.people.len()) " 人）" }
        @if attendance.people.is_empty() {
            p.empty { "没有需要打卡的人员。" }
        } @else {
            table.list #attendance {
                thead { tr {
                    th { "姓名" } th { "打卡类型" } th { "行政村" } th { "出勤天数" }
                    th { "待核实天数" } th { "应出勤天数" } th { "是否达标" }
                } }
                tbody {
                    @for p in &attendance.people {
                        tr class=[(!p.requirement_met).then_some("short")] {
                            td {
                                (p.name.as_deref().unwrap_or("—"))
                                @if let Some(id) = &p.worker_id_number { " " span.id { (id) } }
                            }
                            td { (p.kind.label()) }
                            td { (name(places, &p.village_code)) }
                            td.num { (p.days_present) }
                            td.num { (p.days_flagged) }
                            td.num { (p.days_required) }
                            td {
                                @if p.no_checkins { span.flag { "本月未打卡" } }
                                @else if p.requirement_met { "达标" }
                                @else { span.flag { "未达标" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The month's flagged check-ins, with their photo, flags and position, and for each one not
/// yet decided a form to confirm or dismiss it with a reason.
fn flagged_list(
    session: &Session,
    flagged: &CheckinList,
    places: &HashMap<String, String>,
    back: &str,
) -> Markup {
    html! {
        h2 { "有标记的打卡（" (flagged.items.len()) @if flagged.truncated { "+" } "）" }
        p.muted { "核实有效的打卡计为出勤；核实无效的打卡不计出勤。每条打卡只能核实一次，须填写理由。" }
        @if flagged.items.is_empty() {
            p.empty { "本月没有有标记的打卡。" }
        } @else {
            div.checkins #flagged {
                @for c in &flagged.items {
                    article.checkin data-id=(c.id) {
                        a href={ "/console/photos/" (c.photo.sha256) } target="_blank" rel="noopener" title="查看原图" {
                            img src={ "/console/photos/" (c.photo.sha256) "?size=thumb" } alt="打卡照片" loading="lazy";
                        }
                        div {
                            strong { (c.user_name.as_deref().unwrap_or("—")) } " · " (c.kind.label())
                            br;
                            (name(places, &c.village_code)) " · " (datetime(&c.captured_at))
                            br;
                            @for f in &c.flags { span.flag { (f.label()) } " " }
                            br;
                            span.muted {
                                "位置 " (format!("{:.5}, {:.5}", c.lat, c.lon))
                                @if let Some(a) = c.accuracy_m { " · 精度 " (format!("{a:.0}")) " 米" }
                            }
                            @match c.decision {
                                Some(d) => { p.decided { "已" (d.label()) } }
                                None => {
                                    form.review method="post" action={ "/console/checkins/" (c.id) "/review" } {
                                        (csrf_field(session))
                                        input type="hidden" name="back" value=(back);
                                        textarea name="reason" required maxlength="500" rows="2"
                                            placeholder="核实理由（必填）" {}
                                        // A select, not two named buttons: the console's script
                                        // submits forms without their submitter.
                                        select name="decision" required {
                                            option value="confirm" { "核实有效（计出勤）" }
                                            option value="dismiss" { "核实无效（不计出勤）" }
                                        }
                                        " "
                                        button type="submit" class="primary" { "提交核实结论" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct ReviewForm {
    decision: CheckinDecision,
    reason: String,
}

/// Confirms or dismisses a flagged check-in, as the API's review does; back to the page.
pub async fn review(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    body: web::Bytes,
) -> ConsoleResult<HttpResponse> {
    let id = path.into_inner();
    let fields = posted(&state, &session, &body)?;
    let back = back_to(&fields, "/console/attendance");
    let form: ReviewForm = match parse_pairs(&fields) {
        Ok(form) => form,
        Err(_) => return Ok(see_other_with(&back, false, "请选择核实结论并填写理由")),
    };
    let request = CheckinReviewRequest {
        decision: form.decision,
        reason: form.reason,
    };
    Ok(
        match service::review_checkin(&state.db, session.caller, id, request, Utc::now()).await {
            Ok((r, _)) => see_other_with(&back, true, &format!("打卡已{}", r.decision.label())),
            Err(e) => see_other_with(&back, false, &explain(&e)),
        },
    )
}

/// The 考勤表 of the page's filter, as XLSX or CSV.
pub async fn export(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
) -> ConsoleResult<HttpResponse> {
    let q: crate::api::checkins::AttendanceQuery = parse_pairs(&pairs(req.query_string()))?;
    let format = q.format.unwrap_or(ExportFormat::Xlsx);
    let caller = session.caller.clone();
    let filter = q.filter(&caller)?;
    let download = service::attendance_export(
        &state.vault,
        &state.settings.checkins,
        caller,
        filter,
        format,
    )?;
    stream(&state, download)
}

fn stream(state: &AppState, download: Download) -> ConsoleResult<HttpResponse> {
    Ok(crate::http::export::download(&state.db, download)?)
}

/// The subsidy sheet of a month for the caller's county (or the city, or a chosen county).
pub async fn subsidies(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
) -> ConsoleResult<HttpResponse> {
    let params = pairs(req.query_string());
    let caller = &session.caller;
    let month = value(&params, "month").map_or_else(current_month, str::to_owned);
    let county = chosen_county(caller, value(&params, "county"));
    let node = match &county {
        Some(c) => NodeFilter::parse(Some(DivisionLevel::County), Some(c))?,
        None => NodeFilter::city(),
    };
    let m = crate::auth::area::month("month", Some(&month))?;
    let sheet = service::subsidies(
        &state.db,
        &state.vault,
        &state.settings.checkins,
        caller.clone(),
        node,
        m,
    )
    .await?;
    let counties = counties_of(&state, caller).await?;
    let export = |format: &str| {
        let mut q = format!("/console/subsidies/export?month={month}&format={format}");
        if let Some(c) = &county {
            q.push_str(&format!("&level=county&code={c}"));
        }
        q
    };
    let body = html! {
        form.filters method="get" action="/console/subsidies" {
            label { "月份" input type="month" name="month" value=(month) required; }
            (place_filters(caller, &counties, county.as_deref(), &[], None))
            button type="submit" { "查询" }
        }
        p.muted {
            "计发办法：" (sheet.rule.method.label()) "；临时公益岗月标准 " (yuan(sheet.rule.temporary_post_monthly_fen))
            " 元，扶贫特岗月标准 " (yuan(sheet.rule.special_post_monthly_fen)) " 元；应出勤 " (sheet.rule.days_required)
            " 天。待核实的打卡须先核实有效才计出勤。"
        }
        p.actions #exports {
            a.button href=(export("xlsx")) { "导出发放表（XLSX）" }
            " "
            a.button href=(export("csv")) { "导出发放表（CSV）" }
        }
        h2 { (sheet.name) " 合计：" (sheet.total_people) " 人，应发 " (yuan(sheet.total_due_fen)) " 元" }
        @if sheet.people.is_empty() {
            p.empty { "台账中没有扶贫特岗或临时公益岗人员。" }
        } @else {
            table.list #subsidies {
                thead { tr {
                    th { "县（市、区）" } th { "乡镇（街道）" } th { "行政村" } th { "姓名" } th { "岗位类别" }
                    th { "应出勤天数" } th { "实际出勤天数" } th { "待核实天数" } th { "应发金额（元）" } th { "备注" }
                } }
                tbody {
                    @for p in &sheet.people {
                        tr class=[p.no_attendance.then_some("short")] {
                            td { (p.county_name) } td { (p.township_name) } td { (p.village_name) }
                            td { (p.name.as_deref().unwrap_or("—")) }
                            td { (p.post.label()) }
                            td.num { (p.days_required) } td.num { (p.days_attended) } td.num { (p.days_flagged) }
                            td.num { (yuan(p.due_fen)) }
                            td { @if p.no_attendance { span.flag { "本月无出勤" } } }
                        }
                    }
                }
            }
        }
    };
    Ok(render(
        &session,
        Nav::Subsidies,
        &format!("{month} 岗位补贴发放表"),
        body,
    ))
}

/// The subsidy sheet as XLSX or CSV.
pub async fn subsidies_export(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
) -> ConsoleResult<HttpResponse> {
    let q: crate::api::checkins::SubsidyQuery = parse_pairs(&pairs(req.query_string()))?;
    let month = crate::auth::area::month("month", q.month.as_deref())?;
    let node = NodeFilter::parse(q.level, q.code.as_deref())?;
    let download = service::subsidies_export(
        &state.db,
        &state.vault,
        &state.settings.checkins,
        session.caller.clone(),
        node,
        month,
        q.format.unwrap_or(ExportFormat::Xlsx),
    )
    .await?;
    stream(&state, download)
}
