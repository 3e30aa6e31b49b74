//! The OpenAPI document, generated from the route handlers themselves (utoipa), committed as
//! `mobile-api-spec/openapi.json` and served at `/api/v1/openapi.json`. A test fails when the
//! committed file differs from what the code generates.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as OpenApiDoc, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_actix_web::AppExt;

use crate::error::{ErrorCode, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Taizhang API",
        description = "台账 (Taizhang): field data collection for rural employment programmes: household and village surveys, \
                       attendance check-ins, review and the village demand ledger (需求台账). \
                       Errors are RFC 9457 `application/problem+json` documents with a stable `code`; \
                       see `mobile-api-spec/README.md` for the app developers' guide. \
                       Text never holds control characters (U+0000–U+001F, U+007F–U+009F): a JSON string \
                       or key, query parameter or path segment with one is refused with 422 \
                       `validation_failed`, rule `control_character`, naming the field; only the \
                       free-text `reason` of a decision body may hold tab, line feed and carriage return.",
        license(name = "MIT OR Apache-2.0"),
    ),
    servers((url = "/", description = "This server")),
    // Query parameter types: utoipa collects the schemas of bodies, not of parameters.
    components(schemas(
        Problem,
        ErrorCode,
        crate::error::FieldError,
        crate::api::photos::PhotoSize,
        crate::api::audit::AuditFormat,
        crate::ledger::export::ExportFormat,
        crate::domain::EmployerKind,
    )),
    modifiers(&Security, &StandardErrors),
    tags(
        (name = "auth", description = "Login, token refresh, logout and the caller's account"),
        (name = "villages", description = "The 919 administrative villages and their geofences"),
        (name = "surveys", description = "Household and village surveys: exactly-once intake, households, reads"),
        (name = "sync", description = "The phone's download: its villages' households, its review states, the employer registry"),
        (name = "review", description = "County review: the queue, decisions, bulk decisions, duplicate households"),
        (name = "audit", description = "The append-only, hash-chained audit log (city admins)"),
        (name = "ledger", description = "The demand ledger: inventory by node and month, monthly close, quotas"),
        (name = "checkins", description = "Attendance check-ins with verification flags, monthly attendance"),
        (name = "photos", description = "Content-addressed photo upload, thumbnails"),
        (name = "employers", description = "The employer registry: leading enterprises, cooperatives, workshops (list, import, edit)"),
        (name = "users", description = "Accounts, roles and scopes (administration)"),
        (name = "reference", description = "Enumerations with Chinese labels"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("Access token from `POST /api/v1/auth/login` or `/auth/refresh`; valid 15 minutes."))
                    .build(),
            ),
        );
    }
}

/// Adds the errors every operation of a kind can give, so each operation lists them all.
struct StandardErrors;

fn problem(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                crate::error::PROBLEM_JSON,
                Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    Problem::name(),
                )))),
            )
            .build(),
    )
}

/// The error codes a description names in backticks.
fn codes_named(description: &str) -> Vec<&'static str> {
    let words: Vec<&str> = description.split('`').skip(1).step_by(2).collect();
    ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| words.contains(c))
        .collect()
}

/// Documents a problem answer: a new status, or more codes for a status the handler documents.
fn add(op: &mut Operation, status: &str, description: &str) {
    match op.responses.responses.get_mut(status) {
        None => {
            op.responses
                .responses
                .insert(status.to_owned(), problem(description));
        }
        Some(RefOr::T(existing)) => {
            let known = codes_named(&existing.description);
            if codes_named(description).iter().any(|c| !known.contains(c)) {
                existing.description = format!("{}; {description}", existing.description);
            }
        }
        Some(RefOr::Ref(_)) => {}
    }
}

/// Lists the codes of each problem answer as `x-problem-codes`, for clients to switch on and
/// for the suite to hold the server to.
fn list_problem_codes(op: &mut Operation) {
    for (status, response) in op.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if !response.content.contains_key(crate::error::PROBLEM_JSON) {
            continue;
        }
        // Each code has one status: a word of another status's code here is a validation
        // rule of the same name (`village_code` `out_of_scope` under 422).
        let codes: Vec<&str> = codes_named(&response.description)
            .into_iter()
            .filter(|c| {
                ErrorCode::ALL
                    .iter()
                    .any(|e| e.as_str() == *c && e.status().as_str() == status)
            })
            .collect();
        response.extensions = Some(
            utoipa::openapi::extensions::ExtensionsBuilder::new()
                .add("x-problem-codes", codes)
                .build(),
        );
    }
}

impl Modify for StandardErrors {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
                item.head.as_mut(),
                item.patch.as_mut(),
            ];
            for op in ops.into_iter().flatten() {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let body_types: Vec<String> = op
                    .request_body
                    .as_ref()
                    .map(|b| b.content.keys().cloned().collect())
                    .unwrap_or_default();
                if !body_types.is_empty() {
                    add(op, "408", "`request_timeout`: the body arrived too slowly (README, \"Limits on clients\"); the connection closes");
                    add(op, "413", "`payload_too_large`: the body exceeds the limit");
                }
                if body_types.iter().any(|t| t == "application/json") {
                    add(op, "400", "`malformed_json`: the body is not valid JSON");
                    add(
                        op,
                        "415",
                        "`unsupported_media_type`: the body is not `application/json`",
                    );
                    add(op, "422", "`validation_failed`: fields break rules; `errors` lists each field and rule (`control_character` for a control character in any string)");
                }
                let params = op.parameters.as_deref().unwrap_or_default();
                let has = |place: ParameterIn| {
                    params.iter().any(|p| {
                        std::mem::discriminant(&p.parameter_in) == std::mem::discriminant(&place)
                    })
                };
                let (query, path_params) = (has(ParameterIn::Query), has(ParameterIn::Path));
                if query {
                    add(
                        op,
                        "400",
                        "`invalid_query`: a query parameter is malformed; `field` names it",
                    );
                }
                if path_params {
                    add(
                        op,
                        "400",
                        "`invalid_path`: a path parameter is malformed; `field` names it",
                    );
                }
                if query || path_params {
                    add(op, "422", "`validation_failed`, rule `control_character`: a parameter holds a control character");
                }
                if secured {
                    add(op, "401", "`missing_token`, `invalid_token`, `token_expired`, `session_revoked` or `account_disabled`");
                    if !crate::http::PASSWORD_CHANGE_PATHS.contains(&path.as_str()) {
                        add(op, "403", "`password_change_required`: an administrator reset the password; set a new one with `POST /api/v1/me/password` first");
                    }
                }
                if path.starts_with("/api/") {
                    add(
                        op,
                        "500",
                        "`internal_error`: a bug; the `request_id` finds it in the server log",
                    );
                    add(op, "503", "`service_unavailable`: the database cannot be reached; retry after `Retry-After` seconds");
                }
                // The per-address cap on requests in flight covers every path.
                add(op, "429", "`rate_limited`: this address has too many requests in flight; retry after `Retry-After` seconds");
                list_problem_codes(op);
            }
        }
    }
}

/// The complete document, as the server serves it and `taizhang openapi` prints it.
pub fn document() -> OpenApiDoc {
    let (_, mut api) =
        crate::api::configure(actix_web::App::new().into_utoipa_app()).split_for_parts();
    let mut doc = ApiDoc::openapi();
    // The derive's own modifiers ran on an empty path list: merge, then run them again.
    doc.merge(std::mem::take(&mut api));
    Security.modify(&mut doc);
    StandardErrors.modify(&mut doc);
    // The title stays ASCII, since generators derive package names from it; the Chinese
    // name travels beside it.
    doc.info.extensions = Some(
        utoipa::openapi::extensions::ExtensionsBuilder::new()
            .add("x-title-zh", "台账 API")
            .build(),
    );
    doc
}

/// The document as committed: pretty JSON with a trailing newline.
pub fn to_json(doc: &OpenApiDoc) -> String {
    let mut text = doc.to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}
