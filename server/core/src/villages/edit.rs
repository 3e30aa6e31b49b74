//! Replacing a village's geofence: the city's import of one village (`PUT
//! /villages/{code}/geofence`) or many (`villages::import`), and a county reviewer's acceptance of
//! a calibration. One store function writes the fence, its centre and provenance, stamps the
//! village for the phones' download and audits the before and after.

use diesel::prelude::*;
use geo::MultiPolygon;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::fence::{self, Fields};
use super::service::{self, Village};
use crate::auth::Caller;
use crate::db::schema::{divisions, villages};
use crate::db::{Db, DbConnection};
use crate::domain::{DivisionCode, GeofenceProvenance, Role, Rule};
use crate::error::{ApiError, ApiResult};
use crate::geography::{multi_polygon_from_geojson, Crs, Geofence};

/// Longest reason kept with an import.
pub const MAX_REASON_CHARS: usize = 200;

/// A geofence the city sets for one village.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeofenceInput {
    /// A GeoJSON geometry: a `Point` (with `radius_m`) or a `Polygon`/`MultiPolygon`, as
    /// `[lon, lat]` pairs in `crs`.
    #[schema(value_type = Object, example = json!({"type": "Point", "coordinates": [122.566161, 45.736537]}))]
    pub geometry: Value,
    /// Radius of a point's circle, 200–20000 m; not given with a polygon.
    pub radius_m: Option<f64>,
    /// The coordinate system the geometry is in (default `wgs84`); stored as WGS-84.
    #[serde(default)]
    pub crs: Crs,
    /// Where the data comes from (kept in the audit log), at most 200 characters.
    pub reason: Option<String>,
}

/// Only the city administrator sets fences from its own data.
pub fn require_importer(caller: &Caller) -> ApiResult<()> {
    caller.require_role(&[Role::CityAdmin])
}

/// The boundary a village of `county` must lie in (the development zone's is 洮北区's).
pub fn county_boundary(conn: &mut DbConnection, county: &str) -> ApiResult<MultiPolygon<f64>> {
    let county = super::fixtures::boundary_county(county);
    let stored: Option<Option<String>> = divisions::table
        .find(county)
        .select(divisions::boundary)
        .first(conn)
        .optional()?;
    let text = stored.flatten().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!("county {county} has no stored boundary"))
    })?;
    let value: Value = serde_json::from_str(&text).map_err(ApiError::internal)?;
    multi_polygon_from_geojson(&value)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("county {county}: bad boundary")))
}

/// A village's county, or 404.
pub fn county_of(conn: &mut DbConnection, code: &str) -> ApiResult<String> {
    villages::table
        .find(code)
        .select(villages::county_code)
        .first(conn)
        .optional()?
        .ok_or_else(|| ApiError::NotFound(format!("村 {code} 不存在")))
}

/// A fence as the audit log keeps it: a circle by centre and radius, a polygon whole.
fn described(
    kind: &str,
    radius_m: Option<f64>,
    lat: f64,
    lon: f64,
    provenance: &str,
    geojson: &str,
) -> Value {
    match radius_m {
        Some(r) if kind == "circle" => {
            json!({"provenance": provenance, "kind": kind, "lat": lat, "lon": lon, "radius_m": r})
        }
        _ => json!({
            "provenance": provenance, "kind": kind, "lat": lat, "lon": lon,
            "geometry": serde_json::from_str::<Value>(geojson).unwrap_or(Value::Null),
        }),
    }
}

type StoredFence = (String, Option<f64>, f64, f64, String, String);

/// Why a fence changes: its new provenance, the audit action and what the change rests on.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    pub provenance: GeofenceProvenance,
    pub action: &'a str,
    pub reason: Option<&'a str>,
    /// What the fence was made from (the CRS, the import row, the calibration), for the audit.
    pub source: Value,
}

/// Writes a village's new fence (its centre becomes the village's position), stamps it for the
/// download and audits before and after. Call inside the caller's transaction.
pub fn store(
    conn: &mut DbConnection,
    user: &str,
    code: &str,
    fence: &Geofence,
    change: &Change<'_>,
) -> ApiResult<()> {
    let provenance = change.provenance;
    let (kind, radius, lat, lon, was, geojson): StoredFence = villages::table
        .find(code)
        .select((
            villages::geofence_kind,
            villages::geofence_radius_m,
            villages::lat,
            villages::lon,
            villages::geofence_provenance,
            villages::geofence,
        ))
        .first(conn)
        .optional()?
        .ok_or_else(|| ApiError::NotFound(format!("村 {code} 不存在")))?;
    let centre = fence::centre(fence)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a fence without a centre")))?;
    let geometry = fence.to_geojson().to_string();
    diesel::update(villages::table.find(code))
        .set((
            villages::lat.eq(centre.y()),
            villages::lon.eq(centre.x()),
            villages::geofence_kind.eq(fence.kind().as_str()),
            villages::geofence_radius_m.eq(fence.radius_m()),
            villages::geofence.eq(&geometry),
            villages::geofence_provenance.eq(provenance.as_str()),
        ))
        .execute(conn)?;
    crate::changes::village(conn, code)?;
    let after = described(
        fence.kind().as_str(),
        fence.radius_m(),
        centre.y(),
        centre.x(),
        provenance.as_str(),
        &geometry,
    );
    let detail = json!({
        "before": described(&kind, radius, lat, lon, &was, &geojson),
        "after": after,
        "source": change.source,
    })
    .to_string();
    crate::audit::append(
        conn,
        &crate::audit::Entry {
            user_id: user,
            action: change.action,
            subject_type: "village",
            subject_id: code,
            from_state: Some(&was),
            to_state: Some(provenance.as_str()),
            reason: change.reason,
            detail: Some(&detail),
        },
    )?;
    Ok(())
}

/// A reason as given: trimmed, bounded, none when empty.
pub fn reason(field: &str, text: Option<&str>) -> ApiResult<Option<String>> {
    let text = text.map(str::trim).filter(|t| !t.is_empty());
    match text {
        Some(t) if t.chars().count() > MAX_REASON_CHARS => Err(ApiError::field(
            field,
            Rule::Length,
            format!("最多 {MAX_REASON_CHARS} 个字符"),
        )),
        Some(t) if t.chars().any(char::is_control) => Err(ApiError::field(
            field,
            Rule::ControlCharacter,
            "不能含有控制字符",
        )),
        t => Ok(t.map(str::to_owned)),
    }
}

/// Sets one village's geofence from the city's data (city administrators): 403 for anyone
/// else, 404 for no such village, 422 naming the field of a bad geometry.
pub async fn put(
    db: &Db,
    caller: &Caller,
    code: DivisionCode,
    input: GeofenceInput,
) -> ApiResult<Village> {
    require_importer(caller)?;
    let why = reason("reason", input.reason.as_deref())?;
    let user = caller.user_id.clone();
    let village = code.as_str().to_owned();
    db.transaction(move |conn| {
        let county = county_of(conn, &village)?;
        let boundary = county_boundary(conn, &county)?;
        let fence = fence::geometry(
            &Fields::under(""),
            &input.geometry,
            input.radius_m,
            input.crs,
            &boundary,
        )
        .map_err(ApiError::Validation)?;
        store(
            conn,
            &user,
            &village,
            &fence,
            &Change {
                provenance: GeofenceProvenance::Imported,
                action: "import_geofence",
                reason: why.as_deref(),
                source: json!({"crs": input.crs.as_str()}),
            },
        )
    })
    .await?;
    service::get(db, caller, code).await
}
