"""tarn_zones as a step uses it: the signature of its S3 request equals botocore's for the
same request and time (with and without a session token, keys needing escapes), and a
file:// zone reads the file. Prints `ok` when all hold; argv[1] is tarn's runtime folder."""
import datetime as real
import os
import sys
import tempfile
import urllib.request

sys.path.insert(0, sys.argv[1])
import tarn_zones  # noqa: E402
import botocore.auth  # noqa: E402
import botocore.awsrequest  # noqa: E402
import botocore.credentials  # noqa: E402

FIXED = real.datetime(2026, 12, 3, 7, 40, 0, tzinfo=real.timezone.utc)


class Clock(real.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED

    @classmethod
    def utcnow(cls):
        return FIXED.replace(tzinfo=None)


class Module:
    datetime = Clock
    timezone = real.timezone


tarn_zones.datetime = Module
botocore.auth.datetime.datetime = Clock
sent = {}


class Answer:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        pass

    def read(self):
        return b"body"


def capture(request, timeout=None):
    sent["headers"] = dict(request.header_items())
    sent["url"] = request.full_url
    return Answer()


urllib.request.urlopen = capture
os.environ.update(AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret/key+1",
                  AWS_REGION="eu-west-3", AWS_ENDPOINT_URL="http://127.0.0.1:9000")
for token in [None, "a-session-token"]:
    if token:
        os.environ["AWS_SESSION_TOKEN"] = token
    assert tarn_zones.read_object("s3://bucket/pre fix", "2013/a b+c=1.csv") == b"body"
    assert sent["url"] == "http://127.0.0.1:9000/bucket/pre%20fix/2013/a%20b%2Bc%3D1.csv", sent
    theirs = botocore.awsrequest.AWSRequest(method="GET", url=sent["url"])
    creds = botocore.credentials.Credentials("AKIDEXAMPLE", "secret/key+1", token)
    botocore.auth.S3SigV4Auth(creds, "s3", "eu-west-3").add_auth(theirs)
    assert sent["headers"]["Authorization"] == theirs.headers["Authorization"], (
        sent["headers"], theirs.headers)
with tempfile.TemporaryDirectory() as d:
    os.makedirs(os.path.join(d, "flights"))
    with open(os.path.join(d, "flights", "day.csv"), "w") as f:
        f.write("year,month\n2013,1\n")
    assert tarn_zones.read_text("file://" + d, "flights/day.csv") == "year,month\n2013,1\n"
try:
    tarn_zones.read_object("gs://bucket", "x")
    raise AssertionError("a gs:// zone was read")
except ValueError as e:
    assert "file:// and s3://" in str(e)
print("ok")
