//! The HTTP API tested end to end: the real server on a random port, against SQLite and
//! against a PostgreSQL the tests start themselves (the test kit, `server/testkit`).

// Tests and benches fail by panicking: `unwrap` and `expect` are their assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
// The test kit's fixtures, under the names the tests use.
use taizhang_testkit::{pg, process as server_process};

mod attendance;
mod auth;
mod backup;
mod bombs;
mod browser;
mod checkins;
mod chinese;
mod cli;
mod console;
mod contract;
mod employers;
mod errors;
mod geofences;
mod group_commit;
mod household_import;
mod ledger;
mod limits;
mod metrics;
mod months;
mod ops;
mod phash;
mod photos;
mod review;
mod revisit;
mod scope;
mod simulate;
mod surveys;
mod sync;
mod text;
mod users;
mod villages;
