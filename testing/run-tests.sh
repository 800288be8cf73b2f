#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every test.
#
#   testing/run-tests.sh            # build, then run all tests of the workspace
#
# The S3/SQS and Valkey suites talk to real servers (moto, valkey-server) that
# testing/setup-services.sh installs into testing/.venv; the test harness starts them
# on free loopback ports and stops them again. Elasticsearch suites use the bulk-API
# protocol test server in testing/pf-bulk-test-server (no install needed).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust from https://rustup.rs" >&2
  exit 1
fi

testing/setup-services.sh

# Integration tests drive the real binaries (pf, pf-discoverer, pf-worker), so build them first.
cargo build --workspace --bins --locked
cargo test --workspace --locked "$@"
