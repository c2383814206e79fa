"""Reads a Delta table written by tarn with the Python `deltalake` and `duckdb` packages, each
on its own, and prints what each saw as JSON: rows, column types, sum of `distance`.

deltalake reads the table through its own Delta implementation. duckdb reads the Delta log
itself (the JSON commits: files added minus files removed) and then the Parquet data files,
so it checks the files tarn writes without going through any Delta library.

A table on S3 (`s3://bucket/prefix`) is read by deltalake from the bucket (endpoint from
TARN_TEST_S3, credentials from the AWS_* variables); duckdb, which has no S3 support without
downloading an extension, reads a copy of the table's objects fetched with boto3.

usage: python3 tests/interop/read_delta.py TABLE_PATH_OR_S3_URL
"""
import json
import os
import sys
import tempfile

import deltalake
import duckdb

path = sys.argv[1].rstrip("/")
options = None
if path.startswith("s3://"):
    endpoint = os.environ["TARN_TEST_S3"]
    options = {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"}

dt = deltalake.DeltaTable(path, storage_options=options)
table = dt.to_pyarrow_table()
by_deltalake = {
    "version": dt.version(),
    "rows": table.num_rows,
    "types": {f.name: str(f.type) for f in table.schema},
    "sum_distance": float(table.column("distance").to_pandas().sum()),
}

if options is not None:
    import boto3

    bucket, _, prefix = path[len("s3://"):].partition("/")
    s3 = boto3.client("s3", endpoint_url=options["AWS_ENDPOINT_URL"], region_name="us-east-1")
    local = tempfile.mkdtemp()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            target = os.path.join(local, obj["Key"][len(prefix) + 1:])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            s3.download_file(bucket, obj["Key"], target)
    path = local

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
