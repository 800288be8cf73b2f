//! S3 + SQS end to end against a real emulator (moto, started by the harness): the
//! discoverer lists a bucket into SQS and real `pf-worker` processes consume it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pf_test_services::Valkey;
use pf_tests::cluster::{BUCKET, Cluster, finish, terminate};
use pf_tests::{assert_accounted, generate_data, read_summary};
use pf_types::{Compression, FileFormat, RunSummary};

fn merged(summaries: &[&Path]) -> RunSummary {
    let mut total = RunSummary::default();
    for s in summaries {
        let s = read_summary(s);
        assert_accounted(&s);
        total.merge(s);
    }
    total
}

#[test]
fn forty_files_through_sqs_and_two_workers_exactly_once() {
    let c = Cluster::start(60);
    for (prefix, format, compression) in [
        ("in/parquet/", FileFormat::Parquet, Compression::None),
        ("in/ndjson/", FileFormat::Ndjson, Compression::Gzip),
    ] {
        c.upload_generated(prefix, 1_000_000, 20, format, compression);
    }

    let report = c.discover_to_sqs(&["--prefix", "in/"]);
    assert!(report.contains("40 messages sent"), "{report}");

    let (s1, s2) = c.two_workers(&[]);
    let total = merged(&[&s1, &s2]);
    assert_eq!(
        total.files_completed, 40,
        "every file exactly once: {total:?}"
    );
    assert_eq!(total.files_failed, 0);
    assert_eq!(total.files_skipped, 0);
    assert_eq!(total.totals.rows_read, 2_000_000);
    assert_eq!(total.totals.rows_indexed, 2_000_000);
    // Both workers took part.
    assert!(read_summary(&s1).files_completed > 0 && read_summary(&s2).files_completed > 0);
    assert!(c.queues_empty(), "queue and DLQ must be empty at the end");
}

/// One large object through SQS: the worker that receives it cuts it into ranges,
/// which go back to SQS for both workers (sharing metadata in Valkey); every row is read
/// once and the file counts once, by the worker that completes its last range.
#[test]
fn a_large_parquet_object_is_cut_into_ranges_that_two_workers_share_through_sqs() {
    a_large_object_is_cut_into_ranges_that_two_workers_share_through_sqs(
        FileFormat::Parquet,
        300_000,
    );
}

/// The same for uncompressed NDJSON, whose ranges start at line starts (fewer rows:
/// moto copies the whole object for every ranged GET).
#[test]
fn a_large_ndjson_object_is_cut_into_ranges_that_two_workers_share_through_sqs() {
    a_large_object_is_cut_into_ranges_that_two_workers_share_through_sqs(
        FileFormat::Ndjson,
        20_000,
    );
}

fn a_large_object_is_cut_into_ranges_that_two_workers_share_through_sqs(
    format: FileFormat,
    rows: u64,
) {
    let c = Cluster::start(60);
    c.upload_generated("big/", rows, 1, format, Compression::None);
    let report = c.discover_to_sqs(&["--prefix", "big/"]);
    assert!(report.contains("1 messages sent"), "{report}");

    let valkey = Valkey::start();
    let url = valkey.url();
    let (s1, s2) = c.two_workers(&["--valkey-url", &url, "--set", "worker.split_size_mib=1"]);
    let total = merged(&[&s1, &s2]);
    assert_eq!(
        (total.files_split, total.files_completed, total.files_failed),
        (1, 1, 0),
        "cut once, counted once: {total:?}"
    );
    assert!(total.ranges_completed >= 2, "{total:?}");
    assert_eq!(
        (total.totals.rows_read, total.totals.rows_indexed),
        (rows, rows),
        "every row read once"
    );
    assert!(c.queues_empty(), "queue and DLQ must be empty at the end");
}

#[test]
fn discovery_paginates_2500_objects_with_and_without_a_pattern() {
    let c = Cluster::start(60);
    for i in 0..2500 {
        let key = if i % 2 == 0 {
            format!("many/{:02}/f{i:04}.parquet", i % 7)
        } else {
            format!("many/f{i:04}.ndjson.gz")
        };
        c.moto.put_object(BUCKET, &key, vec![b'x'; 1 + i % 5]);
    }
    c.moto.put_object(BUCKET, "elsewhere/x.parquet", vec![1]);
    let list = |extra: &[&str]| {
        let mut args = vec!["--bucket", BUCKET, "--prefix", "many/"];
        args.push("--s3-endpoint");
        args.push(&c.endpoint);
        args.extend_from_slice(extra);
        let out = c.run("pf-discoverer", &args);
        let items: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["uri"].as_str().unwrap().to_owned()
            })
            .collect();
        items
    };
    let all = list(&[]);
    assert_eq!(all.len(), 2500);
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 2500, "no object twice");
    assert!(all.iter().all(|u| u.starts_with("s3://data/many/")));

    let parquet = list(&["--pattern", "**/*.parquet"]);
    assert_eq!(parquet.len(), 1250);
    let gz = list(&["--pattern", "*.ndjson.gz"]);
    assert_eq!(gz.len(), 1250);
    let sized = list(&["--min-size", "5"]);
    assert_eq!(sized.len(), 500);
    let future = list(&["--modified-after", "2999-01-01"]);
    assert!(future.is_empty());
}

#[test]
fn corrupt_and_vanished_objects_go_to_the_dlq_with_their_class() {
    let c = Cluster::start(60);
    c.upload_generated("in/", 30_000, 3, FileFormat::Parquet, Compression::None);
    c.moto.put_object(
        BUCKET,
        "in/corrupt.parquet",
        b"PAR1 this is not parquet PAR1".to_vec(),
    );
    c.moto
        .put_object(BUCKET, "in/vanishing.ndjson", b"{\"a\":1}\n".to_vec());
    let report = c.discover_to_sqs(&["--prefix", "in/"]);
    assert!(report.contains("5 messages sent"), "{report}");
    c.moto.delete_object(BUCKET, "in/vanishing.ndjson");

    let (code, log, s) = c.work("w.json", &[]);
    assert_eq!(code, 2, "some files failed: exit 2\n{log}");
    let summary = read_summary(&s);
    assert_eq!(summary.files_completed, 3);
    assert_eq!(summary.files_failed, 2);
    assert_eq!(summary.totals.rows_indexed, 30_000);

    let letters = c.dlq_letters();
    assert_eq!(letters.len(), 2, "{letters:?}");
    for l in &letters {
        let body = l["body"].as_str().unwrap();
        let attrs = &l["attributes"];
        assert_eq!(attrs["pf_error_class"], "permanent", "{l}");
        let message = attrs["pf_error_message"].as_str().unwrap();
        if body.contains("corrupt.parquet") {
            assert!(message.to_lowercase().contains("parquet"), "{message}");
        } else {
            assert!(body.contains("vanishing.ndjson"), "{body}");
            assert!(message.contains("not found"), "{message}");
        }
        assert!(
            attrs["pf_worker_id"]
                .as_str()
                .is_some_and(|w| !w.is_empty())
        );
        assert!(attrs["pf_first_failure_time"].as_str().is_some());
    }
    // Inspect did not consume; the work queue is empty.
    assert_eq!(c.moto.queue_depth(&c.dlq_url).0, 2);
    assert_eq!(c.moto.queue_depth(&c.queue_url), (0, 0));

    // Redrive the permanent failures back, after fixing nothing: they fail again.
    c.run(
        "pf",
        &[
            "dlq",
            "--dlq-url",
            &c.dlq_url,
            "redrive",
            "--queue-url",
            &c.queue_url,
            "--class",
            "permanent",
        ],
    );
    assert_eq!(c.moto.queue_depth(&c.dlq_url).0, 0);
    assert_eq!(c.moto.queue_depth(&c.queue_url).0, 2);
    c.purge_dlq();
}

/// A Rhai transform that burns a fixed number of operations per record, so a file takes
/// several visibility timeouts whatever the machine.
fn slow_config(dir: &Path, grace_secs: u64) -> PathBuf {
    let script = dir.join("slow.rhai");
    std::fs::write(
        &script,
        "fn transform(record) { let x = 0; for i in 0..400 { x += i; } record }\n",
    )
    .unwrap();
    let config = dir.join("slow.yaml");
    std::fs::write(
        &config,
        format!(
            "worker:\n  shutdown_grace_secs: {grace_secs}\nreader:\n  batch_size: 1000\ntransform:\n  script: {}\n  max_operations: 1000000\n",
            script.display()
        ),
    )
    .unwrap();
    config
}

/// A cluster whose queue hides a received message for `visibility_timeout` seconds, with
/// 60,000 NDJSON rows over `files` files discovered into it; and a [`slow_config`] with
/// `grace_secs` of shutdown grace.
fn slow_cluster(visibility_timeout: u32, files: usize, grace_secs: u64) -> (Cluster, PathBuf) {
    let c = Cluster::start(visibility_timeout);
    c.upload_generated("t/", 60_000, files, FileFormat::Ndjson, Compression::None);
    c.discover_to_sqs(&["--prefix", "t/"]);
    let config = slow_config(c.dir.path(), grace_secs);
    (c, config)
}

#[test]
fn a_file_slower_than_the_visibility_timeout_is_processed_once() {
    let (c, config) = slow_cluster(2, 1, 30);
    let config = config.to_str().unwrap();
    let (s1, s2) = (c.path("a.json"), c.path("b.json"));
    let started = Instant::now();
    let a = c.spawn_worker(&s1, &["--config", config, "--visibility-timeout", "2"]);
    let b = c.spawn_worker(&s2, &["--config", config, "--visibility-timeout", "2"]);
    let (ca, la) = finish(a);
    let (cb, lb) = finish(b);
    assert_eq!((ca, cb), (0, 0), "{la}\n{lb}");
    let total = merged(&[&s1, &s2]);
    // The test only means something if the file outlived several visibility timeouts.
    let file_secs = started.elapsed().as_secs_f64() - 3.0;
    assert!(
        file_secs > 4.0,
        "the slow file took only {file_secs:.1} s; make the script slower"
    );
    assert_eq!(
        total.files_completed, 1,
        "processed once, not twice: {total:?}"
    );
    assert_eq!(total.totals.rows_indexed, 60_000);
    assert!(c.queues_empty());
}

#[test]
fn sigterm_mid_file_then_a_new_worker_loses_nothing() {
    // Grace 0: the first worker gives its files back at the next checkpoint.
    let (c, config) = slow_cluster(30, 2, 0);
    let config = config.to_str().unwrap();
    let s1 = c.path("first.json");
    let first = c.spawn_worker(&s1, &["--config", config]);
    // Wait until it is working (the queue shows the files in flight), then SIGTERM.
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.moto.queue_depth(&c.queue_url).1 == 0 {
        assert!(Instant::now() < deadline, "worker never took a file");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (code, log) = terminate(first);
    assert_eq!(code, 0, "SIGTERM ends the worker cleanly:\n{log}");
    assert!(
        log.contains("released at a checkpoint for shutdown"),
        "{log}"
    );
    let first_summary = read_summary(&s1);
    assert!(first_summary.files_completed < 2, "{first_summary:?}");

    let (code, log, s2) = c.work("second.json", &["--config", config]);
    assert_eq!(code, 0, "{log}");
    let total = merged(&[&s1, &s2]);
    assert_eq!(total.files_completed, 2, "{total:?}");
    assert_eq!(total.totals.rows_indexed, 60_000, "every row, none lost");
    assert!(c.queues_empty());
}

#[test]
fn s3_event_notifications_are_processed_like_work_items() {
    let c = Cluster::start(60);
    let data = c.path("ev");
    generate_data(&data, 20_000, 2, FileFormat::Parquet, Compression::None);
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let key = format!(
            "events/2026 01/{}",
            path.file_name().unwrap().to_str().unwrap()
        );
        c.moto
            .put_object(BUCKET, &key, std::fs::read(&path).unwrap());
        keys.push(key.replace(' ', "+"));
    }
    let record = |key: &str| {
        format!(
            r#"{{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{{"bucket":{{"name":"{BUCKET}"}},"object":{{"key":"{key}"}}}}}}"#
        )
    };
    c.moto.send_message(
        &c.queue_url,
        r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"data"}"#,
    );
    c.moto.send_message(
        &c.queue_url,
        &format!(r#"{{"Records":[{}]}}"#, record(&keys[0])),
    );
    c.moto.send_message(
        &c.queue_url,
        &format!(r#"{{"Records":[{}]}}"#, record(&keys[1])),
    );
    let (_, summary) = c.work_exit("ev.json", &[], 0);
    assert_eq!(summary.files_completed, 2);
    assert_eq!(summary.totals.rows_indexed, 20_000);
    assert!(c.queues_empty());
}

#[test]
fn record_dlq_can_be_an_s3_prefix() {
    let c = Cluster::start(60);
    let mut body = String::new();
    for i in 0..1000 {
        if i % 100 == 7 {
            body.push_str("{not json\n");
        } else {
            body.push_str(&format!("{{\"id\":{i},\"amount\":{}.5}}\n", i % 50));
        }
    }
    c.moto
        .put_object(BUCKET, "rec/mixed.ndjson", body.into_bytes());
    c.discover_to_sqs(&["--prefix", "rec/"]);
    let (_, summary) = c.work_exit("rec.json", &["--dlq-s3-prefix", "s3://data/record-dlq/"], 0);
    assert_eq!(summary.totals.rows_indexed, 990);
    assert_eq!(summary.totals.rows_failed, 10);

    let listed = c
        .moto
        .aws()
        .block_on(
            c.moto
                .s3()
                .list_objects_v2()
                .bucket(BUCKET)
                .prefix("record-dlq/")
                .send(),
        )
        .unwrap();
    let mut lines = Vec::new();
    for o in listed.contents() {
        let got = c
            .moto
            .aws()
            .block_on(
                c.moto
                    .s3()
                    .get_object()
                    .bucket(BUCKET)
                    .key(o.key().unwrap())
                    .send(),
            )
            .unwrap();
        let bytes = c
            .moto
            .aws()
            .block_on(got.body.collect())
            .unwrap()
            .into_bytes();
        for l in std::str::from_utf8(&bytes).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            lines.push((
                v["line"].as_u64().unwrap(),
                v["record"].as_str().unwrap().to_owned(),
            ));
        }
    }
    lines.sort();
    assert_eq!(lines.len(), 10, "{lines:?}");
    assert_eq!(
        lines[0],
        (8, "{not json".to_owned()),
        "1-based line numbers"
    );
    assert!(c.queues_empty());
}

#[test]
fn local_paths_from_the_queue_are_refused_unless_allowed() {
    let c = Cluster::start(60);
    // A local file a queue message names: refused by default, read under storage.local.allow.
    let allowed = c.path("allowed");
    std::fs::create_dir_all(&allowed).unwrap();
    let local = allowed.join("local.ndjson");
    std::fs::write(&local, "{\"a\":1}\n{\"a\":2}\n").unwrap();
    let send_both = || {
        for uri in [
            "file:///etc/passwd".to_owned(),
            format!("file://{}", local.display()),
        ] {
            c.moto.send_message(
                &c.queue_url,
                &format!(r#"{{"uri":"{uri}","format":"ndjson"}}"#),
            );
        }
    };
    send_both();

    let (code, log, s) = c.work("refused.json", &[]);
    assert_eq!(code, 2, "both items fail permanently\n{log}");
    let summary = read_summary(&s);
    assert_eq!(summary.files_failed, 2, "{log}");
    assert_eq!(
        summary.totals.rows_read, 0,
        "nothing of either file is read"
    );
    let letters = c.dlq_letters();
    assert_eq!(letters.len(), 2, "{letters:?}");
    for l in &letters {
        assert_eq!(l["attributes"]["pf_error_class"], "permanent", "{l}");
        let message = l["attributes"]["pf_error_message"].as_str().unwrap();
        assert!(
            message.contains("not under storage.local.allow"),
            "{message}"
        );
    }
    c.purge_dlq();

    // With the directory allowed, its file is read and /etc/passwd still is not.
    send_both();
    let set = format!("storage.local.allow=[{}]", allowed.display());
    let (log, summary) = c.work_exit("allowed.json", &["--set", &set], 2);
    assert_eq!(
        (summary.files_completed, summary.files_failed),
        (1, 1),
        "{log}"
    );
    assert_eq!(summary.totals.rows_read, 2);
    assert_eq!(summary.totals.rows_indexed, 2);
}

#[test]
fn objects_changed_since_discovery_fail_permanently_and_are_never_spliced() {
    let c = Cluster::start(60);
    c.moto
        .put_object(BUCKET, "chg/a.ndjson", b"{\"a\":1}\n{\"a\":2}\n".to_vec());
    c.moto
        .put_object(BUCKET, "chg/b.ndjson", b"{\"b\":1}\n".to_vec());
    c.discover_to_sqs(&["--prefix", "chg/"]);
    // Rewritten after discovery: its work item names a version that no longer exists.
    c.moto.put_object(
        BUCKET,
        "chg/a.ndjson",
        b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n".to_vec(),
    );
    let (log, summary) = c.work_exit("chg.json", &[], 2);
    assert_eq!(
        (summary.files_completed, summary.files_failed),
        (1, 1),
        "{log}"
    );
    assert_eq!(summary.totals.rows_indexed, 1, "only b.ndjson is read");
    let failure = &summary.failures[0];
    assert!(failure.uri.ends_with("chg/a.ndjson"), "{failure:?}");
    assert_eq!(failure.class, pf_error::ErrorClass::Permanent);
    assert!(
        failure.error.contains("object changed since discovery"),
        "{failure:?}"
    );
    c.purge_dlq();
}

#[test]
fn crafted_messages_end_in_the_dlq_with_a_reason_and_spare_their_batch() {
    let c = Cluster::start(60);
    c.moto
        .put_object(BUCKET, "ok/good.ndjson", b"{\"a\":1}\n{\"a\":2}\n".to_vec());
    let crafted = [
        "this is not json".to_owned(),
        // A 200 KB body.
        format!(
            r#"{{"uri":"s3://{BUCKET}/x.ndjson","pad":"{}"}}"#,
            "y".repeat(200_000)
        ),
        // Control characters in the URI (escaped in the JSON, raw once decoded).
        format!(r#"{{"uri":"s3://{BUCKET}/a\u0001b\u001f.ndjson","format":"ndjson"}}"#),
        r#"{"uri":5,"format":"ndjson"}"#.to_owned(),
        r#"{"uri":"s3://data/y.ndjson","format":"excel"}"#.to_owned(),
        r#"[1,2,3]"#.to_owned(),
    ];
    for body in &crafted {
        c.moto.send_message(&c.queue_url, body);
    }
    c.moto.send_message(
        &c.queue_url,
        &format!(r#"{{"uri":"s3://{BUCKET}/ok/good.ndjson","format":"ndjson"}}"#),
    );
    let (code, log, s) = c.work("crafted.json", &[]);
    // The good item is processed whatever shares its receive batch; no thread ends.
    let summary = read_summary(&s);
    assert_eq!(summary.files_completed, 1, "{log}");
    assert_eq!(summary.totals.rows_indexed, 2, "{log}");
    assert!(code == 0 || code == 2, "{log}");
    // Every crafted message is in the DLQ, permanent, with a reason; none is left behind.
    let letters = c.dlq_letters();
    assert_eq!(letters.len(), crafted.len(), "{letters:?}");
    for l in &letters {
        let attrs = &l["attributes"];
        assert_eq!(attrs["pf_error_class"], "permanent", "{l}");
        let reason = attrs["pf_error_message"].as_str().unwrap_or_default();
        assert!(!reason.is_empty() && reason.chars().count() <= 1000, "{l}");
        assert!(
            !reason.contains('\u{1}'),
            "attribute values are sanitized: {reason:?}"
        );
    }
    assert_eq!(c.moto.queue_depth(&c.queue_url), (0, 0));
    c.purge_dlq();
}
