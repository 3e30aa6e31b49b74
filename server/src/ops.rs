//! Operations endpoints, outside `/api/v1`: liveness, readiness, metrics.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::migrations;
use crate::error::{ApiError, ApiResult, Problem};
use crate::startup::AppState;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    pub migrations_applied: bool,
}

/// Liveness: the process answers. Does not touch the database.
#[utoipa::path(tag = "operations", responses((status = 200, body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health { status: "ok" })
}

/// Readiness: the database answers and has every migration this binary knows, and the photo
/// store answers.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, body = Readiness),
        (status = 503, description = "`service_unavailable`: database unreachable or not migrated, or photo store unreachable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<web::Json<Readiness>> {
    let backend = state.db.backend();
    let applied = state
        .db
        .run(|conn| migrations::all_applied(conn).map_err(|e| ApiError::Unavailable(e.to_string())))
        .await?;
    if !applied {
        return Err(ApiError::Unavailable("migrations pending".into()));
    }
    state
        .photos
        .check()
        .await
        .map_err(|e| ApiError::Unavailable(format!("{e:#}")))?;
    Ok(web::Json(Readiness {
        status: "ready",
        database: backend.as_str(),
        migrations_applied: applied,
    }))
}

/// Prometheus metrics in the text exposition format: requests by route and status, request
/// latency, database pool use.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(state.db.pool_state()))
}
