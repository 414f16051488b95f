//! `GET /verify` (any method): forward authentication for nginx `auth_request`, Traefik
//! `forwardAuth` and Caddy `forward_auth`. 200 with the user in `X-Auth-User` for a valid token;
//! otherwise a 401 with a `WWW-Authenticate` challenge and no body, which is all these proxies
//! look at (a body could be passed on to the client).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;

use super::AppState;
use super::auth::Refusal;
use super::edge::KeepBody;
use crate::proxies::ForwardedUriHeader;

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
/// request's query (from `X-Original-URI` or `X-Forwarded-Uri`, which must agree when both are
/// there, or only the one `AUTHD_FORWARDED_URI_HEADER` names; else this request's own query).
#[utoipa::path(
    method(get, post, put, delete, patch, options),
    path = "/verify",
    tag = "forward-auth",
    summary = "Forward authentication for nginx auth_request, Traefik forwardAuth, Caddy forward_auth",
    description = "Answers any method, since proxies pass the original one on. The token comes \
        from `Authorization: Bearer`, or from the `token` parameter of the original request's \
        query (`X-Original-URI` or `X-Forwarded-Uri`, else this request's own query). Both \
        headers present and different, a header or a `token` parameter repeated, or two \
        `Authorization` headers: 401. Answers have no body, so that a proxy has nothing to leak.",
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
pub(super) async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let check = &state.check;
    let result = original_query(&headers, uri.query(), state.forwarded_uri)
        .ok_or(if check.strict() {
            Refusal::BadRequest
        } else {
            Refusal::Invalid
        })
        .and_then(|query| check.judge(query, &headers))
        .and_then(|c| {
            // The proxy needs someone to name: a valid token without a subject, or with one that
            // cannot be a header value, is refused here (it still opens /protected).
            let user = c
                .subject()
                .and_then(|s| HeaderValue::from_bytes(s.as_bytes()).ok())
                .ok_or(Refusal::Invalid)?;
            Ok((user, c.exp))
        });
    check.count(result.as_ref().map(|_| ()).map_err(|r| *r));
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
            let challenge = refusal.challenge(check.strict());
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

/// The query of the original request, which may carry `token=`: from the original-URI header(s)
/// `believed` names, else `own` (this request's query, for a proxy that rewrites the target).
/// `None` when they cannot be trusted to say one thing: two values that differ (both headers,
/// or one sent twice; a client can add the header its proxy does not set, and the application
/// behind the proxy would see another query than the one checked), or a target that is not UTF-8.
fn original_query<'a>(
    headers: &'a HeaderMap,
    own: Option<&'a str>,
    believed: ForwardedUriHeader,
) -> Option<Option<&'a str>> {
    let mut target: Option<&HeaderValue> = None;
    for (name, read) in [
        (
            &X_ORIGINAL_URI,
            believed != ForwardedUriHeader::XForwardedUri,
        ),
        (
            &X_FORWARDED_URI,
            believed != ForwardedUriHeader::XOriginalUri,
        ),
    ] {
        if !read {
            continue;
        }
        for value in headers.get_all(name) {
            match target {
                Some(seen) if seen != value => return None,
                _ => target = Some(value),
            }
        }
    }
    let Some(target) = target else {
        return Some(own);
    };
    let target = std::str::from_utf8(target.as_bytes()).ok()?;
    Some(target.split_once('?').map(|(_, q)| q))
}
