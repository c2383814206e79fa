"""Reads a Delta table written by tarn with the Python `deltalake` and `duckdb` packages, each
on its own, and prints what each saw as JSON: rows, column types, sum of `distance`.

deltalake reads the table through its own Delta implementation. duckdb reads the Delta log
itself (the JSON commits: files added minus files removed) and then the Parquet data files,
so it checks the files tarn writes without going through any Delta library.

usage: python3 tests/interop/read_delta.py TABLE_PATH
"""
import json
import sys

import deltalake
import duckdb

path = sys.argv[1].rstrip("/")

dt = deltalake.DeltaTable(path)
table = dt.to_pyarrow_table()
by_deltalake = {
    "version": dt.version(),
    "rows": table.num_rows,
    "types": {f.name: str(f.type) for f in table.schema},
    "sum_distance": float(table.column("distance").to_pandas().sum()),
}

con = duckdb.connect()
con.execute(
    f"CREATE VIEW log AS SELECT * FROM read_ndjson_auto('{path}/_delta_log/*.json', union_by_name = true)"
)
actions = {r[0] for r in con.execute("DESCRIBE log").fetchall()}
removed = (
    'EXCEPT SELECT "remove".path FROM log WHERE "remove" IS NOT NULL' if "remove" in actions else ""
)
live = con.execute(f'SELECT "add".path FROM log WHERE "add" IS NOT NULL {removed}').fetchall()
files = [f"{path}/{p}" for (p,) in live]
rows, distance = con.execute("SELECT count(*), sum(distance) FROM read_parquet(?)", [files]).fetchone()
types = {r[0]: r[1] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [files]).fetchall()}
by_duckdb = {"rows": rows, "sum_distance": float(distance), "types": types}

print(json.dumps({"deltalake": by_deltalake, "duckdb": by_duckdb}))
