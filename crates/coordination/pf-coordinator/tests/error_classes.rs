//! Server answers that mean "not now" are transient: the item goes back to the queue
//! instead of the DLQ. Each case is produced on a real valkey-server.

use pf_coordinator::{ValkeyConfig, ValkeyMetadataStore};
use pf_error::ErrorClass;
use pf_traits::MetadataStore;
use pf_types::WorkItem;

fn admin(url: &str, args: &[&str]) {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_connection().unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query::<redis::Value>(&mut con)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
}

/// A claim on a server in the state `enter` puts it in; `leave` restores it.
fn claim_error(
    server: &pf_test_services::Valkey,
    enter: &[&[&str]],
    leave: &[&[&str]],
) -> pf_error::PfError {
    let store = ValkeyMetadataStore::connect(&ValkeyConfig {
        // Give up on the first retry window so the test sees the class quickly.
        outage_limit_secs: 1,
        ..ValkeyConfig::for_url(server.url())
    })
    .unwrap();
    for c in enter {
        admin(&server.url(), c);
    }
    let item = WorkItem::from_uri("/data/part-0.parquet").unwrap();
    let err = store.claim(&item, "w1").unwrap_err();
    for c in leave {
        admin(&server.url(), c);
    }
    err
}

#[test]
fn out_of_memory_and_read_only_are_transient() {
    let server = pf_test_services::Valkey::start();
    let oom = claim_error(
        &server,
        &[
            &["CONFIG", "SET", "maxmemory-policy", "noeviction"],
            &["CONFIG", "SET", "maxmemory", "1"],
        ],
        &[&["CONFIG", "SET", "maxmemory", "0"]],
    );
    assert_eq!(oom.class(), ErrorClass::Transient, "{oom}");
    assert!(oom.to_string().contains("OOM"), "{oom}");

    // A replica of a primary that is not there: writes answer READONLY.
    let read_only = claim_error(
        &server,
        &[&["REPLICAOF", "127.0.0.1", "1"]],
        &[&["REPLICAOF", "NO", "ONE"]],
    );
    assert_eq!(read_only.class(), ErrorClass::Transient, "{read_only}");
    assert!(
        read_only.to_string().contains("read only replica"),
        "{read_only}"
    );

    // Back to normal, the same call succeeds.
    let store = ValkeyMetadataStore::connect(&ValkeyConfig::for_url(server.url())).unwrap();
    let item = WorkItem::from_uri("/data/part-0.parquet").unwrap();
    assert!(store.claim(&item, "w1").is_ok());
}
