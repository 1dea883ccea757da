//! Argon2 itself: hashing into a PHC string and checking one, in each thread's kept working
//! memory, and the cost bounds an imported Argon2 hash must keep.

use std::cell::RefCell;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::legacy_hash;

thread_local! {
    /// This thread's Argon2 working memory, kept between hashes.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs Argon2 `argon` over `password` and `salt` into `out`, in this thread's memory.
pub(super) fn compute(
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        let blocks = params.block_count();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
    })
}

/// The PHC string of `password` under a fresh salt, as `argon2`'s `PasswordHasher` writes it.
pub(super) fn hash_with(
    params: &Params,
    password: &str,
) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buf)?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(len, |out| {
        compute(&argon, params, password.as_bytes(), salt_bytes, out)
            .map_err(argon2::password_hash::Error::from)
    })?;
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    }
    .to_string())
}

/// Whether `password` matches the PHC string `stored`, with the parameters `stored` names.
pub(super) fn matches(stored: &PasswordHash<'_>, password: &str) -> bool {
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(stored.algorithm) else {
        return false;
    };
    let version = match stored.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(stored) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params.clone());
    let computed = Output::init_with(expected.len(), |out| {
        compute(&argon, &params, password.as_bytes(), salt_bytes, out)
            .map_err(argon2::password_hash::Error::from)
    });
    // `Output` compares in constant time.
    computed.is_ok_and(|c| &c == expected)
}

/// Whether Argon2 parameters `p` exceed both [`legacy_hash::Bounds`] and `ours`.
pub(super) fn over_bounds(p: &Params, ours: &Params) -> bool {
    use legacy_hash::Bounds;
    p.m_cost() > Bounds::ARGON2_M_KIB.max(ours.m_cost())
        || p.t_cost() > Bounds::ARGON2_T.max(ours.t_cost())
        || p.p_cost() > Bounds::ARGON2_P.max(ours.p_cost())
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    use super::*;

    fn stock_hash(algorithm: Algorithm, version: Version, params: &Params, pw: &str) -> String {
        Argon2::new(algorithm, version, params.clone())
            .hash_password(pw.as_bytes(), &SaltString::generate(&mut OsRng))
            .expect("hash")
            .to_string()
    }

    #[test]
    fn argon2_bounds_give_way_to_this_servers_own_parameters() {
        let ours = Params::new(19_456, 2, 1, None).unwrap();
        let big = Params::new(131_072, 2, 1, None).unwrap();
        assert!(over_bounds(&big, &ours));
        assert!(
            !over_bounds(&big, &big),
            "a server configured so verifies its own hashes"
        );
        assert!(!over_bounds(&ours, &ours));
        assert!(over_bounds(
            &Params::new(19_456, 7, 1, None).unwrap(),
            &ours
        ));
        assert!(over_bounds(
            &Params::new(19_456, 2, 5, None).unwrap(),
            &ours
        ));
    }

    /// Hashes made with the reused memory are standard PHC strings, and any standard Argon2 PHC
    /// string verifies, whatever its variant, version or size, on a thread whose memory was
    /// sized for another.
    #[test]
    fn phc_strings_interoperate_with_the_argon2_crate() {
        let small = Params::new(1024, 1, 1, None).expect("params");
        let large = Params::new(4096, 2, 1, Some(64)).expect("params");
        let ours = hash_with(&small, "correct horse battery").expect("hash");
        let parsed = PasswordHash::new(&ours).expect("a PHC string");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
        for (algorithm, version, params) in [
            (Algorithm::Argon2id, Version::V0x13, &large),
            (Algorithm::Argon2i, Version::V0x10, &small),
            (Algorithm::Argon2d, Version::V0x13, &small),
            (Algorithm::Argon2id, Version::V0x13, &small),
        ] {
            let theirs = stock_hash(algorithm, version, params, "correct horse battery");
            let parsed = PasswordHash::new(&theirs).expect("a PHC string");
            assert!(matches(&parsed, "correct horse battery"), "{theirs}");
            assert!(!matches(&parsed, "correct horse batterY"), "{theirs}");
        }
        let tampered = ours.replace("m=1024", "m=2048");
        assert!(!matches(
            &PasswordHash::new(&tampered).expect("a PHC string"),
            "correct horse battery"
        ));
    }
}
