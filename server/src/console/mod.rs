//! The review console: server-rendered pages in Simplified Chinese for county and city staff,
//! under `/console`.
//!
//! Every page calls the same functions as the API routes, with the same [`Caller`], so role and
//! scope checks, validation, audit entries and ledger invalidation are the API's own. The
//! session is the API's access token in an HttpOnly cookie; forms carry a CSRF token. Maps and
//! charts are SVG drawn here; the one stylesheet and the one small script are compiled into the
//! binary, so nothing loads from outside the server.

mod assets;
mod attendance;
mod audit;
mod calibration;
mod duplicates;
mod error;
mod layout;
mod ledger;
mod login;
mod months;
mod photos;
mod queue;
mod quotas;
mod rosters;
mod session;
mod survey;
mod svg;
mod users;

use actix_web::middleware::from_fn;
use actix_web::{web, HttpRequest, HttpResponse};
use std::collections::HashMap;

use serde::de::DeserializeOwned;

pub use error::{ConsoleError, ConsoleResult};
pub use session::Session;

use crate::auth::Caller;
use crate::domain::{DivisionCode, DivisionLevel, Role};
use crate::error::ApiError;
use crate::http::bad_query;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(error::refusals()).service(
        web::scope("/console")
            .wrap(from_fn(session::finish))
            .route("", web::get().to(home))
            .route("/", web::get().to(home))
            .route("/login", web::get().to(login::page))
            .route("/login", web::post().to(login::submit))
            .route("/logout", web::post().to(login::logout))
            .route("/static/{file}", web::get().to(assets::serve))
            .route("/queue", web::get().to(queue::page))
            .route("/calibration", web::get().to(calibration::page))
            .route("/calibration/{code}", web::post().to(calibration::accept))
            .route("/queue/bulk", web::post().to(queue::bulk))
            .route("/surveys/{id}", web::get().to(survey::page))
            .route("/surveys/{id}/review", web::post().to(survey::decide))
            .route("/duplicates", web::get().to(duplicates::page))
            .route("/duplicates/{a}/{b}", web::post().to(duplicates::decide))
            .route("/attendance", web::get().to(attendance::page))
            .route("/attendance/export", web::get().to(attendance::export))
            .route("/checkins/{id}/review", web::post().to(attendance::review))
            .route("/subsidies", web::get().to(attendance::subsidies))
            .route(
                "/subsidies/export",
                web::get().to(attendance::subsidies_export),
            )
            .route("/ledger", web::get().to(ledger::page))
            .route("/ledger/export", web::get().to(ledger::export))
            .route("/rosters", web::get().to(rosters::page))
            .route("/rosters/export", web::get().to(rosters::export))
            .route("/rosters/reveal", web::post().to(rosters::reveal))
            .route("/months", web::get().to(months::list_page))
            .route("/months/{month}", web::get().to(months::page))
            .route("/months/{month}/signoff", web::post().to(months::sign_off))
            .route("/months/{month}/withdraw", web::post().to(months::withdraw))
            .route("/months/{month}/close", web::post().to(months::close))
            .route("/months/{month}/reopen", web::post().to(months::reopen))
            .route("/quotas", web::get().to(quotas::page))
            .route("/quotas/{year}", web::post().to(quotas::save))
            .route("/photos/{sha256}", web::get().to(photos::serve))
            .route("/users", web::get().to(users::list))
            .route("/users/{id}", web::get().to(users::page))
            .route("/users/{id}", web::post().to(users::edit))
            .route("/users/{id}/active", web::post().to(users::set_active))
            .route("/users/{id}/password-reset", web::post().to(users::reset))
            .route("/password", web::get().to(users::password_page))
            .route("/password", web::post().to(users::change_password))
            .route("/audit", web::get().to(audit::page))
            .default_service(web::to(not_found)),
    );
}

async fn home(_session: Session) -> HttpResponse {
    see_other("/console/queue")
}

async fn not_found(req: HttpRequest) -> ConsoleResult<HttpResponse> {
    Err(ConsoleError::Api(ApiError::NotFound(format!(
        "控制台没有这个页面：{}",
        req.path()
    ))))
}

/// 303 to a page (after a form, so a reload does not post it again).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location.to_owned()))
        .finish()
}

/// 303 back to a page with a message for it.
pub fn see_other_with(location: &str, ok: bool, text: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location.to_owned()))
        .cookie(session::flash_cookie(ok, text))
        .finish()
}

/// Pairs of a query string or form body, with empty values dropped: an untouched filter field
/// of a form means "any", not "the empty string".
pub fn pairs(raw: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect()
}

/// The console is for county and city staff; field users work in the phone app.
pub const CONSOLE_ROLES: [Role; 2] = [Role::CountyReviewer, Role::CityAdmin];

/// The query string as one of the API's query types, so the console accepts exactly what the
/// API does (and refuses it the same way).
pub fn parse_query<T: DeserializeOwned>(req: &HttpRequest) -> ConsoleResult<T> {
    parse_pairs(&pairs(req.query_string()))
}

pub fn parse_pairs<T: DeserializeOwned>(pairs: &[(String, String)]) -> ConsoleResult<T> {
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    serde_urlencoded::from_str(&encoded)
        .map_err(|e| ConsoleError::Api(bad_query("query", e.to_string())))
}

pub fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The counties a caller may pick from: their own, or all of them for the city.
pub async fn counties_of(
    state: &web::Data<crate::state::AppState>,
    caller: &Caller,
) -> ConsoleResult<Vec<(String, String)>> {
    let county = caller.county_code.clone();
    let all = state
        .db
        .run(move |conn| Ok(crate::villages::counties(conn)?))
        .await?;
    Ok(all
        .into_iter()
        .filter(|(code, _)| county.as_ref().is_none_or(|c| c.as_str() == code))
        .collect())
}

/// The villages of a county, code and name, for a filter's choices.
pub async fn villages_of(
    state: &web::Data<crate::state::AppState>,
    county: &str,
) -> ConsoleResult<Vec<(String, String)>> {
    let county = DivisionCode::parse_level(county, DivisionLevel::County)
        .map_err(|e| bad_query("county", e.message))?;
    Ok(state
        .db
        .run(move |conn| Ok(crate::villages::villages_in(conn, &county)?))
        .await?)
}

/// The one county a reviewer works in, or the county a city admin picked.
pub fn chosen_county(caller: &Caller, picked: Option<&str>) -> Option<String> {
    caller
        .county_code
        .as_ref()
        .map(|c| c.as_str().to_owned())
        .or_else(|| picked.map(str::to_owned))
}

/// Names of places and people for a page: division codes and user ids → names.
pub async fn names(
    state: &web::Data<crate::state::AppState>,
    codes: Vec<String>,
    users: Vec<String>,
) -> ConsoleResult<(HashMap<String, String>, HashMap<String, String>)> {
    Ok(state
        .db
        .run(move |conn| {
            Ok((
                crate::villages::names(conn, &codes)?,
                crate::users::names(conn, &users)?,
            ))
        })
        .await?)
}

/// A name from a lookup, or the key itself.
pub fn name<'a>(names: &'a HashMap<String, String>, key: &'a str) -> &'a str {
    names.get(key).map_or(key, String::as_str)
}

/// A form body's fields (empty ones dropped, as in [`pairs`]), once none of them holds a
/// control character (the API's rule for text, see [`crate::http::text`]).
pub fn form_fields(body: &[u8]) -> ConsoleResult<Vec<(String, String)>> {
    crate::http::text::check_form(body)?;
    Ok(pairs(std::str::from_utf8(body).unwrap_or("")))
}

/// A posted form's fields, once its CSRF token is this session's.
pub fn posted(
    state: &crate::state::AppState,
    session: &Session,
    body: &[u8],
) -> ConsoleResult<Vec<(String, String)>> {
    let fields = form_fields(body)?;
    session.check_csrf(state, value(&fields, "csrf").unwrap_or(""))?;
    Ok(fields)
}

/// The page a form came from (its `back` field), if it is a page of the section.
pub fn back_to(fields: &[(String, String)], section: &str) -> String {
    value(fields, "back")
        .filter(|b| b.starts_with(section))
        .unwrap_or(section)
        .to_owned()
}

/// The county and village pickers of a filter form: a reviewer's county is fixed.
pub fn place_filters(
    caller: &Caller,
    counties: &[(String, String)],
    county: Option<&str>,
    villages: &[(String, String)],
    village: Option<&str>,
) -> maud::Markup {
    maud::html! {
        label { "县（市、区）"
            select name="county" disabled[caller.county_code.is_some()] {
                @if caller.county_code.is_none() { option value="" { "全部" } }
                @for (code, n) in counties {
                    option value=(code) selected[county == Some(code.as_str())] { (n) }
                }
            }
        }
        label { "行政村"
            select name="village" {
                option value="" { "全部" }
                @for (code, n) in villages {
                    option value=(code) selected[village == Some(code.as_str())] { (n) }
                }
            }
        }
    }
}
