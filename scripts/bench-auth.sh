#!/usr/bin/env bash
# `make bench-auth`: the same trivial endpoint with and without API-key authentication
# (key lookup through the cache, IP check, the global Redis rate limit, last-used noting),
# on one release build of the API, measured with wrk in one run.
# Last line: {"auth_rps": ..., "noauth_rps": ..., "ratio": ...}
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
log() { echo "[bench-auth] $*" >&2; }
bash scripts/ensure-services.sh
command -v wrk >/dev/null || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

duration=${BENCH_SECONDS:-10}
conns=${BENCH_CONNECTIONS:-64}
port=${BENCH_PORT:-18080}
db=ezp_bench_auth
pg=postgres://postgres@127.0.0.1:5432
psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
psql "$pg/postgres" -qc "CREATE DATABASE $db" >/dev/null

cargo build --release --quiet -p ezpulze-api
bin=${CARGO_TARGET_DIR:-$root/target}/release
export DATABASE_URL=$pg/$db REDIS_PREFIX=ezp_bench_auth API_ADDR=127.0.0.1:$port \
  EZPULZE_ROOT_TOKEN=bench-root-token-0123456789 RUST_LOG=warn
"$bin/ezpulze-api" >/tmp/ezpulze-bench-auth.log 2>&1 &
api_pid=$!
trap 'kill $api_pid 2>/dev/null || true' EXIT
base=http://127.0.0.1:$port
for _ in $(seq 1 100); do curl -fsS "$base/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

admin=$(curl -fsS -X POST "$base/admin/v1/accounts" -H "Authorization: Bearer $EZPULZE_ROOT_TOKEN" \
  -H 'content-type: application/json' -d '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["admin_token"])')
# A key with a (very high) hourly limit, so every request runs the global Redis rate limit.
key=$(curl -fsS -X POST "$base/admin/v1/api-keys" -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
  -d '{"name":"bench","scope_group":"full_access","rate_limit_per_hour":100000000}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

# The same with a key that has no hourly limit (no Redis call at all), for reference.
free=$(curl -fsS -X POST "$base/admin/v1/api-keys" -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
  -d '{"name":"bench-unlimited","scope_group":"full_access","rate_limit_per_hour":null}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

rps() { # url [header]
  local out
  if [[ $# -gt 1 ]]; then
    out=$(wrk -t2 -c"$conns" -d"${duration}s" -H "$2" "$1")
  else
    out=$(wrk -t2 -c"$conns" -d"${duration}s" "$1")
  fi
  [[ $out == *Non-2xx* ]] && { echo "$out" >&2; log "errors during the run"; exit 1; }
  echo "$out" | awk '/Requests\/sec/ {print $2}'
}
# Warm-up, then alternate so both see the same machine state.
wrk -t2 -c"$conns" -d2s "$base/ping" >/dev/null
wrk -t2 -c"$conns" -d2s -H "Authorization: Bearer $key" "$base/api/v1/ping" >/dev/null
n1=$(rps "$base/ping"); a1=$(rps "$base/api/v1/ping" "Authorization: Bearer $key")
n2=$(rps "$base/ping"); a2=$(rps "$base/api/v1/ping" "Authorization: Bearer $key")
u1=$(rps "$base/api/v1/ping" "Authorization: Bearer $free")
log "noauth: $n1 $n2 req/s; auth (rate-limited key): $a1 $a2 req/s; auth (unlimited key): $u1 req/s (wrk -t2 -c$conns, ${duration}s each, $(nproc) cores)"
python3 - "$n1" "$n2" "$a1" "$a2" "$u1" <<'PY'
import json, sys
n1, n2, a1, a2, u1 = map(float, sys.argv[1:])
noauth, auth = (n1 + n2) / 2, (a1 + a2) / 2
print(json.dumps({"auth_rps": round(auth), "noauth_rps": round(noauth), "ratio": round(auth / noauth, 3),
                  "auth_unlimited_key_rps": round(u1), "unlimited_ratio": round(u1 / noauth, 3)}))
PY
