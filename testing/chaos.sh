#!/usr/bin/env bash
# The chaos suite at scale: the release binaries as a fleet (moto S3 + SQS, Valkey,
# the bulk protocol test server) under kill -9, SIGTERM, Valkey restarts and stalls,
# 429 storms and outages, and crafted queue messages; prints one row per scenario
# (documents and alerts missing or duplicated against a clean run).
#
#   testing/chaos.sh                              # 200,000 rows in 8 files, every scenario
#   testing/chaos.sh --rows 1000000 --files 16    # bigger
#   testing/chaos.sh --only "kill -9 mid-file"    # one scenario (repeatable)
#
# Exit status 0 when every row is clean. The test command runs the same suite small
# (tests/tests/chaos.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

testing/setup-services.sh
cargo build --release --workspace --bins --locked
exec target/release/pf-chaos "$@"
