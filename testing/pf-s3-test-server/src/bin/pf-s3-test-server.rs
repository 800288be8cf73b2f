//! `pf-s3-test-server`: serves a directory as read-only S3 (path-style HEAD and ranged
//! GET, not S3) with a fixed latency per request, until killed; for latency benches.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use pf_s3_test_server::S3TestServer;

/// Serves DIR/<bucket>/<key> as s3://<bucket>/<key> (path-style HEAD and GET with Range
/// and If-Match), answering every request after MS milliseconds. It is not S3: no
/// listing, no writes, no signatures checked. Prints the endpoint URL on stdout.
#[derive(Parser)]
#[command(name = "pf-s3-test-server")]
struct Args {
    /// The directory served: one subdirectory per bucket.
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    /// Where to listen (loopback; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Delay before every answer, milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,
}

fn main() {
    let args = Args::parse();
    let latency = Duration::from_millis(args.latency_ms);
    let server = match S3TestServer::start(args.root, args.addr, latency) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("pf-s3-test-server: {e}");
            std::process::exit(1);
        }
    };
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
