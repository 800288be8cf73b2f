#!/usr/bin/env bash
# Runs inside LocalStack once it is ready: the dev bucket and the queue pair that
# `pf queue setup --name paraflow-work` would create.
set -euo pipefail
awslocal s3 mb s3://paraflow-dev || true
DLQ_URL=$(awslocal sqs create-queue --queue-name paraflow-work-dlq --query QueueUrl --output text)
DLQ_ARN=$(awslocal sqs get-queue-attributes --queue-url "$DLQ_URL" --attribute-names QueueArn \
  --query Attributes.QueueArn --output text)
awslocal sqs create-queue --queue-name paraflow-work --attributes \
  "{\"VisibilityTimeout\":\"300\",\"RedrivePolicy\":\"{\\\"deadLetterTargetArn\\\":\\\"$DLQ_ARN\\\",\\\"maxReceiveCount\\\":\\\"5\\\"}\"}"
echo "paraflow: bucket paraflow-dev and queues paraflow-work(-dlq) ready"
