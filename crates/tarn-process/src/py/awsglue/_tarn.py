"""The bridge to tarn: which files a table has (`tarn table files`), where a job stages what
it writes, the manifest tarn commits from, and reading and writing objects of the lake's
store from Spark's Python workers (local files, or S3 through boto3 with the credentials the
driver hands its tasks; never logged)."""

import io
import json
import os
import subprocess
import uuid


def env(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(
            f"{name} is not set: tarn's awsglue runs inside a tarn pipeline step (a `glue` step "
            "with glue_version: glueetl, or a `spark` step)"
        )
    return value


def bookmark_option():
    return os.environ.get("TARN_GLUE_BOOKMARK_OPTION", "job-bookmark-disable")


def address(database, table_name):
    """`domain.layer.table` of Glue's `database` (DOMAIN_LAYER) and table."""
    if "." in database:
        return f"{database}.{table_name}"
    domain, sep, layer = database.rpartition("_")
    if not sep:
        raise ValueError(f"database `{database}` is not a tarn zone (DOMAIN_LAYER, as Glue's API lists)")
    return f"{domain}.{layer}.{table_name.lower()}"


def table_files(addr):
    """What `tarn table files ADDR --format json` answers."""
    cmd = [env("TARN_BIN"), "--dir", env("TARN_DIR"), "table", "files", addr, "--format", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"tarn could not resolve table {addr}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def store_options():
    """How workers reach the lake's store (credentials travel inside the task, not in logs)."""
    return {
        "endpoint": os.environ.get("TARN_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL") or None,
        "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        "key": os.environ.get("AWS_ACCESS_KEY_ID"),
        "secret": os.environ.get("AWS_SECRET_ACCESS_KEY"),
        "token": os.environ.get("AWS_SESSION_TOKEN"),
    }


def _s3(opts):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=opts["endpoint"],
        region_name=opts["region"],
        aws_access_key_id=opts["key"],
        aws_secret_access_key=opts["secret"],
        aws_session_token=opts["token"],
    )


def _split_s3(uri):
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def _local(uri):
    from urllib.parse import unquote

    return unquote(uri[len("file://"):])


def read_bytes(opts, uri):
    if uri.startswith("file://"):
        with open(_local(uri), "rb") as f:
            return f.read()
    if uri.startswith("s3://"):
        bucket, key = _split_s3(uri)
        return _s3(opts).get_object(Bucket=bucket, Key=key)["Body"].read()
    raise ValueError(f"tarn's awsglue reads file:// and s3:// objects, not {uri}")


def write_bytes(opts, uri, data):
    if uri.startswith("file://"):
        path = _local(uri)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return
    if uri.startswith("s3://"):
        bucket, key = _split_s3(uri)
        _s3(opts).put_object(Bucket=bucket, Key=key, Body=data)
        return
    raise ValueError(f"tarn's awsglue writes file:// and s3:// objects, not {uri}")


_writes = [0]


def next_staging():
    """A new staged folder of this attempt: (its URL, its path in the lake's store)."""
    _writes[0] += 1
    n = _writes[0]
    return f"{env('TARN_GLUE_STAGING').rstrip('/')}/{n}", f"{env('TARN_GLUE_STAGING_PATH').strip('/')}/{n}"


def record(entry):
    """Appends one line to the manifest tarn commits from when the script ends."""
    with open(env("TARN_GLUE_MANIFEST"), "a") as f:
        f.write(json.dumps(entry) + "\n")


def bookmarks():
    """What bookmarked reads saw in the job's earlier runs: {transformation_ctx: [uri, ...]}."""
    path = os.environ.get("TARN_GLUE_BOOKMARKS")
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def storage_url():
    return os.environ.get("TARN_STORAGE_URL", "").rstrip("/")


# Hive type names (as the catalog keeps them) to Spark's and Arrow's.
def spark_type(name):
    from pyspark.sql import types as T

    name = name.strip().lower()
    simple = {
        "string": T.StringType(),
        "varchar": T.StringType(),
        "char": T.StringType(),
        "boolean": T.BooleanType(),
        "tinyint": T.ByteType(),
        "smallint": T.ShortType(),
        "int": T.IntegerType(),
        "integer": T.IntegerType(),
        "bigint": T.LongType(),
        "long": T.LongType(),
        "float": T.FloatType(),
        "double": T.DoubleType(),
        "date": T.DateType(),
        "timestamp": T.TimestampType(),
        "binary": T.BinaryType(),
    }
    if name in simple:
        return simple[name]
    if name.startswith("decimal("):
        p, s = name[len("decimal("):-1].split(",")
        return T.DecimalType(int(p), int(s))
    if name.startswith("array<") and name.endswith(">"):
        return T.ArrayType(spark_type(name[len("array<"):-1]))
    return T.StringType()


def arrow_type(name):
    import pyarrow as pa

    name = name.strip().lower()
    simple = {
        "string": pa.string(),
        "varchar": pa.string(),
        "char": pa.string(),
        "boolean": pa.bool_(),
        "tinyint": pa.int8(),
        "smallint": pa.int16(),
        "int": pa.int32(),
        "integer": pa.int32(),
        "bigint": pa.int64(),
        "long": pa.int64(),
        "float": pa.float32(),
        "double": pa.float64(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "binary": pa.binary(),
    }
    if name in simple:
        return simple[name]
    if name.startswith("decimal("):
        p, s = name[len("decimal("):-1].split(",")
        return pa.decimal128(int(p), int(s))
    if name.startswith("array<") and name.endswith(">"):
        return pa.list_(arrow_type(name[len("array<"):-1]))
    return pa.string()


def read_files(opts, fmt, csv, types, partition_keys, batches):
    """A task's part of a table: each file of the batch read whole and typed (executors run it)."""
    import pyarrow as pa

    schema = pa.schema([pa.field(n, arrow_type(t)) for n, t in types])
    for b in batches:
        uris = b.column("uri").to_pylist()
        parts = b.column("partition").to_pylist()
        for uri, part in zip(uris, parts):
            t = _read_one(opts, fmt, csv, schema, uri)
            part = json.loads(part) if part else {}
            columns = []
            for field in schema:
                if field.name in partition_keys:
                    value = part.get(field.name)
                    arr = pa.array([value] * t.num_rows, type=pa.string())
                    columns.append(arr.cast(field.type))
                elif field.name in t.column_names:
                    columns.append(_cast(t.column(field.name), field.type))
                else:
                    columns.append(pa.nulls(t.num_rows, type=field.type))
            out = pa.Table.from_arrays(columns, schema=schema)
            for rb in out.to_batches(max_chunksize=65536):
                yield rb


def _cast(column, to):
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(to) and pa.types.is_string(column.type):
        try:
            return pc.cast(column, to)
        except pa.ArrowInvalid:
            naive = pc.cast(column, pa.timestamp(to.unit))
            return pc.assume_timezone(naive, to.tz or "UTC")
    return column.cast(to)


def _read_one(opts, fmt, csv, schema, uri):
    import gzip

    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson
    import pyarrow.parquet as pq

    data = read_bytes(opts, uri)
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if fmt in ("parquet", "delta"):
        return pq.read_table(io.BytesIO(data))
    if fmt == "csv":
        delimiter = csv.get("delimiter") or ","
        header = (csv.get("header") or "true") == "true"
        read = pcsv.ReadOptions(autogenerate_column_names=not header)
        types = {}
        for f in schema:
            t = f.type
            # Timestamps are read as text, then parsed with or without their zone (UTC).
            types[f.name] = pa.string() if pa.types.is_timestamp(t) else t
        nulls = (csv.get("null_markers") or ",NA,N/A,NULL,null").split(",")
        convert = pcsv.ConvertOptions(column_types=types, strings_can_be_null=True, null_values=nulls)
        t = pcsv.read_csv(
            io.BytesIO(data), read_options=read, parse_options=pcsv.ParseOptions(delimiter=delimiter), convert_options=convert
        )
        if not header:
            t = t.rename_columns([f.name for f in schema][: t.num_columns])
        return t
    if fmt == "json":
        return pjson.read_json(io.BytesIO(data))
    raise ValueError(f"tarn's awsglue cannot read {fmt} tables")


def write_parts(opts, staging_url, batches):
    """A task's rows as one Parquet file in the staged folder; answers its name and row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    batches = list(batches)
    rows = sum(b.num_rows for b in batches)
    if rows == 0:
        return
    table = pa.Table.from_batches(batches)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    name = f"part-{uuid.uuid4().hex}.parquet"
    write_bytes(opts, f"{staging_url}/{name}", buf.getvalue())
    yield pa.RecordBatch.from_pydict({"name": [name], "rows": [rows]})
