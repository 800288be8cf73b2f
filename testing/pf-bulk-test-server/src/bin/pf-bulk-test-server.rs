//! `pf-bulk-test-server`: runs the `_bulk` protocol test server (not Elasticsearch)
//! until killed, for trying a bulk client by hand.

use std::collections::HashSet;
use std::time::Duration;

use pf_bulk_test_server::{BulkTestServer, Faults, RejectRule, ServerOptions};

const USAGE: &str = "usage: pf-bulk-test-server [--addr 127.0.0.1:9200] [--throttle-fraction F]
  [--throttle-attempts N] [--reject-contains TEXT] [--reject-field FIELD=V1,V2,...]
  [--fail-requests N] [--drop-connections N] [--delay-ms MS] [--auth 'Basic …']

A protocol test server for the Elasticsearch _bulk API with fault injection.
It is not Elasticsearch: documents are kept in memory by index and _id.";

fn main() {
    match run() {
        Ok(()) => {}
        Err(e) => {
            eprintln!("pf-bulk-test-server: {e}\n\n{USAGE}");
            std::process::exit(1);
        }
    }
}

fn run() -> Result<(), String> {
    let mut addr = "127.0.0.1:9200".to_owned();
    let mut options = ServerOptions::default();
    let mut faults = Faults {
        throttle_attempts: 1,
        ..Faults::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            return Ok(());
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--addr" => addr = value,
            "--throttle-fraction" => {
                faults.throttle_fraction = value.parse().map_err(|e| format!("{flag}: {e}"))?
            }
            "--throttle-attempts" => faults.throttle_attempts = num(&value)? as u32,
            "--reject-contains" => faults.reject = Some(RejectRule::SourceContains(value)),
            "--reject-field" => {
                let (field, values) = value
                    .split_once('=')
                    .ok_or(format!("{flag}: expected FIELD=V1,V2"))?;
                faults.reject = Some(RejectRule::FieldIn {
                    field: field.to_owned(),
                    values: values.split(',').map(str::to_owned).collect::<HashSet<_>>(),
                });
            }
            "--fail-requests" => faults.fail_requests = num(&value)? as u32,
            "--drop-connections" => faults.drop_connections = num(&value)? as u32,
            "--delay-ms" => faults.delay = Duration::from_millis(num(&value)?),
            "--auth" => options.auth = Some(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    options.faults = faults;
    let addr = addr.parse().map_err(|e| format!("--addr: {e}"))?;
    let server = BulkTestServer::start_with(addr, options).map_err(|e| e.to_string())?;
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
