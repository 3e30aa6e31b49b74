//! Village geofences, parsed once per process: they change only with the fixtures, which are
//! loaded at start.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use diesel::prelude::*;

use crate::db::schema::villages;
use crate::db::DbConnection;
use crate::error::{ApiError, ApiResult};
use crate::geography::Geofence;

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
        let (kind, radius, lat, lon, geojson): (String, Option<f64>, f64, f64, String) =
            villages::table
                .find(village)
                .select((
                    villages::geofence_kind,
                    villages::geofence_radius_m,
                    villages::lat,
                    villages::lon,
                    villages::geofence,
                ))
                .first(conn)
                .optional()?
                .ok_or_else(|| ApiError::NotFound(format!("村 {village} 不存在")))?;
        let fence = Geofence::from_stored(&kind, radius, lat, lon, &geojson).ok_or_else(|| {
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
