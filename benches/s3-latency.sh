#!/usr/bin/env bash
# S3 at real latency: rows/s and MB/s of one pipeline thread reading one Parquet and one
# NDJSON object through pf-s3-test-server (the project's S3 read test server, not S3)
# at 0, 20 and 50 ms per request, with the worker's peak RSS.
#
#   benches/s3-latency.sh [PF_WORKER_BINARY ...]
#
# Several worker binaries (say, before and after a change) are run side by side, round
# after round, so that their ratios hold on a noisy machine. Settings from the
# environment: PF_BENCH_ROWS (2000000), PF_BENCH_ROW_GROUP_ROWS (the generator's
# 131072; 1000000 makes ~25 MB row groups with multi-MB column chunks),
# PF_BENCH_FORMATS ("parquet ndjson"), PF_BENCH_LATENCIES ("0 20 50"),
# PF_BENCH_ROUNDS (2), PF_BENCH_DIR (target/s3-latency; the generated data is kept).
set -euo pipefail
cd "$(dirname "$0")/.."

rows=${PF_BENCH_ROWS:-2000000}
row_group_rows=${PF_BENCH_ROW_GROUP_ROWS:-131072}
formats=${PF_BENCH_FORMATS:-parquet ndjson}
latencies=${PF_BENCH_LATENCIES:-0 20 50}
rounds=${PF_BENCH_ROUNDS:-2}
work=${PF_BENCH_DIR:-target/s3-latency}
bins=target/release

if [[ ! -x $bins/pf || ! -x $bins/pf-worker || ! -x $bins/pf-s3-test-server ]]; then
  cargo build --release --locked -p pf-cli -p pf-worker-cli -p pf-s3-test-server
fi
workers=("$@")
[[ ${#workers[@]} -gt 0 ]] || workers=("$bins/pf-worker")

bucket=$work/root/bench
generated=$work/generated-$rows-$row_group_rows-${formats// /-}
if [[ ! -f $generated ]]; then
  rm -rf "$work"
  mkdir -p "$bucket"
  for format in $formats; do
    "$bins/pf" gen --rows "$rows" --files 1 --format "$format" \
      --row-group-rows "$row_group_rows" --out "$work/gen-$format" >/dev/null
    mv "$work/gen-$format"/part-00000.* "$bucket/"
  done
  touch "$generated"
fi

item() { # format -> the work item of the object of that format
  local path
  path=$(ls "$bucket"/part-00000."$1"*)
  printf '{"uri":"s3://bench/%s","size":%s,"format":"%s"}\n' \
    "$(basename "$path")" "$(stat -c %s "$path")" "$1"
}

server_pid=
stop_server() {
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
trap stop_server EXIT

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
printf '%-6s %-8s %-40s %12s %8s %8s\n' round latency "worker / format" rows/s MB/s "RSS MB"
for round in $(seq "$rounds"); do
  for latency in $latencies; do
    "$bins/pf-s3-test-server" --root "$work/root" --latency-ms "$latency" >"$work/url" 2>/dev/null &
    server_pid=$!
    for _ in $(seq 50); do [[ -s $work/url ]] && break; sleep 0.1; done
    url=$(head -1 "$work/url")
    for worker in "${workers[@]}"; do
      for format in $formats; do
        item "$format" | "$worker" --input stdin --destination stats --threads 1 \
          --s3-endpoint "$url" --summary-json "$work/summary.json" >/dev/null 2>"$work/worker.log" \
          || { echo "run failed: $worker $format at $latency ms (see $work/worker.log)" >&2; exit 1; }
        python3 - "$work/summary.json" "$round" "$latency" "$worker / $format" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
t = s.get("totals", s)
print(f"{sys.argv[2]:<6} {sys.argv[3] + ' ms':<8} {sys.argv[4]:<40} {t['rows_per_s']:>12,.0f} "
      f"{t['mb_per_s']:>8.1f} {t['peak_rss_mb']:>8.0f}")
PY
      done
    done
    stop_server
  done
done
