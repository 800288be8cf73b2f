//! A shared-window key state as read from Valkey (arbitrary bytes: damage, another
//! version, a hostile writer), with events applied to it: must never panic, must keep
//! its events sorted and their files known, and must read back as written.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pf_coordinator::fuzzing::fuzz_stored_state(data));
