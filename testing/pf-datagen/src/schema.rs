//! The transaction schema shared by both output formats.

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Column names, in schema order.
pub mod columns {
    /// `"tx-"` followed by 16 lower-case hex digits; unique within a data set.
    pub const TRANSACTION_ID: &str = "transaction_id";
    /// `"acct-"` followed by at least 7 zero-padded digits.
    pub const ACCOUNT_ID: &str = "account_id";
    /// `"merch-"` followed by 6 zero-padded digits.
    pub const MERCHANT_ID: &str = "merchant_id";
    /// Float64 with at most two decimals.
    pub const AMOUNT: &str = "amount";
    /// ISO 4217 code.
    pub const CURRENCY: &str = "currency";
    /// Microseconds since the epoch, UTC.
    pub const TIMESTAMP: &str = "timestamp";
    /// IPv4 dotted quad, or an IPv6 address (`g:g:g:g::g`) for ~2 % of rows. In the
    /// account's home country's address space (pf-enrichment's layout) except for the
    /// planted `geo_mismatch` and `threat_ip` rows.
    pub const SOURCE_IP: &str = "source_ip";
    /// ISO 3166-1 alpha-2 code of the merchant's country, where the transaction happened:
    /// the account's home country for ~92 % of rows. Independent of `source_ip`; the
    /// `geo_mismatch` label compares the IP's country with the users table, not this.
    pub const COUNTRY: &str = "country";
    /// `web`, `mobile`, `pos` or `atm`.
    pub const CHANNEL: &str = "channel";
    /// True for `pos` and `atm`.
    pub const IS_CARD_PRESENT: &str = "is_card_present";
    /// Ground truth: at least one planted pattern is present.
    pub const LABEL_FRAUD: &str = "label_fraud";
    /// Ground truth: sorted, comma-separated pattern names; null when none.
    pub const LABEL_RULES: &str = "label_rules";
}

/// The schema of generated transactions (see [`columns`] for the meaning of each field).
///
/// Built once and shared, so every batch of every file carries the identical `Arc`.
pub fn transaction_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            use columns::*;
            Arc::new(Schema::new(vec![
                Field::new(TRANSACTION_ID, DataType::Utf8, false),
                Field::new(ACCOUNT_ID, DataType::Utf8, false),
                Field::new(MERCHANT_ID, DataType::Utf8, false),
                Field::new(AMOUNT, DataType::Float64, false),
                Field::new(CURRENCY, DataType::Utf8, false),
                Field::new(
                    TIMESTAMP,
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    false,
                ),
                Field::new(SOURCE_IP, DataType::Utf8, false),
                Field::new(COUNTRY, DataType::Utf8, false),
                Field::new(CHANNEL, DataType::Utf8, false),
                Field::new(IS_CARD_PRESENT, DataType::Boolean, false),
                Field::new(LABEL_FRAUD, DataType::Boolean, false),
                Field::new(LABEL_RULES, DataType::Utf8, true),
            ]))
        })
        .clone()
}
