//! Body and query extractors that answer in problem+json: JSON bodies read within a size limit
//! (and kept as a value for canonical hashing), query strings parsed strictly.

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::future::LocalBoxFuture;
use futures_util::Stream;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::limits::BodyTimedOut;
use crate::domain::Rule;
use crate::error::{ApiError, ErrorCode, FieldError};

/// The largest JSON body a route accepts, in bytes (app data; 1 MiB when absent).
#[derive(Debug, Clone, Copy)]
pub struct JsonLimit(pub usize);

impl Default for JsonLimit {
    fn default() -> Self {
        Self(1024 * 1024)
    }
}

/// A JSON request body whose errors name the field: `members[2].id_number`, not line 1
/// column 873. Checks the content type (415), the size before reading it whole (413), the
/// syntax (400 `malformed_json`), control characters in any string or key (422
/// `control_character`, see [`super::text`]) and the types and enum values (422
/// `validation_failed`).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = checked_body(req, payload);
        Box::pin(async move {
            let (body, _) = body.await?;
            // Typed from the bytes again rather than from the value: a repeated field stays
            // an error instead of the last one silently winning.
            parse_json(&body).map(ApiJson)
        })
    }
}

/// Reads a JSON body and parses it as a value, refusing control characters in its text
/// before any typed validation looks at it.
fn checked_body(
    req: &HttpRequest,
    payload: &mut Payload,
) -> LocalBoxFuture<'static, Result<(Bytes, serde_json::Value), ApiError>> {
    let limit = req.app_data::<JsonLimit>().copied().unwrap_or_default().0;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let declared_length = declared_length(req);
    let mut payload = payload.take();
    Box::pin(async move {
        match content_type.as_deref() {
            Some("application/json") => {}
            Some(other) if other.starts_with("application/") && other.ends_with("+json") => {}
            other => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "请求体须为 JSON（Content-Type: application/json），收到的是 {}",
                    other.unwrap_or("（未声明）")
                )))
            }
        }
        let body = read_limited(&mut payload, limit, declared_length).await?;
        let value = parse_json(&body)?;
        super::text::check_json(&value)?;
        Ok((body, value))
    })
}

/// Reads a request body, refusing it (413) as soon as it passes `limit` — at once when the
/// declared length says so — so an oversized body is never read whole, and answering 408 when
/// it arrives too slowly (the deadline `limits::limit` puts on every body).
pub async fn read_limited<S>(
    payload: &mut S,
    limit: usize,
    declared_length: Option<usize>,
) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    if declared_length.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = BytesMut::with_capacity(declared_length.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match BodyTimedOut::of(&e) {
            Some(slow) => ApiError::BadRequest {
                code: ErrorCode::RequestTimeout,
                detail: slow.to_string(),
                field: None,
            },
            None => ApiError::BadRequest {
                code: ErrorCode::UnreadableBody,
                detail: "请求体未能完整接收，连接可能已中断".to_owned(),
                field: None,
            },
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The Content-Length a request declares, if any.
pub fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// A JSON body both as a typed value and as the JSON it was parsed from (submissions keep
/// their canonical JSON). Errors as for [`ApiJson`].
pub struct ApiJsonValue<T> {
    pub typed: T,
    pub value: serde_json::Value,
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiJsonValue<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = checked_body(req, payload);
        Box::pin(async move {
            let (_, value) = body.await?;
            let typed = serde_path_to_error::deserialize(&value).map_err(json_error)?;
            Ok(Self { typed, value })
        })
    }
}

/// Parses JSON, reporting the path of a bad field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
    de.end().map_err(|e| ApiError::BadRequest {
        code: ErrorCode::MalformedJson,
        detail: syntax_detail(&e),
        field: None,
    })?;
    Ok(value)
}

fn json_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::BadRequest {
            code: ErrorCode::MalformedJson,
            detail: syntax_detail(&inner),
            field: None,
        },
        Category::Data => {
            ApiError::Validation(vec![data_error(&path, &strip_position(&inner.to_string()))])
        }
    }
}

/// Turns one of serde's data errors into a field error with a rule name and a Chinese detail
/// (serde's own message is English; the values it quotes stay in backticks).
fn data_error(path: &str, message: &str) -> FieldError {
    let path = if path == "." { "" } else { path };
    let join = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    let quoted = || message.split('`').nth(1).unwrap_or_default().to_owned();
    let expected = message
        .split_once(", expected ")
        .map(|(_, e)| e)
        .unwrap_or_default();
    let (field, rule, detail) = if message.starts_with("missing field") {
        (join(&quoted()), Rule::Required, "缺少此必填字段".to_owned())
    } else if message.starts_with("unknown variant") {
        (
            path.to_owned(),
            Rule::UnknownValue,
            format!(
                "`{}` 不是允许的取值，应为 {}（见 GET /api/v1/catalog）",
                quoted(),
                choices(expected)
            ),
        )
    } else if message.starts_with("unknown field") {
        (
            join(&quoted()),
            Rule::UnknownField,
            "不认识的字段，请删去".to_owned(),
        )
    } else if message.starts_with("invalid type") {
        let got = message
            .strip_prefix("invalid type: ")
            .and_then(|m| m.split(", expected").next())
            .unwrap_or_default();
        (
            path.to_owned(),
            Rule::InvalidType,
            format!(
                "类型不对：应为{}，收到的是{}",
                kind_of(expected),
                kind_of(got)
            ),
        )
    } else if message.starts_with("invalid length") {
        (
            path.to_owned(),
            Rule::InvalidLength,
            "元素个数不对".to_owned(),
        )
    } else if message.starts_with("duplicate field") {
        (
            join(&quoted()),
            Rule::Duplicate,
            "同一字段出现了两次".to_owned(),
        )
    } else if message.starts_with("invalid value") && !expected.is_empty() {
        (
            path.to_owned(),
            Rule::InvalidValue,
            format!("取值无效，应为{}", kind_of(expected)),
        )
    } else {
        (path.to_owned(), Rule::InvalidValue, "取值无效".to_owned())
    };
    let field = if field.is_empty() {
        "body".to_owned()
    } else {
        field
    };
    FieldError::new(field, rule, detail)
}

/// serde's list of allowed values (`` `a`, `b` or `c` ``, `` one of `a`, `b` ``), joined the
/// Chinese way: `a`、`b`、`c`.
fn choices(expected: &str) -> String {
    let values: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    if values.is_empty() {
        "允许的取值之一".to_owned()
    } else {
        values
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join("、")
    }
}

/// A JSON kind as serde names it (`a string`, `u32`, `struct Member`, `integer `3``), in
/// Chinese.
fn kind_of(serde_kind: &str) -> &'static str {
    let k = serde_kind.trim();
    let first = k.split([' ', '`']).next().unwrap_or_default();
    match first {
        "string" | "a" if k.contains("string") || k.contains("char") => "字符串",
        "string" | "char" => "字符串",
        "boolean" => "布尔值（true 或 false）",
        "integer" | "i8" | "i16" | "i32" | "i64" | "i128" | "u8" | "u16" | "u32" | "u64"
        | "u128" | "usize" | "isize" => "整数",
        "floating" | "f32" | "f64" => "数字",
        "null" | "unit" => "null",
        "map" | "struct" => "对象",
        "sequence" | "tuple" => "数组",
        _ if k.contains("boolean") => "布尔值（true 或 false）",
        _ if k.contains("integer") => "整数",
        _ if k.contains("number") || k.contains("float") => "数字",
        _ if k.contains("sequence") || k.contains("array") || k.contains("tuple") => "数组",
        _ if k.contains("map") || k.contains("struct") => "对象",
        _ if k.contains("variant") || k.contains("enum") => "允许的取值之一",
        _ => "其他类型",
    }
}

/// Where a syntax error sits, in Chinese: the position helps find a stray comma.
fn syntax_detail(error: &serde_json::Error) -> String {
    match error.classify() {
        Category::Eof => format!(
            "JSON 不完整：在第 {} 行第 {} 列提前结束",
            error.line(),
            error.column()
        ),
        Category::Io => "请求体未能读取".to_owned(),
        _ if error.to_string().starts_with("trailing characters") => format!(
            "JSON 之后还有多余内容（第 {} 行第 {} 列）",
            error.line(),
            error.column()
        ),
        _ => format!(
            "JSON 语法错误（第 {} 行第 {} 列）",
            error.line(),
            error.column()
        ),
    }
}

/// serde_json appends " at line 1 column 42": noise for a client that sent one object.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Query parameters whose errors name the parameter (400 `invalid_query`).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequest for ApiQuery<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(req.query_string()));
        std::future::ready(
            serde_path_to_error::deserialize(de)
                .map(ApiQuery)
                .map_err(|error| {
                    let field = data_error(&error.path().to_string(), &error.inner().to_string());
                    ApiError::BadRequest {
                        code: ErrorCode::InvalidQuery,
                        detail: format!("{}：{}", field.field, field.detail),
                        field: Some(field.field),
                    }
                }),
        )
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Member {
        name: String,
        sex: crate::domain::Sex,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Survey {
        members: Vec<Member>,
    }

    fn field_of(body: &str) -> (String, String) {
        match parse_json::<Survey>(body.as_bytes()) {
            Err(ApiError::Validation(errors)) => {
                (errors[0].field.clone(), errors[0].rule.as_str().to_owned())
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn names_the_path_and_rule() {
        assert_eq!(
            field_of(r#"{"members":[{"name":"a","sex":"male"},{"name":"b","sex":"x"}]}"#),
            ("members[1].sex".into(), "unknown_value".into())
        );
        assert_eq!(
            field_of(r#"{"members":[{"sex":"male"}]}"#),
            ("members[0].name".into(), "required".into())
        );
        assert_eq!(
            field_of(r#"{"members":3}"#),
            ("members".into(), "invalid_type".into())
        );
        assert_eq!(field_of(r#"{}"#), ("members".into(), "required".into()));
    }

    #[test]
    fn syntax_errors_are_malformed_json() {
        for body in [r#"{"members": ["#, "not json", r#"{"members":[]} trailing"#] {
            assert!(matches!(
                parse_json::<Survey>(body.as_bytes()),
                Err(ApiError::BadRequest {
                    code: ErrorCode::MalformedJson,
                    ..
                })
            ));
        }
    }
}
