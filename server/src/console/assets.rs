//! The console's stylesheet and script, compiled into the binary.

use actix_web::http::header::{CacheControl, CacheDirective, ContentType};
use actix_web::{web, HttpResponse};

use super::error::ConsoleError;
use crate::error::ApiError;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

pub async fn serve(path: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let (body, mime) = match path.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        other => {
            return Err(ApiError::NotFound(format!("静态文件 {other} 不存在")).into());
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header(ContentType(mime.parse().map_err(ApiError::internal)?))
        // Short: a new release's assets should reach browsers the same day.
        .insert_header(CacheControl(vec![CacheDirective::MaxAge(3600)]))
        .body(body))
}
