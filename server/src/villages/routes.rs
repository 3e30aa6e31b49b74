use std::collections::HashMap;

use actix_web::{get, web};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Caller, ScopeLevel};
use crate::db::schema::{divisions, villages};
use crate::db::DbConnection;
use crate::domain::{DivisionCode, DivisionLevel, GeofenceKind, PositionSource};
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::ApiQuery;
use crate::state::AppState;

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

#[derive(Debug, Serialize, ToSchema)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

/// An administrative village (行政村) with its position and geofence, in WGS-84.
#[derive(Debug, Serialize, ToSchema)]
pub struct Village {
    pub code: DivisionCode,
    #[schema(example = "平安村委会")]
    pub name: String,
    pub township_code: DivisionCode,
    pub township_name: String,
    pub county_code: DivisionCode,
    pub county_name: String,
    /// The village's reference position.
    pub centroid: LatLon,
    /// How the position was obtained; `township_seat` and `county_area` are estimates.
    pub position_source: PositionSource,
    pub geofence_kind: GeofenceKind,
    /// Radius of a circular geofence, in metres.
    pub geofence_radius_m: Option<f64>,
    /// The geofence as a GeoJSON Polygon or MultiPolygon geometry (`[lon, lat]` pairs);
    /// a circle is drawn with 48 vertices. Omitted with `geofence=false`.
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geofence: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VillageList {
    pub count: usize,
    pub villages: Vec<Village>,
}

#[derive(Queryable)]
struct VillageRecord {
    code: String,
    name: String,
    township_code: String,
    county_code: String,
    lat: f64,
    lon: f64,
    position_source: String,
    geofence_kind: String,
    geofence_radius_m: Option<f64>,
    geofence: String,
}

type VillageColumns = (
    villages::code,
    villages::name,
    villages::township_code,
    villages::county_code,
    villages::lat,
    villages::lon,
    villages::position_source,
    villages::geofence_kind,
    villages::geofence_radius_m,
    villages::geofence,
);

const COLUMNS: VillageColumns = (
    villages::code,
    villages::name,
    villages::township_code,
    villages::county_code,
    villages::lat,
    villages::lon,
    villages::position_source,
    villages::geofence_kind,
    villages::geofence_radius_m,
    villages::geofence,
);

fn corrupt(what: &str, value: &str) -> ApiError {
    ApiError::internal(anyhow::anyhow!("stored {what} `{value}` is invalid"))
}

fn to_village(
    r: VillageRecord,
    names: &HashMap<String, String>,
    with_geofence: bool,
) -> ApiResult<Village> {
    let code = |c: &str| DivisionCode::parse(c).map_err(|_| corrupt("division code", c));
    let geofence = if with_geofence {
        Some(serde_json::from_str(&r.geofence).map_err(|_| corrupt("geofence of", &r.code))?)
    } else {
        None
    };
    Ok(Village {
        township_name: names.get(&r.township_code).cloned().unwrap_or_default(),
        county_name: names.get(&r.county_code).cloned().unwrap_or_default(),
        code: code(&r.code)?,
        township_code: code(&r.township_code)?,
        county_code: code(&r.county_code)?,
        name: r.name,
        centroid: LatLon {
            lat: r.lat,
            lon: r.lon,
        },
        position_source: PositionSource::parse(&r.position_source)
            .ok_or_else(|| corrupt("position source", &r.position_source))?,
        geofence_kind: GeofenceKind::parse(&r.geofence_kind)
            .ok_or_else(|| corrupt("geofence kind", &r.geofence_kind))?,
        geofence_radius_m: r.geofence_radius_m,
        geofence,
    })
}

fn division_names(conn: &mut DbConnection) -> QueryResult<HashMap<String, String>> {
    Ok(divisions::table
        .select((divisions::code, divisions::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect())
}

fn query_code(name: &str, value: &str, level: DivisionLevel) -> ApiResult<DivisionCode> {
    DivisionCode::parse_level(value, level).map_err(|e| ApiError::BadRequest {
        code: crate::error::ErrorCode::InvalidQuery,
        detail: format!("{name}：{e}"),
        field: Some(name.to_owned()),
    })
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
    caller: Caller,
    query: ApiQuery<VillageQuery>,
) -> ApiResult<web::Json<VillageList>> {
    villages_list(state, caller, query).await.map(web::Json)
}

/// [`list_villages`] as a function, for the console.
pub async fn villages_list(
    state: web::Data<AppState>,
    caller: Caller,
    query: ApiQuery<VillageQuery>,
) -> ApiResult<VillageList> {
    let query = query.0;
    let county = query
        .county
        .as_deref()
        .map(|c| query_code("county", c, DivisionLevel::County))
        .transpose()?;
    let township = query
        .township
        .as_deref()
        .map(|t| query_code("township", t, DivisionLevel::Township))
        .transpose()?;
    for area in county
        .iter()
        .chain(township.as_ref().map(DivisionCode::county).iter())
    {
        caller.require_county(area)?;
    }
    let with_geofence = query.geofence.unwrap_or(true);
    let list = state
        .db
        .run(move |conn| {
            let mut select = villages::table
                .select(COLUMNS)
                .order(villages::code)
                .into_boxed();
            if let Some(county) = &county {
                select = select.filter(villages::county_code.eq(county.as_str().to_owned()));
            }
            if let Some(township) = &township {
                select = select.filter(villages::township_code.eq(township.as_str().to_owned()));
            }
            match caller.scope_level() {
                ScopeLevel::City => {}
                ScopeLevel::County => {
                    let own = caller
                        .county_code
                        .as_ref()
                        .map(|c| c.as_str().to_owned())
                        .unwrap_or_default();
                    select = select.filter(villages::county_code.eq(own));
                }
                ScopeLevel::Villages => {
                    let own: Vec<String> = caller
                        .village_codes
                        .iter()
                        .map(|c| c.as_str().to_owned())
                        .collect();
                    select = select.filter(villages::code.eq_any(own));
                }
            }
            let records: Vec<VillageRecord> = select.load(conn)?;
            let names = division_names(conn)?;
            records
                .into_iter()
                .map(|r| to_village(r, &names, with_geofence))
                .collect::<ApiResult<Vec<_>>>()
        })
        .await?;
    Ok(VillageList {
        count: list.len(),
        villages: list,
    })
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
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<web::Json<Village>> {
    village_by_code(state, caller, path).await.map(web::Json)
}

/// [`get_village`] as a function, for the console.
pub async fn village_by_code(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<Village> {
    let code =
        DivisionCode::parse_level(&path.into_inner(), DivisionLevel::Village).map_err(|e| {
            ApiError::BadRequest {
                code: crate::error::ErrorCode::InvalidPath,
                detail: format!("code：{e}"),
                field: Some("code".into()),
            }
        })?;
    caller.require_village(&code)?;
    let village = state
        .db
        .run(move |conn| {
            let record: VillageRecord = villages::table
                .find(code.as_str())
                .select(COLUMNS)
                .first(conn)
                .optional()?
                .ok_or_else(|| ApiError::NotFound(format!("村 {code} 不存在")))?;
            to_village(record, &division_names(conn)?, true)
        })
        .await?;
    Ok(village)
}
