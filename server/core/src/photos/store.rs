//! Where photo bytes live: local disk or S3-compatible object storage, behind one interface
//! (the `object_store` crate), chosen by configuration.
//!
//! Keys are content addresses sharded by hash prefix: `ab/cd/abcd…` for the original and
//! `ab/cd/abcd….thumb.jpg` for its thumbnail. On disk every write goes to a temporary file that
//! is renamed into place, so a crash never leaves half a photo under its final name; S3 writes
//! are atomic by nature.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, PutPayload};

use super::store_errors::{OperationLabels, StoreErrors};

/// Which photo store to use.
#[derive(Clone, PartialEq, Eq)]
pub enum PhotoStoreConfig {
    /// A directory on local disk.
    Disk(PathBuf),
    /// An S3-compatible bucket.
    S3 {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
        region: String,
        access_key_id: String,
        secret_access_key: String,
    },
}

impl std::fmt::Debug for PhotoStoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl PhotoStoreConfig {
    /// `file:///path`, a plain path, or `s3://bucket/prefix`. S3 settings come from
    /// `AWS_ENDPOINT_URL` (for non-AWS servers), `AWS_REGION`, `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`, read by the caller and passed in `env`.
    pub fn parse(url: &str, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            anyhow::ensure!(
                !bucket.is_empty(),
                "the S3 photo store URL names no bucket: {url}"
            );
            let required = |name: &str| {
                env(name).with_context(|| format!("an s3:// photo store needs {name}"))
            };
            Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
                endpoint: env("AWS_ENDPOINT_URL"),
                region: env("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
                access_key_id: required("AWS_ACCESS_KEY_ID")?,
                secret_access_key: required("AWS_SECRET_ACCESS_KEY")?,
            })
        } else if let Some(path) = url.strip_prefix("file://") {
            Ok(Self::Disk(PathBuf::from(path)))
        } else if url.contains("://") {
            anyhow::bail!("unsupported photo store URL {url}: use a path, file:// or s3://")
        } else {
            Ok(Self::Disk(PathBuf::from(url)))
        }
    }

    /// For logs: no credentials.
    pub fn describe(&self) -> String {
        match self {
            PhotoStoreConfig::Disk(path) => format!("file://{}", path.display()),
            PhotoStoreConfig::S3 {
                bucket,
                prefix,
                endpoint,
                ..
            } => {
                format!(
                    "s3://{bucket}/{prefix} ({})",
                    endpoint.as_deref().unwrap_or("AWS")
                )
            }
        }
    }
}

#[derive(Clone)]
pub struct PhotoStore {
    inner: Arc<dyn ObjectStore>,
    prefix: Option<Path>,
    /// Shared by every clone; `/metrics` reports it.
    errors: StoreErrors,
}

/// A stored object's variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Original,
    Thumbnail,
}

impl PhotoStore {
    pub fn open(config: &PhotoStoreConfig) -> anyhow::Result<Self> {
        match config {
            PhotoStoreConfig::Disk(dir) => {
                // Photos show people and their homes: private to the server's user (files in it
                // are created under the process's umask, see `files`).
                crate::files::create_private_dir(dir)
                    .with_context(|| format!("creating the photo directory {}", dir.display()))?;
                crate::files::make_private(dir);
                let store = LocalFileSystem::new_with_prefix(dir)
                    .with_context(|| format!("opening the photo directory {}", dir.display()))?;
                Ok(Self {
                    inner: Arc::new(store),
                    prefix: None,
                    errors: StoreErrors::default(),
                })
            }
            PhotoStoreConfig::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
            } => {
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_access_key_id(access_key_id)
                    .with_secret_access_key(secret_access_key)
                    .with_client_options(
                        ClientOptions::new()
                            .with_timeout(Duration::from_secs(60))
                            .with_connect_timeout(Duration::from_secs(5))
                            .with_allow_http(
                                endpoint
                                    .as_deref()
                                    .is_some_and(|e| e.starts_with("http://")),
                            ),
                    );
                if let Some(endpoint) = endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                let store = builder.build().context("configuring the S3 photo store")?;
                Ok(Self {
                    inner: Arc::new(store),
                    prefix: (!prefix.is_empty()).then(|| Path::from(prefix.as_str())),
                    errors: StoreErrors::default(),
                })
            }
        }
    }

    fn key(&self, sha256: &str, variant: Variant) -> Path {
        let name = match variant {
            Variant::Original => sha256.to_owned(),
            Variant::Thumbnail => format!("{sha256}.thumb.jpg"),
        };
        let parts = [&sha256[..2], &sha256[2..4], name.as_str()];
        match &self.prefix {
            Some(prefix) => parts.iter().fold(prefix.clone(), |p, part| p.child(*part)),
            None => Path::from_iter(parts),
        }
    }

    /// The store's error counts by operation, for the metrics.
    pub fn errors(&self) -> StoreErrors {
        self.errors.clone()
    }

    fn failed(&self, operation: &'static str) {
        self.errors
            .get_or_create(&OperationLabels { operation })
            .inc();
    }

    pub async fn put(&self, sha256: &str, variant: Variant, bytes: Bytes) -> anyhow::Result<()> {
        self.inner
            .put(&self.key(sha256, variant), PutPayload::from_bytes(bytes))
            .await
            .inspect_err(|_| self.failed("put"))
            .with_context(|| format!("storing photo {sha256}"))?;
        Ok(())
    }

    /// The object's bytes, or `None` when it is not stored.
    pub async fn get(&self, sha256: &str, variant: Variant) -> anyhow::Result<Option<Bytes>> {
        match self.inner.get(&self.key(sha256, variant)).await {
            Ok(found) => Ok(Some(
                found
                    .bytes()
                    .await
                    .inspect_err(|_| self.failed("get"))
                    .with_context(|| format!("reading photo {sha256}"))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => {
                self.failed("get");
                Err(anyhow::Error::new(e).context(format!("reading photo {sha256}")))
            }
        }
    }

    /// Whether the store is reachable (for readiness).
    pub async fn check(&self) -> anyhow::Result<()> {
        match self
            .inner
            .head(&self.key(&"0".repeat(64), Variant::Original))
            .await
        {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => {
                self.failed("check");
                Err(anyhow::Error::new(e).context("reaching the photo store"))
            }
        }
    }
}
