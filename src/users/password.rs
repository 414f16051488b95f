//! Password hashes: argon2id PHC strings (what we make), bcrypt `$2y$`/`$2b$` (what Apache's
//! `htpasswd -B` makes), and, for checking until the next login rehashes them, `htpasswd`'s older
//! `$apr1$` and `{SHA}`. Hashing and verifying are slow on purpose; callers run them off the async
//! workers (see [`super::HashPool`]).

use std::cell::RefCell;

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// argon2id memory cost in KiB: OWASP's recommended minimum (19 MiB).
pub const ARGON2_M_COST_KIB: u32 = 19_456;
/// argon2id passes: OWASP's recommendation for 19 MiB.
pub const ARGON2_T_COST: u32 = 2;
/// argon2id lanes.
pub const ARGON2_P_COST: u32 = 1;

/// bcrypt costs accepted in a users file. Below 4 the bcrypt crate refuses to verify (the user
/// could never log in); 14 is already about a second a login, and each step doubles it, so a
/// cost of 31 would hold a hashing thread for days.
pub const BCRYPT_COSTS: std::ops::RangeInclusive<u32> = 4..=14;
/// Largest argon2 memory cost accepted, in KiB (256 MiB): each hashing thread holds this much
/// while it checks the entry.
pub const ARGON2_MAX_M_COST_KIB: u32 = 256 * 1024;
/// Most argon2 passes accepted.
pub const ARGON2_MAX_T_COST: u32 = 10;
/// Most argon2 lanes accepted.
pub const ARGON2_MAX_P_COST: u32 = 16;
/// bcrypt reads only this many bytes of a password; the rest is ignored.
pub const BCRYPT_MAX_PASSWORD: usize = 72;

/// A stored password hash whose format was checked when the users file was read.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredHash {
    /// An argon2 PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
    Argon2(String),
    /// A bcrypt hash (`$2y$`, `$2b$`, `$2a$`).
    Bcrypt(String),
    /// Apache's MD5-crypt (`$apr1$`, `htpasswd`'s default): checked, then rehashed at login.
    Apr1(String),
    /// Apache's `{SHA}` (one unsalted SHA-1, `htpasswd -s`): checked, then rehashed at login.
    Sha1(String),
}

impl std::fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Argon2(_) => f.write_str("Argon2([REDACTED])"),
            Self::Bcrypt(_) => f.write_str("Bcrypt([REDACTED])"),
            Self::Apr1(_) => f.write_str("Apr1([REDACTED])"),
            Self::Sha1(_) => f.write_str("Sha1([REDACTED])"),
        }
    }
}

/// Why a hash string was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashFormatError {
    /// Recognised as argon2 or bcrypt but not well formed.
    #[error("malformed {0} hash")]
    Malformed(&'static str),
    /// Well formed, but with a cost outside the accepted ranges.
    #[error("{0}")]
    OutOfRange(String),
    /// Some other scheme (crypt, plain text).
    #[error(
        "unsupported hash (use argon2id from `authd hash-password`, or bcrypt from `htpasswd -B -C 12`)"
    )]
    Unsupported,
}

impl StoredHash {
    /// Checks the format of a hash string without doing any hashing.
    pub fn parse(s: &str) -> Result<Self, HashFormatError> {
        if s.starts_with("$argon2") {
            let parsed = PasswordHash::new(s).map_err(|_| HashFormatError::Malformed("argon2"))?;
            let alg = parsed.algorithm.as_str();
            if !matches!(alg, "argon2id" | "argon2i" | "argon2d") {
                return Err(HashFormatError::Malformed("argon2"));
            }
            // Parameters must be ones argon2 accepts, or every verify would fail at run time.
            let params =
                Params::try_from(&parsed).map_err(|_| HashFormatError::Malformed("argon2"))?;
            check_argon2_params(&params)?;
            Ok(Self::Argon2(s.to_owned()))
        } else if ["$2y$", "$2b$", "$2a$"].iter().any(|p| s.starts_with(p)) {
            let parts = s
                .parse::<bcrypt::HashParts>()
                .map_err(|_| HashFormatError::Malformed("bcrypt"))?;
            let cost = parts.get_cost();
            if !BCRYPT_COSTS.contains(&cost) {
                return Err(HashFormatError::OutOfRange(format!(
                    "bcrypt cost {cost} is outside {}-{} (rehash it, e.g. `htpasswd -B -C 10`)",
                    BCRYPT_COSTS.start(),
                    BCRYPT_COSTS.end()
                )));
            }
            Ok(Self::Bcrypt(s.to_owned()))
        } else if s.starts_with("$apr1$") {
            if super::legacy::is_apr1(s) {
                Ok(Self::Apr1(s.to_owned()))
            } else {
                Err(HashFormatError::Malformed("$apr1$"))
            }
        } else if s.starts_with("{SHA}") {
            if super::legacy::is_sha1(s) {
                Ok(Self::Sha1(s.to_owned()))
            } else {
                Err(HashFormatError::Malformed("{SHA}"))
            }
        } else {
            Err(HashFormatError::Unsupported)
        }
    }

    /// Whether `password` matches. Constant-time in the comparison; slow by design. A password
    /// longer than bcrypt reads is refused for a bcrypt entry (any tail past 72 bytes would
    /// match), after the same hashing as any other attempt.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Self::Argon2(s) => verify_argon2(s, password).unwrap_or(false),
            Self::Bcrypt(s) => {
                // `bcrypt::non_truncating_verify` would also refuse exactly 72 bytes, which
                // `htpasswd -B` hashes whole; the length is checked after hashing instead, so
                // that a long password costs the same time as a short one.
                let matches = bcrypt::verify(password, s).unwrap_or(false);
                matches && password.len() <= BCRYPT_MAX_PASSWORD
            }
            Self::Apr1(s) => super::legacy::apr1_matches(s, password),
            Self::Sha1(s) => super::legacy::sha1_matches(s, password),
        }
    }

    /// What checking this entry costs: its algorithm and parameters (no salt, no hash), so that
    /// entries of different cost can be told apart.
    pub fn cost(&self) -> String {
        match self {
            Self::Argon2(s) => PasswordHash::new(s).map_or_else(
                |_| "argon2".to_owned(),
                |p| {
                    let params = Params::try_from(&p).map_or_else(
                        |_| String::new(),
                        |q| format!(" m={},t={},p={}", q.m_cost(), q.t_cost(), q.p_cost()),
                    );
                    format!("{}{params}", p.algorithm.as_str())
                },
            ),
            Self::Bcrypt(s) => s.parse::<bcrypt::HashParts>().map_or_else(
                |_| "bcrypt".to_owned(),
                |p| format!("bcrypt cost {}", p.get_cost()),
            ),
            Self::Apr1(_) => "apr1 (MD5-crypt)".to_owned(),
            Self::Sha1(_) => "{SHA} (SHA-1)".to_owned(),
        }
    }

    /// Whether this entry is weaker than or different from what [`hash_password`] makes now
    /// (bcrypt, or argon2 with other parameters), so that a successful login should rehash it.
    pub fn is_outdated(&self) -> bool {
        self.cost() != current_cost()
    }

    /// Whether this is a bcrypt entry.
    pub fn is_bcrypt(&self) -> bool {
        matches!(self, Self::Bcrypt(_))
    }

    /// Whether this is an entry authd accepts for checking only (`$apr1$`, `{SHA}`).
    pub fn is_legacy(&self) -> bool {
        matches!(self, Self::Apr1(_) | Self::Sha1(_))
    }

    /// The hash string, to write it back into a users file.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Argon2(s) | Self::Bcrypt(s) | Self::Apr1(s) | Self::Sha1(s) => s,
        }
    }
}

/// The cost description of the entries [`hash_password`] makes.
fn current_cost() -> String {
    format!("argon2id m={ARGON2_M_COST_KIB},t={ARGON2_T_COST},p={ARGON2_P_COST}")
}

/// Refuses argon2 parameters that would hold a hashing thread or its memory for too long.
fn check_argon2_params(params: &Params) -> Result<(), HashFormatError> {
    let out = |what: &str, value: u32, max: u32| {
        Err(HashFormatError::OutOfRange(format!(
            "argon2 {what} {value} is over {max} (rehash it with `authd hash-password`)"
        )))
    };
    if params.m_cost() > ARGON2_MAX_M_COST_KIB {
        return out("memory (KiB)", params.m_cost(), ARGON2_MAX_M_COST_KIB);
    }
    if params.t_cost() > ARGON2_MAX_T_COST {
        return out("passes", params.t_cost(), ARGON2_MAX_T_COST);
    }
    if params.p_cost() > ARGON2_MAX_P_COST {
        return out("parallelism", params.p_cost(), ARGON2_MAX_P_COST);
    }
    Ok(())
}

/// Blocks (of 1 KiB) reserved for argon2's working memory: just over 32 MiB (see `verify_argon2`).
const MAPPED_BLOCKS: usize = 33 * 1024;

thread_local! {
    /// argon2's working memory (19 MiB at our parameters), kept by each thread that verifies and
    /// reused from one hash to the next. Allocating it afresh for every hash made glibc's
    /// allocator hold on to over 100 MiB per hashing thread (measured: 161 MiB after 36 hashes on
    /// one thread, 25 MiB with the buffer kept), so memory stays at one buffer per thread.
    static ARGON2_MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Recomputes the argon2 hash of `password` with the salt and parameters of `phc` in this
/// thread's reused memory, and compares it with the stored one in constant time.
fn verify_argon2(phc: &str, password: &[u8]) -> Option<bool> {
    let parsed = PasswordHash::new(phc).ok()?;
    let salt = parsed.salt.as_ref()?;
    let expected = parsed.hash.as_ref()?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
    let version = parsed
        .version
        .map_or(Ok(Version::default()), Version::try_from)
        .ok()?;
    let params = Params::try_from(&parsed).ok()?;
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.as_bytes().len()];
    ARGON2_MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            // Reserved above glibc's largest mmap threshold (32 MiB), so that the buffer is always
            // a mapping of its own that `release_thread_memory` hands back to the system. At or
            // below it, glibc raises its threshold past any size it has freed once, and the next
            // buffer of that size comes from the thread's heap, where freeing it keeps it
            // resident. Only the `blocks` used are ever touched, so only they are resident.
            let reserve = blocks.max(MAPPED_BLOCKS);
            *memory = Vec::with_capacity(reserve);
            memory.resize(blocks, Block::new());
        }
        argon2
            .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks])
            .ok()
    })?;
    // `Output`'s equality is constant-time.
    Some(Output::new(&out).ok()? == *expected)
}

/// Gives back this thread's argon2 working memory; the next verification on the thread allocates
/// it again. Hashing threads call it when they have been idle for a while, so that a server
/// between logins does not hold 19 MiB per hashing thread.
pub(super) fn release_thread_memory() {
    ARGON2_MEMORY.with(|memory| {
        if let Ok(mut memory) = memory.try_borrow_mut() {
            *memory = Vec::new();
        }
    });
}

/// Whether this thread holds argon2 working memory now.
#[cfg(test)]
pub(crate) fn holds_thread_memory() -> bool {
    ARGON2_MEMORY.with(|memory| memory.try_borrow().is_ok_and(|m| m.capacity() > 0))
}

fn hasher() -> Argon2<'static> {
    // The constants are valid argon2 parameters; `Params::new` only fails outside its ranges.
    let params =
        Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` as an argon2id PHC string with a random salt and the parameters above.
pub fn hash_password(password: &[u8]) -> Result<String, argon2::password_hash::Error> {
    Ok(hasher().hash_password(password)?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hash_round_trips_with_owasp_parameters() {
        let h = hash_password(b"correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        let stored = StoredHash::parse(&h).unwrap();
        assert!(stored.verify(b"correct horse"));
        assert!(!stored.verify(b"wrong horse"));
    }

    #[test]
    fn argon2_hashes_made_elsewhere_verify_with_their_own_parameters() {
        use argon2::password_hash::PasswordHasher as _;
        // Other variants and costs than ours, as another tool might write them.
        for (alg, m, t, p) in [
            (Algorithm::Argon2id, 8192, 3, 2),
            (Algorithm::Argon2i, 4096, 2, 1),
            (Algorithm::Argon2d, 19456, 1, 1),
        ] {
            let params = Params::new(m, t, p, None).unwrap();
            let h = Argon2::new(alg, Version::V0x13, params)
                .hash_password(b"pw")
                .unwrap()
                .to_string();
            let stored = StoredHash::parse(&h).unwrap();
            assert!(stored.verify(b"pw"), "{h}");
            assert!(!stored.verify(b"pW"), "{h}");
        }
    }

    #[test]
    fn bcrypt_hashes_in_every_htpasswd_prefix_verify() {
        let h = bcrypt::hash("s3cret", 4).unwrap(); // $2b$
        for prefix in ["$2b$", "$2y$", "$2a$"] {
            let s = format!("{prefix}{}", &h[4..]);
            let stored = StoredHash::parse(&s).unwrap();
            assert!(stored.verify(b"s3cret"), "{prefix}");
            assert!(!stored.verify(b"S3cret"), "{prefix}");
        }
    }

    #[test]
    fn unsupported_and_malformed_hashes_are_refused() {
        // htpasswd's older hashes are accepted when well formed (see `legacy`), not otherwise.
        assert_eq!(
            StoredHash::parse("$apr1$abc$def"),
            Err(HashFormatError::Malformed("$apr1$"))
        );
        assert_eq!(
            StoredHash::parse("{SHA}abc="),
            Err(HashFormatError::Malformed("{SHA}"))
        );
        assert_eq!(
            StoredHash::parse("$1$abc$def"),
            Err(HashFormatError::Unsupported)
        );
        assert_eq!(
            StoredHash::parse("plaintext"),
            Err(HashFormatError::Unsupported)
        );
        assert_eq!(
            StoredHash::parse("$argon2id$v=19$garbage"),
            Err(HashFormatError::Malformed("argon2"))
        );
        assert_eq!(
            StoredHash::parse("$2y$10$short"),
            Err(HashFormatError::Malformed("bcrypt"))
        );
    }

    #[test]
    fn debug_does_not_print_the_hash() {
        let s = format!("{:?}", StoredHash::Bcrypt("$2y$10$secretstuff".into()));
        assert!(!s.contains("secretstuff"));
    }
}
