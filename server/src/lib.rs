//! Taizhang (台账): field data collection for rural employment programmes and the village-level
//! employment demand ledger built from it. See `README.md` and `../shared/SPEC.md`.

pub mod api;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod checkins;
pub mod cli;
pub mod config;
pub mod console;
pub mod db;
pub mod domain;
pub mod error;
pub mod files;
pub mod geography;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod openapi;
pub mod photos;
pub mod privacy;
pub mod random;
pub mod secrets;
pub mod simulate;
pub mod startup;
pub mod state;
pub mod submissions;
pub mod surveys;
pub mod telemetry;
pub mod users;
pub mod villages;
