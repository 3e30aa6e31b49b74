//! The console's errors: the API's errors shown as a page in Chinese, a missing session as a
//! redirect to the login page.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use maud::html;

use super::layout;
use super::session::login_redirect;
use crate::error::{ApiError, ErrorCode};
use crate::http::PageRefusals;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No session, or one that ended: log in, then come back to the path.
    #[error("需要登录")]
    Login(String),
    /// A form without this session's CSRF token.
    #[error("表单令牌缺失或不符")]
    Csrf,
    #[error(transparent)]
    Api(#[from] ApiError),
}

pub type ConsoleResult<T> = Result<T, ConsoleError>;

/// Requests the HTTP layer refuses before routing (control characters in the path or query)
/// are answered under `/console` with the console's error page.
pub fn refusals() -> PageRefusals {
    PageRefusals {
        prefix: "/console",
        render: |error| ConsoleError::Api(error).error_response(),
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::Login(_) => StatusCode::SEE_OTHER,
            ConsoleError::Api(e) if e.code() == ErrorCode::PasswordChangeRequired => {
                StatusCode::SEE_OTHER
            }
            ConsoleError::Csrf => StatusCode::FORBIDDEN,
            ConsoleError::Api(e) => e.code().status(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (title, detail) = match self {
            ConsoleError::Login(next) => return login_redirect(next),
            ConsoleError::Api(ApiError::Unauthenticated { .. }) => {
                return login_redirect("/console")
            }
            ConsoleError::Api(e) if e.code() == ErrorCode::PasswordChangeRequired => {
                return super::see_other_with(
                    "/console/password",
                    false,
                    "密码已由管理员重置，请先设置新密码。",
                )
            }
            ConsoleError::Csrf => (
                "表单已失效".to_owned(),
                "页面已过期或来自其他网站，请返回刷新后重试。".to_owned(),
            ),
            ConsoleError::Api(e) => {
                if let ApiError::Internal(cause) = e {
                    tracing::error!(error = ?cause, "console request failed");
                }
                let problem = e.problem();
                let detail = match &problem.field {
                    Some(field) => form_detail(field, &problem.detail),
                    None => problem.detail.clone(),
                };
                (problem.title, detail)
            }
        };
        let status = self.status_code();
        let body = layout::bare(
            &title,
            html! {
                main.narrow {
                    h1 { (title) }
                    p.detail { (detail) }
                    @if status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND {
                        p { "如认为这是错误，请联系市扶贫办管理员。" }
                    }
                    p { a href="/console" { "返回控制台" } }
                }
            },
        );
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body.into_string())
    }
}

/// The Chinese text of an API error, for a flash message after a refused decision. Fields are
/// named by what the form calls them, not by their API names.
pub fn explain(e: &ApiError) -> String {
    let problem = e.problem();
    let fields: Vec<String> = problem
        .errors
        .iter()
        .map(|f| match form_label(&f.field) {
            Some(label) => format!("{label}：{}", f.detail),
            None => f.detail.clone(),
        })
        .collect();
    if fields.is_empty() {
        let detail = match &problem.field {
            Some(field) => form_detail(field, &problem.detail),
            None => problem.detail.clone(),
        };
        format!("{}：{detail}", problem.title)
    } else {
        format!("{}：{}", problem.title, fields.join("；"))
    }
}

/// A problem detail that starts with its field's API name (`month：须为…`), the name replaced
/// by the console's (`月份：须为…`), or dropped where the console has none.
fn form_detail(field: &str, detail: &str) -> String {
    match detail
        .strip_prefix(field)
        .and_then(|d| d.strip_prefix('：'))
    {
        Some(rest) => match form_label(field) {
            Some(label) => format!("{label}：{rest}"),
            None => rest.to_owned(),
        },
        None => detail.to_owned(),
    }
}

/// The console's name of a field its forms and links send.
fn form_label(field: &str) -> Option<&'static str> {
    Some(match field {
        "county" => "县（市、区）",
        "village" => "村",
        "code" => "区划代码",
        "level" => "层级",
        "id" => "调查编号",
        "flag" => "核验标记",
        "status" => "审核状态",
        "state" => "处理状态",
        "cursor" => "翻页位置",
        "limit" => "每页条数",
        "format" => "导出格式",
        "figure" => "比较指标",
        "reason" => "理由",
        "decision" => "审核决定",
        "action" => "处理操作",
        "survivor" => "保留的户",
        "ids" => "所选调查",
        "seen_version" => "所见版本",
        "phone" => "手机号",
        "password" => "密码",
        "current_password" => "当前密码",
        "new_password" => "新密码",
        "name" => "姓名",
        "villages" => "负责村",
        "active" => "账号状态",
        "role" => "角色",
        "user" => "操作人",
        "from" => "开始日期",
        "to" => "结束日期",
        "month" => "月份",
        _ => return None,
    })
}
