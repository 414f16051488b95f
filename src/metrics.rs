//! The server's counters and histograms, rendered in the Prometheus text format.
//!
//! Each [`Metrics`] owns its own recorder instead of installing the process-global one, so two
//! servers in one process (tests running in parallel) count separately. Every series is registered
//! once, up front; recording is then an atomic operation on a handle, cheap enough for every
//! request. Plain Rust with no HTTP in it.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Logins by outcome (`outcome` label).
pub const LOGINS: &str = "authd_logins_total";
/// Token checks (on `/protected` and `/verify`) by outcome (`outcome` label).
pub const TOKEN_CHECKS: &str = "authd_token_checks_total";
/// Name of the refresh counter.
pub const REFRESHES: &str = "authd_refreshes_total";
/// Time from a request reaching the router to its answer, by matched route (`route` label).
pub const REQUEST_DURATION: &str = "authd_http_request_duration_seconds";
/// Password hashes running right now.
pub const HASHES_IN_FLIGHT: &str = "authd_password_hashes_in_flight";
/// The `route` label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Histogram buckets for request latency, in seconds: from the token check (tens of µs) to a
/// password hash under load (tens to hundreds of ms).
const LATENCY_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// How a login ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// A token was issued.
    Ok,
    /// Wrong, missing or malformed credentials.
    BadCredentials,
    /// Password hashing was saturated (503).
    Busy,
    /// Refused by the brute-force throttle (429), without hashing.
    Throttled,
    /// The database did not answer, or the login failed on our side (503, 500).
    Unavailable,
}

impl LoginOutcome {
    const ALL: [Self; 5] = [
        Self::Ok,
        Self::BadCredentials,
        Self::Busy,
        Self::Throttled,
        Self::Unavailable,
    ];

    /// The `outcome` label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::BadCredentials => "bad_credentials",
            Self::Busy => "busy",
            Self::Throttled => "throttled",
            Self::Unavailable => "unavailable",
        }
    }
}

/// How a token check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOutcome {
    /// A valid token.
    Ok,
    /// No token, or an empty one.
    Missing,
    /// A token that does not verify, or a request that presents it the wrong way.
    Invalid,
    /// A correctly signed token past its expiry.
    Expired,
}

impl TokenOutcome {
    const ALL: [Self; 4] = [Self::Ok, Self::Missing, Self::Invalid, Self::Expired];

    /// The `outcome` label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
        }
    }
}

/// How a `POST /refresh` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// New tokens were issued.
    Ok,
    /// Unknown, expired, spent or revoked refresh token (401); reuse included.
    Invalid,
    /// A spent refresh token presented again: its whole session was revoked (401).
    Reused,
    /// The database did not answer (503).
    Unavailable,
}

impl RefreshOutcome {
    const ALL: [Self; 4] = [Self::Ok, Self::Invalid, Self::Reused, Self::Unavailable];

    /// The `outcome` label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Invalid => "invalid",
            Self::Reused => "reused",
            Self::Unavailable => "unavailable",
        }
    }
}

/// One server's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    logins: [Counter; 5],
    token_checks: [Counter; 4],
    refreshes: [Counter; 4],
    /// Latency histograms of the routes known at start, looked up by route.
    routes: Vec<(String, Histogram)>,
    unmatched: Histogram,
    hashes_in_flight: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

const METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

impl Metrics {
    /// Registers every series, with a latency histogram for each of `routes` (as axum matches
    /// them, e.g. `/protected`).
    pub fn new(routes: &[String]) -> Self {
        let builder = PrometheusBuilder::new();
        // Buckets make the latency a real Prometheus histogram rather than a summary. The only
        // error is an empty bucket list, which ours is not.
        let builder = match builder
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_owned()), LATENCY_BUCKETS)
        {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let describe = |name: &'static str, unit: Option<Unit>, help: &'static str| {
            recorder.describe_counter(KeyName::from_const_str(name), unit, help.into());
        };
        describe(LOGINS, None, "Logins by outcome.");
        describe(
            TOKEN_CHECKS,
            None,
            "Access-token checks (on /protected and /verify) by outcome.",
        );
        describe(
            REFRESHES,
            None,
            "Refresh-token rotations (POST /refresh) by outcome.",
        );
        recorder.describe_histogram(
            KeyName::from_const_str(REQUEST_DURATION),
            Some(Unit::Seconds),
            "Request latency by matched route.".into(),
        );
        recorder.describe_gauge(
            KeyName::from_const_str(HASHES_IN_FLIGHT),
            None,
            "Password hashes running now.".into(),
        );
        let counter = |name: &'static str, outcome: &'static str| {
            recorder.register_counter(
                &Key::from_parts(name, vec![Label::from_static_parts("outcome", outcome)]),
                &METADATA,
            )
        };
        let logins = LoginOutcome::ALL.map(|o| counter(LOGINS, o.label()));
        let token_checks = TokenOutcome::ALL.map(|o| counter(TOKEN_CHECKS, o.label()));
        let refreshes = RefreshOutcome::ALL.map(|o| counter(REFRESHES, o.label()));
        let routes = routes
            .iter()
            .map(|r| (r.clone(), Self::route_histogram(&recorder, r)))
            .collect();
        let unmatched = Self::route_histogram(&recorder, UNMATCHED_ROUTE);
        let hashes_in_flight =
            recorder.register_gauge(&Key::from_static_name(HASHES_IN_FLIGHT), &METADATA);
        Self {
            handle: recorder.handle(),
            recorder,
            logins,
            token_checks,
            refreshes,
            routes,
            unmatched,
            hashes_in_flight,
        }
    }

    fn route_histogram(recorder: &PrometheusRecorder, route: &str) -> Histogram {
        recorder.register_histogram(
            &Key::from_parts(
                REQUEST_DURATION,
                vec![Label::new("route", route.to_owned())],
            ),
            &METADATA,
        )
    }

    /// Counts a login.
    pub fn login(&self, outcome: LoginOutcome) {
        self.logins[outcome as usize].increment(1);
    }

    /// Counts a token check.
    pub fn token_check(&self, outcome: TokenOutcome) {
        self.token_checks[outcome as usize].increment(1);
    }

    /// Counts a refresh.
    pub fn refresh(&self, outcome: RefreshOutcome) {
        self.refreshes[outcome as usize].increment(1);
    }

    /// Records the latency of a request to `route` (the matched route; `None` when none matched).
    pub fn request_duration(&self, route: Option<&str>, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let Some(route) = route else {
            self.unmatched.record(seconds);
            return;
        };
        match self.routes.iter().find(|(r, _)| *r == route) {
            Some((_, h)) => h.record(seconds),
            // A route added without being listed: registered on the fly (a map lookup).
            None => Self::route_histogram(&self.recorder, route).record(seconds),
        }
    }

    /// The Prometheus text exposition of every series, with `hashes_in_flight` as the gauge's
    /// value (read by the caller at scrape time rather than tracked on every hash).
    pub fn render(&self, hashes_in_flight: usize) -> String {
        #[allow(clippy::cast_precision_loss)] // a count of running hashes
        self.hashes_in_flight.set(hashes_in_flight as f64);
        self.handle.render()
    }

    /// Folds recorded latencies into the histograms; run it now and then so that memory stays
    /// bounded between scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_shows_counters_histograms_and_the_gauge() {
        let m = Metrics::new(&["/login".to_owned()]);
        m.login(LoginOutcome::Ok);
        m.login(LoginOutcome::Busy);
        m.login(LoginOutcome::Busy);
        m.token_check(TokenOutcome::Expired);
        m.request_duration(Some("/login"), Duration::from_millis(30));
        m.request_duration(Some("/later"), Duration::from_millis(1));
        m.request_duration(None, Duration::from_millis(1));
        let text = m.render(3);
        for line in [
            "authd_logins_total{outcome=\"ok\"} 1",
            "authd_logins_total{outcome=\"busy\"} 2",
            "authd_logins_total{outcome=\"bad_credentials\"} 0",
            "authd_token_checks_total{outcome=\"expired\"} 1",
            "authd_token_checks_total{outcome=\"ok\"} 0",
            "authd_http_request_duration_seconds_count{route=\"/login\"} 1",
            "authd_http_request_duration_seconds_bucket{route=\"/login\",le=\"0.05\"} 1",
            "authd_http_request_duration_seconds_bucket{route=\"/login\",le=\"0.025\"} 0",
            "authd_http_request_duration_seconds_count{route=\"/later\"} 1",
            "authd_http_request_duration_seconds_count{route=\"unmatched\"} 1",
            "authd_password_hashes_in_flight 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn two_instances_count_separately() {
        let a = Metrics::new(&[]);
        let b = Metrics::new(&[]);
        a.token_check(TokenOutcome::Ok);
        assert!(
            a.render(0)
                .contains("authd_token_checks_total{outcome=\"ok\"} 1")
        );
        assert!(
            b.render(0)
                .contains("authd_token_checks_total{outcome=\"ok\"} 0")
        );
    }
}
