DROP TABLE merge_moves;
DROP TABLE duplicate_pairs;
