//! Reading photos: JPEG only, as phone cameras write them (the upload is "the JPEG bytes").
//!
//! Before libjpeg (MozJPEG) sees a byte, [`inspect`] walks the JPEG markers in Rust — the frame
//! header (size, components, sampling, baseline or progressive) and every scan, skipping the
//! entropy-coded data: linear, allocation-free, cheap. [`Frame::check`] then refuses what would
//! cost more to decode than a photo should (see the limits below), and [`Frame::decode_bytes`]
//! says how much memory the decode will take, which the caller reserves from the process-wide
//! [`super::budget::DecodeBudget`]. Only then is the JPEG decoded, with DCT-domain scaling
//! (1/2 … 1/8), which skips most of the inverse-DCT and colour work.

use crate::domain::Rule;
use std::os::raw::c_int;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use image::RgbImage;
use mozjpeg::{ColorSpace, Decompress};
use mozjpeg_sys::jpeg_common_struct;

use super::phash::Luma;

/// Longest accepted side, in pixels. Phone photos are at most about 12,000 px wide (a 108 MP
/// sensor); libjpeg's row buffers and the hash's per-column spans grow with a side, so a frame
/// that is long and thin cannot hide a large cost behind a small pixel count.
pub const MAX_SIDE: u32 = 16_384;

/// Largest accepted ratio of the long side to the short one. Phones shoot 4:3, 3:2, 16:9 and at
/// most about 21:9 (2.3:1); a strip longer than 4:1 shows no door plate or household and is the
/// shape of the 49,999,999 × 1 bomb, whose 32×32 hash grid cost seconds and a gigabyte.
pub const MAX_ASPECT: u32 = 4;

/// Most scans accepted in one JPEG. A camera writes one (baseline); progressive encoders write
/// about 10 (libjpeg's standard script; MozJPEG's optimised scans, as in the progressive
/// fixture, 8). libjpeg
/// makes a full pass over the picture's coefficients for every scan, so a file of thousands of
/// tiny scans is a CPU bomb that no pixel limit sees.
pub const MAX_SCANS: usize = 32;

/// Most pixels one byte of scan data may describe, beyond [`FREE_PIXELS`]. Phone photos carry
/// 2–10 pixels per byte, smooth or dark ones up to about 40; a frame of one flat colour needs a
/// few bits per 8×8 block, so a 600 KB file can claim 50 megapixels and cost a full entropy
/// decode of all of them.
pub const MAX_PIXELS_PER_BYTE: u64 = 64;

/// Pixels any photo may have whatever its size, so small flat pictures (a white wall at
/// 1600×1200) are not refused by [`MAX_PIXELS_PER_BYTE`]; decoding them is cheap.
pub const FREE_PIXELS: u64 = 2_000_000;

/// Bytes libjpeg keeps per 8×8 block of coefficients (64 × 16 bits) when it buffers the whole
/// image: progressive JPEGs and baseline ones whose first scan lacks a component.
const COEFFICIENT_BLOCK_BYTES: u64 = 128;

/// libjpeg's tables, Huffman decoders and other fixed allocations, rounded up.
const FIXED_DECODE_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("不是 JPEG 图片")]
    NotAnImage,
    #[error("请求体是 {0} 图片，照片只接受 JPEG（image/jpeg）")]
    NotJpeg(&'static str),
    #[error("图片已损坏或不完整：{0}")]
    Corrupt(String),
    #[error("不支持的 JPEG 编码：{0}，请上传相机直接拍摄的照片")]
    Unsupported(&'static str),
    #[error("图片为 {width}×{height} 像素，超过 {limit} 像素的上限")]
    TooLarge { width: u64, height: u64, limit: u64 },
    #[error("图片为 {width}×{height} 像素，边长超过 {limit} 像素的上限")]
    SideTooLong { width: u32, height: u32, limit: u32 },
    #[error("图片为 {width}×{height} 像素，长宽比超过 {limit}:1 的上限")]
    AspectRatio { width: u32, height: u32, limit: u32 },
    #[error("JPEG 的扫描超过 {limit} 次的上限")]
    TooManyScans { limit: usize },
    #[error("解码需要约 {} MiB 内存，超过每张照片 {} MiB 的上限", mib(*.needed), mib(*.limit))]
    DecodeMemory { needed: u64, limit: u64 },
    #[error(
        "{pixels} 像素只有 {scan_bytes} 字节的图像数据（每字节超过 {limit} 像素），不是相机拍摄的照片"
    )]
    ImplausibleCompression {
        pixels: u64,
        scan_bytes: u64,
        limit: u64,
    },
}

fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

impl DecodeError {
    /// A stable rule name for the problem document.
    pub fn rule(&self) -> crate::domain::Rule {
        match self {
            DecodeError::NotAnImage => Rule::NotAnImage,
            DecodeError::NotJpeg(_) => Rule::FormatMismatch,
            DecodeError::Corrupt(_) => Rule::CorruptImage,
            DecodeError::Unsupported(_) => Rule::UnsupportedJpeg,
            DecodeError::TooLarge { .. } => Rule::TooManyPixels,
            DecodeError::SideTooLong { .. } => Rule::SideTooLong,
            DecodeError::AspectRatio { .. } => Rule::AspectRatio,
            DecodeError::TooManyScans { .. } => Rule::TooManyScans,
            DecodeError::DecodeMemory { .. } => Rule::DecodeMemory,
            DecodeError::ImplausibleCompression { .. } => Rule::ImplausibleCompression,
        }
    }
}

/// Checks the first bytes: a JPEG passes; another image format is named, so the app can say
/// what it sent, whatever the file name or declared type says.
pub fn sniff(bytes: &[u8]) -> Result<(), DecodeError> {
    let other = if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(());
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "PNG"
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "WebP"
    } else if bytes.starts_with(b"GIF8") {
        "GIF"
    } else if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        // ISO media: HEIC (an iPhone's default), HEIF, AVIF.
        "HEIF/AVIF"
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        "TIFF"
    } else if bytes.starts_with(b"BM") {
        "BMP"
    } else {
        return Err(DecodeError::NotAnImage);
    };
    Err(DecodeError::NotJpeg(other))
}

/// What the marker walk read from a JPEG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    /// SOF2: progressive (several passes over a whole-image coefficient buffer).
    pub progressive: bool,
    /// Horizontal and vertical sampling factors of each component (1 or 3 components).
    pub sampling: Vec<(u8, u8)>,
    /// Scans (SOS segments) before EOI.
    pub scans: usize,
    /// Whether the first scan holds every component; if not, libjpeg buffers the whole image.
    pub interleaved: bool,
    /// Bytes of scan headers and entropy-coded data: what actually encodes the pixels.
    pub scan_bytes: u64,
}

/// Per-image limits that are configuration rather than constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest picture, in pixels (width × height).
    pub max_pixels: u64,
    /// Largest estimated decode memory, in bytes ([`Frame::decode_bytes`]).
    pub max_decode_bytes: u64,
}

impl ImageLimits {
    /// The server's defaults: 50 megapixels, 128 MiB.
    pub const DEFAULT: ImageLimits = ImageLimits {
        max_pixels: 50_000_000,
        max_decode_bytes: 128 << 20,
    };
}

/// What a decode is for: the two decodes differ in scale and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Grayscale, short side at least 64 px, then the 32×32 hash grid.
    Hash,
    /// RGB, long side at least `long_side`, then resized, turned and encoded.
    Thumbnail { long_side: usize },
}

fn corrupt(what: &str) -> DecodeError {
    DecodeError::Corrupt(what.to_owned())
}

fn be16(bytes: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(*bytes.get(at)?) << 8 | usize::from(*bytes.get(at + 1)?))
}

/// Walks the markers from SOI to EOI: the frame header, every scan, the entropy-coded data
/// skipped. Anything after EOI is ignored, as libjpeg ignores it. Stops early at
/// [`MAX_SCANS`], so a file of many scans costs no more than the limit.
pub fn inspect(bytes: &[u8]) -> Result<Frame, DecodeError> {
    sniff(bytes)?;
    let truncated = || corrupt("数据在 JPEG 结束标记（EOI）之前中断");
    let mut frame: Option<Frame> = None;
    let mut pos = 2;
    loop {
        if *bytes.get(pos).ok_or_else(truncated)? != 0xFF {
            return Err(corrupt("标记之间有多余的数据"));
        }
        // Fill bytes: any number of 0xFF before the marker code.
        while *bytes.get(pos).ok_or_else(truncated)? == 0xFF {
            pos += 1;
        }
        let code = bytes[pos];
        pos += 1;
        match code {
            0xD9 => break,
            // TEM: a marker without a length.
            0x01 => continue,
            0x00 | 0xD0..=0xD8 => return Err(corrupt("扫描数据之外出现了意外的标记")),
            _ => {}
        }
        let length = be16(bytes, pos).ok_or_else(truncated)?;
        if length < 2 {
            return Err(corrupt("标记段长度无效"));
        }
        let segment = bytes.get(pos + 2..pos + length).ok_or_else(truncated)?;
        pos += length;
        match code {
            0xC0..=0xC2 => {
                if frame.is_some() {
                    return Err(corrupt("一个文件中有多个帧头（SOF）"));
                }
                frame = Some(read_frame_header(segment, code == 0xC2)?);
            }
            0xC3 | 0xC5..=0xC7 | 0xCB | 0xCD..=0xCF | 0xDE | 0xDF => {
                return Err(DecodeError::Unsupported("无损或分层编码"));
            }
            0xC9 | 0xCA => return Err(DecodeError::Unsupported("算术编码")),
            0xDA => {
                let frame = frame
                    .as_mut()
                    .ok_or_else(|| corrupt("扫描（SOS）出现在帧头之前"))?;
                let in_scan = usize::from(*segment.first().ok_or_else(truncated)?);
                if frame.scans == 0 {
                    frame.interleaved = in_scan == frame.sampling.len();
                }
                frame.scans += 1;
                if frame.scans > MAX_SCANS {
                    return Err(DecodeError::TooManyScans { limit: MAX_SCANS });
                }
                let data = entropy_coded_length(&bytes[pos..]).ok_or_else(truncated)?;
                frame.scan_bytes += (length + data) as u64;
                pos += data;
            }
            _ => {}
        }
    }
    let frame = frame.ok_or_else(|| corrupt("没有帧头（SOF）"))?;
    if frame.scans == 0 {
        return Err(corrupt("没有图像扫描（SOS）"));
    }
    Ok(frame)
}

/// SOF0–2: precision, height, width, then id, sampling factors and quantisation table per
/// component.
fn read_frame_header(segment: &[u8], progressive: bool) -> Result<Frame, DecodeError> {
    let bad = || corrupt("帧头（SOF）无效");
    let (precision, height, width, count) = match segment {
        [p, h0, h1, w0, w1, n, ..] => (
            *p,
            u32::from(*h0) << 8 | u32::from(*h1),
            u32::from(*w0) << 8 | u32::from(*w1),
            usize::from(*n),
        ),
        _ => return Err(bad()),
    };
    if precision != 8 {
        return Err(DecodeError::Unsupported("非 8 位精度"));
    }
    if !matches!(count, 1 | 3) {
        // CMYK and other colour models: no phone writes them, and libjpeg cannot turn them
        // into RGB.
        return Err(DecodeError::Unsupported("非灰度或 YCbCr 颜色"));
    }
    if height == 0 {
        return Err(DecodeError::Unsupported("高度写在扫描之后（DNL）"));
    }
    if width == 0 || segment.len() != 6 + 3 * count {
        return Err(bad());
    }
    let sampling = segment[6..]
        .chunks_exact(3)
        .map(|c| (c[1] >> 4, c[1] & 0x0F))
        .collect::<Vec<_>>();
    if sampling
        .iter()
        .any(|&(h, v)| !(1..=4).contains(&h) || !(1..=4).contains(&v))
    {
        return Err(bad());
    }
    Ok(Frame {
        width,
        height,
        progressive,
        sampling,
        scans: 0,
        interleaved: true,
        scan_bytes: 0,
    })
}

/// The length of the entropy-coded data at the start of `data`: up to the first marker that is
/// not a stuffed 0xFF00 or a restart marker.
fn entropy_coded_length(data: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        pos += data[pos..].iter().position(|&b| b == 0xFF)?;
        match *data.get(pos + 1)? {
            0x00 | 0xD0..=0xD7 => pos += 2,
            // A fill byte: the marker follows.
            0xFF => pos += 1,
            _ => return Some(pos),
        }
    }
}

impl Frame {
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// The limits, cheapest and most telling first.
    pub fn check(&self, limits: &ImageLimits) -> Result<(), DecodeError> {
        let (width, height) = (self.width, self.height);
        if self.pixels() > limits.max_pixels {
            return Err(DecodeError::TooLarge {
                width: width.into(),
                height: height.into(),
                limit: limits.max_pixels,
            });
        }
        if width.max(height) > MAX_SIDE {
            return Err(DecodeError::SideTooLong {
                width,
                height,
                limit: MAX_SIDE,
            });
        }
        if u64::from(width.max(height)) > u64::from(MAX_ASPECT) * u64::from(width.min(height)) {
            return Err(DecodeError::AspectRatio {
                width,
                height,
                limit: MAX_ASPECT,
            });
        }
        let needed = self
            .decode_bytes(Purpose::Hash)
            .max(self.decode_bytes(super::thumbnail::PURPOSE));
        if needed > limits.max_decode_bytes {
            return Err(DecodeError::DecodeMemory {
                needed,
                limit: limits.max_decode_bytes,
            });
        }
        if self.pixels() > MAX_PIXELS_PER_BYTE * self.scan_bytes + FREE_PIXELS {
            return Err(DecodeError::ImplausibleCompression {
                pixels: self.pixels(),
                scan_bytes: self.scan_bytes,
                limit: MAX_PIXELS_PER_BYTE,
            });
        }
        Ok(())
    }

    /// The DCT scale (n/8) a decode for `purpose` uses: the smallest that still gives enough.
    fn scale(&self, purpose: Purpose) -> u8 {
        let (w, h) = (self.width as usize, self.height as usize);
        [1u8, 2, 4]
            .into_iter()
            .find(|&n| {
                let (w, h) = (w * usize::from(n) / 8, h * usize::from(n) / 8);
                match purpose {
                    Purpose::Hash => w.min(h) >= 64,
                    Purpose::Thumbnail { long_side } => w.max(h) >= long_side,
                }
            })
            .unwrap_or(8)
    }

    /// An upper estimate of the memory a decode for `purpose` takes, libjpeg's and ours:
    /// the whole-image coefficient buffer when libjpeg needs one (128 bytes per 8×8 block of
    /// every component, rounded up to whole MCUs as libjpeg allocates it), the decoded pixels,
    /// row buffers, and what the hash or the thumbnail builds from the pixels.
    pub fn decode_bytes(&self, purpose: Purpose) -> u64 {
        let scale = u64::from(self.scale(purpose));
        let (w, h) = (u64::from(self.width), u64::from(self.height));
        let (out_w, out_h) = ((w * scale).div_ceil(8), (h * scale).div_ceil(8));
        let components = self.sampling.len() as u64;
        let coefficients = if self.progressive || !self.interleaved {
            let max_h = u64::from(self.sampling.iter().map(|s| s.0).max().unwrap_or(1));
            let max_v = u64::from(self.sampling.iter().map(|s| s.1).max().unwrap_or(1));
            self.sampling
                .iter()
                .map(|&(ch, cv)| {
                    let (ch, cv) = (u64::from(ch), u64::from(cv));
                    let across = (w * ch).div_ceil(8 * max_h).next_multiple_of(ch);
                    let down = (h * cv).div_ceil(8 * max_v).next_multiple_of(cv);
                    across * down * COEFFICIENT_BLOCK_BYTES
                })
                .sum()
        } else {
            0
        };
        // Upsampling and colour-conversion rows: a few MCU rows of every component.
        let rows = out_w * components * 64;
        let work = match purpose {
            // The luma bytes, their f32 copy for the grid, the per-column spans.
            Purpose::Hash => out_w * out_h * 5 + (out_w + out_h) * 48,
            // The RGB pixels, the resize's f32 intermediate (its width × the target height),
            // then small copies at thumbnail size.
            Purpose::Thumbnail { long_side } => {
                let long = long_side as u64;
                out_w * out_h * 3 + out_w * long * 16 + long * long * 3 * 4
            }
        };
        FIXED_DECODE_BYTES + coefficients + rows + work
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
        // libjpeg's I/O messages are English and say no more than this.
        Ok(Err(_)) => Err(DecodeError::Corrupt("JPEG 数据读取失败".into())),
        Err(payload) => Err(DecodeError::Corrupt(
            match payload.downcast_ref::<LibjpegMessage>() {
                Some(LibjpegMessage(code)) => {
                    format!("JPEG 数据损坏或被截断（libjpeg 消息 {code}）")
                }
                None => "JPEG 解码失败".into(),
            },
        )),
    }
}

/// Decodes a JPEG at the scale `purpose` needs, to grayscale or RGB. The frame must come from
/// [`inspect`] of the same bytes and have passed [`Frame::check`].
fn scaled_jpeg(
    bytes: &[u8],
    frame: &Frame,
    purpose: Purpose,
) -> Result<(usize, usize, Vec<u8>), DecodeError> {
    libjpeg(|| {
        let mut jpeg = Decompress::builder()
            .with_err(strict_errors())
            .from_mem(bytes)?;
        if jpeg.size() != (frame.width as usize, frame.height as usize) {
            return Err(std::io::Error::other(
                "libjpeg reads another size than the header walk",
            ));
        }
        jpeg.scale(frame.scale(purpose));
        let mut started = jpeg.to_colorspace(match purpose {
            Purpose::Hash => ColorSpace::JCS_GRAYSCALE,
            Purpose::Thumbnail { .. } => ColorSpace::JCS_RGB,
        })?;
        let (width, height) = (started.width(), started.height());
        let pixels = started.read_scanlines::<u8>()?;
        started.finish()?;
        Ok((width, height, pixels))
    })
}

/// A luma plane for the perceptual hash, decoded at the smallest scale that keeps at least 64
/// pixels on the short side (1/8 for phone photos) — every entropy-coded byte is still read,
/// so truncation and corruption are caught here.
pub fn luma_for_hash(bytes: &[u8], frame: &Frame) -> Result<Luma, DecodeError> {
    let (width, height, pixels) = scaled_jpeg(bytes, frame, Purpose::Hash)?;
    Ok(Luma {
        width,
        height,
        pixels,
    })
}

/// RGB pixels with the long side at least `long_side` (or the whole picture when smaller).
pub fn rgb_at_least(
    bytes: &[u8],
    frame: &Frame,
    long_side: usize,
) -> Result<RgbImage, DecodeError> {
    let (width, height, pixels) = scaled_jpeg(bytes, frame, Purpose::Thumbnail { long_side })?;
    RgbImage::from_raw(width as u32, height as u32, pixels)
        .ok_or_else(|| DecodeError::Corrupt("解码结果的大小不符".into()))
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

// The tests' synthetic photos live with the simulator, above this module: included by path so
// that photos does not name the simulator (the dependency points one way).
#[cfg(test)]
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../../../simulate/src/photos.rs"]
mod synthetic;

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ImageLimits = ImageLimits::DEFAULT;

    fn photo(width: u32, height: u32) -> Vec<u8> {
        super::synthetic::jpeg(
            &super::synthetic::Scene::new(9).render(width, height, 0.0),
            85,
        )
    }

    #[test]
    fn a_camera_jpeg_walks_to_one_interleaved_scan() {
        let bytes = photo(320, 240);
        let frame = inspect(&bytes).expect("walks");
        assert_eq!((frame.width, frame.height), (320, 240));
        assert_eq!(
            (frame.progressive, frame.scans, frame.interleaved),
            (false, 1, true)
        );
        assert_eq!(frame.sampling.len(), 3);
        assert!(frame.scan_bytes > 0 && frame.scan_bytes < bytes.len() as u64);
        frame.check(&LIMITS).expect("a photo passes");
    }

    /// The photo fixtures and synthetic photos at low and high quality carry a few pixels per
    /// byte of scan data (quality 40, lower than any phone writes: 18), well below
    /// [`MAX_PIXELS_PER_BYTE`].
    #[test]
    fn photos_are_far_below_the_density_limit() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/photos");
        let mut photos: Vec<(String, Vec<u8>)> = [
            "doorplate.jpg",
            "household.jpg",
            "fields.jpg",
            "portrait.jpg",
            "progressive.jpg",
        ]
        .iter()
        .map(|name| {
            let bytes = std::fs::read(format!("{dir}/{name}")).expect("fixture");
            (name.to_string(), bytes)
        })
        .collect();
        let scene = super::synthetic::Scene::new(12).render(800, 600, 0.0);
        for quality in [40, 60, 95] {
            photos.push((
                format!("quality {quality}"),
                super::synthetic::jpeg(&scene, quality),
            ));
        }
        for (name, bytes) in photos {
            let frame = inspect(&bytes).expect("walks");
            frame.check(&LIMITS).expect("passes");
            let density = frame.pixels() / frame.scan_bytes;
            println!("{name}: {density} pixels a byte");
            assert!(density < MAX_PIXELS_PER_BYTE / 2, "{name}: {density}");
        }
    }

    #[test]
    fn truncation_and_junk_are_corrupt() {
        let bytes = photo(64, 48);
        for cut in [3, 20, bytes.len() / 2, bytes.len() - 2] {
            assert!(
                matches!(inspect(&bytes[..cut]), Err(DecodeError::Corrupt(_))),
                "cut at {cut}"
            );
        }
        let mut junk = bytes[..2].to_vec();
        junk.extend_from_slice(b"\xFF\xE0\x00\x01");
        assert!(matches!(inspect(&junk), Err(DecodeError::Corrupt(_))));
        assert_eq!(inspect(b"GIF89a...."), Err(DecodeError::NotJpeg("GIF")));
        assert_eq!(inspect(b"hello"), Err(DecodeError::NotAnImage));
    }

    #[test]
    fn the_estimate_counts_a_progressive_coefficient_buffer() {
        let frame = |progressive| Frame {
            width: 4000,
            height: 3000,
            progressive,
            sampling: vec![(2, 2), (1, 1), (1, 1)],
            scans: 10,
            interleaved: true,
            scan_bytes: 2_000_000,
        };
        // 4:2:0: 1.5 blocks of 128 bytes per 64 pixels = 3 bytes a pixel.
        let progressive = frame(true).decode_bytes(Purpose::Hash);
        assert!(
            (36_000_000..40_000_000).contains(&progressive),
            "{progressive}"
        );
        assert!(frame(false).decode_bytes(Purpose::Hash) < 4_000_000);
    }
}
