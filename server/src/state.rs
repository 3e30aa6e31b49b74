//! The application state every handler and console page reaches: the database, the photo
//! store, the vault, the geofence cache, the keys, the settings and the metrics. It sits below
//! the HTTP layer and above the capabilities, which take its parts, never the whole.

use crate::config::Settings;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::photos::{DecodeBudget, PhotoStore};
use crate::privacy::Vault;
use crate::secrets::Keys;
use crate::villages::geofences::Geofences;

/// What every handler can reach.
pub struct AppState {
    pub db: Db,
    pub photos: PhotoStore,
    /// Decode memory left for photos being decoded now (`photos.decode_budget_bytes`).
    pub decode_budget: DecodeBudget,
    /// Seals and indexes personal data (ID numbers, phones, submissions).
    pub vault: Vault,
    pub geofences: Geofences,
    pub keys: Keys,
    pub settings: Settings,
    /// Shared with the request observer, which has no use for the rest.
    pub metrics: std::sync::Arc<Metrics>,
}

impl crate::checkins::service::Verifier for AppState {
    fn verification(&self) -> crate::checkins::service::Verification<'_> {
        crate::checkins::service::Verification {
            vault: &self.vault,
            geofences: &self.geofences,
            policy: &self.settings.checkins,
        }
    }
}
