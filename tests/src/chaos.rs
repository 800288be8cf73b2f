//! The chaos suite: the release (or test-profile) binaries as a fleet — S3 and SQS in
//! moto, claims, checkpoints and fraud windows in Valkey, documents to the bulk protocol
//! test server — under the faults a deployment meets, each scenario checked against a
//! clean run of the same data.
//!
//! Every scenario ends in one [`Outcome`] row: documents and alerts of the clean run
//! missing from the faulty one, and documents under ids the clean run does not have (a
//! record written twice under two ids). `testing/chaos.sh` runs the suite at scale and
//! prints the table; `tests/tests/chaos.rs` runs it small in the test command.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use pf_bulk_test_server::{BulkTestServer, Faults};
use pf_coordinator::{ValkeyConfig, ValkeyMetadataStore};
use pf_datagen::{GenOptions, generate};
use pf_test_services::Valkey;
use pf_traits::MetadataStore;
use pf_types::{Compression, FileFormat};

use crate::cluster::{BUCKET, Cluster, signal};
use crate::{assert_success, generate_data, spawn_with_stdin};

/// How big a run is and which binaries it drives.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// Directory of `pf-worker`, `pf-discoverer` and `pf`.
    pub bins: PathBuf,
    /// Generated transactions in all.
    pub rows: u64,
    /// Parquet files they are spread over (more files than a worker has threads, so a
    /// second worker has work left).
    pub files: usize,
    /// Scenarios to run (names as in [`SCENARIOS`]); empty: all.
    pub only: Vec<String>,
}

/// What one scenario left in the destination, against the clean run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The scenario's name.
    pub scenario: String,
    /// Documents of the clean run.
    pub documents_expected: u64,
    /// Of those, not in the destination.
    pub missing: u64,
    /// Documents in the destination under an id the clean run does not have.
    pub duplicated: u64,
    /// Alerts (`rule|key|t_end`) of the clean run.
    pub alerts_expected: u64,
    /// Of those, in no worker's alert file.
    pub alerts_missing: u64,
    /// Scenario-specific checks that failed (empty: none).
    pub problems: Vec<String>,
    /// What else the scenario measured (peak RSS of a worker), for the result column.
    pub note: String,
}

impl Outcome {
    /// Nothing missing, nothing duplicated, every scenario-specific check held.
    pub fn clean(&self) -> bool {
        self.missing == 0
            && self.duplicated == 0
            && self.alerts_missing == 0
            && self.problems.is_empty()
    }
}

/// The scenarios, in the order they run.
pub const SCENARIOS: &[&str] = &[
    "kill -9 mid-file",
    "kill -9 at 3/8, 5/8 and 7/8 of the rows",
    "SIGTERM, 30 s grace",
    "SIGTERM, no grace",
    "Valkey restarted",
    "Valkey stalled past visibility",
    "bulk 10% 429s + 10 s outage",
    "crafted SQS messages",
    "S3 object overwritten between attempts",
    "wide NDJSON records, kill -9",
    "truncated gzip member",
];

/// The results as a Markdown table.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut t = String::from(
        "| scenario | documents expected | missing | duplicated ids | alerts expected | alerts missing | result |\n|---|---|---|---|---|---|---|\n",
    );
    for o in outcomes {
        let mut result = if o.clean() {
            "clean".to_owned()
        } else {
            format!("FAILED: {}", o.problems.join("; "))
        };
        if !o.note.is_empty() {
            let _ = write!(result, " ({})", o.note);
        }
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {result} |",
            o.scenario,
            o.documents_expected,
            o.missing,
            o.duplicated,
            o.alerts_expected,
            o.alerts_missing
        );
    }
    t
}

/// Runs the scenarios of `options` (each on its own moto, Valkey and bulk server) and
/// returns one row each.
pub fn run(options: &ChaosOptions) -> Vec<Outcome> {
    let work = tempfile::tempdir().expect("chaos scratch directory");
    let data = work.path().join("data");
    // Row groups of 1,000 rows: a Parquet file resumes at a row group, so a worker
    // killed mid-file leaves a checkpoint inside the file to resume from.
    generate(&GenOptions {
        files: options.files,
        seed: 7,
        row_group_rows: CHAOS_ROW_GROUP_ROWS,
        ..GenOptions::new(data.clone(), options.rows)
    })
    .expect("generate the data set");
    let rules = work.path().join("rules.yaml");
    std::fs::write(&rules, RULES).expect("write rules");
    let side = SideFiles::write(&work.path().join("side"), options.rows);
    let expected = clean_run(options, &data, &rules);
    SCENARIOS
        .iter()
        .filter(|s| options.only.is_empty() || options.only.iter().any(|o| o == *s))
        .map(|name| {
            let mut fleet = Fleet::start(options, &data, &rules);
            let problems = fleet.play(name, &side);
            fleet.outcome(name, &expected, problems)
        })
        .collect()
}

/// Files that scenarios add beside the data set (under `side/` in the bucket), whose
/// documents are checked on their own: they are not part of the clean run.
struct SideFiles {
    /// Two versions of one NDJSON object (a resume point every batch, so a worker can
    /// be killed mid-way through it).
    changed: [PathBuf; 2],
    /// NDJSON whose every record carries a [`WIDE_BYTES`] string.
    wide: PathBuf,
    /// The ordinals (line byte offsets) of the wide file's records.
    wide_ordinals: Vec<u64>,
    /// A gzip NDJSON stream cut inside its member.
    truncated: PathBuf,
    /// The ordinals (decompressed line byte offsets) of every record before the cut.
    truncated_ordinals: Vec<u64>,
}

/// The byte offset of each line of `text`: the ordinals of its NDJSON records.
fn line_offsets(text: &str) -> Vec<u64> {
    let mut at = 0;
    text.split_inclusive('\n')
        .map(|line| {
            let offset = at;
            at += line.len() as u64;
            offset
        })
        .collect()
}

/// Size of the string that widens each record of the wide NDJSON file.
const WIDE_BYTES: usize = 40_000;

impl SideFiles {
    fn write(dir: &Path, rows: u64) -> SideFiles {
        std::fs::create_dir_all(dir).expect("side directory");
        // Generated transactions whose accounts are renamed `<tag>-…`: side files share
        // no window key with the data set, so they cannot change its alerts (a key's
        // events arriving out of order beyond the lateness would).
        let ndjson = |tag: &str, lines: u64, widen: bool| -> String {
            let out = dir.join(format!("{tag}-gen"));
            generate_data(&out, lines, 1, FileFormat::Ndjson, Compression::None);
            let file = std::fs::read_dir(&out)
                .expect("generated NDJSON")
                .next()
                .expect("one file")
                .expect("entry")
                .path();
            let text = std::fs::read_to_string(file).expect("read NDJSON");
            let mut lines_out = String::new();
            for line in text.lines() {
                let mut record: serde_json::Value = serde_json::from_str(line).expect("JSON");
                let account = record["account_id"].as_str().unwrap_or("").to_owned();
                record["account_id"] = format!("{tag}-{account}").into();
                if widen {
                    record["memo"] = "w".repeat(WIDE_BYTES).into();
                }
                lines_out.push_str(&record.to_string());
                lines_out.push('\n');
            }
            lines_out
        };
        let side_lines = (rows / 10).max(2_000);
        let changed = [dir.join("changed-v1.ndjson"), dir.join("changed-v2.ndjson")];
        for (n, path) in changed.iter().enumerate() {
            let text = ndjson(&format!("changed{n}"), side_lines + n as u64 * 100, false);
            std::fs::write(path, text).expect("write a version");
        }

        let wide_lines = (rows / 100).max(100);
        let wide = dir.join("wide.ndjson");
        let text = ndjson("wide", wide_lines, true);
        std::fs::write(&wide, &text).expect("write wide NDJSON");
        let wide_ordinals = line_offsets(&text);

        let text = ndjson("gzip", side_lines, false);
        let truncated_ordinals = line_offsets(&text);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, text.as_bytes()).expect("gzip");
        let bytes = gz.finish().expect("gzip");
        let truncated = dir.join("truncated.ndjson.gz");
        std::fs::write(&truncated, &bytes[..bytes.len() * 3 / 5]).expect("write gzip");
        SideFiles {
            changed,
            wide,
            wide_ordinals,
            truncated,
            truncated_ordinals,
        }
    }
}

/// How the documents of a scenario's side file are judged.
enum SideCheck {
    /// None was added.
    None,
    /// Documents of the first version written before the change may stay (`before`, as
    /// found when the object changed); nothing may be written after it.
    Changed { before: BTreeSet<String> },
    /// Every record, under the ids an uninterrupted run gives (`ordinals`, the lines'
    /// byte offsets).
    Complete { ordinals: BTreeSet<u64> },
    /// The records before the cut may be there (a prefix of `ordinals`, none twice);
    /// none after it.
    Prefix { ordinals: Vec<u64> },
}

/// The shipped fraud rule with a window (its alerts are what a crash can lose) and a
/// plain one.
const RULES: &str = "rules:\n  - name: rapid_activity\n    window: { key: account_id, time: timestamp, seconds: 60, min_count: 5 }\n    severity: medium\n    score: 30\n  - name: high_value\n    condition: amount > 10000.0\n    severity: high\n    score: 50\n";

/// Visibility timeout of the work queue, seconds: short, so that a dead worker's items
/// come back quickly; claims go stale before it.
const VISIBILITY_SECS: u32 = 6;
/// Rows per Parquet row group of the data set (the resume granularity of a file).
const CHAOS_ROW_GROUP_ROWS: usize = 1_000;
const STALE_AFTER_SECS: u64 = 3;
/// Rows per batch: small, so a file has many checkpoints.
const BATCH_ROWS: &str = "500";

/// The documents and alerts of a clean run: one worker, stdin items, no Valkey.
struct Expected {
    ids: BTreeSet<String>,
    alerts: BTreeSet<String>,
}

fn clean_run(options: &ChaosOptions, data: &Path, rules: &Path) -> Expected {
    let fleet = Fleet::start(options, data, rules);
    let items = fleet
        .cluster
        .run(
            "pf-discoverer",
            &[
                "--bucket",
                BUCKET,
                "--s3-endpoint",
                &fleet.cluster.endpoint,
                "--prefix",
                "in/",
            ],
        )
        .stdout;
    let summary = fleet.cluster.path("clean.json");
    let out = spawn_with_stdin(
        fleet
            .cluster
            .command("pf-worker")
            .args(["--config"])
            .arg(fleet.config("clean"))
            .args(["--input", "stdin", "--s3-endpoint", &fleet.cluster.endpoint])
            .args(fleet.destination())
            .arg("--summary-json")
            .arg(&summary)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
        &items,
    )
    .wait_with_output()
    .expect("clean run");
    assert_success(&out, "the clean run");
    let expected = Expected {
        ids: fleet.es.ids("chaos*"),
        alerts: fleet.alerts(),
    };
    assert_eq!(
        expected.ids.len() as u64,
        options.rows,
        "the clean run indexes every row"
    );
    assert!(!expected.alerts.is_empty(), "the data raises window alerts");
    expected
}

/// One scenario's services and workers.
struct Fleet {
    cluster: Cluster,
    valkey: Valkey,
    valkey_dir: tempfile::TempDir,
    es: BulkTestServer,
    rules: PathBuf,
    /// Letters the scenario put in the DLQ on purpose.
    crafted: usize,
    /// Letters the scenario's side file must end in: (object key, words of the reason).
    letters: Vec<(String, &'static str)>,
    side: SideCheck,
    /// Peak RSS of each worker that ran, KiB.
    peak_rss: Vec<(String, u64)>,
    /// Rows of the data set (not of side files).
    rows: u64,
    /// What the scenario observed on the way (kill points, resumes), for the note.
    notes: Vec<String>,
}

impl Fleet {
    fn start(options: &ChaosOptions, data: &Path, rules: &Path) -> Fleet {
        let cluster = Cluster::start_with(options.bins.clone(), VISIBILITY_SECS);
        let uploaded = cluster.upload_dir(data, "in/");
        assert_eq!(uploaded as usize, options.files);
        let valkey_dir = tempfile::tempdir().expect("valkey data directory");
        let valkey = Valkey::start_persistent(pf_test_services::free_port(), valkey_dir.path());
        Fleet {
            cluster,
            valkey,
            valkey_dir,
            es: BulkTestServer::start().expect("start the bulk test server"),
            rules: rules.to_path_buf(),
            crafted: 0,
            letters: Vec::new(),
            side: SideCheck::None,
            peak_rss: Vec::new(),
            rows: options.rows,
            notes: Vec::new(),
        }
    }

    /// The worker config of `who`: its own alert file, claims stale after 3 s.
    fn config(&self, who: &str) -> PathBuf {
        let path = self.cluster.path(&format!("{who}.yaml"));
        let alerts = self.cluster.path(&format!("alerts-{who}.ndjson"));
        std::fs::write(
            &path,
            format!(
                "worker:\n  progress: never\ncoordinator:\n  valkey:\n    stale_after_secs: {STALE_AFTER_SECS}\ntransform:\n  rules: {}\nalerts:\n  destination: file\n  path: {}\n",
                self.rules.display(),
                alerts.display()
            ),
        )
        .expect("write worker config");
        path
    }

    fn destination(&self) -> Vec<String> {
        [
            "--destination",
            "elasticsearch",
            "--es-endpoint",
            &self.es.url(),
            "--es-index",
            "chaos",
            "--batch-size",
            BATCH_ROWS,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// A worker `who` on the work queue with Valkey, two threads; `extra` flags last. It
    /// ends after 3 idle seconds, or, when it `takes_over` from a dead or stopped
    /// worker, after two visibility timeouts (the dead worker's items reappear only
    /// once their visibility runs out).
    fn worker(&self, who: &str, takes_over: bool, extra: &[&str]) -> Child {
        let idle = if takes_over { 2 * VISIBILITY_SECS } else { 3 };
        let log = std::fs::File::create(self.cluster.path(&format!("{who}.log"))).expect("log");
        self.cluster
            .worker_command(&self.cluster.path(&format!("{who}.json")))
            .arg("--config")
            .arg(self.config(who))
            .args(self.destination())
            .args(["--valkey-url", &self.valkey.url(), "--worker-id", who])
            .args(["--threads", "2", "--visibility-timeout"])
            .arg(VISIBILITY_SECS.to_string())
            .arg("--idle-exit")
            .arg(idle.to_string())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start pf-worker")
    }

    /// Waits (at most 10 minutes) for worker `who` to exit by itself with one of
    /// `codes`; a problem naming the code and the end of its log otherwise.
    fn finish(&mut self, who: &str, mut child: Child, codes: &[i32], problems: &mut Vec<String>) {
        let start = Instant::now();
        let mut peak = 0;
        let status = loop {
            peak = peak.max(peak_rss_kib(child.id()).unwrap_or(0));
            match child.try_wait() {
                Ok(Some(status)) => break status.code(),
                Ok(None) if start.elapsed() < Duration::from_secs(600) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        self.peak_rss.push((who.to_owned(), peak));
        if !status.is_some_and(|c| codes.contains(&c)) {
            let log = std::fs::read_to_string(self.cluster.path(&format!("{who}.log")))
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            problems.push(format!(
                "worker {who} exited with {status:?}: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            ));
        }
    }

    /// Waits until some file of the job has a checkpoint in Valkey.
    /// Waits (at most 120 s) until the job's checkpoints cover at least `rows` rows;
    /// the rows they covered then.
    fn wait_for_rows_done(&self, rows: u64) -> Result<u64, String> {
        let store = ValkeyMetadataStore::connect(&ValkeyConfig::for_url(self.valkey.url()))
            .map_err(|e| format!("connect to Valkey: {e}"))?;
        let start = Instant::now();
        loop {
            if let Some(done) = store
                .job_progress("job-1")
                .ok()
                .flatten()
                .map(|p| p.rows_done)
                .filter(|done| *done >= rows)
            {
                return Ok(done);
            }
            if start.elapsed() > Duration::from_secs(120) {
                return Err(format!(
                    "checkpoints did not reach {rows} rows within 120 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs scenario `name`; the problems it saw on the way.
    fn play(&mut self, name: &str, side: &SideFiles) -> Vec<String> {
        let mut problems = Vec::new();
        match name {
            "crafted SQS messages" => self.send_crafted(),
            // Discovered ahead of the data set, so a worker starts on them.
            "wide NDJSON records, kill -9" => self.add_side(
                &side.wide,
                "wide.ndjson",
                SideCheck::Complete {
                    ordinals: side.wide_ordinals.iter().copied().collect(),
                },
            ),
            "truncated gzip member" => {
                self.add_side(
                    &side.truncated,
                    "truncated.ndjson.gz",
                    SideCheck::Prefix {
                        ordinals: side.truncated_ordinals.clone(),
                    },
                );
                self.letters
                    .push(("side/truncated.ndjson.gz".into(), "gzip"));
            }
            _ => {}
        }
        if name == "S3 object overwritten between attempts" {
            return self.overwrite_between_attempts(side, problems);
        }
        self.cluster
            .discover_to_sqs(&["--prefix", "in/", "--valkey-url", &self.valkey.url()]);
        // Bulk requests answer after 50 ms, so workers are mid-file when the fault hits.
        let slow = Faults {
            delay: Duration::from_millis(50),
            ..Faults::default()
        };
        self.es.set_faults(slow.clone());
        match name {
            "kill -9 mid-file" | "wide NDJSON records, kill -9" => {
                let mut a = self.worker("a", false, &[]);
                self.mid_file(&mut problems);
                let _ = a.kill();
                let _ = a.wait();
                self.es.set_faults(Faults::default());
                let b = self.worker("b", true, &[]);
                self.finish("b", b, &[0], &mut problems);
            }
            // A sweep of kill points: each worker takes the files over from the last one
            // (after their visibility lapses) and is killed further into the data.
            "kill -9 at 3/8, 5/8 and 7/8 of the rows" => {
                // Eighths, not quarters: two threads move in step through files of
                // equal size, so a quarter of the rows is reached just as files end,
                // when nothing in flight has a checkpoint yet.
                for (who, eighths) in [("a", 3), ("b", 5), ("c", 7)] {
                    let mut w = self.worker(who, who != "a", &[]);
                    match self.wait_for_rows_done(self.rows * eighths / 8) {
                        // A kill after the last checkpoint would test nothing.
                        Ok(done) if done >= self.rows => {
                            problems.push(format!("worker {who} finished before its kill"))
                        }
                        Ok(done) => self
                            .notes
                            .push(format!("worker {who} killed at {done} rows checkpointed")),
                        Err(e) => problems.push(format!("worker {who}: {e}")),
                    }
                    let _ = w.kill();
                    let _ = w.wait();
                }
                self.es.set_faults(Faults::default());
                let d = self.worker("d", true, &[]);
                self.finish("d", d, &[0], &mut problems);
                // The sweep must have resumed inside a file, not only started files
                // over. Which takeover does depends on which files each worker took
                // first (fresh files are visible at once, a dead worker's only after the
                // visibility timeout), so the check is over all three.
                let resumed: Vec<&str> = ["b", "c", "d"]
                    .into_iter()
                    .filter(|who| {
                        std::fs::read_to_string(self.cluster.path(&format!("{who}.log")))
                            .is_ok_and(|log| log.contains("resuming from checkpoint"))
                    })
                    .collect();
                if resumed.is_empty() {
                    problems.push("no worker resumed a file from a checkpoint".into());
                }
                self.notes.push(format!(
                    "resumed from checkpoints by {}",
                    resumed.join(", ")
                ));
            }
            "SIGTERM, 30 s grace" | "SIGTERM, no grace" => {
                let grace = if name.contains("no grace") { 0 } else { 30 };
                let set = format!("worker.shutdown_grace_secs={grace}");
                let a = self.worker("a", false, &["--set", &set]);
                self.mid_file(&mut problems);
                signal(a.id(), "-TERM");
                // Files given up at the end of the grace are released to the queue, not
                // failed: the worker exits 0.
                self.finish("a", a, &[0], &mut problems);
                self.es.set_faults(Faults::default());
                let b = self.worker("b", true, &[]);
                self.finish("b", b, &[0], &mut problems);
            }
            "Valkey restarted" => {
                let a = self.worker("a", false, &[]);
                self.mid_file(&mut problems);
                let port = self.valkey.port();
                self.valkey.kill();
                std::thread::sleep(Duration::from_secs(1));
                self.valkey = Valkey::start_persistent(port, self.valkey_dir.path());
                self.es.set_faults(Faults::default());
                self.finish("a", a, &[0], &mut problems);
            }
            "Valkey stalled past visibility" => {
                let a = self.worker("a", false, &[]);
                let b = self.worker("b", true, &[]);
                self.mid_file(&mut problems);
                signal(self.valkey.pid(), "-STOP");
                std::thread::sleep(Duration::from_secs(u64::from(VISIBILITY_SECS) + 2));
                signal(self.valkey.pid(), "-CONT");
                self.es.set_faults(Faults::default());
                self.finish("a", a, &[0], &mut problems);
                self.finish("b", b, &[0], &mut problems);
            }
            "bulk 10% 429s + 10 s outage" => {
                self.es.set_faults(Faults {
                    throttle_fraction: 0.1,
                    throttle_attempts: 1,
                    ..slow
                });
                let a = self.worker("a", false, &[]);
                self.mid_file(&mut problems);
                self.es.go_down_for(Duration::from_secs(10));
                // A file whose retries run out during the outage fails as transient and
                // comes back from the queue.
                self.finish("a", a, &[0, 2], &mut problems);
                if self.es.stats().bulk_requests == 0 {
                    problems.push("no bulk request reached the server".into());
                }
            }
            "crafted SQS messages" | "truncated gzip member" => {
                self.es.set_faults(Faults::default());
                let a = self.worker("a", false, &[]);
                // The crafted messages fail (exit 2); every real item completes.
                self.finish("a", a, &[2], &mut problems);
            }
            other => problems.push(format!("unknown scenario `{other}`")),
        }
        problems
    }

    /// Uploads `local` as `side/<key>` and queues it ahead of the data set; its
    /// documents are judged by `check`.
    fn add_side(&mut self, local: &Path, key: &str, check: SideCheck) {
        let bytes = std::fs::read(local).expect("side file");
        self.cluster
            .moto
            .put_object(BUCKET, &format!("side/{key}"), bytes);
        self.cluster
            .discover_to_sqs(&["--prefix", "side/", "--valkey-url", &self.valkey.url()]);
        self.side = check;
    }

    /// A worker is killed mid-way through `side/changed.ndjson`, the object is
    /// overwritten, and the worker that takes the item over must refuse it (If-Match):
    /// the item ends in the DLQ as changed, no document of the new version is written,
    /// and the data set discovered after the change is complete.
    fn overwrite_between_attempts(
        &mut self,
        side: &SideFiles,
        mut problems: Vec<String>,
    ) -> Vec<String> {
        let key = "side/changed.ndjson";
        let v1 = std::fs::read(&side.changed[0]).expect("first version");
        self.cluster.moto.put_object(BUCKET, key, v1);
        self.cluster
            .discover_to_sqs(&["--prefix", "side/", "--valkey-url", &self.valkey.url()]);
        self.es.set_faults(Faults {
            delay: Duration::from_millis(50),
            ..Faults::default()
        });
        let mut a = self.worker("a", false, &[]);
        self.mid_file(&mut problems);
        let _ = a.kill();
        let _ = a.wait();
        // Requests the server had already received finish before the snapshot.
        std::thread::sleep(Duration::from_secs(1));
        self.side = SideCheck::Changed {
            before: self.es.ids("chaos*"),
        };
        let v2 = std::fs::read(&side.changed[1]).expect("second version");
        self.cluster.moto.put_object(BUCKET, key, v2);
        self.letters.push((key.into(), "changed"));
        self.cluster
            .discover_to_sqs(&["--prefix", "in/", "--valkey-url", &self.valkey.url()]);
        self.es.set_faults(Faults::default());
        let b = self.worker("b", true, &[]);
        self.finish("b", b, &[2], &mut problems);
        problems
    }

    /// Waits for the first checkpoint (the fleet is mid-file), noting a timeout.
    fn mid_file(&self, problems: &mut Vec<String>) {
        if let Err(e) = self.wait_for_rows_done(1) {
            problems.push(e);
        }
    }

    /// Non-JSON, a 200 KB body, control characters and a local file, ahead of the items.
    fn send_crafted(&mut self) {
        let crafted = [
            "this is not json".to_owned(),
            format!(
                r#"{{"uri":"s3://{BUCKET}/in/x.parquet","pad":"{}"}}"#,
                "y".repeat(200_000)
            ),
            format!(r#"{{"uri":"s3://{BUCKET}/a\u0001b\u001f.parquet","format":"parquet"}}"#),
            r#"{"uri":"file:///etc/passwd","format":"ndjson"}"#.to_owned(),
        ];
        for body in &crafted {
            self.cluster
                .moto
                .send_message(&self.cluster.queue_url, body);
        }
        self.crafted = crafted.len();
    }

    fn alerts(&self) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        for entry in std::fs::read_dir(self.cluster.dir.path()).expect("cluster directory") {
            let path = entry.expect("directory entry").path();
            let is_alerts = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("alerts-"));
            if !is_alerts {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            keys.extend(
                text.lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter_map(|v| v["key"].as_str().map(str::to_owned)),
            );
        }
        keys
    }

    fn outcome(&self, name: &str, expected: &Expected, mut problems: Vec<String>) -> Outcome {
        let ids = self.es.ids("chaos*");
        let stored = self.es.count("chaos*");
        let alerts = self.alerts();
        self.check_letters(&mut problems);
        let extra: BTreeSet<String> = ids.difference(&expected.ids).cloned().collect();
        let mut documents_expected = expected.ids.len() as u64;
        let mut missing = expected.ids.difference(&ids).count() as u64;
        let duplicated = match &self.side {
            SideCheck::None => extra.len() as u64,
            SideCheck::Changed { before } => extra.difference(before).count() as u64,
            SideCheck::Complete { ordinals: all } => {
                let found = side_ordinals(&extra);
                let good = found.iter().filter(|o| all.contains(o)).count() as u64;
                let lines = all.len() as u64;
                documents_expected += lines;
                missing += lines - good;
                extra.len() as u64 - good
            }
            SideCheck::Prefix { ordinals: all } => {
                let found = side_ordinals(&extra);
                if found.len() >= all.len() || !all.starts_with(&found) {
                    problems.push(format!(
                        "{} of {} records before the cut, not the first lines' ordinals",
                        found.len(),
                        all.len()
                    ));
                }
                extra.len() as u64 - found.len() as u64
            }
        };
        let note = self
            .notes
            .iter()
            .cloned()
            .chain(
                self.peak_rss
                    .iter()
                    .map(|(who, kib)| format!("worker {who} peak RSS {} MB", kib / 1024)),
            )
            .collect::<Vec<_>>()
            .join(", ");
        Outcome {
            scenario: name.to_owned(),
            documents_expected,
            missing,
            duplicated: duplicated + stored.saturating_sub(ids.len() as u64),
            alerts_expected: expected.alerts.len() as u64,
            alerts_missing: expected.alerts.difference(&alerts).count() as u64,
            problems,
            note,
        }
    }

    /// The work queue is drained, and the DLQ holds exactly the crafted messages and
    /// the letters the scenario expects (each naming its object and reason).
    fn check_letters(&self, problems: &mut Vec<String>) {
        let depth = self.cluster.moto.queue_depth(&self.cluster.queue_url);
        let letters = if self.cluster.moto.queue_depth(&self.cluster.dlq_url) == (0, 0) {
            Vec::new()
        } else {
            self.cluster.dlq_letters()
        };
        let wanted = self.crafted + self.letters.len();
        if depth != (0, 0) || letters.len() != wanted {
            problems.push(format!(
                "queue not drained: work queue {depth:?}, DLQ {} letters ({wanted} expected)",
                letters.len()
            ));
        }
        for (key, reason) in &self.letters {
            let found = letters.iter().any(|l| {
                l["body"].as_str().is_some_and(|b| b.contains(key.as_str()))
                    && l["attributes"][ERROR_MESSAGE_ATTRIBUTE]
                        .as_str()
                        .is_some_and(|m| m.to_lowercase().contains(reason))
            });
            if !found {
                problems.push(format!("no DLQ letter for {key} saying `{reason}`"));
            }
        }
    }
}

/// The SQS attribute holding a dead letter's error message.
const ERROR_MESSAGE_ATTRIBUTE: &str = "pf_error_message";

/// The row ordinals of the documents of one side file, sorted (ids are
/// `<hash of uri and etag>-<ordinal>`): those of the prefix most documents share.
fn side_ordinals(extra: &BTreeSet<String>) -> Vec<u64> {
    let mut by_prefix: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for id in extra {
        if let Some((prefix, ordinal)) = id.rsplit_once('-')
            && let Ok(o) = ordinal.parse()
        {
            by_prefix.entry(prefix).or_default().push(o);
        }
    }
    let mut ordinals = by_prefix
        .into_values()
        .max_by_key(Vec::len)
        .unwrap_or_default();
    ordinals.sort_unstable();
    ordinals
}

/// The peak resident set of our own child `pid` (`VmHWM`), KiB; `None` once it exited.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
