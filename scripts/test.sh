#!/usr/bin/env bash
# `make test`: every test of the project against real Postgres, Redis (and, where a test needs
# them, the simulator and Chromium). Each test makes its own database and Redis key prefix.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-services.sh

# Databases left by earlier runs (a test that panicked does not drop its own).
psql "postgres://postgres@127.0.0.1:5432/postgres" -Atqc \
  "SELECT datname FROM pg_database WHERE datname LIKE 'ezp\_t\_%'" | while read -r db; do
  [[ -n $db ]] && psql "postgres://postgres@127.0.0.1:5432/postgres" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
done

export EZPULZE_TEST_PG=${EZPULZE_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}
export EZPULZE_TEST_REDIS=${EZPULZE_TEST_REDIS:-redis://127.0.0.1:6379/0}

# Browser tests of the web UI (headless Chromium) and the operator artefacts (promtool).
run_ui_tests() { bash scripts/ui-test.sh; }
run_dashboard_checks() { bash scripts/check-dashboards.sh; }

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
run_ui_tests
run_dashboard_checks
