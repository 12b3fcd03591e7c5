//! kubeadm bootstrap tokens (`abcdef.0123456789abcdef`): the credential a machine joins
//! the cluster with, and the secret half of its discovery of the cluster's CA.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::BootstrapError;

/// The token alphabet kubeadm accepts: `[a-z0-9]`.
const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;

/// A bootstrap token: a public id, a secret and an absolute expiry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapToken {
    /// Six characters `[a-z0-9]`; public (it names the token's Secret,
    /// `bootstrap-token-<id>`).
    pub id: String,
    /// Sixteen characters `[a-z0-9]`. Secret.
    pub secret: String,
    /// When the token stops being accepted.
    pub expires: DateTime<Utc>,
}

impl BootstrapToken {
    /// A fresh random token that expires `ttl` after `now`.
    pub fn generate(
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Result<BootstrapToken, BootstrapError> {
        let invalid = |reason: &str| BootstrapError::InvalidValidity {
            what: "bootstrap token",
            reason: reason.to_string(),
        };
        let ttl = Duration::from_std(ttl).map_err(|_| invalid("TTL out of range"))?;
        if ttl <= Duration::zero() {
            return Err(invalid("TTL must be positive"));
        }
        let expires = now
            .checked_add_signed(ttl)
            .ok_or_else(|| invalid("expiry out of range"))?;
        let rng = SystemRandom::new();
        Ok(BootstrapToken {
            id: random_string(&rng, ID_LEN)?,
            secret: random_string(&rng, SECRET_LEN)?,
            expires,
        })
    }

    /// The token as kubeadm takes it: `id.secret`. Secret.
    pub fn token(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootstrapToken")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("expires", &self.expires)
            .finish()
    }
}

/// `len` characters drawn uniformly from [`ALPHABET`] (rejection sampling: bytes at or
/// above 252 = 7 × 36 are redrawn, so that no character is more likely than another).
fn random_string(rng: &SystemRandom, len: usize) -> Result<String, BootstrapError> {
    const LIMIT: u8 = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 32];
    while out.len() < len {
        rng.fill(&mut buf).map_err(|_| BootstrapError::Random {
            what: "bootstrap token",
        })?;
        for byte in buf.iter().filter(|b| **b < LIMIT) {
            if out.len() == len {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()]));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn is_token_char(c: char) -> bool {
        c.is_ascii_lowercase() || c.is_ascii_digit()
    }

    #[test]
    fn token_has_kubeadm_format() {
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let ttl = std::time::Duration::from_secs(2 * 3600);
        for _ in 0..50 {
            let t = BootstrapToken::generate(now, ttl).unwrap();
            assert_eq!(t.id.len(), 6);
            assert_eq!(t.secret.len(), 16);
            assert!(t.id.chars().all(is_token_char), "{}", t.id);
            assert!(t.secret.chars().all(is_token_char));
            let token = t.token();
            let (id, secret) = token.split_once('.').unwrap();
            assert_eq!((id, secret), (t.id.as_str(), t.secret.as_str()));
            assert_eq!(t.expires, now + Duration::hours(2));
        }
    }

    #[test]
    fn tokens_differ() {
        let now = Utc::now();
        let ttl = std::time::Duration::from_secs(60);
        let a = BootstrapToken::generate(now, ttl).unwrap();
        let b = BootstrapToken::generate(now, ttl).unwrap();
        assert_ne!(a.token(), b.token());
    }

    #[test]
    fn debug_redacts_secret() {
        let t = BootstrapToken::generate(Utc::now(), std::time::Duration::from_secs(60)).unwrap();
        let debug = format!("{t:?}");
        assert!(!debug.contains(&t.secret), "{debug}");
        assert!(debug.contains(&t.id));
    }

    #[test]
    fn zero_ttl_is_refused() {
        assert!(matches!(
            BootstrapToken::generate(Utc::now(), std::time::Duration::ZERO),
            Err(BootstrapError::InvalidValidity { .. })
        ));
    }

    #[test]
    fn round_trips_through_serde() {
        let t = BootstrapToken::generate(Utc::now(), std::time::Duration::from_secs(60)).unwrap();
        let back: BootstrapToken =
            serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }
}
