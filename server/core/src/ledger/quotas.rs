//! Yearly post quotas: the city's totals (the province's figures; the notice's 2020 totals,
//! 2,592 special posts 扶贫特岗 and 620 temporary public-welfare posts 临时公益岗 at 800 yuan a
//! month, are loaded by the migration), the city's split of them by county (which may not
//! exceed the city's totals), and progress against both.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit;
use crate::db::schema::{city_quotas, divisions, quotas};
use crate::db::DbConnection;
use crate::domain::Rule;
use crate::domain::{DivisionCode, DivisionLevel};
use crate::error::{ApiError, ApiResult, FieldError};

/// The seed's subsidy for a temporary public-welfare post, yuan a month.
pub const DEFAULT_TEMPORARY_POST_YUAN: i64 = 800;

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct CountyQuota {
    /// 12-digit county code.
    #[schema(example = "220802000000")]
    pub county: String,
    pub special_posts: i32,
    pub temporary_posts: i32,
}

/// The city's totals for a year.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct CityQuotaInput {
    /// 扶贫特岗 (employment status `special_post`).
    pub special_posts: i32,
    /// 临时公益岗 (employment status `temporary_public_post`).
    pub temporary_posts: i32,
}

/// A year's quotas: the city's totals if given, and every county named (counties not named
/// keep what they had). The counties' shares together may not exceed the city's totals
/// (422 `quota_exceeded`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct QuotaRequest {
    /// Yuan a month per temporary post (default 800).
    pub temporary_post_monthly_yuan: Option<i32>,
    /// The city's totals (default: as stored; 2020's are the notice's).
    pub city: Option<CityQuotaInput>,
    #[serde(default)]
    pub counties: Vec<CountyQuota>,
}

/// The city's totals as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CityQuota {
    pub special_posts: i32,
    pub temporary_posts: i32,
    /// Where the figures come from (the notice for the preloaded 2020 totals).
    pub source: String,
    /// Who last set them (none for the preloaded ones).
    pub updated_by: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoredQuota {
    pub county: String,
    pub county_name: String,
    pub special_posts: i32,
    pub temporary_posts: i32,
    pub temporary_post_monthly_yuan: i32,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct YearQuotas {
    pub year: i32,
    /// The city's totals, if set for the year.
    pub city: Option<CityQuota>,
    pub counties: Vec<StoredQuota>,
    pub special_posts_total: i64,
    pub temporary_posts_total: i64,
}

/// Validates a quota request against the division tree.
pub fn validate(conn: &mut DbConnection, year: i32, request: &QuotaRequest) -> ApiResult<()> {
    let mut errors = Vec::new();
    if !(2015..=2100).contains(&year) {
        errors.push(FieldError::new(
            "year",
            Rule::Range,
            "须为 2015 至 2100 之间的年份",
        ));
    }
    if (request.counties.is_empty() && request.city.is_none()) || request.counties.len() > 50 {
        errors.push(FieldError::new(
            "counties",
            Rule::Count,
            "须为 1 至 50 个县（市、区）",
        ));
    }
    if request
        .temporary_post_monthly_yuan
        .is_some_and(|y| !(0..=100_000).contains(&y))
    {
        errors.push(FieldError::new(
            "temporary_post_monthly_yuan",
            Rule::Range,
            "须为 0 至 100000 元",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, c) in request.counties.iter().enumerate() {
        let field = format!("counties[{i}]");
        match DivisionCode::parse_level(&c.county, DivisionLevel::County) {
            Err(e) => errors.push(FieldError::new(
                format!("{field}.county"),
                e.rule,
                e.message,
            )),
            Ok(code) => {
                let known = divisions::table
                    .find(code.as_str())
                    .filter(divisions::level.eq("county"))
                    .count()
                    .get_result::<i64>(conn)?
                    > 0;
                if !known {
                    errors.push(FieldError::new(
                        format!("{field}.county"),
                        Rule::UnknownCounty,
                        "不是本市的县（市、区）",
                    ));
                } else if !seen.insert(code.as_str().to_owned()) {
                    errors.push(FieldError::new(
                        format!("{field}.county"),
                        Rule::Duplicate,
                        "每个县（市、区）只能填写一次",
                    ));
                }
            }
        }
        for (name, value) in [
            ("special_posts", c.special_posts),
            ("temporary_posts", c.temporary_posts),
        ] {
            if !(0..=100_000).contains(&value) {
                errors.push(FieldError::new(
                    format!("{field}.{name}"),
                    Rule::Range,
                    "须为 0 至 100000 个岗位",
                ));
            }
        }
    }
    if let Some(city) = &request.city {
        for (name, value) in [
            ("special_posts", city.special_posts),
            ("temporary_posts", city.temporary_posts),
        ] {
            if !(0..=1_000_000).contains(&value) {
                errors.push(FieldError::new(
                    format!("city.{name}"),
                    Rule::Range,
                    "须为 0 至 1000000 个岗位",
                ));
            }
        }
    }
    if errors.is_empty() {
        errors = within_city(conn, year, request)?;
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// The city's totals for a year, if set.
pub fn city(conn: &mut DbConnection, year: i32) -> QueryResult<Option<CityQuota>> {
    Ok(city_quotas::table
        .find(year)
        .select((
            city_quotas::special_posts,
            city_quotas::temporary_posts,
            city_quotas::source,
            city_quotas::updated_by,
            city_quotas::updated_at,
        ))
        .first::<(i32, i32, String, Option<String>, chrono::NaiveDateTime)>(conn)
        .optional()?
        .map(|(s, t, source, by, at)| CityQuota {
            special_posts: s,
            temporary_posts: t,
            source,
            updated_by: by,
            updated_at: at.and_utc(),
        }))
}

/// Whether the counties' shares after the request stay within the city's totals after it.
fn within_city(
    conn: &mut DbConnection,
    year: i32,
    request: &QuotaRequest,
) -> QueryResult<Vec<FieldError>> {
    let totals = match (&request.city, city(conn, year)?) {
        (Some(c), _) => (c.special_posts, c.temporary_posts),
        (None, Some(c)) => (c.special_posts, c.temporary_posts),
        // No city totals for the year: nothing to stay within.
        (None, None) => return Ok(Vec::new()),
    };
    let stored: Vec<(String, i32, i32)> = quotas::table
        .filter(quotas::year.eq(year))
        .select((
            quotas::county_code,
            quotas::special_posts,
            quotas::temporary_posts,
        ))
        .load(conn)?;
    let mut shares: std::collections::BTreeMap<String, (i64, i64)> = stored
        .into_iter()
        .map(|(c, s, t)| (c, (i64::from(s), i64::from(t))))
        .collect();
    for c in &request.counties {
        shares.insert(
            c.county.clone(),
            (i64::from(c.special_posts), i64::from(c.temporary_posts)),
        );
    }
    let special: i64 = shares.values().map(|v| v.0).sum();
    let temporary: i64 = shares.values().map(|v| v.1).sum();
    let mut errors = Vec::new();
    for (name, label, sum, total) in [
        ("special_posts", "扶贫特岗", special, totals.0),
        ("temporary_posts", "临时公益岗", temporary, totals.1),
    ] {
        if sum > i64::from(total) {
            let field = if request.counties.is_empty() {
                format!("city.{name}")
            } else {
                "counties".to_owned()
            };
            errors.push(FieldError::new(
                field,
                Rule::QuotaExceeded,
                format!("各县（市、区）{label}分配合计 {sum} 个，超过全市指标 {total} 个"),
            ));
        }
    }
    Ok(errors)
}

/// Sets the city's totals for a year (inside the caller's transaction), audited.
fn set_city(
    conn: &mut DbConnection,
    year: i32,
    input: &CityQuotaInput,
    user_id: &str,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let state = |s: i32, t: i32| format!("special {s}, temporary {t}");
    let before = city(conn, year)?.map(|c| state(c.special_posts, c.temporary_posts));
    diesel::delete(city_quotas::table.find(year)).execute(conn)?;
    diesel::insert_into(city_quotas::table)
        .values((
            city_quotas::year.eq(year),
            city_quotas::special_posts.eq(input.special_posts),
            city_quotas::temporary_posts.eq(input.temporary_posts),
            city_quotas::source.eq("市扶贫办录入"),
            city_quotas::updated_by.eq(Some(user_id)),
            city_quotas::updated_at.eq(now.naive_utc()),
        ))
        .execute(conn)?;
    audit::append(
        conn,
        &audit::Entry {
            user_id,
            action: "set_city_quota",
            subject_type: "quota",
            subject_id: &year.to_string(),
            from_state: before.as_deref(),
            to_state: Some(&state(input.special_posts, input.temporary_posts)),
            ..Default::default()
        },
    )?;
    Ok(())
}

/// Sets the quotas (inside the caller's transaction), auditing each county's change.
pub fn set(
    conn: &mut DbConnection,
    year: i32,
    request: &QuotaRequest,
    user_id: &str,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let yuan = request
        .temporary_post_monthly_yuan
        .unwrap_or(DEFAULT_TEMPORARY_POST_YUAN as i32);
    // Rows in code order, audit entries after every row: two concurrent changes lock in the
    // same order, and the audit lock is taken last (see `audit::append`).
    if let Some(c) = &request.city {
        set_city(conn, year, c, user_id, now)?;
    }
    let mut counties: Vec<&CountyQuota> = request.counties.iter().collect();
    counties.sort_by(|a, b| a.county.cmp(&b.county));
    let state = |s: i32, t: i32, y: i32| format!("special {s}, temporary {t} at {y} yuan");
    let mut entries = Vec::new();
    for c in counties {
        let before: Option<(i32, i32, i32)> = quotas::table
            .find((year, &c.county))
            .select((
                quotas::special_posts,
                quotas::temporary_posts,
                quotas::temporary_post_monthly_yuan,
            ))
            .first(conn)
            .optional()?;
        diesel::delete(quotas::table.find((year, &c.county))).execute(conn)?;
        diesel::insert_into(quotas::table)
            .values((
                quotas::year.eq(year),
                quotas::county_code.eq(&c.county),
                quotas::special_posts.eq(c.special_posts),
                quotas::temporary_posts.eq(c.temporary_posts),
                quotas::temporary_post_monthly_yuan.eq(yuan),
                quotas::updated_by.eq(user_id),
                quotas::updated_at.eq(now.naive_utc()),
            ))
            .execute(conn)?;
        entries.push((
            format!("{year}/{}", c.county),
            before.map(|(s, t, y)| state(s, t, y)),
            state(c.special_posts, c.temporary_posts, yuan),
        ));
    }
    for (subject, from, to) in &entries {
        audit::append(
            conn,
            &audit::Entry {
                user_id,
                action: "set_quota",
                subject_type: "quota",
                subject_id: subject,
                from_state: from.as_deref(),
                to_state: Some(to),
                ..Default::default()
            },
        )?;
    }
    Ok(())
}

/// A county's stored quota with the county's name.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = quotas, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct QuotaRow {
    county_code: String,
    #[diesel(select_expression = divisions::name)]
    county_name: String,
    special_posts: i32,
    temporary_posts: i32,
    temporary_post_monthly_yuan: i32,
    updated_by: String,
    updated_at: chrono::NaiveDateTime,
}

/// A year's quotas as stored.
pub fn year(conn: &mut DbConnection, year: i32) -> QueryResult<YearQuotas> {
    let rows: Vec<QuotaRow> = quotas::table
        .inner_join(divisions::table.on(divisions::code.eq(quotas::county_code)))
        .filter(quotas::year.eq(year))
        .order(quotas::county_code)
        .select(QuotaRow::as_select())
        .load(conn)?;
    let counties: Vec<StoredQuota> = rows
        .into_iter()
        .map(|r| StoredQuota {
            county: r.county_code,
            county_name: r.county_name,
            special_posts: r.special_posts,
            temporary_posts: r.temporary_posts,
            temporary_post_monthly_yuan: r.temporary_post_monthly_yuan,
            updated_by: r.updated_by,
            updated_at: r.updated_at.and_utc(),
        })
        .collect();
    Ok(YearQuotas {
        year,
        city: city(conn, year)?,
        special_posts_total: counties.iter().map(|c| i64::from(c.special_posts)).sum(),
        temporary_posts_total: counties.iter().map(|c| i64::from(c.temporary_posts)).sum(),
        counties,
    })
}

/// Post quotas of the year against posts held (county and city nodes).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuotaProgress {
    pub year: i32,
    /// Counties of the node with a quota set for the year.
    pub counties_with_quota: usize,
    /// The city's total of special posts (扶贫特岗) for the year, if set.
    pub city_special_posts_quota: Option<i64>,
    /// The city's total of temporary posts (临时公益岗) for the year, if set.
    pub city_temporary_posts_quota: Option<i64>,
    /// The node's share: a county's quota, or for the city the sum of the counties' shares.
    pub special_posts_quota: i64,
    pub special_posts_held: i64,
    pub temporary_posts_quota: i64,
    pub temporary_posts_held: i64,
    /// Monthly subsidy per temporary post (800 yuan in the seed).
    pub temporary_post_monthly_yuan: i64,
    /// `temporary_posts_held × temporary_post_monthly_yuan`.
    pub temporary_posts_monthly_cost_yuan: i64,
}

/// Quota progress of the city (`county` `None`) or of one county.
pub fn progress(
    conn: &mut DbConnection,
    year_: i32,
    county: Option<&DivisionCode>,
    special_held: i64,
    temporary_held: i64,
) -> QueryResult<QuotaProgress> {
    let all = year(conn, year_)?;
    let mine: Vec<&StoredQuota> = all
        .counties
        .iter()
        .filter(|c| county.is_none_or(|county| c.county == county.as_str()))
        .collect();
    let yuan = mine.first().map_or(DEFAULT_TEMPORARY_POST_YUAN, |c| {
        i64::from(c.temporary_post_monthly_yuan)
    });
    Ok(QuotaProgress {
        year: year_,
        counties_with_quota: mine.len(),
        city_special_posts_quota: all.city.as_ref().map(|c| i64::from(c.special_posts)),
        city_temporary_posts_quota: all.city.as_ref().map(|c| i64::from(c.temporary_posts)),
        special_posts_quota: mine.iter().map(|c| i64::from(c.special_posts)).sum(),
        special_posts_held: special_held,
        temporary_posts_quota: mine.iter().map(|c| i64::from(c.temporary_posts)).sum(),
        temporary_posts_held: temporary_held,
        temporary_post_monthly_yuan: yuan,
        temporary_posts_monthly_cost_yuan: temporary_held * yuan,
    })
}
