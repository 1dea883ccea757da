//! `spin:variables/variables@3.0.0` over the host's fixed name → value map
//! ([`Variables`](crate::state::Variables)): the host trait of `bindings`,
//! implemented for [`Ctx`], and the name check that [`crate::start`] also
//! applies to the configured variables.
//!
//! Names follow Spin's rules (spin-expressions `Key`): lowercase ASCII
//! letters, digits and single underscores, starting with a letter and ending
//! with a letter or digit. An invalid name is `invalid-name`, a valid but
//! unconfigured one `undefined`, exactly the two errors Spin's host returns.

use wasmtime::component::{Accessor, HasSelf};

use crate::bindings::spin::variables::variables::{self as wit, Error};
use crate::state::Ctx;

/// Checks `name` against Spin's variable-name rules; `Err` says why not.
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return Err("must not be empty");
    };
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
    {
        Err("may contain only lowercase letters, digits and underscores")
    } else if !first.is_ascii_lowercase() {
        Err("must start with a lowercase letter")
    } else if !last.is_ascii_alphanumeric() {
        Err("must end with a lowercase letter or digit")
    } else if name.contains("__") {
        Err("must not contain consecutive underscores")
    } else {
        Ok(())
    }
}

impl wit::Host for Ctx {}

impl wit::HostWithStore<Ctx> for HasSelf<Ctx> {
    async fn get(
        accessor: &Accessor<Ctx, HasSelf<Ctx>>,
        name: String,
    ) -> wasmtime::Result<Result<String, Error>> {
        if let Err(reason) = check_name(&name) {
            return Ok(Err(Error::InvalidName(format!("{name:?}: {reason}"))));
        }
        let value = accessor.with(|mut access| access.get().variables.get(&name).cloned());
        Ok(value.ok_or(Error::Undefined(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn accepts_spin_names() {
        for name in [
            "a",
            "origin_url",
            "jwt_public_key",
            "a1_b2",
            "rate_limit_10",
        ] {
            assert_eq!(check_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn rejects_other_names() {
        for name in ["", "Origin", "1a", "_a", "a_", "a__b", "a-b", "a.b", "ä"] {
            assert!(check_name(name).is_err(), "{name}");
        }
    }
}
