//! Household and village surveys: validated intake, exactly-once storage, household identity
//! and duplicate flags, and the reads the app and reviewers need.

pub mod duplicates;
pub mod duplicates_routes;
pub mod flag_text;
pub mod identity;
pub mod input;
pub mod read;
pub mod review;
pub mod review_routes;
pub mod routes;
pub mod store;
pub mod validate;
