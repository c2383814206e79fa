"""Model serving beside `mlflow models serve`: the same model (the quickstart's `delays`,
tarn's built-in gradient-boosted trees saved as ONNX with an MLmodel) and the same request
mix, one server after the other on loopback, at fixed concurrency: requests per second and
p50/p99 latency. Also one-row requests to tarn with the inference log on (it always is).

    cargo build --release -p tarn --bin tarn --example httpload
    python3 bench/serve_bench.py [--clients 16] [--seconds 10]
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import arguments, free_port, publish, wait

SECTION = "## Model serving: tarn endpoints beside mlflow models serve"
ROW = {"dep_delay": 12.0, "distance": 1400.0, "hour": 7.0, "minute": 5.0, "day": 3.0}


def load(httpload, url, body, clients, seconds):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(json.dumps(body))
    out = subprocess.run([httpload, "--url", url, "--body", f.name, "--clients", str(clients),
                          "--seconds", str(seconds)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = arguments(__doc__)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    exe = a.tarn
    httpload = str(Path(exe).parent / "examples" / "httpload")
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    lake = work / "qs"
    subprocess.run([exe, "quickstart", str(lake)], check=True, capture_output=True)
    subprocess.run([exe, "--dir", str(lake), "endpoints", "deploy", "delays", "--model",
                    "models:/delays@champion", "--log-domain", "flights"], check=True, capture_output=True)
    port = free_port()
    env = dict(os.environ, TARN_LOG="warn")
    tarn = subprocess.Popen([exe, "--dir", str(lake), "serve", "--addr", f"127.0.0.1:{port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tarn_url = f"http://127.0.0.1:{port}"
    wait(f"{tarn_url}/endpoints/delays/ping")

    import mlflow
    mlflow.set_tracking_uri(tarn_url)
    model_dir = mlflow.artifacts.download_artifacts("models:/delays/1", dst_path=str(work / "model"))
    mport = free_port()
    ml = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_dir, "-h",
                           "127.0.0.1", "-p", str(mport), "--env-manager", "local"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ml_url = f"http://127.0.0.1:{mport}"
    try:
        wait(f"{ml_url}/ping")
        mixes = [("1 row (dataframe_records)", {"dataframe_records": [ROW]}),
                 ("10 rows (dataframe_split)", {"dataframe_split": {"columns": list(ROW),
                                                                     "data": [list(ROW.values())] * 10}})]
        rows = []
        for name, body in mixes:
            t = load(httpload, f"{tarn_url}/endpoints/delays/invocations", body, a.clients, a.seconds)
            m = load(httpload, f"{ml_url}/invocations", body, a.clients, a.seconds)
            rows.append((name, t, m))
        # The same 1-row mix with micro-batching off (each request its own model call).
        subprocess.run([exe, "--dir", str(lake), "endpoints", "deploy", "delays", "--model",
                        "models:/delays@champion", "--log-domain", "flights", "--max-batch", "1"],
                       check=True, capture_output=True)
        time.sleep(3)
        wait(f"{tarn_url}/endpoints/delays/ping")
        unbatched = load(httpload, f"{tarn_url}/endpoints/delays/invocations", mixes[0][1], a.clients, a.seconds)
    finally:
        os.killpg(ml.pid, signal.SIGKILL)
        tarn.send_signal(signal.SIGTERM)
        tarn.wait(timeout=60)
    logged = subprocess.run([exe, "--dir", str(lake), "sql", "--format", "json",
                             "SELECT count(DISTINCT request_id) AS n FROM flights.service.inference_delays"],
                            check=True, capture_output=True, text=True)
    logged_requests = json.loads(logged.stdout)[0]["n"]
    answered = sum(t["requests"] for _, t, _ in rows) + unbatched["requests"]
    lines = [SECTION, "",
             f"`python3 bench/serve_bench.py --clients {a.clients} --seconds {a.seconds:g}` "
             f"(after `cargo build --release -p tarn --bin tarn --example httpload`); "
             f"{os.cpu_count()} cores shared by the server and the load generator "
             "(`crates/tarn/examples/httpload.rs`, one thread, kept-alive connections, "
             f"{a.clients} clients in a closed loop, after a one-second warm-up). The model: the "
             "quickstart's `delays` (built-in gradient-boosted trees, ONNX + python_function "
             "MLmodel); mlflow serves it with `mlflow models serve --env-manager local` "
             f"(MLflow {mlflow.__version__}, onnxruntime). tarn writes every answered row to its "
             "inference table meanwhile.", "",
             "| request | server | requests/s | p50 ms | p99 ms | errors | throughput vs mlflow |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for name, t, m in rows:
        lines.append(f"| {name} | tarn | {t['rps']:,.0f} | {t['p50_ms']:.2f} | {t['p99_ms']:.2f} | {t['errors']} | {t['rps'] / m['rps']:.1f}x |")
        lines.append(f"| {name} | mlflow models serve | {m['rps']:,.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | {m['errors']} | 1x |")
    u = unbatched
    lines.append(f"| 1 row, micro-batching off (`--max-batch 1`) | tarn | {u['rps']:,.0f} | {u['p50_ms']:.2f} | {u['p99_ms']:.2f} | {u['errors']} | {u['rps'] / rows[0][2]['rps']:.1f}x |")
    lines += ["", f"Requests tarn answered in the measured windows: {answered:,}; distinct request ids in "
              f"`flights.service.inference_delays` after the run (warm-ups included): {logged_requests:,}.", ""]
    publish(a, SECTION, lines)


if __name__ == "__main__":
    main()
