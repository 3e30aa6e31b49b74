//! Photos: content-addressed upload, validation, EXIF, perceptual hash, thumbnails, storage.

pub mod decode;
pub mod exif;
pub mod intake;
pub mod phash;
pub mod synthetic;

/// Perceptual-hash distance (bits of 64) at or below which two photos count as the same
/// picture; chosen from the measurements in `tests/api/phash.rs`.
pub const REUSE_THRESHOLD: u32 = 10;

pub mod db;
pub mod routes;
pub mod store;
pub mod thumbnail;

pub use store::{PhotoStore, PhotoStoreConfig};

/// Where photos go and how large they may be.
#[derive(Debug, Clone)]
pub struct PhotoSettings {
    /// Largest accepted body, in bytes.
    pub max_bytes: usize,
    /// Largest accepted image, in pixels (width × height), checked from the header.
    pub max_pixels: u64,
    pub store: PhotoStoreConfig,
}

impl PhotoSettings {
    /// 15 MiB, 50 megapixels, on disk under `data_dir/photos`.
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self {
            max_bytes: 15 * 1024 * 1024,
            max_pixels: 50_000_000,
            store: PhotoStoreConfig::Disk(data_dir.join("photos")),
        }
    }
}
