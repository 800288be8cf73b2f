//! pf-reader-parquet (placeholder)
