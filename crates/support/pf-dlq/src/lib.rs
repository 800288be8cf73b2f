//! pf-dlq (placeholder)
