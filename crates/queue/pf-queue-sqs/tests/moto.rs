//! The SQS queue, sender and DLQ operations against a real SQS emulator (moto).

use std::time::Duration;

use pf_error::ErrorClass;
use pf_queue_sqs::{
    DeadLetters, QueueSpec, SqsConfig, SqsWorkQueue, WorkItemSender, attributes, setup_queues,
};
use pf_test_services::Moto;
use pf_traits::WorkQueue;
use pf_types::{FileFailure, WorkItem};

fn spec(name: &str) -> QueueSpec {
    QueueSpec {
        name: name.into(),
        dlq_name: None,
        visibility_timeout_secs: 30,
        max_receive_count: 5,
        retention_secs: 3600,
    }
}

fn options(queue_url: &str) -> SqsConfig {
    SqsConfig {
        wait_time_secs: 1,
        visibility_timeout_secs: 30,
        prefetch: 2,
        max_messages: 10,
        ..SqsConfig::for_queue(queue_url)
    }
}

fn item(i: usize) -> WorkItem {
    WorkItem::from_uri(format!("s3://b/file-{i:03}.parquet")).unwrap()
}

/// Receives until `n` deliveries arrived or several polls came back empty.
fn receive_all(q: &SqsWorkQueue, n: usize) -> Vec<pf_traits::Delivery> {
    let mut got = Vec::new();
    let mut empty = 0;
    while got.len() < n && empty < 5 {
        let d = q.receive(1, Duration::from_secs(1)).unwrap();
        if d.is_empty() {
            empty += 1;
        }
        got.extend(d);
    }
    got
}

#[test]
fn setup_is_idempotent_and_wires_the_redrive_policy() {
    let moto = Moto::start();
    let first = setup_queues(moto.aws(), &spec("work")).unwrap();
    let again = setup_queues(moto.aws(), &spec("work")).unwrap();
    assert_eq!(first, again);
    assert!(first.dlq_url.ends_with("/work-dlq"), "{}", first.dlq_url);
    // The queue finds its DLQ from the redrive policy alone.
    let q = SqsWorkQueue::connect(
        moto.aws().clone(),
        &options(&first.queue_url),
        "test-worker",
    )
    .unwrap();
    assert_eq!(q.dlq_url(), first.dlq_url);
}

#[test]
fn a_queue_without_dlq_is_a_config_error() {
    let moto = Moto::start();
    let url = moto.create_queue("bare", &[]);
    let e = SqsWorkQueue::connect(moto.aws().clone(), &options(&url), "test-worker")
        .err()
        .expect("no DLQ must be refused");
    assert!(e.to_string().contains("queue.sqs.dlq_url"), "{e}");
}

#[test]
fn send_receive_release_ack_and_dead_letter() {
    let moto = Moto::start();
    let urls = setup_queues(moto.aws(), &spec("flow")).unwrap();
    let mut sender = WorkItemSender::new(moto.aws().clone(), urls.queue_url.clone(), 4);
    for i in 0..25 {
        sender.send(&item(i)).unwrap();
    }
    let report = sender.finish().unwrap();
    assert_eq!(report.messages, 25);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.calls >= 3);

    let q = SqsWorkQueue::connect(moto.aws().clone(), &options(&urls.queue_url), "test-worker")
        .unwrap();
    let got = receive_all(&q, 25);
    let mut uris: Vec<_> = got.iter().map(|d| d.item.uri.clone()).collect();
    uris.sort();
    uris.dedup();
    assert_eq!(uris.len(), 25, "every item exactly once");
    assert!(got.iter().all(|d| d.receive_count == 1));

    // Release one at once: it comes back with a higher receive count.
    let released = &got[0];
    q.release(released, Duration::ZERO).unwrap();
    let again = receive_all(&q, 1);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].item.uri, released.item.uri);
    assert_eq!(again[0].receive_count, 2);
    q.extend_visibility(&again[0], Duration::from_secs(60))
        .unwrap();

    // Dead-letter it with its failure; ack everything else.
    let failure = FileFailure {
        uri: again[0].item.uri.clone(),
        class: ErrorClass::Permanent,
        error: "invalid parquet data: bad magic".into(),
        attempts: 2,
    };
    q.dead_letter(&again[0], &failure).unwrap();
    for d in &got[1..] {
        q.ack(d).unwrap();
    }
    q.close().unwrap();
    assert_eq!(
        moto.queue_depth(&urls.queue_url),
        (0, 0),
        "work queue drained"
    );

    let dlq = DeadLetters::new(moto.aws().clone(), urls.dlq_url.clone());
    for _ in 0..2 {
        // Inspecting does not consume.
        let letters = dlq.inspect(100).unwrap();
        assert_eq!(letters.len(), 1);
        let l = &letters[0];
        assert_eq!(l.error_class(), Some("permanent"));
        assert_eq!(l.attributes[attributes::ATTEMPTS], "2");
        assert_eq!(l.attributes[attributes::WORKER_ID], "test-worker");
        assert!(l.attributes[attributes::ERROR_MESSAGE].contains("bad magic"));
        assert!(l.attributes.contains_key(attributes::FIRST_FAILURE));
        let back = WorkItem::parse_message(&l.body).unwrap();
        assert_eq!(back[0].uri, failure.uri);
    }

    // A redrive filtered to another class moves nothing; the right class moves it.
    let r = dlq
        .redrive(&urls.queue_url, Some(ErrorClass::Transient))
        .unwrap();
    assert_eq!((r.moved, r.kept), (0, 1));
    let r = dlq
        .redrive(&urls.queue_url, Some(ErrorClass::Permanent))
        .unwrap();
    assert_eq!((r.moved, r.kept), (1, 0));
    assert_eq!(moto.queue_depth(&urls.dlq_url).0, 0);
    let back = receive_all(&q, 1);
    assert_eq!(back[0].item.uri, failure.uri);
    q.ack(&back[0]).unwrap();
}

#[test]
fn foreign_messages_are_settled_by_the_queue() {
    let moto = Moto::start();
    let urls = setup_queues(moto.aws(), &spec("events")).unwrap();
    // Not JSON: dead-lettered as permanent. Test event: deleted. Two-record S3 event:
    // split into two work items (URL-encoded keys decoded).
    moto.send_message(&urls.queue_url, "this is not a work item");
    moto.send_message(
        &urls.queue_url,
        r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#,
    );
    moto.send_message(
        &urls.queue_url,
        r#"{"Records":[
          {"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"in/a+b%3D1.parquet","size":10,"eTag":"e1"}}},
          {"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"in/c.ndjson.gz","size":20,"eTag":"e2"}}}]}"#,
    );
    let q = SqsWorkQueue::connect(moto.aws().clone(), &options(&urls.queue_url), "test-worker")
        .unwrap();
    let got = receive_all(&q, 2);
    let mut uris: Vec<_> = got.iter().map(|d| d.item.uri.clone()).collect();
    uris.sort();
    assert_eq!(uris, ["s3://b/in/a b=1.parquet", "s3://b/in/c.ndjson.gz"]);
    for d in &got {
        q.ack(d).unwrap();
    }
    assert_eq!(moto.queue_depth(&urls.queue_url), (0, 0));
    let letters = DeadLetters::new(moto.aws().clone(), urls.dlq_url.clone())
        .inspect(10)
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].body, "this is not a work item");
    assert_eq!(letters[0].error_class(), Some("permanent"));
    DeadLetters::new(moto.aws().clone(), urls.dlq_url.clone())
        .purge()
        .unwrap();
    assert_eq!(moto.queue_depth(&urls.dlq_url), (0, 0));
}

#[test]
fn sending_to_a_missing_queue_fails_permanently() {
    let moto = Moto::start();
    let missing = format!("{}/123456789012/missing", moto.endpoint());
    let mut sender = WorkItemSender::new(moto.aws().clone(), missing, 2);
    sender.send(&item(1)).unwrap();
    let e = sender.finish().unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent, "{e}");
}
