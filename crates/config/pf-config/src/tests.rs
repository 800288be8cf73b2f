use std::path::PathBuf;

use pf_enrichment::{TableConfig, TableFormat, TableKind};
use pf_indexer_es::OpType;
use pf_reader_ndjson::{FieldSpec, FieldType};
use pf_types::{Secret, SecretUrl};
use pf_worker::ProgressMode;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<Config, PfError> {
    Config::from_yaml_str(text, &no_env)
}

/// The key and message of a config error; anything else fails the test.
pub(crate) fn config_err<T: std::fmt::Debug>(result: Result<T, PfError>) -> (String, String) {
    match result {
        Err(PfError::Config { key, message }) => (key, message),
        Err(other) => panic!("expected a config error, got {other:?}"),
        Ok(config) => panic!("expected an error, got {config:?}"),
    }
}

/// `text` as `worker.yaml` in a fresh directory, which lives as long as the handle.
fn temp_worker_yaml(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("worker.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn shipped(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../config")
        .join(name)
}

/// Every variable the production file references, as a deployment would set them.
fn worker_env(name: &str) -> Option<String> {
    let value = match name {
        "PF_SQS_QUEUE_URL" => "https://sqs.eu-west-1.amazonaws.com/123456789012/paraflow-work",
        "PF_SQS_DLQ_URL" => "https://sqs.eu-west-1.amazonaws.com/123456789012/paraflow-dlq",
        "PF_ES_URLS" => "https://es-1.internal:9200, https://es-2.internal:9200",
        "PF_ES_USERNAME" => "paraflow",
        "PF_ES_PASSWORD" => "123456",
        "PF_VALKEY_URL" => "redis://:v4lkey-secret@valkey.internal:6379/0",
        "AWS_REGION" => "eu-west-1",
        "PF_WORKER_THREADS" => "",
        _ => return None,
    };
    Some(value.to_owned())
}

/// The Elasticsearch password of `c`, as it reads after parsing.
fn es_password(c: &Config) -> Option<&str> {
    c.indexer
        .elasticsearch
        .password
        .as_ref()
        .map(Secret::expose)
}

#[test]
fn empty_document_gives_defaults() {
    for text in ["", "\n", "# only a comment\n", "---\n", "worker:\nqueue:\n"] {
        assert_eq!(parse(text).unwrap(), Config::default(), "{text:?}");
    }
    let c = Config::default();
    assert_eq!(c.worker.threads, None);
    assert_eq!(c.worker.id, None);
    assert_eq!(c.worker.max_attempts, 5);
    assert_eq!(c.worker.retry_base_ms, 500);
    assert_eq!(c.worker.retry_max_ms, 60_000);
    assert_eq!(c.worker.idle_exit_secs, None);
    assert_eq!(c.worker.shutdown_grace_secs, 30);
    assert_eq!(c.worker.progress, ProgressMode::Auto);
    assert_eq!(c.queue.kind, QueueKind::Stdin);
    assert_eq!(c.queue.sqs.wait_time_secs, 20);
    assert_eq!(c.queue.sqs.visibility_timeout_secs, 300);
    assert_eq!(c.queue.sqs.max_messages, 10);
    assert_eq!(c.storage.s3, S3Config::default());
    assert_eq!(c.reader.batch_size, 65_536);
    assert_eq!(c.reader.parquet.columns, None);
    assert_eq!(c.reader.ndjson.max_line_bytes, 1_048_576);
    assert_eq!(c.reader.ndjson.infer_rows, 1000);
    assert_eq!(c.reader.ndjson.schema, None);
    assert_eq!(c.indexer.destination, Destination::Stats);
    assert_eq!(c.indexer.bulk_max_docs, 5000);
    assert_eq!(c.indexer.bulk_max_bytes, 5_242_880);
    assert!(c.indexer.elasticsearch.endpoints.is_empty());
    assert_eq!(c.indexer.elasticsearch.index, "transactions");
    assert!(!c.indexer.elasticsearch.compression);
    assert_eq!(c.indexer.elasticsearch.timeout_secs, 30);
    assert_eq!(c.indexer.elasticsearch.max_retries, 5);
    assert_eq!(c.record_dlq.dir, PathBuf::from("./dlq"));
    assert_eq!(c.coordinator.valkey.url, None);
    assert_eq!(c.metrics.addr, None);
    c.validate().unwrap();
}

/// A configuration where every field differs from its default.
fn full_config() -> Config {
    Config {
        worker: WorkerConfig {
            threads: Some(6),
            id: Some("w-1".into()),
            max_attempts: 7,
            retry_base_ms: 250,
            retry_max_ms: 30_000,
            idle_exit_secs: Some(120),
            shutdown_grace_secs: 10,
            progress: ProgressMode::Log,
            split_size_mib: Some(128),
        },
        queue: QueueConfig {
            kind: QueueKind::Sqs,
            sqs: SqsConfig {
                queue_url: Some("http://localhost:4566/000000000000/work".into()),
                dlq_url: Some("http://localhost:4566/000000000000/dlq".into()),
                endpoint: Some("http://localhost:4566".into()),
                region: Some("us-east-1".into()),
                wait_time_secs: 5,
                visibility_timeout_secs: 600,
                max_messages: 4,
                prefetch: 1,
            },
        },
        storage: StorageConfig {
            local: LocalConfig {
                allow: Some(vec![PathBuf::from("/data/in")]),
            },
            s3: S3Config {
                endpoint: Some("http://localhost:4566".into()),
                region: Some("us-east-1".into()),
                force_path_style: Some(false),
            },
        },
        reader: ReaderConfig {
            batch_size: 8192,
            parquet: ParquetConfig {
                columns: Some(vec!["amount".into(), "account_id".into()]),
                ..Default::default()
            },
            ndjson: NdjsonConfig {
                max_line_bytes: 4096,
                max_batch_bytes: 65_536,
                infer_rows: 10,
                schema: Some(vec![
                    FieldSpec {
                        name: "id".into(),
                        field_type: FieldType::String,
                        nullable: false,
                    },
                    FieldSpec {
                        name: "amount".into(),
                        field_type: FieldType::Float64,
                        nullable: true,
                    },
                    FieldSpec {
                        name: "count".into(),
                        field_type: FieldType::Int64,
                        nullable: true,
                    },
                    FieldSpec {
                        name: "flag".into(),
                        field_type: FieldType::Boolean,
                        nullable: true,
                    },
                    FieldSpec {
                        name: "ts".into(),
                        field_type: FieldType::Timestamp,
                        nullable: false,
                    },
                ]),
            },
        },
        indexer: IndexerConfig {
            destination: Destination::Elasticsearch,
            bulk_max_docs: 100,
            bulk_max_bytes: 1024,
            elasticsearch: ElasticsearchConfig {
                endpoints: vec!["https://es-1:9200".into(), "https://es-2:9200".into()],
                index: "tx-2024".into(),
                username: Some("elastic".into()),
                password: Some("changeme".into()),
                api_key: None,
                ca_cert: Some(PathBuf::from("/etc/ssl/es-ca.pem")),
                compression: true,
                timeout_secs: 12,
                max_retries: 2,
                ..ElasticsearchConfig::default()
            },
            parquet: ParquetSinkConfig::default(),
            flight: FlightSinkConfig::default(),
        },
        record_dlq: RecordDlqConfig {
            dir: PathBuf::from("/var/lib/paraflow/dlq"),
            s3_prefix: None,
        },
        coordinator: CoordinatorConfig {
            valkey: ValkeyConfig {
                url: Some("redis://:pw@localhost:6379/1".into()),
                ..ValkeyConfig::default()
            },
        },
        metrics: MetricsConfig {
            addr: Some("127.0.0.1:9898".into()),
        },
        transform: TransformConfig {
            script: Some("scripts/enrich.rhai".into()),
            rules: Some("rules/fraud.yaml".into()),
            max_operations: 5_000,
            watch: true,
            tables: vec![TableConfig {
                name: "geo".into(),
                kind: TableKind::Cidr,
                path: "enrichment/geo.csv".into(),
                format: Some(TableFormat::Csv),
                key: "network".into(),
                values: vec!["country".into()],
            }],
        },
        alerts: AlertsConfig {
            destination: AlertDestination::File,
            path: "/var/log/alerts.ndjson".into(),
            dir: "./alerts".into(),
        },
    }
}

#[test]
fn transform_paths_resolve_against_the_config_directory() {
    let mut c = full_config();
    c.resolve_paths(std::path::Path::new("/etc/paraflow"));
    assert_eq!(
        c.transform.script,
        Some(PathBuf::from("/etc/paraflow/scripts/enrich.rhai"))
    );
    assert_eq!(
        c.transform.tables[0].path,
        PathBuf::from("/etc/paraflow/enrichment/geo.csv")
    );
    // The local allow-list too; absolute entries stay as they are.
    let mut c = full_config();
    c.storage.local.allow = Some(vec![PathBuf::from("in"), PathBuf::from("/data/in")]);
    c.resolve_paths(std::path::Path::new("/etc/paraflow"));
    assert_eq!(
        c.storage.local.allow,
        Some(vec![
            PathBuf::from("/etc/paraflow/in"),
            PathBuf::from("/data/in")
        ])
    );
    let mut dup = full_config();
    dup.transform.tables.push(dup.transform.tables[0].clone());
    let e = dup.validate().unwrap_err();
    assert!(e.to_string().contains("transform.tables[1].name"), "{e}");
}

#[test]
fn full_config_round_trips_through_yaml() {
    let config = full_config();
    config.validate().unwrap();
    let yaml = serde_norway::to_string(&config).unwrap();
    // Every key comes back; secrets come back as what they serialize to, their mask.
    let mut expected = config.clone();
    expected.indexer.elasticsearch.password = Some(Secret::new("***"));
    expected.coordinator.valkey.url = Some(SecretUrl::new("redis://***@localhost:6379/1"));
    assert_eq!(parse(&yaml).unwrap(), expected, "{yaml}");
}

#[test]
fn every_key_is_read_from_yaml() {
    let yaml = r#"
worker:
  threads: 6
  id: w-1
  max_attempts: 7
  retry_base_ms: 250
  retry_max_ms: 30000
  idle_exit_secs: 120
  shutdown_grace_secs: 10
  progress: never
  split_size_mib: 128
queue:
  kind: sqs
  sqs:
    queue_url: http://localhost:4566/000000000000/work
    dlq_url: http://localhost:4566/000000000000/dlq
    endpoint: http://localhost:4566
    region: us-east-1
    wait_time_secs: 5
    visibility_timeout_secs: 600
    max_messages: 4
storage:
  local:
    allow: [/data/in]
  s3:
    endpoint: http://localhost:4566
    region: us-east-1
    force_path_style: false
reader:
  batch_size: 8192
  parquet:
    columns: [amount, account_id]
  ndjson:
    max_line_bytes: 4096
    max_batch_bytes: 65536
    infer_rows: 10
    schema:
      - {name: id, type: string, nullable: false}
      - {name: amount, type: float64}
      - {name: count, type: int64}
      - {name: flag, type: boolean, nullable: true}
      - name: ts
        type: timestamp
        nullable: false
indexer:
  destination: elasticsearch
  bulk_max_docs: 100
  bulk_max_bytes: 1024
  elasticsearch:
    endpoints: [https://es-1:9200, https://es-2:9200]
    index: tx-2024
    username: elastic
    password: changeme
    api_key: null
    ca_cert: /etc/ssl/es-ca.pem
    compression: true
    timeout_secs: 12
    max_retries: 2
record_dlq:
  dir: /var/lib/paraflow/dlq
coordinator:
  valkey:
    url: redis://:pw@localhost:6379/1
metrics:
  addr: 127.0.0.1:9898
transform:
  script: scripts/enrich.rhai
  rules: rules/fraud.yaml
  max_operations: 5000
  watch: true
  tables:
    - name: geo
      kind: cidr
      path: enrichment/geo.csv
      format: csv
      key: network
      values: [country]
alerts:
  destination: file
  path: /var/log/alerts.ndjson
"#;
    assert_eq!(parse(yaml).unwrap(), full_config());
}

#[test]
fn enums_accept_every_snake_case_name() {
    for (name, kind) in [("stdin", QueueKind::Stdin), ("memory", QueueKind::Memory)] {
        let c = parse(&format!("queue:\n  kind: {name}\n")).unwrap();
        assert_eq!(c.queue.kind, kind);
    }
    for (name, destination) in [
        ("stats", Destination::Stats),
        ("stdout", Destination::Stdout),
        ("null", Destination::Null),
        ("'null'", Destination::Null),
    ] {
        let c = parse(&format!("indexer:\n  destination: {name}\n")).unwrap();
        assert_eq!(c.indexer.destination, destination, "{name}");
    }
    for (name, progress) in [
        ("auto", ProgressMode::Auto),
        ("always", ProgressMode::Bar),
        ("never", ProgressMode::Log),
    ] {
        let c = parse(&format!("worker:\n  progress: {name}\n")).unwrap();
        assert_eq!(c.worker.progress, progress);
    }
    // `null` must survive a round trip as the destination name, not as a YAML null.
    let mut config = Config::default();
    config.indexer.destination = Destination::Null;
    let yaml = serde_norway::to_string(&config).unwrap();
    assert_eq!(parse(&yaml).unwrap(), config);
}

#[test]
fn scalars_that_look_like_numbers_are_strings_where_strings_are_expected() {
    let c = parse(
        "indexer:\n  elasticsearch:\n    index: 2024\n    username: admin\n    password: 123456\n",
    )
    .unwrap();
    assert_eq!(c.indexer.elasticsearch.index, "2024");
    assert_eq!(es_password(&c), Some("123456"));
}

#[test]
fn substitution_feeds_the_parser() {
    let env = |name: &str| match name {
        "BATCH" => Some("1024".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    let yaml = "\
reader:
  batch_size: ${BATCH}
worker:
  threads: ${THREADS:-3}
  max_attempts: ${EMPTY:-9}
  id: ${WORKER_ID:-}
indexer:
  elasticsearch:
    username: u
    password: pa$$word
";
    let c = Config::from_yaml_str(yaml, &env).unwrap();
    assert_eq!(c.reader.batch_size, 1024);
    assert_eq!(c.worker.threads, Some(3));
    assert_eq!(c.worker.max_attempts, 9);
    assert_eq!(c.worker.id, None, "an empty default is a YAML null");
    assert_eq!(es_password(&c), Some("pa$word"));

    let (key, message) = config_err(Config::from_yaml_str("a:\n  b: ${NOPE}\n", &env));
    assert_eq!(key, "env.NOPE");
    assert_eq!(
        message,
        "environment variable NOPE is not set (line 2); use ${NOPE:-default} for a default"
    );
    let (key, message) = config_err(Config::from_yaml_str(
        "reader:\n  batch_size: ${BATCH\n",
        &env,
    ));
    assert_eq!(key, "env");
    assert!(
        message.contains("unterminated") && message.contains("(line 2)"),
        "{message}"
    );
}

/// What a config error's message must say.
#[derive(Debug, Clone, Copy)]
enum Says {
    Exactly(&'static str),
    StartsWith(&'static str),
    Contains(&'static str),
    Anything,
}

/// Parsing each `(yaml, key, says)` case fails with a config error at `key` whose
/// message is as `says`.
fn assert_parse_errors(cases: &[(&str, &str, Says)]) {
    for &(yaml, expected_key, says) in cases {
        let (key, message) = config_err(parse(yaml));
        assert_eq!(key, expected_key, "{yaml:?}: {message}");
        let ok = match says {
            Says::Exactly(text) => message == text,
            Says::StartsWith(text) => message.starts_with(text),
            Says::Contains(text) => message.contains(text),
            Says::Anything => true,
        };
        assert!(ok, "{yaml:?}: {message:?} does not match {says:?}");
    }
}

#[test]
fn parse_errors_name_the_key_and_what_was_wrong() {
    #[rustfmt::skip]
    const CASES: &[(&str, &str, Says)] = &[
        // Unknown keys, with their path.
        ("indexer:\n  bulk_size: 10\n", "indexer.bulk_size", Says::StartsWith("unknown field `bulk_size`, expected one of `destination`")),
        ("workers:\n  threads: 2\n", "workers", Says::StartsWith("unknown field `workers`")),
        ("reader:\n  ndjson:\n    schema:\n      - {name: a, type: string, width: 3}\n", "reader.ndjson.schema[0].width", Says::Anything),
        // Wrong types name the key and the expectation.
        ("reader:\n  batch_size: big\n", "reader.batch_size", Says::Exactly("invalid type: string \"big\", expected usize")),
        ("queue:\n  kind: kafka\n", "queue.kind", Says::Exactly("unknown variant `kafka`, expected one of `stdin`, `memory`, `sqs`")),
        ("worker:\n  max_attempts: -1\n", "worker.max_attempts", Says::Contains("expected u32")),
        ("reader:\n  ndjson:\n    schema:\n      - {name: a, type: decimal}\n", "reader.ndjson.schema[0].type", Says::StartsWith("unknown variant `decimal`")),
        ("reader:\n  ndjson:\n    schema:\n      - {name: a}\n", "reader.ndjson.schema[0]", Says::Exactly("missing field `type`")),
        ("indexer:\n  elasticsearch:\n    endpoints: https://es:9200\n", "indexer.elasticsearch.endpoints", Says::Contains("expected a sequence")),
        ("worker: 3\n", "worker", Says::Contains("expected struct WorkerConfig")),
        // Errors of the document as a whole carry line and column.
        ("worker:\n  threads: 2\n bad: [\n", DOCUMENT_KEY, Says::Contains("line 3")),
        ("reader:\n  batch_size: 10\n  batch_size: 20\n", DOCUMENT_KEY, Says::Contains("duplicate")),
        ("- just\n- a list\n", DOCUMENT_KEY, Says::Contains("expected struct Config")),
        // Elasticsearch keys are checked.
        ("indexer:\n  elasticsearch:\n    mappings: [1, 2]\n", "indexer.elasticsearch.mappings", Says::Anything),
        ("indexer:\n  elasticsearch:\n    retry_base_ms: 500\n    retry_max_ms: 100\n", "indexer.elasticsearch.retry_max_ms", Says::Anything),
        ("alerts:\n  destination: elasticsearch\n", "alerts.destination", Says::Anything),
    ];
    assert_parse_errors(CASES);
}

#[test]
fn validation_errors_name_their_key() {
    #[rustfmt::skip]
    const CASES: &[(&str, &str)] = &[
        ("worker:\n  threads: 0\n", "worker.threads"),
        ("worker:\n  id: ''\n", "worker.id"),
        ("worker:\n  max_attempts: 0\n", "worker.max_attempts"),
        ("worker:\n  retry_base_ms: 1000\n  retry_max_ms: 10\n", "worker.retry_max_ms"),
        ("queue:\n  kind: sqs\n", "queue.sqs.queue_url"),
        ("queue:\n  kind: sqs\n  sqs:\n    queue_url: ''\n", "queue.sqs.queue_url"),
        ("queue:\n  sqs:\n    wait_time_secs: 21\n", "queue.sqs.wait_time_secs"),
        ("queue:\n  sqs:\n    max_messages: 11\n", "queue.sqs.max_messages"),
        ("queue:\n  sqs:\n    max_messages: 0\n", "queue.sqs.max_messages"),
        ("queue:\n  sqs:\n    visibility_timeout_secs: 0\n", "queue.sqs.visibility_timeout_secs"),
        ("reader:\n  batch_size: 0\n", "reader.batch_size"),
        ("reader:\n  parquet:\n    columns: [a, a]\n", "reader.parquet.columns[1]"),
        ("reader:\n  ndjson:\n    max_line_bytes: 0\n", "reader.ndjson.max_line_bytes"),
        ("reader:\n  ndjson:\n    infer_rows: 0\n", "reader.ndjson.infer_rows"),
        ("reader:\n  ndjson:\n    schema: []\n", "reader.ndjson.schema"),
        ("reader:\n  ndjson:\n    schema:\n      - {name: a, type: string}\n      - {name: a, type: int64}\n", "reader.ndjson.schema[1].name"),
        ("reader:\n  ndjson:\n    schema:\n      - {name: '', type: string}\n", "reader.ndjson.schema[0].name"),
        ("indexer:\n  bulk_max_docs: 0\n", "indexer.bulk_max_docs"),
        ("indexer:\n  bulk_max_bytes: 0\n", "indexer.bulk_max_bytes"),
        ("indexer:\n  destination: elasticsearch\n", "indexer.elasticsearch.endpoints"),
        ("indexer:\n  elasticsearch:\n    endpoints: [es:9200]\n", "indexer.elasticsearch.endpoints[0]"),
        ("indexer:\n  destination: elasticsearch\n  elasticsearch:\n    endpoints: [http://es:9200]\n    index: ''\n", "indexer.elasticsearch.index"),
        ("indexer:\n  elasticsearch:\n    username: u\n", "indexer.elasticsearch.password"),
        ("indexer:\n  elasticsearch:\n    password: p\n", "indexer.elasticsearch.username"),
        ("indexer:\n  elasticsearch:\n    username: u\n    password: p\n    api_key: k\n", "indexer.elasticsearch.api_key"),
        ("indexer:\n  elasticsearch:\n    timeout_secs: 0\n", "indexer.elasticsearch.timeout_secs"),
        ("record_dlq:\n  dir: ''\n", "record_dlq.dir"),
        ("coordinator:\n  valkey:\n    url: localhost:6379\n", "coordinator.valkey.url"),
        ("metrics:\n  addr: localhost\n", "metrics.addr"),
        ("metrics:\n  addr: 127.0.0.1\n", "metrics.addr"),
    ];
    for &(yaml, expected_key) in CASES {
        let (key, message) = config_err(parse(yaml));
        assert_eq!(key, expected_key, "{yaml}: {message}");
        assert!(!message.is_empty(), "{yaml}");
    }
}

#[test]
fn stale_after_must_be_below_the_visibility_timeout_with_sqs_and_valkey() {
    let yaml = |stale: u64, visibility: u64| {
        format!(
            "queue:\n  kind: sqs\n  sqs:\n    queue_url: http://q\n    visibility_timeout_secs: {visibility}\ncoordinator:\n  valkey:\n    url: redis://h:6379\n    stale_after_secs: {stale}\n"
        )
    };
    let (key, message) = config_err(parse(&yaml(300, 300)));
    assert_eq!(key, "coordinator.valkey.stale_after_secs");
    assert!(
        message.contains("visibility_timeout_secs (300)"),
        "{message}"
    );
    assert!(parse(&yaml(120, 300)).is_ok());
    // Without Valkey (in-process metadata) the two never meet.
    assert!(
        parse(
            "queue:\n  kind: sqs\n  sqs:\n    queue_url: http://q\n    visibility_timeout_secs: 2\n"
        )
        .is_ok()
    );
}

#[test]
fn validate_catches_changes_made_after_loading() {
    let mut config = Config::demo().unwrap();
    config.queue.kind = QueueKind::Sqs;
    let err = config.validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "configuration error at `queue.sqs.queue_url`: is required when queue.kind is sqs"
    );
    config.queue.sqs.queue_url = Some("http://localhost:4566/000000000000/q".into());
    config.validate().unwrap();
}

#[test]
fn validation_messages_do_not_echo_the_valkey_url() {
    let (_, message) = config_err(parse(
        "coordinator:\n  valkey:\n    url: 'user:hunter2@cache:6379'\n",
    ));
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn masked_yaml_hides_secrets_and_still_parses() {
    let mut config = full_config();
    config.indexer.elasticsearch.api_key = Some("QUJDREVG".into());
    config.indexer.elasticsearch.endpoints = vec!["https://elastic:espw@es-1:9200".into()];
    let yaml = config.to_yaml();
    for secret in ["changeme", "QUJDREVG", ":pw@", "espw"] {
        assert!(!yaml.contains(secret), "{secret} leaked:\n{yaml}");
    }
    let masked: Config = serde_norway::from_str(&yaml).unwrap();
    let es = &masked.indexer.elasticsearch;
    assert_eq!(es.password.as_ref().map(Secret::expose), Some("***"));
    assert_eq!(es.api_key.as_ref().map(Secret::expose), Some("***"));
    assert_eq!(es.username.as_deref(), Some("elastic"));
    assert_eq!(es.endpoints, ["https://***@es-1:9200"]);
    assert_eq!(
        masked
            .coordinator
            .valkey
            .url
            .as_ref()
            .map(SecretUrl::expose),
        Some("redis://***@localhost:6379/1")
    );
    // Everything that is not a secret is shown as is.
    assert_eq!(masked.reader, config.reader);
    assert_eq!(masked.worker, config.worker);

    // Absent secrets stay absent rather than appearing as "***".
    let yaml = Config::default().to_yaml();
    assert!(!yaml.contains("***"), "{yaml}");
}

#[test]
fn debug_output_hides_secrets() {
    let config = full_config();
    let debug = format!("{config:?}");
    assert!(!debug.contains("changeme"), "{debug}");
    assert!(!debug.contains(":pw@"), "{debug}");
    assert!(debug.contains("redis://***@localhost:6379/1"), "{debug}");
}

#[test]
fn helpers_resolve_null_defaults() {
    let mut worker = WorkerConfig::default();
    assert!(worker.thread_count() >= 1);
    worker.threads = Some(3);
    assert_eq!(worker.thread_count(), 3);

    let mut s3 = S3Config::default();
    assert!(!s3.path_style());
    s3.endpoint = Some("http://localhost:4566".into());
    assert!(s3.path_style());
    s3.force_path_style = Some(false);
    assert!(!s3.path_style());

    let mut metrics = MetricsConfig::default();
    assert_eq!(metrics.socket_addr().unwrap(), None);
    metrics.addr = Some("[::1]:9898".into());
    assert_eq!(
        metrics.socket_addr().unwrap(),
        Some("[::1]:9898".parse().unwrap())
    );
}

#[test]
fn shipped_worker_yaml_parses_with_its_environment() {
    let text = std::fs::read_to_string(shipped("worker.yaml")).unwrap();
    let c = Config::from_yaml_str(&text, &worker_env).unwrap();
    assert_eq!(c.queue.kind, QueueKind::Sqs);
    assert_eq!(
        c.queue.sqs.queue_url.as_deref(),
        Some("https://sqs.eu-west-1.amazonaws.com/123456789012/paraflow-work")
    );
    assert_eq!(c.queue.sqs.endpoint, None);
    assert_eq!(c.queue.sqs.region.as_deref(), Some("eu-west-1"));
    assert_eq!(c.indexer.destination, Destination::Elasticsearch);
    assert_eq!(
        c.indexer.elasticsearch.endpoints,
        ["https://es-1.internal:9200", "https://es-2.internal:9200"]
    );
    assert_eq!(c.indexer.elasticsearch.index, "transactions");
    assert_eq!(es_password(&c), Some("123456"));
    assert_eq!(c.indexer.elasticsearch.api_key, None);
    assert_eq!(c.indexer.elasticsearch.ca_cert, None);
    assert_eq!(c.worker.threads, None);
    assert_eq!(c.worker.id, None);
    assert_eq!(c.worker.max_attempts, 5);
    assert_eq!(c.storage.s3.force_path_style, None);
    assert_eq!(
        c.metrics.socket_addr().unwrap(),
        Some("127.0.0.1:9898".parse().unwrap())
    );
    assert!(c.coordinator.valkey.url.is_some());
    assert!(!c.to_yaml().contains("v4lkey-secret"));

    // Without its required variables the file names the first one missing.
    let (key, message) = config_err(Config::from_yaml_str(&text, &no_env));
    assert_eq!(key, "env.PF_SQS_QUEUE_URL");
    assert!(message.contains("is not set (line"), "{message}");
}

#[test]
fn shipped_worker_yaml_points_at_emulators_through_env() {
    let text = std::fs::read_to_string(shipped("worker.yaml")).unwrap();
    let env = |name: &str| match name {
        "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:4566".to_owned()),
        "PF_ES_USERNAME" | "PF_ES_PASSWORD" => None,
        "PF_ES_API_KEY" => Some("QUJD".to_owned()),
        other => worker_env(other),
    };
    let c = Config::from_yaml_str(&text, &env).unwrap();
    assert_eq!(
        c.queue.sqs.endpoint.as_deref(),
        Some("http://127.0.0.1:4566")
    );
    assert!(c.storage.s3.path_style());
    assert_eq!(
        c.indexer.elasticsearch.api_key.as_ref().map(Secret::expose),
        Some("QUJD")
    );
}

#[test]
fn shipped_demo_yaml_needs_no_environment() {
    let text = std::fs::read_to_string(shipped("demo.yaml")).unwrap();
    assert_eq!(
        text, DEMO_CONFIG_YAML,
        "the embedded copy is the shipped file"
    );
    let c = Config::from_yaml_str(&text, &no_env).unwrap();
    assert_eq!(c.queue.kind, QueueKind::Memory);
    assert_eq!(c.indexer.destination, Destination::Stats);
    assert_eq!(c.coordinator.valkey.url, None);
    assert_eq!(c.metrics.addr, None);
    assert_eq!(Config::demo().unwrap(), c);
}

#[test]
fn load_reads_the_file_and_names_it_in_errors() {
    let (dir, path) = temp_worker_yaml("reader:\n  batch_size: 128\n");
    assert_eq!(Config::load(&path).unwrap().reader.batch_size, 128);

    std::fs::write(&path, "worker:\n  threads: 2\nreader:\n  batch_size: big\n").unwrap();
    let (key, message) = config_err(Config::load(&path));
    assert_eq!(key, "reader.batch_size");
    assert_eq!(
        message,
        format!(
            "{}:4: invalid type: string \"big\", expected usize",
            path.display()
        )
    );

    std::fs::write(&path, "reader:\n  batch_size: 0\n").unwrap();
    let (key, message) = config_err(Config::load(&path));
    assert_eq!(key, "reader.batch_size");
    assert!(
        message.starts_with(&format!("{}:2: ", path.display())),
        "{message}"
    );

    std::fs::write(&path, "reader: [\n").unwrap();
    let (key, message) = config_err(Config::load(&path));
    assert_eq!(key, DOCUMENT_KEY);
    assert!(
        message.starts_with(&format!("{}: ", path.display())),
        "{message}"
    );

    std::fs::write(&path, "a: ${PF_CONFIG_TEST_SURELY_UNSET_VARIABLE}\n").unwrap();
    let (key, message) = config_err(Config::load(&path));
    assert_eq!(key, "env.PF_CONFIG_TEST_SURELY_UNSET_VARIABLE");
    assert!(message.contains(&path.display().to_string()), "{message}");

    let missing = dir.path().join("missing.yaml");
    let err = Config::load(&missing).unwrap_err();
    assert!(matches!(err, PfError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.yaml"), "{err}");
}

#[test]
fn elasticsearch_keys_are_read_and_checked() {
    let c = parse(
        "indexer:\n  destination: elasticsearch\n  elasticsearch:\n    endpoints: [http://es:9200]\n    index: 'tx-{yyyy.MM.dd}'\n    op_type: create\n    id_field: transaction_id\n    setup: true\n    mappings: { properties: { amount: { type: double } } }\n",
    )
    .unwrap();
    let es = &c.indexer.elasticsearch;
    assert_eq!(es.op_type, OpType::Create);
    assert_eq!(es.id_field.as_deref(), Some("transaction_id"));
    assert_eq!(es.index_time_field, "timestamp");
    assert!(es.setup && es.mappings.as_ref().is_some_and(|m| m.is_object()));
}

#[test]
fn overrides_leave_the_files_own_values_as_the_file_spelled_them() {
    let (_dir, path) = temp_worker_yaml(
        "worker:\n  id: 0123\nindexer:\n  elasticsearch:\n    username: u\n    password: 0x1F\n    index: 1e3\n",
    );
    let (plain, _) = Config::resolve(Some(&path), &[]).unwrap();
    let (with_flag, _) = Config::resolve(
        Some(&path),
        &[
            Override::new("worker.threads", "4", "--threads"),
            Override::new("indexer.elasticsearch.username", "[u]", "--es-username"),
        ],
    )
    .unwrap();
    // Any flag given or not, the file's scalars read the same.
    for c in [&plain, &with_flag] {
        assert_eq!(c.worker.id.as_deref(), Some("0123"));
        let es = &c.indexer.elasticsearch;
        assert_eq!(es.password.as_ref().map(Secret::expose), Some("0x1F"));
        assert_eq!(es.index, "1e3");
    }
    assert_eq!(with_flag.worker.threads, Some(4));
    // A flag's value is a string even when it looks like YAML structure.
    assert_eq!(
        with_flag.indexer.elasticsearch.username.as_deref(),
        Some("[u]")
    );
}

#[test]
fn type_errors_on_secret_keys_do_not_quote_the_value() {
    let (key, message) = config_err(parse(
        "indexer:\n  elasticsearch:\n    endpoints: \"https://elastic:espw@es:9200\"\n",
    ));
    assert_eq!(key, "indexer.elasticsearch.endpoints");
    assert!(!message.contains("espw"), "{message}");
    assert!(message.contains("expected a sequence"), "{message}");
    let (_, message) = config_err(parse("coordinator:\n  valkey:\n    password: [hunter2]\n"));
    assert!(!message.contains("hunter2"), "{message}");
    // Other keys still quote what was wrong.
    let (_, message) = config_err(parse("reader:\n  batch_size: big\n"));
    assert!(message.contains("\"big\""), "{message}");
}

#[test]
fn lines_are_the_files_even_after_a_multi_line_substitution() {
    let (_dir, path) = temp_worker_yaml(
        "indexer:\n  elasticsearch:\n    index_settings: ${PF_TEST_MULTI_LINE_SETTINGS_Q}\nreader:\n  batch_size: 0\n",
    );
    let env = |name: &str| {
        (name == "PF_TEST_MULTI_LINE_SETTINGS_Q")
            .then(|| "\n      number_of_shards: 1\n      number_of_replicas: 0".to_owned())
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let (key, message) = config_err(
        Config::parse_and_validate(&text, &env, Some(&path), &[]).map(|(config, _)| config),
    );
    assert_eq!(key, "reader.batch_size");
    // Line 5 of the file as written, not of the substituted text (7).
    assert!(
        message.starts_with(&format!("{}:5: ", path.display())),
        "{message}"
    );
}
