#!/usr/bin/env bash
# `make test-faults` (part of `make test`): the fault suite. It starts its own Redis (with an
# append-only file) and its own Postgres cluster on free loopback ports, runs the engine's real
# binaries as processes, and kills or restarts them one scenario at a time (faults/src/lib.rs).
# `make test-faults-long` runs the long size (more messages, a 30 s WhatsApp failure window,
# slow retries) on release binaries. Logs and report.json: tests-output/faults/.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[faults] $*" >&2; }
# shellcheck source=lib.sh
. scripts/lib.sh

command -v redis-server >/dev/null 2>&1 || apt_install redis-server
if ! command -v pg_config >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt_install postgresql
fi

if [[ ${1:-} == --long ]]; then
  cargo build --release --bins
  exec "${CARGO_TARGET_DIR:-target}/release/ezpulze-faults" --long "${@:2}"
fi
cargo build --bins
exec "${CARGO_TARGET_DIR:-target}/debug/ezpulze-faults" "$@"
