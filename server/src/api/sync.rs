//! `GET /sync`: the phone's download of its villages' households, its own review states and
//! the employer registry (see `sync::service`).

use actix_web::{get, web};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::area;
use crate::error::{ApiResult, Problem};
use crate::http::{ApiQuery, Auth};
use crate::state::AppState;
use crate::sync::feed::SyncPage;
use crate::sync::service::{self, SyncRequest, DEFAULT_LIMIT, MAX_LIMIT};

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(get_sync);
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SyncQuery {
    /// The `cursor` of the last page received; omit it for a first sync (everything).
    pub cursor: Option<String>,
    /// Items a page holds (households, tombstones, villages, village surveys, employers):
    /// 1 to 2000, default 500.
    pub limit: Option<i64>,
}

/// The incremental download for the caller's villages.
///
/// For enumerators and first secretaries. Without a cursor: every household of the caller's
/// villages (each as its effective version, with its members and their last answers), the
/// villages' records, the caller's own submissions and their review states, and the employer
/// registry. With the cursor of the last page: only what changed since, households merged or
/// moved away as `tombstones`, villages no longer assigned in `villages_removed`. While
/// `has_more` is true, ask again at once with the new cursor; keep the last cursor for the
/// next sync. ID numbers come masked, each member with a `person_ref` that a revisit sends
/// instead. Compressed when the request accepts gzip.
#[utoipa::path(
    tag = "sync",
    security(("bearer" = [])),
    params(SyncQuery),
    responses(
        (status = 200, description = "One page of the download", body = SyncPage),
        (status = 400, description = "`invalid_query`: `cursor` is not one this server gave the caller, or `limit` is out of range", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: only enumerators and first secretaries sync", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/sync")]
pub async fn get_sync(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    query: ApiQuery<SyncQuery>,
) -> ApiResult<web::Json<SyncPage>> {
    let query = query.0;
    let request = SyncRequest {
        cursor: query.cursor.filter(|c| !c.is_empty()),
        limit: area::limit(query.limit, DEFAULT_LIMIT, MAX_LIMIT)?,
    };
    Ok(web::Json(
        service::sync(
            &state.db,
            &state.vault,
            &state.keys.sync_cursor,
            &caller,
            request,
        )
        .await?,
    ))
}
