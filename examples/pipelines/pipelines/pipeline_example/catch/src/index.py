"""Receives a failed step's error (pipeline, execution_id, step, error, logs)."""
import json
import os


def handler(event, context):
    path = os.path.join(os.environ["TARN_DIR"], ".tarn", "caught.jsonl")
    with open(path, "a") as f:
        f.write(json.dumps(event) + "\n")
    return {"caught": event["step"]}
