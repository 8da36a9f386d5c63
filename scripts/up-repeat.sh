#!/usr/bin/env bash
# `make up` from a fresh clone, N times in a row (default 20): each run must either print its
# banner with every role ready, answer a send through the API and see the message leave through
# the simulator, or fail loudly (non-zero, with a line naming what failed); a run that prints
# the banner while a role is missing, or hangs, counts as a failure. Between runs the stack is
# stopped with `make down`; after an odd run the clone's data is dropped (`make reset
# CONFIRM=yes`: the next run starts from nothing), after an even one only `.ezpulze/` is removed
# (the next run finds the default account in the database and recovers it).
#   bash scripts/up-repeat.sh [N]
# Reuses this checkout's target directory (CARGO_TARGET_DIR), so only the first run builds.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-20}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
clone=$(mktemp -d /tmp/ezpulze-up-repeat.XXXXXX)
git clone -q "$root" "$clone/main"
cd "$clone/main"
log() { echo "[up-repeat] $*" >&2; }
ok=0
for i in $(seq 1 "$runs"); do
  out=$clone/run-$i.log
  setsid bash -c 'exec make up' >"$out" 2>&1 &
  pid=$!
  result=""
  for _ in $(seq 1 1200); do # 10 minutes for the first build
    if grep -q "EzPulze is running" "$out"; then result=banner; break; fi
    if ! kill -0 "$pid" 2>/dev/null; then result=exited; break; fi
    sleep 0.5
  done
  if [[ $result == banner ]]; then
    # shellcheck disable=SC1091
    . .ezpulze/stack.env
    before=$(curl -fsS "$SIM_URL/_sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["accepted"])')
    to=$(printf '+1415555%04d' "$i")
    curl -fsS -o /dev/null -X POST "$API_URL/api/v1/broadcasts/$BROADCAST_ID/send" -H "Authorization: Bearer $API_KEY" \
      -H 'content-type: application/json' \
      -d '{"recipients":[{"to":"'"$to"'","variables":{"body":["Ann","4721"],"buttons":[{"index":1,"text":"4721"}]}}]}'
    sent=no
    for _ in $(seq 1 100); do
      now=$(curl -fsS "$SIM_URL/_sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["accepted"])')
      if ((now > before)); then sent=yes; break; fi
      sleep 0.1
    done
    if [[ $sent == yes ]]; then ok=$((ok + 1)); log "run $i: ready, the send left"; else log "run $i: BANNER BUT THE SEND NEVER LEFT ($out)"; fi
  elif [[ $result == exited ]]; then
    log "run $i: failed loudly: $(grep -v '^\s*$' "$out" | tail -n 3 | tr '\n' ' ')"
  else
    log "run $i: no banner and no exit within 10 minutes ($out)"
  fi
  kill -INT -- -"$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  make -s down >/dev/null 2>&1 || true
  if ((i % 2)); then make -s reset CONFIRM=yes >/dev/null 2>&1 || true; else rm -rf .ezpulze; fi
done
log "$ok of $runs runs ready with the send delivered (logs in $clone)"
((ok == runs))
