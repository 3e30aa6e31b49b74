//! `/households/import` (a county's 建档立卡 list: households known before they are surveyed)
//! and its template: the wire shapes of `surveys::import`.

use actix_web::{get, post, web, HttpRequest, HttpResponse};

use super::employers::{sheet_format, ImportQuery, TemplateQuery};
use crate::error::{ApiResult, Problem};
use crate::http::{declared_length, read_limited};
use crate::http::{ApiQuery, Auth};
use crate::state::AppState;
use crate::surveys::import::{self, HouseholdImportReport};

/// Mounted before the surveys' routes (`/households/{id}`).
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(household_import_template)
        .service(import_households);
}

/// Imports the households a county already has (建档立卡 list; city admins any county, county
/// reviewers their county's villages; audited with the file's SHA-256): CSV (UTF-8) or XLSX,
/// first sheet, header row among the first five, columns 村代码 (12-digit village code, as
/// text), 户编号 (optional), 户主姓名, 户主身份证号, 家庭人口数 (1–30), 联系电话 (optional),
/// 贫困户属性 (脱贫户/未脱贫户/监测户 or the wire value, optional), 脱贫年度 (optional),
/// 是否易地扶贫搬迁户 (是/否, optional). Rows starting with 示例 are skipped. Each household
/// is stored as known, not yet surveyed: its keys are learnt as a survey's are, so its first
/// survey (naming the same 户主身份证号 or 户编号 in the county) becomes its version 1. A row
/// whose household is already known in its county is skipped and counted (`known`), a row
/// repeating an earlier one counted in `repeated`: importing a file twice adds nothing. Every
/// row is checked first; any broken rule answers 422 listing each by `rows[<row
/// number>].<field>` (the first 100, `errors_total` counting all) and stores nothing. At most
/// 100,000 rows and 16 MiB; `dry_run=true` checks and reports without storing.
#[utoipa::path(
    tag = "surveys",
    security(("bearer" = [])),
    params(ImportQuery),
    request_body(description = "The sheet", content(
        (inline(crate::domain::Binary) = "text/csv"),
        (inline(crate::domain::Binary) = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    )),
    responses(
        (status = 200, description = "What was (or, on a dry run, would be) added and skipped", body = HouseholdImportReport),
        (status = 400, description = "`invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_role`: city admins and county reviewers only", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: a survey registered one of the households while the import ran; send it again", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: over 16 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: neither CSV nor XLSX", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: every bad row by `rows[n].village_code|household_number|head_name|head_id_number|member_count|phone|poverty_status|lifted_year|relocated` (rules `required`, `division_code_format`, `division_level`, `unknown_village`, `out_of_scope`, `household_number_format`, `length`, `control_character`, `id_number_format`, `id_number_check_digit`, `id_number_region`, `id_number_birth_date`, `range`, `phone_format`, `unknown_value`, `duplicate`), at most 100 listed with `errors_total`; a missing column (`columns.<header>`); an unreadable sheet, too many rows or an XLSX bomb (`body`: `invalid`, `too_many`, `implausible_compression`)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/households/import")]
pub async fn import_households(
    state: web::Data<AppState>,
    Auth(caller): Auth,
    req: HttpRequest,
    query: ApiQuery<ImportQuery>,
    payload: web::Payload,
) -> ApiResult<web::Json<HouseholdImportReport>> {
    import::require_importer(&caller)?;
    let format = sheet_format(&req)?;
    let mut payload = payload;
    let body = read_limited(&mut payload, import::MAX_BYTES, declared_length(&req)).await?;
    let dry_run = query.0.dry_run.unwrap_or(false);
    import::import(
        &state.db,
        &state.vault,
        &caller,
        body.to_vec(),
        format,
        dry_run,
    )
    .await
    .map(web::Json)
}

/// The 建档立卡 import template: the headers, an example row (starting with 示例, skipped on
/// import) and, in the XLSX, a sheet of instructions; its columns are formatted as text.
#[utoipa::path(
    tag = "surveys",
    security(("bearer" = [])),
    params(TemplateQuery),
    responses(
        (status = 200, description = "The template", content(
            (inline(crate::domain::Binary) = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (inline(String) = "text/csv"),
        )),
        (status = 400, description = "`invalid_query`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/households/import/template")]
pub async fn household_import_template(
    Auth(_caller): Auth,
    query: ApiQuery<TemplateQuery>,
) -> ApiResult<HttpResponse> {
    crate::http::export::template(
        query.0.format,
        "建档立卡户导入模板",
        "households-template",
        import::template,
    )
}
