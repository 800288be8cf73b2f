//! pf-indexer-stdout (placeholder)
