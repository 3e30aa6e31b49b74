//! Who is calling and what they may see: passwords, tokens, sessions, login throttling, the
//! caller and the areas a request narrows to; the service behind login, refresh, logout and
//! `/me`.

pub mod area;
mod caller;
pub mod password;
mod policy;
mod reveal;
pub mod service;
pub mod store;
pub mod throttle;
pub mod tokens;

pub use area::Area;
pub use caller::{Caller, ScopeLevel};
pub use policy::AuthPolicy;
pub use reveal::reveal_allowed;
