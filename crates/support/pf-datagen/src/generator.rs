//! The per-file stream of transactions.
//!
//! # How the labels are made exact
//!
//! Every label is a function of the row's final values, and the generator is built so
//! that the patterns occur *only* where it planted them:
//!
//! * **high_value** — normal amounts come from integer buckets whose top is 10,000.00;
//!   planted ones are drawn from 10,000.01–50,000.00. Amounts are whole cents divided by
//!   100, the nearest `f64` to the two-decimal value, so `amount > 10000.0` is exact.
//! * **unusual_hour** — each day of the span has an active period 05:00–01:00 (next day)
//!   and a night 01:00–05:00 UTC. Normal and burst rows get times inside the active
//!   period only; the planted rows (~0.5 %) are the night's rows.
//! * **rapid_activity** — within a file, rows are in non-decreasing timestamp order
//!   (slots spread evenly over the active period, then the night). For every account the
//!   generator remembers the times of its last four rows. A normal row may only go to an
//!   account whose fourth-latest row is more than 60 s older than the new row; because
//!   times never decrease, this checks every 60-s window at the moment its latest row is
//!   written, so no window of five rows can end in a normal row. A burst (5–8 consecutive
//!   rows of one account, ≤ 49 s) only starts on an account whose latest row is more
//!   than 60 s older than the burst, so no earlier row shares a window with it, and rows
//!   after it fall under the normal-row check. Hence the rows in some ≥ 5-in-60 s window
//!   are exactly the burst rows. Accounts are disjoint between files, so a window can
//!   never straddle files either. An account that passes the check always exists: a
//!   file has at least 1,000 accounts, and the span grows with the row count (30 days per
//!   million rows), so a 60-s window holds a few dozen rows at most.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, BooleanBufferBuilder, Float64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::SchemaRef;

use crate::pattern::{LabelSet, Pattern, label_table};
use crate::plan::FilePlan;
use crate::rng::{Xoshiro256pp, mix64, probability};
use crate::schema::transaction_schema;
use crate::text;

/// 2026-01-01 as days since the Unix epoch: the first day of every data set.
pub const START_DAY: i64 = 20_454;

const SECOND_US: i64 = 1_000_000;
const DAY_US: i64 = 86_400 * SECOND_US;
const ACTIVE_OFFSET_US: i64 = 5 * 3_600 * SECOND_US;
const ACTIVE_LEN_US: i64 = 20 * 3_600 * SECOND_US;
const NIGHT_OFFSET_US: i64 = 25 * 3_600 * SECOND_US;
const NIGHT_LEN_US: i64 = 4 * 3_600 * SECOND_US;

/// The `rapid_activity` window (inclusive).
pub const RAPID_WINDOW_US: i64 = 60 * SECOND_US;
/// Rows an account needs within [`RAPID_WINDOW_US`] for `rapid_activity`.
pub const RAPID_MIN_ROWS: usize = 5;
/// Largest gap between consecutive burst rows: 7 gaps × 7 s stays within 50 s.
const BURST_MAX_GAP_US: i64 = 7 * SECOND_US;
const BURST_MIN_ROWS: u64 = 5;
const BURST_MAX_ROWS: u64 = 8;

/// Above this, `amount` is `high_value`. In cents.
pub const HIGH_VALUE_CENTS: i64 = 1_000_000;

/// ~1 % of rows in bursts: one burst start per 650 active slots, 6.5 rows on average.
const P_BURST: u64 = probability(1_540);
const P_HIGH_VALUE: u64 = probability(5_000);
/// Night rows per thousand rows of a day (~0.5 %).
const NIGHT_PER_MILLE: u64 = 5;
const P_HOT_ACCOUNT: u64 = probability(300_000);
const P_HOT_MERCHANT: u64 = probability(300_000);
const P_HOME_COUNTRY: u64 = probability(920_000);
const P_LOCAL_CURRENCY: u64 = probability(900_000);

const MERCHANTS: u64 = 20_000;
const HOT_MERCHANTS: u64 = 1_000;

/// Country weights sum to 100; each country pays in its local currency.
const COUNTRIES: [(&str, &str, u8); 16] = [
    ("US", "USD", 40),
    ("GB", "GBP", 10),
    ("DE", "EUR", 8),
    ("FR", "EUR", 7),
    ("CA", "CAD", 5),
    ("ES", "EUR", 4),
    ("IT", "EUR", 4),
    ("AU", "AUD", 4),
    ("NL", "EUR", 3),
    ("JP", "JPY", 3),
    ("SE", "SEK", 2),
    ("CH", "CHF", 2),
    ("SG", "SGD", 2),
    ("BR", "BRL", 2),
    ("MX", "MXN", 2),
    ("IN", "INR", 2),
];

/// Country index by percentile, so a weighted draw is one table lookup.
static COUNTRY_BY_PERCENT: [u8; 100] = {
    let mut t = [0u8; 100];
    let (mut i, mut c) = (0, 0);
    while c < COUNTRIES.len() {
        let mut w = 0;
        while w < COUNTRIES[c].2 {
            t[i] = c as u8;
            i += 1;
            w += 1;
        }
        c += 1;
    }
    assert!(i == 100, "country weights must sum to 100");
    t
};

#[derive(Clone, Copy)]
enum Channel {
    Web,
    Mobile,
    Pos,
    Atm,
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Channel::Web => "web",
            Channel::Mobile => "mobile",
            Channel::Pos => "pos",
            Channel::Atm => "atm",
        }
    }

    /// web 35 %, mobile 30 %, pos 28 %, atm 7 %.
    fn from_percent(p: u64) -> Channel {
        match p {
            0..35 => Channel::Web,
            35..65 => Channel::Mobile,
            65..93 => Channel::Pos,
            _ => Channel::Atm,
        }
    }
}

/// Normal (non-ATM) amounts in cents: (low, high exclusive, weight per mille). A rough
/// log-normal shape (median ≈ 40) from integers only, topping out at exactly 10,000.00.
const AMOUNT_BUCKETS: [(u64, u64, u64); 10] = [
    (50, 500, 80),
    (500, 1_500, 150),
    (1_500, 3_000, 180),
    (3_000, 6_000, 200),
    (6_000, 12_000, 160),
    (12_000, 25_000, 110),
    (25_000, 50_000, 60),
    (50_000, 100_000, 35),
    (100_000, 300_000, 20),
    (300_000, HIGH_VALUE_CENTS as u64 + 1, 5),
];

/// First octets of ordinary public unicast space (no private, loopback, link-local,
/// CGNAT, documentation or multicast ranges), so addresses look real to CIDR tables.
const PUBLIC_FIRST_OCTETS: [u8; 32] = [
    3, 5, 8, 12, 13, 18, 23, 24, 31, 34, 35, 37, 45, 46, 50, 52, 54, 62, 66, 69, 73, 77, 81, 85,
    91, 98, 104, 142, 151, 178, 185, 212,
];

const IPV6_PREFIXES: [u16; 8] = [
    0x2001, 0x2400, 0x2600, 0x2604, 0x2a00, 0x2a01, 0x2a02, 0x2c0f,
];

/// Per-account state: fixed home attributes and the times of the latest four rows.
#[derive(Clone, Copy)]
struct Account {
    /// Oldest first; `recent[0]` is the fourth-latest row.
    recent: [i64; 4],
    home_ip: u32,
    home_country: u8,
}

/// Distinct tags mixed into the seed give each use of randomness (a file's stream,
/// account attributes, transaction ids) its own independent key.
const TAG_FILE: u64 = u64::from_be_bytes(*b"pf-file\0");
const TAG_ACCOUNT: u64 = u64::from_be_bytes(*b"pf-acct\0");
const TAG_TRANSACTION: u64 = u64::from_be_bytes(*b"pf-txid\0");

/// Far enough in the past that no window check can see it, yet safe to subtract from.
const NEVER: i64 = i64::MIN / 4;

fn public_ipv4(h: u64) -> u32 {
    let first = PUBLIC_FIRST_OCTETS[(h % PUBLIC_FIRST_OCTETS.len() as u64) as usize];
    let last = 1 + ((h >> 40) % 254) as u8;
    u32::from_be_bytes([first, (h >> 16) as u8, (h >> 24) as u8, last])
}

/// Where the stream is within the current day of the span.
#[derive(Default)]
struct DayState {
    /// Index of the next day to start.
    next_day: u32,
    active_start: i64,
    night_start: i64,
    active_rows: u64,
    night_rows: u64,
    active_step: i64,
    night_step: i64,
    slot: u64,
    night_slot: u64,
}

/// The burst in progress, if any.
#[derive(Default)]
struct Burst {
    left: u64,
    account: u32,
    ts: i64,
    max_gap: i64,
}

/// What the time/account schedule decided for one row.
struct Event {
    account: u32,
    ts: i64,
    labels: LabelSet,
}

/// A deterministic stream of one file's transactions, as Arrow record batches.
///
/// The content depends only on the seed and the [`FilePlan`], never on the batch size
/// or on other files, so files can be produced in parallel and reproduced one by one.
/// Labels follow the exactness argument in this module's documentation.
pub struct TransactionGenerator {
    plan: FilePlan,
    batch_rows: usize,
    emitted: u64,
    rng: Xoshiro256pp,
    tx_key: u64,
    accounts: Vec<Account>,
    hot_accounts: u64,
    day: DayState,
    burst: Burst,
    schema: SchemaRef,
    utc: Arc<str>,
    labels: Vec<Option<String>>,
    pattern_rows: [u64; Pattern::ALL.len()],
    fraud_rows: u64,
}

impl TransactionGenerator {
    /// The stream of `plan`'s file for `seed`, cut into batches of `batch_rows` rows
    /// (clamped to 1..=[`crate::MAX_BATCH_ROWS`]; the last batch may be shorter).
    pub fn new(seed: u64, plan: &FilePlan, batch_rows: usize) -> Self {
        let file_seed = mix64(seed ^ mix64(TAG_FILE ^ plan.file_index as u64));
        let account_key = mix64(seed ^ TAG_ACCOUNT);
        let accounts = (0..u64::from(plan.accounts))
            .map(|a| {
                let h = mix64((plan.first_account + a) ^ account_key);
                Account {
                    recent: [NEVER; 4],
                    home_ip: public_ipv4(h),
                    home_country: COUNTRY_BY_PERCENT[((h >> 48) % 100) as usize],
                }
            })
            .collect();
        TransactionGenerator {
            batch_rows: batch_rows.clamp(1, crate::MAX_BATCH_ROWS),
            emitted: 0,
            rng: Xoshiro256pp::new(file_seed),
            tx_key: mix64(seed ^ TAG_TRANSACTION),
            accounts,
            hot_accounts: (u64::from(plan.accounts) / 10).max(1),
            day: DayState::default(),
            burst: Burst::default(),
            schema: transaction_schema(),
            utc: Arc::from("UTC"),
            labels: label_table(),
            pattern_rows: [0; Pattern::ALL.len()],
            fraud_rows: 0,
            plan: plan.clone(),
        }
    }

    /// The stream of a one-file data set of `rows` rows: a convenience for benchmarks and
    /// tests that need transactions in memory rather than files.
    pub fn single_file(seed: u64, rows: u64, batch_rows: usize) -> Self {
        let plan = crate::plan::DatasetPlan::split(rows, 1);
        Self::new(seed, &plan.files()[0], batch_rows)
    }

    /// The schema of every batch ([`transaction_schema`]).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The plan this stream follows.
    pub fn plan(&self) -> &FilePlan {
        &self.plan
    }

    /// Rows not yet returned.
    pub fn rows_remaining(&self) -> u64 {
        self.plan.rows - self.emitted
    }

    /// Rows labelled with `pattern` among the rows returned so far.
    pub fn planted(&self, pattern: Pattern) -> u64 {
        self.pattern_rows[pattern as usize]
    }

    /// Rows with at least one label among the rows returned so far.
    pub fn fraud_rows(&self) -> u64 {
        self.fraud_rows
    }

    fn start_next_day(&mut self) {
        let days = u64::from(self.plan.days);
        loop {
            let d = self.day.next_day;
            // Only called while rows remain, and those rows lie on days before `days`.
            debug_assert!(u64::from(d) < days, "ran past the last day");
            self.day.next_day += 1;
            let rows = self.plan.rows / days + u64::from(u64::from(d) < self.plan.rows % days);
            if rows == 0 {
                continue;
            }
            let night = ((rows * NIGHT_PER_MILLE + self.rng.below(1_000)) / 1_000).min(rows);
            let active = rows - night;
            let day_start = (START_DAY + i64::from(d)) * DAY_US;
            self.day.active_start = day_start + ACTIVE_OFFSET_US;
            self.day.night_start = day_start + NIGHT_OFFSET_US;
            self.day.active_rows = active;
            self.day.night_rows = night;
            // Integer division keeps every slot strictly inside its period.
            self.day.active_step = ACTIVE_LEN_US / active.max(1) as i64;
            self.day.night_step = NIGHT_LEN_US / night.max(1) as i64;
            self.day.slot = 0;
            self.day.night_slot = 0;
            return;
        }
    }

    #[inline]
    fn draw_account(&mut self) -> u32 {
        let n = if self.rng.chance(P_HOT_ACCOUNT) {
            self.hot_accounts
        } else {
            u64::from(self.plan.accounts)
        };
        self.rng.below(n) as u32
    }

    /// An account for which a row at `ts` cannot complete a 5-in-60-s window: its
    /// fourth-latest row is more than 60 s older.
    fn pick_quiet_account(&mut self, ts: i64) -> u32 {
        self.pick_account(|acct| acct.recent[0] < ts - RAPID_WINDOW_US)
            .unwrap_or_else(|fallback| {
                debug_assert!(false, "no quiet account: the plan's sizing was bypassed");
                fallback
            })
    }

    /// An account whose latest row is more than 60 s before `ts`, so a burst starting at
    /// `ts` shares no window with earlier rows; `None` if there is none.
    fn pick_burst_account(&mut self, ts: i64) -> Option<u32> {
        self.pick_account(|acct| acct.recent[3] < ts - RAPID_WINDOW_US)
            .ok()
    }

    /// A few random draws, then a full scan so success never depends on luck. `Err`
    /// carries a random account for the case no account qualifies, which the plan's
    /// sizing rules out (see the module documentation).
    fn pick_account(&mut self, ok: impl Fn(&Account) -> bool) -> Result<u32, u32> {
        for _ in 0..16 {
            let a = self.draw_account();
            if ok(&self.accounts[a as usize]) {
                return Ok(a);
            }
        }
        let n = self.accounts.len();
        let start = self.rng.below(n as u64) as usize;
        (0..n)
            .map(|i| (start + i) % n)
            .find(|&a| ok(&self.accounts[a]))
            .map(|a| a as u32)
            .ok_or(start as u32)
    }

    #[inline]
    fn record(&mut self, account: u32, ts: i64) {
        let r = &mut self.accounts[account as usize].recent;
        r.copy_within(1.., 0);
        r[3] = ts;
    }

    /// Decides account, time and time-based labels of the next row.
    fn next_event(&mut self) -> Event {
        if self.burst.left > 0 {
            let gap = self
                .rng
                .range_inclusive((self.burst.max_gap / 8) as u64, self.burst.max_gap as u64);
            self.burst.ts += gap as i64;
            self.burst.left -= 1;
            self.day.slot += 1;
            let (account, ts) = (self.burst.account, self.burst.ts);
            self.record(account, ts);
            return Event {
                account,
                ts,
                labels: LabelSet(Pattern::RapidActivity.bit()),
            };
        }
        loop {
            let d = &self.day;
            if d.slot < d.active_rows {
                let (slot, step, active) = (d.slot, d.active_step, d.active_rows);
                let ts = d.active_start + slot as i64 * step + self.rng.below(step as u64) as i64;
                if self.rng.chance(P_BURST) {
                    let size = self.rng.range_inclusive(BURST_MIN_ROWS, BURST_MAX_ROWS);
                    // The whole burst must fit in this day's remaining slots, so each of
                    // its rows stays before the next normal slot and inside the period.
                    if slot + size <= active
                        && let Some(account) = self.pick_burst_account(ts)
                    {
                        self.burst = Burst {
                            left: size - 1,
                            account,
                            ts,
                            max_gap: step.min(BURST_MAX_GAP_US),
                        };
                        self.day.slot += 1;
                        self.record(account, ts);
                        return Event {
                            account,
                            ts,
                            labels: LabelSet(Pattern::RapidActivity.bit()),
                        };
                    }
                }
                let account = self.pick_quiet_account(ts);
                self.day.slot += 1;
                self.record(account, ts);
                return Event {
                    account,
                    ts,
                    labels: LabelSet::EMPTY,
                };
            }
            if d.night_slot < d.night_rows {
                let ts = d.night_start
                    + d.night_slot as i64 * d.night_step
                    + self.rng.below(d.night_step as u64) as i64;
                let account = self.pick_quiet_account(ts);
                self.day.night_slot += 1;
                self.record(account, ts);
                return Event {
                    account,
                    ts,
                    labels: LabelSet(Pattern::UnusualHour.bit()),
                };
            }
            self.start_next_day();
        }
    }

    fn normal_amount_cents(&mut self, channel: Channel) -> u64 {
        if let Channel::Atm = channel {
            return 2_000 * self.rng.range_inclusive(1, 40);
        }
        let mut p = self.rng.below(1_000);
        for (lo, hi, w) in AMOUNT_BUCKETS {
            if p < w {
                return lo + self.rng.below(hi - lo);
            }
            p -= w;
        }
        AMOUNT_BUCKETS[0].0
    }

    /// The next batch, or `None` once the file's rows are exhausted.
    pub fn next_batch(&mut self) -> Option<RecordBatch> {
        let n = self.rows_remaining().min(self.batch_rows as u64) as usize;
        if n == 0 {
            return None;
        }
        let mut tx_id = StrCol::with_capacity(n, 19);
        let mut account_id = StrCol::with_capacity(n, 12);
        let mut merchant_id = StrCol::with_capacity(n, 12);
        let mut amount = Vec::with_capacity(n);
        let mut currency = StrCol::with_capacity(n, 3);
        let mut timestamp = Vec::with_capacity(n);
        let mut source_ip = StrCol::with_capacity(n, 15);
        let mut country = StrCol::with_capacity(n, 2);
        let mut channel_col = StrCol::with_capacity(n, 5);
        let mut card_present = BooleanBufferBuilder::new(n);
        let mut label_fraud = BooleanBufferBuilder::new(n);
        let mut label_rules = StrCol::with_capacity(n, 4);
        let mut label_valid = BooleanBufferBuilder::new(n);

        for _ in 0..n {
            let row = self.plan.first_row + self.emitted;
            self.emitted += 1;
            let Event {
                account,
                ts,
                mut labels,
            } = self.next_event();
            let acct = self.accounts[account as usize];

            tx_id.values.extend_from_slice(b"tx-");
            text::push_hex16(&mut tx_id.values, mix64(row.wrapping_add(self.tx_key)));
            tx_id.end_value();

            account_id.values.extend_from_slice(b"acct-");
            text::push_fixed::<7>(
                &mut account_id.values,
                self.plan.first_account + u64::from(account),
            );
            account_id.end_value();

            let merchant = if self.rng.chance(P_HOT_MERCHANT) {
                self.rng.below(HOT_MERCHANTS)
            } else {
                self.rng.below(MERCHANTS)
            };
            merchant_id.values.extend_from_slice(b"merch-");
            text::push_fixed::<6>(&mut merchant_id.values, merchant);
            merchant_id.end_value();

            let channel = Channel::from_percent(self.rng.below(100));
            let cents = if self.rng.chance(P_HIGH_VALUE) {
                labels.insert(Pattern::HighValue);
                self.rng
                    .range_inclusive(HIGH_VALUE_CENTS as u64 + 1, 5 * HIGH_VALUE_CENTS as u64)
            } else {
                self.normal_amount_cents(channel)
            };
            // Division by 100 rounds to the f64 nearest the two-decimal value.
            amount.push(cents as f64 / 100.0);

            let country_idx = if self.rng.chance(P_HOME_COUNTRY) {
                acct.home_country
            } else {
                COUNTRY_BY_PERCENT[self.rng.below(100) as usize]
            };
            let (country_code, local_currency, _) = COUNTRIES[country_idx as usize];
            country.push(country_code.as_bytes());
            currency.push(if self.rng.chance(P_LOCAL_CURRENCY) {
                local_currency.as_bytes()
            } else {
                b"USD"
            });

            timestamp.push(ts);

            let ip_kind = self.rng.below(100);
            if ip_kind < 80 {
                text::push_ipv4(&mut source_ip.values, acct.home_ip);
            } else if ip_kind < 97 {
                let h = self.rng.next_u64();
                text::push_ipv4(&mut source_ip.values, public_ipv4(h));
            } else {
                let h = self.rng.next_u64();
                let out = &mut source_ip.values;
                text::push_hex_group(out, IPV6_PREFIXES[(h & 7) as usize]);
                for shift in [8u32, 24, 40] {
                    out.push(b':');
                    text::push_hex_group(out, (h >> shift) as u16);
                }
                out.extend_from_slice(b"::");
                text::push_hex_group(out, (h >> 48) as u16 | 1);
            }
            source_ip.end_value();

            channel_col.push(channel.name().as_bytes());
            card_present.append(matches!(channel, Channel::Pos | Channel::Atm));

            label_fraud.append(!labels.is_empty());
            label_valid.append(!labels.is_empty());
            match &self.labels[labels.0 as usize] {
                Some(label) => label_rules.push(label.as_bytes()),
                None => label_rules.end_value(),
            }
            if !labels.is_empty() {
                self.fraud_rows += 1;
                for p in Pattern::ALL {
                    self.pattern_rows[p as usize] += u64::from(labels.contains(p));
                }
            }
        }

        let columns: Vec<ArrayRef> = vec![
            tx_id.finish(None),
            account_id.finish(None),
            merchant_id.finish(None),
            Arc::new(Float64Array::new(ScalarBuffer::from(amount), None)),
            currency.finish(None),
            Arc::new(
                TimestampMicrosecondArray::new(ScalarBuffer::from(timestamp), None)
                    .with_timezone(self.utc.clone()),
            ),
            source_ip.finish(None),
            country.finish(None),
            channel_col.finish(None),
            Arc::new(BooleanArray::new(card_present.finish(), None)),
            Arc::new(BooleanArray::new(label_fraud.finish(), None)),
            label_rules.finish(Some(NullBuffer::new(label_valid.finish()))),
        ];
        // Every column has `n` rows of the schema's type by construction.
        Some(
            RecordBatch::try_new(self.schema.clone(), columns)
                .expect("generated columns always match the transaction schema"),
        )
    }
}

impl Iterator for TransactionGenerator {
    type Item = RecordBatch;

    fn next(&mut self) -> Option<RecordBatch> {
        self.next_batch()
    }
}

/// A Utf8 column assembled in plain vectors: values are written in place by the text
/// helpers, so no per-row `String` is ever allocated.
struct StrCol {
    values: Vec<u8>,
    offsets: Vec<i32>,
}

impl StrCol {
    fn with_capacity(rows: usize, bytes_per_row: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        StrCol {
            values: Vec::with_capacity(rows * bytes_per_row),
            offsets,
        }
    }

    /// Closes the value written into `values` since the previous one.
    #[inline]
    fn end_value(&mut self) {
        // Batches are capped in size (see `GenOptions`), so offsets fit in i32.
        self.offsets.push(self.values.len() as i32);
    }

    #[inline]
    fn push(&mut self, bytes: &[u8]) {
        self.values.extend_from_slice(bytes);
        self.end_value();
    }

    fn finish(self, nulls: Option<NullBuffer>) -> ArrayRef {
        // Only ASCII is ever written, so the UTF-8 validation in `new` cannot fail.
        Arc::new(StringArray::new(
            OffsetBuffer::new(ScalarBuffer::from(self.offsets)),
            Buffer::from_vec(self.values),
            nulls,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::array::{Array, AsArray};
    use arrow::datatypes::TimestampMicrosecondType;

    use super::*;

    /// Labels recomputed from account and time alone, with a plain sliding window.
    fn rapid_truth(accounts: &[String], ts: &[i64]) -> Vec<bool> {
        let mut by_account: HashMap<&str, Vec<(i64, usize)>> = HashMap::new();
        for (i, a) in accounts.iter().enumerate() {
            by_account.entry(a).or_default().push((ts[i], i));
        }
        let mut rapid = vec![false; ts.len()];
        for events in by_account.values_mut() {
            events.sort_unstable();
            let mut end = 0;
            for start in 0..events.len() {
                while end < events.len() && events[end].0 - events[start].0 <= RAPID_WINDOW_US {
                    end += 1;
                }
                if end - start >= RAPID_MIN_ROWS {
                    for &(_, i) in &events[start..end] {
                        rapid[i] = true;
                    }
                }
            }
        }
        rapid
    }

    #[test]
    fn the_window_check_keeps_labels_exact_when_accounts_are_scarce() {
        // ~42 rows a minute over 40 accounts: without the check, normal rows alone would
        // form hundreds of 5-in-60-s windows. (Real plans never get this dense.)
        let plan = FilePlan {
            file_index: 0,
            rows: 50_000,
            first_row: 0,
            first_account: 0,
            accounts: 40,
            days: 1,
        };
        let mut generator = TransactionGenerator::new(3, &plan, 8_192);
        let (mut accounts, mut ts, mut labelled) = (Vec::new(), Vec::new(), Vec::new());
        for batch in generator.by_ref() {
            let acct = batch.column(1).as_string::<i32>();
            let time = batch.column(5).as_primitive::<TimestampMicrosecondType>();
            let rules = batch.column(11).as_string::<i32>();
            for r in 0..batch.num_rows() {
                accounts.push(acct.value(r).to_owned());
                ts.push(time.value(r));
                labelled.push(!rules.is_null(r) && rules.value(r).contains("rapid_activity"));
            }
        }
        let truth = rapid_truth(&accounts, &ts);
        assert_eq!(labelled, truth);
        let planted = labelled.iter().filter(|&&l| l).count() as u64;
        assert_eq!(planted, generator.planted(Pattern::RapidActivity));
        assert!(planted > 100, "bursts still get planted: {planted}");
    }
}
