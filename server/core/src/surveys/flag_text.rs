//! What a survey flag says to the person reading it.
//!
//! A flag's stored `detail` names no household: it says 「另一户」, because the flag is read by
//! people on both sides and some of them may not see the other household. The text shown is
//! built for its reader: where the reader may see the related household (the same rule that
//! decides whether `related_household_id` is shown), 「另一户」 becomes that household's village
//! and head, e.g. 「洮北区青山镇德顺村 张三户」. A household out of scope stays 「另一户」.

use std::collections::HashMap;

use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::schema::{divisions, household_surveys, households, villages};
use crate::db::DbConnection;
use crate::domain::SurveyFlag;

// A flag as its reader sees it (a doc comment would enter the OpenAPI document).
#[derive(Debug, Serialize, ToSchema)]
pub struct FlagDetail {
    pub flag: SurveyFlag,
    /// The other household concerned (`possible_duplicate`, `person_in_multiple_households`,
    /// `household_in_other_county`); absent when it lies outside the reader's scope.
    pub related_household_id: Option<String>,
    /// Why the flag was raised, in Chinese. It names the other household by village and head
    /// (「洮北区青山镇德顺村 张三户」) only where `related_household_id` is given, else 「另一户」.
    #[schema(example = "第 1 位成员（members[0]）也登记在洮北区青山镇德顺村 张三户中")]
    pub detail: String,
}

/// How a stored detail refers to the household the flag relates to.
pub const OTHER_HOUSEHOLD: &str = "另一户";

/// A household as a person knows it: where it lives and who heads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdName {
    /// County, township and village, e.g. 洮北区青山镇德顺村.
    pub place: String,
    /// The head's name in the household's latest survey.
    pub head_name: String,
}

impl HouseholdName {
    /// 「洮北区青山镇德顺村 张三户」.
    pub fn phrase(&self) -> String {
        format!("{} {}户", self.place, self.head_name)
    }
}

/// The text of a flag for a reader who may (`Some`) or may not (`None`) see the related
/// household.
pub fn for_reader(stored: &str, related: Option<&HouseholdName>) -> String {
    match related {
        None => stored.to_owned(),
        Some(name) if stored.contains(OTHER_HOUSEHOLD) => {
            stored.replacen(OTHER_HOUSEHOLD, &name.phrase(), 1)
        }
        // A detail stored before details said 「另一户」.
        Some(name) => format!("{stored}（相关户：{}）", name.phrase()),
    }
}

/// A household and the names of where it lives.
#[derive(Queryable, Selectable)]
#[diesel(table_name = households, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Home {
    id: String,
    #[diesel(select_expression = villages::name)]
    village: String,
    #[diesel(select_expression = villages::township_code)]
    township_code: String,
    #[diesel(select_expression = villages::county_code)]
    county_code: String,
}

/// The names of the households, by id: village (with its county and township) and the head of
/// the latest survey. A household without surveys (merged away) has no name.
pub fn names_of(
    conn: &mut DbConnection,
    ids: &[&str],
) -> QueryResult<HashMap<String, HouseholdName>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let homes: Vec<Home> = households::table
        .inner_join(villages::table.on(villages::code.eq(households::village_code)))
        .filter(households::id.eq_any(ids))
        .select(Home::as_select())
        .load(conn)?;
    let mut codes: Vec<&str> = homes
        .iter()
        .flat_map(|h| [h.township_code.as_str(), h.county_code.as_str()])
        .collect();
    codes.sort_unstable();
    codes.dedup();
    let division: HashMap<String, String> = divisions::table
        .filter(divisions::code.eq_any(&codes))
        .select((divisions::code, divisions::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    // Latest version first, so the first head seen per household is the current one.
    let heads: Vec<(String, String)> = household_surveys::table
        .filter(household_surveys::household_id.eq_any(ids))
        .order((
            household_surveys::household_id,
            household_surveys::version.desc(),
        ))
        .select((
            household_surveys::household_id,
            household_surveys::head_name,
        ))
        .load(conn)?;
    let mut head_of: HashMap<String, String> = HashMap::new();
    for (household, head) in heads {
        head_of.entry(household).or_insert(head);
    }
    let name = |code: &str| division.get(code).map(String::as_str).unwrap_or_default();
    Ok(homes
        .into_iter()
        .filter_map(|h| {
            let head_name = head_of.remove(&h.id)?;
            let place = format!(
                "{}{}{}",
                name(&h.county_code),
                name(&h.township_code),
                h.village
            );
            Some((h.id, HouseholdName { place, head_name }))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_household_only_for_a_reader_who_may_see_it() {
        let name = HouseholdName {
            place: "洮北区青山镇德顺村".into(),
            head_name: "张三".into(),
        };
        let stored = "第 1 位成员（members[0]）也登记在另一户中";
        assert_eq!(for_reader(stored, None), stored);
        assert_eq!(
            for_reader(stored, Some(&name)),
            "第 1 位成员（members[0]）也登记在洮北区青山镇德顺村 张三户中"
        );
        assert_eq!(
            for_reader("旧的说明", Some(&name)),
            "旧的说明（相关户：洮北区青山镇德顺村 张三户）"
        );
    }
}
