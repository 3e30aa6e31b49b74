//! The 919 villages, their townships and counties, built by `build-fixtures` into `fixtures/`
//! and embedded in the binary, so a fresh server needs nothing but itself. Loaded at start:
//! skipped when the stored fingerprint matches, otherwise inserted or updated row by row in one
//! transaction, so a newer binary with corrected fixtures updates an older database.

use std::collections::{BTreeMap, HashSet};

use anyhow::{anyhow, bail, Context};
use diesel::prelude::*;
use geo::{MultiPolygon, Point};
use sha2::{Digest, Sha256};

use crate::db::schema::{divisions, villages};
use crate::db::{read_setting, write_setting, write_transaction, DbConnection};
use crate::domain::{DivisionCode, DivisionLevel, GeofenceProvenance, PositionSource};
use crate::geography::{multi_polygon_from_geojson, multi_polygon_to_geojson, Geofence};

const DIVISIONS_CSV: &str = include_str!("../../../../fixtures/divisions.csv");
const VILLAGES_CSV: &str = include_str!("../../../../fixtures/villages.csv");
const COUNTY_BOUNDARIES: &str = include_str!("../../../../fixtures/county_boundaries.geojson");
const FINGERPRINT_KEY: &str = "fixtures_sha256";

/// The statistical-only development zone has no boundary of its own; it lies in 洮北区, whose
/// boundary stands in for it (as the county a zone village's fence must lie in).
pub const BOUNDARY_STAND_INS: [(&str, &str); 1] = [("220871000000", "220802000000")];

/// The county whose boundary holds the villages of `county`.
pub fn boundary_county(county: &str) -> &str {
    BOUNDARY_STAND_INS
        .iter()
        .find(|(from, _)| *from == county)
        .map_or(county, |(_, to)| to)
}

#[derive(Debug, Clone, serde::Deserialize)]
struct DivisionRecord {
    code: String,
    name: String,
    level: String,
    parent_code: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct VillageRecord {
    code: String,
    name: String,
    township_code: String,
    county_code: String,
    lat: f64,
    lon: f64,
    position_source: String,
    geofence_radius_m: Option<f64>,
    geofence_county_code: Option<String>,
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = divisions)]
struct DivisionRow {
    code: String,
    name: String,
    level: String,
    parent_code: Option<String>,
    boundary: Option<String>,
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = villages)]
struct VillageRow {
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

/// What a reload may change of a village whose fence the city or the field has set: not its
/// position or fence.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = villages)]
struct NamesRow<'a> {
    name: &'a str,
    township_code: &'a str,
    county_code: &'a str,
    position_source: &'a str,
}

pub struct Fixtures {
    divisions: Vec<DivisionRow>,
    villages: Vec<VillageRow>,
}

impl Fixtures {
    pub fn village_count(&self) -> usize {
        self.villages.len()
    }
}

fn fingerprint() -> String {
    let mut hash = Sha256::new();
    for part in [DIVISIONS_CSV, VILLAGES_CSV, COUNTY_BOUNDARIES] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hex::encode(hash.finalize())
}

fn records<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> anyhow::Result<Vec<T>> {
    csv::Reader::from_reader(text.as_bytes())
        .deserialize()
        .collect::<Result<Vec<T>, _>>()
        .with_context(|| format!("parsing the embedded {what}"))
}

/// Parses and checks the embedded fixtures.
pub fn parse() -> anyhow::Result<Fixtures> {
    let boundaries: serde_json::Value =
        serde_json::from_str(COUNTY_BOUNDARIES).context("county boundaries")?;
    let mut county_areas: BTreeMap<String, MultiPolygon<f64>> = BTreeMap::new();
    for feature in boundaries["features"]
        .as_array()
        .context("county boundaries: features")?
    {
        let code = feature["properties"]["code"]
            .as_str()
            .context("boundary code")?
            .to_owned();
        let area = multi_polygon_from_geojson(&feature["geometry"])
            .with_context(|| format!("boundary of {code}"))?;
        county_areas.insert(code, area);
    }

    let mut division_rows = Vec::new();
    for d in records::<DivisionRecord>(DIVISIONS_CSV, "divisions")? {
        let code = DivisionCode::parse(&d.code).map_err(|e| anyhow!("division {}: {e}", d.code))?;
        let level = DivisionLevel::parse(&d.level)
            .ok_or_else(|| anyhow!("division {}: level {}", d.code, d.level))?;
        if code.level() != level || level == DivisionLevel::Village {
            bail!(
                "division {} is listed as {} but its code says {}",
                d.code,
                d.level,
                code.level()
            );
        }
        division_rows.push(DivisionRow {
            boundary: county_areas
                .get(&d.code)
                .map(|a| multi_polygon_to_geojson(a).to_string()),
            parent_code: (level != DivisionLevel::City).then_some(d.parent_code),
            code: d.code,
            name: d.name,
            level: d.level,
        });
    }
    let known: HashSet<&str> = division_rows.iter().map(|d| d.code.as_str()).collect();

    let mut village_rows = Vec::new();
    for v in records::<VillageRecord>(VILLAGES_CSV, "villages")? {
        let code = DivisionCode::parse_level(&v.code, DivisionLevel::Village)
            .map_err(|e| anyhow!("village {}: {e}", v.code))?;
        if code.township().as_str() != v.township_code || code.county().as_str() != v.county_code {
            bail!(
                "village {} is filed under the wrong township or county",
                v.code
            );
        }
        if !known.contains(v.township_code.as_str()) || !known.contains(v.county_code.as_str()) {
            bail!(
                "village {} names a township or county the fixtures lack",
                v.code
            );
        }
        let source = PositionSource::parse(&v.position_source)
            .ok_or_else(|| anyhow!("village {}: source {}", v.code, v.position_source))?;
        let geofence = match (v.geofence_radius_m, v.geofence_county_code.as_deref()) {
            (Some(radius_m), None) => Geofence::Circle {
                center: Point::new(v.lon, v.lat),
                radius_m,
            },
            (None, Some(county)) => Geofence::Area(
                county_areas
                    .get(county)
                    .cloned()
                    .ok_or_else(|| anyhow!("village {}: no boundary for {county}", v.code))?,
            ),
            _ => bail!(
                "village {} needs either a geofence radius or a geofence county",
                v.code
            ),
        };
        village_rows.push(VillageRow {
            code: v.code,
            name: v.name,
            township_code: v.township_code,
            county_code: v.county_code,
            lat: v.lat,
            lon: v.lon,
            position_source: source.as_str().to_owned(),
            geofence_kind: geofence.kind().as_str().to_owned(),
            geofence_radius_m: geofence.radius_m(),
            geofence: geofence.to_geojson().to_string(),
            geofence_provenance: match source {
                PositionSource::SurveyedPoint => GeofenceProvenance::SurveyedPoint,
                PositionSource::CountyArea => GeofenceProvenance::CountyBoundary,
                _ => GeofenceProvenance::TownshipSeat,
            }
            .as_str()
            .to_owned(),
        });
    }
    Ok(Fixtures {
        divisions: division_rows,
        villages: village_rows,
    })
}

/// Loads the fixtures unless this database already holds exactly them. Returns the number of
/// villages written (0 when nothing changed).
pub fn load(conn: &mut DbConnection) -> anyhow::Result<usize> {
    let print = fingerprint();
    let stored = read_setting(conn, FINGERPRINT_KEY)?;
    if stored.as_deref() == Some(print.as_str()) {
        return Ok(0);
    }
    let fixtures = parse()?;
    write_transaction(conn, |conn| -> anyhow::Result<usize> {
        let existing: HashSet<String> = divisions::table
            .select(divisions::code)
            .load::<String>(conn)?
            .into_iter()
            .collect();
        // Parents come before children in the file, as foreign keys need.
        for row in &fixtures.divisions {
            if existing.contains(&row.code) {
                diesel::update(divisions::table.find(&row.code))
                    .set(row)
                    .execute(conn)?;
            } else {
                diesel::insert_into(divisions::table)
                    .values(row)
                    .execute(conn)?;
            }
        }
        // Each village's stored fence and provenance: fences the city imported or the field
        // calibrated are kept, and a fence that changes is stamped for the phones' download.
        let existing: BTreeMap<String, (String, String)> = villages::table
            .select((
                villages::code,
                (villages::geofence_provenance, villages::geofence),
            ))
            .load::<(String, (String, String))>(conn)?
            .into_iter()
            .collect();
        let kept = [
            GeofenceProvenance::Imported.as_str(),
            GeofenceProvenance::FieldCalibrated.as_str(),
        ];
        for row in &fixtures.villages {
            match existing.get(&row.code) {
                Some((provenance, _)) if kept.contains(&provenance.as_str()) => {
                    diesel::update(villages::table.find(&row.code))
                        .set(NamesRow {
                            name: &row.name,
                            township_code: &row.township_code,
                            county_code: &row.county_code,
                            position_source: &row.position_source,
                        })
                        .execute(conn)?;
                }
                Some((_, fence)) => {
                    diesel::update(villages::table.find(&row.code))
                        .set(row)
                        .execute(conn)?;
                    if *fence != row.geofence {
                        crate::changes::village(conn, &row.code)?;
                    }
                }
                None => {
                    diesel::insert_into(villages::table)
                        .values(row)
                        .execute(conn)?;
                }
            }
        }
        write_setting(conn, FINGERPRINT_KEY, &print)?;
        Ok(fixtures.villages.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_fixtures_hold_the_919_villages() {
        let fixtures = parse().expect("fixtures parse");
        assert_eq!(fixtures.village_count(), 919);
        let dev_zone = fixtures
            .villages
            .iter()
            .filter(|v| v.county_code == "220871000000")
            .count();
        assert_eq!(dev_zone, 14);
        let counties = fixtures
            .divisions
            .iter()
            .filter(|d| d.level == "county")
            .count();
        assert_eq!(counties, 6, "five counties and the development zone");
        // Every village sits inside the Baicheng area (WGS-84).
        assert!(fixtures
            .villages
            .iter()
            .all(|v| (44.0..47.0).contains(&v.lat) && (121.0..125.0).contains(&v.lon)));
    }
}
