//! The hashes Apache's `htpasswd` makes without `-B`: `$apr1$` (MD5-crypt, its default) and
//! `{SHA}` (one unsalted SHA-1). Both are far too cheap to keep: authd accepts them for checking
//! only, so that an existing file works, warns at start, and rehashes each such entry to argon2id
//! at its user's next successful login. No crate does `$apr1$` on a kept hash library (those that
//! do pull in the abandoned `rust-crypto`), so the 30 lines of Apache's algorithm are here, over
//! RustCrypto's MD5.

use base64::Engine as _;
use md5::{Digest as _, Md5};
use subtle::ConstantTimeEq as _;

const MAGIC: &str = "$apr1$";
/// crypt(3)'s base-64 alphabet.
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Whether `s` is a well-formed `$apr1$SALT$HASH` (salt of 1 to 8 characters, 22 of hash).
pub(super) fn is_apr1(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(MAGIC) else {
        return false;
    };
    let Some((salt, hash)) = rest.split_once('$') else {
        return false;
    };
    let crypt64 = |t: &str| t.bytes().all(|b| ITOA64.contains(&b));
    (1..=8).contains(&salt.len()) && hash.len() == 22 && crypt64(salt) && crypt64(hash)
}

/// Whether `s` is a well-formed `{SHA}` entry: the base64 of a 20-byte SHA-1.
pub(super) fn is_sha1(s: &str) -> bool {
    s.strip_prefix("{SHA}")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .is_some_and(|d| d.len() == 20)
}

/// Whether `password` matches the `$apr1$` entry `stored` (compared in constant time).
pub(super) fn apr1_matches(stored: &str, password: &[u8]) -> bool {
    let Some((salt, _)) = stored
        .strip_prefix(MAGIC)
        .and_then(|rest| rest.split_once('$'))
    else {
        return false;
    };
    let computed = format!("{MAGIC}{salt}${}", apr1(password, salt.as_bytes()));
    computed.as_bytes().ct_eq(stored.as_bytes()).into()
}

/// Whether `password` matches the `{SHA}` entry `stored` (compared in constant time).
pub(super) fn sha1_matches(stored: &str, password: &[u8]) -> bool {
    let computed = format!(
        "{{SHA}}{}",
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(password))
    );
    computed.as_bytes().ct_eq(stored.as_bytes()).into()
}

/// Apache's MD5-crypt of `password` with `salt`: the 22 characters after the salt.
fn apr1(password: &[u8], salt: &[u8]) -> String {
    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(MAGIC.as_bytes());
    ctx.update(salt);
    let alternate = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    for chunk in password.chunks(16) {
        ctx.update(&alternate[..chunk.len()]);
    }
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round % 2 == 1 {
            c.update(password);
        } else {
            c.update(fin);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round % 2 == 1 {
            c.update(fin);
        } else {
            c.update(password);
        }
        fin = c.finalize();
    }
    let mut out = String::with_capacity(22);
    let mut to64 = |mut v: u32, n: usize| {
        for _ in 0..n {
            out.push(char::from(ITOA64[(v & 0x3f) as usize]));
            v >>= 6;
        }
    };
    let b = |i: usize| u32::from(fin[i]);
    for (x, y, z) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        to64((b(x) << 16) | (b(y) << 8) | b(z), 4);
    }
    to64(b(11), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors made with OpenSSL (`openssl passwd -apr1 -salt ...`) and Apache's
    // `htpasswd -nbm` / `htpasswd -nbs`, not by this code.
    #[test]
    fn apr1_matches_what_openssl_and_htpasswd_make() {
        let openssl = "$apr1$saltsalt$yAAkm4libquA.ZWLHbSBq/";
        assert!(is_apr1(openssl));
        assert!(apr1_matches(openssl, b"password"));
        assert!(!apr1_matches(openssl, b"Password"));
        let long = "$apr1$abc$nIplqe6Vo.VeHKh8Hl3UA.";
        assert!(apr1_matches(
            long,
            "pässwörd-long-enough-to-pass-sixteen".as_bytes()
        ));
        let htpasswd = "$apr1$uhJu6dzk$lZrrkK2KSmszA/jQGWHpn.";
        assert!(apr1_matches(htpasswd, b"secret"));
        assert!(!apr1_matches(htpasswd, b"secret "));
    }

    #[test]
    fn sha1_entries_match_what_htpasswd_makes() {
        let htpasswd = "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=";
        assert!(is_sha1(htpasswd));
        assert!(sha1_matches(htpasswd, b"secret"));
        assert!(!sha1_matches(htpasswd, b"secreT"));
    }

    #[test]
    fn malformed_legacy_entries_are_not_taken_for_hashes() {
        for bad in [
            "$apr1$",
            "$apr1$salt",
            "$apr1$toolongsalt$yAAkm4libquA.ZWLHbSBq/",
            "$apr1$salt$short",
            "$apr1$sa!t$yAAkm4libquA.ZWLHbSBq/",
            "{SHA}",
            "{SHA}not-base64!",
            "{SHA}AAAA",
        ] {
            assert!(!is_apr1(bad) && !is_sha1(bad), "{bad}");
        }
    }
}
