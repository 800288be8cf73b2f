//! pf-reader-ndjson (placeholder)
