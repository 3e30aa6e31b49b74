//! Request observation: an id per request, its tracing span, one log line and its metrics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::telemetry::request_id;

/// Gives each request an id (answered in `x-request-id`, included in problem bodies and the
/// log line), a tracing span, one log line when it ends, and its place in the metrics.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request_id::accept_or_generate(
        req.headers()
            .get(request_id::HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    let method = req.method().to_string();
    // The route pattern, not the path: it keeps metric labels few and logs free of ids.
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let started = Instant::now();

    let result = request_id::scope(id.clone(), next.call(req))
        .instrument(span.clone())
        .await;
    let elapsed = started.elapsed();

    let status = match &result {
        Ok(res) => res.status(),
        Err(error) => error.as_response_error().status_code(),
    };
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::error!(parent: &span, status = status.as_u16(), latency_ms, "request failed");
    } else {
        tracing::info!(parent: &span, status = status.as_u16(), latency_ms, "request");
    }
    if let Some(metrics) = metrics {
        metrics.observe_request(&method, &route, status.as_u16(), elapsed.as_secs_f64());
    }

    result.map(|mut res| {
        if let Ok(value) = HeaderValue::from_str(&id) {
            res.headers_mut()
                .insert(HeaderName::from_static(request_id::HEADER), value);
        }
        res
    })
}
