#!/usr/bin/env bash
# `make bench-audience`: a release API on its own database and Redis prefix; imports a CSV of
# BENCH_CONTACTS contacts (default 1,000,000) and sends a broadcast to the 20% tagged `vip`.
# BENCH_SENDS=N sends it N times (N dispatches of 200,000 messages each: 5 make a million);
# BENCH_AUDIENCE=all sends to all 1,000,000 contacts instead.
# BENCH_KEEP_DB=1 keeps the database afterwards.
# Last line: {"contacts_imported_per_s", "audience_recipients_per_s", ...}
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/ensure-services.sh
port=${BENCH_PORT:-18082}
db=ezp_bench_audience
pg=postgres://postgres@127.0.0.1:5432
psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
psql "$pg/postgres" -qc "CREATE DATABASE $db" >/dev/null
redis-cli --scan --pattern '*ezp_bench_audience*' | xargs -r -n 500 redis-cli del >/dev/null
cargo build --release --quiet -p ezpulze-api -p ezpulze-e2e --bin ezpulze-api --bin bench-audience
bin=${CARGO_TARGET_DIR:-$root/target}/release
export DATABASE_URL=$pg/$db REDIS_PREFIX=ezp_bench_audience API_ADDR=127.0.0.1:$port \
  EZPULZE_ROOT_TOKEN=bench-root-token-0123456789 RUST_LOG=${RUST_LOG:-warn} \
  DATABASE_MAX_CONNECTIONS=${BENCH_DB_CONNECTIONS:-16} AUDIENCE_EXPANDERS=${AUDIENCE_EXPANDERS:-4}
"$bin/ezpulze-api" >/tmp/ezpulze-bench-audience.log 2>&1 &
api_pid=$!
cleanup() {
  kill $api_pid 2>/dev/null || true
  wait $api_pid 2>/dev/null || true
  # BENCH_KEEP_DB=1 leaves the database (1,000,000 contacts and the fan-out's messages) to
  # look at the plans with psql.
  if [ "${BENCH_KEEP_DB:-0}" != 1 ]; then
    redis-cli --scan --pattern '*ezp_bench_audience*' | xargs -r -n 500 redis-cli del >/dev/null
    psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
  fi
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
API_URL=http://127.0.0.1:$port ROOT_TOKEN=$EZPULZE_ROOT_TOKEN "$bin/bench-audience"
