//! SQS work queue, work-item sender and DLQ operations
