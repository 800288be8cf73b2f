//! pf-accumulator (placeholder)
