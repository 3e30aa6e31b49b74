ALTER TABLE villages DROP COLUMN geofence_provenance;
