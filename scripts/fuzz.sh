#!/usr/bin/env bash
# A bounded property-based fuzz of every operation of the served OpenAPI document, with
# schemathesis, against a fresh api: every answer must be no server error and conform to the
# document (status code, content type, response schema). Any finding fails the run. Installs
# schemathesis with pip when missing. Part of `make test`; alone: `make fuzz`.
#
#   FUZZ_EXAMPLES  test cases per operation and phase (default 25; e.g. 200 for a long run)
#   FUZZ_SEED      the random seed (default: a new one, printed, to repeat a run)
#   FUZZ_WORKERS   concurrent schemathesis workers (default 1: more raced in its generator)
#   FUZZ_API_BIN   an api binary already built to fuzz instead (default: a debug build of the tree)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
log() { echo "[fuzz] $*" >&2; }
# shellcheck source=lib.sh
. scripts/lib.sh

export PATH=$HOME/.local/bin:$PATH
if ! command -v st >/dev/null 2>&1; then
  log "installing schemathesis (pip)"
  python3 -m pip install -q --user schemathesis 2>/dev/null ||
    python3 -m pip install -q --user --break-system-packages schemathesis
  hash -r
fi
command -v st >/dev/null 2>&1 || { log "st (schemathesis) is not on PATH after installing it"; exit 1; }

EXAMPLES=${FUZZ_EXAMPLES:-25}
SEED=${FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
WORKERS=${FUZZ_WORKERS:-1}
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance

if [[ -z ${FUZZ_API_BIN:-} ]]; then
  cargo build -q -p ezpulze-api
  FUZZ_API_BIN=${CARGO_TARGET_DIR:-$REPO/target}/debug/ezpulze-api
fi
LOG_DIR=$REPO/tests-output/fuzz
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"

cleanup() {
  local rc=$?
  stop_api
  [[ $rc -eq 0 ]] || log "failed (exit $rc); logs and reports in $LOG_DIR (seed $SEED)"
  exit "$rc"
}
trap cleanup EXIT

API_LOG=warn start_api fuzz "$FUZZ_API_BIN"
# Two accounts: the /api/v1 pass uses a full-access key of the first; the admin pass uses the
# admin token of the second, so the key operations it fuzzes (deactivate, narrow the scopes or
# IPs, regenerate, delete) can never reach the key of the other pass, whichever order they run.
provision_account fuzz-keys
KEY=$API_KEY
provision_account fuzz-admin
ADMIN=$ADMIN_TOKEN

# run_pass NAME TOKEN PATH_REGEX: schemathesis on the operations whose path matches, with
# `Authorization: Bearer TOKEN`; its log and JUnit report under $LOG_DIR/NAME.
failed=()
run_pass() {
  local name=$1 token=$2 paths=$3 started=$SECONDS
  log "pass $name: $paths ($EXAMPLES examples per operation, seed $SEED)"
  # The hooks give half the generated phones a valid number (see fuzz_hooks.py). Run from the
  # log directory, which also holds schemathesis's cache (.schemathesis/) of the run.
  if (cd "$LOG_DIR" && SCHEMATHESIS_HOOKS=fuzz_hooks PYTHONPATH=$REPO/scripts st run "$BASE/openapi.json" \
    --checks "$CHECKS" \
    --max-examples "$EXAMPLES" \
    --seed "$SEED" \
    --workers "$WORKERS" \
    --include-path-regex "$paths" \
    --header "Authorization: Bearer $token" \
    --generation-database none \
    --request-timeout 10 \
    --no-color \
    --report junit --report-junit-path "$LOG_DIR/$name.xml" \
    >"$LOG_DIR/$name.log" 2>&1); then
    log "pass $name: OK in $((SECONDS - started)) s"
  else
    log "pass $name: FAILED in $((SECONDS - started)) s; its findings:"
    grep -v '^ *|' "$LOG_DIR/$name.log" | sed -n '/^=\+ \(FAILURES\|ERRORS\) =\+$/,$p' | head -150 >&2
    failed+=("$name")
  fi
}

# The whole document in three passes, by the credential each part takes.
run_pass api-v1 "$KEY" '^/api/v1/'
run_pass admin "$ADMIN" '^/admin/v1/(?!accounts$)'
# Account creation (root token) and the routes without credentials (web UI, health, metrics,
# the OpenAPI document, webhooks), which ignore the header.
run_pass public "$ROOT" '^(/admin/v1/accounts$|/(?!api/v1/|admin/v1/))'

if ((${#failed[@]})); then
  log "findings in: ${failed[*]} (seed $SEED; FUZZ_SEED=$SEED repeats the run)"
  exit 1
fi
log "OK (seed $SEED)"
