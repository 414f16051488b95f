//! Public-key signing: the algorithms authd signs with, private keys read from PEM (PKCS#8),
//! public keys read from PEM or from a JWK, their RFC 7638 thumbprints (the `kid`), and new keys
//! made for `authd keys generate`. Plain Rust with no HTTP in it.
//!
//! Under HS256 (the tutorial's algorithm and the default) one shared secret signs and verifies;
//! every service that verifies could also mint. Under EdDSA (Ed25519) or ES256 (ECDSA P-256) only
//! authd holds the private key; other services verify with the public keys it publishes at
//! `/.well-known/jwks.json`.

use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

/// The algorithm tokens are signed with (`AUTHD_SIGNING_ALG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigningAlg {
    /// HMAC-SHA256 with the shared secret: the tutorial's, and the default.
    #[default]
    Hs256,
    /// Ed25519 signatures (RFC 8037).
    EdDsa,
    /// ECDSA on P-256 with SHA-256.
    Es256,
}

impl SigningAlg {
    /// The name used in JWT headers, JWKs and `AUTHD_SIGNING_ALG`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
        }
    }

    /// jsonwebtoken's name for it.
    pub fn jwt(self) -> Algorithm {
        match self {
            Self::Hs256 => Algorithm::HS256,
            Self::EdDsa => Algorithm::EdDSA,
            Self::Es256 => Algorithm::ES256,
        }
    }

    /// Whether it signs with a private key that others verify with its public half.
    pub fn is_asymmetric(self) -> bool {
        self != Self::Hs256
    }
}

impl std::fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SigningAlg {
    type Err = KeyError;

    /// `HS256`, `EdDSA` or `ES256`, in any case (`Ed25519` is taken for EdDSA).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "HS256" => Ok(Self::Hs256),
            "EDDSA" | "ED25519" => Ok(Self::EdDsa),
            "ES256" => Ok(Self::Es256),
            _ => Err(KeyError::UnknownAlg),
        }
    }
}

/// Why a key was refused. Never shows key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not one of the algorithms authd signs with.
    #[error("unknown signing algorithm; use HS256, EdDSA or ES256")]
    UnknownAlg,
    /// HS256 has no key pair.
    #[error("HS256 signs with a shared secret, not a key pair")]
    Symmetric,
    /// Not a PEM PKCS#8 private key (or, where a public key is accepted, an SPKI public key) of
    /// the algorithm's type.
    #[error(
        "not a PKCS#8 PEM key of the algorithm's type (EdDSA: Ed25519; ES256: EC P-256; make one with `authd keys generate --alg ...`)"
    )]
    Unreadable,
    /// A JWK that is not a public key of a supported algorithm.
    #[error("not an Ed25519 or P-256 public key")]
    BadJwk,
    /// The operating system gave no random bytes.
    #[error("cannot get random bytes for a new key")]
    Random,
}

/// A public key that verifies tokens: its algorithm, its `kid` (the RFC 7638 JWK thumbprint) and
/// its JWK as published (`kid`, `alg`, `use: sig`).
#[derive(Clone)]
pub struct PublicKey {
    alg: SigningAlg,
    kid: String,
    jwk: Jwk,
    decoding: DecodingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// The public key in `pem`: an SPKI public key (`-----BEGIN PUBLIC KEY-----`), or the public
    /// half of a PKCS#8 private key, of `alg`'s type.
    pub fn from_pem(alg: SigningAlg, pem: &[u8]) -> Result<Self, KeyError> {
        if let Ok(private) = SigningKey::from_pem(alg, pem) {
            return Ok(private.public);
        }
        let decoding = match alg {
            SigningAlg::Hs256 => return Err(KeyError::Symmetric),
            SigningAlg::EdDsa => DecodingKey::from_ed_pem(pem),
            SigningAlg::Es256 => DecodingKey::from_ec_pem(pem),
        }
        .map_err(|_| KeyError::Unreadable)?;
        let jwk =
            Jwk::from_decoding_key(&decoding, Some(alg.jwt())).map_err(|_| KeyError::Unreadable)?;
        Self::from_jwk(&jwk).map_err(|_| KeyError::Unreadable)
    }

    /// The public key of a JWK (as a JWKS serves it): Ed25519 (`kty: OKP`, `crv: Ed25519`) or
    /// P-256 (`kty: EC`, `crv: P-256`), whose `alg`, when given, must agree. The `kid` is always
    /// the key's own thumbprint, whatever `kid` the JWK claims.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        let b64 = |s: &str| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .map_err(|_| KeyError::BadJwk)
        };
        let (alg, algorithm) = match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                // jsonwebtoken slices the key's first 32 bytes: anything else must not reach it.
                if b64(&p.x)?.len() != 32 {
                    return Err(KeyError::BadJwk);
                }
                (SigningAlg::EdDsa, jwk.algorithm.clone())
            }
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                if b64(&p.x)?.len() != 32 || b64(&p.y)?.len() != 32 {
                    return Err(KeyError::BadJwk);
                }
                (SigningAlg::Es256, jwk.algorithm.clone())
            }
            _ => return Err(KeyError::BadJwk),
        };
        let named = jwk.common.key_algorithm;
        if named.is_some_and(|a| a != key_algorithm(alg)) {
            return Err(KeyError::BadJwk);
        }
        let bare = Jwk {
            common: CommonParameters::default(),
            algorithm,
        };
        let kid = bare
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| KeyError::BadJwk)?;
        let decoding = DecodingKey::from_jwk(&bare).map_err(|_| KeyError::BadJwk)?;
        // A point that is not on the curve is refused here, once, rather than at every token.
        check_point(alg, &decoding)?;
        let jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(key_algorithm(alg)),
                key_id: Some(kid.clone()),
                ..CommonParameters::default()
            },
            algorithm: bare.algorithm,
        };
        Ok(Self {
            alg,
            kid,
            jwk,
            decoding,
        })
    }

    /// The algorithm.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The `kid`: the key's RFC 7638 JWK thumbprint (SHA-256, base64url).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWK as `/.well-known/jwks.json` publishes it: `kty`, `crv`, `x` (and `y`), `kid`,
    /// `alg` and `use: sig`.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The key jsonwebtoken verifies with.
    pub(crate) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }
}

fn key_algorithm(alg: SigningAlg) -> KeyAlgorithm {
    match alg {
        SigningAlg::Es256 => KeyAlgorithm::ES256,
        SigningAlg::Hs256 => KeyAlgorithm::HS256,
        SigningAlg::EdDsa => KeyAlgorithm::EdDSA,
    }
}

/// Whether `decoding` is a usable public key of `alg`: a signature made by no one must be
/// refused as a bad signature, not as a bad key.
fn check_point(alg: SigningAlg, decoding: &DecodingKey) -> Result<(), KeyError> {
    let header = base64_json(&serde_json::json!({"alg": alg.name()}));
    let claims = base64_json(&serde_json::json!({"exp": 0}));
    let sig_len = 64;
    let token = format!("{header}.{claims}.{}", "A".repeat(sig_len * 4 / 3 + 1));
    let mut validation = jsonwebtoken::Validation::new(alg.jwt());
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    match jsonwebtoken::decode::<serde_json::Value>(&token, decoding, &validation) {
        Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => Ok(()),
        _ => Err(KeyError::BadJwk),
    }
}

fn base64_json(v: &serde_json::Value) -> String {
    base64url(v.to_string().as_bytes())
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A private key that signs tokens, with its public half. `Debug` shows only the public part.
#[derive(Clone)]
pub struct SigningKey {
    encoding: EncodingKey,
    public: PublicKey,
    /// The PKCS#8 DER, from which authd's own keyed digests are derived under a key pair.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    der: secrecy::SecretSlice<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The private key in `pem` (PKCS#8, `-----BEGIN PRIVATE KEY-----`), of `alg`'s type. The
    /// key is tried once (a signature made and verified) so that a key that does not work is
    /// refused here rather than at the first login.
    pub fn from_pem(alg: SigningAlg, pem: &[u8]) -> Result<Self, KeyError> {
        let encoding = match alg {
            SigningAlg::Hs256 => return Err(KeyError::Symmetric),
            SigningAlg::EdDsa => EncodingKey::from_ed_pem(pem),
            SigningAlg::Es256 => EncodingKey::from_ec_pem(pem),
        }
        .map_err(|_| KeyError::Unreadable)?;
        let jwk = match alg {
            // jsonwebtoken reads the public half of PKCS#8 v1 only (`openssl genpkey`'s);
            // ed25519-dalek reads v2 as well (the public key inside, as Go and others write).
            SigningAlg::EdDsa => {
                use ed25519_dalek::pkcs8::DecodePrivateKey as _;
                let key = ed25519_dalek::SigningKey::from_pkcs8_der(encoding.as_bytes())
                    .map_err(|_| KeyError::Unreadable)?;
                Jwk {
                    common: CommonParameters::default(),
                    algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                        key_type: OctetKeyPairType::OctetKeyPair,
                        curve: EllipticCurve::Ed25519,
                        x: base64url(key.verifying_key().as_bytes()),
                    }),
                }
            }
            _ => Jwk::from_encoding_key(&encoding, alg.jwt()).map_err(|_| KeyError::Unreadable)?,
        };
        let public = PublicKey::from_jwk(&jwk).map_err(|_| KeyError::Unreadable)?;
        let der = secrecy::SecretSlice::from(encoding.as_bytes().to_vec());
        let key = Self {
            encoding,
            public,
            der,
        };
        key.self_test()?;
        Ok(key)
    }

    /// A new key of `alg` from the operating system's randomness, as PKCS#8 PEM (with the
    /// `server` feature: `authd keys generate`).
    #[cfg(feature = "server")]
    pub fn generate_pem(alg: SigningAlg) -> Result<secrecy::SecretString, KeyError> {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let line_ending = p256::pkcs8::LineEnding::LF;
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        let pem = match alg {
            SigningAlg::Hs256 => return Err(KeyError::Symmetric),
            SigningAlg::EdDsa => {
                getrandom::fill(bytes.as_mut_slice()).map_err(|_| KeyError::Random)?;
                // PKCS#8 v1 (the seed alone), as `openssl genpkey -algorithm ed25519` writes.
                ed25519_dalek::pkcs8::KeypairBytes {
                    secret_key: *bytes,
                    public_key: None,
                }
                .to_pkcs8_pem(line_ending)
                .map_err(|_| KeyError::Random)?
            }
            SigningAlg::Es256 => {
                use p256::pkcs8::EncodePrivateKey as _;
                // A random 32-byte string is a valid scalar but with odds of about 2^-32; draw
                // again in that case (bounded: never twice in practice).
                let mut secret = None;
                for _ in 0..8 {
                    getrandom::fill(bytes.as_mut_slice()).map_err(|_| KeyError::Random)?;
                    if let Ok(s) = p256::SecretKey::from_bytes(&(*bytes).into()) {
                        secret = Some(s);
                        break;
                    }
                }
                secret
                    .ok_or(KeyError::Random)?
                    .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
                    .map_err(|_| KeyError::Random)?
            }
        };
        Ok(secrecy::SecretString::from(pem.as_str()))
    }

    /// Signs and verifies a throwaway token.
    fn self_test(&self) -> Result<(), KeyError> {
        let alg = self.public.alg.jwt();
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(alg),
            &serde_json::json!({"exp": 0}),
            &self.encoding,
        )
        .map_err(|_| KeyError::Unreadable)?;
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.validate_exp = false;
        jsonwebtoken::decode::<serde_json::Value>(&token, &self.public.decoding, &validation)
            .map(|_| ())
            .map_err(|_| KeyError::Unreadable)
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The key jsonwebtoken signs with.
    pub(crate) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    /// The PKCS#8 DER of the private key, for keys derived from it.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn der(&self) -> &secrecy::SecretSlice<u8> {
        &self.der
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "server")]
    use secrecy::ExposeSecret as _;

    /// RFC 8037 appendix A.1/A.3: the Ed25519 key and its thumbprint.
    const RFC8037_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint_of_rfc_8037s_example_key() {
        let key = SigningKey::from_pem(SigningAlg::EdDsa, RFC8037_PRIVATE_PEM.as_bytes()).unwrap();
        assert_eq!(
            key.public().kid(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        let jwk = serde_json::to_value(key.public().jwk()).unwrap();
        assert_eq!(jwk["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(jwk["alg"], "EdDSA");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], key.public().kid());
        assert!(jwk.get("d").is_none(), "no private part: {jwk}");
    }

    #[cfg(feature = "server")]
    #[test]
    fn generated_keys_load_sign_and_differ_and_debug_shows_no_secret() {
        for alg in [SigningAlg::EdDsa, SigningAlg::Es256] {
            let a = SigningKey::generate_pem(alg).unwrap();
            let b = SigningKey::generate_pem(alg).unwrap();
            assert!(
                a.expose_secret()
                    .starts_with("-----BEGIN PRIVATE KEY-----\n")
            );
            let ka = SigningKey::from_pem(alg, a.expose_secret().as_bytes()).unwrap();
            let kb = SigningKey::from_pem(alg, b.expose_secret().as_bytes()).unwrap();
            assert_ne!(ka.public().kid(), kb.public().kid());
            assert_eq!(ka.public().alg(), alg);
            // The public half read from the private PEM is the same key.
            let p = PublicKey::from_pem(alg, a.expose_secret().as_bytes()).unwrap();
            assert_eq!(p.kid(), ka.public().kid());
            let debug = format!("{ka:?}");
            assert!(!debug.contains("PRIVATE"), "{debug}");
            // The other algorithm's reader refuses it.
            let other = if alg == SigningAlg::EdDsa {
                SigningAlg::Es256
            } else {
                SigningAlg::EdDsa
            };
            assert_eq!(
                SigningKey::from_pem(other, a.expose_secret().as_bytes()).err(),
                Some(KeyError::Unreadable)
            );
        }
    }

    #[cfg(feature = "server")]
    #[test]
    fn pkcs8_v2_ed25519_keys_with_the_public_key_inside_are_read_too() {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let v1 = SigningKey::from_pem(SigningAlg::EdDsa, RFC8037_PRIVATE_PEM.as_bytes()).unwrap();
        let dalek = {
            use ed25519_dalek::pkcs8::DecodePrivateKey as _;
            ed25519_dalek::SigningKey::from_pkcs8_pem(RFC8037_PRIVATE_PEM).unwrap()
        };
        // ed25519-dalek writes v2, with the public key.
        let v2_pem = dalek.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap();
        assert_ne!(v2_pem.as_str(), RFC8037_PRIVATE_PEM);
        let v2 = SigningKey::from_pem(SigningAlg::EdDsa, v2_pem.as_bytes()).unwrap();
        assert_eq!(v2.public().kid(), v1.public().kid());
    }

    #[test]
    fn jwks_with_bad_points_wrong_lengths_or_disagreeing_alg_are_refused() {
        let key = SigningKey::from_pem(SigningAlg::EdDsa, RFC8037_PRIVATE_PEM.as_bytes()).unwrap();
        let good = serde_json::to_value(key.public().jwk()).unwrap();
        let parse = |v: serde_json::Value| {
            serde_json::from_value::<Jwk>(v)
                .map_err(|_| KeyError::BadJwk)
                .and_then(|j| PublicKey::from_jwk(&j))
        };
        assert!(parse(good.clone()).is_ok());
        let mut short = good.clone();
        short["x"] = "AAAA".into();
        assert_eq!(parse(short).err(), Some(KeyError::BadJwk));
        let mut wrong_alg = good.clone();
        wrong_alg["alg"] = "ES256".into();
        assert_eq!(parse(wrong_alg).err(), Some(KeyError::BadJwk));
        // A claimed kid is not believed: the key's own thumbprint names it.
        let mut other_kid = good;
        other_kid["kid"] = "someone-else".into();
        assert_eq!(parse(other_kid).unwrap().kid(), key.public().kid());
        // A P-256 "point" that is not on the curve.
        let off_curve = serde_json::json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256",
            "x": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "y": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        });
        assert_eq!(parse(off_curve).err(), Some(KeyError::BadJwk));
        // A symmetric JWK publishes a secret and verifies nothing here.
        let oct = serde_json::json!({"kty": "oct", "k": "c2VjcmV0"});
        assert_eq!(parse(oct).err(), Some(KeyError::BadJwk));
    }

    #[test]
    fn algorithm_names_parse_in_any_case_and_others_are_refused() {
        assert_eq!("eddsa".parse::<SigningAlg>(), Ok(SigningAlg::EdDsa));
        assert_eq!("Ed25519".parse::<SigningAlg>(), Ok(SigningAlg::EdDsa));
        assert_eq!("ES256".parse::<SigningAlg>(), Ok(SigningAlg::Es256));
        assert_eq!(" hs256 ".parse::<SigningAlg>(), Ok(SigningAlg::Hs256));
        for bad in ["none", "RS256", "HS512", ""] {
            assert_eq!(
                bad.parse::<SigningAlg>(),
                Err(KeyError::UnknownAlg),
                "{bad}"
            );
        }
    }
}
