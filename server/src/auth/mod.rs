//! Who is calling and what they may see: passwords, tokens, sessions, the caller and the
//! areas a request narrows to; and the login, refresh, logout and `/me` routes.

pub mod area;
mod caller;
pub mod password;
mod reveal;
pub mod routes;
pub mod store;
pub mod tokens;

pub use area::Area;
pub use caller::{Caller, ScopeLevel};
pub use reveal::reveal_allowed;
