//! Rebuilds `fixtures/` (the 919 villages, their townships and counties, county boundaries in
//! WGS-84) from the reference data copied into `fixtures/source/`.
//!
//! ```text
//! cargo run --bin build-fixtures -- [SOURCE_DIR] [OUT_DIR]     # defaults: fixtures/source fixtures
//! ```
//!
//! The output is deterministic: the same input always gives byte-identical files, and a test
//! checks that the committed fixtures are what this program makes. How positions are estimated
//! is explained in `fixtures/README.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use geo::{
    BoundingRect, ChamberlainDuquetteArea, Contains, Destination, Haversine, MultiPolygon, Point,
};
use serde_json::{json, Value};
use taizhang::geography::crs::gcj02_to_wgs84;
use taizhang::geography::{multi_polygon_from_geojson, multi_polygon_to_geojson};
use taizhang::random::SplitMix;
use taizhang::villages::fixtures::boundary_county;

/// Geofence radius around a village that has its own surveyed point.
const SURVEYED_RADIUS_M: f64 = 2_000.0;
/// Villages of a township are spread over this share of the township's equivalent radius.
const SPREAD_SHARE: f64 = 0.6;
const GOLDEN_ANGLE_DEG: f64 = 137.507_764_050_037_85;

#[derive(Debug, Clone, serde::Deserialize)]
struct Division {
    code: String,
    name: String,
    level: String,
    parent_code: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct Division2016 {
    code: String,
    name: String,
    lon_gcj02: Option<f64>,
    lat_gcj02: Option<f64>,
}

impl Division2016 {
    fn point_wgs84(&self) -> Option<Point<f64>> {
        let (lat, lon) = gcj02_to_wgs84(self.lat_gcj02?, self.lon_gcj02?);
        Some(Point::new(lon, lat))
    }
}

/// A village-level row is a 村委会 (not a 社区/居委会/virtual unit): NBS suffixes 200–399.
fn is_village_committee(d: &Division) -> bool {
    d.level == "village"
        && d.name.ends_with("村委会")
        && matches!(d.code[9..].parse::<u16>(), Ok(200..=399))
}

fn read_csv<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    reader
        .deserialize()
        .collect::<Result<Vec<T>, _>>()
        .with_context(|| format!("parsing {}", path.display()))
}

/// A point inside `area` drawn deterministically for `code` (rejection sampling in the bbox).
fn point_in_area(area: &MultiPolygon<f64>, code: &str) -> Result<Point<f64>> {
    let rect = area.bounding_rect().context("empty county boundary")?;
    let mut rng = SplitMix::new(code.parse::<u64>().unwrap_or(0));
    for _ in 0..10_000 {
        let p = Point::new(
            rect.min().x + rng.next_f64() * rect.width(),
            rect.min().y + rng.next_f64() * rect.height(),
        );
        if area.contains(&p) {
            return Ok(p);
        }
    }
    bail!("could not place {code} inside its county")
}

/// `baicheng_village_points_extra.csv`: more village points and township proxies, WGS-84.
#[derive(Debug, Clone, serde::Deserialize)]
struct ExtraPoint {
    code: String,
    name: String,
    lon: f64,
    lat: f64,
    match_rule: String,
    note: String,
}

/// What the fixtures take from the extra points: the villages' own points (none for the one
/// the source doubts: a coordinate shared with another village's 2016 row and far from its own
/// seat, i.e. the other village's point) and proxies for townships without a seat point.
struct Extra {
    villages: BTreeMap<String, Point<f64>>,
    doubted: BTreeSet<String>,
    seats: BTreeMap<String, Point<f64>>,
}

impl Extra {
    fn read(source: &Path) -> Result<Extra> {
        let mut extra = Extra {
            villages: BTreeMap::new(),
            doubted: BTreeSet::new(),
            seats: BTreeMap::new(),
        };
        for p in read_csv::<ExtraPoint>(&source.join("baicheng_village_points_extra.csv"))? {
            let point = Point::new(p.lon, p.lat);
            if p.match_rule == "township_proxy" {
                extra.seats.insert(p.code, point);
            } else if p.note.contains("coordinate_shared_with_other_2016_row")
                && p.note.contains("over_15km_from_own_2016_township_seat")
            {
                extra.doubted.insert(p.code);
            } else if p.name.ends_with("村委会") {
                extra.villages.insert(p.code, point);
            }
        }
        Ok(extra)
    }

    /// A village's own point: its 2016 point under the same code and name, else an extra one.
    fn own(&self, v: &Division, old: &BTreeMap<String, Division2016>) -> Option<Point<f64>> {
        if self.doubted.contains(&v.code) {
            return None;
        }
        old.get(&v.code)
            .filter(|o| o.name == v.name)
            .and_then(Division2016::point_wgs84)
            .or_else(|| self.villages.get(&v.code).copied())
    }

    /// A township's seat: its 2016 point, else a proxy.
    fn seat(&self, township: &str, old: &BTreeMap<String, Division2016>) -> Option<Point<f64>> {
        old.get(township)
            .and_then(Division2016::point_wgs84)
            .or_else(|| self.seats.get(township).copied())
    }
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

struct County {
    name: String,
    area: MultiPolygon<f64>,
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let source = PathBuf::from(args.next().unwrap_or_else(|| "fixtures/source".into()));
    let out = PathBuf::from(args.next().unwrap_or_else(|| "fixtures".into()));

    let divisions: Vec<Division> = read_csv(&source.join("baicheng_divisions.csv"))?;
    let old: BTreeMap<String, Division2016> =
        read_csv::<Division2016>(&source.join("baicheng_divisions_2016.csv"))?
            .into_iter()
            .map(|d| (d.code.clone(), d))
            .collect();

    // County boundaries, GCJ-02 → WGS-84.
    let raw: Value = serde_json::from_str(
        &std::fs::read_to_string(source.join("baicheng_counties.geojson"))
            .context("reading county boundaries")?,
    )?;
    let mut counties: BTreeMap<String, County> = BTreeMap::new();
    for feature in raw["features"].as_array().context("features")? {
        let code = format!(
            "{}000000",
            feature["properties"]["adcode"].as_u64().context("adcode")?
        );
        let name = feature["properties"]["name"]
            .as_str()
            .context("name")?
            .to_owned();
        let mut area =
            multi_polygon_from_geojson(&feature["geometry"]).context("county geometry")?;
        use geo::MapCoordsInPlace;
        area.map_coords_in_place(|c| {
            let (lat, lon) = gcj02_to_wgs84(c.y, c.x);
            geo::Coord { x: lon, y: lat }
        });
        counties.insert(code, County { name, area });
    }

    let villages: Vec<&Division> = divisions
        .iter()
        .filter(|d| is_village_committee(d))
        .collect();
    let townships: BTreeSet<&str> = villages.iter().map(|v| v.parent_code.as_str()).collect();
    let county_of_township: BTreeMap<&str, &str> = divisions
        .iter()
        .filter(|d| d.level == "township")
        .map(|d| (d.code.as_str(), d.parent_code.as_str()))
        .collect();
    let used_counties: BTreeSet<&str> = townships.iter().map(|t| county_of_township[t]).collect();

    // divisions.csv: the city, the counties and townships that hold villages.
    let mut writer = csv::Writer::from_path(out.join("divisions.csv"))?;
    writer.write_record(["code", "name", "level", "parent_code"])?;
    for d in &divisions {
        let keep = match d.level.as_str() {
            "city" => true,
            "county" => used_counties.contains(d.code.as_str()),
            "township" => townships.contains(d.code.as_str()),
            _ => false,
        };
        if keep {
            writer.write_record([&d.code, &d.name, &d.level, &d.parent_code])?;
        }
    }
    writer.flush()?;

    let geofence_county = |county: &str| boundary_county(county).to_owned();
    let extra = Extra::read(&source)?;

    // A township's equivalent radius: its county's area shared evenly among the county's
    // townships that have villages.
    let mut townships_per_area: BTreeMap<String, usize> = BTreeMap::new();
    for t in &townships {
        *townships_per_area
            .entry(geofence_county(county_of_township[t]))
            .or_default() += 1;
    }
    let township_radius_m = |area_county: &str| -> f64 {
        let county = &counties[area_county];
        let area_m2 = county.area.chamberlain_duquette_unsigned_area();
        (area_m2 / (std::f64::consts::PI * townships_per_area[area_county] as f64)).sqrt()
    };

    let mut writer = csv::Writer::from_path(out.join("villages.csv"))?;
    writer.write_record([
        "code",
        "name",
        "township_code",
        "county_code",
        "lat",
        "lon",
        "position_source",
        "geofence_radius_m",
        "geofence_county_code",
    ])?;
    let mut by_township: BTreeMap<&str, Vec<&Division>> = BTreeMap::new();
    for v in &villages {
        by_township
            .entry(v.parent_code.as_str())
            .or_default()
            .push(v);
    }
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    for (township, members) in &by_township {
        let county = county_of_township[township];
        let area_county = geofence_county(county);
        let area = &counties
            .get(&area_county)
            .with_context(|| format!("no boundary for {area_county}"))?
            .area;
        let seat = extra.seat(township, &old).filter(|p| area.contains(p));
        let radius = township_radius_m(&area_county);
        for (i, v) in members.iter().enumerate() {
            let own = extra.own(v, &old).filter(|p| area.contains(p));
            let (point, source, fence_radius, fence_county) = if let Some(p) = own {
                (p, "surveyed_point", Some(SURVEYED_RADIUS_M), String::new())
            } else if let Some(seat) = seat {
                // Sunflower spread around the township seat, pulled in until inside the county.
                let n = members.len() as f64;
                let mut distance = SPREAD_SHARE * radius * ((i as f64 + 0.5) / n).sqrt();
                let bearing = (i as f64 * GOLDEN_ANGLE_DEG) % 360.0;
                let mut p = Haversine.destination(seat, bearing, distance);
                while !area.contains(&p) && distance > 50.0 {
                    distance /= 2.0;
                    p = Haversine.destination(seat, bearing, distance);
                }
                if !area.contains(&p) {
                    p = seat;
                }
                (p, "township_seat", Some(radius.round()), String::new())
            } else {
                (
                    point_in_area(area, &v.code)?,
                    "county_area",
                    None,
                    area_county.clone(),
                )
            };
            *tally.entry(source).or_default() += 1;
            writer.write_record([
                v.code.clone(),
                v.name.clone(),
                v.parent_code.clone(),
                county.to_owned(),
                format!("{:.6}", round6(point.y())),
                format!("{:.6}", round6(point.x())),
                source.to_owned(),
                fence_radius.map(|r| format!("{r:.0}")).unwrap_or_default(),
                fence_county,
            ])?;
        }
    }
    writer.flush()?;

    let features: Vec<Value> = counties
        .iter()
        .map(|(code, c)| {
            json!({
                "type": "Feature",
                "properties": {"code": code, "name": c.name},
                "geometry": multi_polygon_to_geojson(&c.area),
            })
        })
        .collect();
    let collection = json!({"type": "FeatureCollection", "features": features});
    std::fs::write(
        out.join("county_boundaries.geojson"),
        format!("{collection}\n"),
    )?;

    eprintln!(
        "{} villages in {} townships of {} counties; positions: {:?}",
        villages.len(),
        townships.len(),
        used_counties.len(),
        tally
    );
    Ok(())
}
