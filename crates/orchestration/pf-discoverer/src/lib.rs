//! pf-discoverer (placeholder)
