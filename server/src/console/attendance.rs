//! A month's attendance: days present per person and village, and the flagged check-ins with
//! their photos; for one village, its check-ins on a map of its geofence.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use super::error::ConsoleResult;
use super::layout::{current_month, datetime, render, Nav};
use super::svg::{map, Fence, Mark, Point};
use super::{
    chosen_county, counties_of, name, names, pairs, place_filters, value, villages_of, Session,
};
use crate::auth::{Area, Caller};
use crate::checkins::attendance::{Attendance, CheckinList, Filter};
use crate::checkins::service;
use crate::domain::Month;
use crate::error::bad_query;
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

    let body = html! {
        form.filters method="get" action="/console/attendance" {
            label { "月份" input type="month" name="month" value=(month) required; }
            (place_filters(caller, &counties, county.as_deref(), &villages, village.as_deref()))
            button type="submit" { "查询" }
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
        (flagged_list(&flagged, &places))
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
            p.empty { "本月没有打卡记录。" }
        } @else {
            table.list #attendance {
                thead { tr {
                    th { "姓名" } th { "打卡类型" } th { "行政村" } th { "出勤天数" }
                    th { "仅有标记打卡的天数" } th { "应出勤天数" } th { "是否达标" }
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
                            td { @if p.requirement_met { "达标" } @else { span.flag { "未达标" } } }
                        }
                    }
                }
            }
        }
    }
}

/// The month's flagged check-ins, with their photo, flags and position.
fn flagged_list(flagged: &CheckinList, places: &HashMap<String, String>) -> Markup {
    html! {
        h2 { "有标记的打卡（" (flagged.items.len()) @if flagged.truncated { "+" } "）" }
        @if flagged.items.is_empty() {
            p.empty { "本月没有有标记的打卡。" }
        } @else {
            div.checkins #flagged {
                @for c in &flagged.items {
                    article.checkin {
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
                        }
                    }
                }
            }
        }
    }
}
