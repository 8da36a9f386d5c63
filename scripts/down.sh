#!/usr/bin/env bash
# `make down`: stops the stack that `make up` started from this checkout (another terminal's),
# from its pid files in .ezpulze/pids/ (EZPULZE_DIR when it was started with one). The stack's
# data stays (`make reset` drops it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir=${EZPULZE_DIR:-$root/.ezpulze}
piddir=$dir/pids
log() { echo "[down] $*" >&2; }

alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; }
# wait_gone PID SECONDS: whether PID ended within SECONDS.
wait_gone() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do alive "$1" || return 0; sleep 0.1; done
  ! alive "$1"
}

stopped=
up=$(cat "$piddir/up.pid" 2>/dev/null || true)
if alive "$up"; then
  log "stopping the stack (scripts/up.sh, pid $up)"
  kill -TERM "$up"
  wait_gone "$up" 30 || log "scripts/up.sh (pid $up) is still running after 30 s"
  stopped=1
fi
# Roles left behind by an up.sh that could not clean up (killed with SIGKILL): only processes
# that are still EzPulze binaries (a pid may have been reused).
for f in "$piddir"/*.pid; do
  [[ -e $f && $f != "$piddir/up.pid" ]] || continue
  pid=$(cat "$f" 2>/dev/null || true)
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  if alive "$pid" && [[ $cmd == *ezpulze-* ]]; then
    log "stopping $(basename "$f" .pid) (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" 15 || kill -KILL "$pid" 2>/dev/null || true
    stopped=1
  fi
done
rm -rf "$piddir"
rm -f "$dir/stack.env"
if [[ -n $stopped ]]; then log "stopped"; else log "no stack is running (no live pid in ${piddir#"$root"/})"; fi
