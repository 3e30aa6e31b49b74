//! The thresholds check-in verification and attendance use, all configurable.

use std::time::Duration;

use crate::domain::{CheckinKind, Role};

#[derive(Debug, Clone)]
pub struct CheckinPolicy {
    /// Accuracy radius above which a position is `poor_accuracy` (metres).
    pub max_accuracy_m: f64,
    /// How far ahead of the server's clock a device time may be before it is `future_time`.
    pub future_tolerance: Duration,
    /// How long after capture a check-in may arrive before it is `stale_time` (7 days).
    pub upload_window: Duration,
    /// Speed between a person's consecutive check-ins above which travel is impossible (km/h).
    pub max_speed_kmh: f64,
    /// EXIF time further than this from the submitted time is `exif_mismatch`.
    pub exif_time_tolerance: Duration,
    /// EXIF position further than this (metres) from the submitted one is `exif_mismatch`.
    pub exif_distance_m: f64,
    /// Perceptual-hash distance (bits) at or below which a photo counts as reused.
    pub photo_reuse_bits: u32,
    /// Days a month each kind of person must be present.
    pub required_days_first_secretary: u32,
    pub required_days_enumerator: u32,
    pub required_days_special_post: u32,
}

impl Default for CheckinPolicy {
    fn default() -> Self {
        Self {
            max_accuracy_m: 100.0,
            future_tolerance: Duration::from_secs(5 * 60),
            upload_window: Duration::from_secs(7 * 24 * 3600),
            max_speed_kmh: 150.0,
            exif_time_tolerance: Duration::from_secs(30 * 60),
            exif_distance_m: 1_000.0,
            photo_reuse_bits: crate::photos::REUSE_THRESHOLD,
            required_days_first_secretary: 20,
            required_days_enumerator: 20,
            required_days_special_post: 20,
        }
    }
}

impl CheckinPolicy {
    /// Days required of a person: by role for resident duty, the special-post rule for workers.
    pub fn required_days(&self, kind: CheckinKind, role: Option<Role>) -> u32 {
        match (kind, role) {
            (CheckinKind::SpecialPost, _) => self.required_days_special_post,
            (_, Some(Role::FirstSecretary)) => self.required_days_first_secretary,
            _ => self.required_days_enumerator,
        }
    }
}
