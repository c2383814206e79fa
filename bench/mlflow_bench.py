"""ML tracking: the same mlflow client workload against `tarn serve` and `mlflow server`
(3.17.2, SQLite backend), side by side in one run on this machine.

    python3 bench/mlflow_bench.py [--tarn PATH] [--seconds 15] [--clients 10] [--runs 100000]
                                  [--load-clients 4,8,16]

(after `cargo build --release -p tarn --bin tarn --example httpload`)

1. log-batch throughput: CLIENTS processes, each with its own run, call
   `MlflowClient.log_batch` (10 metrics at a new step per call) for SECONDS; requests per
   second over all clients. Afterwards each server must hold every metric value logged.
2. search latency at RUNS runs: both stores get the same RUNS runs (2 params, 1 tag,
   2 metrics each) written straight into their SQLite databases, then
   `MlflowClient.search_runs` runs each query 10 times after a warm-up; median and worst.
2. log-batch throughput without Python clients: `crates/tarn/examples/httpload.rs
   --mlflow-log-batch` (Rust, one thread) sends the same REST requests from LOAD_CLIENTS
   kept-alive connections for SECONDS (each client its own run, 10 metrics at a new step per
   request); requests per second and p50/p99 latency, every acknowledged value read back.
3. metric history: a run with POINTS points of one metric (logged in batches of 1,000),
   `MlflowClient.get_metric_history` 10 times after a warm-up; median and worst, and both
   servers must answer every point.

Writes the section "## ML tracking: tarn serve beside mlflow server" of bench/RESULTS.md.
"""
import argparse
import multiprocessing as mp
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from results import arguments, free_port, publish

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## ML tracking: tarn serve beside mlflow server"
QUERIES = [
    ("filter a metric and a param, order by the metric",
     "metrics.rmse < 5 and params.model = 'tree'", ["metrics.rmse ASC"]),
    ("newest 100, no filter", "", []),
    ("filter a tag, order by another metric", "tags.team = 'vision'", ["metrics.r2 DESC"]),
]


def wait_up(url, proc, what):
    import requests

    for _ in range(600):
        if proc.poll() is not None:
            sys.exit(f"{what} ended early (exit {proc.returncode})")
        try:
            if requests.get(url + "/api/2.0/mlflow/experiments/get?experiment_id=0", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    sys.exit(f"{what} did not answer within 120 s")


def start_tarn(binary, work, domain="ml", prepare=None):
    """`tarn serve` on a new lake of `domain` under WORK (`prepare(lake)` adds files first)."""
    lake = work / "tarn"
    lake.mkdir()
    db = lake / "meta.db"
    (lake / "tarn.yml").write_text(f"lake: bench\ndomains: [{domain}]\nmetadata: sqlite://{db}\n")
    if prepare:
        prepare(lake)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--dir", str(lake), "serve", "--addr", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc, "tarn serve")
    return proc, url, db


def start_mlflow(work):
    root = work / "mlflow"
    root.mkdir()
    db = root / "mlflow.db"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{db}",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc, "mlflow server")
    return proc, url, db


def stop(proc):
    try:
        os.killpg(proc.pid, 15)
    except (ProcessLookupError, PermissionError):
        proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def server_cpu(session):
    """CPU seconds used so far by every process of the server's session (MLflow's workers too)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(f[3]) == session:
            total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return total


def logger(url, experiment_id, seconds, start_at, out):
    os.environ["MLFLOW_TRACKING_URI"] = url
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient()
    run = client.create_run(experiment_id).info.run_id
    while time.time() < start_at:
        time.sleep(0.001)
    n, step, end = 0, 0, start_at + seconds
    while time.time() < end:
        ts = int(time.time() * 1000)
        client.log_batch(run, metrics=[Metric(f"m{j}", random.random(), ts, step) for j in range(10)])
        n += 1
        step += 1
    out.put((run, n))


def throughput(url, clients, seconds):
    os.environ["MLFLOW_TRACKING_URI"] = url
    from mlflow import MlflowClient

    client = MlflowClient()
    exp = client.create_experiment(f"throughput-{uuid.uuid4().hex[:6]}")
    out = mp.Queue()
    start_at = time.time() + 3
    procs = [mp.Process(target=logger, args=(url, exp, seconds, start_at, out)) for _ in range(clients)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    total = sum(n for _, n in results)
    # Every value logged is there: the history of one metric of each run has one value per call.
    for run, n in results:
        got = len(client.get_metric_history(run, "m0"))
        if got != n:
            sys.exit(f"{url}: run {run} logged {n} batches but holds {got} values of m0")
    return total / seconds, total


def rust_load(httpload, url, clients, seconds):
    """The Rust generator's log-batch run against `url`; checks every acknowledged batch."""
    import json

    os.environ["MLFLOW_TRACKING_URI"] = url
    from mlflow import MlflowClient

    client = MlflowClient()
    exp = client.create_experiment(f"load-{uuid.uuid4().hex[:6]}")
    out = subprocess.run([httpload, "--url", url, "--mlflow-log-batch", exp, "--clients", str(clients),
                          "--seconds", str(seconds)], check=True, capture_output=True, text=True)
    r = json.loads(out.stdout)
    for run in r["runs"]:
        got = len(client.get_metric_history(run["run_id"], "m0"))
        if got != run["batches"]:
            sys.exit(f"{url}: run {run['run_id']} acknowledged {run['batches']} batches but holds {got} values of m0")
    return r


def populate(db, kind, experiment_id, runs):
    """Writes the same `runs` runs into tarn's or MLflow's SQLite database."""
    rng = random.Random(42)
    now = int(time.time() * 1000)
    rows = []
    for i in range(runs):
        rid = uuid.UUID(int=rng.getrandbits(128)).hex
        rows.append((rid, now - i * 1000, ["tree", "linear", "forest"][i % 3], str(i % 10),
                     ["vision", "tabular", "nlp", "ops"][i % 4], rng.random() * 100, rng.random()))
    c = sqlite3.connect(db)
    if kind == "tarn":
        c.executemany(
            "INSERT INTO ml_runs (id, experiment_id, name, user_id, status, start_time, end_time, lifecycle_stage, artifact_uri)"
            " VALUES (?, ?, ?, 'bench', 'FINISHED', ?, ?, 'active', ?)",
            [(r[0], int(experiment_id), f"run-{r[0][:8]}", r[1], r[1] + 500, f"mlflow-artifacts:/{experiment_id}/{r[0]}/artifacts") for r in rows])
        params_t, tags_t, metrics_t, latest_t = "ml_params", "ml_run_tags", "ml_metrics", "ml_latest_metrics"
        run_col = "run_id"
    else:
        c.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time, end_time,"
            " source_version, lifecycle_stage, artifact_uri, experiment_id) VALUES (?, ?, 'LOCAL', '', '', 'bench', 'FINISHED', ?, ?, '', 'active', ?, ?)",
            [(r[0], f"run-{r[0][:8]}", r[1], r[1] + 500, f"mlflow-artifacts:/{experiment_id}/{r[0]}/artifacts", int(experiment_id)) for r in rows])
        params_t, tags_t, metrics_t, latest_t = "params", "tags", "metrics", "latest_metrics"
        run_col = "run_uuid"
    c.executemany(f"INSERT INTO {params_t} (key, value, {run_col}) VALUES (?, ?, ?)",
                  [(k, v, r[0]) for r in rows for k, v in (("model", r[2]), ("depth", r[3]))])
    c.executemany(f"INSERT INTO {tags_t} (key, value, {run_col}) VALUES (?, ?, ?)",
                  [("team", r[4], r[0]) for r in rows])
    extra = "" if kind == "tarn" else ", is_nan"
    marks = "?, ?, ?, ?, ?" + ("" if kind == "tarn" else ", 0")
    for table in (metrics_t, latest_t):
        c.executemany(
            f"INSERT INTO {table} ({run_col}, key, value, timestamp, step{extra}) VALUES ({marks})",
            [(r[0], k, v, r[1], 0) for r in rows for k, v in (("rmse", r[5]), ("r2", r[6]))])
    c.commit()
    c.execute("ANALYZE")
    c.close()
    return rows


def history_latency(url, points):
    os.environ["MLFLOW_TRACKING_URI"] = url
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient()
    exp = client.create_experiment("history-bench")
    run = client.create_run(exp).info.run_id
    for start in range(0, points, 1000):
        client.log_batch(run, metrics=[Metric("loss", 1.0 / (i + 1), 1_700_000_000_000 + i, i)
                                       for i in range(start, min(points, start + 1000))])
    times = []
    for i in range(11):
        t = time.perf_counter()
        got = client.get_metric_history(run, "loss")
        if i:
            times.append((time.perf_counter() - t) * 1000)
        if len(got) != points:
            sys.exit(f"{url}: the history holds {len(got)} points, not {points}")
    return statistics.median(times), max(times)


def search_latency(url, experiment_id, filter_string, order_by):
    os.environ["MLFLOW_TRACKING_URI"] = url
    from mlflow import MlflowClient

    client = MlflowClient()
    times, found = [], None
    for i in range(11):
        t = time.perf_counter()
        got = client.search_runs([experiment_id], filter_string, max_results=100, order_by=order_by)
        if i:
            times.append((time.perf_counter() - t) * 1000)
        found = [r.info.run_id for r in got]
    return statistics.median(times), max(times), found


def main():
    ap = arguments(__doc__)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--points", type=int, default=20_000)
    ap.add_argument("--load-clients", default="4,8,16",
                    help="connections of the Rust log-batch generator, one run each (comma-separated)")
    a = ap.parse_args()
    httpload = str(Path(a.tarn).parent / "examples" / "httpload")
    if not Path(httpload).exists():
        sys.exit(f"{httpload} is missing: cargo build --release -p tarn --bin tarn --example httpload")
    load_clients = [int(c) for c in a.load_clients.split(",")]
    import mlflow

    work = Path(tempfile.mkdtemp(prefix="mlflow-bench-"))
    results = {}
    try:
        for name, start in (("tarn", lambda: start_tarn(a.tarn, work)), ("mlflow", lambda: start_mlflow(work))):
            proc, url, db = start()
            try:
                print(f"{name}: log-batch, {a.clients} clients, {a.seconds} s", flush=True)
                cpu0 = server_cpu(proc.pid)
                rps, total = throughput(url, a.clients, a.seconds)
                cpu_ms = (server_cpu(proc.pid) - cpu0) * 1000 / total
                loads = []
                for c in load_clients:
                    r = rust_load(httpload, url, c, a.seconds)
                    print(f"{name}: Rust generator, {c} clients: {r['rps']:.0f} req/s, "
                          f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, {r['errors']} errors", flush=True)
                    loads.append(r)
                os.environ["MLFLOW_TRACKING_URI"] = url
                exp = mlflow.MlflowClient().create_experiment("search-bench")
                print(f"{name}: {rps:.0f} req/s; writing {a.runs} runs", flush=True)
                populate(db, name, exp, a.runs)
                searches = []
                for label, f, order in QUERIES:
                    p50, worst, found = search_latency(url, exp, f, order)
                    print(f"{name}: {label}: p50 {p50:.1f} ms, max {worst:.1f} ms", flush=True)
                    searches.append((p50, worst, found))
                hist = history_latency(url, a.points)
                print(f"{name}: metric history of {a.points} points: p50 {hist[0]:.1f} ms", flush=True)
                results[name] = (rps, total, searches, cpu_ms, hist, loads)
            finally:
                stop(proc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    t, m = results["tarn"], results["mlflow"]
    same = all(ts[2] == ms[2] for ts, ms in zip(t[2], m[2]))
    lines = [
        SECTION, "",
        "Reproduce with `cargo build --release -p tarn --bin tarn --example httpload && python3 bench/mlflow_bench.py` "
        f"(`--clients {a.clients} --seconds {a.seconds} --runs {a.runs} --points {a.points} --load-clients {a.load_clients}`).", "",
        f"The same `mlflow` {mlflow.__version__} client workload against a release `tarn serve` (embedded: "
        "SQLite + files) and `mlflow server` (SQLite backend, its default 4 workers), one after the other "
        "on the same 2 cores, clients included. log-batch: each client process owns a run and "
        "calls `MlflowClient.log_batch` with 10 metrics at a new step per call; afterwards every value "
        "logged was read back from each server. Search: the same runs (2 params, 1 tag, 2 metrics each) "
        "written straight into each server's database, then `MlflowClient.search_runs(max_results=100)` "
        "10 times per query after a warm-up (times include the client's own work). Metric history: "
        "one run with the given points of one metric, `MlflowClient.get_metric_history` 10 times after "
        "a warm-up, every point answered by both. The clients "
        "share the 2 cores with the server: with tarn they, not the server, use most of the CPU, so the "
        "request rate is bounded by the Python client; the server's CPU per request shows each "
        "server's own cost. The Rust generator (`crates/tarn/examples/httpload.rs --mlflow-log-batch`, one "
        "thread, kept-alive connections, no mlflow client) sends the same REST log-batch requests without "
        "the Python clients bounding the rate; each connection owns a run and every acknowledged batch was "
        "read back from each server.", "",
        "| measure | tarn serve | mlflow server | tarn / mlflow |",
        "|---|---:|---:|---:|",
        f"| log-batch req/s, {a.clients} clients | {t[0]:.0f} | {m[0]:.0f} | {t[0] / m[0]:.1f}x |",
        f"| server CPU per log-batch request, ms (all its processes) | {t[3]:.2f} | {m[3]:.2f} | {m[3] / t[3]:.1f}x less |",
    ]
    for c, tl, ml in zip(load_clients, t[5], m[5]):
        lines.append(
            f"| log-batch, Rust generator, {c} connections: req/s (p50 / p99 ms) | {tl['rps']:.0f} "
            f"({tl['p50_ms']:.1f} / {tl['p99_ms']:.1f}) | {ml['rps']:.0f} ({ml['p50_ms']:.1f} / {ml['p99_ms']:.1f}) | "
            f"{tl['rps'] / ml['rps']:.1f}x |")
    for (label, f, order), ts, ms in zip(QUERIES, t[2], m[2]):
        q = f"`{f}`" if f else "(none)"
        o = f" order by `{order[0]}`" if order else ""
        lines.append(
            f"| search {a.runs:,} runs, {label} ({q}{o}): p50 / max ms | {ts[0]:.1f} / {ts[1]:.1f} | "
            f"{ms[0]:.1f} / {ms[1]:.1f} | {ms[0] / ts[0]:.1f}x faster |")
    lines.append(
        f"| metric history, {a.points:,} points: p50 / max ms | {t[4][0]:.1f} / {t[4][1]:.1f} | "
        f"{m[4][0]:.1f} / {m[4][1]:.1f} | {m[4][0] / t[4][0]:.1f}x faster |")
    lines += ["", f"Both servers answered each search with the same runs in the same order: {'yes' if same else 'NO'}.", ""]
    publish(a, SECTION, lines)


if __name__ == "__main__":
    main()
