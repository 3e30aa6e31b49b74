//! Household and village surveys: validated intake, exactly-once storage, household identity
//! and duplicate flags, review, and the reads the app and reviewers need; [`service`] holds the
//! operations the API and the console call.

pub mod bulk;
pub mod derived;
pub mod duplicate_list;
pub mod duplicates;
pub mod flag_text;
pub mod identity;
pub mod import;
pub mod ingest;
pub mod input;
pub mod review;
pub mod revisit;
pub mod service;
pub mod validate;
pub mod views;
