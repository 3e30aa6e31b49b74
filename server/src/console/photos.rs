//! Photos for console pages, with the console session and the API's visibility rule.

use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ConsoleResult;
use super::{pairs, parse_pairs, Session};
use crate::http::ApiQuery;
use crate::photos::routes::{photo_response, PhotoQuery};
use crate::state::AppState;

pub async fn serve(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    req: HttpRequest,
) -> ConsoleResult<HttpResponse> {
    let q: PhotoQuery = parse_pairs(&pairs(req.query_string()))?;
    Ok(photo_response(state, session.caller, path, ApiQuery(q)).await?)
}
