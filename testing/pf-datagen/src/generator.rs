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
//! * **rapid_activity** — the label is the streaming rule's definition: the row's own
//!   trailing window `[t − 60 s, t]` (inclusive) holds at least five rows of its account,
//!   counting the row itself and earlier rows. Within a file rows are in non-decreasing
//!   timestamp order (slots spread evenly over the active period, then the night), and
//!   accounts are disjoint between files, so "earlier" is the same in stream order and in
//!   time order, and the generator, which remembers the times of every account's latest
//!   four rows, computes the label directly: a row is labelled exactly when its account's
//!   fourth-latest earlier row is at or after `t − 60 s`. Planting decides where that
//!   happens: a normal row may only go to an account whose fourth-latest row is more than
//!   60 s older, so its window holds at most four rows; a burst (5–8 consecutive rows of
//!   one account, ≤ 49 s, ~1 % of rows) only starts on an account whose latest row is more
//!   than 60 s older, so the `k`-th burst row's window holds exactly `k` rows. Hence the
//!   labelled rows are exactly the 5th and later rows of the bursts (~0.4 % of rows); the
//!   first four rows of each burst are unlabelled near misses. An account that passes the
//!   check always exists: a file has at least 1,000 accounts, and the span grows with the
//!   row count (30 days per million rows), so a 60-s window holds a few dozen rows at most.
//! * **geo_mismatch** and **threat_ip** — these follow the address layout of
//!   [`crate::layout`], so they are exact against the geo, users and threat
//!   tables it writes (for any seed and any table size of at least 49 geo rows and 6
//!   threat rows; see [`crate::tables`]). Account `n` is `acct-%07d` with home country
//!   [`user_home_country`]`(seed, n)`, the users table's formula. Normal rows take their
//!   `source_ip` from the home country's space ([`home_v4_octets`], [`home_v6_groups`]):
//!   the account's fixed home address (~79 %), another address in home space (~17 %) or
//!   a home IPv6 address (~3 %; IPv4 for countries without IPv6 space). Planted
//!   geo-mismatch rows (~0.5 %) draw the address from another home country's space (10 %
//!   of them IPv6), never from threat space; planted threat rows (~0.3 %) draw it inside
//!   a [`THREAT_ANCHORS`] prefix, which every generated threat table lists. The labels are
//!   then computed for *every* row from its final address: `geo_mismatch` when
//!   [`geo_country`]`(ip)` differs from the home country, `threat_ip` when the address
//!   lies in an anchor prefix. Threat tables list nothing outside threat space, which
//!   only threat rows use, so "in an anchor" equals "on the threat list" for every row.
//!   Threat space lies in countries that are nobody's home, so threat rows are also
//!   geo-mismatch rows and carry both labels.
//!
//! The `country` column is the *merchant's* country (the account's home country for ~92 %
//! of rows, else a weighted random one, e.g. a cross-border purchase), and `currency`
//! follows it; neither is derived from `source_ip` nor used by any label.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, BooleanArray, BooleanBufferBuilder, Float64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::SchemaRef;

use crate::layout::{
    HOME_COUNTRIES, THREAT_ANCHORS, geo_country, home_v4_octets, home_v6_groups, user_home_country,
};

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

/// Shares of the `source_ip` kinds, per million rows (cumulative bounds, in this order):
/// planted threat addresses, planted foreign (geo-mismatch) addresses, then the normal
/// kinds: the account's fixed home address, another home-space IPv4 address, and home
/// IPv6 for the rest.
const IP_THREAT_PER_MILLION: u64 = 3_000;
const IP_FOREIGN_PER_MILLION: u64 = IP_THREAT_PER_MILLION + 5_000;
const IP_HOME_FIXED_PER_MILLION: u64 = 800_000;
const IP_HOME_V4_PER_MILLION: u64 = 970_000;
/// Planted foreign addresses that are IPv6, in percent.
const FOREIGN_V6_PERCENT: u64 = 10;

/// Country weights sum to 100; each country pays in its local currency. Codes and weights
/// are pf-enrichment's [`HOME_COUNTRIES`] (checked at compile time), so an index into
/// this table is also an index into that one.
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

const _: () = {
    let mut i = 0;
    assert!(COUNTRIES.len() == HOME_COUNTRIES.len());
    while i < COUNTRIES.len() {
        let (a, b) = (COUNTRIES[i].0.as_bytes(), HOME_COUNTRIES[i].0.as_bytes());
        assert!(a.len() == 2 && b.len() == 2 && a[0] == b[0] && a[1] == b[1]);
        assert!(COUNTRIES[i].2 == HOME_COUNTRIES[i].1);
        i += 1;
    }
};

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

/// The address space of one home country under pf-enrichment's layout.
struct CountrySpace {
    /// First octets of `/8`s that resolve to the country ([`home_v4_octets`]).
    home_v4: Vec<u8>,
    /// First groups of IPv6 `/16`s that resolve to it ([`home_v6_groups`]; may be empty).
    home_v6: Vec<u16>,
    /// First octets of the other home countries' `/8`s (never threat space).
    foreign_v4: Vec<u8>,
    /// First groups of the other home countries' IPv6 `/16`s (never threat space).
    foreign_v6: Vec<u16>,
}

/// One [`THREAT_ANCHORS`] prefix, parsed.
struct Anchor {
    ip: Ip,
    len: u32,
}

/// A generated address, kept numeric until it is written.
///
/// IPv6 addresses are only ever built with groups 4–6 zero (see [`v6`]), the form
/// [`push_ip`] writes as `g0:g1:g2:g3::g7`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ip {
    V4(u32),
    V6(u128),
}

impl Ip {
    fn addr(self) -> IpAddr {
        match self {
            Ip::V4(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
            Ip::V6(v6) => IpAddr::V6(Ipv6Addr::from(v6)),
        }
    }
}

/// An IPv6 address `g0:g1:g2:g3::g7` (groups 4–6 zero).
const fn v6(g: [u16; 4], last: u16) -> u128 {
    (g[0] as u128) << 112
        | (g[1] as u128) << 96
        | (g[2] as u128) << 80
        | (g[3] as u128) << 64
        | last as u128
}

/// The layout-derived address spaces, by index into [`COUNTRIES`], and the parsed threat
/// anchors; built once from pf-enrichment's layout functions.
struct Layout {
    spaces: Vec<CountrySpace>,
    anchors: Vec<Anchor>,
}

fn layout() -> &'static Layout {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let spaces = HOME_COUNTRIES
            .iter()
            .map(|&(code, _)| {
                let others = HOME_COUNTRIES.iter().filter(|c| c.0 != code);
                CountrySpace {
                    home_v4: home_v4_octets(code),
                    home_v6: home_v6_groups(code),
                    foreign_v4: others.clone().flat_map(|c| home_v4_octets(c.0)).collect(),
                    foreign_v6: others.flat_map(|c| home_v6_groups(c.0)).collect(),
                }
            })
            .collect();
        let anchors = THREAT_ANCHORS
            .iter()
            .map(|&(prefix, _, _)| {
                let (addr, len) = prefix.split_once('/').expect("anchors are CIDR prefixes");
                let len: u32 = len.parse().expect("anchor prefix length");
                let ip = match addr.parse::<IpAddr>().expect("anchor address") {
                    IpAddr::V4(a) => Ip::V4(u32::from(a)),
                    IpAddr::V6(a) => {
                        // Addresses inside are built as `g0:g1:g2:g3::g7`, so the prefix
                        // must not reach into groups 4–7.
                        assert!(len <= 64, "IPv6 anchor longer than /64: {prefix}");
                        Ip::V6(u128::from(a))
                    }
                };
                Anchor { ip, len }
            })
            .collect();
        Layout { spaces, anchors }
    })
}

/// Whether `ip` lies in one of the [`THREAT_ANCHORS`] prefixes.
fn in_threat_anchor(anchors: &[Anchor], ip: Ip) -> bool {
    anchors.iter().any(|a| match (a.ip, ip) {
        (Ip::V4(net), Ip::V4(x)) => a.len == 0 || (net ^ x) >> (32 - a.len) == 0,
        (Ip::V6(net), Ip::V6(x)) => a.len == 0 || (net ^ x) >> (128 - a.len) == 0,
        _ => false,
    })
}

/// An IPv4 address in the `/8` of `first`: the other octets from `h`, the last in 1–254.
fn ipv4_in(first: u8, h: u64) -> u32 {
    let last = 1 + ((h >> 40) % 254) as u8;
    u32::from_be_bytes([first, (h >> 16) as u8, (h >> 24) as u8, last])
}

/// An IPv6 address in the `/16` of `group`, other groups from `h`.
fn ipv6_in(group: u16, h: u64) -> u128 {
    v6(
        [group, (h >> 8) as u16, (h >> 24) as u16, (h >> 40) as u16],
        (h >> 48) as u16 | 1,
    )
}

/// Appends `ip` as text: a dotted quad, or `g0:g1:g2:g3::g7` for IPv6.
#[inline]
fn push_ip(out: &mut Vec<u8>, ip: Ip) {
    match ip {
        Ip::V4(v4) => text::push_ipv4(out, v4),
        Ip::V6(v6) => {
            debug_assert_eq!(v6 >> 16 & 0xFFFF_FFFF_FFFF, 0, "groups 4-6 must be zero");
            for (i, shift) in [112u32, 96, 80, 64].into_iter().enumerate() {
                if i > 0 {
                    out.push(b':');
                }
                text::push_hex_group(out, (v6 >> shift) as u16);
            }
            out.extend_from_slice(b"::");
            text::push_hex_group(out, v6 as u16);
        }
    }
}

/// Per-account state: fixed home attributes and the times of the latest four rows.
#[derive(Clone, Copy)]
struct Account {
    /// Oldest first; `recent[0]` is the fourth-latest row.
    recent: [i64; 4],
    /// The account's usual address, in its home country's IPv4 space.
    home_ip: u32,
    /// Index into [`COUNTRIES`] (and [`HOME_COUNTRIES`]).
    home_country: u8,
}

/// Distinct tags mixed into the seed give each use of randomness (a file's stream,
/// account attributes, transaction ids) its own independent key.
const TAG_FILE: u64 = u64::from_be_bytes(*b"pf-file\0");
const TAG_ACCOUNT: u64 = u64::from_be_bytes(*b"pf-acct\0");
const TAG_TRANSACTION: u64 = u64::from_be_bytes(*b"pf-txid\0");

/// Far enough in the past that no window check can see it, yet safe to subtract from.
const NEVER: i64 = i64::MIN / 4;

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
    /// Rows of the burst written so far.
    done: u64,
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
    layout: &'static Layout,
    pattern_rows: [u64; Pattern::ALL.len()],
    fraud_rows: u64,
}

impl TransactionGenerator {
    /// The stream of `plan`'s file for `seed`, cut into batches of `batch_rows` rows
    /// (clamped to 1..=[`crate::MAX_BATCH_ROWS`]; the last batch may be shorter).
    pub fn new(seed: u64, plan: &FilePlan, batch_rows: usize) -> Self {
        let file_seed = mix64(seed ^ mix64(TAG_FILE ^ plan.file_index as u64));
        let account_key = mix64(seed ^ TAG_ACCOUNT);
        let layout = layout();
        let accounts = (0..u64::from(plan.accounts))
            .map(|a| {
                let n = plan.first_account + a;
                // The users table's home country, so both agree for the same seed.
                let code = user_home_country(seed, n);
                let home = HOME_COUNTRIES
                    .iter()
                    .position(|c| c.0 == code)
                    .expect("user_home_country returns a HOME_COUNTRIES code");
                let octets = &layout.spaces[home].home_v4;
                let h = mix64(n ^ account_key);
                Account {
                    recent: [NEVER; 4],
                    home_ip: ipv4_in(octets[(h % octets.len() as u64) as usize], h),
                    home_country: home as u8,
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
            layout,
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

    /// Records a row of `account` at `ts` and returns its `rapid_activity` label: whether
    /// the window `[ts − 60 s, ts]` holds five rows of the account counting this one, i.e.
    /// whether the fourth-latest earlier row is in it. Exact because an account's rows
    /// arrive in non-decreasing time order (see the module documentation).
    #[inline]
    fn record(&mut self, account: u32, ts: i64) -> bool {
        let r = &mut self.accounts[account as usize].recent;
        debug_assert!(r[3] <= ts, "an account's rows are in time order");
        let rapid = r[0] >= ts - RAPID_WINDOW_US;
        r.copy_within(1.., 0);
        r[3] = ts;
        rapid
    }

    /// The labels of a row decided by account and time.
    fn time_labels(rapid: bool, night: bool) -> LabelSet {
        let mut labels = LabelSet::EMPTY;
        if rapid {
            labels.insert(Pattern::RapidActivity);
        }
        if night {
            labels.insert(Pattern::UnusualHour);
        }
        labels
    }

    /// A row at `ts` of a quiet account ([`pick_quiet_account`](Self::pick_quiet_account)),
    /// in the night period or not.
    fn quiet_event(&mut self, ts: i64, night: bool) -> Event {
        let account = self.pick_quiet_account(ts);
        let rapid = self.record(account, ts);
        Event {
            account,
            ts,
            labels: Self::time_labels(rapid, night),
        }
    }

    /// Decides account, time and time-based labels of the next row.
    fn next_event(&mut self) -> Event {
        if self.burst.left > 0 {
            let gap = self
                .rng
                .range_inclusive((self.burst.max_gap / 8) as u64, self.burst.max_gap as u64);
            self.burst.ts += gap as i64;
            self.burst.left -= 1;
            self.burst.done += 1;
            self.day.slot += 1;
            let (account, ts) = (self.burst.account, self.burst.ts);
            let rapid = self.record(account, ts);
            debug_assert_eq!(rapid, self.burst.done >= RAPID_MIN_ROWS as u64);
            return Event {
                account,
                ts,
                labels: Self::time_labels(rapid, false),
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
                            done: 1,
                            left: size - 1,
                            account,
                            ts,
                            max_gap: step.min(BURST_MAX_GAP_US),
                        };
                        self.day.slot += 1;
                        let rapid = self.record(account, ts);
                        debug_assert!(!rapid, "a burst starts on a quiet account");
                        return Event {
                            account,
                            ts,
                            labels: Self::time_labels(rapid, false),
                        };
                    }
                }
                self.day.slot += 1;
                return self.quiet_event(ts, false);
            }
            if d.night_slot < d.night_rows {
                let ts = d.night_start
                    + d.night_slot as i64 * d.night_step
                    + self.rng.below(d.night_step as u64) as i64;
                self.day.night_slot += 1;
                return self.quiet_event(ts, true);
            }
            self.start_next_day();
        }
    }

    /// The source address of a row of an account with `home` country and `home_ip`:
    /// planted threat and foreign addresses, else home space (see the module docs).
    #[inline]
    fn source_ip(&mut self, home: u8, home_ip: u32) -> Ip {
        let kind = self.rng.below(1_000_000);
        if (IP_FOREIGN_PER_MILLION..IP_HOME_FIXED_PER_MILLION).contains(&kind) {
            return Ip::V4(home_ip);
        }
        let space = &self.layout.spaces[home as usize];
        let h = self.rng.next_u64();
        if kind < IP_THREAT_PER_MILLION {
            let anchors = &self.layout.anchors;
            let anchor = &anchors[self.rng.below(anchors.len() as u64) as usize];
            match anchor.ip {
                Ip::V4(net) => {
                    let host = if anchor.len == 0 {
                        u32::MAX
                    } else {
                        u32::MAX >> anchor.len
                    };
                    // Host bits from a 1–254 last octet and random middle octets.
                    Ip::V4(net | (ipv4_in(0, h) & host))
                }
                Ip::V6(net) => {
                    // Groups 0–3 from the anchor's network bits, host bits from `h`;
                    // groups 4–6 zero and group 7 random, as `push_ip` writes.
                    let host_hi = if anchor.len == 0 {
                        u64::MAX
                    } else {
                        u64::MAX >> anchor.len
                    };
                    let hi = (net >> 64) as u64 | (h & host_hi);
                    Ip::V6(u128::from(hi) << 64 | u128::from((h >> 48) as u16 | 1))
                }
            }
        } else if kind < IP_FOREIGN_PER_MILLION {
            if self.rng.below(100) < FOREIGN_V6_PERCENT && !space.foreign_v6.is_empty() {
                let g = space.foreign_v6[self.rng.below(space.foreign_v6.len() as u64) as usize];
                Ip::V6(ipv6_in(g, h))
            } else {
                let o = space.foreign_v4[self.rng.below(space.foreign_v4.len() as u64) as usize];
                Ip::V4(ipv4_in(o, h))
            }
        } else if kind < IP_HOME_V4_PER_MILLION || space.home_v6.is_empty() {
            let o = space.home_v4[self.rng.below(space.home_v4.len() as u64) as usize];
            Ip::V4(ipv4_in(o, h))
        } else {
            let g = space.home_v6[self.rng.below(space.home_v6.len() as u64) as usize];
            Ip::V6(ipv6_in(g, h))
        }
    }

    /// The address labels of a row, from its final address and home country with the
    /// rules' own definitions (see the module docs).
    #[inline]
    fn ip_labels(&self, ip: Ip, home: u8, labels: &mut LabelSet) {
        if geo_country(ip.addr()) != Some(COUNTRIES[home as usize].0) {
            labels.insert(Pattern::GeoMismatch);
        }
        if in_threat_anchor(&self.layout.anchors, ip) {
            labels.insert(Pattern::ThreatIp);
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

            let ip = self.source_ip(acct.home_country, acct.home_ip);
            self.ip_labels(ip, acct.home_country, &mut labels);
            push_ip(&mut source_ip.values, ip);
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

    /// Labels recomputed from account and time alone, by the definition: the row's own
    /// trailing window `[t − 60 s, t]` holds ≥ 5 rows of the account among this row and
    /// the rows before it in the stream.
    fn rapid_truth(accounts: &[String], ts: &[i64]) -> Vec<bool> {
        let mut by_account: HashMap<&str, Vec<i64>> = HashMap::new();
        let mut rapid = vec![false; ts.len()];
        for (i, a) in accounts.iter().enumerate() {
            let times = by_account.entry(a).or_default();
            times.push(ts[i]);
            let t = ts[i];
            let in_window = times
                .iter()
                .filter(|&&u| (t - RAPID_WINDOW_US..=t).contains(&u))
                .count();
            rapid[i] = in_window >= RAPID_MIN_ROWS;
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

    #[test]
    fn layout_spaces_follow_pf_enrichment() {
        let layout = layout();
        for (i, space) in layout.spaces.iter().enumerate() {
            let home = Some(COUNTRIES[i].0);
            let v4 = |o: u8| geo_country(Ip::V4(ipv4_in(o, 12_345)).addr());
            let v6 = |g: u16| geo_country(Ip::V6(ipv6_in(g, 12_345)).addr());
            assert!(!space.home_v4.is_empty() && !space.foreign_v4.is_empty());
            assert!(space.home_v4.iter().all(|&o| v4(o) == home));
            assert!(space.home_v6.iter().all(|&g| v6(g) == home));
            assert!(
                space
                    .foreign_v4
                    .iter()
                    .all(|&o| v4(o).is_some() && v4(o) != home)
            );
            assert!(
                space
                    .foreign_v6
                    .iter()
                    .all(|&g| v6(g).is_some() && v6(g) != home)
            );
            assert_eq!(space.home_v4.len() + space.foreign_v4.len(), 32);
        }
        assert_eq!(layout.anchors.len(), THREAT_ANCHORS.len());
        let ip = |s: &str| match s.parse::<IpAddr>().unwrap() {
            IpAddr::V4(a) => Ip::V4(u32::from(a)),
            IpAddr::V6(a) => Ip::V6(u128::from(a)),
        };
        assert!(in_threat_anchor(&layout.anchors, ip("95.214.53.17")));
        assert!(in_threat_anchor(&layout.anchors, ip("2a0e:1c80:1:2::3")));
        assert!(!in_threat_anchor(&layout.anchors, ip("95.214.56.1")));
        assert!(!in_threat_anchor(&layout.anchors, ip("2a0e:1c81::1")));
        assert!(!in_threat_anchor(&layout.anchors, ip("3.1.2.3")));
    }

    #[test]
    fn addresses_are_written_as_they_are_labelled() {
        // Every kind of address, written and parsed back, is the address the labels were
        // computed from.
        let mut generator = TransactionGenerator::single_file(11, 10_000, 10_000);
        let mut seen = [0u32; 4];
        for home in 0..COUNTRIES.len() as u8 {
            let home_ip = ipv4_in(layout().spaces[usize::from(home)].home_v4[0], 77);
            for _ in 0..20_000 {
                let ip = generator.source_ip(home, home_ip);
                let mut text = Vec::new();
                push_ip(&mut text, ip);
                let parsed: IpAddr = std::str::from_utf8(&text).unwrap().parse().unwrap();
                assert_eq!(parsed, ip.addr(), "{}", String::from_utf8_lossy(&text));
                let mut labels = LabelSet::EMPTY;
                generator.ip_labels(ip, home, &mut labels);
                let threat = labels.contains(Pattern::ThreatIp);
                let geo = labels.contains(Pattern::GeoMismatch);
                assert!(!threat || geo, "threat addresses are foreign");
                seen[usize::from(threat) * 2 + usize::from(geo)] += 1;
            }
        }
        let [clean, geo_only, threat_only, both] = seen;
        assert_eq!(threat_only, 0);
        let total = f64::from(clean + geo_only + both);
        assert!(
            (0.003..0.007).contains(&(f64::from(geo_only) / total)),
            "{seen:?}"
        );
        assert!(
            (0.002..0.004).contains(&(f64::from(both) / total)),
            "{seen:?}"
        );
    }
}
