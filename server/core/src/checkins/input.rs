//! A check-in as the app sends it, and its validation into the typed check-in: the shape is
//! checked here, doubtful facts become flags when it is stored.

use chrono::{DateTime, FixedOffset, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::domain::Rule;
use crate::domain::{CheckinKind, DivisionCode, DivisionLevel, IdNumber, SubmissionId};
use crate::error::FieldError;
use crate::surveys::input::{DeviceInput, LocationInput};

/// `POST /api/v1/checkins`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CheckinRequest {
    #[schema(example = "0190b7c2-8b00-7c3a-9a51-3f2d8e0b4c13")]
    pub submission_id: String,
    pub kind: CheckinKind,
    #[schema(example = "220802100201")]
    pub village_code: String,
    /// The special-post worker being checked in by ID number (`kind: special_post` only;
    /// exactly one of `worker_id_number` and `worker_ref`).
    pub worker_id_number: Option<String>,
    /// The special-post worker being checked in by the `worker_ref` the sync feed gives on the
    /// village's post holders (`kind: special_post` only; exactly one of `worker_id_number` and
    /// `worker_ref`). Valid only in the check-in's village.
    #[serde(default)]
    #[schema(example = "3q2-7wVXkz9a")]
    pub worker_ref: Option<String>,
    /// When the photo was taken and the position read, RFC 3339 with offset (device clock).
    #[schema(example = "2020-07-20T08:02:11+08:00")]
    pub captured_at: String,
    pub location: LocationInput,
    /// The phone reports a mock (simulated) location.
    #[serde(default)]
    pub mock_location: bool,
    /// SHA-256 of the check-in photo (JPEG), uploaded beforehand.
    pub photo: String,
    pub device: DeviceInput,
}

#[derive(Debug, Clone)]
pub struct Checkin {
    pub id: SubmissionId,
    pub kind: CheckinKind,
    pub village: DivisionCode,
    pub worker: Option<Worker>,
    pub captured_at: DateTime<FixedOffset>,
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
    pub mock_location: bool,
    pub photo: String,
}

/// How a special-post check-in names its worker.
#[derive(Debug, Clone)]
pub enum Worker {
    IdNumber(IdNumber),
    /// A `worker_ref` token, resolved inside the check-in's village when it is stored.
    Ref(String),
}

/// Whether a `worker_ref` has the shape of one: 12 URL-safe base64 characters.
fn is_worker_ref(raw: &str) -> bool {
    raw.len() == 12
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The worker of a check-in: for `special_post` exactly one of the ID number and the ref, for
/// `resident_duty` neither.
fn check_worker(errors: &mut Vec<FieldError>, input: &CheckinRequest) -> Option<Worker> {
    let by_id = input.worker_id_number.as_deref();
    let by_ref = input.worker_ref.as_deref();
    match (input.kind, by_id, by_ref) {
        (CheckinKind::SpecialPost, Some(raw), None) => match IdNumber::parse(raw) {
            Ok(id) => Some(Worker::IdNumber(id)),
            Err(e) => {
                errors.push(FieldError::from_invalid("worker_id_number", e));
                None
            }
        },
        (CheckinKind::SpecialPost, None, Some(raw)) if is_worker_ref(raw) => {
            Some(Worker::Ref(raw.to_owned()))
        }
        (CheckinKind::SpecialPost, None, Some(_)) => {
            errors.push(FieldError::new(
                "worker_ref",
                Rule::InvalidValue,
                "须为同步得到的人员标识（12 个字符）",
            ));
            None
        }
        (CheckinKind::SpecialPost, Some(_), Some(_)) => {
            errors.push(FieldError::new(
                "worker_ref",
                Rule::OneOf,
                "身份证号与人员标识只能填写其中一项",
            ));
            None
        }
        (CheckinKind::SpecialPost, None, None) => {
            errors.push(FieldError::new(
                "worker_id_number",
                Rule::Required,
                "特岗人员打卡须填写该人员（身份证号或人员标识）",
            ));
            None
        }
        (CheckinKind::ResidentDuty, by_id, by_ref) => {
            for (field, given) in [
                ("worker_id_number", by_id.is_some()),
                ("worker_ref", by_ref.is_some()),
            ] {
                if given {
                    errors.push(FieldError::new(
                        field,
                        Rule::NotAllowed,
                        "只有特岗人员打卡才填写人员",
                    ));
                }
            }
            None
        }
    }
}

/// When the check-in was made: an RFC 3339 time with its zone, between 2015 and 2100.
fn captured_at(errors: &mut Vec<FieldError>, raw: &str) -> Option<DateTime<FixedOffset>> {
    match DateTime::parse_from_rfc3339(raw.trim()) {
        Ok(t) if (2015..=2100).contains(&chrono::Datelike::year(&t)) => Some(t),
        Ok(_) => {
            errors.push(FieldError::new(
                "captured_at",
                Rule::AbsurdTime,
                "须为 2015 至 2100 年之间的时间",
            ));
            None
        }
        Err(_) => {
            errors.push(FieldError::new(
                "captured_at",
                Rule::DatetimeFormat,
                "须为带时区的 RFC 3339 时间，如 2020-07-20T09:31:00+08:00",
            ));
            None
        }
    }
}

/// A position in range, its accuracy within 100 km.
fn check_location(errors: &mut Vec<FieldError>, l: &LocationInput) {
    if !(-90.0..=90.0).contains(&l.lat) {
        errors.push(FieldError::new(
            "location.lat",
            Rule::Range,
            "须在 -90 至 90 之间",
        ));
    }
    if !(-180.0..=180.0).contains(&l.lon) {
        errors.push(FieldError::new(
            "location.lon",
            Rule::Range,
            "须在 -180 至 180 之间",
        ));
    }
    if l.accuracy_m
        .is_some_and(|a| !(0.0..=100_000.0).contains(&a))
    {
        errors.push(FieldError::new(
            "location.accuracy_m",
            Rule::Range,
            "须在 0 至 100000 米之间",
        ));
    }
}

/// The device's id and app version, as the app names itself.
fn check_device(errors: &mut Vec<FieldError>, device: &DeviceInput) {
    for (field, value, max) in [
        ("device.device_id", &device.device_id, 128),
        ("device.app_version", &device.app_version, 32),
    ] {
        let n = value.trim().chars().count();
        if n == 0 || n > max {
            errors.push(FieldError::new(
                field,
                Rule::Length,
                format!("须为 1 至 {max} 个字符"),
            ));
        }
    }
}

/// Checks the shape of a check-in. Doubtful facts (time, place, photo) are not refused: they
/// become flags, so nothing a field worker sends is lost.
pub fn validate(
    input: &CheckinRequest,
    caller: &Caller,
    _now: DateTime<Utc>,
) -> Result<Checkin, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut invalid =
        |field: &str, e: crate::domain::Invalid| errors.push(FieldError::from_invalid(field, e));
    let id = SubmissionId::parse(&input.submission_id)
        .map_err(|e| invalid("submission_id", e))
        .ok();
    let village = DivisionCode::parse_level(&input.village_code, DivisionLevel::Village)
        .map_err(|e| invalid("village_code", e))
        .ok();
    let worker = check_worker(&mut errors, input);
    if let Some(v) = &village {
        if !caller.can_access_village(v) {
            errors.push(FieldError::new(
                "village_code",
                Rule::OutOfScope,
                format!("村 {v} 不在您负责的村中"),
            ));
        }
    }
    let captured_at = captured_at(&mut errors, &input.captured_at);
    check_location(&mut errors, &input.location);
    let photo = input.photo.trim().to_ascii_lowercase();
    if photo.len() != 64 || !photo.bytes().all(|b| b.is_ascii_hexdigit()) {
        errors.push(FieldError::new(
            "photo",
            Rule::Sha256Format,
            "须为已上传照片的 SHA-256（64 位十六进制数）",
        ));
    }
    check_device(&mut errors, &input.device);
    match (id, village, captured_at) {
        (Some(id), Some(village), Some(captured_at)) if errors.is_empty() => {
            let l = &input.location;
            let (lat, lon) = l.crs.to_wgs84(l.lat, l.lon);
            Ok(Checkin {
                id,
                kind: input.kind,
                village,
                worker,
                captured_at,
                lat,
                lon,
                accuracy_m: l.accuracy_m,
                mock_location: input.mock_location,
                photo,
            })
        }
        _ => Err(errors),
    }
}
