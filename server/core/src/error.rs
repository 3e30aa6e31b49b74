//! The one error type of the request path and its RFC 9457 `application/problem+json` form.
//!
//! Handlers return `Result<_, ApiError>`. Model and query code returns diesel's `QueryResult`
//! and is converted here (`NotFound` becomes 404, everything unexpected 500). `anyhow` is for
//! start-up and the command line, off the request path. Every problem names a stable snake_case
//! `code` that clients switch on, the offending `field` where there is one, and the request id
//! that also appears in the server log.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{Invalid, Rule};
use crate::telemetry::request_id;

/// Stable error codes. The Chinese label is the problem's `title`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    MalformedJson,
    UnreadableBody,
    InvalidQuery,
    InvalidPath,
    ValidationFailed,
    MissingToken,
    InvalidToken,
    TokenExpired,
    SessionRevoked,
    AccountDisabled,
    OneTimePasswordExpired,
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshTokenReused,
    ForbiddenRole,
    OutOfScope,
    PasswordChangeRequired,
    NotFound,
    MethodNotAllowed,
    Conflict,
    SubmissionIdReused,
    IllegalTransition,
    StaleReview,
    MonthAlreadyClosed,
    MonthNotEnded,
    MonthNotClosed,
    SignoffsMissing,
    SurveysPending,
    AlreadySignedOff,
    NotSignedOff,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    RateLimited,
    ServiceUnavailable,
    InternalError,
}

impl ErrorCode {
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::MalformedJson,
        ErrorCode::UnreadableBody,
        ErrorCode::InvalidQuery,
        ErrorCode::InvalidPath,
        ErrorCode::ValidationFailed,
        ErrorCode::MissingToken,
        ErrorCode::InvalidToken,
        ErrorCode::TokenExpired,
        ErrorCode::SessionRevoked,
        ErrorCode::AccountDisabled,
        ErrorCode::OneTimePasswordExpired,
        ErrorCode::InvalidCredentials,
        ErrorCode::InvalidRefreshToken,
        ErrorCode::RefreshTokenReused,
        ErrorCode::ForbiddenRole,
        ErrorCode::OutOfScope,
        ErrorCode::PasswordChangeRequired,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::SubmissionIdReused,
        ErrorCode::IllegalTransition,
        ErrorCode::StaleReview,
        ErrorCode::MonthAlreadyClosed,
        ErrorCode::MonthNotEnded,
        ErrorCode::MonthNotClosed,
        ErrorCode::SignoffsMissing,
        ErrorCode::SurveysPending,
        ErrorCode::AlreadySignedOff,
        ErrorCode::NotSignedOff,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RequestTimeout,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::RateLimited,
        ErrorCode::ServiceUnavailable,
        ErrorCode::InternalError,
    ];

    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            MalformedJson | UnreadableBody | InvalidQuery | InvalidPath => StatusCode::BAD_REQUEST,
            ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            MissingToken
            | InvalidToken
            | TokenExpired
            | SessionRevoked
            | AccountDisabled
            | OneTimePasswordExpired
            | InvalidCredentials
            | InvalidRefreshToken
            | RefreshTokenReused => StatusCode::UNAUTHORIZED,
            ForbiddenRole | OutOfScope | PasswordChangeRequired => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Conflict | SubmissionIdReused | IllegalTransition | StaleReview
            | MonthAlreadyClosed | MonthNotEnded | MonthNotClosed | SignoffsMissing
            | SurveysPending | AlreadySignedOff | NotSignedOff => StatusCode::CONFLICT,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            MalformedJson => "malformed_json",
            UnreadableBody => "unreadable_body",
            InvalidQuery => "invalid_query",
            InvalidPath => "invalid_path",
            ValidationFailed => "validation_failed",
            MissingToken => "missing_token",
            InvalidToken => "invalid_token",
            TokenExpired => "token_expired",
            SessionRevoked => "session_revoked",
            AccountDisabled => "account_disabled",
            OneTimePasswordExpired => "one_time_password_expired",
            InvalidCredentials => "invalid_credentials",
            InvalidRefreshToken => "invalid_refresh_token",
            RefreshTokenReused => "refresh_token_reused",
            ForbiddenRole => "forbidden_role",
            OutOfScope => "out_of_scope",
            PasswordChangeRequired => "password_change_required",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            Conflict => "conflict",
            SubmissionIdReused => "submission_id_reused",
            IllegalTransition => "illegal_transition",
            StaleReview => "stale_review",
            MonthAlreadyClosed => "month_already_closed",
            MonthNotEnded => "month_not_ended",
            MonthNotClosed => "month_not_closed",
            SignoffsMissing => "signoffs_missing",
            SurveysPending => "surveys_pending",
            AlreadySignedOff => "already_signed_off",
            NotSignedOff => "not_signed_off",
            PayloadTooLarge => "payload_too_large",
            RequestTimeout => "request_timeout",
            UnsupportedMediaType => "unsupported_media_type",
            RateLimited => "rate_limited",
            ServiceUnavailable => "service_unavailable",
            InternalError => "internal_error",
        }
    }

    /// The problem `title`, in Simplified Chinese for the people who read it.
    pub fn label(self) -> &'static str {
        use ErrorCode::*;
        match self {
            MalformedJson => "请求体不是有效的 JSON",
            UnreadableBody => "请求体未能完整接收",
            InvalidQuery => "查询参数无效",
            InvalidPath => "路径参数无效",
            ValidationFailed => "提交的数据未通过校验",
            MissingToken => "缺少访问令牌，请先登录",
            InvalidToken => "访问令牌无效",
            TokenExpired => "访问令牌已过期，请刷新",
            SessionRevoked => "登录会话已失效，请重新登录",
            AccountDisabled => "账号已停用",
            OneTimePasswordExpired => "一次性密码已过期",
            InvalidCredentials => "手机号或密码错误",
            InvalidRefreshToken => "刷新令牌无效或已过期，请重新登录",
            RefreshTokenReused => "刷新令牌被重复使用，该会话已注销",
            ForbiddenRole => "当前角色无权执行此操作",
            OutOfScope => "超出账号的管辖范围",
            PasswordChangeRequired => "请先修改密码",
            NotFound => "资源不存在",
            MethodNotAllowed => "不支持该请求方法",
            Conflict => "与已有数据冲突",
            SubmissionIdReused => "该提交编号已用于其他内容",
            IllegalTransition => "当前状态下不能执行该审核操作",
            StaleReview => "该调查已被他人处理，请刷新后再审核",
            MonthAlreadyClosed => "该月已关账",
            MonthNotEnded => "该月尚未结束",
            MonthNotClosed => "该月尚未关账",
            SignoffsMissing => "尚有县（市、区）未签核该月",
            SurveysPending => "尚有该月的调查待审核",
            AlreadySignedOff => "该县（市、区）已签核该月",
            NotSignedOff => "该县（市、区）尚未签核该月",
            PayloadTooLarge => "请求体过大",
            RequestTimeout => "请求体接收超时",
            UnsupportedMediaType => "不支持的内容类型",
            RateLimited => "请求过于频繁，请稍后再试",
            ServiceUnavailable => "服务暂不可用，请稍后再试",
            InternalError => "服务器内部错误",
        }
    }
}

/// One rule one field broke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Path of the offending field, e.g. `members[2].id_number`.
    #[schema(example = "phone")]
    pub field: String,
    /// Stable snake_case name of the rule, e.g. `phone_format`, `required`, `unknown_value`,
    /// `control_character`; `GET /catalog` lists every rule with its Chinese label (`rule`).
    pub rule: Rule,
    /// What is wrong with the field, in Chinese.
    pub detail: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, rule: Rule, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule,
            detail: detail.into(),
        }
    }

    pub fn from_invalid(field: impl Into<String>, invalid: Invalid) -> Self {
        Self::new(field, invalid.rule, invalid.message)
    }
}

/// An RFC 9457 problem document, as every 4xx and 5xx answer carries it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:taizhang:problem:{code}`.
    #[serde(rename = "type")]
    #[schema(example = "urn:taizhang:problem:validation_failed")]
    pub kind: String,
    /// Short Chinese summary of the problem class.
    pub title: String,
    pub status: u16,
    pub code: ErrorCode,
    /// What went wrong in this request, in Chinese.
    pub detail: String,
    /// The first offending field, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The rule that field broke.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    /// Every field error found (validation reports all of them at once), or the first of
    /// them when there were more than a sheet import lists (see `errors_total`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// How many field errors there were in all, when `errors` lists only the first of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors_total: Option<usize>,
    /// Seconds to wait before retrying (429 and 503).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The id of this request, also in the `x-request-id` header and the server log.
    pub request_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request could not be read (400), or its body came too slowly (408).
    #[error("{detail}")]
    BadRequest {
        code: ErrorCode,
        detail: String,
        field: Option<String>,
    },
    /// The request was read but broke rules (422); lists every broken rule.
    #[error("validation failed: {0:?}")]
    Validation(Vec<FieldError>),
    /// Like `Validation` (422), for a sheet with more broken rules than are worth listing:
    /// the first of them and how many there were in all.
    #[error("validation failed: {total} errors")]
    ValidationTruncated {
        errors: Vec<FieldError>,
        total: usize,
    },
    #[error("{detail}")]
    Unauthenticated { code: ErrorCode, detail: String },
    #[error("{detail}")]
    Forbidden { code: ErrorCode, detail: String },
    #[error("{0}")]
    NotFound(String),
    #[error("不支持该请求方法")]
    MethodNotAllowed,
    #[error("{detail}")]
    Conflict { code: ErrorCode, detail: String },
    #[error("请求体超过 {limit} 字节的上限")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{detail}")]
    RateLimited { retry_after: u64, detail: String },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// Too busy to take this request now (503 with `Retry-After`), e.g. no decode memory left.
    #[error("{detail}")]
    Busy { retry_after: u64, detail: String },
    /// A bug or an unexpected failure: logged in full, answered without details.
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }

    pub fn field(field: impl Into<String>, rule: Rule, detail: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, rule, detail)])
    }

    pub fn invalid(field: impl Into<String>, invalid: Invalid) -> Self {
        Self::Validation(vec![FieldError::from_invalid(field, invalid)])
    }

    pub fn unauthenticated(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Unauthenticated {
            code,
            detail: detail.into(),
        }
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict {
            code: ErrorCode::Conflict,
            detail: detail.into(),
        }
    }

    pub fn forbidden(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            detail: detail.into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest { code, .. } => *code,
            ApiError::Validation(_) | ApiError::ValidationTruncated { .. } => {
                ErrorCode::ValidationFailed
            }
            ApiError::Unauthenticated { code, .. } => *code,
            ApiError::Forbidden { code, .. } => *code,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::Conflict { code, .. } => *code,
            ApiError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::Unavailable(_) | ApiError::Busy { .. } => ErrorCode::ServiceUnavailable,
            ApiError::Internal(_) => ErrorCode::InternalError,
        }
    }

    pub fn problem(&self) -> Problem {
        let code = self.code();
        let errors = match self {
            ApiError::Validation(errors) | ApiError::ValidationTruncated { errors, .. } => {
                errors.clone()
            }
            _ => Vec::new(),
        };
        let (field, rule) = match (self, errors.first()) {
            (_, Some(first)) => (Some(first.field.clone()), Some(first.rule)),
            (ApiError::BadRequest { field, .. }, None) => (field.clone(), None),
            _ => (None, None),
        };
        let detail = match self {
            ApiError::Validation(errors) => match errors.as_slice() {
                [one] => format!("{}：{}", one.field, one.detail),
                many => format!("共 {} 个字段未通过校验，逐项见 `errors`", many.len()),
            },
            ApiError::ValidationTruncated { errors, total } => format!(
                "共 {total} 处未通过校验，`errors` 列出前 {} 处",
                errors.len()
            ),
            // Internal details stay in the log.
            ApiError::Internal(_) => {
                "服务器发生意外错误，可凭请求编号（request_id）在服务器日志中查到".into()
            }
            ApiError::Unavailable(_) => "暂时无法访问数据库或照片存储".into(),
            other => other.to_string(),
        };
        Problem {
            kind: format!("urn:taizhang:problem:{}", code.as_str()),
            title: code.label().to_owned(),
            status: code.status().as_u16(),
            code,
            detail,
            field,
            rule,
            errors,
            errors_total: match self {
                ApiError::ValidationTruncated { total, .. } => Some(*total),
                _ => None,
            },
            retry_after: match self {
                ApiError::RateLimited { retry_after, .. } => Some(*retry_after),
                ApiError::Unavailable(_) => Some(5),
                ApiError::Busy { retry_after, .. } => Some(*retry_after),
                _ => None,
            },
            request_id: request_id::current().unwrap_or_default(),
        }
    }
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code().status()
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error")
            }
            ApiError::Unavailable(reason) => tracing::warn!(reason, "service unavailable"),
            _ => {}
        }
        let problem = self.problem();
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        if let Some(seconds) = problem.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if matches!(self, ApiError::Unauthenticated { .. }) {
            let error = match problem.code {
                ErrorCode::MissingToken | ErrorCode::InvalidCredentials => "",
                _ => ", error=\"invalid_token\"",
            };
            response.insert_header((
                header::WWW_AUTHENTICATE,
                format!("Bearer realm=\"taizhang\"{error}"),
            ));
        }
        // Serialising this struct cannot fail; fall back to an empty body rather than panic.
        response.body(serde_json::to_vec(&problem).unwrap_or_default())
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        match error {
            diesel::result::Error::NotFound => ApiError::NotFound("要找的资源不存在".into()),
            other => ApiError::Internal(anyhow::Error::new(other).context("database query")),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// 400 `invalid_query` naming the query parameter and what is wrong with it.
pub fn bad_query(field: &str, detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code: ErrorCode::InvalidQuery,
        detail: format!("{field}：{}", detail.into()),
        field: Some(field.into()),
    }
}
