//! The HTTP API tested end to end: the real server on a random port, against SQLite and
//! against a PostgreSQL the tests start themselves (see `pg.rs`).

mod conformance;
mod helpers;
mod moto;
mod pg;
mod server_process;

mod auth;
mod bombs;
mod browser;
mod checkins;
mod chinese;
mod cli;
mod console;
mod contract;
mod errors;
mod ledger;
mod limits;
mod metrics;
mod ops;
mod phash;
mod photos;
mod review;
mod scope;
mod simulate;
mod surveys;
mod text;
mod users;
mod villages;
