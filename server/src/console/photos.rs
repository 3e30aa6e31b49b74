//! Photos for console pages, with the console session and the API's visibility rule.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::error::ConsoleResult;
use super::{pairs, parse_pairs, Session};
use crate::http::image_response;
use crate::photos::service::{self, Photos, Sha256};
use crate::photos::store::Variant;
use crate::state::AppState;

/// The page's `size`: `thumb` or `full` (default), as in the API.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Size {
    Thumb,
    #[default]
    Full,
}

#[derive(Debug, Deserialize)]
struct PhotoQuery {
    size: Option<Size>,
}

pub async fn serve(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    req: HttpRequest,
) -> ConsoleResult<HttpResponse> {
    let q: PhotoQuery = parse_pairs(&pairs(req.query_string()))?;
    let sha = Sha256::parse(&path.into_inner())?;
    let variant = match q.size.unwrap_or_default() {
        Size::Thumb => Variant::Thumbnail,
        Size::Full => Variant::Original,
    };
    let photos = Photos {
        db: &state.db,
        objects: &state.photos,
        budget: &state.decode_budget,
        settings: &state.settings.photos,
    };
    let image = service::get(photos, &session.caller, &sha, variant).await?;
    Ok(image_response(image.bytes, image.etag)?)
}
