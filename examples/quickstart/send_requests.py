"""Sends flights to the quickstart's model endpoint, one prediction per request, as an
application would: the traffic the `arrival_delay` monitor watches.

    python3 send_requests.py                        # 250 flights like the training data
    python3 send_requests.py --scale distance=2     # 250 more, every distance doubled (drift)
    python3 send_requests.py --actuals arrivals.csv # also write what really happened, to load
                                                    # later: tarn load flights.service.arrivals arrivals.csv

Flights come from data/flights.csv, January 1-3 (the days the model was trained on), every
few rows so the sample has the day's spread. Each request carries `x-request-id: PREFIX-N`,
which the inference table keeps and the actuals join on. Only Python's standard library.
"""
import argparse
import csv
import json
import os
import sys
import urllib.error
import urllib.request

FEATURES = ["dep_delay", "distance", "hour", "minute", "day"]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8080", help="where tarn serve listens")
    p.add_argument("--endpoint", default="arrival_delay")
    p.add_argument("--rows", type=int, default=250, help="requests to send (one flight each)")
    p.add_argument("--scale", action="append", default=[], metavar="COLUMN=FACTOR",
                   help="multiply a feature before sending (drift on purpose); repeatable")
    p.add_argument("--prefix", default=None, help="request ids are PREFIX-N (default: normal, or drifted with --scale)")
    p.add_argument("--actuals", metavar="CSV", help="write request_id,arr_delay of the flights sent")
    p.add_argument("--data", default=os.path.join(here, "data", "flights.csv"))
    a = p.parse_args()
    scale = {}
    for s in a.scale:
        col, _, factor = s.partition("=")
        if col not in FEATURES or not factor:
            sys.exit(f"--scale {s}: write COLUMN=FACTOR with COLUMN one of {', '.join(FEATURES)}")
        scale[col] = float(factor)
    prefix = a.prefix or ("drifted" if scale else "normal")

    with open(a.data, newline="") as f:
        known = lambda v: v not in ("", "NA")
        rows = [r for r in csv.DictReader(f)
                if int(r["day"]) <= 3 and all(known(r[c]) for c in FEATURES + ["arr_delay"])]
    if not rows:
        sys.exit(f"{a.data} has no flights of January 1-3 with a departure and an arrival delay")
    step = max(1, len(rows) // a.rows)
    picked = rows[::step][: a.rows]

    url = f"{a.url}/endpoints/{a.endpoint}/invocations"
    sent, actuals = 0, []
    for i, r in enumerate(picked):
        record = {c: float(r[c]) * scale.get(c, 1.0) for c in FEATURES}
        body = json.dumps({"dataframe_records": [record]}).encode()
        rid = f"{prefix}-{i}"
        req = urllib.request.Request(url, body, {"content-type": "application/json", "x-request-id": rid})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                resp.read()
        except urllib.error.HTTPError as e:
            sys.exit(f"{url} answered {e.code}: {e.read().decode(errors='replace')}")
        except urllib.error.URLError as e:
            sys.exit(f"cannot reach {url} ({e.reason}); is `tarn serve` running in the quickstart folder?")
        sent += 1
        actuals.append((rid, r["arr_delay"]))
    if a.actuals:
        with open(a.actuals, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["request_id", "arr_delay"])
            w.writerows(actuals)
    shifted = "".join(f", {c} x{k:g}" for c, k in scale.items())
    print(f"sent {sent} requests to {a.endpoint} (ids {prefix}-0..{prefix}-{sent - 1}{shifted})")


if __name__ == "__main__":
    main()
