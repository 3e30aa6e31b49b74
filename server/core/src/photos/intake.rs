//! Checking and describing an uploaded photo: its hash, format, size, EXIF and perceptual hash.
//!
//! In two steps, so the caller can reserve decode memory between them: [`check`] (hash, format,
//! marker walk, limits: no pixel decoded) and [`describe`] (EXIF, the 1/8-scale decode, the
//! perceptual hash).

use chrono::{DateTime, FixedOffset};
use sha2::{Digest, Sha256};

use super::decode::{self, DecodeError, Frame, ImageLimits, Purpose};
use super::exif::{self, ExifInfo};
use super::phash;
use crate::domain::PhotoFormat;
use crate::domain::Rule;

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
    #[error("请求体的 SHA-256 为 {actual}，与路径中的 {claimed} 不符")]
    Sha256Mismatch { claimed: String, actual: String },
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl IntakeError {
    /// A stable rule name for the problem document.
    pub fn rule(&self) -> crate::domain::Rule {
        match self {
            IntakeError::Sha256Mismatch { .. } => Rule::Sha256Mismatch,
            IntakeError::Decode(e) => e.rule(),
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A photo that passed [`check`]: what the marker walk read, and what decoding it will cost.
#[derive(Debug, Clone)]
pub struct Checked {
    pub sha256: String,
    pub frame: Frame,
}

impl Checked {
    /// Memory to reserve for [`describe`].
    pub fn decode_bytes(&self) -> u64 {
        self.frame.decode_bytes(Purpose::Hash)
    }
}

/// Checks the photo against its claimed hash, that it is a JPEG, and the limits
/// ([`Frame::check`]), all before any pixel is decoded.
pub fn check(
    bytes: &[u8],
    claimed_sha256: &str,
    limits: &ImageLimits,
) -> Result<Checked, IntakeError> {
    let actual = sha256_hex(bytes);
    if actual != claimed_sha256 {
        return Err(IntakeError::Sha256Mismatch {
            claimed: claimed_sha256.to_owned(),
            actual,
        });
    }
    let frame = decode::inspect(bytes)?;
    frame.check(limits)?;
    Ok(Checked {
        sha256: actual,
        frame,
    })
}

/// Describes a checked photo: EXIF, and the perceptual hash from a 1/8-scale decode.
pub fn describe(bytes: &[u8], checked: Checked) -> Result<Analysis, IntakeError> {
    let ExifInfo {
        taken_at,
        position,
        orientation,
    } = exif::read(bytes);
    let luma = decode::luma_for_hash(bytes, &checked.frame)?;
    let phash = phash::phash(&phash::grid(&luma, orientation));
    Ok(Analysis {
        sha256: checked.sha256,
        format: PhotoFormat::Jpeg,
        byte_size: bytes.len(),
        width: checked.frame.width,
        height: checked.frame.height,
        taken_at,
        exif_position: position,
        orientation,
        phash,
    })
}

/// [`check`] then [`describe`], for callers outside the server (the simulator, benchmarks)
/// that decode one photo at a time.
pub fn analyze(
    bytes: &[u8],
    claimed_sha256: &str,
    limits: &ImageLimits,
) -> Result<Analysis, IntakeError> {
    describe(bytes, check(bytes, claimed_sha256, limits)?)
}
