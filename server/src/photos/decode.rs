//! Reading photos: format sniffing, header-only dimensions, and the reduced decodes the hash and
//! the thumbnail need. JPEGs are decoded by MozJPEG (libjpeg) with DCT-domain scaling
//! (1/2 … 1/8), which skips most of the inverse-DCT and colour work; PNG and WebP go through
//! `image` with allocation limits.

use std::io::Cursor;
use std::os::raw::c_int;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use image::{ImageReader, Limits, RgbImage};
use mozjpeg::{ColorSpace, Decompress};
use mozjpeg_sys::jpeg_common_struct;

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

/// A libjpeg error or warning, carried out of the C code by unwinding.
struct LibjpegMessage(c_int);

extern "C-unwind" fn libjpeg_fail(cinfo: &mut jpeg_common_struct) {
    // SAFETY: libjpeg calls this with `err` pointing at the error manager it was given.
    let code = unsafe { cinfo.err.as_ref() }.map_or(0, |e| e.msg_code);
    resume_unwind(Box::new(LibjpegMessage(code)))
}

extern "C-unwind" fn libjpeg_message(cinfo: &mut jpeg_common_struct, level: c_int) {
    // Level -1 is a warning: libjpeg reports truncated or damaged data this way and goes on,
    // padding the picture with grey. Such a photo is refused, not half-stored.
    if level < 0 {
        libjpeg_fail(cinfo)
    }
}

/// An error manager under which every libjpeg warning is fatal.
fn strict_errors() -> mozjpeg_sys::jpeg_error_mgr {
    // SAFETY: a zeroed jpeg_error_mgr is valid input for jpeg_std_error, which fills in every
    // field; the two handlers are then replaced with ours.
    let mut err: mozjpeg_sys::jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { mozjpeg_sys::jpeg_std_error(&mut err) };
    err.error_exit = Some(libjpeg_fail);
    err.emit_message = Some(libjpeg_message);
    err
}

/// Runs libjpeg work, turning its errors (which unwind out of C) into `DecodeError`s.
fn libjpeg<T>(work: impl FnOnce() -> std::io::Result<T>) -> Result<T, DecodeError> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(DecodeError::Corrupt(e.to_string())),
        Err(payload) => Err(DecodeError::Corrupt(
            match payload.downcast_ref::<LibjpegMessage>() {
                Some(LibjpegMessage(code)) => {
                    format!("damaged or truncated JPEG data (libjpeg message {code})")
                }
                None => "the JPEG decoder failed".into(),
            },
        )),
    }
}

fn open_jpeg(bytes: &[u8]) -> std::io::Result<Decompress<&[u8]>> {
    Decompress::builder()
        .with_err(strict_errors())
        .from_mem(bytes)
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
            let (w, h) = libjpeg(|| open_jpeg(bytes).map(|d| d.size()))?;
            (w as u64, h as u64)
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

/// The smallest DCT scaling (n/8) whose output still satisfies `enough(width, height)`.
fn jpeg_scale(width: usize, height: usize, enough: impl Fn(usize, usize) -> bool) -> u8 {
    [1u8, 2, 4]
        .into_iter()
        .find(|&n| enough(width * usize::from(n) / 8, height * usize::from(n) / 8))
        .unwrap_or(8)
}

/// Decodes a JPEG at the smallest scale that satisfies `enough`, to grayscale or RGB.
fn scaled_jpeg(
    bytes: &[u8],
    enough: impl Fn(usize, usize) -> bool,
    gray: bool,
) -> Result<(usize, usize, Vec<u8>), DecodeError> {
    libjpeg(|| {
        let mut jpeg = open_jpeg(bytes)?;
        let (w, h) = jpeg.size();
        jpeg.scale(jpeg_scale(w, h, enough));
        let mut started = jpeg.to_colorspace(if gray {
            ColorSpace::JCS_GRAYSCALE
        } else {
            ColorSpace::JCS_RGB
        })?;
        let (width, height) = (started.width(), started.height());
        let pixels = started.read_scanlines::<u8>()?;
        started.finish()?;
        Ok((width, height, pixels))
    })
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
            let (width, height, pixels) = scaled_jpeg(bytes, |w, h| w.min(h) >= 64, true)?;
            Ok(Luma {
                width,
                height,
                pixels,
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
            let (width, height, pixels) = scaled_jpeg(bytes, |w, h| w.max(h) >= long_side, false)?;
            RgbImage::from_raw(width as u32, height as u32, pixels)
                .ok_or_else(|| DecodeError::Corrupt("decoded buffer has the wrong size".into()))
        }
        _ => decode_with_image(bytes, format, max_pixels),
    }
}

/// Encodes RGB pixels as a baseline JPEG with libjpeg's fastest settings (no trellis
/// quantisation or scan optimisation: thumbnails are small and made on request).
pub fn encode_jpeg(rgb: &RgbImage, quality: u8) -> Result<Vec<u8>, DecodeError> {
    libjpeg(|| {
        let mut compress = mozjpeg::Compress::new(ColorSpace::JCS_RGB);
        compress.set_size(rgb.width() as usize, rgb.height() as usize);
        compress.set_fastest_defaults();
        compress.set_quality(f32::from(quality));
        let mut started = compress.start_compress(Vec::new())?;
        started.write_scanlines(rgb.as_raw())?;
        started.finish()
    })
}
