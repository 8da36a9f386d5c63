#!/usr/bin/env bash
# `make up`: the whole stack in the foreground (API, workers, scheduler, WhatsApp simulator,
# Redis, Postgres) with a default account. Ctrl-C (or `make down` from another terminal) stops
# all of it; `make reset` drops its data.
# Uses DATABASE_URL / REDIS_URL when given and reachable; otherwise Postgres on 127.0.0.1:5432
# (started or installed when missing) and a Redis of its own on 127.0.0.1:${EZPULZE_REDIS_PORT:-6390}
# with the settings the engine relies on (noeviction, appendonly + everysec).
# Other settings: EZPULZE_API_PORT (8080), EZPULZE_SIM_PORT (8090), EZPULZE_OPS_PORT (9101:
# worker-1, +1 scheduler, +2 worker-2), EZPULZE_SIM_MPS (80: the simulated number's
# messages/s), EZPULZE_PROFILE (release, or debug), EZPULZE_DIR (.ezpulze: state and logs).
# EZPULZE_REDIS_CLUSTER=1: a local Redis Cluster instead (3 primaries, 3 replicas on ports
# EZPULZE_REDIS_CLUSTER_PORT (7100) to +5, data in .ezpulze/redis-cluster), the status stream
# in 3 shards.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir=${EZPULZE_DIR:-$root/.ezpulze}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rel=${dir#"$root"/} # how messages name the folder
log() { echo "[up] $*" >&2; }

api_port=${EZPULZE_API_PORT:-8080}
sim_port=${EZPULZE_SIM_PORT:-8090}
redis_port=${EZPULZE_REDIS_PORT:-6390}
ops_port=${EZPULZE_OPS_PORT:-9101}
sim_mps=${EZPULZE_SIM_MPS:-80}
profile=${EZPULZE_PROFILE:-release}
[[ $profile == release || $profile == debug ]] || { log "EZPULZE_PROFILE is release or debug, not '$profile'"; exit 2; }
[[ $sim_mps =~ ^[0-9]+$ ]] && ((sim_mps >= 1 && sim_mps <= 10000)) \
  || { log "EZPULZE_SIM_MPS is a number of messages/s from 1 to 10000, not '$sim_mps'"; exit 2; }

# One stack per folder: its pid files are in $rel/pids/ (`make down` reads them).
piddir=$dir/pids
if [[ -f $piddir/up.pid ]] && kill -0 "$(cat "$piddir/up.pid")" 2>/dev/null; then
  log "a stack started from $rel is already running (pid $(cat "$piddir/up.pid")); stop it with: make down"
  exit 1
fi
rm -rf "$piddir"
mkdir -p "$piddir"
echo $$ >"$piddir/up.pid"

pids=()
cleanup() {
  trap - INT TERM EXIT
  rm -f "$dir/stack.env"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n ${own_redis:-} ]]; then
    redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  fi
  if [[ -n ${own_cluster:-} ]]; then
    bash scripts/redis-cluster.sh stop "$cluster_port"
  fi
  rm -rf "$piddir"
  log "stopped"
}
# A signal (Ctrl-C, `make down`) stops the stack; the EXIT trap does the work.
on_signal() {
  trap - INT TERM
  log "stopping ($1)"
  exit "$2"
}
trap 'on_signal Ctrl-C 0' INT # asked for: not a failure
trap 'on_signal "SIGTERM, e.g. make down" 0' TERM # asked for: not a failure
trap cleanup EXIT

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
cluster_port=${EZPULZE_REDIS_CLUSTER_PORT:-7100}
if [[ ${EZPULZE_REDIS_CLUSTER:-} == 1 ]]; then
  REDIS_CLUSTER_URLS=$(bash scripts/redis-cluster.sh start "$dir/redis-cluster" "$cluster_port")
  export REDIS_CLUSTER_URLS
  export STATUS_SHARDS=${STATUS_SHARDS:-3}
  own_cluster=1
  export REDIS_URL=redis://127.0.0.1:$cluster_port/0
  log "using a local Redis Cluster (ports $cluster_port-$((cluster_port + 5)))"
elif [[ -n ${REDIS_URL:-} ]] && pong -u "$REDIS_URL"; then
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
export REDIS_PREFIX=${REDIS_PREFIX:-ezp}
# Where this stack's data is, for `make reset` (kept after the stack stops).
umask_was=$(umask)
umask 077
printf 'DATABASE_URL=%q\nREDIS_URL=%q\nREDIS_PREFIX=%q\nOWN_REDIS_PORT=%q\n' "$DATABASE_URL" "$REDIS_URL" "$REDIS_PREFIX" \
  "$([[ $REDIS_URL == "redis://127.0.0.1:$redis_port/0" ]] && echo "$redis_port")" >"$dir/data.env"
umask "$umask_was"

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
# Cargo's own progress is shown: the first build compiles every dependency (several minutes).
if [[ -x ${CARGO_TARGET_DIR:-$root/target}/$profile/ezpulze-api ]]; then
  log "building ($profile; only what changed)"
else
  log "building ($profile; no binaries yet: a first build compiles every dependency and takes several minutes)"
fi
if [[ $profile == release ]]; then cargo build --release --bins; else cargo build --bins; fi
bin=${CARGO_TARGET_DIR:-$root/target}/$profile

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
  echo $! >"$piddir/$name.pid"
  log "started $name (log: $rel/$name.log)"
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
      log "$name did not become ready ($url); see $rel/$name.log:"
      tail -n 5 "$dir/$name.log" >&2 || true
      exit 1
    fi
  done
}

metrics_urls="http://127.0.0.1:$api_port/metrics"
# The simulated WhatsApp business number of the default account.
sim_number=106540352242922
sim_display=15550783881
# Its WhatsApp Business Account: templates are submitted to the simulator under it (which
# approves them at once) and its template webhooks name it (docs/templates.md).
sim_waba=102290129340398
if has_bin ezpulze-simulator; then
  SIM_LISTEN=127.0.0.1:$sim_port SIM_WEBHOOK_URL=http://127.0.0.1:$api_port/webhooks/whatsapp SIM_MPS_LIMIT=$sim_mps \
    SIM_NUMBERS="$sim_number:$sim_display:$EZPULZE_SIM_TOKEN" SIM_SANDBOX_TOKEN=ezpulze-sandbox SIM_WABA_ID=$sim_waba \
    start simulator "http://127.0.0.1:$sim_port/readyz" "$bin/ezpulze-simulator"
  metrics_urls+=" http://127.0.0.1:$sim_port/metrics"
fi
MIGRATE_ON_START=false start api "http://127.0.0.1:$api_port/readyz" "$bin/ezpulze-api"
if has_bin ezpulze-worker; then
  for i in 1 2; do
    port=$((ops_port + 2 * i - 2))
    # Workers run at a lower CPU priority (nice 10): on a machine they share with the api,
    # a draining backlog must not slow the api's answers (loadtest/mixed.js).
    WORKER_METRICS_ADDR=127.0.0.1:$port MIGRATE_ON_START=false \
      start "worker-$i" "http://127.0.0.1:$port/readyz" nice -n 10 "$bin/ezpulze-worker"
    metrics_urls+=" http://127.0.0.1:$port/metrics"
  done
fi
if has_bin ezpulze-scheduler; then
  SCHEDULER_METRICS_ADDR=127.0.0.1:$((ops_port + 1)) MIGRATE_ON_START=false \
    start scheduler "http://127.0.0.1:$((ops_port + 1))/readyz" "$bin/ezpulze-scheduler"
  metrics_urls+=" http://127.0.0.1:$((ops_port + 1))/metrics"
fi

api=http://127.0.0.1:$api_port
wait_ready

# --- Provisioning: each step names itself and shows the API's error body when it fails ---
# call STEP METHOD PATH BEARER [JSON]: prints the answer's body; stops the stack on non-2xx.
call() {
  local step=$1 method=$2 path=$3 bearer=$4 data=${5:-} out code
  local args=(-sS -X "$method" "$api$path" -H "Authorization: Bearer $bearer" -w $'\n%{http_code}')
  [[ -n $data ]] && args+=(-H 'content-type: application/json' -d "$data")
  out=$(curl "${args[@]}") || { log "$step: the API did not answer (see $rel/api.log)"; exit 1; }
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

# --- Default account, a full-access key and an example broadcast, kept in .ezpulze/account.env ---
ADMIN_TOKEN= API_KEY= KEY_ID= TEMPLATE_ID= BROADCAST_ID=
# shellcheck disable=SC1091
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
  API_KEY= KEY_ID= TEMPLATE_ID= BROADCAST_ID=
fi
if [[ -z $API_KEY || -z $KEY_ID ]] || ! works "$API_KEY" /api/v1/me; then
  created=$(call "creating the default key" POST /admin/v1/api-keys "$ADMIN_TOKEN" \
    '{"name":"Default full-access key","scope_group":"full_access","rate_limit_per_hour":null}')
  API_KEY=$(field 'v["key"]' <<<"$created")
  KEY_ID=$(field 'v["id"]' <<<"$created")
fi
save_account() {
  (umask 077 && printf 'ADMIN_TOKEN=%s\nAPI_KEY=%s\nKEY_ID=%s\nTEMPLATE_ID=%s\nBROADCAST_ID=%s\n' \
    "$ADMIN_TOKEN" "$API_KEY" "$KEY_ID" "$TEMPLATE_ID" "$BROADCAST_ID" >"$dir/account.env")
}
save_account
# Wire the default account to the simulator (its number, token, throughput, app secret and WABA).
call "registering the simulator's number" PUT /admin/v1/whatsapp "$ADMIN_TOKEN" \
  "{\"phone_numbers\":[{\"phone_number_id\":\"$sim_number\",\"display_phone_number\":\"$sim_display\",\"access_token\":\"$EZPULZE_SIM_TOKEN\",\"messages_per_second\":$sim_mps}],\"app_secret\":\"$SIM_APP_SECRET\",\"verify_token\":\"ezpulze-local\",\"waba_id\":\"$sim_waba\"}" >/dev/null
# An example template (order_update: image header, two body variables, a quick reply and a URL
# button) and a broadcast of it, made once: the ones of account.env while they exist.
example_header='{"type":"image","link":"https://picsum.photos/seed/ezpulze/600/300"}'
if [[ -z $BROADCAST_ID ]] || ! works "$API_KEY" "/api/v1/broadcasts/$BROADCAST_ID"; then
  BROADCAST_ID=
  if [[ -z $TEMPLATE_ID ]] || ! works "$API_KEY" "/api/v1/templates/$TEMPLATE_ID"; then
    # A database that outlived .ezpulze/ may hold it already (a second create answers 409).
    TEMPLATE_ID=$(call "listing templates" GET /api/v1/templates "$API_KEY" \
      | field 'next((t["id"] for t in v["items"] if t.get("name") == "order_update" and t.get("language") == "en_US"), "")')
  fi
  if [[ -z $TEMPLATE_ID ]]; then
    TEMPLATE_ID=$(call "creating the example template" POST /api/v1/templates "$API_KEY" '{"name":"order_update","language":"en_US","category":"UTILITY","components":[{"type":"HEADER","format":"IMAGE","example":{"header_handle":["https://picsum.photos/seed/ezpulze/600/300"]}},{"type":"BODY","text":"Hi {{1}}, your order {{2}} has shipped.","example":{"body_text":[["Maria","4721"]]}},{"type":"BUTTONS","buttons":[{"type":"QUICK_REPLY","text":"Stop updates"},{"type":"URL","text":"Track","url":"https://shop.example.com/track/{{1}}","example":["https://shop.example.com/track/4721"]}]}]}' \
      | field 'v["id"]')
  fi
  BROADCAST_ID=$(call "creating the example broadcast" POST /api/v1/broadcasts "$API_KEY" "{\"name\":\"Order shipped\",\"template_id\":\"$TEMPLATE_ID\",\"variables\":{\"header\":$example_header}}" \
    | field 'v["id"]')
  save_account
fi
sim_mps_now=$(curl -fsS "http://127.0.0.1:$sim_port/_sim/config" 2>/dev/null | field 'v["mps_limit"]' 2>/dev/null || echo "$sim_mps")
cat >"$dir/stack.env" <<ENV
API_URL=$api
SIM_URL=http://127.0.0.1:$sim_port
ROOT_TOKEN=$EZPULZE_ROOT_TOKEN
ADMIN_TOKEN=$ADMIN_TOKEN
API_KEY=$API_KEY
KEY_ID=$KEY_ID
TEMPLATE_ID=$TEMPLATE_ID
BROADCAST_ID=$BROADCAST_ID
METRICS_URLS="$metrics_urls"
ENV

# The "Try a send" lines are commands as written (tested by scripts/readme-test.sh, which runs
# the lines between the two markers of this banner).
cat <<MSG

  EzPulze is running: ${roles[*]} (each answered /readyz).
    Web UI and API:  $api/         (sign in with the admin token below)
    Admin token:     $ADMIN_TOKEN
    API key:         $API_KEY   (full access, no hourly limit; id $KEY_ID)
    Simulator:       http://127.0.0.1:$sim_port/_sim/stats
    Throughput:      the simulated number sends at most $sim_mps_now messages/s (the workers pace to 90% of it);
                     raise it with EZPULZE_SIM_MPS=1000 make up (the simulator's mps_limit and the number's messages_per_second)
    Metrics:         $metrics_urls
    Settings for scripts and k6 (API_URL, API_KEY, ADMIN_TOKEN, KEY_ID, BROADCAST_ID, ...): source $rel/stack.env

  Try a send (the example broadcast "Order shipped" of template order_update), then the key's usage:
# --- try a send ---
source $rel/stack.env
curl -s -X POST \$API_URL/api/v1/broadcasts/\$BROADCAST_ID/send -H "Authorization: Bearer \$API_KEY" -H 'content-type: application/json' \\
  -d '{"recipients":[{"to":"+14155550123","variables":{"body":["Ann","4721"],"buttons":[{"index":1,"text":"4721"}]}}]}'
curl -s -H "Authorization: Bearer \$ADMIN_TOKEN" \$API_URL/admin/v1/api-keys/\$KEY_ID/usage
# --- end ---

  Ctrl-C (or make down in another terminal) stops everything; make reset drops the data.

MSG
wait -n "${pids[@]}" || true
for i in "${!roles[@]}"; do
  if ! kill -0 "${role_pids[$i]}" 2>/dev/null; then
    log "${roles[$i]} exited; stopping the stack (see $rel/${roles[$i]}.log):"
    tail -n 5 "$dir/${roles[$i]}.log" >&2 || true
    exit 1
  fi
done
log "a process exited; stopping the stack"
exit 1
