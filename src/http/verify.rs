//! `GET /verify` (any method): forward authentication for nginx `auth_request`, Traefik
//! `forwardAuth` and Caddy `forward_auth`. 200 with the user in `X-Auth-User` for a valid token;
//! otherwise a 401 with a `WWW-Authenticate` challenge and no body, which is all these proxies
//! look at (a body could be passed on to the client).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;

use super::AppState;
use super::auth::{Refusal, check_token};
use super::edge::KeepBody;
use super::error::{BEARER_CHALLENGE, BEARER_INVALID_REQUEST, BEARER_INVALID_TOKEN};
use crate::metrics::TokenOutcome;

/// The user the token was issued to (`sub`, else the tutorial's `user` claim).
pub const X_AUTH_USER: HeaderName = HeaderName::from_static("x-auth-user");
/// The token's expiry, seconds since the Unix epoch.
pub const X_AUTH_EXPIRES: HeaderName = HeaderName::from_static("x-auth-expires");
/// The original request target, as nginx is told to send it (`$request_uri`).
pub const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
/// The original request target, as Traefik and Caddy send it.
pub const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");

/// Checks the token of the request a proxy is about to let through: the `Authorization: Bearer`
/// header (proxies pass the client's headers on), or the `token` parameter of the original
/// request's query (from `X-Original-URI`, else `X-Forwarded-Uri`, else this request's own query).
#[utoipa::path(
    method(get, post, put, delete, patch, options),
    path = "/verify",
    tag = "forward-auth",
    summary = "Forward authentication for nginx auth_request, Traefik forwardAuth, Caddy forward_auth",
    description = "Answers any method, since proxies pass the original one on. The token comes \
        from `Authorization: Bearer`, or from the `token` parameter of the original request's \
        query (`X-Original-URI`, else `X-Forwarded-Uri`, else this request's own query). \
        Answers have no body, so that a proxy has nothing to leak.",
    params(
        ("X-Original-URI" = Option<String>, Header, description = "The original request target (nginx `$request_uri`)"),
        ("X-Forwarded-Uri" = Option<String>, Header, description = "The original request target (Traefik, Caddy)"),
    ),
    security(("bearer" = []), ("token" = []), ()),
    responses(
        (status = 200, description = "A valid token: let the request through.",
            headers(
                ("X-Auth-User" = String, description = "The token's subject"),
                ("X-Auth-Expires" = String, description = "The token's `exp`, seconds since the epoch"),
            )),
        (status = 401, description = "No valid token: refuse the request. No body.",
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"authd\"`, with an RFC 6750 error code"))),
    ),
)]
pub async fn verify(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let original = headers
        .get(&X_ORIGINAL_URI)
        .or_else(|| headers.get(&X_FORWARDED_URI));
    let query = match original {
        Some(target) => target
            .to_str()
            .ok()
            .and_then(|t| t.split_once('?'))
            .map(|(_, q)| q),
        None => uri.query(),
    };
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    let policy = state.auth_policy();
    let result = check_token(&state.tokens, policy.strict, query, authorization).and_then(|c| {
        // The proxy needs someone to name: a valid token without a subject, or with one that
        // cannot be a header value, is refused here (it still opens /protected).
        let user = c
            .subject()
            .and_then(|s| HeaderValue::from_bytes(s.as_bytes()).ok())
            .ok_or(Refusal::Invalid)?;
        Ok((user, c.exp))
    });
    policy.count(
        result
            .as_ref()
            .map_or_else(|r| r.outcome(), |_| TokenOutcome::Ok),
    );
    match result {
        Ok((user, exp)) => {
            let mut res = Response::new(Body::empty());
            let h = res.headers_mut();
            h.insert(X_AUTH_USER, user);
            h.insert(X_AUTH_EXPIRES, HeaderValue::from(exp));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(refusal) => {
            let challenge = match (policy.strict, refusal) {
                (_, Refusal::Missing) | (false, _) => BEARER_CHALLENGE,
                (true, Refusal::Invalid | Refusal::Expired) => BEARER_INVALID_TOKEN,
                (true, Refusal::BadRequest) => BEARER_INVALID_REQUEST,
            };
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::UNAUTHORIZED;
            let h = res.headers_mut();
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res.extensions_mut().insert(KeepBody);
            res
        }
    }
}
