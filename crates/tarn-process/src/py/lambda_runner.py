"""tarn's lambda runtime: imports the module's index.py and calls handler(event, context).

The event comes on stdin as JSON; the handler's return value (or its error) is written as
JSON to the file named by TARN_STEP_RESULT, so the handler's own prints stay in the logs.
"""
import importlib
import json
import os
import sys
import time
import traceback
import uuid

src = sys.argv[1]
extra = [p for p in os.environ.get("TARN_PYTHONPATH", "").split(os.pathsep) if p]
sys.path[:0] = [src] + extra


class Context:
    """The attributes and method of AWS Lambda's context object that handlers use."""

    def __init__(self):
        self.function_name = os.environ.get("TARN_STEP", "step")
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            "arn:aws:lambda:local:000000000000:function:" + self.function_name
        )
        self.memory_limit_in_mb = int(os.environ.get("TARN_MEMORY_MB", "128"))
        self.aws_request_id = os.environ.get("TARN_ATTEMPT_ID", str(uuid.uuid4()))
        self.log_group_name = "/tarn/" + os.environ.get("TARN_PIPELINE", "")
        self.log_stream_name = os.environ.get("TARN_EXECUTION_ID", "")
        self._deadline = time.time() + float(os.environ.get("TARN_TIMEOUT_SECONDS", "900"))

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.time()) * 1000))


def main():
    result_path = os.environ["TARN_STEP_RESULT"]
    raw = sys.stdin.read()
    try:
        event = json.loads(raw) if raw.strip() else {}
        index = importlib.import_module("index")
        result = index.handler(event, Context())
        with open(result_path, "w") as f:
            json.dump({"ok": result}, f, default=str)
    except Exception as e:  # the step failed: its error goes to tarn, its trace to the logs
        traceback.print_exc()
        with open(result_path, "w") as f:
            json.dump({"error": {"errorType": type(e).__name__, "errorMessage": str(e)}}, f)
        sys.exit(1)


main()
