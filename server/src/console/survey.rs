//! A survey's page: the household, its members, flags, photos and position on a map of the
//! village's geofence and its neighbours, with the decisions its state allows.

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use super::error::{explain, ConsoleResult};
use super::layout::{csrf_field, datetime, render, Nav};
use super::svg::{map, Fence, Mark, Point};
use super::{name, names, pairs, parse_pairs, posted, see_other_with, value, Session};
use crate::auth::Area;
use crate::error::bad_query;
use crate::state::AppState;
use crate::surveys::review::{transition, Decision, ReviewRequest};
use crate::surveys::service::{self, Reveal};
use crate::surveys::views::{HouseholdView, SurveyDetail, SurveySummary};
use crate::villages::service::{self as villages, Village, VillageFilter, VillageList};

fn yes_no(b: bool) -> &'static str {
    if b {
        "是"
    } else {
        "否"
    }
}

/// Whether the page is asked to show ID and phone numbers in full (`reveal=true`), and why.
fn reveal_of(params: &[(String, String)]) -> crate::error::ApiResult<Reveal> {
    Ok(Reveal {
        wanted: match value(params, "reveal") {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(bad_query("reveal", "须为 true 或 false")),
        },
        reason: value(params, "reason").map(str::to_owned),
    })
}

pub async fn page(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    req: HttpRequest,
) -> ConsoleResult<HttpResponse> {
    let id = path.into_inner();
    let reveal = reveal_of(&pairs(req.query_string()))?;
    let revealing = reveal.wanted;
    let survey = service::get_survey(
        &state.db,
        &state.vault,
        session.caller.clone(),
        service::survey_id(&id)?,
        reveal,
    )
    .await?;
    let s = &survey.summary;
    let code = villages::village_code(&s.village_code)?;
    let village = villages::get(&state.db, &session.caller, code).await?;
    let neighbours = villages::list(
        &state.db,
        &session.caller,
        VillageFilter {
            area: Area {
                township: Some(village.township_code.clone()),
                ..Area::default()
            },
            geofence: true,
        },
    )
    .await?;
    let household = service::get_household(
        &state.db,
        &state.vault,
        session.caller.clone(),
        s.household_id.clone(),
        Reveal::default(),
    )
    .await?;
    let (_, people) = names(&state, Vec::new(), vec![s.enumerator_id.clone()]).await?;

    let location = location(&neighbours, &village, s);
    let body = html! {
        div.survey-head {
            span class={ "status " (s.status.as_str()) } #status { (s.status.label()) }
            span.muted { "第 " (s.version) " 版 · 审核版本 " (s.review_version) }
        }
        div.columns {
            section {
                h2 { "户基本情况" }
                dl.facts {
                    dt { "户主" } dd { (s.head_name) }
                    dt { "行政村" } dd { (village.county_name) " " (village.township_name) " " (village.name) }
                    dt { "户编号" } dd { (survey.household_number.as_deref().unwrap_or("—")) }
                    dt { "户主身份证号" } dd.id { (survey.head_id_number.as_deref().unwrap_or("—")) }
                    dt { "联系电话" } dd { (survey.phone.as_deref().unwrap_or("—")) }
                    dt { "户类别" } dd { (s.poverty_status.label()) }
                    dt { "易地扶贫搬迁" } dd { (yes_no(survey.relocated)) }
                    dt { "调查月份" } dd { (survey.month) }
                    dt { "调查时间" } dd { (datetime(&s.surveyed_at)) }
                    dt { "接收时间" } dd { (datetime(&s.received_at)) }
                    dt { "调查员" } dd { (name(&people, &s.enumerator_id)) }
                    dt { "表单版本" } dd { (survey.form_version) }
                    @if let Some(r) = &survey.replaces {
                        dt { "更正" } dd { a href={ "/console/surveys/" (r) } { "被更正的调查" } }
                    }
                    @if let Some(c) = &survey.review_comment {
                        dt { "审核意见" } dd { (c) }
                    }
                }
                @if !revealing {
                    form.reveal method="get" action={ "/console/surveys/" (s.id) } {
                        input type="hidden" name="reveal" value="true";
                        input type="text" name="reason" placeholder="查看完整证件号的理由（记入审计日志）" required maxlength="200";
                        button type="submit" { "显示完整证件号" }
                    }
                } @else {
                    p.muted { "完整证件号与电话已显示，本次查看已记入审计日志。" }
                }
            }
            section {
                h2 { "位置" }
                (location)
            }
        }
        @if !s.flag_details.is_empty() {
            section.flags {
                h2 { "标记" }
                ul {
                    @for f in &s.flag_details {
                        li {
                            span.flag { (f.flag.label()) } " " (f.detail)
                            @if f.related_household_id.is_some() {
                                " · " a href="/console/duplicates" { "到疑似重复户处理" }
                            }
                        }
                    }
                }
            }
        }
        (members(&survey))
        (photos(s))
        (versions(&household, s))
        (decisions(&session, &survey))
    };
    Ok(render(
        &session,
        Nav::Queue,
        &format!("{} 户调查", s.head_name),
        body,
    ))
}

/// The survey's position on a map of its village's geofence and the township's other villages.
fn location(neighbours: &VillageList, village: &Village, s: &SurveySummary) -> Markup {
    let mut fences: Vec<Fence> = Vec::new();
    let mut points: Vec<Point> = Vec::new();
    for v in &neighbours.villages {
        if let Some(g) = &v.geofence {
            fences.push(Fence {
                name: &v.name,
                geometry: g,
                focus: v.code == village.code,
            });
        }
        points.push(Point {
            lat: v.centroid.lat,
            lon: v.centroid.lon,
            label: v.name.clone(),
            mark: Mark::Village,
            accuracy_m: None,
        });
    }
    points.push(Point {
        lat: s.lat,
        lon: s.lon,
        label: format!(
            "调查位置（精度 {}）",
            s.accuracy_m
                .map_or("未知".to_owned(), |a| format!("{a:.0} 米"))
        ),
        mark: Mark::Survey,
        accuracy_m: s.accuracy_m,
    });
    let caption = format!(
        "{}{}{}的电子围栏（深色）、同乡镇的村（浅色）与调查位置（红点）",
        village.county_name, village.township_name, village.name
    );
    map(&fences, &points, &caption)
}

/// The household's members and their answers.
fn members(survey: &SurveyDetail) -> Markup {
    html! {
        section {
            h2 { "家庭成员（" (survey.members.len()) " 人）" }
            table.list.members {
                thead { tr {
                    th { "姓名" } th { "身份证号" } th { "性别" } th { "出生日期" } th { "与户主关系" }
                    th { "劳动能力" } th { "就业情况" } th { "愿参加公益岗" } th { "培训需求" }
                    th { "返贫风险" } th { "兜底保障" }
                } }
                tbody {
                    @for m in &survey.members {
                        tr {
                            td { (m.name) }
                            td.id { (m.id_number.as_deref().unwrap_or("无身份证号")) }
                            td { (m.sex.label()) }
                            td { (m.birth_date.format("%Y-%m-%d")) }
                            td { (m.relation.label()) }
                            td { (m.labour_capacity.label()) }
                            td {
                                @if let Some(e) = &m.employment {
                                    (e.status.label())
                                    @if let Some(p) = e.post_type { "（" (p.label()) "）" }
                                    @if let Some(y) = e.monthly_income_yuan { " 月收入 " (y) " 元" }
                                } @else { "—" }
                            }
                            td { (yes_no(m.wants_public_post)) }
                            td {
                                @if m.training_wanted {
                                    (m.training_trade.map_or("是", |t| t.label()))
                                } @else { "否" }
                            }
                            td { (yes_no(m.at_risk)) }
                            td {
                                @for n in &m.safety_net { (n.label()) " " }
                                @if m.safety_net.is_empty() { "—" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The survey's photos, as thumbnails linking to the originals.
fn photos(s: &SurveySummary) -> Markup {
    html! {
        section {
            h2 { "照片（" (s.photos.len()) "）" }
            @if s.photos.is_empty() { p.muted { "本次调查没有照片。" } }
            div.photos {
                @for p in &s.photos {
                    a href={ "/console/photos/" (p.sha256) } target="_blank" rel="noopener" title="查看原图" {
                        img src={ "/console/photos/" (p.sha256) "?size=thumb" } alt="调查照片" loading="lazy";
                    }
                }
            }
        }
    }
}

/// The household's earlier and later surveys, when it has more than this one.
fn versions(household: &HouseholdView, s: &SurveySummary) -> Markup {
    html! {
        @if household.versions.len() > 1 {
            section.versions {
                h2 { "该户历次调查（" (household.versions.len()) "）" }
                table.list {
                    thead { tr { th { "版本" } th { "调查时间" } th { "户主" } th { "人数" } th { "状态" } } }
                    tbody {
                        @for v in &household.versions {
                            tr class=[(v.id == s.id).then_some("current")] {
                                td { a href={ "/console/surveys/" (v.id) } { "第 " (v.version) " 版" } }
                                td { (datetime(&v.surveyed_at)) }
                                td { (v.head_name) }
                                td.num { (v.member_count) }
                                td { span class={ "status " (v.status.as_str()) } { (v.status.label()) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The decisions the survey's state allows, each a form naming the version it was shown.
fn decisions(session: &Session, survey: &SurveyDetail) -> Markup {
    let s = &survey.summary;
    let allowed: Vec<Decision> = Decision::ALL
        .into_iter()
        .filter(|d| transition(s.status, *d).is_some())
        .collect();
    html! {
        section.decide #decide {
            h2 { "审核" }
            @if allowed.is_empty() {
                p.muted { "此调查当前状态（" (s.status.label()) "）不能再审核。" }
            }
            div.decisions {
                @for d in &allowed {
                    form method="post" action={ "/console/surveys/" (s.id) "/review" } class={ "decision " (d_slug(*d)) } {
                        (csrf_field(session))
                        input type="hidden" name="decision" value=(d_slug(*d));
                        input type="hidden" name="seen_version" value=(s.review_version);
                        @if d.needs_reason() {
                            textarea name="reason" required maxlength="500" rows="2"
                                placeholder=(format!("{}理由（必填，调查员可见）", d.label())) {}
                        }
                        button type="submit" class=(if *d == Decision::Approve { "primary" } else { "" }) { (d.label()) }
                    }
                }
            }
        }
    }
}

fn d_slug(d: Decision) -> &'static str {
    match d {
        Decision::Approve => "approve",
        Decision::Reject => "reject",
        Decision::RequestRevision => "request_revision",
        Decision::Reopen => "reopen",
    }
}

#[derive(serde::Deserialize)]
struct DecisionForm {
    decision: Decision,
    reason: Option<String>,
    seen_version: Option<i32>,
}

pub async fn decide(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    body: web::Bytes,
) -> ConsoleResult<HttpResponse> {
    let id = path.into_inner();
    let back = format!("/console/surveys/{id}");
    let fields = posted(&state, &session, &body)?;
    let form: DecisionForm = parse_pairs(&fields)?;
    let request = ReviewRequest {
        decision: form.decision,
        reason: form.reason,
        seen_version: form.seen_version,
    };
    Ok(
        match review_one(&state, session.caller, &id, request).await {
            Ok(outcome) => see_other_with(
                &back,
                true,
                &format!("{}：{}", form.decision.label(), outcome.status.label()),
            ),
            Err(e) => see_other_with(&back, false, &explain(&e)),
        },
    )
}

/// Decides one survey as the API's review does: the role first, then the id.
async fn review_one(
    state: &AppState,
    caller: crate::auth::Caller,
    id: &str,
    request: ReviewRequest,
) -> crate::error::ApiResult<crate::surveys::review::ReviewOutcome> {
    service::require_reviewer(&caller)?;
    let id = service::survey_id(id)?;
    service::review(&state.db, caller, id, request).await
}
