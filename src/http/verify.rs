//! `GET /verify` (any method): forward authentication for nginx `auth_request`, Traefik
//! `forwardAuth` and Caddy `forward_auth`. 200 with the user and groups in each convention's
//! headers for a valid token the rules (`allowed_groups`, `allowed_users`) allow; 403 for one they
//! do not; otherwise a 401 with a `WWW-Authenticate` challenge. No body, which is all these
//! proxies look at (a body could be passed on to the client).

use std::net::SocketAddr;

use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;

use super::AppState;
use super::auth::Refusal;
use super::edge::KeepBody;
use super::pages;
use crate::access::Rules;
use crate::proxies::ForwardedUriHeader;
use crate::tokens::{self, Claims};
use crate::transport::{QueryParam, query_names_a_token, query_param};

/// The user the token was issued to (`sub`, else the tutorial's `user` claim).
pub const X_AUTH_USER: HeaderName = HeaderName::from_static("x-auth-user");
/// The token's expiry, seconds since the Unix epoch.
pub const X_AUTH_EXPIRES: HeaderName = HeaderName::from_static("x-auth-expires");
/// The original request target, as nginx is told to send it (`$request_uri`).
pub const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
/// The original request target, as Traefik and Caddy send it.
pub const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
/// The original request as an absolute URL, as some nginx configurations send it
/// (`$scheme://$http_host$request_uri`).
pub const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
/// The original request's method, as Caddy and Traefik send it.
pub const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
/// The original request's scheme, as Caddy and Traefik send it.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// The original request's host, as Caddy and Traefik send it.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// Set by scripts' `XMLHttpRequest`s (by convention): not a page load, never redirected.
const X_REQUESTED_WITH: HeaderName = HeaderName::from_static("x-requested-with");
/// The `/verify` query parameter a proxy's configuration sets to be answered 401 with
/// `Location` instead of a redirect (`redirect=401`, for nginx).
pub const REDIRECT_PARAM: &str = "redirect";
/// The user, in the header Authelia, tinyauth and Caddy's documentation use.
pub const REMOTE_USER: HeaderName = HeaderName::from_static("remote-user");
/// The user's groups, comma-separated (empty when none), as Authelia sends them.
pub const REMOTE_GROUPS: HeaderName = HeaderName::from_static("remote-groups");
/// The user, in oauth2-proxy's header.
pub const X_AUTH_REQUEST_USER: HeaderName = HeaderName::from_static("x-auth-request-user");
/// The user's groups, comma-separated (empty when none), in oauth2-proxy's header.
pub const X_AUTH_REQUEST_GROUPS: HeaderName = HeaderName::from_static("x-auth-request-groups");

/// Checks the token of the request a proxy is about to let through: the `Authorization: Bearer`
/// header (proxies pass the client's headers on), or the `token` parameter of the original
/// request's query (from `X-Original-URI`, `X-Forwarded-Uri` or `X-Original-URL`, which must
/// agree when several are there, or only the one `AUTHD_FORWARDED_URI_HEADER` names; believed
/// only from a trusted proxy when `AUTHD_TRUSTED_PROXIES` is set; else this request's own query).
/// Then the rules of this request's own query: `allowed_groups`, `allowed_users`.
#[utoipa::path(
    method(get, post, put, delete, patch, options),
    path = "/verify",
    tag = "forward-auth",
    summary = "Forward authentication for nginx auth_request, Traefik forwardAuth, Caddy forward_auth",
    description = "Answers any method, since proxies pass the original one on. The token comes \
        from `Authorization: Bearer`, or from the `token` parameter of the original request's \
        query (`X-Original-URI`, `X-Forwarded-Uri` or `X-Original-URL`, else this request's own \
        query). Original-request headers that name different targets, a header or a `token` \
        parameter repeated, or two `Authorization` headers: 401. `allowed_groups` and \
        `allowed_users` restrict who passes (403); a rule repeated or with an escaped name: 403. \
        Answers have no body, so that a proxy has nothing to leak.",
    params(
        ("allowed_groups" = Option<String>, Query, description = "Comma-separated groups; the token's holder must be in one of them"),
        ("allowed_users" = Option<String>, Query, description = "Comma-separated users; the token's holder must be one of them"),
        ("X-Original-URI" = Option<String>, Header, description = "The original request target (nginx `$request_uri`)"),
        ("X-Forwarded-Uri" = Option<String>, Header, description = "The original request target (Traefik, Caddy)"),
        ("X-Original-URL" = Option<String>, Header, description = "The original request as an absolute URL"),
        ("redirect" = Option<String>, Query, description = "`401`: answer a browser without a session 401 with `Location` (for nginx) instead of a 302/303 redirect"),
    ),
    security(("bearer" = []), ("token" = []), ()),
    responses(
        (status = 200, description = "A valid token, allowed by the rules: let the request through.",
            headers(
                ("Remote-User" = String, description = "The token's subject (Authelia, Caddy convention)"),
                ("Remote-Groups" = String, description = "The token's groups, comma-separated; empty when none"),
                ("X-Auth-Request-User" = String, description = "The token's subject (oauth2-proxy convention)"),
                ("X-Auth-Request-Groups" = String, description = "The token's groups, comma-separated; empty when none"),
                ("X-Auth-User" = String, description = "The token's subject"),
                ("X-Auth-Expires" = String, description = "The token's `exp`, seconds since the epoch"),
            )),
        (status = 302, description = "A browser (Accept: text/html) without a session, GET or HEAD, with AUTHD_SIGNIN_URL set: to the sign-in page, the original URL in `rd`.",
            headers(("Location" = String, description = "The sign-in page"))),
        (status = 303, description = "The same for other methods.",
            headers(("Location" = String, description = "The sign-in page"))),
        (status = 401, description = "No valid token or session cookie: refuse the request (with `redirect=401`, a browser's answer carries the sign-in page in `Location`). No body.",
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"authd\"`, with an RFC 6750 error code"))),
        (status = 403, description = "A valid token whose holder the rules do not allow, or rules that cannot be read one way only: refuse the request. No body."),
    ),
)]
pub(super) async fn verify(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let check = &state.check;
    // The rules are the proxy's configuration, read before any token: a request whose rules
    // cannot be read one way only is let through by no token (403, which proxies pass on; any
    // other status nginx turns into a 500).
    let Ok(rules) = Rules::parse(uri.query()) else {
        return empty(StatusCode::FORBIDDEN);
    };
    // Original-request headers from a peer that is not a trusted proxy (when some are listed)
    // are the client's own words: not believed, as X-Forwarded-For is not.
    let believed = state.proxies.is_empty()
        || peer.is_some_and(|Extension(ConnectInfo(addr))| state.proxies.trusts(addr.ip()));
    let original = if believed {
        original_query(&headers, uri.query(), state.forwarded_uri)
    } else {
        Some(uri.query())
    };
    let result = original
        .ok_or(if check.strict() {
            Refusal::BadRequest
        } else {
            Refusal::Invalid
        })
        .and_then(|query| check.judge_with_cookie(query, &headers))
        .and_then(|c| {
            // The proxy needs someone to name: a valid token without a subject, or with one that
            // cannot be a header value, is refused here (it still opens /protected).
            let user = c
                .claims
                .subject()
                .and_then(|s| HeaderValue::from_bytes(s.as_bytes()).ok())
                .ok_or(Refusal::Invalid)?;
            Ok((user, c))
        });
    check.count(result.as_ref().map(|_| ()).map_err(|r| *r));
    match result {
        Ok((_, checked)) if !rules.allow(&checked.claims) => {
            // A person signed in but not let in here gets a page saying so (with a way to sign
            // out), not a redirect to a sign-in that would send them straight back.
            if checked.from_cookie && is_browser(&headers) {
                pages::forbidden_page(&state, checked.claims.subject().unwrap_or_default())
            } else {
                empty(StatusCode::FORBIDDEN)
            }
        }
        Ok((user, checked)) => {
            let renewed = checked
                .from_cookie
                .then(|| renewed_cookie(&state, &checked.claims))
                .flatten();
            let claims = checked.claims;
            let mut res = empty(StatusCode::OK);
            let h = res.headers_mut();
            // Group names are checked when the token is (no `,`, no control character), so the
            // joined list is one header value that splits back into the same names (were one not
            // a header value, it would be no group rather than a refusal). A user in no group
            // gets the header, empty: a proxy that copies it then overwrites a client's own copy
            // (Caddy 2.6 would otherwise pass on its unresolved placeholder).
            let groups = HeaderValue::from_str(&claims.groups.join(","))
                .unwrap_or(HeaderValue::from_static(""));
            for (user_header, groups_header) in [
                (REMOTE_USER, REMOTE_GROUPS),
                (X_AUTH_REQUEST_USER, X_AUTH_REQUEST_GROUPS),
            ] {
                h.insert(user_header, user.clone());
                h.insert(groups_header, groups.clone());
            }
            h.insert(X_AUTH_USER, user);
            h.insert(X_AUTH_EXPIRES, HeaderValue::from(claims.exp));
            if let Some(v) = renewed.and_then(|c| HeaderValue::from_str(&c).ok()) {
                h.insert(header::SET_COOKIE, v);
            }
            res
        }
        Err(_) if !presents_token(&headers, original.flatten()) && is_browser(&headers) => {
            let forwarded_method = believed
                .then(|| headers.get(X_FORWARDED_METHOD))
                .flatten()
                .map_or(method.as_str().as_bytes(), HeaderValue::as_bytes);
            let original_url = believed.then(|| original_url(&headers)).flatten();
            signin_redirect(&state, uri.query(), forwarded_method, original_url)
                .unwrap_or_else(|| unauthorized(Refusal::Missing.challenge(check.strict())))
        }
        Err(refusal) => unauthorized(refusal.challenge(check.strict())),
    }
}

/// A 401 with `challenge`.
fn unauthorized(challenge: &'static str) -> Response {
    let mut res = empty(StatusCode::UNAUTHORIZED);
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    res
}

/// Whether the request is a browser's page load: its `Accept` names `text/html` and it is not a
/// script's `XMLHttpRequest`. Only those are sent to sign in; API clients get the 401.
fn is_browser(headers: &HeaderMap) -> bool {
    let html = headers.get_all(header::ACCEPT).iter().any(|v| {
        v.as_bytes()
            .windows(9)
            .any(|w| w.eq_ignore_ascii_case(b"text/html"))
    });
    let xhr = headers
        .get_all(X_REQUESTED_WITH)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"xmlhttprequest"));
    html && !xhr
}

/// Whether the request carries a token (a Bearer header, or `token` in the original query): a
/// client that sent one is an API client, told 401 rather than sent to a sign-in page.
fn presents_token(headers: &HeaderMap, query: Option<&str>) -> bool {
    let bearer = headers.get_all(header::AUTHORIZATION).iter().any(|v| {
        v.as_bytes()
            .get(..6)
            .is_some_and(|s| s.eq_ignore_ascii_case(b"bearer"))
    });
    bearer || query.is_some_and(query_names_a_token)
}

/// The original request's URL, for `rd`: `X-Original-URL` (nginx), else `X-Forwarded-Proto`,
/// `-Host` and `-Uri` together (Caddy, Traefik); each header once. Only a hint: the sign-in
/// follows it only within the cookie domain.
fn original_url(headers: &HeaderMap) -> Option<String> {
    let one = |name: &HeaderName| {
        let mut values = headers.get_all(name).iter();
        let first = values.next()?;
        values
            .next()
            .is_none()
            .then(|| first.to_str().ok())
            .flatten()
    };
    if let Some(url) = one(&X_ORIGINAL_URL) {
        return Some(url.to_owned());
    }
    let (proto, host, target) = (
        one(&X_FORWARDED_PROTO)?,
        one(&X_FORWARDED_HOST)?,
        one(&X_FORWARDED_URI)?,
    );
    Some(format!("{proto}://{host}{target}"))
}

/// The way to the sign-in page for a browser without a session, with the original URL in `rd`:
/// 302 for `GET`/`HEAD` and 303 for other methods (Caddy and Traefik pass it on), or, when the
/// proxy's `/verify` URL says `redirect=401` (nginx, whose `auth_request` takes only 2xx, 401 and
/// 403), a 401 with the same `Location`, which its configuration turns into the redirect. `None`
/// without `AUTHD_SIGNIN_URL`, or when `redirect` is repeated or says anything else.
fn signin_redirect(
    state: &AppState,
    own_query: Option<&str>,
    method: &[u8],
    original_url: Option<String>,
) -> Option<Response> {
    let signin = state.browser.signin_url.as_ref()?;
    let status = match own_query.map(|q| query_param(q, REDIRECT_PARAM)) {
        None | Some(QueryParam::Absent) if matches!(method, b"GET" | b"HEAD") => StatusCode::FOUND,
        None | Some(QueryParam::Absent) => StatusCode::SEE_OTHER,
        Some(QueryParam::One(v)) if v == "401" => StatusCode::UNAUTHORIZED,
        Some(_) => return None,
    };
    let mut location = signin.clone();
    if let Some(rd) = original_url {
        location.query_pairs_mut().append_pair("rd", &rd);
    }
    let mut res = empty(status);
    let h = res.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(location.as_str()).ok()?,
    );
    if status == StatusCode::UNAUTHORIZED {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(Refusal::Missing.challenge(state.check.strict())),
        );
    }
    Some(res)
}

/// The session cookie again, when the one presented is past half its idle lifetime: a new `exp`
/// of now plus the idle lifetime (never past the sign-in plus the absolute lifetime), with the
/// user's groups as they are now. `None` when it is young enough, or its user has left the users
/// file (the cookie then ends at its `exp`).
fn renewed_cookie(state: &AppState, claims: &Claims) -> Option<String> {
    let lifetimes = state.check.session_cookie()?.lifetimes;
    let now = tokens::now();
    let half = i64::try_from(lifetimes.idle.as_secs() / 2).unwrap_or(i64::MAX);
    if claims.exp.saturating_sub(now) > half {
        return None;
    }
    let (user, sid, auth_time) = (claims.subject()?, claims.sid.as_deref()?, claims.auth_time?);
    let users = state.users.load();
    if !users.contains(user) {
        return None;
    }
    let issued = state
        .check
        .keys()
        .issue_session(user, users.groups_of(user), sid, auth_time, now, lifetimes)
        .ok()?;
    Some(
        state
            .browser
            .session_cookie(&issued.token, issued.expires_in),
    )
}

/// An answer with no body (kept empty by the edge), not to be cached.
fn empty(status: StatusCode) -> Response {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.extensions_mut().insert(KeepBody);
    res
}

/// The query of the original request, which may carry `token=`: from the original-request
/// header(s) `believed` names, else `own` (this request's query, for a proxy that rewrites the
/// target). `None` when they cannot be trusted to say one thing: two targets that differ (two
/// headers, or one sent twice; a client can add the header its proxy does not set, and the
/// application behind the proxy would see another query than the one checked), an
/// `X-Original-URL` that is not an absolute URL, or a target that is not UTF-8.
fn original_query<'a>(
    headers: &'a HeaderMap,
    own: Option<&'a str>,
    believed: ForwardedUriHeader,
) -> Option<Option<&'a str>> {
    let auto = believed == ForwardedUriHeader::Auto;
    let mut target: Option<&str> = None;
    for (name, read, is_url) in [
        (
            &X_ORIGINAL_URI,
            auto || believed == ForwardedUriHeader::XOriginalUri,
            false,
        ),
        (
            &X_FORWARDED_URI,
            auto || believed == ForwardedUriHeader::XForwardedUri,
            false,
        ),
        (&X_ORIGINAL_URL, auto, true),
    ] {
        if !read {
            continue;
        }
        for value in headers.get_all(name) {
            let text = std::str::from_utf8(value.as_bytes()).ok()?;
            let this = if is_url { url_target(text)? } else { text };
            match target {
                Some(seen) if seen != this => return None,
                _ => target = Some(this),
            }
        }
    }
    let Some(target) = target else {
        return Some(own);
    };
    Some(target.split_once('?').map(|(_, q)| q))
}

/// The request target (path and query) of an absolute URL, as `X-Original-URL` carries it
/// (`https://app.example.com/page?x=1` → `/page?x=1`); `None` for anything else.
fn url_target(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return None;
    }
    let start = rest.find(['/', '?']).unwrap_or(rest.len());
    Some(&rest[start..])
}
