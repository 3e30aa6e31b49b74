//! A 12-digit administrative division code and its level (city, county, township, village).

use crate::domain::Rule;
use std::fmt;

use serde::Serialize;

use super::{DivisionLevel, Invalid};

/// A 12-digit official statistical division code (统计用区划代码), e.g. `220802100201`.
///
/// The level follows from which trailing groups are zero: `2208 00 000 000` is the city,
/// `220802 000 000` a county, `220802100 000` a township, anything else a village.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DivisionCode(String);

impl DivisionCode {
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        if value.len() != 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Invalid::new(
                Rule::DivisionCodeFormat,
                "须为 12 位统计用区划代码",
            ));
        }
        if value.starts_with("00") {
            return Err(Invalid::new(Rule::DivisionCodeFormat, "须以省级代码开头"));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn level(&self) -> DivisionLevel {
        let c = self.0.as_bytes();
        let zero = |range: std::ops::Range<usize>| c[range].iter().all(|&b| b == b'0');
        if zero(4..12) {
            DivisionLevel::City
        } else if zero(6..12) {
            DivisionLevel::County
        } else if zero(9..12) {
            DivisionLevel::Township
        } else {
            DivisionLevel::Village
        }
    }

    /// The code of the county (or county-level unit) this division lies in.
    pub fn county(&self) -> DivisionCode {
        DivisionCode(format!("{}000000", &self.0[..6]))
    }

    /// A SQL `LIKE` pattern matching every division code in the same county.
    pub fn county_pattern(&self) -> String {
        format!("{}%", &self.0[..6])
    }

    /// The code of the township this division lies in (itself for a township).
    pub fn township(&self) -> DivisionCode {
        DivisionCode(format!("{}000", &self.0[..9]))
    }

    /// Parses and additionally requires the given level.
    pub fn parse_level(value: &str, level: DivisionLevel) -> Result<Self, Invalid> {
        let code = Self::parse(value)?;
        if code.level() != level {
            return Err(Invalid::new(
                Rule::DivisionLevel,
                format!("须为{}级代码", level.label()),
            ));
        }
        Ok(code)
    }
}

impl fmt::Display for DivisionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl utoipa::PartialSchema for DivisionCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[0-9]{12}$"))
            .description(Some("12-digit statistical division code (统计用区划代码)"))
            .examples([serde_json::json!("220802100201")])
            .into()
    }
}

impl utoipa::ToSchema for DivisionCode {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_trailing_zeros() {
        let level = |c: &str| DivisionCode::parse(c).map(|c| c.level());
        assert_eq!(level("220800000000"), Ok(DivisionLevel::City));
        assert_eq!(level("220802000000"), Ok(DivisionLevel::County));
        assert_eq!(level("220802100000"), Ok(DivisionLevel::Township));
        assert_eq!(level("220802100201"), Ok(DivisionLevel::Village));
    }

    #[test]
    fn parents_are_derived_from_the_code() {
        let v = DivisionCode::parse("220802100201").expect("valid");
        assert_eq!(v.county().as_str(), "220802000000");
        assert_eq!(v.township().as_str(), "220802100000");
    }

    #[test]
    fn malformed_codes_are_refused() {
        for bad in [
            "",
            "2208021002",
            "22080210020１",
            "22080210020a",
            "000000000000",
        ] {
            assert!(DivisionCode::parse(bad).is_err(), "{bad}");
        }
        assert!(DivisionCode::parse_level("220802000000", DivisionLevel::Village).is_err());
    }
}
