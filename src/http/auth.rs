//! The token check: what the tutorial's `token_required` decorator does, in one place for
//! authd's own routes and for other axum services alike. [`TokenCheck`] holds the policy (the
//! keys, the strictness, where outcomes are counted) and makes the one check; [`Authenticated`]
//! is the extractor that runs it, reaching the policy through `FromRef` like any state;
//! [`RequireToken`] is the same check as a tower layer; [`InGroup`] and
//! [`RequireToken::in_group`] add a group the token's holder must be in (403 "Forbidden"). A token
//! whose session has ended (its `sid` in the revoked set held in memory) is refused as invalid. A
//! refusal answers 403 "Token is missing!" or "Token is invalid!" — or, in strict mode (authd's
//! `AUTHD_STRICT`), RFC 6750's 401 or 400 with a `WWW-Authenticate: Bearer` challenge.

// The session cookie is read by the server's `/verify` and pages only; a build without the
// server (a service that only verifies) keeps the code rather than a `cfg` on each part of it.
#![cfg_attr(not(feature = "server"), allow(dead_code))]

use std::future::Ready;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRef, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use tower::{Layer, Service};

use super::error::{ApiError, BEARER_CHALLENGE, BEARER_INVALID_REQUEST, BEARER_INVALID_TOKEN};
#[cfg(feature = "server")]
use crate::metrics::{Metrics, TokenOutcome};
#[cfg(feature = "server")]
use crate::revocations::RevokedSet;
use crate::tokens::{self, Claims, CookieLifetimes, TokenKeys, VerifyError};
use crate::transport::{CookieValue, PresentedToken, find_cookie, find_token, query_names_a_token};

/// How requests' tokens are checked: the keys, RFC 6750 strictness, and where outcomes are
/// counted. The one check behind [`Authenticated`], [`RequireToken`], `/protected` and `/verify`.
///
/// Cheap to clone (reference counts). From an `Arc<TokenKeys>` alone it checks as the tutorial
/// does and counts nothing, so a router whose state is the keys needs nothing else.
#[derive(Debug, Clone)]
pub struct TokenCheck {
    keys: Keys,
    strict: bool,
    #[cfg(feature = "server")]
    metrics: Option<Arc<Metrics>>,
    /// The sessions ended early, in memory; none for a check built from the keys alone.
    #[cfg(feature = "server")]
    revoked: Option<Arc<RevokedSet>>,
    /// The browser session cookie, read where a check asks for it (`/verify`, the pages).
    cookie: Option<Arc<SessionCookie>>,
}

/// Where the keys come from: fixed (authd's own, or a service's secret or public keys), or
/// fetched from authd's key set.
#[derive(Debug, Clone)]
enum Keys {
    Fixed(Arc<TokenKeys>),
    #[cfg(feature = "jwks")]
    Jwks(Arc<crate::jwks::JwksKeys>),
}

/// A token whose check waits for the key set to be fetched (a `kid` not held, or keys past
/// their age): the only check that awaits.
#[cfg(feature = "jwks")]
struct Pending {
    check: TokenCheck,
    jwks: Arc<crate::jwks::JwksKeys>,
    token: String,
}

#[cfg(feature = "jwks")]
impl Pending {
    async fn finish(self) -> Result<Claims, ApiError> {
        let result = self
            .jwks
            .verify(&self.token, tokens::now())
            .await
            .map_err(refusal)
            .and_then(|claims| self.check.not_revoked(claims));
        self.check
            .count(result.as_ref().map(|_| ()).map_err(|r| *r));
        result.map_err(|refusal| refusal.answer(self.check.strict))
    }
}

/// The check of a request's token: decided at once, or waiting for a fetch of the key set.
enum Begun {
    Done(Result<Claims, ApiError>),
    #[cfg(feature = "jwks")]
    Pending(Pending),
}

/// A token's verdict from the keys, or the fetch it waits for.
enum Verdict {
    Claims(Claims),
    #[cfg(feature = "jwks")]
    Fetch(Arc<crate::jwks::JwksKeys>, String),
}

fn refusal(e: VerifyError) -> Refusal {
    match e {
        VerifyError::Expired => Refusal::Expired,
        VerifyError::Invalid => Refusal::Invalid,
    }
}

/// The session cookie a check may read besides the token: its name and lifetimes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionCookie {
    pub(crate) name: &'static str,
    pub(crate) lifetimes: CookieLifetimes,
}

/// A request's credential that passed the check: its claims, and whether they came from the
/// session cookie (which `/verify` may re-issue) rather than a token.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub(crate) claims: Claims,
    pub(crate) from_cookie: bool,
}

impl TokenCheck {
    /// Checks against `keys`; `strict` is RFC 6750 mode: only the `Authorization: Bearer` header
    /// carries a token, and refusals are 401/400 with a `WWW-Authenticate: Bearer` challenge.
    pub fn new(keys: Arc<TokenKeys>, strict: bool) -> Self {
        Self::with_keys(Keys::Fixed(keys), strict)
    }

    /// Checks against the keys of authd's key set (`/.well-known/jwks.json`), fetched again
    /// when a token names a key not held (see [`JwksKeys`](crate::jwks::JwksKeys)). Use it
    /// through [`Authenticated`], [`InGroup`], [`RequireToken`] or [`TokenCheck::check_async`]:
    /// [`TokenCheck::check`] does not wait for a fetch.
    #[cfg(feature = "jwks")]
    pub fn from_jwks(jwks: Arc<crate::jwks::JwksKeys>, strict: bool) -> Self {
        Self::with_keys(Keys::Jwks(jwks), strict)
    }

    fn with_keys(keys: Keys, strict: bool) -> Self {
        Self {
            keys,
            strict,
            #[cfg(feature = "server")]
            metrics: None,
            #[cfg(feature = "server")]
            revoked: None,
            cookie: None,
        }
    }

    /// The same check, reading the browser session cookie `name` too where asked
    /// ([`TokenCheck::judge_with_cookie`]).
    pub(crate) fn with_session_cookie(
        self,
        name: &'static str,
        lifetimes: CookieLifetimes,
    ) -> Self {
        Self {
            cookie: Some(Arc::new(SessionCookie { name, lifetimes })),
            ..self
        }
    }

    /// The session cookie this check reads, if any.
    pub(crate) fn session_cookie(&self) -> Option<&SessionCookie> {
        self.cookie.as_deref()
    }

    /// The same check, with each outcome counted in `metrics`.
    #[cfg(feature = "server")]
    pub fn counted_in(self, metrics: Arc<Metrics>) -> Self {
        Self {
            metrics: Some(metrics),
            ..self
        }
    }

    /// The same check, refusing tokens whose session is in `revoked` (authd's own: the set it
    /// keeps up to date from its database).
    #[cfg(feature = "server")]
    pub fn revoking(self, revoked: Arc<RevokedSet>) -> Self {
        Self {
            revoked: Some(revoked),
            ..self
        }
    }

    /// Whether this is RFC 6750's strict mode.
    pub fn strict(&self) -> bool {
        self.strict
    }

    /// The keys (for a check from a key set, those held now).
    pub fn keys(&self) -> Arc<TokenKeys> {
        match &self.keys {
            Keys::Fixed(keys) => Arc::clone(keys),
            #[cfg(feature = "jwks")]
            Keys::Jwks(jwks) => jwks.keys(),
        }
    }

    /// Checks the token of a request whose query string is `query` (the one that may carry
    /// `token=`) and whose headers are `headers`: from `?token=` or `Authorization: Bearer`,
    /// the keys' algorithm only, signature, `exp` (and `nbf`, `iss`, `aud` as configured). Counts the outcome
    /// and makes the refusal's answer.
    pub fn check(&self, query: Option<&str>, headers: &HeaderMap) -> Result<Claims, ApiError> {
        let result = self.judge(query, headers);
        self.count(result.as_ref().map(|_| ()).map_err(|r| *r));
        result.map_err(|refusal| refusal.answer(self.strict))
    }

    /// The check without counting or answering, for a caller that decides more before it does
    /// both (`/verify` also needs a subject to name).
    pub(crate) fn judge(
        &self,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Claims, Refusal> {
        match self.verdict(query, headers)? {
            Verdict::Claims(claims) => Ok(claims),
            // Without waiting: the keys held decide.
            #[cfg(feature = "jwks")]
            Verdict::Fetch(jwks, token) => jwks
                .keys()
                .verify(&token, tokens::now())
                .map_err(refusal)
                .and_then(|claims| self.not_revoked(claims)),
        }
    }

    /// Checks the token as [`TokenCheck::check`] does, waiting, for a check from a key set,
    /// for a fetch of the set when the token names a key not held (the only path that awaits).
    pub async fn check_async(
        &self,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Claims, ApiError> {
        match self.begin(query, headers) {
            Begun::Done(result) => result,
            // Boxed so that the futures of the fixed keys' path stay small.
            #[cfg(feature = "jwks")]
            Begun::Pending(pending) => Box::pin(pending.finish()).await,
        }
    }

    /// [`TokenCheck::check_async`] and the group rule of [`TokenCheck::check_in_groups`].
    pub async fn check_in_groups_async<G: AsRef<str>>(
        &self,
        query: Option<&str>,
        headers: &HeaderMap,
        groups: &[G],
    ) -> Result<Claims, ApiError> {
        let claims = self.check_async(query, headers).await?;
        self.in_groups(claims, groups)
    }

    /// The check, counted and answered when the keys held decide; otherwise what it waits for.
    fn begin(&self, query: Option<&str>, headers: &HeaderMap) -> Begun {
        let result = match self.verdict(query, headers) {
            Ok(Verdict::Claims(claims)) => Ok(claims),
            Err(refusal) => Err(refusal),
            #[cfg(feature = "jwks")]
            Ok(Verdict::Fetch(jwks, token)) => {
                return Begun::Pending(Pending {
                    check: self.clone(),
                    jwks,
                    token,
                });
            }
        };
        self.count(result.as_ref().map(|_| ()).map_err(|r| *r));
        Begun::Done(result.map_err(|refusal| refusal.answer(self.strict)))
    }

    /// The token's verdict, or the fetch of the key set it waits for.
    fn verdict(&self, query: Option<&str>, headers: &HeaderMap) -> Result<Verdict, Refusal> {
        // RFC 9700 §4.3.2: tokens in URLs leak into logs and histories; strict mode refuses them
        // (an empty `token=` included, and RFC 6750's own `access_token=`), rather than ignoring
        // them.
        let query = if self.strict {
            if query.is_some_and(query_names_a_token) {
                return Err(Refusal::BadRequest);
            }
            None
        } else {
            query
        };
        let authorization = headers
            .get_all(axum::http::header::AUTHORIZATION)
            .into_iter()
            .map(|v| v.as_bytes());
        match find_token(query, authorization) {
            PresentedToken::Missing => Err(Refusal::Missing),
            // RFC 6750 §3.1: a request that repeats a parameter or uses more than one method is
            // an `invalid_request`.
            PresentedToken::Conflicting if self.strict => Err(Refusal::BadRequest),
            PresentedToken::Conflicting => Err(Refusal::Invalid),
            PresentedToken::Token(token) => match &self.keys {
                Keys::Fixed(keys) => keys
                    .verify(&token, tokens::now())
                    .map_err(refusal)
                    .and_then(|claims| self.not_revoked(claims))
                    .map(Verdict::Claims),
                #[cfg(feature = "jwks")]
                Keys::Jwks(jwks) => match jwks.verify_held(&token, tokens::now()) {
                    Some(result) => result
                        .map_err(refusal)
                        .and_then(|claims| self.not_revoked(claims))
                        .map(Verdict::Claims),
                    None => Ok(Verdict::Fetch(Arc::clone(jwks), token.into_owned())),
                },
            },
        }
    }

    /// The claims of a verified token, unless its session has ended: a lookup in memory, never
    /// the database. A token without `sid` (another library's) belongs to no session.
    #[cfg(feature = "server")]
    pub(crate) fn not_revoked(&self, claims: Claims) -> Result<Claims, Refusal> {
        match (&self.revoked, claims.sid.as_deref()) {
            (Some(revoked), Some(sid)) if revoked.is_revoked(sid, claims.iat) => {
                Err(Refusal::Invalid)
            }
            _ => Ok(claims),
        }
    }

    /// Without the server there is no revoked set (the store keeps it): every session is live.
    #[cfg(not(feature = "server"))]
    pub(crate) fn not_revoked(&self, claims: Claims) -> Result<Claims, Refusal> {
        Ok(claims)
    }

    /// [`TokenCheck::judge`] with the browser session cookie as one more credential (for
    /// `/verify` and the sign-in pages only: an API route takes no ambient credential a
    /// cross-site page could make a browser send). The cookie alone is checked as a session's
    /// token (`TokenKeys::verify_session`); beside a token, both must verify and name the same
    /// user, and the token's claims are the answer; a cookie sent twice is refused (a sibling
    /// subdomain can plant a second one, and there is no telling which the browser meant).
    pub(crate) fn judge_with_cookie(
        &self,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Checked, Refusal> {
        let Some(cookie) = &self.cookie else {
            return self.judge(query, headers).map(|claims| Checked {
                claims,
                from_cookie: false,
            });
        };
        let values = headers
            .get_all(axum::http::header::COOKIE)
            .into_iter()
            .map(|v| v.as_bytes());
        let session = match find_cookie(values, cookie.name) {
            CookieValue::Missing => None,
            CookieValue::Refused => return Err(Refusal::Invalid),
            // A session ended early (sign-out, revoke) ends its cookie as it ends its tokens.
            CookieValue::One(v) => Some(
                match &self.keys {
                    Keys::Fixed(keys) => keys.verify_session(v, tokens::now(), cookie.lifetimes),
                    #[cfg(feature = "jwks")]
                    Keys::Jwks(jwks) => {
                        jwks.keys()
                            .verify_session(v, tokens::now(), cookie.lifetimes)
                    }
                }
                .map_err(refusal)
                .and_then(|claims| self.not_revoked(claims)),
            ),
        };
        let token = self.judge(query, headers);
        match (session, token) {
            (None, token) => token.map(|claims| Checked {
                claims,
                from_cookie: false,
            }),
            (Some(session), Err(Refusal::Missing)) => session.map(|claims| Checked {
                claims,
                from_cookie: true,
            }),
            (Some(session), token) => {
                let (session, claims) = (session?, token?);
                if session.subject() != claims.subject() {
                    return Err(Refusal::Invalid);
                }
                Ok(Checked {
                    claims,
                    from_cookie: false,
                })
            }
        }
    }

    /// Checks the token as [`TokenCheck::check`] does, then that its holder is in one of
    /// `groups` (the token's `groups` claim): 403 "Forbidden" otherwise (in strict mode with
    /// RFC 6750's `insufficient_scope` challenge).
    pub fn check_in_groups<G: AsRef<str>>(
        &self,
        query: Option<&str>,
        headers: &HeaderMap,
        groups: &[G],
    ) -> Result<Claims, ApiError> {
        let claims = self.check(query, headers)?;
        self.in_groups(claims, groups)
    }

    /// `claims`, if their holder is in one of `groups`; 403 "Forbidden" otherwise.
    fn in_groups<G: AsRef<str>>(&self, claims: Claims, groups: &[G]) -> Result<Claims, ApiError> {
        if groups.iter().any(|g| claims.in_group(g.as_ref())) {
            Ok(claims)
        } else {
            Err(ApiError::Forbidden {
                strict: self.strict,
            })
        }
    }

    /// Counts the outcome of a check, where this policy counts.
    #[cfg(feature = "server")]
    pub(crate) fn count(&self, result: Result<(), Refusal>) {
        if let Some(m) = &self.metrics {
            m.token_check(result.map_or_else(Refusal::outcome, |()| TokenOutcome::Ok));
        }
    }

    /// Without the server there are no metrics: nothing to count.
    #[cfg(not(feature = "server"))]
    pub(crate) fn count(&self, _result: Result<(), Refusal>) {}
}

impl From<Arc<TokenKeys>> for TokenCheck {
    fn from(keys: Arc<TokenKeys>) -> Self {
        Self::new(keys, false)
    }
}

impl FromRef<Arc<TokenKeys>> for TokenCheck {
    fn from_ref(keys: &Arc<TokenKeys>) -> Self {
        Self::from(Arc::clone(keys))
    }
}

#[cfg(feature = "jwks")]
impl From<Arc<crate::jwks::JwksKeys>> for TokenCheck {
    fn from(jwks: Arc<crate::jwks::JwksKeys>) -> Self {
        Self::from_jwks(jwks, false)
    }
}

#[cfg(feature = "jwks")]
impl FromRef<Arc<crate::jwks::JwksKeys>> for TokenCheck {
    fn from_ref(jwks: &Arc<crate::jwks::JwksKeys>) -> Self {
        Self::from(Arc::clone(jwks))
    }
}

/// Why a request's token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token, or an empty one.
    Missing,
    /// A token that does not verify, query and Bearer tokens that differ, a token given twice,
    /// or (on `/verify`) original URIs that disagree.
    Invalid,
    /// A correctly signed token past its expiry.
    Expired,
    /// Strict mode: a token in the query string (`token` or `access_token`), a Bearer header
    /// that is not text or is sent twice, or (on `/verify`) original URIs that disagree.
    BadRequest,
}

impl Refusal {
    /// The metrics outcome of this refusal.
    #[cfg(feature = "server")]
    pub fn outcome(self) -> TokenOutcome {
        match self {
            Self::Missing => TokenOutcome::Missing,
            Self::Expired => TokenOutcome::Expired,
            Self::Invalid | Self::BadRequest => TokenOutcome::Invalid,
        }
    }

    /// The answer to this refusal: the tutorial's 403s, or RFC 6750's in strict mode.
    pub fn answer(self, strict: bool) -> ApiError {
        match (strict, self) {
            (false, Self::Missing) => ApiError::TokenMissing,
            (false, _) => ApiError::TokenInvalid,
            (true, refusal) => ApiError::Bearer(refusal),
        }
    }

    /// The `WWW-Authenticate` challenge answering this refusal: RFC 6750's error codes in strict
    /// mode (none for a request without a token, §3.1), the bare challenge otherwise. The one
    /// place the challenge is decided, for the JSON answers and for `/verify`'s empty ones.
    pub fn challenge(self, strict: bool) -> &'static str {
        match (strict, self) {
            (true, Self::Invalid | Self::Expired) => BEARER_INVALID_TOKEN,
            (true, Self::BadRequest) => BEARER_INVALID_REQUEST,
            (true, Self::Missing) | (false, _) => BEARER_CHALLENGE,
        }
    }
}

/// The verified claims of the request's access token, from `?token=` or `Authorization: Bearer`.
///
/// As an extractor it needs a [`TokenCheck`] from the router's state (`TokenCheck: FromRef<S>`;
/// an `Arc<TokenKeys>` as the whole state will do). A handler that takes it runs only for a valid
/// token; otherwise the request is answered 403 `{"message": "Token is missing!"}` or
/// `{"message": "Token is invalid!"}` (RFC 6750's answers when the check is strict).
///
/// Behind [`RequireToken`] there is no need to check again: the layer puts the claims in the
/// request's extensions, where `axum::Extension<Authenticated>` finds them.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

impl<S> FromRequestParts<S> for Authenticated
where
    TokenCheck: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Decided at once unless a fetch of the key set is awaited (boxed): the future of the
        // fixed keys' path stays as small as the synchronous check's.
        match TokenCheck::from_ref(state).begin(parts.uri.query(), &parts.headers) {
            Begun::Done(result) => result.map(Self),
            #[cfg(feature = "jwks")]
            Begun::Pending(pending) => Box::pin(pending.finish()).await.map(Self),
        }
    }
}

/// A group a route requires, named by a type, for the [`InGroup`] extractor.
///
/// ```
/// struct Admins;
/// impl authd::http::Group for Admins {
///     const NAME: &'static str = "admins";
/// }
/// ```
pub trait Group {
    /// The group's name, as in the groups file.
    const NAME: &'static str;
}

/// The verified claims of a request whose token's holder is in the group `G`: [`Authenticated`]
/// plus the group. A valid token of someone not in it is answered 403
/// `{"message": "Forbidden"}` (strict mode: with RFC 6750's `insufficient_scope` challenge); an
/// invalid or missing token as [`Authenticated`] answers it. The same one check.
///
/// Take it apart in the handler's arguments: `InGroup(claims, _): InGroup<Admins>`.
#[derive(Debug, Clone)]
pub struct InGroup<G>(pub Claims, pub std::marker::PhantomData<fn() -> G>);

impl<G, S> FromRequestParts<S> for InGroup<G>
where
    G: Group,
    TokenCheck: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let check = TokenCheck::from_ref(state);
        let claims = match check.begin(parts.uri.query(), &parts.headers) {
            Begun::Done(result) => result?,
            #[cfg(feature = "jwks")]
            Begun::Pending(pending) => Box::pin(pending.finish()).await?,
        };
        check
            .in_groups(claims, &[G::NAME])
            .map(|claims| Self(claims, std::marker::PhantomData))
    }
}

/// A tower layer that lets through only requests with a valid access token and answers the
/// others as [`Authenticated`] does; the claims of a request let through are in its extensions
/// as [`Authenticated`]. With [`RequireToken::in_group`], only holders in that group (or one of
/// several) get through; the others are answered 403 `{"message": "Forbidden"}`.
///
/// Put it on the routes to protect with `Router::route_layer` (so that unknown paths still answer
/// 404 rather than 403).
#[derive(Debug, Clone)]
pub struct RequireToken {
    check: TokenCheck,
    groups: Option<Arc<[String]>>,
}

impl RequireToken {
    /// A layer making `check`: a [`TokenCheck`], or the keys alone (build them once with
    /// [`TokenKeys::new`] from the secret authd signs with).
    pub fn new(check: impl Into<TokenCheck>) -> Self {
        Self {
            check: check.into(),
            groups: None,
        }
    }

    /// The same layer letting through only holders in `group`; called again, in any of the
    /// groups named.
    #[must_use]
    pub fn in_group(self, group: impl Into<String>) -> Self {
        let mut groups: Vec<String> = self.groups.as_deref().unwrap_or_default().to_vec();
        groups.push(group.into());
        Self {
            groups: Some(groups.into()),
            ..self
        }
    }
}

impl<S> Layer<S> for RequireToken {
    type Service = RequireTokenService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireTokenService {
            inner,
            check: self.check.clone(),
            groups: self.groups.clone(),
        }
    }
}

/// The service made by [`RequireToken`].
#[derive(Debug, Clone)]
pub struct RequireTokenService<S> {
    inner: S,
    check: TokenCheck,
    groups: Option<Arc<[String]>>,
}

impl<S> Service<Request> for RequireTokenService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RequireTokenFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let checked = match self.check.begin(req.uri().query(), req.headers()) {
            Begun::Done(result) => {
                result.and_then(|claims| in_any_group(&self.check, self.groups.as_deref(), claims))
            }
            // Only a token waiting for a fetch of the key set is answered by a boxed future.
            #[cfg(feature = "jwks")]
            Begun::Pending(pending) => {
                // The service made ready is the one that answers; a clone takes its place.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let (check, groups) = (self.check.clone(), self.groups.clone());
                return Either::Right(Either::Right(Box::pin(async move {
                    match pending
                        .finish()
                        .await
                        .and_then(|claims| in_any_group(&check, groups.as_deref(), claims))
                    {
                        Ok(claims) => {
                            req.extensions_mut().insert(Authenticated(claims));
                            inner.call(req).await
                        }
                        Err(refusal) => Ok(refusal.into_response()),
                    }
                })));
            }
        };
        match checked {
            Ok(claims) => {
                req.extensions_mut().insert(Authenticated(claims));
                Either::Left(self.inner.call(req))
            }
            Err(refusal) => Either::Right(Either::Left(std::future::ready(Ok(
                refusal.into_response()
            )))),
        }
    }
}

/// `claims` if the layer names no groups or their holder is in one of them.
fn in_any_group(
    check: &TokenCheck,
    groups: Option<&[String]>,
    claims: Claims,
) -> Result<Claims, ApiError> {
    match groups {
        None => Ok(claims),
        Some(groups) => check.in_groups(claims, groups),
    }
}

/// The future of [`RequireTokenService`]: the inner service's answer, or the refusal, ready at
/// once (no boxing); boxed only for a token whose check waits for a fetch of the key set.
pub type RequireTokenFuture<F, E> =
    Either<F, Either<Ready<Result<Response, E>>, WaitingForKeys<E>>>;

/// The future of a request whose token waits for a fetch of the key set.
pub type WaitingForKeys<E> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, E>> + Send>>;
