//! Positions, coordinate systems and village geofences.

pub mod crs;
mod geojson;

pub use crs::Crs;
pub use geojson::{multi_polygon_from_geojson, multi_polygon_to_geojson};

use geo::{Destination, Distance, Haversine, MultiPolygon, Point, Polygon};

use crate::domain::GeofenceKind;

/// The area a check-in must fall in to count as "in the village". Stored in WGS-84.
#[derive(Debug, Clone, PartialEq)]
pub enum Geofence {
    Circle { center: Point<f64>, radius_m: f64 },
    Area(MultiPolygon<f64>),
}

/// Vertices used to draw a circle as a GeoJSON polygon (GeoJSON has no circles).
const CIRCLE_VERTICES: usize = 48;

impl Geofence {
    pub fn kind(&self) -> GeofenceKind {
        match self {
            Geofence::Circle { .. } => GeofenceKind::Circle,
            Geofence::Area(_) => GeofenceKind::Polygon,
        }
    }

    pub fn radius_m(&self) -> Option<f64> {
        match self {
            Geofence::Circle { radius_m, .. } => Some(*radius_m),
            Geofence::Area(_) => None,
        }
    }

    /// The geofence as a GeoJSON geometry; a circle becomes a closed polygon.
    pub fn to_geojson(&self) -> serde_json::Value {
        match self {
            Geofence::Circle { center, radius_m } => {
                let mut ring: Vec<geo::Coord<f64>> = (0..CIRCLE_VERTICES)
                    .map(|i| {
                        let bearing = 360.0 * i as f64 / CIRCLE_VERTICES as f64;
                        Haversine.destination(*center, bearing, *radius_m).0
                    })
                    .collect();
                ring.push(ring[0]);
                let polygon = Polygon::new(ring.into(), vec![]);
                let mut value = multi_polygon_to_geojson(&MultiPolygon(vec![polygon]));
                // A one-polygon MultiPolygon reads more naturally as a Polygon.
                if let Some(coords) = value.get_mut("coordinates").and_then(|c| c.as_array_mut()) {
                    let first = coords.remove(0);
                    value = serde_json::json!({"type": "Polygon", "coordinates": first});
                }
                value
            }
            Geofence::Area(area) => multi_polygon_to_geojson(area),
        }
    }
}

/// Great-circle distance in metres.
pub fn distance_m(a: Point<f64>, b: Point<f64>) -> f64 {
    Haversine.distance(a, b)
}
