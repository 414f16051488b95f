//! Where credentials travel in a request: HTTP Basic for the login, and the access token in the
//! `token` query parameter (the tutorial's way) or an `Authorization: Bearer` header (RFC 6750).
//! Plain functions over the raw strings and bytes, so they can be fuzzed without a server.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use secrecy::SecretString;

/// Standard base64 that accepts the payload with or without its `=` padding, as browsers and
/// HTTP clients differ there.
const BASIC_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A user name and password from an `Authorization: Basic` header.
#[derive(Debug)]
pub struct BasicCredentials {
    /// The user name (never empty, never contains `:`).
    pub username: String,
    /// The password; its `Debug` prints `[REDACTED]`.
    pub password: SecretString,
}

/// Reads `Authorization: Basic base64(user:password)` (RFC 7617). The scheme is matched without
/// regard to case; the decoded bytes must be UTF-8 and hold a colon after a non-empty user name.
/// Anything else is `None`, which the login answers with 401.
pub fn parse_basic(authorization: &[u8]) -> Option<BasicCredentials> {
    let value = std::str::from_utf8(authorization).ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = BASIC_B64.decode(rest.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (username, password) = decoded.split_once(':')?;
    if username.is_empty() {
        return None;
    }
    Some(BasicCredentials {
        username: username.to_owned(),
        password: SecretString::from(password),
    })
}

/// The query parameter that carries the token, as the tutorial names it.
pub const TOKEN_PARAM: &str = "token";
/// RFC 6750 §2.3's name for the same parameter. authd never reads a token from it; strict mode
/// refuses it like `token`, so that a client leaking tokens into URLs hears about it.
pub const ACCESS_TOKEN_PARAM: &str = "access_token";

/// What a request presents as its access token.
#[derive(Debug, PartialEq, Eq)]
pub enum PresentedToken<'a> {
    /// No token at all, or an empty one: "Token is missing!".
    Missing,
    /// One token, from the query or the Bearer header (or both, the same).
    Token(Cow<'a, str>),
    /// A Bearer header that is not text, a query token and a Bearer token that differ, a query
    /// token sent with an `Authorization` header that is neither Bearer nor Basic, a `token`
    /// parameter given more than once or an `Authorization` header sent more than once:
    /// "Token is invalid!".
    Conflicting,
}

/// Finds the access token in the query string (`token=`, URL-decoded) and the `Authorization`
/// header (`Bearer <token>`, scheme matched without regard to case), given as all the values the
/// request sent under that name (an `Option` for one or none).
///
/// Well-formed Basic credentials in `Authorization` are not a token and are ignored: browsers
/// send them again to every path after the login's `WWW-Authenticate: Basic` challenge. Any other
/// `Authorization` value next to a query token is refused as conflicting: RFC 6750 §2 lets a
/// client send its token one way only, and a credential we cannot read is not waved through.
/// So are a repeated `token` parameter and a repeated `Authorization` header, even when the
/// copies agree: an application behind authd that reads another copy than the one checked would
/// believe claims nobody verified, so there is no copy to choose.
pub fn find_token<'a>(
    query: Option<&'a str>,
    authorization: impl IntoIterator<Item = &'a [u8]>,
) -> PresentedToken<'a> {
    let mut authorization = authorization.into_iter();
    let header = authorization.next();
    if authorization.next().is_some() {
        return PresentedToken::Conflicting;
    }
    let from_query = match query.map(query_token) {
        Some(QueryParam::Repeated) => return PresentedToken::Conflicting,
        Some(QueryParam::One(t)) if !t.is_empty() => Some(t),
        _ => None,
    };
    let mut unreadable_header = false;
    let from_header = match header.map(|v| (v, bearer_token(v))) {
        None => None,
        Some((value, Bearer::OtherScheme)) => {
            unreadable_header = parse_basic(value).is_none();
            None
        }
        Some((_, Bearer::Malformed)) => return PresentedToken::Conflicting,
        Some((_, Bearer::Token(t))) => Some(t).filter(|t| !t.is_empty()),
    };
    match (from_query, from_header) {
        (None, None) => PresentedToken::Missing,
        (Some(_), None) if unreadable_header => PresentedToken::Conflicting,
        (Some(t), None) => PresentedToken::Token(t),
        (None, Some(h)) => PresentedToken::Token(Cow::Borrowed(h)),
        (Some(q), Some(h)) if q == h => PresentedToken::Token(Cow::Borrowed(h)),
        (Some(_), Some(_)) => PresentedToken::Conflicting,
    }
}

/// One parameter of a query string, as a form decoder reads it (Flask's `request.args`).
#[derive(Debug, PartialEq, Eq)]
pub enum QueryParam<'a> {
    /// Not there.
    Absent,
    /// There once, URL-decoded (possibly empty).
    One(Cow<'a, str>),
    /// There more than once (names compared after decoding).
    Repeated,
}

/// The `token` parameter of a query string.
pub fn query_token(query: &str) -> QueryParam<'_> {
    query_param(query, TOKEN_PARAM)
}

/// The parameter `name` of a query string: names and values URL-decoded like Flask's
/// `request.args`, so that `t%6Fken` is `token`.
pub fn query_param<'a>(query: &'a str, name: &str) -> QueryParam<'a> {
    let mut found = QueryParam::Absent;
    // Nothing escaped (a JWT is base64url and dots): each pair is what it says, and the value is
    // lent as it stands rather than decoded into a new string. The whole query is read either
    // way, since a repeat anywhere in it counts.
    if !is_escaped(query) {
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if key == name {
                if matches!(found, QueryParam::One(_)) {
                    return QueryParam::Repeated;
                }
                found = QueryParam::One(Cow::Borrowed(value));
            }
        }
        return found;
    }
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key == name {
            if matches!(found, QueryParam::One(_)) {
                return QueryParam::Repeated;
            }
            found = QueryParam::One(value);
        }
    }
    found
}

/// Whether a query string names a token parameter at all, `token` or RFC 6750's `access_token`
/// (empty or not, once or more): what strict mode refuses.
pub fn query_names_a_token(query: &str) -> bool {
    let names = [TOKEN_PARAM, ACCESS_TOKEN_PARAM];
    if !is_escaped(query) {
        return query
            .split('&')
            .any(|pair| names.contains(&pair.split_once('=').map_or(pair, |(k, _)| k)));
    }
    form_urlencoded::parse(query.as_bytes()).any(|(key, _)| names.contains(&key.as_ref()))
}

/// Whether a query holds anything a form decoder would change (`%XX` escapes, `+` for space).
fn is_escaped(query: &str) -> bool {
    query.bytes().any(|b| b == b'%' || b == b'+')
}

/// What a request's `Cookie` headers hold under one cookie name.
#[derive(Debug, PartialEq, Eq)]
pub enum CookieValue<'a> {
    /// Not there, or empty (a cleared cookie).
    Missing,
    /// There once.
    One(&'a str),
    /// There more than once (in one header or across several), or not text: a second copy is
    /// what a sibling subdomain planting its own cookie of that name looks like, and there is no
    /// telling which one the browser meant, so neither is read.
    Refused,
}

/// The cookie `name` in `headers`, the values of every `Cookie` header of a request (RFC 6265
/// §4.2.1: `name=value` pairs separated by `;`; HTTP/2 may split them over several headers).
/// Names are compared exactly, as browsers store them.
pub fn find_cookie<'a>(headers: impl IntoIterator<Item = &'a [u8]>, name: &str) -> CookieValue<'a> {
    let mut seen = false;
    let mut found = CookieValue::Missing;
    for header in headers {
        for pair in header.split(|b| *b == b';') {
            let pair = pair.trim_ascii();
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            if pair[..eq].trim_ascii() != name.as_bytes() {
                continue;
            }
            if seen {
                return CookieValue::Refused;
            }
            seen = true;
            match std::str::from_utf8(pair[eq + 1..].trim_ascii()) {
                Ok("") => {}
                Ok(v) => found = CookieValue::One(v),
                Err(_) => return CookieValue::Refused,
            }
        }
    }
    found
}

enum Bearer<'a> {
    OtherScheme,
    Malformed,
    Token(&'a str),
}

fn bearer_token(value: &[u8]) -> Bearer<'_> {
    const SCHEME: &[u8] = b"bearer";
    if value.len() < SCHEME.len() || !value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return Bearer::OtherScheme;
    }
    let rest = &value[SCHEME.len()..];
    match rest.first() {
        // "Bearer" alone: a Bearer header with an empty token.
        None => Bearer::Token(""),
        Some(b' ') => match std::str::from_utf8(rest) {
            Ok(s) => Bearer::Token(s.trim()),
            Err(_) => Bearer::Malformed,
        },
        // "Bearerfoo" is some other scheme.
        Some(_) => Bearer::OtherScheme,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use secrecy::ExposeSecret;

    fn basic(s: &str) -> Option<(String, String)> {
        parse_basic(s.as_bytes()).map(|c| (c.username, c.password.expose_secret().to_owned()))
    }

    #[test]
    fn basic_header_is_decoded_with_any_scheme_case_and_padding() {
        let want = Some(("user".to_owned(), "password".to_owned()));
        assert_eq!(basic("Basic dXNlcjpwYXNzd29yZA=="), want);
        assert_eq!(basic("basic dXNlcjpwYXNzd29yZA"), want);
        assert_eq!(basic("BASIC   dXNlcjpwYXNzd29yZA=="), want);
    }

    #[test]
    fn password_may_contain_colons_and_be_empty() {
        // "u:a:b" and "u:"
        assert_eq!(basic("Basic dTphOmI="), Some(("u".into(), "a:b".into())));
        assert_eq!(basic("Basic dTo="), Some(("u".into(), String::new())));
    }

    #[test]
    fn malformed_basic_headers_are_none() {
        for bad in [
            "",
            "Basic",
            "Basic ",
            "Bearer dXNlcjpwYXNzd29yZA==",
            "Basic !!!notbase64",
            "Basic dXNlcnBhc3N3b3Jk", // "userpassword": no colon
            "Basic OnBhc3N3b3Jk",     // ":password": empty user
            "Basic //79/Q==",         // non-UTF-8 bytes
            "Digest username=user",
        ] {
            assert_eq!(basic(bad), None, "{bad:?}");
        }
        assert!(parse_basic(b"Basic \xff\xfe").is_none());
    }

    #[test]
    fn token_comes_from_query_or_bearer() {
        assert_eq!(
            find_token(Some("token=abc"), None),
            PresentedToken::Token("abc".into())
        );
        assert_eq!(
            find_token(None, Some(&b"Bearer abc"[..])),
            PresentedToken::Token("abc".into())
        );
        assert_eq!(
            find_token(None, Some(&b"bearer   abc "[..])),
            PresentedToken::Token("abc".into())
        );
        assert_eq!(
            find_token(Some("x=1&token=a%2Bb&y=zzz"), None),
            PresentedToken::Token("a+b".into())
        );
        // The name is decoded too, as Flask decodes it.
        assert_eq!(
            find_token(Some("t%6Fken=abc"), None),
            PresentedToken::Token("abc".into())
        );
    }

    #[test]
    fn no_token_or_empty_token_is_missing() {
        assert_eq!(find_token(None, None), PresentedToken::Missing);
        assert_eq!(find_token(Some("token="), None), PresentedToken::Missing);
        assert_eq!(
            find_token(Some("tokens=abc"), None),
            PresentedToken::Missing
        );
        assert_eq!(
            find_token(None, Some(&b"Bearer"[..])),
            PresentedToken::Missing
        );
        assert_eq!(
            find_token(None, Some(&b"Bearer "[..])),
            PresentedToken::Missing
        );
        assert_eq!(
            find_token(None, Some(&b"Basic dXNlcjpwYXNzd29yZA=="[..])),
            PresentedToken::Missing
        );
    }

    #[test]
    fn query_and_bearer_that_differ_conflict_and_that_agree_do_not() {
        assert_eq!(
            find_token(Some("token=a"), Some(&b"Bearer b"[..])),
            PresentedToken::Conflicting
        );
        assert_eq!(
            find_token(Some("token=a"), Some(&b"Bearer a"[..])),
            PresentedToken::Token("a".into())
        );
        assert_eq!(
            find_token(None, Some(&b"Bearer \xff"[..])),
            PresentedToken::Conflicting
        );
    }

    #[test]
    fn query_token_with_basic_credentials_counts_but_with_another_authorization_conflicts() {
        // What a browser sends after answering the login's Basic challenge.
        assert_eq!(
            find_token(Some("token=a"), Some(&b"Basic dXNlcjpwYXNzd29yZA=="[..])),
            PresentedToken::Token("a".into())
        );
        for other in [
            &b"Digest username=user"[..],
            b"l7mH\"vE6?",
            b"Basic !!!",
            b"\xff",
        ] {
            assert_eq!(
                find_token(Some("token=a"), Some(other)),
                PresentedToken::Conflicting,
                "{other:?}"
            );
            // Without a query token it is still simply no token.
            assert_eq!(find_token(None, Some(other)), PresentedToken::Missing);
        }
        // An empty Bearer header next to a query token is no second token.
        assert_eq!(
            find_token(Some("token=a"), Some(&b"Bearer "[..])),
            PresentedToken::Token("a".into())
        );
    }

    #[test]
    fn a_repeated_token_parameter_or_authorization_header_conflicts_even_when_the_copies_agree() {
        for query in [
            "token=a&token=b",
            "token=a&token=a",
            "token=a&t%6Fken=a",
            "t%6Fken=a&x=1&token=b",
            "token=a&token=",
            "token=a&token",
            "token=&token=a",
        ] {
            assert_eq!(query_token(query), QueryParam::Repeated, "{query}");
            assert_eq!(
                find_token(Some(query), None),
                PresentedToken::Conflicting,
                "{query}"
            );
            // A Bearer header that agrees with one of the copies does not settle it.
            assert_eq!(
                find_token(Some(query), Some(&b"Bearer a"[..])),
                PresentedToken::Conflicting,
                "{query}"
            );
        }
        for headers in [
            [&b"Bearer a"[..], b"Bearer b"],
            [b"Bearer a", b"Bearer a"],
            [b"Basic dXNlcjpwYXNzd29yZA==", b"Bearer a"],
        ] {
            assert_eq!(find_token(None, headers), PresentedToken::Conflicting);
        }
        // One of each is the ordinary case.
        assert_eq!(
            find_token(Some("token=a"), [&b"Bearer a"[..]]),
            PresentedToken::Token("a".into())
        );
        // `tokens`, `access_token` and `x-token` are other names.
        assert_eq!(
            find_token(Some("tokens=b&access_token=c&x-token=d&token=a"), None),
            PresentedToken::Token("a".into())
        );
    }

    #[test]
    fn query_names_a_token_sees_token_and_access_token_however_spelt() {
        for query in [
            "token=a",
            "token=",
            "token",
            "x=1&access_token=a",
            "access_token=",
            "acce%73s_token=a",
            "t%6Fken=a",
            "token=a&token=b",
        ] {
            assert!(query_names_a_token(query), "{query}");
        }
        for query in [
            "",
            "tokens=a",
            "x=token",
            "access_tokens=a",
            "x=1&y=%74oken",
        ] {
            assert!(!query_names_a_token(query), "{query}");
        }
    }

    proptest! {
        #[test]
        fn basic_parser_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_basic(&bytes);
            let mut prefixed = b"Basic ".to_vec();
            prefixed.extend_from_slice(&bytes);
            let _ = parse_basic(&prefixed);
        }

        #[test]
        fn basic_parser_round_trips_what_clients_send(user in "[^:\\x00]{1,40}", pass in "\\PC{0,40}") {
            let header = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")));
            let got = parse_basic(header.as_bytes()).map(|c| (c.username, c.password.expose_secret().to_owned()));
            prop_assert_eq!(got, Some((user, pass)));
        }

        #[test]
        fn token_finder_never_panics_on_arbitrary_input(q in "\\PC{0,200}", h in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = find_token(Some(&q), Some(&h[..]));
            let mut bearer = b"Bearer ".to_vec();
            bearer.extend_from_slice(&h);
            let _ = find_token(Some(&q), Some(&bearer[..]));
        }

        #[test]
        fn query_token_reads_the_query_as_a_form_decoder_does(q in "(token|tok|t%6Fken|access_token|x|=|&|\\+|%2B|%|[a-z.]){0,12}") {
            // The reference: every `token` a form decoder finds; one is the token, more is a repeat.
            let mut copies = form_urlencoded::parse(q.as_bytes()).filter(|(k, _)| k == "token").map(|(_, v)| v);
            let reference = match (copies.next(), copies.next()) {
                (None, _) => QueryParam::Absent,
                (Some(v), None) => QueryParam::One(v),
                (Some(_), Some(_)) => QueryParam::Repeated,
            };
            prop_assert_eq!(query_token(&q), reference);
            let names = form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "token" || k == "access_token");
            prop_assert_eq!(query_names_a_token(&q), names);
        }

        #[test]
        fn a_query_with_the_token_twice_is_conflicting_wherever_the_copies_are(
            before in "(x=1&|tok=2&|)", between in "(&y=3|&tokens=4|)", after in "(&z|)",
            a in "[A-Za-z0-9._-]{0,20}", b in "[A-Za-z0-9._-]{0,20}", escaped in any::<bool>(),
        ) {
            let second = if escaped { "t%6Fken" } else { "token" };
            let q = format!("{before}token={a}{between}&{second}={b}{after}");
            prop_assert_eq!(query_token(&q), QueryParam::Repeated);
            prop_assert_eq!(find_token(Some(&q), None), PresentedToken::Conflicting);
        }

        #[test]
        fn token_finder_returns_the_url_decoded_query_token(t in "[A-Za-z0-9._~+/=-]{1,100}") {
            let q: String = form_urlencoded::Serializer::new(String::new()).append_pair("token", &t).finish();
            prop_assert_eq!(find_token(Some(&q), None), PresentedToken::Token(Cow::Owned(t)));
        }
    }

    #[test]
    fn a_cookie_is_found_once_and_refused_when_repeated_anywhere() {
        let one: [&[u8]; 1] = [b"a=1; authd=tok; b=2"];
        assert_eq!(find_cookie(one, "authd"), CookieValue::One("tok"));
        assert_eq!(
            find_cookie([&b"xauthd=1; authdx=2"[..]], "authd"),
            CookieValue::Missing
        );
        assert_eq!(find_cookie([&b"authd="[..]], "authd"), CookieValue::Missing);
        assert_eq!(
            find_cookie(Vec::<&[u8]>::new(), "authd"),
            CookieValue::Missing
        );
        assert_eq!(
            find_cookie([&b"authd=a; authd=a"[..]], "authd"),
            CookieValue::Refused
        );
        assert_eq!(
            find_cookie([&b"authd=a"[..], &b"x=1;authd=b"[..]], "authd"),
            CookieValue::Refused
        );
        assert_eq!(
            find_cookie([&b"authd=; authd=b"[..]], "authd"),
            CookieValue::Refused
        );
        assert_eq!(
            find_cookie([&b"authd=\xff"[..]], "authd"),
            CookieValue::Refused
        );
    }
}
