//! The village-level demand ledger (需求台账, SPEC §7): figures per village and month, rolled up
//! to township, county and city; monthly closes; quotas. [`service`] holds the operations the
//! API and the console call.

pub mod cache;
pub mod export;
pub mod figures;
pub mod inventory;
pub mod months;
pub mod node;
pub mod quotas;
pub mod rollup;
pub mod roster;
pub mod service;
pub mod signoff;
