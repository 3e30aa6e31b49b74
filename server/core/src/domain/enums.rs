//! Every enumeration the API exchanges: English snake_case on the wire, a Simplified Chinese label
//! for people. `GET /api/v1/catalog` is generated from these definitions, so a value added here
//! reaches the app and the console without a second list to keep in step.

/// Declares an enum whose wire value and Chinese label sit side by side.
macro_rules! labelled_enum {
    (
        $(#[doc = $doc:literal])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = ($value:literal, $label:literal)),+ $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        $vis enum $name {
            $($(#[$vmeta])* #[serde(rename = $value)] $variant),+
        }

        // Written out rather than derived: utoipa's derive does not see a `serde(rename)` whose
        // value comes from a macro argument, and would document the Rust variant names.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                crate::domain::enums::string_enum_schema(
                    &[$($doc),*],
                    &[$(($value, $label)),+],
                )
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $value),+ }
            }

            pub fn label(self) -> &'static str {
                match self { $(Self::$variant => $label),+ }
            }

            pub fn parse(value: &str) -> Option<Self> {
                match value { $($value => Some(Self::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::domain::UnknownValue;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::parse(value).ok_or_else(|| crate::domain::UnknownValue {
                    kind: stringify!($name),
                    value: value.to_owned(),
                })
            }
        }
    };
}

/// The OpenAPI schema of a labelled enum: a string with the wire values, its doc comment and
/// each value's Chinese label (also in `x-enum-descriptions`, which generators use for
/// the constants' comments).
pub(crate) fn string_enum_schema(
    doc: &[&str],
    values: &[(&'static str, &'static str)],
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::extensions::ExtensionsBuilder;
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};

    let mut description = doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
    if !description.is_empty() {
        description.push_str("\n\n");
    }
    for (value, label) in values {
        description.push_str(&format!("- `{value}`: {label}\n"));
    }
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .description(Some(description.trim_end()))
        .enum_values(Some(values.iter().map(|(v, _)| *v)))
        .extensions(Some(
            ExtensionsBuilder::new()
                .add(
                    "x-enum-descriptions",
                    values.iter().map(|(_, l)| *l).collect::<Vec<_>>(),
                )
                .build(),
        ))
        .into()
}

labelled_enum! {
    /// What a user does, and so what they may see (SPEC §1).
    pub enum Role {
        Enumerator = ("enumerator", "驻村工作队员"),
        FirstSecretary = ("first_secretary", "第一书记"),
        CountyReviewer = ("county_reviewer", "县（市、区）扶贫办审核员"),
        CityAdmin = ("city_admin", "市扶贫办管理员"),
    }
}

labelled_enum! {
    pub enum DivisionLevel {
        City = ("city", "市"),
        County = ("county", "县（市、区）"),
        Township = ("township", "乡镇（街道）"),
        Village = ("village", "行政村"),
    }
}

labelled_enum! {
    /// How a village's position was obtained: by the fixtures (see `fixtures/README.md`), or with
    /// its geofence, from the city's data or the field.
    pub enum PositionSource {
        SurveyedPoint = ("surveyed_point", "村级点位（2016 年高德数据）"),
        TownshipSeat = ("township_seat", "按乡镇驻地估算"),
        CountyArea = ("county_area", "县域内估算"),
        FieldCalibrated = ("field_calibrated", "按第一书记打卡位置校准"),
        Imported = ("imported", "市级导入"),
    }
}

labelled_enum! {
    /// Where a village's geofence came from. The first three are the fixtures' estimates; the
    /// city replaces them by importing its own data, a county reviewer by accepting the position
    /// the first secretary's check-ins show.
    pub enum GeofenceProvenance {
        SurveyedPoint = ("surveyed_point", "村级点位（2016 年高德数据）周边 2 公里"),
        TownshipSeat = ("township_seat", "按乡镇驻地估算的乡镇范围"),
        CountyBoundary = ("county_boundary", "县（市、区）界（无乡镇驻地点位）"),
        FieldCalibrated = ("field_calibrated", "按第一书记打卡位置校准"),
        Imported = ("imported", "市级导入（测绘或国土数据）"),
    }
}

labelled_enum! {
    pub enum GeofenceKind {
        Circle = ("circle", "圆形范围"),
        Polygon = ("polygon", "多边形边界"),
    }
}

labelled_enum! {
    /// Image formats accepted for photos: JPEG, what phone cameras write.
    pub enum PhotoFormat {
        Jpeg = ("jpeg", "JPEG 图片"),
    }
}

labelled_enum! {
    pub enum PovertyStatus {
        Lifted = ("lifted", "脱贫户"),
        NotLifted = ("not_lifted", "未脱贫户"),
        Monitored = ("monitored", "监测户"),
    }
}

labelled_enum! {
    pub enum Sex {
        Male = ("male", "男"),
        Female = ("female", "女"),
    }
}

labelled_enum! {
    /// A member's relation to the head of household.
    pub enum Relation {
        Head = ("head", "户主"),
        Spouse = ("spouse", "配偶"),
        Child = ("child", "子女"),
        ChildInLaw = ("child_in_law", "儿媳、女婿"),
        Grandchild = ("grandchild", "孙子女"),
        Parent = ("parent", "父母"),
        Grandparent = ("grandparent", "祖父母"),
        Sibling = ("sibling", "兄弟姐妹"),
        Other = ("other", "其他"),
    }
}

labelled_enum! {
    pub enum LabourCapacity {
        Able = ("able", "有劳动能力"),
        Weak = ("weak", "弱劳动力"),
        Lost = ("lost", "丧失劳动力"),
        None = ("none", "无劳动能力"),
    }
}

labelled_enum! {
    pub enum EmploymentStatus {
        OutOfProvince = ("out_of_province", "省外务工"),
        InProvinceOutOfCounty = ("in_province_out_of_county", "省内县外务工"),
        InCounty = ("in_county", "县内务工"),
        SpecialPost = ("special_post", "扶贫特岗"),
        TemporaryPublicPost = ("temporary_public_post", "临时公益岗"),
        PublicWelfarePost = ("public_welfare_post", "扶贫公益岗"),
        Workshop = ("workshop", "扶贫车间"),
        LeadingEnterprise = ("leading_enterprise", "龙头企业"),
        Cooperative = ("cooperative", "合作社"),
        HomeBased = ("home_based", "居家就业"),
        SelfEmployed = ("self_employed", "自主创业"),
        Farming = ("farming", "务农"),
        Student = ("student", "在校学生"),
        Unemployed = ("unemployed", "未就业"),
        NotApplicable = ("not_applicable", "不适用"),
    }
}

labelled_enum! {
    /// Village public-welfare post types (扶贫公益岗).
    pub enum PostType {
        Cleaner = ("cleaner", "保洁员"),
        ForestRanger = ("forest_ranger", "护林员"),
        RoadKeeper = ("road_keeper", "护路员"),
        WaterKeeper = ("water_keeper", "管水员"),
        SafetyPatrol = ("safety_patrol", "治安巡逻员"),
        VillageAssistant = ("village_assistant", "村务协理员"),
        Other = ("other", "其他公益岗"),
    }
}

labelled_enum! {
    pub enum SafetyNet {
        SubsistenceAllowance = ("subsistence_allowance", "纳入低保"),
        TemporaryRelief = ("temporary_relief", "临时救助"),
        SpecialPost = ("special_post", "安置扶贫特岗"),
        TemporaryPost = ("temporary_post", "安置临时公益岗"),
    }
}

labelled_enum! {
    pub enum TrainingTrade {
        Electrician = ("electrician", "电工"),
        Welder = ("welder", "焊工"),
        Cook = ("cook", "厨师"),
        DomesticService = ("domestic_service", "家政服务"),
        ElderlyCare = ("elderly_care", "养老护理"),
        Driver = ("driver", "驾驶员"),
        Construction = ("construction", "建筑施工"),
        Hairdressing = ("hairdressing", "美容美发"),
        ECommerce = ("e_commerce", "电子商务"),
        CropFarming = ("crop_farming", "种植技术"),
        Livestock = ("livestock", "畜牧养殖"),
        Handicraft = ("handicraft", "手工编织"),
        Other = ("other", "其他"),
    }
}

labelled_enum! {
    /// What kind of employer a registry entry is (SPEC §3); the employment statuses of the same
    /// names point at an employer of that kind.
    pub enum EmployerKind {
        LeadingEnterprise = ("leading_enterprise", "龙头企业"),
        Cooperative = ("cooperative", "合作社"),
        Workshop = ("workshop", "扶贫车间"),
    }
}

labelled_enum! {
    pub enum CheckinKind {
        ResidentDuty = ("resident_duty", "驻村值守打卡"),
        SpecialPost = ("special_post", "特岗人员打卡"),
    }
}

labelled_enum! {
    pub enum CheckinFlag {
        OutsideGeofence = ("outside_geofence", "不在村界范围内"),
        PoorAccuracy = ("poor_accuracy", "定位精度不足"),
        FutureTime = ("future_time", "设备时间晚于服务器时间"),
        StaleTime = ("stale_time", "超出补传时限"),
        PhotoReused = ("photo_reused", "照片疑似重复使用"),
        ImpossibleTravel = ("impossible_travel", "两次打卡间移动速度异常"),
        MockLocation = ("mock_location", "检测到模拟定位"),
        ExifMismatch = ("exif_mismatch", "照片拍摄时间或位置不符"),
    }
}

labelled_enum! {
    pub enum SurveyFlag {
        PossibleDuplicate = ("possible_duplicate", "疑似重复户"),
        PersonInMultipleHouseholds = ("person_in_multiple_households", "同一人员出现在多户"),
        ConflictingVersions = ("conflicting_versions", "同月多次调查结果不一致"),
        HouseholdInOtherCounty = ("household_in_other_county", "户编号或户主身份证号与其他县（市、区）的户相同"),
        StaleBase = ("stale_base", "回访依据的版本已不是该户最新的调查"),
    }
}

labelled_enum! {
    /// Where a survey stands in review (`review.rs` holds the transitions).
    pub enum ReviewStatus {
        Submitted = ("submitted", "已提交，待审核"),
        Approved = ("approved", "已通过"),
        Rejected = ("rejected", "已驳回"),
        RevisionRequested = ("revision_requested", "退回修改"),
        Superseded = ("superseded", "已被更正调查替代"),
        Reopened = ("reopened", "重新审核"),
    }
}

labelled_enum! {
    /// What kind of survey a submission is.
    pub enum SurveyKind {
        HouseholdSurvey = ("household_survey", "入户调查"),
        VillageSurvey = ("village_survey", "村级公益岗需求调查"),
    }
}

labelled_enum! {
    /// A check-in as verified: accepted, or flagged for a reviewer (never refused for doubtful
    /// facts).
    pub enum CheckinStatus {
        Accepted = ("accepted", "核验通过"),
        Flagged = ("flagged", "有疑点，待核实"),
    }
}

labelled_enum! {
    /// A reviewer's decision on a flagged check-in: a confirmed day counts as present, a
    /// dismissed check-in never counts.
    pub enum CheckinDecision {
        Confirm = ("confirm", "核实有效"),
        Dismiss = ("dismiss", "核实无效"),
    }
}

labelled_enum! {
    /// How a post holder's monthly subsidy follows the days attended.
    pub enum SubsidyMethod {
        Prorated = ("prorated", "按出勤天数折算（出勤天数 ÷ 应出勤天数，不超过月标准）"),
        AllOrNothing = ("all_or_nothing", "出勤达标发全额，未达标不发"),
    }
}

labelled_enum! {
    /// A month of the ledger: open (figures live) or closed by the monthly dispatch (frozen).
    pub enum MonthStatus {
        Open = ("open", "未关账"),
        Closed = ("closed", "已关账"),
    }
}

labelled_enum! {
    /// A county's sign-off of a month in the current round (a reopen starts a new round).
    pub enum SignoffState {
        NotSigned = ("not_signed", "未签核"),
        Signed = ("signed", "已签核"),
        Withdrawn = ("withdrawn", "已撤回签核"),
    }
}

labelled_enum! {
    /// What became of one survey of a bulk decision.
    pub enum BulkItemOutcome {
        Decided = ("decided", "已处理"),
        Refused = ("refused", "未处理"),
    }
}

labelled_enum! {
    /// The rule a field broke: `rule` of every problem `errors[]` entry (and of the problem's
    /// first error). Programs switch on the value; the label says it to a person.
    pub enum Rule {
        // Shape of the JSON, from the typed reading of the body.
        Required = ("required", "必填项缺失"),
        UnknownValue = ("unknown_value", "不是允许的取值"),
        UnknownField = ("unknown_field", "不认识的字段"),
        InvalidType = ("invalid_type", "数据类型不对"),
        InvalidLength = ("invalid_length", "元素个数不对"),
        InvalidValue = ("invalid_value", "取值无效"),
        ControlCharacter = ("control_character", "含有控制字符"),
        Invalid = ("invalid", "无法读取"),
        // Values.
        Length = ("length", "字符数超出范围"),
        Range = ("range", "数值超出范围"),
        Count = ("count", "个数超出范围"),
        Duplicate = ("duplicate", "重复填写"),
        NotAllowed = ("not_allowed", "此情形下不应填写"),
        OneOf = ("one_of", "只能填写其中一项"),
        TooLong = ("too_long", "内容过长"),
        TooMany = ("too_many", "数量过多"),
        DatetimeFormat = ("datetime_format", "时间格式不对"),
        DateFormat = ("date_format", "日期格式不对"),
        MonthFormat = ("month_format", "月份格式不对"),
        TooEarly = ("too_early", "时间过早"),
        InFuture = ("in_future", "时间晚于当前"),
        AbsurdTime = ("absurd_time", "时间不合理"),
        MonthMismatch = ("month_mismatch", "调查月份与调查时间不符"),
        UuidFormat = ("uuid_format", "编号不是 UUID"),
        PhoneFormat = ("phone_format", "手机号格式不对"),
        DivisionCodeFormat = ("division_code_format", "区划代码格式不对"),
        DivisionLevel = ("division_level", "区划层级不对"),
        HouseholdNumberFormat = ("household_number_format", "户编号格式不对"),
        IdNumberFormat = ("id_number_format", "身份证号格式不对"),
        IdNumberCheckDigit = ("id_number_check_digit", "身份证号校验位不对"),
        IdNumberRegion = ("id_number_region", "身份证号地区码无效"),
        IdNumberBirthDate = ("id_number_birth_date", "身份证号中的出生日期无效"),
        Sha256Format = ("sha256_format", "照片摘要格式不对"),
        NoFix = ("no_fix", "没有定位结果"),
        // A household's content.
        DuplicateMember = ("duplicate_member", "同一户内成员重复"),
        BirthDateMismatch = ("birth_date_mismatch", "出生日期与身份证号不符"),
        SexMismatch = ("sex_mismatch", "性别与身份证号不符"),
        HeadMismatch = ("head_mismatch", "与户主成员不符"),
        OneHead = ("one_head", "户主须恰好一人"),
        SelfReference = ("self_reference", "不能更正自身"),
        UnknownSubmission = ("unknown_submission", "被更正的调查不存在"),
        OtherVillage = ("other_village", "被更正的调查属于其他村"),
        // A revisit's references.
        UnknownHousehold = ("unknown_household", "回访的户不存在或不在您负责的村中"),
        UnknownVersion = ("unknown_version", "回访依据的版本不存在"),
        UnknownPerson = ("unknown_person", "该户中没有这名成员"),
        RefFormat = ("ref_format", "引用格式不对"),
        // Scope and references.
        OutOfScope = ("out_of_scope", "超出管辖范围"),
        ScopeMismatch = ("scope_mismatch", "管辖范围与角色不符"),
        OneVillage = ("one_village", "只能负责一个村"),
        OneCounty = ("one_county", "只能属于一个县（市、区）"),
        UnknownVillage = ("unknown_village", "村不存在"),
        UnknownCounty = ("unknown_county", "县（市、区）不存在"),
        OneOfPair = ("one_of_pair", "须是这对户之一"),
        NotAPostHolder = ("not_a_post_holder", "不是在岗的特岗人员"),
        QuotaExceeded = ("quota_exceeded", "各县（市、区）分配合计超过全市指标"),
        // Geofences.
        OutsideCounty = ("outside_county", "不在所属县（市、区）界内"),
        InvalidGeometry = ("invalid_geometry", "几何图形无效"),
        TooFewDays = ("too_few_days", "有效打卡天数不足"),
        SpreadTooLarge = ("spread_too_large", "打卡位置过于分散"),
        UnknownWorker = ("unknown_worker", "本村没有此人员"),
        UnknownEmployer = ("unknown_employer", "用工主体未登记"),
        InactiveEmployer = ("inactive_employer", "用工主体已停用"),
        EmployerKindMismatch = ("employer_kind_mismatch", "用工主体类型与就业状态不符"),
        CreditCodeFormat = ("credit_code_format", "统一社会信用代码格式不对"),
        // Accounts.
        PasswordTooShort = ("password_too_short", "密码过短"),
        PasswordTooLong = ("password_too_long", "密码过长"),
        WrongPassword = ("wrong_password", "当前密码不正确"),
        SamePassword = ("same_password", "新密码须与原密码不同"),
        OwnAccount = ("own_account", "不能对自己的账号执行此操作"),
        // Photos.
        PhotoMissing = ("photo_missing", "照片尚未上传"),
        Sha256Mismatch = ("sha256_mismatch", "照片内容与摘要不符"),
        NotAnImage = ("not_an_image", "不是图片"),
        FormatMismatch = ("format_mismatch", "图片不是 JPEG 格式"),
        CorruptImage = ("corrupt_image", "图片已损坏"),
        UnsupportedJpeg = ("unsupported_jpeg", "不支持的 JPEG 编码"),
        TooManyPixels = ("too_many_pixels", "图片像素过多"),
        SideTooLong = ("side_too_long", "图片边长过大"),
        AspectRatio = ("aspect_ratio", "图片长宽比不合理"),
        TooManyScans = ("too_many_scans", "JPEG 扫描段过多"),
        DecodeMemory = ("decode_memory", "解码所需内存过多"),
        ImplausibleCompression = ("implausible_compression", "压缩比不合理"),
    }
}

impl EmployerKind {
    /// The kind an employment status names an employer of (workshops, leading enterprises,
    /// cooperatives), if any.
    pub fn of_status(status: EmploymentStatus) -> Option<Self> {
        match status {
            EmploymentStatus::Workshop => Some(Self::Workshop),
            EmploymentStatus::LeadingEnterprise => Some(Self::LeadingEnterprise),
            EmploymentStatus::Cooperative => Some(Self::Cooperative),
            _ => None,
        }
    }

    /// A kind as a spreadsheet writes it: the wire value or the Chinese label.
    pub fn parse_label(text: &str) -> Option<Self> {
        let text = text.trim();
        Self::parse(text).or_else(|| Self::ALL.iter().copied().find(|k| k.label() == text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_round_trip_through_serde_and_parse() {
        for status in EmploymentStatus::ALL {
            let json = serde_json::to_string(status).expect("serialises");
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(EmploymentStatus::parse(status.as_str()), Some(*status));
        }
        assert_eq!(Role::parse("county_reviewer"), Some(Role::CountyReviewer));
        assert!("mayor".parse::<Role>().is_err());
    }
}
