"""tarn's awsglue: AWS Glue's ETL library (GlueContext, DynamicFrame, transforms, Job,
getResolvedOptions) over plain PySpark, reading and writing through tarn's catalog.

A Glue ETL script runs unchanged as a `glue` step with `glue_version: glueetl` (or a `spark`
step). Reads see one Delta version of each table (its snapshot's files); writes are staged as
Parquet in the lake's store and committed by tarn into the table under its data contract,
once per execution and step, after the script ends. Spark reads and writes no table itself:
its Python workers do, with pyarrow and boto3, so Spark needs neither Delta's jars nor S3A.
"""

from awsglue.dynamicframe import DynamicFrame  # noqa: F401
