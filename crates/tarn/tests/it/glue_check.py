"""tarn's Glue API as boto3 and the AWS SDK for pandas read it, beside moto's Glue (the reference
for answer shapes and for the partition filter).

usage: glue_check.py TARN_URL STORAGE_URL SUFFIX
Prints one JSON line: what was read, for the Rust test to check against tarn itself.
"""

import json
import os
import sys
import urllib.error
import urllib.request

import boto3
import botocore.exceptions

url, storage, suffix = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3]
s3_url = os.environ["TARN_TEST_S3"]
tarn = boto3.client("glue", endpoint_url=url, region_name="us-east-1")
moto = boto3.client("glue", endpoint_url=s3_url, region_name="us-east-1")
out = {}


def error_of(call, **kw):
    try:
        call(**kw)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"]["Message"]
    raise AssertionError(f"{call.__name__} {kw} was accepted")


def raw(target, body):
    """A request as a hostile client sends it: no SDK, any body."""
    req = urllib.request.Request(
        url + "/",
        data=body if isinstance(body, bytes) else body.encode(),
        headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# --- databases: one per zone, paged as Glue pages them
dbs = [d for p in tarn.get_paginator("get_databases").paginate() for d in p["DatabaseList"]]
names = [d["Name"] for d in dbs]
assert {"flights_raw", "flights_trusted", "flights_service"} <= set(names), names
raw_db = next(d for d in dbs if d["Name"] == "flights_raw")
assert raw_db["LocationUri"].rstrip("/") == f"{storage}/flights/raw", raw_db
out["databases"] = names


# --- the crawled and loaded tables, as Glue describes them
def tables(db, **kw):
    return {
        t["Name"]: t
        for p in tarn.get_paginator("get_tables").paginate(DatabaseName=db, **kw)
        for t in p["TableList"]
    }


raw_tables = tables("flights_raw")
airports = raw_tables["airports"]
sd = airports["StorageDescriptor"]
assert sd["Location"] == f"{storage}/flights/raw/airports/", sd["Location"]
assert airports["Parameters"]["classification"] == "csv"
assert sd["SerdeInfo"]["SerializationLibrary"].endswith("LazySimpleSerDe"), sd
assert sd["SerdeInfo"]["Parameters"]["field.delim"] == ","
assert airports["PartitionKeys"] == []
assert airports["TableType"] == "EXTERNAL_TABLE"
out["airports_columns"] = [[c["Name"], c["Type"]] for c in sd["Columns"]]

planes = raw_tables["planes"]
assert planes["Parameters"]["classification"] == "parquet", planes["Parameters"]
assert "Parquet" in planes["StorageDescriptor"]["InputFormat"]
out["planes_columns"] = [[c["Name"], c["Type"]] for c in planes["StorageDescriptor"]["Columns"]]

weather = raw_tables["weather_hive"]
out["weather_keys"] = [[c["Name"], c["Type"]] for c in weather["PartitionKeys"]]
parts = [
    p
    for page in tarn.get_paginator("get_partitions").paginate(DatabaseName="flights_raw", TableName="weather_hive")
    for p in page["Partitions"]
]
out["weather_partitions"] = sorted(p["Values"] for p in parts)
for p in parts:
    loc = p["StorageDescriptor"]["Location"]
    assert loc.startswith(f"{storage}/flights/raw/weather_hive/year=2013/month="), loc
summer = tarn.get_partitions(DatabaseName="flights_raw", TableName="weather_hive", Expression="month > 6 AND year = 2013")
out["weather_after_june"] = sorted(p["Values"] for p in summer["Partitions"])
one = tarn.get_partition(DatabaseName="flights_raw", TableName="weather_hive", PartitionValues=["2013", "3"])
assert one["Partition"]["Values"] == ["2013", "3"]
batch = tarn.batch_get_partition(
    DatabaseName="flights_raw",
    TableName="weather_hive",
    PartitionsToGet=[{"Values": ["2013", "1"]}, {"Values": ["1999", "1"]}],
)
assert [p["Values"] for p in batch["Partitions"]] == [["2013", "1"]], batch
assert batch["UnprocessedKeys"] == [{"Values": ["1999", "1"]}], batch

airlines = tarn.get_table(DatabaseName="flights_trusted", Name="airlines")["Table"]
assert airlines["Parameters"]["table_type"] == "DELTA", airlines["Parameters"]
assert airlines["Parameters"]["spark.sql.sources.provider"] == "delta"
assert airlines["StorageDescriptor"]["Location"].startswith(f"{storage}/flights/trusted/airlines")
out["airlines_columns"] = [[c["Name"], c["Type"]] for c in airlines["StorageDescriptor"]["Columns"]]
versions = tarn.get_table_versions(DatabaseName="flights_trusted", TableName="airlines")["TableVersions"]
assert [v["VersionId"] for v in versions] == ["1"], versions

found = tarn.search_tables(SearchText="tzone")["TableList"]
assert [t["Name"] for t in found] == ["airports"], [t["Name"] for t in found]
deltas = tarn.search_tables(Filters=[{"Key": "table_type", "Value": "DELTA"}])["TableList"]
assert "airlines" in [t["Name"] for t in deltas]
assert tarn.get_connections()["ConnectionList"] == []
assert tarn.get_user_defined_functions(DatabaseName="flights_raw", Pattern="*")["UserDefinedFunctions"] == []

# --- the AWS SDK for pandas, reading the catalog and then the files straight from S3
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
import awswrangler as wr

wr.config.glue_endpoint_url = url
wr.config.s3_endpoint_url = s3_url
assert "flights_raw" in list(wr.catalog.databases()["Database"])
listed = wr.catalog.tables(database="flights_raw", limit=1000)
assert {"airports", "planes", "weather_hive"} <= set(listed["Table"]), listed
wr_parts = wr.catalog.get_partitions(database="flights_raw", table="weather_hive")
assert len(wr_parts) == len(parts), wr_parts
planes_df = wr.s3.read_parquet_table(database="flights_raw", table="planes")
out["planes_rows"] = len(planes_df)
airports_df = wr.s3.read_csv(wr.catalog.get_table_location(database="flights_raw", table="airports"))
out["airports_rows"] = len(airports_df)

# --- an engine registers a table over files it wrote: tarn sql reads it (the Rust side checks)
airports_input = {
    "Name": "glue_airports",
    "StorageDescriptor": {
        "Columns": [{"Name": n, "Type": t} for n, t in out["airports_columns"]],
        "Location": f"{storage}/flights/raw/airports/",
        "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
        "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        "SerdeInfo": {
            "SerializationLibrary": "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
            "Parameters": {"field.delim": ","},
        },
    },
    "PartitionKeys": [],
    "TableType": "EXTERNAL_TABLE",
    "Parameters": {"classification": "csv", "skip.header.line.count": "1"},
}
tarn.create_table(DatabaseName="flights_raw", TableInput=airports_input)
code, _ = error_of(tarn.create_table, DatabaseName="flights_raw", TableInput=airports_input)
assert code == "AlreadyExistsException", code

# The same table in moto's Glue: the fields both answer agree.
moto_db = f"flights_raw_{suffix}"
moto.create_database(DatabaseInput={"Name": moto_db})
moto.create_table(DatabaseName=moto_db, TableInput=airports_input)
ours = tarn.get_table(DatabaseName="flights_raw", Name="glue_airports")["Table"]
theirs = moto.get_table(DatabaseName=moto_db, Name="glue_airports")["Table"]
missing = set(theirs) - set(ours)
assert not missing, f"moto answers fields tarn does not: {missing}"
for field in ["Name", "PartitionKeys", "TableType", "VersionId"]:
    assert ours[field] == theirs[field], (field, ours[field], theirs[field])
for field in ["Columns", "Location", "InputFormat", "OutputFormat", "SerdeInfo"]:
    assert ours["StorageDescriptor"][field] == theirs["StorageDescriptor"][field], (field, ours, theirs)
for k, v in theirs["Parameters"].items():
    assert ours["Parameters"][k] == v, (k, ours["Parameters"], theirs["Parameters"])
assert type(ours["CreateTime"]) is type(theirs["CreateTime"])

# --- 250 tables and 2,000 partitions, each returned exactly once through the paginators
for i in range(250):
    tarn.create_table(
        DatabaseName="flights_service",
        TableInput={
            "Name": f"t{i:03}",
            "StorageDescriptor": {"Columns": [{"Name": "x", "Type": "bigint"}], "Location": f"{storage}/flights/service/t{i:03}/"},
            "Parameters": {"classification": "parquet"},
        },
    )
paged = [
    t["Name"]
    for p in tarn.get_paginator("get_tables").paginate(DatabaseName="flights_service", PaginationConfig={"PageSize": 100})
    for t in p["TableList"]
]
assert sorted(paged) == [f"t{i:03}" for i in range(250)], (len(paged), len(set(paged)))
assert [t["Name"] for t in tarn.get_tables(DatabaseName="flights_service", Expression="t00*")["TableList"]] == [
    f"t00{i}" for i in range(10)
]

parts_input = {
    "Name": "events",
    "StorageDescriptor": {"Columns": [{"Name": "v", "Type": "double"}], "Location": f"{storage}/flights/service/events/"},
    "PartitionKeys": [{"Name": "year", "Type": "int"}, {"Name": "code", "Type": "string"}],
    "Parameters": {"classification": "parquet"},
}
tarn.create_table(DatabaseName="flights_service", TableInput=parts_input)
moto.create_table(DatabaseName=moto_db, TableInput=parts_input)
values = [[str(2000 + i // 100), f"c{i % 100:02}"] for i in range(2000)]
for start in range(0, 2000, 100):
    batch = [
        {"Values": v, "StorageDescriptor": {"Location": f"{storage}/flights/service/events/year={v[0]}/code={v[1]}/"}}
        for v in values[start : start + 100]
    ]
    assert "Errors" not in tarn.batch_create_partition(DatabaseName="flights_service", TableName="events", PartitionInputList=batch)
    assert "Errors" not in moto.batch_create_partition(DatabaseName=moto_db, TableName="events", PartitionInputList=batch)
for size in [None, 300]:
    config = {"PageSize": size} if size else {}
    got = [
        tuple(p["Values"])
        for page in tarn.get_paginator("get_partitions").paginate(
            DatabaseName="flights_service", TableName="events", PaginationConfig=config
        )
        for p in page["Partitions"]
    ]
    assert len(got) == 2000 and len(set(got)) == 2000, (size, len(got), len(set(got)))
segments = [
    tuple(p["Values"])
    for n in range(4)
    for page in tarn.get_paginator("get_partitions").paginate(
        DatabaseName="flights_service", TableName="events", Segment={"SegmentNumber": n, "TotalSegments": 4}
    )
    for p in page["Partitions"]
]
assert len(segments) == 2000 and len(set(segments)) == 2000, len(segments)
again = tarn.batch_create_partition(DatabaseName="flights_service", TableName="events", PartitionInputList=batch[:2])
assert [e["ErrorDetail"]["ErrorCode"] for e in again["Errors"]] == ["AlreadyExistsException"] * 2, again

# The partition filter answers what moto's does, expression by expression.
expressions = [
    "year = 2003",
    "year > 2015 AND code = 'c07'",
    "year BETWEEN 2001 AND 2002 AND code IN ('c01', 'c99')",
    "code LIKE 'c1%' AND year < 2001",
    "(year = 2000 OR year = 2019) AND code < 'c02'",
    "year <> 2000 AND code = 'c00' AND year NOT IN (2001, 2002)",
    "code NOT LIKE 'c_0' AND year = 2010",
    "year NOT BETWEEN 2001 AND 2018 AND code = 'c50'",
]
compared = {}
for expr in expressions:
    def filtered(client, db):
        return sorted(
            tuple(p["Values"])
            for page in client.get_paginator("get_partitions").paginate(DatabaseName=db, TableName="events", Expression=expr)
            for p in page["Partitions"]
        )

    ours, theirs = filtered(tarn, "flights_service"), filtered(moto, moto_db)
    assert ours == theirs, (expr, len(ours), len(theirs))
    assert ours, expr
    compared[expr] = len(ours)
out["expressions"] = compared
ours_p = tarn.get_partition(DatabaseName="flights_service", TableName="events", PartitionValues=["2000", "c00"])["Partition"]
theirs_p = moto.get_partition(DatabaseName=moto_db, TableName="events", PartitionValues=["2000", "c00"])["Partition"]
assert set(theirs_p) - set(ours_p) == set(), (set(theirs_p) - set(ours_p))
assert ours_p["StorageDescriptor"]["Location"] == theirs_p["StorageDescriptor"]["Location"]
tarn.delete_partition(DatabaseName="flights_service", TableName="events", PartitionValues=["2000", "c00"])
code, _ = error_of(tarn.get_partition, DatabaseName="flights_service", TableName="events", PartitionValues=["2000", "c00"])
assert code == "EntityNotFoundException", code

# --- bad input: a clear error, nothing changed
status, body = raw("AWSGlue.GetTables", b'{"DatabaseName": ')
assert status == 400 and body["__type"] == "SerializationException", body
status, body = raw("AWSGlue.DropEverything", "{}")
assert body["__type"] == "UnknownOperationException", body
code, message = error_of(tarn.get_tables, DatabaseName="flights_raw", MaxResults=100000)
assert code == "ValidationException" and "100000" in message, message
code, _ = error_of(tarn.get_table, DatabaseName="flights_raw", Name="nothing_here")
assert code == "EntityNotFoundException"
code, _ = error_of(tarn.get_tables, DatabaseName="nowhere_raw")
assert code == "EntityNotFoundException"
code, message = error_of(tarn.get_partitions, DatabaseName="flights_raw", TableName="weather_hive", Expression="month = ")
assert code == "InvalidInputException" and "expected a value" in message, message
hostile = {
    "file:///etc/": "outside the zone",
    f"{storage}/flights/raw/../trusted/airlines/": "..",
    f"{storage}/flights/trusted/airlines/": "outside the zone",
    f"{storage}/flights/raw/%2e%2e/trusted/": "..",
}
refusals = {}
for location, says in hostile.items():
    bad = dict(airports_input, Name="hostile")
    bad["StorageDescriptor"] = dict(airports_input["StorageDescriptor"], Location=location)
    code, message = error_of(tarn.create_table, DatabaseName="flights_raw", TableInput=bad)
    assert code == "InvalidInputException" and says in message, (location, code, message)
    refusals[location] = message
for name in ["../x", "a b", "x" * 300, "drop;table"]:
    bad = dict(airports_input, Name=name)
    code, message = error_of(tarn.create_table, DatabaseName="flights_raw", TableInput=bad)
    assert code == "InvalidInputException", (name, code, message)
code, _ = error_of(tarn.get_table, DatabaseName="flights_raw", Name="hostile")
assert code == "EntityNotFoundException"
code, message = error_of(tarn.delete_table, DatabaseName="flights_raw", Name="airports")
assert code == "InvalidInputException" and "crawls and loads" in message, message
out["refusals"] = refusals
print(json.dumps(out))
