//! The city's bulk import of village geofences (`POST /villages/geofences/import`): a GeoJSON
//! FeatureCollection (a 12-digit village code in each feature's `code` property; Point features
//! with a `radius_m`) or a CSV of `code,lon,lat,radius_m`, in WGS-84, GCJ-02 or BD-09. Every row
//! is checked first and every broken rule reported by feature or row; nothing is stored unless
//! all pass. A dry run reports what would change and stores nothing.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;
use geo::MultiPolygon;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::edit::{self, Change};
use super::fence::{self, Fields};
use crate::auth::Caller;
use crate::db::schema::villages;
use crate::db::{write_transaction, Db, DbConnection};
use crate::domain::{DivisionCode, DivisionLevel, GeofenceProvenance, Rule};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::geography::{Crs, Geofence};

/// Largest import taken, in bytes and in features or rows (the city has 919 villages).
pub const MAX_BYTES: usize = 8 * 1024 * 1024;
pub const MAX_ROWS: usize = 2_000;

/// How the body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    GeoJson,
    Csv,
}

/// What an import did (or, on a dry run, would do).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct GeofenceImportReport {
    pub dry_run: bool,
    /// Features or data rows read.
    pub rows: usize,
    /// Villages whose fence is (or would be) replaced.
    pub changed: usize,
    /// Villages that already have exactly this imported fence.
    pub unchanged: usize,
    /// The changed villages' codes.
    pub villages: Vec<String>,
}

/// One row as read: where it is reported, its code and its geometry.
struct RawRow {
    /// `features[3]` or `rows[5]`.
    at: String,
    code_field: String,
    code: Option<String>,
    geometry: Value,
    radius_m: Option<f64>,
}

fn bad_body(detail: impl Into<String>) -> ApiError {
    ApiError::field("body", Rule::Invalid, detail)
}

fn geojson_rows(body: &[u8]) -> ApiResult<Vec<RawRow>> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad_body(format!("不是有效的 GeoJSON：{e}")))?;
    if value.get("type").and_then(Value::as_str) != Some("FeatureCollection") {
        return Err(ApiError::field(
            "type",
            Rule::UnknownValue,
            "须为 FeatureCollection",
        ));
    }
    let features = value
        .get("features")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::field("features", Rule::Required, "缺少 features 数组"))?;
    if features.len() > MAX_ROWS {
        return Err(ApiError::field(
            "features",
            Rule::TooMany,
            format!("一次最多导入 {MAX_ROWS} 个要素"),
        ));
    }
    Ok(features
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let props = f.get("properties");
            let prop = |k: &str| props.and_then(|p| p.get(k));
            RawRow {
                at: format!("features[{i}]"),
                code_field: format!("features[{i}].properties.code"),
                code: prop("code").and_then(|c| match c {
                    Value::String(s) => Some(s.trim().to_owned()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                }),
                geometry: f.get("geometry").cloned().unwrap_or(Value::Null),
                radius_m: prop("radius_m").and_then(Value::as_f64),
            }
        })
        .collect())
}

fn csv_rows(body: &[u8]) -> ApiResult<Vec<RawRow>> {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| bad_body(format!("无法读取 CSV 表头：{e}")))?
        .iter()
        .map(str::to_ascii_lowercase)
        .collect();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let mut missing = Vec::new();
    let mut index = [0usize; 4];
    for (i, name) in ["code", "lon", "lat", "radius_m"].iter().enumerate() {
        match column(name) {
            Some(c) => index[i] = c,
            None => missing.push(FieldError::new(
                format!("columns.{name}"),
                Rule::Required,
                format!("缺少“{name}”列"),
            )),
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::Validation(missing));
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        // Row 1 is the header.
        let n = i + 2;
        let record = record.map_err(|e| bad_body(format!("第 {n} 行无法读取：{e}")))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        if rows.len() == MAX_ROWS {
            return Err(ApiError::field(
                "body",
                Rule::TooMany,
                format!("一次最多导入 {MAX_ROWS} 行"),
            ));
        }
        let cell = |c: usize| record.get(index[c]).filter(|v| !v.is_empty());
        let number = |c: usize| cell(c).map(|v| v.parse::<f64>().map_err(|_| v.to_owned()));
        let geometry = match (number(1), number(2)) {
            (Some(Ok(lon)), Some(Ok(lat))) => json!({"type": "Point", "coordinates": [lon, lat]}),
            // Reported as the point's coordinates, like any other unreadable position.
            _ => json!({"type": "Point", "coordinates": null}),
        };
        rows.push(RawRow {
            at: format!("rows[{n}]"),
            code_field: format!("rows[{n}].code"),
            code: cell(0).map(str::to_owned),
            geometry,
            radius_m: match number(3) {
                Some(Ok(r)) => Some(r),
                // Unreadable: out of range on purpose, so the radius rule names it.
                Some(Err(_)) => Some(f64::NAN),
                None => None,
            },
        });
    }
    Ok(rows)
}

/// A CSV row's errors name its columns rather than a GeoJSON path.
fn csv_fields(at: &str) -> Fields {
    Fields {
        geometry: format!("{at}.lon"),
        coordinates: format!("{at}.lon"),
        radius_m: format!("{at}.radius_m"),
    }
}

/// Checks every row against the stored villages: the fences, or every broken rule.
fn check(
    conn: &mut DbConnection,
    rows: &[RawRow],
    format: ImportFormat,
    crs: Crs,
) -> ApiResult<Vec<(String, Geofence, String)>> {
    let counties: HashMap<String, String> = villages::table
        .select((villages::code, villages::county_code))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let mut boundaries: BTreeMap<String, MultiPolygon<f64>> = BTreeMap::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for row in rows {
        let county = match row.code.as_deref() {
            None => {
                errors.push(FieldError::new(
                    &row.code_field,
                    Rule::Required,
                    "须填写 12 位村代码",
                ));
                None
            }
            Some(c) => match DivisionCode::parse_level(c, DivisionLevel::Village) {
                Err(e) => {
                    errors.push(FieldError::new(
                        &row.code_field,
                        Rule::DivisionCodeFormat,
                        e.to_string(),
                    ));
                    None
                }
                Ok(_) if !counties.contains_key(c) => {
                    errors.push(FieldError::new(
                        &row.code_field,
                        Rule::UnknownVillage,
                        format!("村 {c} 不存在"),
                    ));
                    None
                }
                Ok(_) => {
                    if let Some(first) = seen.insert(c.to_owned(), row.at.clone()) {
                        errors.push(FieldError::new(
                            &row.code_field,
                            Rule::Duplicate,
                            format!("与 {first} 的村代码重复"),
                        ));
                    }
                    counties.get(c).cloned()
                }
            },
        };
        let Some(county) = county else { continue };
        if !boundaries.contains_key(&county) {
            let b = edit::county_boundary(conn, &county)?;
            boundaries.insert(county.clone(), b);
        }
        let Some(boundary) = boundaries.get(&county) else {
            continue;
        };
        let fields = match format {
            ImportFormat::GeoJson => Fields::under(&row.at),
            ImportFormat::Csv => csv_fields(&row.at),
        };
        let radius = match format {
            ImportFormat::GeoJson => Fields::under(&format!("{}.properties", row.at)).radius_m,
            ImportFormat::Csv => fields.radius_m.clone(),
        };
        let fields = Fields {
            radius_m: radius,
            ..fields
        };
        match fence::geometry(&fields, &row.geometry, row.radius_m, crs, boundary) {
            Ok(f) => out.push((row.code.clone().unwrap_or_default(), f, row.at.clone())),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Imports geofences (city administrators). With `dry_run`, checks and reports and stores nothing.
pub async fn import(
    db: &Db,
    caller: &Caller,
    body: Vec<u8>,
    format: ImportFormat,
    crs: Crs,
    dry_run: bool,
) -> ApiResult<GeofenceImportReport> {
    edit::require_importer(caller)?;
    let rows = tokio::task::spawn_blocking(move || match format {
        ImportFormat::GeoJson => geojson_rows(&body),
        ImportFormat::Csv => csv_rows(&body),
    })
    .await
    .map_err(ApiError::internal)??;
    let user = caller.user_id.clone();
    let run = move |conn: &mut DbConnection| {
        write_transaction(conn, |conn| {
            let fences = check(conn, &rows, format, crs)?;
            let mut report = GeofenceImportReport {
                dry_run,
                rows: rows.len(),
                ..Default::default()
            };
            for (code, fence, at) in fences {
                let stored: (String, String) = villages::table
                    .find(&code)
                    .select((villages::geofence_provenance, villages::geofence))
                    .first(conn)?;
                let imported = GeofenceProvenance::Imported.as_str();
                let same =
                    serde_json::from_str::<Value>(&stored.1).ok() == Some(fence.to_geojson());
                if stored.0 == imported && same {
                    report.unchanged += 1;
                    continue;
                }
                report.changed += 1;
                if !dry_run {
                    let source = json!({
                        "crs": crs.as_str(),
                        "format": if format == ImportFormat::Csv { "csv" } else { "geojson" },
                        "at": at,
                    });
                    edit::store(
                        conn,
                        &user,
                        &code,
                        &fence,
                        &Change {
                            provenance: GeofenceProvenance::Imported,
                            action: "import_geofence",
                            reason: None,
                            source,
                        },
                    )?;
                }
                report.villages.push(code);
            }
            Ok(report)
        })
    };
    if dry_run {
        db.run(run).await
    } else {
        db.write(run).await
    }
}
