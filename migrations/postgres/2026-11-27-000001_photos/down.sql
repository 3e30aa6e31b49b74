DROP TABLE photo_links;
DROP TABLE photo_uploads;
DROP TABLE photos;
