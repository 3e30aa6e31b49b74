//! Counters of what the phones did and met, and submission latencies, shared by all phones.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
pub struct Stats {
    pub attempts: AtomicU64,
    pub retries: AtomicU64,
    pub dropped_answers: AtomicU64,
    pub timeouts: AtomicU64,
    pub network_errors: AtomicU64,
    pub server_errors: AtomicU64,
    pub gave_up: AtomicU64,
    pub unauthorised: AtomicU64,
    pub logins: AtomicU64,
    pub refreshes: AtomicU64,
    pub photos_uploaded: AtomicU64,
    pub photos_present: AtomicU64,
    pub created: AtomicU64,
    pub replayed: AtomicU64,
    pub refused: AtomicU64,
    /// Submissions sent (first sends and resends), for the progress bar.
    pub done: AtomicU64,
    latencies: Mutex<Vec<f64>>,
}

impl Stats {
    pub fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn latency(&self, d: Duration) {
        if let Ok(mut l) = self.latencies.lock() {
            l.push(d.as_secs_f64() * 1000.0);
        }
    }

    /// (count, p50, p99) of submission latencies in milliseconds.
    pub fn percentiles(&self) -> (usize, f64, f64) {
        let mut l = self.latencies.lock().map(|l| l.clone()).unwrap_or_default();
        l.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if l.is_empty() {
                0.0
            } else {
                l[((l.len() as f64 - 1.0) * q).round() as usize]
            }
        };
        (l.len(), at(0.5), at(0.99))
    }
}
