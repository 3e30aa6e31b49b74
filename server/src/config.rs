//! Runtime settings. The command line (`cli.rs`) fills them from flags and `TAIZHANG_*`
//! environment variables; tests build them directly.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::auth::AuthPolicy;
use crate::checkins::CheckinPolicy;
use crate::db::{default_sqlite_path, DatabaseUrl};
use crate::photos::PhotoSettings;
use crate::secrets::SecretSource;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on, e.g. `127.0.0.1:8080` (port 0 picks a free port).
    pub bind: String,
    /// Where the embedded database, the generated secret key and photos live.
    pub data_dir: PathBuf,
    pub database: DatabaseUrl,
    pub secret: SecretSource,
    /// Create the demo users of `fixtures/demo_users.json` at start.
    pub demo: bool,
    /// With `demo`: generate this many households' surveys when the database has none, so the
    /// console has something to review (0: none).
    pub demo_households: usize,
    /// HTTP worker threads (default: one per core).
    pub workers: Option<usize>,
    pub db_pool_size: u32,
    /// Largest accepted JSON body, in bytes.
    pub json_limit: usize,
    /// Take the client address from `Forwarded`/`X-Forwarded-For` (only behind a trusted proxy).
    pub trust_proxy_headers: bool,
    /// How slowly request bodies may arrive; requests in flight per client address.
    pub http: HttpLimits,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_timeout: Duration,
    pub auth: AuthPolicy,
    pub photos: PhotoSettings,
    pub checkins: CheckinPolicy,
    /// How often the ledger's figures of villages changed since are recomputed in the
    /// background (current and previous month); `None` leaves it to the readers.
    pub ledger_warm_interval: Option<Duration>,
}

impl Settings {
    /// Defaults for a data directory: SQLite inside it, the generated secret key, port 8080.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            bind: "127.0.0.1:8080".into(),
            database: DatabaseUrl::Sqlite(default_sqlite_path(&data_dir)),
            secret: SecretSource::DataDir,
            demo: false,
            demo_households: 0,
            workers: None,
            db_pool_size: 16,
            json_limit: 1024 * 1024,
            trust_proxy_headers: false,
            http: HttpLimits::default(),
            shutdown_timeout: Duration::from_secs(30),
            auth: AuthPolicy::default(),
            photos: PhotoSettings::new(&data_dir),
            checkins: CheckinPolicy::default(),
            ledger_warm_interval: Some(Duration::from_secs(5)),
            data_dir,
        }
    }
}

/// How slowly a request body may arrive, and how many requests one address may have in flight.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// How long a body may take before it must keep up `body_min_rate`.
    pub body_grace: Duration,
    /// Bytes a second a body must average beyond the grace period.
    pub body_min_rate: u64,
    /// The longest any body may take, however steadily it arrives.
    pub body_max_time: Duration,
    /// Requests of one client address in flight at once.
    pub max_in_flight_per_addr: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            // A phone that has just connected on a weak link may stall for several seconds.
            body_grace: Duration::from_secs(20),
            // 4 kbit/s: below anything a phone that is really sending manages.
            body_min_rate: 500,
            // A 15 MB photo needs 25 KB/s (200 kbit/s) to arrive within it; most are 2–5 MB.
            body_max_time: Duration::from_secs(600),
            // Many honest users share one address behind a village or carrier NAT, but their
            // requests are short; an app sends a few at a time, a console page a dozen.
            max_in_flight_per_addr: 64,
        }
    }
}
