//! Reading photos: format sniffing, header-only dimensions, and the reduced decodes the hash and
//! the thumbnail need. JPEGs are decoded by libjpeg-turbo with DCT-domain scaling (1/2 … 1/8),
//! which skips most of the inverse-DCT and colour work; PNG and WebP go through `image` with
//! allocation limits.

use std::io::Cursor;

use image::{ImageReader, Limits, RgbImage};
use turbojpeg::{Decompressor, Image, PixelFormat, ScalingFactor};

use super::phash::Luma;
use crate::domain::PhotoFormat;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the data is not a JPEG, PNG or WebP image")]
    NotAnImage,
    #[error("the image is corrupt or truncated: {0}")]
    Corrupt(String),
    #[error("the image is {width}×{height} pixels, over the limit of {limit} pixels")]
    TooLarge { width: u64, height: u64, limit: u64 },
}

/// The format from the first bytes, whatever the file name or declared type says.
pub fn sniff(bytes: &[u8]) -> Option<PhotoFormat> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(PhotoFormat::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(PhotoFormat::Png)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(PhotoFormat::Webp)
    } else {
        None
    }
}

fn image_format(format: PhotoFormat) -> image::ImageFormat {
    match format {
        PhotoFormat::Jpeg => image::ImageFormat::Jpeg,
        PhotoFormat::Png => image::ImageFormat::Png,
        PhotoFormat::Webp => image::ImageFormat::WebP,
    }
}

/// Width and height from the header alone: no pixel is decoded, so a decompression bomb costs
/// no more than its header.
pub fn dimensions(
    bytes: &[u8],
    format: PhotoFormat,
    max_pixels: u64,
) -> Result<(u32, u32), DecodeError> {
    let (width, height) = match format {
        PhotoFormat::Jpeg => {
            let header =
                turbojpeg::read_header(bytes).map_err(|e| DecodeError::Corrupt(e.to_string()))?;
            (header.width as u64, header.height as u64)
        }
        _ => {
            let reader = ImageReader::with_format(Cursor::new(bytes), image_format(format));
            let (w, h) = reader
                .into_dimensions()
                .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
            (u64::from(w), u64::from(h))
        }
    };
    if width == 0 || height == 0 {
        return Err(DecodeError::Corrupt("zero width or height".into()));
    }
    if width * height > max_pixels {
        return Err(DecodeError::TooLarge {
            width,
            height,
            limit: max_pixels,
        });
    }
    Ok((width as u32, height as u32))
}

/// The smallest libjpeg-turbo scaling whose output still satisfies `enough(width, height)`.
fn jpeg_scale(width: usize, height: usize, enough: impl Fn(usize, usize) -> bool) -> ScalingFactor {
    [8, 4, 2]
        .into_iter()
        .map(|d| ScalingFactor::new(1, d))
        .find(|f| enough(f.scale(width), f.scale(height)))
        .unwrap_or(ScalingFactor::ONE)
}

fn turbo(
    bytes: &[u8],
    enough: impl Fn(usize, usize) -> bool,
    format: PixelFormat,
) -> Result<Image<Vec<u8>>, DecodeError> {
    let corrupt = |e: turbojpeg::Error| DecodeError::Corrupt(e.to_string());
    let mut decompressor = Decompressor::new().map_err(corrupt)?;
    let header = decompressor.read_header(bytes).map_err(corrupt)?;
    let factor = jpeg_scale(header.width, header.height, enough);
    decompressor.set_scaling_factor(factor).map_err(corrupt)?;
    let scaled = header.scaled(factor);
    let pitch = scaled.width * format.size();
    let mut image = Image {
        pixels: vec![0u8; pitch * scaled.height],
        width: scaled.width,
        pitch,
        height: scaled.height,
        format,
    };
    // Truncated data is a libjpeg warning, which TurboJPEG reports as an error: refused.
    decompressor
        .decompress(bytes, image.as_deref_mut())
        .map_err(corrupt)?;
    Ok(image)
}

fn decode_with_image(
    bytes: &[u8],
    format: PhotoFormat,
    max_pixels: u64,
) -> Result<RgbImage, DecodeError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format(format));
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(4).saturating_add(1 << 20));
    reader.limits(limits);
    reader
        .decode()
        .map(|img| img.to_rgb8())
        .map_err(|e| DecodeError::Corrupt(e.to_string()))
}

/// A luma plane for the perceptual hash. JPEGs are decoded at the smallest scale that keeps at
/// least 64 pixels on the short side (1/8 for phone photos) — every entropy-coded byte is still
/// read, so truncation and corruption are caught here.
pub fn luma_for_hash(
    bytes: &[u8],
    format: PhotoFormat,
    max_pixels: u64,
) -> Result<Luma, DecodeError> {
    match format {
        PhotoFormat::Jpeg => {
            let image = turbo(bytes, |w, h| w.min(h) >= 64, PixelFormat::GRAY)?;
            Ok(Luma {
                width: image.width,
                height: image.height,
                pixels: image.pixels,
            })
        }
        _ => {
            let rgb = decode_with_image(bytes, format, max_pixels)?;
            Ok(Luma::from_rgb(
                rgb.width() as usize,
                rgb.height() as usize,
                rgb.as_raw(),
            ))
        }
    }
}

/// RGB pixels with the long side at least `long_side` (more when the format cannot scale).
pub fn rgb_at_least(
    bytes: &[u8],
    format: PhotoFormat,
    long_side: usize,
    max_pixels: u64,
) -> Result<RgbImage, DecodeError> {
    match format {
        PhotoFormat::Jpeg => {
            let image = turbo(bytes, |w, h| w.max(h) >= long_side, PixelFormat::RGB)?;
            RgbImage::from_raw(image.width as u32, image.height as u32, image.pixels)
                .ok_or_else(|| DecodeError::Corrupt("decoded buffer has the wrong size".into()))
        }
        _ => decode_with_image(bytes, format, max_pixels),
    }
}
