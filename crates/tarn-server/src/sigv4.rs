//! AWS Signature Version 4, verified: a request signed with a token's access key pair (as
//! boto3 and every AWS SDK sign) is checked for its key, region, service, date (within
//! [`MAX_SKEW`] of the server's clock), signed headers and body hash. Nothing of the secret or
//! the signature reaches a log or an error.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// How far a request's `X-Amz-Date` may be from the server's clock: AWS's own 15 minutes.
pub(crate) const MAX_SKEW: chrono::Duration = chrono::Duration::minutes(15);

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Whether an `Authorization` header is a Signature V4 one.
pub(crate) fn is_sigv4(authorization: &str) -> bool {
    authorization.starts_with(ALGORITHM)
}

/// The parts of a Signature V4 `Authorization` header.
#[derive(Debug, PartialEq)]
pub(crate) struct Signed {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Reads `AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request,
/// SignedHeaders=a;b, Signature=HEX`.
pub(crate) fn parse(authorization: &str) -> Result<Signed, String> {
    let rest = authorization
        .strip_prefix(ALGORITHM)
        .ok_or("the Authorization header is not AWS4-HMAC-SHA256")?;
    let (mut credential, mut headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (Some(credential), Some(headers), Some(signature)) = (credential, headers, signature)
    else {
        return Err("the Authorization header lacks Credential, SignedHeaders or Signature".into());
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, "aws4_request"] = scope[..] else {
        return Err("the credential scope is not KEY/DATE/REGION/SERVICE/aws4_request".into());
    };
    Ok(Signed {
        access_key: key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: headers.split(';').map(str::to_string).collect(),
        signature: signature.to_string(),
    })
}

/// What a request is, as far as its signature covers it.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    /// The path as sent (still percent-encoded).
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a axum::http::HeaderMap,
    pub body: &'a [u8],
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// AWS's URI encoding: every byte but unreserved characters as `%XX` (and `/` kept in paths).
fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (encode(&decode(k), false), encode(&decode(v), false))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Checks `signed` against `req` with `secret`, for `region` and `service`, at `now`. The
/// error says which check failed, never what the signature should have been.
pub(crate) fn verify(
    signed: &Signed,
    req: &Request<'_>,
    secret: &str,
    region: &str,
    service: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), String> {
    if signed.region != region {
        return Err(format!(
            "the request is signed for region {}; this server's region is {region}",
            signed.region
        ));
    }
    if signed.service != service {
        return Err(format!(
            "the request is signed for service {}; this call is {service}'s",
            signed.service
        ));
    }
    for needed in ["host", "x-amz-date"] {
        if !signed.signed_headers.iter().any(|h| h == needed) {
            return Err(format!("the signature must cover the {needed} header"));
        }
    }
    let amz_date = req
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or("the request has no X-Amz-Date header")?;
    let when = chrono::NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| "X-Amz-Date is not YYYYMMDDTHHMMSSZ".to_string())?
        .and_utc();
    if !amz_date.starts_with(&signed.date) {
        return Err("the credential's date is not the day of X-Amz-Date".into());
    }
    let skew = (now - when).abs();
    if skew > MAX_SKEW {
        return Err(format!(
            "the request was signed at {when}, {} minutes from the server's clock; signatures are good for {} minutes either side (sign it again)",
            skew.num_minutes(),
            MAX_SKEW.num_minutes()
        ));
    }
    let body_hash = hex::encode(Sha256::digest(req.body));
    if let Some(claimed) = req
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
    {
        if claimed != body_hash && claimed != "UNSIGNED-PAYLOAD" {
            return Err("the body's SHA-256 is not the one X-Amz-Content-Sha256 gives".into());
        }
    }
    let mut headers = String::new();
    for name in &signed.signed_headers {
        let values: Vec<String> = req
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(format!("the signed header {name} is not in the request"));
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let canonical = format!(
        "{}\n{}\n{}\n{headers}\n{}\n{body_hash}",
        req.method,
        encode(req.path, true),
        canonical_query(req.query),
        signed.signed_headers.join(";"),
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        signed.date, signed.region, signed.service
    );
    let to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = [
        signed.date.as_str(),
        signed.region.as_str(),
        signed.service.as_str(),
        "aws4_request",
    ]
    .iter()
    .fold(format!("AWS4{secret}").into_bytes(), |k, part| {
        hmac(&k, part.as_bytes())
    });
    let given =
        hex::decode(&signed.signature).map_err(|_| "the signature is not hex".to_string())?;
    // Compared in constant time through the MAC itself.
    let mut m = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    m.update(to_sign.as_bytes());
    if m.verify_slice(&given).is_err() {
        return Err("the signature does not match: the secret access key, the body or a signed header differs from what was signed".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    /// AWS's own example (the `get-vanilla` case of the Signature V4 test suite).
    #[test]
    fn aws_example_verifies_and_any_change_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "example.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        let signed = parse(auth).unwrap();
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let now = chrono::DateTime::parse_from_rfc3339("2015-08-30T12:40:00Z")
            .unwrap()
            .to_utc();
        let req = |body: &'static [u8], headers: &'static HeaderMap| Request {
            method: "GET",
            path: "/",
            query: "",
            headers,
            body,
        };
        let headers: &'static HeaderMap = Box::leak(Box::new(headers));
        verify(
            &signed,
            &req(b"", headers),
            secret,
            "us-east-1",
            "service",
            now,
        )
        .unwrap();
        let e = verify(
            &signed,
            &req(b"x", headers),
            secret,
            "us-east-1",
            "service",
            now,
        )
        .unwrap_err();
        assert!(e.contains("does not match"), "{e}");
        let e = verify(
            &signed,
            &req(b"", headers),
            "other",
            "us-east-1",
            "service",
            now,
        )
        .unwrap_err();
        assert!(!e.contains("other") && e.contains("does not match"), "{e}");
        let late = now + chrono::Duration::minutes(20);
        let e = verify(
            &signed,
            &req(b"", headers),
            secret,
            "us-east-1",
            "service",
            late,
        )
        .unwrap_err();
        assert!(e.contains("good for 15 minutes"), "{e}");
        let e = verify(
            &signed,
            &req(b"", headers),
            secret,
            "eu-west-1",
            "service",
            now,
        )
        .unwrap_err();
        assert!(e.contains("region"), "{e}");
        let e = verify(
            &signed,
            &req(b"", headers),
            secret,
            "us-east-1",
            "glue",
            now,
        )
        .unwrap_err();
        assert!(e.contains("service"), "{e}");
        assert!(parse("AWS4-HMAC-SHA256 Credential=a/b").is_err());
    }
}
