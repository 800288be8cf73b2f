//! pf-storage (placeholder)
