//! Checking a geofence someone proposes (the city's import, a calibration): a GeoJSON geometry
//! in one of the three coordinate systems, turned into a WGS-84 [`Geofence`] or refused with
//! every broken rule named by field. Pure, so the rules are tested without a server.

use geo::{Centroid, ChamberlainDuquetteArea, Coord, LineString, MultiPolygon, Point, Polygon};
use serde_json::Value;

use crate::domain::Rule;
use crate::error::FieldError;
use crate::geography::{Crs, Geofence};

/// Radii a circular village geofence may have: below 200 m a GPS fix's own error flags honest
/// check-ins; above 20 km the fence covers several townships and checks nothing.
pub const MIN_RADIUS_M: f64 = 200.0;
pub const MAX_RADIUS_M: f64 = 20_000.0;
/// Vertices a polygon geofence may have (all rings): a surveyed village boundary has hundreds
/// to a few thousand; more is a mistake (a raster traced point by point) and costs every check-in.
pub const MAX_VERTICES: usize = 5_000;
/// Largest village area taken: Baicheng's largest villages cover well under 300 km².
pub const MAX_AREA_KM2: f64 = 1_000.0;
/// How far a vertex may lie outside the county boundary: the boundary is the simplified DataV
/// outline (280–580 vertices a county), which cuts corners by a few hundred metres.
pub const COUNTY_TOLERANCE_M: f64 = 1_000.0;

/// Where the errors of one geometry are reported: `geometry` in a request body, or
/// `features[3].geometry` / `rows[5]` in a bulk import.
#[derive(Debug, Clone)]
pub struct Fields {
    pub geometry: String,
    pub coordinates: String,
    pub radius_m: String,
}

impl Fields {
    pub fn under(prefix: &str) -> Fields {
        let dot = if prefix.is_empty() { "" } else { "." };
        Fields {
            geometry: format!("{prefix}{dot}geometry"),
            coordinates: format!("{prefix}{dot}geometry.coordinates"),
            radius_m: format!("{prefix}{dot}radius_m"),
        }
    }
}

fn position(value: &Value, crs: Crs) -> Option<Coord<f64>> {
    let pair = value.as_array()?;
    // A third value (altitude) is allowed by GeoJSON and ignored.
    if !(2..=3).contains(&pair.len()) {
        return None;
    }
    let (lon, lat) = (pair.first()?.as_f64()?, pair.get(1)?.as_f64()?);
    if !lon.is_finite() || !lat.is_finite() || lon.abs() > 180.0 || lat.abs() > 90.0 {
        return None;
    }
    let (lat, lon) = crs.to_wgs84(lat, lon);
    Some(Coord { x: lon, y: lat })
}

/// A circle's centre and radius, both checked.
pub fn circle(
    fields: &Fields,
    lat: f64,
    lon: f64,
    radius_m: Option<f64>,
    crs: Crs,
    county: &MultiPolygon<f64>,
) -> Result<Geofence, Vec<FieldError>> {
    let mut errors = Vec::new();
    let centre = position(&serde_json::json!([lon, lat]), crs);
    if centre.is_none() {
        errors.push(FieldError::new(
            &fields.coordinates,
            Rule::InvalidValue,
            "坐标须为有效的经度、纬度",
        ));
    }
    match radius_m {
        None => errors.push(FieldError::new(
            &fields.radius_m,
            Rule::Required,
            "点位须给出围栏半径（米）",
        )),
        Some(r) if !(MIN_RADIUS_M..=MAX_RADIUS_M).contains(&r) => errors.push(FieldError::new(
            &fields.radius_m,
            Rule::Range,
            format!("半径须在 {MIN_RADIUS_M} 至 {MAX_RADIUS_M} 米之间"),
        )),
        Some(_) => {}
    }
    if let Some(c) = centre {
        if outside(county, Point::from(c)) {
            errors.push(FieldError::new(
                &fields.coordinates,
                Rule::OutsideCounty,
                "点位不在所属县（市、区）界内",
            ));
        }
    }
    match (centre, radius_m) {
        (Some(c), Some(radius_m)) if errors.is_empty() => Ok(Geofence::Circle {
            center: Point::from(c),
            radius_m,
        }),
        _ => Err(errors),
    }
}

fn outside(county: &MultiPolygon<f64>, p: Point<f64>) -> bool {
    Geofence::Area(county.clone()).distance_outside_m(p) > COUNTY_TOLERANCE_M
}

fn ring(value: &Value, crs: Crs) -> Result<LineString<f64>, &'static str> {
    let coords = value
        .as_array()
        .ok_or("环须为坐标数组")?
        .iter()
        .map(|p| position(p, crs))
        .collect::<Option<Vec<_>>>()
        .ok_or("坐标须为有效的 [经度, 纬度]")?;
    if coords.len() < 4 {
        return Err("每个环至少 4 个坐标（首尾相同）");
    }
    if coords.first() != coords.last() {
        return Err("环须闭合：首尾坐标须相同");
    }
    Ok(LineString::from(coords))
}

fn polygon(value: &Value, crs: Crs) -> Result<Polygon<f64>, &'static str> {
    let rings = value.as_array().ok_or("多边形须为环的数组")?;
    let mut rings = rings.iter().map(|r| ring(r, crs));
    let exterior = rings.next().ok_or("多边形至少有一个外环")??;
    Ok(Polygon::new(
        exterior,
        rings.collect::<Result<Vec<_>, _>>()?,
    ))
}

fn vertex_count(value: &Value, depth: usize) -> usize {
    match (value.as_array(), depth) {
        (Some(a), 0) => a.len(),
        (Some(a), d) => a.iter().map(|v| vertex_count(v, d - 1)).sum(),
        (None, _) => 0,
    }
}

/// A Polygon or MultiPolygon geometry, checked: closed rings of valid positions, at most
/// [`MAX_VERTICES`], not self-intersecting, of a plausible area, inside the county.
pub fn area(
    fields: &Fields,
    geometry: &Value,
    crs: Crs,
    county: &MultiPolygon<f64>,
) -> Result<Geofence, Vec<FieldError>> {
    let bad = |field: &str, rule: Rule, detail: &str| vec![FieldError::new(field, rule, detail)];
    let kind = geometry.get("type").and_then(Value::as_str);
    let coords = geometry.get("coordinates").unwrap_or(&Value::Null);
    // Counted before anything is built, so a huge geometry costs no more than reading it.
    let vertices = match kind {
        Some("Polygon") => vertex_count(coords, 1),
        Some("MultiPolygon") => vertex_count(coords, 2),
        _ => 0,
    };
    if vertices > MAX_VERTICES {
        return Err(bad(
            &fields.coordinates,
            Rule::TooMany,
            &format!("顶点共 {vertices} 个，最多 {MAX_VERTICES} 个"),
        ));
    }
    let parsed = match kind {
        Some("Polygon") => polygon(coords, crs).map(|p| MultiPolygon(vec![p])),
        Some("MultiPolygon") => coords
            .as_array()
            .ok_or("多多边形须为多边形的数组")
            .and_then(|ps| ps.iter().map(|p| polygon(p, crs)).collect())
            .map(MultiPolygon),
        _ => {
            return Err(bad(
                &format!("{}.type", fields.geometry),
                Rule::UnknownValue,
                "须为 Point、Polygon 或 MultiPolygon",
            ))
        }
    };
    let area = parsed.map_err(|d| bad(&fields.coordinates, Rule::InvalidGeometry, d))?;
    if area.0.is_empty() {
        return Err(bad(
            &fields.coordinates,
            Rule::InvalidGeometry,
            "至少须有一个多边形",
        ));
    }
    {
        use geo::Validation;
        if let Err(e) = area.check_validation() {
            return Err(bad(
                &fields.coordinates,
                Rule::InvalidGeometry,
                &format!("多边形无效（自相交、重叠或退化）：{e}"),
            ));
        }
    }
    let km2 = area.chamberlain_duquette_unsigned_area() / 1e6;
    if !(km2 > 0.0 && km2 <= MAX_AREA_KM2) {
        return Err(bad(
            &fields.coordinates,
            Rule::Range,
            &format!("面积 {km2:.2} 平方公里，须大于 0 且不超过 {MAX_AREA_KM2} 平方公里"),
        ));
    }
    let out = area
        .0
        .iter()
        .flat_map(|p| p.exterior().0.iter())
        .filter(|c| outside(county, Point::from(**c)))
        .count();
    if out > 0 {
        return Err(bad(
            &fields.coordinates,
            Rule::OutsideCounty,
            &format!("有 {out} 个顶点在所属县（市、区）界外"),
        ));
    }
    Ok(Geofence::Area(area))
}

/// A GeoJSON geometry with an optional radius: a Point (with a radius) or a (Multi)Polygon
/// (without).
pub fn geometry(
    fields: &Fields,
    geometry: &Value,
    radius_m: Option<f64>,
    crs: Crs,
    county: &MultiPolygon<f64>,
) -> Result<Geofence, Vec<FieldError>> {
    match geometry.get("type").and_then(Value::as_str) {
        Some("Point") => {
            let pair = geometry
                .get("coordinates")
                .and_then(Value::as_array)
                .filter(|a| (2..=3).contains(&a.len()));
            let lon = pair.and_then(|a| a.first()).and_then(Value::as_f64);
            let lat = pair.and_then(|a| a.get(1)).and_then(Value::as_f64);
            match (lat, lon) {
                (Some(lat), Some(lon)) => circle(fields, lat, lon, radius_m, crs, county),
                _ => Err(vec![FieldError::new(
                    &fields.coordinates,
                    Rule::InvalidValue,
                    "点的坐标须为 [经度, 纬度]",
                )]),
            }
        }
        Some(_) if radius_m.is_some() => Err(vec![FieldError::new(
            &fields.radius_m,
            Rule::NotAllowed,
            "多边形围栏不填半径",
        )]),
        _ => area(fields, geometry, crs, county),
    }
}

/// The position shown for a fence: a circle's centre, a polygon's centroid.
pub fn centre(fence: &Geofence) -> Option<Point<f64>> {
    match fence {
        Geofence::Circle { center, .. } => Some(*center),
        Geofence::Area(area) => area.centroid(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A 0.2° square around 平安村 standing in for the county.
    fn county() -> MultiPolygon<f64> {
        let (x, y) = (122.466, 45.636);
        MultiPolygon(vec![Polygon::new(
            LineString::from(vec![
                (x, y),
                (x + 0.2, y),
                (x + 0.2, y + 0.2),
                (x, y + 0.2),
                (x, y),
            ]),
            vec![],
        )])
    }

    fn fields() -> Fields {
        Fields::under("")
    }

    fn rules(r: Result<Geofence, Vec<FieldError>>) -> Vec<(String, Rule)> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.field, e.rule))
            .collect()
    }

    #[test]
    fn a_point_needs_a_sane_radius_inside_the_county() {
        let p = json!({"type": "Point", "coordinates": [122.566, 45.736]});
        let fence = geometry(&fields(), &p, Some(1500.0), Crs::Wgs84, &county()).expect("ok");
        assert_eq!(fence.radius_m(), Some(1500.0));
        assert_eq!(
            rules(geometry(&fields(), &p, None, Crs::Wgs84, &county())),
            [("radius_m".into(), Rule::Required)]
        );
        assert_eq!(
            rules(geometry(&fields(), &p, Some(50.0), Crs::Wgs84, &county())),
            [("radius_m".into(), Rule::Range)]
        );
        let far = json!({"type": "Point", "coordinates": [121.0, 45.736]});
        assert_eq!(
            rules(geometry(
                &fields(),
                &far,
                Some(1500.0),
                Crs::Wgs84,
                &county()
            )),
            [("geometry.coordinates".into(), Rule::OutsideCounty)]
        );
    }

    #[test]
    fn a_gcj02_point_is_stored_in_wgs84() {
        let (glat, glon) = crate::geography::crs::wgs84_to_gcj02(45.736, 122.566);
        let p = json!({"type": "Point", "coordinates": [glon, glat]});
        let fence = geometry(&fields(), &p, Some(1500.0), Crs::Gcj02, &county()).expect("ok");
        let c = centre(&fence).expect("centre");
        assert!(crate::geography::distance_m(c, Point::new(122.566, 45.736)) < 0.01);
    }

    #[test]
    fn polygons_are_checked() {
        let square = json!({"type": "Polygon", "coordinates": [[[122.55, 45.72], [122.58, 45.72], [122.58, 45.75], [122.55, 45.75], [122.55, 45.72]]]});
        assert!(geometry(&fields(), &square, None, Crs::Wgs84, &county()).is_ok());
        assert_eq!(
            rules(geometry(
                &fields(),
                &square,
                Some(10.0),
                Crs::Wgs84,
                &county()
            )),
            [("radius_m".into(), Rule::NotAllowed)]
        );
        let open = json!({"type": "Polygon", "coordinates": [[[122.55, 45.72], [122.58, 45.72], [122.58, 45.75], [122.55, 45.75]]]});
        assert_eq!(
            rules(geometry(&fields(), &open, None, Crs::Wgs84, &county())),
            [("geometry.coordinates".into(), Rule::InvalidGeometry)]
        );
        let bowtie = json!({"type": "Polygon", "coordinates": [[[122.55, 45.72], [122.58, 45.75], [122.58, 45.72], [122.55, 45.75], [122.55, 45.72]]]});
        assert_eq!(
            rules(geometry(&fields(), &bowtie, None, Crs::Wgs84, &county())),
            [("geometry.coordinates".into(), Rule::InvalidGeometry)]
        );
        let line = json!({"type": "LineString", "coordinates": [[122.55, 45.72], [122.58, 45.75]]});
        assert_eq!(
            rules(geometry(&fields(), &line, None, Crs::Wgs84, &county())),
            [("geometry.type".into(), Rule::UnknownValue)]
        );
        let many: Vec<Value> = (0..=MAX_VERTICES)
            .map(|i| {
                let a = i as f64 / MAX_VERTICES as f64 * std::f64::consts::TAU;
                json!([122.566 + 0.01 * a.cos(), 45.736 + 0.01 * a.sin()])
            })
            .collect();
        let big = json!({"type": "Polygon", "coordinates": [many]});
        assert_eq!(
            rules(geometry(&fields(), &big, None, Crs::Wgs84, &county())),
            [("geometry.coordinates".into(), Rule::TooMany)]
        );
        let outside = json!({"type": "Polygon", "coordinates": [[[121.55, 45.72], [121.58, 45.72], [121.58, 45.75], [121.55, 45.72]]]});
        assert_eq!(
            rules(geometry(&fields(), &outside, None, Crs::Wgs84, &county())),
            [("geometry.coordinates".into(), Rule::OutsideCounty)]
        );
    }
}
