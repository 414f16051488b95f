//! Keys derived from the signing secret for authd's own keyed digests (throttle counters, decoy
//! choice), so that the secret itself never keys anything but tokens.

use hmac::{KeyInit as _, Mac as _};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// A 32-byte key for one purpose, `HMAC-SHA256(secret, label)`: knowing one derived key tells
/// nothing of the secret or of the keys of other labels.
#[derive(Clone)]
pub(crate) struct DerivedKey([u8; 32]);

impl std::fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DerivedKey([REDACTED])")
    }
}

impl DerivedKey {
    /// The key for `label` under `secret`.
    pub(crate) fn derive(secret: &[u8], label: &str) -> Self {
        Self(mac(secret, label.as_bytes()))
    }

    /// `HMAC-SHA256(key, data)`.
    pub(crate) fn mac(&self, data: &[u8]) -> [u8; 32] {
        mac(&self.0, data)
    }
}

fn mac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail; the fallback is never used.
    let Ok(mut m) = HmacSha256::new_from_slice(key) else {
        return [0; 32];
    };
    m.update(data);
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_by_label_and_secret_and_match_rfc_4231() {
        // RFC 4231 test case 2.
        let k = DerivedKey(mac(b"Jefe", b"what do ya want for nothing?"));
        assert_eq!(
            crate::store::hex(&k.0),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let a = DerivedKey::derive(b"secret", "one");
        assert_ne!(a.mac(b"x"), DerivedKey::derive(b"secret", "two").mac(b"x"));
        assert_ne!(a.mac(b"x"), DerivedKey::derive(b"other", "one").mac(b"x"));
        assert_eq!(format!("{a:?}"), "DerivedKey([REDACTED])");
    }
}
