//! Check-in verification: which flags a check-in earns. Pure functions over the facts, so each
//! rule is tested on its edges without a server.

use chrono::{DateTime, Utc};
use geo::Point;

use super::policy::CheckinPolicy;
use crate::domain::CheckinFlag;
use crate::geography::{distance_m, Geofence};

/// Another check-in of the same person, for the travel check.
#[derive(Debug, Clone, Copy)]
pub struct Neighbour {
    pub captured_at: DateTime<Utc>,
    pub position: Point<f64>,
    pub accuracy_m: f64,
}

/// What is known about a check-in when it arrives.
#[derive(Debug, Clone)]
pub struct Facts {
    pub captured_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// WGS-84.
    pub position: Point<f64>,
    pub accuracy_m: Option<f64>,
    pub mock_location: bool,
    pub exif_taken_at: Option<DateTime<Utc>>,
    /// WGS-84, (lat, lon).
    pub exif_position: Option<(f64, f64)>,
    /// The same person's check-ins just before and just after this one in capture time.
    pub neighbours: Vec<Neighbour>,
    /// Whether an earlier check-in photo of the same person or village is perceptually this one.
    pub photo_reused: bool,
}

/// The km/h needed to get from one position to another in the time between: the distance less
/// both accuracy radii (jitter is not travel), over the time (at least a second).
pub fn speed_kmh(a: Neighbour, b: Neighbour) -> f64 {
    let metres = (distance_m(a.position, b.position) - a.accuracy_m - b.accuracy_m).max(0.0);
    let seconds = (a.captured_at - b.captured_at)
        .num_milliseconds()
        .abs()
        .max(1000) as f64
        / 1000.0;
    metres / seconds * 3.6
}

pub fn flags(facts: &Facts, fence: &Geofence, policy: &CheckinPolicy) -> Vec<CheckinFlag> {
    let mut flags = Vec::new();
    let accuracy = facts.accuracy_m.unwrap_or(0.0);
    if !fence.admits(facts.position, accuracy) {
        flags.push(CheckinFlag::OutsideGeofence);
    }
    // A position without an accuracy is as good as one with a poor accuracy.
    if facts.accuracy_m.is_none_or(|a| a > policy.max_accuracy_m) {
        flags.push(CheckinFlag::PoorAccuracy);
    }
    let ahead = facts.captured_at - facts.received_at;
    if ahead > chrono::Duration::from_std(policy.future_tolerance).unwrap_or_default() {
        flags.push(CheckinFlag::FutureTime);
    }
    if facts.received_at - facts.captured_at
        > chrono::Duration::from_std(policy.upload_window).unwrap_or_default()
    {
        flags.push(CheckinFlag::StaleTime);
    }
    if facts.photo_reused {
        flags.push(CheckinFlag::PhotoReused);
    }
    let this = Neighbour {
        captured_at: facts.captured_at,
        position: facts.position,
        accuracy_m: accuracy,
    };
    if facts
        .neighbours
        .iter()
        .any(|n| speed_kmh(this, *n) > policy.max_speed_kmh)
    {
        flags.push(CheckinFlag::ImpossibleTravel);
    }
    if facts.mock_location {
        flags.push(CheckinFlag::MockLocation);
    }
    let time_off = facts.exif_taken_at.is_some_and(|t| {
        (t - facts.captured_at).abs()
            > chrono::Duration::from_std(policy.exif_time_tolerance).unwrap_or_default()
    });
    let place_off = facts.exif_position.is_some_and(|(lat, lon)| {
        distance_m(Point::new(lon, lat), facts.position) > policy.exif_distance_m + accuracy
    });
    if time_off || place_off {
        flags.push(CheckinFlag::ExifMismatch);
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use geo::{Destination, Haversine};

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2020, 7, 20, h, m, 0)
            .single()
            .expect("time")
    }

    fn fence() -> Geofence {
        Geofence::Circle {
            center: Point::new(122.566161, 45.736537),
            radius_m: 2000.0,
        }
    }

    fn facts() -> Facts {
        Facts {
            captured_at: at(1, 0),
            received_at: at(1, 5),
            position: Point::new(122.566161, 45.736537),
            accuracy_m: Some(10.0),
            mock_location: false,
            exif_taken_at: Some(at(1, 0)),
            exif_position: Some((45.736537, 122.566161)),
            neighbours: vec![],
            photo_reused: false,
        }
    }

    fn check(f: &Facts) -> Vec<CheckinFlag> {
        flags(f, &fence(), &CheckinPolicy::default())
    }

    #[test]
    fn a_good_checkin_has_no_flags() {
        assert!(check(&facts()).is_empty());
    }

    #[test]
    fn outside_unless_the_accuracy_circle_reaches_in() {
        let mut f = facts();
        f.position = Haversine.destination(Point::new(122.566161, 45.736537), 0.0, 2050.0);
        f.exif_position = Some((f.position.y(), f.position.x()));
        assert_eq!(check(&f), [CheckinFlag::OutsideGeofence]);
        f.accuracy_m = Some(60.0);
        assert!(
            check(&f).is_empty(),
            "60 m accuracy reaches 50 m back inside"
        );
    }

    #[test]
    fn accuracy_threshold() {
        let mut f = facts();
        f.accuracy_m = Some(100.0);
        assert!(check(&f).is_empty(), "at the threshold");
        f.accuracy_m = Some(100.5);
        assert_eq!(check(&f), [CheckinFlag::PoorAccuracy]);
        f.accuracy_m = None;
        assert_eq!(check(&f), [CheckinFlag::PoorAccuracy]);
    }

    #[test]
    fn device_times_against_the_server_and_the_window() {
        let mut f = facts();
        f.captured_at = f.received_at + chrono::Duration::minutes(4);
        f.exif_taken_at = Some(f.captured_at);
        assert!(check(&f).is_empty(), "a few minutes of clock skew");
        f.captured_at = f.received_at + chrono::Duration::minutes(6);
        f.exif_taken_at = Some(f.captured_at);
        assert_eq!(check(&f), [CheckinFlag::FutureTime]);
        f.captured_at = f.received_at - chrono::Duration::days(7) + chrono::Duration::minutes(1);
        f.exif_taken_at = Some(f.captured_at);
        assert!(check(&f).is_empty(), "just inside the upload window");
        f.captured_at = f.received_at - chrono::Duration::days(7) - chrono::Duration::minutes(1);
        f.exif_taken_at = Some(f.captured_at);
        assert_eq!(check(&f), [CheckinFlag::StaleTime]);
    }

    #[test]
    fn impossible_travel_but_not_jitter_or_a_drive() {
        let mut f = facts();
        let far = Haversine.destination(f.position, 90.0, 50_000.0);
        f.neighbours = vec![Neighbour {
            captured_at: f.captured_at - chrono::Duration::minutes(10),
            position: far,
            accuracy_m: 10.0,
        }];
        assert_eq!(
            check(&f),
            [CheckinFlag::ImpossibleTravel],
            "50 km in 10 minutes"
        );
        f.neighbours[0].captured_at = f.captured_at - chrono::Duration::minutes(40);
        assert!(check(&f).is_empty(), "50 km in 40 minutes is a drive");
        f.neighbours = vec![Neighbour {
            captured_at: f.captured_at,
            position: Haversine.destination(f.position, 0.0, 15.0),
            accuracy_m: 10.0,
        }];
        assert!(
            check(&f).is_empty(),
            "15 m at the same second is GPS jitter"
        );
    }

    #[test]
    fn mock_and_exif() {
        let mut f = facts();
        f.mock_location = true;
        assert_eq!(check(&f), [CheckinFlag::MockLocation]);
        let mut f = facts();
        f.exif_taken_at = Some(f.captured_at - chrono::Duration::minutes(29));
        assert!(check(&f).is_empty());
        f.exif_taken_at = Some(f.captured_at - chrono::Duration::hours(3));
        assert_eq!(
            check(&f),
            [CheckinFlag::ExifMismatch],
            "an old photo from the gallery"
        );
        let mut f = facts();
        let elsewhere = Haversine.destination(f.position, 180.0, 5_000.0);
        f.exif_position = Some((elsewhere.y(), elsewhere.x()));
        assert_eq!(check(&f), [CheckinFlag::ExifMismatch]);
        f.exif_position = None;
        f.exif_taken_at = None;
        assert!(check(&f).is_empty(), "no EXIF, nothing to compare");
    }
}
