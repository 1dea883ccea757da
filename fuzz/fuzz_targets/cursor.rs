//! Pagination cursors from arbitrary text: never panics, and every cursor that decodes
//! encodes back to one that decodes to the same cursor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use users_core::cursor::{Cursor, Sort};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Sort::parse(text);
    if let Ok(cursor) = Cursor::decode(text) {
        let again = Cursor::decode(&cursor.encode()).expect("an encoded cursor decodes");
        assert_eq!(again, cursor);
    }
});
