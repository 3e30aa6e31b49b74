//! Taizhang's core (台账): the domain types that parse at the edge, storage on SQLite and
//! PostgreSQL, the one error enum, and each capability's service, rules and SQL. Nothing here
//! knows HTTP but the error enum's mapping to problem+json; the server crate (`taizhang`) puts
//! handlers and the console on top. See `ARCHITECTURE.md`.

// `photos::decode`'s tests include the simulator's synthetic photos by path; that file names
// this crate as `taizhang_core`, as the simulator crate does.
#[cfg(test)]
extern crate self as taizhang_core;

pub mod audit;
pub mod auth;
pub mod catalog;
pub mod changes;
pub mod checkins;
pub mod db;
pub mod domain;
pub mod employers;
pub mod error;
pub mod files;
pub mod geography;
pub mod ledger;
pub mod metrics;
pub mod photos;
pub mod privacy;
pub mod random;
pub mod secrets;
pub mod sheets;
pub mod submissions;
pub mod surveys;
pub mod sync;
pub mod telemetry;
pub mod users;
pub mod villages;
