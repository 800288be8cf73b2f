//! pf-worker (placeholder)
