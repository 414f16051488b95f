//! Access tokens: JWTs signed with HS256 (the default) or EdDSA/ES256 ([`crate::signing`]). Claims, the keys built once from the secret (and the previous
//! secrets still accepted during a rotation), issuing and verifying. Plain Rust with no HTTP in
//! it; every function that needs the time takes `now` from its caller.

use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub use crate::signing::{KeyError, PublicKey, SigningAlg, SigningKey};

/// Clock skew tolerated on `exp` and `nbf`, in seconds: small enough that an expired token stops
/// working within half a minute, large enough for hosts whose clocks differ by a few seconds.
pub const LEEWAY_SECS: i64 = 30;

/// Most groups a token may name (and a user may be in): every request's token check reads them,
/// and `/verify` sends them in a header.
pub const MAX_GROUPS: usize = 64;
/// Longest group name, in bytes.
pub const MAX_GROUP_NAME_BYTES: usize = 128;

/// What is wrong with `name` as a group name, if anything: empty, longer than
/// [`MAX_GROUP_NAME_BYTES`], or holding a `:` (the group file's separator), a `,` (the separator
/// of `Remote-Groups` and `allowed_groups`), whitespace or a control character. One rule for the
/// groups file and for the `groups` claim of tokens from elsewhere, so that a name that passed
/// one is never read as two names by a proxy or an application.
pub fn group_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty group name")
    } else if name.len() > MAX_GROUP_NAME_BYTES {
        Some("group name longer than 128 bytes")
    } else if name
        .chars()
        .any(|c| c == ':' || c == ',' || c.is_whitespace() || c.is_control())
    {
        Some("group name with `:`, `,`, whitespace or a control character")
    } else {
        None
    }
}

/// The claims of an access token.
///
/// `user` is the tutorial's claim, kept so that code written against it keeps working; `sub` is
/// the standard one and carries the same name. Tokens made elsewhere may carry only some of them:
/// the one claim verification insists on is `exp`; a `sub` or `user` that is there must not be
/// empty, and the two must agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's name (the tutorial's claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The user's name (RFC 7519 subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Not before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issuer, when one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience, when one is configured (a string or a list of strings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// The groups the user was in when the token was issued (the groups file,
    /// `AUTHD_GROUPS`); absent from the token when there are none. A token without the claim
    /// (another library's, an older authd's) is in no group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The session this token belongs to: the id of a session in the sessions store (`authd
    /// sessions list` shows it), opaque and not a credential; absent from tokens made elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// When the person signed in (OpenID Connect's claim), seconds since the Unix epoch: a
    /// session cookie's absolute lifetime counts from it, however often the cookie is re-issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

impl Claims {
    /// The name of the user the token was issued to: `sub`, else the tutorial's `user`.
    pub fn subject(&self) -> Option<&str> {
        self.sub.as_deref().or(self.user.as_deref())
    }

    /// Whether the token names `group` among its groups.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// The `aud` claim: RFC 7519 allows one string or an array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

/// The JWT header `typ` of a session cookie's token (RFC 8725 §3.11, explicit typing): access
/// tokens never carry it, so neither kind passes for the other.
pub const SESSION_TYP: &str = "authd-session+jwt";
/// Longest `sid` a session cookie's token may carry, in bytes (authd's are 32 hex digits).
pub const MAX_SID_BYTES: usize = 64;

/// How long a browser session's cookie lives: `idle` after its last use (each cookie's `exp`;
/// `/verify` re-issues it past half of that), and `lifetime` after the sign-in at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieLifetimes {
    /// `AUTHD_COOKIE_IDLE`.
    pub idle: Duration,
    /// `AUTHD_COOKIE_LIFETIME`.
    pub lifetime: Duration,
}

impl Default for CookieLifetimes {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(60 * 60),
            lifetime: Duration::from_secs(12 * 60 * 60),
        }
    }
}

/// Settings for the tokens this server issues and accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// How long an access token lives.
    pub ttl: Duration,
    /// When set, issued tokens carry it and verified tokens must carry it.
    pub issuer: Option<String>,
    /// When set, issued tokens carry it and verified tokens must name it.
    pub audience: Option<String>,
    /// Until this time (seconds since the Unix epoch), a token that lacks `iss` or `aud` is
    /// accepted all the same, so that turning on an issuer or an audience does not refuse every
    /// token issued before (`AUTHD_ACCEPT_MISSING_CLAIMS_UNTIL`). One that carries them must
    /// still carry the right ones; tokens issued carry them at once. `None`: never.
    pub accept_missing_claims_until: Option<i64>,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30 * 60),
            issuer: None,
            audience: None,
            accept_missing_claims_until: None,
        }
    }
}

/// Why a token was refused. Both answer "Token is invalid!" over HTTP; the split is for logs and
/// metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Well formed and correctly signed, but past its `exp` (plus leeway).
    #[error("token expired")]
    Expired,
    /// Anything else: bad signature, wrong algorithm, missing `exp`, `exp` further ahead than
    /// the lifetime allows, not yet valid, an empty subject, `sub` and `user` that differ,
    /// malformed.
    #[error("token invalid")]
    Invalid,
}

/// A freshly issued access token. `Debug` does not show it.
#[derive(Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"[REDACTED]")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// The `kid` (JWT header key ID) naming an HMAC secret: the first 8 bytes of the secret's SHA-256,
/// in lower-case hex (16 characters). It names the key without revealing it, and anyone holding
/// the secret can compute it: `printf %s "$SECRET" | sha256sum | cut -c1-16`.
pub fn key_id(secret: &[u8]) -> String {
    use sha2::Digest as _;
    use std::fmt::Write as _;
    let digest = sha2::Sha256::digest(secret);
    digest[..8]
        .iter()
        .fold(String::with_capacity(16), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A key that verifies tokens, with the `kid` that names it.
struct VerifyingKey {
    kid: String,
    decoding: DecodingKey,
}

/// Signing and verifying keys, built once and shared by every request.
///
/// Under HS256 (the default), tokens are signed with the current secret and carry its
/// [`key_id`] as `kid`; under EdDSA or ES256 ([`TokenKeys::with_key_pair`]), with a private key,
/// and the `kid` is the public key's RFC 7638 thumbprint. One algorithm is accepted, the one the
/// keys are of: an EdDSA deployment refuses HS256 tokens (whatever their HMAC key) and `none`.
///
/// A token is verified with the key its `kid` names, the current one or a previous one; a `kid`
/// naming no key is invalid. A token without `kid` (made by PyJWT or another library, or by authd
/// before key IDs) is tried against the current key, then each previous one.
pub struct TokenKeys {
    alg: SigningAlg,
    /// `None`: verify-only keys ([`TokenKeys::verify_only`]), which issue nothing.
    encoding: Option<EncodingKey>,
    header: Header,
    /// The current key first, then the previous ones in the order given.
    verifying: Vec<VerifyingKey>,
    /// The public keys (empty under HS256), in the order of `verifying`.
    public: Vec<PublicKey>,
    validation: Validation,
    /// `validation` without `iss` and `aud` required (a wrong one is still refused), used before
    /// `settings.accept_missing_claims_until`.
    lenient: Validation,
    settings: TokenSettings,
    /// The latest `exp` accepted, in seconds after `now`: the lifetime plus [`LEEWAY_SECS`].
    max_exp_ahead: i64,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("alg", &self.alg)
            .field("keys", &"[REDACTED]")
            .field("settings", &self.settings)
            .finish()
    }
}

impl TokenKeys {
    /// Builds HS256 keys from the shared secret (refused only when empty).
    pub fn new(
        secret: &[u8],
        settings: TokenSettings,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        Self::with_previous(secret, &[], settings)
    }

    /// Builds HS256 keys from the current secret, which signs, and previous secrets that still
    /// verify the tokens they signed until those expire.
    pub fn with_previous(
        secret: &[u8],
        previous: &[&[u8]],
        settings: TokenSettings,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        let verifying = std::iter::once(secret)
            .chain(previous.iter().copied())
            .map(|s| {
                Ok(VerifyingKey {
                    kid: key_id(s),
                    decoding: DecodingKey::from_secret(s)?,
                })
            })
            .collect::<Result<Vec<_>, jsonwebtoken::errors::Error>>()?;
        Ok(Self::build(
            SigningAlg::Hs256,
            Some(EncodingKey::from_secret(secret)?),
            verifying,
            Vec::new(),
            settings,
        ))
    }

    /// Builds EdDSA or ES256 keys: `key` signs; it and the `previous` public keys (of the same
    /// algorithm) verify. A previous key equal to the current one is left out.
    pub fn with_key_pair(
        key: &SigningKey,
        previous: &[PublicKey],
        settings: TokenSettings,
    ) -> Result<Self, KeyError> {
        let mut public = vec![key.public().clone()];
        for p in previous {
            if public.iter().all(|k| k.kid() != p.kid()) {
                public.push(p.clone());
            }
        }
        Self::from_public(
            key.public().alg(),
            Some(key.encoding().clone()),
            public,
            settings,
        )
    }

    /// Builds keys that verify tokens signed with any of `keys` (all of one algorithm, EdDSA or
    /// ES256) and issue none: what a service that only checks authd's tokens needs, given
    /// authd's public keys (from PEM files, or from its `/.well-known/jwks.json`).
    pub fn verify_only(keys: &[PublicKey], settings: TokenSettings) -> Result<Self, KeyError> {
        let alg = keys
            .first()
            .map(PublicKey::alg)
            .ok_or(KeyError::Unreadable)?;
        Self::from_public(alg, None, keys.to_vec(), settings)
    }

    fn from_public(
        alg: SigningAlg,
        encoding: Option<EncodingKey>,
        public: Vec<PublicKey>,
        settings: TokenSettings,
    ) -> Result<Self, KeyError> {
        if !alg.is_asymmetric() {
            return Err(KeyError::Symmetric);
        }
        if public.iter().any(|k| k.alg() != alg) {
            return Err(KeyError::Unreadable);
        }
        let verifying = public
            .iter()
            .map(|k| VerifyingKey {
                kid: k.kid().to_owned(),
                decoding: k.decoding().clone(),
            })
            .collect();
        Ok(Self::build(alg, encoding, verifying, public, settings))
    }

    fn build(
        alg: SigningAlg,
        encoding: Option<EncodingKey>,
        verifying: Vec<VerifyingKey>,
        public: Vec<PublicKey>,
        settings: TokenSettings,
    ) -> Self {
        // The algorithm is pinned: a token whose header names any other (none, HS384, RS256,
        // HS256 under EdDSA, ...) is refused before its signature is looked at.
        let mut validation = Validation::new(alg.jwt());
        // `exp` and `nbf` are checked in `verify` against the caller's `now`, so that tests
        // need no sleeping; the library only insists that `exp` is there.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        let mut required = vec!["exp"];
        if let Some(iss) = &settings.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        if let Some(aud) = &settings.audience {
            validation.set_audience(&[aud]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        // jsonwebtoken checks `iss` and `aud` only when they are there; their presence is what
        // `required` adds.
        let mut lenient = validation.clone();
        lenient.set_required_spec_claims(&["exp"]);
        let mut header = Header::new(alg.jwt());
        header.kid = verifying.first().map(|k| k.kid.clone());
        let max_exp_ahead = i64::try_from(settings.ttl.as_secs())
            .unwrap_or(i64::MAX)
            .saturating_add(LEEWAY_SECS);
        Self {
            alg,
            encoding,
            header,
            verifying,
            public,
            validation,
            lenient,
            settings,
            max_exp_ahead,
        }
    }

    /// The algorithm tokens are signed and verified with.
    pub fn algorithm(&self) -> SigningAlg {
        self.alg
    }

    /// The public keys, current first (none under HS256, whose key is a secret).
    pub fn public_keys(&self) -> &[PublicKey] {
        &self.public
    }

    /// The public keys as a JWK Set (RFC 7517), as `/.well-known/jwks.json` serves it; empty
    /// under HS256.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.public.iter().map(|k| k.jwk().clone()).collect(),
        }
    }

    /// Whether `kid` names one of these keys.
    pub fn knows_kid(&self, kid: &str) -> bool {
        self.verifying.iter().any(|k| k.kid == kid)
    }

    /// The signing key, or an error for verify-only keys.
    fn encoding(&self) -> Result<&EncodingKey, jsonwebtoken::errors::Error> {
        self.encoding
            .as_ref()
            .ok_or_else(|| jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into())
    }

    /// The `kid` of the current (signing) key.
    pub fn current_key_id(&self) -> &str {
        self.verifying.first().map_or("", |k| k.kid.as_str())
    }

    /// The settings the keys were built with.
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// Issues an access token for `user` at `now` (seconds since the Unix epoch), in no group.
    pub fn issue(&self, user: &str, now: i64) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        self.issue_in_groups(user, &[], now)
    }

    /// Issues an access token for `user`, a member of `groups`, at `now` (seconds since the
    /// Unix epoch), in no session.
    pub fn issue_in_groups(
        &self,
        user: &str,
        groups: &[String],
        now: i64,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        self.issue_in_session(user, groups, None, now)
    }

    /// Issues an access token for `user`, a member of `groups`, at `now` (seconds since the
    /// Unix epoch), carrying `sid`, the session it belongs to, when there is one.
    pub fn issue_in_session(
        &self,
        user: &str,
        groups: &[String],
        sid: Option<&str>,
        now: i64,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let ttl = self.settings.ttl.as_secs();
        let claims = Claims {
            user: Some(user.to_owned()),
            sub: Some(user.to_owned()),
            iat: Some(now),
            exp: now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
            nbf: None,
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone().map(Audience::One),
            groups: groups.to_vec(),
            sid: sid.map(str::to_owned),
            auth_time: None,
        };
        let token = jsonwebtoken::encode(&self.header, &claims, self.encoding()?)?;
        Ok(IssuedToken {
            token,
            expires_in: ttl,
        })
    }

    /// Verifies `token` at `now`: the keys' algorithm only, signature with the key its `kid` names (or any of
    /// ours when it has none), `exp` required and in the future (within [`LEEWAY_SECS`]) but no
    /// further ahead than the configured lifetime (plus the leeway), `nbf` honoured, `iss`/`aud`
    /// when configured (either may be missing before `settings.accept_missing_claims_until`, never
    /// wrong), a subject that is not empty and, when both `sub` and `user` are
    /// there, the same in both, and `groups`, when there, a list of at most [`MAX_GROUPS`]
    /// strings that pass [`group_name_problem`].
    ///
    /// The lifetime bound is what keeps a holder of the secret (every service linking this
    /// library has it) from minting tokens that never expire: no token authd issues lives longer
    /// than `settings.ttl`, so none that claims to is authd's. A service checking authd's tokens
    /// must therefore be given a `ttl` at least authd's `AUTHD_TOKEN_TTL`.
    ///
    /// A session cookie's token ([`TokenKeys::issue_session`], JWT `typ` [`SESSION_TYP`]) is
    /// refused here: it is a credential for `/verify` only, so one lifted from a browser opens no
    /// API.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, VerifyError> {
        self.verify_kind(token, now, None)
    }

    /// Issues the token of a browser session's cookie: `user`'s claims and `groups` as an access
    /// token carries them, plus the session id `sid` and `auth_time` (when the person signed in),
    /// typed [`SESSION_TYP`], expiring after the idle lifetime but never past `auth_time` plus
    /// the absolute lifetime.
    pub fn issue_session(
        &self,
        user: &str,
        groups: &[String],
        sid: &str,
        auth_time: i64,
        now: i64,
        lifetimes: CookieLifetimes,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let end = auth_time.saturating_add(secs(lifetimes.lifetime));
        let exp = now.saturating_add(secs(lifetimes.idle)).min(end);
        let claims = Claims {
            user: Some(user.to_owned()),
            sub: Some(user.to_owned()),
            iat: Some(now),
            exp,
            nbf: None,
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone().map(Audience::One),
            groups: groups.to_vec(),
            sid: Some(sid.to_owned()),
            auth_time: Some(auth_time),
        };
        let mut header = self.header.clone();
        header.typ = Some(SESSION_TYP.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, self.encoding()?)?;
        Ok(IssuedToken {
            token,
            expires_in: u64::try_from(exp.saturating_sub(now)).unwrap_or(0),
        })
    }

    /// Verifies a session cookie's token at `now`: everything [`TokenKeys::verify`] checks,
    /// except that the token must be typed [`SESSION_TYP`], its `exp` no further ahead than the
    /// idle lifetime, and it must carry a `sid` (at most [`MAX_SID_BYTES`]) and an `auth_time`
    /// not in the future and less than the absolute lifetime ago (past it: expired).
    pub fn verify_session(
        &self,
        token: &str,
        now: i64,
        lifetimes: CookieLifetimes,
    ) -> Result<Claims, VerifyError> {
        self.verify_kind(token, now, Some(lifetimes))
    }

    /// [`TokenKeys::verify`] (`session` none) or [`TokenKeys::verify_session`].
    fn verify_kind(
        &self,
        token: &str,
        now: i64,
        session: Option<CookieLifetimes>,
    ) -> Result<Claims, VerifyError> {
        let validation = match self.settings.accept_missing_claims_until {
            Some(until) if now < until => &self.lenient,
            _ => &self.validation,
        };
        let decode = |key: &VerifyingKey| {
            jsonwebtoken::decode::<Claims>(token, &key.decoding, validation).ok()
        };
        let (current, previous) = self.verifying.split_first().ok_or(VerifyError::Invalid)?;
        // The current key first: the usual case costs one decode. A token it signed must not
        // name another key; one it did not sign is looked up among the previous keys by `kid`.
        let data = match decode(current) {
            Some(d) if d.header.kid.as_deref().is_none_or(|kid| kid == current.kid) => Some(d),
            Some(_) => None,
            None if previous.is_empty() => None,
            None => {
                let header =
                    jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Invalid)?;
                match header.kid.as_deref() {
                    Some(kid) => previous.iter().find(|k| k.kid == kid).and_then(decode),
                    None => previous.iter().find_map(decode),
                }
            }
        };
        let data = data.ok_or(VerifyError::Invalid)?;
        // Explicit typing (RFC 8725 §3.11): a cookie's token is not an access token, and no
        // access token is a cookie's.
        let is_session = data.header.typ.as_deref() == Some(SESSION_TYP);
        if is_session != session.is_some() {
            return Err(VerifyError::Invalid);
        }
        let claims = data.claims;
        let max_exp_ahead = match session {
            None => self.max_exp_ahead,
            Some(l) => secs(l.idle).saturating_add(LEEWAY_SECS),
        };
        if let Some(l) = session {
            let sid_ok = claims
                .sid
                .as_deref()
                .is_some_and(|s| !s.is_empty() && s.len() <= MAX_SID_BYTES);
            let Some(auth_time) = claims.auth_time.filter(|_| sid_ok) else {
                return Err(VerifyError::Invalid);
            };
            if auth_time > now.saturating_add(LEEWAY_SECS) {
                return Err(VerifyError::Invalid);
            }
            if auth_time.saturating_add(secs(l.lifetime)) < now.saturating_sub(LEEWAY_SECS) {
                return Err(VerifyError::Expired);
            }
        }
        if let Some(nbf) = claims.nbf
            && nbf > now.saturating_add(LEEWAY_SECS)
        {
            return Err(VerifyError::Invalid);
        }
        if claims.exp < now.saturating_sub(LEEWAY_SECS) {
            return Err(VerifyError::Expired);
        }
        if claims.exp > now.saturating_add(max_exp_ahead) {
            return Err(VerifyError::Invalid);
        }
        // A name that is empty names no one, and two names are one too many: a check reading
        // `sub` and an application reading `user` must not see different users.
        let empty = |name: &Option<String>| name.as_deref().is_some_and(str::is_empty);
        if empty(&claims.sub) || empty(&claims.user) {
            return Err(VerifyError::Invalid);
        }
        if let (Some(sub), Some(user)) = (&claims.sub, &claims.user)
            && sub != user
        {
            return Err(VerifyError::Invalid);
        }
        // Bounded, and names a proxy or an application cannot split differently: a group named
        // `a,b` would be two groups in `Remote-Groups`.
        if claims.groups.len() > MAX_GROUPS
            || claims
                .groups
                .iter()
                .any(|g| group_name_problem(g).is_some())
        {
            return Err(VerifyError::Invalid);
        }
        Ok(claims)
    }
}

/// Whole seconds of `d`, as the claims count them.
fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Seconds since the Unix epoch, now.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::Algorithm;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-unit-tests";
    const NOW: i64 = 1_800_000_000;

    fn keys() -> TokenKeys {
        TokenKeys::new(SECRET, TokenSettings::default()).unwrap()
    }

    fn sign_with(alg: Algorithm, secret: &[u8], claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(secret).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn issued_token_verifies_and_carries_user_sub_iat_exp() {
        let k = keys();
        let t = k.issue("alice", NOW).unwrap();
        assert_eq!(t.expires_in, 1800);
        let c = k.verify(&t.token, NOW).unwrap();
        assert_eq!(c.user.as_deref(), Some("alice"));
        assert_eq!(c.sub.as_deref(), Some("alice"));
        assert_eq!(c.iat, Some(NOW));
        assert_eq!(c.exp, NOW + 1800);
    }

    #[test]
    fn token_past_exp_and_leeway_is_expired_but_within_leeway_is_accepted() {
        let k = keys();
        let t = k.issue("alice", NOW).unwrap().token;
        assert!(k.verify(&t, NOW + 1800 + LEEWAY_SECS).is_ok());
        assert_eq!(
            k.verify(&t, NOW + 1800 + LEEWAY_SECS + 1),
            Err(VerifyError::Expired)
        );
    }

    #[test]
    fn token_without_exp_is_invalid() {
        let t = sign_with(
            Algorithm::HS256,
            SECRET,
            &serde_json::json!({"user": "alice"}),
        );
        assert_eq!(keys().verify(&t, NOW), Err(VerifyError::Invalid));
    }

    #[test]
    fn token_with_future_nbf_is_invalid_until_then() {
        let t = sign_with(
            Algorithm::HS256,
            SECRET,
            &serde_json::json!({"user": "a", "exp": NOW + 600, "nbf": NOW + 300}),
        );
        assert_eq!(keys().verify(&t, NOW), Err(VerifyError::Invalid));
        assert!(keys().verify(&t, NOW + 300).is_ok());
    }

    #[test]
    fn other_algorithms_are_refused_even_with_the_right_secret() {
        let claims = serde_json::json!({"user": "a", "exp": NOW + 600});
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let t = sign_with(alg, SECRET, &claims);
            assert_eq!(keys().verify(&t, NOW), Err(VerifyError::Invalid), "{alg:?}");
        }
    }

    #[test]
    fn alg_none_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"user":"a","exp":{}}}"#, NOW + 600));
        for t in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            assert_eq!(keys().verify(&t, NOW), Err(VerifyError::Invalid));
        }
    }

    #[test]
    fn wrong_secret_and_tampered_payload_are_refused() {
        let other = sign_with(
            Algorithm::HS256,
            b"another-secret-that-is-long-enough-0000",
            &serde_json::json!({"user": "a", "exp": NOW + 600}),
        );
        assert_eq!(keys().verify(&other, NOW), Err(VerifyError::Invalid));

        let good = keys().issue("alice", NOW).unwrap().token;
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(format!(r#"{{"user":"admin","exp":{}}}"#, NOW + 600));
        parts[1] = &forged;
        assert_eq!(
            keys().verify(&parts.join("."), NOW),
            Err(VerifyError::Invalid)
        );
    }

    #[test]
    fn issuer_and_audience_are_issued_and_required_when_configured() {
        let k = TokenKeys::new(
            SECRET,
            TokenSettings {
                issuer: Some("authd".into()),
                audience: Some("api".into()),
                ..TokenSettings::default()
            },
        )
        .unwrap();
        let t = k.issue("bob", NOW).unwrap().token;
        let c = k.verify(&t, NOW).unwrap();
        assert_eq!(c.iss.as_deref(), Some("authd"));
        assert_eq!(c.aud, Some(Audience::One("api".into())));
        // A token from the plain configuration carries neither and is refused.
        let plain = keys().issue("bob", NOW).unwrap().token;
        assert_eq!(k.verify(&plain, NOW), Err(VerifyError::Invalid));
    }

    #[test]
    fn tokens_without_iss_or_aud_pass_until_the_transition_ends_but_wrong_ones_never() {
        let until = NOW + 3600;
        let k = TokenKeys::new(
            SECRET,
            TokenSettings {
                issuer: Some("authd".into()),
                audience: Some("api".into()),
                accept_missing_claims_until: Some(until),
                ..TokenSettings::default()
            },
        )
        .unwrap();
        let exp = until + 600;
        let token = |claims: serde_json::Value| sign_with(Algorithm::HS256, SECRET, &claims);
        let before_the_switch = keys().issue("bob", until - 1).unwrap().token;
        let no_aud = token(serde_json::json!({"sub": "a", "exp": exp, "iss": "authd"}));
        let no_iss = token(serde_json::json!({"sub": "a", "exp": exp, "aud": "api"}));
        for t in [&before_the_switch, &no_aud, &no_iss] {
            assert!(k.verify(t, until - 1).is_ok());
            // From `until` on, missing is refused.
            assert_eq!(k.verify(t, until), Err(VerifyError::Invalid));
        }
        for wrong in [
            serde_json::json!({"sub": "a", "exp": exp, "iss": "other"}),
            serde_json::json!({"sub": "a", "exp": exp, "aud": "other"}),
            serde_json::json!({"sub": "a", "exp": exp, "aud": ["other"]}),
            serde_json::json!({"sub": "a", "exp": exp, "iss": "authd", "aud": "other"}),
            serde_json::json!({"sub": "a", "exp": exp, "iss": 7}),
        ] {
            assert_eq!(
                k.verify(&token(wrong.clone()), until - 600),
                Err(VerifyError::Invalid),
                "{wrong}"
            );
        }
        // Issued tokens carry both at once.
        let issued = k.issue("bob", until - 1).unwrap().token;
        let c = k.verify(&issued, until + 1).unwrap();
        assert_eq!(c.iss.as_deref(), Some("authd"));
        assert_eq!(c.aud, Some(Audience::One("api".into())));
    }

    const OLD: &[u8] = b"the-previous-secret-0123456789-abcdefghij";
    const STRANGER: &[u8] = b"a-secret-nobody-configured-0123456789-xyz";

    fn sign_with_kid(kid: Option<&str>, secret: &[u8]) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(
            &header,
            &serde_json::json!({"user": "a", "exp": NOW + 600}),
            &EncodingKey::from_secret(secret).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn key_id_is_the_hex_sha256_prefix_of_the_secret() {
        // `printf %s 0123456789abcdef0123456789abcdef-unit-tests | sha256sum | cut -c1-16`
        assert_eq!(key_id(SECRET), "a4809e7d6e78d00b");
        assert_eq!(key_id(SECRET).len(), 16);
        assert_ne!(key_id(SECRET), key_id(OLD));
    }

    #[test]
    fn issued_tokens_name_the_current_key_in_kid() {
        let k = TokenKeys::with_previous(SECRET, &[OLD], TokenSettings::default()).unwrap();
        let t = k.issue("alice", NOW).unwrap().token;
        let header = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key_id(SECRET).as_str()));
        assert_eq!(k.current_key_id(), key_id(SECRET));
        assert!(!t.contains(std::str::from_utf8(SECRET).unwrap()));
    }

    #[test]
    fn token_of_a_previous_key_verifies_with_or_without_kid() {
        let k = TokenKeys::with_previous(SECRET, &[OLD], TokenSettings::default()).unwrap();
        assert!(
            k.verify(&sign_with_kid(Some(&key_id(OLD)), OLD), NOW)
                .is_ok()
        );
        assert!(k.verify(&sign_with_kid(None, OLD), NOW).is_ok());
        assert!(k.verify(&sign_with_kid(None, SECRET), NOW).is_ok());
        // Without the previous key configured, the old token is refused.
        assert_eq!(
            keys().verify(&sign_with_kid(Some(&key_id(OLD)), OLD), NOW),
            Err(VerifyError::Invalid)
        );
    }

    #[test]
    fn unknown_key_and_kid_naming_another_key_are_invalid() {
        let k = TokenKeys::with_previous(SECRET, &[OLD], TokenSettings::default()).unwrap();
        for t in [
            sign_with_kid(None, STRANGER),
            sign_with_kid(Some(&key_id(STRANGER)), STRANGER),
            // A kid naming none of our keys, even though the signature is ours.
            sign_with_kid(Some("0000000000000000"), SECRET),
            // A kid naming one of our keys, signed with another of ours.
            sign_with_kid(Some(&key_id(OLD)), SECRET),
        ] {
            assert_eq!(k.verify(&t, NOW), Err(VerifyError::Invalid));
        }
    }

    #[test]
    fn expired_token_of_a_previous_key_is_expired() {
        let old = TokenKeys::new(OLD, TokenSettings::default()).unwrap();
        let t = old.issue("alice", NOW).unwrap().token;
        let k = TokenKeys::with_previous(SECRET, &[OLD], TokenSettings::default()).unwrap();
        assert!(k.verify(&t, NOW + 1800).is_ok());
        assert_eq!(
            k.verify(&t, NOW + 1800 + LEEWAY_SECS + 1),
            Err(VerifyError::Expired)
        );
    }

    #[test]
    fn exp_further_ahead_than_the_lifetime_and_leeway_is_invalid() {
        let k = keys();
        let ttl = 1800;
        for exp in [
            NOW + ttl + LEEWAY_SECS + 1,
            NOW + 10 * 365 * 24 * 3600,
            i64::MAX,
        ] {
            let t = sign_with(
                Algorithm::HS256,
                SECRET,
                &serde_json::json!({"user": "a", "exp": exp}),
            );
            assert_eq!(k.verify(&t, NOW), Err(VerifyError::Invalid), "exp {exp}");
        }
        let edge = sign_with(
            Algorithm::HS256,
            SECRET,
            &serde_json::json!({"user": "a", "exp": NOW + ttl + LEEWAY_SECS}),
        );
        assert!(k.verify(&edge, NOW).is_ok());
        // A longer configured lifetime accepts what the shorter one refused.
        let long = TokenKeys::new(
            SECRET,
            TokenSettings {
                ttl: Duration::from_secs(3600),
                ..TokenSettings::default()
            },
        )
        .unwrap();
        let hour = sign_with(
            Algorithm::HS256,
            SECRET,
            &serde_json::json!({"user": "a", "exp": NOW + 3600}),
        );
        assert!(long.verify(&hour, NOW).is_ok());
        assert_eq!(k.verify(&hour, NOW), Err(VerifyError::Invalid));
    }

    #[test]
    fn empty_names_and_a_sub_and_user_that_differ_are_invalid_but_either_alone_is_fine() {
        let k = keys();
        let exp = NOW + 600;
        let verify = |claims: serde_json::Value| {
            k.verify(&sign_with(Algorithm::HS256, SECRET, &claims), NOW)
        };
        for bad in [
            serde_json::json!({"sub": "", "exp": exp}),
            serde_json::json!({"user": "", "exp": exp}),
            serde_json::json!({"sub": "", "user": "a", "exp": exp}),
            serde_json::json!({"sub": "a", "user": "b", "exp": exp}),
        ] {
            assert_eq!(verify(bad.clone()), Err(VerifyError::Invalid), "{bad}");
        }
        for good in [
            serde_json::json!({"user": "a", "exp": exp}),
            serde_json::json!({"sub": "a", "exp": exp}),
            serde_json::json!({"sub": "a", "user": "a", "exp": exp}),
            serde_json::json!({"exp": exp}),
        ] {
            assert!(verify(good.clone()).is_ok(), "{good}");
        }
    }

    #[test]
    fn groups_are_issued_when_there_are_some_and_absent_otherwise() {
        let k = keys();
        let groups = vec!["admins".to_owned(), "ops".to_owned()];
        let t = k.issue_in_groups("alice", &groups, NOW).unwrap().token;
        let c = k.verify(&t, NOW).unwrap();
        assert_eq!(c.groups, groups);
        assert!(c.in_group("ops") && !c.in_group("dev"));
        let plain = k.issue("alice", NOW).unwrap().token;
        let payload = plain.split('.').nth(1).unwrap();
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert!(!json.contains("groups"), "{json}");
        assert!(k.verify(&plain, NOW).unwrap().groups.is_empty());
    }

    #[test]
    fn groups_claims_that_are_not_short_clean_string_lists_are_invalid() {
        let k = keys();
        let exp = NOW + 600;
        let verify = |claims: serde_json::Value| {
            k.verify(&sign_with(Algorithm::HS256, SECRET, &claims), NOW)
        };
        let too_many: Vec<String> = (0..=MAX_GROUPS).map(|i| format!("g{i}")).collect();
        let enough: Vec<String> = (0..MAX_GROUPS).map(|i| format!("g{i}")).collect();
        for bad in [
            serde_json::json!({"sub": "a", "exp": exp, "groups": [1]}),
            serde_json::json!({"sub": "a", "exp": exp, "groups": ["ok", null]}),
            serde_json::json!({"sub": "a", "exp": exp, "groups": "admins"}),
            serde_json::json!({"sub": "a", "exp": exp, "groups": ["a,b"]}),
            serde_json::json!({"sub": "a", "exp": exp, "groups": [""]}),
            serde_json::json!({"sub": "a", "exp": exp, "groups": ["a\nb"]}),
            serde_json::json!({"sub": "a", "exp": exp, "groups": ["g".repeat(129)]}),
            serde_json::json!({"sub": "a", "exp": exp, "groups": too_many}),
        ] {
            assert_eq!(verify(bad.clone()), Err(VerifyError::Invalid), "{bad}");
        }
        assert_eq!(
            verify(serde_json::json!({"sub": "a", "exp": exp, "groups": enough}))
                .unwrap()
                .groups
                .len(),
            MAX_GROUPS
        );
        assert!(verify(serde_json::json!({"sub": "a", "exp": exp, "groups": []})).is_ok());
    }

    #[test]
    fn debug_output_does_not_show_key_material() {
        let s = format!("{:?}", keys());
        assert!(s.contains("REDACTED"));
        assert!(!s.contains("0123456789abcdef"));
    }

    #[test]
    fn debug_output_of_an_issued_token_does_not_show_it() {
        let issued = keys().issue("user", NOW).unwrap();
        let shown = format!("{issued:?}");
        assert!(!shown.contains(&issued.token), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }

    #[test]
    fn a_session_token_and_an_access_token_are_never_taken_for_each_other() {
        let k = keys();
        let l = CookieLifetimes::default();
        let session = k
            .issue_session("alice", &["ops".into()], "sid-1", NOW, NOW, l)
            .unwrap();
        assert_eq!(session.expires_in, 3600);
        let c = k.verify_session(&session.token, NOW, l).unwrap();
        assert_eq!(c.sid.as_deref(), Some("sid-1"));
        assert_eq!(c.auth_time, Some(NOW));
        assert_eq!(c.groups, vec!["ops".to_owned()]);
        // Typed: refused as an access token, even within the access tokens' lifetime.
        let short = k
            .issue_session(
                "alice",
                &[],
                "sid-1",
                NOW,
                NOW,
                CookieLifetimes {
                    idle: Duration::from_secs(60),
                    lifetime: Duration::from_secs(60),
                },
            )
            .unwrap();
        assert_eq!(k.verify(&short.token, NOW), Err(VerifyError::Invalid));
        // An access token, even one carrying sid and auth_time, is no session.
        let access = k.issue("alice", NOW).unwrap().token;
        assert_eq!(k.verify_session(&access, NOW, l), Err(VerifyError::Invalid));
        let forged = sign_with(
            Algorithm::HS256,
            SECRET,
            &serde_json::json!({"sub": "alice", "exp": NOW + 60, "sid": "x", "auth_time": NOW}),
        );
        assert_eq!(k.verify_session(&forged, NOW, l), Err(VerifyError::Invalid));
    }

    #[test]
    fn a_session_token_ends_at_its_idle_expiry_and_at_its_absolute_lifetime() {
        let k = keys();
        let l = CookieLifetimes::default();
        let t = k
            .issue_session("alice", &[], "s", NOW, NOW, l)
            .unwrap()
            .token;
        assert_eq!(
            k.verify_session(&t, NOW + 3600 + LEEWAY_SECS + 1, l),
            Err(VerifyError::Expired)
        );
        // Re-issued 11.5 hours after the sign-in: its exp stops at the 12-hour mark.
        let late = NOW + 11 * 3600 + 1800;
        let t = k.issue_session("alice", &[], "s", NOW, late, l).unwrap();
        let c = k.verify_session(&t.token, late, l).unwrap();
        assert_eq!(c.exp, NOW + 12 * 3600);
        assert_eq!(t.expires_in, 1800);
        // A lifetime setting lowered since: the session ends by it.
        let shorter = CookieLifetimes {
            idle: l.idle,
            lifetime: Duration::from_secs(3600),
        };
        assert_eq!(
            k.verify_session(&t.token, late, shorter),
            Err(VerifyError::Expired)
        );
        // An idle setting lowered since: an exp further ahead than it allows is not ours.
        let tighter = CookieLifetimes {
            idle: Duration::from_secs(60),
            lifetime: l.lifetime,
        };
        assert_eq!(
            k.verify_session(&t.token, late, tighter),
            Err(VerifyError::Invalid)
        );
        // No sid, or one too long: refused.
        let long_sid = "x".repeat(MAX_SID_BYTES + 1);
        let t = k
            .issue_session("alice", &[], &long_sid, NOW, NOW, l)
            .unwrap()
            .token;
        assert_eq!(k.verify_session(&t, NOW, l), Err(VerifyError::Invalid));
        let t = k
            .issue_session("alice", &[], "", NOW, NOW, l)
            .unwrap()
            .token;
        assert_eq!(k.verify_session(&t, NOW, l), Err(VerifyError::Invalid));
    }

    #[cfg(feature = "server")]
    fn key_pair(alg: SigningAlg) -> SigningKey {
        use secrecy::ExposeSecret as _;
        let pem = SigningKey::generate_pem(alg).unwrap();
        SigningKey::from_pem(alg, pem.expose_secret().as_bytes()).unwrap()
    }

    #[cfg(feature = "server")]
    #[test]
    fn key_pair_tokens_carry_the_thumbprint_kid_and_verify_with_the_public_key_alone() {
        for alg in [SigningAlg::EdDsa, SigningAlg::Es256] {
            let key = key_pair(alg);
            let k = TokenKeys::with_key_pair(&key, &[], TokenSettings::default()).unwrap();
            assert_eq!(k.algorithm(), alg);
            let t = k.issue("alice", NOW).unwrap().token;
            let header = jsonwebtoken::decode_header(&t).unwrap();
            assert_eq!(header.alg, alg.jwt());
            assert_eq!(header.kid.as_deref(), Some(key.public().kid()));
            assert_eq!(k.verify(&t, NOW).unwrap().subject(), Some("alice"));
            // A service holding only the public key accepts it and can mint nothing.
            let public =
                TokenKeys::verify_only(&[key.public().clone()], TokenSettings::default()).unwrap();
            assert_eq!(public.verify(&t, NOW).unwrap().subject(), Some("alice"));
            assert!(public.issue("mallory", NOW).is_err());
            assert_eq!(k.jwks().keys.len(), 1);
            // Tampered payload: refused.
            let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
            parts[1] = URL_SAFE_NO_PAD.encode(
                serde_json::json!({"user": "root", "sub": "root", "exp": NOW + 60}).to_string(),
            );
            assert_eq!(k.verify(&parts.join("."), NOW), Err(VerifyError::Invalid));
            // Another key pair of the same algorithm: refused.
            let other =
                TokenKeys::with_key_pair(&key_pair(alg), &[], TokenSettings::default()).unwrap();
            let forged = other.issue("alice", NOW).unwrap().token;
            assert_eq!(k.verify(&forged, NOW), Err(VerifyError::Invalid));
        }
    }

    #[cfg(feature = "server")]
    #[test]
    fn key_pair_deployments_refuse_hs256_with_the_public_key_as_secret_and_alg_none() {
        let key = key_pair(SigningAlg::EdDsa);
        let k = TokenKeys::with_key_pair(&key, &[], TokenSettings::default()).unwrap();
        let claims = serde_json::json!({"user": "a", "sub": "a", "exp": NOW + 600});
        let jwk = serde_json::to_value(key.public().jwk()).unwrap();
        let x = jwk["x"].as_str().unwrap().to_owned();
        let raw = URL_SAFE_NO_PAD.decode(&x).unwrap();
        // The classic confusion: an HMAC whose key is what the JWKS publishes, in every form an
        // attacker could try, with and without the right kid.
        for secret in [
            raw.clone(),
            x.clone().into_bytes(),
            jwk.to_string().into_bytes(),
        ] {
            for kid in [None, Some(key.public().kid().to_owned())] {
                let mut header = Header::new(Algorithm::HS256);
                header.kid = kid;
                let t = jsonwebtoken::encode(
                    &header,
                    &claims,
                    &EncodingKey::from_secret(&secret).unwrap(),
                )
                .unwrap();
                assert_eq!(k.verify(&t, NOW), Err(VerifyError::Invalid));
            }
        }
        // An ES256 token is not an EdDSA deployment's either, nor `alg: none`.
        let es =
            TokenKeys::with_key_pair(&key_pair(SigningAlg::Es256), &[], TokenSettings::default())
                .unwrap();
        assert_eq!(
            k.verify(&es.issue("a", NOW).unwrap().token, NOW),
            Err(VerifyError::Invalid)
        );
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        assert_eq!(
            k.verify(&format!("{header}.{payload}."), NOW),
            Err(VerifyError::Invalid)
        );
        // And an HS256 deployment refuses the EdDSA token.
        let t = k.issue("a", NOW).unwrap().token;
        assert_eq!(keys().verify(&t, NOW), Err(VerifyError::Invalid));
    }

    #[cfg(feature = "server")]
    #[test]
    fn after_a_key_pair_rotation_both_keys_verify_and_the_new_one_signs() {
        for alg in [SigningAlg::EdDsa, SigningAlg::Es256] {
            let old = key_pair(alg);
            let new = key_pair(alg);
            let before = TokenKeys::with_key_pair(&old, &[], TokenSettings::default()).unwrap();
            let old_token = before.issue("alice", NOW).unwrap().token;
            let after =
                TokenKeys::with_key_pair(&new, &[old.public().clone()], TokenSettings::default())
                    .unwrap();
            let new_token = after.issue("alice", NOW).unwrap().token;
            assert!(after.verify(&old_token, NOW).is_ok());
            assert!(after.verify(&new_token, NOW).is_ok());
            assert_eq!(header_kid(&new_token).as_deref(), Some(new.public().kid()));
            let kids: Vec<_> = after
                .jwks()
                .keys
                .into_iter()
                .filter_map(|j| j.common.key_id)
                .collect();
            assert_eq!(kids, [new.public().kid(), old.public().kid()]);
            // Once the old key is dropped, its tokens are refused.
            let dropped = TokenKeys::with_key_pair(&new, &[], TokenSettings::default()).unwrap();
            assert_eq!(dropped.verify(&old_token, NOW), Err(VerifyError::Invalid));
            // Mixed algorithms are refused rather than guessed at.
            let other = if alg == SigningAlg::EdDsa {
                SigningAlg::Es256
            } else {
                SigningAlg::EdDsa
            };
            assert!(
                TokenKeys::with_key_pair(
                    &new,
                    &[key_pair(other).public().clone()],
                    TokenSettings::default()
                )
                .is_err()
            );
        }
    }

    #[cfg(feature = "server")]
    fn header_kid(token: &str) -> Option<String> {
        jsonwebtoken::decode_header(token).unwrap().kid
    }
}
