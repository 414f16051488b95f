#!/usr/bin/env bash
# The whole test suite, as the README's one test command and as CI runs it:
# sets up what the tests need that cargo does not bring (a Python venv with PyJWT, for the
# interoperability tests; the local PostgreSQL, when one answers, for the store tests; nginx, for
# the forward-auth test), then runs every test against the release build of authd.
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/test-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import jwt' 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'PyJWT>=2.8,<3'
fi
export AUTHD_TEST_PYTHON="$PWD/$venv/bin/python"

# The store tests run on SQLite always and on PostgreSQL when AUTHD_TEST_DATABASE_URL is set (each
# test in its own schema). Unset, a PostgreSQL answering on 127.0.0.1:5432 is used; without one they
# say SKIPPED (and fail under AUTHD_TEST_REQUIRE_ALL=1).
if [ -z "${AUTHD_TEST_DATABASE_URL:-}" ]; then
  if { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432 -t 3; } ||
     timeout 3 bash -c '</dev/tcp/127.0.0.1/5432' 2>/dev/null; then
    export AUTHD_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test
  fi
fi

# nginx for the forward-auth test (the test starts its own on loopback ports). Installed from
# Debian when missing and we are root; otherwise the test reports SKIPPED (or fails in CI).
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ] \
  && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  # Keep the package from starting its own nginx on port 80: only the test's instance runs.
  policy=/usr/sbin/policy-rc.d
  own_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && own_policy=1
  fi
  { apt-get -o DPkg::Lock::Timeout=120 update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq nginx >/dev/null; } \
    || echo "scripts/test.sh: could not install nginx; its test will be skipped" >&2
  if [ -n "$own_policy" ]; then rm -f "$policy"; fi
fi

cargo test --release "$@"
