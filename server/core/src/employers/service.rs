//! The registry's operations: the list (reference data for every signed-in user), the city's
//! edits, and the check of the employers surveys name.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::db::schema::{divisions, employers, villages};
use crate::db::{Db, DbConnection};
use crate::domain::{DivisionCode, DivisionLevel, EmployerKind, EmploymentStatus, Role};
use crate::error::{ApiError, ApiResult, FieldError};

/// One employer of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Employer {
    #[schema(example = "0190d1c2-7a3b-7c4d-8e5f-0123456789ab")]
    pub id: String,
    pub kind: EmployerKind,
    #[schema(example = "洮北区丰收农业专业合作社")]
    pub name: String,
    /// 统一社会信用代码 (18 characters), when known; one employer per code.
    pub credit_code: Option<String>,
    #[schema(example = "220802000000")]
    pub county_code: String,
    pub village_code: Option<String>,
    pub address: Option<String>,
    /// An inactive employer stays listed (older surveys name it) but new surveys may not.
    pub active: bool,
    /// Generated demo data (`serve --demo`, `taizhang seed`).
    pub demo: bool,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = employers, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct Row {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub credit_code: Option<String>,
    pub county_code: String,
    pub village_code: Option<String>,
    pub address: Option<String>,
    pub active: bool,
    pub demo: bool,
    pub updated_at: NaiveDateTime,
}

impl Row {
    pub(crate) fn employer(self) -> ApiResult<Employer> {
        Ok(Employer {
            kind: EmployerKind::parse(&self.kind)
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("stored employer kind")))?,
            id: self.id,
            name: self.name,
            credit_code: self.credit_code,
            county_code: self.county_code,
            village_code: self.village_code,
            address: self.address,
            active: self.active,
            demo: self.demo,
            updated_at: self.updated_at.and_utc(),
        })
    }
}

/// What a list asks for.
#[derive(Debug, Clone, Default)]
pub struct EmployerFilter {
    pub county: Option<DivisionCode>,
    pub kind: Option<EmployerKind>,
    /// Part of the name or the credit code.
    pub q: Option<String>,
    pub include_inactive: bool,
    pub offset: i64,
    pub limit: i64,
}

/// A page of the registry, in county, kind, name order.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmployerPage {
    pub items: Vec<Employer>,
    /// How many match the filter in all.
    pub total: i64,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// The registry (any signed-in user: it is reference data, not personal).
pub async fn list(db: &Db, _caller: &Caller, filter: EmployerFilter) -> ApiResult<EmployerPage> {
    db.run(move |conn| {
        let query = || {
            let mut q = employers::table.into_boxed();
            if let Some(c) = &filter.county {
                q = q.filter(employers::county_code.eq(c.as_str().to_owned()));
            }
            if let Some(k) = filter.kind {
                q = q.filter(employers::kind.eq(k.as_str()));
            }
            if !filter.include_inactive {
                q = q.filter(employers::active.eq(true));
            }
            if let Some(text) = &filter.q {
                let like = format!("%{}%", text.replace(['%', '_'], ""));
                q = q.filter(
                    employers::name
                        .like(like.clone())
                        .or(employers::credit_code.like(like)),
                );
            }
            q
        };
        let total: i64 = query().count().get_result(conn)?;
        let rows: Vec<Row> = query()
            .order((
                employers::county_code,
                employers::kind,
                employers::name,
                employers::id,
            ))
            .offset(filter.offset)
            .limit(filter.limit)
            .select(Row::as_select())
            .load(conn)?;
        let items = rows
            .into_iter()
            .map(Row::employer)
            .collect::<ApiResult<Vec<_>>>()?;
        let next = filter.offset + items.len() as i64;
        Ok(EmployerPage {
            next_cursor: (next < total).then(|| next.to_string()),
            items,
            total,
        })
    })
    .await
}

/// One employer, if registered.
pub fn find(conn: &mut DbConnection, id: &str) -> ApiResult<Option<Employer>> {
    employers::table
        .find(id)
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .map(Row::employer)
        .transpose()
}

/// An employer's fields as the city edits them (`PUT /employers/{id}`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmployerInput {
    #[schema(example = "洮北区丰收农业专业合作社")]
    pub name: String,
    pub kind: EmployerKind,
    /// 12-digit county code.
    #[schema(example = "220802000000")]
    pub county_code: String,
    /// 12-digit village code in that county, or null.
    pub village_code: Option<String>,
    pub address: Option<String>,
    pub active: bool,
}

/// Who edits the registry: the city administrator.
pub fn require_editor(caller: &Caller) -> ApiResult<()> {
    caller.require_role(&[Role::CityAdmin])
}

/// Whether a county code names a county of the city.
pub(crate) fn county_exists(conn: &mut DbConnection, code: &str) -> QueryResult<bool> {
    Ok(divisions::table
        .find(code)
        .filter(divisions::level.eq(DivisionLevel::County.as_str()))
        .count()
        .get_result::<i64>(conn)?
        > 0)
}

/// The county a village is in, if it is one.
pub(crate) fn village_county(conn: &mut DbConnection, code: &str) -> QueryResult<Option<String>> {
    villages::table
        .find(code)
        .select(villages::county_code)
        .first(conn)
        .optional()
}

/// Text of at most `max` characters, trimmed; empty is none.
pub(crate) fn text(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Checks an edit's fields: every broken rule, named by field.
fn check_input(conn: &mut DbConnection, input: &EmployerInput) -> ApiResult<Vec<FieldError>> {
    use crate::domain::Rule;
    let mut errors = Vec::new();
    let name = input.name.trim();
    if name.is_empty() {
        errors.push(FieldError::new("name", Rule::Required, "须填写名称"));
    } else if name.chars().count() > 100 {
        errors.push(FieldError::new("name", Rule::Length, "最多 100 个字符"));
    }
    if input
        .address
        .as_deref()
        .is_some_and(|a| a.chars().count() > 200)
    {
        errors.push(FieldError::new("address", Rule::Length, "最多 200 个字符"));
    }
    match DivisionCode::parse_level(&input.county_code, DivisionLevel::County) {
        Err(e) => errors.push(FieldError::from_invalid("county_code", e)),
        Ok(c) if !county_exists(conn, c.as_str())? => errors.push(FieldError::new(
            "county_code",
            Rule::UnknownCounty,
            format!("县（市、区）{} 不存在", c.as_str()),
        )),
        Ok(_) => {}
    }
    if let Some(v) = text(input.village_code.as_deref()) {
        match village_county(conn, &v)? {
            None => errors.push(FieldError::new(
                "village_code",
                Rule::UnknownVillage,
                format!("村 {v} 不存在"),
            )),
            Some(c) if c != input.county_code => errors.push(FieldError::new(
                "village_code",
                Rule::OutOfScope,
                "村不在所填的县（市、区）内",
            )),
            Some(_) => {}
        }
    }
    Ok(errors)
}

/// Edits an employer (city admins; audited and stamped for the phones' download).
pub async fn update(
    db: &Db,
    caller: &Caller,
    id: String,
    input: EmployerInput,
) -> ApiResult<Employer> {
    require_editor(caller)?;
    let user = caller.user_id.clone();
    let now = Utc::now();
    db.transaction(move |conn| {
        let before =
            find(conn, &id)?.ok_or_else(|| ApiError::NotFound(format!("no employer {id}")))?;
        let errors = check_input(conn, &input)?;
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        let fields = Fields {
            kind: input.kind,
            name: input.name.trim().to_owned(),
            credit_code: before.credit_code.clone(),
            county_code: input.county_code.clone(),
            village_code: text(input.village_code.as_deref()),
            address: text(input.address.as_deref()),
            active: input.active,
        };
        if fields != Fields::of(&before) {
            store(conn, &id, &fields, &user, now, false)?;
        }
        find(conn, &id)?.ok_or_else(|| ApiError::internal(anyhow::anyhow!("employer gone")))
    })
    .await
}

/// What an import or an edit writes of an employer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fields {
    pub kind: EmployerKind,
    pub name: String,
    pub credit_code: Option<String>,
    pub county_code: String,
    pub village_code: Option<String>,
    pub address: Option<String>,
    pub active: bool,
}

impl Fields {
    pub(crate) fn of(e: &Employer) -> Fields {
        Fields {
            kind: e.kind,
            name: e.name.clone(),
            credit_code: e.credit_code.clone(),
            county_code: e.county_code.clone(),
            village_code: e.village_code.clone(),
            address: e.address.clone(),
            active: e.active,
        }
    }
}

/// Writes an employer (inserting it when `create`), stamps it and audits it, in the caller's
/// transaction.
pub(crate) fn store(
    conn: &mut DbConnection,
    id: &str,
    f: &Fields,
    user: &str,
    now: DateTime<Utc>,
    create: bool,
) -> ApiResult<()> {
    let values = (
        employers::kind.eq(f.kind.as_str()),
        employers::name.eq(&f.name),
        employers::credit_code.eq(&f.credit_code),
        employers::county_code.eq(&f.county_code),
        employers::village_code.eq(&f.village_code),
        employers::address.eq(&f.address),
        employers::active.eq(f.active),
    );
    if create {
        diesel::insert_into(employers::table)
            .values((
                employers::id.eq(id),
                values,
                employers::demo.eq(false),
                employers::sync_seq.eq(0i64),
                employers::created_at.eq(now.naive_utc()),
                employers::updated_at.eq(now.naive_utc()),
            ))
            .execute(conn)?;
    } else {
        diesel::update(employers::table.find(id))
            .set(values)
            .execute(conn)?;
    }
    crate::changes::employer(conn, id, now)?;
    let detail = format!(
        "{} {}（{}）{}",
        f.kind.label(),
        f.name,
        f.county_code,
        if f.active { "" } else { "，已停用" }
    );
    crate::audit::append(
        conn,
        &crate::audit::Entry {
            user_id: user,
            action: if create {
                "create_employer"
            } else {
                "update_employer"
            },
            subject_type: "employer",
            subject_id: id,
            detail: Some(&detail),
            ..Default::default()
        },
    )?;
    Ok(())
}

/// Checks the employers a household survey's members name: a member employed by a workshop,
/// leading enterprise or cooperative may name a registered, active employer of that kind; any
/// other member names none. One item per member, in order: its employment status and employer
/// id, if it has an employment.
pub fn check_references<'a>(
    conn: &mut DbConnection,
    members: impl IntoIterator<Item = Option<(EmploymentStatus, Option<&'a str>)>>,
) -> QueryResult<Vec<FieldError>> {
    use crate::domain::Rule;
    let named: Vec<(usize, EmploymentStatus, &str)> = members
        .into_iter()
        .enumerate()
        .filter_map(|(i, m)| m.and_then(|(s, id)| id.map(|id| (i, s, id))))
        .collect();
    if named.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = named.iter().map(|(_, _, id)| *id).collect();
    let found: HashMap<String, (String, bool)> = employers::table
        .filter(employers::id.eq_any(&ids))
        .select((employers::id, employers::kind, employers::active))
        .load::<(String, String, bool)>(conn)?
        .into_iter()
        .map(|(id, kind, active)| (id, (kind, active)))
        .collect();
    let mut errors = Vec::new();
    for (i, status, id) in named {
        let field = format!("members[{i}].employment.employer_id");
        let Some(wanted) = EmployerKind::of_status(status) else {
            errors.push(FieldError::new(
                field,
                Rule::NotAllowed,
                "只有在扶贫车间、龙头企业、合作社就业的才填写用工主体",
            ));
            continue;
        };
        match found.get(id) {
            None => errors.push(FieldError::new(
                field,
                Rule::UnknownEmployer,
                format!("用工主体 {id} 未登记"),
            )),
            Some((_, false)) => errors.push(FieldError::new(
                field,
                Rule::InactiveEmployer,
                format!("用工主体 {id} 已停用"),
            )),
            Some((kind, true)) if kind != wanted.as_str() => errors.push(FieldError::new(
                field,
                Rule::EmployerKindMismatch,
                format!(
                    "就业状态为{}，用工主体却是{}",
                    status.label(),
                    EmployerKind::parse(kind)
                        .map(|k| k.label())
                        .unwrap_or("其他类型")
                ),
            )),
            Some(_) => {}
        }
    }
    Ok(errors)
}
