"""A bring-your-own model server on SageMaker's contract, with nothing but the standard
library: `byo_server.py PORT PIDFILE`. GET /ping answers 200; POST /invocations answers, for
each record of a dataframe_records body, the sum of its numbers."""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/ping":
            self.answer(200, {"status": "ok"})
        else:
            self.answer(404, {"error": "no such path"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        rows = body.get("dataframe_records", [])
        sums = [sum(v for v in r.values() if isinstance(v, (int, float))) for r in rows]
        self.answer(200, {"predictions": sums})


if __name__ == "__main__":
    with open(sys.argv[2], "w") as f:
        f.write(str(os.getpid()))
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
