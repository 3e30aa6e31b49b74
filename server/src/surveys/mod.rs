//! Household and village surveys: validated intake, exactly-once storage, household identity
//! and duplicate flags, and the reads the app and reviewers need.

pub mod input;
pub mod read;
pub mod routes;
pub mod store;
pub mod validate;
