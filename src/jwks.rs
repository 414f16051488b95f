//! Verifying authd's EdDSA/ES256 tokens with the public keys authd publishes: [`JwksKeys`]
//! fetches `/.well-known/jwks.json` (found directly, or through the issuer's
//! `/.well-known/openid-configuration`), keeps the keys in memory and fetches again when a token
//! names a key it does not hold or when the set is older than the server said to keep it. Plain
//! Rust and reqwest; the HTTP layer reaches it through `TokenCheck::from_jwks`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use serde::Deserialize;

use crate::signing::{PublicKey, SigningAlg};
use crate::tokens::{Claims, TokenKeys, TokenSettings, VerifyError};

/// Longest a fetch of the discovery document or the key set may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery document or key set read, in bytes; anything longer is refused.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most keys a key set may hold; a longer set is refused.
pub const MAX_KEYS: usize = 32;
/// Default least time between two fetches made because a token named an unknown `kid`.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// How long a key set is kept when the answer names no `Cache-Control: max-age`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 60);
/// The bounds put on a served `max-age`: never refetched more often than this...
pub const MIN_MAX_AGE: Duration = Duration::from_secs(60);
/// ...nor a dropped key trusted for longer than this.
pub const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// Why a key set could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The URL is not `https://`, or `http://` to a loopback address (a key set fetched in the
    /// clear from elsewhere could be anyone's).
    #[error("{0}: must be an https:// URL (or http:// on loopback)")]
    Url(String),
    /// The algorithm is HS256, whose key is a secret and never published.
    #[error("a key set verifies EdDSA or ES256 tokens, not HS256")]
    Symmetric,
    /// The HTTP client could not be built (TLS roots).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The request failed, timed out or was answered with a status other than 200.
    #[error("fetching {url}: {reason}")]
    Fetch {
        /// What was fetched.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// The answer is longer than [`MAX_BODY_BYTES`].
    #[error("{0}: the answer is longer than {MAX_BODY_BYTES} bytes")]
    TooLarge(String),
    /// The answer is not the JSON expected.
    #[error("{url}: {reason}")]
    Malformed {
        /// What was fetched.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The discovery document names another issuer.
    #[error("the discovery document names the issuer {found:?}, not {expected:?}")]
    IssuerMismatch {
        /// The issuer asked for.
        expected: String,
        /// The issuer the document names.
        found: String,
    },
    /// The key set holds no usable key of the algorithm.
    #[error("{url}: no usable {alg} key in the key set")]
    NoKeys {
        /// What was fetched.
        url: String,
        /// The pinned algorithm.
        alg: &'static str,
    },
}

/// Settings of a [`JwksKeys`] beyond the URL, the algorithm and the token settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JwksOptions {
    /// Least time between two fetches made because a token named an unknown `kid`: a flood of
    /// made-up `kid`s makes at most one request to authd per interval.
    pub refetch_interval: Duration,
    /// The HTTP client to fetch with; by default one with rustls (ring), the platform's roots,
    /// [`FETCH_TIMEOUT`] and no redirects.
    pub client: Option<reqwest::Client>,
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self {
            refetch_interval: DEFAULT_REFETCH_INTERVAL,
            client: None,
        }
    }
}

impl JwksOptions {
    /// These options with another refetch interval.
    #[must_use]
    pub fn refetch_interval(self, interval: Duration) -> Self {
        Self {
            refetch_interval: interval,
            ..self
        }
    }

    /// These options with another HTTP client (own roots, a proxy).
    #[must_use]
    pub fn client(self, client: reqwest::Client) -> Self {
        Self {
            client: Some(client),
            ..self
        }
    }
}

/// The keys fetched, and until when they are kept.
struct Held {
    keys: Arc<TokenKeys>,
    /// Past this, the set is fetched again before the next token is checked with it.
    fresh_until: Instant,
}

/// authd's public keys from its JWK Set URL, verifying tokens as [`TokenKeys`] does.
///
/// The algorithm is pinned by the caller, never taken from the key set: keys of another
/// algorithm, of another `use` than `sig`, or that do not parse are skipped. The first fetch is
/// made by the constructor (an error there means the service should not start). Afterwards the
/// set is fetched again (one fetch at a time, the other requests waiting for it):
/// - when a token names a `kid` the set does not hold, at most once per
///   [`JwksOptions::refetch_interval`];
/// - when the set is older than the answer's `Cache-Control: max-age` (bounded to
///   [`MIN_MAX_AGE`]..[`MAX_MAX_AGE`], [`DEFAULT_MAX_AGE`] when absent), so that a key authd
///   dropped stops being trusted.
///
/// A fetch that fails keeps the keys held (authd may be restarting) and is retried after the
/// refetch interval; it is logged with its URL and reason, never with a token.
pub struct JwksKeys {
    url: String,
    alg: SigningAlg,
    settings: TokenSettings,
    client: reqwest::Client,
    refetch_interval: Duration,
    held: ArcSwap<Held>,
    /// When the last fetch after the first started: taken by the one fetch in flight.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for JwksKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksKeys")
            .field("url", &self.url)
            .field("alg", &self.alg)
            .field("settings", &self.settings)
            .field("refetch_interval", &self.refetch_interval)
            .finish_non_exhaustive()
    }
}

impl JwksKeys {
    /// Fetches the key set at `url` (authd's `https://…/.well-known/jwks.json`) and keeps the
    /// keys of `alg`; tokens are checked against `settings` (lifetime, issuer, audience) as
    /// [`TokenKeys::verify`] does.
    pub async fn from_jwks_url(
        url: &str,
        alg: SigningAlg,
        settings: TokenSettings,
    ) -> Result<Self, JwksError> {
        Self::from_jwks_url_with(url, alg, settings, JwksOptions::default()).await
    }

    /// [`JwksKeys::from_jwks_url`] with `options`.
    pub async fn from_jwks_url_with(
        url: &str,
        alg: SigningAlg,
        settings: TokenSettings,
        options: JwksOptions,
    ) -> Result<Self, JwksError> {
        if !alg.is_asymmetric() {
            return Err(JwksError::Symmetric);
        }
        check_url(url)?;
        let client = match options.client {
            Some(c) => c,
            None => default_client()?,
        };
        let (keys, fresh_until) = fetch_keys(&client, url, alg, &settings).await?;
        Ok(Self {
            url: url.to_owned(),
            alg,
            settings,
            client,
            refetch_interval: options.refetch_interval,
            held: ArcSwap::from_pointee(Held { keys, fresh_until }),
            last_fetch: tokio::sync::Mutex::new(None),
        })
    }

    /// Finds the key set through `{issuer}/.well-known/openid-configuration` (whose `issuer`
    /// must be `issuer`, exactly) and fetches it as [`JwksKeys::from_jwks_url`] does. Tokens
    /// must then carry `iss` = `issuer` (unless `settings.issuer` names it already).
    pub async fn from_issuer(
        issuer: &str,
        alg: SigningAlg,
        settings: TokenSettings,
    ) -> Result<Self, JwksError> {
        Self::from_issuer_with(issuer, alg, settings, JwksOptions::default()).await
    }

    /// [`JwksKeys::from_issuer`] with `options`.
    pub async fn from_issuer_with(
        issuer: &str,
        alg: SigningAlg,
        mut settings: TokenSettings,
        options: JwksOptions,
    ) -> Result<Self, JwksError> {
        check_url(issuer)?;
        let client = match options.client.clone() {
            Some(c) => c,
            None => default_client()?,
        };
        let url = format!("{}{DISCOVERY_PATH}", issuer.trim_end_matches('/'));
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let (body, _) = get(&client, &url).await?;
        let doc: Discovery = serde_json::from_slice(&body).map_err(|e| JwksError::Malformed {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        if doc.issuer != issuer {
            return Err(JwksError::IssuerMismatch {
                expected: issuer.to_owned(),
                found: doc.issuer,
            });
        }
        settings.issuer.get_or_insert_with(|| issuer.to_owned());
        let options = JwksOptions {
            client: Some(client),
            ..options
        };
        Self::from_jwks_url_with(&doc.jwks_uri, alg, settings, options).await
    }

    /// The key set's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The keys held now (verify-only: they issue nothing).
    pub fn keys(&self) -> Arc<TokenKeys> {
        Arc::clone(&self.held.load().keys)
    }

    /// Verifies `token` at `now` as [`TokenKeys::verify`] does, fetching the key set first when
    /// the token names a key not held or the set is past its age (see [`JwksKeys`]).
    pub async fn verify(&self, token: &str, now: i64) -> Result<Claims, VerifyError> {
        match self.verify_held(token, now) {
            Some(result) => result,
            None => {
                self.refresh(token).await;
                self.held.load().keys.verify(token, now)
            }
        }
    }

    /// Verifies with the keys held, without fetching: the verdict, or `None` when the set must
    /// be fetched first (the token names a key not held, or the set is past its age).
    pub(crate) fn verify_held(&self, token: &str, now: i64) -> Option<Result<Claims, VerifyError>> {
        let held = self.held.load();
        if Instant::now() >= held.fresh_until {
            return None;
        }
        match held.keys.verify(token, now) {
            Err(VerifyError::Invalid) if self.names_unknown_key(&held.keys, token) => None,
            result => Some(result),
        }
    }

    /// Whether `token` is of the pinned algorithm and names a `kid` that `keys` lacks.
    fn names_unknown_key(&self, keys: &TokenKeys, token: &str) -> bool {
        jsonwebtoken::decode_header(token).is_ok_and(|h| {
            h.alg == self.alg.jwt() && h.kid.is_some_and(|kid| !keys.knows_kid(&kid))
        })
    }

    /// Fetches the key set again if `token` still calls for it once the fetch in flight (if
    /// any) is done, and the last fetch is at least the refetch interval ago.
    async fn refresh(&self, token: &str) {
        let mut last = self.last_fetch.lock().await;
        let held = self.held.load_full();
        let stale = Instant::now() >= held.fresh_until;
        if !stale && !self.names_unknown_key(&held.keys, token) {
            // The fetch this request waited for brought the key.
            return;
        }
        if last.is_some_and(|t| t.elapsed() < self.refetch_interval) {
            return;
        }
        *last = Some(Instant::now());
        match fetch_keys(&self.client, &self.url, self.alg, &self.settings).await {
            Ok((keys, fresh_until)) => self.held.store(Arc::new(Held { keys, fresh_until })),
            Err(e) => {
                tracing::warn!(error = %e, "the key set could not be fetched; keeping the keys held");
                if stale {
                    // Tried again after the interval, not at every request meanwhile.
                    self.held.store(Arc::new(Held {
                        keys: Arc::clone(&held.keys),
                        fresh_until: Instant::now() + self.refetch_interval,
                    }));
                }
            }
        }
    }
}

/// The client used unless one is given: rustls on ring with the platform's roots, bounded in
/// time, following no redirects (a key set is where the URL says).
fn default_client() -> Result<reqwest::Client, JwksError> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_platform_verifier())
        .map_err(|e| JwksError::Client(e.to_string()))?
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| JwksError::Client(e.to_string()))
}

/// `https://`, or `http://` to a loopback host.
fn check_url(raw: &str) -> Result<(), JwksError> {
    let bad = || JwksError::Url(raw.to_owned());
    let url = url::Url::parse(raw).map_err(|_| bad())?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(bad()),
    }
}

/// `GET url`: the body (at most [`MAX_BODY_BYTES`]) of a 200 answer, and its `max-age`.
async fn get(client: &reqwest::Client, url: &str) -> Result<(Vec<u8>, Duration), JwksError> {
    let failed = |reason: String| JwksError::Fetch {
        url: url.to_owned(),
        reason,
    };
    let fetch = async {
        let mut res = client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| failed(e.without_url().to_string()))?;
        if res.status() != reqwest::StatusCode::OK {
            return Err(failed(format!("answered {}", res.status())));
        }
        if res
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(JwksError::TooLarge(url.to_owned()));
        }
        let max_age = max_age(res.headers());
        let mut body = Vec::new();
        while let Some(chunk) = res
            .chunk()
            .await
            .map_err(|e| failed(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(JwksError::TooLarge(url.to_owned()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    };
    // The client's own timeout covers the default client; this one, a client given too.
    tokio::time::timeout(FETCH_TIMEOUT, fetch)
        .await
        .unwrap_or_else(|_| Err(failed("timed out".to_owned())))
}

/// How long to keep an answer: its `Cache-Control: max-age`, bounded; [`DEFAULT_MAX_AGE`]
/// without one, the least for `no-cache` or `no-store`.
fn max_age(headers: &reqwest::header::HeaderMap) -> Duration {
    let mut age = None;
    for value in headers.get_all(reqwest::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-cache" || lower == "no-store" {
                return MIN_MAX_AGE;
            }
            if let Some(n) = lower.strip_prefix("max-age=") {
                age = n
                    .trim_matches('"')
                    .parse::<u64>()
                    .ok()
                    .map(Duration::from_secs);
            }
        }
    }
    age.unwrap_or(DEFAULT_MAX_AGE)
        .clamp(MIN_MAX_AGE, MAX_MAX_AGE)
}

/// Fetches the key set at `url` and builds verify-only keys of its keys of `alg`, with the
/// instant until which they are kept.
async fn fetch_keys(
    client: &reqwest::Client,
    url: &str,
    alg: SigningAlg,
    settings: &TokenSettings,
) -> Result<(Arc<TokenKeys>, Instant), JwksError> {
    #[derive(Deserialize)]
    struct KeySet {
        keys: Vec<serde_json::Value>,
    }
    let (body, max_age) = get(client, url).await?;
    let malformed = |reason: String| JwksError::Malformed {
        url: url.to_owned(),
        reason,
    };
    let set: KeySet = serde_json::from_slice(&body).map_err(|e| malformed(e.to_string()))?;
    if set.keys.len() > MAX_KEYS {
        return Err(malformed(format!("more than {MAX_KEYS} keys")));
    }
    let keys = usable_keys(set.keys, alg);
    let no_keys = || JwksError::NoKeys {
        url: url.to_owned(),
        alg: alg.name(),
    };
    if keys.is_empty() {
        return Err(no_keys());
    }
    let keys = TokenKeys::verify_only(&keys, settings.clone()).map_err(|_| no_keys())?;
    Ok((Arc::new(keys), Instant::now() + max_age))
}

/// The keys of `alg` for signatures among `jwks`, each once; the others are skipped.
fn usable_keys(jwks: Vec<serde_json::Value>, alg: SigningAlg) -> Vec<PublicKey> {
    let mut keys: Vec<PublicKey> = Vec::new();
    for value in jwks {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            continue;
        }
        let Ok(key) = PublicKey::from_jwk(&jwk) else {
            continue;
        };
        if key.alg() == alg && keys.iter().all(|k| k.kid() != key.kid()) {
            keys.push(key);
        }
    }
    keys
}

// The tests make keys with `SigningKey::generate_pem`, which comes with the server.
#[cfg(test)]
#[cfg(feature = "server")]
mod tests {
    use super::*;
    use reqwest::header::{CACHE_CONTROL, HeaderMap, HeaderValue};

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn max_age_is_read_bounded_and_defaulted() {
        assert_eq!(max_age(&headers(&[])), DEFAULT_MAX_AGE);
        assert_eq!(
            max_age(&headers(&["public, max-age=300"])),
            Duration::from_secs(300)
        );
        assert_eq!(max_age(&headers(&["max-age=1"])), MIN_MAX_AGE);
        assert_eq!(max_age(&headers(&["max-age=99999999"])), MAX_MAX_AGE);
        assert_eq!(max_age(&headers(&["no-store"])), MIN_MAX_AGE);
        assert_eq!(max_age(&headers(&["max-age=junk"])), DEFAULT_MAX_AGE);
    }

    #[test]
    fn only_https_or_loopback_http_urls_are_taken() {
        for good in [
            "https://auth.example.com/.well-known/jwks.json",
            "http://127.0.0.1:5000/.well-known/jwks.json",
            "http://[::1]:5000/x",
            "http://localhost:5000",
        ] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        for bad in [
            "http://auth.example.com/.well-known/jwks.json",
            "ftp://127.0.0.1/x",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_of_other_algorithms_or_uses_and_junk_are_skipped_and_duplicates_kept_once() {
        use crate::signing::SigningKey;
        use secrecy::ExposeSecret as _;
        let key = |alg| {
            let pem = SigningKey::generate_pem(alg).unwrap();
            SigningKey::from_pem(alg, pem.expose_secret().as_bytes()).unwrap()
        };
        let ed = key(SigningAlg::EdDsa);
        let es = key(SigningAlg::Es256);
        let ed_jwk = serde_json::to_value(ed.public().jwk()).unwrap();
        let mut enc = ed_jwk.clone();
        enc["use"] = "enc".into();
        let set = vec![
            serde_json::json!({"kty": "oct", "k": "c2VjcmV0"}),
            serde_json::to_value(es.public().jwk()).unwrap(),
            serde_json::json!("junk"),
            ed_jwk.clone(),
            ed_jwk,
        ];
        let keys = usable_keys(set.clone(), SigningAlg::EdDsa);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid(), ed.public().kid());
        let keys = usable_keys(set, SigningAlg::Es256);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid(), es.public().kid());
        assert!(usable_keys(vec![enc], SigningAlg::EdDsa).is_empty());
    }

    /// A key set server whose answer the test changes: `(url, served set, fetch count)`; an
    /// empty set is answered 503.
    async fn server() -> (
        String,
        Arc<std::sync::Mutex<serde_json::Value>>,
        Arc<std::sync::atomic::AtomicUsize>,
    ) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let set = Arc::new(std::sync::Mutex::new(serde_json::json!({"keys": []})));
        let count = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (Arc::clone(&set), Arc::clone(&count));
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                let set = served.lock().unwrap().clone();
                async move {
                    if set["keys"].as_array().is_some_and(Vec::is_empty) {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response()
                    } else {
                        axum::Json(set).into_response()
                    }
                }
            }),
        );
        use axum::response::IntoResponse as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/jwks.json"), set, count)
    }

    fn signer() -> TokenKeys {
        use crate::signing::SigningKey;
        use secrecy::ExposeSecret as _;
        let pem = SigningKey::generate_pem(SigningAlg::EdDsa).unwrap();
        let key = SigningKey::from_pem(SigningAlg::EdDsa, pem.expose_secret().as_bytes()).unwrap();
        TokenKeys::with_key_pair(&key, &[], TokenSettings::default()).unwrap()
    }

    /// Ages the held set past its `max-age`, as time would.
    fn age(jwks: &JwksKeys) {
        let held = jwks.held.load_full();
        jwks.held.store(Arc::new(Held {
            keys: Arc::clone(&held.keys),
            fresh_until: Instant::now(),
        }));
    }

    #[tokio::test]
    async fn a_key_dropped_from_the_set_stops_verifying_once_the_set_is_past_its_age() {
        use std::sync::atomic::Ordering;
        let (url, served, fetches) = server().await;
        let (a, b) = (signer(), signer());
        *served.lock().unwrap() = serde_json::to_value(a.jwks()).unwrap();
        let jwks = JwksKeys::from_jwks_url_with(
            &url,
            SigningAlg::EdDsa,
            TokenSettings::default(),
            JwksOptions::default().refetch_interval(Duration::ZERO),
        )
        .await
        .unwrap();
        let now = crate::tokens::now();
        let token_a = a.issue("alice", now).unwrap().token;
        let token_b = b.issue("bob", now).unwrap().token;
        assert!(jwks.verify(&token_a, now).await.is_ok());
        assert_eq!(fetches.load(Ordering::SeqCst), 1);

        // authd rotated and dropped A: until the set is past its age, A is still trusted...
        *served.lock().unwrap() = serde_json::to_value(b.jwks()).unwrap();
        assert!(jwks.verify(&token_a, now).await.is_ok());
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // ...after, it is fetched again: A refused, B accepted.
        age(&jwks);
        assert_eq!(
            jwks.verify(&token_a, now).await.err(),
            Some(VerifyError::Invalid)
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        assert!(jwks.verify(&token_b, now).await.is_ok());
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_fetch_keeps_the_keys_held_and_is_not_retried_before_the_interval() {
        use std::sync::atomic::Ordering;
        let (url, served, fetches) = server().await;
        let a = signer();
        *served.lock().unwrap() = serde_json::to_value(a.jwks()).unwrap();
        let jwks = JwksKeys::from_jwks_url(&url, SigningAlg::EdDsa, TokenSettings::default())
            .await
            .unwrap();
        let now = crate::tokens::now();
        let token = a.issue("alice", now).unwrap().token;
        // authd is down (503) when the set is past its age.
        *served.lock().unwrap() = serde_json::json!({"keys": []});
        age(&jwks);
        for _ in 0..10 {
            assert!(jwks.verify(&token, now).await.is_ok());
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 2, "one retry, then none");
    }
}
