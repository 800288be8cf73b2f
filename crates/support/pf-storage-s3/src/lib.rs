//! S3 object source: ranged GETs with retry, streaming bodies, ListObjectsV2 listing
