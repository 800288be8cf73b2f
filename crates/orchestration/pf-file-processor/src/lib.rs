//! pf-file-processor (placeholder)
