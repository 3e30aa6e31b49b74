//! Who is calling and what they may see: passwords, tokens, sessions, the caller extractor,
//! and the login, refresh, logout and `/me` routes.

mod caller;
pub mod password;
pub mod routes;
pub mod store;
pub mod tokens;

pub use caller::{Caller, ScopeLevel};
