//! The division tree (city → counties → townships → villages), its fixtures, geofences and
//! the service that reads villages.

pub mod calibration;
pub mod edit;
pub mod fence;
pub mod fixtures;
pub mod geofences;
pub mod import;
pub mod service;

use diesel::prelude::*;

use crate::db::schema::{divisions, villages};
use crate::db::DbConnection;
use crate::domain::DivisionCode;

/// Every county, code and name, in code order.
pub fn counties(conn: &mut DbConnection) -> QueryResult<Vec<(String, String)>> {
    divisions::table
        .filter(divisions::level.eq("county"))
        .select((divisions::code, divisions::name))
        .order(divisions::code)
        .load(conn)
}

/// The villages of a county, code and name, in code order.
pub fn villages_in(
    conn: &mut DbConnection,
    county: &DivisionCode,
) -> QueryResult<Vec<(String, String)>> {
    villages::table
        .filter(villages::county_code.eq(county.as_str()))
        .select((villages::code, villages::name))
        .order(villages::code)
        .load(conn)
}

/// Names of divisions by code (villages, townships, counties), for lists that show names.
pub fn names(
    conn: &mut DbConnection,
    codes: &[String],
) -> QueryResult<std::collections::HashMap<String, String>> {
    let mut found: std::collections::HashMap<String, String> = divisions::table
        .filter(divisions::code.eq_any(codes))
        .select((divisions::code, divisions::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    // Villages are rows of their own table, not of the division tree.
    found.extend(
        villages::table
            .filter(villages::code.eq_any(codes))
            .select((villages::code, villages::name))
            .load::<(String, String)>(conn)?,
    );
    Ok(found)
}
