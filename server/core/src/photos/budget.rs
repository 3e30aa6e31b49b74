//! The process-wide budget of decode memory. Every decode (intake's hash, a thumbnail) reserves
//! its estimated memory ([`super::decode::Frame::decode_bytes`]) before it starts and gives it
//! back when it ends, so concurrent uploads cannot add up to more than the budget however many
//! arrive at once: the per-image limit bounds one photo, this bounds them all.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// How long a decode waits for memory before the request is answered 503: long enough for a
/// few photos ahead of it to finish (a 12 MP photo takes tens of milliseconds), short enough
/// that a flood is turned away instead of queued.
pub const WAIT: Duration = Duration::from_secs(2);

/// Semaphore permits are KiB, so a budget of terabytes still fits the `u32` a reservation takes.
const UNIT: u64 = 1024;

#[derive(Debug, Clone)]
pub struct DecodeBudget {
    permits: Arc<Semaphore>,
    total: u32,
    wait: Duration,
}

/// Memory reserved for one decode, given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

impl DecodeBudget {
    /// A budget of `total_bytes`, reservations waiting up to `wait` ([`WAIT`] in the server).
    pub fn new(total_bytes: u64, wait: Duration) -> Self {
        let total = u32::try_from(total_bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .min(u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        Self {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
            wait,
        }
    }

    /// Reserves `bytes` (at most the whole budget), waiting up to the set time for other decodes
    /// to give memory back; then 503 with `Retry-After`.
    pub async fn reserve(&self, bytes: u64) -> Result<Reservation, ApiError> {
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total.max(1));
        let permits = self.permits.clone();
        match tokio::time::timeout(self.wait, permits.acquire_many_owned(units)).await {
            Ok(Ok(permit)) => Ok(Reservation { _permit: permit }),
            // The semaphore is never closed; a timeout means the server is busy decoding.
            _ => Err(ApiError::Busy {
                retry_after: 5,
                detail: "服务器正在处理其他照片，请稍后重试".into(),
            }),
        }
    }

    /// Bytes not reserved right now.
    pub fn available(&self) -> u64 {
        self.permits.available_permits() as u64 * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_for_memory_then_give_up() {
        let budget = DecodeBudget::new(10 << 20, Duration::from_millis(50));
        let big = budget.reserve(8 << 20).await.expect("fits");
        assert_eq!(budget.available(), 2 << 20);
        // Too much while `big` is held: refused after the wait.
        let refused = budget.reserve(4 << 20).await;
        assert!(matches!(refused, Err(ApiError::Busy { .. })));
        drop(big);
        assert_eq!(budget.available(), 10 << 20);
        // More than the whole budget is clamped to it rather than waiting forever.
        let all = budget.reserve(u64::MAX).await.expect("clamped");
        assert_eq!(budget.available(), 0);
        drop(all);
    }
}
