#!/usr/bin/env bash
# make bench-queue: the job queue benchmark.
# Starts a private redis-server (no persistence, noeviction) on a free loopback port, runs the
# release bench binary of ezpulze-queue (our Redis Streams backend and apalis-redis 1.0.0 side
# by side), then the BullMQ peer baseline (../shared/bench/bullmq/run) on the same Redis.
# Prints one JSON object as its last line: our figures, "apalis_redis", "bullmq" and ratios.
# Env: JOBS (200000), APALIS_REDIS_JOBS (50000), BULLMQ_JOBS (50000), WORKERS (2),
#      CONCURRENCY (64), SKIP_BULLMQ=1 to leave the peer out, BULLMQ_DIR to point at its run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
log=$(mktemp -t bench-queue-redis.XXXXXX)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --maxmemory-policy noeviction >"$log" 2>&1 &
redis_pid=$!
cleanup() { kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.05
done

echo "bench-queue: building (release)..." >&2
cargo build --release --quiet -p ezpulze-queue --example bench-queue
bin="$CARGO_TARGET_DIR/release/examples/bench-queue"

echo "bench-queue: machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1)" >&2
ours=$(REDIS_URL="redis://127.0.0.1:$port/" "$bin" | tail -n 1)
echo "ours: $ours" >&2

bullmq='null'
if [[ "${SKIP_BULLMQ:-0}" != "1" ]]; then
  bull_dir=${BULLMQ_DIR:-$root/../shared/bench/bullmq}
  if [[ -x "$bull_dir/run" ]]; then
    if out=$(REDIS_PORT="$port" JOBS="${BULLMQ_JOBS:-50000}" "$bull_dir/run" 2>&2 | tail -n 1) \
      && jq -e . >/dev/null 2>&1 <<<"$out"; then
      bullmq=$out
      echo "bullmq: $bullmq" >&2
    else
      echo "bench-queue: BullMQ baseline failed (needs node + npm)" >&2
    fi
  else
    echo "bench-queue: no BullMQ baseline at $bull_dir" >&2
  fi
fi

jq -c --argjson bull "$bullmq" \
  --arg cpu "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" --arg cores "$(nproc)" '
  . + {machine: {cores: ($cores|tonumber), cpu: $cpu}, bullmq: $bull}
  + (if $bull == null then {} else {
      vs_bullmq: {
        push_over_add: ((.push_jobs_per_s / $bull.add_jobs_per_s) * 10 | round / 10),
        consume_over_process: ((.consume_jobs_per_s / $bull.process_jobs_per_s) * 10 | round / 10)
      }} end)' <<<"$ours"
