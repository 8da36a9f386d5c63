#!/usr/bin/env bash
# Browser tests of the web UI: headless Debian Chromium driven by playwright-core, against the
# real api (fresh Postgres database, own Redis key prefix). Also takes the user guide's
# screenshots: into tests-output/screenshots/ (ignored by git) on every run, and into the
# committed static/img/screenshots/developer-tools/api-keys/ (shown by the README and
# docs/ui.md) only when asked, so a test run leaves the tree as it was.
#
#   bash scripts/ui-test.sh                 # everything
#   bash scripts/ui-test.sh session         # only test files whose name contains "session"
#   UI_SCREENSHOTS=refresh bash scripts/ui-test.sh screenshots   # rewrite the committed screenshots
#
# Works on a fresh Debian machine: installs chromium (and node/npm if missing) with apt-get,
# `npm ci`s the pinned test dependencies, builds the api, starts Postgres/Redis when needed.
# Honours CARGO_TARGET_DIR. Exits non-zero when a test fails. Tokens are never printed.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

log() { echo "[ui-test] $*" >&2; }
# shellcheck source=lib.sh
. scripts/lib.sh

# --- Tools: Chromium from Debian (never a downloaded browser), Node.js, curl ---
export CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
[[ -x $CHROMIUM_PATH ]] || apt_install chromium
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm
command -v curl >/dev/null 2>&1 || apt_install curl

# playwright-core never downloads browsers; make sure no install hook tries.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
(cd ui-tests && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

# --- The api ---
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
# The worker and the simulator too, for the usage test that sends through the simulator; when
# they do not build, the rest still runs and that test is skipped.
if ! cargo build -q -p ezpulze-api -p ezpulze-worker -p ezpulze-simulator; then
  log "worker/simulator did not build: building the api alone (the end-to-end usage test is skipped)"
  cargo build -q -p ezpulze-api
fi
API_BIN=$TARGET/debug/ezpulze-api
[[ -x $API_BIN ]] || { log "no api binary at $API_BIN"; exit 1; }
# A role binary that is built and describes itself (not a placeholder).
# (The help text is read whole: `--help | grep -q` under pipefail fails at random.)
real_bin() {
  local out
  [[ -x $TARGET/debug/$1 ]] && out=$("$TARGET/debug/$1" --help 2>&1) && [[ $out == *"$1"* ]]
}

create_test_db ui
DATABASE_URL=$(node -e 'const u = new URL(process.argv[1]); u.pathname = "/" + process.argv[2]; console.log(u.toString())' "$PG" "$NAME")
ROOT_TOKEN=ui-root-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
free_port() { node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'; }
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT

OUT=$REPO/tests-output/ui
mkdir -p "$OUT"
API_LOG=$OUT/api.log
API_PID= SIM_PID= WORKER_PID=

stop() { # pid
  if [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; then
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}

cleanup() {
  local rc=$?
  stop "$WORKER_PID"; stop "$API_PID"; stop "$SIM_PID"
  psql "$PG" -qc "DROP DATABASE IF EXISTS $NAME WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -u "$REDIS_URL" --scan --pattern "$NAME:*" 2>/dev/null | xargs -r redis-cli -u "$REDIS_URL" DEL >/dev/null 2>&1 || true
  if [[ $rc -ne 0 ]]; then log "failed (exit $rc); api log: $API_LOG"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export DATABASE_URL REDIS_URL REDIS_PREFIX=$NAME EZPULZE_ROOT_TOKEN=$ROOT_TOKEN
export API_ADDR=127.0.0.1:$PORT PUBLIC_BASE_URL=$BASE DATABASE_MAX_CONNECTIONS=4 LAST_USED_FLUSH_MS=200

# The WhatsApp simulator and a worker, when built (statuses come back to the api's webhook).
if real_bin ezpulze-simulator && real_bin ezpulze-worker; then
  SIM_PORT=$(free_port)
  SIM_PHONE_ID=1$(od -An -N4 -tu4 /dev/urandom | tr -d ' \n')
  SIM_TOKEN=simtok$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
  SIM_LISTEN=127.0.0.1:$SIM_PORT SIM_WEBHOOK_URL=$BASE/webhooks/whatsapp \
  SIM_NUMBERS="$SIM_PHONE_ID:+15550001111:$SIM_TOKEN" SIM_PAIR_GAP_MS=0 SIM_MPS_LIMIT=0 \
    "$TARGET/debug/ezpulze-simulator" >"$OUT/simulator.log" 2>&1 &
  SIM_PID=$!
  export GRAPH_API_BASE=http://127.0.0.1:$SIM_PORT
  export EZP_SIM_URL=$GRAPH_API_BASE EZP_SIM_PHONE_ID=$SIM_PHONE_ID EZP_SIM_TOKEN=$SIM_TOKEN EZP_SIM_APP_SECRET=sim-app-secret
fi

"$API_BIN" >"$API_LOG" 2>&1 &
API_PID=$!

for _ in $(seq 1 300); do
  curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break
  kill -0 "$API_PID" 2>/dev/null || { log "the api exited during start-up"; tail -n 20 "$API_LOG" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$BASE/readyz" >/dev/null || { log "the api did not become ready"; exit 1; }
if [[ -n $SIM_PID ]]; then
  WORKER_METRICS_ADDR=127.0.0.1:$(free_port) MIGRATE_ON_START=false \
    "$TARGET/debug/ezpulze-worker" >"$OUT/worker.log" 2>&1 &
  WORKER_PID=$!
  for _ in $(seq 1 100); do curl -fsS "$GRAPH_API_BASE/_sim/stats" >/dev/null 2>&1 && break; sleep 0.1; done
fi

# The account the tests sign in with (tests make more of their own).
ADMIN_TOKEN=$(curl -fsS -X POST "$BASE/admin/v1/accounts" \
  -H "Authorization: Bearer $ROOT_TOKEN" -H 'Content-Type: application/json' \
  -d '{"name":"UI tests"}' | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).admin_token))')
[[ $ADMIN_TOKEN == adm_* ]] || { log "could not create the test account"; exit 1; }

export EZP_BASE_URL=$BASE EZP_ADMIN_TOKEN=$ADMIN_TOKEN EZP_ROOT_TOKEN=$ROOT_TOKEN
export EZP_REDIS_PREFIX=$NAME EZP_REDIS_URL=$REDIS_URL EZP_DATABASE_URL=$DATABASE_URL
case ${UI_SCREENSHOTS:-} in
  refresh) shots=$REPO/static/img/screenshots/developer-tools/api-keys ;;
  '') shots=$REPO/tests-output/screenshots ;;
  *) log "UI_SCREENSHOTS is 'refresh' or unset, not '$UI_SCREENSHOTS'"; exit 2 ;;
esac
export EZP_SCREENSHOT_DIR=${EZP_SCREENSHOT_DIR:-$shots}
log "screenshots go to ${EZP_SCREENSHOT_DIR#"$REPO"/}"

files=()
for f in ui-tests/tests/*.test.js; do
  [[ -z ${1:-} || $f == *"$1"* ]] && files+=("$f")
done
log "running ${#files[@]} test file(s) against $BASE"
# One file at a time (a session test ends every session of this api), each in node's test
# runner; this also works on Debian's Node.js 18, which has no --test-concurrency.
failed=()
for f in "${files[@]}"; do
  node --test --test-reporter=spec "$f" || failed+=("$f")
done
if (( ${#failed[@]} )); then
  log "failed: ${failed[*]}"
  exit 1
fi
log "all ${#files[@]} test file(s) passed"
