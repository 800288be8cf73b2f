//! Parsing of IP addresses (per lookup, so speed matters: a parser of our own) and of
//! CIDR prefixes (at load: `ipnet`).

use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

/// A parsed lookup key, IPv4-mapped IPv6 addresses already folded into IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ip {
    V4(u32),
    V6(u128),
}

/// The longest textual IPv6 address (`ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`) has 45
/// characters; anything longer cannot be an address, and refusing it early keeps hostile
/// multi-kilobyte strings off the standard parser.
const MAX_IP_LEN: usize = 45;

/// Parses `s` as an IPv4 or IPv6 address; `None` for anything else, including surrounding
/// whitespace, zone ids (`fe80::1%eth0`) and IPv4 octets with leading zeros.
#[inline(always)]
pub(crate) fn parse_ip(s: &str) -> Option<Ip> {
    if let Some(v4) = parse_ipv4(s.as_bytes()) {
        return Some(Ip::V4(v4));
    }
    parse_ipv6_slow(s)
}

/// Kept out of line so the IPv4 fast path inlines into the lookup loops without it.
#[inline(never)]
fn parse_ipv6_slow(s: &str) -> Option<Ip> {
    Some(fold_v6(Ipv6Addr::from(parse_ipv6(s.as_bytes())?)))
}

/// Parses an IPv6 address exactly as `std` does (1–4 hex digits per group, at most one
/// `::` standing for at least one zero group, an optional dotted quad as the last 32
/// bits, no zone id), about five times faster: `std`'s generic reader costs more than the
/// rest of a lookup.
fn parse_ipv6(s: &[u8]) -> Option<u128> {
    let len = s.len();
    if !(2..=MAX_IP_LEN).contains(&len) {
        return None;
    }
    // Groups before and after the `::`, if any.
    let mut head = [0u16; 8];
    let mut tail = [0u16; 8];
    let (mut n_head, mut n_tail) = (0usize, 0usize);
    let mut compressed = false;
    let mut i = 0;
    if s.starts_with(b"::") {
        compressed = true;
        i = 2;
        if i == len {
            return Some(0);
        }
    }
    loop {
        let start = i;
        let mut group = 0u32;
        while i < len && i - start < 5 {
            let digit = match s[i] {
                c @ b'0'..=b'9' => c - b'0',
                c @ b'a'..=b'f' => c - b'a' + 10,
                c @ b'A'..=b'F' => c - b'A' + 10,
                _ => break,
            };
            group = (group << 4) | u32::from(digit);
            i += 1;
        }
        let mut parts = [0u16; 2];
        let parts = if s.get(i) == Some(&b'.') {
            // A dotted quad takes the rest of the string and counts as two groups.
            let v4 = parse_ipv4(s.get(start..)?)?;
            i = len;
            parts = [(v4 >> 16) as u16, v4 as u16];
            &parts[..]
        } else {
            if i == start || i - start > 4 {
                return None;
            }
            parts[0] = group as u16;
            &parts[..1]
        };
        for &p in parts {
            let (groups, n) = if compressed {
                (&mut tail, &mut n_tail)
            } else {
                (&mut head, &mut n_head)
            };
            *groups.get_mut(*n)? = p;
            *n += 1;
        }
        if i == len {
            break;
        }
        if s[i] != b':' {
            return None;
        }
        i += 1;
        if s.get(i) == Some(&b':') {
            if compressed {
                return None;
            }
            compressed = true;
            i += 1;
            if i == len {
                break;
            }
        } else if i == len {
            return None;
        }
    }
    let total = n_head + n_tail;
    if (compressed && total > 7) || (!compressed && total != 8) {
        return None;
    }
    let mut groups = [0u16; 8];
    groups[..n_head].copy_from_slice(&head[..n_head]);
    groups[8 - n_tail..].copy_from_slice(&tail[..n_tail]);
    Some(
        groups
            .iter()
            .fold(0u128, |acc, &g| (acc << 16) | u128::from(g)),
    )
}

/// `::ffff:a.b.c.d` is how dual-stack sockets report IPv4 peers; treating it as the IPv4
/// address makes such logs match IPv4 prefixes, which is what an operator expects.
pub(crate) fn fold_v6(v6: Ipv6Addr) -> Ip {
    match v6.to_ipv4_mapped() {
        Some(v4) => Ip::V4(u32::from(v4)),
        None => Ip::V6(u128::from(v6)),
    }
}

/// A strict dotted-quad parser: exactly four decimal octets of 1–3 digits, each at most
/// 255, no leading zeros (which some stacks read as octal, so `std` rejects them too),
/// nothing before or after.
///
/// Hand-written because the parse is a large part of a lookup's cost. It has no branches
/// per octet: octet lengths in real traffic are random, so a branch on them is
/// mispredicted about half the time, which costs more than computing every candidate
/// value and picking one. (A SWAR variant classifying all 16 bytes at once measured no
/// faster: the `u128` arithmetic outweighs the shorter dependency chain.)
#[inline(always)]
pub(crate) fn parse_ipv4(s: &[u8]) -> Option<u32> {
    let len = s.len();
    if !(7..=15).contains(&len) {
        return None;
    }
    // The string zero-padded to 16 bytes (zero is not a digit, so digit runs stop at the
    // end), from two overlapping 8-byte reads rather than a variable-length copy, which
    // would be a call.
    let mut buf = [0u8; 16];
    match (s.first_chunk::<8>(), s.last_chunk::<8>()) {
        (Some(head), Some(tail)) => {
            // The tail's bytes past the head, moved down to the start of the second half.
            let rest = u64::from_le_bytes(*tail)
                .checked_shr(8 * (16 - len) as u32)
                .unwrap_or(0);
            buf = ((u128::from(rest) << 64) | u128::from(u64::from_le_bytes(*head))).to_le_bytes();
        }
        _ => buf[..len].copy_from_slice(s),
    }
    let mut ok = true;
    let mut pos = 0usize;
    let mut ip = 0u32;
    for octet in 0..4 {
        // `pos` is at most 12 here (each octet advances it by at most 4), so the masks
        // never change an index; they only let the compiler drop the bounds checks.
        let d0 = u32::from(buf[pos & 15].wrapping_sub(b'0'));
        let d1 = u32::from(buf[(pos + 1) & 15].wrapping_sub(b'0'));
        let d2 = u32::from(buf[(pos + 2) & 15].wrapping_sub(b'0'));
        let digits = usize::from(d0 < 10) * (1 + usize::from(d1 < 10) * (1 + usize::from(d2 < 10)));
        let value = [0, d0, d0 * 10 + d1, d0 * 100 + d1 * 10 + d2][digits & 3];
        // Non-short-circuit `&`, so these stay branch-free too.
        ok &= (digits > 0) & (value <= 255) & !((digits > 1) & (d0 == 0));
        let end = pos + digits;
        ok &= if octet < 3 {
            buf[end & 15] == b'.'
        } else {
            end == len
        };
        ip = (ip << 8) | (value & 0xFF);
        pos = end + 1;
    }
    ok.then_some(ip)
}

/// A CIDR prefix as stored in a table, with the host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prefix {
    pub(crate) ip: Ip,
    /// Prefix length in bits, within the family of `ip` (0..=32 or 0..=128).
    pub(crate) len: u8,
}

impl Prefix {
    /// The first and last address covered, in the family's integer space.
    pub(crate) fn range(self) -> (u128, u128) {
        let (start, bits) = match self.ip {
            Ip::V4(a) => (u128::from(a), 32),
            Ip::V6(a) => (a, 128),
        };
        let host_bits = bits - u32::from(self.len);
        let span = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        (start, start | span)
    }
}

/// Parses `a.b.c.d/n`, `x:y::/n`, or a bare address (a /32 or /128).
///
/// Host bits below the prefix length are cleared (`10.0.0.1/8` is `10.0.0.0/8`): feeds
/// written by hand or exported from firewalls commonly carry them, and rejecting a whole
/// table for it helps nobody. An IPv4-mapped prefix (`::ffff:10.0.0.0/104`) becomes the
/// IPv4 prefix it denotes (`10.0.0.0/8`), since lookups fold mapped addresses to IPv4.
pub(crate) fn parse_prefix(s: &str) -> Result<Prefix, String> {
    let s = s.trim();
    let (addr, len) = match s.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (s, None),
    };
    let address: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not an IPv4 or IPv6 address"))?;
    let net = match len {
        None => IpNet::from(address),
        Some(text) => {
            let max = match address {
                IpAddr::V4(_) => 32,
                IpAddr::V6(_) => 128,
            };
            let refused = || format!("prefix length `{text}` is not in 0..={max}");
            // `/08` is refused: some tools read a leading zero as octal.
            if text.len() > 1 && text.starts_with('0') {
                return Err(refused());
            }
            s.parse::<IpNet>().map_err(|_| refused())?
        }
    }
    .trunc();
    Ok(match net {
        IpNet::V4(n) => Prefix {
            ip: Ip::V4(u32::from(n.network())),
            len: n.prefix_len(),
        },
        IpNet::V6(n) => match fold_v6(n.network()) {
            Ip::V4(v4) if n.prefix_len() >= 96 => Prefix {
                ip: Ip::V4(v4),
                len: n.prefix_len() - 96,
            },
            _ => Prefix {
                ip: Ip::V6(u128::from(n.network())),
                len: n.prefix_len(),
            },
        },
    })
}

/// SplitMix64's output function, for the deterministic pseudo-random inputs of the unit
/// tests (the test-data generator has its own copy in `pf-datagen`).
#[cfg(test)]
pub(crate) const fn test_mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn ipv4_fast_parser_agrees_with_std() {
        let cases = [
            "0.0.0.0",
            "255.255.255.255",
            "1.2.3.4",
            "10.0.255.1",
            "192.168.100.9",
            "999.1.1.1",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "1.2.3.4 ",
            " 1.2.3.4",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.0",
            "1..2.3",
            "1.2.3.",
            ".1.2.3",
            "1234.1.1.1",
            "1.2.3.4a",
            "a.b.c.d",
            "",
            "abc",
            "1.2.3.-4",
            "+1.2.3.4",
            "1.2.3.255",
            "1.2.3.256",
            "100.200.250.199",
        ];
        for c in cases {
            let std = c.parse::<Ipv4Addr>().ok().map(u32::from);
            assert_eq!(parse_ipv4(c.as_bytes()), std, "{c:?}");
        }
    }

    #[test]
    fn ipv4_fast_parser_agrees_with_std_on_random_strings() {
        // Short strings over the alphabet that matters, so every branch is exercised.
        let alphabet = b"0123456789.. 0x:";
        let mut state = 0x1234_5678_u64;
        for _ in 0..200_000 {
            state = crate::ip::test_mix64(state);
            let len = 5 + (state % 12) as usize;
            let s: String = (0..len)
                .map(|i| alphabet[((state >> (4 * (i % 15))) & 15) as usize] as char)
                .collect();
            let std = s.parse::<Ipv4Addr>().ok().map(u32::from);
            assert_eq!(parse_ipv4(s.as_bytes()), std, "{s:?}");
        }
    }

    #[test]
    fn ipv4_fast_parser_agrees_with_std_on_all_octet_shapes() {
        let octets = [
            "", "0", "00", "01", "1", "9", "10", "99", "100", "199", "249", "255", "256", "299",
            "999", "1000", "a", "1a",
        ];
        let mut s = String::new();
        for a in octets {
            for b in octets {
                for c in octets {
                    for d in octets {
                        s.clear();
                        s.push_str(a);
                        s.push('.');
                        s.push_str(b);
                        s.push('.');
                        s.push_str(c);
                        s.push('.');
                        s.push_str(d);
                        let std = s.parse::<Ipv4Addr>().ok().map(u32::from);
                        assert_eq!(parse_ipv4(s.as_bytes()), std, "{s:?}");
                    }
                }
            }
        }
    }

    fn check_v6(s: &str) {
        let std = s.parse::<Ipv6Addr>().ok().map(u128::from);
        assert_eq!(parse_ipv6(s.as_bytes()), std, "{s:?}");
    }

    #[test]
    fn ipv6_parser_agrees_with_std() {
        for s in [
            "::",
            "::1",
            "1::",
            "1::2",
            ":",
            ":::",
            "1:::2",
            ":1::",
            "1::2::3",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8::",
            "::1:2:3:4:5:6:7:8",
            "12345::",
            "ffff::",
            "FFFF::fFfF",
            "g::",
            "::ffff:1.2.3.4",
            "::1.2.3.4",
            "1:2:3:4:5:6:1.2.3.4",
            "1:2:3:4:5::1.2.3.4",
            "1:2:3:4:5:6::1.2.3.4",
            "1:2:1.2.3.4::",
            "::1.2.3",
            "::1.2.3.4.5",
            "::01.2.3.4",
            "::a.b.c.d",
            "::1.2.3.4:5",
            "1.2.3.4::",
            "2001:db8::1%eth0",
            " ::1",
            "::1 ",
            "0000:0000:0000:0000:0000:0000:0000:0000",
            "00000::",
            "1:",
            ":1",
            "::1:",
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "::ffff:255.255.255.255",
            "::ffff:256.1.1.1",
            "fe80::",
            "1::2:3",
            "1.2.3.4",
        ] {
            check_v6(s);
        }
    }

    #[test]
    fn ipv6_parser_agrees_with_std_on_random_strings() {
        let alphabet = b"0123456789abcdefABCDEF:::...g ";
        let mut state = 77u64;
        let mut s = String::new();
        for round in 0..300_000u64 {
            state = crate::ip::test_mix64(state ^ round);
            s.clear();
            if round.is_multiple_of(3) {
                // Well-formed addresses in std's own notation, sometimes mangled a little.
                let a = Ipv6Addr::from(
                    u128::from(state) << 64 | u128::from(crate::ip::test_mix64(state)),
                );
                let zeros = (state >> 3) % 8;
                let groups = a
                    .segments()
                    .map(|g| if (g as u64) % 8 < zeros { 0 } else { g });
                s.push_str(&Ipv6Addr::from(groups).to_string());
                if state.is_multiple_of(5) {
                    s.push_str(&format!(":{}", state % 300));
                }
                if state.is_multiple_of(7) {
                    s.truncate((state % 40) as usize % s.len().max(1));
                }
            } else {
                let len = 2 + (state % 44) as usize;
                let mut h = state;
                for _ in 0..len {
                    h = crate::ip::test_mix64(h);
                    s.push(alphabet[(h % alphabet.len() as u64) as usize] as char);
                }
            }
            check_v6(&s);
        }
    }

    #[test]
    fn parse_ip_folds_mapped_and_rejects_junk() {
        assert_eq!(parse_ip("::ffff:1.2.3.4"), Some(Ip::V4(0x0102_0304)));
        assert_eq!(parse_ip("::FFFF:0102:0304"), Some(Ip::V4(0x0102_0304)));
        assert_eq!(parse_ip("::1"), Some(Ip::V6(1)));
        assert_eq!(parse_ip("2001:db8::1%eth0"), None);
        assert_eq!(parse_ip("2001:db8::1 "), None);
        assert_eq!(parse_ip(&"1:".repeat(1000)), None);
        assert_eq!(parse_ip("abc"), None);
        assert_eq!(parse_ip(""), None);
    }

    #[test]
    fn prefixes_are_normalized() {
        let p = parse_prefix("10.0.0.1/8").unwrap();
        assert_eq!(p.ip, Ip::V4(0x0A00_0000));
        assert_eq!(p.range(), (0x0A00_0000, 0x0AFF_FFFF));
        let p = parse_prefix("1.2.3.4").unwrap();
        assert_eq!((p.ip, p.len), (Ip::V4(0x0102_0304), 32));
        let p = parse_prefix("0.0.0.0/0").unwrap();
        assert_eq!(p.range(), (0, 0xFFFF_FFFF));
        let p = parse_prefix("::/0").unwrap();
        assert_eq!(p.range(), (0, u128::MAX));
        let p = parse_prefix("2001:db8::1").unwrap();
        assert_eq!(p.len, 128);
        let p = parse_prefix("::ffff:10.1.0.0/104").unwrap();
        assert_eq!((p.ip, p.len), (Ip::V4(0x0A00_0000), 8));
        let p = parse_prefix(" 10.0.0.0/8 ").unwrap();
        assert_eq!(p.len, 8);
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/08",
            "::/129",
            "x/8",
            "10.0.0/8",
            "10.0.0.0/8/8",
        ] {
            assert!(parse_prefix(bad).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;
    use std::hint::black_box;
    use std::time::Instant;

    #[test]
    #[ignore = "speed test; run in release with --ignored"]
    fn ipv4_parse_speed() {
        let keys: Vec<String> = (0..1_000_000u64)
            .map(|i| std::net::Ipv4Addr::from(crate::ip::test_mix64(i) as u32).to_string())
            .collect();
        let best_of = |f: &dyn Fn(&str) -> u32| {
            let mut best = f64::MAX;
            for _ in 0..10 {
                let t = Instant::now();
                let mut acc = 0u32;
                for k in &keys {
                    acc = acc.wrapping_add(f(black_box(k)));
                }
                black_box(acc);
                best = best.min(t.elapsed().as_secs_f64());
            }
            best * 1e9 / keys.len() as f64
        };
        let ours = best_of(&|k| parse_ipv4(k.as_bytes()).unwrap_or(0));
        let std = best_of(&|k| k.parse::<std::net::Ipv4Addr>().map_or(0, u32::from));
        println!("IPv4 parse: {ours:.1} ns/key (std: {std:.1} ns/key)");
    }
}
