#!/usr/bin/env bash
# The README's "Try it" block and the "Try a send" lines of make up's banner, run as written
# (bash -e, pipefail, every curl must answer 2xx) against a stack started by scripts/up.sh the
# way `make up` starts it: debug build, its own database, Redis prefix, ports and state folder
# (tests-output/readme/.ezpulze), so it runs beside a developer's stack. The README block runs
# twice (it must work on a stack that already ran it). Then `make down` and
# `make reset CONFIRM=yes` on that stack: both must do their job. Part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
log() { echo "[readme-test] $*" >&2; }
# shellcheck source=lib.sh
. scripts/lib.sh

OUT=$REPO/tests-output/readme
rm -rf "$OUT"
mkdir -p "$OUT"
export EZPULZE_DIR=$OUT/.ezpulze
create_test_db readme
database_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$PG" "$NAME")
# free_ports N: the first of N consecutive free local ports.
free_ports() {
  python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randint(20000, 60000 - n)
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        print(base); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
else:
    sys.exit("no free ports")
PY
}
api_port=$(free_ports 1) sim_port=$(free_ports 1) ops_port=$(free_ports 3)

UP_PID=
cleanup() {
  local rc=$?
  if [[ -n $UP_PID ]] && kill -0 "$UP_PID" 2>/dev/null; then
    kill -TERM "$UP_PID" 2>/dev/null || true
    wait "$UP_PID" 2>/dev/null || true
  fi
  psql "$PG" -qc "DROP DATABASE IF EXISTS $NAME WITH (FORCE)" >/dev/null 2>&1 || true
  for pattern in "$NAME:*" "{$NAME:*"; do
    redis-cli -u "$REDIS_URL" --scan --pattern "$pattern" 2>/dev/null | xargs -r redis-cli -u "$REDIS_URL" DEL >/dev/null 2>&1 || true
  done
  ((rc == 0)) || log "failed (exit $rc); the stack's output: tests-output/readme/up.out, up.err, .ezpulze/*.log"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting the stack with scripts/up.sh (debug build, api on $api_port)"
DATABASE_URL=$database_url REDIS_URL=$REDIS_URL REDIS_PREFIX=$NAME EZPULZE_PROFILE=debug \
  EZPULZE_API_PORT=$api_port EZPULZE_SIM_PORT=$sim_port EZPULZE_OPS_PORT=$ops_port \
  bash scripts/up.sh >"$OUT/up.out" 2>"$OUT/up.err" &
UP_PID=$!
# The banner is printed after stack.env is written: wait for its last marker.
for _ in $(seq 1 1800); do
  [[ $(cat "$OUT/up.out" 2>/dev/null) == *"# --- end ---"* ]] && break
  kill -0 "$UP_PID" 2>/dev/null || { log "scripts/up.sh exited before its banner:"; tail -n 20 "$OUT/up.err" >&2; exit 1; }
  sleep 0.2
done
[[ $(cat "$OUT/up.out") == *"# --- end ---"* ]] || { log "no banner after 6 minutes"; exit 1; }
[[ -f $EZPULZE_DIR/stack.env ]] || { log "no stack.env"; exit 1; }

# Every curl of a block must answer 2xx; the block stops at the first that does not. Only the
# method and URL of a failing call are printed (never its headers: they hold the tokens).
prelude=$(cat <<'SH'
curl() {
  local out code url=
  for a in "$@"; do [[ $a == http* ]] && url=$a; done
  echo >>"$CURL_COUNT"
  out=$(command curl -sS -w '\n%{http_code}' "$@") || { echo "[readme-test] curl could not reach $url" >&2; return 1; }
  code=${out##*$'\n'}
  out=${out%$'\n'*}
  printf '%s\n' "$out"
  [[ $code == 2* ]] || { echo "[readme-test] HTTP $code from $url: $out" >&2; return 1; }
}
SH
)
export CURL_COUNT=$OUT/curls
# run_block NAME DIR TEXT: runs TEXT in DIR with bash -e -o pipefail; fails on a non-2xx curl.
run_block() {
  : >"$CURL_COUNT"
  log "running $1 (from ${2#"$REPO"/})"
  if ! (cd "$2" && bash -e -o pipefail -c "$prelude"$'\n'"$3") >"$OUT/$1.out" 2>"$OUT/$1.err"; then
    log "$1 failed:"
    cat "$OUT/$1.err" >&2
    exit 1
  fi
  local n
  n=$(wc -l <"$CURL_COUNT")
  ((n >= 2)) || { log "$1 ran $n curl commands: the block was not found whole"; exit 1; }
  log "$1: $n curl commands, each answered 2xx"
}

# The README's block: the first fenced block after its marker comment.
readme_block=$(awk '/<!-- readme-test: the next block -->/ { found = 1; next }
  found && /^```/ { if (inside) exit; inside = 1; next }
  inside { print }' README.md)
[[ -n $readme_block ]] || { log "README.md has no block after <!-- readme-test: the next block -->"; exit 1; }
# The banner's lines between its two markers.
banner_block=$(awk '/^# --- try a send ---$/ { inside = 1; next } /^# --- end ---$/ { exit } inside { print }' "$OUT/up.out")
[[ -n $banner_block ]] || { log "the banner has no 'try a send' lines"; exit 1; }

# The README's block runs where .ezpulze/ is (the state folder of this stack is $OUT/.ezpulze);
# the banner's names the folder relative to the checkout.
run_block readme-1 "$OUT" "$readme_block"
run_block banner "$REPO" "$banner_block"
run_block readme-2 "$OUT" "$readme_block"

# The sends reach the simulator (through the workers).
# shellcheck disable=SC1091
source "$EZPULZE_DIR/stack.env"
accepted=0
for _ in $(seq 1 150); do
  accepted=$(command curl -fsS "$SIM_URL/_sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["accepted"])')
  ((accepted >= 2)) && break
  sleep 0.2
done
((accepted >= 2)) || { log "the simulator accepted $accepted messages, expected at least 2"; exit 1; }
log "the simulator accepted $accepted messages"

# make down stops it (up.sh exits, the pid files go), make reset drops its data.
bash scripts/down.sh 2>>"$OUT/down.err"
for _ in $(seq 1 100); do kill -0 "$UP_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$UP_PID" 2>/dev/null; then log "scripts/up.sh still runs after make down"; exit 1; fi
wait "$UP_PID" || { log "scripts/up.sh exited non-zero after make down"; exit 1; }
UP_PID=
[[ ! -e $EZPULZE_DIR/pids && ! -e $EZPULZE_DIR/stack.env ]] || { log "make down left pid files or stack.env"; exit 1; }
[[ $(cat "$OUT/up.err") == *"stopping (SIGTERM"* ]] || { log "up.sh did not say it was stopping"; exit 1; }
if command curl -fsS "http://127.0.0.1:$api_port/readyz" >/dev/null 2>&1; then log "the api still answers after make down"; exit 1; fi
log "make down stopped the stack"

[[ -n $(redis-cli -u "$REDIS_URL" --scan --pattern "$NAME:*" | head -n 1) ]] || { log "the stack left no Redis keys to reset"; exit 1; }
CONFIRM=no bash scripts/reset.sh </dev/null 2>>"$OUT/reset.err" && { log "make reset went on without a confirmation"; exit 1; }
[[ -d $EZPULZE_DIR ]] || { log "an unconfirmed make reset removed the state folder"; exit 1; }
CONFIRM=yes bash scripts/reset.sh 2>>"$OUT/reset.err"
[[ $(psql "$PG" -Atqc "SELECT count(*) FROM pg_database WHERE datname = '$NAME'") == 0 ]] || { log "make reset left the database"; exit 1; }
for pattern in "$NAME:*" "{$NAME:*"; do
  [[ -z $(redis-cli -u "$REDIS_URL" --scan --pattern "$pattern" | head -n 1) ]] || { log "make reset left Redis keys ($pattern)"; exit 1; }
done
[[ ! -e $EZPULZE_DIR ]] || { log "make reset left the state folder"; exit 1; }
log "make reset dropped the database, the Redis keys and the state folder"
log "passed"
