//! The division tree (city → counties → townships → villages) and its fixtures.

pub mod fixtures;
pub mod geofences;
pub mod routes;
