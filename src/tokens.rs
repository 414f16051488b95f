//! Access tokens: HS256 JWTs. Claims, the keys built once from the secret, issuing and verifying.
//! Plain Rust with no HTTP in it; every function that needs the time takes `now` from its caller.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Clock skew tolerated on `exp` and `nbf`, in seconds: small enough that an expired token stops
/// working within half a minute, large enough for hosts whose clocks differ by a few seconds.
pub const LEEWAY_SECS: i64 = 30;

/// The claims of an access token.
///
/// `user` is the tutorial's claim, kept so that code written against it keeps working; `sub` is
/// the standard one and carries the same name. Tokens made elsewhere may carry only some of them:
/// the one claim verification insists on is `exp`.
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
}

impl Claims {
    /// The name of the user the token was issued to: `sub`, else the tutorial's `user`.
    pub fn subject(&self) -> Option<&str> {
        self.sub.as_deref().or(self.user.as_deref())
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

/// Settings for the tokens this server issues and accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// How long an access token lives.
    pub ttl: Duration,
    /// When set, issued tokens carry it and verified tokens must carry it.
    pub issuer: Option<String>,
    /// When set, issued tokens carry it and verified tokens must name it.
    pub audience: Option<String>,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30 * 60),
            issuer: None,
            audience: None,
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
    /// Anything else: bad signature, wrong algorithm, missing `exp`, not yet valid, malformed.
    #[error("token invalid")]
    Invalid,
}

/// A freshly issued access token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Signing and verifying keys, built once from the secret and shared by every request.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    header: Header,
    validation: Validation,
    settings: TokenSettings,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("keys", &"[REDACTED]")
            .field("settings", &self.settings)
            .finish()
    }
}

impl TokenKeys {
    /// Builds the keys from the shared secret (refused only when empty).
    pub fn new(
        secret: &[u8],
        settings: TokenSettings,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        // The algorithm is pinned: a token whose header names anything but HS256 (none, HS384,
        // RS256, ...) is refused before its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
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
        Ok(Self {
            encoding: EncodingKey::from_secret(secret)?,
            decoding: DecodingKey::from_secret(secret)?,
            header: Header::new(Algorithm::HS256),
            validation,
            settings,
        })
    }

    /// The settings the keys were built with.
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// Issues an access token for `user` at `now` (seconds since the Unix epoch).
    pub fn issue(&self, user: &str, now: i64) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let ttl = self.settings.ttl.as_secs();
        let claims = Claims {
            user: Some(user.to_owned()),
            sub: Some(user.to_owned()),
            iat: Some(now),
            exp: now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
            nbf: None,
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone().map(Audience::One),
        };
        let token = jsonwebtoken::encode(&self.header, &claims, &self.encoding)?;
        Ok(IssuedToken {
            token,
            expires_in: ttl,
        })
    }

    /// Verifies `token` at `now`: HS256 only, signature, `exp` required and in the future
    /// (within [`LEEWAY_SECS`]), `nbf` honoured, `iss`/`aud` when configured.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, VerifyError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| VerifyError::Invalid)?;
        let claims = data.claims;
        if let Some(nbf) = claims.nbf
            && nbf > now.saturating_add(LEEWAY_SECS)
        {
            return Err(VerifyError::Invalid);
        }
        if claims.exp < now.saturating_sub(LEEWAY_SECS) {
            return Err(VerifyError::Expired);
        }
        Ok(claims)
    }
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
    fn debug_output_does_not_show_key_material() {
        let s = format!("{:?}", keys());
        assert!(s.contains("REDACTED"));
        assert!(!s.contains("0123456789abcdef"));
    }
}
