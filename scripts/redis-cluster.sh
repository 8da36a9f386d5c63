#!/usr/bin/env bash
# A local Redis Cluster on loopback: 3 primaries and 3 replicas on ports BASE..BASE+5, data in
# DIR/<port>, settings the engine relies on (noeviction, appendonly + everysec).
#   scripts/redis-cluster.sh start DIR BASE   starts the nodes (and creates the cluster once);
#                                             prints the REDIS_CLUSTER_URLS value
#   scripts/redis-cluster.sh stop BASE        shuts the nodes down
set -euo pipefail
log() { echo "[redis-cluster] $*" >&2; }
cmd=${1:?start or stop}
case $cmd in
  start)
    dir=${2:?data directory}
    base=${3:?first port}
    ports=$(seq "$base" $((base + 5)))
    for p in $ports; do
      mkdir -p "$dir/$p"
      if [[ $(redis-cli -p "$p" ping 2>/dev/null) != *PONG* ]]; then
        (cd "$dir/$p" && redis-server --port "$p" --bind 127.0.0.1 --dir "$dir/$p" \
          --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
          --appendonly yes --appendfsync everysec --maxmemory-policy noeviction --save "" \
          --daemonize yes --logfile "$dir/$p/redis.log")
      fi
    done
    for p in $ports; do
      for _ in $(seq 1 50); do [[ $(redis-cli -p "$p" ping 2>/dev/null) == *PONG* ]] && break; sleep 0.1; done
    done
    info=$(redis-cli -p "$base" cluster info 2>/dev/null || true)
    if [[ $info != *"cluster_slots_assigned:16384"* ]]; then
      log "creating the cluster on ports $base-$((base + 5))"
      addrs=$(for p in $ports; do printf '127.0.0.1:%s ' "$p"; done)
      # shellcheck disable=SC2086
      redis-cli --cluster create $addrs --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
        || { log "creating the cluster failed: see $dir/create.log"; exit 1; }
    fi
    for _ in $(seq 1 100); do
      ok=1
      for p in $ports; do
        [[ $(redis-cli -p "$p" cluster info 2>/dev/null) == *"cluster_state:ok"* ]] || ok=
      done
      [[ -n $ok ]] && break
      sleep 0.2
    done
    [[ -n $ok ]] || { log "the cluster did not become ok"; exit 1; }
    urls=$(for p in $ports; do printf 'redis://127.0.0.1:%s,' "$p"; done)
    echo "${urls%,}"
    ;;
  stop)
    base=${2:?first port}
    for p in $(seq "$base" $((base + 5))); do
      redis-cli -p "$p" shutdown >/dev/null 2>&1 || true
    done
    ;;
  *)
    log "start DIR BASE | stop BASE"
    exit 2
    ;;
esac
