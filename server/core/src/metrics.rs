//! Metrics: HTTP requests by route and status, a latency histogram, database pool use, and the
//! domain series an operator watches — submissions by kind and outcome, flags raised, the review
//! queue, how far the ledger cache is behind, photo store errors, build info.
//!
//! The registry encodes OpenMetrics text; [`Format::Prometheus`] rewrites it into the Prometheus
//! text format 0.0.4 for scrapers that do not ask for OpenMetrics. Every label takes values from
//! a fixed list (route patterns, enum variants, six counties), so the number of series is bounded.

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::Value;

use crate::db::GroupCommitStats;
use crate::domain::{CheckinFlag, SurveyFlag};
use crate::error::{ApiError, ErrorCode};
use crate::photos::store_errors::{OperationLabels, StoreErrors};
use crate::submissions::{Kind, Outcome};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubmissionLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlagLabels {
    kind: &'static str,
    flag: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CountyLabels {
    county: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MonthLabels {
    /// `current` or `previous`: the months the background warmer keeps fresh.
    month: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

/// How a submission request ended, as its `outcome` label.
pub const OUTCOMES: [&str; 5] = ["stored", "replayed", "refused", "id_reused", "failed"];
const KINDS: [Kind; 3] = [Kind::HouseholdSurvey, Kind::VillageSurvey, Kind::Checkin];

/// The exposition format a scraper gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4, for anyone who does not ask for OpenMetrics.
    Prometheus,
    OpenMetrics,
}

impl Format {
    pub const PROMETHEUS_CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";
    pub const OPENMETRICS_CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => Self::PROMETHEUS_CONTENT_TYPE,
            Format::OpenMetrics => Self::OPENMETRICS_CONTENT_TYPE,
        }
    }

    /// Chooses by the `Accept` header: OpenMetrics 1.0.0 when it is acceptable and preferred at
    /// least as much as plain text (Prometheus itself asks for both, OpenMetrics first), else
    /// the 0.0.4 text format — also for no `Accept`, or one naming neither.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let (mut q, mut version) = (1.0f32, None);
            for param in parts {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "q" => q = value.parse().unwrap_or(0.0),
                    "version" => version = Some(value.to_owned()),
                    _ => {}
                }
            }
            let q = q.clamp(0.0, 1.0);
            match media.as_str() {
                "application/openmetrics-text"
                    if version.as_deref().is_none_or(|v| v == "1.0.0") =>
                {
                    openmetrics = openmetrics.max(q);
                }
                "text/plain" if version.as_deref().is_none_or(|v| v == "0.0.4") => {
                    text = text.max(q);
                }
                "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

/// What a scrape reads from the database, passed to [`Metrics::render`].
#[derive(Debug, Default, Clone)]
pub struct DomainReadings {
    /// Household surveys awaiting review, by county code.
    pub review_queue: Vec<(String, i64)>,
    /// Villages whose cached ledger figures are missing or stale, for the current and the
    /// previous month (0 for a closed month).
    pub ledger_stale: [i64; 2],
}

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    pool_connections: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
    commits: CommitMetrics,
    submissions: Family<SubmissionLabels, Counter>,
    flags: Family<FlagLabels, Counter>,
    review_queue: Family<CountyLabels, Gauge>,
    ledger_stale: Family<MonthLabels, Gauge>,
    ledger_lag: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// When this process last saw no village awaiting recomputation (at a scrape or a round
    /// of the background warmer); the lag is the time since, while villages are stale.
    ledger_fresh_at: Mutex<Instant>,
}

/// The group commit's figures, kept by its committers and copied here at each scrape.
struct CommitMetrics {
    batches: Counter,
    items: Counter,
    retried_alone: Counter,
    largest: Gauge,
    queued: Gauge,
}

impl CommitMetrics {
    fn register(registry: &mut Registry) -> Self {
        let (batches, items, retried_alone) = Default::default();
        let (largest, queued) = Default::default();
        registry.register(
            "group_commit_batches",
            "Write transactions of the group commit (each stores one or more submissions)",
            Counter::clone(&batches),
        );
        registry.register(
            "group_commit_items",
            "Submissions written through the group commit; over the batches, the mean batch size",
            Counter::clone(&items),
        );
        registry.register(
            "group_commit_retried_alone",
            "Submissions written again in a transaction of their own: those of a batch that could not commit, and those that lost a deadlock or serialization race inside a batch",
            Counter::clone(&retried_alone),
        );
        registry.register(
            "group_commit_largest_batch",
            "The most submissions one group commit has taken in this process",
            Gauge::clone(&largest),
        );
        registry.register(
            "group_commit_queued",
            "Submissions waiting for a group commit, read at scrape time",
            Gauge::clone(&queued),
        );
        Self {
            batches,
            items,
            retried_alone,
            largest,
            queued,
        }
    }

    fn copy(&self, reading: GroupCommitStats) {
        self.batches
            .inner()
            .store(reading.batches, Ordering::Relaxed);
        self.items.inner().store(reading.items, Ordering::Relaxed);
        self.retried_alone
            .inner()
            .store(reading.retried_alone, Ordering::Relaxed);
        self.largest
            .set(i64::try_from(reading.largest).unwrap_or(i64::MAX));
        self.queued
            .set(i64::try_from(reading.queued).unwrap_or(i64::MAX));
    }
}

/// Latency buckets in seconds: 1 ms to 10 s.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The crate version and the git commit it was built from (`build.rs`; `unknown` when the
/// source was not a git checkout).
const VERSION: &str = env!("CARGO_PKG_VERSION");
const COMMIT: &str = env!("TAIZHANG_GIT_COMMIT");

impl Metrics {
    /// The registry, counting photo store errors into `store_errors` (see
    /// [`crate::photos::PhotoStore::errors`]).
    pub fn new(store_errors: StoreErrors) -> Self {
        let mut registry = Registry::with_prefix("taizhang");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency =
            Family::<RouteLabels, Histogram>::new_with_constructor(|| Histogram::new(BUCKETS));
        let pool_connections = Gauge::default();
        let pool_idle = Gauge::default();
        let pool_max = Gauge::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            latency.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Open database connections",
            pool_connections.clone(),
        );
        registry.register(
            "db_pool_idle_connections",
            "Idle database connections",
            pool_idle.clone(),
        );
        registry.register(
            "db_pool_max_connections",
            "Configured maximum database connections",
            pool_max.clone(),
        );

        let commits = CommitMetrics::register(&mut registry);

        let submissions = Family::<SubmissionLabels, Counter>::default();
        // Every series from the start, so that a rate over a fresh process is not missing.
        for kind in KINDS {
            for outcome in OUTCOMES {
                let _ = submissions.get_or_create(&SubmissionLabels {
                    kind: kind.as_str(),
                    outcome,
                });
            }
        }
        registry.register(
            "submissions",
            "Submissions by kind and outcome: stored, replayed (a retry of a stored one), refused (a 4xx such as validation), id_reused (the id came with other content), failed (a 5xx)",
            submissions.clone(),
        );
        let flags = Family::<FlagLabels, Counter>::default();
        for flag in SurveyFlag::ALL {
            let _ = flags.get_or_create(&FlagLabels {
                kind: Kind::HouseholdSurvey.as_str(),
                flag: flag.as_str(),
            });
        }
        for flag in CheckinFlag::ALL {
            let _ = flags.get_or_create(&FlagLabels {
                kind: Kind::Checkin.as_str(),
                flag: flag.as_str(),
            });
        }
        registry.register(
            "flags_raised",
            "Flags on stored household surveys and check-ins, by submission kind and flag",
            flags.clone(),
        );
        let review_queue = Family::<CountyLabels, Gauge>::default();
        registry.register(
            "review_queue_depth",
            "Household surveys awaiting review (submitted or reopened) by county, read at scrape time",
            review_queue.clone(),
        );
        let ledger_stale = Family::<MonthLabels, Gauge>::default();
        registry.register(
            "ledger_stale_villages",
            "Villages whose cached ledger figures await recomputation, for the current and the previous month, read at scrape time",
            ledger_stale.clone(),
        );
        let ledger_lag = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "ledger_recompute_lag_seconds",
            "Seconds since this process last saw no village awaiting ledger recomputation; 0 while none does",
            ledger_lag.clone(),
        );
        for operation in ["put", "get", "check"] {
            let _ = store_errors.get_or_create(&OperationLabels { operation });
        }
        registry.register(
            "photo_store_errors",
            "Failed photo store operations (put, get, check), other than a photo not found",
            store_errors,
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: VERSION,
                commit: COMMIT,
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1: the version and git commit of this binary",
            build,
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            latency,
            pool_connections,
            pool_idle,
            pool_max,
            commits,
            submissions,
            flags,
            review_queue,
            ledger_stale,
            ledger_lag,
            ledger_fresh_at: Mutex::new(Instant::now()),
        }
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status: status.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// Counts a submission request by its outcome and, when it was stored now, the flags its
    /// answer carries.
    pub fn observe_submission(&self, kind: Kind, result: &Result<Outcome, ApiError>) {
        let outcome = match result {
            Ok(Outcome::Stored(answer)) => {
                self.count_flags(kind, &answer.body);
                "stored"
            }
            Ok(Outcome::Replayed(_)) => "replayed",
            Err(e) if e.code() == ErrorCode::SubmissionIdReused => "id_reused",
            Err(e) if e.code().status().is_client_error() => "refused",
            Err(_) => "failed",
        };
        self.submissions
            .get_or_create(&SubmissionLabels {
                kind: kind.as_str(),
                outcome,
            })
            .inc();
    }

    fn count_flags(&self, kind: Kind, body: &str) {
        let Ok(answer) = serde_json::from_str::<Value>(body) else {
            return;
        };
        let Some(flags) = answer["flags"].as_array() else {
            return;
        };
        for flag in flags.iter().filter_map(Value::as_str) {
            // Only known flags become label values.
            let flag = match kind {
                Kind::Checkin => CheckinFlag::parse(flag).map(CheckinFlag::as_str),
                _ => SurveyFlag::parse(flag).map(SurveyFlag::as_str),
            };
            if let Some(flag) = flag {
                self.flags
                    .get_or_create(&FlagLabels {
                        kind: kind.as_str(),
                        flag,
                    })
                    .inc();
            }
        }
    }

    /// The background warmer found nothing to recompute.
    pub fn ledger_fresh(&self) {
        *self
            .ledger_fresh_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now();
    }

    /// The exposition in `format`, with the pool and group-commit figures and, when the
    /// database answered, the domain gauges read at this moment.
    pub fn render(
        &self,
        format: Format,
        pool: (u32, u32, u32),
        commits: GroupCommitStats,
        readings: Option<&DomainReadings>,
    ) -> String {
        self.pool_connections.set(i64::from(pool.0));
        self.pool_idle.set(i64::from(pool.1));
        self.pool_max.set(i64::from(pool.2));
        // The committers count for themselves; a scrape copies their totals.
        self.commits.copy(commits);
        if let Some(readings) = readings {
            // Counties whose queue emptied drop out rather than keep their last depth.
            self.review_queue.clear();
            for (county, depth) in &readings.review_queue {
                self.review_queue
                    .get_or_create(&CountyLabels {
                        county: county.clone(),
                    })
                    .set(*depth);
            }
            for (month, stale) in ["current", "previous"]
                .into_iter()
                .zip(readings.ledger_stale)
            {
                self.ledger_stale
                    .get_or_create(&MonthLabels { month })
                    .set(stale);
            }
            let mut fresh_at = self
                .ledger_fresh_at
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if readings.ledger_stale.iter().all(|&n| n == 0) {
                *fresh_at = Instant::now();
                self.ledger_lag.set(0.0);
            } else {
                self.ledger_lag.set(fresh_at.elapsed().as_secs_f64());
            }
        }
        let mut out = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(%error, "encoding metrics");
        }
        drop(registry);
        match format {
            Format::OpenMetrics => out,
            Format::Prometheus => to_prometheus_text(&out),
        }
    }
}

/// Rewrites OpenMetrics text into the Prometheus text format 0.0.4: no `# EOF` or `# UNIT`,
/// a counter's HELP and TYPE name its `_total` samples (OpenMetrics names the family without
/// the suffix, which a 0.0.4 parser would take for another, untyped metric), `unknown` is
/// `untyped`, and an info metric is a gauge.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
            continue;
        }
        if let Some((name, kind)) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.split_once(' '))
        {
            let (renamed, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "unknown" => (name.to_owned(), "untyped"),
                other => (name.to_owned(), other),
            };
            if let Some(text) = help.take().and_then(|h| h.strip_prefix(name)) {
                out.push_str("# HELP ");
                out.push_str(&renamed);
                out.push_str(text);
                out.push('\n');
            }
            out.push_str("# TYPE ");
            out.push_str(&renamed);
            out.push(' ');
            out.push_str(kind);
            out.push('\n');
            continue;
        }
        // Exemplars (`… # {labels} value`) are OpenMetrics only; none are recorded, but a
        // sample never keeps one.
        let sample = line.split_once(" # ").map_or(line, |(sample, _)| sample);
        out.push_str(sample);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_chooses_the_format() {
        use Format::*;
        let cases = [
            (None, Prometheus),
            (Some("*/*"), Prometheus),
            (Some("text/plain"), Prometheus),
            (Some("application/json"), Prometheus),
            (Some("application/openmetrics-text"), OpenMetrics),
            (
                Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                OpenMetrics,
            ),
            // What Prometheus 2.x and 3.x send.
            (
                Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
                OpenMetrics,
            ),
            (
                Some("text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5"),
                Prometheus,
            ),
            (Some("application/openmetrics-text;q=0"), Prometheus),
            // A version this server does not write.
            (Some("application/openmetrics-text;version=2.0.0"), Prometheus),
            (Some("APPLICATION/OpenMetrics-Text"), OpenMetrics),
        ];
        for (accept, expected) in cases {
            assert_eq!(Format::negotiate(accept), expected, "{accept:?}");
        }
    }

    #[test]
    fn prometheus_text_has_no_openmetrics_syntax() {
        let openmetrics = "# HELP t_requests Requests.\n# TYPE t_requests counter\n\
             t_requests_total{a=\"b\"} 3 # {trace=\"x\"} 1.0\n\
             # HELP t_up Up.\n# TYPE t_up gauge\nt_up 1\n\
             # HELP t_size_bytes Size.\n# TYPE t_size_bytes unknown\n# UNIT t_size_bytes bytes\nt_size_bytes 2\n\
             # HELP t_build Build.\n# TYPE t_build info\nt_build_info{v=\"1\"} 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(openmetrics),
            "# HELP t_requests_total Requests.\n# TYPE t_requests_total counter\n\
             t_requests_total{a=\"b\"} 3\n\
             # HELP t_up Up.\n# TYPE t_up gauge\nt_up 1\n\
             # HELP t_size_bytes Size.\n# TYPE t_size_bytes untyped\nt_size_bytes 2\n\
             # HELP t_build_info Build.\n# TYPE t_build_info gauge\nt_build_info{v=\"1\"} 1\n"
        );
    }
}
