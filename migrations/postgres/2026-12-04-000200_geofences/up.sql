-- Where a village's geofence came from: the fixtures' estimates (surveyed_point, township_seat,
-- county_boundary), the city's own data (imported) or a county reviewer's acceptance of the
-- first secretary's check-ins (field_calibrated). `position_source` keeps saying how the
-- fixtures placed the village; the fixture loader leaves imported and field-calibrated fences
-- (and their positions) alone, so a newer binary's fixtures never undo them.
ALTER TABLE villages ADD COLUMN geofence_provenance TEXT NOT NULL DEFAULT 'township_seat'
    CHECK (geofence_provenance IN ('surveyed_point', 'township_seat', 'county_boundary', 'field_calibrated', 'imported'));
UPDATE villages SET geofence_provenance = CASE position_source
    WHEN 'surveyed_point' THEN 'surveyed_point'
    WHEN 'county_area' THEN 'county_boundary'
    ELSE 'township_seat' END;
