//! The Valkey window store against the in-process reference: the same rapid-activity
//! alerts, each once, whether one worker or two (separate connections, concurrent
//! threads) observe the data; plus throughput figures (`--ignored`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use pf_coordinator::{ValkeyConfig, ValkeyWindowOptions, ValkeyWindowStore};
use pf_datagen::TransactionGenerator;
use pf_datagen::fixtures::observe_rapid_activity;
use pf_rules::{MemoryWindowOptions, MemoryWindowStore};
use pf_traits::{WindowAlert, WindowStore};

/// Late enough for any interleaving of the two workers in these tests, so the alert set
/// is the order-independent one of the window semantics.
const LATENESS: Duration = Duration::from_secs(30 * 24 * 3600);

/// The generated batches, split into two "files": even batches are file A, odd file B,
/// each with its own row ordinals.
fn files(rows: u64, batch: usize) -> [Vec<(RecordBatch, u64)>; 2] {
    let mut out = [Vec::new(), Vec::new()];
    let mut next_row = [0u64; 2];
    for (i, b) in TransactionGenerator::single_file(7, rows, batch).enumerate() {
        let f = i % 2;
        let n = b.num_rows() as u64;
        out[f].push((b, next_row[f]));
        next_row[f] += n;
    }
    out
}

const URIS: [&str; 2] = ["s3://b/part-a.parquet", "s3://b/part-b.parquet"];

fn observe(
    store: &dyn WindowStore,
    uri: &str,
    batch: &RecordBatch,
    first_row: u64,
) -> Vec<WindowAlert> {
    observe_rapid_activity(store, uri, batch, first_row)
        .unwrap()
        .alerts
}

fn valkey_store(url: &str, prefix: &str) -> ValkeyWindowStore {
    ValkeyWindowStore::connect(
        &ValkeyConfig {
            key_prefix: prefix.into(),
            ..ValkeyConfig::for_url(url)
        },
        ValkeyWindowOptions {
            allowed_lateness: LATENESS,
            ..ValkeyWindowOptions::default()
        },
    )
    .unwrap()
}

fn alert_set(alerts: &[WindowAlert]) -> BTreeSet<(String, i64)> {
    alerts
        .iter()
        .map(|a| (a.key.clone(), a.window_end))
        .collect()
}

/// The alerts of one in-process worker reading file A then file B.
fn reference_alerts(data: &[Vec<(RecordBatch, u64)>; 2]) -> Vec<WindowAlert> {
    let reference = MemoryWindowStore::with_options(MemoryWindowOptions {
        allowed_lateness: LATENESS,
        ..MemoryWindowOptions::default()
    });
    let mut expected = Vec::new();
    for (f, batches) in data.iter().enumerate() {
        for (b, first) in batches {
            expected.extend(observe(&reference, URIS[f], b, *first));
        }
    }
    expected
}

#[test]
fn two_workers_raise_the_alerts_of_one_each_once() {
    let data = files(60_000, 2048);
    let expected = reference_alerts(&data);
    let expected_set = alert_set(&expected);
    assert!(
        expected_set.len() > 50,
        "data has rapid activity: {}",
        expected_set.len()
    );
    assert_eq!(expected_set.len(), expected.len());

    let server = pf_test_services::Valkey::start();
    // One Valkey-backed worker gives the reference set.
    let single = valkey_store(&server.url(), "one:");
    let mut one = Vec::new();
    for (f, batches) in data.iter().enumerate() {
        for (b, first) in batches {
            one.extend(observe(&single, URIS[f], b, *first));
        }
    }
    assert_eq!(alert_set(&one), expected_set);
    assert_eq!(one.len(), expected.len(), "each alert raised once");

    // Two workers, one file each, concurrently, each with its own connections.
    let url = server.url();
    let two: Vec<WindowAlert> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..2)
            .map(|f| {
                let (url, batches) = (&url, &data[f]);
                s.spawn(move || {
                    let store = valkey_store(url, "two:");
                    let mut alerts = Vec::new();
                    for (b, first) in batches {
                        alerts.extend(observe(&store, URIS[f], b, *first));
                    }
                    alerts
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    assert_eq!(alert_set(&two), expected_set, "same alerts as one worker");
    assert_eq!(two.len(), expected.len(), "each alert raised exactly once");

    // A worker replaying the second half of file A after a crash (its alerts lost with
    // it) raises them again, at least once, and nothing outside the set.
    let half = data[0].len() / 2;
    let lost: BTreeSet<(String, i64)> = one_file_a_from(&data, half, &expected);
    let again = valkey_store(&server.url(), "two:");
    let replayed: Vec<WindowAlert> = data[0][half..]
        .iter()
        .flat_map(|(b, first)| observe(&again, URIS[0], b, *first))
        .collect();
    let replayed = alert_set(&replayed);
    assert!(!lost.is_empty());
    assert!(
        lost.is_subset(&replayed),
        "every alert of the stretch comes back"
    );
    assert!(
        replayed.is_subset(&expected_set),
        "only real alerts come back"
    );
}

/// The server's script cache emptied (a restart, `SCRIPT FLUSH`) under two workers: both
/// find the script missing at once and one loads it while the other's pipeline is half
/// run. The calls that ran are not sent again, so no alert is raised twice (the fault
/// behind an intermittent `each alert raised exactly once` in the worker suite).
#[test]
fn a_script_cache_emptied_under_two_workers_raises_each_alert_once() {
    let data = files(200_000, 4096);
    let expected = reference_alerts(&data);
    let expected_set = alert_set(&expected);
    assert_eq!(expected_set.len(), expected.len());

    let server = pf_test_services::Valkey::start();
    let stores = [
        valkey_store(&server.url(), "flush:"),
        valkey_store(&server.url(), "flush:"),
    ];
    let mut admin = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut two = Vec::new();
    let steps = data[0].len().max(data[1].len());
    for step in 0..steps {
        let () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut admin).unwrap();
        let raised: Vec<Vec<WindowAlert>> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..2)
                .map(|f| {
                    let (store, batch) = (&stores[f], data[f].get(step));
                    s.spawn(move || {
                        // Staggered starts, so that over the steps one worker's script
                        // load lands at every point of the other's pipeline.
                        let stagger = (step % 16) as u64 * 200 * f as u64;
                        std::thread::sleep(Duration::from_micros(stagger));
                        batch.map_or_else(Vec::new, |(b, first)| observe(store, URIS[f], b, *first))
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        two.extend(raised.into_iter().flatten());
    }
    assert_eq!(alert_set(&two), expected_set, "same alerts as one worker");
    assert_eq!(two.len(), expected.len(), "each alert raised exactly once");
}

/// kill -9 between raising alerts and flushing them, after the worker went on past its
/// last checkpoint: the replay from the checkpoint comes more than the allowed lateness
/// (300 s, the default) behind the newest events of its keys, so it cannot raise those
/// alerts again. The store holds every alert raised since the item's last delivery for
/// whoever takes the item over, and forgets them once that holder delivered them.
#[test]
fn alerts_raised_and_not_delivered_are_held_for_the_next_holder() {
    let [file, _] = files(40_000, 2048);
    let server = pf_test_services::Valkey::start();
    let connect = || {
        ValkeyWindowStore::connect(
            &ValkeyConfig {
                key_prefix: "held:".into(),
                ..ValkeyConfig::for_url(server.url())
            },
            ValkeyWindowOptions::default(),
        )
        .unwrap()
    };
    let uri = URIS[0];
    // Worker A: a checkpoint (alerts flushed, then delivered) after 4 batches; it goes
    // on to the end of the file and dies without delivering the rest.
    let a = connect();
    let mut before = Vec::new();
    for (b, first) in &file[..4] {
        before.extend(observe(&a, uri, b, *first));
    }
    a.delivered(uri).unwrap();
    let mut after = Vec::new();
    for (b, first) in &file[4..] {
        after.extend(observe(&a, uri, b, *first));
    }
    assert!(!before.is_empty() && !after.is_empty());

    // Worker B replays from the checkpoint: too late for most of them.
    let b = connect();
    let replayed: Vec<WindowAlert> = file[4..]
        .iter()
        .flat_map(|(batch, first)| observe(&b, uri, batch, *first))
        .collect();
    let lost: BTreeSet<_> = alert_set(&after)
        .difference(&alert_set(&replayed))
        .cloned()
        .collect();
    assert!(
        !lost.is_empty(),
        "the replay is too late to raise every alert again (else this test shows nothing)"
    );
    // What A raised after its checkpoint (and B's re-raises) are held for B; what A
    // delivered is not.
    let held = b.undelivered("rapid_activity", uri).unwrap();
    let held_set = alert_set(&held);
    assert_eq!(
        held_set,
        alert_set(&after)
            .union(&alert_set(&replayed))
            .cloned()
            .collect(),
        "held: the alerts raised since the last delivery"
    );
    assert!(
        alert_set(&before).is_disjoint(&alert_set(&after))
            && held_set.is_disjoint(&alert_set(&before)),
        "delivered alerts are not held"
    );
    assert!(
        held.iter()
            .all(|h| after.iter().chain(&replayed).any(|a| a == h)),
        "held alerts come back whole (key, time, count, uri, row, late)"
    );
    // Another item's alerts are its own.
    assert!(b.undelivered("rapid_activity", URIS[1]).unwrap().is_empty());
    // B delivers them: nothing is held any more.
    b.delivered(uri).unwrap();
    assert!(
        connect()
            .undelivered("rapid_activity", uri)
            .unwrap()
            .is_empty()
    );
}

/// The alerts whose window ends at an event of file A from batch `from` on (those a
/// worker could have raised for that stretch and lost).
fn one_file_a_from(
    data: &[Vec<(RecordBatch, u64)>; 2],
    from: usize,
    expected: &[WindowAlert],
) -> BTreeSet<(String, i64)> {
    let first_row = data[0].get(from).map_or(u64::MAX, |(_, r)| *r);
    expected
        .iter()
        .filter(|a| a.uri == URIS[0] && a.row >= first_row)
        .map(|a| (a.key.clone(), a.window_end))
        .collect()
}

/// Rows/s of one thread with the rapid-activity rule, in-process vs Valkey:
/// `cargo test --release -p pf-coordinator --test window_suite -- --ignored --nocapture`.
#[test]
#[ignore = "speed figures; run in release with --ignored --nocapture"]
fn window_store_rows_per_second_memory_vs_valkey() {
    const ROWS: u64 = 500_000;
    let batches: Vec<RecordBatch> = TransactionGenerator::single_file(42, ROWS, 65_536).collect();
    let run = |store: &dyn WindowStore| {
        let start = Instant::now();
        let mut first = 0;
        let mut alerts = 0;
        for b in &batches {
            alerts += observe(store, URIS[0], b, first).len();
            first += b.num_rows() as u64;
        }
        (ROWS as f64 / start.elapsed().as_secs_f64(), alerts)
    };
    let (mem, mem_alerts) = run(&MemoryWindowStore::new());
    let server = pf_test_services::Valkey::start();
    let store = ValkeyWindowStore::connect(
        &ValkeyConfig::for_url(server.url()),
        ValkeyWindowOptions::default(),
    )
    .unwrap();
    let (vk, vk_alerts) = run(&store);
    assert_eq!(mem_alerts, vk_alerts);
    println!(
        "window store, {ROWS} rows, batches of 65,536, one thread: in-process {:.2} M rows/s, Valkey {:.0} k rows/s ({mem_alerts} alerts each)",
        mem / 1e6,
        vk / 1e3
    );
}

/// A TCP relay to Valkey that, once armed, lets the next request holding `EVALSHA`
/// through and then closes the connection instead of relaying its reply: the script
/// ran, and the caller never learns what it returned.
struct ReplyDropper {
    port: u16,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl ReplyDropper {
    fn start(upstream: u16) -> ReplyDropper {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (armed2, dropped2) = (armed.clone(), dropped.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    return;
                };
                let (mut client_in, mut server_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                // This connection's script request went out while armed: drop its reply.
                let doomed = Arc::new(AtomicBool::new(false));
                let (armed, doomed_in) = (armed2.clone(), doomed.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(n) = client_in.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let script = buf[..n].windows(7).any(|w| w == b"EVALSHA");
                        if script && armed.swap(false, Ordering::SeqCst) {
                            doomed_in.store(true, Ordering::SeqCst);
                        }
                        if server_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = server_out.shutdown(Shutdown::Both);
                });
                let dropped = dropped2.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(n) = server.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if doomed.load(Ordering::SeqCst) {
                            dropped.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        if client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = server.shutdown(Shutdown::Both);
                });
            }
        });
        ReplyDropper {
            port,
            armed,
            dropped,
        }
    }
}

/// The connection drops after a batch's script ran and before its reply arrived, and the
/// batch holds a burst of one account followed, in the same batch, by a later event of
/// that account past the lateness bound. Sent again, the batch is a replay in which the
/// burst is now late, so the script does not raise its alert again; the store must still
/// return it (from the item's held alerts), or the alert is lost for good.
#[test]
fn a_reply_lost_with_the_connection_still_returns_every_alert_of_the_batch() {
    use arrow::array::{StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    let server = pf_test_services::Valkey::start();
    let relay = ReplyDropper::start(server.port());
    let store = ValkeyWindowStore::connect(
        &ValkeyConfig {
            key_prefix: "lost:".into(),
            ..ValkeyConfig::for_url(format!("redis://127.0.0.1:{}", relay.port))
        },
        ValkeyWindowOptions {
            allowed_lateness: Duration::from_secs(60),
            ..ValkeyWindowOptions::default()
        },
    )
    .unwrap();
    let batch = |events: &[(&str, i64)]| {
        let schema = Arc::new(Schema::new(vec![
            Field::new("account_id", DataType::Utf8, false),
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(events.iter().map(|e| e.0))),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    events.iter().map(|e| e.1 * 1_000_000),
                )),
            ],
        )
        .unwrap()
    };
    let uri = URIS[0];
    // Loads the script, so that the armed request is the batch's own call.
    let warm = observe(&store, uri, &batch(&[("acct-warm", 1_000)]), 0);
    assert!(warm.is_empty());

    // Five events of acct-burst within 60 s raise one alert; a sixth a day later moves
    // the account's newest event past the burst's lateness bound.
    let t0 = 1_767_225_600;
    let events: Vec<(&str, i64)> = (0..5)
        .map(|i| ("acct-burst", t0 + i * 10))
        .chain([("acct-burst", t0 + 86_400)])
        .collect();
    relay.armed.store(true, Ordering::SeqCst);
    let alerts = observe(&store, uri, &batch(&events), 1);
    assert_eq!(
        relay.dropped.load(Ordering::SeqCst),
        1,
        "the script's reply was dropped"
    );
    assert_eq!(
        alert_set(&alerts),
        BTreeSet::from([("acct-burst".to_owned(), (t0 + 40) * 1_000_000)]),
        "the burst's alert comes back although the resent batch no longer raises it"
    );
    let alert = alerts
        .iter()
        .find(|a| a.key == "acct-burst")
        .expect("the burst's alert");
    assert_eq!((alert.uri.as_str(), alert.row, alert.count), (uri, 5, 5));
}
