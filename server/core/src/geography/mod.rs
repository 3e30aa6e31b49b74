//! Positions, coordinate systems and village geofences.

pub mod crs;
mod geojson;

pub use crs::Crs;
pub use geojson::{multi_polygon_from_geojson, multi_polygon_to_geojson};

use geo::{
    Closest, Destination, Distance, Haversine, HaversineClosestPoint, MultiPolygon, Point, Polygon,
};

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

    /// How far (metres) a point lies outside the fence; 0 inside or on the boundary. Holes and
    /// several polygons are handled: a point in a hole is outside, by its distance to the hole's
    /// edge.
    pub fn distance_outside_m(&self, p: Point<f64>) -> f64 {
        match self {
            Geofence::Circle { center, radius_m } => (distance_m(*center, p) - radius_m).max(0.0),
            Geofence::Area(area) => match area.haversine_closest_point(&p) {
                Closest::Intersection(_) => 0.0,
                Closest::SinglePoint(q) => distance_m(p, q),
                Closest::Indeterminate => f64::INFINITY,
            },
        }
    }

    /// Whether a position reported with this accuracy may lie in the fence: its accuracy circle
    /// reaches the fence.
    pub fn admits(&self, p: Point<f64>, accuracy_m: f64) -> bool {
        self.distance_outside_m(p) <= accuracy_m.max(0.0)
    }

    /// Reads a village's stored geofence.
    pub fn from_stored(
        kind: &str,
        radius_m: Option<f64>,
        lat: f64,
        lon: f64,
        geojson: &str,
    ) -> Option<Self> {
        match (kind, radius_m) {
            ("circle", Some(radius_m)) => Some(Geofence::Circle {
                center: Point::new(lon, lat),
                radius_m,
            }),
            ("polygon", _) => {
                let value: serde_json::Value = serde_json::from_str(geojson).ok()?;
                multi_polygon_from_geojson(&value).map(Geofence::Area)
            }
            _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{LineString, MultiPolygon, Polygon};

    /// A 0.02° square (about 2.2 km × 1.5 km at Baicheng) with a 0.004° square hole.
    fn square_with_hole() -> Geofence {
        let ring = |x0: f64, y0: f64, d: f64| {
            LineString::from(vec![
                (x0, y0),
                (x0 + d, y0),
                (x0 + d, y0 + d),
                (x0, y0 + d),
                (x0, y0),
            ])
        };
        Geofence::Area(MultiPolygon(vec![
            Polygon::new(ring(122.0, 45.0, 0.02), vec![ring(122.008, 45.008, 0.004)]),
            Polygon::new(ring(122.1, 45.0, 0.01), vec![]),
        ]))
    }

    #[test]
    fn polygons_with_holes_and_parts() {
        let fence = square_with_hole();
        assert_eq!(
            fence.distance_outside_m(Point::new(122.002, 45.002)),
            0.0,
            "inside"
        );
        assert_eq!(
            fence.distance_outside_m(Point::new(122.105, 45.005)),
            0.0,
            "inside the second part"
        );
        assert!(
            fence.distance_outside_m(Point::new(122.010, 45.010)) > 100.0,
            "in the hole"
        );
        assert!(
            fence.distance_outside_m(Point::new(122.0, 45.01)) < 0.5,
            "on the boundary"
        );
    }

    #[test]
    fn accuracy_circles_reach_across_the_boundary() {
        let fence = square_with_hole();
        // 0.001° of longitude west of the edge: about 78 m at 45°N.
        let outside = Point::new(121.999, 45.01);
        let gap = fence.distance_outside_m(outside);
        assert!((70.0..90.0).contains(&gap), "{gap}");
        assert!(fence.admits(outside, gap + 1.0));
        assert!(!fence.admits(outside, gap - 1.0));
    }

    #[test]
    fn circles() {
        let fence = Geofence::Circle {
            center: Point::new(122.0, 45.0),
            radius_m: 1000.0,
        };
        let edge = Haversine.destination(Point::new(122.0, 45.0), 90.0, 1000.0);
        assert!(fence.distance_outside_m(edge) < 0.01);
        let beyond = Haversine.destination(Point::new(122.0, 45.0), 90.0, 1200.0);
        assert!((fence.distance_outside_m(beyond) - 200.0).abs() < 0.5);
        assert!(fence.admits(beyond, 250.0) && !fence.admits(beyond, 150.0));
    }
}
