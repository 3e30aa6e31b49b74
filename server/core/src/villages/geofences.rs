//! Village geofences, parsed once per version: a fence changes (an import, a calibration, new
//! fixtures) only with the village's `sync_seq`, so a cached fence is used while the stored
//! stamp still matches, and that one-column read is all a check-in costs.

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
    sync_seq: i64,
}

#[derive(Default)]
pub struct Geofences {
    parsed: RwLock<HashMap<String, (i64, Arc<Geofence>)>>,
}

impl Geofences {
    pub fn get(&self, conn: &mut DbConnection, village: &str) -> ApiResult<Arc<Geofence>> {
        let stamp: i64 = villages::table
            .find(village)
            .select(villages::sync_seq)
            .first(conn)
            .optional()?
            .ok_or_else(|| ApiError::NotFound(format!("村 {village} 不存在")))?;
        if let Some((seen, fence)) = self
            .parsed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(village)
        {
            if *seen == stamp {
                return Ok(fence.clone());
            }
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
            .insert(village.to_owned(), (stored.sync_seq, fence.clone()));
        Ok(fence)
    }
}
