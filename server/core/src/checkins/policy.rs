//! The thresholds check-in verification and attendance use, all configurable.

use std::time::Duration;

use crate::domain::{CheckinKind, EmploymentStatus, Role, SubsidyMethod};

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
    /// How the post subsidies (岗位补贴) follow attendance.
    pub subsidy: SubsidyRule,
}

/// The monthly post subsidy and how it follows the days attended. Amounts are integer fen
/// (分), so no sum or ratio ever meets a float.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubsidyRule {
    /// Temporary public-welfare posts: 800 yuan a month, the standard of 吉人社函〔2020〕28号
    /// that the city's notice quotes.
    pub temporary_post_monthly_fen: i64,
    /// Poverty special posts: the notice gives no figure (it defers to 吉扶办〔2020〕4号, which
    /// is not in the record), so the default is the temporary posts' 800 yuan until the city
    /// sets its own (`--special-post-monthly-yuan`).
    pub special_post_monthly_fen: i64,
    pub method: SubsidyMethod,
}

impl Default for SubsidyRule {
    fn default() -> Self {
        Self {
            temporary_post_monthly_fen: 80_000,
            special_post_monthly_fen: 80_000,
            method: SubsidyMethod::Prorated,
        }
    }
}

impl SubsidyRule {
    /// The full monthly amount of a post (fen); nothing for any other status.
    pub fn monthly_fen(&self, post: EmploymentStatus) -> i64 {
        match post {
            EmploymentStatus::TemporaryPublicPost => self.temporary_post_monthly_fen,
            EmploymentStatus::SpecialPost => self.special_post_monthly_fen,
            _ => 0,
        }
    }

    /// The amount due (fen) for `attended` of `required` days on a post paying `monthly` fen:
    /// pro-rated `monthly × attended ÷ required`, fractions of a fen dropped, never more than
    /// `monthly` (and the full amount when no day is required); or, all-or-nothing, `monthly`
    /// once the requirement is met.
    pub fn amount_due(&self, monthly: i64, attended: u32, required: u32) -> i64 {
        let (attended, required) = (i64::from(attended), i64::from(required));
        match self.method {
            _ if required == 0 => monthly,
            SubsidyMethod::Prorated => (monthly * attended / required).min(monthly),
            SubsidyMethod::AllOrNothing if attended >= required => monthly,
            SubsidyMethod::AllOrNothing => 0,
        }
    }
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
            subsidy: SubsidyRule::default(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsidies_are_prorated_in_fen_and_capped() {
        let rule = SubsidyRule::default();
        assert_eq!(rule.amount_due(80_000, 0, 20), 0);
        assert_eq!(rule.amount_due(80_000, 7, 20), 28_000);
        assert_eq!(rule.amount_due(80_000, 7, 21), 26_666);
        assert_eq!(rule.amount_due(80_000, 25, 20), 80_000);
        assert_eq!(rule.amount_due(80_000, 0, 0), 80_000);
        let strict = SubsidyRule {
            method: SubsidyMethod::AllOrNothing,
            ..rule
        };
        assert_eq!(strict.amount_due(80_000, 19, 20), 0);
        assert_eq!(strict.amount_due(80_000, 20, 20), 80_000);
    }
}
