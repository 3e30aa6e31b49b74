//! Local time: every user of Taizhang lives in Asia/Shanghai (UTC+8 all year since 1991), so
//! days and months — attendance days, survey months, the console's clock — are counted there.

use chrono::{DateTime, FixedOffset, NaiveDate, Offset, Utc};

/// Asia/Shanghai.
pub fn china() -> FixedOffset {
    // 8 h is inside FixedOffset's ±24 h range, so this cannot fail; UTC is the unreachable
    // fallback that keeps `expect` off the path.
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

/// An instant as local time.
pub fn local(at: DateTime<Utc>) -> DateTime<FixedOffset> {
    at.with_timezone(&china())
}

/// Today's local date.
pub fn today() -> NaiveDate {
    local(Utc::now()).date_naive()
}

/// The instant local midnight starts `day`.
pub fn start_of(day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    (midnight - chrono::Duration::hours(8)).and_utc()
}

/// `2020-07-20 08:02`, as the console and exports print instants.
pub fn minute(at: &DateTime<Utc>) -> String {
    local(*at).format("%Y-%m-%d %H:%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_turn_at_local_midnight() {
        let day = NaiveDate::from_ymd_opt(2020, 7, 20).unwrap_or_default();
        let start = start_of(day);
        assert_eq!(start.to_rfc3339(), "2020-07-19T16:00:00+00:00");
        assert_eq!(local(start).date_naive(), day);
        assert_eq!(
            local(start - chrono::Duration::seconds(1)).date_naive(),
            day.pred_opt().unwrap_or_default()
        );
        assert_eq!(minute(&start), "2020-07-20 00:00");
    }
}
