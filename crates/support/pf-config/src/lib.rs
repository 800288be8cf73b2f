//! pf-config (placeholder)
