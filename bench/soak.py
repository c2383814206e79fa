"""Soak: for 60 s, 8 clients send a mix of good and hostile requests to one `tarn serve`
(the quickstart's lake, with its `arrival_delay` endpoint serving and its `daily_flights`
pipeline started by landings), while a probe asks `/health` every 50 ms.

Good requests: SQL over the catalog (answers checked), table lists, endpoint invocations
(a prediction checked), day files landed into flights/raw (each starts the pipeline).
Hostile ones (what issue 16 found and its relatives): a 3,000-term expression, SQL over the
length limit, an IN list over its limit, JSON nested 1,000 deep, a JSON body over the body
limit, an endpoint body over its limit, a 300-byte key segment, a page token the server never
gave, a method a route does not serve, a timeout over the limit, a JSON answer over the row
limit, and a cross join that runs past its timeout.

First a quiet phase of 20 s sends the good requests only; the soak then sends the same mix
with 40% hostile requests. Afterwards: the server never stopped, `/health` p99, endpoint p99
beside the quiet figure, every good request answered correctly, every
hostile one refused with a 4xx naming its limit, no 5xx, every landed object has its event
and every execution finished without failing.

    cargo build --release -p tarn
    python3 bench/soak.py [--seconds 60] [--clients 8]
"""
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import arguments, free_port, publish, wait

SECTION = "## Soak: hostile and heavy requests beside real traffic"
ROW = {"dep_delay": 12.0, "distance": 1400.0, "hour": 7.0, "minute": 5.0, "day": 3.0}


class Conn:
    """One keep-alive connection; reconnects when the server closes it."""

    def __init__(self, port):
        self.port = port
        self.c = None

    def call(self, method, path, body=None, headers=None, timeout=120):
        for attempt in range(2):
            if self.c is None:
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                self.c.request(method, path, body=body, headers=headers or {})
                r = self.c.getresponse()
                data = r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.c.close()
                    self.c = None
                return r.status, data
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")


def send_big(port, method, path, body, headers, timeout=60):
    """Sends a large body as curl does: the server may answer (413) before it has read it
    all, so the answer is read as soon as it arrives instead of failing on a closed pipe."""
    import select
    import socket

    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode())
    sent, answer = 0, b""
    try:
        while sent < len(body):
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            sent += sock.send(body[sent:sent + 65536])
    except OSError:
        pass  # the server stopped reading: its answer is waiting
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    except OSError:
        pass
    sock.close()
    status_line, _, rest = answer.partition(b"\r\n")
    parts = status_line.split()
    status = int(parts[1]) if len(parts) > 1 else 0
    return status, rest.partition(b"\r\n\r\n")[2]


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p))]


def sql(q, **extra):
    return json.dumps({"query": q, **extra}).encode()


JSON = {"content-type": "application/json"}


def good_requests(day_csv):
    """(name, method, path, body, headers, check) where check(status, body) says whether the
    answer is the right one."""

    def rows_of(expected):
        return lambda s, b: s == 200 and json.loads(b)["rows"] == expected

    invoke = json.dumps({"dataframe_records": [ROW]}).encode()
    return [
        ("sql airlines", "POST", "/api/v1/sql", sql("SELECT count(*) AS n FROM flights.raw.airlines"),
         JSON, rows_of([{"n": 16}])),
        ("sql group", "POST", "/api/v1/sql",
         sql("SELECT carrier, count(*) AS n FROM flights.raw.airlines GROUP BY carrier ORDER BY carrier LIMIT 1"),
         JSON, rows_of([{"carrier": "9E", "n": 1}])),
        ("tables", "GET", "/api/v1/tables", None, {},
         lambda s, b: s == 200 and any(t["table"] == "flights.trusted.flights" for t in json.loads(b)["items"])),
        ("invoke", "POST", "/endpoints/arrival_delay/invocations", invoke, JSON,
         lambda s, b: s == 200 and len(json.loads(b)["predictions"]) == 1),
        ("land day", "PUT", None, day_csv, {"content-type": "text/csv"},
         lambda s, b: s in (200, 201) and json.loads(b)["event_recorded"]),
    ]


def hostile_requests():
    """(name, method, path, body, headers, words) where the answer must be a 4xx whose body
    holds every word of `words` (the limit it names)."""
    return [
        ("deep expression", "POST", "/api/v1/sql", sql("SELECT 1" + "+1" * 3000), JSON, ["sql_depth"]),
        ("sql too long", "POST", "/api/v1/sql", sql("SELECT 1 -- " + "x" * (1024 * 1024)), JSON,
         ["sql_length"]),
        ("IN list", "POST", "/api/v1/sql",
         sql("SELECT 1 WHERE 1 IN (" + ",".join(["1"] * 10_001) + ")"), JSON, ["sql_in_list"]),
        ("deep JSON", "POST", "/api/v1/sql", b"[" * 1000 + b"]" * 1000, JSON, ["json_depth"]),
        ("huge JSON", "POST", "/api/v1/sql", b'{"query": "' + b"x" * (17 * 1024 * 1024) + b'"}', JSON,
         ["request_body"]),
        ("huge MLflow call", "POST", "/api/2.0/mlflow/runs/log-batch",
         b'{"run_id": "' + b"x" * (17 * 1024 * 1024) + b'"}', JSON, ["request_body"]),
        ("endpoint body", "POST", "/endpoints/arrival_delay/invocations",
         b'{"dataframe_records": [' + b"1," * (4 * 1024 * 1024) + b"1]}", JSON, ["max_body"]),
        ("long key", "PUT", "/api/v1/zones/flights/raw/objects/" + "k" * 300, b"a,b\n1,2\n",
         {"content-type": "text/csv"}, ["key_segment"]),
        ("bad page token", "GET", "/api/v1/tables?next_token=garbage", None, {}, ["next_token"]),
        ("wrong method", "DELETE", "/api/v1/sql", None, {}, ["DELETE"]),
        ("timeout over limit", "POST", "/api/v1/sql", sql("SELECT 1", timeout_ms=3_600_000), JSON,
         ["query_timeout"]),
        ("rows over limit", "POST", "/api/v1/sql", sql("SELECT 1", limit=10_000_000), JSON, ["query_rows"]),
        ("cross join past timeout", "POST", "/api/v1/sql",
         sql("SELECT count(*) FROM flights.trusted.flights a, flights.trusted.flights b, "
             "flights.trusted.flights c WHERE a.flight + b.flight + c.flight = 17", timeout_ms=1000),
         JSON, ["timeout"]),
    ]


def main():
    ap = arguments(__doc__)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", type=int, default=8)
    a = ap.parse_args()
    exe = a.tarn
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    lake = work / "qs"
    subprocess.run([exe, "quickstart", str(lake)], check=True, capture_output=True)
    day_csv = (lake / "data" / "flights-2013-01-05.csv").read_bytes()
    port = free_port()
    env = dict(os.environ, TARN_LOG="warn")
    log = open(work / "serve.log", "w")
    server = subprocess.Popen([exe, "--dir", str(lake), "serve", "--addr", f"127.0.0.1:{port}"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    wait(f"http://127.0.0.1:{port}/endpoints/arrival_delay/ping")

    goods, hostiles = good_requests(day_csv), hostile_requests()
    # Mostly endpoint calls and queries; a few landings, each of which starts a pipeline
    # execution (a Python step and a merge).
    weights = {"sql airlines": 15, "sql group": 15, "tables": 10, "invoke": 55, "land day": 5}
    landed_keys = []

    def phase(seconds, hostile_share):
        """Runs the clients and the /health probe for `seconds`; answers what they saw."""
        results = {"good": [], "hostile": [], "endpoint_ms": [], "health_ms": [], "errors": []}
        lock = threading.Lock()
        stop = time.time() + seconds

        def health():
            c = Conn(port)
            while time.time() < stop:
                t = time.perf_counter()
                try:
                    s, _ = c.call("GET", "/health", timeout=10)
                    ms = (time.perf_counter() - t) * 1000
                except Exception as e:
                    s, ms = f"down: {e}", 10_000
                with lock:
                    results["health_ms"].append(ms)
                    if s != 200:
                        results["errors"].append(f"/health answered {s}")
                time.sleep(0.05)

        def client(i):
            rnd = random.Random(f"{i}-{hostile_share}")
            c = Conn(port)
            n = 0
            while time.time() < stop:
                n += 1
                if rnd.random() >= hostile_share:
                    name, method, path, body, headers, check = rnd.choices(
                        goods, weights=[weights[g[0]] for g in goods])[0]
                    if name == "land day":
                        key = f"flights/2013-01-05-soak-{hostile_share}-{i}-{n}.csv"
                        path = f"/api/v1/zones/flights/raw/objects/{key}"
                        with lock:
                            landed_keys.append(key)
                    t = time.perf_counter()
                    try:
                        s, b = c.call(method, path, body, headers)
                    except Exception as e:
                        s, b = 0, str(e).encode()
                    ms = (time.perf_counter() - t) * 1000
                    ok = s and check(s, b)
                    with lock:
                        results["good"].append((name, s, ok))
                        if name == "invoke" and s == 200:
                            results["endpoint_ms"].append(ms)
                        if not ok:
                            results["errors"].append(f"good {name}: {s} {b[:200]!r}")
                else:
                    name, method, path, body, headers, words = rnd.choice(hostiles)
                    try:
                        if body is not None and len(body) > 1024 * 1024:
                            s, b = send_big(port, method, path, body, headers)
                        else:
                            s, b = c.call(method, path, body, headers)
                    except Exception as e:
                        s, b = 0, str(e).encode()
                    text = b.decode("utf-8", "replace")
                    ok = 400 <= s < 500 and all(w in text for w in words)
                    with lock:
                        results["hostile"].append((name, s, ok))
                        if not ok:
                            results["errors"].append(f"hostile {name}: {s} {text[:200]!r}")

        threads = [threading.Thread(target=health)] + [
            threading.Thread(target=client, args=(i,)) for i in range(a.clients)]
        t0 = time.time()
        [t.start() for t in threads]
        [t.join() for t in threads]
        results["elapsed"] = time.time() - t0
        return results

    quiet = phase(20, 0.0)
    results = phase(a.seconds, 0.4)
    results["errors"] += quiet["errors"]
    elapsed = results["elapsed"]
    alive = server.poll() is None

    # Nothing lost: every landed object has its event, every execution finished well.
    time.sleep(5)
    c = Conn(port)
    events, token = [], None
    while True:
        q = "/api/v1/events?kind=object.created&limit=1000" + (f"&next_token={token}" if token else "")
        s, b = c.call("GET", q)
        page = json.loads(b)
        events += page["items"]
        token = page.get("next_token")
        if not token:
            break
    event_keys = {e["key"] for e in events}
    missing_events = [k for k in landed_keys if k not in event_keys]
    # Landings queue executions faster than their Python step and merge finish: wait for the
    # backlog to drain (and say how long it took) before judging them.
    soak_end = time.time()
    drained = None
    for _ in range(1200):
        items, token = [], None
        while True:
            q = "/api/v1/executions?limit=1000" + (f"&next_token={token}" if token else "")
            s, b = c.call("GET", q)
            page = json.loads(b)
            items += page["items"]
            token = page.get("next_token")
            if not token:
                break
        if all(e["status"] in ("succeeded", "failed", "cancelled") for e in items):
            drained = time.time() - soak_end
            break
        time.sleep(1)
    failed = [e for e in items if e["status"] != "succeeded"]
    for e in failed[:3]:
        results["errors"].append(f"execution {e['id']} {e['status']}: {(e.get('error') or '')[:300]}")
    server.terminate()
    server.wait(timeout=60)

    results["good"] += quiet["good"]
    good_ok = sum(1 for _, _, ok in results["good"] if ok)
    hostile_ok = sum(1 for _, _, ok in results["hostile"] if ok)
    five = sum(1 for _, s, _ in results["good"] + results["hostile"] if s >= 500)
    q99, s99 = pct(quiet["endpoint_ms"], 0.99), pct(results["endpoint_ms"], 0.99)
    lines = [
        SECTION, "",
        f"`python3 bench/soak.py --seconds {a.seconds:g} --clients {a.clients}` ({'debug' if '/debug/' in exe else 'release'} build, the quickstart lake, "
        f"{os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}).", "",
        "| figure | value |", "|---|---:|",
        f"| soak length | {elapsed:.0f} s, {a.clients} clients + a /health probe every 50 ms |",
        f"| server still up afterwards | {'yes' if alive else 'NO'} |",
        f"| /health p50 / p99 / max during the soak | {pct(results['health_ms'], .5):.1f} / {pct(results['health_ms'], .99):.1f} / {max(results['health_ms']):.1f} ms |",
        f"| /health p99 in the quiet phase | {pct(quiet['health_ms'], .99):.1f} ms |",
        f"| endpoint p99 quiet (good requests only, 20 s) / during the soak | {q99:.1f} / {s99:.1f} ms ({s99 / q99:.1f}x) |",
        f"| good requests answered correctly (quiet + soak) | {good_ok} of {len(results['good'])} |",
        f"| hostile requests refused with a 4xx naming the limit | {hostile_ok} of {len(results['hostile'])} |",
        f"| 5xx answers | {five} |",
        f"| landed day files / without their event | {len(landed_keys)} / {len(missing_events)} |",
        f"| pipeline executions / not succeeded | {len(items)} / {len(failed)} |",
        f"| executions' backlog drained after the soak | "
        + (f"{drained:.0f} s" if drained is not None else "not within 20 min") + " |",
        "",
        "Hostile kinds sent: " + ", ".join(sorted({n for n, _, _ in results["hostile"]})) + ".",
    ]
    if results["errors"]:
        lines += ["", "Problems seen:", ""] + [f"- {e}" for e in sorted(set(results["errors"]))[:20]]
    publish(a, SECTION, lines)
    ok = (alive and not results["errors"] and five == 0 and not missing_events and not failed
          and pct(results["health_ms"], .99) < 50 and s99 <= 2 * q99)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
