//! Checking and describing an uploaded photo: its hash, format, size, EXIF and perceptual hash.

use chrono::{DateTime, FixedOffset};
use sha2::{Digest, Sha256};

use super::decode::{self, DecodeError};
use super::exif::{self, ExifInfo};
use super::phash;
use crate::domain::PhotoFormat;

#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub sha256: String,
    pub format: PhotoFormat,
    pub byte_size: usize,
    pub width: u32,
    pub height: u32,
    pub taken_at: Option<DateTime<FixedOffset>>,
    pub exif_position: Option<(f64, f64)>,
    pub orientation: u16,
    /// 64-bit DCT perceptual hash of the picture as shown (orientation applied).
    pub phash: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    #[error("the body's SHA-256 is {actual}, not the {claimed} named in the path")]
    Sha256Mismatch { claimed: String, actual: String },
    #[error("the body is {actual:?} but was sent as {declared:?}")]
    FormatMismatch {
        declared: PhotoFormat,
        actual: PhotoFormat,
    },
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl IntakeError {
    /// A stable rule name for the problem document.
    pub fn rule(&self) -> &'static str {
        match self {
            IntakeError::Sha256Mismatch { .. } => "sha256_mismatch",
            IntakeError::FormatMismatch { .. } => "format_mismatch",
            IntakeError::Decode(DecodeError::NotAnImage) => "not_an_image",
            IntakeError::Decode(DecodeError::Corrupt(_)) => "corrupt_image",
            IntakeError::Decode(DecodeError::TooLarge { .. }) => "too_many_pixels",
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks the photo against its claimed hash and declared format and describes it. The pixel
/// limit is enforced from the header before any pixel is decoded.
pub fn analyze(
    bytes: &[u8],
    claimed_sha256: &str,
    declared: PhotoFormat,
    max_pixels: u64,
) -> Result<Analysis, IntakeError> {
    let actual = sha256_hex(bytes);
    if actual != claimed_sha256 {
        return Err(IntakeError::Sha256Mismatch {
            claimed: claimed_sha256.to_owned(),
            actual,
        });
    }
    let format = decode::sniff(bytes).ok_or(DecodeError::NotAnImage)?;
    if format != declared {
        return Err(IntakeError::FormatMismatch {
            declared,
            actual: format,
        });
    }
    let (width, height) = decode::dimensions(bytes, format, max_pixels)?;
    let ExifInfo {
        taken_at,
        position,
        orientation,
    } = exif::read(bytes);
    let luma = decode::luma_for_hash(bytes, format, max_pixels)?;
    let phash = phash::phash(&phash::grid(&luma, orientation));
    Ok(Analysis {
        sha256: actual,
        format,
        byte_size: bytes.len(),
        width,
        height,
        taken_at,
        exif_position: position,
        orientation,
        phash,
    })
}
