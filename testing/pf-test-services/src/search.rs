use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::process::{ServiceProcess, free_port, service_binary};

/// Which independent Elasticsearch-compatible server to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchServerKind {
    /// `noida-db` (PyPI `noida-db`), speaking the Elasticsearch 8.15 API; not
    /// Elasticsearch.
    Noida,
    /// `osmem-server` (PyPI `osmem-server`), an in-memory server speaking the OpenSearch
    /// 3.8 API; not OpenSearch.
    Osmem,
}

impl SearchServerKind {
    /// The binary's name in the virtualenv's `bin/`.
    pub fn binary(self) -> &'static str {
        match self {
            SearchServerKind::Noida => "noida-db-server",
            SearchServerKind::Osmem => "osmem-server",
        }
    }
}

/// An Elasticsearch-compatible server from the virtualenv on a free loopback port, with
/// its data in a temporary directory; stopped on drop.
pub struct SearchServer {
    process: ServiceProcess,
    kind: SearchServerKind,
}

impl SearchServer {
    /// Starts a fresh, empty server of `kind`.
    pub fn start(kind: SearchServerKind) -> SearchServer {
        let port = free_port();
        let mut command = Command::new(service_binary(kind.binary()));
        match kind {
            // The data directory is relative to the service's own temporary directory.
            SearchServerKind::Noida => command.args([
                "start",
                "--only",
                "elasticsearch",
                "--host",
                "127.0.0.1",
                "--elasticsearch-port",
                &port.to_string(),
                "--data-dir",
                "data",
            ]),
            SearchServerKind::Osmem => {
                command.args(["-addr", &format!("127.0.0.1:{port}"), "-no-stdin-watch"])
            }
        };
        SearchServer {
            process: ServiceProcess::start(kind.binary(), command, port),
            kind,
        }
    }

    /// Which server this is.
    pub fn kind(&self) -> SearchServerKind {
        self.kind
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.process.port())
    }

    /// Sends `method path` with an optional JSON `body` and returns the status and the
    /// JSON answer (`null` when the answer is not JSON).
    ///
    /// # Panics
    /// When the server cannot be reached or answers something that is not HTTP.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
        // HTTP/1.0 and `connection: close`: the answer is never chunked; its end is its
        // content-length (a server may keep the connection open regardless).
        let mut stream = TcpStream::connect(("127.0.0.1", self.process.port()))
            .unwrap_or_else(|e| panic!("{:?} at {}: {e}", self.kind, self.url()));
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("read timeout");
        let body = body.unwrap_or("");
        let request = format!(
            "{method} {path} HTTP/1.0\r\nhost: 127.0.0.1\r\nconnection: close\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("send request");
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        let mut length = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).expect("read answer head") == 0 {
                break;
            }
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.trim().eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<u64>().ok();
            }
            head.push_str(&line);
        }
        let mut answer = Vec::new();
        match length {
            Some(n) => reader.take(n).read_to_end(&mut answer),
            None => reader.read_to_end(&mut answer),
        }
        .expect("read answer body");
        let body = String::from_utf8_lossy(&answer);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer from {:?}: {head}", self.kind));
        (status, serde_json::from_str(&body).unwrap_or_default())
    }

    /// Makes what was indexed into `index` searchable, then counts it (`_refresh`,
    /// `_count`).
    ///
    /// # Panics
    /// When either call fails.
    pub fn count(&self, index: &str) -> u64 {
        let (status, answer) = self.call("POST", &format!("/{index}/_refresh"), None);
        assert_eq!(status, 200, "{:?} _refresh of {index}: {answer}", self.kind);
        let (status, answer) = self.call("GET", &format!("/{index}/_count"), None);
        assert_eq!(status, 200, "{:?} _count of {index}: {answer}", self.kind);
        answer["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("{:?} _count of {index}: {answer}", self.kind))
    }
}
