//! JSON Merge Patch (RFC 7396) of arbitrary documents: never panics, and applying a patch a
//! second time changes nothing (merge patches are idempotent).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use users_core::patch::merge;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (target, patch) = text.split_once('\n').unwrap_or((text, "{}"));
    let (Ok(mut target), Ok(patch)) = (
        serde_json::from_str::<Value>(target),
        serde_json::from_str::<Value>(patch),
    ) else {
        return;
    };
    merge(&mut target, &patch);
    let once = target.clone();
    merge(&mut target, &patch);
    assert_eq!(
        target, once,
        "a merge patch applied twice changed the document again"
    );
});
