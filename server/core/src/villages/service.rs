//! Reading the division tree's villages for the API and the console: the villages in the
//! caller's scope, narrowed to an area, and one village, with positions and geofences.

use std::collections::HashMap;

use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Area, Caller, ScopeLevel};
use crate::db::schema::{divisions, villages};
use crate::db::{Db, DbConnection};
use crate::domain::{
    DivisionCode, DivisionLevel, GeofenceKind, GeofenceProvenance, PositionSource,
};
use crate::error::{ApiError, ApiResult, ErrorCode};

#[derive(Debug, Clone, Serialize, ToSchema)]
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
    /// How the position was obtained; `township_seat` and `county_area` are estimates. A fence
    /// set by import or calibration moves the position to its centre (`imported`,
    /// `field_calibrated`).
    pub position_source: PositionSource,
    /// Where the geofence came from: the fixtures' estimates (`surveyed_point`,
    /// `township_seat`, `county_boundary`), the city's data (`imported`) or the field
    /// (`field_calibrated`).
    pub geofence_provenance: GeofenceProvenance,
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

/// Which villages a list shows: those of the caller's scope inside `area` (its village is not
/// used), with or without their geofences.
#[derive(Debug, Clone)]
pub struct VillageFilter {
    pub area: Area,
    pub geofence: bool,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = villages, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
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
    geofence_provenance: String,
}

fn corrupt(what: &str, value: &str) -> ApiError {
    ApiError::internal(anyhow::anyhow!("stored {what} `{value}` is invalid"))
}

fn to_village(
    r: VillageRecord,
    names: &HashMap<String, String>,
    with_geofence: bool,
) -> ApiResult<Village> {
    let code = |c: &str| DivisionCode::parse(c).map_err(|_| corrupt("division code", c));
    let provenance = GeofenceProvenance::parse(&r.geofence_provenance)
        .ok_or_else(|| corrupt("geofence provenance", &r.geofence_provenance))?;
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
        position_source: match provenance {
            GeofenceProvenance::Imported => PositionSource::Imported,
            GeofenceProvenance::FieldCalibrated => PositionSource::FieldCalibrated,
            _ => PositionSource::parse(&r.position_source)
                .ok_or_else(|| corrupt("position source", &r.position_source))?,
        },
        geofence_provenance: provenance,
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

/// The villages in the caller's scope inside the filter's area, ordered by code. An area
/// outside the scope is refused (403).
pub async fn list(db: &Db, caller: &Caller, filter: VillageFilter) -> ApiResult<VillageList> {
    filter.area.require(caller)?;
    let caller = caller.clone();
    let list = db
        .run(move |conn| {
            let records = load_scoped(conn, &caller, &filter.area)?;
            let names = division_names(conn)?;
            records
                .into_iter()
                .map(|r| to_village(r, &names, filter.geofence))
                .collect::<ApiResult<Vec<_>>>()
        })
        .await?;
    Ok(VillageList {
        count: list.len(),
        villages: list,
    })
}

/// The villages of the caller's scope inside the area.
fn load_scoped(
    conn: &mut DbConnection,
    caller: &Caller,
    area: &Area,
) -> QueryResult<Vec<VillageRecord>> {
    let mut select = villages::table
        .select(VillageRecord::as_select())
        .order(villages::code)
        .into_boxed();
    if let Some(county) = &area.county {
        select = select.filter(villages::county_code.eq(county.as_str().to_owned()));
    }
    if let Some(township) = &area.township {
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
    select.load(conn)
}

/// A village code named in a path (`/villages/{code}`, a console page): 400 `invalid_path`.
pub fn village_code(raw: &str) -> ApiResult<DivisionCode> {
    DivisionCode::parse_level(raw, DivisionLevel::Village).map_err(|e| ApiError::BadRequest {
        code: ErrorCode::InvalidPath,
        detail: format!("code：{e}"),
        field: Some("code".into()),
    })
}

/// One village with its geofence: 403 outside the caller's scope, 404 when there is none.
pub async fn get(db: &Db, caller: &Caller, code: DivisionCode) -> ApiResult<Village> {
    caller.require_village(&code)?;
    db.run(move |conn| {
        let record: VillageRecord = villages::table
            .find(code.as_str())
            .select(VillageRecord::as_select())
            .first(conn)
            .optional()?
            .ok_or_else(|| ApiError::NotFound(format!("村 {code} 不存在")))?;
        to_village(record, &division_names(conn)?, true)
    })
    .await
}
