//! Allocation-free ASCII formatting into byte buffers.
//!
//! Column building and NDJSON writing run once per value on the hot path, so numbers are
//! written with lookup tables straight into the destination buffer instead of going
//! through `format!` and a temporary `String`.

/// "00" "01" … "99": two digits per division halves the number of divisions.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `n` in decimal, left-padded with zeros to at least `width` digits.
#[inline]
pub(crate) fn push_padded(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut pos = buf.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        pos -= 2;
        buf[pos..pos + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        pos -= 2;
        buf[pos..pos + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        pos -= 1;
        buf[pos] = b'0' + n as u8;
    }
    // `buf` is pre-filled with '0', so padding is just starting earlier.
    let start = pos.min(buf.len().saturating_sub(width));
    out.extend_from_slice(&buf[start..]);
}

/// Appends `n` as exactly `W` zero-padded digits when it fits, else as [`push_padded`].
///
/// A constant-length copy compiles to a few moves instead of a `memcpy` call, which
/// matters for the id columns written once per row.
#[inline]
pub(crate) fn push_fixed<const W: usize>(out: &mut Vec<u8>, mut n: u64) {
    if W > 19 || n >= 10u64.pow(W as u32) {
        return push_padded(out, n, W);
    }
    let mut buf = [b'0'; W];
    for b in buf.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf);
}

/// Appends exactly two digits (`n < 100`).
#[inline]
fn push_2(out: &mut Vec<u8>, n: u32) {
    let pair = n as usize * 2;
    out.extend_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
}

/// Appends `x` as exactly 16 lower-case hex digits.
#[inline]
pub(crate) fn push_hex16(out: &mut Vec<u8>, x: u64) {
    let mut buf = [0u8; 16];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = HEX[((x >> (60 - 4 * i)) & 0xF) as usize];
    }
    out.extend_from_slice(&buf);
}

/// Appends `x` in lower-case hex without leading zeros, as IPv6 groups are written.
#[inline]
pub(crate) fn push_hex_group(out: &mut Vec<u8>, x: u16) {
    let mut started = false;
    for shift in [12u32, 8, 4, 0] {
        let d = (x >> shift) & 0xF;
        if d != 0 || started || shift == 0 {
            out.push(HEX[d as usize]);
            started = true;
        }
    }
}

/// Decimal text of every octet value, so a dotted quad is four table copies.
static OCTETS: [([u8; 3], u8); 256] = {
    let mut table = [([0u8; 3], 0u8); 256];
    let mut i = 0;
    while i < 256 {
        let (h, t, o) = ((i / 100) as u8, ((i / 10) % 10) as u8, (i % 10) as u8);
        table[i] = if i >= 100 {
            ([b'0' + h, b'0' + t, b'0' + o], 3)
        } else if i >= 10 {
            ([b'0' + t, b'0' + o, 0], 2)
        } else {
            ([b'0' + o, 0, 0], 1)
        };
        i += 1;
    }
    table
};

/// Appends an IPv4 address (most significant octet first) as a dotted quad.
#[inline]
pub(crate) fn push_ipv4(out: &mut Vec<u8>, ip: u32) {
    for (i, octet) in ip.to_be_bytes().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        let (digits, len) = &OCTETS[octet as usize];
        out.extend_from_slice(&digits[..*len as usize]);
    }
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01.
///
/// Howard Hinnant's `civil_from_days`: branch-light integer arithmetic, exact for the
/// whole `i32` year range.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Appends `micros` since the Unix epoch as RFC 3339 UTC with six fractional digits,
/// e.g. `2026-01-05T13:45:12.123456Z`.
///
/// Years outside 0000–9999 are written with their natural digits (and a sign when
/// negative); RFC 3339 cannot express them, but the value must not be silently wrong.
pub(crate) fn push_rfc3339_micros(out: &mut Vec<u8>, micros: i64) {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000) as u64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    if year < 0 {
        out.push(b'-');
    }
    push_padded(out, year.unsigned_abs(), 4);
    out.push(b'-');
    push_2(out, month);
    out.push(b'-');
    push_2(out, day);
    out.push(b'T');
    push_2(out, sod / 3600);
    out.push(b':');
    push_2(out, sod / 60 % 60);
    out.push(b':');
    push_2(out, sod % 60);
    out.push(b'.');
    push_padded(out, frac, 6);
    out.push(b'Z');
}

/// Appends an amount given in cents as `units.cc` (always two decimals, `-` if negative).
#[inline]
pub(crate) fn push_cents(out: &mut Vec<u8>, cents: i64) {
    if cents < 0 {
        out.push(b'-');
    }
    let c = cents.unsigned_abs();
    push_padded(out, c / 100, 1);
    out.push(b'.');
    push_2(out, (c % 100) as u32);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn numbers() {
        assert_eq!(s(|o| push_padded(o, 123, 7)), "0000123");
        assert_eq!(s(|o| push_padded(o, 0, 1)), "0");
        assert_eq!(s(|o| push_padded(o, 12_345_678, 7)), "12345678");
        assert_eq!(s(|o| push_fixed::<7>(o, 123)), "0000123");
        assert_eq!(s(|o| push_fixed::<7>(o, 0)), "0000000");
        assert_eq!(s(|o| push_fixed::<7>(o, 9_999_999)), "9999999");
        assert_eq!(s(|o| push_fixed::<7>(o, 12_345_678)), "12345678");
        assert_eq!(s(|o| push_padded(o, u64::MAX, 1)), u64::MAX.to_string());
        for n in [0u64, 5, 10, 99, 100, 101, 999, 1000, 65_535, 1 << 40] {
            assert_eq!(s(|o| push_padded(o, n, 0)), n.to_string());
        }
        assert_eq!(
            s(|o| push_hex16(o, 0x0123_4567_89ab_cdef)),
            "0123456789abcdef"
        );
        assert_eq!(s(|o| push_hex_group(o, 0)), "0");
        assert_eq!(s(|o| push_hex_group(o, 0x0a0b)), "a0b");
        assert_eq!(s(|o| push_ipv4(o, 0x0A00_FF01)), "10.0.255.1");
        assert_eq!(s(|o| push_ipv4(o, 0xC0A8_6409)), "192.168.100.9");
        assert_eq!(s(|o| push_cents(o, 1_000_001)), "10000.01");
        assert_eq!(s(|o| push_cents(o, 5)), "0.05");
        assert_eq!(s(|o| push_cents(o, -250)), "-2.50");
    }

    #[test]
    fn timestamps_match_chrono() {
        let samples = [
            0i64,
            1,
            -1,
            951_782_400_000_000,     // 2000-02-29
            1_767_225_600_000_000,   // 2026-01-01
            1_767_620_712_123_456,   // 2026-01-05T13:45:12.123456
            4_102_444_799_999_999,   // 2099-12-31T23:59:59.999999
            -62_135_596_800_000_000, // 0001-01-01
            253_402_300_799_999_999, // 9999-12-31T23:59:59.999999
        ];
        for us in samples {
            let want = chrono::DateTime::from_timestamp_micros(us)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string();
            assert_eq!(s(|o| push_rfc3339_micros(o, us)), want, "{us}");
        }
        assert_eq!(
            s(|o| push_rfc3339_micros(o, 1_767_620_712_123_456)),
            "2026-01-05T13:45:12.123456Z"
        );
    }
}
