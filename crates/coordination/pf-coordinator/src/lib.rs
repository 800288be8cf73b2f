//! pf-coordinator (placeholder)
