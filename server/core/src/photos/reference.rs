//! How an answer names a stored photo: its hash and the URLs a page loads it and its thumbnail
//! from.

use serde::Serialize;
use utoipa::ToSchema;

/// A photo of a submission, with the URLs a reviewer's page loads.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhotoRef {
    pub sha256: String,
    /// The photo as uploaded.
    #[schema(
        example = "/api/v1/photos/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    )]
    pub url: String,
    /// A JPEG with its longest side 320 px.
    #[schema(
        example = "/api/v1/photos/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08?size=thumb"
    )]
    pub thumbnail_url: String,
}

impl PhotoRef {
    pub fn new(sha256: String) -> Self {
        PhotoRef {
            url: format!("/api/v1/photos/{sha256}"),
            thumbnail_url: format!("/api/v1/photos/{sha256}?size=thumb"),
            sha256,
        }
    }
}
