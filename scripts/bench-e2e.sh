#!/usr/bin/env bash
# `make bench-e2e`: the whole engine end to end on this machine (see e2e/src/bin/bench-e2e.rs).
# Last line: {"messages_per_s", "webhook_events_per_s", "accept_to_sent_p50_ms", "accept_to_sent_p99_ms", ...}
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/ensure-services.sh
pg=postgres://postgres@127.0.0.1:5432
psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS ezp_bench_e2e WITH (FORCE)" >/dev/null
redis-cli --scan --pattern '*ezp_bench_e2e*' | xargs -r -n 500 redis-cli del >/dev/null
cargo build --release --quiet -p ezpulze-e2e --bin bench-e2e
RUST_LOG=${RUST_LOG:-warn} "${CARGO_TARGET_DIR:-$root/target}/release/bench-e2e"
redis-cli --scan --pattern '*ezp_bench_e2e*' | xargs -r -n 500 redis-cli del >/dev/null
