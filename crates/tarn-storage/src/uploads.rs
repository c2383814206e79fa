//! Multipart uploads left open on S3 by writers that stopped (a land killed mid-file, a Delta
//! write that failed): object_store starts, finishes and aborts its own uploads but cannot list
//! anyone else's, so they are listed and aborted here with S3's own `ListMultipartUploads` and
//! `AbortMultipartUpload`, signed with AWS Signature Version 4. Open uploads cost storage and
//! never show as objects; `tarn doctor` (and `tarn serve` at start) removes stale ones.

use crate::StorageError;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use sha2::{Digest, Sha256};

/// An upload S3 holds open.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenUpload {
    /// The object key in the bucket.
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<DateTime<Utc>>,
}

/// What signing and addressing S3 calls needs, read from the same builder the store uses.
#[derive(Clone)]
pub(crate) struct S3Access {
    endpoint: String,
    region: String,
    bucket: String,
    access_key: String,
    secret_key: String,
    token: Option<String>,
    virtual_hosted: bool,
    http: reqwest::Client,
}

impl std::fmt::Debug for S3Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Access({}/{})", self.endpoint, self.bucket)
    }
}

/// Characters S3 leaves as they are in a signed path or query (RFC 3986 unreserved).
const ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, ENCODE).to_string()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

impl S3Access {
    /// From a configured builder; `None` when it lacks static credentials (then there is
    /// nothing this module can sign with, and open uploads are left to a lifecycle rule).
    pub(crate) fn from_builder(b: &AmazonS3Builder, bucket: &str) -> Option<S3Access> {
        let get = |k: AmazonS3ConfigKey| b.get_config_value(&k).filter(|v| !v.is_empty());
        let region = get(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
        let virtual_hosted =
            get(AmazonS3ConfigKey::VirtualHostedStyleRequest).is_some_and(|v| v == "true");
        let endpoint = get(AmazonS3ConfigKey::Endpoint)
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        Some(S3Access {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            region,
            bucket: bucket.to_string(),
            access_key: get(AmazonS3ConfigKey::AccessKeyId)?,
            secret_key: get(AmazonS3ConfigKey::SecretAccessKey)?,
            token: get(AmazonS3ConfigKey::Token),
            virtual_hosted,
            http: reqwest::Client::new(),
        })
    }

    /// The URL, host and canonical path of `key` (empty: the bucket).
    fn place(&self, key: &str) -> Result<(String, String, String), StorageError> {
        let base = url::Url::parse(&self.endpoint).map_err(|e| StorageError::BadUrl {
            url: self.endpoint.clone(),
            reason: e.to_string(),
        })?;
        let host = base.host_str().unwrap_or_default().to_string();
        let host = match base.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        let encoded: Vec<String> = key.split('/').map(enc).collect();
        let key_path = if key.is_empty() {
            String::new()
        } else {
            format!("/{}", encoded.join("/"))
        };
        let scheme = base.scheme();
        Ok(if self.virtual_hosted {
            let host = format!("{}.{host}", self.bucket);
            let path = if key_path.is_empty() {
                "/".into()
            } else {
                key_path
            };
            (format!("{scheme}://{host}{path}"), host, path)
        } else {
            let path = format!("/{}{key_path}", enc(&self.bucket));
            (format!("{scheme}://{host}{path}"), host, path)
        })
    }

    /// A signed request (SigV4, empty payload).
    fn signed(
        &self,
        method: reqwest::Method,
        key: &str,
        query: &[(&str, &str)],
    ) -> Result<reqwest::RequestBuilder, StorageError> {
        let (url, host, path) = self.place(key)?;
        let mut q: Vec<(String, String)> = query.iter().map(|(k, v)| (enc(k), enc(v))).collect();
        q.sort();
        let query_text = q
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let now = Utc::now();
        let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
        let day = now.format("%Y%m%d").to_string();
        let payload = hex::encode(Sha256::digest(b""));
        let mut headers = vec![
            ("host", host.clone()),
            ("x-amz-content-sha256", payload.clone()),
            ("x-amz-date", amz_date.clone()),
        ];
        if let Some(t) = &self.token {
            headers.push(("x-amz-security-token", t.clone()));
        }
        let canonical_headers: String = headers
            .iter()
            .map(|(k, v)| format!("{k}:{}\n", v.trim()))
            .collect();
        let signed_headers = headers
            .iter()
            .map(|(k, _)| *k)
            .collect::<Vec<_>>()
            .join(";");
        let canonical = format!(
            "{method}\n{path}\n{query_text}\n{canonical_headers}\n{signed_headers}\n{payload}"
        );
        let scope = format!("{day}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut k = hmac(format!("AWS4{}", self.secret_key).as_bytes(), &day);
        for part in [self.region.as_str(), "s3", "aws4_request"] {
            k = hmac(&k, part);
        }
        let signature = hex::encode(hmac(&k, &to_sign));
        let full = if query_text.is_empty() {
            url
        } else {
            format!("{url}?{query_text}")
        };
        let mut req = self
            .http
            .request(method, full)
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
                    self.access_key
                ),
            );
        for (k, v) in headers.into_iter().filter(|(k, _)| *k != "host") {
            req = req.header(k, v);
        }
        Ok(req)
    }

    /// Every open upload of a key under `prefix`.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<OpenUpload>, StorageError> {
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker) = (String::new(), String::new());
        loop {
            let mut q = vec![("uploads", ""), ("prefix", prefix)];
            if !key_marker.is_empty() {
                q.push(("key-marker", &key_marker));
                q.push(("upload-id-marker", &id_marker));
            }
            let text = self
                .send(self.signed(reqwest::Method::GET, "", &q)?)
                .await?;
            for upload in text.split("<Upload>").skip(1) {
                let (Some(key), Some(upload_id)) = (tag(upload, "Key"), tag(upload, "UploadId"))
                else {
                    continue;
                };
                out.push(OpenUpload {
                    key,
                    upload_id,
                    initiated: tag(upload, "Initiated")
                        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                        .map(|t| t.with_timezone(&Utc)),
                });
            }
            if tag(&text, "IsTruncated").as_deref() != Some("true") {
                return Ok(out);
            }
            key_marker = tag(&text, "NextKeyMarker").unwrap_or_default();
            id_marker = tag(&text, "NextUploadIdMarker").unwrap_or_default();
            if key_marker.is_empty() {
                return Ok(out);
            }
        }
    }

    /// Aborts one upload (its parts are deleted).
    pub(crate) async fn abort(&self, u: &OpenUpload) -> Result<(), StorageError> {
        self.send(self.signed(
            reqwest::Method::DELETE,
            &u.key,
            &[("uploadId", &u.upload_id)],
        )?)
        .await
        .map(|_| ())
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<String, StorageError> {
        let failed = |reason: String| StorageError::BadUrl {
            url: format!("{}/{}", self.endpoint, self.bucket),
            reason,
        };
        let resp = req.send().await.map_err(|e| failed(e.to_string()))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| failed(e.to_string()))?;
        if !status.is_success() {
            let code = tag(&text, "Code").unwrap_or_else(|| status.to_string());
            return Err(failed(format!(
                "S3 answered {code} listing or aborting uploads"
            )));
        }
        Ok(text)
    }
}

/// The text of the first `<name>` element in `xml`, entities decoded.
fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_answers_are_read() {
        let xml = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated><Upload><Key>a/b&amp;c.csv</Key><UploadId>xyz</UploadId><Initiated>2026-01-01T00:00:00.000Z</Initiated></Upload></ListMultipartUploadsResult>";
        let body = xml.split("<Upload>").nth(1).unwrap();
        assert_eq!(tag(body, "Key").as_deref(), Some("a/b&c.csv"));
        assert_eq!(tag(body, "UploadId").as_deref(), Some("xyz"));
    }
}
