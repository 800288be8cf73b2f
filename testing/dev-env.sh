#!/usr/bin/env bash
# A local development environment without Docker: moto (S3 + SQS) on 127.0.0.1:4566 and
# valkey-server on 127.0.0.1:6379, from the project virtualenv, so the README's
# LocalStack-style commands run verbatim.
#
#   testing/dev-env.sh up       # install if needed, start both, create bucket and queues
#   testing/dev-env.sh status   # what is running, and the queue URLs
#   testing/dev-env.sh down     # stop what `up` started (by its recorded pids)
#
# Environment: PF_DEV_BUCKET (default paraflow-dev), PF_DEV_QUEUE (paraflow-work),
# PF_DEV_MOTO_PORT (4566), PF_DEV_VALKEY_PORT (6379). State and logs: testing/.dev-env/.
set -euo pipefail
cd "$(dirname "$0")"

VENV="${PF_VENV:-$PWD/.venv}"
STATE="$PWD/.dev-env"
BUCKET="${PF_DEV_BUCKET:-paraflow-dev}"
QUEUE="${PF_DEV_QUEUE:-paraflow-work}"
MOTO_PORT="${PF_DEV_MOTO_PORT:-4566}"
VALKEY_PORT="${PF_DEV_VALKEY_PORT:-6379}"
ENDPOINT="http://127.0.0.1:$MOTO_PORT"

running() { [[ -f "$STATE/$1.pid" ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

wait_port() { # name port
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "error: $1 did not start on port $2; see $STATE/$1.log" >&2
  exit 1
}

start() { # name port command...
  local name=$1 port=$2
  shift 2
  if running "$name"; then
    echo "$name already running (pid $(cat "$STATE/$name.pid"))"
    return
  fi
  nohup "$@" >"$STATE/$name.log" 2>&1 &
  echo $! >"$STATE/$name.pid"
  wait_port "$name" "$port"
  echo "$name started on 127.0.0.1:$port (pid $(cat "$STATE/$name.pid"), log $STATE/$name.log)"
}

seed() {
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 \
    "$VENV/bin/python" - "$ENDPOINT" "$BUCKET" "$QUEUE" <<'PY'
import json, sys
import boto3
endpoint, bucket, queue = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint)
sqs = boto3.client("sqs", endpoint_url=endpoint)
if bucket not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
    s3.create_bucket(Bucket=bucket)
dlq_url = sqs.create_queue(QueueName=f"{queue}-dlq")["QueueUrl"]
dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
url = sqs.create_queue(QueueName=queue, Attributes={
    "VisibilityTimeout": "300",
    "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
})["QueueUrl"]
print(f"bucket     s3://{bucket}")
print(f"export PF_SQS_QUEUE_URL={url}")
print(f"export PF_SQS_DLQ_URL={dlq_url}")
PY
}

case "${1:-}" in
  up)
    ./setup-services.sh
    mkdir -p "$STATE"
    # moto_server.py: moto with its SQS DeleteMessage race closed, as the tests run it.
    start moto "$MOTO_PORT" "$VENV/bin/python" pf-test-services/moto_server.py -H 127.0.0.1 -p "$MOTO_PORT"
    start valkey "$VALKEY_PORT" "$VENV/bin/valkey-server" --bind 127.0.0.1 --port "$VALKEY_PORT" \
      --save "" --appendonly no --dir "$STATE"
    seed
    echo "export AWS_ENDPOINT_URL=$ENDPOINT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1"
    echo "export PF_VALKEY_URL=redis://127.0.0.1:$VALKEY_PORT"
    ;;
  down)
    for name in moto valkey; do
      if running "$name"; then
        kill "$(cat "$STATE/$name.pid")" && echo "$name stopped"
      fi
      rm -f "$STATE/$name.pid"
    done
    ;;
  status)
    for name in moto valkey; do
      if running "$name"; then echo "$name running (pid $(cat "$STATE/$name.pid"))"; else echo "$name stopped"; fi
    done
    if running moto; then seed; fi
    ;;
  *)
    echo "usage: testing/dev-env.sh up|down|status" >&2
    exit 2
    ;;
esac
