//! `pf-s3-test-server`: serves a directory as read-only S3 (path-style HEAD and ranged
//! GET, not S3) with a fixed latency per request, until killed; for latency benches.

use std::time::Duration;

use pf_s3_test_server::S3TestServer;

const USAGE: &str = "usage: pf-s3-test-server --root DIR [--addr 127.0.0.1:0] [--latency-ms MS]

Serves DIR/<bucket>/<key> as s3://<bucket>/<key> (path-style HEAD and GET with Range
and If-Match), answering every request after MS milliseconds. It is not S3: no
listing, no writes, no signatures checked. Prints the endpoint URL on stdout.";

fn main() {
    if let Err(e) = run() {
        eprintln!("pf-s3-test-server: {e}\n\n{USAGE}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut root = None;
    let mut addr = "127.0.0.1:0".to_owned();
    let mut latency = Duration::ZERO;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            return Ok(());
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--root" => root = Some(value),
            "--addr" => addr = value,
            "--latency-ms" => {
                let ms: u64 = value.parse().map_err(|e| format!("{flag}: {e}"))?;
                latency = Duration::from_millis(ms);
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let root = root.ok_or("--root is required")?;
    let addr = addr.parse().map_err(|e| format!("--addr: {e}"))?;
    let server = S3TestServer::start(root, addr, latency).map_err(|e| e.to_string())?;
    println!("{}", server.url());
    eprintln!(
        "pf-s3-test-server (an S3 read test server, not S3) on {}, {} ms per request",
        server.url(),
        latency.as_millis()
    );
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
