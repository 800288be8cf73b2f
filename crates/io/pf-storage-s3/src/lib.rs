//! S3 object source: ranged GETs, streaming bodies that resume after a dropped
//! connection, and lazily paginated ListObjectsV2 listings.
//!
//! Works with AWS and S3-compatible stores: with an endpoint override the client uses
//! path-style addressing (`http://host/bucket/key`), and request checksums are computed
//! and validated only "when required", which emulators and older stores accept.
//!
//! Readers never download whole objects: the Parquet reader asks for the footer and then
//! the projected column chunks of one row group ([`ObjectSource::read_range`]), and the
//! NDJSON reader consumes one streaming body ([`ObjectSource::read_from`]).

use std::collections::VecDeque;
use std::io::Read;
use std::ops::Range;
use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::primitives::ByteStream;
mod config;

pub use config::S3Config;

use bytes::Bytes;

use pf_aws::{AwsContext, AwsSettings, error_code, http_status, service_error};
use pf_error::{ErrorClass, PfError, Result};
use pf_traits::{ObjectListing, ObjectSource};
use pf_types::{Backoff, ObjectInfo};

/// Times a broken body stream is re-requested from where it stopped before the read fails.
const BODY_RESUMES: u32 = 5;

/// An `s3://bucket/key` URI split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Object key (or listing prefix); may be empty.
    pub key: String,
}

impl S3Location {
    /// Parses `s3://bucket/key`; the key may be empty (a bucket root).
    pub fn parse(uri: &str) -> Result<Self> {
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| PfError::InvalidWorkItem {
                message: format!("`{uri}` is not an s3:// URI"),
            })?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(PfError::InvalidWorkItem {
                message: format!("`{uri}` has no bucket"),
            });
        }
        Ok(S3Location {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    /// `s3://bucket/key`.
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// Byte access to S3 objects through one shared client.
#[derive(Clone, Debug)]
pub struct S3ObjectSource {
    aws: AwsContext,
    client: Client,
    page_size: i32,
}

impl S3ObjectSource {
    /// A source using `aws`; path-style addressing when `force_path_style` is set or an
    /// endpoint override is in use.
    pub fn new(aws: AwsContext, force_path_style: bool) -> Self {
        let config = aws_sdk_s3::config::Builder::from(aws.sdk_config())
            .force_path_style(force_path_style || aws.has_custom_endpoint())
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        S3ObjectSource {
            client: Client::from_conf(config),
            aws,
            page_size: 1000,
        }
    }

    /// Keys per ListObjectsV2 page (1–1000; S3's maximum is the default).
    pub fn with_page_size(mut self, keys: i32) -> Self {
        self.page_size = keys.clamp(1, 1000);
        self
    }

    /// The SDK client, for operations beyond [`ObjectSource`] (uploads, deletes).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The context whose runtime drives this source's requests.
    pub fn aws(&self) -> &AwsContext {
        &self.aws
    }

    /// Uploads `body` to `uri` (record DLQ objects, test fixtures).
    pub fn put(&self, uri: &str, body: Vec<u8>) -> Result<()> {
        let loc = S3Location::parse(uri)?;
        self.aws
            .block_on(
                self.client
                    .put_object()
                    .bucket(&loc.bucket)
                    .key(&loc.key)
                    .body(ByteStream::from(body))
                    .send(),
            )
            .map_err(|e| service_error("s3", format!("PutObject {uri}"), &e))?;
        Ok(())
    }

    /// Uploads the local file `path` to `uri` in one PutObject, streamed from disk (the
    /// object appears whole or not at all; S3 takes up to 5 GiB this way).
    pub fn put_file(&self, uri: &str, path: &std::path::Path) -> Result<()> {
        let loc = S3Location::parse(uri)?;
        self.aws.block_on(async {
            let body = ByteStream::from_path(path)
                .await
                .map_err(|e| PfError::io(path.display().to_string(), std::io::Error::other(e)))?;
            self.client
                .put_object()
                .bucket(&loc.bucket)
                .key(&loc.key)
                .body(body)
                .send()
                .await
                .map_err(|e| service_error("s3", format!("PutObject {uri}"), &e))
        })?;
        Ok(())
    }

    /// One GET from `start` (to `end`, exclusive, when given) of version `if_match` (any
    /// version without it): the body stream.
    fn get(
        &self,
        uri: &str,
        loc: &S3Location,
        start: u64,
        end: Option<u64>,
        if_match: Option<&str>,
    ) -> Result<ByteStream> {
        let range = match end {
            Some(end) => format!("bytes={start}-{}", end - 1),
            None => format!("bytes={start}-"),
        };
        let out = self
            .aws
            .block_on(
                self.client
                    .get_object()
                    .bucket(&loc.bucket)
                    .key(&loc.key)
                    .range(range)
                    .set_if_match(if_match.map(|etag| format!("\"{etag}\"")))
                    .send(),
            )
            .map_err(|e| {
                if is_not_found(error_code(&e), http_status(&e)) {
                    not_found(uri)
                } else if let (Some(etag), Some(412)) = (if_match, http_status(&e)) {
                    pf_traits::object_changed(uri, etag, None)
                } else if http_status(&e) == Some(416) {
                    PfError::invalid_data(
                        uri,
                        "object",
                        format!("range starting at {start} is beyond the end of the object"),
                    )
                } else {
                    service_error("s3", format!("GetObject {uri}"), &e)
                }
            })?;
        Ok(out.body)
    }
}

/// An S3 source that connects on first use, so that deployments which never see an
/// `s3://` URI never start an AWS client.
#[derive(Debug)]
pub struct OnDemandS3 {
    settings: AwsSettings,
    force_path_style: bool,
    source: OnceLock<std::result::Result<S3ObjectSource, String>>,
}

impl OnDemandS3 {
    /// A source that will connect with `settings` when first asked for an object.
    pub fn new(settings: AwsSettings, force_path_style: bool) -> Self {
        OnDemandS3 {
            settings,
            force_path_style,
            source: OnceLock::new(),
        }
    }

    /// Uploads `body` to `uri`, connecting first if needed.
    pub fn put(&self, uri: &str, body: Vec<u8>) -> Result<()> {
        self.source()?.put(uri, body)
    }

    /// Uploads the local file `path` to `uri` ([`S3ObjectSource::put_file`]), connecting
    /// first if needed.
    pub fn put_file(&self, uri: &str, path: &std::path::Path) -> Result<()> {
        self.source()?.put_file(uri, path)
    }

    fn source(&self) -> Result<&S3ObjectSource> {
        self.source
            .get_or_init(|| {
                AwsContext::connect(&self.settings)
                    .map(|aws| S3ObjectSource::new(aws, self.force_path_style))
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|message| PfError::Service {
                service: "s3",
                operation: "connect".into(),
                class: ErrorClass::Transient,
                message: message.clone(),
            })
    }
}

impl ObjectSource for OnDemandS3 {
    fn stat(&self, uri: &str) -> Result<ObjectInfo> {
        self.source()?.stat(uri)
    }

    fn read_range(&self, uri: &str, range: Range<u64>) -> Result<Bytes> {
        self.source()?.read_range(uri, range)
    }

    fn read_range_pinned(&self, uri: &str, range: Range<u64>, etag: &str) -> Result<Bytes> {
        self.source()?.read_range_pinned(uri, range, etag)
    }

    fn read_from_pinned(&self, uri: &str, offset: u64, etag: &str) -> Result<Box<dyn Read + Send>> {
        self.source()?.read_from_pinned(uri, offset, etag)
    }

    fn read_from(&self, uri: &str, offset: u64) -> Result<Box<dyn Read + Send>> {
        self.source()?.read_from(uri, offset)
    }

    fn list(&self, root: &str, recursive: bool) -> Result<ObjectListing<'_>> {
        self.source()?.list(root, recursive)
    }
}

fn not_found(uri: &str) -> PfError {
    PfError::NotFound {
        location: uri.to_owned(),
    }
}

fn is_not_found(code: Option<&str>, status: Option<u16>) -> bool {
    matches!(code, Some("NoSuchKey" | "NotFound" | "NoSuchBucket")) || status == Some(404)
}

impl ObjectSource for S3ObjectSource {
    fn stat(&self, uri: &str) -> Result<ObjectInfo> {
        let loc = S3Location::parse(uri)?;
        let out = self
            .aws
            .block_on(
                self.client
                    .head_object()
                    .bucket(&loc.bucket)
                    .key(&loc.key)
                    .send(),
            )
            .map_err(|e| {
                if is_not_found(error_code(&e), http_status(&e)) {
                    not_found(uri)
                } else {
                    service_error("s3", format!("HeadObject {uri}"), &e)
                }
            })?;
        Ok(ObjectInfo {
            uri: uri.to_owned(),
            size: out.content_length().unwrap_or(0).max(0) as u64,
            etag: out.e_tag().map(|t| t.trim_matches('"').to_owned()),
            last_modified: out.last_modified().and_then(rfc3339),
        })
    }

    fn read_range(&self, uri: &str, range: Range<u64>) -> Result<Bytes> {
        self.ranged_read(uri, range, None)
    }

    fn read_range_pinned(&self, uri: &str, range: Range<u64>, etag: &str) -> Result<Bytes> {
        self.ranged_read(uri, range, Some(etag))
    }

    fn read_from(&self, uri: &str, offset: u64) -> Result<Box<dyn Read + Send>> {
        self.stream_from(uri, offset, None)
    }

    fn read_from_pinned(&self, uri: &str, offset: u64, etag: &str) -> Result<Box<dyn Read + Send>> {
        self.stream_from(uri, offset, Some(etag))
    }

    fn list(&self, root: &str, recursive: bool) -> Result<ObjectListing<'_>> {
        let loc = S3Location::parse(root)?;
        Ok(Box::new(S3Listing {
            source: self,
            loc,
            delimiter: (!recursive).then(|| "/".to_owned()),
            continuation: None,
            page: VecDeque::new(),
            done: false,
        }))
    }
}

impl S3ObjectSource {
    /// Exactly the bytes of `range`, of version `if_match` when given; a body that breaks
    /// off is requested again.
    fn ranged_read(&self, uri: &str, range: Range<u64>, if_match: Option<&str>) -> Result<Bytes> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let loc = S3Location::parse(uri)?;
        let want = (range.end - range.start) as usize;
        let mut attempt = 0;
        loop {
            let body = self.get(uri, &loc, range.start, Some(range.end), if_match)?;
            match self.aws.block_on(body.collect()) {
                Ok(data) => {
                    let bytes = data.into_bytes();
                    if bytes.len() != want {
                        return Err(PfError::io(
                            uri,
                            std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                format!(
                                    "asked for bytes {}..{} but got {} bytes (object shorter \
                                     than expected?)",
                                    range.start,
                                    range.end,
                                    bytes.len()
                                ),
                            ),
                        ));
                    }
                    return Ok(bytes);
                }
                Err(e) if attempt < BODY_RESUMES => {
                    attempt += 1;
                    tracing::debug!(uri, attempt, error = %e, "S3 body broke off; requesting the range again");
                    std::thread::sleep(resume_delay(attempt));
                }
                Err(e) => {
                    return Err(PfError::Service {
                        service: "s3",
                        operation: format!("GetObject {uri} (body)"),
                        class: ErrorClass::Transient,
                        message: e.to_string(),
                    });
                }
            }
        }
    }

    /// A streaming read from `offset`, of version `if_match` when given (resumed GETs
    /// included).
    fn stream_from(
        &self,
        uri: &str,
        offset: u64,
        if_match: Option<&str>,
    ) -> Result<Box<dyn Read + Send>> {
        let loc = S3Location::parse(uri)?;
        let body = self.get(uri, &loc, offset, None, if_match)?;
        Ok(Box::new(S3BodyReader {
            source: self.clone(),
            uri: uri.to_owned(),
            loc,
            if_match: if_match.map(str::to_owned),
            position: offset,
            body: Some(body),
            chunk: Bytes::new(),
            resumes: 0,
        }))
    }
}

/// A streaming GET body as [`Read`]; a connection that breaks mid-body is resumed with a
/// new ranged GET from the current position.
struct S3BodyReader {
    source: S3ObjectSource,
    uri: String,
    loc: S3Location,
    if_match: Option<String>,
    position: u64,
    body: Option<ByteStream>,
    chunk: Bytes,
    resumes: u32,
}

impl Read for S3BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            let Some(body) = self.body.as_mut() else {
                return Ok(0);
            };
            match self.source.aws.block_on(body.try_next()) {
                Ok(Some(chunk)) => self.chunk = chunk,
                Ok(None) => {
                    self.body = None;
                    return Ok(0);
                }
                Err(e) if self.resumes < BODY_RESUMES => {
                    self.resumes += 1;
                    tracing::debug!(uri = %self.uri, position = self.position, error = %e,
                        "S3 body broke off; resuming");
                    std::thread::sleep(resume_delay(self.resumes));
                    let body = self
                        .source
                        .get(
                            &self.uri,
                            &self.loc,
                            self.position,
                            None,
                            self.if_match.as_deref(),
                        )
                        .map_err(|e| std::io::Error::new(io_kind(&e), e.to_string()))?;
                    self.body = Some(body);
                }
                Err(e) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        format!(
                            "S3 body of {} broke off {} times: {e}",
                            self.uri, self.resumes
                        ),
                    ));
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        self.position += n as u64;
        Ok(n)
    }
}

/// An I/O kind that keeps the class of `e` when it crosses the `Read` boundary.
fn io_kind(e: &PfError) -> std::io::ErrorKind {
    match (e, e.class()) {
        (PfError::NotFound { .. }, _) => std::io::ErrorKind::NotFound,
        (_, ErrorClass::Transient) => std::io::ErrorKind::ConnectionAborted,
        _ => std::io::ErrorKind::InvalidData,
    }
}

/// Delays before a broken body is resumed with a new ranged GET.
fn resume_delay(attempt: u32) -> Duration {
    const RESUME: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_millis(6400));
    RESUME.delay(attempt)
}

/// ListObjectsV2 pages fetched one at a time as the caller iterates, so discovery emits
/// work items before the listing ends and never holds more than one page.
struct S3Listing<'a> {
    source: &'a S3ObjectSource,
    loc: S3Location,
    delimiter: Option<String>,
    continuation: Option<String>,
    page: VecDeque<ObjectInfo>,
    done: bool,
}

impl S3Listing<'_> {
    fn fetch_page(&mut self) -> Result<()> {
        let s = self.source;
        let out = s
            .aws
            .block_on(
                s.client
                    .list_objects_v2()
                    .bucket(&self.loc.bucket)
                    .prefix(&self.loc.key)
                    .set_delimiter(self.delimiter.clone())
                    .set_continuation_token(self.continuation.take())
                    .max_keys(s.page_size)
                    .send(),
            )
            .map_err(|e| service_error("s3", format!("ListObjectsV2 {}", self.loc.uri()), &e))?;
        for o in out.contents() {
            let Some(key) = o.key() else { continue };
            if key.ends_with('/') {
                continue; // "directory" placeholder objects
            }
            self.page.push_back(ObjectInfo {
                uri: format!("s3://{}/{key}", self.loc.bucket),
                size: o.size().unwrap_or(0).max(0) as u64,
                etag: o.e_tag().map(|t| t.trim_matches('"').to_owned()),
                last_modified: o.last_modified().and_then(rfc3339),
            });
        }
        self.continuation = out
            .next_continuation_token()
            .map(str::to_owned)
            .filter(|_| out.is_truncated().unwrap_or(false));
        self.done = self.continuation.is_none();
        Ok(())
    }
}

impl Iterator for S3Listing<'_> {
    type Item = Result<ObjectInfo>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(info) = self.page.pop_front() {
                return Some(Ok(info));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fetch_page() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

fn rfc3339(t: &aws_sdk_s3::primitives::DateTime) -> Option<String> {
    t.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_uris() {
        let l = S3Location::parse("s3://bucket/a/b c.parquet").unwrap();
        assert_eq!(l.bucket, "bucket");
        assert_eq!(l.key, "a/b c.parquet");
        assert_eq!(l.uri(), "s3://bucket/a/b c.parquet");
        assert_eq!(S3Location::parse("s3://bucket").unwrap().key, "");
        assert!(S3Location::parse("s3:///key").is_err());
        assert!(S3Location::parse("file:///x").is_err());
    }

    #[test]
    fn missing_objects_are_not_found() {
        assert!(is_not_found(Some("NoSuchKey"), Some(404)));
        assert!(is_not_found(None, Some(404)));
        assert!(!is_not_found(Some("AccessDenied"), Some(403)));
    }
}
