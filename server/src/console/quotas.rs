//! Post quotas (岗位指标) in the console: the city's yearly totals of special posts (扶贫特岗)
//! and temporary posts (临时公益岗) and their split by county. County reviewers read them; the
//! city admin edits them through the same service as `PUT /api/v1/quotas/{year}`.

use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;

use super::error::{explain, ConsoleResult};
use super::layout::{csrf_field, datetime, number, render, Nav};
use super::{counties_of, pairs, posted, see_other_with, value, Session};
use crate::domain::{Month, Role};
use crate::error::{bad_query, ApiError, ApiResult};
use crate::ledger::quotas::{
    CityQuotaInput, CountyQuota, QuotaRequest, DEFAULT_TEMPORARY_POST_YUAN,
};
use crate::ledger::service;
use crate::state::AppState;

fn year_of(raw: Option<&str>) -> ApiResult<i32> {
    match raw {
        None => Ok(Month::current().year()),
        Some(y) => y
            .parse::<i32>()
            .ok()
            .filter(|y| (2015..=2100).contains(y))
            .ok_or_else(|| bad_query("year", "须为 2015 至 2100 之间的年份")),
    }
}

pub async fn page(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
) -> ConsoleResult<HttpResponse> {
    let params = pairs(req.query_string());
    let caller = &session.caller;
    let year = year_of(value(&params, "year"))?;
    let quotas = service::quotas(&state.db, caller, year).await?;
    let counties = counties_of(&state, caller).await?;
    let admin = caller.role == Role::CityAdmin;
    let yuan = quotas
        .counties
        .first()
        .map_or(DEFAULT_TEMPORARY_POST_YUAN, |c| {
            i64::from(c.temporary_post_monthly_yuan)
        });
    let city = quotas.city.as_ref();
    let share = |code: &str| quotas.counties.iter().find(|c| c.county == code);
    let body = html! {
        form.filters method="get" action="/console/quotas" {
            label { "年度" input type="number" name="year" value=(year) min="2015" max="2100"; }
            button type="submit" { "查看" }
        }
        p.muted {
            "全市指标为省下达的年度岗位任务，由市扶贫办分配到各县（市、区）；各县分配合计不得超过全市指标。"
            @if let Some(c) = city { " 来源：" (c.source) "（" (datetime(&c.updated_at)) "）" }
        }
        form #quotas method="post" action={ "/console/quotas/" (year) } {
            (csrf_field(&session))
            table.list #quota-table {
                thead { tr { th {} th { "扶贫特岗" } th { "临时公益岗" } } }
                tbody {
                    tr.city data-county="city" {
                        th { "全市指标" }
                        td.num { @if admin { input #city-special type="number" name="city_special" min="0" value=(city.map_or(String::new(), |c| c.special_posts.to_string())); } @else { (city.map_or("—".to_owned(), |c| number(c.special_posts.into()))) } }
                        td.num { @if admin { input #city-temporary type="number" name="city_temporary" min="0" value=(city.map_or(String::new(), |c| c.temporary_posts.to_string())); } @else { (city.map_or("—".to_owned(), |c| number(c.temporary_posts.into()))) } }
                    }
                    @for (code, name) in &counties {
                        tr data-county=(code) {
                            td { (name) }
                            td.num { @if admin { input type="number" name={ "special_" (code) } min="0" value=(share(code).map_or(String::new(), |c| c.special_posts.to_string())); } @else { (share(code).map_or("—".to_owned(), |c| number(c.special_posts.into()))) } }
                            td.num { @if admin { input type="number" name={ "temporary_" (code) } min="0" value=(share(code).map_or(String::new(), |c| c.temporary_posts.to_string())); } @else { (share(code).map_or("—".to_owned(), |c| number(c.temporary_posts.into()))) } }
                        }
                    }
                    tr.total #assigned {
                        th { "已分配合计" }
                        td.num { (number(quotas.special_posts_total)) }
                        td.num { (number(quotas.temporary_posts_total)) }
                    }
                }
            }
            @if admin {
                label { "临时公益岗月补贴（元）" input type="number" name="yuan" min="0" value=(yuan); }
                button.primary #save-quotas type="submit" { "保存指标" }
            }
        }
    };
    Ok(render(
        &session,
        Nav::Quotas,
        &format!("{year} 年岗位指标"),
        body,
    ))
}

/// A whole number from a form field (empty: none).
fn count(fields: &[(String, String)], key: &str) -> ApiResult<Option<i32>> {
    value(fields, key)
        .map(|v| {
            v.trim()
                .parse::<i32>()
                .map_err(|_| ApiError::field(key, crate::domain::Rule::InvalidType, "须为整数"))
        })
        .transpose()
}

/// The form as the API's request: the city's totals if both are filled, and every county with
/// both shares filled.
fn request_of(
    fields: &[(String, String)],
    counties: &[(String, String)],
) -> ApiResult<QuotaRequest> {
    let city = match (
        count(fields, "city_special")?,
        count(fields, "city_temporary")?,
    ) {
        (Some(s), Some(t)) => Some(CityQuotaInput {
            special_posts: s,
            temporary_posts: t,
        }),
        _ => None,
    };
    let mut shares = Vec::new();
    for (code, _) in counties {
        let s = count(fields, &format!("special_{code}"))?;
        let t = count(fields, &format!("temporary_{code}"))?;
        if s.is_some() || t.is_some() {
            shares.push(CountyQuota {
                county: code.clone(),
                special_posts: s.unwrap_or(0),
                temporary_posts: t.unwrap_or(0),
            });
        }
    }
    Ok(QuotaRequest {
        temporary_post_monthly_yuan: count(fields, "yuan")?,
        city,
        counties: shares,
    })
}

pub async fn save(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    body: web::Bytes,
) -> ConsoleResult<HttpResponse> {
    let fields = posted(&state, &session, &body)?;
    let caller = &session.caller;
    let outcome = async {
        service::require_closer(caller)?;
        let year = year_of(Some(&path))?;
        let counties = counties_of(&state, caller)
            .await
            .map_err(|_| ApiError::internal(anyhow::anyhow!("counties")))?;
        let request = request_of(&fields, &counties)?;
        service::set_quotas(&state.db, caller, year, request).await?;
        Ok::<i32, ApiError>(year)
    }
    .await;
    let back = match year_of(Some(&path)) {
        Ok(year) => format!("/console/quotas?year={year}"),
        Err(_) => "/console/quotas".to_owned(),
    };
    Ok(match outcome {
        Ok(year) => see_other_with(&back, true, &format!("{year} 年岗位指标已保存。")),
        Err(e) => see_other_with(&back, false, &explain(&e)),
    })
}
