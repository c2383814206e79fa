"""Runs the queries of bench/queries.sql in DuckDB over a Delta table written by tarn (read with
the Python `deltalake` package) and an airlines CSV, and prints each query's rows as JSON: what
tarn's answers to the same queries are compared with.

`{t}` in a query is the Delta table, `{airlines}` the CSV. Floats are printed as they are; the
caller compares them to 9 significant digits.

usage: python3 tests/interop/bench_queries.py TABLE_PATH_OR_S3_URL AIRLINES.csv QUERIES.sql
"""
import json
import os
import sys

import deltalake
import duckdb

path, airlines, queries = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
options = None
if path.startswith("s3://"):
    options = {"AWS_ENDPOINT_URL": os.environ["TARN_TEST_S3"], "AWS_ALLOW_HTTP": "true",
               "AWS_REGION": "us-east-1"}
flights = deltalake.DeltaTable(path, storage_options=options).to_pyarrow_table()

con = duckdb.connect()
con.register("flights", flights)
con.execute(f"CREATE TABLE airlines AS SELECT * FROM read_csv('{airlines}', header = true)")
answers = []
for line in open(queries):
    line = line.strip()
    if not line or line.startswith("--"):
        continue
    sql = line.rstrip(";").replace("{t}", "flights").replace("{airlines}", "airlines")
    answers.append([list(r) for r in con.execute(sql).fetchall()])
print(json.dumps(answers))
