DROP TABLE checkins;
