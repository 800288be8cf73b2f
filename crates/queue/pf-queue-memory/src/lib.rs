//! pf-queue-memory (placeholder)
