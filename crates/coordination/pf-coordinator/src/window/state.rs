//! One key's window state as stored in Valkey, and the per-event semantics of
//! `pf_rules::window` over it, run in the worker.
//!
//! The worker reads a key's state, applies a batch's events to it here, and writes it
//! back in a transaction that fails if another worker changed it meanwhile (then it
//! reads and applies again), so the server does only native hash reads and writes.

use pf_traits::WindowAlert;

/// The first byte of an encoded state: a state in another layout (written by another
/// version) is read as empty rather than misread.
const FORMAT: u8 = 1;

/// What a window rule asks of every key, in µs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    /// Window length.
    pub window: i64,
    /// How far behind its key's newest event an event may arrive and still count.
    pub lateness: i64,
    /// Events needed in a window.
    pub min_count: usize,
    /// Events kept per key, the oldest dropped first (0: no cap).
    pub max_events: usize,
}

/// One stored event: its time (µs), the index of its file in [`KeyWindow::uris`], and its
/// row ordinal in that file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Event {
    t: i64,
    uri: u32,
    row: u64,
}

/// One key's compact window state: the events still within reach of a late arrival
/// (sorted by time, ties in arrival order), the files they come from, and the window
/// ends already alerted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyWindow {
    newest: Option<i64>,
    uris: Vec<String>,
    events: Vec<Event>,
    alerted: Vec<i64>,
}

/// What one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Observed {
    /// Older than the key's newest event by more than window and lateness: not counted.
    Late,
    /// Counted (or recognised as a replay); `fired` is the row's flag.
    Event { fired: bool },
}

impl KeyWindow {
    /// The state in `bytes`; an empty state for bytes in another layout or damaged,
    /// which costs at most the alerts of the events it held, never a wrong one.
    pub(crate) fn decode(bytes: &[u8]) -> Self {
        Self::try_decode(bytes).unwrap_or_default()
    }

    fn try_decode(bytes: &[u8]) -> Option<Self> {
        let (&format, rest) = bytes.split_first()?;
        if format != FORMAT {
            return None;
        }
        let mut r = Reader(rest);
        let newest = r.signed()?;
        let mut uris = Vec::with_capacity(r.len()?);
        for _ in 0..uris.capacity() {
            let len = r.len()?;
            uris.push(std::str::from_utf8(r.bytes(len)?).ok()?.to_owned());
        }
        let n = r.len()?;
        let mut events = Vec::with_capacity(n);
        let mut t = 0i64;
        for i in 0..n {
            t = if i == 0 {
                r.signed()?
            } else {
                t.checked_add(i64::try_from(r.unsigned()?).ok()?)?
            };
            let uri = u32::try_from(r.unsigned()?).ok()?;
            if uri as usize >= uris.len() {
                return None;
            }
            events.push(Event {
                t,
                uri,
                row: r.unsigned()?,
            });
        }
        let mut alerted = Vec::with_capacity(r.len()?);
        for _ in 0..alerted.capacity() {
            alerted.push(r.signed()?);
        }
        r.0.is_empty().then_some(KeyWindow {
            newest: Some(newest),
            uris,
            events,
            alerted,
        })
    }

    /// The state as stored: varints, times as deltas from the previous event.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            16 + self.uris.iter().map(|u| u.len() + 2).sum::<usize>() + self.events.len() * 12,
        );
        out.push(FORMAT);
        put_signed(&mut out, self.newest.unwrap_or(0));
        put_unsigned(&mut out, self.uris.len() as u64);
        for u in &self.uris {
            put_unsigned(&mut out, u.len() as u64);
            out.extend_from_slice(u.as_bytes());
        }
        put_unsigned(&mut out, self.events.len() as u64);
        let mut prev = None;
        for e in &self.events {
            match prev {
                None => put_signed(&mut out, e.t),
                Some(p) => put_unsigned(&mut out, e.t.abs_diff(p)),
            }
            prev = Some(e.t);
            put_unsigned(&mut out, u64::from(e.uri));
            put_unsigned(&mut out, e.row);
        }
        put_unsigned(&mut out, self.alerted.len() as u64);
        for &a in &self.alerted {
            put_signed(&mut out, a);
        }
        out
    }

    /// Whether the key has seen an event (only then is there a state to store).
    pub(crate) fn is_live(&self) -> bool {
        self.newest.is_some()
    }

    fn lower(&self, x: i64) -> usize {
        self.events.partition_point(|e| e.t < x)
    }

    fn upper(&self, x: i64) -> usize {
        self.events.partition_point(|e| e.t <= x)
    }

    /// Calls `f(first event at tau, tau, count)` for every distinct time `tau` in
    /// `[t, t + W]` (the windows an event at `t` is in), `count` being the events in
    /// `[tau − W, tau]`.
    fn each_window(&self, t: i64, p: &Params, mut f: impl FnMut(usize, i64, usize)) {
        let mut i = self.lower(t);
        let end = self.upper(t.saturating_add(p.window));
        while i < end {
            let tau = self.events[i].t;
            let mut k = i;
            while k + 1 < end && self.events[k + 1].t == tau {
                k += 1;
            }
            f(i, tau, k + 1 - self.lower(tau.saturating_sub(p.window)));
            i = k + 1;
        }
    }

    fn alert(&self, key: &str, at: usize, tau: i64, count: usize, late: bool) -> WindowAlert {
        let e = self.events[at];
        WindowAlert {
            key: key.to_owned(),
            window_end: tau,
            count: u32::try_from(count).unwrap_or(u32::MAX),
            uri: self.uris.get(e.uri as usize).cloned().unwrap_or_default(),
            row: e.row,
            late,
        }
    }

    /// Adds the event `(t, uri, row)` of `key`, pushing the alerts it raises onto
    /// `alerts`. A replay (same time, uri and row already stored) is not counted again;
    /// the alerts of the windows holding it are raised again unless `again` (the window
    /// ends of this key raised so far in this batch, kept up to date here) has them.
    pub(crate) fn observe(
        &mut self,
        (key, uri, t, row): (&str, &str, i64, u64),
        p: &Params,
        again: &mut Vec<i64>,
        alerts: &mut Vec<WindowAlert>,
    ) -> Observed {
        if self
            .newest
            .is_some_and(|nw| t < nw.saturating_sub(p.window).saturating_sub(p.lateness))
        {
            return Observed::Late;
        }
        let ui = self.uris.iter().position(|u| u == uri);
        let pos = self.upper(t);
        let replay = ui.is_some_and(|ui| {
            self.events[..pos]
                .iter()
                .rev()
                .take_while(|e| e.t == t)
                .any(|e| e.uri as usize == ui && e.row == row)
        });
        if replay {
            // Its first raise may have been lost with a crashed worker; alert ids are
            // deterministic, so a destination keyed by them absorbs the repeat.
            let fired = pos - self.lower(t.saturating_sub(p.window)) >= p.min_count;
            self.each_window(t, p, |i, tau, count| {
                if count >= p.min_count && !again.contains(&tau) {
                    again.push(tau);
                    alerts.push(self.alert(key, i, tau, count, tau != t));
                }
            });
            return Observed::Event { fired };
        }
        let ui = ui.unwrap_or_else(|| {
            self.uris.push(uri.to_owned());
            self.uris.len() - 1
        });
        let is_newest = self.newest.is_none_or(|nw| t > nw);
        let newest = self.newest.map_or(t, |nw| nw.max(t));
        self.newest = Some(newest);
        // Evict what the new event pushes out of reach before inserting it, as the
        // in-process store does, so a late event later in the batch counts the same.
        let evicted = self.lower(newest.saturating_sub(p.window).saturating_sub(p.lateness));
        self.events.drain(..evicted);
        self.events.insert(
            pos - evicted,
            Event {
                t,
                uri: ui as u32,
                row,
            },
        );
        if p.max_events > 0 && self.events.len() > p.max_events {
            self.events.drain(..self.events.len() - p.max_events);
        }
        let mut fired = false;
        if is_newest {
            // The common case, a new newest event: only its own window can change.
            let count = self.events.len() - self.lower(t.saturating_sub(p.window));
            if count >= p.min_count {
                fired = true;
                let at = self.events.len() - 1;
                self.raise((key, at, t, count, false), again, alerts);
            }
        } else {
            let mut windows = Vec::new();
            self.each_window(t, p, |i, tau, count| {
                if count >= p.min_count {
                    windows.push((i, tau, count));
                }
            });
            for (i, tau, count) in windows {
                fired |= tau == t;
                self.raise((key, i, tau, count, tau != t), again, alerts);
            }
        }
        Observed::Event { fired }
    }

    /// Raises the alert of the window ending at `tau` unless it was raised before.
    fn raise(
        &mut self,
        (key, at, tau, count, late): (&str, usize, i64, usize, bool),
        again: &mut Vec<i64>,
        alerts: &mut Vec<WindowAlert>,
    ) {
        if !self.alerted.contains(&tau) {
            self.alerted.push(tau);
            again.push(tau);
            alerts.push(self.alert(key, at, tau, count, late));
        }
    }

    /// Drops what no window can reach any more (older than newest − window − lateness:
    /// an event arriving within the lateness never looks below that), caps the events
    /// (oldest first), and forgets files no event refers to.
    pub(crate) fn trim(&mut self, p: &Params) {
        let Some(nw) = self.newest else { return };
        let horizon = nw.saturating_sub(p.window).saturating_sub(p.lateness);
        let mut first = self.lower(horizon);
        if p.max_events > 0 && self.events.len() - first > p.max_events {
            first = self.events.len() - p.max_events;
        }
        self.events.drain(..first);
        // Events may also have left as new ones arrived (see `observe`).
        if self.uris.len() > 1 || self.events.is_empty() {
            let mut remap = vec![u32::MAX; self.uris.len()];
            let mut uris = Vec::new();
            for e in &mut self.events {
                let slot = &mut remap[e.uri as usize];
                if *slot == u32::MAX {
                    *slot = uris.len() as u32;
                    uris.push(std::mem::take(&mut self.uris[e.uri as usize]));
                }
                e.uri = *slot;
            }
            self.uris = uris;
        }
        self.alerted.retain(|&a| a >= horizon);
    }
}

fn put_unsigned(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_unsigned(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Reads varints off the front of a slice; `None` past its end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn unsigned(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.0.split_first()?;
            self.0 = rest;
            v |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    fn signed(&mut self) -> Option<i64> {
        let v = self.unsigned()?;
        Some((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// A count or length, bounded by the bytes left (each element takes at least one),
    /// so a damaged state cannot make the reader allocate much.
    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.unsigned()?)
            .ok()
            .filter(|&n| n <= self.0.len())
    }

    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
}

/// The fuzz target `window_state` (`fuzz/`): a stored state as read from Valkey
/// (arbitrary bytes: damage, another version, a hostile writer) with events applied to
/// it must never panic, keep its invariants, and read back as written.
#[doc(hidden)]
pub fn fuzz_stored_state(data: &[u8]) {
    let Some((&[window, lateness, min_count, max_events, len], rest)) = data.split_first_chunk()
    else {
        return;
    };
    let p = Params {
        window: i64::from(window) * 1_000_000,
        lateness: i64::from(lateness) * 1_000_000,
        min_count: usize::from(min_count % 8) + 1,
        max_events: usize::from(max_events % 16),
    };
    let (stored, events) = rest.split_at(usize::from(len).min(rest.len()));
    let mut k = KeyWindow::decode(stored);
    let mut alerts = Vec::new();
    let mut again = Vec::new();
    for e in events.chunks_exact(4) {
        let t = i64::from(i16::from_le_bytes([e[0], e[1]])) * 1_000_000;
        let uri = ["a", "b", "c"][usize::from(e[2] % 3)];
        k.observe(("k", uri, t, u64::from(e[3])), &p, &mut again, &mut alerts);
        assert!(
            k.events.windows(2).all(|w| w[0].t <= w[1].t),
            "events sorted"
        );
        assert!(k.events.iter().all(|e| (e.uri as usize) < k.uris.len()));
    }
    for a in &alerts {
        assert!(
            a.count as usize >= p.min_count,
            "an alert below the minimum"
        );
    }
    k.trim(&p);
    if k.is_live() {
        let bytes = k.encode();
        assert_eq!(
            KeyWindow::decode(&bytes),
            k,
            "a state reads back as written"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;
    const P: Params = Params {
        window: 60 * S,
        lateness: 300 * S,
        min_count: 3,
        max_events: 0,
    };

    fn observe(k: &mut KeyWindow, uri: &str, t: i64, row: u64) -> (Observed, Vec<WindowAlert>) {
        let mut alerts = Vec::new();
        let o = k.observe(("acct", uri, t * S, row), &P, &mut Vec::new(), &mut alerts);
        (o, alerts)
    }

    #[test]
    fn a_state_reads_back_as_written() {
        let mut k = KeyWindow::default();
        for (i, t) in [10, 5, 20, 20, 70].into_iter().enumerate() {
            observe(
                &mut k,
                if i % 2 == 0 { "s3://b/a" } else { "s3://b/é" },
                t,
                i as u64,
            );
        }
        let bytes = k.encode();
        assert_eq!(KeyWindow::decode(&bytes), k);
        assert!(!k.alerted.is_empty(), "the state carries its alerted times");
        // Negative times (before 1970) survive too.
        let mut k = KeyWindow::default();
        observe(&mut k, "u", -5, 0);
        assert_eq!(KeyWindow::decode(&k.encode()), k);
    }

    #[test]
    fn a_damaged_or_foreign_state_reads_as_empty() {
        let mut k = KeyWindow::default();
        observe(&mut k, "u", 1, 1);
        let bytes = k.encode();
        for cut in 0..bytes.len() {
            assert_eq!(KeyWindow::decode(&bytes[..cut]), KeyWindow::default());
        }
        let mut foreign = bytes.clone();
        foreign[0] = 0x82; // msgpack's fixmap, as the Lua-era state began
        assert_eq!(KeyWindow::decode(&foreign), KeyWindow::default());
        // A huge length does not allocate.
        assert_eq!(
            KeyWindow::decode(&[FORMAT, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            KeyWindow::default()
        );
    }

    #[test]
    fn three_in_sixty_seconds_fire_and_alert_once() {
        let mut k = KeyWindow::default();
        assert_eq!(
            observe(&mut k, "u", 0, 0).0,
            Observed::Event { fired: false }
        );
        assert_eq!(
            observe(&mut k, "u", 30, 1).0,
            Observed::Event { fired: false }
        );
        let (o, a) = observe(&mut k, "u", 60, 2);
        assert_eq!(o, Observed::Event { fired: true });
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].window_end, a[0].count, a[0].row), (60 * S, 3, 2));
        // A replay fires again and re-raises its window's alert; it is not counted.
        let mut again = Vec::new();
        let mut alerts = Vec::new();
        let o = k.observe(("acct", "u", 60 * S, 2), &P, &mut again, &mut alerts);
        assert_eq!(o, Observed::Event { fired: true });
        assert_eq!(alerts.len(), 1);
        assert_eq!(k.events.len(), 3);
        // A late event at 45 s completes no new window ending at 45 s (0 s, 30 s, 45 s
        // is three: it does), and the 60 s window is not raised again.
        let (o, a) = observe(&mut k, "u", 45, 3);
        assert_eq!(o, Observed::Event { fired: true });
        assert_eq!(
            a.iter()
                .map(|a| (a.window_end / S, a.late))
                .collect::<Vec<_>>(),
            [(45, false)]
        );
        // Beyond window + lateness behind the newest: late.
        observe(&mut k, "u", 1000, 4);
        assert_eq!(observe(&mut k, "u", 600, 5).0, Observed::Late);
    }

    #[test]
    fn the_fuzz_entry_point_takes_a_stored_state_and_events() {
        let mut k = KeyWindow::default();
        observe(&mut k, "a", 50, 1);
        observe(&mut k, "a", 100, 2);
        let state = k.encode();
        let mut data = vec![60, 30, 2, 0, state.len() as u8];
        data.extend(&state);
        for (t, file, row) in [(100i16, 0u8, 3u8), (120, 1, 1), (90, 0, 1), (100, 0, 3)] {
            data.extend(t.to_le_bytes());
            data.extend([file, row]);
        }
        fuzz_stored_state(&data);
        fuzz_stored_state(&[]);
        fuzz_stored_state(&[0; 40]);
        fuzz_stored_state(&[255; 40]);
    }

    #[test]
    fn trimming_keeps_what_a_late_event_can_reach_and_remaps_files() {
        let mut k = KeyWindow::default();
        observe(&mut k, "old", 0, 0);
        observe(&mut k, "new", 1000, 0);
        observe(&mut k, "new", 1001, 1);
        k.trim(&P);
        assert_eq!(k.uris, ["new"]);
        assert_eq!(
            k.events
                .iter()
                .map(|e| (e.t / S, e.uri))
                .collect::<Vec<_>>(),
            [(1000, 0), (1001, 0)]
        );
        let capped = Params { max_events: 1, ..P };
        k.trim(&capped);
        assert_eq!(k.events.len(), 1);
        assert_eq!(k.events[0].t, 1001 * S);
    }
}
