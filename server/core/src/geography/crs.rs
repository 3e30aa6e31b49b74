//! Conversions between the coordinate systems phones and Chinese map SDKs report.
//!
//! GCJ-02 is WGS-84 with a published, deliberately non-linear offset (a few hundred metres in
//! Baicheng); BD-09 is a further rotation of GCJ-02. The forward formulas are the widely
//! reproduced ones; GCJ-02 → WGS-84 has no closed form, so it is inverted by fixed-point
//! iteration to well under a millimetre.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A coordinate reference system a client may report a position in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Crs {
    /// GPS chip output (the default).
    #[default]
    Wgs84,
    /// Amap / Tencent maps ("Mars coordinates").
    Gcj02,
    /// Baidu maps.
    Bd09,
}

impl Crs {
    pub const ALL: [Crs; 3] = [Crs::Wgs84, Crs::Gcj02, Crs::Bd09];

    pub fn as_str(self) -> &'static str {
        match self {
            Crs::Wgs84 => "wgs84",
            Crs::Gcj02 => "gcj02",
            Crs::Bd09 => "bd09",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Crs::Wgs84 => "WGS-84（GPS 原始坐标）",
            Crs::Gcj02 => "GCJ-02（高德、腾讯地图）",
            Crs::Bd09 => "BD-09（百度地图）",
        }
    }

    /// Converts `(lat, lon)` given in this system to WGS-84.
    pub fn to_wgs84(self, lat: f64, lon: f64) -> (f64, f64) {
        match self {
            Crs::Wgs84 => (lat, lon),
            Crs::Gcj02 => gcj02_to_wgs84(lat, lon),
            Crs::Bd09 => {
                let (lat, lon) = bd09_to_gcj02(lat, lon);
                gcj02_to_wgs84(lat, lon)
            }
        }
    }
}

// Krasovsky 1940 ellipsoid, as the GCJ-02 algorithm uses it.
const A: f64 = 6_378_245.0;
const EE: f64 = 0.006_693_421_622_965_943;
const X_PI: f64 = std::f64::consts::PI * 3000.0 / 180.0;

/// GCJ-02 leaves positions outside mainland China's rough bounding box unshifted.
fn outside_china(lat: f64, lon: f64) -> bool {
    !(72.004..=137.8347).contains(&lon) || !(0.8293..=55.8271).contains(&lat)
}

fn transform_lat(x: f64, y: f64) -> f64 {
    use std::f64::consts::PI;
    let mut r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    r
}

fn transform_lon(x: f64, y: f64) -> f64 {
    use std::f64::consts::PI;
    let mut r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    r
}

/// The GCJ-02 offset (dlat, dlon) in degrees at a WGS-84 position.
fn gcj_offset(lat: f64, lon: f64) -> (f64, f64) {
    use std::f64::consts::PI;
    let dlat = transform_lat(lon - 105.0, lat - 35.0);
    let dlon = transform_lon(lon - 105.0, lat - 35.0);
    let radlat = lat / 180.0 * PI;
    let magic = 1.0 - EE * radlat.sin() * radlat.sin();
    let sqrt_magic = magic.sqrt();
    (
        (dlat * 180.0) / ((A * (1.0 - EE)) / (magic * sqrt_magic) * PI),
        (dlon * 180.0) / (A / sqrt_magic * radlat.cos() * PI),
    )
}

pub fn wgs84_to_gcj02(lat: f64, lon: f64) -> (f64, f64) {
    if outside_china(lat, lon) {
        return (lat, lon);
    }
    let (dlat, dlon) = gcj_offset(lat, lon);
    (lat + dlat, lon + dlon)
}

pub fn gcj02_to_wgs84(lat: f64, lon: f64) -> (f64, f64) {
    if outside_china(lat, lon) {
        return (lat, lon);
    }
    // The offset varies slowly, so a few fixed-point steps converge far below GPS precision.
    let (mut wlat, mut wlon) = (lat, lon);
    for _ in 0..10 {
        let (glat, glon) = wgs84_to_gcj02(wlat, wlon);
        let (elat, elon) = (glat - lat, glon - lon);
        wlat -= elat;
        wlon -= elon;
        if elat.abs() < 1e-10 && elon.abs() < 1e-10 {
            break;
        }
    }
    (wlat, wlon)
}

pub fn bd09_to_gcj02(lat: f64, lon: f64) -> (f64, f64) {
    let x = lon - 0.0065;
    let y = lat - 0.006;
    let z = (x * x + y * y).sqrt() - 0.000_02 * (y * X_PI).sin();
    let theta = y.atan2(x) - 0.000_003 * (x * X_PI).cos();
    (z * theta.sin(), z * theta.cos())
}

pub fn gcj02_to_bd09(lat: f64, lon: f64) -> (f64, f64) {
    let z = (lon * lon + lat * lat).sqrt() + 0.000_02 * (lat * X_PI).sin();
    let theta = lat.atan2(lon) + 0.000_003 * (lon * X_PI).cos();
    (z * theta.sin() + 0.006, z * theta.cos() + 0.0065)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference pairs (WGS-84 → GCJ-02) from the eviltransform project's test suite.
    const PAIRS: [(f64, f64, f64, f64); 3] = [
        (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),
        (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),
        (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),
    ];

    #[test]
    fn forward_matches_reference_pairs() {
        for (wlat, wlon, glat, glon) in PAIRS {
            let (lat, lon) = wgs84_to_gcj02(wlat, wlon);
            assert!(
                (lat - glat).abs() < 1e-6 && (lon - glon).abs() < 1e-6,
                "{wlat},{wlon}"
            );
        }
    }

    #[test]
    fn inverse_round_trips_below_a_millimetre() {
        for (lat, lon) in [(45.6194, 122.8391), (44.9, 123.5), (46.3, 122.1)] {
            let (glat, glon) = wgs84_to_gcj02(lat, lon);
            let (blat, blon) = gcj02_to_wgs84(glat, glon);
            // 1e-8 degrees is about a millimetre.
            assert!((blat - lat).abs() < 1e-8 && (blon - lon).abs() < 1e-8);
        }
    }

    #[test]
    fn baicheng_offset_is_a_few_hundred_metres() {
        let (glat, glon) = wgs84_to_gcj02(45.6194, 122.8391);
        let dy = (glat - 45.6194) * 111_000.0;
        let dx = (glon - 122.8391) * 111_000.0 * 45.6194_f64.to_radians().cos();
        let metres = (dx * dx + dy * dy).sqrt();
        assert!((100.0..1000.0).contains(&metres), "{metres} m");
    }

    #[test]
    fn bd09_round_trips() {
        let (lat, lon) = (45.62, 122.84);
        let (blat, blon) = gcj02_to_bd09(lat, lon);
        let (glat, glon) = bd09_to_gcj02(blat, blon);
        assert!((glat - lat).abs() < 1e-5 && (glon - lon).abs() < 1e-5);
        assert_eq!(
            Crs::Bd09.to_wgs84(blat, blon).0,
            gcj02_to_wgs84(glat, glon).0
        );
    }

    #[test]
    fn outside_china_is_unchanged() {
        assert_eq!(wgs84_to_gcj02(48.85, 2.35), (48.85, 2.35));
        assert_eq!(gcj02_to_wgs84(48.85, 2.35), (48.85, 2.35));
    }
}
