//! Rate-limit strings and the GCRA step on arbitrary input: never panic (no overflow, even
//! with a corrupt stored TAT or a clock far off), and a refusal always says when to retry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use users_core::ratelimit::{Quota, gcra, login_lockout_secs};

fuzz_target!(|data: &[u8]| {
    if data.len() < 20 {
        return;
    }
    let word = |i: usize| i64::from_le_bytes(data[i..i + 8].try_into().expect("8 bytes"));
    let (tat, now) = (word(0), word(8));
    let failures = u32::from_le_bytes(data[16..20].try_into().expect("4 bytes"));
    let _ = login_lockout_secs(failures);
    let Ok(text) = std::str::from_utf8(&data[20..]) else {
        return;
    };
    let Ok(quota) = Quota::parse(text) else {
        return;
    };
    assert!(quota.limit > 0 && quota.window_ms > 0);
    let _ = quota.window_secs();
    for stored in [None, Some(tat)] {
        let d = gcra(stored, now, quota);
        if !d.allowed {
            assert!(d.retry_after_secs() >= 1, "{d:?}");
        }
        let _ = d.reset_secs();
    }
});
