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
    /// How a village's position in the fixtures was obtained (see `fixtures/README.md`).
    pub enum PositionSource {
        SurveyedPoint = ("surveyed_point", "村级点位（2016 年高德数据）"),
        TownshipSeat = ("township_seat", "按乡镇驻地估算"),
        CountyArea = ("county_area", "县域内估算"),
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
    pub enum EmployerType {
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
