//! The monthly dispatch (月调度) in the console: the months, and for each its counties'
//! sign-offs, the close and the reopen. A county reviewer signs off or withdraws their own
//! county; the city admin closes (with a reason when something is missing) and reopens (with a
//! reason). The forms call the same services as the API.

use actix_web::{web, HttpResponse};
use maud::{html, Markup};

use super::error::{explain, ConsoleResult};
use super::layout::{csrf_field, datetime, number, query, render, Nav};
use super::{posted, see_other_with, value, Session};
use crate::auth::area;
use crate::domain::{DivisionCode, DivisionLevel, Month, MonthStatus, Role, SignoffState};
use crate::error::{bad_query, ApiResult};
use crate::ledger::months::{CloseRequest, MonthDetail, ReopenRequest};
use crate::ledger::service;
use crate::ledger::signoff::{CountySignoff, SignoffRequest, WithdrawRequest};
use crate::state::AppState;

pub async fn list_page(
    state: web::Data<AppState>,
    session: Session,
) -> ConsoleResult<HttpResponse> {
    let months = service::months(&state.db, &session.caller).await?;
    let body = html! {
        p.muted {
            "月调度：各县（市、区）审核员对本县当月调查签核，全部签核后由市扶贫办关账。"
            "关账后该月台账冻结为快照（按版本编号），导出与查询均读取快照；重新开账后各县须重新签核，再次关账生成新版本快照。"
        }
        table.list #months {
            thead { tr { th { "月份" } th { "状态" } th { "快照版本" } th { "关账时间" } th { "关账人" } th {} } }
            tbody {
                @for m in &months {
                    tr data-month=(m.month) {
                        td { a href={ "/console/ledger?" (query(&[("month", Some(m.month.as_str()))])) } { (m.month) } }
                        td.state { (m.state.label()) }
                        td { (m.version.map_or("—".to_owned(), |v| format!("第 {v} 版"))) @if m.closes > 1 { " （共关账 " (m.closes) " 次）" } }
                        td { (m.closed_at.as_ref().map_or("—".to_owned(), datetime)) }
                        td { (m.closed_by_name.as_deref().unwrap_or("—")) }
                        td { a.open href={ "/console/months/" (m.month) } { "签核与关账" } }
                    }
                }
            }
        }
    };
    Ok(render(&session, Nav::Months, "月度关账", body))
}

pub async fn page(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
) -> ConsoleResult<HttpResponse> {
    let month = area::month("month", Some(&path))?;
    let detail = service::month(&state.db, &session.caller, month).await?;
    let title = format!("{month} 月调度：签核与关账");
    let body = html! {
        (summary(&detail))
        (counties_table(&session, &detail))
        @if session.caller.role == Role::CityAdmin { (city_actions(&session, &detail)) }
        (closes_table(&detail))
        p { a href="/console/months" { "← 全部月份" } }
    };
    Ok(render(&session, Nav::Months, &title, body))
}

fn summary(d: &MonthDetail) -> Markup {
    html! {
        p.meta #summary {
            span.state { (d.state.label()) }
            " · " @if d.ended { "该月已结束" } @else { "该月尚未结束（" (datetime(&d.ends_at)) " 结束），不能签核或关账" }
            " · 第 " (d.round) " 轮签核：" (d.counties_signed) " / " (d.counties_total) " 个县（市、区）已签核"
            " · 待审核调查 " (number(d.pending_surveys)) " 份"
        }
    }
}

fn counties_table(session: &Session, d: &MonthDetail) -> Markup {
    html! {
        section {
            h2 { "各县（市、区）签核情况" }
            table.list #counties {
                thead { tr {
                    th { "县（市、区）" } th { "状态" } th { "待审核调查" } th { "签核人" } th { "签核时间" }
                    th { "说明" } th { "强制签核理由" } th { "撤回" } th {}
                } }
                tbody {
                    @for c in &d.counties {
                        tr data-county=(c.county) {
                            td { (c.county_name) }
                            td.state { span class={ "status " (c.state.as_str()) } { (c.state.label()) } }
                            td.num.pending { (number(c.pending_household_surveys + c.pending_village_surveys)) }
                            td { (c.signed_by_name.as_deref().unwrap_or("—")) }
                            td { (c.signed_at.as_ref().map_or("—".to_owned(), datetime)) }
                            td { (c.note.as_deref().unwrap_or("")) }
                            td { (c.override_reason.as_deref().unwrap_or("")) }
                            td {
                                @if let Some(at) = &c.withdrawn_at {
                                    (datetime(at)) " " (c.withdrawn_by_name.as_deref().unwrap_or("")) " " (c.withdraw_reason.as_deref().unwrap_or(""))
                                }
                            }
                            td { (county_actions(session, d, c)) }
                        }
                    }
                }
            }
        }
    }
}

/// A reviewer's forms for their own county: sign off, or withdraw the sign-off.
fn county_actions(session: &Session, d: &MonthDetail, c: &CountySignoff) -> Markup {
    let mine = session.caller.role == Role::CountyReviewer
        && session
            .caller
            .county_code
            .as_ref()
            .map(DivisionCode::as_str)
            == Some(c.county.as_str());
    if !mine || d.state == MonthStatus::Closed || !d.ended {
        return html! {};
    }
    let pending = c.pending_household_surveys + c.pending_village_surveys;
    html! {
        @if c.state == SignoffState::Signed {
            form.withdraw method="post" action={ "/console/months/" (d.month) "/withdraw" }
                data-confirm="确定撤回本县的签核？" {
                (csrf_field(session))
                input type="hidden" name="county" value=(c.county);
                label { "撤回理由" input type="text" name="reason" maxlength="500"; }
                button #withdraw type="submit" { "撤回签核" }
            }
        } @else {
            form.signoff method="post" action={ "/console/months/" (d.month) "/signoff" } {
                (csrf_field(session))
                input type="hidden" name="county" value=(c.county);
                label { "说明" input #signoff-note type="text" name="note" maxlength="500"; }
                @if pending > 0 {
                    label { "尚有 " (pending) " 份调查待审核，强制签核须填写理由"
                        textarea #signoff-reason name="reason" maxlength="500" required {}
                    }
                }
                button.primary #signoff type="submit" { "签核本县" }
            }
        }
    }
}

/// The city admin's close or reopen form.
fn city_actions(session: &Session, d: &MonthDetail) -> Markup {
    let complete = d.counties_signed == d.counties_total && d.pending_surveys == 0;
    html! {
        section.actions #city-actions {
            @if d.state == MonthStatus::Closed {
                form.reopen method="post" action={ "/console/months/" (d.month) "/reopen" }
                    data-confirm="重新开账后该月台账恢复为实时数据，各县须重新签核。确定重新开账？" {
                    (csrf_field(session))
                    label { "重新开账理由（必填）"
                        textarea #reopen-reason name="reason" maxlength="500" required {}
                    }
                    button #reopen type="submit" { "重新开账" }
                }
            } @else if d.ended {
                form.close method="post" action={ "/console/months/" (d.month) "/close" }
                    data-confirm=(format!("关账后 {} 的台账将冻结，确定关账？", d.month)) {
                    (csrf_field(session))
                    @if !complete {
                        p.flag { "尚有县（市、区）未签核或有调查待审核，关账须填写强制关账理由。" }
                        label { "强制关账理由"
                            textarea #close-reason name="reason" maxlength="500" required {}
                        }
                    }
                    button.primary #close type="submit" { "关账" }
                }
            } @else {
                p.muted { "该月尚未结束，结束后方可关账。" }
            }
        }
    }
}

fn closes_table(d: &MonthDetail) -> Markup {
    html! {
        @if !d.closes.is_empty() {
            section {
                h2 { "关账记录与快照版本" }
                table.list #closes {
                    thead { tr {
                        th { "版本" } th { "关账时间" } th { "关账人" } th { "行政村" } th { "强制关账理由" }
                        th { "关账时缺少" } th { "重新开账" } th { "开账理由" }
                    } }
                    tbody {
                        @for c in &d.closes {
                            tr data-version=(c.version) class=[c.standing.then_some("standing")] {
                                td { "第 " (c.version) " 版" @if c.standing { "（现行）" } }
                                td { (datetime(&c.closed_at)) }
                                td { (c.closed_by_name) }
                                td.num { (c.villages) }
                                td { (c.override_reason.as_deref().unwrap_or("")) }
                                td { (c.missing.as_deref().unwrap_or("")) }
                                td { (c.reopened_at.as_ref().map_or(String::new(), datetime)) " " (c.reopened_by_name.as_deref().unwrap_or("")) }
                                td { (c.reopen_reason.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What a month form does.
#[derive(Debug, Clone, Copy)]
enum Step {
    SignOff,
    Withdraw,
    Close,
    Reopen,
}

fn county_field(fields: &[(String, String)]) -> ApiResult<DivisionCode> {
    DivisionCode::parse_level(value(fields, "county").unwrap_or(""), DivisionLevel::County)
        .map_err(|e| bad_query("county", e.message))
}

async fn run(
    state: &AppState,
    session: &Session,
    month: &str,
    fields: &[(String, String)],
    step: Step,
) -> ApiResult<(Month, &'static str)> {
    let caller = &session.caller;
    // The role first, as the API's routes: someone who may not act learns nothing more.
    match step {
        Step::SignOff | Step::Withdraw => service::require_signer(caller)?,
        Step::Close | Step::Reopen => service::require_closer(caller)?,
    }
    let month = area::month("month", Some(month))?;
    let text = |k: &str| value(fields, k).map(str::to_owned);
    let done = match step {
        Step::SignOff => {
            let request = SignoffRequest {
                note: text("note"),
                reason: text("reason"),
            };
            service::sign_off(&state.db, caller, month, county_field(fields)?, request).await?;
            "已签核"
        }
        Step::Withdraw => {
            let request = WithdrawRequest {
                reason: text("reason"),
            };
            let county = county_field(fields)?;
            service::withdraw_signoff(&state.db, caller, month, county, request).await?;
            "已撤回签核"
        }
        Step::Close => {
            let request = CloseRequest {
                reason: text("reason"),
            };
            service::close_month(&state.db, caller, month, request).await?;
            "已关账"
        }
        Step::Reopen => {
            let request = ReopenRequest {
                reason: text("reason"),
            };
            service::reopen_month(&state.db, caller, month, request).await?;
            "已重新开账"
        }
    };
    Ok((month, done))
}

async fn act(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    body: web::Bytes,
    step: Step,
) -> ConsoleResult<HttpResponse> {
    let fields = posted(&state, &session, &body)?;
    let raw = path.into_inner();
    let back = match Month::parse(&raw) {
        Ok(m) => format!("/console/months/{m}"),
        Err(_) => "/console/months".to_owned(),
    };
    Ok(match run(&state, &session, &raw, &fields, step).await {
        Ok((month, done)) => see_other_with(&back, true, &format!("{month} {done}。")),
        Err(e) => see_other_with(&back, false, &explain(&e)),
    })
}

pub async fn sign_off(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    body: web::Bytes,
) -> ConsoleResult<HttpResponse> {
    act(state, session, path, body, Step::SignOff).await
}

pub async fn withdraw(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    body: web::Bytes,
) -> ConsoleResult<HttpResponse> {
    act(state, session, path, body, Step::Withdraw).await
}

pub async fn close(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    body: web::Bytes,
) -> ConsoleResult<HttpResponse> {
    act(state, session, path, body, Step::Close).await
}

pub async fn reopen(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    body: web::Bytes,
) -> ConsoleResult<HttpResponse> {
    act(state, session, path, body, Step::Reopen).await
}
