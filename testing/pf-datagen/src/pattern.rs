//! The fraud patterns planted in generated data and the label strings that name them.

use std::fmt;

/// A fraud pattern whose ground truth is recorded in `label_rules`.
///
/// The names match the default rules in `config/rules/fraud.yaml`, so recall and precision
/// of a rule can be read off by comparing its output with the label of the same name.
/// The two enrichment patterns are exact against the tables `crate::layout`
/// writes for the same seed (see [`crate::tables`]). Variants are declared in name order,
/// so a pattern's bit ([`Pattern::bit`]) is its position in [`Pattern::ALL`]. The enum is
/// non-exhaustive so that adding patterns does not break matches in other crates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Pattern {
    /// The source IP's geo country differs from the account's home country:
    /// `lookup_cidr("geo", source_ip).country != lookup("users", account_id).home_country`.
    GeoMismatch,
    /// `amount > 10,000`.
    HighValue,
    /// The row's own trailing window `[t − 60 s, t]` (inclusive) holds five or more rows of
    /// its account, counting itself and earlier rows: the 5th and later rows of a burst.
    RapidActivity,
    /// The source IP is on the threat list: `in_table("threats", source_ip)`.
    ThreatIp,
    /// Timestamp hour in `[01:00, 05:00)` UTC.
    UnusualHour,
}

impl Pattern {
    /// Every pattern, in label order (sorted by name), so joining the names of a row's
    /// patterns in this order yields the sorted `label_rules` string.
    pub const ALL: [Pattern; 5] = [
        Pattern::GeoMismatch,
        Pattern::HighValue,
        Pattern::RapidActivity,
        Pattern::ThreatIp,
        Pattern::UnusualHour,
    ];

    /// The name used in `label_rules`, in [`crate::GenReport::planted`] and by the rules.
    pub const fn name(self) -> &'static str {
        match self {
            Pattern::GeoMismatch => "geo_mismatch",
            Pattern::HighValue => "high_value",
            Pattern::RapidActivity => "rapid_activity",
            Pattern::ThreatIp => "threat_ip",
            Pattern::UnusualHour => "unusual_hour",
        }
    }

    /// The pattern with this name, if any.
    pub fn from_name(name: &str) -> Option<Pattern> {
        Pattern::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The bit of this pattern in a [`LabelSet`].
    pub const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The set of patterns present in one row, as a bit set over [`Pattern::bit`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LabelSet(pub u8);

impl LabelSet {
    /// No pattern.
    pub const EMPTY: LabelSet = LabelSet(0);

    /// Adds `p`.
    #[inline]
    pub fn insert(&mut self, p: Pattern) {
        self.0 |= p.bit();
    }

    /// Whether `p` is in the set.
    #[inline]
    pub fn contains(self, p: Pattern) -> bool {
        self.0 & p.bit() != 0
    }

    /// Whether no pattern is present (the row is not fraud).
    #[inline]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The `label_rules` value: sorted, comma-separated names, `None` when empty.
    pub fn to_label(self) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let names: Vec<&str> = Pattern::ALL
            .into_iter()
            .filter(|p| self.contains(*p))
            .map(Pattern::name)
            .collect();
        Some(names.join(","))
    }

    /// Parses a `label_rules` value; unknown names are returned as the error.
    pub fn parse(label: Option<&str>) -> Result<LabelSet, String> {
        let mut set = LabelSet::EMPTY;
        for name in label.into_iter().flat_map(|l| l.split(',')) {
            set.insert(Pattern::from_name(name).ok_or_else(|| name.to_owned())?);
        }
        Ok(set)
    }
}

/// Pre-rendered label strings for every set, indexed by the bit set, so building the
/// `label_rules` column copies bytes instead of joining names per row.
pub(crate) fn label_table() -> Vec<Option<String>> {
    (0..1u16 << Pattern::ALL.len())
        .map(|bits| LabelSet(bits as u8).to_label())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_and_round_trip() {
        let mut names: Vec<&str> = Pattern::ALL.iter().map(|p| p.name()).collect();
        let sorted = {
            let mut s = names.clone();
            s.sort_unstable();
            s
        };
        assert_eq!(names, sorted);
        names.dedup();
        assert_eq!(names.len(), Pattern::ALL.len());
        let table = label_table();
        assert_eq!(table.len(), 32);
        assert_eq!(table[0], None);
        assert_eq!(
            table[31].as_deref(),
            Some("geo_mismatch,high_value,rapid_activity,threat_ip,unusual_hour")
        );
        assert_eq!(
            LabelSet::parse(Some("threat_ip,geo_mismatch")),
            Ok(LabelSet(
                Pattern::GeoMismatch.bit() | Pattern::ThreatIp.bit()
            ))
        );
        for (i, p) in Pattern::ALL.into_iter().enumerate() {
            assert_eq!(p as usize, i, "{p}: bit order is name order");
        }
        for (bits, label) in table.iter().enumerate() {
            assert_eq!(LabelSet::parse(label.as_deref()), Ok(LabelSet(bits as u8)));
        }
        assert_eq!(LabelSet::parse(Some("nope")), Err("nope".to_owned()));
    }
}
