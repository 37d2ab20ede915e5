#!/usr/bin/env bash
# The project's one test command: installs what the tests need, builds everything and
# runs every test. CI runs exactly this (.ci/run); so can a newcomer on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

# A persistent target directory outside the clone keeps repeated runs fast; a clean
# machine simply builds from nothing.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/metrics-hub-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Incremental artefacts only help an edit-compile loop; in a one-shot run they cost
# disk (about 10 GB here) and time.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n==> %s\n' "$*"; }

need_apt=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql-15)
# The page tests (tests/tests/browser.rs) drive headless Chromium through chromedriver.
command -v "${CHROMIUM:-chromium}" >/dev/null 2>&1 || need_apt+=(chromium)
command -v "${CHROMEDRIVER:-chromedriver}" >/dev/null 2>&1 || need_apt+=(chromium-driver)
# The JavaScript example plugin builds with componentize-js (npm) and tests with node --test.
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ "${#need_apt[@]}" -gt 0 ]; then
  step "installing ${need_apt[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
# The BigQuery stand-in executes GoogleSQL with sqlglot and DuckDB (tests/standins/bigquery_sql.py).
if ! python3 -c 'import sqlglot, duckdb' >/dev/null 2>&1; then
  step "installing sqlglot and duckdb"
  python3 -m pip install -q sqlglot==30.31.0 duckdb==2.0.1
fi
# /metrics is checked with the Python Prometheus client's OpenMetrics parser
# (engine/tests/operations.rs), an implementation independent of the hub's.
if ! python3 -c 'import prometheus_client' >/dev/null 2>&1; then
  step "installing prometheus-client"
  python3 -m pip install -q prometheus-client==0.26.0
fi

# The Python example plugin's logic has plain pytest tests (plugins/python/*/test_*.py).
if ! python3 -c 'import pytest' >/dev/null 2>&1; then
  step "installing pytest"
  python3 -m pip install -q pytest==8.3.4
fi

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "plugins (WebAssembly components the tests and benchmarks load; installs the guest toolchain where missing)"
plugins/build.sh

step "plugin logic (native unit tests, format, lint)"
(cd plugins && cargo fmt --all -- --check \
  && cargo clippy -p salesforce -p hubspot -p tally -p guest-dates -p guest-support --all-targets --locked -- -D warnings \
  && cargo test -p salesforce -p hubspot -p tally -p guest-dates -p guest-support --locked)
for dir in plugins/python/*/; do (cd "$dir" && python3 -m pytest -q -p no:cacheprovider .); done
(cd plugins/js && node --test */*.test.js)

step "tests"
cargo test --workspace --locked

step "benchmarks (quick smoke run; full figures: cargo bench -p metrics-hub-tests)"
BENCH_QUICK=1 cargo bench -p metrics-hub-tests --locked

step "all tests passed"
