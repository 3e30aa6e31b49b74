//! Attendance check-ins: exactly-once intake, verification flags, photo reuse, attendance;
//! [`service`] holds the operations the API and the console call.

pub mod attendance;
pub mod expected;
pub mod input;
pub mod partitions;
pub mod policy;
pub mod review;
pub mod service;
pub mod sheets;
pub mod store;
pub mod subsidies;
pub mod verify;

pub use policy::CheckinPolicy;
