//! The photo store's error counter, by operation: made with the store, which counts into it,
//! and registered by the metrics (which depend on photos, not the other way round).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

/// Errors of the photo store by operation (`put`, `get`, `check`). Made with the store, which
/// counts into it; `metrics::Metrics::new` registers it.
pub type StoreErrors = Family<OperationLabels, Counter>;
