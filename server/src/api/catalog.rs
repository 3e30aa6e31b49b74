//! `GET /api/v1/catalog`: the enumerations with their Chinese labels (`catalog::build`).

use actix_web::{get, web};

use crate::catalog::{build, Catalog};

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(get_catalog);
}

/// Every enumeration with its Chinese labels. Public: the app needs it before login.
#[utoipa::path(
    tag = "reference",
    responses((status = 200, description = "The catalog", body = Catalog))
)]
#[get("/catalog")]
pub async fn get_catalog() -> web::Json<Catalog> {
    web::Json(build())
}
