"""Singer taps that misbehave on purpose (one per program), for tarn's bad-input tests. Each
answers --discover with a one-stream catalog and otherwise prints its messages."""

import json
import sys

SCHEMA = {"type": "SCHEMA", "stream": "items", "key_properties": [],
          "schema": {"properties": {"id": {"type": ["integer", "null"]}, "a": {"type": ["string", "null"]}}}}


def out(m):
    print(m if isinstance(m, str) else json.dumps(m), flush=True)


def args():
    a = sys.argv[1:]
    if "--discover" in a:
        out({"streams": [{"tap_stream_id": "items", "stream": "items", "schema": SCHEMA["schema"], "metadata": []}]})
        sys.exit(0)
    state = None
    if "--state" in a:
        with open(a[a.index("--state") + 1]) as f:
            state = json.load(f)
    return state


def rec(i, **extra):
    return {"type": "RECORD", "stream": "items", "record": {"id": i, "a": f"row {i}", **extra}}


def nonjson():
    args()
    out(SCHEMA)
    for i in range(3):
        out(rec(i))
    out({"type": "STATE", "value": {"n": 3}})
    out("hello, this is not JSON")
    out(rec(99))


def record_first():
    args()
    out(rec(1))


def badrecord():
    args()
    out(SCHEMA)
    out(rec(1))
    out({"type": "RECORD", "stream": "items", "record": {"id": "x", "a": "a string where an integer belongs"}})
    out({"type": "RECORD", "stream": "items", "record": {"id": 2, "a": "b", "zzz": 1}})
    out({"type": "STATE", "value": {"n": 3}})


def exits():
    args()
    out(SCHEMA)
    out(rec(1))
    out(rec(2))
    out({"type": "STATE", "value": {"n": 2}})
    out(rec(3))
    print("tap-exits: giving up", file=sys.stderr)
    sys.exit(3)


def evolve():
    args()
    out(SCHEMA)
    out(rec(1))
    out({"type": "STATE", "value": {"n": 1}})
    wider = json.loads(json.dumps(SCHEMA))
    wider["schema"]["properties"]["b"] = {"type": ["number", "null"]}
    out(wider)
    out(rec(2, b=2.5))
    out({"type": "STATE", "value": {"n": 2}})


def activate():
    state = args()
    version = 2 if state else 1
    out(SCHEMA)
    for i in range(3 if version == 1 else 2):
        m = rec(i)
        m["version"] = version
        out(m)
    out({"type": "ACTIVATE_VERSION", "stream": "items", "version": version})
    out({"type": "STATE", "value": {"version": version}})


def slow():
    args()
    out(SCHEMA)
    out(rec(1))
    import time
    time.sleep(6)
    out({"type": "STATE", "value": {"n": 1}})
