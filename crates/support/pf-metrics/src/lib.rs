//! pf-metrics (placeholder)
