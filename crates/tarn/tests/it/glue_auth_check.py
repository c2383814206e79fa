"""tarn's Glue API under --auth: boto3 signs with a token's AWS key pair (Signature V4); what a
read-only key may do, and every badly signed request refused in Glue's shape.

usage: glue_auth_check.py TARN_URL READER_KEY READER_SECRET WRITER_KEY WRITER_SECRET STORAGE_URL
"""

import datetime
import hashlib
import hmac
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

import boto3
import botocore.exceptions

url, reader_key, reader_secret, writer_key, writer_secret, storage = sys.argv[1:7]
storage = storage.rstrip("/")


def client(key, secret, region="us-east-1"):
    return boto3.client(
        "glue",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )


def refused(call, **kw):
    try:
        call(**kw)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"]["Message"]
    raise AssertionError(f"{call.__name__} was accepted")


def signed_at(when, key, secret, target, body, region="us-east-1", sent=None):
    """A request signed as botocore signs, at a chosen time (to step outside the clock skew)."""
    host = urllib.parse.urlsplit(url).netloc
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    day = when.strftime("%Y%m%d")
    headers = {
        "content-type": "application/x-amz-json-1.1",
        "host": host,
        "x-amz-date": amz_date,
        "x-amz-target": target,
    }
    names = sorted(headers)
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            "".join(f"{n}:{headers[n]}\n" for n in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/{region}/glue/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in [day, region, "glue", "aws4_request"]:
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={key}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    req = urllib.request.Request(url + "/", data=body if sent is None else sent, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


out = {}
reader = client(reader_key, reader_secret)
# The reader lists and reads the catalog through boto3's own signing.
dbs = [d["Name"] for p in reader.get_paginator("get_databases").paginate() for d in p["DatabaseList"]]
assert "flights_raw" in dbs, dbs
assert "airports" in [t["Name"] for t in reader.get_tables(DatabaseName="flights_raw")["TableList"]]
# ...and is refused every write.
table = {
    "Name": "signed_airports",
    "StorageDescriptor": {
        "Columns": [{"Name": "faa", "Type": "string"}],
        "Location": f"{storage}/flights/raw/airports/",
    },
    "Parameters": {"classification": "csv"},
}
code, message = refused(reader.create_table, DatabaseName="flights_raw", TableInput=table)
assert code == "AccessDeniedException" and "read-only" in message, (code, message)
out["read_only_write"] = message

# The writer registers a table.
client(writer_key, writer_secret).create_table(DatabaseName="flights_raw", TableInput=table)

# A wrong secret, an unknown key, another region: refused, saying which check failed.
code, message = refused(client(reader_key, reader_secret + "x").get_databases)
assert code == "AccessDeniedException" and "does not match" in message, message
assert reader_secret not in message
out["wrong_secret"] = message
code, message = refused(client("TARNNOSUCHKEY0000000", reader_secret).get_databases)
assert code == "AccessDeniedException" and "unknown" in message, message
code, message = refused(client(reader_key, reader_secret, region="eu-west-1").get_databases)
assert code == "AccessDeniedException" and "region" in message, message

# Unsigned: refused.
req = urllib.request.Request(
    url + "/",
    data=b"{}",
    headers={"X-Amz-Target": "AWSGlue.GetDatabases", "Content-Type": "application/x-amz-json-1.1"},
    method="POST",
)
try:
    urllib.request.urlopen(req)
    raise AssertionError("an unsigned request was accepted")
except urllib.error.HTTPError as e:
    body = json.loads(e.read())
    assert body["__type"] == "AccessDeniedException", body

# Signed now by hand: accepted (the hand signer is right); twenty minutes ago: refused.
now = datetime.datetime.now(datetime.timezone.utc)
status, body = signed_at(now, reader_key, reader_secret, "AWSGlue.GetDatabases", b"{}")
assert status == 200 and "DatabaseList" in body, (status, body)
status, body = signed_at(now - datetime.timedelta(minutes=20), reader_key, reader_secret, "AWSGlue.GetDatabases", b"{}")
assert status == 403 and body["__type"] == "AccessDeniedException" and "15 minutes" in body["message"], body
out["replayed"] = body["message"]
# A body changed after signing: refused.
status, body = signed_at(
    now, reader_key, reader_secret, "AWSGlue.GetTables", b'{"DatabaseName": "flights_raw"}', sent=b'{"DatabaseName": "flights_trusted"}'
)
assert status == 403 and "does not match" in body["message"], body

# Spark's and Hive's Glue clients, starting: `default` exists (empty), and creating it (the
# Aporia seed's policy grants exactly that) is Glue's AlreadyExistsException, which they take
# as done; a read-only key may do both, and nothing is created.
for name in ["default", "global_temp"]:
    assert reader.get_database(Name=name)["Database"]["Name"] == name
    assert reader.get_tables(DatabaseName=name)["TableList"] == []
    code, _ = refused(reader.create_database, DatabaseInput={"Name": name})
    assert code == "AlreadyExistsException", code
code, message = refused(reader.create_database, DatabaseInput={"Name": "sales_raw"})
assert code == "AccessDeniedException", (code, message)


def signed_api(method, path, key, secret, body=None, service="tarn"):
    """tarn's own API signed by botocore's Signature V4 (service `tarn`)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {"content-type": "application/json"} if body is not None else {}
    req = AWSRequest(method=method, url=url + path, data=body, headers=headers)
    SigV4Auth(Credentials(key, secret), service, "us-east-1").add_auth(req)
    prepared = req.prepare()
    sent = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers), method=method)
    try:
        with urllib.request.urlopen(sent) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


status, body = signed_api("GET", "/api/v1/tables?limit=500", reader_key, reader_secret)
assert status == 200 and "flights.raw.airports" in [t["table"] for t in body["items"]], (status, body)
status, body = signed_api(
    "POST", "/api/v1/sql", reader_key, reader_secret, json.dumps({"query": "SELECT count(*) AS n FROM flights.raw.airports"}).encode()
)
assert status == 200, (status, body)
status, body = signed_api("PUT", "/api/v1/zones/flights/raw/objects/signed/x.json", reader_key, reader_secret, b'{"a": 1}')
assert status == 403, (status, body)
status, body = signed_api("PUT", "/api/v1/zones/flights/raw/objects/signed/x.json", writer_key, writer_secret, b'{"a": 1}')
assert status == 201, (status, body)
# Signed for Glue's service but sent to tarn's API: refused, naming the service.
status, body = signed_api("GET", "/api/v1/tables", reader_key, reader_secret, service="glue")
assert status == 403 and "service" in body["error"]["message"], (status, body)
out["api_wrong_service"] = body["error"]["message"]
print(json.dumps(out))
