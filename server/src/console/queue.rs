//! The review queue: surveys awaiting a decision, oldest first, with their county, filters
//! (place, enumerator, survey days, flag, status) and bulk approval.

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use super::error::{explain, ConsoleResult};
use super::layout::{csrf_field, datetime, query, render, Nav};
use super::{
    back_to, chosen_county, counties_of, name, names, pairs, place_filters, posted, see_other_with,
    value, villages_of, Session,
};
use crate::auth::{area, Area, Caller};
use crate::domain::{DivisionCode, DivisionLevel, ReviewStatus, Role, SurveyFlag};
use crate::error::{bad_query, ApiResult};
use crate::state::AppState;
use crate::surveys::review::{BulkReviewRequest, Decision};
use crate::surveys::service::{self, Cursor, SurveyFilter};

/// The surveys a queue page lists: its place, enumerator, survey days, flag and status pickers
/// (`status` absent: the queue, awaiting a decision; `all`: every status), 50 a page. The
/// days are read as the API reads `from` and `to`.
fn filter_of(
    caller: &Caller,
    params: &[(String, String)],
    county: Option<&str>,
) -> ApiResult<SurveyFilter> {
    let status = match value(params, "status") {
        None | Some("all") => None,
        Some(s) => Some(ReviewStatus::parse(s).ok_or_else(|| bad_query("status", "不是审核状态"))?),
    };
    let flag = value(params, "flag")
        .map(|f| SurveyFlag::parse(f).ok_or_else(|| bad_query("flag", "不是调查标记")))
        .transpose()?;
    Ok(SurveyFilter {
        area: Area::parse(caller, value(params, "village"), None, county)?,
        status,
        flag,
        needs_review: value(params, "status").is_none(),
        enumerator: value(params, "enumerator").map(str::to_owned),
        from: value(params, "from")
            .map(|d| area::day_start("from", d, 0))
            .transpose()?,
        to: value(params, "to")
            .map(|d| area::day_start("to", d, 1))
            .transpose()?,
        cursor: value(params, "cursor").map(Cursor::parse).transpose()?,
        limit: 50,
    })
}

pub async fn page(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
) -> ConsoleResult<HttpResponse> {
    let params = pairs(req.query_string());
    let caller = &session.caller;
    let county = chosen_county(caller, value(&params, "county"));
    let village = value(&params, "village").map(str::to_owned);
    let flag = value(&params, "flag").map(str::to_owned);
    // `status` empty: the queue (awaiting a decision); `all`: every status; else that status.
    let status = value(&params, "status").map(str::to_owned);
    let enumerator = value(&params, "enumerator").map(str::to_owned);
    let (from, to) = (value(&params, "from"), value(&params, "to"));
    let filter = filter_of(caller, &params, county.as_deref())?;
    let enumerators = enumerators_of(&state, caller, county.as_deref()).await?;
    let result = service::list_surveys(&state.db, caller.clone(), filter).await?;
    let counties = counties_of(&state, caller).await?;
    let villages = match &county {
        Some(c) => villages_of(&state, c).await?,
        None => Vec::new(),
    };
    let (places, people) = names(
        &state,
        result
            .items
            .iter()
            .flat_map(|s| [s.village_code.clone(), county_of(&s.village_code)])
            .collect(),
        result
            .items
            .iter()
            .map(|s| s.enumerator_id.clone())
            .collect(),
    )
    .await?;
    let here = format!("/console/queue?{}", req.query_string());
    let next = result.next_cursor.as_ref().map(|c| {
        format!(
            "/console/queue?{}",
            query(&[
                ("county", county.as_deref()),
                ("village", village.as_deref()),
                ("enumerator", enumerator.as_deref()),
                ("from", from),
                ("to", to),
                ("flag", flag.as_deref()),
                ("status", status.as_deref()),
                ("cursor", Some(c)),
            ])
        )
    });
    let title = if status.is_none() {
        "审核队列"
    } else {
        "调查记录"
    };
    let body = html! {
        form.filters method="get" action="/console/queue" {
            (place_filters(caller, &counties, county.as_deref(), &villages, village.as_deref()))
            (more_filters(&params, enumerators.as_deref()))
            button type="submit" { "筛选" }
        }
        @if result.items.is_empty() {
            p.empty { "没有符合条件的调查。" }
        } @else {
            form #bulk method="post" action="/console/queue/bulk" data-confirm="确定批量通过所选调查？" {
                (csrf_field(&session))
                input type="hidden" name="back" value=(here);
                table.list #queue {
                    thead { tr {
                        th { input type="checkbox" #select-all title="全选"; }
                        th { "户主" } th { "县（市、区）" } th { "行政村" } th { "人数" } th { "调查员" }
                        th { "调查时间" } th { "接收时间" } th { "状态" } th { "标记" } th { "照片" }
                    } }
                    tbody {
                        @for s in &result.items {
                            tr data-survey=(s.id) {
                                td { input type="checkbox" name="ids" value=(s.id) aria-label="选择"; }
                                td { a.open href={ "/console/surveys/" (s.id) } { (s.head_name) } }
                                td.county { (name(&places, &county_of(&s.village_code))) }
                                td { (name(&places, &s.village_code)) }
                                td.num { (s.member_count) }
                                td { (name(&people, &s.enumerator_id)) }
                                td { (datetime(&s.surveyed_at)) }
                                td { (datetime(&s.received_at)) }
                                td { span class={ "status " (s.status.as_str()) } { (s.status.label()) } }
                                td {
                                    @for f in &s.flags { span.flag { (f.label()) } " " }
                                }
                                td.num { (s.photos.len()) }
                            }
                        }
                    }
                }
                div.actions {
                    button.primary #bulk-approve type="submit" { "批量通过所选" }
                    span.muted { "有标记的调查请逐户核实后再通过。" }
                }
            }
            @if let Some(next) = next {
                p { a.next href=(next) { "下一页 →" } }
            }
        }
    };
    Ok(render(&session, Nav::Queue, title, body))
}

/// The queue's filters beside the place: enumerator, survey days, flag and status.
fn more_filters(params: &[(String, String)], enumerators: Option<&[(String, String)]>) -> Markup {
    let enumerator = value(params, "enumerator");
    let (from, to) = (value(params, "from"), value(params, "to"));
    let flag = value(params, "flag");
    let status = value(params, "status");
    html! {
        label { "调查员"
            select name="enumerator" #enumerator disabled[enumerators.is_none()]
                title=[enumerators.is_none().then_some("先选择县（市、区）")] {
                option value="" { (if enumerators.is_some() { "全部" } else { "先选择县（市、区）" }) }
                @for (id, n) in enumerators.unwrap_or_default() {
                    option value=(id) selected[enumerator == Some(id.as_str())] { (n) }
                }
            }
        }
        label { "调查日期自"
            input type="date" name="from" #from value=(from.unwrap_or(""));
        }
        label { "至"
            input type="date" name="to" #to value=(to.unwrap_or(""));
        }
        label { "标记"
            select name="flag" {
                option value="" { "不限" }
                @for f in SurveyFlag::ALL {
                    option value=(f.as_str()) selected[flag == Some(f.as_str())] { (f.label()) }
                }
            }
        }
        label { "状态"
            select name="status" {
                option value="" { "待审核（队列）" }
                option value="all" selected[status == Some("all")] { "全部状态" }
                @for s in ReviewStatus::ALL {
                    option value=(s.as_str()) selected[status == Some(s.as_str())] { (s.label()) }
                }
            }
        }
    }
}

/// The county code of a village code (the code itself if it is not one).
fn county_of(village: &str) -> String {
    DivisionCode::parse(village)
        .map_or_else(|_| village.to_owned(), |c| c.county().as_str().to_owned())
}

/// The enumerators a caller may filter by, id and name: the chosen county's (a reviewer's own).
/// None before a county is chosen: the city's work teams are too many for one list.
async fn enumerators_of(
    state: &web::Data<AppState>,
    caller: &Caller,
    county: Option<&str>,
) -> ConsoleResult<Option<Vec<(String, String)>>> {
    let Some(county) = county else {
        return Ok(None);
    };
    let only = crate::users::service::UserFilter {
        role: Some(Role::Enumerator),
        county: Some(
            DivisionCode::parse_level(county, DivisionLevel::County)
                .map_err(|e| bad_query("county", e.message))?,
        ),
        ..Default::default()
    };
    let list = crate::users::service::list(&state.db, caller, only).await?;
    Ok(Some(
        list.users.into_iter().map(|u| (u.id, u.name)).collect(),
    ))
}

/// Approves the ticked surveys through the API's bulk review: each is decided or refused on
/// its own, and the page says how many of each.
pub async fn bulk(
    state: web::Data<AppState>,
    session: Session,
    body: web::Bytes,
) -> ConsoleResult<HttpResponse> {
    let fields = posted(&state, &session, &body)?;
    let back = back_to(&fields, "/console/queue");
    let ids: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| v.clone())
        .collect();
    if ids.is_empty() {
        return Ok(see_other_with(&back, false, "请先勾选要通过的调查。"));
    }
    let request = BulkReviewRequest {
        decision: Decision::Approve,
        reason: None,
        ids: Some(ids),
        filter: None,
        dry_run: false,
        expected_count: None,
    };
    Ok(
        match service::bulk_review(&state.db, session.caller, request).await {
            Ok(outcome) if outcome.refused == 0 => {
                see_other_with(&back, true, &format!("已通过 {} 份调查。", outcome.decided))
            }
            Ok(outcome) => {
                let why: Vec<String> = outcome
                    .items
                    .iter()
                    .filter_map(|i| i.detail.clone())
                    .take(3)
                    .collect();
                see_other_with(
                    &back,
                    false,
                    &format!(
                        "已通过 {} 份，{} 份未能通过：{}",
                        outcome.decided,
                        outcome.refused,
                        why.join("；")
                    ),
                )
            }
            Err(e) => see_other_with(&back, false, &explain(&e)),
        },
    )
}
