//! The pages people see: `GET`/`POST /signin` (the form, then the session cookie and the way
//! back to `rd`), `GET`/`POST /signout`, and the 403 page `/verify` shows a signed-in person the
//! rules refuse. Small HTML, no script, no external asset; every answer carries the headers of
//! [`html`] (a CSP without script, no framing, no referrer, no caching).

use std::sync::LazyLock;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use secrecy::SecretString;

use super::AppState;
use super::client_addr::ClientAddr;
use super::edge::KeepBody;
use super::error::{ApiError, Cause};
use super::login::sign_in;
use crate::browser::{BrowserSettings, Csrf, escape_html};
use crate::tokens::IssuedToken;
use crate::transport::{CookieValue, QueryParam, find_cookie, query_param};

/// The pages' one style sheet, inline: allowed by its hash in the CSP, so no `unsafe-inline`.
const CSS: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1b1f24}\
main{max-width:22rem;margin:10vh auto;padding:2rem;background:#fff;border-radius:8px;\
box-shadow:0 1px 4px rgba(0,0,0,.15)}h1{font-size:1.4rem;margin:0 0 .25rem}\
p.app{margin:0 0 1rem;color:#57606a}label{display:block;margin-top:1rem;font-weight:600}\
input{box-sizing:border-box;width:100%;padding:.6rem;margin-top:.25rem;font-size:1rem;\
border:1px solid #8c959f;border-radius:6px}button{margin-top:1.5rem;width:100%;padding:.7rem;\
font-size:1rem;font-weight:600;color:#fff;background:#1f6feb;border:0;border-radius:6px;\
cursor:pointer}button:focus,input:focus{outline:3px solid #0969da;outline-offset:1px}\
p.error{padding:.6rem;background:#ffebe9;border:1px solid #cf222e;border-radius:6px;color:#82071e}\
@media (max-width:26rem){main{margin:0;border-radius:0;box-shadow:none}}";

/// `'sha256-…'` of [`CSS`], for the CSP's `style-src`.
static STYLE_SOURCE: LazyLock<String> = LazyLock::new(|| {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(CSS.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
});

/// The fields of the sign-in form.
const USERNAME: &str = "username";
const PASSWORD: &str = "password";
const RD: &str = "rd";
const CSRF: &str = "csrf";

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// An HTML answer: `status`, `body`, and the headers every page carries. Kept as it is by the
/// edge's JSON rewrite of error answers.
pub(super) fn html(status: StatusCode, body: String, browser: &BrowserSettings) -> Response {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    let csp = format!(
        "default-src 'none'; style-src {}; form-action {}; frame-ancestors 'none'; base-uri 'none'",
        *STYLE_SOURCE,
        browser.form_action()
    );
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res.extensions_mut().insert(KeepBody);
    res
}

/// A whole page: `title` and `main` (already escaped) inside the document.
fn page(status: StatusCode, title: &str, main: &str, browser: &BrowserSettings) -> Response {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{CSS}</style></head>\
         <body><main>{main}</main></body></html>\n"
    );
    html(status, body, browser)
}

/// "to NAME", when the app has a name.
fn app_line(browser: &BrowserSettings) -> String {
    browser
        .app_name
        .as_deref()
        .map(|n| format!("<p class=\"app\">to {}</p>", escape_html(n)))
        .unwrap_or_default()
}

/// The sign-in form, with `error` above it when the last try failed.
fn signin_form(
    state: &AppState,
    status: StatusCode,
    rd: &str,
    nonce: &str,
    error: Option<&str>,
) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape_html(e)))
        .unwrap_or_default();
    let main = format!(
        "<h1>Sign in</h1>{app}{error}\
         <form method=\"post\" action=\"signin\">\
         <input type=\"hidden\" name=\"{CSRF}\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"{RD}\" value=\"{rd}\">\
         <label for=\"username\">Username</label>\
         <input id=\"username\" name=\"{USERNAME}\" autocomplete=\"username\" autocapitalize=\"none\" \
         spellcheck=\"false\" required autofocus>\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"{PASSWORD}\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Sign in</button></form>",
        app = app_line(&state.browser),
        csrf = escape_html(&state.csrf.form_token(nonce)),
        rd = escape_html(rd),
    );
    page(status, "Sign in", &main, &state.browser)
}

/// The sign-out button, as a form (a `POST`, with its CSRF field).
fn signout_form(state: &AppState, nonce: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"{CSRF}\" value=\"{csrf}\">\
         <button type=\"submit\">Sign out</button></form>",
        action = escape_html(&state.browser.signout_url()),
        csrf = escape_html(&state.csrf.form_token(nonce)),
    )
}

/// The browser's CSRF nonce, if its cookie holds one, else a new one with the `Set-Cookie` that
/// stores it.
fn csrf_nonce(state: &AppState, headers: &HeaderMap) -> Result<(String, Option<String>), ApiError> {
    if let Some(n) = sent_nonce(state, headers) {
        return Ok((n.to_owned(), None));
    }
    let n = Csrf::new_nonce()
        .map_err(|e| ApiError::Internal(Cause::new("no random bytes for a CSRF nonce", &e)))?;
    let set = state.browser.csrf_cookie(&n);
    Ok((n, Some(set)))
}

/// The CSRF nonce the browser sent back in its cookie, when it has the right shape.
fn sent_nonce<'h>(state: &AppState, headers: &'h HeaderMap) -> Option<&'h str> {
    let values = headers
        .get_all(header::COOKIE)
        .into_iter()
        .map(|v| v.as_bytes());
    match find_cookie(values, state.browser.csrf_cookie_name()) {
        CookieValue::One(n) if Csrf::is_nonce(n) => Some(n),
        _ => None,
    }
}

/// Adds `set_cookie` to `res`.
fn with_cookie(mut res: Response, set_cookie: Option<&str>) -> Response {
    if let Some(v) = set_cookie.and_then(|c| HeaderValue::from_str(c).ok()) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// A page for an error on our side, keeping the error's status and its cause for the edge's log.
fn failure(state: &AppState, error: ApiError) -> Response {
    let status = error.status();
    let text = match status {
        StatusCode::SERVICE_UNAVAILABLE => "Server busy — try again in a moment.",
        _ => "Something went wrong on our side — try again later.",
    };
    let answer = error.into_response();
    let mut res = page(
        status,
        "Sign in",
        &format!("<h1>Sorry</h1><p class=\"error\" role=\"alert\">{text}</p>"),
        &state.browser,
    );
    for name in [header::RETRY_AFTER] {
        if let Some(v) = answer.headers().get(&name) {
            res.headers_mut().insert(name, v.clone());
        }
    }
    if let Some(cause) = answer.extensions().get::<Cause>() {
        res.extensions_mut().insert(cause.clone());
    }
    res
}

/// Whether a form post may have come from another site: a `Sec-Fetch-Site` that is not
/// `same-origin` (browsers send it on every request; `same-site` is refused too, since a sibling
/// subdomain is not authd), or an `Origin` that is not authd's (the sign-in URL's origin when
/// configured, else the `Host` the request names; `null` only beside `Sec-Fetch-Site:
/// same-origin`, or in plain-HTTP development). Either header repeated is refused too.
fn cross_site(state: &AppState, headers: &HeaderMap) -> bool {
    let one = |name: &HeaderName| -> Result<Option<&str>, ()> {
        let mut values = headers.get_all(name).into_iter();
        let first = values.next();
        if values.next().is_some() {
            return Err(());
        }
        first.map(|v| v.to_str().map_err(|_| ())).transpose()
    };
    let Ok(fetch_site) = one(&SEC_FETCH_SITE) else {
        return true;
    };
    if fetch_site.is_some_and(|s| !s.eq_ignore_ascii_case("same-origin")) {
        return true;
    }
    let Ok(origin) = one(&header::ORIGIN) else {
        return true;
    };
    // Under `Referrer-Policy: no-referrer` (every page's) Chromium sends `Origin: null` with the
    // page's own posts; over HTTPS its `Sec-Fetch-Site: same-origin` vouches for them. Over
    // plain HTTP (AUTHD_COOKIE_SECURE=false, loopback development) browsers send no
    // `Sec-Fetch-*` at all, and the CSRF field alone stands.
    let vouched = fetch_site.is_some() || !state.browser.cookie_secure;
    let Some(origin) = origin.filter(|o| !(*o == "null" && vouched)) else {
        return false;
    };
    match &state.browser.signin_url {
        Some(u) => origin != u.origin().ascii_serialization(),
        None => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
            let named = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            named.is_none() || named != host
        }
    }
}

/// A refused form post: 403 with a page saying what to do.
fn refused_post(state: &AppState, why: &str) -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Refused",
        &format!(
            "<h1>Refused</h1><p class=\"error\" role=\"alert\">{}</p>\
             <p><a href=\"signin\">Open the sign-in page again</a></p>",
            escape_html(why)
        ),
        &state.browser,
    )
}

/// The form fields `names` of an `application/x-www-form-urlencoded` body, each at most once
/// (`None` when one is repeated: there is no telling which copy was meant); missing fields are
/// empty.
fn form_fields<const N: usize>(body: &[u8], names: [&str; N]) -> Option<[String; N]> {
    let mut out: [Option<String>; N] = std::array::from_fn(|_| None);
    for (key, value) in form_urlencoded::parse(body) {
        if let Some(i) = names.iter().position(|n| *n == key) {
            if out[i].is_some() {
                return None;
            }
            out[i] = Some(value.into_owned());
        }
    }
    Some(out.map(Option::unwrap_or_default))
}

/// `rd` from a query: its one value (a repeated or absent one is none).
fn query_rd(uri: &Uri) -> String {
    match uri.query().map(|q| query_param(q, RD)) {
        Some(QueryParam::One(v)) => v.into_owned(),
        _ => String::new(),
    }
}

/// The sign-in page: the form, or, for someone already signed in, who they are.
#[utoipa::path(
    get,
    path = "/signin",
    tag = "browser",
    summary = "The sign-in page (HTML)",
    params(("rd" = Option<String>, Query, description = "Where to return after signing in: an https URL in the cookie domain; anything else falls back to the default page")),
    responses((status = 200, description = "The sign-in form, or who is signed in.", content_type = "text/html", body = String)),
)]
pub(super) async fn signin_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let rd = query_rd(&uri);
    let (nonce, set) = match csrf_nonce(&state, &headers) {
        Ok(n) => n,
        Err(e) => return failure(&state, e),
    };
    let res = match state.check.judge_with_cookie(None, &headers) {
        Ok(checked) if checked.from_cookie => {
            let who = escape_html(checked.claims.subject().unwrap_or_default());
            let next = state
                .browser
                .safe_redirect(&rd)
                .map(|u| format!("<p><a href=\"{}\">Continue</a></p>", escape_html(&u)))
                .unwrap_or_default();
            let main = format!(
                "<h1>Signed in</h1>{}<p>You are signed in as <strong>{who}</strong>.</p>{next}{}",
                app_line(&state.browser),
                signout_form(&state, &nonce)
            );
            page(StatusCode::OK, "Signed in", &main, &state.browser)
        }
        _ => signin_form(&state, StatusCode::OK, &rd, &nonce, None),
    };
    with_cookie(res, set.as_deref())
}

/// Checks the credentials exactly as `POST /login` does (the same throttle, hashing pool and
/// timing defence), then starts a session, sets its cookie and sends the browser on to `rd`.
#[utoipa::path(
    post,
    path = "/signin",
    tag = "browser",
    summary = "Sign in from the form (HTML)",
    request_body(content_type = "application/x-www-form-urlencoded", description = "`username`, `password`, `rd`, `csrf` (from the form and its cookie)", content = String),
    responses(
        (status = 303, description = "Signed in: the session cookie is set; on to `rd` or the default page.",
            headers(("Location" = String, description = "Where to go next"), ("Set-Cookie" = String, description = "The session cookie"))),
        (status = 400, description = "A field given twice.", content_type = "text/html", body = String),
        (status = 401, description = "Wrong username or password: the form again, with the error.", content_type = "text/html", body = String),
        (status = 403, description = "A cross-site post, or a missing or wrong CSRF field.", content_type = "text/html", body = String),
        (status = 429, description = "Too many failed sign-ins for this user or address.", content_type = "text/html", body = String,
            headers(("Retry-After" = String, description = "Seconds until the ban ends"))),
        (status = 503, description = "Password hashing or the database is saturated; try again.", content_type = "text/html", body = String),
    ),
)]
pub(super) async fn signin(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some([username, password, rd, csrf]) = form_fields(&body, [USERNAME, PASSWORD, RD, CSRF])
    else {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign in",
            "<h1>Bad request</h1><p class=\"error\" role=\"alert\">A form field was sent twice.</p>",
            &state.browser,
        );
    };
    if cross_site(&state, &headers) {
        return refused_post(&state, "This form was sent from another site.");
    }
    let Some(nonce) = sent_nonce(&state, &headers).filter(|n| state.csrf.check(n, &csrf)) else {
        return refused_post(
            &state,
            "This form has expired or did not come from this page; open it again.",
        );
    };
    let nonce = nonce.to_owned();
    if username.is_empty() || password.is_empty() {
        return signin_form(
            &state,
            StatusCode::UNAUTHORIZED,
            &rd,
            &nonce,
            Some("Wrong username or password"),
        );
    }
    let password = SecretString::from(password);
    let result = sign_in(
        &state,
        client,
        username,
        password,
        |state, attempt, username, now| async move {
            let lifetimes = state.browser.lifetimes;
            let sid = state
                .sessions
                .start_cookie_session(
                    &state.throttle,
                    &attempt,
                    &username,
                    now,
                    lifetimes.lifetime,
                )
                .await?;
            let groups = state.users.load().groups_of(&username).to_vec();
            state
                .check
                .keys()
                .issue_session(&username, &groups, &sid, now, now, lifetimes)
                .map_err(|e| ApiError::Internal(Cause::new("cannot sign a session cookie", &e)))
        },
    )
    .await;
    match result {
        Ok(IssuedToken { token, expires_in }) => {
            let to = state
                .browser
                .safe_redirect(&rd)
                .unwrap_or_else(|| state.browser.fallback_redirect());
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::SEE_OTHER;
            let h = res.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&to) {
                h.insert(header::LOCATION, v);
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            with_cookie(res, Some(&state.browser.session_cookie(&token, expires_in)))
        }
        Err(ApiError::CouldNotVerify) => signin_form(
            &state,
            StatusCode::UNAUTHORIZED,
            &rd,
            &nonce,
            Some("Wrong username or password"),
        ),
        Err(ApiError::TooManyAttempts { retry_after }) => {
            let minutes = retry_after.div_ceil(60).max(1);
            let unit = if minutes == 1 { "minute" } else { "minutes" };
            let mut res = signin_form(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                &rd,
                &nonce,
                Some(&format!(
                    "Too many attempts — try again in {minutes} {unit}"
                )),
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            res
        }
        Err(ApiError::Busy) => {
            let mut res = signin_form(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                &rd,
                &nonce,
                Some("Server busy"),
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            res
        }
        Err(e) => failure(&state, e),
    }
}

/// The sign-out page: one button.
#[utoipa::path(
    get,
    path = "/signout",
    tag = "browser",
    summary = "The sign-out page (HTML)",
    responses((status = 200, description = "A sign-out button.", content_type = "text/html", body = String)),
)]
pub(super) async fn signout_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (nonce, set) = match csrf_nonce(&state, &headers) {
        Ok(n) => n,
        Err(e) => return failure(&state, e),
    };
    let main = format!(
        "<h1>Sign out</h1>{}<p>End your session on every app it opens.</p>{}",
        app_line(&state.browser),
        signout_form(&state, &nonce)
    );
    with_cookie(
        page(StatusCode::OK, "Sign out", &main, &state.browser),
        set.as_deref(),
    )
}

/// Ends the session of the browser's cookie in the sessions store and clears the cookie.
#[utoipa::path(
    post,
    path = "/signout",
    tag = "browser",
    summary = "Sign out (HTML)",
    request_body(content_type = "application/x-www-form-urlencoded", description = "`csrf` (from the form and its cookie)", content = String),
    responses(
        (status = 200, description = "Signed out: the session ended and its cookie cleared.", content_type = "text/html", body = String,
            headers(("Set-Cookie" = String, description = "Clears the session cookie"))),
        (status = 400, description = "A field given twice.", content_type = "text/html", body = String),
        (status = 403, description = "A cross-site post, or a missing or wrong CSRF field.", content_type = "text/html", body = String),
        (status = 503, description = "The database did not answer: the session could not be ended; try again.", content_type = "text/html", body = String),
    ),
)]
pub(super) async fn signout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some([csrf]) = form_fields(&body, [CSRF]) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign out",
            "<h1>Bad request</h1><p class=\"error\" role=\"alert\">A form field was sent twice.</p>",
            &state.browser,
        );
    };
    if cross_site(&state, &headers) {
        return refused_post(&state, "This form was sent from another site.");
    }
    if !sent_nonce(&state, &headers).is_some_and(|n| state.csrf.check(n, &csrf)) {
        return refused_post(
            &state,
            "This form has expired or did not come from this page; open it again.",
        );
    }
    let sid = state
        .check
        .judge_with_cookie(None, &headers)
        .ok()
        .filter(|c| c.from_cookie)
        .and_then(|c| c.claims.sid);
    if let Some(sid) = sid
        && let Err(e) = state.sessions.end_by_id(&sid, crate::tokens::now()).await
    {
        // The cookie stays: a sign-out that did not end the session must not look as if it had.
        return failure(&state, e.into());
    }
    let main = format!(
        "<h1>Signed out</h1>{}<p>Your session has ended.</p><p><a href=\"signin\">Sign in again</a></p>",
        app_line(&state.browser)
    );
    with_cookie(
        page(StatusCode::OK, "Signed out", &main, &state.browser),
        Some(&state.browser.clear_session_cookie()),
    )
}

/// The 403 page for a signed-in person the rules of a `/verify` location do not let in: who
/// they are, and a way to sign out (to sign in as someone else), rather than a sign-in loop.
pub(super) fn forbidden_page(state: &AppState, user: &str) -> Response {
    let main = format!(
        "<h1>Not allowed</h1><p>You are signed in as <strong>{}</strong>, \
         who may not open this page.</p><p><a href=\"{}\">Sign out</a></p>",
        escape_html(user),
        escape_html(&state.browser.signout_url()),
    );
    page(StatusCode::FORBIDDEN, "Not allowed", &main, &state.browser)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_read_once_each() {
        let f = form_fields(
            b"username=al%69ce&password=p+w&x=1",
            [USERNAME, PASSWORD, RD],
        );
        assert_eq!(
            f,
            Some(["alice".to_owned(), "p w".to_owned(), String::new()])
        );
        assert_eq!(form_fields(b"rd=a&rd=b", [RD]), None);
        assert_eq!(form_fields(b"r%64=a&rd=b", [RD]), None);
    }
}
