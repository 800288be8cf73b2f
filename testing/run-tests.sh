#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every test.
#
#   testing/run-tests.sh            # build, then run all tests of the workspace
#
# Today's tests need no external service: the embedded pipeline runs on local files.
# (The S3/SQS and Valkey suites add their emulator set-up here when they land.)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust from https://rustup.rs" >&2
  exit 1
fi

# Integration tests drive the real binaries (pf, pf-discoverer, pf-worker), so build them first.
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
