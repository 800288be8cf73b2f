//! `WorkItem::parse_message` on arbitrary UTF-8: work items, S3 event notifications,
//! SNS-wrapped messages, ranges. Must never panic; every item it accepts must also be
//! usable (key, JSON round trip, covered bytes, splitting) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pf_types::WorkItem;

fuzz_target!(|text: &str| {
    let Ok(items) = WorkItem::parse_message(text) else {
        return;
    };
    for item in &items {
        let _ = item.key();
        let _ = item.file_key();
        let _ = item.covered_bytes();
        let _ = item.is_splittable();
        // What a queue carries must parse back to the same item.
        let line = item.to_json();
        let again = WorkItem::parse_message(&line)
            .unwrap_or_else(|e| panic!("own wire form rejected: {e}\n{line}"));
        assert_eq!(again, vec![item.clone()], "round trip changed the item: {line}");
        // Splitting at a size derived from the item: every range must parse back too.
        if let Some(size) = item.size {
            for split in [1, size / 3 + 1, size / 2 + 1] {
                // Millions of ranges help no one; the splitter must cope, the loop need not.
                if split == 0 || size / split > 64 {
                    continue;
                }
                if let Some(parts) = item.split(split) {
                    for part in parts {
                        let _ = part.key();
                        let _ = part.covered_bytes();
                        let line = part.to_json();
                        let again = WorkItem::parse_message(&line)
                            .unwrap_or_else(|e| panic!("own range rejected: {e}\n{line}"));
                        assert_eq!(again, vec![part], "range round trip: {line}");
                    }
                }
            }
        }
    }
});
