//! Attendance check-ins: exactly-once intake, verification flags, photo reuse, attendance.

pub mod attendance;
pub mod input;
pub mod policy;
pub mod routes;
pub mod store;
pub mod verify;

pub use policy::CheckinPolicy;
