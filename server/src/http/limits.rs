//! Limits every request is held to before a handler sees it: how many requests of one client
//! address may be in flight at once, and how slowly a request body may arrive.
//!
//! A body must arrive within a grace period plus one second for every `min_rate` bytes received
//! (the rule of Apache's `mod_reqtimeout`), and never take longer than `max_time`: a phone on a
//! weak link that keeps sending is never cut off, a body trickled at 1 byte a second is cut off
//! soon after the grace period, whether or not it declared a length. An idle cut-off alone would
//! never end a trickle. The reader then answers 408 (`read_limited`) and the connection closes.
//!
//! actix-web has no per-peer cap, so the middleware counts requests in flight per client address
//! (from the request head until the last byte of the answer is written, so a slow body and a
//! slow download both hold their slot) and answers 429 beyond the cap.

use crate::config::HttpLimits;
use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use bytes::Bytes;
use futures_util::{Future, Stream, StreamExt};
use tokio::time::{Instant, Sleep};

use super::client_addr;
use crate::error::ApiError;

/// The limits with the count of requests in flight per address (app data, one per server).
pub struct ClientLimits {
    limits: HttpLimits,
    trust_proxy_headers: bool,
    in_flight: Arc<Mutex<HashMap<String, usize>>>,
}

impl ClientLimits {
    pub fn new(limits: HttpLimits, trust_proxy_headers: bool) -> Self {
        Self {
            limits,
            trust_proxy_headers,
            in_flight: Arc::default(),
        }
    }

    fn acquire(&self, addr: String) -> Option<Slot> {
        let mut counts = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(addr.clone()).or_insert(0);
        if *count >= self.limits.max_in_flight_per_addr {
            return None;
        }
        *count += 1;
        Some(Slot {
            in_flight: self.in_flight.clone(),
            addr,
        })
    }
}

/// One request's place in its address's count, given back when dropped.
struct Slot {
    in_flight: Arc<Mutex<HashMap<String, usize>>>,
    addr: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.addr) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.addr);
            }
        }
    }
}

/// Middleware: refuses a request beyond its address's cap (429) and puts a deadline on its body.
pub async fn limit(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limits = req
        .app_data::<web::Data<ClientLimits>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("the client limits are not set up")))?;
    // The connection's own payload stays alive until the answer is written, read or not: actix
    // then closes the connection after answering instead of draining an unread (perhaps
    // trickled) chunked body with no deadline.
    let payload = Rc::new(RefCell::new(req.take_payload()));
    let addr = client_addr(req.request(), limits.trust_proxy_headers);
    let Some(slot) = limits.acquire(addr) else {
        let refused = ApiError::RateLimited {
            retry_after: 1,
            detail: format!(
                "来自该地址的未完成请求已达 {} 个上限，请稍后再试",
                limits.limits.max_in_flight_per_addr
            ),
        };
        let response = req.into_response(refused.error_response());
        return Ok(response.map_body(|_, body| Held::new(body, None, payload)));
    };
    let timed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
        Box::pin(TimedBody::new(payload.clone(), &limits.limits));
    req.set_payload(Payload::from(timed));
    // Handlers' errors arrive as answers; an error here is a middleware's, answered by actix.
    let response = next.call(req).await?.map_into_boxed_body();
    Ok(response.map_body(|_, body| Held::new(body, Some(slot), payload)))
}

/// An answer's body that keeps the request's slot and payload until it has been written.
struct Held {
    body: BoxBody,
    _slot: Option<Slot>,
    _payload: Rc<RefCell<Payload>>,
}

impl Held {
    fn new(body: BoxBody, slot: Option<Slot>, payload: Rc<RefCell<Payload>>) -> Self {
        Self {
            body,
            _slot: slot,
            _payload: payload,
        }
    }
}

impl MessageBody for Held {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// Why a body was cut off; `read_limited` answers it with 408.
#[derive(Debug, thiserror::Error)]
#[error("请求体接收过慢：{elapsed} 秒内只收到 {received} 字节（须在 {grace} 秒后保持每秒至少 {rate} 字节，且总共不超过 {max} 秒），连接已关闭")]
pub struct BodyTimedOut {
    pub elapsed: u64,
    pub received: u64,
    pub grace: u64,
    pub rate: u64,
    pub max: u64,
}

impl BodyTimedOut {
    /// The cut-off inside a payload error, if that is what the error is.
    pub fn of(error: &PayloadError) -> Option<&BodyTimedOut> {
        match error {
            PayloadError::Io(e) => e.get_ref()?.downcast_ref::<BodyTimedOut>(),
            _ => None,
        }
    }
}

/// A request body with a deadline that moves later as bytes arrive.
struct TimedBody {
    inner: Rc<RefCell<Payload>>,
    grace: Duration,
    min_rate: u64,
    max_time: Duration,
    /// From the first read: time the server spends before reading is not the client's.
    started: Option<Instant>,
    received: u64,
    timer: Option<Pin<Box<Sleep>>>,
    finished: bool,
}

impl TimedBody {
    fn new(inner: Rc<RefCell<Payload>>, limits: &HttpLimits) -> Self {
        Self {
            inner,
            grace: limits.body_grace,
            min_rate: limits.body_min_rate.max(1),
            max_time: limits.body_max_time,
            started: None,
            received: 0,
            timer: None,
            finished: false,
        }
    }

    fn deadline(&self, started: Instant) -> Instant {
        let earned = Duration::from_secs_f64(self.received as f64 / self.min_rate as f64);
        started + (self.grace + earned).min(self.max_time)
    }

    fn timed_out(&self, started: Instant) -> PayloadError {
        PayloadError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            BodyTimedOut {
                elapsed: started.elapsed().as_secs(),
                received: self.received,
                grace: self.grace.as_secs(),
                rate: self.min_rate,
                max: self.max_time.as_secs(),
            },
        ))
    }
}

impl Stream for TimedBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        let started = *this.started.get_or_insert_with(Instant::now);
        let polled = this.inner.borrow_mut().poll_next_unpin(cx);
        match polled {
            Poll::Ready(Some(Ok(chunk))) => {
                this.received += chunk.len() as u64;
                return Poll::Ready(Some(Ok(chunk)));
            }
            Poll::Ready(other) => {
                this.finished = true;
                return Poll::Ready(other);
            }
            Poll::Pending => {}
        }
        let deadline = this.deadline(started);
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.finished = true;
                Poll::Ready(Some(Err(this.timed_out(started))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_in_flight_per_addr: usize) -> HttpLimits {
        HttpLimits {
            max_in_flight_per_addr,
            ..HttpLimits::default()
        }
    }

    #[test]
    fn slots_are_counted_per_address_and_given_back() {
        let limits = ClientLimits::new(limits(2), false);
        let a1 = limits.acquire("a".into());
        let a2 = limits.acquire("a".into());
        assert!(a1.is_some() && a2.is_some());
        assert!(limits.acquire("a".into()).is_none(), "the third is refused");
        assert!(
            limits.acquire("b".into()).is_some(),
            "another address is not"
        );
        drop(a1);
        assert!(
            limits.acquire("a".into()).is_some(),
            "a slot given back is free"
        );
        drop(a2);
    }

    #[test]
    fn the_deadline_grows_with_the_bytes_received_up_to_the_cap() {
        let payload = Rc::new(RefCell::new(Payload::None));
        let mut body = TimedBody::new(payload, &HttpLimits::default());
        let start = Instant::now();
        assert_eq!(body.deadline(start), start + Duration::from_secs(20));
        body.received = 5_000;
        assert_eq!(body.deadline(start), start + Duration::from_secs(30));
        body.received = 15_000_000;
        assert_eq!(body.deadline(start), start + Duration::from_secs(600));
    }

    #[actix_web::test]
    async fn a_stalled_body_is_cut_off() {
        // A body that never sends a byte and never ends.
        let stalled: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
            Box::pin(futures_util::stream::pending());
        let payload = Rc::new(RefCell::new(Payload::from(stalled)));
        let mut body = TimedBody::new(
            payload,
            &HttpLimits {
                body_grace: Duration::from_millis(50),
                ..HttpLimits::default()
            },
        );
        let error = match body.next().await {
            Some(Err(e)) => e,
            other => panic!("expected a time-out, got {other:?}"),
        };
        assert!(BodyTimedOut::of(&error).is_some(), "{error}");
        assert!(body.next().await.is_none(), "nothing after the cut-off");
    }
}
