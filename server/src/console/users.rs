//! Staff: the accounts list (by county, role, active), one account's edit form, deactivation
//! and reactivation, the password reset that shows its one-time password once, and the
//! caller's own password change (where a reset sends them first). Every form calls the
//! accounts service the API calls, so the role rules of `users::manage` hold here too.

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use super::error::{explain, ConsoleResult};
use super::layout::{csrf_field, datetime, render, Nav};
use super::session::Session;
use super::{counties_of, pairs, posted, see_other_with, value};
use crate::auth::area;
use crate::domain::DivisionLevel;
use crate::domain::Role;
use crate::error::bad_query;
use crate::error::ApiError;
use crate::state::AppState;
use crate::users::manage::UserChanges;
use crate::users::service::UserFilter;
use crate::users::service::{self, PasswordChange, UserSummary};

/// The pages a user whose password was reset may open before choosing a new one.
pub const PASSWORD_CHANGE_PAGES: [&str; 2] = ["/console/password", "/console/logout"];

pub async fn list(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
) -> ConsoleResult<HttpResponse> {
    let params = pairs(req.query_string());
    let caller = &session.caller;
    let users = service::list(&state.db, caller, filter(&params)?).await?;
    let counties = counties_of(&state, caller).await?;
    let county_name = |code: &Option<String>| {
        code.as_ref().map_or("全市".to_owned(), |c| {
            counties
                .iter()
                .find(|(k, _)| k == c)
                .map_or(c.clone(), |(_, n)| n.clone())
        })
    };
    let active = value(&params, "active");
    let body = html! {
        form.filters method="get" action="/console/users" {
            label { "县（市、区）"
                select name="county" {
                    option value="" { "全部" }
                    @for (code, n) in &counties {
                        option value=(code) selected[value(&params, "county") == Some(code.as_str())] { (n) }
                    }
                }
            }
            label { "角色"
                select name="role" {
                    option value="" { "全部" }
                    @for role in Role::ALL {
                        option value=(role.as_str()) selected[value(&params, "role") == Some(role.as_str())] { (role.label()) }
                    }
                }
            }
            label { "状态"
                select name="active" {
                    option value="" { "全部" }
                    option value="true" selected[active == Some("true")] { "在用" }
                    option value="false" selected[active == Some("false")] { "已停用" }
                }
            }
            button #filter type="submit" { "查询" }
        }
        p.muted { "共 " (users.count) " 个账号。" }
        table.list #users {
            thead { tr { th { "手机号" } th { "姓名" } th { "角色" } th { "县（市、区）" } th { "负责村" } th { "状态" } th {} } }
            tbody {
                @for u in &users.users {
                    tr data-phone=(u.phone) {
                        td { (u.phone) }
                        td { (u.name) }
                        td { (u.role_label) }
                        td { (county_name(&u.county_code)) }
                        td { (u.village_codes.join("、")) }
                        td.state { (state_label(u)) }
                        td { a.edit href={ "/console/users/" (u.id) } { "查看与修改" } }
                    }
                }
            }
        }
    };
    Ok(render(&session, Nav::Users, "人员管理", body))
}

/// The list's filter from the query string, refused as the API refuses its own.
fn filter(params: &[(String, String)]) -> Result<UserFilter, ApiError> {
    let role = value(params, "role")
        .map(|r| Role::parse(r).ok_or_else(|| bad_query("role", "不是允许的角色")))
        .transpose()?;
    let active = match value(params, "active") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(bad_query("active", "须为 true 或 false")),
    };
    Ok(UserFilter {
        county: area::code("county", value(params, "county"), DivisionLevel::County)?,
        role,
        active,
    })
}

fn state_label(u: &UserSummary) -> &'static str {
    match (u.active, u.must_change_password) {
        (false, _) => "已停用",
        (true, true) => "待改密码",
        (true, false) => "在用",
    }
}

pub async fn page(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
) -> ConsoleResult<HttpResponse> {
    let user = service::get(&state.db, &session.caller, path.into_inner()).await?;
    let counties = counties_of(&state, &session.caller).await?;
    Ok(render(
        &session,
        Nav::Users,
        &format!("账号：{}", user.name),
        account(&session, &user, &counties, None),
    ))
}

/// One account: its facts, the edit form, deactivation or reactivation, the reset.
fn account(
    session: &Session,
    u: &UserSummary,
    counties: &[(String, String)],
    one_time: Option<&str>,
) -> Markup {
    let caller = &session.caller;
    let admin = caller.role == Role::CityAdmin;
    let field_user = matches!(u.role, Role::Enumerator | Role::FirstSecretary);
    let own = caller.user_id == u.id;
    let action = format!("/console/users/{}", u.id);
    html! {
        @if let Some(password) = one_time {
            div.flash.ok #one-time role="status" {
                "已重置密码。一次性密码：" strong #one-time-password { (password) }
                "。请当面或电话告知本人；此密码只显示这一次，" (crate::auth::password::ONE_TIME_VALID_HOURS) " 小时内有效，本人下次登录须修改密码。"
            }
        }
        dl.facts {
            dt { "手机号" } dd { (u.phone) }
            dt { "角色" } dd { (u.role_label) }
            dt { "状态" } dd #account-state { (state_label(u)) }
            dt { "创建时间" } dd { (datetime(&u.created_at)) }
            @if let Some(at) = &u.deactivated_at { dt { "停用时间" } dd { (datetime(at)) } }
            @if let Some(at) = &u.password_changed_at { dt { "上次改密码" } dd { (datetime(at)) } }
        }
        @if admin || field_user {
            h2 { "修改" }
            form #edit method="post" action=(action) {
                (csrf_field(session))
                label { "姓名" input #name name="name" value=(u.name) maxlength="50" required; }
                @if field_user {
                    label { "负责村（12 位村代码，多个用逗号分隔；已由同角色他人负责的村将移交给此人）"
                        input #villages name="villages" value=(u.village_codes.join(",")); }
                }
                @if admin && u.role == Role::CountyReviewer {
                    label { "县（市、区）"
                        select name="county" {
                            @for (code, n) in counties {
                                option value=(code) selected[u.county_code.as_deref() == Some(code.as_str())] { (n) }
                            }
                        }
                    }
                }
                label { "理由（记入审计日志，可不填）" input name="reason" maxlength="200"; }
                button.primary #save type="submit" { "保存" }
            }
            @if !own {
                h2 { (if u.active { "停用" } else { "重新启用" }) }
                form #active method="post" action={ (action) "/active" } {
                    (csrf_field(session))
                    input type="hidden" name="active" value=(if u.active { "false" } else { "true" });
                    @if u.active {
                        p.muted { "停用后，此人的所有登录会话立即结束，手机应用与控制台均不能再使用。" }
                    }
                    label { "理由" input name="reason" maxlength="200"; }
                    button #toggle-active type="submit" { (if u.active { "停用账号" } else { "重新启用账号" }) }
                }
            }
        }
        @if admin && !own {
            h2 { "重置密码" }
            form #reset method="post" action={ (action) "/password-reset" } {
                (csrf_field(session))
                p.muted { "生成一次性密码并结束此人的所有登录会话；此人下次登录须先修改密码。" }
                button #reset-password type="submit" { "重置密码" }
            }
        }
        p { a href="/console/users" { "返回人员列表" } }
    }
}

/// The edit form: name, villages (comma-separated codes), county, reason.
pub async fn edit(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    body: web::Bytes,
) -> ConsoleResult<HttpResponse> {
    let fields = posted(&state, &session, &body)?;
    let id = path.into_inner();
    let changes = UserChanges {
        name: Some(value(&fields, "name").unwrap_or("").to_owned()),
        villages: value(&fields, "villages").map(|v| {
            v.split([',', '，', '、', ' '])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }),
        county: value(&fields, "county").map(str::to_owned),
        active: None,
        reason: value(&fields, "reason").map(str::to_owned),
    };
    let done = service::update(&state.db, &session.caller, id.clone(), changes, "控制台").await;
    Ok(answer(&id, done, "已保存。"))
}

pub async fn set_active(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    body: web::Bytes,
) -> ConsoleResult<HttpResponse> {
    let fields = posted(&state, &session, &body)?;
    let id = path.into_inner();
    let active = value(&fields, "active") == Some("true");
    let changes = UserChanges {
        active: Some(active),
        reason: value(&fields, "reason").map(str::to_owned),
        ..Default::default()
    };
    let done = service::update(&state.db, &session.caller, id.clone(), changes, "控制台").await;
    let ok = if active {
        "账号已重新启用。"
    } else {
        "账号已停用，其登录会话均已结束。"
    };
    Ok(answer(&id, done, ok))
}

fn answer(id: &str, done: Result<UserSummary, ApiError>, ok: &str) -> HttpResponse {
    let back = format!("/console/users/{id}");
    match done {
        Ok(_) => see_other_with(&back, true, ok),
        Err(e) => see_other_with(&back, false, &explain(&e)),
    }
}

/// The reset answers the account page itself, with the one-time password: it is never put in
/// a cookie or a URL, and a reload does not show it again (the form is not re-posted silently).
pub async fn reset(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    body: web::Bytes,
) -> ConsoleResult<HttpResponse> {
    posted(&state, &session, &body)?;
    let id = path.into_inner();
    match service::reset_password(&state.db, &session.caller, id.clone(), "控制台").await {
        Ok(reset) => {
            let counties = counties_of(&state, &session.caller).await?;
            let page = account(
                &session,
                &reset.user,
                &counties,
                Some(&reset.one_time_password),
            );
            Ok(render(
                &session,
                Nav::Users,
                &format!("账号：{}", reset.user.name),
                page,
            ))
        }
        Err(e) => Ok(answer(&id, Err(e), "")),
    }
}

/// The caller's own password: the page a reset sends them to, and always reachable.
pub async fn password_page(session: Session) -> HttpResponse {
    let body = html! {
        p.muted { "新密码须为 8 至 128 个字符，且不能与当前密码相同。修改后，您在其他设备上的登录将结束。" }
        form #change-password method="post" action="/console/password" {
            (csrf_field(&session))
            label { "当前密码（重置后为一次性密码）"
                input #current-password type="password" name="current_password" autocomplete="current-password" required; }
            label { "新密码"
                input #new-password type="password" name="new_password" autocomplete="new-password" required minlength="8" maxlength="128"; }
            button.primary #change type="submit" { "修改密码" }
        }
    };
    render(&session, Nav::Password, "修改密码", body)
}

pub async fn change_password(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
    body: web::Bytes,
) -> ConsoleResult<HttpResponse> {
    let fields = posted(&state, &session, &body)?;
    let input = PasswordChange {
        current_password: value(&fields, "current_password").unwrap_or("").to_owned(),
        new_password: value(&fields, "new_password").unwrap_or("").to_owned(),
    };
    let addr = crate::http::client_addr(&req, state.settings.trust_proxy_headers);
    let auth = &state.settings.auth;
    Ok(
        match service::change_password(&state.db, auth, &session.caller, input, &addr).await {
            Ok(()) => see_other_with("/console", true, "密码已修改。"),
            Err(e) => see_other_with("/console/password", false, &explain(&e)),
        },
    )
}
