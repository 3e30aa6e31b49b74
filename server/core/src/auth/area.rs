//! The area a request narrows to — a village, a township, a county — parsed at the edge and
//! checked against the caller's scope, so that no capability sees an area its caller may not
//! read. Every list that takes `village`, `township` or `county` parameters goes through here.

use chrono::{NaiveDate, NaiveDateTime};

use super::Caller;
use crate::domain::{time, DivisionCode, DivisionLevel, Month};
use crate::error::{bad_query, ApiResult};

/// Narrowing to areas the caller may read. Empty means the caller's whole scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Area {
    pub village: Option<DivisionCode>,
    pub township: Option<DivisionCode>,
    pub county: Option<DivisionCode>,
}

impl Area {
    /// Parses the query's `village`, `township` and `county` codes (400 `invalid_query` naming
    /// the parameter) and checks each against the caller's scope (403 `out_of_scope`).
    pub fn parse(
        caller: &Caller,
        village: Option<&str>,
        township: Option<&str>,
        county: Option<&str>,
    ) -> ApiResult<Area> {
        let area = Area {
            village: code("village", village, DivisionLevel::Village)?,
            township: code("township", township, DivisionLevel::Township)?,
            county: code("county", county, DivisionLevel::County)?,
        };
        area.require(caller)?;
        Ok(area)
    }

    /// Refuses (403 `out_of_scope`) an area outside the caller's scope: services check the
    /// area they are given, whoever built it.
    pub fn require(&self, caller: &Caller) -> ApiResult<()> {
        if let Some(v) = &self.village {
            caller.require_village(v)?;
        }
        if let Some(t) = &self.township {
            caller.require_county(&t.county())?;
        }
        if let Some(c) = &self.county {
            caller.require_county(c)?;
        }
        Ok(())
    }
}

/// Narrows a boxed query to the villages the caller may read and, within them, to an [`Area`]'s
/// village and county, by the query's village-code column:
/// `narrow_to_area!(select, checkins::village_code, caller, &area)`. A macro, since diesel's
/// boxed queries of different tables share no type to write one function over.
macro_rules! narrow_to_area {
    ($select:ident, $column:expr, $caller:expr, $area:expr) => {{
        let (caller, area): (&$crate::auth::Caller, &$crate::auth::Area) = ($caller, $area);
        match caller.scope_level() {
            $crate::auth::ScopeLevel::City => {}
            $crate::auth::ScopeLevel::County => {
                $select = $select.filter($column.like(caller.county_pattern()));
            }
            $crate::auth::ScopeLevel::Villages => {
                let own: Vec<String> = caller
                    .village_codes
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect();
                $select = $select.filter($column.eq_any(own));
            }
        }
        if let Some(v) = &area.village {
            $select = $select.filter($column.eq(v.as_str().to_owned()));
        }
        if let Some(c) = &area.county {
            $select = $select.filter($column.like(c.county_pattern()));
        }
    }};
}
pub(crate) use narrow_to_area;

/// A division code of one level from a query parameter.
pub fn code(
    field: &str,
    value: Option<&str>,
    level: DivisionLevel,
) -> ApiResult<Option<DivisionCode>> {
    value
        .map(|v| DivisionCode::parse_level(v, level).map_err(|e| bad_query(field, e.message)))
        .transpose()
}

/// A `YYYY-MM` month from a query parameter, not after the current one; absent is the current.
pub fn month(field: &str, value: Option<&str>) -> ApiResult<Month> {
    let current = Month::current();
    let Some(value) = value else {
        return Ok(current);
    };
    let month = Month::parse(value.trim()).map_err(|e| bad_query(field, e.message))?;
    if month > current {
        return Err(bad_query(
            field,
            format!("{month} 尚未开始（当前为 {current}）"),
        ));
    }
    Ok(month)
}

/// A page size from a query parameter: `default` when absent, else 1 to `max`.
pub fn limit(value: Option<i64>, default: i64, max: i64) -> ApiResult<i64> {
    let limit = value.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(bad_query("limit", format!("须为 1 至 {max}")))
    }
}

/// A local date from a query parameter, as the UTC instant its midnight (plus `plus_days`)
/// starts: `from` is inclusive (`plus_days` 0), `to` takes the whole day (`plus_days` 1).
pub fn day_start(field: &str, value: &str, plus_days: i64) -> ApiResult<NaiveDateTime> {
    let day = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| bad_query(field, "须为 YYYY-MM-DD 格式的日期"))?;
    Ok(time::start_of(day + chrono::Duration::days(plus_days)).naive_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;
    use crate::error::ErrorCode;

    fn reviewer() -> Caller {
        Caller {
            user_id: "u".into(),
            session_id: "s".into(),
            name: "n".into(),
            phone: "13800000000".into(),
            role: Role::CountyReviewer,
            county_code: DivisionCode::parse("220802000000").ok(),
            village_codes: Vec::new(),
        }
    }

    #[test]
    fn areas_are_parsed_then_checked_against_the_scope() {
        let caller = reviewer();
        let area = Area::parse(&caller, Some("220802100201"), None, None).map_err(|e| e.code());
        assert!(area.is_ok());
        let foreign = Area::parse(&caller, None, None, Some("220881000000")).map_err(|e| e.code());
        assert_eq!(foreign.err(), Some(ErrorCode::OutOfScope));
        let foreign_township =
            Area::parse(&caller, None, Some("220881100000"), None).map_err(|e| e.code());
        assert_eq!(foreign_township.err(), Some(ErrorCode::OutOfScope));
        let wrong_level =
            Area::parse(&caller, Some("220802000000"), None, None).map_err(|e| e.code());
        assert_eq!(wrong_level.err(), Some(ErrorCode::InvalidQuery));
    }

    #[test]
    fn months_limits_and_days_are_refused_with_the_parameter_named() {
        assert_eq!(
            month("month", Some("2020-13")).map_err(|e| e.code()).err(),
            Some(ErrorCode::InvalidQuery)
        );
        assert!(month("month", Some("2999-01")).is_err());
        assert_eq!(month("month", None).ok(), Some(Month::current()));
        assert!(limit(Some(0), 50, 200).is_err() && limit(None, 50, 200).ok() == Some(50));
        let from = day_start("from", "2020-07-20", 0).map(|t| t.to_string());
        assert_eq!(from.ok().as_deref(), Some("2020-07-19 16:00:00"));
    }
}
