//! The little GeoJSON the service reads and writes: (Multi)Polygon geometries, `[lon, lat]`.

use geo::{Coord, LineString, MultiPolygon, Polygon};
use serde_json::{json, Value};

/// Coordinates are written with 6 decimals (about 0.1 m), plenty for geofences.
fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn ring_to_json(ring: &LineString<f64>) -> Value {
    Value::Array(
        ring.0
            .iter()
            .map(|c| json!([round6(c.x), round6(c.y)]))
            .collect(),
    )
}

pub fn multi_polygon_to_geojson(mp: &MultiPolygon<f64>) -> Value {
    let polygons: Vec<Value> =
        mp.0.iter()
            .map(|p| {
                let mut rings = vec![ring_to_json(p.exterior())];
                rings.extend(p.interiors().iter().map(ring_to_json));
                Value::Array(rings)
            })
            .collect();
    json!({"type": "MultiPolygon", "coordinates": polygons})
}

fn ring_from_json(value: &Value) -> Option<LineString<f64>> {
    let coords = value
        .as_array()?
        .iter()
        .map(|pair| {
            let pair = pair.as_array()?;
            Some(Coord {
                x: pair.first()?.as_f64()?,
                y: pair.get(1)?.as_f64()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    (coords.len() >= 4).then(|| LineString::from(coords))
}

fn polygon_from_json(value: &Value) -> Option<Polygon<f64>> {
    let mut rings = value
        .as_array()?
        .iter()
        .map(ring_from_json)
        .collect::<Option<Vec<_>>>()?
        .into_iter();
    let exterior = rings.next()?;
    Some(Polygon::new(exterior, rings.collect()))
}

/// Reads a GeoJSON `Polygon` or `MultiPolygon` geometry.
pub fn multi_polygon_from_geojson(value: &Value) -> Option<MultiPolygon<f64>> {
    let coords = value.get("coordinates")?;
    match value.get("type")?.as_str()? {
        "Polygon" => Some(MultiPolygon(vec![polygon_from_json(coords)?])),
        "MultiPolygon" => coords
            .as_array()?
            .iter()
            .map(polygon_from_json)
            .collect::<Option<Vec<_>>>()
            .map(MultiPolygon),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_multipolygon() {
        let value = json!({"type": "MultiPolygon", "coordinates": [[[[122.0, 45.0], [122.1, 45.0], [122.1, 45.1], [122.0, 45.0]]]]});
        let mp = multi_polygon_from_geojson(&value).expect("parses");
        assert_eq!(multi_polygon_to_geojson(&mp), value);
    }

    #[test]
    fn refuses_other_geometries() {
        assert!(
            multi_polygon_from_geojson(&json!({"type": "Point", "coordinates": [1.0, 2.0]}))
                .is_none()
        );
        assert!(multi_polygon_from_geojson(
            &json!({"type": "Polygon", "coordinates": [[[1.0, 2.0]]]})
        )
        .is_none());
    }
}
