//! How long tokens live and how failed logins are throttled: the settings of authentication,
//! filled by the command line through `config::Settings`.

use std::time::Duration;

/// How failed logins are throttled (README, "Login throttling"). Attempts are counted per
/// (phone, address) — per (phone, address, device) for a device that has logged in to the
/// account before — so nobody else's failures delay the owner.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Failures of one phone from one address (or known device) answered without delay: typos.
    pub free_failures: u32,
    /// The wait after the first failure beyond those; it doubles with each further failure.
    pub first_delay: Duration,
    /// The longest wait between two attempts of one phone from one address.
    pub max_delay: Duration,
    /// Window over which the phones that failed from one address are counted.
    pub login_window: Duration,
    /// Distinct phone numbers that may fail from one address within the window; beyond it the
    /// address may try no further phones (those already tried, and known devices, still may).
    pub max_phones_per_addr: u32,
    /// Failures of one phone from all addresses within a day beyond which only devices that
    /// have logged in to it before may try (a guess spread over many addresses).
    pub max_failures_per_phone: u32,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            free_failures: 3,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            login_window: Duration::from_secs(15 * 60),
            max_phones_per_addr: 20,
            max_failures_per_phone: 100,
        }
    }
}
