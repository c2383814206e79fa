-- A run's metric points are found through the primary key alone (run, key, then time and
-- step): the second index on (run, key, step) doubled the index pages every logged point
-- writes, and a metric's history is sorted by step from the key's rows just as fast.
DROP INDEX ml_metrics_by_run;
