//! A small S3 client: rusty-s3 signs each request (SigV4 presigned URLs)
//! and ureq sends it, synchronously, like the rest of bwguard.
//!
//! Invariants: no URL and no credential ever reaches a message. Presigned
//! URLs carry the access key id and the signature in their query, so
//! errors name the object as `s3://bucket/key` and every text that comes
//! back from the network is scrubbed of the key id and the secret. Every
//! request is retried a few times on network errors and 5xx answers; all
//! of them are idempotent (a part or an object put again with the same
//! bytes, a read, a delete).

use std::io::{self, Read};
use std::time::Duration;

use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

/// How long a signed request stays valid. A download of many gigabytes
/// only needs its signature to be valid when it starts.
const SIGN_FOR: Duration = Duration::from_secs(3600);
/// Attempts per request before giving up.
const ATTEMPTS: u32 = 4;
/// Small objects (manifests, checksums, listings) are read whole, up to this.
const SMALL_LIMIT: u64 = 64 << 20;

/// An S3 failure, already free of URLs and secrets.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The object (or bucket) does not exist: 404.
    #[error("{what}: not found")]
    NotFound {
        /// `s3://bucket/key` and the method.
        what: String,
    },
    /// Anything else: refused, unreachable, a server error.
    #[error("{what}: {detail}")]
    Failed {
        /// `s3://bucket/key` and the method.
        what: String,
        /// The status and S3 error code, or the network error.
        detail: String,
        /// HTTP status, when the server answered.
        status: Option<u16>,
    },
}

impl S3Error {
    /// True for a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, S3Error::NotFound { .. })
    }
}

/// Where the bucket is and how to sign for it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `https://s3.example.com` (or `http://` on a private network).
    pub url: String,
    /// Signing region (`us-east-1`, `garage`, …).
    pub region: String,
    /// Bucket name.
    pub bucket: String,
    /// Path-style (`host/bucket/key`) rather than virtual-host style.
    pub path_style: bool,
}

/// One bucket and key prefix, with credentials.
pub struct Client {
    bucket: Bucket,
    creds: Credentials,
    agent: ureq::Agent,
    /// The key prefix, empty or ending in `/`.
    prefix: String,
}

/// A finished part of a multipart upload.
#[derive(Debug, Clone)]
pub struct UploadedPart {
    /// Its ETag, as the server gave it.
    pub etag: String,
}

impl Client {
    /// A client for `endpoint`, keys under `prefix` (no leading or trailing `/`).
    pub fn new(endpoint: &Endpoint, prefix: &str, creds: Credentials) -> Result<Client, String> {
        let url = endpoint.url.parse().map_err(|e| format!("endpoint {}: {e}", endpoint.url))?;
        let style = if endpoint.path_style { UrlStyle::Path } else { UrlStyle::VirtualHost };
        let bucket = Bucket::new(url, style, endpoint.bucket.clone(), endpoint.region.clone())
            .map_err(|e| format!("endpoint {} with bucket {}: {e}", endpoint.url, endpoint.bucket))?;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(300)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .timeout_per_write(Some(Duration::from_secs(120)))
            .user_agent(concat!("bwguard/", env!("CARGO_PKG_VERSION")))
            .build();
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        Ok(Client { bucket, creds, agent: config.into(), prefix })
    }

    /// The full key of `rel`.
    pub fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    /// `s3://bucket/key` of `rel`, for messages.
    pub fn name(&self, rel: &str) -> String {
        format!("s3://{}/{}", self.bucket.name(), self.key(rel))
    }

    /// Replaces the credentials wherever they appear in `text`.
    fn scrub(&self, text: &str) -> String {
        let mut s = text.to_string();
        for secret in [Some(self.creds.key()), Some(self.creds.secret()), self.creds.token()] {
            if let Some(secret) = secret.filter(|x| !x.is_empty()) {
                s = s.replace(secret, "[redacted]");
            }
        }
        // A URL that slipped into an error text loses its signed query.
        s.split(' ')
            .map(|w| if w.contains("X-Amz-") { w.split('?').next().unwrap_or("") } else { w })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Sends one request (with retries) and returns the response when the
    /// status is 2xx; `what` names the request in errors.
    fn send(
        &self,
        what: &str,
        mut attempt: impl FnMut() -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<ureq::http::Response<ureq::Body>, S3Error> {
        let mut tries = 0;
        loop {
            tries += 1;
            let outcome = attempt();
            let retry = match &outcome {
                Err(_) => true,
                Ok(r) => r.status().is_server_error(),
            };
            if retry && tries < ATTEMPTS {
                std::thread::sleep(Duration::from_millis(250 << tries));
                continue;
            }
            return match outcome {
                Ok(r) if r.status().is_success() => Ok(r),
                Ok(r) if r.status().as_u16() == 404 => Err(S3Error::NotFound { what: what.to_string() }),
                Ok(mut r) => {
                    let status = r.status().as_u16();
                    let body =
                        r.body_mut().with_config().limit(64 << 10).read_to_string().unwrap_or_default();
                    let detail = match (xml_field(&body, "Code"), xml_field(&body, "Message")) {
                        (Some(c), Some(m)) => format!("HTTP {status} {c}: {m}"),
                        (Some(c), None) => format!("HTTP {status} {c}"),
                        _ => format!("HTTP {status}"),
                    };
                    Err(S3Error::Failed {
                        what: what.to_string(),
                        detail: self.scrub(&detail),
                        status: Some(status),
                    })
                }
                Err(e) => Err(S3Error::Failed {
                    what: what.to_string(),
                    detail: self.scrub(&describe(&e)),
                    status: None,
                }),
            };
        }
    }

    /// Reads a small object whole; `None` if it does not exist.
    pub fn get_small(&self, rel: &str) -> Result<Option<Vec<u8>>, S3Error> {
        let what = format!("GET {}", self.name(rel));
        let key = self.key(rel);
        let url = self.bucket.get_object(Some(&self.creds), &key).sign(SIGN_FOR);
        match self.send(&what, || self.agent.get(url.as_str()).call()) {
            Ok(mut r) => r
                .body_mut()
                .with_config()
                .limit(SMALL_LIMIT)
                .read_to_vec()
                .map(Some)
                .map_err(|e| S3Error::Failed { what, detail: self.scrub(&describe(&e)), status: None }),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens an object for streaming: its size (if the server said) and a reader.
    pub fn get(&self, rel: &str) -> Result<(Option<u64>, impl Read + Send + use<>), S3Error> {
        let what = format!("GET {}", self.name(rel));
        let key = self.key(rel);
        let url = self.bucket.get_object(Some(&self.creds), &key).sign(SIGN_FOR);
        let r = self.send(&what, || self.agent.get(url.as_str()).call())?;
        let size = content_length(&r);
        let reader = r.into_body().into_with_config().limit(u64::MAX).reader();
        Ok((size, reader))
    }

    /// The size of an object; `None` if it does not exist.
    pub fn head(&self, rel: &str) -> Result<Option<u64>, S3Error> {
        let what = format!("HEAD {}", self.name(rel));
        let key = self.key(rel);
        let url = self.bucket.head_object(Some(&self.creds), &key).sign(SIGN_FOR);
        match self.send(&what, || self.agent.head(url.as_str()).call()) {
            Ok(r) => Ok(Some(content_length(&r).unwrap_or(0))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a small object in one request.
    pub fn put(&self, rel: &str, bytes: &[u8]) -> Result<(), S3Error> {
        let what = format!("PUT {}", self.name(rel));
        let key = self.key(rel);
        let url = self.bucket.put_object(Some(&self.creds), &key).sign(SIGN_FOR);
        self.send(&what, || self.agent.put(url.as_str()).send(bytes)).map(drop)
    }

    /// Deletes an object (deleting one that is not there is not an error).
    pub fn delete(&self, rel: &str) -> Result<(), S3Error> {
        let what = format!("DELETE {}", self.name(rel));
        let key = self.key(rel);
        let url = self.bucket.delete_object(Some(&self.creds), &key).sign(SIGN_FOR);
        match self.send(&what, || self.agent.delete(url.as_str()).call()) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every object under `rel` (a prefix), as (key relative to the
    /// client's prefix, size), in key order.
    pub fn list(&self, rel: &str) -> Result<Vec<(String, u64)>, S3Error> {
        let what = format!("LIST {}", self.name(rel));
        let full = self.key(rel);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = ListObjectsV2::new(&self.bucket, Some(&self.creds));
            action.with_prefix(full.as_str());
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let url = action.sign(SIGN_FOR);
            let mut r = self.send(&what, || self.agent.get(url.as_str()).call())?;
            let body = r.body_mut().with_config().limit(SMALL_LIMIT).read_to_string().map_err(|e| {
                S3Error::Failed { what: what.clone(), detail: self.scrub(&describe(&e)), status: None }
            })?;
            let page = ListObjectsV2::parse_response(&body).map_err(|e| S3Error::Failed {
                what: what.clone(),
                detail: format!("unreadable listing: {e}"),
                status: None,
            })?;
            for c in page.contents {
                if let Some(k) = c.key.strip_prefix(&self.prefix) {
                    out.push((k.to_string(), c.size.unwrap_or(0)));
                }
            }
            match page.next_continuation_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        out.sort();
        Ok(out)
    }

    /// Starts a multipart upload of `rel` and returns its upload id.
    pub fn create_multipart(&self, rel: &str) -> Result<String, S3Error> {
        let what = format!("POST (start upload) {}", self.name(rel));
        let key = self.key(rel);
        let url = self.bucket.create_multipart_upload(Some(&self.creds), &key).sign(SIGN_FOR);
        let mut r = self.send(&what, || self.agent.post(url.as_str()).send_empty())?;
        let body = r.body_mut().with_config().limit(1 << 20).read_to_string().map_err(|e| {
            S3Error::Failed { what: what.clone(), detail: self.scrub(&describe(&e)), status: None }
        })?;
        CreateMultipartUpload::parse_response(&body)
            .map(|r| r.upload_id().to_string())
            .map_err(|e| S3Error::Failed { what, detail: format!("unreadable answer: {e}"), status: None })
    }

    /// Uploads part `number` (from 1) of an upload.
    pub fn upload_part(
        &self,
        rel: &str,
        upload_id: &str,
        number: u16,
        bytes: &[u8],
    ) -> Result<UploadedPart, S3Error> {
        let what = format!("PUT (part {number}) {}", self.name(rel));
        let key = self.key(rel);
        let url = self.bucket.upload_part(Some(&self.creds), &key, number, upload_id).sign(SIGN_FOR);
        let r = self.send(&what, || self.agent.put(url.as_str()).send(bytes))?;
        let etag = r.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_string);
        let etag = etag.ok_or_else(|| S3Error::Failed {
            what,
            detail: "the server gave no ETag for the part".into(),
            status: None,
        })?;
        Ok(UploadedPart { etag })
    }

    /// Completes an upload from its parts, in order.
    pub fn complete_multipart(
        &self,
        rel: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), S3Error> {
        let what = format!("POST (complete upload) {}", self.name(rel));
        let key = self.key(rel);
        let action = self.bucket.complete_multipart_upload(
            Some(&self.creds),
            &key,
            upload_id,
            parts.iter().map(|p| p.etag.as_str()),
        );
        let url = action.sign(SIGN_FOR);
        let body = action.body();
        let mut r = self.send(&what, || self.agent.post(url.as_str()).send(body.as_bytes()))?;
        // S3 may answer 200 with an error document when completing fails late.
        let answer = r.body_mut().with_config().limit(1 << 20).read_to_string().unwrap_or_default();
        if let Some(code) = xml_field(&answer, "Code").filter(|_| answer.contains("<Error")) {
            return Err(S3Error::Failed { what, detail: self.scrub(&code), status: None });
        }
        Ok(())
    }

    /// Whether multipart upload `upload_id` of `rel` still exists (not
    /// completed nor abandoned).
    pub fn upload_exists(&self, rel: &str, upload_id: &str) -> Result<bool, S3Error> {
        let what = format!("GET (list parts) {}", self.name(rel));
        let key = self.key(rel);
        let url = self.bucket.list_parts(Some(&self.creds), &key, upload_id).sign(SIGN_FOR);
        match self.send(&what, || self.agent.get(url.as_str()).call()) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Abandons an upload, freeing its parts (an unknown upload is not an error).
    pub fn abort_multipart(&self, rel: &str, upload_id: &str) -> Result<(), S3Error> {
        let what = format!("DELETE (abandon upload) {}", self.name(rel));
        let key = self.key(rel);
        let url = self.bucket.abort_multipart_upload(Some(&self.creds), &key, upload_id).sign(SIGN_FOR);
        match self.send(&what, || self.agent.delete(url.as_str()).call()) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The Content-Length of a response.
fn content_length(r: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    r.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// The text of `<name>…</name>` in an XML document (S3 error bodies).
fn xml_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].to_string())
}

/// A network error in words, without the URL ureq may have put in it.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => io_words(io),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::BadUri(_) => "bad endpoint URL".into(),
        ureq::Error::BodyExceedsLimit(n) => format!("answer longer than {n} bytes"),
        other => other.to_string(),
    }
}

/// An I/O error in words.
fn io_words(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        let ep = Endpoint {
            url: "http://127.0.0.1:1".into(),
            region: "garage".into(),
            bucket: "b".into(),
            path_style: true,
        };
        Client::new(&ep, "/a/b/", Credentials::new("GKkeyid", "s3cr3t")).unwrap()
    }

    #[test]
    fn keys_and_names_use_the_prefix() {
        let c = client();
        assert_eq!(c.key("x/manifest.json"), "a/b/x/manifest.json");
        assert_eq!(c.name("x"), "s3://b/a/b/x");
    }

    #[test]
    fn scrub_removes_credentials_and_signed_queries() {
        let c = client();
        let s = c.scrub("bad GKkeyid s3cr3t http://h/b/k?X-Amz-Credential=GK&X-Amz-Signature=ab end");
        assert_eq!(s, "bad [redacted] [redacted] http://h/b/k end");
    }

    #[test]
    fn unreachable_endpoint_is_a_plain_failure_without_url() {
        let c = client();
        let e = c.head("k").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("HEAD s3://b/a/b/k: "), "{text}");
        assert!(!text.contains("X-Amz") && !text.contains("GKkeyid"), "{text}");
    }

    #[test]
    fn xml_fields() {
        let body = "<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>";
        assert_eq!(xml_field(body, "Code").as_deref(), Some("NoSuchKey"));
        assert_eq!(xml_field(body, "Message").as_deref(), Some("gone"));
        assert_eq!(xml_field(body, "Other"), None);
    }
}
