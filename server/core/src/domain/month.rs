//! A calendar month, `YYYY-MM`: the period of the ledger, attendance and the monthly close.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{time, Invalid, Rule};

/// A month from 2015-01 (the programme's start) to 9999-12. Ordered, so `a < b` is "a before b".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    /// 1–12.
    month: u32,
}

impl Month {
    pub const FIRST: Month = Month {
        year: 2015,
        month: 1,
    };

    /// Parses `YYYY-MM`, from 2015-01 on.
    pub fn parse(value: &str) -> Result<Month, Invalid> {
        let refuse = || Invalid::new(Rule::MonthFormat, "须为 2015-01 以后、YYYY-MM 格式的月份");
        let bytes = value.as_bytes();
        if bytes.len() != 7 || bytes[4] != b'-' {
            return Err(refuse());
        }
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let (year, month) = (&value[..4], &value[5..]);
        if !digits(year) || !digits(month) {
            return Err(refuse());
        }
        let year: i32 = year.parse().map_err(|_| refuse())?;
        let month: u32 = month.parse().map_err(|_| refuse())?;
        let parsed = Month { year, month };
        if !(1..=12).contains(&month) || parsed < Month::FIRST {
            return Err(refuse());
        }
        Ok(parsed)
    }

    /// The month an instant falls in, in Asia/Shanghai.
    pub fn of<Tz: TimeZone>(at: &DateTime<Tz>) -> Month {
        Month::containing(time::local(at.with_timezone(&Utc)).date_naive())
    }

    /// The month a date falls in.
    pub fn containing(day: NaiveDate) -> Month {
        Month {
            year: day.year(),
            month: day.month(),
        }
    }

    /// The current month in Asia/Shanghai.
    pub fn current() -> Month {
        Month::of(&Utc::now())
    }

    pub fn year(self) -> i32 {
        self.year
    }

    /// 1–12.
    pub fn number(self) -> u32 {
        self.month
    }

    pub fn previous(self) -> Month {
        if self.month == 1 {
            Month {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Month {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// The first day.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or_default()
    }

    /// The last day.
    pub fn last_day(self) -> NaiveDate {
        self.next().first_day().pred_opt().unwrap_or_default()
    }

    /// Every day, first to last.
    pub fn days(self) -> impl Iterator<Item = NaiveDate> {
        let last = self.last_day();
        self.first_day().iter_days().take_while(move |d| *d <= last)
    }

    /// The instant the month ends: local midnight starting the next month.
    pub fn end(self) -> DateTime<Utc> {
        time::start_of(self.next().first_day())
    }

    /// `2020年7月`, as titles print it.
    pub fn title(self) -> String {
        format!("{}年{}月", self.year, self.month)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Month {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Month::parse(s)
    }
}

impl Serialize for Month {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Month {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Month::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Month {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .pattern(Some(r"^\d{4}-(0[1-9]|1[0-2])$"))
            .examples([serde_json::json!("2020-07")])
            .into()
    }
}

impl utoipa::ToSchema for Month {}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Month {
        Month::parse(s).unwrap_or(Month::FIRST)
    }

    #[test]
    fn parses_only_well_formed_months_from_2015() {
        assert_eq!(m("2020-07").to_string(), "2020-07");
        for bad in [
            "2020-7",
            "2020-13",
            "2020-00",
            "2014-12",
            "20-07-01",
            "２０２０-07",
            "+020-07",
            "2020/07",
            "",
        ] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn walks_across_years() {
        assert_eq!(m("2020-01").previous(), m("2019-12"));
        assert_eq!(m("2019-12").next(), m("2020-01"));
        assert_eq!(m("2020-02").last_day().to_string(), "2020-02-29");
        assert_eq!(m("2020-02").days().count(), 29);
        assert_eq!(m("2020-07").end().to_rfc3339(), "2020-07-31T16:00:00+00:00");
        assert!(m("2019-12") < m("2020-01"));
        assert_eq!(m("2020-07").year(), 2020);
        assert_eq!(m("2020-07").title(), "2020年7月");
    }

    #[test]
    fn an_instant_belongs_to_its_month_in_china() {
        let at = DateTime::parse_from_rfc3339("2020-07-31T16:30:00Z").unwrap_or_default();
        assert_eq!(Month::of(&at), m("2020-08"));
    }

    #[test]
    fn travels_as_text() {
        let json = serde_json::to_string(&m("2020-07")).unwrap_or_default();
        assert_eq!(json, "\"2020-07\"");
        assert!(serde_json::from_str::<Month>("\"2020-13\"").is_err());
    }
}
