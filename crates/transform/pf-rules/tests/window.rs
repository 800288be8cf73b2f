//! Window semantics: inclusive boundaries, late events, exactly-once alerts that do not
//! depend on order or on how the data is split across workers, replays, eviction bounds.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{StringArray, TimestampMicrosecondArray};
use common::{Rng, SEC};
use pf_rules::{
    BatchMeta, MemoryWindowOptions, MemoryWindowStore, WindowAlert, WindowOutcome, WindowRequest,
    WindowStore,
};

const MIN: u32 = 5;
const WINDOW_S: u64 = 60;

/// One event: key, time (µs), ordinal (its identity with the uri "mem://events").
type Ev = (String, Option<i64>, u64);

fn observe(store: &dyn WindowStore, events: &[Ev]) -> WindowOutcome {
    let keys = StringArray::from(
        events
            .iter()
            .map(|e| Some(e.0.as_str()))
            .collect::<Vec<_>>(),
    );
    let times = TimestampMicrosecondArray::from(events.iter().map(|e| e.1).collect::<Vec<_>>());
    let ordinals: Vec<u64> = events.iter().map(|e| e.2).collect();
    let meta = BatchMeta {
        ordinals: Some(&ordinals),
        ..BatchMeta::contiguous("mem://events", 0)
    };
    let rule = ("rapid", WINDOW_S, MIN);
    observe_rule(store, rule, &keys, &times, &meta).unwrap()
}

/// One batch under `rule` = (name, window seconds, minimum count).
fn observe_rule(
    store: &dyn WindowStore,
    (rule, seconds, min_count): (&str, u64, u32),
    keys: &StringArray,
    times: &TimestampMicrosecondArray,
    meta: &BatchMeta<'_>,
) -> pf_error::Result<WindowOutcome> {
    store.observe(&WindowRequest {
        rule,
        keys,
        times,
        seconds,
        min_count,
        meta,
    })
}

/// Events of `key` at `secs`, with ordinals 0, 1, ….
fn series(key: &str, secs: &[f64]) -> Vec<Ev> {
    secs.iter().zip(0..).map(|(s, i)| ev(key, *s, i)).collect()
}

fn ev(key: &str, secs: f64, ordinal: u64) -> Ev {
    (key.to_owned(), Some((secs * 1e6).round() as i64), ordinal)
}

fn flags(o: &WindowOutcome) -> Vec<bool> {
    o.fired.iter().collect()
}

fn keys(alerts: &[WindowAlert]) -> Vec<(String, i64)> {
    alerts
        .iter()
        .map(|a| (a.key.clone(), a.window_end))
        .collect()
}

#[test]
fn five_in_sixty_seconds_inclusive_at_both_ends() {
    // The fifth event exactly 60 s after the first: [t-60, t] includes the first.
    let store = MemoryWindowStore::new();
    let events = series("k", &[0.0, 15.0, 30.0, 45.0, 60.0]);
    let o = observe(&store, &events);
    assert_eq!(flags(&o), [false, false, false, false, true]);
    assert_eq!(keys(&o.alerts), [("k".to_owned(), 60 * SEC)]);
    assert_eq!(o.alerts[0].count, 5);
    assert_eq!(o.alerts[0].row, 4);
    assert!(!o.alerts[0].late);

    // One microsecond later and the first event is out.
    let store = MemoryWindowStore::new();
    let events = series("k", &[0.0, 15.0, 30.0, 45.0, 60.000001]);
    let o = observe(&store, &events);
    assert_eq!(flags(&o), [false; 5]);
    assert!(o.alerts.is_empty());

    // Events one per batch give the same flags as one batch; keys do not mix.
    let store = MemoryWindowStore::new();
    let mut got = Vec::new();
    for (i, s) in [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 100.0, 101.0]
        .iter()
        .enumerate()
    {
        got.extend(flags(&observe(&store, &[ev("k", *s, i as u64)])));
        let other = observe(&store, &[ev("other", *s, 100 + i as u64)]);
        assert_eq!(flags(&other), [(4..6).contains(&i)]);
    }
    assert_eq!(got, [false, false, false, false, true, true, false, false]);

    // Five events at the same time: the fifth fires; one alert for (key, t).
    let store = MemoryWindowStore::new();
    let events: Vec<Ev> = (0..6).map(|i| ev("k", 7.0, i)).collect();
    let o = observe(&store, &events);
    assert_eq!(flags(&o), [false, false, false, false, true, true]);
    assert_eq!(keys(&o.alerts), [("k".to_owned(), 7 * SEC)]);
    assert_eq!(
        o.alerts[0].row, 0,
        "the alert names the first event at t_end"
    );

    // min_count 1: every event qualifies.
    let store = MemoryWindowStore::new();
    let keys_a = StringArray::from(vec!["a", "b"]);
    let times = TimestampMicrosecondArray::from(vec![1, 2]);
    let meta = BatchMeta::contiguous("u", 0);
    let o = observe_rule(&store, ("single", 1, 1), &keys_a, &times, &meta).unwrap();
    assert_eq!(flags(&o), [true, true]);
    assert_eq!(o.alerts.len(), 2);
}

#[test]
fn rules_keep_separate_state() {
    let store = MemoryWindowStore::new();
    let events: Vec<Ev> = (0..4).map(|i| ev("k", i as f64, i)).collect();
    observe(&store, &events);
    let keys_a = StringArray::from(vec!["k"]);
    let times = TimestampMicrosecondArray::from(vec![5 * SEC]);
    let meta = BatchMeta::contiguous("other", 0);
    let rule = ("another_rule", WINDOW_S, MIN);
    let o = observe_rule(&store, rule, &keys_a, &times, &meta).unwrap();
    assert_eq!(flags(&o), [false]);
}

#[test]
fn late_events_raise_the_alerts_they_complete() {
    let store = MemoryWindowStore::new();
    let o = observe(
        &store,
        &[
            ev("k", 10.0, 1),
            ev("k", 20.0, 2),
            ev("k", 30.0, 3),
            ev("k", 40.0, 4),
            ev("k", 100.0, 5),
        ],
    );
    assert_eq!(flags(&o), [false; 5]);
    assert!(o.alerts.is_empty());
    // A late event at 5 s: its own window [-55, 5] holds 1 event, but the event at 40 s
    // now has 5 in [-20, 40] and qualifies; 30 s has only 4 in [-30, 30] (5, 10, 20, 30);
    // 100 s is out of reach.
    let o = observe(&store, &[ev("k", 5.0, 0)]);
    assert_eq!(
        flags(&o),
        [false],
        "flags reflect what is known about the row itself"
    );
    assert_eq!(keys(&o.alerts), [("k".to_owned(), 40 * SEC)]);
    let a = &o.alerts[0];
    assert!(a.late);
    assert_eq!((a.uri.as_str(), a.row, a.count), ("mem://events", 4, 5));
    // Another late event completes 30 s as well; 40 s is not raised twice.
    let o = observe(&store, &[ev("k", 1.0, 6)]);
    assert_eq!(keys(&o.alerts), [("k".to_owned(), 30 * SEC)]);
    // An event now at 41 s qualifies itself (1,5,10,20,30,40,41 in [-19,41]).
    let o = observe(&store, &[ev("k", 41.0, 7)]);
    assert_eq!(flags(&o), [true]);
    assert_eq!(keys(&o.alerts), [("k".to_owned(), 41 * SEC)]);
}

#[test]
fn replays_are_not_counted_twice_and_raise_their_alerts_again() {
    let store = MemoryWindowStore::new();
    let events: Vec<Ev> = (0..4).map(|i| ev("k", i as f64, i)).collect();
    observe(&store, &events);
    // The same four events again (a file re-processed after a crash): still 4 events.
    let o = observe(&store, &events);
    assert_eq!(flags(&o), [false; 4]);
    assert!(o.alerts.is_empty());
    assert_eq!(store.stats().events, 4);
    let o = observe(&store, &[ev("k", 4.0, 4)]);
    assert_eq!(flags(&o), [true]);
    assert_eq!(keys(&o.alerts), [("k".to_owned(), 4 * SEC)]);
    // Replaying the qualifying event keeps its flag and raises its alert again (the first
    // raise may have died with the worker), still counting 5 events.
    let o = observe(&store, &[ev("k", 4.0, 4)]);
    assert_eq!(flags(&o), [true]);
    assert_eq!(keys(&o.alerts), [("k".to_owned(), 4 * SEC)]);
    assert_eq!(o.alerts[0].count, 5);
    assert_eq!(store.stats().events, 5);
    // Replaying the whole window raises that alert once, not once per event.
    let all: Vec<Ev> = (0..5).map(|i| ev("k", i as f64, i)).collect();
    let o = observe(&store, &all);
    assert_eq!(keys(&o.alerts), [("k".to_owned(), 4 * SEC)]);
}

#[test]
fn a_crash_after_raising_loses_no_alert_on_replay() {
    // A worker raises alerts for a stretch of data and dies before they reach their
    // destination; its replacement replays the stretch and raises them again.
    let events = traffic(3);
    let mut sorted = events.clone();
    sorted.sort_by_key(|e| (e.1, e.2));
    // The replay must be within the allowed lateness of what the store has seen since:
    // older events are too late to count, or to raise anything again.
    let store = MemoryWindowStore::with_options(MemoryWindowOptions {
        allowed_lateness: Duration::from_secs(86_400),
        ..MemoryWindowOptions::default()
    });
    let (before, stretch) = sorted.split_at(sorted.len() / 2);
    for chunk in before.chunks(50) {
        observe(&store, chunk);
    }
    let mut lost = Vec::new();
    for chunk in stretch.chunks(50) {
        lost.extend(observe(&store, chunk).alerts);
    }
    assert!(!lost.is_empty(), "the stretch raises alerts");
    let mut again = Vec::new();
    for chunk in stretch.chunks(50) {
        again.extend(observe(&store, chunk).alerts);
    }
    let lost: BTreeSet<(String, i64)> = keys(&lost).into_iter().collect();
    let again: BTreeSet<(String, i64)> = keys(&again).into_iter().collect();
    assert!(
        lost.is_subset(&again),
        "missing: {:?}",
        lost.difference(&again).collect::<Vec<_>>()
    );
    assert!(
        again.is_subset(&truth(&events)),
        "only real alerts are raised again"
    );
}

#[test]
fn null_keys_and_times_are_not_events() {
    let store = MemoryWindowStore::new();
    let keys_a = StringArray::from(vec![
        Some("k"),
        None,
        Some("k"),
        Some("k"),
        Some("k"),
        Some("k"),
    ]);
    let times =
        TimestampMicrosecondArray::from(vec![Some(1), Some(2), None, Some(3), Some(4), Some(5)]);
    let meta = BatchMeta::contiguous("u", 0);
    let o = observe_rule(&store, ("r", 60, 4), &keys_a, &times, &meta).unwrap();
    assert_eq!(flags(&o), [false, false, false, false, false, true]);
}

/// Every (key, t) whose inclusive window holds at least MIN events, by brute force.
fn truth(events: &[Ev]) -> BTreeSet<(String, i64)> {
    let mut by_key: HashMap<&str, Vec<i64>> = HashMap::new();
    for e in events {
        if let Some(t) = e.1 {
            by_key.entry(&e.0).or_default().push(t);
        }
    }
    let mut out = BTreeSet::new();
    for (k, ts) in by_key {
        for &t in &ts {
            let n = ts
                .iter()
                .filter(|&&u| u >= t - WINDOW_S as i64 * SEC && u <= t)
                .count();
            if n >= MIN as usize {
                out.insert((k.to_owned(), t));
            }
        }
    }
    out
}

/// Bursty traffic over 30 minutes: 40 keys, occasional bursts, duplicate timestamps.
fn traffic(seed: u64) -> Vec<Ev> {
    let mut rng = Rng(seed);
    let mut events = Vec::new();
    let mut n = 0;
    for _ in 0..400 {
        let key = format!("acct-{}", rng.below(40));
        let t = rng.below(1_800) as i64 * SEC + rng.below(3) as i64 * 500_000;
        let burst = 1 + if rng.below(4) == 0 { rng.below(8) } else { 0 };
        for b in 0..burst {
            let t = t + b as i64 * rng.below(20) as i64 * SEC;
            events.push((key.clone(), Some(t), n));
            n += 1;
        }
    }
    events.push(("acct-x".to_owned(), None, n));
    events
}

fn run_parallel(events: &[Ev], workers: usize, seed: u64) -> Vec<WindowAlert> {
    let store = Arc::new(MemoryWindowStore::with_options(MemoryWindowOptions {
        allowed_lateness: Duration::from_secs(86_400),
        ..MemoryWindowOptions::default()
    }));
    let mut rng = Rng(seed);
    let mut shuffled = events.to_vec();
    rng.shuffle(&mut shuffled);
    let mut batches = Vec::new();
    let mut rest = &shuffled[..];
    while !rest.is_empty() {
        let n = (1 + rng.below(60) as usize).min(rest.len());
        batches.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    let next = AtomicUsize::new(0);
    let alerts = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(batch) = batches.get(i) else { break };
                    let o = observe(store.as_ref(), batch);
                    alerts.lock().unwrap().extend(o.alerts);
                }
            });
        }
    });
    alerts.into_inner().unwrap()
}

#[test]
fn alert_set_is_independent_of_order_and_worker_split() {
    for seed in 1..=6u64 {
        let events = traffic(seed);
        let expected = truth(&events);
        assert!(
            expected.len() > 20,
            "seed {seed}: the traffic must have bursts"
        );

        // Sequential, in time order, in batches of 50.
        let store = MemoryWindowStore::new();
        let mut sorted = events.clone();
        sorted.sort_by_key(|e| (e.1, e.2));
        let mut sequential = Vec::new();
        for chunk in sorted.chunks(50) {
            sequential.extend(observe(&store, chunk).alerts);
        }
        let seq_keys: BTreeSet<(String, i64)> = keys(&sequential).into_iter().collect();
        assert_eq!(seq_keys, expected, "seed {seed}: sequential");
        assert!(sequential.iter().all(|a| !a.late));

        for workers in [1, 2, 4] {
            let alerts = run_parallel(&events, workers, seed * 31 + workers as u64);
            let list = keys(&alerts);
            let set: BTreeSet<(String, i64)> = list.iter().cloned().collect();
            assert_eq!(
                list.len(),
                set.len(),
                "seed {seed}, {workers} workers: an alert was raised twice"
            );
            assert_eq!(set, expected, "seed {seed}, {workers} workers");
            assert!(
                alerts.iter().any(|a| a.late),
                "shuffled input exercises late re-checks"
            );
            // Each alert names an event of its key at t_end.
            for a in &alerts {
                let e = &events[a.row as usize];
                assert_eq!((e.0.as_str(), e.1), (a.key.as_str(), Some(a.window_end)));
                assert!(a.count >= MIN);
            }
        }
    }
}

#[test]
fn too_late_events_are_dropped_and_counted() {
    let store = MemoryWindowStore::with_options(MemoryWindowOptions {
        allowed_lateness: Duration::from_secs(10),
        ..MemoryWindowOptions::default()
    });
    observe(&store, &[ev("k", 1000.0, 0)]);
    // Horizon: 1000 - 60 - 10 = 930 s.
    let o = observe(
        &store,
        &[ev("k", 929.0, 1), ev("k", 930.0, 2), ev("other", 5.0, 3)],
    );
    assert_eq!(o.late_dropped, 1);
    assert_eq!(flags(&o), [false, false, false]);
    assert_eq!(
        store.stats().events,
        3,
        "929 s was not stored; the other key is independent"
    );
}

#[test]
fn memory_is_bounded() {
    // Per key: only events within window + lateness of the newest are kept.
    let store = MemoryWindowStore::with_options(MemoryWindowOptions {
        allowed_lateness: Duration::ZERO,
        ..MemoryWindowOptions::default()
    });
    for chunk in (0..3_600u64).collect::<Vec<_>>().chunks(100) {
        let events: Vec<Ev> = chunk.iter().map(|&s| ev("k", s as f64, s)).collect();
        observe(&store, &events);
    }
    assert_eq!(
        store.stats().events,
        61,
        "events in [newest - 60 s, newest]"
    );

    // Keys: capped, least recently used first.
    let store = MemoryWindowStore::with_options(MemoryWindowOptions {
        shards: 4,
        max_keys: 100,
        ..MemoryWindowOptions::default()
    });
    let mut n = 0;
    for round in 0..100 {
        let events: Vec<Ev> = (0..100)
            .map(|i| {
                n += 1;
                ev(&format!("key-{round}-{i}"), round as f64, n)
            })
            .collect();
        observe(&store, &events);
        let stats = store.stats();
        assert!(stats.keys <= 100, "{stats:?}");
    }
    let stats = store.stats();
    assert!(stats.evicted_keys >= 9_900, "{stats:?}");
    assert_eq!(stats.events, stats.keys);

    // Per-key event cap for a hot key.
    let store = MemoryWindowStore::with_options(MemoryWindowOptions {
        max_events_per_key: 10,
        ..MemoryWindowOptions::default()
    });
    let events: Vec<Ev> = (0..100).map(|i| ev("hot", 0.0, i)).collect();
    let o = observe(&store, &events);
    assert_eq!(store.stats().events, 10);
    assert_eq!(
        o.alerts.len(),
        1,
        "evicting the marked event keeps the alert raised once"
    );
    let o = observe(&store, &[ev("hot", 0.0, 1_000)]);
    assert!(o.alerts.is_empty());
}

#[test]
fn mismatched_lengths_are_an_error_not_a_panic() {
    let store = MemoryWindowStore::new();
    let keys_a = StringArray::from(vec!["a", "b"]);
    let times = TimestampMicrosecondArray::from(vec![1]);
    let meta = BatchMeta::contiguous("u", 0);
    assert!(observe_rule(&store, ("r", 1, 1), &keys_a, &times, &meta).is_err());
}

#[test]
fn window_rules_read_text_times_and_non_text_keys() {
    use arrow::array::{ArrayRef, Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use pf_rules::{CompileOptions, CompiledRules, RuleFile};
    let yaml = "rules:\n  - name: burst\n    window: {key: card, time: at, seconds: 10, min_count: 3}\n    severity: low\n    score: 1\n";
    let file = RuleFile::from_yaml(yaml, "x").unwrap();
    let rules =
        CompiledRules::compile(&file, &common::small_tables(), CompileOptions::default()).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("card", DataType::Int64, true),
        Field::new("at", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![
            Some(7),
            Some(7),
            Some(8),
            Some(7),
            Some(7),
            None,
        ])),
        Arc::new(StringArray::from(vec![
            Some("2026-01-01T00:00:00Z"),
            Some("2026-01-01T01:00:05+01:00"), // 00:00:05Z
            Some("2026-01-01T00:00:06Z"),
            Some("not a time"),
            Some("2026-01-01T00:00:10Z"),
            Some("2026-01-01T00:00:10Z"),
        ])),
    ];
    let batch = RecordBatch::try_new(schema, columns).unwrap();
    let out = rules
        .evaluate(&batch, &BatchMeta::contiguous("u", 0))
        .unwrap();
    let fired: Vec<bool> = out.fired[0].iter().map(Option::unwrap).collect();
    assert_eq!(fired, [false, false, false, false, true, false]);
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].key, "burst|7|1767225610000000");
    assert_eq!(
        out.alerts[0].details["window_start"],
        "2026-01-01T00:00:00Z"
    );
    assert!(out.errors.is_empty());

    // A time field of the wrong type is a record error of every row, not a panic.
    let schema = Arc::new(Schema::new(vec![
        Field::new("card", DataType::Int64, true),
        Field::new("at", DataType::Boolean, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2])),
        Arc::new(arrow::array::BooleanArray::from(vec![true, false])),
    ];
    let batch = RecordBatch::try_new(schema, columns).unwrap();
    let out = rules
        .evaluate(&batch, &BatchMeta::contiguous("u", 0))
        .unwrap();
    assert_eq!(out.failed_rows(), [0, 1]);
    assert!(
        out.errors[0]
            .message
            .starts_with("rule burst: window time field `at` must be"),
        "{:?}",
        out.errors
    );
}
