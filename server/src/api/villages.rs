//! `/villages` and `/villages/{code}`: the wire shapes of the villages service.

use actix_web::{get, web};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{area, Area};
use crate::domain::DivisionLevel;
use crate::error::{ApiResult, Problem};
use crate::http::ApiQuery;
use crate::http::Auth;
use crate::state::AppState;
use crate::villages::service::{self, Village, VillageFilter, VillageList};

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_villages).service(get_village);
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VillageQuery {
    /// 12-digit county code, e.g. `220802000000`.
    pub county: Option<String>,
    /// 12-digit township code, e.g. `220802100000`.
    pub township: Option<String>,
    /// Include each geofence as GeoJSON (default true).
    pub geofence: Option<bool>,
}

/// Lists the villages in the caller's scope, optionally within one county or township.
///
/// Field users see their assigned villages, a county reviewer the county's villages, the city
/// administrator all 919. Asking for a county or township outside one's scope is refused.
#[utoipa::path(
    tag = "villages",
    security(("bearer" = [])),
    params(VillageQuery),
    responses(
        (status = 200, description = "The villages, ordered by code", body = VillageList),
        (status = 400, description = "`invalid_query`: a code is malformed or of the wrong level", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`out_of_scope`: the county or township is outside the caller's scope", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/villages")]
pub async fn list_villages(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    query: ApiQuery<VillageQuery>,
) -> ApiResult<web::Json<VillageList>> {
    let query = query.0;
    let filter = VillageFilter {
        area: Area {
            village: None,
            county: area::code("county", query.county.as_deref(), DivisionLevel::County)?,
            township: area::code(
                "township",
                query.township.as_deref(),
                DivisionLevel::Township,
            )?,
        },
        geofence: query.geofence.unwrap_or(true),
    };
    Ok(web::Json(service::list(&state.db, &caller, filter).await?))
}

/// One village, with its geofence.
#[utoipa::path(
    tag = "villages",
    security(("bearer" = [])),
    params(("code" = String, Path, description = "12-digit village code", example = "220802100201")),
    responses(
        (status = 200, description = "The village", body = Village),
        (status = 400, description = "`invalid_path`: not a village code", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`out_of_scope`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such village", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/villages/{code}")]
pub async fn get_village(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
) -> ApiResult<web::Json<Village>> {
    let code = service::village_code(&path.into_inner())?;
    Ok(web::Json(service::get(&state.db, &caller, code).await?))
}
