//! People with browsers: the session cookie's settings and its `Set-Cookie` lines, the `rd`
//! redirect target's open-redirect defence, the sign-in forms' CSRF tokens and HTML escaping.
//! Plain Rust with no HTTP framework in it; the pages themselves are in `http::pages`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq as _;
use url::{Host, Url};

use crate::keys::DerivedKey;
use crate::tokens::CookieLifetimes;

/// Longest `rd` followed, in bytes; a longer one falls back to the default page.
pub const MAX_REDIRECT_BYTES: usize = 2048;
/// Longest `AUTHD_APP_NAME`, in characters.
pub const MAX_APP_NAME_CHARS: usize = 64;

/// How authd serves people with browsers (the `AUTHD_COOKIE_*`, `AUTHD_SIGNIN_URL`,
/// `AUTHD_DEFAULT_REDIRECT` and `AUTHD_APP_NAME` settings), checked by `config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSettings {
    /// `AUTHD_COOKIE_DOMAIN`: the cookie covers this domain and its subdomains, and `rd` may
    /// lead to any of them; without it the cookie is host-only (`__Host-` prefix).
    pub cookie_domain: Option<String>,
    /// `AUTHD_COOKIE_SECURE`: the cookie is sent over HTTPS only (off only for plain-HTTP
    /// loopback development).
    pub cookie_secure: bool,
    /// `AUTHD_COOKIE_IDLE` and `AUTHD_COOKIE_LIFETIME`.
    pub lifetimes: CookieLifetimes,
    /// `AUTHD_SIGNIN_URL`: where people reach `/signin` (through the proxy); `/verify` sends
    /// browsers there. Without it `/verify` never redirects.
    pub signin_url: Option<Url>,
    /// `AUTHD_DEFAULT_REDIRECT`: where a sign-in without a usable `rd` lands.
    pub default_redirect: Option<Url>,
    /// `AUTHD_APP_NAME`: named on the sign-in page.
    pub app_name: Option<String>,
}

impl Default for BrowserSettings {
    fn default() -> Self {
        Self {
            cookie_domain: None,
            cookie_secure: true,
            lifetimes: CookieLifetimes::default(),
            signin_url: None,
            default_redirect: None,
            app_name: None,
        }
    }
}

impl BrowserSettings {
    /// The session cookie's name. With `Secure`, a prefix browsers enforce (RFC 6265bis §4.1.3):
    /// `__Host-` (host-only, `Path=/`: no subdomain can plant or overwrite it) or `__Secure-`
    /// (with `AUTHD_COOKIE_DOMAIN`).
    pub fn cookie_name(&self) -> &'static str {
        match (self.cookie_secure, self.cookie_domain.is_some()) {
            (true, false) => "__Host-authd_session",
            (true, true) => "__Secure-authd_session",
            (false, _) => "authd_session",
        }
    }

    /// The CSRF cookie's name: always host-only, on authd's own host.
    pub fn csrf_cookie_name(&self) -> &'static str {
        if self.cookie_secure {
            "__Host-authd_csrf"
        } else {
            "authd_csrf"
        }
    }

    /// The `Set-Cookie` value that stores the session cookie `value` for `max_age` seconds:
    /// `HttpOnly` (no script reads it), `SameSite=Lax` (not sent on cross-site posts), `Path=/`.
    pub fn session_cookie(&self, value: &str, max_age: u64) -> String {
        let mut c = format!(
            "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax",
            self.cookie_name()
        );
        if self.cookie_secure {
            c.push_str("; Secure");
        }
        if let Some(d) = &self.cookie_domain {
            c.push_str("; Domain=");
            c.push_str(d);
        }
        c
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn clear_session_cookie(&self) -> String {
        self.session_cookie("", 0)
    }

    /// The `Set-Cookie` value of the CSRF cookie `nonce`: `SameSite=Strict`, for the browser
    /// session (no `Max-Age`).
    pub fn csrf_cookie(&self, nonce: &str) -> String {
        let secure = if self.cookie_secure { "; Secure" } else { "" };
        format!(
            "{}={nonce}; Path=/; HttpOnly; SameSite=Strict{secure}",
            self.csrf_cookie_name()
        )
    }

    /// Where a sign-in lands when its `rd` is missing or refused: `AUTHD_DEFAULT_REDIRECT`, else
    /// the sign-in page itself (which then says who is signed in).
    pub fn fallback_redirect(&self) -> String {
        match (&self.default_redirect, &self.signin_url) {
            (Some(u), _) | (None, Some(u)) => u.as_str().to_owned(),
            (None, None) => "signin".to_owned(),
        }
    }

    /// The sign-out page's address, for pages served at an application's URL (the 403 page).
    pub fn signout_url(&self) -> String {
        self.signin_url
            .as_ref()
            .and_then(|u| u.join("signout").ok())
            .map_or_else(|| "signout".to_owned(), String::from)
    }

    /// `rd` as a redirect target, if it may be followed: an absolute `https` URL (`http` too when
    /// the cookie is not `Secure`), or a path on the sign-in URL's host, whose host is the cookie
    /// domain or one of its subdomains, or (host-only cookie) the sign-in URL's host; no user
    /// name or password in it; no backslash, whitespace or control character anywhere (browsers
    /// read `\` as `/` and drop tabs, so such a URL could mean another host to them than to us);
    /// at most [`MAX_REDIRECT_BYTES`]. The URL is parsed as browsers parse it (WHATWG, the `url`
    /// crate) and the answer is that parse written out again, so the host checked is the host
    /// the browser goes to. `None`: use [`BrowserSettings::fallback_redirect`].
    pub fn safe_redirect(&self, rd: &str) -> Option<String> {
        if rd.is_empty()
            || rd.len() > MAX_REDIRECT_BYTES
            || rd
                .chars()
                .any(|c| c == '\\' || c.is_whitespace() || c.is_control())
        {
            return None;
        }
        let url = if rd.starts_with('/') {
            if rd.starts_with("//") {
                return None;
            }
            self.signin_url.as_ref()?.join(rd).ok()?
        } else {
            Url::parse(rd).ok()?
        };
        let scheme_ok = match url.scheme() {
            "https" => true,
            "http" => !self.cookie_secure,
            _ => false,
        };
        if !scheme_ok || !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let host_ok = match url.host()? {
            Host::Domain(host) => {
                let in_domain = self.cookie_domain.as_deref().is_some_and(|d| {
                    host == d
                        || host
                            .strip_suffix(d)
                            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
                });
                in_domain || self.is_signin_host(&url)
            }
            Host::Ipv4(_) | Host::Ipv6(_) => self.is_signin_host(&url),
        };
        host_ok.then(|| url.into())
    }

    /// Whether `url` is on the sign-in URL's host (when the cookie is host-only, the one host it
    /// is sent to).
    fn is_signin_host(&self, url: &Url) -> bool {
        self.cookie_domain.is_none()
            && self
                .signin_url
                .as_ref()
                .is_some_and(|s| s.host() == url.host())
    }

    /// The origins a sign-in form may send the browser on to (CSP `form-action`: Chromium
    /// applies it to the redirect after the post): authd's own, the cookie domain and its
    /// subdomains, the default page's.
    pub fn form_action(&self) -> String {
        let mut sources = vec!["'self'".to_owned()];
        let schemes: &[&str] = if self.cookie_secure {
            &["https"]
        } else {
            &["https", "http"]
        };
        if let Some(d) = &self.cookie_domain {
            for s in schemes {
                sources.push(format!("{s}://{d}:*"));
                sources.push(format!("{s}://*.{d}:*"));
            }
        }
        for u in [&self.signin_url, &self.default_redirect]
            .into_iter()
            .flatten()
        {
            sources.push(u.origin().ascii_serialization());
        }
        sources.join(" ")
    }
}

/// The sign-in and sign-out forms' CSRF defence (OWASP's signed double-submit cookie): the
/// browser holds a random nonce in a host-only `SameSite=Strict` cookie, and each form carries
/// `HMAC(key, nonce)`. A cross-site page can make the browser post, but cannot read or set the
/// cookie, so it cannot write the matching form field; the key comes from the signing secret
/// (`DerivedKey`), so nobody else can compute a field for a nonce they planted.
#[derive(Debug, Clone)]
pub struct Csrf {
    key: DerivedKey,
}

impl Csrf {
    /// The CSRF keys under `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: DerivedKey::derive(secret, "authd csrf v1"),
        }
    }

    /// A fresh nonce for the CSRF cookie: 16 random bytes, base64url (22 characters).
    pub fn new_nonce() -> Result<String, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Whether `nonce` has the shape [`Csrf::new_nonce`] gives (a cookie value a browser sent
    /// back, to reuse rather than replace, so that forms open in other tabs stay valid).
    pub fn is_nonce(nonce: &str) -> bool {
        nonce.len() == 22
            && nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    /// The form field for `nonce`.
    pub fn form_token(&self, nonce: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.key.mac(nonce.as_bytes()))
    }

    /// Whether `token` is the form field for `nonce`, compared in constant time.
    pub fn check(&self, nonce: &str, token: &str) -> bool {
        Self::is_nonce(nonce)
            && bool::from(self.form_token(nonce).as_bytes().ct_eq(token.as_bytes()))
    }
}

/// `text` escaped for HTML text and double-quoted attribute values: `&`, `<`, `>`, `"` and `'`
/// become character references, so no user-supplied text (a user name, an `rd`, the app's name)
/// can open a tag or leave an attribute.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(domain: Option<&str>) -> BrowserSettings {
        BrowserSettings {
            cookie_domain: domain.map(str::to_owned),
            signin_url: Some(Url::parse("https://auth.example.com/signin").unwrap()),
            ..BrowserSettings::default()
        }
    }

    #[test]
    fn redirects_within_the_cookie_domain_are_followed() {
        let s = settings(Some("example.com"));
        for ok in [
            "https://app.example.com/",
            "https://example.com/x?y=1#z",
            "https://a.b.example.com:8443/deep/path",
            "https://APP.Example.com/",
            "/local/path",
        ] {
            assert!(s.safe_redirect(ok).is_some(), "{ok}");
        }
        assert_eq!(
            s.safe_redirect("https://APP.example.com/a").as_deref(),
            Some("https://app.example.com/a")
        );
        assert_eq!(
            s.safe_redirect("/local").as_deref(),
            Some("https://auth.example.com/local")
        );
    }

    #[test]
    fn every_open_redirect_trick_falls_back() {
        let s = settings(Some("example.com"));
        for bad in [
            "//evil.example",
            "//evil.example/path",
            "https://example.com.evil.example/",
            "https://evilexample.com/",
            "https://evil.example/?https://app.example.com",
            "https://app.example.com@evil.example/",
            "https://user:pw@app.example.com/",
            "javascript:alert(1)",
            "JavaScript:alert(document.cookie)",
            "data:text/html,<script>alert(1)</script>",
            "http://app.example.com/",
            "https:\\\\evil.example",
            "/\\evil.example",
            "\\/evil.example",
            "https://app.example.com\\@evil.example",
            "/%2F%2Fevil.example",
            "https://evil.example%2F.example.com/",
            "https://evil%2Eexample/",
            "https://app.example.com%00.evil.example/",
            "https://app.example.com%40evil.example/",
            "\t//evil.example",
            "https://evil.example\t.example.com/",
            "https://app.example.com.\u{3002}evil.example/",
            "ftp://app.example.com/",
            "",
        ] {
            let got = s.safe_redirect(bad);
            assert!(
                got.as_deref().is_none_or(|u| Url::parse(u)
                    .unwrap()
                    .host_str()
                    .is_some_and(|h| h == "example.com" || h.ends_with(".example.com"))),
                "{bad:?} -> {got:?}"
            );
        }
        // The ones that must not be followed at all.
        for bad in [
            "//evil.example",
            "https://example.com.evil.example/",
            "javascript:alert(1)",
            "https://app.example.com@evil.example/",
            "https:\\\\evil.example",
            "/\\evil.example",
            "http://app.example.com/",
        ] {
            assert_eq!(s.safe_redirect(bad), None, "{bad:?}");
        }
        let long = format!("https://app.example.com/{}", "a".repeat(MAX_REDIRECT_BYTES));
        assert_eq!(s.safe_redirect(&long), None);
    }

    #[test]
    fn a_host_only_cookie_redirects_to_the_signin_host_only() {
        let s = settings(None);
        assert!(s.safe_redirect("https://auth.example.com/app").is_some());
        assert_eq!(s.safe_redirect("https://app.example.com/"), None);
        let none = BrowserSettings::default();
        assert_eq!(none.safe_redirect("https://app.example.com/"), None);
        assert_eq!(none.safe_redirect("/x"), None);
        assert_eq!(none.fallback_redirect(), "signin");
    }

    #[test]
    fn plain_http_is_followed_only_when_the_cookie_is_not_secure() {
        let mut s = settings(Some("example.test"));
        assert_eq!(s.safe_redirect("http://app.example.test:8080/"), None);
        s.cookie_secure = false;
        assert_eq!(
            s.safe_redirect("http://app.example.test:8080/").as_deref(),
            Some("http://app.example.test:8080/")
        );
    }

    #[test]
    fn cookies_carry_their_prefix_and_attributes() {
        let mut s = settings(None);
        let c = s.session_cookie("v", 60);
        assert_eq!(
            c,
            "__Host-authd_session=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        s.cookie_domain = Some("example.com".into());
        assert!(
            s.session_cookie("v", 60)
                .starts_with("__Secure-authd_session=v;")
        );
        assert!(
            s.session_cookie("v", 60)
                .ends_with("; Secure; Domain=example.com")
        );
        s.cookie_secure = false;
        assert!(!s.session_cookie("v", 60).contains("Secure"));
        assert!(s.clear_session_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn csrf_tokens_match_their_nonce_only() {
        let c = Csrf::new(b"secret-secret-secret-secret-secret");
        let n = Csrf::new_nonce().unwrap();
        assert!(Csrf::is_nonce(&n));
        let t = c.form_token(&n);
        assert!(c.check(&n, &t));
        let other = Csrf::new_nonce().unwrap();
        assert!(!c.check(&other, &t));
        assert!(!c.check(&n, ""));
        assert!(!c.check("short", &c.form_token("short")));
        let elsewhere = Csrf::new(b"another-secret-another-secret-xx");
        assert!(!elsewhere.check(&n, &t));
    }

    #[test]
    fn html_escape_leaves_no_markup() {
        assert_eq!(
            escape_html(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape_html("alice"), "alice");
    }
}
