//! The JSON API: every route module mounted in one place, for the server and for the OpenAPI
//! document alike, so the document can only describe routes that are served.

pub mod audit;
pub mod auth;
pub mod catalog;
pub mod checkins;
pub mod employers;
pub mod households;
pub mod ledger;
pub mod months;
pub mod ops;
pub mod photos;
pub mod surveys;
pub mod sync;
pub mod users;
pub mod villages;

use actix_web::{get, web, HttpResponse};

/// Registers every route on a utoipa-aware app: `/api/v1/...` and the operations endpoints.
pub fn configure<T>(app: utoipa_actix_web::UtoipaApp<T>) -> utoipa_actix_web::UtoipaApp<T>
where
    T: actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Error = actix_web::Error,
        InitError = (),
    >,
{
    app.service(
        utoipa_actix_web::scope("/api/v1")
            .configure(auth::configure)
            .configure(villages::configure)
            .configure(users::configure)
            .configure(photos::configure)
            .configure(households::configure)
            .configure(surveys::configure)
            .configure(sync::configure)
            .configure(checkins::configure)
            .configure(audit::configure)
            // Before the ledger: `/ledgers/employers` would otherwise match `/ledgers/{kind}`.
            .configure(employers::configure)
            .configure(ledger::configure)
            .configure(months::configure)
            .configure(catalog::configure)
            .service(openapi_json),
    )
    .configure(ops::configure)
}

/// The document served at `/api/v1/openapi.json` (built once at start).
pub struct OpenApiJson(pub String);

/// This OpenAPI document.
#[utoipa::path(tag = "operations", responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
#[get("/openapi.json")]
pub async fn openapi_json(doc: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.0.clone())
}
