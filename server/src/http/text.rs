//! One rule for the text of every request: no control characters.
//!
//! PostgreSQL refuses NUL in text (that was a 500, some of them before login) while SQLite stores
//! it, and the other control characters (BEL, ESC, DEL, the C1 codes) end up in names, exports,
//! logs and terminals. So every string a request carries — JSON strings and object keys, console
//! form fields, query parameters and path segments, each after decoding — is checked before
//! anything else reads it, and refused with 422 `validation_failed`, rule [`RULE`], naming the
//! field. Tab, line feed and carriage return are allowed only in the body fields written in a
//! text area ([`MULTILINE_FIELDS`]). A control character written raw inside a JSON string is
//! not JSON at all: that stays 400 `malformed_json`.
//!
//! One place per channel: [`check_json`] in the JSON extractors, [`check_form`] where the
//! console reads a form, and the [`refuse_control_characters`] middleware for the path and the
//! query of every route, the console's (answered by its [`PageRefusals`]) and unknown ones
//! included.

use std::borrow::Cow;
use std::fmt::Write;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::ResponseError;
use serde_json::Value;

use crate::domain::Rule;
use crate::error::{ApiError, FieldError};

/// The rule name of a refused control character.
pub const RULE: Rule = Rule::ControlCharacter;

/// Body fields (JSON paths, console form fields) for free text over several lines, where tab,
/// line feed and carriage return are allowed: the reason of a review or duplicate decision,
/// which the console takes from a text area. Query parameters never allow them.
pub const MULTILINE_FIELDS: &[&str] = &["reason"];

/// At most this many fields are named in one answer: enough to fix a request, bounded in size.
const MAX_REPORTED: usize = 20;

/// The first character of `text` the rule refuses.
fn offending(text: &str, multiline: bool) -> Option<char> {
    text.chars()
        .find(|&c| c.is_control() && !(multiline && matches!(c, '\t' | '\n' | '\r')))
}

fn refused(field: String, c: char, multiline: bool) -> FieldError {
    let detail = if multiline {
        format!(
            "除制表符和换行外不能含控制字符（含 U+{:04X}）",
            u32::from(c)
        )
    } else {
        format!("不能含控制字符（含 U+{:04X}）", u32::from(c))
    };
    FieldError::new(field, RULE, detail)
}

/// A name that itself holds control characters, shown with them escaped (`a\u{0}b`).
fn printable(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn into_result(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Checks every string and object key of a JSON body; the fields are named by their path in
/// the notation of the other validation errors (`members[2].name`, `household.head_name`).
pub fn check_json(value: &Value) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    walk(value, &mut String::new(), &mut errors);
    into_result(errors)
}

// Recursion is bounded: serde_json refuses documents nested deeper than 128.
fn walk(value: &Value, path: &mut String, errors: &mut Vec<FieldError>) {
    if errors.len() >= MAX_REPORTED {
        return;
    }
    match value {
        Value::String(text) => {
            let multiline = MULTILINE_FIELDS.contains(&path.as_str());
            if let Some(c) = offending(text, multiline) {
                let field = if path.is_empty() { "body" } else { path };
                errors.push(refused(field.to_owned(), c, multiline));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                walk(item, path, errors);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                match offending(key, false) {
                    Some(c) => {
                        path.push_str(&printable(key));
                        if errors.len() < MAX_REPORTED {
                            errors.push(refused(path.clone(), c, false));
                        }
                    }
                    None => {
                        path.push_str(key);
                        walk(item, path, errors);
                    }
                }
                path.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Checks decoded name–value pairs; a name that is itself refused is reported as `unnamed`.
fn check_pairs<'a>(
    pairs: impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)>,
    unnamed: &str,
    allow_multiline: bool,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (name, value) in pairs {
        if errors.len() >= MAX_REPORTED {
            break;
        }
        if let Some(c) = offending(&name, false) {
            errors.push(refused(unnamed.to_owned(), c, false));
            continue;
        }
        let multiline = allow_multiline && MULTILINE_FIELDS.contains(&name.as_ref());
        if let Some(c) = offending(&value, multiline) {
            errors.push(refused(name.into_owned(), c, multiline));
        }
    }
    errors
}

/// Checks a console form body (`application/x-www-form-urlencoded`), naming the form field.
pub fn check_form(body: &[u8]) -> Result<(), ApiError> {
    into_result(check_pairs(form_urlencoded::parse(body), "form", true))
}

/// The query parameters, decoded, naming the parameter.
fn check_query(query: &str) -> Vec<FieldError> {
    check_pairs(form_urlencoded::parse(query.as_bytes()), "query", false)
}

/// The path segments, decoded, named by the route's parameter where the route pattern says
/// which one the segment is (`/surveys/{id}` → `id`), else `path`. The pattern is looked up
/// only for a path that is refused.
fn check_path(path: &str, pattern: impl FnOnce() -> Option<String>) -> Vec<FieldError> {
    let refused_segments: Vec<(usize, char)> = path
        .split('/')
        .enumerate()
        .filter_map(|(i, segment)| offending(&percent_decode(segment), false).map(|c| (i, c)))
        .take(MAX_REPORTED)
        .collect();
    if refused_segments.is_empty() {
        return Vec::new();
    }
    let pattern = pattern().unwrap_or_default();
    let names: Vec<&str> = pattern.split('/').collect();
    let aligned = names.len() == path.split('/').count();
    refused_segments
        .into_iter()
        .map(|(i, c)| {
            let name = names
                .get(i)
                .filter(|_| aligned)
                .and_then(|n| n.strip_prefix('{'))
                .and_then(|n| n.strip_suffix('}'))
                .map(|n| n.split(':').next().unwrap_or(n))
                .filter(|n| !n.is_empty())
                .unwrap_or("path");
            refused(name.to_owned(), c, false)
        })
        .collect()
}

/// Percent-decodes a path segment (`+` stays itself, unlike in a query); a `%` not followed by
/// two hex digits is kept as it is, and invalid UTF-8 becomes U+FFFD, which is not a control.
fn percent_decode(segment: &str) -> Cow<'_, str> {
    if !segment.contains('%') {
        return Cow::Borrowed(segment);
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(high), Some(low)) => {
                // Two hex digits make at most 0xFF.
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Refuses a request whose path or query holds a control character, before routing: 422
/// problem+json naming the parameter, or the console's error page under `/console`.
pub async fn refuse_control_characters<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let mut errors = check_path(req.path(), || req.match_pattern());
    errors.extend(check_query(req.query_string()));
    if errors.is_empty() {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    errors.truncate(MAX_REPORTED);
    let error = ApiError::Validation(errors);
    let response = match req.app_data::<PageRefusals>() {
        Some(pages) if pages.covers(req.path()) => (pages.render)(error),
        _ => error.error_response(),
    };
    Ok(req.into_response(response).map_into_right_body())
}

/// How refusals are answered under a path prefix of pages (the console's error page) rather
/// than as problem+json. The pages register it as app data, so this layer names none of them.
#[derive(Clone, Copy)]
pub struct PageRefusals {
    /// `/console`: the prefix itself and every path below it.
    pub prefix: &'static str,
    pub render: fn(ApiError) -> actix_web::HttpResponse,
}

impl PageRefusals {
    fn covers(&self, path: &str) -> bool {
        path.strip_prefix(self.prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(result: Result<(), ApiError>) -> Vec<(String, Rule)> {
        match result {
            Ok(()) => Vec::new(),
            Err(ApiError::Validation(errors)) => {
                errors.into_iter().map(|e| (e.field, e.rule)).collect()
            }
            Err(other) => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn json_fields(body: &str) -> Vec<String> {
        let value: Value = serde_json::from_str(body).expect("json");
        fields(check_json(&value))
            .into_iter()
            .map(|(field, rule)| {
                assert_eq!(rule, RULE);
                field
            })
            .collect()
    }

    #[test]
    fn json_fields_are_named_by_their_path() {
        assert!(json_fields(r#"{"members":[{"name":"张三"}],"n":1,"b":null}"#).is_empty());
        assert_eq!(
            json_fields(r#"{"members":[{"name":"a"},{"name":"b\u0007"}]}"#),
            ["members[1].name"]
        );
        assert_eq!(
            json_fields(r#"{"household":{"head_name":"\u0000"}}"#),
            ["household.head_name"]
        );
        assert_eq!(json_fields(r#"["ok", "\u001b"]"#), ["[1]"]);
        assert_eq!(json_fields(r#""\u007f""#), ["body"]);
        assert_eq!(json_fields(r#"{"a\u0000b":1}"#), ["a\\u{0}b"]);
        // Every offending field at once, in a bounded list.
        assert_eq!(
            json_fields(r#"{"a":"\u0000","b":{"c":"\u0085"}}"#),
            ["a", "b.c"]
        );
        let many = format!("[{}]", vec![r#""\u0000""#; 100].join(","));
        assert_eq!(json_fields(&many).len(), MAX_REPORTED);
    }

    #[test]
    fn only_free_text_fields_take_tabs_and_line_breaks() {
        assert!(json_fields(r#"{"reason":"第一行\r\n\t第二行"}"#).is_empty());
        assert_eq!(json_fields(r#"{"reason":"a\u0000"}"#), ["reason"]);
        assert_eq!(json_fields(r#"{"reason":"a\u001b"}"#), ["reason"]);
        assert_eq!(json_fields(r#"{"name":"a\nb"}"#), ["name"]);
        assert_eq!(json_fields(r#"{"x":{"reason":"a\tb"}}"#), ["x.reason"]);
        assert!(fields(check_form(b"reason=a%0D%0Ab&csrf=x")).is_empty());
        assert_eq!(
            fields(check_form(b"phone=%00&next=%2Fconsole%0A"))
                .into_iter()
                .map(|(f, _)| f)
                .collect::<Vec<_>>(),
            ["phone", "next"]
        );
        assert_eq!(check_query("reason=a%0Ab")[0].field, "reason");
    }

    #[test]
    fn queries_and_paths_are_checked_decoded() {
        assert!(check_query("enumerator=a+b&village=%E5%B9%B3").is_empty());
        let names = |errors: Vec<FieldError>| -> Vec<String> {
            errors.into_iter().map(|e| e.field).collect()
        };
        assert_eq!(
            names(check_query("enumerator=a%00b&action=%1B&ok=1")),
            ["enumerator", "action"]
        );
        assert_eq!(names(check_query("a%00=1")), ["query"]);
        assert!(check_path("/api/v1/surveys/a+b%20c%zz%", || Some(
            "/api/v1/surveys/{id}".into()
        ))
        .is_empty());
        assert_eq!(
            names(check_path("/api/v1/duplicates/x/a%00", || Some(
                "/api/v1/duplicates/{a}/{b}".into()
            ))),
            ["b"]
        );
        assert_eq!(
            names(check_path("/api/v1/nothing%7F/here", || None)),
            ["path"]
        );
        assert_eq!(
            names(check_path("/api/v1/x%C2%85", || Some("/api/v1/x".into()))),
            ["path"]
        );
        // Invalid UTF-8 decodes to U+FFFD, which is not a control character.
        assert!(check_path("/api/v1/%FF", || None).is_empty());
    }
}
