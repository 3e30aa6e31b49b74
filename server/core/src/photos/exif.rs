//! What the photo's EXIF says about when, where and which way up it was taken.

use std::io::Cursor;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};
use exif::{In, Tag, Value};

/// China Standard Time, assumed when a photo gives a local time without an offset.
const CHINA: i32 = 8 * 3600;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExifInfo {
    /// DateTimeOriginal, with OffsetTimeOriginal when present, else read as UTC+8.
    pub taken_at: Option<DateTime<FixedOffset>>,
    /// GPS latitude and longitude (WGS-84, as GPS receivers report).
    pub position: Option<(f64, f64)>,
    /// 1–8; 1 when absent or out of range.
    pub orientation: u16,
}

fn ascii(exif: &exif::Exif, tag: Tag) -> Option<String> {
    match &exif.get_field(tag, In::PRIMARY)?.value {
        Value::Ascii(parts) => parts
            .first()
            .map(|p| String::from_utf8_lossy(p).trim().to_owned()),
        _ => None,
    }
}

fn degrees(exif: &exif::Exif, tag: Tag, reference: Tag, negative: &str) -> Option<f64> {
    let Value::Rational(parts) = &exif.get_field(tag, In::PRIMARY)?.value else {
        return None;
    };
    let part = |i: usize| parts.get(i).filter(|r| r.denom != 0).map(|r| r.to_f64());
    let value = part(0)? + part(1).unwrap_or(0.0) / 60.0 + part(2).unwrap_or(0.0) / 3600.0;
    let sign = match ascii(exif, reference) {
        Some(r) if r.eq_ignore_ascii_case(negative) => -1.0,
        _ => 1.0,
    };
    value.is_finite().then_some(sign * value)
}

fn offset(text: &str) -> Option<FixedOffset> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    FixedOffset::east_opt(sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60))
}

/// Reads the EXIF block of a JPEG, PNG or WebP. Missing or unreadable EXIF is not an error:
/// many apps strip it, and the photo is still a photo.
pub fn read(bytes: &[u8]) -> ExifInfo {
    let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) else {
        return ExifInfo {
            orientation: 1,
            ..ExifInfo::default()
        };
    };
    let taken_at = ascii(&exif, Tag::DateTimeOriginal)
        .and_then(|t| NaiveDateTime::parse_from_str(&t, "%Y:%m:%d %H:%M:%S").ok())
        .and_then(|local| {
            let zone = ascii(&exif, Tag::OffsetTimeOriginal)
                .and_then(|o| offset(&o))
                .or_else(|| FixedOffset::east_opt(CHINA))?;
            zone.from_local_datetime(&local).single()
        });
    let position = match (
        degrees(&exif, Tag::GPSLatitude, Tag::GPSLatitudeRef, "S"),
        degrees(&exif, Tag::GPSLongitude, Tag::GPSLongitudeRef, "W"),
    ) {
        (Some(lat), Some(lon))
            if (-90.0..=90.0).contains(&lat)
                && (-180.0..=180.0).contains(&lon)
                && (lat, lon) != (0.0, 0.0) =>
        {
            Some((lat, lon))
        }
        _ => None,
    };
    let orientation = exif
        .get_field(Tag::Orientation, In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .and_then(|o| u16::try_from(o).ok())
        .filter(|o| (1..=8).contains(o))
        .unwrap_or(1);
    ExifInfo {
        taken_at,
        position,
        orientation,
    }
}
