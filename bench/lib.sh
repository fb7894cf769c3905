# Shared pieces of the benchmark scripts (sourced, not run): tool checks, a private
# work dir torn down on exit, free ports, pinned background processes, the upstream
# and reference nginx, and Tollgate itself. Everything binds 127.0.0.1 only.
#
# Globals the caller may set before sourcing: nothing. Globals set here: ROOT, BENCH,
# NODE, OPA, WORK, PIN, LOADGEN_CPU, PROXY_CPU, LAST_PID, TOLLGATE_PID, TOLLGATE_PORT,
# TOLLGATE_ADMIN_PORT.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
# Node 24 from the devDependency `node@24`: /usr/bin/node may be older and cannot run .ts.
NODE=$ROOT/node_modules/.bin/node
OPA=${OPA:-$ROOT/.tools/bin/opa}
# Two cores: the load generator and the upstream share one, the proxy under test gets
# the other to itself (what a sidecar with a 1-CPU limit has). BENCH_PIN=0 lets the
# kernel schedule everything on both cores instead.
PIN=${BENCH_PIN:-1}
LOADGEN_CPU=0
PROXY_CPU=1

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_tools() {
  local missing=()
  for tool in nginx wrk curl taskset; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  [ -x "$NODE" ] || missing+=("node_modules/.bin/node (npm ci)")
  [ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]} (bash scripts/install-tools.sh debian; npm ci)"
  [ "$(nproc)" -ge 2 ] || { log "fewer than 2 CPUs: pinning disabled"; PIN=0; }
}

WORK=''
BG_PIDS=()

# Stops every process this run started (by pid, TERM then KILL after 5 s) and removes
# the work dir unless BENCH_KEEP=1. Installed as the EXIT trap: runs on failure too.
teardown() {
  local status=$?
  for pid in "${BG_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  local deadline=$((SECONDS + 5))
  for pid in "${BG_PIDS[@]}"; do
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  fi
  exit "$status"
}

make_workdir() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-bench.XXXXXX")
  trap teardown EXIT
  trap 'exit 130' INT TERM
}

free_port() {
  "$NODE" -e 'const s=require("node:net").createServer().listen(0,"127.0.0.1",()=>{process.stdout.write(String(s.address().port));s.close()})'
}

# Runs "$@" in the background pinned to CPU $1 (when pinning), output to $2.
# exec keeps the pid: LAST_PID is the process itself, not a wrapper shell.
start_bg() {
  local cpu=$1 out=$2
  shift 2
  if [ "$PIN" = 1 ]; then
    (exec taskset -c "$cpu" "$@" >"$out" 2>&1) &
  else
    (exec "$@" >"$out" 2>&1) &
  fi
  LAST_PID=$!
  BG_PIDS+=("$LAST_PID")
}

# Runs "$@" in the foreground on the load generator's CPU.
loadgen() {
  if [ "$PIN" = 1 ]; then taskset -c "$LOADGEN_CPU" "$@"; else "$@"; fi
}

# wait_until <seconds> <description> <command...>: polls the command with a deadline.
wait_until() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${limit}s waiting for $what"
    sleep 0.1
  done
}

render() { # render <template> <out> KEY=VALUE...
  local template=$1 out=$2
  shift 2
  local args=()
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$template" >"$out"
}

http_ok() { [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: payments.internal' "$1")" = 200 ]; }

# start_nginx <name> <template> <cpu> KEY=VALUE...: prints nothing, sets LAST_PID (master).
start_nginx() {
  local name=$1 template=$2 cpu=$3
  shift 3
  render "$template" "$WORK/$name.conf" "DIR=$WORK" "$@"
  start_bg "$cpu" "$WORK/$name.out" nginx -p "$WORK" -e "$WORK/$name-startup.log" -c "$WORK/$name.conf"
}

# The worker processes of an nginx master (its children).
nginx_workers() { cat "/proc/$1/task/$1/children" 2>/dev/null || true; }

# True while the process runs (a zombie waiting to be reaped counts as gone).
alive() { [ -e "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# utime + stime of a process (all its threads), in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

all_busy() { # "busy total" jiffies summed over all CPUs
  awk '$1 == "cpu" {busy = $2 + $3 + $4 + $7 + $8 + $9; total = busy + $5 + $6; print busy, total}' /proc/stat
}

# This machine may be shared: before each measurement wait (up to BENCH_QUIET_MAX s,
# default 120) for a second in which the CPUs are less than BENCH_QUIET_PCT (15%)
# busy, our own idle processes included. Measurements still disturbed show in the
# "others" column: CPU time used by processes other than wrk, the upstream and the
# proxy under test during the measurement.
wait_quiet() {
  local deadline=$((SECONDS + ${BENCH_QUIET_MAX:-120})) b0 t0 b1 t1 busy
  while :; do
    read -r b0 t0 < <(all_busy); sleep 1; read -r b1 t1 < <(all_busy)
    busy=$(( t1 > t0 ? 100 * (b1 - b0) / (t1 - t0) : 0 ))
    [ "$busy" -lt "${BENCH_QUIET_PCT:-15}" ] && return 0
    if [ $SECONDS -ge $deadline ]; then log "machine still ${busy}% busy: measuring anyway"; return 0; fi
    log "machine ${busy}% busy with other work: waiting"
    sleep 4
  done
}

# start_upstream <path>: the nginx upstream every HTTP scenario forwards to, on the load
# generator's CPU; sets UPSTREAM_PORT and UPSTREAM_PID once <path> answers 200.
start_upstream() {
  UPSTREAM_PORT=$(free_port)
  start_nginx upstream "$BENCH/nginx-upstream.conf.in" "$LOADGEN_CPU" "PORT=$UPSTREAM_PORT"
  UPSTREAM_PID=$LAST_PID
  wait_until 10 "upstream nginx on $UPSTREAM_PORT" http_ok "http://127.0.0.1:$UPSTREAM_PORT$1"
}

# extract_policy <dir>: the bundle select_bundle chose (the default one when BUNDLE is ""),
# unpacked into <dir> for the bare-policy peer: its policy.wasm and its root data.json
# ({} when it has none; data in subdirectories is not supported by that peer).
extract_policy() {
  mkdir -p "$1"
  tar -xzf "${BUNDLE:-$ROOT/policies/dist/bundle.tar.gz}" -C "$1" --no-same-owner 2>/dev/null
  [ -f "$1/policy.wasm" ] || die "no policy.wasm in ${BUNDLE:-the default bundle}"
  [ -f "$1/data.json" ] || echo '{}' >"$1/data.json"
}

# select_bundle <choice>: sets BUNDLE (config value; "" = embedded default) and
# BUNDLE_DESC. choice: auto | default | seed | allow-all | allow-list | <path to a bundle>.
#   default:   policies/dist/bundle.tar.gz, the committed default bundle.
#   seed:      the seed policies in policies/ built now with opa (what default will hold).
#   allow-all: bench/allow-all.rego built with opa.
#   allow-list: bench/allow-list.rego (4 conditions: role, method, host, path prefix) built with opa.
#   auto:      default if present, else seed if opa is installed, else allow-all.
select_bundle() {
  local choice=$1
  if [ "$choice" = auto ]; then
    if [ -f "$ROOT/policies/dist/bundle.tar.gz" ]; then choice=default
    elif [ -x "$OPA" ] && ls "$ROOT"/policies/*.rego >/dev/null 2>&1; then
      log "policies/dist/bundle.tar.gz is not there yet: building the seed policies from policies/ instead"
      choice=seed
    else
      log "no default bundle and no opa to build one: using the allow-all bundle"
      choice=allow-all
    fi
  fi
  case $choice in
    default)
      [ -f "$ROOT/policies/dist/bundle.tar.gz" ] || die "policies/dist/bundle.tar.gz is missing (npm run build:policies)"
      BUNDLE=''
      BUNDLE_DESC="default (embedded policies/dist/bundle.tar.gz, sha256 $(sha256sum "$ROOT/policies/dist/bundle.tar.gz" | cut -c1-12))"
      ;;
    seed)
      [ -x "$OPA" ] || die "opa is not installed at $OPA (npm run tools)"
      "$OPA" build -t wasm -e tollgate/authz/decision --ignore '*_test.rego' -o "$WORK/seed-bundle.tar.gz" "$ROOT/policies" >&2
      BUNDLE=$WORK/seed-bundle.tar.gz
      BUNDLE_DESC="seed policies built from policies/*.rego with opa $("$OPA" version | awk '/^Version/ {print $2}') (rego sha256 $(cat "$ROOT"/policies/*.rego "$ROOT"/policies/data.json | sha256sum | cut -c1-12))"
      ;;
    allow-all | allow-list)
      [ -x "$OPA" ] || die "opa is not installed at $OPA (npm run tools)"
      mkdir -p "$WORK/$choice"
      cp "$BENCH/$choice.rego" "$WORK/$choice/"
      "$OPA" build -t wasm -e tollgate/authz/decision -o "$WORK/$choice-bundle.tar.gz" "$WORK/$choice" >&2
      BUNDLE=$WORK/$choice-bundle.tar.gz
      BUNDLE_DESC="$choice (bench/$choice.rego)"
      ;;
    *)
      [ -f "$choice" ] || [ -d "$choice" ] || die "no bundle at $choice"
      BUNDLE=$(cd "$(dirname "$choice")" && pwd)/$(basename "$choice")
      BUNDLE_DESC="$choice"
      ;;
  esac
}

# start_tollgate <upstream port> [node flags...]: starts Tollgate on PROXY_CPU with
# BUNDLE; sets TOLLGATE_PID and TOLLGATE_PORT once it prints its listening line.
start_tollgate() {
  local upstream_port=$1
  shift
  render "$BENCH/tollgate.yaml.in" "$WORK/tollgate.yaml" "BUNDLE=$BUNDLE" "UPSTREAM_PORT=$upstream_port"
  # TOLLGATE_EXTRA_YAML: more top-level config sections (e.g. tracing) appended as they are.
  [ -z "${TOLLGATE_EXTRA_YAML:-}" ] || printf '%s\n' "$TOLLGATE_EXTRA_YAML" >>"$WORK/tollgate.yaml"
  start_tollgate_config "$WORK/tollgate.yaml" tollgate "$@"
}

# start_tollgate_config <config file> <name> [node flags...]: starts Tollgate with a config
# written by the caller, output to $WORK/<name>.out; sets TOLLGATE_PID, TOLLGATE_PORT and
# TOLLGATE_ADMIN_PORT. Returns 3 (after printing its output) when Tollgate refuses the
# config and exits, so a caller can tell an unsupported setting from a crash.
start_tollgate_config() {
  local config=$1 name=$2
  shift 2
  # TOLLGATE_ROOT: another source tree of Tollgate (e.g. an earlier revision) to run instead.
  start_bg "$PROXY_CPU" "$WORK/$name.out" "$NODE" "$@" "${TOLLGATE_ROOT:-$ROOT}/src/cli/main.ts" run --config "$config"
  TOLLGATE_PID=$LAST_PID
  local deadline=$((SECONDS + 30))
  until grep -q 'listening: proxy http://' "$WORK/$name.out" 2>/dev/null; do
    alive "$TOLLGATE_PID" || { cat "$WORK/$name.out" >&2; log "tollgate ($name) exited during start"; return 3; }
    [ $SECONDS -lt $deadline ] || { cat "$WORK/$name.out" >&2; die "tollgate ($name) did not start within 30s"; }
    sleep 0.1
  done
  TOLLGATE_PORT=$(sed -n 's|.*listening: proxy http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$WORK/$name.out" | head -1)
  TOLLGATE_ADMIN_PORT=$(sed -n 's|.*  admin http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$WORK/$name.out" | head -1)
  [ -n "$TOLLGATE_PORT" ] || die "could not read the proxy port from: $(cat "$WORK/$name.out")"
}

# start_jaeger: a live collector, Jaeger v2 all-in-one with in-memory storage, every
# port on loopback, on the load generator's CPU. Sets OTLP (gRPC), OTLP_HTTP, QUERY.
start_jaeger() {
  local jaeger=$ROOT/.tools/bin/jaeger query_grpc
  [ -x "$jaeger" ] || die "no $jaeger (bash scripts/install-tools.sh jaeger)"
  OTLP=$(free_port); QUERY=$(free_port); query_grpc=$(free_port); OTLP_HTTP=$(free_port)
  cat >"$WORK/jaeger.yaml" <<YAML
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [jaeger_storage_exporter] }
  telemetry: { metrics: { level: none }, logs: { level: warn } }
extensions:
  jaeger_query: { storage: { traces: memstore }, http: { endpoint: "127.0.0.1:$QUERY" }, grpc: { endpoint: "127.0.0.1:$query_grpc" } }
  jaeger_storage: { backends: { memstore: { memory: { max_traces: 100000 } } } }
receivers:
  otlp: { protocols: { grpc: { endpoint: "127.0.0.1:$OTLP" }, http: { endpoint: "127.0.0.1:$OTLP_HTTP" } } }
processors: { batch: {} }
exporters: { jaeger_storage_exporter: { trace_storage: memstore } }
YAML
  start_bg "$LOADGEN_CPU" "$WORK/jaeger.out" "$jaeger" --config "$WORK/jaeger.yaml"
  JAEGER_PID=$LAST_PID
  wait_until 30 "jaeger query API on $QUERY" curl -sf -o /dev/null "http://127.0.0.1:$QUERY/api/services"
}

# stop_pid <pid> <signal>: signals one process we started and waits (up to 20 s) for it to exit.
stop_pid() {
  local pid=$1 signal=$2
  kill "-$signal" "$pid" 2>/dev/null || return 0
  local deadline=$((SECONDS + 20))
  while alive "$pid"; do
    [ $SECONDS -lt $deadline ] || { kill -KILL "$pid" 2>/dev/null; break; }
    sleep 0.1
  done
  wait "$pid" 2>/dev/null || true
}

# The explicit-proxy check the benchmark relies on: 200 through Tollgate.
tollgate_status() {
  curl -s -o "$WORK/curl-body" -w '%{http_code}' -x "http://127.0.0.1:$TOLLGATE_PORT" http://payments.internal/v1/refunds/r-1
}
