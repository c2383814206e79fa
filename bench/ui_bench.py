"""Web UI: how long `tarn serve` takes to answer each page of `/ui` over a lake holding
100,000 runs, 1,000 tables, 10,000 executions and 50,000 objects, beside what `mlflow server` (3.x, SQLite)
takes to answer the calls its own UI makes for the same runs pages, in one run.

    python3 bench/ui_bench.py [--tarn PATH] [--runs 100000] [--tables 1000] [--executions 10000] [--objects 50000]

The lake: one real table (a CSV landed and crawled), then its catalog record copied to the
other table names; the runs (2 params, 1 tag, 2 metrics each) written straight into tarn's
and MLflow's SQLite databases (bench/mlflow_bench.py's `populate`); the executions (every
fourth one failed, each with one step attempt and its logs) written into tarn's; the objects
copied into the raw zone's folder. Each page
is fetched over loopback with keep-alive, 3 times to warm up and then REPEAT times; the
figures are wall time at the client (the server's time and the loopback), median and worst.
MLflow's UI is a single-page app: its runs page is the `runs/search` call it makes (100 runs
a page, as the UI asks), its run page `runs/get`, its experiments page `experiments/search`.

Writes the section "## Web UI: page times with many runs, tables and executions" of
bench/RESULTS.md.
"""
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlflow_bench import populate, start_mlflow, start_tarn, stop  # noqa: E402
from results import arguments, publish  # noqa: E402

SECTION = "## Web UI: page times with many runs, tables and executions"
REPEAT = 20
TARGET_MS = 50.0
FILTER = "metrics.rmse < 5 and params.model = 'tree'"
TAG_FILTER = "tags.team = 'vision'"


def timed(session, method, url, **kw):
    """(median ms, worst ms, status) of REPEAT calls after 3 to warm up."""
    for _ in range(3):
        session.request(method, url, timeout=120, **kw)
    times = []
    status = None
    for _ in range(REPEAT):
        start = time.perf_counter()
        r = session.request(method, url, timeout=120, **kw)
        r.content
        times.append((time.perf_counter() - start) * 1000)
        status = r.status_code
    return statistics.median(times), max(times), status


def daily_pipeline(lake):
    """The pipeline the executions belong to (its page draws it)."""
    pipeline = lake / "pipelines" / "daily"
    pipeline.mkdir(parents=True)
    (pipeline / "config.yml").write_text(
        "name: daily\ndomain: bench\nlayers:\n  origin: raw\n  target: trusted\n"
        "triggers:\n  - s3:\n      prefix: days/\n      suffix: .csv\n"
        "steps:\n  Merge:\n    type: sql\n    properties:\n      query: SELECT * FROM bench.raw.readings\n"
        "      table: readings\n      mode: append\n")


def seed_tables(url, db, tables):
    """One real table, then its record under TABLES - 1 more names."""
    csv = "sensor,reading,at\n" + "".join(f"s{i % 7},{i * 0.5},2026-01-{1 + i % 28:02}\n" for i in range(500))
    r = requests.put(f"{url}/api/v1/zones/bench/raw/objects/readings/readings.csv", data=csv.encode())
    r.raise_for_status()
    requests.post(f"{url}/api/v1/crawls", json={"scope": "bench/raw"}).raise_for_status()
    c = sqlite3.connect(db)
    cols = [d[1] for d in c.execute("PRAGMA table_info(catalog_tables)")]
    row = dict(zip(cols, c.execute("SELECT * FROM catalog_tables WHERE name = 'readings'").fetchone()))
    vcols = [d[1] for d in c.execute("PRAGMA table_info(catalog_table_versions)")]
    vrow = dict(zip(vcols, c.execute("SELECT * FROM catalog_table_versions WHERE table_id = ?", (row["id"],)).fetchone()))
    copies, versions = [], []
    for i in range(1, tables):
        tid = uuid.uuid4().hex
        copies.append(tuple({**row, "id": tid, "name": f"readings_{i:04}"}[k] for k in cols))
        versions.append(tuple({**vrow, "table_id": tid}[k] for k in vcols))
    c.executemany(f"INSERT INTO catalog_tables ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", copies)
    c.executemany(f"INSERT INTO catalog_table_versions ({', '.join(vcols)}) VALUES ({', '.join('?' * len(vcols))})", versions)
    c.commit()
    c.close()


def seed_executions(db, n):
    """N executions of pipeline `daily`, every fourth failed, one step attempt each."""
    c = sqlite3.connect(db)
    execs, attempts = [], []
    for i in range(n):
        eid = f"daily-{i:06}"
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_790_000_000 + i * 60)) + ".000000Z"
        failed = i % 4 == 0
        status = "failed" if failed else "succeeded"
        error = "KeyError: 'reading' (step Merge)" if failed else None
        execs.append((eid, "daily", f"ev-{i}", status, json.dumps({"key": f"days/{i}.csv"}), "Merge",
                      "{}", int(failed), None if failed else "{}", error, t, t, t))
        attempts.append((uuid.uuid4().hex, eid, "daily", "Merge", 1, status, "{}", None, error,
                         f"read days/{i}.csv\nmerged {i % 100} rows\n", t, t))
    c.executemany(
        "INSERT INTO executions (id, pipeline, event_id, status, input, step, step_input, failures, output, error,"
        " created_at, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", execs)
    c.executemany(
        "INSERT INTO step_attempts (id, execution_id, pipeline, step, attempt, status, input, output, error, logs,"
        " started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", attempts)
    c.commit()
    c.execute("ANALYZE")
    c.close()


def seed_objects(folder, n):
    """N small objects in the raw zone, copied straight into its folder (as another tool
    would), for the overview to count."""
    for i in range(n):
        d = folder / f"part={i // 1000:03}"
        if i % 1000 == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:06}.json").write_text('{"i": %d}\n' % i)


def main():
    ap = arguments(__doc__)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--tables", type=int, default=1_000)
    ap.add_argument("--executions", type=int, default=10_000)
    ap.add_argument("--objects", type=int, default=50_000)
    a = ap.parse_args()
    import mlflow

    work = Path(tempfile.mkdtemp(prefix="ui-bench-"))
    tarn, peer = [], []
    try:
        proc, url, db = start_tarn(a.tarn, work, "bench", daily_pipeline)
        try:
            s = requests.Session()
            exp = s.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": "ui-bench"}).json()["experiment_id"]
            print(f"tarn: writing {a.runs} runs, {a.tables} tables, {a.executions} executions", flush=True)
            rows = populate(db, "tarn", exp, a.runs)
            seed_tables(url, db, a.tables)
            seed_executions(db, a.executions)
            seed_objects(db.parent / "lake" / "dev" / "bench" / "raw" / "landed", a.objects)
            run = rows[0][0]
            q = requests.utils.quote
            pages = [
                ("overview", "/ui/"),
                (f"catalog, {a.tables:,} tables (first 100)", "/ui/tables"),
                ("catalog search", "/ui/tables?search=readings_09"),
                ("a table (columns, sample rows, versions, history, writers)", "/ui/tables/bench.raw.readings"),
                ("experiments", "/ui/experiments"),
                (f"runs of an experiment of {a.runs:,} (newest 50)", f"/ui/experiments/{exp}"),
                (f"runs filtered and sorted (`{FILTER}`, by rmse)", f"/ui/experiments/{exp}?filter={q(FILTER)}&order={q('metrics.rmse ASC')}"),
                (f"runs filtered and sorted the other way (`{FILTER}`, by rmse descending)", f"/ui/experiments/{exp}?filter={q(FILTER)}&order={q('metrics.rmse DESC')}"),
                (f"runs filtered by a tag, sorted by another metric (`{TAG_FILTER}`, by r2 descending)", f"/ui/experiments/{exp}?filter={q(TAG_FILTER)}&order={q('metrics.r2 DESC')}"),
                ("a run (params, metrics with histories, artifacts)", f"/ui/runs/{run}"),
                (f"executions, {a.executions:,} (newest 50)", "/ui/executions"),
                ("executions filtered (pipeline, failed)", "/ui/executions?pipeline=daily&status=failed"),
                ("an execution (timeline, attempts, logs)", "/ui/executions/daily-000000"),
                ("pipelines", "/ui/pipelines"),
                ("a pipeline (its graph)", "/ui/pipelines/daily"),
                ("models", "/ui/models"),
                ("SQL editor", "/ui/sql"),
            ]
            for label, path in pages:
                p50, worst, status = timed(s, "GET", url + path)
                if status != 200:
                    sys.exit(f"{path} answered {status}")
                print(f"tarn: {label}: p50 {p50:.1f} ms, max {worst:.1f} ms", flush=True)
                tarn.append((label, path, p50, worst))
        finally:
            stop(proc)
        proc, url, db = start_mlflow(work)
        try:
            s = requests.Session()
            exp = s.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": "ui-bench"}).json()["experiment_id"]
            print(f"mlflow: writing {a.runs} runs", flush=True)
            rows = populate(db, "mlflow", exp, a.runs)
            api = url + "/ajax-api/2.0/mlflow"
            for label, method, path, body in [
                ("experiments", "POST", "/experiments/search", {"max_results": 25}),
                (f"runs of an experiment of {a.runs:,} (newest 50)", "POST", "/runs/search",
                 {"experiment_ids": [exp], "max_results": 100, "order_by": ["attributes.start_time DESC"]}),
                (f"runs filtered and sorted (`{FILTER}`, by rmse)", "POST", "/runs/search",
                 {"experiment_ids": [exp], "max_results": 100, "filter": FILTER, "order_by": ["metrics.rmse ASC"]}),
                (f"runs filtered and sorted the other way (`{FILTER}`, by rmse descending)", "POST", "/runs/search",
                 {"experiment_ids": [exp], "max_results": 100, "filter": FILTER, "order_by": ["metrics.rmse DESC"]}),
                (f"runs filtered by a tag, sorted by another metric (`{TAG_FILTER}`, by r2 descending)", "POST", "/runs/search",
                 {"experiment_ids": [exp], "max_results": 100, "filter": TAG_FILTER, "order_by": ["metrics.r2 DESC"]}),
                ("a run (params, metrics with histories, artifacts)", "GET", f"/runs/get?run_id={rows[0][0]}", None),
            ]:
                p50, worst, status = timed(s, method, api + path, **({"json": body} if body else {}))
                if status != 200:
                    sys.exit(f"mlflow {path} answered {status}")
                print(f"mlflow: {label}: p50 {p50:.1f} ms, max {worst:.1f} ms", flush=True)
                peer.append((label, p50, worst))
        finally:
            stop(proc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peers = {label: (p50, worst) for label, p50, worst in peer}
    build = "release" if "release" in a.tarn else "debug (an upper bound: a release build is faster)"
    over = [label for label, _, p50, _ in tarn if p50 > TARGET_MS]
    lines = [
        SECTION, "",
        "Reproduce with `cargo build --release -p tarn --bin tarn && python3 bench/ui_bench.py` "
        f"(`--runs {a.runs} --tables {a.tables} --executions {a.executions} --objects {a.objects}`).", "",
        f"tarn build: {build}. A lake with {a.runs:,} runs (2 params, 1 tag, 2 metrics each) in one "
        f"experiment, {a.tables:,} tables, {a.executions:,} executions and {a.objects:,} objects in a zone, written straight into "
        "its SQLite store and zone folder (the runs also into `mlflow server`'s); each page fetched over loopback "
        f"with keep-alive {REPEAT} times after 3 to warm up; wall time at the client. MLflow's UI is a "
        "single-page app that draws in the browser, so its column is only the server call the page "
        "makes (`runs/search` asks 100 runs a page; tarn's page is the whole HTML, 50 runs with a "
        f"column per param and metric). The goal: every page under {TARGET_MS:.0f} ms of server time.",
        "",
        "| page | tarn: p50 / max ms | mlflow server, its UI's call: p50 / max ms |",
        "|---|---:|---:|",
    ]
    for label, path, p50, worst in tarn:
        m = peers.get(label)
        theirs = f"{m[0]:.1f} / {m[1]:.1f}" if m else "–"
        lines.append(f"| {label} (`{path.split('?')[0]}`) | {p50:.1f} / {worst:.1f} | {theirs} |")
    lines += ["", f"Pages over {TARGET_MS:.0f} ms at the median: " + (", ".join(over) if over else "none") + "."]
    publish(a, SECTION, lines)


if __name__ == "__main__":
    main()
