"""DynamicFrame over a Spark DataFrame: the methods Glue ETL scripts call."""


class DynamicFrame:
    def __init__(self, jdf, glue_ctx, name=""):
        # Glue's constructor takes its Java frame; here it is a Spark DataFrame.
        self._df = jdf
        self.glue_ctx = glue_ctx
        self.name = name

    @staticmethod
    def fromDF(dataframe, glue_ctx, name):
        return DynamicFrame(dataframe, glue_ctx, name)

    def toDF(self, options=None):
        return self._df

    def _with(self, df, name=None):
        return DynamicFrame(df, self.glue_ctx, name or self.name)

    def count(self):
        return self._df.count()

    def schema(self):
        return self._df.schema

    def printSchema(self):
        self._df.printSchema()

    def show(self, num_rows=20):
        self._df.show(num_rows)

    def apply_mapping(self, mappings, case_sensitive=False, transformation_ctx="", **kwargs):
        from pyspark.sql import functions as F

        cols = []
        for m in mappings:
            source, _source_type, target, target_type = m
            cols.append(F.col(f"`{source}`").cast(target_type).alias(target))
        return self._with(self._df.select(*cols))

    def select_fields(self, paths, transformation_ctx="", **kwargs):
        return self._with(self._df.select(*[f"`{p}`" for p in paths]))

    def drop_fields(self, paths, transformation_ctx="", **kwargs):
        return self._with(self._df.drop(*paths))

    def rename_field(self, oldName, newName, transformation_ctx="", **kwargs):
        return self._with(self._df.withColumnRenamed(oldName, newName))

    def filter(self, f, transformation_ctx="", **kwargs):
        """Keeps the records `f` (given each record as a dict) says true of."""
        df = self._df
        rdd = df.rdd.filter(lambda row: bool(f(row.asDict(recursive=True))))
        return self._with(df.sparkSession.createDataFrame(rdd, df.schema))

    def map(self, f, transformation_ctx="", **kwargs):
        df = self._df
        rdd = df.rdd.map(lambda row: f(row.asDict(recursive=True)))
        return self._with(df.sparkSession.createDataFrame(rdd, samplingRatio=1.0))

    def join(self, paths1, paths2, frame2, transformation_ctx="", **kwargs):
        left, right = self._df, frame2.toDF()
        cond = [left[a] == right[b] for a, b in zip(paths1, paths2)]
        return self._with(left.join(right, cond, "inner"))

    def drop_null_fields(self, transformation_ctx="", **kwargs):
        from pyspark.sql import functions as F

        counts = self._df.select([F.count(F.col(f"`{c}`")).alias(c) for c in self._df.columns]).collect()[0]
        return self._with(self._df.drop(*[c for c in self._df.columns if counts[c] == 0]))

    def resolveChoice(self, specs=None, choice="", database=None, table_name=None, transformation_ctx="", **kwargs):
        from pyspark.sql import functions as F

        df = self._df
        for path, action in specs or []:
            if action.startswith("cast:"):
                df = df.withColumn(path, F.col(f"`{path}`").cast(action[len("cast:"):]))
        return self._with(df)

    def repartition(self, num_partitions, transformation_ctx="", **kwargs):
        return self._with(self._df.repartition(num_partitions))

    def coalesce(self, num_partitions, shuffle=False, transformation_ctx="", **kwargs):
        return self._with(self._df.coalesce(num_partitions))

    def toPandas(self):
        return self._df.toPandas()
