-- Five analytical queries over the flights table; {t} is the table's name in each engine.
-- q1: delays by carrier
SELECT carrier, count(*) AS flights, avg(dep_delay) AS avg_dep, avg(arr_delay) AS avg_arr FROM {t} GROUP BY carrier ORDER BY avg_dep DESC;
-- q2: busiest destinations and their delays
SELECT dest, count(*) AS flights, avg(arr_delay) AS avg_arr, max(distance) AS distance FROM {t} GROUP BY dest ORDER BY flights DESC LIMIT 10;
-- q3: on-time share per origin and month
SELECT origin, month, avg(CASE WHEN arr_delay <= 15 THEN 1.0 ELSE 0.0 END) AS on_time, count(*) AS flights FROM {t} GROUP BY origin, month ORDER BY origin, month;
-- q4: the worst days
SELECT year, month, day, avg(dep_delay) AS avg_dep, count(*) AS flights FROM {t} GROUP BY year, month, day ORDER BY avg_dep DESC LIMIT 10;
-- q5: each carrier's busiest routes (window over an aggregate)
SELECT * FROM (SELECT carrier, origin, dest, count(*) AS flights, rank() OVER (PARTITION BY carrier ORDER BY count(*) DESC) AS r FROM {t} GROUP BY carrier, origin, dest) ranked WHERE r <= 3 ORDER BY carrier, r, origin, dest;
