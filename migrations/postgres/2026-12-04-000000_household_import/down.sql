DROP TABLE imported_households;
DROP TABLE household_imports;
