# A Glue ETL script as AWS documents them: read a catalog table with a push-down predicate,
# ApplyMapping, Filter, Join with a second table, write to the trusted layer.
import sys

from awsglue.context import GlueContext
from awsglue.job import Job
from awsglue.transforms import ApplyMapping, DropFields, Filter, Join, RenameField
from awsglue.utils import getResolvedOptions
from pyspark.context import SparkContext

args = getResolvedOptions(sys.argv, ["JOB_NAME", "months"])
sc = SparkContext()
glueContext = GlueContext(sc)
job = Job(glueContext)
job.init(args["JOB_NAME"], args)

flights = glueContext.create_dynamic_frame.from_catalog(
    database="flights_raw",
    table_name="flights_hive",
    push_down_predicate=f"month in ({args['months']})",
    transformation_ctx="flights",
)
mapped = ApplyMapping.apply(
    frame=flights,
    mappings=[
        ("year", "bigint", "year", "int"),
        ("month", "bigint", "month", "int"),
        ("day", "bigint", "day", "int"),
        ("carrier", "string", "carrier", "string"),
        ("flight", "bigint", "flight", "int"),
        ("origin", "string", "origin", "string"),
        ("dest", "string", "dest", "string"),
        ("dep_delay", "double", "dep_delay", "double"),
        ("distance", "bigint", "distance", "double"),
    ],
    transformation_ctx="mapped",
)
late = Filter.apply(frame=mapped, f=lambda r: r["dep_delay"] is not None and r["dep_delay"] > 60)
airlines = glueContext.create_dynamic_frame.from_catalog(database="flights_raw", table_name="airlines")
airlines = RenameField.apply(frame=airlines, old_name="carrier", new_name="airline")
joined = Join.apply(frame1=late, frame2=airlines, keys1=["carrier"], keys2=["airline"])
out = DropFields.apply(frame=joined, paths=["airline"])
glueContext.write_dynamic_frame.from_catalog(frame=out, database="flights_trusted", table_name="late_flights")
job.commit()
