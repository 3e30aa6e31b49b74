//! The catalog (`GET /api/v1/catalog`): every enumeration of the API with its Chinese labels,
//! generated from the enum definitions themselves.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::*;
use crate::error::ErrorCode;
use crate::geography::Crs;

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogEntry {
    /// The value on the wire.
    #[schema(example = "out_of_province")]
    pub value: &'static str,
    /// Its Simplified Chinese label.
    #[schema(example = "省外务工")]
    pub label: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogEnum {
    /// Name of the enumeration, e.g. `employment_status`.
    pub name: &'static str,
    /// What it classifies, in Chinese.
    pub label: &'static str,
    /// Where it appears in requests and answers.
    pub used_in: &'static str,
    pub values: Vec<CatalogEntry>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Catalog {
    pub enums: Vec<CatalogEnum>,
}

macro_rules! entries {
    ($ty:ty) => {
        <$ty>::ALL
            .iter()
            .map(|v| CatalogEntry {
                value: v.as_str(),
                label: v.label(),
            })
            .collect()
    };
}

pub fn build() -> Catalog {
    Catalog {
        enums: [people_and_places(), work_and_review(), ledger_and_errors()]
            .into_iter()
            .flatten()
            .collect(),
    }
}

/// An enumeration of the catalog.
fn e(
    name: &'static str,
    label: &'static str,
    used_in: &'static str,
    values: Vec<CatalogEntry>,
) -> CatalogEnum {
    CatalogEnum {
        name,
        label,
        used_in,
        values,
    }
}

/// Roles, places and what surveys record of households and people.
fn people_and_places() -> Vec<CatalogEnum> {
    vec![
        e("role", "用户角色", "users.role, /me.role", entries!(Role)),
        e(
            "division_level",
            "区划层级",
            "ledger levels",
            entries!(DivisionLevel),
        ),
        e(
            "position_source",
            "村庄坐标来源",
            "villages[].position_source",
            entries!(PositionSource),
        ),
        e(
            "geofence_provenance",
            "电子围栏来源",
            "villages[].geofence_provenance",
            entries!(GeofenceProvenance),
        ),
        e(
            "geofence_kind",
            "电子围栏类型",
            "villages[].geofence_kind",
            entries!(GeofenceKind),
        ),
        e("crs", "坐标系", "location.crs", entries!(Crs)),
        e(
            "poverty_status",
            "贫困户属性",
            "household.poverty_status",
            entries!(PovertyStatus),
        ),
        e("sex", "性别", "members[].sex", entries!(Sex)),
        e(
            "relation",
            "与户主关系",
            "members[].relation",
            entries!(Relation),
        ),
        e(
            "labour_capacity",
            "劳动能力",
            "members[].labour_capacity",
            entries!(LabourCapacity),
        ),
        e(
            "employment_status",
            "就业状态",
            "members[].employment.status",
            entries!(EmploymentStatus),
        ),
        e(
            "post_type",
            "公益岗位类型",
            "members[].employment.post_type, posts[].post_type",
            entries!(PostType),
        ),
        e(
            "safety_net",
            "兜底保障措施",
            "members[].safety_net[]",
            entries!(SafetyNet),
        ),
        e(
            "training_trade",
            "培训意向工种",
            "members[].training.trade",
            entries!(TrainingTrade),
        ),
        e(
            "employer_kind",
            "用工主体类型",
            "employers[].kind",
            entries!(EmployerKind),
        ),
    ]
}

/// Check-ins, survey states, review and duplicates.
fn work_and_review() -> Vec<CatalogEnum> {
    vec![
        e(
            "checkin_kind",
            "打卡类型",
            "checkins.kind",
            entries!(CheckinKind),
        ),
        e(
            "checkin_flag",
            "打卡核验标记",
            "checkin answers: flags[]",
            entries!(CheckinFlag),
        ),
        e(
            "survey_flag",
            "调查核验标记",
            "survey answers: flags[]",
            entries!(SurveyFlag),
        ),
        e(
            "review_status",
            "审核状态",
            "surveys[].status",
            entries!(ReviewStatus),
        ),
        e(
            "survey_kind",
            "调查类型",
            "/me/submissions: submissions[].kind",
            entries!(SurveyKind),
        ),
        e(
            "checkin_status",
            "打卡核验结果",
            "checkin answers and lists: status",
            entries!(CheckinStatus),
        ),
        e(
            "checkin_decision",
            "打卡核实决定",
            "POST /checkins/{id}/review: decision",
            entries!(CheckinDecision),
        ),
        e(
            "subsidy_method",
            "岗位补贴计发办法",
            "GET /subsidies: rule.method",
            entries!(SubsidyMethod),
        ),
        e(
            "month_status",
            "月份状态",
            "/months: state",
            entries!(MonthStatus),
        ),
        e(
            "signoff_state",
            "县级签核状态",
            "/months/{month}: counties[].state",
            entries!(SignoffState),
        ),
        e(
            "bulk_item_outcome",
            "批量审核结果",
            "POST /reviews/bulk: items[].outcome",
            entries!(BulkItemOutcome),
        ),
        e(
            "review_decision",
            "审核决定",
            "POST /surveys/{id}/review, /reviews/bulk: decision",
            entries!(crate::surveys::review::Decision),
        ),
        e(
            "duplicate_pair_state",
            "疑似重复户处理状态",
            "GET /duplicates: state",
            entries!(crate::surveys::duplicates::PairState),
        ),
        e(
            "duplicate_pair_kind",
            "户对类别",
            "GET /duplicates: kind",
            entries!(crate::surveys::duplicates::PairKind),
        ),
        e(
            "duplicate_action",
            "疑似重复户处理操作",
            "POST /duplicates/{a}/{b}: action",
            entries!(crate::surveys::duplicates::PairAction),
        ),
    ]
}

/// The ledger's kinds and figures, validation rules and error codes.
fn ledger_and_errors() -> Vec<CatalogEnum> {
    vec![
        e(
            "roster_kind",
            "实名制台账类别",
            "GET /ledgers/{kind}",
            entries!(crate::ledger::roster::RosterKind),
        ),
        e(
            "ledger_figure",
            "需求台账指标",
            "GET /inventory: figures[].key",
            crate::ledger::figures::catalogue()
                .iter()
                .map(|f| CatalogEntry {
                    value: f.key.as_str(),
                    label: f.label.as_str(),
                })
                .collect(),
        ),
        e(
            "rule",
            "校验规则",
            "problem+json `rule` and `errors[].rule`",
            entries!(Rule),
        ),
        e(
            "error_code",
            "错误代码",
            "problem+json `code`",
            ErrorCode::ALL
                .iter()
                .map(|c| CatalogEntry {
                    value: c.as_str(),
                    label: c.label(),
                })
                .collect(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_enum_has_values_and_chinese_labels() {
        let catalog = build();
        assert!(catalog.enums.len() >= 18);
        for e in &catalog.enums {
            assert!(!e.values.is_empty(), "{}", e.name);
            for v in &e.values {
                assert!(
                    v.value
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "{}",
                    v.value
                );
                assert!(
                    v.label
                        .chars()
                        .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                    "{} has no Chinese label",
                    v.value
                );
            }
        }
    }
}
