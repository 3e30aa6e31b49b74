//! Parsing the app's surveys into validated domain values. Every rule that fails is reported,
//! each with the path of its field (`members[2].id_number`) and a stable rule name; nothing is
//! stored unless all pass.

use crate::domain::time::china;
use std::collections::HashSet;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

use super::input::*;
use crate::auth::Caller;
use crate::domain::*;
use crate::error::FieldError;

/// A position in WGS-84, converted from whatever system the app reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Employment {
    pub status: EmploymentStatus,
    pub employer_id: Option<String>,
    pub post_type: Option<PostType>,
    pub monthly_income_yuan: Option<i64>,
}

/// How a member is identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// By ID number, its check character and its birth date and sex agreeing.
    Number(IdNumber),
    /// By the sync feed's `person_ref` (a revisit): resolved against the household when stored.
    Ref(String),
    /// Neither (a newborn not yet registered, a lost card): name, sex and birth date only.
    Unknown,
}

impl Identity {
    pub fn number(&self) -> Option<&IdNumber> {
        match self {
            Identity::Number(id) => Some(id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub id: Identity,
    pub sex: Sex,
    pub birth_date: NaiveDate,
    pub relation: Relation,
    pub labour_capacity: LabourCapacity,
    pub employment: Option<Employment>,
    pub wants_public_post: bool,
    /// The trade, when training is wanted.
    pub training: Option<TrainingTrade>,
    pub training_wanted: bool,
    pub at_risk: bool,
    pub safety_net: Vec<SafetyNet>,
}

#[derive(Debug, Clone)]
pub struct HouseholdSurvey {
    pub id: SubmissionId,
    pub form_version: String,
    pub village: DivisionCode,
    pub surveyed_at: DateTime<FixedOffset>,
    /// `YYYY-MM` of `surveyed_at` in Asia/Shanghai.
    pub month: String,
    pub position: Position,
    pub household_number: Option<String>,
    pub head_name: String,
    pub head_id: Option<IdNumber>,
    pub poverty_status: PovertyStatus,
    pub relocated: bool,
    pub phone: Option<Phone>,
    pub members: Vec<Member>,
    pub photos: Vec<String>,
    pub replaces: Option<SubmissionId>,
    /// A revisit: the household named, and the version its phone showed.
    pub household_ref: Option<HouseholdRef>,
}

/// A revisit's reference to the household (from the sync feed).
#[derive(Debug, Clone)]
pub struct HouseholdRef {
    pub household_id: String,
    pub base_version: i32,
}

/// A `person_ref` is 12 URL-safe base64 characters (see `Vault::person_ref`).
fn is_ref(text: &str) -> bool {
    text.len() == 12
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Debug, Clone)]
pub struct PostDemand {
    pub post_type: PostType,
    pub needed: i32,
    pub filled: i32,
}

#[derive(Debug, Clone)]
pub struct VillageSurvey {
    pub id: SubmissionId,
    pub village: DivisionCode,
    pub month: String,
    pub surveyed_at: DateTime<FixedOffset>,
    pub position: Option<Position>,
    pub posts: Vec<PostDemand>,
    pub willing_people: i32,
    pub photos: Vec<String>,
}

pub const MAX_MEMBERS: usize = 30;
pub const MAX_PHOTOS: usize = 20;
const MAX_INCOME_YUAN: i64 = 1_000_000;
const MAX_POSTS: i64 = 10_000;

/// Collects field errors while values are parsed.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: impl Into<String>, rule: Rule, detail: impl Into<String>) {
        self.0.push(FieldError::new(field, rule, detail));
    }

    fn invalid(&mut self, field: impl Into<String>, invalid: Invalid) {
        self.0.push(FieldError::from_invalid(field, invalid));
    }

    /// The parsed value, or `None` with its error recorded.
    fn check<T>(&mut self, field: impl Into<String>, parsed: Result<T, Invalid>) -> Option<T> {
        parsed.map_err(|e| self.invalid(field, e)).ok()
    }

    fn text(&mut self, field: &str, value: &str, max: usize) -> String {
        let trimmed = value.trim();
        let n = trimmed.chars().count();
        if n == 0 || n > max {
            self.add(field, Rule::Length, format!("须为 1 至 {max} 个字符"));
        }
        trimmed.to_owned()
    }
}

/// `YYYY-MM` of an instant in Asia/Shanghai.
pub fn month_of(at: DateTime<FixedOffset>) -> String {
    at.with_timezone(&china()).format("%Y-%m").to_string()
}

fn instant(
    errors: &mut Errors,
    field: &str,
    value: &str,
    now: DateTime<Utc>,
) -> Option<DateTime<FixedOffset>> {
    let Ok(at) = DateTime::parse_from_rfc3339(value.trim()) else {
        errors.add(
            field,
            Rule::DatetimeFormat,
            "须为带时区的 RFC 3339 时间，如 2020-07-20T09:31:00+08:00",
        );
        return None;
    };
    if at < crate::domain::time::start_of(crate::domain::Month::FIRST.first_day()) {
        errors.add(field, Rule::TooEarly, "早于 2015 年");
    } else if at.with_timezone(&Utc) > now + chrono::Duration::days(1) {
        errors.add(field, Rule::InFuture, "比当前时间晚一天以上");
    }
    Some(at)
}

fn position(errors: &mut Errors, field: &str, input: &LocationInput) -> Option<Position> {
    let mut ok = true;
    if !(-90.0..=90.0).contains(&input.lat) {
        errors.add(format!("{field}.lat"), Rule::Range, "须在 -90 至 90 之间");
        ok = false;
    }
    if !(-180.0..=180.0).contains(&input.lon) {
        errors.add(format!("{field}.lon"), Rule::Range, "须在 -180 至 180 之间");
        ok = false;
    }
    if let Some(accuracy) = input.accuracy_m {
        if !(0.0..=100_000.0).contains(&accuracy) {
            errors.add(
                format!("{field}.accuracy_m"),
                Rule::Range,
                "须在 0 至 100000 米之间",
            );
            ok = false;
        }
    }
    if ok && input.lat == 0.0 && input.lon == 0.0 {
        errors.add(field, Rule::NoFix, "坐标为 0, 0：手机尚未定位成功");
        ok = false;
    }
    ok.then(|| {
        let (lat, lon) = input.crs.to_wgs84(input.lat, input.lon);
        Position {
            lat,
            lon,
            accuracy_m: input.accuracy_m,
        }
    })
}

fn village(errors: &mut Errors, value: &str, caller: &Caller) -> Option<DivisionCode> {
    let code = errors.check(
        "village_code",
        DivisionCode::parse_level(value, DivisionLevel::Village),
    )?;
    if !caller.can_access_village(&code) {
        errors.add(
            "village_code",
            Rule::OutOfScope,
            format!("村 {code} 不在您负责的村中"),
        );
        return None;
    }
    Some(code)
}

fn photos(errors: &mut Errors, photos: &[String]) -> Vec<String> {
    if photos.len() > MAX_PHOTOS {
        errors.add("photos", Rule::Count, format!("最多 {MAX_PHOTOS} 张照片"));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, sha) in photos.iter().enumerate() {
        let sha = sha.trim().to_ascii_lowercase();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            errors.add(
                format!("photos[{i}]"),
                Rule::Sha256Format,
                "须为已上传照片的 SHA-256（64 位十六进制数）",
            );
        } else if !seen.insert(sha.clone()) {
            errors.add(
                format!("photos[{i}]"),
                Rule::Duplicate,
                "同一张照片列了两次",
            );
        } else {
            out.push(sha);
        }
    }
    out
}

fn device(errors: &mut Errors, device: &DeviceInput) {
    errors.text("device.device_id", &device.device_id, 128);
    errors.text("device.app_version", &device.app_version, 32);
}

/// Folds the spellings of one name together: whitespace (full-width too) dropped, full-width
/// Latin letters and digits made half-width, the middle-dot variants of minority names unified.
pub fn normalise_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '•' | '・' | '．' | '‧' | '∙' => '·',
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            other => other,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// A member's employment: required of those able to work; a post type only for a public
/// welfare post.
fn employment(
    errors: &mut Errors,
    at: &dyn Fn(&str) -> String,
    employment: Option<&EmploymentInput>,
    able: bool,
) -> Option<Employment> {
    match employment {
        None if able => {
            errors.add(
                at("employment"),
                Rule::Required,
                "有劳动能力（含弱劳动力）的成员须填写就业状态",
            );
            None
        }
        None => None,
        Some(e) => {
            match (e.status, e.post_type) {
                (EmploymentStatus::PublicWelfarePost, None) => errors.add(
                    at("employment.post_type"),
                    Rule::Required,
                    "扶贫公益岗须填写岗位类型",
                ),
                (status, Some(_)) if status != EmploymentStatus::PublicWelfarePost => errors.add(
                    at("employment.post_type"),
                    Rule::NotAllowed,
                    "只有扶贫公益岗才填写岗位类型",
                ),
                _ => {}
            }
            if let Some(income) = e.monthly_income_yuan {
                if !(0..=MAX_INCOME_YUAN).contains(&income) {
                    errors.add(
                        at("employment.monthly_income_yuan"),
                        Rule::Range,
                        format!("须为 0 至 {MAX_INCOME_YUAN} 元"),
                    );
                }
            }
            let employer_id = e
                .employer_id
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty());
            if employer_id.is_some_and(|s| s.chars().count() > 64) {
                errors.add(at("employment.employer_id"), Rule::Length, "最多 64 个字符");
            }
            Some(Employment {
                status: e.status,
                employer_id: employer_id.map(str::to_owned),
                post_type: e.post_type,
                monthly_income_yuan: e.monthly_income_yuan,
            })
        }
    }
}

/// A member's wish for training: a trade exactly when training is wanted.
fn training(
    errors: &mut Errors,
    at: &dyn Fn(&str) -> String,
    training: Option<&TrainingInput>,
) -> (bool, Option<TrainingTrade>) {
    match training {
        Some(TrainingInput {
            wanted: true,
            trade: None,
        }) => {
            errors.add(
                at("training.trade"),
                Rule::Required,
                "有培训意愿须填写意向工种",
            );
            (true, None)
        }
        Some(TrainingInput {
            wanted: false,
            trade: Some(_),
        }) => {
            errors.add(
                at("training.trade"),
                Rule::NotAllowed,
                "只有有培训意愿时才填写工种",
            );
            (false, None)
        }
        Some(t) => (t.wanted, t.trade),
        None => (false, None),
    }
}

/// How a member is identified: an ID number, a `person_ref` (revisits only), or neither.
fn identity(
    errors: &mut Errors,
    at: &dyn Fn(&str) -> String,
    input: &MemberInput,
    revisit: bool,
) -> Option<Identity> {
    match (&input.id_number, &input.person_ref) {
        (Some(_), Some(_)) => {
            errors.add(
                at("person_ref"),
                Rule::OneOf,
                "身份证号（id_number）与成员引用（person_ref）只能填写其一",
            );
            None
        }
        (Some(raw), None) => errors
            .check(at("id_number"), IdNumber::parse(raw))
            .map(Identity::Number),
        (None, Some(_)) if !revisit => {
            errors.add(
                at("person_ref"),
                Rule::NotAllowed,
                "只有回访（填写 household_ref）时才能用成员引用指明成员",
            );
            None
        }
        (None, Some(r)) if !is_ref(r.trim()) => {
            errors.add(
                at("person_ref"),
                Rule::RefFormat,
                "须为同步数据中该成员的 person_ref（12 个字符）",
            );
            None
        }
        (None, Some(r)) => Some(Identity::Ref(r.trim().to_owned())),
        (None, None) => Some(Identity::Unknown),
    }
}

fn member(
    errors: &mut Errors,
    i: usize,
    input: &MemberInput,
    surveyed: NaiveDate,
    revisit: bool,
    seen: &mut HashSet<String>,
) -> Option<Member> {
    let at = |name: &str| format!("members[{i}].{name}");
    let name = errors.text(&at("name"), &input.name, 30);
    let identity = identity(errors, &at, input, revisit);
    let birth = match NaiveDate::parse_from_str(input.birth_date.trim(), "%Y-%m-%d") {
        Ok(d) => Some(d),
        Err(_) => {
            errors.add(
                at("birth_date"),
                Rule::DateFormat,
                "须为 YYYY-MM-DD 格式的日期",
            );
            None
        }
    };
    if let Some(Identity::Ref(r)) = &identity {
        if !seen.insert(format!("ref:{r}")) {
            errors.add(
                at("person_ref"),
                Rule::DuplicateMember,
                "本户中同一成员引用出现了两次",
            );
        }
    }
    if let Some(Identity::Number(id)) = &identity {
        if !seen.insert(id.expose().to_owned()) {
            errors.add(
                at("id_number"),
                Rule::DuplicateMember,
                "本户中同一身份证号出现了两次",
            );
        }
        if birth.is_some_and(|b| b != id.birth_date()) {
            errors.add(
                at("birth_date"),
                Rule::BirthDateMismatch,
                "与身份证号中的出生日期不符",
            );
        }
        if input.sex != id.sex() {
            errors.add(at("sex"), Rule::SexMismatch, "与身份证号中的性别不符");
        }
    }
    if birth.is_some_and(|b| b > surveyed) {
        errors.add(at("birth_date"), Rule::InFuture, "晚于调查时间");
    }
    let able = matches!(
        input.labour_capacity,
        LabourCapacity::Able | LabourCapacity::Weak
    );
    let employment = employment(errors, &at, input.employment.as_ref(), able);
    let (training_wanted, training) = training(errors, &at, input.training.as_ref());
    let mut nets = HashSet::new();
    if input.safety_net.iter().any(|n| !nets.insert(*n)) {
        errors.add(at("safety_net"), Rule::Duplicate, "同一保障措施列了两次");
    }
    Some(Member {
        name,
        id: identity?,
        sex: input.sex,
        birth_date: birth?,
        relation: input.relation,
        labour_capacity: input.labour_capacity,
        employment,
        wants_public_post: input.wants_public_post,
        training,
        training_wanted,
        at_risk: input.at_risk,
        safety_net: input.safety_net.clone(),
    })
}

/// A household number: 1 to 32 letters, digits or hyphens.
fn household_number(errors: &mut Errors, raw: Option<&str>) -> Option<String> {
    match raw.map(str::trim) {
        None => None,
        Some(n)
            if !n.is_empty()
                && n.len() <= 32
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            Some(n.to_owned())
        }
        Some(_) => {
            errors.add(
                "household.household_number",
                Rule::HouseholdNumberFormat,
                "须为 1 至 32 位字母、数字或连字符",
            );
            None
        }
    }
}

/// Exactly one member is the head, with the household's head name and ID number.
fn check_head(errors: &mut Errors, input: &HouseholdSurveyRequest, head_id: Option<&IdNumber>) {
    let h = &input.household;
    let heads: Vec<usize> = input
        .members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.relation == Relation::Head)
        .map(|(i, _)| i)
        .collect();
    match heads.as_slice() {
        [i] => {
            let head = &input.members[*i];
            if normalise_name(&head.name) != normalise_name(&h.head_name) {
                errors.add(
                    "household.head_name",
                    Rule::HeadMismatch,
                    format!("与户主成员 members[{i}] 的姓名不符"),
                );
            }
            let member_id = head.id_number.as_deref().map(IdNumber::parse);
            if let (Some(head_id), Some(Ok(member_id))) = (head_id, member_id) {
                if *head_id != member_id {
                    errors.add(
                        "household.head_id_number",
                        Rule::HeadMismatch,
                        format!("与户主成员 members[{i}] 的身份证号不符"),
                    );
                }
            }
        }
        [] if !input.members.is_empty() => errors.add(
            "members",
            Rule::OneHead,
            "须有一名成员的关系为户主（`head`）",
        ),
        [] => {}
        _ => errors.add(
            "members",
            Rule::OneHead,
            "只能有一名成员的关系为户主（`head`）",
        ),
    }
}

pub fn household(
    input: &HouseholdSurveyRequest,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<HouseholdSurvey, Vec<FieldError>> {
    let mut errors = Errors::default();
    let id = errors.check("submission_id", SubmissionId::parse(&input.submission_id));
    let form_version = errors.text("form_version", &input.form_version, 20);
    let village = village(&mut errors, &input.village_code, caller);
    let surveyed_at = instant(&mut errors, "surveyed_at", &input.surveyed_at, now);
    let position = position(&mut errors, "location", &input.location);

    let h = &input.household;
    let household_number = household_number(&mut errors, h.household_number.as_deref());
    let head_name = errors.text("household.head_name", &h.head_name, 30);
    let head_id = match &h.head_id_number {
        Some(raw) => errors.check("household.head_id_number", IdNumber::parse(raw)),
        None => None,
    };
    let phone = match &h.phone {
        Some(raw) if !raw.trim().is_empty() => errors.check("household.phone", Phone::parse(raw)),
        _ => None,
    };

    if input.members.is_empty() || input.members.len() > MAX_MEMBERS {
        errors.add(
            "members",
            Rule::Count,
            format!("一户须有 1 至 {MAX_MEMBERS} 名成员"),
        );
    }
    let surveyed_day = surveyed_at.map_or_else(
        || now.date_naive(),
        |t| t.with_timezone(&china()).date_naive(),
    );
    let household_ref = household_ref(&mut errors, input.household_ref.as_ref());
    let revisit = input.household_ref.is_some();
    let mut seen = HashSet::new();
    let members: Vec<Option<Member>> = input
        .members
        .iter()
        .take(MAX_MEMBERS)
        .enumerate()
        .map(|(i, m)| member(&mut errors, i, m, surveyed_day, revisit, &mut seen))
        .collect();
    check_head(&mut errors, input, head_id.as_ref());

    let photos = photos(&mut errors, &input.photos);
    let replaces = match &input.replaces {
        Some(raw) => errors.check("replaces", SubmissionId::parse(raw)),
        None => None,
    };
    if let (Some(r), Some(id)) = (&replaces, &id) {
        if r == id {
            errors.add("replaces", Rule::SelfReference, "调查不能更正它自身");
        }
    }
    device(&mut errors, &input.device);

    if !errors.0.is_empty() {
        return Err(errors.0);
    }
    let (Some(id), Some(village), Some(surveyed_at), Some(position)) =
        (id, village, surveyed_at, position)
    else {
        return Err(vec![FieldError::new(
            "body",
            Rule::Invalid,
            "无法读取该调查",
        )]);
    };
    Ok(HouseholdSurvey {
        id,
        form_version,
        village,
        month: month_of(surveyed_at),
        surveyed_at,
        position,
        household_number,
        head_name,
        head_id,
        poverty_status: h.poverty_status,
        relocated: h.relocated,
        phone,
        members: members.into_iter().flatten().collect(),
        photos,
        replaces,
        household_ref,
    })
}

/// A revisit's household reference: a household id (a UUID) and a version number.
fn household_ref(errors: &mut Errors, input: Option<&HouseholdRefInput>) -> Option<HouseholdRef> {
    let input = input?;
    let id = input.household_id.trim();
    let mut ok = true;
    if uuid::Uuid::parse_str(id).is_err() {
        errors.add(
            "household_ref.household_id",
            Rule::UuidFormat,
            "须为同步数据中该户的 household_id",
        );
        ok = false;
    }
    if !(1..=i64::from(i32::MAX)).contains(&input.base_version) {
        errors.add(
            "household_ref.base_version",
            Rule::Range,
            "须为同步数据中该户的版本号（正整数）",
        );
        ok = false;
    }
    ok.then(|| HouseholdRef {
        household_id: id.to_ascii_lowercase(),
        base_version: input.base_version as i32,
    })
}

pub fn village_survey(
    input: &VillageSurveyRequest,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<VillageSurvey, Vec<FieldError>> {
    let mut errors = Errors::default();
    let id = errors.check("submission_id", SubmissionId::parse(&input.submission_id));
    let village = village(&mut errors, &input.village_code, caller);
    let surveyed_at = instant(&mut errors, "surveyed_at", &input.surveyed_at, now);
    let month = match NaiveDate::parse_from_str(&format!("{}-01", input.month.trim()), "%Y-%m-%d") {
        Ok(first) if input.month.trim().len() == 7 => {
            let month = first.format("%Y-%m").to_string();
            if let Some(at) = surveyed_at {
                let surveyed = month_of(at);
                // A month's survey is made in that month or, uploaded late, the next.
                let next = (first + chrono::Months::new(1)).format("%Y-%m").to_string();
                if surveyed != month && surveyed != next {
                    errors.add(
                        "month",
                        Rule::MonthMismatch,
                        format!("{surveyed} 所做的调查不能算作 {month} 的调查"),
                    );
                }
            }
            Some(month)
        }
        _ => {
            errors.add("month", Rule::MonthFormat, "须为 YYYY-MM 格式的月份");
            None
        }
    };
    let position = input
        .location
        .as_ref()
        .and_then(|l| position(&mut errors, "location", l));
    let mut seen = HashSet::new();
    let mut posts = Vec::new();
    for (i, p) in input.posts.iter().enumerate() {
        if !seen.insert(p.post_type) {
            errors.add(
                format!("posts[{i}].post_type"),
                Rule::Duplicate,
                "每种岗位类型只能填写一次",
            );
        }
        for (name, value) in [("needed", p.needed), ("filled", p.filled)] {
            if !(0..=MAX_POSTS).contains(&value) {
                errors.add(
                    format!("posts[{i}].{name}"),
                    Rule::Range,
                    format!("须为 0 至 {MAX_POSTS}"),
                );
            }
        }
        posts.push(PostDemand {
            post_type: p.post_type,
            needed: p.needed.clamp(0, MAX_POSTS) as i32,
            filled: p.filled.clamp(0, MAX_POSTS) as i32,
        });
    }
    if !(0..=MAX_POSTS).contains(&input.willing_people) {
        errors.add(
            "willing_people",
            Rule::Range,
            format!("须为 0 至 {MAX_POSTS}"),
        );
    }
    let photos = photos(&mut errors, &input.photos);
    device(&mut errors, &input.device);
    if !errors.0.is_empty() {
        return Err(errors.0);
    }
    let (Some(id), Some(village), Some(surveyed_at), Some(month)) =
        (id, village, surveyed_at, month)
    else {
        return Err(vec![FieldError::new(
            "body",
            Rule::Invalid,
            "无法读取该调查",
        )]);
    };
    Ok(VillageSurvey {
        id,
        village,
        month,
        surveyed_at,
        position,
        posts,
        willing_people: input.willing_people as i32,
        photos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_their_spellings_together() {
        assert_eq!(normalise_name(" 张　三 "), "张三");
        assert_eq!(normalise_name("ＡＢＣ１"), "abc1");
        assert_eq!(
            normalise_name("阿不都•热合曼"),
            normalise_name("阿不都·热合曼")
        );
    }

    #[test]
    fn months_are_counted_in_china() {
        let late = DateTime::parse_from_rfc3339("2020-07-31T17:30:00Z").expect("time");
        assert_eq!(month_of(late), "2020-08");
    }
}
