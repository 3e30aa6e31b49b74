//! User accounts: creation with role and scope rules, shared by `taizhang user add`, the demo
//! users and the admin API.

pub mod demo;
pub mod manage;
pub mod service;

use std::collections::BTreeSet;

use chrono::Utc;
use diesel::prelude::*;

use crate::auth::password;
use crate::db::schema::{divisions, user_villages, users, villages};
use crate::db::{write_transaction, DbConnection};
use crate::domain::Rule;
use crate::domain::{DivisionCode, DivisionLevel, Phone, Role};
use crate::error::{ApiError, ApiResult, FieldError};

/// A user as asked for, before validation.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
pub struct NewUserInput {
    #[schema(example = "13900000009")]
    pub phone: String,
    #[schema(example = "王五")]
    pub name: String,
    pub role: Role,
    /// Required for a county reviewer; for field users it follows from their villages.
    #[schema(example = "220802000000")]
    pub county: Option<String>,
    /// Required for enumerators (one or more) and first secretaries (exactly one).
    #[serde(default)]
    pub villages: Vec<String>,
    /// At least 8 characters.
    pub password: String,
}

/// A validated user, ready to store.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub phone: Phone,
    pub name: String,
    pub role: Role,
    pub county: Option<DivisionCode>,
    pub villages: Vec<DivisionCode>,
    password: String,
}

/// Checks the input against the role rules and the division tree; every broken rule is
/// reported, each naming its field.
pub fn validate(conn: &mut DbConnection, input: &NewUserInput) -> ApiResult<NewUser> {
    let mut errors = Vec::new();
    let phone = Phone::parse(&input.phone)
        .map_err(|e| errors.push(FieldError::from_invalid("phone", e)))
        .ok();
    let name = input.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 50 {
        errors.push(FieldError::new("name", Rule::Length, "须为 1 至 50 个字符"));
    }
    if let Err(e) = password::check_policy(&input.password) {
        errors.push(FieldError::from_invalid("password", e));
    }

    let villages_ok = known_villages(conn, &input.villages, &mut errors)?;
    let county = known_county(conn, input.county.as_deref(), &mut errors)?;
    let county = scope_of_role(input, county, &villages_ok, &mut errors);

    match phone {
        Some(phone) if errors.is_empty() => Ok(NewUser {
            phone,
            name,
            role: input.role,
            county,
            villages: villages_ok,
            password: input.password.clone(),
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// The village codes given, each parsed and known (once each, in order); every bad one is
/// reported as `villages[i]`.
fn known_villages(
    conn: &mut DbConnection,
    villages: &[String],
    errors: &mut Vec<FieldError>,
) -> ApiResult<Vec<DivisionCode>> {
    let mut villages_ok = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, raw) in villages.iter().enumerate() {
        let field = format!("villages[{i}]");
        match DivisionCode::parse_level(raw, DivisionLevel::Village) {
            Err(e) => errors.push(FieldError::from_invalid(field, e)),
            Ok(code) => {
                let exists = villages::table
                    .find(code.as_str())
                    .count()
                    .get_result::<i64>(conn)?
                    > 0;
                if !exists {
                    errors.push(FieldError::new(
                        field,
                        Rule::UnknownVillage,
                        format!("村 {code} 不存在"),
                    ));
                } else if seen.insert(code.clone()) {
                    villages_ok.push(code);
                }
            }
        }
    }
    Ok(villages_ok)
}

/// The county code given, parsed; an unknown one is reported but still returned.
fn known_county(
    conn: &mut DbConnection,
    county: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> ApiResult<Option<DivisionCode>> {
    Ok(match county {
        None => None,
        Some(raw) => match DivisionCode::parse_level(raw, DivisionLevel::County) {
            Err(e) => {
                errors.push(FieldError::from_invalid("county", e));
                None
            }
            Ok(code) => {
                let exists = divisions::table
                    .find(code.as_str())
                    .count()
                    .get_result::<i64>(conn)?
                    > 0;
                if !exists {
                    errors.push(FieldError::new(
                        "county",
                        Rule::UnknownCounty,
                        format!("县（市、区）{code} 不存在"),
                    ));
                }
                Some(code)
            }
        },
    })
}

/// The user's county as the role rules make it: none for the city administrator, the given
/// one for a county reviewer, that of their villages for field users.
fn scope_of_role(
    input: &NewUserInput,
    county: Option<DivisionCode>,
    villages_ok: &[DivisionCode],
    errors: &mut Vec<FieldError>,
) -> Option<DivisionCode> {
    let village_counties: BTreeSet<DivisionCode> =
        villages_ok.iter().map(DivisionCode::county).collect();
    match input.role {
        Role::CityAdmin => {
            if county.is_some() || !input.villages.is_empty() {
                errors.push(FieldError::new(
                    "role",
                    Rule::ScopeMismatch,
                    "市扶贫办管理员不设县（市、区）和村",
                ));
            }
            None
        }
        Role::CountyReviewer => {
            if !input.villages.is_empty() {
                errors.push(FieldError::new(
                    "villages",
                    Rule::ScopeMismatch,
                    "县（市、区）审核员只设县（市、区），不设村",
                ));
            }
            if county.is_none() && input.county.is_none() {
                errors.push(FieldError::new(
                    "county",
                    Rule::Required,
                    "县（市、区）审核员须指定县（市、区）",
                ));
            }
            county
        }
        Role::Enumerator | Role::FirstSecretary => {
            if input.villages.is_empty() {
                errors.push(FieldError::new(
                    "villages",
                    Rule::Required,
                    "驻村工作队员和第一书记须至少负责一个村",
                ));
            }
            if input.role == Role::FirstSecretary && input.villages.len() > 1 {
                errors.push(FieldError::new(
                    "villages",
                    Rule::OneVillage,
                    "第一书记只负责一个村",
                ));
            }
            if village_counties.len() > 1 {
                errors.push(FieldError::new(
                    "villages",
                    Rule::OneCounty,
                    "所负责的村须在同一个县（市、区）内",
                ));
            }
            let derived = village_counties.into_iter().next();
            if let (Some(given), Some(derived)) = (&county, &derived) {
                if given != derived {
                    errors.push(FieldError::new(
                        "county",
                        Rule::ScopeMismatch,
                        "县（市、区）须是所负责的村所在的县（市、区）",
                    ));
                }
            }
            derived
        }
    }
}

/// Stores a validated user; its password is hashed here (slow by design: call on a blocking
/// thread). A phone number already registered answers 409.
/// Creates a user, audited as done by `created_by` (`None`: from the command line or the demo
/// loader, recorded as the new user's own act).
pub fn create(
    conn: &mut DbConnection,
    user: &NewUser,
    created_by: Option<&str>,
    how: &str,
) -> ApiResult<String> {
    let hash = password::hash(&user.password).map_err(ApiError::internal)?;
    let id = uuid::Uuid::now_v7().to_string();
    write_transaction(conn, |conn| {
        let taken = users::table
            .filter(users::phone.eq(user.phone.as_str()))
            .count()
            .get_result::<i64>(conn)?
            > 0;
        if taken {
            return Err(ApiError::conflict(format!("手机号 {} 已注册", user.phone)));
        }
        diesel::insert_into(users::table)
            .values((
                users::id.eq(&id),
                users::phone.eq(user.phone.as_str()),
                users::name.eq(&user.name),
                users::role.eq(user.role.as_str()),
                users::county_code.eq(user.county.as_ref().map(DivisionCode::as_str)),
                users::password_hash.eq(&hash),
                users::active.eq(true),
                users::created_at.eq(Utc::now().naive_utc()),
            ))
            .execute(conn)
            .map_err(unique_phone)?;
        for village in &user.villages {
            diesel::insert_into(user_villages::table)
                .values((
                    user_villages::user_id.eq(&id),
                    user_villages::village_code.eq(village.as_str()),
                ))
                .execute(conn)?;
        }
        let villages: Vec<&str> = user.villages.iter().map(DivisionCode::as_str).collect();
        let scope = match (&user.county, villages.as_slice()) {
            (Some(county), _) => format!("县（市、区）{}", county.as_str()),
            (None, []) => "全市".to_owned(),
            (None, villages) => format!("行政村 {}", villages.join("、")),
        };
        crate::audit::append(
            conn,
            &crate::audit::Entry {
                user_id: created_by.unwrap_or(&id),
                action: "create_user",
                subject_type: "user",
                subject_id: &id,
                to_state: Some(user.role.as_str()),
                detail: Some(&format!("{scope}；经由 {how}")),
                ..Default::default()
            },
        )?;
        Ok(id.clone())
    })
}

/// A concurrent insert of the same phone loses on the unique index: that is a conflict too.
fn unique_phone(error: diesel::result::Error) -> ApiError {
    match error {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ) => ApiError::conflict("该手机号已注册"),
        other => other.into(),
    }
}

/// Names of users by id, for lists that show who did what.
pub fn names(
    conn: &mut DbConnection,
    ids: &[String],
) -> QueryResult<std::collections::HashMap<String, String>> {
    Ok(users::table
        .filter(users::id.eq_any(ids))
        .select((users::id, users::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect())
}
