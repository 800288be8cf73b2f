//! A moto server (S3 + SQS) set up the way a deployment uses it, and the binaries that
//! run against it: the S3/SQS tests and the chaos suite share it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use pf_test_services::Moto;
use pf_types::{Compression, FileFormat, RunSummary};

use crate::{bin_dir, generate_data, read_summary};

/// The bucket every cluster creates.
pub const BUCKET: &str = "data";

/// A moto server with a bucket and a work queue + DLQ made by `pf queue setup`, and the
/// binaries that run against it.
pub struct Cluster {
    /// The S3 + SQS server.
    pub moto: Moto,
    /// Its endpoint URL.
    pub endpoint: String,
    /// The work queue.
    pub queue_url: String,
    /// Its dead-letter queue.
    pub dlq_url: String,
    /// Scratch space (summaries, logs, generated data); removed with the cluster.
    pub dir: tempfile::TempDir,
    bins: PathBuf,
}

impl Cluster {
    /// A cluster whose work queue hides a received message for `visibility_timeout`
    /// seconds, run with the binaries of the test's own profile.
    pub fn start(visibility_timeout: u32) -> Cluster {
        Cluster::start_with(bin_dir(), visibility_timeout)
    }

    /// [`start`](Self::start) with the binaries in `bins`.
    pub fn start_with(bins: PathBuf, visibility_timeout: u32) -> Cluster {
        let moto = Moto::start();
        moto.create_bucket(BUCKET);
        let dir = tempfile::tempdir().unwrap();
        let mut c = Cluster {
            endpoint: moto.endpoint(),
            moto,
            queue_url: String::new(),
            dlq_url: String::new(),
            dir,
            bins,
        };
        let out = c.run(
            "pf",
            &[
                "queue",
                "setup",
                "--name",
                "work",
                "--visibility-timeout",
                &visibility_timeout.to_string(),
                "--max-receive-count",
                "10",
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        for line in text.lines() {
            if let Some(u) = line.strip_prefix("PF_SQS_QUEUE_URL=") {
                c.queue_url = u.to_owned();
            }
            if let Some(u) = line.strip_prefix("PF_SQS_DLQ_URL=") {
                c.dlq_url = u.to_owned();
            }
        }
        assert!(!c.queue_url.is_empty() && !c.dlq_url.is_empty(), "{text}");
        c
    }

    /// `program` (a workspace binary) with the cluster's endpoint and credentials.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bins.join(program));
        cmd.envs(self.moto.env())
            .env("AWS_ENDPOINT_URL", self.moto.endpoint())
            .env("RUST_LOG", "info");
        cmd
    }

    /// Runs a binary to completion and asserts it succeeded.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        let out = self.command(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Uploads every file under `local` as `prefix/<relative path>`.
    pub fn upload_dir(&self, local: &Path, prefix: &str) -> u64 {
        let mut n = 0;
        for entry in std::fs::read_dir(local).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let name = path.file_name().unwrap().to_str().unwrap();
                self.moto.put_object(
                    BUCKET,
                    &format!("{prefix}{name}"),
                    std::fs::read(&path).unwrap(),
                );
                n += 1;
            }
        }
        n
    }

    /// `pf-discoverer` from the bucket to the work queue as job `job-1`; its log.
    pub fn discover_to_sqs(&self, extra: &[&str]) -> String {
        let mut args = vec![
            "--bucket",
            BUCKET,
            "--s3-endpoint",
            &self.endpoint,
            "--destination",
            "sqs",
            "--sqs-queue-url",
            &self.queue_url,
            "--job-id",
            "job-1",
        ];
        args.extend_from_slice(extra);
        let out = self.run("pf-discoverer", &args);
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `pf-worker --input sqs` on the work queue, with its record DLQ in the cluster's
    /// directory and its summary written to `summary`; no destination or idle exit
    /// chosen.
    pub fn worker_command(&self, summary: &Path) -> Command {
        let mut cmd = self.command("pf-worker");
        cmd.args([
            "--input",
            "sqs",
            "--sqs-queue-url",
            &self.queue_url,
            "--s3-endpoint",
            &self.endpoint,
            "--dlq-dir",
        ])
        .arg(self.dir.path().join("record-dlq"))
        .arg("--summary-json")
        .arg(summary);
        cmd
    }

    /// A worker ([`worker_command`](Self::worker_command)) with two threads and the
    /// `stats` destination, ending after 3 idle seconds, its stderr piped.
    pub fn spawn_worker(&self, summary: &Path, extra: &[&str]) -> Child {
        self.worker_command(summary)
            .args([
                "--destination",
                "stats",
                "--threads",
                "2",
                "--idle-exit",
                "3",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Runs workers `w1` and `w2` (with `extra` flags) at once until both exit 0; the
    /// paths of their summaries.
    pub fn two_workers(&self, extra: &[&str]) -> (PathBuf, PathBuf) {
        let (s1, s2) = (self.path("w1.json"), self.path("w2.json"));
        let with_id = |id| [&["--worker-id", id], extra].concat();
        let w1 = self.spawn_worker(&s1, &with_id("w1"));
        let w2 = self.spawn_worker(&s2, &with_id("w2"));
        for (code, log) in [finish(w1), finish(w2)] {
            assert_eq!(code, 0, "{log}");
        }
        (s1, s2)
    }

    /// `name` in the cluster's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Generates `rows` transactions over `files` files into a local directory named after
    /// `prefix` and uploads them under `prefix`; asserts that all `files` went up.
    pub fn upload_generated(
        &self,
        prefix: &str,
        rows: u64,
        files: usize,
        format: FileFormat,
        compression: Compression,
    ) {
        let dir = self.path(&prefix.trim_end_matches('/').replace('/', "-"));
        generate_data(&dir, rows, files, format, compression);
        assert_eq!(
            self.upload_dir(&dir, prefix),
            files as u64,
            "files uploaded"
        );
    }

    /// Runs one worker to its end, writing its summary to `summary` in the cluster's
    /// directory: its exit code, its log and the summary's path.
    pub fn work(&self, summary: &str, extra: &[&str]) -> (i32, String, PathBuf) {
        let path = self.path(summary);
        let (code, log) = finish(self.spawn_worker(&path, extra));
        (code, log, path)
    }

    /// [`Self::work`] for a worker that must exit with `code`: its log and summary.
    pub fn work_exit(&self, summary: &str, extra: &[&str], code: i32) -> (String, RunSummary) {
        let (exit, log, path) = self.work(summary, extra);
        assert_eq!(exit, code, "{log}");
        let summary = read_summary(&path);
        (log, summary)
    }

    /// `pf dlq inspect --json`: every letter in the DLQ, left in place.
    pub fn dlq_letters(&self) -> Vec<serde_json::Value> {
        let out = self.run(
            "pf",
            &["dlq", "--dlq-url", &self.dlq_url, "inspect", "--json"],
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Empties the DLQ.
    pub fn purge_dlq(&self) {
        self.run("pf", &["dlq", "--dlq-url", &self.dlq_url, "purge", "--yes"]);
    }

    /// Whether the work queue and the DLQ hold no message, visible or in flight.
    pub fn queues_empty(&self) -> bool {
        self.moto.queue_depth(&self.queue_url) == (0, 0)
            && self.moto.queue_depth(&self.dlq_url) == (0, 0)
    }
}

/// Sends SIGTERM to a child whose stderr is piped, then [`finish`]es it.
pub fn terminate(child: Child) -> (i32, String) {
    signal(child.id(), "-TERM");
    finish(child)
}

/// Sends `signal` (`-STOP`, `-CONT`, `-TERM`) to our own child process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid} failed");
}

/// Waits for a child whose stderr is piped: its exit code (-1 when killed) and log.
pub fn finish(child: Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
