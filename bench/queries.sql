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
-- q6: a week of one month (filter on the columns a table is usually partitioned by)
SELECT origin, count(*) AS flights, avg(dep_delay) AS avg_dep FROM {t} WHERE month = 7 AND day BETWEEN 1 AND 7 GROUP BY origin ORDER BY origin;
-- q7: delays by airline name (join with a dimension table)
SELECT a.name, count(*) AS flights, avg(f.arr_delay) AS avg_arr FROM {t} f JOIN {airlines} a ON f.carrier = a.carrier GROUP BY a.name ORDER BY flights DESC, a.name;
-- q8: each day's delay beside its trailing 7-day average (window over a daily aggregate)
SELECT month, day, avg_dep, avg(avg_dep) OVER (ORDER BY month, day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS week_avg FROM (SELECT month, day, avg(dep_delay) AS avg_dep FROM {t} GROUP BY month, day) daily ORDER BY month, day;
-- q9: planes and destinations per carrier (count distinct)
SELECT carrier, count(DISTINCT tailnum) AS planes, count(DISTINCT dest) AS destinations FROM {t} GROUP BY carrier ORDER BY planes DESC, carrier;
-- q10: the 20 longest departure delays (top-N)
SELECT carrier, flight, origin, dest, month, day, dep_delay FROM {t} WHERE dep_delay IS NOT NULL ORDER BY dep_delay DESC, carrier, flight, month, day LIMIT 20;
