-- The Delta version a table's catalog facts (row count, loads) were last read from, so a
-- writer that read an older version never overwrites a newer one's facts.
ALTER TABLE catalog_tables ADD COLUMN delta_version BIGINT;
