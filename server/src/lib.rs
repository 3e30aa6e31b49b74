//! Taizhang (台账): field data collection for rural employment programmes and the village-level
//! employment demand ledger built from it. This crate is the server: the JSON API, the review
//! console, the HTTP layer, start-up and the command line, over `taizhang-core` (domain,
//! storage, services) and `taizhang-simulate` (generated data and the field simulator). See
//! `README.md`, `ARCHITECTURE.md` and `../shared/SPEC.md`.

pub mod api;
pub mod backup;
pub mod cli;
pub mod config;
pub mod console;
pub mod http;
pub mod openapi;
pub mod startup;
pub mod state;

// The layers below, under the names the server and its tests use.
pub use taizhang_core::{
    audit, auth, catalog, checkins, db, domain, employers, error, files, geography, ledger,
    metrics, photos, privacy, random, secrets, sheets, submissions, surveys, sync, telemetry,
    users, villages,
};
pub use taizhang_simulate as simulate;
