//! Photos: content-addressed upload, validation, EXIF, perceptual hash, thumbnails, storage,
//! and the service the API and the console reach them through.

pub mod budget;
pub mod decode;
pub mod exif;
pub mod intake;
pub mod phash;
mod reference;

/// Perceptual-hash distance (bits of 64) at or below which two photos count as the same
/// picture; chosen from the measurements in `tests/api/phash.rs`.
pub const REUSE_THRESHOLD: u32 = 10;

pub mod db;
pub mod service;
pub mod store;
pub mod store_errors;
pub mod thumbnail;

pub use budget::DecodeBudget;
pub use reference::PhotoRef;
pub use store::{PhotoStore, PhotoStoreConfig};

/// Where photos go and how large they may be.
#[derive(Debug, Clone)]
pub struct PhotoSettings {
    /// Largest accepted body, in bytes.
    pub max_bytes: usize,
    /// Largest accepted image, in pixels (width × height), checked from the header.
    pub max_pixels: u64,
    /// Largest estimated decode memory of one photo, in bytes. Baseline JPEGs, what cameras
    /// write, need a few MB at 1/8 scale whatever their size; progressive ones need about
    /// 3 bytes a pixel (libjpeg keeps all their coefficients), so the default admits a
    /// progressive 4:2:0 photo of about 40 megapixels.
    pub max_decode_bytes: u64,
    /// Decode memory of all photos being decoded at once, in bytes: each decode reserves its
    /// estimate first, waiting briefly, then the request is answered 503.
    pub decode_budget_bytes: u64,
    pub store: PhotoStoreConfig,
}

impl PhotoSettings {
    /// 15 MiB, 50 megapixels, 128 MiB a photo and 256 MiB in all, on disk under
    /// `data_dir/photos`.
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self {
            max_bytes: 15 * 1024 * 1024,
            max_pixels: decode::ImageLimits::DEFAULT.max_pixels,
            max_decode_bytes: decode::ImageLimits::DEFAULT.max_decode_bytes,
            decode_budget_bytes: 256 << 20,
            store: PhotoStoreConfig::Disk(data_dir.join("photos")),
        }
    }

    /// The per-image limits; a photo never needs more than the whole budget.
    pub fn image_limits(&self) -> decode::ImageLimits {
        decode::ImageLimits {
            max_pixels: self.max_pixels,
            max_decode_bytes: self.max_decode_bytes.min(self.decode_budget_bytes),
        }
    }
}
