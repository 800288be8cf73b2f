//! An S3 read test server: `HeadObject` and `GetObject` (whole, `Range: bytes=a-b` or
//! `bytes=a-`, `If-Match`) over the files of a directory, path-style
//! (`/<bucket>/<key>` is `<root>/<bucket>/<key>`), each answer held back by an injected
//! latency. It is not S3: no listing, no writes, no signatures checked.
//!
//! Why not moto: moto copies the whole object for every ranged GET, so its own cost
//! would hide the latency a reader must cope with. This server answers a range by
//! reading only that range, so what a bench measures is the round trips.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use pf_bulk_test_server::http::{Request, read_request};
use pf_storage::file_etag;

/// Counters of what the server answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct S3ServerStats {
    /// Requests answered, errors included.
    pub requests: u64,
    /// `GetObject` requests answered with object bytes.
    pub gets: u64,
    /// Object bytes sent.
    pub bytes_sent: u64,
}

struct Shared {
    root: PathBuf,
    latency_micros: AtomicU64,
    requests: AtomicU64,
    gets: AtomicU64,
    bytes_sent: AtomicU64,
    stop: AtomicBool,
}

/// A running server; stops accepting when dropped.
pub struct S3TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl S3TestServer {
    /// Serves `root` on `addr` (port 0 picks a free one), holding every answer back by
    /// `latency`.
    pub fn start(
        root: impl Into<PathBuf>,
        addr: SocketAddr,
        latency: Duration,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            root: root.into(),
            latency_micros: AtomicU64::new(latency.as_micros() as u64),
            requests: AtomicU64::new(0),
            gets: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("s3-test-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let s = Arc::clone(&s);
                    let _ = std::thread::Builder::new()
                        .name("s3-test-conn".into())
                        .spawn(move || serve_connection(conn, &s));
                }
            })?;
        Ok(S3TestServer {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:PORT`, the endpoint to give an S3 client (path-style).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the latency of the answers to come.
    pub fn set_latency(&self, latency: Duration) {
        self.shared
            .latency_micros
            .store(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// What has been answered so far.
    pub fn stats(&self) -> S3ServerStats {
        S3ServerStats {
            requests: self.shared.requests.load(Ordering::Relaxed),
            gets: self.shared.gets.load(Ordering::Relaxed),
            bytes_sent: self.shared.bytes_sent.load(Ordering::Relaxed),
        }
    }
}

impl Drop for S3TestServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve_connection(conn: TcpStream, shared: &Shared) {
    let _ = conn.set_nodelay(true);
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    while let Ok(Some(request)) = read_request(&mut reader) {
        shared.requests.fetch_add(1, Ordering::Relaxed);
        let latency = shared.latency_micros.load(Ordering::Relaxed);
        if latency > 0 {
            std::thread::sleep(Duration::from_micros(latency));
        }
        if answer(&request, shared, &mut writer).is_err() {
            return;
        }
    }
}

/// The file behind `/<bucket>/<key>`, refusing paths that would leave the root.
fn object_path(root: &Path, path: &str) -> Option<PathBuf> {
    let relative = Path::new(path.trim_start_matches('/'));
    let safe = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    (safe && relative.components().count() >= 2).then(|| root.join(relative))
}

/// `bytes=a-b` or `bytes=a-` within a `len`-byte object, as a half-open range.
fn parse_range(header: &str, len: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    let start: u64 = start.parse().ok()?;
    let end = match end {
        "" => len,
        end => end.parse::<u64>().ok()?.saturating_add(1).min(len),
    };
    (start < end).then_some((start, end))
}

fn answer(request: &Request, shared: &Shared, out: &mut TcpStream) -> io::Result<()> {
    let head_only = request.method == "HEAD";
    if request.method != "GET" && !head_only {
        return error(out, 501, "NotImplemented", head_only);
    }
    let Some(path) = object_path(&shared.root, &request.path) else {
        return error(out, 404, "NoSuchKey", head_only);
    };
    let Ok(mut file) = File::open(&path) else {
        return error(out, 404, "NoSuchKey", head_only);
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return error(out, 404, "NoSuchKey", head_only);
    }
    // The local source's version tag, so a file has one etag whichever way it is read.
    let tag = file_etag(&meta);
    if let Some(wanted) = request.header("if-match")
        && wanted.trim_matches('"') != tag
    {
        return error(out, 412, "PreconditionFailed", head_only);
    }
    let len = meta.len();
    let (status, start, end) = match request.header("range") {
        None => (200, 0, len),
        Some(range) => match parse_range(range, len) {
            Some((start, end)) => (206, start, end),
            None => return error(out, 416, "InvalidRange", head_only),
        },
    };
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/octet-stream\r\n\
         content-length: {}\r\netag: \"{tag}\"\r\naccept-ranges: bytes\r\n",
        if status == 206 {
            "Partial Content"
        } else {
            "OK"
        },
        end - start
    );
    if status == 206 {
        head.push_str(&format!(
            "content-range: bytes {start}-{}/{len}\r\n",
            end - 1
        ));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if !head_only {
        file.seek(SeekFrom::Start(start))?;
        let sent = io::copy(&mut (&mut file).take(end - start), out)?;
        shared.gets.fetch_add(1, Ordering::Relaxed);
        shared.bytes_sent.fetch_add(sent, Ordering::Relaxed);
    }
    out.flush()
}

fn error(out: &mut TcpStream, status: u16, code: &str, head_only: bool) -> io::Result<()> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{code}</Message></Error>"
    );
    let head = format!(
        "HTTP/1.1 {status} {code}\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n",
        if head_only { 0 } else { body.len() }
    );
    out.write_all(head.as_bytes())?;
    if !head_only {
        out.write_all(body.as_bytes())?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_parsed_within_the_object() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=90-200", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=-5", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn paths_stay_under_the_root() {
        let root = Path::new("/srv");
        assert_eq!(
            object_path(root, "/bucket/a/b.parquet"),
            Some(PathBuf::from("/srv/bucket/a/b.parquet"))
        );
        assert_eq!(object_path(root, "/bucket/../../etc/passwd"), None);
        assert_eq!(object_path(root, "/bucket"), None);
    }
}
