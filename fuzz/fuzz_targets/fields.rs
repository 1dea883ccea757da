//! The field newtypes and the text rules on arbitrary strings: never panic; what parses is
//! canonical and storable; query decoding yields only storable text; a document cleaned by
//! `make_storable` has no unstorable string left.
#![no_main]

use libfuzzer_sys::fuzz_target;
use users_core::fields::{DisplayName, Email, RoleName, Username};
use users_core::text::{decode_query, first_unstorable, make_storable, storable};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(u) = Username::parse(text) {
        assert_eq!(Username::parse(u.as_str()).as_ref(), Ok(&u));
        assert!(storable(u.as_str()).is_ok());
    }
    if let Ok(e) = Email::parse(text) {
        assert!(storable(e.as_str()).is_ok());
        let _ = e.normalized();
        let _ = e.local_part();
    }
    if let Ok(d) = DisplayName::parse(text) {
        assert!(storable(d.as_str()).is_ok());
    }
    if let Ok(r) = RoleName::parse(text) {
        assert_eq!(RoleName::parse(r.as_str()).as_ref(), Ok(&r));
    }
    if let Ok(pairs) = decode_query(text) {
        for (name, value) in pairs {
            assert!(storable(&name).is_ok() && storable(&value).is_ok());
        }
    }
    if let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = first_unstorable(&doc);
        make_storable(&mut doc);
        assert_eq!(first_unstorable(&doc), None);
    }
});
