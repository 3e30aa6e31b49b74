//! Households flagged as possible duplicates, side by side with their members, to merge or keep
//! apart.

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use super::error::{explain, ConsoleResult};
use super::layout::{csrf_field, datetime, query, render, Nav};
use super::{
    back_to, chosen_county, name, names, pairs, parse_pairs, posted, see_other_with, value, Session,
};
use crate::auth::{Area, Caller};
use crate::error::{bad_query, ApiResult};
use crate::state::AppState;
use crate::surveys::duplicate_list::{DuplicatePair, HouseholdSide};
use crate::surveys::duplicates::{PairAction, PairKind, PairRequest, PairState};
use crate::surveys::service::{self, Cursor, DuplicateFilter, Reveal};
use crate::surveys::views::SurveyDetail;

/// Pairs per page: each shows both households' members, so a page stays short.
const PAGE: i64 = 10;

/// The pairs a page lists: its state and kind pickers and the county, [`PAGE`] a page.
fn filter_of(
    caller: &Caller,
    params: &[(String, String)],
    county: Option<&str>,
) -> ApiResult<DuplicateFilter> {
    let state = value(params, "state")
        .map(|s| PairState::parse(s).ok_or_else(|| bad_query("state", "不是处理状态")))
        .transpose()?;
    let kind = value(params, "kind")
        .map(|k| PairKind::parse(k).ok_or_else(|| bad_query("kind", "不是配对类型")))
        .transpose()?;
    Ok(DuplicateFilter {
        state: state.unwrap_or(PairState::Open),
        kind,
        area: Area::parse(caller, None, None, county)?,
        cursor: value(params, "cursor").map(Cursor::parse).transpose()?,
        limit: PAGE,
    })
}

pub async fn page(
    state: web::Data<AppState>,
    session: Session,
    req: HttpRequest,
) -> ConsoleResult<HttpResponse> {
    let params = pairs(req.query_string());
    let caller = &session.caller;
    let pair_state = value(&params, "state").map(str::to_owned);
    let county = chosen_county(caller, value(&params, "county"));
    let filter = filter_of(caller, &params, county.as_deref())?;
    let result = service::list_duplicates(&state.db, caller.clone(), filter).await?;
    let mut details: Vec<(Option<SurveyDetail>, Option<SurveyDetail>)> = Vec::new();
    for pair in &result.items {
        details.push((
            latest(&state, &session, &pair.a).await?,
            latest(&state, &session, &pair.b).await?,
        ));
    }
    let mut codes: Vec<String> = Vec::new();
    for p in &result.items {
        codes.push(p.a.village_code.clone());
        codes.push(p.b.village_code.clone());
    }
    let (places, _) = names(&state, codes, Vec::new()).await?;
    let here = format!("/console/duplicates?{}", req.query_string());
    let next = result.next_cursor.as_ref().map(|c| {
        format!(
            "/console/duplicates?{}",
            query(&[
                ("state", pair_state.as_deref()),
                ("county", county.as_deref()),
                ("cursor", Some(c))
            ])
        )
    });
    let body = html! {
        form.filters method="get" action="/console/duplicates" {
            label { "处理状态"
                select name="state" {
                    @for s in PairState::ALL {
                        option value=(s.as_str()) selected[pair_state.as_deref().unwrap_or("open") == s.as_str()] { (s.label()) }
                    }
                }
            }
            button type="submit" { "筛选" }
        }
        @if result.items.is_empty() {
            p.empty { "没有符合条件的疑似重复户。" }
        }
        @for (pair, (a, b)) in result.items.iter().zip(&details) {
            article.pair data-pair={ (pair.household_a) "/" (pair.household_b) } {
                header {
                    span.flag { (pair.state.label()) }
                    @if pair.kind == PairKind::HouseholdInOtherCounty { " " span.flag { (pair.kind.label()) } }
                    " 标记于 " (datetime(&pair.flagged_at))
                    @if let Some(d) = pair.distance_m { " · 两次调查位置相距 " (format!("{d:.0}")) " 米" }
                    @if let Some(r) = &pair.reason { " · 理由：" (r) }
                }
                div.sides {
                    (side(&pair.a, a.as_ref(), name(&places, &pair.a.village_code), pair.survivor_id.as_deref()))
                    (side(&pair.b, b.as_ref(), name(&places, &pair.b.village_code), pair.survivor_id.as_deref()))
                }
                (actions(&session, pair, &here))
            }
        }
        @if let Some(next) = next {
            p { a.next href=(next) { "下一页 →" } }
        }
    };
    Ok(render(&session, Nav::Duplicates, "疑似重复户", body))
}

async fn latest(
    state: &web::Data<AppState>,
    session: &Session,
    side: &HouseholdSide,
) -> ConsoleResult<Option<SurveyDetail>> {
    let Some(id) = &side.latest_survey_id else {
        return Ok(None);
    };
    let id = service::survey_id(id)?;
    Ok(Some(
        service::get_survey(
            &state.db,
            &state.vault,
            session.caller.clone(),
            id,
            Reveal::default(),
        )
        .await?,
    ))
}

fn side(
    side: &HouseholdSide,
    detail: Option<&SurveyDetail>,
    village: &str,
    survivor: Option<&str>,
) -> Markup {
    html! {
        section.side {
            h3 {
                (side.head_name.as_deref().unwrap_or("（已并入另一户）"))
                @if survivor == Some(side.household_id.as_str()) { " " span.flag { "保留户" } }
            }
            dl.facts {
                dt { "行政村" } dd { (village) }
                dt { "户编号" } dd { (side.household_number.as_deref().unwrap_or("—")) }
                dt { "人数" } dd { (side.member_count.map_or("—".to_owned(), |n| n.to_string())) }
                dt { "最近调查" } dd { (side.surveyed_at.as_ref().map_or("—".to_owned(), datetime)) }
                dt { "状态" } dd { (side.status.map_or("—", |s| s.label())) }
                dt { "调查版本数" } dd { (side.versions) }
            }
            @if let Some(d) = detail {
                table.list.members {
                    thead { tr { th { "姓名" } th { "身份证号" } th { "出生日期" } th { "与户主关系" } } }
                    tbody {
                        @for m in &d.members {
                            tr { td { (m.name) } td.id { (m.id_number.as_deref().unwrap_or("无身份证号")) } td { (m.birth_date.format("%Y-%m-%d")) } td { (m.relation.label()) } }
                        }
                    }
                }
                p { a href={ "/console/surveys/" (d.summary.id) } { "查看调查 →" } }
            }
        }
    }
}

fn actions(session: &Session, pair: &DuplicatePair, back: &str) -> Markup {
    let action = format!(
        "/console/duplicates/{}/{}",
        pair.household_a, pair.household_b
    );
    let hidden = |act: &str| {
        html! {
            (csrf_field(session))
            input type="hidden" name="action" value=(act);
            input type="hidden" name="seen_version" value=(pair.version);
            input type="hidden" name="back" value=(back);
        }
    };
    // A key shared by two counties is a transfer (merge) or a mistake (keep apart).
    let transfer = pair.kind == PairKind::HouseholdInOtherCounty;
    let (merge_a, merge_b, apart) = if transfer {
        (
            "确认迁移，保留左侧户",
            "确认迁移，保留右侧户",
            "确认录入错误（不是同一户）",
        )
    } else {
        ("合并，保留左侧户", "合并，保留右侧户", "确认不是同一户")
    };
    html! {
        div.decisions {
            @match pair.state {
                PairState::Open => {
                    form method="post" action=(action) class="decision merge-a" data-confirm="合并后右侧户的调查并入左侧户，确定？" {
                        (hidden("merge"))
                        input type="hidden" name="survivor" value=(pair.household_a);
                        button type="submit" { (merge_a) }
                    }
                    form method="post" action=(action) class="decision merge-b" data-confirm="合并后左侧户的调查并入右侧户，确定？" {
                        (hidden("merge"))
                        input type="hidden" name="survivor" value=(pair.household_b);
                        button type="submit" { (merge_b) }
                    }
                    form method="post" action=(action) class="decision keep-apart" {
                        (hidden("keep_apart"))
                        textarea name="reason" required maxlength="500" rows="2" placeholder="理由（必填）" {}
                        button type="submit" { (apart) }
                    }
                }
                PairState::Merged => {
                    form method="post" action=(action) class="decision unmerge" {
                        (hidden("unmerge"))
                        textarea name="reason" required maxlength="500" rows="2" placeholder="撤销合并的理由（必填）" {}
                        button type="submit" { "撤销合并" }
                    }
                }
                PairState::KeptApart => {
                    p.muted { "已确认不是同一户。" }
                }
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct PairForm {
    action: PairAction,
    survivor: Option<String>,
    reason: Option<String>,
    seen_version: Option<i32>,
}

pub async fn decide(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> ConsoleResult<HttpResponse> {
    let fields = posted(&state, &session, &body)?;
    let back = back_to(&fields, "/console/duplicates");
    let form: PairForm = parse_pairs(&fields)?;
    let request = PairRequest {
        action: form.action,
        survivor: form.survivor,
        reason: form.reason,
        seen_version: form.seen_version,
    };
    let (a, b) = path.into_inner();
    Ok(
        match service::decide_pair(&state.db, session.caller, a, b, request).await {
            Ok(_) => see_other_with(&back, true, &format!("已{}。", form.action.label())),
            Err(e) => see_other_with(&back, false, &explain(&e)),
        },
    )
}
