//! Password hashes in the formats other systems store (SPEC §10), verified so that imported
//! accounts keep their passwords; the first successful login replaces them with the configured
//! Argon2id ([`crate::hashing`]).
//!
//! Formats: bcrypt (`$2a$`, `$2b$`, `$2y$`; the `bcrypt` crate), passlib's `$bcrypt-sha256$`
//! (v1 and v2), passlib's `$pbkdf2-sha256$`, Django's `pbkdf2_sha256$` (the `pbkdf2` crate), and
//! scrypt as PHC (`$scrypt$ln=…,r=…,p=…$salt$hash`; the `scrypt` crate). Argon2 PHC strings
//! (`argon2i`, `argon2id`) are verified by [`crate::hashing`] itself; [`check`] bounds their
//! costs like the others'.
//!
//! Every cost is bounded ([`Bounds`]): a hash over a bound is refused at import and never
//! computed at login, so no stored hash can hold a hashing thread for long. bcrypt reads only
//! the first 72 bytes of a password; the rehash at the first login ends that.

use argon2::password_hash::{Output, PasswordHash};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The largest costs accepted, per format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds;

impl Bounds {
    /// bcrypt's cost (2^cost rounds); 12 takes about a quarter of a second.
    pub const BCRYPT_COST: u32 = 12;
    /// PBKDF2-HMAC-SHA256 iterations (Django 5.2's default).
    pub const PBKDF2_ROUNDS: u32 = 1_000_000;
    /// scrypt's memory, `128 · r · 2^ln` bytes: 64 MiB (passlib's default, ln=16, r=8).
    pub const SCRYPT_MEMORY: u64 = 64 * 1024 * 1024;
    /// scrypt's parallelism.
    pub const SCRYPT_P: u32 = 2;
    /// Argon2's memory in KiB (64 MiB), passes and lanes.
    pub const ARGON2_M_KIB: u32 = 65_536;
    pub const ARGON2_T: u32 = 6;
    pub const ARGON2_P: u32 = 4;
}

/// A format this server verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Argon2 PHC (`argon2id`, `argon2i`): the native format.
    Argon2,
    Bcrypt,
    BcryptSha256,
    PasslibPbkdf2Sha256,
    DjangoPbkdf2Sha256,
    Scrypt,
}

impl Format {
    /// The format of `stored`, from its prefix.
    pub fn of(stored: &str) -> Option<Self> {
        let format = if stored.starts_with("$argon2id$") || stored.starts_with("$argon2i$") {
            Self::Argon2
        } else if ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|p| stored.starts_with(p))
        {
            Self::Bcrypt
        } else if stored.starts_with("$bcrypt-sha256$") {
            Self::BcryptSha256
        } else if stored.starts_with("$pbkdf2-sha256$") {
            Self::PasslibPbkdf2Sha256
        } else if stored.starts_with("pbkdf2_sha256$") {
            Self::DjangoPbkdf2Sha256
        } else if stored.starts_with("$scrypt$") {
            Self::Scrypt
        } else {
            return None;
        };
        Some(format)
    }

    /// The name the metrics and the import report use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Argon2 => "argon2",
            Self::Bcrypt => "bcrypt",
            Self::BcryptSha256 => "bcrypt-sha256",
            Self::PasslibPbkdf2Sha256 => "pbkdf2-sha256",
            Self::DjangoPbkdf2Sha256 => "django-pbkdf2-sha256",
            Self::Scrypt => "scrypt",
        }
    }
}

/// Why a stored hash is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("is not a password hash in a supported format")]
    Unknown,
    #[error("is not a well-formed {0} hash")]
    Malformed(&'static str),
    #[error("costs more than this server computes: {0}")]
    OverBound(String),
}

/// A parsed hash, with its costs.
enum Parsed {
    Argon2,
    Bcrypt(String),
    /// `(v1, config "$2b$NN$salt", digest)`.
    BcryptSha256 {
        v2: bool,
        salt: String,
        bcrypt: String,
    },
    Pbkdf2 {
        rounds: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Scrypt {
        params: scrypt::Params,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

/// passlib's "adapted base64": `.` for `+`, no padding.
fn ab64(text: &str) -> Option<Vec<u8>> {
    STANDARD_NO_PAD.decode(text.replace('.', "+")).ok()
}

fn over(what: impl Into<String>) -> Refused {
    Refused::OverBound(what.into())
}

fn parse(stored: &str) -> Result<Parsed, Refused> {
    let format = Format::of(stored).ok_or(Refused::Unknown)?;
    let malformed = Refused::Malformed(format.name());
    match format {
        Format::Argon2 => {
            let phc = PasswordHash::new(stored).map_err(|_| malformed.clone())?;
            if phc.salt.is_none() || phc.hash.is_none() {
                return Err(malformed);
            }
            let params = argon2::Params::try_from(&phc).map_err(|_| malformed)?;
            if params.m_cost() > Bounds::ARGON2_M_KIB
                || params.t_cost() > Bounds::ARGON2_T
                || params.p_cost() > Bounds::ARGON2_P
            {
                return Err(over(format!(
                    "argon2 m={} t={} p={} (at most m={} t={} p={})",
                    params.m_cost(),
                    params.t_cost(),
                    params.p_cost(),
                    Bounds::ARGON2_M_KIB,
                    Bounds::ARGON2_T,
                    Bounds::ARGON2_P
                )));
            }
            Ok(Parsed::Argon2)
        }
        Format::Bcrypt => {
            let parts: bcrypt::HashParts = stored.parse().map_err(|_| malformed)?;
            bcrypt_cost(parts.get_cost())?;
            Ok(Parsed::Bcrypt(stored.to_owned()))
        }
        Format::BcryptSha256 => {
            // v2: `$bcrypt-sha256$v=2,t=2b,r=12$<salt 22>$<digest 31>`;
            // v1: `$bcrypt-sha256$2a,12$<salt 22>$<digest 31>`.
            let rest = &stored["$bcrypt-sha256$".len()..];
            let mut fields = rest.split('$');
            let (Some(config), Some(salt), Some(digest), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(malformed);
            };
            let (v2, ident, cost) = if let Some(v2) = config.strip_prefix("v=2,t=") {
                let (ident, cost) = v2.split_once(",r=").ok_or(malformed.clone())?;
                (true, ident, cost)
            } else {
                let (ident, cost) = config.split_once(',').ok_or(malformed.clone())?;
                (false, ident, cost)
            };
            let cost: u32 = cost.parse().map_err(|_| malformed.clone())?;
            if !["2a", "2b"].contains(&ident) || salt.len() != 22 || digest.len() != 31 {
                return Err(malformed);
            }
            bcrypt_cost(cost)?;
            let bcrypt = format!("$2b${cost:02}${salt}{digest}");
            bcrypt.parse::<bcrypt::HashParts>().map_err(|_| malformed)?;
            Ok(Parsed::BcryptSha256 {
                v2,
                salt: salt.to_owned(),
                bcrypt,
            })
        }
        Format::PasslibPbkdf2Sha256 | Format::DjangoPbkdf2Sha256 => {
            let django = format == Format::DjangoPbkdf2Sha256;
            let rest = stored
                .strip_prefix(if django {
                    "pbkdf2_sha256$"
                } else {
                    "$pbkdf2-sha256$"
                })
                .ok_or(malformed.clone())?;
            let mut fields = rest.split('$');
            let (Some(rounds), Some(salt), Some(hash), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(malformed);
            };
            let rounds: u32 = rounds.parse().map_err(|_| malformed.clone())?;
            if rounds == 0 {
                return Err(malformed);
            }
            if rounds > Bounds::PBKDF2_ROUNDS {
                return Err(over(format!(
                    "PBKDF2 with {rounds} rounds (at most {})",
                    Bounds::PBKDF2_ROUNDS
                )));
            }
            // Django: the salt is the text itself and the hash standard base64; passlib:
            // both in its adapted base64.
            let (salt, hash) = if django {
                let hash = STANDARD.decode(hash).map_err(|_| malformed.clone())?;
                (salt.as_bytes().to_vec(), hash)
            } else {
                let salt = ab64(salt).ok_or(malformed.clone())?;
                (salt, ab64(hash).ok_or(malformed.clone())?)
            };
            if salt.is_empty() || !(16..=64).contains(&hash.len()) {
                return Err(malformed);
            }
            Ok(Parsed::Pbkdf2 { rounds, salt, hash })
        }
        Format::Scrypt => {
            let rest = &stored["$scrypt$".len()..];
            let mut fields = rest.split('$');
            let (Some(config), Some(salt), Some(hash), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(malformed);
            };
            let (mut ln, mut r, mut p) = (None, None, None);
            for pair in config.split(',') {
                match pair.split_once('=') {
                    Some(("ln", v)) => ln = v.parse::<u8>().ok(),
                    Some(("r", v)) => r = v.parse::<u32>().ok(),
                    Some(("p", v)) => p = v.parse::<u32>().ok(),
                    _ => return Err(malformed),
                }
            }
            let (Some(ln), Some(r), Some(p)) = (ln, r, p) else {
                return Err(malformed);
            };
            if !(1..=63).contains(&ln) || r == 0 || p == 0 {
                return Err(malformed);
            }
            let memory = 128u64
                .saturating_mul(u64::from(r))
                .saturating_mul(1u64 << ln);
            if memory > Bounds::SCRYPT_MEMORY || p > Bounds::SCRYPT_P {
                return Err(over(format!(
                    "scrypt ln={ln} r={r} p={p} ({} MiB; at most {} MiB and p={})",
                    memory >> 20,
                    Bounds::SCRYPT_MEMORY >> 20,
                    Bounds::SCRYPT_P
                )));
            }
            let salt = STANDARD_NO_PAD
                .decode(salt)
                .map_err(|_| malformed.clone())?;
            let hash = STANDARD_NO_PAD
                .decode(hash)
                .map_err(|_| malformed.clone())?;
            if !(10..=64).contains(&hash.len()) {
                return Err(malformed);
            }
            let params = scrypt::Params::new(ln, r, p, hash.len()).map_err(|_| malformed)?;
            Ok(Parsed::Scrypt { params, salt, hash })
        }
    }
}

fn bcrypt_cost(cost: u32) -> Result<(), Refused> {
    if cost > Bounds::BCRYPT_COST {
        return Err(over(format!(
            "bcrypt cost {cost} (at most {})",
            Bounds::BCRYPT_COST
        )));
    }
    Ok(())
}

/// Checks that `stored` is a hash this server verifies, within the bounds; its format.
pub fn check(stored: &str) -> Result<Format, Refused> {
    parse(stored)?;
    Format::of(stored).ok_or(Refused::Unknown)
}

/// Equal in constant time (`Output` compares so).
fn same(computed: &[u8], expected: &[u8]) -> bool {
    match (Output::new(computed), Output::new(expected)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Whether `password` matches `stored`, a hash in a format other than Argon2; `false` for a
/// hash that is malformed, over a bound or native.
pub fn verify(stored: &str, password: &str) -> bool {
    let Ok(parsed) = parse(stored) else {
        return false;
    };
    match parsed {
        Parsed::Argon2 => false,
        Parsed::Bcrypt(hash) => bcrypt::verify(password, &hash).unwrap_or(false),
        Parsed::BcryptSha256 { v2, salt, bcrypt } => {
            // passlib: the password's HMAC-SHA256 keyed by the salt (v2) or its SHA-256
            // (v1), in standard base64, is the bcrypt password.
            let digest: Vec<u8> = if v2 {
                let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(salt.as_bytes()) else {
                    return false;
                };
                mac.update(password.as_bytes());
                mac.finalize().into_bytes().to_vec()
            } else {
                Sha256::digest(password.as_bytes()).to_vec()
            };
            bcrypt::verify(STANDARD.encode(digest), &bcrypt).unwrap_or(false)
        }
        Parsed::Pbkdf2 { rounds, salt, hash } => {
            let mut out = vec![0u8; hash.len()];
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, rounds, &mut out);
            same(&out, &hash)
        }
        Parsed::Scrypt { params, salt, hash } => {
            let mut out = vec![0u8; hash.len()];
            scrypt::scrypt(password.as_bytes(), &salt, &params, &mut out).is_ok()
                && same(&out, &hash)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "correct horse battery staple";

    /// Vectors made here by the reference crates, in each format's layout.
    fn vectors() -> Vec<(Format, String)> {
        let bcrypt_2b = bcrypt::hash(PW, 5).unwrap();
        let parts: bcrypt::HashParts = bcrypt_2b.parse().unwrap();
        let bcrypt_2y = parts.format_for_version(bcrypt::Version::TwoY);
        let bcrypt_2a = parts.format_for_version(bcrypt::Version::TwoA);

        let salt = b"0123456789abcdef";
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(PW.as_bytes(), salt, 1000, &mut out);
        let passlib_pbkdf2 = format!(
            "$pbkdf2-sha256$1000${}${}",
            STANDARD_NO_PAD.encode(salt).replace('+', "."),
            STANDARD_NO_PAD.encode(out).replace('+', ".")
        );
        let django_salt = "LZjWHro5LBk8";
        pbkdf2::pbkdf2_hmac::<Sha256>(PW.as_bytes(), django_salt.as_bytes(), 1000, &mut out);
        let django = format!("pbkdf2_sha256$1000${django_salt}${}", STANDARD.encode(out));

        let params = scrypt::Params::new(10, 8, 1, 32).unwrap();
        scrypt::scrypt(PW.as_bytes(), salt, &params, &mut out).unwrap();
        let scrypt_phc = format!(
            "$scrypt$ln=10,r=8,p=1${}${}",
            STANDARD_NO_PAD.encode(salt),
            STANDARD_NO_PAD.encode(out)
        );

        // passlib's bcrypt-sha256 v2: bcrypt of base64(HMAC-SHA256(salt, password)).
        let inner = bcrypt::hash(b"placeholder", 5).unwrap();
        let salt22 = &inner[7..29];
        let mut mac = Hmac::<Sha256>::new_from_slice(salt22.as_bytes()).unwrap();
        mac.update(PW.as_bytes());
        let key = STANDARD.encode(mac.finalize().into_bytes());
        let raw: bcrypt::HashParts = inner.parse().unwrap();
        let with_key = bcrypt::hash_with_salt(&key, 5, raw.get_salt_raw()).unwrap();
        let digest = &with_key.format_for_version(bcrypt::Version::TwoB)[29..];
        let bcrypt_sha256 = format!("$bcrypt-sha256$v=2,t=2b,r=5${salt22}${digest}");

        vec![
            (Format::Bcrypt, bcrypt_2b),
            (Format::Bcrypt, bcrypt_2y),
            (Format::Bcrypt, bcrypt_2a),
            (Format::PasslibPbkdf2Sha256, passlib_pbkdf2),
            (Format::DjangoPbkdf2Sha256, django),
            (Format::Scrypt, scrypt_phc),
            (Format::BcryptSha256, bcrypt_sha256),
        ]
    }

    #[test]
    fn every_format_verifies_its_password_and_only_it() {
        for (format, stored) in vectors() {
            assert_eq!(check(&stored), Ok(format), "{stored}");
            assert!(verify(&stored, PW), "{format:?}: {stored}");
            assert!(
                !verify(&stored, "correct horse battery stapler"),
                "{stored}"
            );
            assert!(!verify(&stored, ""), "{stored}");
        }
    }

    /// Vectors passlib 1.7.4 wrote (pinned beside the generated ones above).
    #[test]
    fn passlib_vectors_verify() {
        for stored in [
            "$bcrypt-sha256$v=2,t=2b,r=5$j2y3m.5OyUyybzGh23yvmu$HKTOfLtrmFW.n.xIS4wjGwLNgneGKgC",
            "$pbkdf2-sha256$1000$QQhBaI2RUspZq1VKidHaWw$aHbZxmnRLQEv35rATGZRnAdE0BX2XaidAHgPqBj.4Wg",
            "pbkdf2_sha256$1000$LZjWHro5LBk8$VURGCkb64A+QfLJxfv9ueB3Ht4b1fnYXerl/Up4Y09g=",
            "$2b$05$jM/bPVicsBDxCEFWeE6ChuUphkt10Vupc1UAxtmgxPcEYSvsLjlYC",
            "$scrypt$ln=10,r=8,p=1$3xsjxDin1DqHMMZ4T6k1Rg$qBLwKvROIlj9HSwr/jDBF/uT8/pf/8NO4uS7VJfrDTo",
        ] {
            assert!(verify(stored, PW), "{stored}");
            assert!(!verify(stored, "wrong"), "{stored}");
        }
    }

    #[test]
    fn costs_over_the_bounds_are_refused_and_never_computed() {
        let over_bcrypt = "$2b$13$jM/bPVicsBDxCEFWeE6ChuUphkt10Vupc1UAxtmgxPcEYSvsLjlYC";
        let over_pbkdf2 =
            "pbkdf2_sha256$1000001$LZjWHro5LBk8$VURGCkb64A+QfLJxfv9ueB3Ht4b1fnYXerl/Up4Y09g=";
        let over_scrypt = "$scrypt$ln=17,r=8,p=1$3xsjxDin1DqHMMZ4T6k1Rg$qBLwKvROIlj9HSwr/jDBF/uT8/pf/8NO4uS7VJfrDTo";
        let over_scrypt_p = "$scrypt$ln=10,r=8,p=3$3xsjxDin1DqHMMZ4T6k1Rg$qBLwKvROIlj9HSwr/jDBF/uT8/pf/8NO4uS7VJfrDTo";
        let over_sha256 =
            "$bcrypt-sha256$v=2,t=2b,r=20$j2y3m.5OyUyybzGh23yvmu$HKTOfLtrmFW.n.xIS4wjGwLNgneGKgC";
        let over_argon2 = "$argon2id$v=19$m=131072,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";
        for stored in [
            over_bcrypt,
            over_pbkdf2,
            over_scrypt,
            over_scrypt_p,
            over_sha256,
            over_argon2,
        ] {
            assert!(
                matches!(check(stored), Err(Refused::OverBound(_))),
                "{stored}: {:?}",
                check(stored)
            );
            assert!(!verify(stored, PW));
        }
    }

    #[test]
    fn malformed_and_unknown_hashes_are_refused() {
        for stored in [
            "",
            "plaintext",
            "$1$md5crypt$",
            "$2b$05$short",
            "$pbkdf2-sha256$abc$salt$hash",
            "$pbkdf2-sha256$0$QQhBaI2RUspZq1VKidHaWw$aHbZxmnRLQEv35rATGZRnAdE0BX2XaidAHgPqBj.4Wg",
            "pbkdf2_sha256$1000$salt$not base64!",
            "$scrypt$ln=10,r=8$c2FsdA$aGFzaA",
            "$scrypt$ln=99,r=8,p=1$c2FsdA$aGFzaGhhc2hoYXNo",
            "$bcrypt-sha256$v=2,t=2x,r=5$j2y3m.5OyUyybzGh23yvmu$HKTOfLtrmFW.n.xIS4wjGwLNgneGKgC",
            "$argon2id$v=19$m=19456,t=2$broken",
        ] {
            assert!(check(stored).is_err(), "{stored}");
            assert!(!verify(stored, PW), "{stored}");
        }
    }
}
