//! Village position calibration in the console: a county's villages whose first secretary's
//! check-ins of a month propose a position, each with its days and spread, and a form to accept
//! it — the same service as `GET /api/v1/villages/{code}/calibration` and `POST …/accept`.

use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;

use super::error::{explain, ConsoleResult};
use super::layout::{csrf_field, render, Nav};
use super::{counties_of, pairs, posted, see_other_with, value, Session};
use crate::auth::area;
use crate::domain::{DivisionLevel, Month, Role, Rule};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::villages::calibration::{self, AcceptCalibration, DEFAULT_RADIUS_M};
use crate::villages::service::village_code;

pub async fn page(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
) -> ConsoleResult<HttpResponse> {
    let params = pairs(req.query_string());
    let caller = &session.caller;
    let counties = counties_of(&state, caller).await?;
    let month = area::month("month", value(&params, "month"))?;
    let chosen = value(&params, "county")
        .map(str::to_owned)
        .or_else(|| counties.first().map(|(c, _)| c.clone()));
    let county = area::code("county", chosen.as_deref(), DivisionLevel::County)?;
    let proposals = match county {
        Some(c) => calibration::pending(&state.db, caller, c, month).await?,
        None => Vec::new(),
    };
    let reviewer = caller.role == Role::CountyReviewer;
    let body = html! {
        form.filters method="get" action="/console/calibration" {
            label { "县（市、区）" select name="county" {
                @for (code, name) in &counties {
                    option value=(code) selected[chosen.as_deref() == Some(code.as_str())] { (name) }
                }
            } }
            label { "月份" input type="month" name="month" value=(month.to_string()); }
            button type="submit" { "查看" }
        }
        p.muted {
            "按第一书记当月每天首次通过核验的驻村打卡位置，取几何中位数为村位置；至少 "
            (calibration::MIN_DAYS) " 天、离散度不超过 " (calibration::MAX_SPREAD_M) " 米才可采纳。采纳后该村电子围栏改为以此为圆心的圆形范围。"
        }
        @if proposals.is_empty() {
            p #no-proposals { "本月没有待采纳的村位置。" }
        } @else {
            table.list #proposals {
                thead { tr { th { "村" } th { "现围栏来源" } th { "打卡天数" } th { "离散度（米）" } th { "距现位置（米）" } th { "建议位置" } th {} } }
                tbody {
                    @for p in &proposals {
                        tr data-village=(p.village_code.as_str()) {
                            td { (p.village_name) }
                            td { (p.current_provenance.label()) }
                            td.num { (p.days) }
                            td.num { (format!("{:.0}", p.spread_m.unwrap_or_default())) }
                            td.num { (format!("{:.0}", p.moved_m.unwrap_or_default())) }
                            td { @if let Some(c) = &p.centre { (format!("{:.6}, {:.6}", c.lat, c.lon)) } }
                            td { @if reviewer {
                                form method="post" action={ "/console/calibration/" (p.village_code.as_str()) } {
                                    (csrf_field(&session))
                                    input type="hidden" name="month" value=(month.to_string());
                                    label { "半径（米）" input type="number" name="radius_m" min=(calibration::MIN_RADIUS_M) max=(calibration::MAX_RADIUS_M) value=(DEFAULT_RADIUS_M); }
                                    button.primary type="submit" { "采纳" }
                                }
                            } }
                        }
                    }
                }
            }
        }
    };
    Ok(render(&session, Nav::Calibration, "村位置校准", body))
}

fn accept_input(fields: &[(String, String)]) -> ApiResult<AcceptCalibration> {
    let month = Month::parse(value(fields, "month").unwrap_or_default())
        .map_err(|e| ApiError::field("month", Rule::MonthFormat, e.message))?;
    let radius_m = value(fields, "radius_m")
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .map_err(|_| ApiError::field("radius_m", Rule::InvalidType, "须为数字"))
        })
        .transpose()?;
    Ok(AcceptCalibration { month, radius_m })
}

pub async fn accept(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    body: web::Bytes,
) -> ConsoleResult<HttpResponse> {
    let fields = posted(&state, &session, &body)?;
    let caller = &session.caller;
    let outcome = async {
        let code = village_code(&path)?;
        let input = accept_input(&fields)?;
        calibration::accept(&state.db, caller, code, input).await
    }
    .await;
    let back = match Month::parse(value(&fields, "month").unwrap_or_default()) {
        Ok(m) => format!("/console/calibration?month={m}"),
        Err(_) => "/console/calibration".to_owned(),
    };
    Ok(match outcome {
        Ok(v) => see_other_with(&back, true, &format!("{} 的位置已按打卡校准。", v.name)),
        Err(e) => see_other_with(&back, false, &explain(&e)),
    })
}
