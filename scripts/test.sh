#!/usr/bin/env bash
# The project's test command: Rust unit tests, then the Python integration tests
# against a freshly built target/release/sibyl. Works from a fresh clone.
#
# Environment:
#   SIBYL_VENV      virtualenv to use/create (default: .venv)
#   PYTEST_ARGS     extra arguments for pytest (e.g. "-k schema")
#   SKIP_CARGO=1    skip the cargo build/test steps (binary must exist)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${SIBYL_VENV:-.venv}"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
PY="$VENV/bin/python"

step() { printf '\n==== %s ====\n' "$*"; }

step "python venv ($VENV)"
if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
fi
# Reinstall only when the requirements changed since the last install.
stamp="$VENV/.requirements.sha256"
want="$(sha256sum tests/requirements.txt | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$PY" -m pip install --disable-pip-version-check -q --upgrade pip
    "$PY" -m pip install --disable-pip-version-check -q -r tests/requirements.txt
    echo "$want" > "$stamp"
fi
"$PY" -c 'import cassandra, lz4, pytest, pytest_timeout; print("cassandra-driver", cassandra.__version__)'

cargo_test_rc=0
if [ "${SKIP_CARGO:-0}" != "1" ]; then
    step "cargo build --release"
    cargo build --release

    step "cargo test --workspace --release"
    # A failing Rust test fails the run, but the integration tests still run
    # (their results are worth having in the same log).
    cargo test --workspace --release --no-fail-fast || cargo_test_rc=$?
fi

step "pytest tests"
export SIBYL_BIN="${SIBYL_BIN:-$PWD/target/release/sibyl}"
# Make the venv's cqlsh the one the tests find.
export PATH="$VENV/bin:$PATH"
# The whole Python run is bounded too (per-test timeouts live in tests/pytest.ini).
set +e
timeout --signal=TERM --kill-after=30 1200 \
    "$PY" -m pytest tests -x -q ${PYTEST_ARGS:-}
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: treating as failure" >&2
fi
if [ "$cargo_test_rc" -ne 0 ]; then
    echo "cargo test failed (exit $cargo_test_rc)" >&2
    [ "$rc" -ne 0 ] || rc=$cargo_test_rc
fi
exit "$rc"
