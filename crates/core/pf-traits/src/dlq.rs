use pf_error::Result;
use pf_types::RecordFailure;

/// Destination for records that failed on their own (the record-level DLQ).
///
/// Shared by all pipeline threads; implementations must make each call's lines
/// land together and in order.
pub trait RecordDlq: Send + Sync {
    /// Appends the failures. Called once per batch, never per record.
    fn write(&self, failures: &[RecordFailure]) -> Result<()>;
    /// Makes everything written so far durable.
    fn flush(&self) -> Result<()>;
    /// Failures written so far.
    fn written(&self) -> u64;
    /// Where the failures go (a file path or an object prefix), for logs.
    fn location(&self) -> String;
}
