//! Village geofences, parsed once per process: they change only with the fixtures, which are
//! loaded at start.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use diesel::prelude::*;

use crate::db::schema::villages;
use crate::db::DbConnection;
use crate::error::{ApiError, ApiResult};
use crate::geography::Geofence;

/// A village's geofence as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = villages, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct StoredFence {
    geofence_kind: String,
    geofence_radius_m: Option<f64>,
    lat: f64,
    lon: f64,
    geofence: String,
}

#[derive(Default)]
pub struct Geofences {
    parsed: RwLock<HashMap<String, Arc<Geofence>>>,
}

impl Geofences {
    pub fn get(&self, conn: &mut DbConnection, village: &str) -> ApiResult<Arc<Geofence>> {
        if let Some(fence) = self
            .parsed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(village)
        {
            return Ok(fence.clone());
        }
        let stored: StoredFence = villages::table
            .find(village)
            .select(StoredFence::as_select())
            .first(conn)
            .optional()?
            .ok_or_else(|| ApiError::NotFound(format!("村 {village} 不存在")))?;
        let fence = Geofence::from_stored(
            &stored.geofence_kind,
            stored.geofence_radius_m,
            stored.lat,
            stored.lon,
            &stored.geofence,
        )
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "village {village} has an unreadable geofence"
            ))
        })?;
        let fence = Arc::new(fence);
        self.parsed
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(village.to_owned(), fence.clone());
        Ok(fence)
    }
}
