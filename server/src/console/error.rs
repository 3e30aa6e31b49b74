//! The console's errors: the API's errors shown as a page in Chinese, a missing session as a
//! redirect to the login page.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use maud::html;

use super::layout;
use super::session::login_redirect;
use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No session, or one that ended: log in, then come back to the path.
    #[error("login required")]
    Login(String),
    /// A form without this session's CSRF token.
    #[error("CSRF token missing or wrong")]
    Csrf,
    #[error(transparent)]
    Api(#[from] ApiError),
}

pub type ConsoleResult<T> = Result<T, ConsoleError>;

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::Login(_) => StatusCode::SEE_OTHER,
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
            ConsoleError::Csrf => (
                "表单已失效".to_owned(),
                "页面已过期或来自其他网站，请返回刷新后重试。".to_owned(),
            ),
            ConsoleError::Api(e) => {
                if let ApiError::Internal(cause) = e {
                    tracing::error!(error = ?cause, "console request failed");
                }
                let problem = e.problem();
                (problem.title, problem.detail)
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

/// The Chinese text of an API error, for a flash message after a refused decision.
pub fn explain(e: &ApiError) -> String {
    let problem = e.problem();
    let fields: Vec<String> = problem
        .errors
        .iter()
        .map(|f| format!("{}（{}）", f.field, f.detail))
        .collect();
    if fields.is_empty() {
        format!("{}：{}", problem.title, problem.detail)
    } else {
        format!("{}：{}", problem.title, fields.join("；"))
    }
}
