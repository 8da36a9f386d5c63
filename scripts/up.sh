#!/usr/bin/env bash
# `make up`: the whole stack in the foreground (API, workers, scheduler, WhatsApp simulator,
# Redis, Postgres) with a default account. Ctrl-C stops all of it.
# Uses DATABASE_URL / REDIS_URL when given and reachable; otherwise Postgres on 127.0.0.1:5432
# (started or installed when missing) and a Redis of its own on 127.0.0.1:${EZPULZE_REDIS_PORT:-6390}
# with the settings the engine relies on (noeviction, appendonly + everysec).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir=$root/.ezpulze
mkdir -p "$dir"
log() { echo "[up] $*" >&2; }

api_port=${EZPULZE_API_PORT:-8080}
sim_port=${EZPULZE_SIM_PORT:-8090}
redis_port=${EZPULZE_REDIS_PORT:-6390}

pids=()
cleanup() {
  trap - INT TERM EXIT
  rm -f "$dir/stack.env"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n ${own_redis:-} ]]; then
    redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  fi
  log "stopped"
}
trap cleanup INT TERM EXIT

# --- Services ---
bash scripts/ensure-services.sh
if [[ -n ${DATABASE_URL:-} ]] && psql "$DATABASE_URL" -Atqc 'SELECT 1' >/dev/null 2>&1; then
  log "using DATABASE_URL"
else
  export DATABASE_URL=postgres://postgres@127.0.0.1:5432/ezpulze
  [[ $(psql postgres://postgres@127.0.0.1:5432/postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = 'ezpulze'") == 1 ]] \
    || psql postgres://postgres@127.0.0.1:5432/postgres -qc 'CREATE DATABASE ezpulze' >/dev/null
fi
# No `cmd | grep -q` under pipefail here: outputs are read whole, then matched.
pong() { [[ $(redis-cli "$@" ping 2>/dev/null) == *PONG* ]]; }
if [[ -n ${REDIS_URL:-} ]] && pong -u "$REDIS_URL"; then
  log "using REDIS_URL"
else
  mkdir -p "$dir/redis"
  if ! pong -p "$redis_port"; then
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir/redis" --appendonly yes \
      --appendfsync everysec --maxmemory-policy noeviction --save "" --daemonize yes \
      --logfile "$dir/redis/redis.log"
    own_redis=1
    for _ in $(seq 1 50); do pong -p "$redis_port" && break; sleep 0.1; done
  fi
  export REDIS_URL=redis://127.0.0.1:$redis_port/0
fi

# --- Secrets, made once and kept in .ezpulze/secrets.env ---
rand() { head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "$1"; }
touch "$dir/secrets.env"
chmod 600 "$dir/secrets.env"
add_secret() { grep -q "^$1=" "$dir/secrets.env" || echo "$1=$2" >>"$dir/secrets.env"; } # grep reads a file: no pipe
add_secret EZPULZE_ROOT_TOKEN "root_$(rand 32)"
add_secret EZPULZE_KEY_PEPPER "$(rand 40)"
add_secret EZPULZE_SECRETS_KEY "$(rand 32)"
add_secret SIM_APP_SECRET "$(rand 32)"
add_secret EZPULZE_SIM_TOKEN "EAAsim$(rand 40)"
set -a
# shellcheck disable=SC1091
source "$dir/secrets.env"
set +a

# --- Build ---
log "building (release)"
cargo build --release --bins --quiet
bin=${CARGO_TARGET_DIR:-$root/target}/release

export API_ADDR=127.0.0.1:$api_port
export PUBLIC_BASE_URL=http://127.0.0.1:$api_port
export GRAPH_API_BASE=http://127.0.0.1:$sim_port
"$bin/ezpulze-api" migrate

# A role binary that is built and describes itself (so not a placeholder).
# The help text is read whole before it is searched: `--help | grep -q` under pipefail lets the
# binary die of SIGPIPE when grep stops early, and the check then fails at random.
has_bin() {
  local out
  [[ -x $bin/$1 ]] && out=$("$bin/$1" --help 2>&1) && [[ $out == *"$1"* ]]
}

roles=() ready_urls=() role_pids=()
start() { # name, readyz URL, command...
  local name=$1 url=$2; shift 2
  "$@" >"$dir/$name.log" 2>&1 &
  pids+=($!)
  roles+=("$name") ready_urls+=("$url") role_pids+=($!)
  log "started $name (log: .ezpulze/$name.log)"
}

# Every role answers its /readyz before anything is provisioned or printed; one that exits or
# does not answer within 60 s stops the stack with one line naming it and its log.
wait_ready() {
  local i
  for i in "${!roles[@]}"; do
    local name=${roles[$i]} url=${ready_urls[$i]} pid=${role_pids[$i]} ok=
    for _ in $(seq 1 300); do
      if ! kill -0 "$pid" 2>/dev/null; then break; fi
      if curl -fsS -o /dev/null "$url" 2>/dev/null; then ok=1; break; fi
      sleep 0.2
    done
    if [[ -z $ok ]]; then
      log "$name did not become ready ($url); see .ezpulze/$name.log:"
      tail -n 5 "$dir/$name.log" >&2 || true
      exit 1
    fi
  done
}

metrics_urls="http://127.0.0.1:$api_port/metrics"
# The simulated WhatsApp business number of the default account.
sim_number=106540352242922
sim_display=15550783881
if has_bin ezpulze-simulator; then
  SIM_LISTEN=127.0.0.1:$sim_port SIM_WEBHOOK_URL=http://127.0.0.1:$api_port/webhooks/whatsapp \
    SIM_NUMBERS="$sim_number:$sim_display:$EZPULZE_SIM_TOKEN" SIM_SANDBOX_TOKEN=ezpulze-sandbox \
    start simulator "http://127.0.0.1:$sim_port/readyz" "$bin/ezpulze-simulator"
  metrics_urls+=" http://127.0.0.1:$sim_port/metrics"
fi
MIGRATE_ON_START=false start api "http://127.0.0.1:$api_port/readyz" "$bin/ezpulze-api"
if has_bin ezpulze-worker; then
  for i in 1 2; do
    WORKER_METRICS_ADDR=127.0.0.1:$((9100 + 2 * i - 1)) MIGRATE_ON_START=false \
      start "worker-$i" "http://127.0.0.1:$((9100 + 2 * i - 1))/readyz" "$bin/ezpulze-worker"
    metrics_urls+=" http://127.0.0.1:$((9100 + 2 * i - 1))/metrics"
  done
fi
if has_bin ezpulze-scheduler; then
  SCHEDULER_METRICS_ADDR=127.0.0.1:9102 MIGRATE_ON_START=false \
    start scheduler "http://127.0.0.1:9102/readyz" "$bin/ezpulze-scheduler"
  metrics_urls+=" http://127.0.0.1:9102/metrics"
fi

api=http://127.0.0.1:$api_port
wait_ready

# --- Provisioning: each step names itself and shows the API's error body when it fails ---
# call STEP METHOD PATH BEARER [JSON]: prints the answer's body; stops the stack on non-2xx.
call() {
  local step=$1 method=$2 path=$3 bearer=$4 data=${5:-} out code
  local args=(-sS -X "$method" "$api$path" -H "Authorization: Bearer $bearer" -w $'\n%{http_code}')
  [[ -n $data ]] && args+=(-H 'content-type: application/json' -d "$data")
  out=$(curl "${args[@]}") || { log "$step: the API did not answer (see .ezpulze/api.log)"; exit 1; }
  code=${out##*$'\n'}
  out=${out%$'\n'*}
  if [[ $code != 2* ]]; then
    log "$step failed: HTTP $code $out"
    exit 1
  fi
  printf '%s' "$out"
}
# works BEARER PATH: whether a credential is accepted.
works() { [[ $(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "$api$2") == 200 ]]; }
# field EXPR: EXPR of the JSON on stdin (v); fails quietly when there is none (call said why).
field() { python3 -c "import json,sys
try: v=json.load(sys.stdin)
except ValueError: sys.exit(1)
print($1)"; }

# --- Default account and a full-access key, kept in .ezpulze/account.env while they work ---
ADMIN_TOKEN= API_KEY=
[[ -f $dir/account.env ]] && source "$dir/account.env"
if [[ -z $ADMIN_TOKEN ]] || ! works "$ADMIN_TOKEN" /admin/v1/api-keys; then
  # The account that holds the simulator's number is the default account of an earlier run
  # (this database outlived its .ezpulze/): reuse it with a new admin token.
  owner=$(psql "$DATABASE_URL" -Atqc "SELECT account_id FROM phone_numbers WHERE phone_number_id = '$sim_number'" 2>/dev/null || true)
  if [[ -n $owner ]]; then
    ADMIN_TOKEN=$(MIGRATE_ON_START=false "$bin/ezpulze-api" issue-admin-token --account "$owner") \
      || { log "issuing a new admin token for the existing default account $owner failed"; exit 1; }
    log "reusing the default account $owner already in the database (it holds the simulator's number): new admin token and key made"
  else
    ADMIN_TOKEN=$(call "creating the default account" POST /admin/v1/accounts "$EZPULZE_ROOT_TOKEN" '{"name":"Default account"}' | field 'v["admin_token"]')
    log "created the default account"
  fi
  API_KEY=
fi
if [[ -z $API_KEY ]] || ! works "$API_KEY" /api/v1/me; then
  API_KEY=$(call "creating the default key" POST /admin/v1/api-keys "$ADMIN_TOKEN" \
    '{"name":"Default full-access key","scope_group":"full_access","rate_limit_per_hour":null}' | field 'v["key"]')
fi
umask 077
printf 'ADMIN_TOKEN=%s\nAPI_KEY=%s\n' "$ADMIN_TOKEN" "$API_KEY" >"$dir/account.env"
# Wire the default account to the simulator (its number, token and app secret), and give a
# newcomer a template and a broadcast to send right away.
call "registering the simulator's number" PUT /admin/v1/whatsapp "$ADMIN_TOKEN" \
  "{\"phone_numbers\":[{\"phone_number_id\":\"$sim_number\",\"display_phone_number\":\"$sim_display\",\"access_token\":\"$EZPULZE_SIM_TOKEN\"}],\"app_secret\":\"$SIM_APP_SECRET\",\"verify_token\":\"ezpulze-local\"}" >/dev/null
broadcast=$(call "listing broadcasts" GET /admin/v1/broadcasts "$ADMIN_TOKEN" | field 'v["items"][0]["id"] if v["items"] else ""')
if [[ -z $broadcast ]]; then
  template=$(call "creating the example template" POST /api/v1/templates "$ADMIN_TOKEN" '{"name":"order_update","language":"en_US","category":"UTILITY","components":[{"type":"HEADER","format":"IMAGE","example":{"header_handle":["https://picsum.photos/seed/ezpulze/600/300"]}},{"type":"BODY","text":"Hi {{1}}, your order {{2}} has shipped.","example":{"body_text":[["Maria","4721"]]}},{"type":"BUTTONS","buttons":[{"type":"QUICK_REPLY","text":"Stop updates"},{"type":"URL","text":"Track","url":"https://shop.example.com/track/{{1}}","example":["https://shop.example.com/track/4721"]}]}]}' \
    | field 'v["id"]')
  broadcast=$(call "creating the example broadcast" POST /api/v1/broadcasts "$ADMIN_TOKEN" "{\"name\":\"Order shipped\",\"template_id\":\"$template\",\"variables\":{\"header\":{\"type\":\"image\",\"link\":\"https://picsum.photos/seed/ezpulze/600/300\"}}}" \
    | field 'v["id"]')
fi
cat >"$dir/stack.env" <<ENV
API_URL=$api
SIM_URL=http://127.0.0.1:$sim_port
ROOT_TOKEN=$EZPULZE_ROOT_TOKEN
ADMIN_TOKEN=$ADMIN_TOKEN
API_KEY=$API_KEY
METRICS_URLS="$metrics_urls"
ENV

cat <<MSG

  EzPulze is running: ${roles[*]} (each answered /readyz).
    Web UI and API:  $api/         (sign in with the admin token below)
    Admin token:     $ADMIN_TOKEN
    API key:         $API_KEY   (full access)
    Simulator:       http://127.0.0.1:$sim_port/_sim/stats
    Try a send:      curl -s -X POST $api/api/v1/broadcasts/$broadcast/send -H "Authorization: Bearer \$API_KEY" \\
                       -H 'content-type: application/json' -d '{"recipients":[{"to":"+14155550123","variables":{"body":["Ann","4721"],"buttons":[{"index":0,"payload":"stop"},{"index":1,"text":"4721"}]}}]}'
                     then: curl -s -H "Authorization: Bearer \$ADMIN_TOKEN" $api/admin/v1/api-keys  (usage per key in the UI)
    Metrics:         $metrics_urls
    Settings for scripts and k6: source .ezpulze/stack.env
  Ctrl-C stops everything.

MSG
wait -n "${pids[@]}" || true
log "a process exited; stopping the stack"
