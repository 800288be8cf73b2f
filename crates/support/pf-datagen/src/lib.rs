//! pf-datagen (placeholder)
