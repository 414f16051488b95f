#!/usr/bin/env bash
# The whole test suite, as the README's one test command and as CI runs it:
# sets up what the tests need that cargo does not bring, then runs every test against the release
# build of authd:
#   - a Python venv (target/test-venv) with PyJWT, for the interoperability tests, and
#     Schemathesis, which fuzzes the running server against its OpenAPI document;
#   - newman (target/npm), which runs the Postman collection in postman/.
# Each is installed once and found again on later runs. A tool that cannot be installed makes its
# test print SKIPPED, unless AUTHD_TEST_REQUIRE_ALL=1 (as in CI), which makes it a failure.
# Extra arguments go to `cargo test` (e.g. a test name filter).
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
    echo "test.sh: warning: could not install $* (its tests will say SKIPPED)" >&2
}
if ! "$venv/bin/python" -c 'import jwt' 2>/dev/null; then
  pip_install 'PyJWT>=2.8,<3'
fi
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  pip_install 'schemathesis>=4.32,<5'
fi
export AUTHD_TEST_PYTHON="$PWD/$venv/bin/python"
export AUTHD_TEST_SCHEMATHESIS="$PWD/$venv/bin/schemathesis"

npm_prefix=target/npm
if ! "$npm_prefix/node_modules/.bin/newman" --version >/dev/null 2>&1; then
  if command -v npm >/dev/null; then
    npm install --prefix "$npm_prefix" --no-audit --no-fund --loglevel=error 'newman@^6.2' ||
      echo "test.sh: warning: could not install newman (its test will say SKIPPED)" >&2
  else
    echo "test.sh: warning: no npm, so no newman (its test will say SKIPPED)" >&2
  fi
fi
export AUTHD_TEST_NEWMAN="$PWD/$npm_prefix/node_modules/.bin/newman"

cargo test --release "$@"
