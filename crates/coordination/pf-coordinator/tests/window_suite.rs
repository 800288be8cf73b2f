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

/// The alerts of two workers observing one file each at the same time, each with its
/// own store (its own connections) on `url` under `prefix`.
fn two_workers_at_once(
    url: &str,
    prefix: &str,
    data: &[Vec<(RecordBatch, u64)>; 2],
) -> Vec<WindowAlert> {
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..2)
            .map(|f| {
                let batches = &data[f];
                s.spawn(move || {
                    let store = valkey_store(url, prefix);
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
    })
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
    let two = two_workers_at_once(&url, "two:", &data);
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

/// Two workers on the same keys at once, and on every step another client changes the
/// slot group's states between a worker's read and its write: that transaction is
/// refused, read and applied again, and each alert is still raised exactly once.
#[test]
fn a_slot_group_changed_between_read_and_write_is_read_and_applied_again() {
    let data = files(100_000, 4096);
    let expected = reference_alerts(&data);
    let expected_set = alert_set(&expected);
    assert_eq!(expected_set.len(), expected.len());

    let server = pf_test_services::Valkey::start();
    let relay = Relay::start(
        server.port(),
        Fault::ChangeStatesBeforeWrite {
            prefix: "race:",
            every: false,
        },
    );
    let stores = [
        valkey_store(&relay.url(), "race:"),
        valkey_store(&server.url(), "race:"),
    ];
    let mut two = Vec::new();
    let steps = data[0].len().max(data[1].len());
    for step in 0..steps {
        relay.armed.store(true, std::sync::atomic::Ordering::SeqCst);
        let raised: Vec<Vec<WindowAlert>> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..2)
                .map(|f| {
                    let (store, batch) = (&stores[f], data[f].get(step));
                    s.spawn(move || {
                        batch.map_or_else(Vec::new, |(b, first)| observe(store, URIS[f], b, *first))
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        two.extend(raised.into_iter().flatten());
    }
    let injected = relay.hits.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        injected >= data[0].len(),
        "a change before a write on every step of worker A"
    );
    assert!(
        stores[0].conflicts() >= injected as u64,
        "each injected change refused a transaction: {} conflicts, {injected} injected",
        stores[0].conflicts()
    );
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

    // Four workers at once, each its own file of the same accounts: every batch of each
    // touches every slot group, so their transactions contend for the same hashes.
    const WORKERS: usize = 4;
    let uris: Vec<String> = (0..WORKERS).map(|w| format!("s3://b/worker-{w}")).collect();
    let stores: Vec<ValkeyWindowStore> = (0..WORKERS)
        .map(|_| valkey_store(&server.url(), "contended:"))
        .collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for (store, uri) in stores.iter().zip(&uris) {
            let batches = &batches;
            s.spawn(move || {
                let mut first = 0;
                for b in batches {
                    observe(store, uri, b, first);
                    first += b.num_rows() as u64;
                }
            });
        }
    });
    let rate = (WORKERS as u64 * ROWS) as f64 / start.elapsed().as_secs_f64();
    let conflicts: u64 = stores.iter().map(ValkeyWindowStore::conflicts).sum();
    let transactions = WORKERS * batches.len() * pf_coordinator::SLOT_GROUPS as usize;
    println!(
        "{WORKERS} workers at once on one Valkey: {:.0} k rows/s in all; {conflicts} of {transactions} \
         slot-group transactions refused and applied again ({:.1}%)",
        rate / 1e3,
        100.0 * conflicts as f64 / transactions as f64
    );
}

/// What a [`Relay`] does, once armed, to the next request holding a transaction
/// (`MULTI`).
enum Fault {
    /// Lets the request through, then closes the connection instead of relaying its
    /// reply: the transaction ran, and the caller never learns what it returned.
    DropReply,
    /// Before letting it through, changes every slot group's states of the rule
    /// `rapid_activity` under this key prefix from another connection, so the watched
    /// hash has changed when the transaction executes; with `every`, to each
    /// transaction until disarmed, else to the next one only.
    ChangeStatesBeforeWrite { prefix: &'static str, every: bool },
}

/// A TCP relay to Valkey that injects one [`Fault`] each time it is armed.
struct Relay {
    port: u16,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Faults injected so far.
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Relay {
    fn start(upstream: u16, fault: Fault) -> Relay {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let (armed2, hits2) = (armed.clone(), hits.clone());
        let fault = Arc::new(fault);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    return;
                };
                let (mut client_in, mut server_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                // This connection's transaction went out while armed: drop its reply.
                let doomed = Arc::new(AtomicBool::new(false));
                let (armed, hits, fault, doomed_in) =
                    (armed2.clone(), hits2.clone(), fault.clone(), doomed.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(n) = client_in.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let multi = buf[..n].windows(5).any(|w| w == b"MULTI");
                        let every =
                            matches!(*fault, Fault::ChangeStatesBeforeWrite { every: true, .. });
                        let fire = || {
                            if every {
                                armed.load(Ordering::SeqCst)
                            } else {
                                armed.swap(false, Ordering::SeqCst)
                            }
                        };
                        if multi && fire() {
                            hits.fetch_add(1, Ordering::SeqCst);
                            match &*fault {
                                Fault::DropReply => doomed_in.store(true, Ordering::SeqCst),
                                Fault::ChangeStatesBeforeWrite { prefix, .. } => {
                                    let mut other = redis::Client::open(format!(
                                        "redis://127.0.0.1:{upstream}"
                                    ))
                                    .unwrap()
                                    .get_connection()
                                    .unwrap();
                                    let mut pipe = redis::pipe();
                                    for g in 0..pf_coordinator::SLOT_GROUPS {
                                        pipe.cmd("HSET")
                                            .arg(format!("{prefix}windows:{{rapid_activity:{g}}}"))
                                            .arg("changed-by-another-client")
                                            .arg(1)
                                            .ignore();
                                    }
                                    let () = pipe.query(&mut other).unwrap();
                                }
                            }
                        }
                        if server_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = server_out.shutdown(Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(n) = server.read(&mut buf) {
                        if n == 0 || doomed.load(Ordering::SeqCst) {
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
        Relay { port, armed, hits }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// The connection drops after a batch's transaction ran and before its reply arrived, and the
/// batch holds a burst of one account followed, in the same batch, by a later event of
/// that account past the lateness bound. Sent again, the batch is a replay in which the
/// burst is now late, so applying it again does not raise its alert; the store must still
/// return it (from the item's held alerts), or the alert is lost for good.
#[test]
fn a_reply_lost_with_the_connection_still_returns_every_alert_of_the_batch() {
    use arrow::array::{StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    let server = pf_test_services::Valkey::start();
    let relay = Relay::start(server.port(), Fault::DropReply);
    let store = ValkeyWindowStore::connect(
        &ValkeyConfig {
            key_prefix: "lost:".into(),
            ..ValkeyConfig::for_url(relay.url())
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
    // A first transaction, so that the armed request is the batch's own.
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
        relay.hits.load(Ordering::SeqCst),
        1,
        "the transaction's reply was dropped"
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

/// Random traffic with everything the semantics cover — events out of order, replays
/// of earlier rows, two files, events beyond the lateness bound, several keys in one
/// batch — gives, batch by batch, the same row flags, alerts and late counts in Valkey
/// as in the in-process store.
#[test]
fn valkey_windows_match_the_in_process_store_event_by_event() {
    let server = pf_test_services::Valkey::start();
    // With room for every event in reach, and with a cap of 3 events per key.
    for max_events in [50, 3] {
        match_the_in_process_store(&server, max_events);
    }
}

fn match_the_in_process_store(server: &pf_test_services::Valkey, max_events: usize) {
    use arrow::array::{StringArray, TimestampMicrosecondArray};
    use pf_traits::{BatchMeta, WindowRequest};

    let lateness = Duration::from_secs(120);
    let valkey = ValkeyWindowStore::connect(
        &ValkeyConfig {
            key_prefix: format!("diff{max_events}:"),
            ..ValkeyConfig::for_url(server.url())
        },
        ValkeyWindowOptions {
            allowed_lateness: lateness,
            max_events_per_key: max_events,
        },
    )
    .unwrap();
    let memory = MemoryWindowStore::with_options(MemoryWindowOptions {
        allowed_lateness: lateness,
        max_events_per_key: max_events,
        ..MemoryWindowOptions::default()
    });
    // xorshift: the same traffic on every run.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut sent: Vec<(String, i64, u64, usize)> = Vec::new();
    let mut clock = 1_767_225_600_000_000i64;
    let (mut alerts_seen, mut late_seen) = (0usize, 0u64);
    for batch in 0..60 {
        let mut events = Vec::new();
        for _ in 0..(1 + next(200)) {
            let r = next(100);
            if r < 10 && !sent.is_empty() {
                // A replay of an earlier row, as after a crash.
                events.push(sent[next(sent.len() as u64) as usize].clone());
                continue;
            }
            clock += next(4_000_000) as i64;
            let t = if r < 30 {
                // Behind the clock: within the lateness mostly, beyond it sometimes.
                clock - next(150_000_000) as i64
            } else {
                clock
            };
            let file = next(2) as usize;
            let row = sent.iter().filter(|e| e.3 == file).count() as u64 + events.len() as u64;
            events.push((format!("k{}", next(12)), t, row, file));
        }
        // One request per file, as the worker sends one per batch of one item.
        for (file, uri) in URIS.iter().enumerate() {
            let part: Vec<&(String, i64, u64, usize)> =
                events.iter().filter(|e| e.3 == file).collect();
            if part.is_empty() {
                continue;
            }
            let keys = StringArray::from_iter_values(part.iter().map(|e| e.0.as_str()));
            let times = TimestampMicrosecondArray::from_iter_values(part.iter().map(|e| e.1));
            let ordinals: Vec<u64> = part.iter().map(|e| e.2).collect();
            let meta = BatchMeta {
                ordinals: Some(&ordinals),
                ..BatchMeta::contiguous(uri, 0)
            };
            let request = WindowRequest {
                rule: "rapid_activity",
                keys: &keys,
                times: &times,
                seconds: 20,
                min_count: 3,
                meta: &meta,
            };
            let (m, v) = (
                memory.observe(&request).unwrap(),
                valkey.observe(&request).unwrap(),
            );
            assert_eq!(
                v.fired, m.fired,
                "row flags of batch {batch}, file {file}, cap {max_events}"
            );
            assert_eq!(
                v.late_dropped, m.late_dropped,
                "late events of batch {batch}"
            );
            let sorted = |a: &[WindowAlert]| {
                let mut a: Vec<_> = a
                    .iter()
                    .map(|a| {
                        (
                            a.key.clone(),
                            a.window_end,
                            a.count,
                            a.uri.clone(),
                            a.row,
                            a.late,
                        )
                    })
                    .collect();
                a.sort();
                a
            };
            assert_eq!(
                sorted(&v.alerts),
                sorted(&m.alerts),
                "alerts of batch {batch}, cap {max_events}"
            );
            alerts_seen += m.alerts.len();
            late_seen += m.late_dropped;
        }
        for e in events {
            if !sent.contains(&e) {
                sent.push(e);
            }
        }
    }
    assert!(alerts_seen > 20, "the traffic raises alerts: {alerts_seen}");
    assert!(late_seen > 0, "the traffic has late events");
}

/// On a Valkey Cluster of three primaries the states spread over every node and two
/// workers raise the alerts of one, each once; a store that learnt the slots before
/// some moved to another node follows the `MOVED` answers and still raises every alert
/// once.
#[test]
fn a_valkey_cluster_holds_the_windows_and_slots_may_move() {
    let data = files(60_000, 2048);
    let expected = reference_alerts(&data);
    let expected_set = alert_set(&expected);
    let cluster = pf_test_services::ValkeyCluster::start(3);
    let url = cluster.url();

    // A store learns the slots; then the first half of node 0's slots move to node 1
    // (while empty: a slot holding keys would have to be migrated).
    let stale = valkey_store(&url, "moved:");
    let target = cluster.command(1, &["CLUSTER", "MYID"]);
    let moving = 0..16_384 / 6;
    let slots: Vec<String> = moving.clone().map(|s| s.to_string()).collect();
    let commands: Vec<Vec<&str>> = slots
        .iter()
        .map(|s| vec!["CLUSTER", "SETSLOT", s.as_str(), "NODE", target.as_str()])
        .collect();
    for node in [1, 0, 2] {
        cluster.pipeline(node, &commands);
    }
    let moved_groups = (0..pf_coordinator::SLOT_GROUPS)
        .filter(|g| {
            let tag = format!("{{rapid_activity:{g}}}");
            let slot: usize = cluster
                .command(0, &["CLUSTER", "KEYSLOT", &tag])
                .parse()
                .unwrap();
            moving.contains(&slot)
        })
        .count();
    assert!(moved_groups > 0, "some slot groups were on the moved slots");

    let two = two_workers_at_once(&url, "cluster:", &data);
    assert_eq!(alert_set(&two), expected_set, "same alerts as one worker");
    assert_eq!(two.len(), expected.len(), "each alert raised exactly once");
    for node in 0..3 {
        let keys: u64 = cluster.command(node, &["DBSIZE"]).parse().unwrap();
        assert!(keys > 0, "node {node} holds some of the 64 slot groups");
    }

    let mut after = Vec::new();
    for (f, batches) in data.iter().enumerate() {
        for (b, first) in batches {
            after.extend(observe(&stale, URIS[f], b, *first));
        }
    }
    assert_eq!(
        alert_set(&after),
        expected_set,
        "same alerts after the move"
    );
    assert_eq!(
        after.len(),
        expected.len(),
        "each alert raised exactly once"
    );
}

/// kill -9 of a primary holding window states, the very node the store was configured
/// with: its replica takes the slots over (automatic failover), and the store, which
/// learnt the slots before, reads them again from a node that answers and goes on with
/// every alert of one worker, each once.
#[test]
fn a_killed_primary_is_replaced_by_its_replica_and_no_alert_is_lost() {
    let data = files(40_000, 2048);
    let expected = reference_alerts(&data);
    let mut cluster = pf_test_services::ValkeyCluster::start(3);
    cluster.add_replica(0);
    let store = ValkeyWindowStore::connect(
        &ValkeyConfig {
            key_prefix: "failover:".into(),
            // Without rerouting, the batch would wait this long for the dead node.
            outage_limit_secs: 60,
            ..ValkeyConfig::for_url(cluster.url())
        },
        ValkeyWindowOptions {
            allowed_lateness: LATENESS,
            ..ValkeyWindowOptions::default()
        },
    )
    .unwrap();
    let mut alerts = Vec::new();
    for (b, first) in &data[0] {
        alerts.extend(observe(&store, URIS[0], b, *first));
    }
    let states: u64 = cluster.command(0, &["DBSIZE"]).parse().unwrap();
    assert!(states > 0, "the killed primary holds window states");
    // Asynchronous replication: only what reached the replica survives the kill.
    cluster.wait_replicated(0);
    cluster.kill(0);
    let started = Instant::now();
    for (b, first) in &data[1] {
        alerts.extend(observe(&store, URIS[1], b, *first));
    }
    eprintln!("second file after the kill: {:?}", started.elapsed());
    assert_eq!(
        alert_set(&alerts),
        alert_set(&expected),
        "same alerts as one worker"
    );
    assert_eq!(alerts.len(), expected.len(), "each alert raised once");
}

/// A slot group changed by another client before every write: after 100 refusals in a
/// row the batch fails as transient (the worker retries it later), its connections are
/// dropped rather than reused mid-transaction, and once the changes stop the same store
/// applies the batch again and goes on with the same alerts as the in-process store.
#[test]
fn a_slot_group_that_keeps_changing_fails_the_batch_as_transient() {
    use std::sync::atomic::Ordering;
    let data = files(20_000, 4096);
    let expected = alert_set(&reference_alerts(&data));
    let server = pf_test_services::Valkey::start();
    let relay = Relay::start(
        server.port(),
        Fault::ChangeStatesBeforeWrite {
            prefix: "busy:",
            every: true,
        },
    );
    let store = valkey_store(&relay.url(), "busy:");
    let (first, first_row) = &data[0][0];
    relay.armed.store(true, Ordering::SeqCst);
    let err = observe_rapid_activity(&store, URIS[0], first, *first_row).unwrap_err();
    relay.armed.store(false, Ordering::SeqCst);
    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string().contains("changed by other workers"),
        "{err}"
    );
    assert!(store.conflicts() > 100, "{} refusals", store.conflicts());
    let mut alerts = Vec::new();
    for (f, batches) in data.iter().enumerate() {
        for (b, first) in batches {
            alerts.extend(observe(&store, URIS[f], b, *first));
        }
    }
    assert_eq!(alert_set(&alerts), expected);
}
