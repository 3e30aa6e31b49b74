//! The phone's download channel (`GET /api/v1/sync`): an incremental feed of what the phone
//! needs for its villages (households with their effective versions and members, tombstones,
//! the caller's own review states, village records) and the employer registry, paged behind an
//! opaque, tamper-proof cursor. It reads the change stamps `changes` writes and the surveys'
//! tables; nothing below it knows it exists.

pub mod cursor;
pub mod feed;
pub mod households;
pub mod service;
