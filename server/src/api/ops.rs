//! The operations endpoints, outside `/api/v1`: liveness, readiness, metrics.

use actix_web::http::header;
use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{migrations, DbConnection};
use crate::error::{ApiError, ApiResult, Problem};
use crate::metrics::{DomainReadings, Format};
use crate::state::AppState;
use crate::surveys::views::AWAITING_REVIEW;

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

/// Metrics for Prometheus, in the text format `Accept` asks for.
///
/// HTTP requests by route and status, request latency, database pool use, submissions by kind
/// and outcome, flags raised, the review queue by county, the ledger's recomputation backlog
/// and lag, photo store errors, build info (README, "Operations"). OpenMetrics 1.0.0
/// (`application/openmetrics-text`) when the scraper asks for it at least as much as for plain
/// text, as Prometheus does; otherwise the Prometheus text format 0.0.4. The review queue and
/// ledger gauges are read from the database at the scrape; when it does not answer they keep
/// their last values.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "The metrics, in the format `Accept` chose (`Vary: Accept`)", content(
            (String = "text/plain; version=0.0.4; charset=utf-8", example = "# HELP taizhang_submissions_total Submissions by kind and outcome.\n# TYPE taizhang_submissions_total counter\ntaizhang_submissions_total{kind=\"checkin\",outcome=\"stored\"} 3\n"),
            (String = "application/openmetrics-text; version=1.0.0; charset=utf-8", example = "# HELP taizhang_submissions Submissions by kind and outcome.\n# TYPE taizhang_submissions counter\ntaizhang_submissions_total{kind=\"checkin\",outcome=\"stored\"} 3\n# EOF\n"),
        )),
    )
)]
#[get("/metrics")]
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let format = Format::negotiate(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let readings = match state.db.run(domain_readings).await {
        Ok(readings) => Some(readings),
        Err(error) => {
            tracing::warn!(%error, "metrics: reading the domain gauges");
            None
        }
    };
    HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((header::VARY, "Accept"))
        .body(state.metrics.render(
            format,
            state.db.pool_state(),
            state.db.group_commit_stats(),
            readings.as_ref(),
        ))
}

/// The gauges read from the database at a scrape: two counts over at most 919 villages' rows
/// and an indexed count of surveys awaiting review.
fn domain_readings(conn: &mut DbConnection) -> ApiResult<DomainReadings> {
    use diesel::dsl::count_star;
    use diesel::prelude::*;

    use crate::db::schema::{household_surveys, villages};

    let review_queue = household_surveys::table
        .inner_join(villages::table.on(villages::code.eq(household_surveys::village_code)))
        .filter(household_surveys::status.eq_any(AWAITING_REVIEW))
        .group_by(villages::county_code)
        .select((villages::county_code, count_star()))
        .order(villages::county_code)
        .load::<(String, i64)>(conn)?;
    Ok(DomainReadings {
        review_queue,
        ledger_stale: crate::ledger::service::stale_villages(conn)?,
    })
}
