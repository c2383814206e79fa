"""GlueContext: reads of tarn's tables as DynamicFrames (from_catalog, with a push-down
predicate on partition keys and bookmarks), and writes staged for tarn to commit."""

import functools
import json

from awsglue import _tarn
from awsglue.dynamicframe import DynamicFrame


class _Reader:
    def __init__(self, glue, frames):
        self._glue = glue
        self._frames = frames

    def from_catalog(
        self,
        database=None,
        table_name=None,
        redshift_tmp_dir="",
        transformation_ctx="",
        push_down_predicate="",
        additional_options=None,
        catalog_id=None,
        name_space=None,
        **kwargs,
    ):
        database = database or name_space
        df = self._glue._read_table(database, table_name, push_down_predicate, transformation_ctx)
        return DynamicFrame(df, self._glue, table_name) if self._frames else df

    def from_options(self, connection_type="s3", connection_options=None, format=None, format_options=None, transformation_ctx="", **kwargs):
        opts = connection_options or {}
        paths = opts.get("paths") or ([opts["path"]] if "path" in opts else [])
        frames = []
        for p in paths:
            addr = self._glue._address_of_path(p)
            frames.append(self._glue._read_table(addr, None, "", transformation_ctx))
        if not frames:
            raise ValueError("from_options needs connection_options {'paths': [...]} inside the lake's zones")
        df = frames[0]
        for f in frames[1:]:
            df = df.unionByName(f, allowMissingColumns=True)
        return DynamicFrame(df, self._glue, "from_options") if self._frames else df


class _Writer:
    def __init__(self, glue):
        self._glue = glue

    def from_catalog(self, frame, database=None, table_name=None, redshift_tmp_dir="", transformation_ctx="", additional_options=None, catalog_id=None, **kwargs):
        return self._glue._write(frame, _tarn.address(database, table_name), (additional_options or {}).get("mode", "append"))

    def from_options(self, frame, connection_type="s3", connection_options=None, format=None, format_options=None, transformation_ctx="", **kwargs):
        opts = connection_options or {}
        return self._glue._write(frame, self._glue._address_of_path(opts.get("path", "")), opts.get("mode", "append"))


class GlueContext:
    def __init__(self, spark_context, **options):
        from pyspark.sql import SparkSession

        self._sc = spark_context
        self.spark_session = SparkSession.builder.getOrCreate()
        self.create_dynamic_frame = _Reader(self, True)
        self.create_data_frame = _Reader(self, False)
        self.write_dynamic_frame = _Writer(self)
        self.write_data_frame = _Writer(self)
        self._bookmarks = False
        self._seen = {}

    def get_logger(self):
        return self._sc._jvm.org.apache.log4j.LogManager.getLogger("tarn.awsglue")

    # What the script cannot see: how tables are found, read and written.
    def _address_of_path(self, path):
        """The table a zone path names: s3://.../DOMAIN/LAYER/TABLE/ under the lake's storage,
        or DOMAIN/LAYER/TABLE."""
        root = _tarn.storage_url()
        rest = path[len(root):] if root and path.startswith(root) else path
        parts = [p for p in rest.strip("/").split("/") if p]
        if len(parts) < 3:
            raise ValueError(
                f"`{path}` names no table: write {root or 'STORAGE'}/DOMAIN/LAYER/TABLE/ (a table of a zone)"
            )
        return ".".join(parts[:3])

    def _read_table(self, database, table_name, predicate, ctx):
        from pyspark.sql import types as T

        addr = _tarn.address(database, table_name) if table_name else database
        files = _tarn.table_files(addr)
        spark = self.spark_session
        keys = [c["name"] for c in files["partition_keys"]]
        fields = [T.StructField(c["name"], _tarn.spark_type(c["type"]), True) for c in files["columns"]]
        fields += [T.StructField(c["name"], _tarn.spark_type(c["type"]), True) for c in files["partition_keys"]]
        schema = T.StructType(fields)
        listed = [(f["uri"], json.dumps(f["partition"])) for f in files["files"]]
        if predicate and keys:
            # The predicate is Spark SQL over the partition keys: Spark itself decides.
            pschema = T.StructType(
                [T.StructField("__uri", T.StringType())]
                + [T.StructField(c["name"], _tarn.spark_type(c["type"]), True) for c in files["partition_keys"]]
            )
            rows = []
            for f in files["files"]:
                values = []
                for c in files["partition_keys"]:
                    v = f["partition"].get(c["name"])
                    values.append(None if v is None else _cast_text(v, pschema[c["name"]].dataType))
                rows.append([f["uri"]] + values)
            kept = {r["__uri"] for r in spark.createDataFrame(rows, pschema).filter(predicate).select("__uri").collect()}
            listed = [x for x in listed if x[0] in kept]
        if ctx and self._bookmarks:
            seen = set(_tarn.bookmarks().get(ctx, []))
            listed = [x for x in listed if x[0] not in seen]
            self._seen.setdefault(ctx, set()).update(x[0] for x in listed)
        types = [(c["name"], c["type"]) for c in files["columns"] + files["partition_keys"]]
        p = files["parameters"]
        csv = {"delimiter": p.get("delimiter"), "header": p.get("header"), "null_markers": p.get("null_markers")}
        read = functools.partial(
            _tarn.read_files, _tarn.store_options(), files["format"], csv, types, set(keys)
        )
        fschema = T.StructType([T.StructField("uri", T.StringType()), T.StructField("partition", T.StringType())])
        slices = max(1, min(len(listed), spark.sparkContext.defaultParallelism * 2))
        paths = spark.createDataFrame(listed, fschema).repartition(slices) if listed else spark.createDataFrame([], fschema)
        return paths.mapInArrow(read, schema)

    def _write(self, frame, addr, mode):
        from pyspark.sql import types as T

        df = frame.toDF() if isinstance(frame, DynamicFrame) else frame
        url, path = _tarn.next_staging()
        write = functools.partial(_tarn.write_parts, _tarn.store_options(), url)
        out = T.StructType([T.StructField("name", T.StringType()), T.StructField("rows", T.LongType())])
        written = df.mapInArrow(write, out).collect()
        rows = sum(r["rows"] for r in written)
        _tarn.record({"kind": "write", "table": addr, "staged": path, "mode": mode, "files": len(written), "rows": rows})
        return frame


def _cast_text(text, data_type):
    from pyspark.sql import types as T

    if isinstance(data_type, (T.IntegerType, T.LongType, T.ShortType, T.ByteType)):
        return int(text)
    if isinstance(data_type, (T.DoubleType, T.FloatType)):
        return float(text)
    if isinstance(data_type, T.BooleanType):
        return text.lower() == "true"
    if isinstance(data_type, T.DateType):
        import datetime

        return datetime.date.fromisoformat(text)
    return text
