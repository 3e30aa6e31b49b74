//! `/villages` and `/villages/{code}`, the city's geofence imports and the field calibration:
//! the wire shapes of `villages::service`, `villages::edit`, `villages::import` and
//! `villages::calibration`.

use actix_web::http::header;
use actix_web::{get, post, put, web, HttpRequest};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{area, Area};
use crate::domain::DivisionLevel;
use crate::error::{ApiError, ApiResult, Problem};
use crate::geography::Crs;
use crate::http::Auth;
use crate::http::{declared_length, read_limited, ApiJson, ApiQuery};
use crate::state::AppState;
use crate::villages::calibration::{self, AcceptCalibration, CalibrationProposal};
use crate::villages::edit::{self, GeofenceInput};
use crate::villages::import::{self, GeofenceImportReport, ImportFormat};
use crate::villages::service::{self, Village, VillageFilter, VillageList};

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_villages)
        .service(import_geofences)
        .service(get_village)
        .service(put_geofence)
        .service(get_calibration)
        .service(accept_calibration);
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

/// Sets a village's geofence from the city's own data (city administrators; audited with the
/// fence before and after): a GeoJSON `Point` with `radius_m` (200–20000 m) or a `Polygon` /
/// `MultiPolygon` (closed rings, not self-intersecting, at most 5,000 vertices, at most
/// 1,000 km²), in WGS-84, GCJ-02 or BD-09, lying inside the village's county (within 1 km of
/// the simplified boundary). The fence's provenance becomes `imported`, and the village's
/// position its centre; fixture reloads leave it alone.
#[utoipa::path(
    tag = "villages",
    security(("bearer" = [])),
    params(("code" = String, Path, description = "12-digit village code", example = "220802100201")),
    request_body = GeofenceInput,
    responses(
        (status = 200, description = "The village with its new geofence", body = Village),
        (status = 400, description = "`invalid_path`: not a village code; `malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: city administrators only", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such village", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `geometry.type` (`unknown_value`), `geometry.coordinates` (`invalid_value`, `invalid_geometry`, `too_many`, `range` for the area, `outside_county`), `radius_m` (`required`, `range`, `not_allowed` with a polygon), `reason` (`length`, `control_character`), or an unknown field", body = Problem, content_type = "application/problem+json"),
    )
)]
#[put("/villages/{code}/geofence")]
pub async fn put_geofence(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    body: ApiJson<GeofenceInput>,
) -> ApiResult<web::Json<Village>> {
    let code = service::village_code(&path.into_inner())?;
    Ok(web::Json(
        edit::put(&state.db, &caller, code, body.0).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GeofenceImportQuery {
    /// Check and report without storing anything (default false).
    pub dry_run: Option<bool>,
    /// The coordinate system of every position in the body (default `wgs84`).
    pub crs: Option<Crs>,
}

fn import_format(req: &HttpRequest) -> ApiResult<ImportFormat> {
    let value = req
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
    match value.as_deref() {
        Some("application/geo+json" | "application/json") => Ok(ImportFormat::GeoJson),
        Some("text/csv") => Ok(ImportFormat::Csv),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "只接受 GeoJSON（application/geo+json）或 CSV（text/csv），收到的是 {}",
            other.unwrap_or("没有 Content-Type 的请求")
        ))),
    }
}

/// Imports many villages' geofences (city administrators; each change audited): a GeoJSON
/// FeatureCollection whose features carry the 12-digit village code in the `code` property
/// (Point features also `radius_m`), or a CSV with the columns `code,lon,lat,radius_m`
/// (header row first, UTF-8). `crs` says the coordinate system of every position. Every row
/// is checked first: any broken rule answers 422 listing each by `features[i].…` (0-based
/// feature index) or `rows[n].…` (the CSV line, header = 1), and nothing is stored. A village
/// that already has exactly the imported fence is left unchanged. At most 2,000 rows, 8 MiB.
#[utoipa::path(
    tag = "villages",
    security(("bearer" = [])),
    params(GeofenceImportQuery),
    request_body(description = "The fences", content(
        (inline(Object) = "application/geo+json"),
        (inline(String) = "text/csv"),
    )),
    responses(
        (status = 200, description = "What was (or, on a dry run, would be) changed", body = GeofenceImportReport),
        (status = 400, description = "`invalid_query`: `dry_run` or `crs` unreadable", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: city administrators only", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: neither GeoJSON nor CSV", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: every bad row by `features[i].properties.code` / `rows[n].code` (`required`, `division_code_format`, `unknown_village`, `duplicate`), `features[i].geometry.type` (`unknown_value`), `features[i].geometry.coordinates` / `rows[n].lon` (`invalid_value`, `invalid_geometry`, `too_many`, `range`, `outside_county`), `features[i].properties.radius_m` / `rows[n].radius_m` (`required`, `range`, `not_allowed`); a missing CSV column (`columns.<name>`), not a FeatureCollection (`type`), no `features`, too many rows or an unreadable body (`body`)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/villages/geofences/import")]
pub async fn import_geofences(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
    query: ApiQuery<GeofenceImportQuery>,
    payload: web::Payload,
) -> ApiResult<web::Json<GeofenceImportReport>> {
    edit::require_importer(&caller)?;
    let format = import_format(&req)?;
    let mut payload = payload;
    let body = read_limited(&mut payload, import::MAX_BYTES, declared_length(&req)).await?;
    let query = query.0;
    import::import(
        &state.db,
        &caller,
        body.to_vec(),
        format,
        query.crs.unwrap_or_default(),
        query.dry_run.unwrap_or(false),
    )
    .await
    .map(web::Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CalibrationQuery {
    /// `YYYY-MM` (default: the current month).
    pub month: Option<String>,
}

/// What a month of the first secretary's check-ins proposes for the village's position
/// (county reviewers of its county and city administrators): each day's first accepted (or
/// reviewer-confirmed) resident-duty check-in, their geometric median and its spread (median
/// distance). `acceptable` says whether a county reviewer may accept it: at least 5 days and a
/// spread of at most 1,000 m, and a fence the city did not import.
#[utoipa::path(
    tag = "villages",
    security(("bearer" = [])),
    params(("code" = String, Path, description = "12-digit village code", example = "220802100201"), CalibrationQuery),
    responses(
        (status = 200, description = "The proposal", body = CalibrationProposal),
        (status = 400, description = "`invalid_path`: not a village code; `invalid_query`: `month`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: field users; `out_of_scope`: another county's village", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such village", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/villages/{code}/calibration")]
pub async fn get_calibration(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    query: ApiQuery<CalibrationQuery>,
) -> ApiResult<web::Json<CalibrationProposal>> {
    let code = service::village_code(&path.into_inner())?;
    let month = area::month("month", query.0.month.as_deref())?;
    Ok(web::Json(
        calibration::proposal(&state.db, &caller, code, month).await?,
    ))
}

/// Accepts a month's proposal (county reviewers, for their county's villages; audited): the
/// geofence becomes a circle of `radius_m` (500–5000 m, default 2000) at the proposed centre,
/// provenance `field_calibrated`, and the village's position that centre.
#[utoipa::path(
    tag = "villages",
    security(("bearer" = [])),
    params(("code" = String, Path, description = "12-digit village code", example = "220802100201")),
    request_body = AcceptCalibration,
    responses(
        (status = 200, description = "The village with its calibrated geofence", body = Village),
        (status = 400, description = "`invalid_path`: not a village code; `malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: county reviewers only; `out_of_scope`: another county's village", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such village", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the city imported this village's fence", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `month` (`too_few_days`, `spread_too_large`, `outside_county`, `month_format`), `radius_m` (`range`), or an unknown field", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/villages/{code}/calibration/accept")]
pub async fn accept_calibration(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    path: web::Path<String>,
    body: ApiJson<AcceptCalibration>,
) -> ApiResult<web::Json<Village>> {
    let code = service::village_code(&path.into_inner())?;
    Ok(web::Json(
        calibration::accept(&state.db, &caller, code, body.0).await?,
    ))
}
