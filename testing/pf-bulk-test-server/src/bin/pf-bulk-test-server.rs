//! `pf-bulk-test-server`: runs the `_bulk` protocol test server (not Elasticsearch)
//! until killed, for trying a bulk client by hand.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use pf_bulk_test_server::{BulkTestServer, Faults, RejectRule, ServerOptions};

/// A protocol test server for the Elasticsearch _bulk API with fault injection.
/// It is not Elasticsearch: documents are kept in memory by index and _id.
#[derive(Parser)]
#[command(name = "pf-bulk-test-server")]
struct Args {
    /// Where to listen (loopback).
    #[arg(long, default_value = "127.0.0.1:9200")]
    addr: SocketAddr,
    /// Share (0–1) of document ids whose bulk items are answered 429 …
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    throttle_fraction: f64,
    /// … on their first this many attempts (then they succeed).
    #[arg(long, value_name = "N", default_value_t = 1)]
    throttle_attempts: u32,
    /// Answer 400 to every document whose source text contains TEXT.
    #[arg(long, value_name = "TEXT", conflicts_with = "reject_field")]
    reject_contains: Option<String>,
    /// Answer 400 to every document whose top-level FIELD is one of the values.
    #[arg(long, value_name = "FIELD=V1,V2,...", value_parser = parse_field_rule)]
    reject_field: Option<RejectRule>,
    /// Answer the first N `_bulk` requests 503 as a whole.
    #[arg(long, value_name = "N", default_value_t = 0)]
    fail_requests: u32,
    /// Read the first N `_bulk` requests, then close their connection unanswered.
    #[arg(long, value_name = "N", default_value_t = 0)]
    drop_connections: u32,
    /// Delay before every `_bulk` answer, milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    delay_ms: u64,
    /// The Authorization header every request must carry, e.g. 'Basic …'.
    #[arg(long)]
    auth: Option<String>,
}

fn parse_field_rule(value: &str) -> Result<RejectRule, String> {
    let (field, values) = value.split_once('=').ok_or("expected FIELD=V1,V2")?;
    Ok(RejectRule::FieldIn {
        field: field.to_owned(),
        values: values.split(',').map(str::to_owned).collect::<HashSet<_>>(),
    })
}

fn main() {
    let args = Args::parse();
    let options = ServerOptions {
        auth: args.auth,
        faults: Faults {
            throttle_fraction: args.throttle_fraction,
            throttle_attempts: args.throttle_attempts,
            reject: args
                .reject_contains
                .map(RejectRule::SourceContains)
                .or(args.reject_field),
            fail_requests: args.fail_requests,
            drop_connections: args.drop_connections,
            delay: Duration::from_millis(args.delay_ms),
        },
        ..ServerOptions::default()
    };
    let server = match BulkTestServer::start_with(args.addr, options) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("pf-bulk-test-server: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "pf-bulk-test-server (a protocol test server, not Elasticsearch) listening on {}",
        server.url()
    );
    loop {
        std::thread::sleep(Duration::from_secs(10));
        let s = server.stats();
        eprintln!(
            "bulk requests {} (gzip {}), items {}: created {}, updated {}, throttled {}, rejected {}, conflicts {}",
            s.bulk_requests,
            s.gzip_bulk_requests,
            s.items,
            s.items_created,
            s.items_updated,
            s.items_throttled,
            s.items_rejected,
            s.items_conflicts
        );
    }
}
