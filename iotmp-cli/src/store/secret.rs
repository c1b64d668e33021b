//! Secrets of the registry: how they are made, stored and checked.
//!
//! * Device credentials and API tokens are made here from [`SECRET_BYTES`] bytes of the OS
//!   random source (`getrandom`), written as unpadded URL-safe base64 (43 characters), so they go
//!   into firmware, shell variables, HTTP headers and query strings unchanged.
//! * What is stored is a [`Salted`] hash: a per-row random salt and `SHA-256(salt ‖ secret)`.
//!   A fast hash is the right tool for *random* secrets: with 256 bits of entropy nobody can
//!   enumerate candidates, so a slow password KDF (argon2, ~50 ms) would add no safety and would
//!   cap CONNECT handling at ~20 authentications per second per core. The salt keeps two rows
//!   with the same secret (a credential chosen with `--credential`) from sharing a hash.
//! * Checks compare hashes in constant time ([`subtle`]), so response times say nothing about
//!   how much of a guess was right.
//! * An API token is `SELECTOR.VERIFIER`: the selector (not secret) finds the row through an
//!   index, the verifier is checked against the salted hash. Finding a row by a hash of the whole
//!   token would need an unsalted (or server-keyed) hash; the split keeps one scheme for all.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Random bytes in a generated credential or token verifier: 256 bits, twice the 128 bits that
/// make guessing hopeless, at no cost.
pub(crate) const SECRET_BYTES: usize = 32;

/// Random bytes in a token selector. It is not secret; it only has to be unique, and 96 bits
/// make a collision between tokens of one server practically impossible.
const SELECTOR_BYTES: usize = 9;

/// Length of a token selector in base64 characters (9 bytes = 12 characters, no padding).
pub(crate) const SELECTOR_LEN: usize = 12;

/// Random bytes of salt per stored secret.
pub(crate) const SALT_BYTES: usize = 16;

/// A SHA-256 digest.
pub(crate) type Digest = [u8; 32];

/// The OS random source failed (no entropy available); nothing secret can be made.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub(crate) struct RandomError(getrandom::Error);

/// `N` bytes from the OS random source.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(RandomError)?;
    Ok(bytes)
}

/// A secret in clear text, held only long enough to hash it or to print it once. `Debug` does
/// not show it, so that it cannot end up in a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// A fresh random secret (device credential or token verifier).
    pub(crate) fn generate() -> Result<Secret, RandomError> {
        Ok(Secret(
            URL_SAFE_NO_PAD.encode(random_bytes::<SECRET_BYTES>()?),
        ))
    }

    /// A secret the user chose (`iotmp device add --credential`).
    pub(crate) fn from_user(text: String) -> Secret {
        Secret(text)
    }

    /// The clear text, to print once or to send.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// A stored secret: salt and `SHA-256(salt ‖ secret)`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Salted {
    /// Per-row random salt.
    pub(crate) salt: [u8; SALT_BYTES],
    /// `SHA-256(salt ‖ secret)`.
    pub(crate) hash: Digest,
}

impl Salted {
    /// Hashes `secret` with a fresh salt.
    pub(crate) fn new(secret: &str) -> Result<Salted, RandomError> {
        let salt = random_bytes::<SALT_BYTES>()?;
        Ok(Salted {
            salt,
            hash: salted_hash(&salt, secret.as_bytes()),
        })
    }

    /// Rebuilds a stored value from its columns; `None` when the lengths are wrong (a damaged or
    /// foreign row, which then matches nothing).
    pub(crate) fn from_columns(salt: &[u8], hash: &[u8]) -> Option<Salted> {
        Some(Salted {
            salt: salt.try_into().ok()?,
            hash: hash.try_into().ok()?,
        })
    }

    /// Whether `secret` is the one that was hashed. The time taken does not depend on where the
    /// hashes differ.
    pub(crate) fn verify(&self, secret: &str) -> bool {
        constant_time_eq(&salted_hash(&self.salt, secret.as_bytes()), &self.hash)
    }

    /// Spends the same work as [`Salted::verify`] on a lookup that found no row, so that an
    /// unknown user or device answers as slowly as a wrong credential and timing does not tell
    /// which names exist.
    pub(crate) fn verify_nothing(secret: &str) {
        const DUMMY: Salted = Salted {
            salt: [0x5a; SALT_BYTES],
            hash: [0; 32],
        };
        let _ = std::hint::black_box(DUMMY.verify(std::hint::black_box(secret)));
    }
}

impl fmt::Debug for Salted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Salted(…)")
    }
}

/// `SHA-256(salt ‖ secret)`.
fn salted_hash(salt: &[u8], secret: &[u8]) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(secret);
    hasher.finalize().into()
}

/// Equality of two digests in time independent of their contents.
pub(crate) fn constant_time_eq(a: &Digest, b: &Digest) -> bool {
    a.ct_eq(b).into()
}

/// A freshly issued API token: what the user gets (`token`) and what the store keeps.
#[derive(Debug)]
pub(crate) struct NewToken {
    /// `SELECTOR.VERIFIER`, shown once.
    pub(crate) token: Secret,
    /// The row's key.
    pub(crate) selector: String,
    /// The verifier, hashed.
    pub(crate) verifier: Salted,
}

impl NewToken {
    /// A new random token.
    pub(crate) fn generate() -> Result<NewToken, RandomError> {
        let selector = URL_SAFE_NO_PAD.encode(random_bytes::<SELECTOR_BYTES>()?);
        let verifier = Secret::generate()?;
        let hashed = Salted::new(verifier.expose())?;
        Ok(NewToken {
            token: Secret(format!("{selector}.{}", verifier.expose())),
            selector,
            verifier: hashed,
        })
    }
}

/// Splits a presented token into selector and verifier; `None` when it cannot be one of ours
/// (checked before any lookup, so that junk costs nothing).
pub(crate) fn split_token(token: &str) -> Option<(&str, &str)> {
    let (selector, verifier) = token.split_once('.')?;
    (selector.len() == SELECTOR_LEN && !verifier.is_empty()).then_some((selector, verifier))
}

/// The SHA-256 fingerprint of a certificate's DER bytes (spec §6.2), the key that certificate
/// authentication finds a device by. Written as 64 lowercase hex digits; parsing also accepts
/// upper case and the colon-separated form of `openssl x509 -noout -fingerprint -sha256`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Fingerprint(pub(crate) Digest);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub(crate) fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// The stored form.
    pub(crate) fn from_column(bytes: &[u8]) -> Option<Fingerprint> {
        Some(Fingerprint(bytes.try_into().ok()?))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A fingerprint that is not 32 bytes of hex.
#[derive(Debug, thiserror::Error)]
#[error("a SHA-256 fingerprint is 64 hex digits (colons allowed)")]
pub(crate) struct BadFingerprint;

impl FromStr for Fingerprint {
    type Err = BadFingerprint;

    fn from_str(text: &str) -> Result<Fingerprint, BadFingerprint> {
        let digits: String = text.chars().filter(|&c| c != ':').collect();
        let mut digest = [0u8; 32];
        hex::decode_to_slice(digits, &mut digest).map_err(|_| BadFingerprint)?;
        Ok(Fingerprint(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_long_random_and_url_safe() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43, "32 bytes in unpadded base64");
        assert!(
            a.expose()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "{}",
            a.expose()
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose()).unwrap().len(), 32);
    }

    #[test]
    fn debug_hides_secrets() {
        let secret = Secret::generate().unwrap();
        let text = format!("{secret:?} {:?}", Salted::new(secret.expose()).unwrap());
        assert!(!text.contains(secret.expose()), "{text}");
    }

    #[test]
    fn salted_hash_verifies_only_the_secret() {
        let stored = Salted::new("s3cr3t").unwrap();
        assert!(stored.verify("s3cr3t"));
        assert!(!stored.verify("s3cr3T"));
        assert!(!stored.verify("s3cr3t "));
        assert!(!stored.verify(""));
        // Same secret, another salt: another hash.
        let again = Salted::new("s3cr3t").unwrap();
        assert_ne!(stored.salt, again.salt);
        assert_ne!(stored.hash, again.hash);
        assert!(again.verify("s3cr3t"));
    }

    #[test]
    fn hash_is_sha256_of_salt_then_secret() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1: salt "a" and secret "bc" hash as "abc".
        let expected =
            hex::decode("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
                .unwrap();
        assert_eq!(salted_hash(b"a", b"bc").as_slice(), expected.as_slice());
    }

    #[test]
    fn constant_time_eq_is_equality() {
        let a = [7u8; 32];
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        for i in [0, 15, 31] {
            b = a;
            if let Some(byte) = b.get_mut(i) {
                *byte ^= 1;
            }
            assert!(!constant_time_eq(&a, &b), "difference at {i}");
        }
    }

    #[test]
    fn columns_of_the_wrong_length_match_nothing() {
        assert!(Salted::from_columns(&[0; 16], &[0; 31]).is_none());
        assert!(Salted::from_columns(&[0; 15], &[0; 32]).is_none());
        assert!(Salted::from_columns(&[0; 16], &[0; 32]).is_some());
        assert!(Fingerprint::from_column(&[0; 33]).is_none());
    }

    #[test]
    fn tokens_split_into_selector_and_verifier() {
        let new = NewToken::generate().unwrap();
        let (selector, verifier) = split_token(new.token.expose()).unwrap();
        assert_eq!(selector, new.selector);
        assert_eq!(selector.len(), SELECTOR_LEN);
        assert!(new.verifier.verify(verifier));
        for junk in ["", ".", "abc.def", "no-dot-at-all", "aaaaaaaaaaaa."] {
            assert!(split_token(junk).is_none(), "{junk:?}");
        }
    }

    #[test]
    fn fingerprints_parse_in_both_forms() {
        let fp = Fingerprint::of_der(b"not really DER");
        let plain = fp.to_string();
        assert_eq!(plain.len(), 64);
        assert_eq!(plain.parse::<Fingerprint>().unwrap(), fp);
        let openssl: Vec<String> = fp.0.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(openssl.join(":").parse::<Fingerprint>().unwrap(), fp);
        assert!("abcd".parse::<Fingerprint>().is_err());
        assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
    }
}
