//! Thumbnails: longest side 320 px, JPEG, orientation applied. JPEGs are decoded at the
//! smallest DCT scale that still gives 320 px, so a 12-megapixel photo costs a fraction of a
//! full decode.

use image::imageops::{self, FilterType};
use image::metadata::Orientation;
use image::DynamicImage;

use super::decode::{self, DecodeError, Frame, Purpose};

pub const LONG_SIDE: u32 = 320;
const QUALITY: u8 = 80;

/// The decode a thumbnail needs, for [`Frame::decode_bytes`].
pub const PURPOSE: Purpose = Purpose::Thumbnail {
    long_side: LONG_SIDE as usize,
};

/// The thumbnail of a JPEG whose `frame` [`decode::inspect`] read and [`Frame::check`] passed.
pub fn make(bytes: &[u8], frame: &Frame, orientation: u16) -> Result<Vec<u8>, DecodeError> {
    let rgb = decode::rgb_at_least(bytes, frame, LONG_SIDE as usize)?;
    let (w, h) = rgb.dimensions();
    let long = w.max(h);
    let rgb = if long > LONG_SIDE {
        let nw = (u64::from(w) * u64::from(LONG_SIDE) / u64::from(long)).max(1) as u32;
        let nh = (u64::from(h) * u64::from(LONG_SIDE) / u64::from(long)).max(1) as u32;
        imageops::resize(&rgb, nw, nh, FilterType::Triangle)
    } else {
        rgb
    };
    let mut image = DynamicImage::ImageRgb8(rgb);
    if let Some(o) = u8::try_from(orientation)
        .ok()
        .and_then(Orientation::from_exif)
    {
        image.apply_orientation(o);
    }
    decode::encode_jpeg(&image.to_rgb8(), QUALITY)
}
