//! The shapes the app sends (SPEC §11), as received: enums are typed (an unknown value is
//! refused with its path), everything else is checked in `validate.rs` so that every broken
//! rule can be reported at once, each with its field.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::{
    EmploymentStatus, LabourCapacity, PostType, PovertyStatus, Relation, SafetyNet, Sex,
    TrainingTrade,
};
use crate::geography::Crs;

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct LocationInput {
    #[schema(example = 45.6194)]
    pub lat: f64,
    #[schema(example = 122.8391)]
    pub lon: f64,
    /// Reported accuracy radius in metres.
    #[schema(example = 12.5)]
    pub accuracy_m: Option<f64>,
    /// Coordinate system of `lat`/`lon`: `wgs84` (GPS, the default), `gcj02` (Amap, Tencent)
    /// or `bd09` (Baidu). The server stores WGS-84.
    #[serde(default)]
    pub crs: Crs,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct DeviceInput {
    #[schema(example = "a1b2c3")]
    pub device_id: String,
    #[schema(example = "1.0.0")]
    pub app_version: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct HouseholdInput {
    /// National household number (户编号), if known.
    pub household_number: Option<String>,
    #[schema(example = "张三")]
    pub head_name: String,
    /// The head's 18-character ID number (GB 11643 check character validated), if known.
    #[schema(example = "220802197001011238")]
    pub head_id_number: Option<String>,
    pub poverty_status: PovertyStatus,
    /// Relocated household (易地扶贫搬迁).
    #[serde(default)]
    pub relocated: bool,
    #[schema(example = "13800000000")]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct EmploymentInput {
    pub status: EmploymentStatus,
    /// An employer of the reference list (leading enterprise, cooperative, workshop).
    pub employer_id: Option<String>,
    /// Required when `status` is `public_welfare_post`, absent otherwise.
    pub post_type: Option<PostType>,
    /// Whole yuan per month.
    #[schema(example = 3000)]
    pub monthly_income_yuan: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TrainingInput {
    pub wanted: bool,
    /// Required when `wanted` is true.
    pub trade: Option<TrainingTrade>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct MemberInput {
    #[schema(example = "张三")]
    pub name: String,
    /// The 18-character ID number, or null for a member who has none or whose number is
    /// unknown (a newborn not yet registered, a lost card): then name, sex and birth date
    /// identify them. Omitted when `person_ref` names the member.
    #[schema(example = "220802197001011238")]
    #[serde(default)]
    pub id_number: Option<String>,
    /// On a revisit (`household_ref`), the member as the sync feed named them: the server
    /// knows their ID number, so the phone need not send it again.
    #[schema(example = "q3J9x0Vb2LwA")]
    #[serde(default)]
    pub person_ref: Option<String>,
    pub sex: Sex,
    /// `YYYY-MM-DD`; must agree with the ID number.
    #[schema(example = "1970-01-01")]
    pub birth_date: String,
    pub relation: Relation,
    pub labour_capacity: LabourCapacity,
    /// Required for members able to work (`able`, `weak`).
    pub employment: Option<EmploymentInput>,
    /// Willing to take a public-welfare post (有意愿参加公益岗).
    #[serde(default)]
    pub wants_public_post: bool,
    pub training: Option<TrainingInput>,
    /// At risk of returning to poverty (返贫风险).
    #[serde(default)]
    pub at_risk: bool,
    /// Safety-net measures in place.
    #[serde(default)]
    pub safety_net: Vec<SafetyNet>,
}

/// On a revisit: the household as the sync feed gave it, and the version the phone showed.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct HouseholdRefInput {
    #[schema(example = "0190b7c2-6d1e-7c3a-9a51-3f2d8e0b4c20")]
    pub household_id: String,
    /// The `version` of the household in the sync feed when the revisit began. If the
    /// household has a later version by survey time, the revisit is flagged `stale_base`.
    #[schema(example = 2)]
    pub base_version: i64,
}

/// `POST /api/v1/surveys/households`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct HouseholdSurveyRequest {
    /// Client-made UUID; the same id with the same content is a replay.
    #[schema(example = "0190b7c2-6d1e-7c3a-9a51-3f2d8e0b4c11")]
    pub submission_id: String,
    #[schema(example = "2020.07")]
    pub form_version: String,
    #[schema(example = "220802100201")]
    pub village_code: String,
    /// RFC 3339 with offset.
    #[schema(example = "2020-07-20T09:31:00+08:00")]
    pub surveyed_at: String,
    pub location: LocationInput,
    pub household: HouseholdInput,
    /// A revisit names the household it is about (from `GET /api/v1/sync`) instead of letting
    /// the server find it by its keys; null for a first visit.
    #[serde(default)]
    pub household_ref: Option<HouseholdRefInput>,
    pub members: Vec<MemberInput>,
    /// SHA-256 of photos uploaded beforehand (`PUT /api/v1/photos/{sha256}`).
    #[serde(default)]
    pub photos: Vec<String>,
    /// The `submission_id` of the survey this one corrects, or null.
    pub replaces: Option<String>,
    pub device: DeviceInput,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct PostDemandInput {
    pub post_type: PostType,
    #[schema(example = 5)]
    pub needed: i64,
    #[schema(example = 3)]
    pub filled: i64,
}

/// `POST /api/v1/surveys/villages`: the month's public-welfare post demand of one village.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct VillageSurveyRequest {
    #[schema(example = "0190b7c2-7a00-7c3a-9a51-3f2d8e0b4c12")]
    pub submission_id: String,
    #[schema(example = "220802100201")]
    pub village_code: String,
    /// `YYYY-MM`.
    #[schema(example = "2020-07")]
    pub month: String,
    #[schema(example = "2020-07-21T10:00:00+08:00")]
    pub surveyed_at: String,
    pub location: Option<LocationInput>,
    pub posts: Vec<PostDemandInput>,
    /// People willing to take a post (有意愿参加岗位人数).
    #[schema(example = 7)]
    pub willing_people: i64,
    #[serde(default)]
    pub photos: Vec<String>,
    pub device: DeviceInput,
}
