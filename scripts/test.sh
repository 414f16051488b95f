#!/usr/bin/env bash
# The whole test suite, as the README's one test command and as CI runs it:
# sets up what the tests need that cargo does not bring (a Python venv with PyJWT, for the
# interoperability tests), then runs every test against the release build of authd.
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

cargo test --release "$@"
