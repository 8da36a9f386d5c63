#!/usr/bin/env bash
# Contact CSV import benchmark (the import half of `make bench-audience`): a release API on
# its own database and Redis prefix; one 1,000,000-row file (BENCH_IMPORT_ROWS) uploaded,
# imported, then uploaded again (all rows unchanged).
# Last line: {"contacts_imported_per_s", "import_s", "reimport_unchanged_rows_per_s", ...}
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/ensure-services.sh
port=${BENCH_PORT:-18083}
db=ezp_bench_import
pg=postgres://postgres@127.0.0.1:5432
psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
psql "$pg/postgres" -qc "CREATE DATABASE $db" >/dev/null
redis-cli --scan --pattern '*ezp_bench_import*' | xargs -r -n 500 redis-cli del >/dev/null
cargo build --release --quiet -p ezpulze-api -p ezpulze-e2e --bin ezpulze-api --bin bench-import
bin=${CARGO_TARGET_DIR:-$root/target}/release
export DATABASE_URL=$pg/$db REDIS_PREFIX=ezp_bench_import API_ADDR=127.0.0.1:$port \
  EZPULZE_ROOT_TOKEN=bench-root-token-0123456789 RUST_LOG=${RUST_LOG:-warn} DATABASE_MAX_CONNECTIONS=${BENCH_DB_CONNECTIONS:-8}
"$bin/ezpulze-api" >/tmp/ezpulze-bench-import.log 2>&1 &
api_pid=$!
cleanup() {
  kill $api_pid 2>/dev/null || true
  wait $api_pid 2>/dev/null || true
  redis-cli --scan --pattern '*ezp_bench_import*' | xargs -r -n 500 redis-cli del >/dev/null
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
API_URL=http://127.0.0.1:$port ROOT_TOKEN=$EZPULZE_ROOT_TOKEN "$bin/bench-import"
