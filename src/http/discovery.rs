//! Key discovery for services that verify authd's tokens without its secret:
//! `GET /.well-known/jwks.json` (RFC 7517) and `GET /.well-known/openid-configuration` (the part
//! of OpenID Connect Discovery a verifier reads). Under HS256 both are 404: the key is a secret.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::json::json;

/// Where the key set is, under the issuer.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Where the discovery document is, under the issuer.
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
/// How long verifiers may cache either, in seconds. A new key is found sooner anyway (verifiers
/// refetch on a `kid` they do not know); this bounds how long a key dropped after a rotation is
/// still trusted by a verifier that cached it.
pub const MAX_AGE_SECS: u32 = 300;

const NO_PUBLIC_KEYS: &str =
    "No public keys: tokens are signed with HS256, a shared secret (set AUTHD_SIGNING_ALG=EdDSA)";

/// A JWK Set (RFC 7517 §5), as served.
#[derive(Debug, Serialize, ToSchema)]
pub struct JwksResponse {
    /// The current key first, then the previous ones still accepted. Each carries `kty`, `crv`,
    /// `x` (and `y` for P-256), `kid` (its RFC 7638 thumbprint), `alg` and `use: sig`.
    #[schema(value_type = Vec<Object>, example = json!([{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", "alg": "EdDSA", "use": "sig"}]))]
    pub keys: Vec<jsonwebtoken::jwk::Jwk>,
}

/// The fields of OpenID Connect Discovery that verifiers read. authd is not an OpenID provider
/// (no authorization endpoint, no ID tokens): this tells a verifier the issuer, where its keys
/// are and which algorithm signs.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenIdConfiguration {
    /// `AUTHD_ISSUER`, as the tokens' `iss` carries it.
    pub issuer: String,
    /// The JWK Set of the public keys.
    pub jwks_uri: String,
    /// `POST /login` (HTTP Basic; not an OAuth token endpoint).
    pub token_endpoint: String,
    /// The one algorithm tokens are signed with.
    pub id_token_signing_alg_values_supported: [&'static str; 1],
    /// The `sub` is the user's name, the same for every service.
    pub subject_types_supported: [&'static str; 1],
    /// The claims authd's tokens may carry.
    pub claims_supported: &'static [&'static str],
}

/// The public keys tokens are verified with.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "keys",
    summary = "The public keys (JWK Set) tokens are verified with",
    responses(
        (status = 200, description = "The current and previous public keys. Cacheable for `max-age` seconds; refetch on an unknown `kid`.", body = JwksResponse,
            headers(("Cache-Control" = String, description = "`public, max-age=300`"))),
        (status = 404, description = "HS256: there is no public key.", body = super::MessageResponse),
    ),
)]
pub(super) async fn jwks(State(state): State<AppState>) -> Response {
    let keys = state.check.keys();
    if !keys.algorithm().is_asymmetric() {
        return ApiError::NotFound(NO_PUBLIC_KEYS).into_response();
    }
    cacheable(json(
        StatusCode::OK,
        &JwksResponse {
            keys: keys.jwks().keys,
        },
    ))
}

/// What a verifier needs to find the keys (OpenID Connect Discovery's fields for that).
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "keys",
    summary = "Discovery: the issuer, its keys' address and algorithm",
    responses(
        (status = 200, description = "The issuer, `jwks_uri` and the signing algorithm.", body = OpenIdConfiguration,
            headers(("Cache-Control" = String, description = "`public, max-age=300`"))),
        (status = 404, description = "HS256: there is no public key to discover.", body = super::MessageResponse),
    ),
)]
pub(super) async fn openid_configuration(State(state): State<AppState>) -> Response {
    let keys = state.check.keys();
    let issuer = keys.settings().issuer.as_deref();
    let (true, Some(issuer)) = (keys.algorithm().is_asymmetric(), issuer) else {
        return ApiError::NotFound(NO_PUBLIC_KEYS).into_response();
    };
    let base = issuer.trim_end_matches('/');
    cacheable(json(
        StatusCode::OK,
        &OpenIdConfiguration {
            issuer: issuer.to_owned(),
            jwks_uri: format!("{base}{JWKS_PATH}"),
            token_endpoint: format!("{base}/login"),
            id_token_signing_alg_values_supported: [keys.algorithm().name()],
            subject_types_supported: ["public"],
            claims_supported: &[
                "sub", "user", "groups", "iss", "aud", "exp", "iat", "nbf", "sid",
            ],
        },
    ))
}

fn cacheable(mut res: Response) -> Response {
    if res.status() == StatusCode::OK
        && let Ok(v) = HeaderValue::from_str(&format!("public, max-age={MAX_AGE_SECS}"))
    {
        res.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    res
}
