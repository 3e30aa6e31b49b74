//! The audit log for the city administrator: filtered by who acted, the action and the dates,
//! newest first in pages (the API's `GET /api/v1/audit` behind it, which also exports CSV).

use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;

use super::error::ConsoleResult;
use super::layout::{datetime, query, render, Nav};
use super::session::Session;
use super::{pairs, value};
use crate::audit::service::{self, action_label, AuditFilter, PageRequest};
use crate::auth::area;
use crate::error::bad_query;
use crate::state::AppState;

/// The actions the filter offers (any other can still be typed into the URL).
const ACTIONS: [&str; 19] = [
    "approve",
    "reject",
    "request_revision",
    "reopen",
    "merge",
    "unmerge",
    "keep_apart",
    "confirm_transfer",
    "confirm_key_mistake",
    "reveal_personal_data",
    "create_user",
    "update_user",
    "deactivate_user",
    "reactivate_user",
    "hand_over_village",
    "reset_password",
    "change_password",
    "close_month",
    "set_quota",
];

pub async fn page(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
) -> ConsoleResult<HttpResponse> {
    let caller = &session.caller;
    service::require_reader(caller)?;
    let params = pairs(req.query_string());
    let (from, to) = (value(&params, "from"), value(&params, "to"));
    let (user, action) = (value(&params, "user"), value(&params, "action"));
    let filter = AuditFilter {
        from: from
            .map(|d| area::day_start("from", d, 0))
            .transpose()?
            .map(|t| t.and_utc()),
        to: to
            .map(|d| area::day_start("to", d, 1))
            .transpose()?
            .map(|t| t.and_utc()),
        user: user.map(str::to_owned),
        action: action.map(str::to_owned),
        subject_type: None,
        subject_id: value(&params, "subject").map(str::to_owned),
    };
    let cursor = value(&params, "cursor")
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| bad_query("cursor", "翻页位置无效"))
        })
        .transpose()?;
    let page = service::list(&state.db, caller, filter, PageRequest { cursor, limit: 50 }).await?;
    let staff = crate::users::service::list(&state.db, caller, Default::default()).await?;
    let filters = [
        ("from", from),
        ("to", to),
        ("user", user),
        ("action", action),
        ("subject", value(&params, "subject")),
    ];
    let body = html! {
        form.filters method="get" action="/console/audit" {
            label { "操作人"
                select name="user" {
                    option value="" { "全部" }
                    @for u in &staff.users {
                        option value=(u.id) selected[user == Some(u.id.as_str())] { (u.name) "（" (u.phone) "）" }
                    }
                }
            }
            label { "操作"
                select name="action" {
                    option value="" { "全部" }
                    @for a in ACTIONS {
                        option value=(a) selected[action == Some(a)] { (action_label(a)) }
                    }
                }
            }
            label { "开始日期" input type="date" name="from" value=(from.unwrap_or("")); }
            label { "结束日期" input type="date" name="to" value=(to.unwrap_or("")); }
            button #filter type="submit" { "查询" }
        }
        table.list #audit {
            thead { tr { th { "序号" } th { "时间" } th { "操作人" } th { "操作" } th { "对象" } th { "原状态 → 新状态" } th { "理由" } th { "详情" } } }
            tbody {
                @for e in &page.items {
                    tr data-action=(e.action) {
                        td.num { (e.seq) }
                        td { (datetime(&e.at)) }
                        td { (e.user_name.as_deref().unwrap_or(&e.user_id)) }
                        td { (action_label(&e.action)) }
                        td { (e.subject_type) " " (e.subject_id) }
                        td { (e.from_state.as_deref().unwrap_or("—")) " → " (e.to_state.as_deref().unwrap_or("—")) }
                        td { (e.reason.as_deref().unwrap_or("")) }
                        td { (e.detail.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        @if page.items.is_empty() { p.muted { "没有符合条件的记录。" } }
        @if let Some(next) = page.next_cursor {
            p { a #older href={ "/console/audit?" (query(&[filters.as_slice(), &[("cursor", Some(next.to_string().as_str()))]].concat())) } { "更早的记录" } }
        }
    };
    Ok(render(&session, Nav::Audit, "审计日志", body))
}
