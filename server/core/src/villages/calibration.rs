//! Calibrating a village's position from the field: the first secretary's accepted resident-duty
//! check-ins of a month, one position a day (the day's first check-in, when they arrive at the
//! village), give a robust centre (their geometric median) and a spread (the median distance
//! to it). A county reviewer accepts a proposal with enough days and a tight enough spread: the
//! geofence becomes a circle there, `field_calibrated`.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use geo::Point;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::edit::{self, Change};
use super::fence::{self, Fields};
use super::service::{village_code, LatLon, Village};
use crate::auth::Caller;
use crate::db::schema::{checkin_reviews, checkins, users, villages};
use crate::db::{Db, DbConnection};
use crate::domain::{
    CheckinDecision, CheckinKind, CheckinStatus, DivisionCode, GeofenceProvenance, Month, Role,
    Rule,
};
use crate::error::{ApiError, ApiResult};
use crate::geography::{distance_m, Crs, Geofence};

/// Fewest days a proposal rests on: fewer is a visit or two, not where the village is.
pub const MIN_DAYS: usize = 5;
/// Largest spread (median distance of the days' positions from the centre) accepted: a village's
/// houses lie within about a kilometre of its office; more means the secretary checks in at
/// several places, and the centre says little.
pub const MAX_SPREAD_M: f64 = 1_000.0;
/// The calibrated circle's radius unless the reviewer sets one, and its bounds.
pub const DEFAULT_RADIUS_M: f64 = 2_000.0;
pub const MIN_RADIUS_M: f64 = 500.0;
pub const MAX_RADIUS_M: f64 = 5_000.0;

/// Metres per degree of latitude, for the local plane the median is found in.
const M_PER_DEG: f64 = 111_320.0;

/// The geometric median (the point least far from all in sum) by Weiszfeld's iteration in a
/// local plane: unlike the mean, a few check-ins made elsewhere do not pull it.
pub fn geometric_median(points: &[Point<f64>]) -> Option<Point<f64>> {
    let first = points.first()?;
    let scale = first.y().to_radians().cos();
    let xy: Vec<(f64, f64)> = points
        .iter()
        .map(|p| {
            (
                (p.x() - first.x()) * M_PER_DEG * scale,
                (p.y() - first.y()) * M_PER_DEG,
            )
        })
        .collect();
    let n = xy.len() as f64;
    let mut at = (
        xy.iter().map(|p| p.0).sum::<f64>() / n,
        xy.iter().map(|p| p.1).sum::<f64>() / n,
    );
    for _ in 0..200 {
        let (mut sx, mut sy, mut sw) = (0.0, 0.0, 0.0);
        for p in &xy {
            // A point the estimate sits on adds no direction; a tiny floor keeps the weight finite.
            let w = 1.0 / ((p.0 - at.0).hypot(p.1 - at.1)).max(1e-3);
            sx += p.0 * w;
            sy += p.1 * w;
            sw += w;
        }
        let next = (sx / sw, sy / sw);
        let step = (next.0 - at.0).hypot(next.1 - at.1);
        at = next;
        if step < 0.01 {
            break;
        }
    }
    Some(Point::new(
        first.x() + at.0 / (M_PER_DEG * scale),
        first.y() + at.1 / M_PER_DEG,
    ))
}

/// The median of the distances from `centre`.
pub fn spread_m(centre: Point<f64>, points: &[Point<f64>]) -> Option<f64> {
    let mut d: Vec<f64> = points.iter().map(|p| distance_m(centre, *p)).collect();
    d.sort_by(f64::total_cmp);
    let n = d.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(d[n / 2]),
        _ => Some((d[n / 2 - 1] + d[n / 2]) / 2.0),
    }
}

/// One day's first check-in position.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DayPosition {
    pub date: NaiveDate,
    pub lat: f64,
    pub lon: f64,
    /// Metres from the proposed centre.
    pub distance_m: f64,
}

/// What a month of check-ins proposes for a village's position.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CalibrationProposal {
    pub village_code: DivisionCode,
    pub village_name: String,
    pub month: Month,
    /// Days with an accepted (or reviewer-confirmed) resident-duty check-in by a first secretary.
    pub days: usize,
    /// The proposed position (WGS-84); none without check-ins.
    pub centre: Option<LatLon>,
    /// Median distance (m) of the days' positions from the centre.
    pub spread_m: Option<f64>,
    /// Metres from the village's current position to the proposed one.
    pub moved_m: Option<f64>,
    pub current_provenance: GeofenceProvenance,
    pub min_days: usize,
    pub max_spread_m: f64,
    /// Whether a county reviewer may accept it.
    pub acceptable: bool,
    /// Why not: `too_few_days`, `spread_too_large`, or `not_allowed` (the city imported this
    /// village's fence, which calibration does not replace).
    pub refusal: Option<Rule>,
    /// The same, in Chinese.
    pub refusal_detail: Option<String>,
    /// Each day's first position, by date.
    pub positions: Vec<DayPosition>,
}

/// Accepting a month's proposal.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptCalibration {
    /// The month whose check-ins propose the position, e.g. `2026-11`.
    #[schema(value_type = String, example = "2026-11")]
    pub month: Month,
    /// The circle's radius, 500–5000 m (default 2000).
    pub radius_m: Option<f64>,
}

/// The village facts a proposal is judged against.
struct Current {
    name: String,
    lat: f64,
    lon: f64,
    provenance: GeofenceProvenance,
}

/// A village's first check-in position of each day, by date.
type DayPoints = Vec<(NaiveDate, Point<f64>)>;

/// Each village's first check-in position per day of the month, from first secretaries'
/// resident-duty check-ins that were accepted or confirmed on review.
fn first_positions(
    conn: &mut DbConnection,
    codes: &[String],
    month: Month,
) -> QueryResult<BTreeMap<String, DayPoints>> {
    let secretaries = users::table
        .filter(users::role.eq(Role::FirstSecretary.as_str()))
        .select(users::id);
    let confirmed = checkin_reviews::table
        .filter(checkin_reviews::decision.eq(CheckinDecision::Confirm.as_str()))
        .select(checkin_reviews::checkin_id);
    let rows: Vec<(String, NaiveDate, NaiveDateTime, f64, f64)> = checkins::table
        .filter(checkins::village_code.eq_any(codes))
        .filter(checkins::kind.eq(CheckinKind::ResidentDuty.as_str()))
        .filter(checkins::attendance_date.between(month.first_day(), month.last_day()))
        .filter(checkins::user_id.eq_any(secretaries))
        .filter(
            checkins::status
                .eq(CheckinStatus::Accepted.as_str())
                .or(checkins::id.eq_any(confirmed)),
        )
        .order((
            checkins::village_code,
            checkins::attendance_date,
            checkins::captured_at,
        ))
        .select((
            checkins::village_code,
            checkins::attendance_date,
            checkins::captured_at,
            checkins::lat,
            checkins::lon,
        ))
        .load(conn)?;
    let mut out: BTreeMap<String, DayPoints> = BTreeMap::new();
    for (village, day, _, lat, lon) in rows {
        let days = out.entry(village).or_default();
        // Ordered by capture time within a day: the first row of a day is its first check-in.
        if days.last().is_none_or(|(d, _)| *d != day) {
            days.push((day, Point::new(lon, lat)));
        }
    }
    Ok(out)
}

fn judge(
    code: DivisionCode,
    month: Month,
    current: Current,
    days: &[(NaiveDate, Point<f64>)],
) -> CalibrationProposal {
    let points: Vec<Point<f64>> = days.iter().map(|(_, p)| *p).collect();
    let centre = geometric_median(&points);
    let spread = centre.and_then(|c| spread_m(c, &points));
    let refusal = if current.provenance == GeofenceProvenance::Imported {
        Some((
            Rule::NotAllowed,
            "该村围栏为市级导入数据，不由打卡位置校准替换".to_owned(),
        ))
    } else if days.len() < MIN_DAYS {
        Some((
            Rule::TooFewDays,
            format!(
                "{month} 仅有 {} 天有效打卡，至少需要 {MIN_DAYS} 天",
                days.len()
            ),
        ))
    } else if spread.is_some_and(|s| s > MAX_SPREAD_M) {
        Some((
            Rule::SpreadTooLarge,
            format!(
                "打卡位置离散度 {:.0} 米，超过 {MAX_SPREAD_M:.0} 米",
                spread.unwrap_or_default()
            ),
        ))
    } else {
        None
    };
    let positions = days
        .iter()
        .map(|(date, p)| DayPosition {
            date: *date,
            lat: p.y(),
            lon: p.x(),
            distance_m: centre.map_or(0.0, |c| distance_m(c, *p)),
        })
        .collect();
    CalibrationProposal {
        village_code: code,
        village_name: current.name,
        month,
        days: days.len(),
        centre: centre.map(|c| LatLon {
            lat: c.y(),
            lon: c.x(),
        }),
        spread_m: spread,
        moved_m: centre.map(|c| distance_m(c, Point::new(current.lon, current.lat))),
        current_provenance: current.provenance,
        min_days: MIN_DAYS,
        max_spread_m: MAX_SPREAD_M,
        acceptable: refusal.is_none(),
        refusal_detail: refusal.as_ref().map(|(_, d)| d.clone()),
        refusal: refusal.map(|(r, _)| r),
        positions,
    }
}

type CurrentRow = (String, String, f64, f64, String);

fn current_of(conn: &mut DbConnection, codes: &[String]) -> ApiResult<Vec<(String, Current)>> {
    let rows: Vec<CurrentRow> = villages::table
        .filter(villages::code.eq_any(codes))
        .order(villages::code)
        .select((
            villages::code,
            villages::name,
            villages::lat,
            villages::lon,
            villages::geofence_provenance,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(code, name, lat, lon, p)| {
            let provenance = GeofenceProvenance::parse(&p).ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("village {code}: provenance {p}"))
            })?;
            Ok((
                code,
                Current {
                    name,
                    lat,
                    lon,
                    provenance,
                },
            ))
        })
        .collect()
}

fn propose_in(
    conn: &mut DbConnection,
    code: &DivisionCode,
    month: Month,
) -> ApiResult<CalibrationProposal> {
    let codes = vec![code.as_str().to_owned()];
    let (_, current) = current_of(conn, &codes)?
        .pop()
        .ok_or_else(|| ApiError::NotFound(format!("村 {code} 不存在")))?;
    let days = first_positions(conn, &codes, month)?;
    let days = days.get(code.as_str()).map_or(&[][..], Vec::as_slice);
    Ok(judge(code.clone(), month, current, days))
}

/// Who may see proposals: county reviewers (of their county) and the city.
fn require_reader(caller: &Caller, code: &DivisionCode) -> ApiResult<()> {
    caller.require_role(&[Role::CountyReviewer, Role::CityAdmin])?;
    caller.require_village(code)
}

/// A month's proposal for one village.
pub async fn proposal(
    db: &Db,
    caller: &Caller,
    code: DivisionCode,
    month: Month,
) -> ApiResult<CalibrationProposal> {
    require_reader(caller, &code)?;
    db.run(move |conn| propose_in(conn, &code, month)).await
}

/// The villages of a county with an acceptable proposal for the month (county reviewers of it
/// and the city): the fixture estimates the field can improve, and calibrated villages whose
/// secretary now checks in more than 200 m from the calibrated point.
pub async fn pending(
    db: &Db,
    caller: &Caller,
    county: DivisionCode,
    month: Month,
) -> ApiResult<Vec<CalibrationProposal>> {
    caller.require_role(&[Role::CountyReviewer, Role::CityAdmin])?;
    caller.require_county(&county)?;
    db.run(move |conn| {
        let codes: Vec<String> = super::villages_in(conn, &county)?
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        let days = first_positions(conn, &codes, month)?;
        let mut out = Vec::new();
        for (code, current) in current_of(conn, &codes)? {
            let Some(days) = days.get(&code) else {
                continue;
            };
            let calibrated = current.provenance == GeofenceProvenance::FieldCalibrated;
            let p = judge(village_code(&code)?, month, current, days);
            if p.acceptable && (!calibrated || p.moved_m.is_some_and(|m| m > 200.0)) {
                out.push(p);
            }
        }
        Ok(out)
    })
    .await
}

/// Accepts a month's proposal (county reviewers, for their county's villages): the geofence
/// becomes a circle at the proposed centre, `field_calibrated`, audited. 422 when the proposal
/// rests on too few days or scatters too widely (`month`), or the radius is out of bounds.
pub async fn accept(
    db: &Db,
    caller: &Caller,
    code: DivisionCode,
    input: AcceptCalibration,
) -> ApiResult<Village> {
    caller.require_role(&[Role::CountyReviewer])?;
    caller.require_village(&code)?;
    let radius = input.radius_m.unwrap_or(DEFAULT_RADIUS_M);
    if !(MIN_RADIUS_M..=MAX_RADIUS_M).contains(&radius) {
        return Err(ApiError::field(
            "radius_m",
            Rule::Range,
            format!("半径须在 {MIN_RADIUS_M} 至 {MAX_RADIUS_M} 米之间"),
        ));
    }
    let user = caller.user_id.clone();
    let village = code.clone();
    db.transaction(move |conn| {
        let p = propose_in(conn, &village, input.month)?;
        if let (Some(rule), Some(detail)) = (p.refusal, &p.refusal_detail) {
            if rule == Rule::NotAllowed {
                return Err(ApiError::conflict(detail.clone()));
            }
            return Err(ApiError::field("month", rule, detail.clone()));
        }
        let centre = p
            .centre
            .as_ref()
            .ok_or_else(|| ApiError::field("month", Rule::TooFewDays, "没有有效打卡"))?;
        let county = edit::county_of(conn, village.as_str())?;
        let boundary = edit::county_boundary(conn, &county)?;
        let fence: Geofence = fence::circle(
            &Fields {
                geometry: "month".into(),
                coordinates: "month".into(),
                radius_m: "radius_m".into(),
            },
            centre.lat,
            centre.lon,
            Some(radius),
            Crs::Wgs84,
            &boundary,
        )
        .map_err(ApiError::Validation)?;
        edit::store(
            conn,
            &user,
            village.as_str(),
            &fence,
            &Change {
                provenance: GeofenceProvenance::FieldCalibrated,
                action: "calibrate_geofence",
                reason: None,
                source: json!({
                    "month": input.month.to_string(),
                    "days": p.days,
                    "spread_m": p.spread_m.map(|s| s.round()),
                }),
            },
        )
    })
    .await?;
    super::service::get(db, caller, code).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Destination, Haversine};

    #[test]
    fn the_median_ignores_a_few_check_ins_elsewhere() {
        let truth = Point::new(122.566, 45.736);
        let mut points: Vec<Point<f64>> = (0..12)
            .map(|i| Haversine.destination(truth, i as f64 * 30.0, 150.0 + 10.0 * i as f64))
            .collect();
        // Two days checked in at the township office, 6 km away.
        points.push(Haversine.destination(truth, 90.0, 6_000.0));
        points.push(Haversine.destination(truth, 95.0, 6_200.0));
        let centre = geometric_median(&points).expect("centre");
        assert!(
            distance_m(centre, truth) < 120.0,
            "{}",
            distance_m(centre, truth)
        );
        let spread = spread_m(centre, &points).expect("spread");
        assert!((100.0..400.0).contains(&spread), "{spread}");
    }

    #[test]
    fn one_point_is_its_own_median() {
        let p = Point::new(122.0, 45.0);
        let c = geometric_median(&[p, p, p]).expect("centre");
        assert!(distance_m(c, p) < 0.01);
        assert_eq!(spread_m(c, &[p]).map(f64::round), Some(0.0));
        assert!(geometric_median(&[]).is_none());
    }
}
