"""Reading a zone's objects from a step, on either deployment, with Python's standard library.

tarn gives a step its zones as URLs (TARN_ORIGIN_ZONE, TARN_TARGET_ZONE): a folder
(file:///...) on a laptop, s3://bucket/prefix on a team's deployment. `read_object(zone, key)`
answers an object's bytes from either, so the same step runs on both without boto3 (which AWS
Lambda ships and a step's virtualenv does not). S3 requests are signed with Signature V4 from
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), AWS_REGION and
AWS_ENDPOINT_URL, which tarn sets for its steps.

    import tarn_zones
    text = tarn_zones.read_text(os.environ["TARN_ORIGIN_ZONE"], event["key"])
"""
import datetime
import hashlib
import hmac
import os
import urllib.error
import urllib.request
from urllib.parse import quote, unquote, urlparse


def read_object(zone, key):
    """The bytes of `key` in `zone` (a zone URL as tarn gives it)."""
    url = urlparse(zone)
    if url.scheme in ("", "file"):
        with open(os.path.join(unquote(url.path), key), "rb") as f:
            return f.read()
    if url.scheme == "s3":
        path = "/".join(p for p in (url.path.strip("/"), key.lstrip("/")) if p)
        return _s3_get(url.netloc, path)
    raise ValueError(f"zone {zone}: tarn_zones reads file:// and s3:// zones")


def read_text(zone, key, encoding="utf-8"):
    """`read_object` decoded as text."""
    return read_object(zone, key).decode(encoding)


# The SHA-256 of a GET's empty body, which the signature covers.
EMPTY = hashlib.sha256(b"").hexdigest()


def _sign(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _s3_get(bucket, key):
    access = os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret:
        raise RuntimeError(
            "reading s3://%s needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" % bucket
        )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint = (os.environ.get("AWS_ENDPOINT_URL") or f"https://s3.{region}.amazonaws.com").rstrip("/")
    base = urlparse(endpoint)
    path = base.path.rstrip("/") + "/" + quote(bucket, safe="") + "/" + quote(key, safe="/-_.~")
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {
        "host": base.netloc,
        "x-amz-content-sha256": EMPTY,
        "x-amz-date": stamp,
    }
    token = os.environ.get("AWS_SESSION_TOKEN")
    if token:
        headers["x-amz-security-token"] = token
    names = sorted(headers)
    canonical = "\n".join(
        ["GET", path, ""]
        + [f"{n}:{headers[n].strip()}" for n in names]
        + ["", ";".join(names), EMPTY]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    k = _sign(("AWS4" + secret).encode(), day)
    for part in (region, "s3", "aws4_request"):
        k = _sign(k, part)
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    request = urllib.request.Request(
        f"{base.scheme}://{base.netloc}{path}",
        headers={k: v for k, v in headers.items() if k != "host"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        raise RuntimeError(
            f"s3://{bucket}/{key}: the S3 server answered {e.code} {e.reason}"
        ) from None
